//! The client assertion parser and checker (RFC 7523): `jose::Jws::parse`,
//! the signature with the client's key, and `AssertionClaims::check` at a
//! fixed clock (the claims are checked even when the signature fails, so
//! the fuzzer reaches the time arithmetic).
//!
//! The first byte picks a mode: 0 and 1, the rest is a compact JWS; 2, the
//! rest is the claims, signed here under `{"alg":"EdDSA"}`; 3, the rest is
//! `header\nclaims`, signed here with the client's key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera::jose::{AssertionClaims, Jws};
use tessera_fuzz as fx;

fuzz_target!(|data: &[u8]| {
    let fixed = fx::fixture();
    let Some((mode, rest)) = fx::mode(data) else {
        return;
    };
    let compact = match mode {
        0 | 1 => match std::str::from_utf8(rest) {
            Ok(c) => c.to_owned(),
            Err(_) => return,
        },
        2 => fx::sign_raw(&fixed.client, br#"{"alg":"EdDSA"}"#, rest),
        _ => {
            let (header, claims) = fx::split_header(rest);
            fx::sign_raw(&fixed.client, header, claims)
        }
    };
    let Ok(jws) = Jws::<AssertionClaims>::parse(&compact) else {
        return;
    };
    let signed = jws.verify(&fixed.client.verifying_key()).is_ok();
    let rules = fx::assertion_rules();
    if jws.claims.check(&rules).is_ok() {
        // An accepted assertion is within the rules.
        let now = fx::now().timestamp();
        let c = &jws.claims;
        assert!(c.exp >= now - 30 && c.exp <= now + 330, "exp {}", c.exp);
        assert!(c.iat.is_none_or(|t| t <= now + 30), "iat {:?}", c.iat);
        assert!(c.nbf.is_none_or(|t| t <= now + 30), "nbf {:?}", c.nbf);
        assert_eq!(c.iss, c.sub);
        let _ = signed;
    }
});
