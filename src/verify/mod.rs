//! The verifier for tool servers: checks a presented token offline, with
//! public keys only, and follows revocations with bounded staleness.
//!
//! See `docs/verifier.md` for a tool author's guide.
//!
//! The rooms, each read once:
//! - `verifier.rs`: the [`Verifier`] and its check path, each step once;
//! - `builder.rs`: its settings ([`VerifierBuilder`], [`Revocations`]);
//! - `request.rs`: what goes in and out ([`Presentation`], [`CheckRequest`],
//!   [`Grant`], [`Authenticated`]);
//! - `reason.rs`: why a call was refused (the token core's [`Reason`],
//!   which also gives its HTTP status and `WWW-Authenticate` error code);
//! - `keys.rs`: root keys and JWKS fetching;
//! - the DPoP replay cache is the crate's one `replay` module;
//! - `cache.rs`: verified tokens and remembered decisions;
//! - `view.rs`, `revocations.rs`, `follow/`: the revocation view and the
//!   followers that keep it current; `audit.rs`, `metrics.rs`, `layer.rs`.

pub mod audit;
mod builder;
mod cache;
pub mod follow;
#[cfg(feature = "store")]
pub mod http_ledger;
mod keys;
#[cfg(feature = "verifier-axum")]
pub mod layer;
pub mod metrics;
mod reason;
mod redis_conn;
mod request;
pub mod revocations;
#[cfg(feature = "store")]
pub mod spend;
#[cfg(feature = "store")]
pub mod spend_audit;
mod verifier;
pub mod view;

pub use crate::replay::{MemoryReplayGuard, ReplayGuard};
pub use audit::{AuditSink, AuditSinkConfig, AuditSinkError, AuditStats, DecisionAudit};
pub use builder::{BuildError, Clock, Revocations, VerifierBuilder};
pub use follow::{Backoff, FollowError, FollowerHandle, HttpFollower, RedisFollower};
pub use keys::KeySource;
pub use metrics::{render_audit_prometheus, render_prometheus};
pub use reason::{Reason, Rejection};
pub use request::{Authenticated, CheckRequest, Grant, Presentation};
pub use verifier::Verifier;
pub use view::{FollowerStats, RevocationView};
