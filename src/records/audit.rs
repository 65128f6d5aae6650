//! The audit log's events.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

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
    /// A request for a person's approval was made, decided or refused.
    Approval,
}

/// How an audited event ended. Stored and served as the text of
/// [`as_str`](Self::as_str): `granted`, `refused`, `summary`, `revoked`,
/// `denied`, `agent registered`, `agent disabled`, `agent updated`,
/// `key rotated`, `role granted`, `role revoked`, `consent recorded`,
/// `consent withdrawn`, `approval requested`, `approval approved`,
/// `approval denied`, `notification delivered`, `notification failed`,
/// `budget reserved`, `budget committed`, `budget released`.
///
/// A stored outcome this version does not know (written by a newer issuer
/// or verifier) is kept as [`Other`](Self::Other) with its text, and written
/// back unchanged: the log stays readable, and one unknown event never makes
/// a page of the audit log unreadable.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AuditOutcome {
    /// A token was minted (`granted`), or a verifier allowed a request.
    Granted,
    /// The token endpoint refused a request (`refused`).
    Refused,
    /// Refusals counted rather than stored one by one (`summary`).
    Summary,
    /// A token, branch or agent's tokens were revoked (`revoked`).
    Revoked,
    /// A verifier denied a request (`denied`).
    Denied,
    /// An operator registered or replaced an agent (`agent registered`).
    AgentRegistered,
    /// An operator disabled an agent (`agent disabled`).
    AgentDisabled,
    /// An operator changed an agent's description or ceiling (`agent updated`).
    AgentUpdated,
    /// An operator rotated the root key (`key rotated`).
    KeyRotated,
    /// An operator gave a person a role (`role granted`).
    RoleGranted,
    /// An operator took a role from a person (`role revoked`).
    RoleRevoked,
    /// A person's standing consent for an agent was recorded (`consent recorded`).
    ConsentRecorded,
    /// A person's standing consent for an agent was withdrawn (`consent withdrawn`).
    ConsentWithdrawn,
    /// An agent asked a person's approval (`approval requested`).
    ApprovalRequested,
    /// A request for approval was approved (`approval approved`).
    ApprovalApproved,
    /// A request for approval was denied (`approval denied`).
    ApprovalDenied,
    /// A notification (ping to the agent, webhook to the person) reached
    /// its receiver (`notification delivered`).
    NotificationDelivered,
    /// One attempt at a notification failed (`notification failed`).
    NotificationFailed,
    /// A spend was held on a token's budgets (`budget reserved`).
    BudgetReserved,
    /// A held spend was charged (`budget committed`).
    BudgetCommitted,
    /// A held spend was let go (`budget released`).
    BudgetReleased,
    /// Any other text, kept as it was stored. Never one of the texts above:
    /// [`From<&str>`](#impl-From<%26str>-for-AuditOutcome) and
    /// deserializing map those to their variant.
    Other(String),
}

impl AuditOutcome {
    /// The outcome as stored and served.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Granted => "granted",
            Self::Refused => "refused",
            Self::Summary => "summary",
            Self::Revoked => "revoked",
            Self::Denied => "denied",
            Self::AgentRegistered => "agent registered",
            Self::AgentDisabled => "agent disabled",
            Self::AgentUpdated => "agent updated",
            Self::KeyRotated => "key rotated",
            Self::RoleGranted => "role granted",
            Self::RoleRevoked => "role revoked",
            Self::ConsentRecorded => "consent recorded",
            Self::ConsentWithdrawn => "consent withdrawn",
            Self::ApprovalRequested => "approval requested",
            Self::ApprovalApproved => "approval approved",
            Self::ApprovalDenied => "approval denied",
            Self::NotificationDelivered => "notification delivered",
            Self::NotificationFailed => "notification failed",
            Self::BudgetReserved => "budget reserved",
            Self::BudgetCommitted => "budget committed",
            Self::BudgetReleased => "budget released",
            Self::Other(text) => text,
        }
    }
}

