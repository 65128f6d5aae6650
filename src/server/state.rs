//! Shared state of the issuer: configuration, stores, key ring, metrics,
//! clock. Handlers receive it through axum's `State`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use ed25519_dalek::VerifyingKey;
use sha2::{Digest, Sha256};

use super::config::Config;
use super::keyring::KeyRing;
use super::metrics::Metrics;
use crate::people::{FetchOptions, TrustedIdps};
use crate::replay::{MemoryReplayGuard, ReplayGuard};
use crate::store::{AgentRecord, Stores};
use crate::token::{AgentKey, Limits};

pub use crate::clock::{Clock, SystemClock};

/// Everything a handler needs.
#[derive(Clone)]
pub struct AppState {
    /// Settings.
    pub config: Arc<Config>,
    /// The issuer URL (no trailing slash).
    pub issuer: Arc<str>,
    /// The stores.
    pub stores: Stores,
    /// The root key ring, swapped on reload.
    pub keys: Arc<RwLock<Arc<KeyRing>>>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Token limits.
    pub limits: Limits,
    /// What minting falls back on while the store is down (`store_outage = "local"`).
    pub fallback: Arc<Fallback>,
    /// Agents' public keys, decoded.
    pub agent_keys: Arc<KeyCache>,
    /// Which refusals before client authentication reach the audit log.
    pub refusals: Arc<RefusalSampler>,
    /// The trusted identity providers (`[[idp]]`) and their cached keys;
    /// `None` when they could not be set up (every person grant is refused).
    pub idps: Option<Arc<TrustedIdps>>,
    /// The web pages' cookie key and login client (src/web); `None` when
    /// they could not be set up (every page answers 503).
    pub web: Option<Arc<crate::web::Web>>,
    /// Client ID Metadata Documents, fetched and cached (`[clients]`).
    pub client_metadata: Arc<super::cimd::ClientMetadataFetcher>,
    /// The audit key and the last signed checkpoint of the audit log.
    pub audit: Arc<super::audit_tlog::AuditPublisher>,
}

/// Refusals of token requests before the client is authenticated.
///
/// Anyone can cause them, as fast as they can send requests, so the audit
/// log must not take one event each: per interval, the first `sample` are
/// stored one by one (with typed codes only, never what the caller sent)
/// and the rest are counted by reason and stored as one summary event once
/// the interval is over. Refusals of an authenticated client are not
/// sampled: each is one event, as are mints, revocations and admin changes.
///
/// Intervals are measured on the monotonic clock; the summary's times come
/// from the issuer's clock.
#[derive(Debug)]
pub struct RefusalSampler {
    sample: u32,
    interval: Duration,
    window: Mutex<Window>,
}

#[derive(Debug)]
struct Window {
    /// When this interval started (monotonic).
    started: tokio::time::Instant,
    /// When this interval started (the issuer's clock).
    since: DateTime<Utc>,
    /// Refusals stored one by one in this interval.
    stored: u32,
    /// Refusals not stored, by reason code.
    skipped: BTreeMap<&'static str, u64>,
    /// Whether a flush at the end of this interval was asked for.
    flush_asked: bool,
}

/// What to do with one refusal before client authentication.
#[derive(Debug)]
pub struct Sampled {
    /// Store this refusal as an event of its own.
    pub store: bool,
    /// The summary of an interval that ended before this refusal: store it.
    pub summary: Option<Skipped>,
    /// The first refusal skipped in this interval: write the interval's
    /// summary at this instant (see [`RefusalSampler::flush`]).
    pub flush_at: Option<tokio::time::Instant>,
}

/// Refusals counted but not stored one by one during one interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// How many.
    pub count: u64,
    /// How many per reason code, in code order.
    pub by_reason: Vec<(&'static str, u64)>,
    /// Start of the interval.
    pub from: DateTime<Utc>,
    /// When the summary was taken.
    pub to: DateTime<Utc>,
}

impl RefusalSampler {
    /// Stores at most `sample` refusals one by one per `interval`.
    pub fn new(sample: u32, interval: Duration, now: DateTime<Utc>) -> Self {
        Self {
            sample,
            interval,
            window: Mutex::new(Window {
                started: tokio::time::Instant::now(),
                since: now,
                stored: 0,
                skipped: BTreeMap::new(),
                flush_asked: false,
            }),
        }
    }

