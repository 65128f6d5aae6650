//! Token parsing and `token::authorize` with a fixed key set, request and
//! clock. Raw bytes go to `authorize_bytes` (the protobuf and signature
//! path); text goes to `authorize` (base64 and size checks first) and to
//! `inspect`, with the key set and without (then it reads every block
//! without verifying it, as `tessera token inspect` does). Seeds: minted and
//! delegated tokens signed by the fixed root key, as bytes and as text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera::token::{authorize, authorize_bytes, inspect};

fuzz_target!(|data: &[u8]| {
    let fx = tessera_fuzz::fixture();
    for req in [&fx.by_agent, &fx.by_sub_agent] {
        let _ = authorize_bytes(data, &fx.keys, req, |_| false, &fx.limits);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        for req in [&fx.by_agent, &fx.by_sub_agent, &fx.unproven] {
            let _ = authorize(text, &fx.keys, req, |_| false, &fx.limits);
        }
        let _ = inspect(text, None, &fx.limits);
        let _ = inspect(text, Some(&fx.keys), &fx.limits);
    }
});
