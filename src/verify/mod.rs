//! The verifier for tool servers: checks a presented token offline, with
//! public keys only, and follows revocations with bounded staleness.

pub mod revocations;
pub mod view;

pub use view::{FollowerStats, RevocationView};
