//! The verifier for tool servers: checks a presented token offline, with
//! public keys only, and follows revocations with bounded staleness.
//!
//! See `docs/verifier.md` for a tool author's guide.

pub mod audit;
pub mod follow;
#[cfg(feature = "verifier-axum")]
pub mod layer;
pub mod metrics;
pub mod revocations;
mod verifier;
pub mod view;

pub use audit::{AuditSink, AuditSinkConfig, AuditSinkError, AuditStats, DecisionAudit};
pub use follow::{Backoff, FollowError, FollowerHandle, HttpFollower, RedisFollower};
pub use metrics::{render_audit_prometheus, render_prometheus};
pub use verifier::{
    Authenticated, BuildError, CheckRequest, Clock, Grant, KeySource, MemoryReplayGuard,
    Presentation, Reason, Rejection, ReplayGuard, Revocations, Verifier, VerifierBuilder,
};
pub use view::{FollowerStats, RevocationView};
