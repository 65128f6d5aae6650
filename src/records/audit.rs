//! The audit log's events.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Cursor;

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
