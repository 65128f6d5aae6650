//! The contract between the issuer and the verifier: the records both sides
//! read and write, with no I/O.
//!
//! The issuer's stores write them, its admin API serves them, and the
//! verifier's followers and audit sinks read or append them. Nothing here
//! depends on the stores or on the verifier, so the verifier-only build
//! (`--no-default-features --features verifier`) compiles it without either.

mod audit;
mod cursor;
mod feed;
pub mod redis;
mod revocation;

pub use audit::{AuditEvent, AuditKind, AuditOutcome, AuditQuery};
pub use cursor::Cursor;
pub use feed::{AuditEntry, AuditPage, FeedEntry, FeedPage};
pub use revocation::Revocation;
