//! The verifier's shared view of revocations: the set of revoked block ids,
//! and how recently a follower confirmed that the set is current.
//!
//! A follower (Redis stream or the issuer's HTTP feed) is the only writer;
//! every check reads it. Freshness is measured on the monotonic clock, so a
//! wall-clock jump cannot make a stale view look current.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::revocations::{RevocationSet, RevocationSetError};

/// Counters a follower keeps, for metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FollowerStats {
    /// Revoked ids currently held.
    pub entries: u64,
    /// Feed entries applied since start.
    pub applied: u64,
    /// Times the follower reconnected after losing its source.
    pub reconnects: u64,
    /// Time since the follower last confirmed the view is current, if it
    /// ever did.
    pub lag: Option<Duration>,
    /// The last feed position applied, as the source writes it.
    pub position: Option<String>,
}

/// Revoked ids plus freshness, shared between a follower and the checks.
#[derive(Debug)]
pub struct RevocationView {
    set: RwLock<RevocationSet>,
    /// The instant every freshness reading is measured from.
    epoch: Instant,
    /// Nanoseconds after `epoch` of the last confirmation, plus one; 0 means
    /// never confirmed.
    confirmed: AtomicU64,
    applied: AtomicU64,
    reconnects: AtomicU64,
    position: RwLock<Option<String>>,
}

impl Default for RevocationView {
    fn default() -> Self {
        Self {
            set: RwLock::new(RevocationSet::new()),
            epoch: Instant::now(),
            confirmed: AtomicU64::new(0),
            applied: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            position: RwLock::new(None),
        }
    }
}

impl RevocationView {
    /// An empty view that has never been confirmed current.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Whether any of `ids` is revoked. A poisoned lock answers "revoked":
    /// a security decision fails closed.
    pub fn contains_any<'a>(&self, ids: impl IntoIterator<Item = &'a [u8]>) -> bool {
        match self.set.read() {
            Ok(set) => set.contains_any(ids),
            Err(_) => true,
        }
    }

    /// Whether `id` is revoked (fails closed like [`Self::contains_any`]).
    pub fn contains(&self, id: &[u8]) -> bool {
        self.contains_any([id])
    }

    /// Adds revoked ids with the expiry of their token, and records the
    /// feed position they were read up to.
    pub fn apply<'a>(
        &self,
        entries: impl IntoIterator<Item = (&'a [u8], DateTime<Utc>)>,
        position: Option<String>,
    ) -> Result<usize, RevocationSetError> {
        let mut n = 0;
        {
            let mut set = self.set.write().map_err(|_| RevocationSetError::Poisoned)?;
            for (id, expires_at) in entries {
                set.insert(id, expires_at)?;
                n += 1;
            }
        }
        self.applied.fetch_add(n as u64, Ordering::Relaxed);
        if let Some(p) = position {
            if let Ok(mut slot) = self.position.write() {
                *slot = Some(p);
            }
        }
        Ok(n)
    }

    /// Drops ids whose token has expired; returns how many.
    pub fn purge_expired(&self, now: DateTime<Utc>) -> usize {
        match self.set.write() {
            Ok(mut set) => set.purge_expired(now),
            Err(_) => 0,
        }
    }

    /// The follower has just confirmed that nothing newer exists at its
    /// source: the view is current as of now.
    pub fn confirm_current(&self) {
        self.confirm_current_at(Instant::now());
    }

    /// [`Self::confirm_current`] as of `at` (for a read that started earlier).
    pub fn confirm_current_at(&self, at: Instant) {
        let nanos = at.saturating_duration_since(self.epoch).as_nanos();
        let stamp = u64::try_from(nanos).unwrap_or(u64::MAX - 1) + 1;
        self.confirmed.fetch_max(stamp, Ordering::AcqRel);
    }

    /// How long ago the view was last confirmed current; `None` if never.
    pub fn staleness(&self) -> Option<Duration> {
        match self.confirmed.load(Ordering::Acquire) {
            0 => None,
            stamp => {
                let at = self.epoch + Duration::from_nanos(stamp - 1);
                Some(Instant::now().saturating_duration_since(at))
            }
        }
    }

    /// Counts a reconnection of the follower.
    pub fn note_reconnect(&self) {
        self.reconnects.fetch_add(1, Ordering::Relaxed);
    }

    /// The last feed position applied.
    pub fn position(&self) -> Option<String> {
        self.position.read().ok().and_then(|p| p.clone())
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> FollowerStats {
        FollowerStats {
            entries: self.set.read().map(|s| s.len() as u64).unwrap_or(0),
            applied: self.applied.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
            lag: self.staleness(),
            position: self.position(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_confirmed_has_no_staleness_and_confirmation_sets_it() {
        let view = RevocationView::new();
        assert_eq!(view.staleness(), None);
        view.confirm_current();
        let lag = view.staleness().unwrap();
        assert!(lag < Duration::from_secs(5), "{lag:?}");
    }

    #[test]
    fn apply_then_contains_and_purge() {
        let view = RevocationView::new();
        let id = [7u8; 64];
        let exp = DateTime::from_timestamp(2_000_000_000, 0).unwrap();
        assert!(!view.contains(&id));
        assert_eq!(view.apply([(&id[..], exp)], Some("5".into())).unwrap(), 1);
        assert!(view.contains(&id));
        assert_eq!(view.position().as_deref(), Some("5"));
        let later = DateTime::from_timestamp(2_000_000_001, 0).unwrap();
        assert_eq!(view.purge_expired(later), 1);
        assert!(!view.contains(&id));
        assert_eq!(view.stats().applied, 1);
    }
}
