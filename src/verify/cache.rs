//! What the verifier remembers between calls: verified tokens by SHA-256
//! of their text ([`Entry`], with the decisions remembered per token for
//! the exact question, [`MemoKey`]).
//!
//! Tokens whose signatures and chain verified are kept by SHA-256 of the
//! token text, with the root key they verified under (a key dropped from
//! the key set invalidates them). Decisions are remembered per token for the
//! exact question asked: operation, resource, whether the holder was proven,
//! and the whole second of the request time (the token's checks compare
//! whole seconds, so within one second the Datalog answer cannot change).
//! Revocation and staleness are looked at on every call, before any
//! remembered answer. Requests carrying extra facts are always evaluated.

use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use super::verifier::Verifier;
use crate::token::{self, Denial, Reason, Verified};

/// A verified token and the decisions remembered for it.
#[derive(Debug)]
pub(super) struct Entry {
    pub(super) verified: Verified,
    pub(super) memo: Mutex<Vec<(MemoKey, Result<token::Authorized, Denial>)>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct MemoKey {
    pub(super) operation: String,
    pub(super) resource: String,
    pub(super) holder_proven: bool,
    pub(super) amount: Option<crate::token::Amount>,
    pub(super) second: i64,
}

pub(super) const MEMO_PER_TOKEN: usize = 8;

impl Verifier {
    /// The verified token for `token`, from the cache or verified now.
    pub(super) fn entry(&self, token: &str) -> Result<Arc<Entry>, Denial> {
        let inner = &self.inner;
        let keys = inner
            .keys
            .read()
            .map(|k| Arc::clone(&k))
            .map_err(|_| Denial::new(Reason::UnknownKeyId, "the key set is unavailable"))?;
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if inner.cache_capacity > 0 {
            let hit = inner.cache.read().ok().and_then(|c| c.get(&hash).cloned());
            if let Some(entry) = hit {
                let (id, key) = entry.verified.root_key();
                if keys.get(id) == Some(key) {
                    return Ok(entry);
                }
            }
        }
        let bytes = token::decode(token, &inner.limits).map_err(Denial::from)?;
        let verified = Verified::from_bytes(&bytes, &keys, &inner.limits)?;
        let entry = Arc::new(Entry {
            verified,
            memo: Mutex::new(Vec::new()),
        });
        if inner.cache_capacity > 0 {
            if let Ok(mut cache) = inner.cache.write() {
                if cache.len() >= inner.cache_capacity {
                    let now = self.now();
                    cache.retain(|_, e| e.verified.expires_at() >= now);
                    while cache.len() >= inner.cache_capacity {
                        let Some(k) = cache.keys().next().copied() else {
                            break;
                        };
                        cache.remove(&k);
                    }
                }
                cache.insert(hash, Arc::clone(&entry));
            }
        }
        Ok(entry)
    }
}
