//! The verifier's in-memory copy of revoked block ids.
//!
//! A [`RevocationSet`] answers "is any block of this token revoked?" on every
//! request, from memory. The revocation follower (Redis stream or the
//! issuer's long-poll feed) is its only writer; it inserts each revoked id
//! with the expiry of the token it belongs to, and calls
//! [`RevocationSet::purge_expired`] now and then, because a revoked token
//! that has expired is refused by its expiry check anyway.
//!
//! # Keys: a 16-byte prefix of the id
//!
//! A revocation id is a block signature (Biscuit's
//! `revocation_identifiers`): 64 bytes for Ed25519, which is what Tessera
//! mints and attenuates with. The first 32 bytes of an Ed25519 signature are
//! the encoding of the point `R = r·B`, where `r` is derived from a hash of
//! the secret key and the message, so those bytes are already uniformly
//! distributed and there is nothing to gain from hashing the id again. The
//! set keeps the first 16 bytes (128 bits) of each id and nothing else.
//!
//! Truncation only ever errs towards "revoked": a revoked id always matches
//! its own prefix, so a revoked token is never missed. A token that is *not*
//! revoked is refused by mistake only if one of its block ids shares the
//! first 16 bytes with a revoked id. For `n` revoked ids that chance is
//! `n / 2^128` per block looked up: with `n = 10^7` it is
//! `10^7 / 3.4·10^38 ≈ 2.9·10^-32`, so a million lookups a second for thirty
//! years (about `10^15` lookups) give about `3·10^-17`. Two revoked ids
//! sharing a prefix (about `n² / 2^129 ≈ 1.5·10^-25` for `n = 10^7`) is
//! harmless: they share one entry, which keeps the later expiry.
//!
//! A holder can append a block signed with a P-256 key using other tools;
//! its signature is DER, which starts with 4 or 5 fixed bytes, leaving at
//! least about 88 random bits in the prefix: `10^7 / 2^88 ≈ 3·10^-20` per
//! lookup, still negligible. The table's hash mixes all 16 bytes, so the
//! fixed bytes do not hurt the table's distribution.
//!
//! Ids shorter than 16 bytes cannot be signatures: [`RevocationSet::insert`]
//! refuses them and [`RevocationSet::contains`] reports them absent (they
//! can never have been inserted). Nothing here panics.
//!
//! # Layout and memory
//!
//! An open-addressing table with linear probing, in two parallel arrays:
//! the 16-byte keys (a lookup reads only these, four to a cache line) and
//! the expiries as `u32` seconds since the Unix epoch (read only by the
//! purge). No per-entry heap allocation: 20 bytes per slot. The capacity is
//! a power of two and the table grows (doubling) before it is more than
//! three quarters full, so memory is `20 × capacity` bytes, between about
//! 27 and 53 bytes per entry. For 1,000,000 ids the capacity is 2^21 and the
//! set takes 41,943,040 bytes (40 MiB); see [`RevocationSet::approx_bytes`]
//! and `docs/performance.md`. While growing, the old and the new arrays
//! exist together for a moment (1.5 times the new size). The purge does not
//! shrink the table; [`RevocationSet::shrink_to_fit`] does.
//!
//! The all-zero key marks an empty slot; an id whose prefix is all zeros is
//! kept aside in a field of its own, so it is still exact.
//!
//! # Hash flooding
//!
//! The ids in the table come from the issuer's feed, not from requests, and
//! lookups cannot change the table, so an attacker can only slow lookups down
//! by getting many ids that probe the same region of the table *revoked*.
//! Anyone holding a token can append blocks and grind their signatures
//! (an Ed25519 signature costs microseconds). With a public hash, landing an
//! id in a chosen region of a 2^21-slot table costs about a million
//! signatures, and linear probing makes every id landing anywhere in the
//! cluster lengthen it: a few CPU-days could buy a cluster of thousands of
//! slots, if the issuer then accepts thousands of revocations from that
//! holder. That is unlikely but not absurd, and the remedy is cheap, so the
//! hash is keyed: each set draws two random 64-bit keys (from std's
//! `RandomState`, which the operating system seeds) and the slot is the
//! folded 128-bit product `(lo ⊕ k0) × (hi ⊕ k1)` of the prefix's two
//! halves. That is not a MAC, but the keys never leave the process and table
//! positions are not observable except through timing, so grinding offline
//! is pointless. The cost is two XORs and one multiplication per lookup.
//!
//! # Concurrency
//!
//! A plain struct: `contains` takes `&self`, `insert` and `purge_expired`
//! take `&mut self`. The intended use is one writer (the follower task) and
//! many readers (requests) through a `std::sync::RwLock` (or
//! `parking_lot`'s); reads never allocate and take a few nanoseconds when the
//! table is in the cache, one memory access (under 200 ns) when it is not.
//! Writes are short, except when the table grows, which rehashes every entry
//! under the write lock (tens of milliseconds at a million ids on a slow
//! machine): load a snapshot into a new set built with
//! [`RevocationSet::with_capacity`] outside the lock and swap it in, or
//! reserve ahead with [`RevocationSet::reserve`]. Copy-on-write with
//! `arc-swap` works too (the set is `Clone`) but copies the whole table per
//! update.

