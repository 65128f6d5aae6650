//! Budget spends at the verifier (issue 13): one reserve + commit per
//! operation through the Redis [`BudgetLedger`] (the Lua scripts), beside a
//! plain Redis `INCRBY` round trip on the same server in the same run, and
//! the embedded (redb) ledger's reserve + commit. Every spend charges ONE
//! budget key. Targets: p99 under 2 ms on loopback, at least 5,000 spends/s
//! on one key.
//!
//! A custom harness (`harness = false`) printing p50/p99 and ratios:
//! criterion reports means and medians, not the p99 the target names.
//! Starts its own `redis-server` on a free port (skipped, with a line on
//! stderr, when there is none). Sizes: `BUDGET_SPEND_OPS` (default 4,000
//! sequential operations per side and round, 3 rounds) and
//! `BUDGET_SPEND_TASKS` (default 16 concurrent spenders for spends/s).
//! Figures and the command: `docs/performance.md`, "Budget spends".

// Benches are test code: a failed setup should stop the run loudly. A bench
// is an edge of the program, so it reads the clock (`now` for the ledger).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tessera::store::budget::MAX_LEDGER_MINOR;
use tessera::store::{BudgetLedger, Charge, ReserveRequest, Reserved, Settled, Stores};

const KEY: &str = "bench-budget";
const ROUNDS: usize = 3;

/// A unique idempotency key per spend, across every side of the run.
static SEQ: AtomicU64 = AtomicU64::new(0);

fn request() -> ReserveRequest {
    ReserveRequest {
        charges: vec![Charge {
            key: KEY.to_owned(),
            limit: MAX_LEDGER_MINOR,
        }],
        amount: 1,
        currency: "EUR".to_owned(),
        idempotency_key: format!("bench-{}", SEQ.fetch_add(1, Ordering::Relaxed)),
        ttl: Duration::from_secs(60),
        keep_until: Utc::now() + chrono::Duration::hours(1),
    }
}

/// One spend as a tool server makes it: reserve, then commit.
async fn spend(ledger: &dyn BudgetLedger) {
    let req = request();
    let now = Utc::now();
    let Reserved::Reserved(r) = ledger.reserve(&req, now).await.unwrap() else {
        panic!("the bench budget refused a spend");
    };
    let settled = ledger.commit(&r.id, now).await.unwrap();
    assert_eq!(settled, Settled::Committed);
}

async fn incrby(conn: &mut redis::aio::MultiplexedConnection) {
    let _: i64 = redis::cmd("INCRBY")
        .arg("bench:plain")
        .arg(1)
        .query_async(conn)
        .await
        .unwrap();
}

/// Latencies in microseconds, sorted.
#[derive(Default)]
struct Lat(Vec<f64>);

