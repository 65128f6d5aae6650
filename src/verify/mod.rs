//! The verifier for tool servers (issue 4, in progress): the pieces that
//! exist so far.

pub mod revocations;
