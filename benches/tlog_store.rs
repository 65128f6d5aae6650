//! The audit log on the stores (issue 14): append throughput on the
//! embedded store with group commit (target: at least 20,000 records/s),
//! with 64 concurrent appenders, each append adding the event, its leaf and
//! its subtree hashes in one transaction. Figures and the command:
//! `docs/performance.md`, "Audit log on the stores".

// Benches are test code: a failed setup should stop the run loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tessera::store::{AuditEvent, AuditKind, Stores};

/// Records appended per measured iteration, by this many tasks.
const BATCH: u64 = 2_000;
const TASKS: u64 = 64;

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

async fn append_batch(stores: &Stores) -> Duration {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let audit = Arc::clone(&stores.audit);
        tasks.push(tokio::spawn(async move {
            for i in 0..BATCH / TASKS {
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
    group.throughput(Throughput::Elements(BATCH - BATCH % TASKS));
    group.bench_function("embedded_append_64_tasks", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += append_batch(&stores).await;
                }
                total
            })
        })
    });
    group.finish();
    let size = rt.block_on(stores.tree.tree_size()).unwrap();
    assert!(size > 0);
}

/// Private, so the `pub fn` that `criterion_group!` generates needs no doc.
mod group {
    use super::*;
    criterion_group!(benches, embedded_append);
}
criterion_main!(group::benches);
