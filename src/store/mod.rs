//! Storage for the issuer: one trait per capability, two implementations.
//!
//! - [`AgentStore`]: the agent registry.
//! - [`TokenLedger`]: tokens issued, to revoke by token id or by agent.
//! - [`RevocationStore`]: revoked ids and the ordered feed verifiers follow.
//! - [`ReplayCache`]: one-time keys (`jti` of client assertions and DPoP proofs).
//! - [`AuditLog`]: what the issuer did and refused.
//! - [`PeopleStore`]: roles given to people explicitly, and their standing
//!   consents for agents.
//! - [`ApprovalStore`]: requests for a person's approval (CIBA).
//! - [`Issuance`]: the writes of one mint (its one-time keys, its ledger
//!   entry, its audit event) as one store operation.
//!
//! [`RedbStore`] keeps everything in one `redb` file under the data
//! directory; [`RedisStore`] keeps it in Redis so that several issuers can
//! share it. [`Stores`] bundles the trait objects for the server's state.
//!
//! Stores never read the clock: `now` is an argument wherever expiry
//! matters. The one exception is Redis, whose keys expire by its own clock.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::people::RoleName;
use crate::token::{AgentId, Person};

pub mod approvals;
pub mod authcode;
pub mod budget;
mod embedded;
mod error;
pub mod files;
mod model;
mod redis;
pub mod tree;

pub use approvals::{
    Approval, ApprovalStatus, ApprovalStore, AskedCapability, Decided, Decider, Polled, Verdict,
};
pub use authcode::AuthCodeStore;
pub use budget::{
    BudgetLedger, BudgetState, Charge, Reservation, ReserveRequest, Reserved, Settled,
};
pub use embedded::RedbStore;
pub use error::StoreError;
pub use model::{
    AgentRecord, AuditEvent, AuditKind, AuditQuery, Ceiling, Cursor, IssuedToken, Revocation,
};
pub use redis::{RedisConfig, RedisStore};
pub use tree::AuditTree;

/// The agent registry.
#[async_trait]
pub trait AgentStore: Send + Sync {
    /// Creates the agent or replaces the record with the same id.
    async fn put(&self, agent: &AgentRecord) -> Result<(), StoreError>;
    /// The agent with this id, if registered.
    async fn get(&self, id: &str) -> Result<Option<AgentRecord>, StoreError>;
    /// Every registered agent (disabled ones too), ordered by id.
    async fn list(&self) -> Result<Vec<AgentRecord>, StoreError>;
    /// At most `limit` agents (disabled ones too) with ids after `after`
    /// (from the first if `None`), ordered by id: the bounded listing.
    async fn list_page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AgentRecord>, StoreError>;
    /// Replaces an existing agent's record but keeps its `disabled` flag and
    /// `created_at` as stored, in one atomic step: an edit made from a record
    /// read before a disable never undoes it. Returns the record as stored,
    /// or `None` if no agent has this id.
    async fn update(&self, agent: &AgentRecord) -> Result<Option<AgentRecord>, StoreError>;
    /// Marks the agent disabled as of `now`. Returns `false` if no agent has
    /// this id.
    async fn disable(&self, id: &str, now: DateTime<Utc>) -> Result<bool, StoreError>;
}

