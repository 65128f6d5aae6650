//! Entry points for the fuzz targets in `fuzz/` that reach parsers private
//! to the issuer and the verifier. Empty unless compiled with `--cfg
//! fuzzing` (as `scripts/fuzz.sh` builds); never part of the API.

// `fuzzing` is set by the fuzz build's RUSTFLAGS, not by a Cargo feature.
#![allow(unexpected_cfgs)]

/// The token endpoint's form parser and what it asks for (scope and
/// resource, or `authorization_details`), as `POST /oauth/token` reads a
/// body with `content_type`.
#[cfg(all(fuzzing, feature = "server"))]
pub fn token_form(content_type: &str, body: &[u8]) {
    use axum::http::{header, HeaderMap, HeaderValue};
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(form) = crate::server::oauth::Form::parse(&headers, body) {
        let _ = crate::server::oauth::asked(&form);
    }
}

/// The revocation feed page parser, as an HTTP follower reads the issuer's
/// answer.
#[cfg(all(fuzzing, feature = "verifier"))]
pub fn feed_page(body: &[u8]) {
    let _ = crate::verify::follow::http::read_page(body);
}
