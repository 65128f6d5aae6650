//! Authorization: does this token allow this request, now?

use std::sync::LazyLock;
use std::time::Duration;

use biscuit_auth::builder::{self, Policy};
use biscuit_auth::error::{self, FailedCheck, Logic};
use biscuit_auth::{AuthorizerBuilder, AuthorizerLimits, Biscuit, PublicKey};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::amount::Amount;
use super::chain::{walk, Chain, ChainError, Custody};
use super::gate;
use super::keys::KeySet;
use super::reason::Reason;
use super::schema::date;
use super::types::{Action, AgentId, Audience, OnBehalf, Resource};
use super::wire::{check_predicates, scan, WireError};
use super::{decode, TokenError};

/// Size, block-count and Datalog limits. Sizes are checked before any
/// signature work; the Datalog limits bound each authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted token, in bytes after base64 decoding.
    pub max_token_bytes: usize,
    /// Most blocks, the authority block included.
    pub max_blocks: usize,
    /// Most Datalog facts generated.
    pub max_facts: u64,
    /// Most rule-application rounds.
    pub max_iterations: u64,
    /// Longest Datalog evaluation.
    pub max_time: Duration,
}

impl Default for Limits {
    /// 16 KiB, 16 blocks, 1,000 facts, 100 iterations, 100 ms. The block
    /// bound keeps the longest chain (15 delegations, 31 signatures) within
    /// 5 ms of CPU to verify (`docs/performance.md`, "Adversarial tokens");
    /// a real delegation chain is a handful of blocks. The time
    /// bound is a backstop behind the size, fact and iteration bounds (a
    /// Tessera token evaluates in tens of microseconds): biscuit-auth's own
    /// 1 ms default refuses valid tokens when a busy machine deschedules the
    /// evaluating thread.
    fn default() -> Self {
        Self {
            max_token_bytes: 16 * 1024,
            max_blocks: 16,
            max_facts: 1000,
            max_iterations: 100,
            max_time: Duration::from_millis(100),
        }
    }
}

impl Limits {
    fn run_limits(&self) -> AuthorizerLimits {
        AuthorizerLimits {
            max_facts: self.max_facts,
            max_iterations: self.max_iterations,
            max_time: self.max_time,
        }
    }
}

/// What a tool server asks about one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The action being performed.
    pub operation: Action,
    /// The resource it is performed on.
    pub resource: Resource,
    /// The verifier's own canonical URI (its audience). Without it, tokens
    /// that name an audience are refused.
    pub service: Option<Audience>,
    /// The current time.
    pub now: DateTime<Utc>,
    /// The key whose possession the caller proved (DPoP), if any.
    pub proven_key: Option<PublicKey>,
    /// The operation's amount, if it has one: the fact
    /// `amount(currency, minor units)` that a token's amount cap reads. A
    /// capped token refuses a request without one.
    pub amount: Option<Amount>,
}

/// The token core's answer for an allowed request: who acted, through
/// whom, and the token's revocation ids (what the issuer needs to audit or
/// revoke the token). A tool server's handlers get `verify::Grant` instead,
/// built by the verifier from this one: the same chain and expiry, plus
/// whether the holder proved its key, without revocation ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Authorized {
    /// The agents in order: the token's agent, then each sub-agent it was
    /// delegated to. The last one is acting.
    ///
    /// The first id is the issuer's: it signed the authority block. Each
    /// later id is only the delegator's claim: the holder who signed the
    /// delegation block chose the sub-agent's id, and nobody checked it
    /// against a registry. What is proven is the sub-agent's *key* (the
    /// final holder proved possession of it) and that the delegator's key
    /// signed the hand-over, so a sub-agent id is attributable to the
    /// delegator's key, not verified. Ids under `agent://tessera/` are
    /// refused there.
    pub chain: Vec<AgentId>,
    /// The person the token acts for and the earlier actors, from the
    /// authority block only (serialized as `person` and `prior_actors`, absent
    /// for a token that acts for nobody).
    #[serde(flatten)]
    pub on_behalf: Option<OnBehalf>,
    /// The token id.
    pub token_id: String,
    /// When the token stops being valid: the earliest expiry of the whole
    /// chain, the authority block's `expires_at` or an earlier one that a
    /// later block added (`check if time($t), $t <= D`). A cache keyed on
    /// this grant must not keep it past this time.
    pub expires_at: DateTime<Utc>,
    /// Revocation id of every block, hex, authority first.
    pub revocation_ids: Vec<String>,
    /// The actions the authority block grants, in its order: one, or the
    /// set of a token minted for several tools ([`crate::token::mint_actions`]).
    /// Serialized only when there are several, so a one-action token's
    /// output is unchanged.
    #[serde(skip_serializing_if = "at_most_one")]
    pub actions: Vec<String>,
    /// Every budget of the chain, each charged for every spend.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub budgets: Vec<super::budget::BudgetLine>,
}

