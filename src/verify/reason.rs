//! Why a presentation was refused ([`Reason`], [`Rejection`]).
//!
//! Both are the token core's own types, re-exported: the core's
//! [`crate::token::Reason`] already holds the reasons only a verifier meets
//! (no token, the DPoP proof, staleness, a full replay cache) beside its
//! own, with each reason's code, HTTP status and `WWW-Authenticate` error
//! code written once; a [`Rejection`] is the core's
//! [`Denial`](crate::token::Denial), the reason and a one-line detail
//! (never the token). The issuer's `ApiError::reason` labels answers of the
//! issuer's own API (OAuth error codes, `unauthenticated`, …), a different
//! list for a different job.

pub use crate::token::{Denial as Rejection, Reason};

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
    fn codes_are_the_wire_codes() {
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
            // serde's name is the code.
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
    }
}
