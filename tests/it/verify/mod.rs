//! The verifier: checks, followers, the axum layer, the MCP example.

mod amounts;
mod attack_http;
mod audit;
pub mod check;
mod cli;
mod cluster;
mod example;
mod follow;
mod layer;
mod layer_amounts;
mod mcp;
mod outage;
mod person;
mod spend_audit;