use std::collections::hash_map::RandomState;
use std::collections::TryReserveError;
use std::fmt;
use std::hash::{BuildHasher, Hasher};

use chrono::{DateTime, Utc};

/// How many leading bytes of a revocation id the set keeps.
pub const PREFIX_LEN: usize = 16;

/// Bytes per slot: a 16-byte key and a 4-byte expiry.
const SLOT_BYTES: usize = PREFIX_LEN + std::mem::size_of::<u32>();

/// The smallest table allocated once the first id arrives.
const MIN_CAPACITY: usize = 16;

/// Why an id could not be added.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RevocationSetError {
    /// The id is shorter than [`PREFIX_LEN`] bytes, so it cannot be a block
    /// signature.
    #[error("a revocation id has at least {PREFIX_LEN} bytes, this one has {len}")]
    IdTooShort {
        /// The id's length in bytes.
        len: usize,
    },
    /// The table could not grow: the allocation failed or its size would
    /// overflow. The set is unchanged.
    #[error("the revocation set could not grow to {wanted} slots")]
    OutOfMemory {
        /// The number of slots the table tried to grow to.
        wanted: usize,
    },
    /// A writer panicked while holding the set; it can no longer be trusted.
    #[error("the revocation set is poisoned by a panicked writer")]
    Poisoned,
}

/// Revoked block ids, each with the expiry of its token. See the
/// [module documentation](self) for the layout, the collision bound and the
/// intended locking.
#[derive(Clone)]
pub struct RevocationSet {
    /// Slot keys: the id's first 16 bytes, little-endian; 0 is empty.
    keys: Vec<u128>,
    /// Slot expiries, seconds since the Unix epoch (rounded up).
    expiries: Vec<u32>,
    /// The entry whose prefix is all zeros, if any: its expiry.
    zero: Option<u32>,
    /// Entries in `keys` (not counting `zero`).
    in_table: usize,
    /// The hash keys.
    k0: u64,
    k1: u64,
}

impl Default for RevocationSet {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for RevocationSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RevocationSet")
            .field("len", &self.len())
            .field("capacity", &self.capacity())
            .field("approx_bytes", &self.approx_bytes())
            .finish_non_exhaustive()
    }
}

impl RevocationSet {
    /// An empty set. It allocates nothing until the first insert.
    pub fn new() -> Self {
        let state = RandomState::new();
        Self::with_hash_keys(draw_key(&state, 0), draw_key(&state, 1))
    }

    /// An empty set with room for `n` ids before it has to grow.
    pub fn with_capacity(n: usize) -> Result<Self, RevocationSetError> {
        let mut set = Self::new();
        set.reserve(n)?;
        Ok(set)
    }

    /// An empty set with the given hash keys (tests use it to make runs
    /// repeatable).
    fn with_hash_keys(k0: u64, k1: u64) -> Self {
        Self {
            keys: Vec::new(),
            expiries: Vec::new(),
            zero: None,
            in_table: 0,
            k0,
            k1,
        }
    }

