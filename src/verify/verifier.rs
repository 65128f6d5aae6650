//! [`Verifier`]: one call per request decides whether a presented token
//! allows an operation on a resource, offline, with public keys only.
//!
//! Order of a check, refusing at the first failure, each step once:
//! 1. revocations stale (503) unless the operator allowed stale operation;
//! 2. size of the presented token, before decoding;
//! 3. the token: root key id, signatures, holder chain (skipped when the
//!    same token bytes were verified before, see "Caches");
//! 4. revocation of any block, against the follower's view;
//! 5. for [`Verifier::authenticate`] (no operation yet): expiry and
//!    audience, read from the claims;
//! 6. the DPoP proof (RFC 9449) when one is presented: header, signature,
//!    `htm`, `htu`, `iat` within the skew, `ath`; then the holder: a bound
//!    token's final holder must be the proof's key;
//! 7. expiry, audience and scope: the token's own checks in Datalog with
//!    the request's facts, under explicit run limits (on tokio's blocking
//!    pool when the token has blocks after the authority block);
//! 8. only then, for an allowed request, the proof's `jti` is spent in the
//!    replay cache, counted against the holder's key (or, for a bearer
//!    token, against the token), so that refused requests take no room and
//!    one caller cannot crowd out the others.
//!
//! # Caches
//! Tokens whose signatures and chain verified are kept by SHA-256 of the
//! token text, with the root key they verified under (a key dropped from
//! the key set invalidates them). Decisions are remembered per token for the
//! exact question asked: operation, resource, whether the holder was proven,
//! and the whole second of the request time (the token's checks compare
//! whole seconds, so within one second the Datalog answer cannot change).
//! Revocation and staleness are looked at on every call, before any
//! remembered answer. Requests carrying extra facts are always evaluated.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use biscuit_auth::builder::{self, Fact};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::view::RevocationView;
use crate::jose::{self, DpopRules};
use crate::token::{
    self, Action, AgentId, Audience, Denial, DenyReason, InvalidInput, KeySet, Limits, Resource,
    Verified,
};

/// Where the root public keys come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// A fixed key set.
    Keys(KeySet),
    /// A JWKS document on disk, read again on an unknown `kid`.
    JwksFile(PathBuf),
    /// A JWKS document over HTTP(S) (for example the issuer's
    /// `/.well-known/jwks.json`), fetched again on an unknown `kid`.
    JwksUrl(String),
}

/// Where revocations come from. There is no default: a verifier that does
/// not follow revocations must say so with [`Revocations::Unchecked`].
#[derive(Debug, Clone)]
pub enum Revocations {
    /// A view kept current by a follower the caller runs.
    View(Arc<RevocationView>),
    /// Follow the issuer's Redis stream (the verifier runs a
    /// [`RedisFollower`](super::RedisFollower) with its defaults).
    Redis {
        /// `redis://…` of the issuer's Redis.
        url: String,
    },
    /// Follow the issuer's feed over HTTP (the verifier runs an
    /// [`HttpFollower`](super::HttpFollower)) with a read-only token from
    /// `tessera admin token --feed`.
    Issuer {
        /// The issuer's base URL.
        url: String,
        /// The feed token (sent as a bearer token to the issuer only). It
        /// expires: prefer [`Revocations::IssuerTokenFile`] for a server
        /// that runs longer than the token lives.
        feed_token: String,
    },
    /// Follow the issuer's feed over HTTP with a feed token kept in a file
    /// that a timer renews: the follower reads it again when it changes and
    /// before the current token expires (see
    /// [`HttpFollower`](super::HttpFollower)).
    IssuerTokenFile {
        /// The issuer's base URL.
        url: String,
        /// The file holding the feed token.
        feed_token_file: PathBuf,
    },
    /// Do not consult revocations (tests, offline tools). Revoked tokens
    /// are accepted until they expire.
    Unchecked,
}

/// A caller-supplied replay cache for DPoP `jti`s, for example one shared
/// by several instances of a tool server.
///
/// The verifier records a proof only once the request it came with is
/// otherwise allowed (for [`Verifier::authenticate`]: once everything that
/// does not depend on the operation passed), so that refused requests never
/// take room in the cache.
pub trait ReplayGuard: Send + Sync + fmt::Debug {
    /// Records `key` until `until`; `Some(true)` the first time,
    /// `Some(false)` for a replay, `None` when the cache cannot answer
    /// (full or unreachable), which the verifier treats as a refusal.
    fn insert_once(&self, key: [u8; 32], until: DateTime<Utc>, now: DateTime<Utc>) -> Option<bool>;

