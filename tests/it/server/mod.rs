//! The issuer service over real HTTP on loopback: a `TestApp` per test
//! (embedded store in a temp directory, or a Redis of its own), and the real
//! binary for crash and SIGHUP behaviour.

mod admin;
mod agent_redirects;
mod attack_net;
mod attack_store;
mod audit_log;
mod audit_tamper;
mod audit_verify;
mod authcode;
pub mod budgets_api;
mod budgets_audit;
pub mod budgets_http;
mod cimd;
pub(crate) mod helpers;
mod introspect;
mod oauth;
mod operator;
mod people_admin;
mod process;
mod redis;
