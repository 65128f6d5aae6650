//! What goes in and out of a check: the [`Presentation`] (token and DPoP
//! proof), the [`CheckRequest`] (operation, resource, facts), the [`Grant`]
//! of an allowed call, and the [`Authenticated`] presentation awaiting its
//! scope decision.

use std::fmt;
use std::sync::Arc;

use biscuit_auth::builder::{self, Fact};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::cache::Entry;
use crate::token::{Action, AgentId, Amount, Custody, InvalidInput, OnBehalf, Person, Resource};

/// What the caller presented: the token, an optional DPoP proof, and the
/// HTTP method and URL the proof must match.
#[derive(Debug, Clone, Copy)]
pub struct Presentation<'a> {
    /// The token text (base64url).
    pub token: &'a str,
    /// The `DPoP` header, if any.
    pub dpop: Option<&'a str>,
    /// The request method.
    pub method: &'a str,
    /// The request URL as the client addressed it (scheme, host, path).
    pub url: &'a str,
}

impl<'a> Presentation<'a> {
    /// A bearer presentation (no proof of possession).
    pub fn bearer(token: &'a str) -> Self {
        Self {
            token,
            dpop: None,
            method: "",
            url: "",
        }
    }
}

/// What the call does: the operation, the resource, and extra facts.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckRequest {
    /// The operation (for an MCP server, the tool name).
    pub operation: Action,
    /// The resource it acts on.
    pub resource: Resource,
    /// Extra facts for the token's checks, built with the builder API.
    pub facts: Vec<Fact>,
    /// The operation's amount, if it moves money: the request fact
    /// `amount(currency, minor units)` that a token's amount cap reads. A
    /// token with a cap refuses a request without one (`out_of_scope`).
    pub amount: Option<Amount>,
}

impl CheckRequest {
    /// Validates the operation and resource.
    pub fn new(operation: &str, resource: &str) -> Result<Self, InvalidInput> {
        Ok(Self {
            operation: Action::parse(operation)?,
            resource: Resource::parse(resource)?,
            facts: Vec::new(),
            amount: None,
        })
    }

    /// Sets the operation's amount (see [`CheckRequest::amount`]).
    pub fn with_amount(mut self, amount: Amount) -> Self {
        self.amount = Some(amount);
        self
    }

    /// Adds a fact `name(value, …)` of string terms (values are parameters,
    /// never source text).
    pub fn with_fact(mut self, name: &str, values: &[&str]) -> Self {
        let terms: Vec<_> = values.iter().map(|v| builder::string(v)).collect();
        self.facts.push(builder::fact(name, &terms));
        self
    }
}

/// An allowed call, as a tool server's handler sees it: for whom, who acted,
/// through whom, and whether the holder proved its key.
///
/// The whole chain is person -> earlier actors -> agent -> sub-agents:
/// [`Grant::on_behalf`] (the person and the earlier actors, from the
/// authority block the issuer signed), then [`Grant::chain`] (the token's
/// agent and each sub-agent it was delegated to); [`Grant::custody`] walks
/// and prints all of it. In JSON: `person` and `prior_actors` (absent for a
/// token that acts for nobody), then `chain`. Built from the token core's
/// [`crate::token::Authorized`] (which also carries the revocation ids, a
/// concern of the issuer and of the core's callers, not of a handler).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Grant {
    /// The agent the token was issued to.
    pub agent: AgentId,
    /// The person the agent acts for and the agents that held a token for
    /// them before this one was exchanged for it (oldest first), when the
    /// token acts for someone.
    #[serde(flatten)]
    pub on_behalf: Option<OnBehalf>,
    /// The agents of this token in order: the token's agent, then each
    /// sub-agent it was delegated to. The last one is acting.
    pub chain: Vec<AgentId>,
    /// The token id.
    pub token_id: String,
    /// When the token expires.
    pub expires_at: DateTime<Utc>,
    /// Whether the final holder proved possession of its key (DPoP).
    pub holder_proven: bool,
    /// The actions the token grants: one, or the set of a token minted for
    /// several tools (an authorization-code token). Serialized only when
    /// there are several.
    #[serde(skip_serializing_if = "one_or_none")]
    pub actions: Vec<String>,
    /// The person who approved this token and the approval id, when it
    /// was minted after a person's approval (`approved_by`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<crate::token::ApprovedBy>,
    /// Every cumulative budget of the token's chain (each is charged for
    /// every spend; see [`Grant::reserve`]). Empty for a token without one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub budgets: Vec<crate::token::BudgetLine>,
}

