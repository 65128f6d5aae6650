//! People: trusted identity providers, tested against a real OpenID
//! provider (tests/idp, oidc-provider) started per test.

mod id_tokens;
mod idp;