impl Lat {
    fn pct(&self, p: f64) -> f64 {
        let i = ((self.0.len() as f64 - 1.0) * p).round() as usize;
        self.0[i]
    }
    fn sort(&mut self) {
        self.0.sort_by(|a, b| a.total_cmp(b));
    }
}

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_redis(dir: &std::path::Path) -> Option<(Proc, String)> {
    let port = free_port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--dir"])
        .arg(dir)
        .stdout(Stdio::null())
        .spawn()
        .ok()?;
    let proc = Proc(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Some((proc, format!("redis://127.0.0.1:{port}")))
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Sequential latencies of `op`, `n` times after `n / 10` warm-up calls.
async fn sequential<F, Fut>(n: usize, lat: &mut Lat, mut op: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..n / 10 {
        op().await;
    }
    for _ in 0..n {
        let t = Instant::now();
        op().await;
        lat.0.push(t.elapsed().as_secs_f64() * 1e6);
    }
}

/// Spends per second with `tasks` concurrent spenders on the one key.
async fn concurrent_spends(ledger: Arc<dyn BudgetLedger>, tasks: usize, n: usize) -> f64 {
    let t = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let ledger = Arc::clone(&ledger);
        handles.push(tokio::spawn(async move {
            for _ in 0..n / tasks {
                spend(ledger.as_ref()).await;
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    (n - n % tasks) as f64 / t.elapsed().as_secs_f64()
}

async fn concurrent_incrby(
    conn: &redis::aio::MultiplexedConnection,
    tasks: usize,
    n: usize,
) -> f64 {
    let t = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let mut conn = conn.clone();
        handles.push(tokio::spawn(async move {
            for _ in 0..n / tasks {
                incrby(&mut conn).await;
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    (n - n % tasks) as f64 / t.elapsed().as_secs_f64()
}

fn row(name: &str, lat: &Lat, per_s: f64, base: Option<(&Lat, f64)>) {
    let ratio = base
        .map(|(b, bs)| {
            format!(
                "{:.2} | {:.2} | {:.2}",
                lat.pct(0.5) / b.pct(0.5),
                lat.pct(0.99) / b.pct(0.99),
                per_s / bs
            )
        })
        .unwrap_or_else(|| "1 | 1 | 1".to_owned());
    println!(
        "| {name} | {} | {:.0} | {:.0} | {:.0} | {ratio} |",
        lat.0.len(),
        lat.pct(0.5),
        lat.pct(0.99),
        per_s
    );
}

fn main() {
    let n = env_or("BUDGET_SPEND_OPS", 4_000);
    let tasks = env_or("BUDGET_SPEND_TASKS", 16);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("budget_spend: {n} sequential ops x {ROUNDS} rounds per side, {tasks} concurrent spenders for spends/s; loadavg {}", load.trim());
    println!("| side | ops | p50 µs | p99 µs | ops/s ({tasks} tasks) | p50 ratio | p99 ratio | ops/s ratio |");
    println!("|---|---|---|---|---|---|---|---|");

    let redis = start_redis(dir.path());
    if let Some((_proc, url)) = &redis {
        rt.block_on(async {
            let stores = Stores::redis(url, "bench:").await.unwrap();
            let ledger = Arc::clone(&stores.budgets);
            let client = redis::Client::open(url.as_str()).unwrap();
            let conn = client.get_multiplexed_async_connection().await.unwrap();
            let (mut plain, mut ledger_lat) = (Lat::default(), Lat::default());
            let (mut plain_s, mut ledger_s) = (Vec::new(), Vec::new());
            // Rounds alternate the sides so that a burst of load from other
            // processes falls on both.
            for _ in 0..ROUNDS {
                sequential(n, &mut plain, || {
                    // A clone shares the one multiplexed connection.
                    let mut conn = conn.clone();
                    async move { incrby(&mut conn).await }
                })
                .await;
                sequential(n, &mut ledger_lat, || spend(ledger.as_ref())).await;
                plain_s.push(concurrent_incrby(&conn, tasks, n).await);
                ledger_s.push(concurrent_spends(Arc::clone(&ledger), tasks, n).await);
            }
            plain.sort();
            ledger_lat.sort();
            let (ps, ls) = (median(&mut plain_s), median(&mut ledger_s));
            row("redis INCRBY (baseline)", &plain, ps, None);
            row("redis reserve+commit", &ledger_lat, ls, Some((&plain, ps)));
            let state = ledger.show(KEY, Utc::now()).await.unwrap().unwrap();
            let spent = SEQ.load(Ordering::Relaxed) as i64;
            assert_eq!(state.committed, spent, "every spend charged exactly once");
            assert_eq!(state.reserved, 0);
        });
    } else {
        eprintln!("budget_spend: redis-server not available; Redis sides skipped");
    }

    SEQ.store(0, Ordering::Relaxed);
    rt.block_on(async {
        let edir = tempfile::tempdir().unwrap();
        let stores = Stores::embedded(edir.path()).unwrap();
        let ledger = Arc::clone(&stores.budgets);
        let mut lat = Lat::default();
        let mut per_s = Vec::new();
        for _ in 0..ROUNDS {
            sequential(n, &mut lat, || spend(ledger.as_ref())).await;
            per_s.push(concurrent_spends(Arc::clone(&ledger), tasks, n).await);
        }
        lat.sort();
        row("embedded reserve+commit", &lat, median(&mut per_s), None);
        let state = ledger.show(KEY, Utc::now()).await.unwrap().unwrap();
        assert_eq!(state.committed, SEQ.load(Ordering::Relaxed) as i64);
    });
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}
