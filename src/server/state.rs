//! Shared state of the issuer: configuration, stores, key ring, metrics,
//! clock. Handlers receive it through axum's `State`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use chrono::{DateTime, Utc};
use ed25519_dalek::VerifyingKey;

use super::config::Config;
use super::keyring::KeyRing;
use super::metrics::Metrics;
use crate::jose;
use crate::store::{AgentRecord, Stores};
use crate::token::{parse_public_key, Limits};

/// The source of the current time (the token core never reads it itself).
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one place the issuer reads the clock
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

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
}

/// How many decoded keys [`KeyCache`] holds before it starts over.
const KEY_CACHE_MAX: usize = 4096;

/// Agents' public keys (`ed25519/<hex>`, as stored in agent records),
/// decoded once per process instead of on every client authentication.
///
/// Decoding a key decompresses a curve point, twice on the way from text
/// to a verifying key: about a fifth of the cost of the signature check it
/// serves. The cache maps the key's text to the decoded key, a pure
/// function of the text, so it never needs invalidating: a re-registered
/// agent with a new key is looked up under the new text. It is bounded by
/// starting over when full.
#[derive(Default)]
pub struct KeyCache {
    keys: RwLock<HashMap<String, VerifyingKey>>,
}

impl KeyCache {
    /// The verifying key written as `text`, or `None` if `text` is not an
    /// Ed25519 public key.
    pub fn verifying_key(&self, text: &str) -> Option<VerifyingKey> {
        let known = self
            .keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(text)
            .copied();
        if known.is_some() {
            return known;
        }
        let key = parse_public_key(text)
            .ok()
            .and_then(|k| jose::from_biscuit_key(&k).ok())?;
        let mut keys = self.keys.write().unwrap_or_else(|p| p.into_inner());
        if keys.len() >= KEY_CACHE_MAX {
            keys.clear();
        }
        keys.insert(text.to_owned(), key);
        Some(key)
    }
}

/// How long an agent record seen by this process may stand in for the store.
const FALLBACK_AGENT_MAX_AGE: chrono::Duration = chrono::Duration::minutes(5);

/// In-process stand-ins used only while the store is unreachable and
/// `store_outage = "local"`.
#[derive(Default)]
pub struct Fallback {
    agents: RwLock<HashMap<String, (AgentRecord, DateTime<Utc>)>>,
    replay: Mutex<HashMap<String, DateTime<Utc>>>,
}

impl Fallback {
    /// Remembers an agent record read from the store.
    pub fn remember(&self, record: &AgentRecord, now: DateTime<Utc>) {
        let mut g = self.agents.write().unwrap_or_else(|p| p.into_inner());
        g.insert(record.id.clone(), (record.clone(), now));
    }

    /// The record of `id` if this process read it recently.
    pub fn agent(&self, id: &str, now: DateTime<Utc>) -> Option<AgentRecord> {
        let g = self.agents.read().unwrap_or_else(|p| p.into_inner());
        g.get(id)
            .filter(|(_, seen)| now - *seen <= FALLBACK_AGENT_MAX_AGE)
            .map(|(r, _)| r.clone())
    }

    /// Accepts `key` once until `until` (this process only).
    pub fn insert_once(&self, key: &str, until: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        let mut g = self.replay.lock().unwrap_or_else(|p| p.into_inner());
        g.retain(|_, exp| *exp > now);
        if until <= now || g.contains_key(key) {
            return false;
        }
        g.insert(key.to_owned(), until);
        true
    }
}

impl AppState {
    /// Builds the state.
    pub fn new(config: Config, stores: Stores, ring: KeyRing, clock: Arc<dyn Clock>) -> Self {
        let limits = Limits {
            max_token_bytes: config.max_token_bytes,
            ..Limits::default()
        };
        Self {
            issuer: config.issuer().into(),
            config: Arc::new(config),
            stores,
            keys: Arc::new(RwLock::new(Arc::new(ring))),
            metrics: Arc::new(Metrics::default()),
            clock,
            limits,
            fallback: Arc::new(Fallback::default()),
            agent_keys: Arc::new(KeyCache::default()),
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

    #[test]
    fn the_key_cache_decodes_a_key_once_and_refuses_what_is_not_a_key() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key();
        let text = format!("ed25519/{}", hex::encode(key.as_bytes()));
        let cache = KeyCache::default();
        assert_eq!(cache.verifying_key(&text), Some(key));
        assert_eq!(cache.verifying_key(&text), Some(key));
        assert_eq!(cache.keys.read().unwrap().len(), 1);
        assert_eq!(cache.verifying_key("ed25519/zz"), None);
        assert_eq!(
            cache.verifying_key(&text.replace("ed25519/", "p256/")),
            None
        );
        assert_eq!(cache.keys.read().unwrap().len(), 1);
    }
}
