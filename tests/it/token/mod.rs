//! Token core: behaviour through the public API.

mod bad_input;
mod delegation;
mod expiry;
mod fail_closed;
mod fixtures;
mod flows;
mod narrowing;
mod raw;
mod resource_names;
mod support;
mod tampering;
