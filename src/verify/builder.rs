//! Settings for a [`Verifier`] ([`VerifierBuilder`], [`Revocations`],
//! [`BuildError`]) and building one: loading the keys and starting the
//! revocation follower.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use super::keys::{load_keys, KeySource};
use super::verifier::{Inner, Verifier};
use super::view::RevocationView;
use crate::clock::SystemClock;
use crate::replay::{MemoryReplayGuard, ReplayGuard};
use crate::token::{Audience, Limits};

/// Where revocations come from. There is no default: a verifier that does
/// not follow revocations must say so with [`Revocations::Unchecked`].
#[derive(Debug, Clone)]
pub enum Revocations {
    /// A view kept current by a follower the caller runs.
    View(Arc<RevocationView>),
    /// Follow the issuer's Redis stream (the verifier runs a
    /// [`RedisFollower`](super::RedisFollower) with its defaults).
    Redis {
        /// `redis://…` of the issuer's Redis.
        url: String,
    },
    /// Follow the issuer's feed over HTTP (the verifier runs an
    /// [`HttpFollower`](super::HttpFollower)) with a read-only token from
    /// `tessera admin token --feed`.
    Issuer {
        /// The issuer's base URL.
        url: String,
        /// The feed token (sent as a bearer token to the issuer only). It
        /// expires: prefer [`Revocations::IssuerTokenFile`] for a server
        /// that runs longer than the token lives.
        feed_token: String,
    },
    /// Follow the issuer's feed over HTTP with a feed token kept in a file
    /// that a timer renews: the follower reads it again when it changes and
    /// before the current token expires (see
    /// [`HttpFollower`](super::HttpFollower)).
    IssuerTokenFile {
        /// The issuer's base URL.
        url: String,
        /// The file holding the feed token.
        feed_token_file: PathBuf,
    },
    /// Do not consult revocations (tests, offline tools). Revoked tokens
    /// are accepted until they expire.
    Unchecked,
}

/// The clock a verifier reads: the crate's one [`crate::clock::Clock`],
/// shared (a closure `Arc::new(move || t)` is one).
pub type Clock = crate::clock::SharedClock;

/// Why a verifier could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A required setting is missing.
    #[error("{0}")]
    Missing(&'static str),
    /// A setting is invalid.
    #[error("{0}")]
    Invalid(String),
    /// The key set could not be loaded.
    #[error("cannot load the key set: {0}")]
    Keys(String),
    /// The revocation follower could not start.
    #[error("cannot follow revocations: {0}")]
    Follow(#[from] super::FollowError),
}

/// Settings for a [`Verifier`]; see [`Verifier::builder`].
pub struct VerifierBuilder {
    service: String,
    keys: Option<KeySource>,
    revocations: Option<Revocations>,
    max_staleness: Duration,
    allow_stale: bool,
    skew: Duration,
    limits: Limits,
    refetch_interval: Duration,
    replay: Option<Arc<dyn ReplayGuard>>,
    cache_capacity: usize,
    clock: Clock,
    http: Option<reqwest::Client>,
    audit: Option<Arc<super::AuditSink>>,
}

impl fmt::Debug for VerifierBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifierBuilder")
            .field("service", &self.service)
            .field("keys", &self.keys)
            .field("max_staleness", &self.max_staleness)
            .field("allow_stale", &self.allow_stale)
            .finish_non_exhaustive()
    }
}

impl VerifierBuilder {
    /// The root public keys (required).
    pub fn keys(mut self, source: KeySource) -> Self {
        self.keys = Some(source);
        self
    }

    /// The revocation source (required; see [`Revocations::Unchecked`]).
    pub fn revocations(mut self, source: Revocations) -> Self {
        self.revocations = Some(source);
        self
    }

    /// Deny every check once the revocation view has not been confirmed
    /// current for longer than this (default 5 s).
    pub fn max_staleness(mut self, bound: Duration) -> Self {
        self.max_staleness = bound;
        self
    }

    /// Keep allowing requests when revocations are stale (logged once per
    /// check as a warning). Off by default: stale means 503.
    pub fn allow_stale(mut self, allow: bool) -> Self {
        self.allow_stale = allow;
        self
    }

