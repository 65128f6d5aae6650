//! Tessera: capability tokens for AI agents and the tools they call.
//!
//! An issuer mints a [Biscuit](https://www.biscuitsec.org) token scoped to one
//! agent, one action, one resource (or prefix) and a few minutes. The agent
//! can narrow it offline, or hand it to a sub-agent with a block signed by its
//! own key. A tool server decides offline, with public keys only, whether the
//! whole chain allows a request.
//!
//! The [`token`] module is the pure core: keys, the current time and the
//! request are arguments, and nothing reads the clock or does I/O.
//!
//! ```
//! use biscuit_auth::KeyPair;
//! use chrono::{TimeZone, Utc};
//! use tessera::token::*;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let root = RootKeyPair::new(0, KeyPair::new());
//! let keys = KeySet::single(0, root.keypair.public());
//! let agent_key = KeyPair::new();
//! let now = Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap();
//!
//! // The issuer mints a token bound to the agent's key.
//! let minted = mint(
//!     &Capability {
//!         agent: AgentId::parse("agent://acme/planner")?,
//!         action: Action::parse("docs:read")?,
//!         resource: ResourcePattern::parse("docs/team-a/*")?,
//!         audience: Some(Audience::parse("https://docs.acme.example")?),
//!         lifetime: Lifetime::parse("5m")?,
//!         holder_key: Some(agent_key.public()),
//!         on_behalf: None,
//!     },
//!     &root,
//!     now,
//! )?;
//!
//! // The agent hands a narrower copy to a sub-agent, offline.
//! let sub_key = KeyPair::new();
//! let narrower = Narrowing {
//!     resource: Some(ResourcePattern::parse("docs/team-a/reports/*")?),
//!     ..Narrowing::default()
//! };
//! let limits = Limits::default();
//! let sub_token = delegate(
//!     &minted.token,
//!     &agent_key,
//!     &AgentId::parse("agent://acme/summarizer")?,
//!     &sub_key.public(),
//!     &narrower,
//!     &limits,
//! )?;
//!
//! // The tool server checks the chain with public keys only.
//! let request = Request {
//!     operation: Action::parse("docs:read")?,
//!     resource: Resource::parse("docs/team-a/reports/q3.pdf")?,
//!     service: Some(Audience::parse("https://docs.acme.example")?),
//!     now,
//!     proven_key: Some(sub_key.public()),
//!     amount: None,
//! };
//! let grant = authorize(&sub_token, &keys, &request, |_revocation_id| false, &limits)?;
//! assert_eq!(grant.acting().map(|a| a.as_str()), Some("agent://acme/summarizer"));
//!
//! // Outside the narrowed prefix: denied, with a typed reason.
//! let outside = Request { resource: Resource::parse("docs/team-a/hr.pdf")?, ..request };
//! let denial = authorize(&sub_token, &keys, &outside, |_| false, &limits).unwrap_err();
//! assert_eq!(denial.reason, Reason::OutOfScope);
//! # Ok(())
//! # }
//! ```
//!
//! # Non-goals
//!
//! - Long-lived credentials: tokens live seconds to hours ([`token::Lifetime::MAX`]
//!   is one day), and a grant is one action on one resource or prefix.
//! - Widening: nothing a holder can append adds rights; attenuation and
//!   delegation blocks carry checks only.
//! - Guessing: a token naming an unknown root key id is refused, never tried
//!   against another key; a verifier that forgets a fact denies.
//! - Key custody: Tessera reads and writes key files; protecting them (HSMs,
//!   secret managers) is the deployment's job.
//! - General-purpose Biscuit tooling: tokens follow one schema
//!   (`docs/token-schema.md`); arbitrary Datalog policies are out of scope.

pub mod clock;
#[doc(hidden)]
pub mod fuzzing;
pub mod jose;
#[cfg(feature = "verifier-axum")]
pub mod net;
#[cfg(feature = "store")]
pub mod people;
pub mod records;
#[cfg(any(feature = "store", feature = "verifier"))]
mod redis_conn;
pub mod replay;
#[cfg(feature = "store")]
pub mod store;
pub mod tlog;
pub mod token;
#[cfg(feature = "verifier")]
pub mod verify;
#[cfg(feature = "server")]
pub mod web;

#[cfg(feature = "cli")]
pub mod cli;
#[cfg(feature = "server")]
pub mod server;
