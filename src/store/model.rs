//! Plain records kept by the stores.
//!
//! Identifiers (agent URIs, keys, token ids) are strings here: the server
//! validates them with the domain types before it calls a store. The records
//! the verifier shares with the issuer (revocations, audit events, cursors)
//! live in [`crate::records`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use crate::records::{AuditEvent, AuditKind, AuditQuery, Cursor, Revocation};

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