/// Tokens the issuer minted.
#[async_trait]
pub trait TokenLedger: Send + Sync {
    /// Records a minted token.
    async fn record(&self, token: &IssuedToken) -> Result<(), StoreError>;
    /// The token with this id. An expired token may still be returned until
    /// it is dropped; check `expires_at`.
    async fn get(&self, token_id: &str) -> Result<Option<IssuedToken>, StoreError>;
    /// The agent's tokens that have not expired at `now`, oldest first.
    /// Expired entries may be dropped as a side effect.
    async fn outstanding(
        &self,
        agent: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<IssuedToken>, StoreError>;
}

/// Revoked ids and the feed of revocations, in order.
#[async_trait]
pub trait RevocationStore: Send + Sync {
    /// Records the revocation and returns its feed position, only once the
    /// write is durable (embedded) or acknowledged (Redis).
    ///
    /// Revoking an id that is already revoked changes nothing and returns
    /// the cursor of the first revocation.
    async fn revoke(&self, revocation: &Revocation) -> Result<Cursor, StoreError>;
    /// Whether this revocation id has been revoked. Once the token would
    /// have expired the id may be forgotten (Redis drops the key then).
    async fn is_revoked(&self, revocation_id: &str) -> Result<bool, StoreError>;
    /// Up to `limit` feed entries after `after` (from the start if `None`),
    /// oldest first.
    async fn feed(
        &self,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<Vec<(Cursor, Revocation)>, StoreError>;
    /// Like [`feed`](Self::feed), but when there is nothing after `after`,
    /// waits up to `timeout` for an entry and returns as soon as one exists.
    /// Returns an empty list when the timeout passes first.
    async fn wait(
        &self,
        after: Option<&Cursor>,
        limit: usize,
        timeout: Duration,
    ) -> Result<Vec<(Cursor, Revocation)>, StoreError>;
}

/// Keys accepted once (`jti` of client assertions and DPoP proofs), shared
/// by every issuer instance on one store.
///
/// The crate has one other replay cache, [`crate::replay::ReplayGuard`]
/// (with [`crate::replay::MemoryReplayGuard`]): synchronous, in one process,
/// bounded in total and per owner. It is the verifier's DPoP cache, and the
/// issuer's stand-in for this trait while the store is unreachable
/// (`store_outage = "local"`). Both exist because their jobs differ: this
/// one is asynchronous and shared (Redis, the embedded store) and its
/// errors are the store's; the other answers in memory, now. Both name a
/// DPoP proof with [`crate::replay::dpop_replay_key`].
#[async_trait]
pub trait ReplayCache: Send + Sync {
    /// Returns `true` if `key` was not seen (or its earlier use has expired)
    /// and remembers it until `expires_at`; `false` if it is a replay.
    /// Concurrent calls with one key: exactly one gets `true`.
    ///
    /// A key whose `expires_at` is not after `now` is never accepted.
    async fn insert_once(
        &self,
        key: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
}

/// The audit log.
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// Appends an event and returns its position.
    async fn append(&self, event: &AuditEvent) -> Result<Cursor, StoreError>;
    /// The first `query.limit` events after `query.after` (from the oldest
    /// kept event if `None`) that pass the filters, oldest first. The last
    /// cursor returned resumes the query.
    async fn query(&self, query: &AuditQuery) -> Result<Vec<(Cursor, AuditEvent)>, StoreError>;
}

/// How much of the audit log the embedded store keeps, like the capped
/// stream of the Redis store ([`RedisConfig::audit_max_len`]).
///
/// Applied on every append, in the same transaction: beyond `max_events`
/// the oldest events are dropped, and so are events older than `max_age`
/// (measured from the appended event's time; at most a few dozen per
/// append, so one write never does unbounded work). The appended event is
/// never dropped, so sequence numbers (cursors) keep growing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuditRetention {
    /// Most events kept.
    pub max_events: u64,
    /// Events older than this are dropped; `None`: kept until `max_events`
    /// pushes them out.
    pub max_age: Option<Duration>,
}

impl Default for AuditRetention {
    /// 1,000,000 events (as Redis's default `audit_max_len`), no age bound.
    fn default() -> Self {
        Self {
            max_events: 1_000_000,
            max_age: None,
        }
    }
}

/// What a one-time key of a mint stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OnceKind {
    /// The `jti` of the client's `private_key_jwt` assertion.
    ClientAssertion,
    /// The `jti` of the request's DPoP proof.
    DpopProof,
    /// The `jti` of an identity assertion (ID-JAG), with its issuer.
    IdJag,
}

