//! Why a token was refused: one [`Reason`] from the token core to HTTP.
//!
//! The core gives the reasons about the token itself (its bytes, keys,
//! chain, expiry, scope, revocation); a verifier adds the ones about the
//! presentation (no token, the DPoP proof, a stale revocation view, a full
//! replay cache). Both use this one type, so a reason's wire code, HTTP
//! status and `WWW-Authenticate` error code are written once, here, as
//! plain values (this module does no I/O and knows no HTTP library).

use std::fmt;

use serde::Serialize;

/// Why a token, or its presentation, was refused. Each reason has one wire
/// code ([`Reason::as_str`], also its serde name), one HTTP status and at
/// most one `WWW-Authenticate` error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Reason {
    /// No token was presented (a verifier's reason).
    MissingToken,
    /// Not base64, not a Biscuit, or not a Tessera token.
    Malformed,
    /// A signature does not verify (tampering, wrong root key).
    BadSignature,
    /// The token names a root key id the key set does not hold (a verifier
    /// gives it only after fetching the key set again).
    UnknownKeyId,
    /// Past its expiry, or no time was supplied.
    Expired,
    /// A block's revocation id is revoked.
    Revoked,
    /// The token is for another tool server, or no service was supplied.
    WrongAudience,
    /// The action or resource is outside what the token allows.
    OutOfScope,
    /// The token is bound and the final holder's key was not proven.
    HolderNotProven,
    /// A delegation block is not signed by the current holder, does not
    /// name exactly one next holder, or names a reserved agent id.
    InvalidDelegation,
    /// More bytes or blocks than the limits allow.
    TooLarge,
    /// A block after the authority block has a shape whose cost is not
    /// bounded by its size (rules, facts in a first-party block, closures,
    /// joins, scopes, expressions over budget; refused before any Datalog
    /// runs), or Datalog evaluation hit a run limit.
    LimitsExceeded,
    /// The DPoP proof is malformed, badly signed or does not match the
    /// request or the token (a verifier's reason).
    InvalidDpop,
    /// The DPoP proof was already used (a verifier's reason).
    ReplayedDpop,
    /// The revocation view is older than the staleness bound (a verifier's
    /// reason).
    Stale,
    /// The DPoP replay cache cannot take more proofs (a verifier's reason).
    Overloaded,
}

impl Reason {
    /// A stable snake_case code, the same as the serde name.
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

    /// The `error` of a JSON error body: [`Self::error_code`], or for the
    /// reasons without one `invalid_request` (no token) or
    /// `temporarily_unavailable` (503).
    pub fn body_error(self) -> &'static str {
        match (self.error_code(), self) {
            (Some(code), _) => code,
            (None, Self::MissingToken) => "invalid_request",
            (None, _) => "temporarily_unavailable",
        }
    }

    /// Whether the challenge for this reason must use the DPoP scheme
    /// whatever scheme the client used (a DPoP proof was refused).
    pub fn needs_dpop_scheme(self) -> bool {
        matches!(self, Self::InvalidDpop | Self::ReplayedDpop)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `WWW-Authenticate` challenge (RFC 9110 §11.6.1): `scheme` followed by
/// `name="value"` parameters, each value cut at 200 characters and with
/// anything that could leave the quoted string (`"`, `\`, control and
/// non-ASCII characters) replaced by `?`. The issuer's errors and the
/// verifier's refusals both build their challenges with it.
pub fn challenge(scheme: &str, params: &[(&str, &str)]) -> String {
    let mut out = String::from(scheme);
    for (n, (name, value)) in params.iter().enumerate() {
        out.push_str(if n == 0 { " " } else { ", " });
        out.push_str(name);
        out.push_str("=\"");
        out.push_str(&quoted_safe(value));
        out.push('"');
    }
    out
}

/// Text safe inside a quoted header parameter.
fn quoted_safe(s: &str) -> String {
    s.chars()
        .take(200)
        .map(|c| match c {
            ' '..='~' if c != '"' && c != '\\' => c,
            _ => '?',
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_challenge_lists_its_params_quoted() {
        assert_eq!(challenge("Bearer", &[]), "Bearer");
        assert_eq!(
            challenge("DPoP", &[("error", "invalid_token"), ("algs", "EdDSA")]),
            "DPoP error=\"invalid_token\", algs=\"EdDSA\""
        );
    }

    #[test]
    fn quoted_text_cannot_break_out() {
        assert_eq!(quoted_safe("a\"b\\c\nd"), "a?b?c?d");
        assert_eq!(
            challenge("Bearer", &[("error_description", "x\", evil=\"y")]),
            "Bearer error_description=\"x?, evil=?y\""
        );
    }

    #[test]
    fn a_body_error_is_given_for_every_reason() {
        assert_eq!(Reason::MissingToken.body_error(), "invalid_request");
        assert_eq!(Reason::Stale.body_error(), "temporarily_unavailable");
        assert_eq!(Reason::OutOfScope.body_error(), "insufficient_scope");
        assert_eq!(Reason::ReplayedDpop.body_error(), "invalid_dpop_proof");
    }
}
