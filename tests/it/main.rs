//! Integration tests: one binary, one module per area.

#[cfg(feature = "store")]
mod store;
mod token;
