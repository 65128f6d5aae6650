//! Where the verifier's root public keys come from ([`KeySource`]), and
//! reading or fetching a JWKS document (size-bounded) for it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use super::verifier::Verifier;
use crate::token::KeySet;

/// Where the root public keys come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// A fixed key set.
    Keys(KeySet),
    /// A JWKS document on disk, read again on an unknown `kid`.
    JwksFile(PathBuf),
    /// A JWKS document over HTTP(S) (for example the issuer's
    /// `/.well-known/jwks.json`), fetched again on an unknown `kid`.
    JwksUrl(String),
}

/// Reads or fetches a JWKS document.
pub(super) async fn load_keys(
    source: &KeySource,
    http: &reqwest::Client,
) -> Result<KeySet, String> {
    const MAX_JWKS: usize = 256 * 1024;
    match source {
        KeySource::Keys(k) => Ok(k.clone()),
        KeySource::JwksFile(path) => {
            let text = tokio::fs::read_to_string(path)
                .await
                .map_err(|e| format!("{}: {e}", path.display()))?;
            KeySet::from_jwks_json(&text).map_err(|e| format!("{}: {e}", path.display()))
        }
        KeySource::JwksUrl(url) => {
            let resp = http
                .get(url)
                .send()
                .await
                .map_err(|e| format!("{url}: {e}"))?;
            if !resp.status().is_success() {
                return Err(format!("{url}: HTTP {}", resp.status().as_u16()));
            }
            if resp.content_length().is_some_and(|n| n > MAX_JWKS as u64) {
                return Err(format!(
                    "{url}: the document is larger than {MAX_JWKS} bytes"
                ));
            }
            let body = resp.bytes().await.map_err(|e| format!("{url}: {e}"))?;
            if body.len() > MAX_JWKS {
                return Err(format!(
                    "{url}: the document is larger than {MAX_JWKS} bytes"
                ));
            }
            let text = std::str::from_utf8(&body).map_err(|_| format!("{url}: not UTF-8"))?;
            KeySet::from_jwks_json(text).map_err(|e| format!("{url}: {e}"))
        }
    }
}

impl Verifier {
    /// Fetches the key set again, at most once per interval; whether it
    /// changed.
    pub(super) async fn refetch(&self) -> bool {
        let inner = &self.inner;
        if matches!(inner.source, KeySource::Keys(_)) {
            return false;
        }
        {
            let Ok(mut last) = inner.last_fetch.lock() else {
                return false;
            };
            if last.is_some_and(|t| t.elapsed() < inner.refetch_interval) {
                return false;
            }
            *last = Some(Instant::now());
        }
        match load_keys(&inner.source, &inner.http).await {
            Ok(keys) => match inner.keys.write() {
                Ok(mut slot) => {
                    let changed = **slot != keys;
                    *slot = Arc::new(keys);
                    changed
                }
                Err(_) => false,
            },
            Err(e) => {
                tracing::warn!(error = %e, "key set refetch failed; keeping the cached keys");
                false
            }
        }
    }
}
