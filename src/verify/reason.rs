//! Why a presentation was refused ([`Reason`], [`Rejection`]), and how a
//! reason maps to HTTP: its status and its `WWW-Authenticate` error code.
//!
//! [`Reason`] is the token core's [`DenyReason`] plus the reasons only a
//! verifier meets (no token, the DPoP proof, staleness, a full replay
//! cache); the codes the two share are written once, in
//! [`DenyReason::as_str`]. The issuer's `ApiError::reason` labels answers
//! of the issuer's own API (OAuth error codes, `unauthenticated`, …), a
//! different list for a different job.

use std::fmt;

use serde::Serialize;

use crate::token::{Denial, DenyReason};

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
    /// A stable snake_case code: the token core's code
    /// ([`DenyReason::as_str`], the one table) for the reasons the core
    /// gives, and the verifier's own for the others.
    pub fn as_str(self) -> &'static str {
        match self.core() {
            Some(core) => core.as_str(),
            None => match self {
                Self::MissingToken => "missing_token",
                Self::InvalidDpop => "invalid_dpop",
                Self::ReplayedDpop => "replayed_dpop",
                Self::Stale => "stale",
                _ => "overloaded",
            },
        }
    }

    /// The token core's reason this one is, if the core gives it (the
    /// inverse of `From<DenyReason>`); `None` for the verifier's own
    /// reasons (no token, DPoP, staleness, a full replay cache).
    pub fn core(self) -> Option<DenyReason> {
        Some(match self {
            Self::Malformed => DenyReason::Malformed,
            Self::BadSignature => DenyReason::BadSignature,
            Self::UnknownKeyId => DenyReason::UnknownKeyId,
            Self::Expired => DenyReason::Expired,
            Self::Revoked => DenyReason::Revoked,
            Self::WrongAudience => DenyReason::WrongAudience,
            Self::OutOfScope => DenyReason::OutOfScope,
            Self::HolderNotProven => DenyReason::HolderNotProven,
            Self::InvalidDelegation => DenyReason::InvalidDelegation,
            Self::TooLarge => DenyReason::TooLarge,
            Self::LimitsExceeded => DenyReason::LimitsExceeded,
            Self::MissingToken
            | Self::InvalidDpop
            | Self::ReplayedDpop
            | Self::Stale
            | Self::Overloaded => return None,
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Reason; 16] = [
        Reason::MissingToken,
        Reason::Malformed,
        Reason::BadSignature,
        Reason::UnknownKeyId,
        Reason::Expired,
        Reason::Revoked,
        Reason::WrongAudience,
        Reason::OutOfScope,
        Reason::HolderNotProven,
        Reason::InvalidDelegation,
        Reason::TooLarge,
        Reason::LimitsExceeded,
        Reason::InvalidDpop,
        Reason::ReplayedDpop,
        Reason::Stale,
        Reason::Overloaded,
    ];

    #[test]
    fn codes_are_the_wire_codes_and_the_core_round_trips() {
        let codes: Vec<&str> = ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(
            codes,
            [
                "missing_token",
                "malformed",
                "bad_signature",
                "unknown_key_id",
                "expired",
                "revoked",
                "wrong_audience",
                "out_of_scope",
                "holder_not_proven",
                "invalid_delegation",
                "too_large",
                "limits_exceeded",
                "invalid_dpop",
                "replayed_dpop",
                "stale",
                "overloaded",
            ]
        );
        for r in ALL {
            // serde's name is the code, and a core reason converts back.
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
            if let Some(core) = r.core() {
                assert_eq!(Reason::from(core), r);
            }
        }
    }
}