    /// [`Self::insert_once`] on behalf of `owner`: the JWK thumbprint of
    /// the holder key for a bound token, `token:<token id>` for a bearer
    /// token. A guard should bound how many entries one owner holds, so
    /// that one caller cannot crowd the others out; the default ignores the
    /// owner.
    fn insert_once_for(
        &self,
        owner: &str,
        key: [u8; 32],
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Option<bool> {
        let _ = owner;
        self.insert_once(key, until, now)
    }
}

/// The default [`ReplayGuard`]: in memory, bounded in total and per owner.
#[derive(Debug)]
pub struct MemoryReplayGuard {
    state: Mutex<ReplayState>,
    capacity: usize,
    per_owner: usize,
}

#[derive(Debug, Default)]
struct ReplayState {
    /// Proof key -> (remembered until, owner).
    seen: HashMap<[u8; 32], (i64, Option<[u8; 32]>)>,
    /// Unexpired-or-not-yet-purged entries per owner.
    per_owner: HashMap<[u8; 32], usize>,
    /// The second of the last purge: a full cache purges at most once a second.
    purged_at: Option<i64>,
}

impl ReplayState {
    fn owner_count(&self, owner: Option<&[u8; 32]>) -> usize {
        owner
            .and_then(|o| self.per_owner.get(o))
            .copied()
            .unwrap_or(0)
    }

    /// Drops expired entries and recounts the owners.
    fn purge(&mut self, now: i64) {
        self.purged_at = Some(now);
        self.seen.retain(|_, (until, _)| *until >= now);
        self.per_owner.clear();
        for (_, owner) in self.seen.values() {
            if let Some(o) = owner {
                let n = self.per_owner.entry(*o).or_insert(0);
                *n = n.saturating_add(1);
            }
        }
    }
}

impl MemoryReplayGuard {
    /// Holds at most `capacity` unexpired proofs, and at most a sixteenth of
    /// that for one owner (see [`Self::per_key`]).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            state: Mutex::new(ReplayState::default()),
            capacity,
            per_owner: (capacity / 16).max(1),
        }
    }

    /// Holds at most `n` unexpired proofs of one owner (one holder key, or
    /// one bearer token); past that, that owner's requests are refused as
    /// `overloaded` (503) until its proofs expire, and nobody else's are.
    pub fn per_key(mut self, n: usize) -> Self {
        self.per_owner = n.clamp(1, self.capacity);
        self
    }

    fn insert(
        &self,
        owner: Option<[u8; 32]>,
        key: [u8; 32],
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Option<bool> {
        let mut state = self.state.lock().ok()?;
        let now = now.timestamp();
        if let Some(&(exp, _)) = state.seen.get(&key) {
            if exp >= now {
                return Some(false);
            }
        }
        let full = |s: &ReplayState| {
            s.seen.len() >= self.capacity || s.owner_count(owner.as_ref()) >= self.per_owner
        };
        if full(&state) {
            if state.purged_at != Some(now) {
                state.purge(now);
            }
            if full(&state) {
                return None;
            }
        }
        if let Some((_, Some(previous))) = state.seen.insert(key, (until.timestamp(), owner)) {
            // An expired entry under the same key, replaced.
            if let Some(n) = state.per_owner.get_mut(&previous) {
                *n = n.saturating_sub(1);
            }
        }
        if let Some(o) = owner {
            let n = state.per_owner.entry(o).or_insert(0);
            *n = n.saturating_add(1);
        }
        Some(true)
    }
}

impl ReplayGuard for MemoryReplayGuard {
    fn insert_once(&self, key: [u8; 32], until: DateTime<Utc>, now: DateTime<Utc>) -> Option<bool> {
        self.insert(None, key, until, now)
    }

    fn insert_once_for(
        &self,
        owner: &str,
        key: [u8; 32],
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Option<bool> {
        self.insert(
            Some(Sha256::digest(owner.as_bytes()).into()),
            key,
            until,
            now,
        )
    }
}

/// Why a presentation was refused. Each reason maps to one HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Reason {
    /// No token was presented.
    MissingToken,
    /// Not base64, not a Biscuit, or not a Tessera token.
    Malformed,
    /// A signature does not verify.
    BadSignature,
    /// The token names a root key id that the key set does not hold, even
    /// after fetching the key set again.
    UnknownKeyId,
    /// Past its expiry.
    Expired,
    /// A block of the token is revoked.
    Revoked,
    /// The token is for another tool server.
    WrongAudience,
    /// The token does not allow this operation on this resource.
    OutOfScope,
    /// The token is bound and the final holder's key was not proven.
    HolderNotProven,
    /// A delegation block is not signed by the holder it claims.
    InvalidDelegation,
    /// Larger than the size or block limits.
    TooLarge,
    /// Datalog evaluation hit a run limit.
    LimitsExceeded,
    /// The DPoP proof is malformed, badly signed or does not match the
    /// request or the token.
    InvalidDpop,
    /// The DPoP proof was already used.
    ReplayedDpop,
    /// The revocation view is older than the staleness bound.
    Stale,
    /// The DPoP replay cache cannot take more proofs.
    Overloaded,
}

