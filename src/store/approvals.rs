//! Requests for a person's approval (DESIGN.md, "Human approval, amounts
//! and budgets"): the record, its state machine, and the store trait.
//!
//! The state machine is pure ([`Approval::decide`], [`Approval::poll`]):
//! both backends read a record, apply one transition with `now` given, and
//! write it back only if nobody changed it in between (the embedded store
//! in one write transaction, Redis with a compare-and-set script). So a
//! request is decided once and its token collected once, whichever
//! backend and however many issuers share it.

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::token::{Action, AgentId, Amount, Audience, Person, ResourcePattern};

/// Most requests one agent may have pending at once; one more is refused
/// with [`StoreError::Limit`].
pub const MAX_PENDING_PER_AGENT: usize = 32;
/// Most requests pending for one person at once.
pub const MAX_PENDING_PER_PERSON: usize = 16;
/// How long a decided or expired request is kept after its expiry (for the
/// person's list of past approvals and for late polls), before it is
/// dropped.
pub const KEEP_AFTER_EXPIRY: TimeDelta = TimeDelta::hours(24);
/// Seconds added to the polling interval after each poll that came too
/// early (OpenID CIBA Core 1.0, section 11: `slow_down`).
pub const SLOW_DOWN_STEP_SECS: u32 = 5;
/// The polling interval never grows beyond this.
pub const MAX_INTERVAL_SECS: u32 = 60;
/// Most kept records [`ApprovalStore::list`] reads to answer (the most
/// recently expiring first), whatever the filter.
pub const MAX_LIST_SCAN: usize = 2000;

/// Where a request stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatus {
    /// Waiting for the person.
    Pending,
    /// The person approved; the token has not been collected yet.
    Approved,
    /// The person (or an operator, where allowed) denied.
    Denied,
    /// The token was minted and handed to the agent (once).
    Collected,
}

impl ApprovalStatus {
    /// The word used in records, audit events and the admin API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Collected => "collected",
        }
    }
}

/// What the person is asked to approve: exactly what the token will carry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AskedCapability {
    /// The one action.
    pub action: Action,
    /// The resource or resource prefix.
    pub resource: ResourcePattern,
    /// The tool server, if named.
    pub audience: Option<Audience>,
    /// The largest amount of one operation, if any.
    pub amount: Option<Amount>,
    /// The token's lifetime once minted, in seconds.
    pub ttl_secs: u64,
}

/// One request for a person's approval (an OpenID CIBA authentication
/// request).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// The `auth_req_id`: unguessable, also the approval id in the token.
    pub id: String,
    /// The agent that asked (and that alone may collect the token).
    pub agent: AgentId,
    /// Earlier actors, oldest first (empty when the agent acts directly).
    pub prior_actors: Vec<AgentId>,
    /// The person asked.
    pub person: Person,
    /// What is asked.
    pub capability: AskedCapability,
    /// Shown to the person (and on the agent's side), bounded and printable.
    pub binding_message: Option<String>,
    /// The agent's `client_notification_token` (ping mode), if any.
    pub notification_token: Option<String>,
    /// When it was asked.
    pub created_at: DateTime<Utc>,
    /// After this the request can no longer be decided or collected.
    pub expires_at: DateTime<Utc>,
    /// Least seconds between two polls; grows by
    /// [`SLOW_DOWN_STEP_SECS`] after each poll that came too early.
    pub interval_secs: u32,
    /// Where it stands.
    pub status: ApprovalStatus,
    /// Who decided: `person` or `operator:<name>`.
    pub decided_by: Option<String>,
    /// When it was decided.
    pub decided_at: Option<DateTime<Utc>>,
    /// The last poll of the token endpoint, for `slow_down`.
    pub last_poll: Option<DateTime<Utc>>,
}

/// Approve or deny.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Yes.
    Approve,
    /// No.
    Deny,
}

/// Who decides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decider {
    /// The person, logged in at their identity provider (the approval
    /// page); must be the person the request names.
    Person(Person),
    /// An operator, through the admin API (only where the policy allows).
    Operator(String),
}

impl Decider {
    fn label(&self) -> String {
        match self {
            Self::Person(_) => "person".to_owned(),
            Self::Operator(name) => format!("operator:{name}"),
        }
    }
}

/// What [`ApprovalStore::decide`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decided {
    /// The decision is recorded; the request as it now stands.
    Decided(Box<Approval>),
    /// No such request (or it was dropped long after its expiry).
    Unknown,
    /// The deciding person is not the person asked; nothing changed.
    NotYours,
    /// Decided earlier (or collected); nothing changed.
    AlreadyDecided(ApprovalStatus),
    /// Expired before the decision; nothing changed.
    Expired,
}

