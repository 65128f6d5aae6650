//! Asking a person's approval (issue 13): `POST /oauth/bc-authorize`, the
//! CIBA grant at the token endpoint, the approval policy.

mod e2e;
mod flow;
mod operators;
mod page;
mod page_fixture;
mod pay_e2e;
mod ping;
mod policy;
mod webhook;