/// Whether a list has at most one element (serde's skip test).
pub(crate) fn at_most_one(v: &[String]) -> bool {
    v.len() <= 1
}

impl Authorized {
    /// The agent the token was issued to.
    pub fn agent(&self) -> Option<&AgentId> {
        self.chain.first()
    }

    /// The agent presenting the token (the last holder).
    pub fn acting(&self) -> Option<&AgentId> {
        self.chain.last()
    }

    /// The whole chain: person -> earlier actors -> agent -> sub-agents.
    pub fn custody(&self) -> Custody<'_> {
        Custody {
            on_behalf: self.on_behalf.as_ref(),
            agents: &self.chain,
        }
    }
}

/// A refusal: the reason, and a one-line detail for logs and operators.
/// The verifier returns the same type, as `verify::Rejection`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct Denial {
    /// The typed reason.
    pub reason: Reason,
    /// What exactly failed (never the token itself).
    pub detail: String,
}

impl Denial {
    pub(crate) fn new(reason: Reason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}

impl From<WireError> for Denial {
    fn from(e: WireError) -> Self {
        match e {
            WireError::Malformed(_) => Denial::new(Reason::Malformed, e.to_string()),
            WireError::TooManyBlocks { .. } => Denial::new(Reason::TooLarge, e.to_string()),
        }
    }
}

impl From<ChainError> for Denial {
    fn from(e: ChainError) -> Self {
        let reason = match e {
            ChainError::Schema(_) => Reason::Malformed,
            _ => Reason::InvalidDelegation,
        };
        Denial::new(reason, e.to_string())
    }
}

impl From<TokenError> for Denial {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::TooLarge(d) => Denial::new(Reason::TooLarge, d),
            TokenError::Rejected(d) => d,
            other => Denial::new(Reason::Malformed, other.to_string()),
        }
    }
}

/// Maps a biscuit-auth error from parsing to a denial.
pub(crate) fn denial_from_biscuit(e: &error::Token) -> Denial {
    denial_with(e, |_, _| None)
}

/// Maps a biscuit-auth error to a denial; `explain(block, check)` gives the
/// predicate names of a failed block check, to name the reason.
fn denial_with(e: &error::Token, explain: impl Fn(u32, u32) -> Option<Vec<String>>) -> Denial {
    use error::Format as F;
    let reason = match e {
        error::Token::Format(
            F::Signature(_)
            | F::SealedSignature
            | F::InvalidSignatureSize(_)
            | F::SignatureDeserializationError(_)
            | F::BlockSignatureDeserializationError(_),
        ) => Reason::BadSignature,
        error::Token::Format(F::UnknownPublicKey) => Reason::UnknownKeyId,
        error::Token::RunLimit(_) => Reason::LimitsExceeded,
        error::Token::FailedLogic(
            Logic::Unauthorized { checks, .. } | Logic::NoMatchingPolicy { checks },
        ) => return classify(checks, explain),
        _ => Reason::Malformed,
    };
    Denial::new(reason, e.to_string())
}

/// The most telling reason among the failed checks.
///
/// The reason comes from the predicates the failed check reads (decoded from
/// the block, never from printed text, which a resource name could shape):
/// `time` means expired, `service` wrong audience, `holder_proven` holder not
/// proven, anything else out of scope.
fn classify(checks: &[FailedCheck], explain: impl Fn(u32, u32) -> Option<Vec<String>>) -> Denial {
    let mut best: Option<(u8, Reason, &str)> = None;
    for check in checks {
        let (rule, names) = match check {
            FailedCheck::Block(b) => (b.rule.as_str(), explain(b.block_id, b.check_id)),
            FailedCheck::Authorizer(a) => (a.rule.as_str(), None),
        };
        let has = |p: &str| names.as_ref().is_some_and(|n| n.iter().any(|x| x == p));
        let (rank, reason) = if has("time") {
            (4, Reason::Expired)
        } else if has("service") {
            (3, Reason::WrongAudience)
        } else if has("holder_proven") {
            (2, Reason::HolderNotProven)
        } else {
            (1, Reason::OutOfScope)
        };
        if best.is_none_or(|(r, _, _)| rank > r) {
            best = Some((rank, reason, rule));
        }
    }
    match best {
        Some((_, reason, rule)) => Denial::new(reason, format!("failed: {rule}")),
        None => Denial::new(Reason::OutOfScope, "no right matches the request"),
    }
}

