//! The `[clients]` table: how Client ID Metadata Documents are fetched.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::server::config::Ttl;

/// Settings of [`ClientMetadataFetcher`](super::ClientMetadataFetcher)
/// (`[clients]` in the configuration file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientsConfig {
    /// Accept `client_id`s that are https URLs of Client ID Metadata
    /// Documents. When off, every such `client_id` is refused.
    pub metadata_documents: bool,
    /// Fetch documents from loopback, private, link-local and other
    /// non-public addresses, and over plain `http`. For tests and closed
    /// networks only.
    pub allow_private_addresses: bool,
    /// Time for one fetch: name resolution, connection, headers and body.
    pub fetch_timeout: Ttl,
    /// Largest document, bytes (the fetch is cut off past it).
    pub max_document_bytes: usize,
    /// Least time a fetched document is kept, whatever its `max-age` says
    /// (`no-store` and `no-cache` are honoured: not kept at all).
    pub min_cache: Ttl,
    /// Most time a fetched document is kept, and how long one without
    /// `Cache-Control: max-age` is kept.
    pub max_cache: Ttl,
    /// How long a failed fetch or a refused document is remembered (the
    /// same `client_id` is refused without fetching again meanwhile).
    pub failure_cache: Ttl,
    /// Documents and failures kept at once; the one closest to expiry goes
    /// first beyond it.
    pub cache_entries: usize,
    /// Fetches started per minute, all hosts together; beyond it a
    /// `client_id` that is not cached is refused until the minute is over.
    pub fetches_per_minute: u32,
    /// Fetches from one host at once.
    pub per_host_fetches: usize,
    /// Fetches at once, all hosts together.
    pub max_concurrent_fetches: usize,
    /// A PEM file of one more root certificate to trust when fetching
    /// documents (besides the usual web roots). For tests and closed
    /// networks only; unreadable, it makes every fetch fail.
    pub extra_root_cert_file: Option<std::path::PathBuf>,
}

impl Default for ClientsConfig {
    fn default() -> Self {
        Self {
            metadata_documents: true,
            allow_private_addresses: false,
            fetch_timeout: Ttl(Duration::from_secs(2)),
            max_document_bytes: 5 * 1024,
            min_cache: Ttl(Duration::from_secs(60)),
            max_cache: Ttl(Duration::from_secs(24 * 3600)),
            failure_cache: Ttl(Duration::from_secs(30)),
            cache_entries: 1000,
            fetches_per_minute: 60,
            per_host_fetches: 2,
            max_concurrent_fetches: 16,
            extra_root_cert_file: None,
        }
    }
}

impl ClientsConfig {
    /// Checks the bounds; the message names the setting.
    pub fn check(&self) -> Result<(), String> {
        let t = self.fetch_timeout.0;
        if t.is_zero() || t > Duration::from_secs(30) {
            return Err("clients.fetch_timeout must be between 1s and 30s".into());
        }
        if !(512..=256 * 1024).contains(&self.max_document_bytes) {
            return Err("clients.max_document_bytes must be between 512 and 262144".into());
        }
        if self.min_cache.0 > self.max_cache.0 || self.max_cache.0 > Duration::from_secs(7 * 86400)
        {
            return Err(
                "clients.min_cache must not exceed clients.max_cache (at most 7 days)".into(),
            );
        }
        if self.failure_cache.0 > Duration::from_secs(3600) {
            return Err("clients.failure_cache must be at most 1h".into());
        }
        if !(1..=1_000_000).contains(&self.cache_entries) {
            return Err("clients.cache_entries must be between 1 and 1000000".into());
        }
        if self.fetches_per_minute == 0
            || self.per_host_fetches == 0
            || !(1..=1024).contains(&self.max_concurrent_fetches)
        {
            return Err("clients.fetches_per_minute, per_host_fetches and max_concurrent_fetches must be at least 1 (max_concurrent_fetches at most 1024)".into());
        }
        Ok(())
    }
}