/// A key to accept once (see [`ReplayCache::insert_once`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OnceKey {
    /// What the key stands for, reported back in [`Issue::Replayed`].
    pub kind: OnceKind,
    /// The key, for example `assertion:<hex>`.
    pub key: String,
    /// Until when it is remembered.
    pub expires_at: DateTime<Utc>,
}

/// What [`Issuance::record_issue`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Issue {
    /// Every key was fresh and is now taken; the token is in the ledger and
    /// the event in the audit log, at this cursor.
    Recorded(Cursor),
    /// The first key of this kind that was already used (or already
    /// expired). The keys before it are taken now, as separate
    /// `insert_once` calls would have left them; nothing else was written.
    Replayed(OnceKind),
}

/// The writes of one mint, as one store operation.
///
/// The token endpoint calls this once per token, after minting and before
/// answering: the token is handed out only on [`Issue::Recorded`], that is
/// once its one-time keys are taken, its ledger entry is recorded and its
/// audit event appended, all durable (embedded) or acknowledged (Redis).
///
/// The default implementation is the separate calls, in that order;
/// a store overrides it to do the same work in one transaction (embedded:
/// one write transaction, one commit; Redis: one script). The overrides
/// are all or nothing; the default is not (an error after the keys are
/// taken leaves them taken), which only matters on failure, when no token
/// is handed out.
#[async_trait]
pub trait Issuance: ReplayCache + TokenLedger + AuditLog {
    /// Accepts each of `keys` once, in order, as
    /// [`insert_once`](ReplayCache::insert_once) does (concurrent calls with
    /// one key: exactly one takes it). If all were fresh, records `token` in
    /// the ledger and appends `event` to the audit log. Stops at the first
    /// key already used, writing nothing more.
    async fn record_issue(
        &self,
        keys: &[OnceKey],
        token: &IssuedToken,
        event: &AuditEvent,
        now: DateTime<Utc>,
    ) -> Result<Issue, StoreError> {
        for key in keys {
            if !ReplayCache::insert_once(self, &key.key, key.expires_at, now).await? {
                return Ok(Issue::Replayed(key.kind));
            }
        }
        let (recorded, appended) = tokio::join!(
            TokenLedger::record(self, token),
            AuditLog::append(self, event)
        );
        recorded?;
        Ok(Issue::Recorded(appended?))
    }
}

/// What a person holds explicitly, read in one call on the token
/// exchange's path.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Standing {
    /// Roles given to the person through the admin API or CLI (group
    /// mappings come from the configuration, not from here).
    pub roles: Vec<RoleName>,
    /// Whether the person has a standing consent for the agent asked about.
    pub consents: bool,
}

/// Most roles one person may be given explicitly; [`PeopleStore::grant_role`]
/// refuses one more with [`StoreError::Limit`].
pub const MAX_ROLES_PER_PERSON: usize = 64;
/// Most agents one person may have a standing consent for;
/// [`PeopleStore::consent`] refuses one more with [`StoreError::Limit`].
pub const MAX_CONSENTS_PER_PERSON: usize = 256;

/// Roles given to people explicitly, and people's standing consents for
/// agents to act for them. A person is the pair (IdP issuer, subject).
#[async_trait]
pub trait PeopleStore: Send + Sync {
    /// Gives `role` to `person`; false if they held it already.
    async fn grant_role(&self, person: &Person, role: &RoleName) -> Result<bool, StoreError>;
    /// Takes `role` from `person`; false if they did not hold it.
    async fn revoke_role(&self, person: &Person, role: &RoleName) -> Result<bool, StoreError>;
    /// The roles given to `person` explicitly, sorted.
    async fn roles(&self, person: &Person) -> Result<Vec<RoleName>, StoreError>;
    /// Records that `person` lets `agent` act for them; false if recorded already.
    async fn consent(&self, person: &Person, agent: &AgentId) -> Result<bool, StoreError>;
    /// Withdraws that consent; false if there was none.
    async fn withdraw_consent(&self, person: &Person, agent: &AgentId) -> Result<bool, StoreError>;
    /// The agents `person` has a standing consent for, sorted.
    async fn consents(&self, person: &Person) -> Result<Vec<AgentId>, StoreError>;
    /// The person's explicit roles and whether they consent to `agent`, in
    /// one read.
    async fn standing(&self, person: &Person, agent: &AgentId) -> Result<Standing, StoreError>;
}

