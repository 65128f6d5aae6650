//! Token core: behaviour through the public API.

mod action_sets;
mod adversarial;
mod amounts;
mod bad_input;
mod budgets;
mod delegation;
mod expiry;
mod fail_closed;
mod fixtures;
mod flows;
mod narrowing;
mod person;
pub(crate) mod raw;
mod resource_names;
pub(crate) mod support;
mod tampering;