/// What a poll at the token endpoint finds ([`ApprovalStore::poll`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Polled {
    /// No such request, or another agent's: `invalid_grant`.
    Unknown,
    /// Polled sooner than the interval: `slow_down`; the interval is now
    /// this many seconds.
    SlowDown(u32),
    /// Still waiting: `authorization_pending`.
    Pending,
    /// Expired undecided (or approved and not collected in time):
    /// `expired_token`.
    Expired,
    /// Denied: `access_denied`.
    Denied,
    /// Collected earlier: `invalid_grant` (a token is handed out once).
    AlreadyCollected,
    /// Approved, and now marked collected: mint this, once.
    Collect(Box<Approval>),
}

impl Approval {
    /// Whether the request can no longer be decided or collected at `now`.
    pub fn expired(&self, now: DateTime<Utc>) -> bool {
        now >= self.expires_at
    }

    /// When the store may drop the record.
    pub fn drop_at(&self) -> DateTime<Utc> {
        self.expires_at + KEEP_AFTER_EXPIRY
    }

    /// Applies a decision: pending, not expired, and (for a person) the
    /// person asked. Returns the outcome and whether `self` changed.
    pub fn decide(&mut self, by: &Decider, verdict: Verdict, now: DateTime<Utc>) -> Decided {
        if let Decider::Person(p) = by {
            if *p != self.person {
                return Decided::NotYours;
            }
        }
        if self.status != ApprovalStatus::Pending {
            return Decided::AlreadyDecided(self.status);
        }
        if self.expired(now) {
            return Decided::Expired;
        }
        self.status = match verdict {
            Verdict::Approve => ApprovalStatus::Approved,
            Verdict::Deny => ApprovalStatus::Denied,
        };
        self.decided_by = Some(by.label());
        self.decided_at = Some(now);
        Decided::Decided(Box::new(self.clone()))
    }

    /// Applies a poll by `agent` at `now`. The second value says whether
    /// `self` changed (and must be written back).
    pub fn poll(&mut self, agent: &AgentId, now: DateTime<Utc>) -> (Polled, bool) {
        if self.agent != *agent {
            return (Polled::Unknown, false);
        }
        if self.status == ApprovalStatus::Collected {
            return (Polled::AlreadyCollected, false);
        }
        if self.status == ApprovalStatus::Denied {
            return (Polled::Denied, false);
        }
        if self.expired(now) {
            return (Polled::Expired, false);
        }
        let too_early = self
            .last_poll
            .is_some_and(|last| now < last + TimeDelta::seconds(i64::from(self.interval_secs)));
        self.last_poll = Some(now);
        if too_early {
            self.interval_secs = (self.interval_secs + SLOW_DOWN_STEP_SECS).min(MAX_INTERVAL_SECS);
            return (Polled::SlowDown(self.interval_secs), true);
        }
        match self.status {
            ApprovalStatus::Approved => {
                self.status = ApprovalStatus::Collected;
                (Polled::Collect(Box::new(self.clone())), true)
            }
            _ => (Polled::Pending, true),
        }
    }
}

/// Requests for a person's approval.
#[async_trait]
pub trait ApprovalStore: Send + Sync {
    /// Records a new pending request. Refused with [`StoreError::Limit`]
    /// when its agent already has [`MAX_PENDING_PER_AGENT`] or its person
    /// [`MAX_PENDING_PER_PERSON`] requests pending and unexpired at `now`.
    async fn create(&self, approval: &Approval, now: DateTime<Utc>) -> Result<(), StoreError>;
    /// The request with this id, if kept.
    async fn get(&self, id: &str) -> Result<Option<Approval>, StoreError>;
    /// Decides the request once (see [`Approval::decide`]). Concurrent
    /// calls: exactly one gets [`Decided::Decided`].
    async fn decide(
        &self,
        id: &str,
        by: &Decider,
        verdict: Verdict,
        now: DateTime<Utc>,
    ) -> Result<Decided, StoreError>;
    /// A poll by `agent` (see [`Approval::poll`]). Concurrent polls of an
    /// approved request: exactly one gets [`Polled::Collect`].
    async fn poll(
        &self,
        id: &str,
        agent: &AgentId,
        now: DateTime<Utc>,
    ) -> Result<Polled, StoreError>;
    /// The person's kept requests, newest first, at most `limit`.
    async fn for_person(&self, person: &Person, limit: usize) -> Result<Vec<Approval>, StoreError>;
    /// Every person's kept requests (for operators), newest first, at most
    /// `limit`, only those with `status` when given. Reads at most
    /// [`MAX_LIST_SCAN`] records, the latest to expire first.
    async fn list(
        &self,
        status: Option<ApprovalStatus>,
        limit: usize,
    ) -> Result<Vec<Approval>, StoreError>;
}

/// Keeps the records with `status` (if given), newest first, at most
/// `limit`: the last step of every [`ApprovalStore::list`].
pub(crate) fn select(
    mut found: Vec<Approval>,
    status: Option<ApprovalStatus>,
    limit: usize,
) -> Vec<Approval> {
    found.retain(|a| status.is_none_or(|s| a.status == s));
    found.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
    found.truncate(limit);
    found
}