impl Reason {
    /// A stable snake_case code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MissingToken => "missing_token",
            Self::Malformed => "malformed",
            Self::BadSignature => "bad_signature",
            Self::UnknownKeyId => "unknown_key_id",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
            Self::WrongAudience => "wrong_audience",
            Self::OutOfScope => "out_of_scope",
            Self::HolderNotProven => "holder_not_proven",
            Self::InvalidDelegation => "invalid_delegation",
            Self::TooLarge => "too_large",
            Self::LimitsExceeded => "limits_exceeded",
            Self::InvalidDpop => "invalid_dpop",
            Self::ReplayedDpop => "replayed_dpop",
            Self::Stale => "stale",
            Self::Overloaded => "overloaded",
        }
    }

    /// The HTTP status: 403 for scope, 503 for stale revocations or a full
    /// replay cache, 401 otherwise.
    pub fn status(self) -> u16 {
        match self {
            Self::OutOfScope => 403,
            Self::Stale | Self::Overloaded => 503,
            _ => 401,
        }
    }

    /// The `error` code for `WWW-Authenticate` (RFC 6750 §3.1, RFC 9449
    /// §7.1); `None` when there is none to give (no token presented; 503).
    pub fn error_code(self) -> Option<&'static str> {
        match self {
            Self::MissingToken | Self::Stale | Self::Overloaded => None,
            Self::OutOfScope => Some("insufficient_scope"),
            Self::InvalidDpop | Self::ReplayedDpop => Some("invalid_dpop_proof"),
            _ => Some("invalid_token"),
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<DenyReason> for Reason {
    fn from(r: DenyReason) -> Self {
        match r {
            DenyReason::Malformed => Self::Malformed,
            DenyReason::BadSignature => Self::BadSignature,
            DenyReason::UnknownKeyId => Self::UnknownKeyId,
            DenyReason::Expired => Self::Expired,
            DenyReason::Revoked => Self::Revoked,
            DenyReason::WrongAudience => Self::WrongAudience,
            DenyReason::OutOfScope => Self::OutOfScope,
            DenyReason::HolderNotProven => Self::HolderNotProven,
            DenyReason::InvalidDelegation => Self::InvalidDelegation,
            DenyReason::TooLarge => Self::TooLarge,
            DenyReason::LimitsExceeded => Self::LimitsExceeded,
        }
    }
}

/// A refusal: the typed reason and a one-line detail (never the token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct Rejection {
    /// The typed reason.
    pub reason: Reason,
    /// What exactly failed, for logs and operators.
    pub detail: String,
}

impl Rejection {
    pub(crate) fn new(reason: Reason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}

impl From<Denial> for Rejection {
    fn from(d: Denial) -> Self {
        Self::new(d.reason.into(), d.detail)
    }
}

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
}

impl CheckRequest {
    /// Validates the operation and resource.
    pub fn new(operation: &str, resource: &str) -> Result<Self, InvalidInput> {
        Ok(Self {
            operation: Action::parse(operation)?,
            resource: Resource::parse(resource)?,
            facts: Vec::new(),
        })
    }

    /// Adds a fact `name(value, …)` of string terms (values are parameters,
    /// never source text).
    pub fn with_fact(mut self, name: &str, values: &[&str]) -> Self {
        let terms: Vec<_> = values.iter().map(|v| builder::string(v)).collect();
        self.facts.push(builder::fact(name, &terms));
        self
    }
}

/// An allowed call: who acted, through whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Grant {
    /// The agent the token was issued to.
    pub agent: AgentId,
    /// The person the agent acts for, when the token names one. Schema v1
    /// tokens name none (on-behalf-of tokens come with token exchange).
    pub on_behalf_of: Option<String>,
    /// The agents in order: the token's agent, then each sub-agent it was
    /// delegated to. The last one is acting.
    pub chain: Vec<AgentId>,
    /// The token id.
    pub token_id: String,
    /// When the token expires.
    pub expires_at: DateTime<Utc>,
    /// Whether the final holder proved possession of its key (DPoP).
    pub holder_proven: bool,
}

impl Grant {
    /// The agent presenting the token.
    pub fn acting(&self) -> &AgentId {
        self.chain.last().unwrap_or(&self.agent)
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
    entry: Arc<Entry>,
    holder_proven: bool,
}

/// Names the token by its id and chain, never its content.
impl fmt::Debug for Authenticated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticated")
            .field("token_id", &self.token_id())
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

    /// The token id.
    pub fn token_id(&self) -> &str {
        &self.entry.verified.chain().claims.token_id
    }

    /// Whether the final holder proved possession of its key (DPoP).
    pub fn holder_proven(&self) -> bool {
        self.holder_proven
    }
}

/// A checked DPoP proof whose `jti` is not spent yet.
#[derive(Debug)]
struct PendingProof {
    /// Hash of the key's thumbprint and the `jti`.
    replay_key: [u8; 32],
    /// Whose share of the replay cache it counts against.
    owner: String,
    /// Until when it must be remembered.
    until: DateTime<Utc>,
}

/// A presentation checked up to the scope decision, its proof not spent.
#[derive(Debug)]
struct Prepared {
    entry: Arc<Entry>,
    holder_proven: bool,
    proof: Option<PendingProof>,
}