/// The verifier's policy. The token's own checks (time, scope, audience,
/// holder) decide in Datalog; the authority block's right was already
/// matched against the request in Rust, from the decoded claims.
static POLICY: LazyLock<Result<Policy, error::Token>> =
    LazyLock::new(|| Policy::try_from("allow if true"));

/// Tokens carry whole seconds: a request a fraction of a second past the
/// expiry is past it, so the request time rounds up.
fn round_up(t: DateTime<Utc>) -> DateTime<Utc> {
    if t.timestamp_subsec_nanos() == 0 {
        t
    } else {
        DateTime::from_timestamp(t.timestamp().saturating_add(1), 0).unwrap_or(t)
    }
}

/// Decides whether `token` allows `req`.
///
/// In order, and refusing at the first failure: size and block count (before
/// parsing), root key id, signatures, the holder chain, the shape gate on
/// every block after the authority block, revocation of any block, proof of
/// possession, the authority block's right and the earliest expiry of the
/// chain (from the decoded blocks), then the token's own checks and the
/// verifier's policies in Datalog under `limits`.
pub fn authorize(
    token: &str,
    keys: &KeySet,
    req: &Request,
    is_revoked: impl Fn(&[u8]) -> bool,
    limits: &Limits,
) -> Result<Authorized, Denial> {
    let bytes = decode(token, limits)?;
    authorize_bytes(&bytes, keys, req, is_revoked, limits)
}

/// [`authorize`] on the decoded token bytes.
pub fn authorize_bytes(
    bytes: &[u8],
    keys: &KeySet,
    req: &Request,
    is_revoked: impl Fn(&[u8]) -> bool,
    limits: &Limits,
) -> Result<Authorized, Denial> {
    let verified = Verified::from_bytes(bytes, keys, limits)?;
    verified.check_revocation(is_revoked)?;
    verified.decide(req, limits)
}

/// A token whose size, root key, signatures, holder chain and block shapes
/// have been checked: everything about it that does not depend on the
/// request, the time or revocations. A verifier may keep one (keyed by a hash of the
/// token bytes) to skip signature work on the next presentation; every
/// decision still goes through [`Verified::check_revocation`] and
/// [`Verified::decide`].
#[derive(Debug, Clone)]
pub struct Verified {
    biscuit: Biscuit,
    payloads: Vec<Vec<u8>>,
    third_party: Vec<bool>,
    chain: Chain,
    root_key_id: u32,
    root_key: PublicKey,
    revocation_ids: Vec<Vec<u8>>,
    expires_at: DateTime<Utc>,
    budgets: Vec<super::budget::BudgetLine>,
}

impl Verified {
    /// Checks size and block count (before parsing), the root key id, every
    /// signature, the holder chain, and the shape of every block after the
    /// authority block (the gate of `gate.rs`: a block whose Datalog could
    /// cost more than its size is refused with
    /// [`Reason::LimitsExceeded`] here, before any Datalog runs).
    pub fn from_bytes(bytes: &[u8], keys: &KeySet, limits: &Limits) -> Result<Self, Denial> {
        if bytes.len() > limits.max_token_bytes {
            return Err(Denial::new(
                Reason::TooLarge,
                format!("token is larger than {} bytes", limits.max_token_bytes),
            ));
        }
        let layout = scan(bytes, limits.max_blocks)?;
        let (root_key_id, root_key) = match layout.root_key_id {
            Some(id) => match keys.get(id) {
                Some(key) => (id, *key),
                None => {
                    return Err(Denial::new(
                        Reason::UnknownKeyId,
                        format!("root key id {id} is not in the key set"),
                    ))
                }
            },
            None => {
                return Err(Denial::new(
                    Reason::UnknownKeyId,
                    "token names no root key id",
                ))
            }
        };
        let biscuit = Biscuit::from(bytes, keys).map_err(|e| denial_from_biscuit(&e))?;
        let external = biscuit.external_public_keys();
        let chain = walk(&layout.payloads, &external)?;
        let third_party: Vec<bool> = external.iter().map(Option::is_some).collect();
        let passed = gate::check_blocks(&layout.payloads, &third_party)
            .map_err(|r| Denial::new(Reason::LimitsExceeded, r.to_string()))?;
        let expires_at = passed
            .expires_at
            .map_or(chain.claims.expires_at, |e| e.min(chain.claims.expires_at));
        let revocation_ids = biscuit.revocation_identifiers();
        let budgets = super::budget::read_budgets(&layout.payloads, &third_party, &revocation_ids)
            .map_err(|e| Denial::new(Reason::Malformed, e))?;
        Ok(Self {
            budgets,
            third_party,
            expires_at,
            payloads: layout.payloads.iter().map(|p| p.to_vec()).collect(),
            revocation_ids,
            biscuit,
            chain,
            root_key_id,
            root_key,
        })
    }