    /// Accepted clock difference for DPoP `iat` (default 60 s); proofs are
    /// remembered for twice this long.
    pub fn clock_skew(mut self, skew: Duration) -> Self {
        self.skew = skew;
        self
    }

    /// Size, block-count and Datalog run limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// An unknown `kid` fetches the key set again at most once per this
    /// interval (default 30 s).
    pub fn refetch_interval(mut self, interval: Duration) -> Self {
        self.refetch_interval = interval;
        self
    }

    /// The DPoP replay cache (default: in memory, 1,000,000 proofs).
    pub fn replay_guard(mut self, guard: Arc<dyn ReplayGuard>) -> Self {
        self.replay = Some(guard);
        self
    }

    /// How many verified tokens to keep (default 10,000; 0 disables).
    pub fn cache_capacity(mut self, n: usize) -> Self {
        self.cache_capacity = n;
        self
    }

    /// The clock (default: the system clock).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Record every decision (allowed or refused, with the chain) in the
    /// issuer's audit stream, batched and off the request path.
    pub fn audit(mut self, sink: Arc<super::AuditSink>) -> Self {
        self.audit = Some(sink);
        self
    }

    /// The HTTP client used to fetch a JWKS URL.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// Loads the key set and returns the verifier.
    pub async fn build(self) -> Result<Verifier, BuildError> {
        let service = Audience::parse(&self.service)
            .map_err(|e| BuildError::Invalid(format!("service URI: {e}")))?;
        let source = self.keys.ok_or(BuildError::Missing(
            "no key source: give keys, a JWKS file or a JWKS URL",
        ))?;
        let revocations = self.revocations.ok_or(BuildError::Missing(
            "no revocation source: follow the issuer's feed, or say Revocations::Unchecked",
        ))?;
        let http = match self.http {
            Some(c) => c,
            None => reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .map_err(|e| BuildError::Invalid(format!("HTTP client: {e}")))?,
        };
        let keys = load_keys(&source, &http).await.map_err(BuildError::Keys)?;
        let (view, follower) = match revocations {
            Revocations::View(v) => (Some(v), None),
            Revocations::Redis { url } => {
                let view = RevocationView::new();
                let handle = super::RedisFollower::new(url).spawn(Arc::clone(&view))?;
                (Some(view), Some(handle))
            }
            Revocations::Issuer { url, feed_token } => {
                let view = RevocationView::new();
                let handle = super::HttpFollower::new(url, feed_token).spawn(Arc::clone(&view))?;
                (Some(view), Some(handle))
            }
            Revocations::IssuerTokenFile {
                url,
                feed_token_file,
            } => {
                let view = RevocationView::new();
                let handle = super::HttpFollower::with_credential_file(url, feed_token_file)
                    .spawn(Arc::clone(&view))?;
                (Some(view), Some(handle))
            }
            Revocations::Unchecked => (None, None),
        };
        Ok(Verifier {
            inner: Arc::new(Inner {
                service,
                keys: RwLock::new(Arc::new(keys)),
                source,
                last_fetch: Mutex::new(None),
                refetch_interval: self.refetch_interval,
                view,
                _follower: follower,
                max_staleness: self.max_staleness,
                allow_stale: self.allow_stale,
                skew: self.skew,
                limits: self.limits,
                replay: self
                    .replay
                    .unwrap_or_else(|| Arc::new(MemoryReplayGuard::new(1_000_000))),
                cache: RwLock::new(HashMap::new()),
                cache_capacity: self.cache_capacity,
                clock: self.clock,
                http,
                audit: self.audit,
            }),
        })
    }
}

impl Verifier {
    /// Starts the settings of a verifier for the tool server whose
    /// canonical URI (its audience) is `service`.
    pub fn builder(service: &str) -> VerifierBuilder {
        VerifierBuilder {
            service: service.to_owned(),
            keys: None,
            revocations: None,
            max_staleness: Duration::from_secs(5),
            allow_stale: false,
            skew: Duration::from_secs(60),
            limits: Limits::default(),
            refetch_interval: Duration::from_secs(30),
            replay: None,
            cache_capacity: 10_000,
            clock: Arc::new(SystemClock),
            http: None,
            audit: None,
        }
    }
}