/// A verified token and the decisions remembered for it.
#[derive(Debug)]
struct Entry {
    verified: Verified,
    memo: Mutex<Vec<(MemoKey, Result<token::Grant, Denial>)>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct MemoKey {
    operation: String,
    resource: String,
    holder_proven: bool,
    second: i64,
}

const MEMO_PER_TOKEN: usize = 8;

/// The earliest expiry of the whole chain, read from the decoded blocks
/// without Datalog (the authority's, or an earlier one an attenuation added).
fn expires_at(verified: &Verified) -> DateTime<Utc> {
    verified.expires_at()
}

/// The clock a verifier reads.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

#[allow(clippy::disallowed_methods)] // the verifier's edge: the one place it reads the wall clock
fn system_clock() -> DateTime<Utc> {
    Utc::now()
}

/// Why a verifier could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A required setting is missing.
    #[error("{0}")]
    Missing(&'static str),
    /// A setting is invalid.
    #[error("{0}")]
    Invalid(String),
    /// The key set could not be loaded.
    #[error("cannot load the key set: {0}")]
    Keys(String),
    /// The revocation follower could not start.
    #[error("cannot follow revocations: {0}")]
    Follow(#[from] super::FollowError),
}

/// Settings for a [`Verifier`]; see [`Verifier::builder`].
pub struct VerifierBuilder {
    service: String,
    keys: Option<KeySource>,
    revocations: Option<Revocations>,
    max_staleness: Duration,
    allow_stale: bool,
    skew: Duration,
    limits: Limits,
    refetch_interval: Duration,
    replay: Option<Arc<dyn ReplayGuard>>,
    cache_capacity: usize,
    clock: Clock,
    http: Option<reqwest::Client>,
    audit: Option<Arc<super::AuditSink>>,
}

impl fmt::Debug for VerifierBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifierBuilder")
            .field("service", &self.service)
            .field("keys", &self.keys)
            .field("max_staleness", &self.max_staleness)
            .field("allow_stale", &self.allow_stale)
            .finish_non_exhaustive()
    }
}

impl VerifierBuilder {
    /// The root public keys (required).
    pub fn keys(mut self, source: KeySource) -> Self {
        self.keys = Some(source);
        self
    }

    /// The revocation source (required; see [`Revocations::Unchecked`]).
    pub fn revocations(mut self, source: Revocations) -> Self {
        self.revocations = Some(source);
        self
    }

    /// Deny every check once the revocation view has not been confirmed
    /// current for longer than this (default 5 s).
    pub fn max_staleness(mut self, bound: Duration) -> Self {
        self.max_staleness = bound;
        self
    }

    /// Keep allowing requests when revocations are stale (logged once per
    /// check as a warning). Off by default: stale means 503.
    pub fn allow_stale(mut self, allow: bool) -> Self {
        self.allow_stale = allow;
        self
    }

    /// Accepted clock difference for DPoP `iat` (default 60 s); proofs are
    /// remembered for twice this long.
    pub fn clock_skew(mut self, skew: Duration) -> Self {
        self.skew = skew;
        self
    }

    /// Size, block-count and Datalog run limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// An unknown `kid` fetches the key set again at most once per this
    /// interval (default 30 s).
    pub fn refetch_interval(mut self, interval: Duration) -> Self {
        self.refetch_interval = interval;
        self
    }

    /// The DPoP replay cache (default: in memory, 1,000,000 proofs).
    pub fn replay_guard(mut self, guard: Arc<dyn ReplayGuard>) -> Self {
        self.replay = Some(guard);
        self
    }

    /// How many verified tokens to keep (default 10,000; 0 disables).
    pub fn cache_capacity(mut self, n: usize) -> Self {
        self.cache_capacity = n;
        self
    }

    /// The clock (default: the system clock).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Record every decision (allowed or refused, with the chain) in the
    /// issuer's audit stream, batched and off the request path.
    pub fn audit(mut self, sink: Arc<super::AuditSink>) -> Self {
        self.audit = Some(sink);
        self
    }

    /// The HTTP client used to fetch a JWKS URL.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// Loads the key set and returns the verifier.
    pub async fn build(self) -> Result<Verifier, BuildError> {
        let service = Audience::parse(&self.service)
            .map_err(|e| BuildError::Invalid(format!("service URI: {e}")))?;
        let source = self.keys.ok_or(BuildError::Missing(
            "no key source: give keys, a JWKS file or a JWKS URL",
        ))?;
        let revocations = self.revocations.ok_or(BuildError::Missing(
            "no revocation source: follow the issuer's feed, or say Revocations::Unchecked",
        ))?;
        let http = match self.http {
            Some(c) => c,
            None => reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .map_err(|e| BuildError::Invalid(format!("HTTP client: {e}")))?,
        };
        let keys = load_keys(&source, &http).await.map_err(BuildError::Keys)?;
        let (view, follower) = match revocations {
            Revocations::View(v) => (Some(v), None),
            Revocations::Redis { url } => {
                let view = RevocationView::new();
                let handle = super::RedisFollower::new(url).spawn(Arc::clone(&view))?;
                (Some(view), Some(handle))
            }
            Revocations::Issuer { url, feed_token } => {
                let view = RevocationView::new();
                let handle = super::HttpFollower::new(url, feed_token).spawn(Arc::clone(&view))?;
                (Some(view), Some(handle))
            }
            Revocations::IssuerTokenFile {
                url,
                feed_token_file,
            } => {
                let view = RevocationView::new();
                let handle = super::HttpFollower::with_credential_file(url, feed_token_file)
                    .spawn(Arc::clone(&view))?;
                (Some(view), Some(handle))
            }
            Revocations::Unchecked => (None, None),
        };
        Ok(Verifier {
            inner: Arc::new(Inner {
                service,
                keys: RwLock::new(Arc::new(keys)),
                source,
                last_fetch: Mutex::new(None),
                refetch_interval: self.refetch_interval,
                view,
                _follower: follower,
                max_staleness: self.max_staleness,
                allow_stale: self.allow_stale,
                skew: self.skew,
                limits: self.limits,
                replay: self
                    .replay
                    .unwrap_or_else(|| Arc::new(MemoryReplayGuard::new(1_000_000))),
                cache: RwLock::new(HashMap::new()),
                cache_capacity: self.cache_capacity,
                clock: self.clock,
                http,
                audit: self.audit,
            }),
        })
    }
}

