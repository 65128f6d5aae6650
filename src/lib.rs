//! Tessera: capability tokens for AI agents and the tools they call.
//!
//! placeholder
#[cfg(feature = "store")]
pub mod store;
pub mod token;
