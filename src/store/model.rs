//! Records kept by the stores.
//!
//! Agent records and ledger entries hold the domain types (agent id, key,
//! actions, resource patterns, audiences), parsed once: by the server on
//! the way in, and by serde when a store reads a record back, so a stored
//! record that no longer parses is a [`StoreError::Decode`](super::StoreError)
//! and never reaches a handler. Their JSON is the text each type is written
//! as, the same as when these fields were plain strings. Token ids and
//! revocation ids stay strings. The records the verifier shares with the
//! issuer (revocations, audit events, cursors) live in [`crate::records`].

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::token::{Action, AgentId, AgentKey, Audience, ResourcePattern};

pub use crate::records::{AuditEvent, AuditKind, AuditQuery, Cursor, Revocation};

/// The most an agent may ever be granted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ceiling {
    /// Actions the agent may ask for.
    pub actions: Vec<Action>,
    /// Resource patterns; a trailing `*` matches any suffix.
    pub resources: Vec<ResourcePattern>,
    /// Audiences (tool servers) tokens may name; none: any or none.
    pub audiences: Vec<Audience>,
    /// Longest token lifetime, a whole number of seconds (`max_ttl_secs`
    /// in JSON).
    #[serde(rename = "max_ttl_secs", with = "whole_secs")]
    pub max_ttl: Duration,
}

/// A duration written as a whole number of seconds.
mod whole_secs {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}

/// A registered agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRecord {
    /// The agent URI.
    pub id: AgentId,
    /// The agent's public key, `ed25519/<hex>`.
    pub public_key: AgentKey,
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
    /// Where Tessera POSTs `{"auth_req_id": …}` once a person decided
    /// (OpenID CIBA ping mode), if the agent uses it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification_endpoint: Option<String>,
    /// Where `/oauth/authorize` may send the agent's authorization codes
    /// (compared exactly); none: the agent does not use that endpoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redirect_uris: Vec<String>,
}

/// A token the issuer minted, kept so that an operator can revoke it by
/// token id or revoke everything an agent holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedToken {
    /// The token id the issuer assigned.
    pub token_id: String,
    /// The agent the token was issued to.
    pub agent: AgentId,
    /// Hex of the authority block's signature.
    pub revocation_id: String,
    /// When the token expires.
    pub expires_at: DateTime<Utc>,
    /// When the token was minted.
    pub issued_at: DateTime<Utc>,
}
