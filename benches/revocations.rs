//! Revocation lookup with 1,000,000 revoked ids (issue 4's target: at most
//! 100 ns per lookup and at most 48 MB for the set), beside a
//! `HashSet<Vec<u8>>` of the full 64-byte ids with std's default hasher, in
//! the same criterion group. Results and the command: `docs/performance.md`.
//!
//! Each iteration looks up the next id of a list covering all 1,000,000
//! members in random order (or 1,000,000 non-members), so lookups miss the
//! cache as they would on a server, rather than finding one hot entry. The
//! ids to look up are read sequentially from a contiguous array, so that
//! reading them costs no cache miss of its own. Successive lookups are
//! independent, so the processor overlaps their cache misses: these figures
//! are throughput. The `dependent` variants make each lookup wait for the
//! previous answer, which measures latency. The `hot` variants look up one
//! id again and again, for comparison.
//!
//! Setup asserts the set's size (`approx_bytes() <= 48 MB`) and prints the
//! resident memory (from `/proc/self/statm`) before and after building each
//! structure, as a cross-check of `approx_bytes()`.

// Benches are test code: a failed setup should stop the run loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::hint::black_box;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use criterion::{criterion_group, criterion_main, Criterion};
use rand::seq::SliceRandom;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use tessera::verify::revocations::RevocationSet;

const N: usize = 1_000_000;
/// The size target for the set with `N` ids, bytes.
const MAX_SET_BYTES: usize = 48_000_000;
/// Page size for `/proc/self/statm` (x86-64 Linux).
const PAGE: usize = 4096;

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-22T12:00:00Z")
        .unwrap()
        .to_utc()
}

fn random_ids(rng: &mut ChaCha20Rng, n: usize) -> Vec<[u8; 64]> {
    (0..n)
        .map(|_| {
            let mut id = [0u8; 64];
            rng.fill_bytes(&mut id);
            id
        })
        .collect()
}

/// Resident memory of this process, bytes (Linux; 0 elsewhere).
fn rss() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<usize>().ok())
        .map_or(0, |pages| pages * PAGE)
}

fn mb(bytes: usize) -> f64 {
    bytes as f64 / 1e6
}

/// Builds a set of `ids`, growing from empty (`presize` false) or sized up
/// front, and prints its size and the resident-memory delta.
fn build_set(ids: &[[u8; 64]], presize: bool) -> RevocationSet {
    let before = rss();
    let started = Instant::now();
    let mut set = if presize {
        RevocationSet::with_capacity(ids.len()).unwrap()
    } else {
        RevocationSet::new()
    };
    for (n, id) in ids.iter().enumerate() {
        // Expiries spread over an hour, so a purge at half an hour drops half.
        let expires_at = t0() + TimeDelta::seconds((n % 3600) as i64);
        assert!(set.insert(id, expires_at).unwrap());
    }
    let elapsed = started.elapsed();
    let after = rss();
    println!(
        "RevocationSet ({}): {} ids, capacity {}, approx_bytes {} ({:.1} MB), \
         resident +{:.1} MB, built in {:.0} ms",
        if presize {
            "with_capacity"
        } else {
            "grown from empty"
        },
        set.len(),
        set.capacity(),
        set.approx_bytes(),
        mb(set.approx_bytes()),
        mb(after.saturating_sub(before)),
        elapsed.as_secs_f64() * 1e3,
    );
    assert_eq!(set.len(), ids.len());
    assert!(
        set.approx_bytes() <= MAX_SET_BYTES,
        "{} bytes is over the 48 MB target",
        set.approx_bytes()
    );
    set
}

fn lookups(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let members = random_ids(&mut rng, N);
    let non_members = random_ids(&mut rng, N);
    // The members again, shuffled and contiguous, so that reading the next
    // id to look up is a sequential read and only the lookup itself misses
    // the cache.
    let mut shuffled = members.clone();
    shuffled.shuffle(&mut rng);

    let presized = build_set(&members, true);
    drop(presized);
    let set = build_set(&members, false);

    let before = rss();
    let baseline: HashSet<Vec<u8>> = members.iter().map(|id| id.to_vec()).collect();
    println!(
        "HashSet<Vec<u8>> baseline: {} ids, resident +{:.1} MB",
        baseline.len(),
        mb(rss().saturating_sub(before))
    );

    let mut copy = set.clone();
    let started = Instant::now();
    let dropped = copy.purge_expired(t0() + TimeDelta::seconds(1800));
    println!(
        "purge_expired: dropped {dropped} of {N} in {:.0} ms",
        started.elapsed().as_secs_f64() * 1e3
    );
    drop(copy);

    assert!(members.iter().take(1000).all(|id| set.contains(id)));
    assert!(!non_members.iter().any(|id| set.contains(id)));
    assert!(members
        .iter()
        .take(1000)
        .all(|id| baseline.contains(&id[..])));

    let mut group = c.benchmark_group("revocation_lookup");
    group
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));

    // Each closure walks its own list from the start, so both sides look up
    // the same ids in the same order.
    let member = |i: &mut usize| {
        *i = (*i + 1) % N;
        &shuffled[*i][..]
    };
    let non_member = |i: &mut usize| {
        *i = (*i + 1) % N;
        &non_members[*i][..]
    };

    let mut i = 0;
    group.bench_function("tessera/member", |b| {
        b.iter(|| set.contains(black_box(member(&mut i))))
    });
    let mut i = 0;
    group.bench_function("hashset_vec/member", |b| {
        b.iter(|| baseline.contains(black_box(member(&mut i))))
    });
    let mut i = 0;
    group.bench_function("tessera/non_member", |b| {
        b.iter(|| set.contains(black_box(non_member(&mut i))))
    });
    let mut i = 0;
    group.bench_function("hashset_vec/non_member", |b| {
        b.iter(|| baseline.contains(black_box(non_member(&mut i))))
    });
    // Latency rather than throughput: the next id depends on the previous
    // answer, so the processor cannot overlap one lookup's cache miss with
    // the next one's (as on a server, where one request looks up a few ids).
    let mut i = 0;
    group.bench_function("tessera/member_dependent", |b| {
        b.iter(|| {
            let found = set.contains(&shuffled[i][..]);
            i = (i + 1 + usize::from(!found)) % N;
            found
        })
    });
    let mut i = 0;
    group.bench_function("hashset_vec/member_dependent", |b| {
        b.iter(|| {
            let found = baseline.contains(&shuffled[i][..]);
            i = (i + 1 + usize::from(!found)) % N;
            found
        })
    });
    // The floor for any table this size: one dependent read at a random
    // place in 40 MiB of memory (the size of the set's arrays).
    // A single cycle through all the words (Sattolo's shuffle), so the walk
    // does not settle into a short loop that fits in the cache.
    let mut next: Vec<u64> = (0..40 << 17).collect();
    for k in (1..next.len()).rev() {
        next.swap(k, rng.gen_range(0..k));
    }
    let mut j = 0;
    group.bench_function("floor/random_read_dependent_40MiB", |b| {
        b.iter(|| {
            j = next[j] as usize;
            j
        })
    });
    let hot = &members[12_345][..];
    group.bench_function("tessera/member_hot", |b| {
        b.iter(|| set.contains(black_box(hot)))
    });
    group.bench_function("hashset_vec/member_hot", |b| {
        b.iter(|| baseline.contains(black_box(hot)))
    });
    group.finish();
}

/// Private, so the `pub fn` that `criterion_group!` generates needs no doc.
mod group {
    use super::*;

    criterion_group!(benches, lookups);
}
criterion_main!(group::benches);
