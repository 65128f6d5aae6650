//! The verifier: checks, followers, the axum layer, the MCP example.

mod audit;
mod check;
mod cli;
mod follow;
mod layer;
mod mcp;
mod outage;