    /// Counts one refusal with reason code `reason` (from a closed set:
    /// [`ApiError::reason`](super::error::ApiError::reason)).
    pub fn admit(&self, reason: &'static str, now: DateTime<Utc>) -> Sampled {
        let at = tokio::time::Instant::now();
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        let summary = self.roll_if_over(&mut w, at, now);
        if w.stored < self.sample {
            w.stored += 1;
            return Sampled {
                store: true,
                summary,
                flush_at: None,
            };
        }
        let n = w.skipped.entry(reason).or_insert(0);
        *n = n.saturating_add(1);
        let flush_at = (!w.flush_asked).then(|| {
            w.flush_asked = true;
            self.end_of(&w)
        });
        Sampled {
            store: false,
            summary,
            flush_at,
        }
    }

    /// The summary of the current interval if it is over (and starts the
    /// next one); `None` if it is not over or nothing was skipped in it.
    pub fn flush(&self, now: DateTime<Utc>) -> Option<Skipped> {
        let at = tokio::time::Instant::now();
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        self.roll_if_over(&mut w, at, now)
    }

    fn end_of(&self, w: &Window) -> tokio::time::Instant {
        w.started.checked_add(self.interval).unwrap_or(w.started)
    }

    fn roll_if_over(
        &self,
        w: &mut Window,
        at: tokio::time::Instant,
        now: DateTime<Utc>,
    ) -> Option<Skipped> {
        if at < self.end_of(w) {
            return None;
        }
        let skipped = std::mem::take(&mut w.skipped);
        let from = w.since;
        *w = Window {
            started: at,
            since: now,
            stored: 0,
            skipped: BTreeMap::new(),
            flush_asked: false,
        };
        let count = skipped.values().fold(0u64, |a, n| a.saturating_add(*n));
        (count > 0).then(|| Skipped {
            count,
            by_reason: skipped.into_iter().collect(),
            from,
            to: now,
        })
    }
}

/// How many decoded keys [`KeyCache`] holds before it starts over.
const KEY_CACHE_MAX: usize = 4096;

/// Agents' public keys, decoded once per process instead of on every
/// client authentication.
///
/// An agent record holds its key as 32 checked bytes ([`AgentKey`]);
/// turning them into a verifying key decompresses a curve point, a good
/// share of the cost of the signature check it serves. The cache maps the
/// key bytes to the decoded key, a pure function of the bytes, so it never
/// needs invalidating: a re-registered agent with a new key is looked up
/// under the new bytes. It is bounded by starting over when full.
#[derive(Default)]
pub struct KeyCache {
    keys: RwLock<HashMap<AgentKey, VerifyingKey>>,
}

impl KeyCache {
    /// The verifying key of `key`, or `None` if its bytes are not a point
    /// of the curve.
    pub fn verifying_key(&self, key: &AgentKey) -> Option<VerifyingKey> {
        let known = self
            .keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .copied();
        if known.is_some() {
            return known;
        }
        let decoded = VerifyingKey::from_bytes(key.bytes()).ok()?;
        let mut keys = self.keys.write().unwrap_or_else(|p| p.into_inner());
        if keys.len() >= KEY_CACHE_MAX {
            keys.clear();
        }
        keys.insert(*key, decoded);
        Some(decoded)
    }
}

/// How long an agent record seen by this process may stand in for the store.
const FALLBACK_AGENT_MAX_AGE: chrono::Duration = chrono::Duration::minutes(5);

/// In-process stand-ins used only while the store is unreachable and
/// `store_outage = "local"`.
pub struct Fallback {
    agents: RwLock<HashMap<String, (AgentRecord, DateTime<Utc>)>>,
    replay: MemoryReplayGuard,
}

/// How many one-time keys the outage fallback holds, in total and per
/// client: past that it refuses (the request fails as the store's outage
/// would) rather than grow.
const FALLBACK_REPLAY_CAPACITY: usize = 100_000;
const FALLBACK_REPLAY_PER_CLIENT: usize = 1_000;

impl Default for Fallback {
    fn default() -> Self {
        Self::with_capacity(FALLBACK_REPLAY_CAPACITY, FALLBACK_REPLAY_PER_CLIENT)
    }
}