impl From<&str> for AuditOutcome {
    fn from(text: &str) -> Self {
        match text {
            "granted" => Self::Granted,
            "refused" => Self::Refused,
            "summary" => Self::Summary,
            "revoked" => Self::Revoked,
            "denied" => Self::Denied,
            "agent registered" => Self::AgentRegistered,
            "agent disabled" => Self::AgentDisabled,
            "agent updated" => Self::AgentUpdated,
            "key rotated" => Self::KeyRotated,
            "role granted" => Self::RoleGranted,
            "role revoked" => Self::RoleRevoked,
            "consent recorded" => Self::ConsentRecorded,
            "consent withdrawn" => Self::ConsentWithdrawn,
            "approval requested" => Self::ApprovalRequested,
            "approval approved" => Self::ApprovalApproved,
            "approval denied" => Self::ApprovalDenied,
            "notification delivered" => Self::NotificationDelivered,
            "notification failed" => Self::NotificationFailed,
            "budget reserved" => Self::BudgetReserved,
            "budget committed" => Self::BudgetCommitted,
            "budget released" => Self::BudgetReleased,
            other => Self::Other(other.to_owned()),
        }
    }
}

impl From<String> for AuditOutcome {
    fn from(text: String) -> Self {
        match Self::from(text.as_str()) {
            Self::Other(_) => Self::Other(text),
            known => known,
        }
    }
}

impl fmt::Display for AuditOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for AuditOutcome {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for AuditOutcome {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Serialize for AuditOutcome {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for AuditOutcome {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::from)
    }
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
    pub outcome: AuditOutcome,
    /// Why, when refused or revoked.
    pub reason: Option<String>,
    /// The caller's address, if known.
    pub remote_addr: Option<String>,
    /// Who acted through whom: `[user?, agent, sub-agent, …]`.
    pub chain: Vec<String>,
    /// The person the token acts (or was asked to act) for, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<crate::token::Person>,
    /// The amount of the operation, asked for or spent, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<crate::token::Amount>,
    /// The person's approval this event is about or rests on, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<String>,
    /// The revocation ids of the token's blocks, authority first, if known.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revocation_ids: Vec<String>,
    /// The tool server that made the decision, for events from verifiers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
}

/// Which audit events to return.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only events about this agent.
    pub agent: Option<String>,
    /// Only events about this token id.
    pub token_id: Option<String>,
    /// Only events about this person (acting for them, or an operator
    /// changing their roles or consents).
    pub person: Option<crate::token::Person>,
    /// Only events after this cursor; from the oldest kept event if `None`.
    pub after: Option<Cursor>,
    /// Only events with this agent anywhere in their chain (or as their agent).
    pub in_chain: Option<String>,
    /// Only events about the token with this revocation id or one of its
    /// descendants (an attenuated token lists its parent's ids first).
    pub revocation_id: Option<String>,
    /// Only events of this kind.
    pub kind: Option<AuditKind>,
    /// Only events with this outcome.
    pub outcome: Option<AuditOutcome>,
    /// Only events at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only events before this time.
    pub until: Option<DateTime<Utc>>,
    /// At most this many events.
    pub limit: usize,
}

