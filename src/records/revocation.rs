//! The revocation feed's entries.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

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
