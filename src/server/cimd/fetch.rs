//! Fetching and caching metadata documents, with bounds on everything a
//! stranger can cause: time, size, addresses, cache entries and fetches.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, ACCEPT, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::Url;
use tokio::sync::Semaphore;

use super::addr::is_public;
use super::client_id::check_client_id_url;
use super::{CimdError, ClientMetadata, ClientsConfig};
use crate::people::IdpKeys;

/// Most addresses one host name may resolve to (all are checked).
const MAX_ADDRESSES: usize = 16;

/// Counters of a [`ClientMetadataFetcher`] (monotonic).
#[derive(Debug, Default)]
pub struct CimdStats {
    /// Fetches started.
    pub fetches: AtomicU64,
    /// Answers from the cache (documents and remembered failures).
    pub cache_hits: AtomicU64,
    /// Fetches that ended in a refusal (any [`CimdError`] but `Busy`).
    pub failures: AtomicU64,
    /// Requests refused without a fetch because of the fetch limits.
    pub busy: AtomicU64,
    /// Cache entries dropped to make room.
    pub evictions: AtomicU64,
}

/// Fetches, checks and caches Client ID Metadata Documents.
///
/// [`get`](Self::get) answers from the cache while an entry lives (a
/// document for its `Cache-Control: max-age` within `[clients] min_cache ..
/// max_cache`, a failure for `failure_cache`), and otherwise fetches, if
/// the limits allow: `fetches_per_minute` in all, `per_host_fetches` per
/// host and `max_concurrent_fetches` at once. A request beyond them is
/// refused with [`CimdError::Busy`] rather than waiting, so a flood of
/// unknown URLs costs at most those fetches and `cache_entries` entries.
pub struct ClientMetadataFetcher {
    config: ClientsConfig,
    cache: Mutex<HashMap<String, Entry>>,
    hosts: Mutex<HashMap<String, usize>>,
    budget: Mutex<Budget>,
    fetching: Arc<Semaphore>,
    stats: CimdStats,
    /// `[clients] extra_root_cert_file`, read once: `Err` when it could
    /// not be read (then every fetch fails).
    extra_root: Option<Result<reqwest::Certificate, ()>>,
}

impl std::fmt::Debug for ClientMetadataFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientMetadataFetcher")
            .field("config", &self.config)
            .field("cached", &self.cached_len())
            .finish()
    }
}

struct Entry {
    value: Result<Cached, CimdError>,
    until: DateTime<Utc>,
}

/// What the cache keeps: a client's document, or the key set at a
/// document's `jwks_uri` (keyed with a leading space, which no URL has).
#[derive(Clone)]
enum Cached {
    Document(Arc<ClientMetadata>),
    Keys(Arc<IdpKeys>),
}

#[derive(Default)]
struct Budget {
    since: Option<DateTime<Utc>>,
    used: u32,
}

