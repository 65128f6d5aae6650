//! The DPoP proof parser and checker, `jose::verify_dpop`, at a fixed clock.
//!
//! The first byte picks a mode: 0 and 1, the rest is a compact proof
//! (checked without, then with, a presented access token); 2, the rest is
//! the claims, signed here under a header carrying the holder's JWK; 3, the
//! rest is `header\nclaims`, signed here with the holder's key (in modes 2
//! and 3, bit 2 of the first byte presents an access token). Modes 2 and 3
//! let the fuzzer reach every check behind the signature.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera::jose::{verify_dpop, DpopClaims};
use tessera_fuzz as fx;

fuzz_target!(|data: &[u8]| {
    let fixed = fx::fixture();
    let Some((mode, rest)) = fx::mode(data) else {
        return;
    };
    let proof = match mode {
        0 | 1 => match std::str::from_utf8(rest) {
            Ok(p) => {
                let _ = verify_dpop(p, &fx::dpop_rules(mode == 1));
                return;
            }
            Err(_) => return,
        },
        2 => fx::sign_raw(&fixed.holder, fixed.dpop_header.as_bytes(), rest),
        _ => {
            let (header, claims) = fx::split_header(rest);
            fx::sign_raw(&fixed.holder, header, claims)
        }
    };
    let with_token = data[0] & 4 != 0;
    if let Ok(p) = verify_dpop(&proof, &fx::dpop_rules(with_token)) {
        // An accepted proof is within the rules: the method exactly, the
        // iat within the window, the ath when a token is presented.
        // Read the claims as the checker does (serde skips unknown
        // members without validating them, so not as a `Value`).
        let claims: DpopClaims = match serde_json::from_slice(match mode {
            2 => rest,
            _ => fx::split_header(rest).1,
        }) {
            Ok(c) => c,
            Err(e) => panic!("an accepted proof's claims do not read: {e}"),
        };
        assert_eq!(claims.htm, fx::METHOD);
        assert!((p.iat - fx::now().timestamp()).abs() <= 60);
        if with_token {
            assert_eq!(
                claims.ath,
                Some(tessera::jose::access_token_hash(fx::ACCESS_TOKEN))
            );
        }
    }
});
