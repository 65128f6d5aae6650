//! Integration tests: one binary, one module per area.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[cfg(feature = "store")]
mod store;
#[cfg(feature = "cli")]
mod cli;
mod token;