    /// How many revoked ids the set holds (ids sharing a 16-byte prefix
    /// count once).
    pub fn len(&self) -> usize {
        self.in_table + usize::from(self.zero.is_some())
    }

    /// Whether the set holds no ids.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of slots in the table (a power of two, or 0).
    pub fn capacity(&self) -> usize {
        self.keys.len()
    }

    /// The memory the set uses, in bytes: the struct and both arrays as
    /// allocated. There is nothing else on the heap.
    pub fn approx_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.keys.capacity() * std::mem::size_of::<u128>()
            + self.expiries.capacity() * std::mem::size_of::<u32>()
    }

    /// Whether `id` is revoked. Ids shorter than [`PREFIX_LEN`] are never in
    /// the set.
    #[inline]
    pub fn contains(&self, id: &[u8]) -> bool {
        match prefix(id) {
            Some(0) => self.zero.is_some(),
            Some(key) => self.find(key).is_some(),
            None => false,
        }
    }

    /// Whether any of a token's block ids is revoked.
    pub fn contains_any<'a>(&self, ids: impl IntoIterator<Item = &'a [u8]>) -> bool {
        ids.into_iter().any(|id| self.contains(id))
    }

    /// Adds a revoked id, with the expiry of the token it belongs to.
    /// Returns whether the id is new; for an id already present the later
    /// expiry is kept. The time is only stored, never compared with a clock.
    pub fn insert(
        &mut self,
        id: &[u8],
        expires_at: DateTime<Utc>,
    ) -> Result<bool, RevocationSetError> {
        let key = prefix(id).ok_or(RevocationSetError::IdTooShort { len: id.len() })?;
        let expiry = expiry_secs(expires_at);
        if key == 0 {
            let new = self.zero.is_none();
            self.zero = Some(self.zero.map_or(expiry, |e| e.max(expiry)));
            return Ok(new);
        }
        if let Some(i) = self.find(key) {
            if let Some(e) = self.expiries.get_mut(i) {
                *e = (*e).max(expiry);
            }
            return Ok(false);
        }
        self.reserve(1)?;
        self.put(key, expiry);
        Ok(true)
    }

    /// Makes room for `additional` more ids without growing.
    pub fn reserve(&mut self, additional: usize) -> Result<(), RevocationSetError> {
        let needed = self.in_table.saturating_add(additional);
        if fits(needed, self.capacity()) {
            return Ok(());
        }
        let wanted =
            capacity_for(needed).ok_or(RevocationSetError::OutOfMemory { wanted: usize::MAX })?;
        self.rebuild(wanted)
    }

    /// Drops every id whose token has expired by `now`, and returns how many
    /// were dropped.
    ///
    /// Pass the instant the verifier's expiry check uses, after subtracting
    /// any clock-skew allowance: an id is dropped only when its token's
    /// expiry is a whole second or more before `now`, so a token that could
    /// still pass its expiry check is never forgotten. Does not shrink the
    /// table.
    pub fn purge_expired(&mut self, now: DateTime<Utc>) -> usize {
        let now = now_secs(now);
        let expired = |e: u32| e < now;
        let mut dropped = 0;
        if self.zero.is_some_and(expired) {
            self.zero = None;
            dropped += 1;
        }
        // Removing slot i shifts later entries of its cluster back, possibly
        // into slot i itself, so slot i is examined again before moving on.
        // Entries only move backwards within their cluster: an entry that
        // moves into an earlier slot came from a slot already examined (the
        // cluster wrapped around the end), so none is skipped.
        let mut i = 0;
        while i < self.keys.len() {
            let occupied_and_expired = matches!(
                (self.keys.get(i), self.expiries.get(i)),
                (Some(&k), Some(&e)) if k != 0 && expired(e)
            );
            if occupied_and_expired {
                self.remove_at(i);
                dropped += 1;
            } else {
                i += 1;
            }
        }
        dropped
    }

    /// Shrinks the table to the smallest capacity that holds the current ids.
    pub fn shrink_to_fit(&mut self) -> Result<(), RevocationSetError> {
        let wanted = if self.in_table == 0 {
            0
        } else {
            capacity_for(self.in_table)
                .ok_or(RevocationSetError::OutOfMemory { wanted: usize::MAX })?
        };
        if wanted < self.capacity() {
            self.rebuild(wanted)?;
        }
        Ok(())
    }

    /// The table slot for a key.
    #[inline]
    fn home(&self, key: u128) -> usize {
        let lo = (key as u64) ^ self.k0;
        let hi = ((key >> 64) as u64) ^ self.k1;
        let m = u128::from(lo) * u128::from(hi);
        let h = (m as u64) ^ ((m >> 64) as u64);
        (h as usize) & self.keys.len().wrapping_sub(1)
    }

    /// The slot holding `key` (not 0), if any.
    #[inline]
    fn find(&self, key: u128) -> Option<usize> {
        let mask = self.keys.len().checked_sub(1)?;
        let mut i = self.home(key);
        // The table is never full, so an empty slot ends every probe; the
        // bound only guarantees termination.
        for _ in 0..=mask {
            let k = *self.keys.get(i)?;
            if k == key {
                return Some(i);
            }
            if k == 0 {
                return None;
            }
            i = (i + 1) & mask;
        }
        None
    }

    /// Puts a key known to be absent (not 0) into a table with room.
    fn put(&mut self, key: u128, expiry: u32) {
        let Some(mask) = self.keys.len().checked_sub(1) else {
            return;
        };
        let mut i = self.home(key);
        for _ in 0..=mask {
            if let (Some(k), Some(e)) = (self.keys.get_mut(i), self.expiries.get_mut(i)) {
                if *k == 0 {
                    *k = key;
                    *e = expiry;
                    self.in_table += 1;
                    return;
                }
            }
            i = (i + 1) & mask;
        }
    }

    /// Empties slot `i`, moving later entries of its cluster back so that
    /// every remaining entry is still reachable from its home slot (deletion
    /// by backward shift: no tombstones).
    fn remove_at(&mut self, mut i: usize) {
        let Some(mask) = self.keys.len().checked_sub(1) else {
            return;
        };
        let mut j = i;
        for _ in 0..mask {
            j = (j + 1) & mask;
            let Some(&k) = self.keys.get(j) else { break };
            if k == 0 {
                break;
            }
            // The entry at j may fill the hole at i only if its home is not
            // in the cyclic range (i, j].
            let from_home = j.wrapping_sub(self.home(k)) & mask;
            let from_hole = j.wrapping_sub(i) & mask;
            if from_home >= from_hole {
                let e = self.expiries.get(j).copied().unwrap_or(0);
                if let (Some(ki), Some(ei)) = (self.keys.get_mut(i), self.expiries.get_mut(i)) {
                    *ki = k;
                    *ei = e;
                }
                i = j;
            }
        }
        if let (Some(ki), Some(ei)) = (self.keys.get_mut(i), self.expiries.get_mut(i)) {
            *ki = 0;
            *ei = 0;
        }
        self.in_table = self.in_table.saturating_sub(1);
    }

    /// Moves every entry into a table of `capacity` slots (a power of two
    /// that holds them, or 0). On failure the set is unchanged.
    fn rebuild(&mut self, capacity: usize) -> Result<(), RevocationSetError> {
        let oom = |_: TryReserveError| RevocationSetError::OutOfMemory { wanted: capacity };
        let mut keys = Vec::new();
        keys.try_reserve_exact(capacity).map_err(oom)?;
        keys.resize(capacity, 0u128);
        let mut expiries = Vec::new();
        expiries.try_reserve_exact(capacity).map_err(oom)?;
        expiries.resize(capacity, 0u32);
        let old_keys = std::mem::replace(&mut self.keys, keys);
        let old_expiries = std::mem::replace(&mut self.expiries, expiries);
        self.in_table = 0;
        for (k, e) in old_keys.into_iter().zip(old_expiries) {
            if k != 0 {
                self.put(k, e);
            }
        }
        Ok(())
    }
}

