//! Asking a person's approval (issue 13): `POST /oauth/bc-authorize`, the
//! CIBA grant at the token endpoint, the approval policy.

mod flow;
mod operators;
mod ping;
mod policy;