impl Fallback {
    /// Remembers an agent record read from the store.
    pub fn remember(&self, record: &AgentRecord, now: DateTime<Utc>) {
        let mut g = self.agents.write().unwrap_or_else(|p| p.into_inner());
        g.insert(record.id.to_string(), (record.clone(), now));
    }

    /// The record of `id` if this process read it recently.
    pub fn agent(&self, id: &str, now: DateTime<Utc>) -> Option<AgentRecord> {
        let g = self.agents.read().unwrap_or_else(|p| p.into_inner());
        g.get(id)
            .filter(|(_, seen)| now - *seen <= FALLBACK_AGENT_MAX_AGE)
            .map(|(r, _)| r.clone())
    }

    /// A fallback holding at most `total` one-time keys, `per_client` of
    /// one client.
    pub fn with_capacity(total: usize, per_client: usize) -> Self {
        Self {
            agents: RwLock::default(),
            replay: MemoryReplayGuard::new(total).per_key(per_client),
        }
    }

    /// Accepts `key` of `client` once until `until` (this process only),
    /// with the contract of `store::ReplayCache::insert_once`: `Some(true)`
    /// the first time, `Some(false)` for a replay or a key already expired;
    /// `None` when the cache is full (in total or for this client), which
    /// the caller must treat as a refusal.
    pub fn insert_once(
        &self,
        client: &str,
        key: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Option<bool> {
        if until <= now {
            return Some(false);
        }
        let key: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        self.replay.insert_once_for(client, key, until, now)
    }
}

impl AppState {
    /// Builds the state.
    pub fn new(config: Config, stores: Stores, ring: KeyRing, clock: Arc<dyn Clock>) -> Self {
        let limits = Limits {
            max_token_bytes: config.max_token_bytes,
            ..Limits::default()
        };
        let refusals = RefusalSampler::new(
            config.audit_unauthenticated_sample,
            config.audit_unauthenticated_interval.0,
            clock.now(),
        );
        let idps = match TrustedIdps::new(config.idp.clone(), FetchOptions::default()) {
            Ok(idps) => Some(Arc::new(idps)),
            Err(e) => {
                tracing::error!(error = %e, "trusted identity providers unusable");
                None
            }
        };
        let web = match crate::web::Web::from_config(&config, &config.issuer()) {
            Ok(web) => Some(Arc::new(web)),
            Err(e) => {
                tracing::error!(error = %e, "web pages unusable");
                None
            }
        };
        let client_metadata = Arc::new(super::cimd::ClientMetadataFetcher::new(
            config.clients.clone(),
        ));
        Self {
            idps,
            web,
            client_metadata,
            issuer: config.issuer().into(),
            config: Arc::new(config),
            stores,
            keys: Arc::new(RwLock::new(Arc::new(ring))),
            metrics: Arc::new(Metrics::default()),
            clock,
            limits,
            fallback: Arc::new(Fallback::default()),
            agent_keys: Arc::new(KeyCache::default()),
            refusals: Arc::new(refusals),
            audit: Arc::default(),
        }
    }