impl ClientMetadataFetcher {
    /// A fetcher with these settings (see [`ClientsConfig::check`]).
    pub fn new(config: ClientsConfig) -> Self {
        let permits = config.max_concurrent_fetches.max(1);
        let extra_root = config.extra_root_cert_file.as_ref().map(|path| {
            std::fs::read(path)
                .ok()
                .and_then(|pem| reqwest::Certificate::from_pem(&pem).ok())
                .ok_or_else(|| {
                    tracing::warn!(
                        file = %path.display(),
                        "[clients] extra_root_cert_file cannot be read: every metadata fetch will fail"
                    );
                })
        });
        Self {
            extra_root,
            config,
            cache: Mutex::new(HashMap::new()),
            hosts: Mutex::new(HashMap::new()),
            budget: Mutex::new(Budget::default()),
            fetching: Arc::new(Semaphore::new(permits)),
            stats: CimdStats::default(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &ClientsConfig {
        &self.config
    }

    /// The counters.
    pub fn stats(&self) -> &CimdStats {
        &self.stats
    }

    /// Entries in the cache now (documents and failures).
    pub fn cached_len(&self) -> usize {
        self.cache.lock().map_or(0, |c| c.len())
    }

    /// Whether `client_id` is meant as a metadata document URL (it starts
    /// with `https://`, or `http://` when private addresses are allowed)
    /// rather than the id of a registered agent.
    pub fn is_metadata_url(&self, client_id: &str) -> bool {
        client_id.starts_with("https://")
            || (self.config.allow_private_addresses && client_id.starts_with("http://"))
    }

    /// The checked metadata document of `client_id` at `now`: from the
    /// cache, or fetched (see the type's documentation for the limits).
    pub async fn get(
        &self,
        client_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Arc<ClientMetadata>, CimdError> {
        if !self.config.metadata_documents {
            return Err(CimdError::Disabled);
        }
        let url = check_client_id_url(client_id, self.config.allow_private_addresses)?;
        let parse = |body: &[u8]| {
            ClientMetadata::from_document(client_id, body).map(|m| Cached::Document(Arc::new(m)))
        };
        match self
            .get_cached(client_id.to_owned(), &url, now, parse)
            .await?
        {
            Cached::Document(m) => Ok(m),
            Cached::Keys(_) => Err(CimdError::Json),
        }
    }

    /// The key set at a document's `jwks_uri` (an https URL, checked by
    /// [`ClientMetadata`]), fetched and cached under the same bounds and
    /// address rules as documents. Refusals are the same [`CimdError`]s,
    /// with [`CimdError::Field`]`("jwks_uri", ..)` for a bad key set.
    pub async fn get_jwks(
        &self,
        jwks_uri: &str,
        now: DateTime<Utc>,
    ) -> Result<Arc<IdpKeys>, CimdError> {
        if !self.config.metadata_documents {
            return Err(CimdError::Disabled);
        }
        let url = check_client_id_url(jwks_uri, self.config.allow_private_addresses)?;
        let parse = |body: &[u8]| {
            let text = std::str::from_utf8(body).map_err(|_| CimdError::Json)?;
            IdpKeys::from_jwks_json(text)
                .map(|k| Cached::Keys(Arc::new(k)))
                .map_err(|_| CimdError::Field("jwks_uri", "not a usable JWK set"))
        };
        match self
            .get_cached(format!(" {jwks_uri}"), &url, now, parse)
            .await?
        {
            Cached::Keys(k) => Ok(k),
            Cached::Document(_) => Err(CimdError::Json),
        }
    }

    async fn get_cached(
        &self,
        key: String,
        url: &Url,
        now: DateTime<Utc>,
        parse: impl FnOnce(&[u8]) -> Result<Cached, CimdError>,
    ) -> Result<Cached, CimdError> {
        if let Some(hit) = self.cached(&key, now) {
            self.stats.cache_hits.fetch_add(1, Ordering::Relaxed);
            return hit;
        }
        let host = url.host_str().unwrap_or_default().to_owned();
        let Some(_slot) = self.admit(&host, now) else {
            self.stats.busy.fetch_add(1, Ordering::Relaxed);
            return Err(CimdError::Busy);
        };
        self.stats.fetches.fetch_add(1, Ordering::Relaxed);
        let timeout = self.config.fetch_timeout.0;
        let result = match tokio::time::timeout(timeout, self.fetch(url)).await {
            Ok(r) => r.and_then(|(body, keep)| parse(&body).map(|v| (v, keep))),
            Err(_) => Err(CimdError::Timeout),
        };
        let (value, keep) = match result {
            Ok((value, keep)) => (Ok(value), keep),
            Err(e) => {
                self.stats.failures.fetch_add(1, Ordering::Relaxed);
                (Err(e), Some(self.config.failure_cache.0))
            }
        };
        if let Some(keep) = keep.filter(|k| !k.is_zero()) {
            let until = now + chrono::Duration::from_std(keep).unwrap_or(chrono::Duration::zero());
            self.remember(&key, value.clone(), until, now);
        }
        value
    }

    fn cached(&self, client_id: &str, now: DateTime<Utc>) -> Option<Result<Cached, CimdError>> {
        let mut cache = self.cache.lock().ok()?;
        match cache.get(client_id) {
            Some(e) if e.until > now => Some(e.value.clone()),
            Some(_) => {
                cache.remove(client_id);
                None
            }
            None => None,
        }
    }

    fn remember(
        &self,
        client_id: &str,
        value: Result<Cached, CimdError>,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) {
        let Ok(mut cache) = self.cache.lock() else {
            return;
        };
        if cache.len() >= self.config.cache_entries && !cache.contains_key(client_id) {
            cache.retain(|_, e| e.until > now);
            while cache.len() >= self.config.cache_entries {
                let Some(first) = cache
                    .iter()
                    .min_by_key(|(_, e)| e.until)
                    .map(|(k, _)| k.clone())
                else {
                    break;
                };
                cache.remove(&first);
                self.stats.evictions.fetch_add(1, Ordering::Relaxed);
            }
        }
        cache.insert(client_id.to_owned(), Entry { value, until });
    }

    /// Takes one fetch from the minute's budget, the host's and the
    /// global concurrency; `None` when any is exhausted.
    fn admit(&self, host: &str, now: DateTime<Utc>) -> Option<Slot<'_>> {
        let permit = self.fetching.clone().try_acquire_owned().ok()?;
        {
            let mut hosts = self.hosts.lock().ok()?;
            let n = hosts.entry(host.to_owned()).or_insert(0);
            if *n >= self.config.per_host_fetches {
                return None;
            }
            *n += 1;
        }
        let slot = Slot {
            fetcher: self,
            host: host.to_owned(),
            _permit: permit,
        };
        let mut budget = self.budget.lock().ok()?;
        let fresh = budget
            .since
            .is_none_or(|s| now - s >= chrono::Duration::minutes(1) || now < s);
        if fresh {
            *budget = Budget {
                since: Some(now),
                used: 0,
            };
        }
        if budget.used >= self.config.fetches_per_minute {
            return None;
        }
        budget.used += 1;
        Some(slot)
    }

    /// The body at `url` and how long it may be kept (`None`: not at all).
    async fn fetch(&self, url: &Url) -> Result<(Vec<u8>, Option<Duration>), CimdError> {
        let allow_private = self.config.allow_private_addresses;
        let host = url.host_str().ok_or(CimdError::BadUrl("it has no host"))?;
        let port = url.port_or_known_default().unwrap_or(443);
        let literal = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .ok();
        let addrs: Vec<SocketAddr> = match literal {
            Some(ip) => vec![SocketAddr::new(ip, port)],
            None => tokio::net::lookup_host((host, port))
                .await
                .map_err(|_| CimdError::Resolve)?
                .take(MAX_ADDRESSES)
                .collect(),
        };
        if addrs.is_empty() {
            return Err(CimdError::Resolve);
        }
        // Every address must pass: the connection goes to one of exactly
        // these (no second resolution between the check and the connect).
        if !allow_private && addrs.iter().any(|a| !is_public(a.ip())) {
            return Err(CimdError::ForbiddenAddress);
        }
        let timeout = self.config.fetch_timeout.0;
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(timeout)
            .timeout(timeout)
            .https_only(!allow_private);
        if literal.is_none() {
            builder = builder.resolve_to_addrs(host, &addrs);
        }
        match &self.extra_root {
            None => {}
            Some(Ok(cert)) => builder = builder.add_root_certificate(cert.clone()),
            Some(Err(())) => return Err(CimdError::Unreachable),
        }
        let client = builder.build().map_err(|_| CimdError::Unreachable)?;
        let mut response = client
            .get(url.clone())
            .header(ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    CimdError::Timeout
                } else {
                    CimdError::Unreachable
                }
            })?;
        let status = response.status();
        if status.is_redirection() {
            return Err(CimdError::Redirect(status.as_u16()));
        }
        if status != reqwest::StatusCode::OK {
            return Err(CimdError::Status(status.as_u16()));
        }
        if !is_json(response.headers()) {
            return Err(CimdError::ContentType);
        }
        let max = self.config.max_document_bytes;
        let declared = response
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > max as u64) {
            return Err(CimdError::TooLarge(max));
        }
        let keep = self.keep_for(response.headers());
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > max {
                        return Err(CimdError::TooLarge(max));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) if e.is_timeout() => return Err(CimdError::Timeout),
                Err(_) => return Err(CimdError::Unreachable),
            }
        }
        Ok((body, keep))
    }

    /// How long a document answered with these headers is kept: `None` for
    /// `no-store` or `no-cache`, else `max-age` within `[min_cache,
    /// max_cache]`, or `max_cache` when no `max-age` is given.
    fn keep_for(&self, headers: &HeaderMap) -> Option<Duration> {
        let (min, max) = (self.config.min_cache.0, self.config.max_cache.0);
        let mut max_age = None;
        for value in headers.get_all(CACHE_CONTROL) {
            let Ok(text) = value.to_str() else {
                return None;
            };
            for directive in text.split(',') {
                let directive = directive.trim().to_ascii_lowercase();
                if directive == "no-store" || directive == "no-cache" {
                    return None;
                }
                if let Some(secs) = directive.strip_prefix("max-age=") {
                    let secs = secs.trim_matches('"').parse::<u64>().unwrap_or(0);
                    max_age = Some(Duration::from_secs(secs));
                }
            }
        }
        Some(max_age.map_or(max, |age| age.clamp(min, max)))
    }
}

/// `application/json`, with or without parameters.
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

/// One admitted fetch: gives the host's slot back when dropped.
struct Slot<'a> {
    fetcher: &'a ClientMetadataFetcher,
    host: String,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if let Ok(mut hosts) = self.fetcher.hosts.lock() {
            if let Some(n) = hosts.get_mut(&self.host) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    hosts.remove(&self.host);
                }
            }
        }
    }
}