    /// Bytes of the blocks after the authority block (what holders wrote).
    /// The gate bounds their Datalog cost by their size, so this bounds it
    /// too: the verifier evaluates a token with few such bytes in place.
    pub fn added_bytes(&self) -> usize {
        self.payloads.iter().skip(1).map(Vec::len).sum()
    }

    /// The claims and hand-overs.
    pub fn chain(&self) -> &Chain {
        &self.chain
    }

    /// The earliest expiry of the whole chain: the authority block's
    /// `expires_at`, or an earlier one a later block added with
    /// `check if time($t), $t <= D` (`$t < D` counts as one second before
    /// `D`). The token is refused at any time after it.
    pub fn expires_at(&self) -> DateTime<Utc> {
        self.expires_at
    }

    /// The root key id the token was verified with, and that key.
    pub fn root_key(&self) -> (u32, &PublicKey) {
        (self.root_key_id, &self.root_key)
    }

    /// Every budget the chain declares, in block order, with its ledger key.
    pub fn budgets(&self) -> &[super::budget::BudgetLine] {
        &self.budgets
    }

    /// Every block's revocation id, authority first.
    pub fn revocation_ids(&self) -> &[Vec<u8>] {
        &self.revocation_ids
    }

    /// Refuses the token if any block's revocation id is revoked.
    pub fn check_revocation(&self, is_revoked: impl Fn(&[u8]) -> bool) -> Result<(), Denial> {
        match self.revocation_ids.iter().position(|id| is_revoked(id)) {
            Some(i) => Err(Denial::new(
                Reason::Revoked,
                format!(
                    "block {i} is revoked ({})",
                    hex::encode(&self.revocation_ids[i])
                ),
            )),
            None => Ok(()),
        }
    }

    /// Whether `proven_key` is the final holder's key. `Ok(false)` for a
    /// bearer token; a denial for a bound token without the holder's proof.
    pub fn holder_proven(&self, proven_key: Option<&PublicKey>) -> Result<bool, Denial> {
        let ed25519 = |k: &PublicKey| {
            k.algorithm() == biscuit_auth::format::schema::public_key::Algorithm::Ed25519
        };
        let bytes = proven_key
            .filter(|k| ed25519(k))
            .and_then(|k| <[u8; 32]>::try_from(k.to_bytes().as_slice()).ok());
        match (proven_key, bytes, self.chain.holder()) {
            (Some(_), None, Some(holder)) => Err(Denial::new(
                Reason::HolderNotProven,
                format!("proof from a key that is not Ed25519, but the holder is {holder}"),
            )),
            _ => self.holder_proven_by(bytes.as_ref()),
        }
    }

    /// [`Self::holder_proven`] for a proven Ed25519 key given as its 32
    /// bytes (as a DPoP proof's JWK carries it).
    pub fn holder_proven_by(&self, proven_key: Option<&[u8; 32]>) -> Result<bool, Denial> {
        match self.chain.holder() {
            None => Ok(false),
            Some(holder) if proven_key.is_some_and(|k| holder.matches_bytes(k)) => Ok(true),
            Some(holder) => Err(Denial::new(
                Reason::HolderNotProven,
                match proven_key {
                    None => format!("no proof of possession for {holder}"),
                    Some(k) => format!(
                        "proof from ed25519/{}, but the holder is {holder}",
                        hex::encode(k)
                    ),
                },
            )),
        }
    }

