//! The one in-process replay cache, used by the verifier (DPoP `jti`s) and
//! by the issuer (its store-outage fallback), and the one way to name a DPoP
//! proof in any replay cache ([`dpop_replay_key`]).
//!
//! [`ReplayGuard`] is synchronous and answers for one process; the issuer's
//! shared, asynchronous cache is `store::ReplayCache` (Redis or the embedded
//! store), which this one stands in for while the store is down. Both take a
//! key until a time and say whether it was fresh; both are bounded.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

/// The replay key of a DPoP proof: SHA-256 of the key's thumbprint (`jkt`),
/// a newline and the proof's `jti`. The issuer stores it as
/// `dpop:<hex>`; the verifier as the 32 bytes. A thumbprint is base64url,
/// so the newline cannot be part of it and no two pairs share a key.
pub fn dpop_replay_key(jkt: &str, jti: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(jkt.as_bytes());
    h.update(b"\n");
    h.update(jti.as_bytes());
    h.finalize().into()
}

/// A replay cache for one-time keys (DPoP `jti`s), for example one shared
/// by several instances of a tool server.
///
/// The verifier records a proof only once the request it came with is
/// otherwise allowed (for `Verifier::authenticate`: once everything that
/// does not depend on the operation passed), so that refused requests never
/// take room in the cache.
pub trait ReplayGuard: Send + Sync + fmt::Debug {
    /// Records `key` until `until`; `Some(true)` the first time,
    /// `Some(false)` for a replay, `None` when the cache cannot answer
    /// (full or unreachable), which the caller treats as a refusal.
    fn insert_once(&self, key: [u8; 32], until: DateTime<Utc>, now: DateTime<Utc>) -> Option<bool>;

    /// [`Self::insert_once`] on behalf of `owner`: at the verifier, the JWK
    /// thumbprint of the holder key for a bound token, `token:<token id>`
    /// for a bearer token; at the issuer, the client's agent id. A guard
    /// should bound how many entries one owner holds, so that one caller
    /// cannot crowd the others out; the default ignores the owner.
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
///
/// Expired entries leave in expiry order as later inserts pass them, so an
/// insert costs O(log n) amortized and the cache never scans itself. When
/// full (in total, or for the owner) it refuses (`None`) rather than grow.
#[derive(Debug)]
pub struct MemoryReplayGuard {
    state: Mutex<ReplayState>,
    capacity: usize,
    per_owner: usize,
}

#[derive(Debug, Default)]
struct ReplayState {
    /// Key -> (remembered until, owner).
    seen: HashMap<[u8; 32], (i64, Option<[u8; 32]>)>,
    /// The same entries in expiry order.
    by_expiry: BTreeSet<(i64, [u8; 32])>,
    /// Entries per owner.
    per_owner: HashMap<[u8; 32], usize>,
}

impl ReplayState {
    fn owner_count(&self, owner: Option<&[u8; 32]>) -> usize {
        owner
            .and_then(|o| self.per_owner.get(o))
            .copied()
            .unwrap_or(0)
    }

    /// Drops the entries that expired before `now`, oldest first.
    fn expire(&mut self, now: i64) {
        while let Some(&(until, key)) = self.by_expiry.first() {
            if until >= now {
                break;
            }
            self.by_expiry.pop_first();
            self.forget(&key);
        }
    }

    fn forget(&mut self, key: &[u8; 32]) {
        if let Some((_, Some(owner))) = self.seen.remove(key) {
            if let Some(n) = self.per_owner.get_mut(&owner) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.per_owner.remove(&owner);
                }
            }
        }
    }
}

impl MemoryReplayGuard {
    /// Holds at most `capacity` unexpired keys, and at most a sixteenth of
    /// that for one owner (see [`Self::per_key`]).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            state: Mutex::new(ReplayState::default()),
            capacity,
            per_owner: (capacity / 16).max(1),
        }
    }

    /// Holds at most `n` unexpired keys of one owner (one holder key, one
    /// bearer token, one client); past that, that owner's inserts are
    /// refused (`None`; the verifier answers `overloaded`, 503) until its
    /// keys expire, and nobody else's are.
    pub fn per_key(mut self, n: usize) -> Self {
        self.per_owner = n.clamp(1, self.capacity);
        self
    }

    /// How many keys are held (expired ones included until an insert
    /// passes them).
    pub fn len(&self) -> usize {
        self.state.lock().map(|s| s.seen.len()).unwrap_or(0)
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
        state.expire(now);
        if state.seen.contains_key(&key) {
            return Some(false);
        }
        if state.seen.len() >= self.capacity || state.owner_count(owner.as_ref()) >= self.per_owner
        {
            return None;
        }
        let until = until.timestamp();
        state.seen.insert(key, (until, owner));
        state.by_expiry.insert((until, key));
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

    // (The trait's signature, repeated by the implementation.)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
    }

    #[test]
    fn a_replay_is_caught_until_it_expires() {
        let g = MemoryReplayGuard::new(4);
        let k = dpop_replay_key("jkt", "1");
        assert_eq!(g.insert_once(k, at(10), at(0)), Some(true));
        assert_eq!(g.insert_once(k, at(10), at(5)), Some(false));
        assert_eq!(g.insert_once(k, at(10), at(10)), Some(false));
        assert_eq!(g.insert_once(k, at(20), at(11)), Some(true));
    }

    #[test]
    fn full_refuses_rather_than_grows_and_expiry_makes_room() {
        let g = MemoryReplayGuard::new(3).per_key(2);
        let key = |i: u8| [i; 32];
        assert_eq!(g.insert_once_for("a", key(1), at(10), at(0)), Some(true));
        assert_eq!(g.insert_once_for("a", key(2), at(10), at(0)), Some(true));
        // The owner's share is full; somebody else still gets in.
        assert_eq!(g.insert_once_for("a", key(3), at(10), at(0)), None);
        assert_eq!(g.insert_once_for("b", key(4), at(10), at(0)), Some(true));
        // The whole cache is full.
        assert_eq!(g.insert_once_for("c", key(5), at(10), at(0)), None);
        assert_eq!(g.len(), 3);
        // Past the expiry, the old keys leave and the owner may insert again.
        assert_eq!(g.insert_once_for("a", key(3), at(30), at(11)), Some(true));
        assert_eq!(g.len(), 1);
    }

    #[test]
    fn the_key_separates_thumbprint_and_jti() {
        assert_ne!(dpop_replay_key("ab", "c"), dpop_replay_key("a", "bc"));
        // The issuer's stored form, unchanged: SHA-256 of "jkt\njti".
        assert_eq!(
            dpop_replay_key("k", "j"),
            <[u8; 32]>::from(Sha256::digest(b"k\nj"))
        );
    }
}
