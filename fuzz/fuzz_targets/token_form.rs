//! The token endpoint's form and `authorization_details` parser
//! (src/server/oauth.rs `Form::parse` and `asked`), through
//! `tessera::fuzzing::token_form`. The first byte picks the content type.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((first, body)) = data.split_first() else {
        return;
    };
    let content_type = match first % 4 {
        0 => "application/x-www-form-urlencoded",
        1 => "application/x-www-form-urlencoded; charset=utf-8",
        2 => "Application/X-WWW-Form-Urlencoded",
        _ => "application/json",
    };
    tessera::fuzzing::token_form(content_type, body);
});