impl AuditQuery {
    /// Whether `event` passes the agent, token and person filters.
    pub fn matches(&self, event: &AuditEvent) -> bool {
        let agent_ok = match &self.agent {
            Some(agent) => event.agent.as_deref() == Some(agent.as_str()),
            None => true,
        };
        let token_ok = match &self.token_id {
            Some(token_id) => event.token_id.as_deref() == Some(token_id.as_str()),
            None => true,
        };
        let person_ok = match &self.person {
            Some(person) => event.person.as_ref() == Some(person),
            None => true,
        };
        let chain_ok = match &self.in_chain {
            Some(agent) => {
                event.agent.as_deref() == Some(agent.as_str())
                    || event.chain.iter().any(|a| a == agent)
            }
            None => true,
        };
        let revocation_ok = match &self.revocation_id {
            Some(id) => event.revocation_ids.iter().any(|r| r == id),
            None => true,
        };
        let kind_ok = self.kind.is_none_or(|k| k == event.kind);
        let outcome_ok = self.outcome.as_ref().is_none_or(|o| *o == event.outcome);
        let since_ok = self.since.is_none_or(|t| event.at >= t);
        let until_ok = self.until.is_none_or(|t| event.at < t);
        agent_ok
            && token_ok
            && person_ok
            && chain_ok
            && revocation_ok
            && kind_ok
            && outcome_ok
            && since_ok
            && until_ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: [(AuditOutcome, &str); 13] = [
        (AuditOutcome::Granted, "granted"),
        (AuditOutcome::Refused, "refused"),
        (AuditOutcome::Summary, "summary"),
        (AuditOutcome::Revoked, "revoked"),
        (AuditOutcome::Denied, "denied"),
        (AuditOutcome::AgentRegistered, "agent registered"),
        (AuditOutcome::AgentDisabled, "agent disabled"),
        (AuditOutcome::AgentUpdated, "agent updated"),
        (AuditOutcome::KeyRotated, "key rotated"),
        (AuditOutcome::RoleGranted, "role granted"),
        (AuditOutcome::RoleRevoked, "role revoked"),
        (AuditOutcome::ConsentRecorded, "consent recorded"),
        (AuditOutcome::ConsentWithdrawn, "consent withdrawn"),
    ];

    #[test]
    fn queries_filter_by_chain_revocation_id_kind_outcome_and_time_window() {
        let at: DateTime<Utc> = "2026-01-02T03:04:05Z".parse().unwrap();
        let event = AuditEvent {
            at,
            kind: AuditKind::Mint,
            agent: Some("agent://sub".into()),
            token_id: Some("t".into()),
            capability: None,
            outcome: AuditOutcome::Granted,
            reason: None,
            remote_addr: None,
            chain: vec!["agent://top".into(), "agent://sub".into()],
            person: None,
            amount: None,
            approval_id: None,
            revocation_ids: vec!["parent".into(), "child".into()],
            service: None,
        };
        let q = |f: fn(&mut AuditQuery)| {
            let mut query = AuditQuery::default();
            f(&mut query);
            query.matches(&event)
        };
        assert!(q(|q| q.in_chain = Some("agent://top".into())));
        assert!(!q(|q| q.in_chain = Some("agent://other".into())));
        assert!(q(|q| q.revocation_id = Some("parent".into())));
        assert!(!q(|q| q.revocation_id = Some("other".into())));
        assert!(q(|q| q.kind = Some(AuditKind::Mint)));
        assert!(!q(|q| q.kind = Some(AuditKind::Refusal)));
        assert!(q(|q| q.outcome = Some(AuditOutcome::Granted)));
        assert!(!q(|q| q.outcome = Some(AuditOutcome::Denied)));
        assert!(q(
            |q| q.since = Some("2026-01-02T03:04:05Z".parse().unwrap())
        ));
        assert!(!q(
            |q| q.since = Some("2026-01-02T03:04:06Z".parse().unwrap())
        ));
        assert!(q(
            |q| q.until = Some("2026-01-02T03:04:06Z".parse().unwrap())
        ));
        assert!(!q(
            |q| q.until = Some("2026-01-02T03:04:05Z".parse().unwrap())
        ));
    }

    #[test]
    fn outcomes_are_stored_as_the_same_text_as_before() {
        for (outcome, text) in KNOWN {
            let json = serde_json::to_string(&outcome).unwrap();
            assert_eq!(json, format!("\"{text}\""));
            assert_eq!(
                serde_json::from_str::<AuditOutcome>(&json).unwrap(),
                outcome
            );
            assert_eq!(AuditOutcome::from(text), outcome);
            assert_eq!(outcome.to_string(), text);
        }
    }

    #[test]
    fn an_unknown_stored_outcome_stays_readable_and_is_written_back_unchanged() {
        let read: AuditOutcome = serde_json::from_str("\"quarantined\"").unwrap();
        assert_eq!(read, AuditOutcome::Other("quarantined".into()));
        assert_eq!(read, "quarantined");
        assert_eq!(serde_json::to_string(&read).unwrap(), "\"quarantined\"");
        // A known text never becomes `Other`, whichever way it comes in.
        assert_eq!(
            AuditOutcome::from("granted".to_owned()),
            AuditOutcome::Granted
        );
        // Not a string at all is a decode error.
        assert!(serde_json::from_str::<AuditOutcome>("1").is_err());
    }
}
