//! People: trusted identity providers, tested against a real OpenID
//! provider (tests/idp, oidc-provider) started per test; token exchange
//! and ID-JAG at the token endpoint.

mod attack;
mod custody;
mod end_to_end;
mod exchange;
pub mod fixture;
mod id_jag;
mod id_tokens;
pub mod idp;