/// Reads or fetches a JWKS document.
async fn load_keys(source: &KeySource, http: &reqwest::Client) -> Result<KeySet, String> {
    const MAX_JWKS: usize = 256 * 1024;
    match source {
        KeySource::Keys(k) => Ok(k.clone()),
        KeySource::JwksFile(path) => {
            let text = tokio::fs::read_to_string(path)
                .await
                .map_err(|e| format!("{}: {e}", path.display()))?;
            KeySet::from_jwks_json(&text).map_err(|e| format!("{}: {e}", path.display()))
        }
        KeySource::JwksUrl(url) => {
            let resp = http
                .get(url)
                .send()
                .await
                .map_err(|e| format!("{url}: {e}"))?;
            if !resp.status().is_success() {
                return Err(format!("{url}: HTTP {}", resp.status().as_u16()));
            }
            if resp.content_length().is_some_and(|n| n > MAX_JWKS as u64) {
                return Err(format!(
                    "{url}: the document is larger than {MAX_JWKS} bytes"
                ));
            }
            let body = resp.bytes().await.map_err(|e| format!("{url}: {e}"))?;
            if body.len() > MAX_JWKS {
                return Err(format!(
                    "{url}: the document is larger than {MAX_JWKS} bytes"
                ));
            }
            let text = std::str::from_utf8(&body).map_err(|_| format!("{url}: not UTF-8"))?;
            KeySet::from_jwks_json(text).map_err(|e| format!("{url}: {e}"))
        }
    }
}

struct Inner {
    service: Audience,
    keys: RwLock<Arc<KeySet>>,
    source: KeySource,
    last_fetch: Mutex<Option<Instant>>,
    refetch_interval: Duration,
    view: Option<Arc<RevocationView>>,
    /// The follower the verifier started, stopped when the last clone of
    /// the verifier is dropped.
    _follower: Option<super::FollowerHandle>,
    max_staleness: Duration,
    allow_stale: bool,
    skew: Duration,
    limits: Limits,
    replay: Arc<dyn ReplayGuard>,
    cache: RwLock<HashMap<[u8; 32], Arc<Entry>>>,
    cache_capacity: usize,
    clock: Clock,
    http: reqwest::Client,
    audit: Option<Arc<super::AuditSink>>,
}