/// Whether a list has at most one element (serde's skip test).
fn one_or_none(v: &[String]) -> bool {
    v.len() <= 1
}

impl Grant {
    /// Who approved this token, if a person did (`approved by …`).
    pub fn approval(&self) -> Option<&crate::token::ApprovedBy> {
        self.approval.as_ref()
    }

    /// The agent presenting the token.
    pub fn acting(&self) -> &AgentId {
        self.chain.last().unwrap_or(&self.agent)
    }

    /// The person and the earlier actors, if the token acts for someone.
    pub fn on_behalf(&self) -> Option<&OnBehalf> {
        self.on_behalf.as_ref()
    }

    /// The person the token acts for, if any.
    pub fn person(&self) -> Option<&Person> {
        self.on_behalf.as_ref().map(|o| &o.person)
    }

    /// The whole chain: person -> earlier actors -> agent -> sub-agents.
    /// Displays as `for alice at https://idp.example via a -> b -> c`.
    pub fn custody(&self) -> Custody<'_> {
        Custody {
            on_behalf: self.on_behalf.as_ref(),
            agents: &self.chain,
        }
    }
}

/// A presentation whose token and proof were checked, awaiting the scope
/// decision ([`Verifier::authorize`]): what an axum layer hands to a handler
/// that knows the operation only after reading the body.
///
/// Everything that does not depend on the operation was checked: the
/// revocation view was current, the signatures and the chain, revocation,
/// expiry, audience, and the holder's proof (its DPoP `jti` is spent).
#[derive(Clone)]
pub struct Authenticated {
    pub(super) entry: Arc<Entry>,
    pub(super) holder_proven: bool,
}

/// Names the token by its id and chain, never its content.
impl fmt::Debug for Authenticated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticated")
            .field("token_id", &self.token_id())
            .field("on_behalf", &self.on_behalf())
            .field("chain", &self.chain())
            .field("holder_proven", &self.holder_proven)
            .finish()
    }
}

impl Authenticated {
    /// The agents in order, as in [`Grant::chain`].
    pub fn chain(&self) -> Vec<AgentId> {
        self.entry.verified.chain().agents()
    }

    /// The person and the earlier actors, as in [`Grant::on_behalf`].
    pub fn on_behalf(&self) -> Option<&OnBehalf> {
        self.entry.verified.chain().claims.on_behalf.as_ref()
    }

    /// The token id.
    pub fn token_id(&self) -> &str {
        &self.entry.verified.chain().claims.token_id
    }

    /// Whether the final holder proved possession of its key (DPoP).
    pub fn holder_proven(&self) -> bool {
        self.holder_proven
    }

    /// Whether the authority block grants `action` on some resource. The
    /// issuer's grant is the ceiling: `false` means every call for `action`
    /// is refused, whatever the resource, so a tool server may answer 403
    /// `insufficient_scope` and name the scope a new token needs (step-up,
    /// RFC 6750 §3.1). `true` does not mean a call is allowed: the resource,
    /// later blocks and an amount cap still decide, in
    /// [`Verifier::authorize`](super::Verifier::authorize).
    pub fn grants_action(&self, action: &str) -> bool {
        self.entry
            .verified
            .chain()
            .claims
            .rights
            .iter()
            .any(|(granted, _)| granted == action)
    }

    /// The actions the authority block grants, each once, in the order of
    /// its rights (see [`Authenticated::grants_action`]).
    pub fn granted_actions(&self) -> Vec<&str> {
        let mut actions: Vec<&str> = Vec::new();
        for (action, _) in &self.entry.verified.chain().claims.rights {
            if !actions.contains(&action.as_str()) {
                actions.push(action);
            }
        }
        actions
    }
}