/// The key for an id: its first 16 bytes, little-endian.
#[inline]
fn prefix(id: &[u8]) -> Option<u128> {
    let head: [u8; PREFIX_LEN] = id.get(..PREFIX_LEN)?.try_into().ok()?;
    Some(u128::from_le_bytes(head))
}

/// Whether `n` entries fit in `capacity` slots at most three quarters full.
fn fits(n: usize, capacity: usize) -> bool {
    n <= capacity / 4 * 3
}

/// The smallest power-of-two capacity (at least [`MIN_CAPACITY`]) that holds
/// `n` entries, or `None` if the table would not fit in memory.
fn capacity_for(n: usize) -> Option<usize> {
    let mut capacity = MIN_CAPACITY;
    while !fits(n, capacity) {
        capacity = capacity.checked_mul(2)?;
    }
    capacity
        .checked_mul(SLOT_BYTES)
        .filter(|&b| b <= isize::MAX as usize)
        .map(|_| capacity)
}

/// A token expiry as whole seconds since the Unix epoch, rounded up (so the
/// set never forgets a token early), saturating at both ends of `u32`.
fn expiry_secs(t: DateTime<Utc>) -> u32 {
    let secs = t
        .timestamp()
        .saturating_add(i64::from(t.timestamp_subsec_nanos() > 0));
    u32::try_from(secs.max(0)).unwrap_or(u32::MAX)
}

