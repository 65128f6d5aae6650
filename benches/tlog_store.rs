//! The audit log on the stores (issue 14):
//!
//! - append throughput on the embedded store with group commit (target: at
//!   least 20,000 records/s), with 64 and with 256 concurrent appenders,
//!   each append adding the event, its leaf and its subtree hashes in one
//!   transaction;
//! - inclusion and consistency proofs built from the embedded store at
//!   1,000,000 leaves (target: under 1 ms to build), and verified (target:
//!   under 100 µs);
//! - the CPU a mint spends on the tree (leaf bytes, leaf hash, subtree
//!   hashes) beside the mint itself, in the same run.
//!
//! Figures and the command: `docs/performance.md`, "Audit log on the stores".

// Benches are test code: a failed setup should stop the run loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use redb::{Database, TableDefinition};
use tessera::store::{tree, AuditEvent, AuditKind, Stores};
use tessera::tlog::merkle::{leaf_hash, verify_consistency, verify_inclusion, SubtreeHashes};
use tessera::tlog::record::leaf_bytes;
use tessera::tlog::MemoryTree;
use tessera::token::{self, Action, AgentId, Audience, Capability, Lifetime, ResourcePattern};

/// Records appended per measured iteration, by `tasks` tasks.
const BATCH: u64 = 2_000;
/// The log size of the proof benches.
const N: u64 = 1_000_000;
const OLD: u64 = 500_000;
/// A leaf deep on the left and one in the ragged right edge.
const INDICES: [u64; 2] = [123_457, 999_999];
/// The embedded store's tables of the tree (`src/store/embedded/tlog.rs`).
const LEAVES: TableDefinition<u64, &[u8]> = TableDefinition::new("tlog_leaves");
const NODES: TableDefinition<(u32, u64), &[u8]> = TableDefinition::new("tlog_nodes");

fn event(i: u64) -> AuditEvent {
    AuditEvent {
        at: "2026-03-04T05:06:07.123456Z".parse().unwrap(),
        kind: AuditKind::Mint,
        agent: Some("https://agents.example/alpha".into()),
        token_id: Some(format!("tok-{i}")),
        capability: Some("read docs/report.pdf".into()),
        outcome: "granted".into(),
        reason: None,
        remote_addr: Some("127.0.0.1:5555".into()),
        chain: vec!["https://agents.example/alpha".into()],
        person: None,
        amount: None,
        approval_id: None,
        revocation_ids: Vec::new(),
        service: None,
    }
}

async fn append_batch(stores: &Stores, tasks_n: u64) -> Duration {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..tasks_n {
        let audit = Arc::clone(&stores.audit);
        tasks.push(tokio::spawn(async move {
            for i in 0..BATCH / tasks_n {
                audit.append(&event(t * BATCH + i)).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    start.elapsed()
}

fn embedded_append(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let stores = Stores::embedded(dir.path()).unwrap();
    let mut group = c.benchmark_group("tlog_store");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(4));
    for tasks in [64, 256] {
        group.throughput(Throughput::Elements(BATCH - BATCH % tasks));
        group.bench_function(format!("embedded_append_{tasks}_tasks"), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += append_batch(&stores, tasks).await;
                    }
                    total
                })
            })
        });
    }
    group.finish();
    let size = rt.block_on(stores.tree.tree_size()).unwrap();
    assert!(size > 0);
}

