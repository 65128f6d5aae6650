//! The verifier: checks, followers, the axum layer, the MCP example.

mod check;
mod layer;
