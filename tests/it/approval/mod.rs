//! Asking a person's approval (issue 13): `POST /oauth/bc-authorize`, the
//! CIBA grant at the token endpoint, the approval policy.

mod flow;
mod ping;
mod policy;
mod operators;
