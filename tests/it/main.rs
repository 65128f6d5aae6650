//! Integration tests: one binary, one module per area.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[cfg(feature = "server")]
mod approval;
#[cfg(feature = "cli")]
mod cli;
#[cfg(feature = "server")]
mod cli_help;
#[cfg(feature = "server")]
mod interop_biscuit_python;
#[cfg(feature = "server")]
mod interop_js;
#[cfg(feature = "server")]
mod interop_python;
#[cfg(feature = "server")]
mod interop_python_person;
#[cfg(feature = "server")]
mod mcp_oauth;
#[cfg(feature = "server")]
mod people;
#[cfg(feature = "server")]
mod python;
#[cfg(feature = "server")]
mod server;
#[cfg(feature = "store")]
mod store;
mod tlog;
mod tlog_record;
mod token;
#[cfg(feature = "server")]
mod verify;
#[cfg(feature = "server")]
mod web;
