//! Plain records kept by the stores.
//!
//! Identifiers (agent URIs, keys, token ids) are strings here: the server
//! validates them with the domain types before it calls a store.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A position in a store's revocation feed or audit log.
///
/// Opaque to callers: hand back a cursor you were given to resume after it.
/// Every store writes its cursors as fixed-width decimal text, so within one
/// store a later entry always has a cursor that compares greater (the
/// derived `Ord` is that store's order). Cursors of different stores must
/// not be mixed.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Cursor(String);

impl Cursor {
    /// Wraps text received from a client (for example `?after=`).
    ///
    /// The text is checked by the store that reads it; a malformed cursor
    /// is reported there as [`StoreError::InvalidCursor`](super::StoreError::InvalidCursor).
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The cursor as text, for a response body or a query string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The most an agent may ever be granted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ceiling {
    /// Actions the agent may ask for.
    pub actions: Vec<String>,
    /// Resource patterns; a trailing `*` matches any suffix.
    pub resources: Vec<String>,
    /// Audiences (tool servers) tokens may name.
    pub audiences: Vec<String>,
    /// Longest token lifetime, in seconds.
    pub max_ttl_secs: u64,
}

/// A registered agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRecord {
    /// The agent URI.
    pub id: String,
    /// The agent's public key, `ed25519/<hex>`.
    pub public_key: String,
    /// Free text for operators.
    pub description: String,
    /// What the agent may be granted.
    pub ceiling: Ceiling,
    /// A disabled agent gets no tokens.
    pub disabled: bool,
    /// When the agent was first registered.
    pub created_at: DateTime<Utc>,
    /// When the record last changed.
    pub updated_at: DateTime<Utc>,
}

/// A token the issuer minted, kept so that an operator can revoke it by
/// token id or revoke everything an agent holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedToken {
    /// The token id the issuer assigned.
    pub token_id: String,
    /// The agent URI the token was issued to.
    pub agent: String,
    /// Hex of the authority block's signature.
    pub revocation_id: String,
    /// When the token expires.
    pub expires_at: DateTime<Utc>,
    /// When the token was minted.
    pub issued_at: DateTime<Utc>,
}

/// A revoked block, as written to the revocation feed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// Hex of the revoked block's signature.
    pub revocation_id: String,
    /// The token id, when the revocation was asked for by token.
    pub token_id: Option<String>,
    /// The agent URI, when known.
    pub agent: Option<String>,
    /// Why it was revoked (operator text or a fixed reason).
    pub reason: String,
    /// When the revocation was recorded.
    pub revoked_at: DateTime<Utc>,
    /// When the revoked token would have expired; after this the entry may
    /// be forgotten.
    pub expires_at: DateTime<Utc>,
}

/// What an audit event is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditKind {
    /// A token was minted.
    Mint,
    /// A token request was refused.
    Refusal,
    /// A token, branch or agent was revoked.
    Revocation,
    /// An operator changed the agent registry or other settings.
    Admin,
    /// An authorization decision was recorded.
    Decision,
}

/// One entry of the audit log. Never holds a token or a key: only ids.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// What kind of event it is.
    pub kind: AuditKind,
    /// The agent URI concerned, if any.
    pub agent: Option<String>,
    /// The token id concerned, if any.
    pub token_id: Option<String>,
    /// The capability asked for or granted, as text.
    pub capability: Option<String>,
    /// The outcome, for example `granted` or `refused`.
    pub outcome: String,
    /// Why, when refused or revoked.
    pub reason: Option<String>,
    /// The caller's address, if known.
    pub remote_addr: Option<String>,
    /// Who acted through whom: `[user?, agent, sub-agent, …]`.
    pub chain: Vec<String>,
}

/// Which audit events to return.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only events about this agent.
    pub agent: Option<String>,
    /// Only events about this token id.
    pub token_id: Option<String>,
    /// Only events after this cursor; from the oldest kept event if `None`.
    pub after: Option<Cursor>,
    /// At most this many events.
    pub limit: usize,
}

impl AuditQuery {
    /// Whether `event` passes the agent and token filters.
    pub fn matches(&self, event: &AuditEvent) -> bool {
        let agent_ok = match &self.agent {
            Some(agent) => event.agent.as_deref() == Some(agent.as_str()),
            None => true,
        };
        let token_ok = match &self.token_id {
            Some(token_id) => event.token_id.as_deref() == Some(token_id.as_str()),
            None => true,
        };
        agent_ok && token_ok
    }
}