    /// The decision for `req`: holder proof, then from the decoded blocks the
    /// earliest expiry and the authority block's right, then the token's own
    /// checks in Datalog under `limits`. Revocation is not looked at here: call
    /// [`Self::check_revocation`] first.
    pub fn decide(&self, req: &Request, limits: &Limits) -> Result<Authorized, Denial> {
        self.decide_with(req, &[], limits)
    }

    /// [`Self::decide`] with extra facts from the verifier (for example the
    /// HTTP method), built with the builder API, never from source text.
    pub fn decide_with(
        &self,
        req: &Request,
        extra: &[builder::Fact],
        limits: &Limits,
    ) -> Result<Authorized, Denial> {
        let holder_proven = self.holder_proven(req.proven_key.as_ref())?;
        self.decide_proven(req, holder_proven, extra, limits)
    }

    /// The decision, with the holder check already done by the caller
    /// (`holder_proven` must come from [`Self::holder_proven_by`]).
    pub(crate) fn decide_proven(
        &self,
        req: &Request,
        holder_proven: bool,
        extra: &[builder::Fact],
        limits: &Limits,
    ) -> Result<Authorized, Denial> {
        let chain = &self.chain;
        // Cheap checks first: an expired token is refused from its decoded
        // blocks, without building an authorizer.
        if round_up(req.now) > self.expires_at {
            return Err(Denial::new(
                Reason::Expired,
                format!("the token expired at {}", self.expires_at.to_rfc3339()),
            ));
        }
        // Defense in depth, and a cheap early refusal: the authority block
        // must grant this operation on this resource, whatever later blocks
        // say.
        let granted = chain.claims.rights.iter().any(|(action, pattern)| {
            action == req.operation.as_str() && pattern.matches(req.resource.as_str())
        });
        if !granted {
            return Err(Denial::new(
                Reason::OutOfScope,
                format!(
                    "the token grants no `{}` on this resource",
                    req.operation.as_str()
                ),
            ));
        }

        let internal = |e: error::Token| Denial::new(Reason::Malformed, e.to_string());
        let mut ab = AuthorizerBuilder::new()
            .fact(builder::fact("time", &[date(round_up(req.now))]))
            .and_then(|b| {
                b.fact(builder::fact(
                    "operation",
                    &[builder::string(req.operation.as_str())],
                ))
            })
            .and_then(|b| {
                b.fact(builder::fact(
                    "resource",
                    &[builder::string(req.resource.as_str())],
                ))
            })
            .map_err(internal)?;
        if let Some(service) = &req.service {
            ab = ab
                .fact(builder::fact(
                    "service",
                    &[builder::string(service.as_str())],
                ))
                .map_err(internal)?;
        }
        if holder_proven {
            ab = ab
                .fact(builder::fact("holder_proven", &[builder::boolean(true)]))
                .map_err(internal)?;
        }
        if let Some(amount) = &req.amount {
            ab = ab
                .fact(builder::fact(
                    "amount",
                    &[
                        builder::string(amount.currency()),
                        builder::int(amount.minor()),
                    ],
                ))
                .map_err(internal)?;
        }
        for fact in extra {
            ab = ab.fact(fact.clone()).map_err(internal)?;
        }
        let policy = POLICY.as_ref().map_err(|e| internal(e.clone()))?;
        ab = ab.policy(policy.clone()).map_err(internal)?;
        let mut authorizer = ab
            .set_limits(limits.run_limits())
            .build(&self.biscuit)
            .map_err(|e| denial_from_biscuit(&e))?;
        authorizer.authorize().map_err(|e| {
            denial_with(&e, |block, check| {
                let (b, c) = (usize::try_from(block).ok()?, usize::try_from(check).ok()?);
                let payloads: Vec<&[u8]> = self.payloads.iter().map(Vec::as_slice).collect();
                check_predicates(&payloads, &self.third_party, b, c).ok()
            })
        })?;

        Ok(Authorized {
            chain: chain.agents(),
            on_behalf: chain.claims.on_behalf.clone(),
            token_id: chain.claims.token_id.clone(),
            expires_at: self.expires_at,
            revocation_ids: self.revocation_ids.iter().map(hex::encode).collect(),
            actions: granted_actions(&chain.claims.rights),
            budgets: self.budgets.clone(),
        })
    }
}

/// The distinct actions of the authority block's rights, in order.
pub(crate) fn granted_actions(rights: &[(String, super::types::ResourcePattern)]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (a, _) in rights {
        if !out.contains(a) {
            out.push(a.clone());
        }
    }
    out
}