    /// The current key ring.
    pub fn ring(&self) -> Arc<KeyRing> {
        match self.keys.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the key ring (SIGHUP).
    pub fn replace_ring(&self, ring: KeyRing) {
        let ring = Arc::new(ring);
        match self.keys.write() {
            Ok(mut g) => *g = ring,
            Err(poisoned) => *poisoned.into_inner() = ring,
        }
    }

    /// Now.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// `<issuer>/oauth/token`.
    pub fn token_endpoint(&self) -> String {
        format!("{}/oauth/token", self.issuer)
    }

    /// `<issuer>/oauth/revoke`.
    pub fn revocation_endpoint(&self) -> String {
        format!("{}/oauth/revoke", self.issuer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    #[tokio::test]
    async fn the_sampler_stores_a_few_refusals_per_interval_and_counts_the_rest() {
        let interval = Duration::from_millis(100);
        let sampler = RefusalSampler::new(2, interval, t0());
        let mut flush_at = Vec::new();
        let mut stored = 0;
        for n in 0..5 {
            let reason = if n % 2 == 0 {
                "invalid_client"
            } else {
                "invalid_request"
            };
            let s = sampler.admit(reason, t0());
            assert!(s.summary.is_none());
            stored += usize::from(s.store);
            flush_at.extend(s.flush_at);
        }
        assert_eq!(stored, 2);
        assert_eq!(flush_at.len(), 1, "one flush per interval");
        assert_eq!(sampler.flush(t0()), None, "the interval is not over");
        tokio::time::sleep_until(flush_at[0]).await;
        let later = t0() + chrono::TimeDelta::seconds(1);
        assert_eq!(
            sampler.flush(later),
            Some(Skipped {
                count: 3,
                by_reason: vec![("invalid_client", 2), ("invalid_request", 1)],
                from: t0(),
                to: later,
            })
        );
        // A new interval: stored again, nothing left to summarize.
        assert_eq!(sampler.flush(later), None);
        assert!(sampler.admit("invalid_client", later).store);
    }

    #[tokio::test]
    async fn a_refusal_after_the_interval_carries_the_summary_of_the_last_one() {
        let sampler = RefusalSampler::new(1, Duration::from_millis(50), t0());
        assert!(sampler.admit("invalid_client", t0()).store);
        let skipped = sampler.admit("invalid_client", t0());
        assert!(!skipped.store);
        tokio::time::sleep(Duration::from_millis(60)).await;
        let next = sampler.admit("unsupported_grant_type", t0());
        assert!(next.store);
        assert_eq!(next.summary.map(|s| s.count), Some(1));
        // The timer that wakes up later finds nothing more to write.
        tokio::time::sleep_until(skipped.flush_at.unwrap()).await;
        assert_eq!(sampler.flush(t0()), None);
    }

    #[test]
    fn the_key_cache_decodes_a_key_once_and_refuses_what_is_not_a_key() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key();
        let text = format!("ed25519/{}", hex::encode(key.as_bytes()));
        let typed = AgentKey::parse(&text).unwrap();
        let cache = KeyCache::default();
        assert_eq!(cache.verifying_key(&typed), Some(key));
        assert_eq!(cache.verifying_key(&typed), Some(key));
        assert_eq!(cache.keys.read().unwrap().len(), 1);
        // Well-formed bytes that are no point of the curve.
        let off_curve = (0..=u8::MAX)
            .map(|b| [b; 32])
            .find(|bytes| VerifyingKey::from_bytes(bytes).is_err())
            .unwrap();
        let off_curve = AgentKey::parse(&format!("ed25519/{}", hex::encode(off_curve))).unwrap();
        assert_eq!(cache.verifying_key(&off_curve), None);
        assert_eq!(cache.keys.read().unwrap().len(), 1);
    }

    #[test]
    fn the_outage_fallback_catches_a_replay_and_refuses_when_full_rather_than_growing() {
        let fallback = Fallback::with_capacity(3, 2);
        let until = t0() + chrono::TimeDelta::seconds(60);
        assert_eq!(
            fallback.insert_once("agent://a", "assertion:1", until, t0()),
            Some(true)
        );
        assert_eq!(
            fallback.insert_once("agent://a", "assertion:1", until, t0()),
            Some(false),
            "a replay is caught"
        );
        assert_eq!(
            fallback.insert_once("agent://a", "dpop:1", until, t0()),
            Some(true)
        );
        assert_eq!(
            fallback.insert_once("agent://a", "dpop:2", until, t0()),
            None,
            "one client's share is full: refused"
        );
        assert_eq!(
            fallback.insert_once("agent://b", "dpop:3", until, t0()),
            Some(true)
        );
        assert_eq!(
            fallback.insert_once("agent://c", "dpop:4", until, t0()),
            None,
            "the whole cache is full: refused, not grown"
        );
        assert_eq!(fallback.replay.len(), 3);
        assert_eq!(
            fallback.insert_once("agent://c", "dpop:5", t0(), t0()),
            Some(false),
            "a key that already expired is never accepted"
        );
        // Once the keys expire they leave, and the cache takes keys again.
        let later = until + chrono::TimeDelta::seconds(1);
        let after = later + chrono::TimeDelta::seconds(60);
        assert_eq!(
            fallback.insert_once("agent://c", "dpop:4", after, later),
            Some(true)
        );
        assert_eq!(fallback.replay.len(), 1);
    }
}
