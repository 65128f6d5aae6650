//! The token core: pure functions over Biscuit tokens.
//!
//! Keys, the current time and the request come in as arguments; nothing here
//! reads the clock, touches the network or the file system. The only ambient
//! input is randomness (token ids and ephemeral block keys), and every
//! operation has a `*_with_rng` form that takes it as an argument too.

mod amount;
mod attenuate;
mod authorize;
mod budget;
mod chain;
mod gate;
mod inspect;
mod keys;
mod mint;
mod reason;
mod schema;
mod types;
pub mod wire;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine as _};

pub use amount::{minor_digits, Amount, AmountError};
pub use attenuate::{attenuate, attenuate_with_rng, delegate, delegate_with_rng};
pub use authorize::{authorize, authorize_bytes, Authorized, Denial, Limits, Request, Verified};
pub use budget::{
    budget_key, read_budgets, Budget, BudgetError, BudgetId, BudgetLine, MAX_BUDGET_ID_LEN,
};
pub use chain::{ApprovedBy, Chain, ChainError, Claims, Custody, HolderKey, Hop};
pub use inspect::{inspect, BlockKind, BlockView, Inspection, RightView};
pub use keys::{ed25519_private_key_pem, Jwk, Jwks, KeyError, KeySet, RootKeyPair};
pub use mint::{
    mint, mint_actions, mint_actions_with_rng, mint_approved, mint_with_budgets, mint_with_rng,
    Approved, Capability, Minted, MAX_ACTIONS,
};
pub use reason::{challenge, Reason};
pub use schema::{Narrowing, SCHEMA_VERSION};
pub use types::{
    duration_text, format_public_key, parse_duration, parse_public_key, Action, AgentId, AgentKey,
    Audience, InvalidInput, Lifetime, OnBehalf, Person, Resource, ResourcePattern,
    MAX_PRIOR_ACTORS, RESERVED_AGENT_PREFIX,
};

/// Why a token operation (mint, attenuate, delegate, inspect) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The token is not base64url, not a Biscuit, or not a Tessera token.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// The token, or the token an operation would produce, exceeds the limits.
    #[error("token too large: {0}")]
    TooLarge(String),
    /// The holder chain is broken.
    #[error("invalid delegation chain: {0}")]
    Chain(#[from] ChainError),
    /// Verification against a key set failed.
    #[error("token rejected: {0}")]
    Rejected(Denial),
    /// A narrowing that would not narrow, or that nothing in the token allows.
    #[error("not a narrowing: {0}")]
    NotNarrower(String),
    /// Delegation asked of a token that is not bound to a key.
    #[error("the token is not bound to a key: delegate needs a bound token (use attenuate for a bearer token)")]
    NotBound,
    /// The key offered to sign a delegation is not the current holder's.
    #[error("the given key is not the current holder's key ({holder})")]
    NotHolder {
        /// The current holder's public key.
        holder: String,
    },
    /// An input value was refused.
    #[error(transparent)]
    Input(#[from] InvalidInput),
    /// biscuit-auth refused to build a block (a bug, not bad input).
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<biscuit_auth::error::Token> for TokenError {
    fn from(e: biscuit_auth::error::Token) -> Self {
        use biscuit_auth::error::Token as T;
        match e {
            T::Format(_) | T::Base64(_) => TokenError::Malformed(e.to_string()),
            other => TokenError::Internal(other.to_string()),
        }
    }
}

impl From<wire::WireError> for TokenError {
    fn from(e: wire::WireError) -> Self {
        match e {
            wire::WireError::Malformed(_) => TokenError::Malformed(e.to_string()),
            wire::WireError::TooManyBlocks { .. } => TokenError::TooLarge(e.to_string()),
        }
    }
}

/// URL-safe base64 that accepts the token with or without padding.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Encodes token bytes as biscuit-auth does (URL-safe base64 with padding),
/// so any Biscuit library reads it.
pub fn encode(bytes: &[u8]) -> String {
    URL_SAFE.encode(bytes)
}

/// Decodes a base64url token, refusing an oversized one before decoding.
pub fn decode(token: &str, limits: &Limits) -> Result<Vec<u8>, TokenError> {
    let token = token.trim();
    if token.len() > limits.max_token_bytes.div_ceil(3) * 4 {
        return Err(TokenError::TooLarge(format!(
            "token is larger than {} bytes",
            limits.max_token_bytes
        )));
    }
    if token.is_empty() {
        return Err(TokenError::Malformed("empty token".into()));
    }
    LENIENT
        .decode(token)
        .map_err(|e| TokenError::Malformed(format!("not base64url: {e}")))
}
