//! The JWKS parser, `KeySet::from_jwks_json`: what a verifier reads from a
//! file or the issuer's `/.well-known/jwks.json`. A key set it accepts
//! writes back to a JWKS that reads as the same set.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera::token::KeySet;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(set) = KeySet::from_jwks_json(text) {
        let written = serde_json::to_string(&set.to_jwks()).unwrap_or_default();
        let again = KeySet::from_jwks_json(&written);
        assert!(
            again.is_ok(),
            "a written JWKS does not read back: {again:?}"
        );
        let again = again.unwrap_or_default();
        let mut a: Vec<_> = set.iter().map(|(id, k)| (id, k.to_bytes())).collect();
        let mut b: Vec<_> = again.iter().map(|(id, k)| (id, k.to_bytes())).collect();
        a.sort();
        b.sort();
        assert_eq!(a, b);
    }
});