/// The current time as whole seconds since the Unix epoch, rounded down,
/// saturating at both ends of `u32`.
fn now_secs(t: DateTime<Utc>) -> u32 {
    u32::try_from(t.timestamp().max(0)).unwrap_or(u32::MAX)
}

/// A 64-bit key drawn from a randomly seeded `RandomState`.
fn draw_key(state: &RandomState, n: u64) -> u64 {
    let mut h = state.build_hasher();
    h.write_u64(n);
    h.finish()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use chrono::TimeZone;
    use proptest::prelude::*;
    use rand::{RngCore, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_795_000_000 + secs, 0).unwrap()
    }

    fn random_ids(n: usize, seed: u64) -> Vec<[u8; 64]> {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        (0..n)
            .map(|_| {
                let mut id = [0u8; 64];
                rng.fill_bytes(&mut id);
                id
            })
            .collect()
    }

    #[test]
    fn inserted_ids_are_found_and_others_are_not() {
        let ids = random_ids(2_000, 1);
        let others = random_ids(2_000, 2);
        let mut set = RevocationSet::new();
        for id in &ids {
            assert!(set.insert(id, at(60)).unwrap());
        }
        assert_eq!(set.len(), ids.len());
        assert!(ids.iter().all(|id| set.contains(id)));
        assert!(!others.iter().any(|id| set.contains(id)));
    }

    #[test]
    fn an_empty_set_contains_nothing_and_allocates_nothing() {
        let set = RevocationSet::new();
        assert!(set.is_empty());
        assert_eq!(set.capacity(), 0);
        assert!(!set.contains(&[7u8; 64]));
        assert!(!set.contains(&[0u8; 64]));
        assert_eq!(set.approx_bytes(), std::mem::size_of::<RevocationSet>());
    }

    #[test]
    fn ids_sharing_the_first_16_bytes_are_one_entry() {
        let mut set = RevocationSet::new();
        let a = [5u8; 64];
        let mut b = a;
        b[63] = 6;
        b[16] = 9;
        assert!(set.insert(&a, at(10)).unwrap());
        assert!(!set.insert(&b, at(20)).unwrap());
        assert_eq!(set.len(), 1);
        assert!(set.contains(&b));
        // The later expiry is kept.
        assert_eq!(set.purge_expired(at(15)), 0);
        assert!(set.contains(&a));
    }

    #[test]
    fn a_short_id_is_refused_and_never_found() {
        let mut set = RevocationSet::new();
        for len in 0..PREFIX_LEN {
            let id = vec![1u8; len];
            assert_eq!(
                set.insert(&id, at(0)),
                Err(RevocationSetError::IdTooShort { len })
            );
            assert!(!set.contains(&id));
        }
        assert!(set.is_empty());
        // Exactly 16 bytes is enough.
        assert!(set.insert(&[1u8; PREFIX_LEN], at(0)).unwrap());
        assert!(set.contains(&[1u8; 64]));
    }

    #[test]
    fn an_all_zero_prefix_is_stored_exactly() {
        let mut set = RevocationSet::new();
        let zero = [0u8; 64];
        assert!(!set.contains(&zero));
        assert!(set.insert(&zero, at(10)).unwrap());
        assert!(!set.insert(&zero, at(5)).unwrap());
        assert!(set.contains(&zero));
        assert!(!set.contains(&[1u8; 64]));
        assert_eq!(set.len(), 1);
        assert_eq!(set.purge_expired(at(10)), 0);
        assert_eq!(set.purge_expired(at(11)), 1);
        assert!(!set.contains(&zero));
        assert!(set.is_empty());
    }

    #[test]
    fn purge_drops_only_expired_ids() {
        let ids = random_ids(3_000, 3);
        let mut set = RevocationSet::new();
        for (n, id) in ids.iter().enumerate() {
            // Expiries 0, 1, 2 seconds past `at(0)`, in turn.
            set.insert(id, at((n % 3) as i64)).unwrap();
        }
        let capacity = set.capacity();
        // A token expiring at t still passes its check at t: kept.
        assert_eq!(set.purge_expired(at(0)), 0);
        assert_eq!(set.purge_expired(at(1)), 1_000);
        assert_eq!(set.len(), 2_000);
        for (n, id) in ids.iter().enumerate() {
            assert_eq!(set.contains(id), n % 3 != 0, "id {n}");
        }
        assert_eq!(set.purge_expired(at(100)), 2_000);
        assert!(set.is_empty());
        assert!(!ids.iter().any(|id| set.contains(id)));
        // The purge does not shrink; shrink_to_fit does.
        assert_eq!(set.capacity(), capacity);
        set.shrink_to_fit().unwrap();
        assert_eq!(set.capacity(), 0);
    }

    #[test]
    fn a_fraction_of_a_second_keeps_the_id_until_the_next_whole_second() {
        let mut set = RevocationSet::new();
        let exp = at(10) + chrono::Duration::milliseconds(300);
        set.insert(&[3u8; 64], exp).unwrap();
        // At 10.9 s the token (valid through 10.3 s) is expired, but the set
        // only counts whole seconds and keeps it: erring on the safe side.
        assert_eq!(
            set.purge_expired(at(10) + chrono::Duration::milliseconds(900)),
            0
        );
        assert_eq!(set.purge_expired(at(11)), 0);
        assert_eq!(set.purge_expired(at(12)), 1);
    }

    #[test]
    fn a_token_is_revoked_if_any_of_its_blocks_is() {
        let ids = random_ids(4, 4);
        let mut set = RevocationSet::new();
        set.insert(&ids[2], at(60)).unwrap();
        let token: Vec<&[u8]> = ids.iter().map(|id| id.as_slice()).collect();
        assert!(set.contains_any(token.iter().copied()));
        assert!(!set.contains_any(token[..2].iter().copied()));
        assert!(!set.contains_any(std::iter::empty()));
        // A malformed id among them does not hide a revoked one.
        assert!(set.contains_any([&b"short"[..], &ids[2][..]]));
    }

    #[test]
    fn growth_keeps_every_id_and_stays_three_quarters_full_at_most() {
        let ids = random_ids(50_000, 5);
        let mut set = RevocationSet::new();
        let mut capacities = vec![];
        for (n, id) in ids.iter().enumerate() {
            set.insert(id, at(60)).unwrap();
            if capacities.last() != Some(&set.capacity()) {
                capacities.push(set.capacity());
                // Every id inserted so far survives each rehash.
                assert!(ids[..=n].iter().all(|id| set.contains(id)));
            }
            assert!(set.len() * 4 <= set.capacity() * 3);
        }
        assert_eq!(capacities.first(), Some(&MIN_CAPACITY));
        assert!(capacities.windows(2).all(|w| w[1] == 2 * w[0]));
        assert_eq!(set.capacity(), 65_536 * 2);
        assert!(ids.iter().all(|id| set.contains(id)));
    }

    #[test]
    fn with_capacity_does_not_grow_while_filling() {
        let ids = random_ids(1_000, 6);
        let mut set = RevocationSet::with_capacity(1_000).unwrap();
        let capacity = set.capacity();
        assert_eq!(capacity, 2_048);
        for id in &ids {
            set.insert(id, at(1)).unwrap();
        }
        assert_eq!(set.capacity(), capacity);
    }

    #[test]
    fn an_impossible_size_is_an_error_not_a_panic() {
        let mut set = RevocationSet::new();
        assert!(matches!(
            set.reserve(usize::MAX),
            Err(RevocationSetError::OutOfMemory { .. })
        ));
        assert!(matches!(
            set.reserve(usize::MAX / 64),
            Err(RevocationSetError::OutOfMemory { .. })
        ));
        assert!(set.is_empty());
        set.insert(&[1u8; 64], at(0)).unwrap();
        assert!(set.contains(&[1u8; 64]));
    }

    #[test]
    fn approx_bytes_is_twenty_bytes_a_slot_plus_the_struct() {
        let ids = random_ids(10_000, 7);
        let mut set = RevocationSet::new();
        for id in &ids {
            set.insert(id, at(0)).unwrap();
        }
        // 10,000 ids: the first power of two with 10,000 <= 3/4 of it.
        assert_eq!(set.capacity(), 16_384);
        // What the arrays actually hold, measured from the vectors.
        let measured = std::mem::size_of_val(set.keys.as_slice())
            + std::mem::size_of_val(set.expiries.as_slice())
            + std::mem::size_of::<RevocationSet>();
        assert_eq!(set.approx_bytes(), measured);
        assert_eq!(
            set.approx_bytes(),
            16_384 * SLOT_BYTES + std::mem::size_of::<RevocationSet>()
        );
        // The benchmark's figure: a million ids fit in 48 MB.
        let million = capacity_for(1_000_000).unwrap();
        assert_eq!(million, 1 << 21);
        assert!(million * SLOT_BYTES <= 48_000_000);
    }

    #[test]
    fn the_hash_keys_differ_between_sets() {
        let a = RevocationSet::new();
        let b = RevocationSet::new();
        assert_ne!((a.k0, a.k1), (b.k0, b.k1));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u8, u8),
        Purge(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (any::<u8>(), 0u8..8).prop_map(|(id, exp)| Op::Insert(id, exp)),
            1 => (0u8..10).prop_map(Op::Purge),
        ]
    }

    /// Ids built from one byte, so that the same ids recur; byte 0 gives the
    /// all-zero prefix.
    fn small_id(n: u8) -> [u8; 64] {
        let mut id = [0u8; 64];
        if n != 0 {
            let mut rng = ChaCha20Rng::seed_from_u64(u64::from(n));
            rng.fill_bytes(&mut id);
        }
        id
    }

    proptest! {
        /// Inserts and purges agree with a plain map, including across
        /// clusters that wrap around the end of a small table (fixed hash
        /// keys make failures repeatable).
        #[test]
        fn behaves_like_a_map_of_prefixes(
            ops in proptest::collection::vec(op(), 1..400),
            k0 in any::<u64>(),
            k1 in any::<u64>(),
        ) {
            let mut set = RevocationSet::with_hash_keys(k0, k1);
            let mut model: HashMap<u8, i64> = HashMap::new();
            for op in ops {
                match op {
                    Op::Insert(n, exp) => {
                        let new = set.insert(&small_id(n), at(i64::from(exp))).unwrap();
                        prop_assert_eq!(new, !model.contains_key(&n));
                        let e = model.entry(n).or_insert(i64::from(exp));
                        *e = (*e).max(i64::from(exp));
                    }
                    Op::Purge(now) => {
                        let before = model.len();
                        model.retain(|_, e| *e >= i64::from(now));
                        prop_assert_eq!(set.purge_expired(at(i64::from(now))), before - model.len());
                    }
                }
                prop_assert_eq!(set.len(), model.len());
            }
            for n in 0..=u8::MAX {
                prop_assert_eq!(set.contains(&small_id(n)), model.contains_key(&n), "id {}", n);
            }
        }
    }
}
