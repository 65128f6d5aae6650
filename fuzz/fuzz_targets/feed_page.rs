//! The verifier's revocation feed page parser (src/verify/follow/http.rs),
//! through `tessera::fuzzing::feed_page`: what an HTTP follower does with
//! the issuer's answer.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tessera::fuzzing::feed_page(data);
});