/// An embedded store whose tree holds `N` leaves (8-byte leaves: a
/// proof reads only nodes, whatever the leaves hold), written straight into
/// its tables in one transaction, and the same tree in memory.
fn store_of_1m(dir: &std::path::Path) -> MemoryTree {
    let memory = MemoryTree::from_leaf_hashes((0..N).map(|i| leaf_hash(&i.to_be_bytes())));
    {
        let db = Database::create(dir.join("tessera.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut leaves = txn.open_table(LEAVES).unwrap();
            let mut nodes = txn.open_table(NODES).unwrap();
            for i in 0..N {
                leaves.insert(i, i.to_be_bytes().as_slice()).unwrap();
            }
            for level in 0..=N.ilog2() {
                for index in 0..(N >> level) {
                    let hash = memory.subtree(level, index).unwrap();
                    nodes.insert((level, index), hash.as_slice()).unwrap();
                }
            }
        }
        txn.commit().unwrap();
    }
    memory
}

fn embedded_proofs(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let memory = store_of_1m(dir.path());
    let stores = Stores::embedded(dir.path()).unwrap();
    let store = &*stores.tree;
    let (size, root) = rt.block_on(tree::head(store)).unwrap();
    assert_eq!((size, root), (N, memory.root()));
    let mut group = c.benchmark_group("tlog_store_proofs_1M");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(3));
    for index in INDICES {
        let leaf = leaf_hash(&index.to_be_bytes());
        let proof = rt.block_on(tree::inclusion(store, index, N)).unwrap();
        verify_inclusion(&leaf, index, N, &proof, &root).unwrap();
        group.bench_function(format!("embedded_inclusion_build/{index}"), |b| {
            b.iter(|| {
                rt.block_on(tree::inclusion(store, black_box(index), N))
                    .unwrap()
            })
        });
        group.bench_function(format!("inclusion_verify/{index}"), |b| {
            b.iter(|| verify_inclusion(black_box(&leaf), index, N, &proof, &root).unwrap())
        });
    }
    let old = rt.block_on(tree::root_at(store, OLD)).unwrap();
    let proof = rt.block_on(tree::consistency(store, OLD, N)).unwrap();
    verify_consistency(OLD, N, &proof, &old, &root).unwrap();
    group.bench_function("embedded_consistency_build/500000-1000000", |b| {
        b.iter(|| {
            rt.block_on(tree::consistency(store, black_box(OLD), N))
                .unwrap()
        })
    });
    group.bench_function("consistency_verify/500000-1000000", |b| {
        b.iter(|| verify_consistency(black_box(OLD), N, &proof, &old, &root).unwrap())
    });
    group.finish();
}

/// The CPU of a mint (`token::mint`) beside the CPU the tree adds to it:
/// the event's leaf bytes, its leaf hash and the subtree hashes of its
/// append (into a tree of 1,000,000 leaves), in the same run.
fn mint_cost(c: &mut Criterion) {
    let root = tessera::token::RootKeyPair::new(0, biscuit_auth::KeyPair::new());
    let cap = Capability {
        agent: AgentId::parse("https://agents.example/alpha").unwrap(),
        action: Action::parse("docs:read").unwrap(),
        resource: ResourcePattern::parse("docs/*").unwrap(),
        audience: Some(Audience::parse("https://tools.example").unwrap()),
        lifetime: Lifetime::parse("5m").unwrap(),
        holder_key: Some(biscuit_auth::KeyPair::new().public()),
        on_behalf: None,
    };
    let at = "2026-03-04T05:06:07.123456Z".parse().unwrap();
    let e = event(1);
    let base = MemoryTree::from_leaf_hashes((0..N).map(|i| leaf_hash(&i.to_be_bytes())));
    let mut group = c.benchmark_group("tlog_mint_cost");
    group.sample_size(30);
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("mint", |b| {
        b.iter(|| token::mint(black_box(&cap), &root, at).unwrap())
    });
    let mut tree = base.clone();
    group.bench_function("tree_work_per_record", |b| {
        b.iter(|| {
            if tree.len() >= 2 * N {
                tree = base.clone(); // rare: keeps memory bounded
            }
            let leaf = leaf_bytes(black_box(&e)).unwrap();
            tree.push(leaf_hash(&leaf));
        })
    });
    group.finish();
}

/// Private, so the `pub fn` that `criterion_group!` generates needs no doc.
mod group {
    use super::*;
    criterion_group!(benches, embedded_append, embedded_proofs, mint_cost);
}
criterion_main!(group::benches);
