//! The audit log's Merkle tree (issue 14, first slice): appending 1,000,000
//! leaf hashes to the in-memory tree, and building and verifying inclusion
//! and consistency proofs at that size. Targets: an inclusion proof under
//! 1 ms to build and under 100 µs to verify. Results and the command:
//! `docs/performance.md`, "Audit log proofs (issue 14, first slice)".
//!
//! Every proof is verified once during setup, so a wrong proof fails the
//! bench rather than timing it.

// Benches are test code: a failed setup should stop the run loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use tessera::tlog::merkle::{
    consistency_proof, inclusion_proof, leaf_hash, root, verify_consistency, verify_inclusion, Hash,
};
use tessera::tlog::MemoryTree;

const N: u64 = 1_000_000;
const OLD: u64 = 500_000;
/// A leaf deep on the left and one in the ragged right edge.
const INDICES: [u64; 2] = [123_457, 999_999];

fn leaf_hashes() -> Vec<Hash> {
    (0..N).map(|i| leaf_hash(&i.to_be_bytes())).collect()
}

fn append(c: &mut Criterion) {
    let leaves = leaf_hashes();
    let mut group = c.benchmark_group("tlog_append");
    group.sample_size(10);
    group.bench_function("append_1M_leaf_hashes", |b| {
        b.iter(|| {
            let mut tree = MemoryTree::new();
            for leaf in &leaves {
                tree.push(*leaf);
            }
            black_box(tree.root())
        })
    });
    group.finish();
}

fn proofs(c: &mut Criterion) {
    let tree = MemoryTree::from_leaf_hashes(leaf_hashes());
    assert_eq!(tree.len(), N);
    let r = tree.root();
    let mut group = c.benchmark_group("tlog_proofs_1M");
    for index in INDICES {
        let leaf = leaf_hash(&index.to_be_bytes());
        let proof = inclusion_proof(&tree, index, N).unwrap();
        verify_inclusion(&leaf, index, N, &proof, &r).unwrap();
        group.bench_function(format!("inclusion_build/{index}"), |b| {
            b.iter(|| inclusion_proof(&tree, black_box(index), N).unwrap())
        });
        group.bench_function(format!("inclusion_verify/{index}"), |b| {
            b.iter(|| verify_inclusion(black_box(&leaf), index, N, &proof, &r).unwrap())
        });
    }
    let old = root(&tree, OLD).unwrap();
    let proof = consistency_proof(&tree, OLD, N).unwrap();
    verify_consistency(OLD, N, &proof, &old, &r).unwrap();
    group.bench_function("consistency_build/500000-1000000", |b| {
        b.iter(|| consistency_proof(&tree, black_box(OLD), N).unwrap())
    });
    group.bench_function("consistency_verify/500000-1000000", |b| {
        b.iter(|| verify_consistency(black_box(OLD), N, &proof, &old, &r).unwrap())
    });
    group.bench_function("root/1000000", |b| {
        b.iter(|| root(&tree, black_box(N)).unwrap())
    });
    group.finish();
}

/// Private, so the `pub fn` that `criterion_group!` generates needs no doc.
mod group {
    use super::*;
    criterion_group!(benches, append, proofs);
}
criterion_main!(group::benches);