/// Checks presented tokens; cheap to clone and share between tasks.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("service", &self.inner.service.as_str())
            .field("follows_revocations", &self.inner.view.is_some())
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// Starts the settings of a verifier for the tool server whose
    /// canonical URI (its audience) is `service`.
    pub fn builder(service: &str) -> VerifierBuilder {
        VerifierBuilder {
            service: service.to_owned(),
            keys: None,
            revocations: None,
            max_staleness: Duration::from_secs(5),
            allow_stale: false,
            skew: Duration::from_secs(60),
            limits: Limits::default(),
            refetch_interval: Duration::from_secs(30),
            replay: None,
            cache_capacity: 10_000,
            clock: Arc::new(system_clock),
            http: None,
            audit: None,
        }
    }

    /// This server's canonical URI.
    pub fn service(&self) -> &str {
        self.inner.service.as_str()
    }

    /// The revocation view this verifier reads, if it follows revocations.
    pub fn revocations(&self) -> Option<&Arc<RevocationView>> {
        self.inner.view.as_ref()
    }

    /// Waits until the revocation view has been confirmed current (the
    /// follower's first read), at most `timeout`; whether it was. A
    /// verifier that does not follow revocations is always ready.
    pub async fn ready(&self, timeout: Duration) -> bool {
        let Some(view) = &self.inner.view else {
            return true;
        };
        let deadline = Instant::now() + timeout;
        loop {
            if view
                .staleness()
                .is_some_and(|lag| lag <= self.inner.max_staleness)
            {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The limits in force (a layer checks header sizes against them).
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// The current time, from the verifier's clock.
    pub fn now(&self) -> DateTime<Utc> {
        (self.inner.clock)()
    }

    /// Decides whether `presentation` allows `request`, now.
    ///
    /// The DPoP proof's `jti` is spent only when the request is allowed.
    pub async fn check(
        &self,
        presentation: &Presentation<'_>,
        request: &CheckRequest,
    ) -> Result<Grant, Rejection> {
        let prepared = match self.prepare(presentation, false).await {
            Ok(p) => p,
            Err((rejection, entry)) => {
                self.record(entry.as_deref(), Some(request), Err(&rejection));
                return Err(rejection);
            }
        };
        let outcome = match self
            .decide(&prepared.entry, prepared.holder_proven, request)
            .await
        {
            Ok(grant) => self.spend(prepared.proof.as_ref()).map(|()| grant),
            Err(rejection) => Err(rejection),
        };
        self.record(Some(&prepared.entry), Some(request), outcome.as_ref());
        outcome
    }

    /// Sends the decision to the audit sink, if there is one. `request` is
    /// `None` for a refusal of [`Self::authenticate`] (no operation yet).
    fn record(
        &self,
        entry: Option<&Entry>,
        request: Option<&CheckRequest>,
        outcome: Result<&Grant, &Rejection>,
    ) {
        let Some(sink) = &self.inner.audit else {
            return;
        };
        let chain: Vec<String> = match (outcome, entry) {
            (Ok(g), _) => g.chain.iter().map(|a| a.as_str().to_owned()).collect(),
            (Err(_), Some(e)) => e
                .verified
                .chain()
                .agents()
                .iter()
                .map(|a| a.as_str().to_owned())
                .collect(),
            (Err(_), None) => Vec::new(),
        };
        sink.record(super::DecisionAudit {
            at: self.now(),
            agent: chain.last().cloned(),
            token_id: match (outcome, entry) {
                (Ok(g), _) => Some(g.token_id.clone()),
                (Err(_), Some(e)) => Some(e.verified.chain().claims.token_id.clone()),
                (Err(_), None) => None,
            },
            action: request
                .map(|r| r.operation.as_str().to_owned())
                .unwrap_or_default(),
            resource: request
                .map(|r| r.resource.as_str().to_owned())
                .unwrap_or_default(),
            granted: outcome.is_ok(),
            reason: outcome.err().map(|r| r.reason.as_str().to_owned()),
            chain,
            remote_addr: None,
        });
    }

    /// Everything but the scope decision: staleness, size, signatures and
    /// chain, revocation, expiry, audience, the DPoP proof and the holder's
    /// proof; then the proof's `jti` is spent. A refusal is recorded in the
    /// audit sink (without an operation).
    ///
    /// Expiry is the authority block's here; an earlier expiry added by an
    /// attenuation block, like every other check a block adds, is enforced
    /// by [`Self::authorize`].
    pub async fn authenticate(
        &self,
        presentation: &Presentation<'_>,
    ) -> Result<Authenticated, Rejection> {
        let prepared = match self.prepare(presentation, true).await {
            Ok(p) => p,
            Err((rejection, entry)) => {
                self.record(entry.as_deref(), None, Err(&rejection));
                return Err(rejection);
            }
        };
        match self.spend(prepared.proof.as_ref()) {
            Ok(()) => Ok(Authenticated {
                entry: prepared.entry,
                holder_proven: prepared.holder_proven,
            }),
            Err(rejection) => {
                self.record(Some(&prepared.entry), None, Err(&rejection));
                Err(rejection)
            }
        }
    }

    /// The scope decision for an authenticated presentation. Staleness and
    /// revocation are looked at again (the view may have moved since), and
    /// the token's own checks run in full (expiry included).
    pub async fn authorize(
        &self,
        authenticated: &Authenticated,
        request: &CheckRequest,
    ) -> Result<Grant, Rejection> {
        let outcome = match self
            .fresh()
            .and_then(|()| self.not_revoked(&authenticated.entry))
        {
            Ok(()) => {
                self.decide(&authenticated.entry, authenticated.holder_proven, request)
                    .await
            }
            Err(rejection) => Err(rejection),
        };
        self.record(Some(&authenticated.entry), Some(request), outcome.as_ref());
        outcome
    }

    /// The checks of a presentation up to the scope decision, in order:
    /// staleness, the token (size, signatures, chain), revocation, then
    /// when `deferred` the expiry and audience read from the claims, the
    /// DPoP proof and the holder. Nothing is spent.
    async fn prepare(
        &self,
        presentation: &Presentation<'_>,
        deferred: bool,
    ) -> Result<Prepared, (Rejection, Option<Arc<Entry>>)> {
        self.fresh().map_err(|r| (r, None))?;
        let token = presentation.token.trim();
        if token.is_empty() {
            return Err((
                Rejection::new(Reason::MissingToken, "no token presented"),
                None,
            ));
        }
        let entry = match self.entry(token) {
            Ok(e) => e,
            Err(d) if d.reason == DenyReason::UnknownKeyId && self.refetch().await => {
                self.entry(token).map_err(|d| (d.into(), None))?
            }
            Err(d) => return Err((d.into(), None)),
        };
        match self.check_presentation(&entry, presentation, token, deferred) {
            Ok((holder_proven, proof)) => Ok(Prepared {
                entry,
                holder_proven,
                proof,
            }),
            Err(rejection) => Err((rejection, Some(entry))),
        }
    }

    /// [`Self::prepare`] once the token is verified: revocation, what does
    /// not depend on the operation (when `deferred`), the DPoP proof and
    /// the holder. Whether the holder was proven, and the unspent proof.
    fn check_presentation(
        &self,
        entry: &Entry,
        presentation: &Presentation<'_>,
        token: &str,
        deferred: bool,
    ) -> Result<(bool, Option<PendingProof>), Rejection> {
        self.not_revoked(entry)?;
        let now = self.now();
        if deferred {
            self.independent_of_the_operation(&entry.verified, now)?;
        }
        let Some(proof) = presentation.dpop else {
            return Ok((entry.verified.holder_proven_by(None)?, None));
        };
        let window = i64::try_from(self.inner.skew.as_secs()).unwrap_or(i64::MAX);
        let proof = jose::verify_dpop(
            proof,
            &DpopRules {
                method: presentation.method,
                url: presentation.url,
                access_token: Some(token),
                now,
                window_secs: window,
            },
        )
        .map_err(|e| Rejection::new(Reason::InvalidDpop, e.to_string()))?;
        let key = proof.key.to_bytes();
        let holder_proven = entry.verified.holder_proven_by(Some(&key))?;
        let mut h = Sha256::new();
        h.update(proof.jkt.as_bytes());
        h.update([0]);
        h.update(proof.jti.as_bytes());
        let owner = if holder_proven {
            proof.jkt
        } else {
            // A bearer token: the proof's key is anyone's, the token is not.
            format!("token:{}", entry.verified.chain().claims.token_id)
        };
        // Fail closed: a proof whose window end is out of range is refused
        // (unreachable after `verify_dpop`'s window check).
        let until = proof
            .iat
            .checked_add(window)
            .and_then(|t| DateTime::from_timestamp(t, 0))
            .ok_or_else(|| Rejection::new(Reason::InvalidDpop, "iat out of range"))?;
        Ok((
            holder_proven,
            Some(PendingProof {
                replay_key: h.finalize().into(),
                owner,
                until,
            }),
        ))
    }

    /// What a deferred presentation must pass before any handler runs and
    /// that Datalog would otherwise only check with the operation: expiry
    /// and audience, read from the claims.
    fn independent_of_the_operation(
        &self,
        verified: &Verified,
        now: DateTime<Utc>,
    ) -> Result<(), Rejection> {
        let expires_at = expires_at(verified);
        if now > expires_at {
            return Err(Rejection::new(
                Reason::Expired,
                format!("the token expired at {}", expires_at.to_rfc3339()),
            ));
        }
        match &verified.chain().claims.audience {
            Some(audience) if audience != self.inner.service.as_str() => Err(Rejection::new(
                Reason::WrongAudience,
                format!(
                    "the token is for {audience:?}, this is {:?}",
                    self.inner.service.as_str()
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Spends a checked proof's `jti`.
    fn spend(&self, proof: Option<&PendingProof>) -> Result<(), Rejection> {
        let Some(proof) = proof else {
            return Ok(());
        };
        let now = self.now();
        match self
            .inner
            .replay
            .insert_once_for(&proof.owner, proof.replay_key, proof.until, now)
        {
            Some(true) => Ok(()),
            Some(false) => Err(Rejection::new(
                Reason::ReplayedDpop,
                "this DPoP proof (jti) was already used",
            )),
            None => Err(Rejection::new(
                Reason::Overloaded,
                "the DPoP replay cache is full",
            )),
        }
    }

    /// The scope decision: the token's own checks in Datalog, remembered
    /// per token for the exact question. Staleness, revocation and the
    /// holder's proof are the caller's.
    async fn decide(
        &self,
        entry: &Arc<Entry>,
        holder_proven: bool,
        request: &CheckRequest,
    ) -> Result<Grant, Rejection> {
        let now = self.now();
        let req = token::Request {
            operation: request.operation.clone(),
            resource: request.resource.clone(),
            service: Some(self.inner.service.clone()),
            now,
            proven_key: None,
        };
        let outcome = if request.facts.is_empty() {
            let key = MemoKey {
                operation: request.operation.as_str().to_owned(),
                resource: request.resource.as_str().to_owned(),
                holder_proven,
                second: now.timestamp() + i64::from(now.timestamp_subsec_nanos() > 0),
            };
            let remembered = entry.memo.lock().ok().and_then(|memo| {
                memo.iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, outcome)| outcome.clone())
            });
            match remembered {
                Some(outcome) => outcome,
                None => {
                    let outcome = self.evaluate(entry, req, holder_proven, Vec::new()).await;
                    if let Ok(mut memo) = entry.memo.lock() {
                        if memo.len() >= MEMO_PER_TOKEN {
                            let _evicted = memo.remove(0);
                        }
                        memo.push((key, outcome.clone()));
                    }
                    outcome
                }
            }
        } else {
            self.evaluate(entry, req, holder_proven, request.facts.clone())
                .await
        };
        let grant = outcome?;
        let agent = grant
            .chain
            .first()
            .cloned()
            .ok_or_else(|| Rejection::new(Reason::Malformed, "the token names no agent"))?;
        Ok(Grant {
            agent,
            on_behalf_of: None,
            chain: grant.chain,
            token_id: grant.token_id,
            expires_at: grant.expires_at,
            holder_proven,
        })
    }

    /// Runs the token's Datalog. A token with blocks after the authority
    /// block (whose checks someone other than the issuer wrote) is
    /// evaluated on tokio's blocking pool, off the runtime's worker threads;
    /// the authority block alone is the issuer's few checks, evaluated in
    /// place.
    async fn evaluate(
        &self,
        entry: &Arc<Entry>,
        req: token::Request,
        holder_proven: bool,
        facts: Vec<Fact>,
    ) -> Result<token::Grant, Denial> {
        let limits = &self.inner.limits;
        let in_place = entry.verified.revocation_ids().len() <= 1
            || tokio::runtime::Handle::try_current().is_err();
        if in_place {
            return entry
                .verified
                .decide_proven(&req, holder_proven, &facts, limits);
        }
        let (entry, limits) = (Arc::clone(entry), limits.clone());
        tokio::task::spawn_blocking(move || {
            entry
                .verified
                .decide_proven(&req, holder_proven, &facts, &limits)
        })
        .await
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "the token's evaluation did not complete");
            Err(Denial::new(
                DenyReason::LimitsExceeded,
                "the token's evaluation did not complete",
            ))
        })
    }

    fn fresh(&self) -> Result<(), Rejection> {
        let inner = &self.inner;
        let Some(view) = &inner.view else {
            return Ok(());
        };
        if inner.allow_stale {
            return Ok(());
        }
        match view.staleness() {
            Some(lag) if lag <= inner.max_staleness => Ok(()),
            Some(lag) => Err(Rejection::new(
                Reason::Stale,
                format!(
                    "revocations were last confirmed {} ms ago (bound {} ms)",
                    lag.as_millis(),
                    inner.max_staleness.as_millis()
                ),
            )),
            None => Err(Rejection::new(
                Reason::Stale,
                "revocations have not been loaded yet",
            )),
        }
    }

    fn not_revoked(&self, entry: &Entry) -> Result<(), Rejection> {
        match &self.inner.view {
            Some(view) => Ok(entry.verified.check_revocation(|id| view.contains(id))?),
            None => Ok(()),
        }
    }

    /// The verified token for `token`, from the cache or verified now.
    fn entry(&self, token: &str) -> Result<Arc<Entry>, Denial> {
        let inner = &self.inner;
        let keys = inner
            .keys
            .read()
            .map(|k| Arc::clone(&k))
            .map_err(|_| Denial::new(DenyReason::UnknownKeyId, "the key set is unavailable"))?;
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if inner.cache_capacity > 0 {
            let hit = inner.cache.read().ok().and_then(|c| c.get(&hash).cloned());
            if let Some(entry) = hit {
                let (id, key) = entry.verified.root_key();
                if keys.get(id) == Some(key) {
                    return Ok(entry);
                }
            }
        }
        let bytes = token::decode(token, &inner.limits).map_err(Denial::from)?;
        let verified = Verified::from_bytes(&bytes, &keys, &inner.limits)?;
        let entry = Arc::new(Entry {
            verified,
            memo: Mutex::new(Vec::new()),
        });
        if inner.cache_capacity > 0 {
            if let Ok(mut cache) = inner.cache.write() {
                if cache.len() >= inner.cache_capacity {
                    let now = self.now();
                    cache.retain(|_, e| e.verified.expires_at() >= now);
                    while cache.len() >= inner.cache_capacity {
                        let Some(k) = cache.keys().next().copied() else {
                            break;
                        };
                        cache.remove(&k);
                    }
                }
                cache.insert(hash, Arc::clone(&entry));
            }
        }
        Ok(entry)
    }

    /// Fetches the key set again, at most once per interval; whether it
    /// changed.
    async fn refetch(&self) -> bool {
        let inner = &self.inner;
        if matches!(inner.source, KeySource::Keys(_)) {
            return false;
        }
        {
            let Ok(mut last) = inner.last_fetch.lock() else {
                return false;
            };
            if last.is_some_and(|t| t.elapsed() < inner.refetch_interval) {
                return false;
            }
            *last = Some(Instant::now());
        }
        match load_keys(&inner.source, &inner.http).await {
            Ok(keys) => match inner.keys.write() {
                Ok(mut slot) => {
                    let changed = **slot != keys;
                    *slot = Arc::new(keys);
                    changed
                }
                Err(_) => false,
            },
            Err(e) => {
                tracing::warn!(error = %e, "key set refetch failed; keeping the cached keys");
                false
            }
        }
    }
}
