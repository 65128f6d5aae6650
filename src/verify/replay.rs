//! The verifier's DPoP replay cache: the [`ReplayGuard`] a caller may
//! supply, and the default [`MemoryReplayGuard`], bounded in total and per
//! owner.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

/// A caller-supplied replay cache for DPoP `jti`s, for example one shared
/// by several instances of a tool server.
///
/// The verifier records a proof only once the request it came with is
/// otherwise allowed (for [`Verifier::authenticate`]: once everything that
/// does not depend on the operation passed), so that refused requests never
/// take room in the cache.
pub trait ReplayGuard: Send + Sync + fmt::Debug {
    /// Records `key` until `until`; `Some(true)` the first time,
    /// `Some(false)` for a replay, `None` when the cache cannot answer
    /// (full or unreachable), which the verifier treats as a refusal.
    fn insert_once(&self, key: [u8; 32], until: DateTime<Utc>, now: DateTime<Utc>) -> Option<bool>;

    /// [`Self::insert_once`] on behalf of `owner`: the JWK thumbprint of
    /// the holder key for a bound token, `token:<token id>` for a bearer
    /// token. A guard should bound how many entries one owner holds, so
    /// that one caller cannot crowd the others out; the default ignores the
    /// owner.
    fn insert_once_for(
        &self,
        owner: &str,
        key: [u8; 32],
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Option<bool> {
        let _ = owner;
        self.insert_once(key, until, now)
    }
}

/// The default [`ReplayGuard`]: in memory, bounded in total and per owner.
#[derive(Debug)]
pub struct MemoryReplayGuard {
    state: Mutex<ReplayState>,
    capacity: usize,
    per_owner: usize,
}

#[derive(Debug, Default)]
struct ReplayState {
    /// Proof key -> (remembered until, owner).
    seen: HashMap<[u8; 32], (i64, Option<[u8; 32]>)>,
    /// Unexpired-or-not-yet-purged entries per owner.
    per_owner: HashMap<[u8; 32], usize>,
    /// The second of the last purge: a full cache purges at most once a second.
    purged_at: Option<i64>,
}

impl ReplayState {
    fn owner_count(&self, owner: Option<&[u8; 32]>) -> usize {
        owner
            .and_then(|o| self.per_owner.get(o))
            .copied()
            .unwrap_or(0)
    }

    /// Drops expired entries and recounts the owners.
    fn purge(&mut self, now: i64) {
        self.purged_at = Some(now);
        self.seen.retain(|_, (until, _)| *until >= now);
        self.per_owner.clear();
        for (_, owner) in self.seen.values() {
            if let Some(o) = owner {
                let n = self.per_owner.entry(*o).or_insert(0);
                *n = n.saturating_add(1);
            }
        }
    }
}

impl MemoryReplayGuard {
    /// Holds at most `capacity` unexpired proofs, and at most a sixteenth of
    /// that for one owner (see [`Self::per_key`]).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            state: Mutex::new(ReplayState::default()),
            capacity,
            per_owner: (capacity / 16).max(1),
        }
    }

    /// Holds at most `n` unexpired proofs of one owner (one holder key, or
    /// one bearer token); past that, that owner's requests are refused as
    /// `overloaded` (503) until its proofs expire, and nobody else's are.
    pub fn per_key(mut self, n: usize) -> Self {
        self.per_owner = n.clamp(1, self.capacity);
        self
    }

    fn insert(
        &self,
        owner: Option<[u8; 32]>,
        key: [u8; 32],
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Option<bool> {
        let mut state = self.state.lock().ok()?;
        let now = now.timestamp();
        if let Some(&(exp, _)) = state.seen.get(&key) {
            if exp >= now {
                return Some(false);
            }
        }
        let full = |s: &ReplayState| {
            s.seen.len() >= self.capacity || s.owner_count(owner.as_ref()) >= self.per_owner
        };
        if full(&state) {
            if state.purged_at != Some(now) {
                state.purge(now);
            }
            if full(&state) {
                return None;
            }
        }
        if let Some((_, Some(previous))) = state.seen.insert(key, (until.timestamp(), owner)) {
            // An expired entry under the same key, replaced.
            if let Some(n) = state.per_owner.get_mut(&previous) {
                *n = n.saturating_sub(1);
            }
        }
        if let Some(o) = owner {
            let n = state.per_owner.entry(o).or_insert(0);
            *n = n.saturating_add(1);
        }
        Some(true)
    }
}

impl ReplayGuard for MemoryReplayGuard {
    fn insert_once(&self, key: [u8; 32], until: DateTime<Utc>, now: DateTime<Utc>) -> Option<bool> {
        self.insert(None, key, until, now)
    }

    fn insert_once_for(
        &self,
        owner: &str,
        key: [u8; 32],
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Option<bool> {
        self.insert(
            Some(Sha256::digest(owner.as_bytes()).into()),
            key,
            until,
            now,
        )
    }
}