/// Whether the backend answers.
#[async_trait]
pub trait StoreHealth: Send + Sync {
    /// Succeeds when the backend answers a trivial request.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// Every store the issuer uses, as trait objects for the server's state.
#[derive(Clone)]
pub struct Stores {
    /// The agent registry.
    pub agents: Arc<dyn AgentStore>,
    /// Tokens issued.
    pub tokens: Arc<dyn TokenLedger>,
    /// Revocations and their feed.
    pub revocations: Arc<dyn RevocationStore>,
    /// One-time keys.
    pub replay: Arc<dyn ReplayCache>,
    /// The audit log.
    pub audit: Arc<dyn AuditLog>,
    /// The writes of one mint together.
    pub issuance: Arc<dyn Issuance>,
    /// Roles and consents given to people.
    pub people: Arc<dyn PeopleStore>,
    /// Readiness of the backend.
    pub health: Arc<dyn StoreHealth>,
    /// Authorization codes, refresh families and remembered consents.
    pub authcodes: Arc<dyn AuthCodeStore>,
    /// Requests for a person's approval.
    pub approvals: Arc<dyn ApprovalStore>,
    /// The audit log's Merkle tree.
    pub tree: Arc<dyn AuditTree>,
    /// Cumulative budgets (the issuer's `/v1/budgets` API).
    pub budgets: Arc<dyn BudgetLedger>,
}

impl Stores {
    /// Opens (or creates) `tessera.redb` under `data_dir`, creating the
    /// directory if it is missing, with the default [`AuditRetention`].
    pub fn embedded(data_dir: &Path) -> Result<Self, StoreError> {
        Self::embedded_with(data_dir, AuditRetention::default())
    }

    /// Like [`embedded`](Self::embedded), keeping the audit log within `retention`.
    pub fn embedded_with(data_dir: &Path, retention: AuditRetention) -> Result<Self, StoreError> {
        Ok(Self::from_backend(Arc::new(RedbStore::open_with(
            data_dir, retention,
        )?)))
    }

    /// Connects to Redis at `url` with keys under `key_prefix` (for example
    /// `tessera:`) and the other settings at their defaults.
    pub async fn redis(url: &str, key_prefix: &str) -> Result<Self, StoreError> {
        let config = RedisConfig {
            key_prefix: key_prefix.to_owned(),
            ..RedisConfig::new(url)
        };
        Self::redis_with(config).await
    }

    /// Connects to Redis with explicit settings.
    pub async fn redis_with(config: RedisConfig) -> Result<Self, StoreError> {
        Ok(Self::from_backend(Arc::new(
            RedisStore::connect(config).await?,
        )))
    }

    /// Uses one backend for every capability.
    pub fn from_backend<B>(backend: Arc<B>) -> Self
    where
        B: AgentStore + TokenLedger + RevocationStore + Issuance + PeopleStore + StoreHealth,
        B: AuthCodeStore,
        B: ApprovalStore,
        B: AuditTree,
        B: BudgetLedger,
        B: 'static,
    {
        Self {
            agents: backend.clone(),
            tokens: backend.clone(),
            revocations: backend.clone(),
            replay: backend.clone(),
            audit: backend.clone(),
            issuance: backend.clone(),
            people: backend.clone(),
            authcodes: backend.clone(),
            approvals: backend.clone(),
            tree: backend.clone(),
            budgets: backend.clone(),
            health: backend,
        }
    }

    /// Succeeds when the backend answers (for `/readyz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.health.ping().await
    }
}
