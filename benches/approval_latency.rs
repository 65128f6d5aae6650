//! Approval latency (issue 13): from the decision to the ping reaching the
//! agent. Each of `APPROVALS` (default 200) requests is created in the store
//! (not timed), then decided with `notify::decide` — what the approval page's
//! POST /approvals/{id} handler calls once it has checked the session and
//! the CSRF token — and the clock stops when the agent's notification
//! endpoint, a real axum server on loopback, receives the
//! `{"auth_req_id"}` POST. The decision records the verdict, audits it,
//! reads the agent's endpoint and starts the delivery task, all on the
//! embedded store (redb, durable commits), then on a Redis store (its own
//! `redis-server` on a free port, skipped when there is none).
//!
//! The baseline in the same run is the bare loopback POST of the same body
//! to the same endpoint (a reqwest client, kept-alive connection), timed the
//! same way. Target: p99 under 50 ms. A custom harness printing p50/p99:
//! criterion does not report percentiles. Figures and the command:
//! `docs/performance.md`, "Approval latency".

// Benches are test code: a failed setup should stop the run loudly. A bench
// is an edge of the program, so it reads the clock.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::post;
use chrono::{TimeDelta, Utc};
use tessera::server::{notify, AppState, Config, KeyRing, SystemClock};
use tessera::store::{
    AgentRecord, Approval, ApprovalStatus, AskedCapability, Ceiling, Decided, Decider, Stores,
    Verdict,
};
use tessera::token::{Action, AgentId, AgentKey, Amount, Audience, Person, ResourcePattern};
use tokio::sync::mpsc;

const AGENT: &str = "agent://bench/payer";

fn alice() -> Person {
    Person::parse("https://login.bench.example", "alice").unwrap()
}

fn approval(i: usize) -> Approval {
    let now = Utc::now();
    Approval {
        id: format!("ar-bench-{i:06}-{:016x}", rand::random::<u64>()),
        agent: AgentId::parse(AGENT).unwrap(),
        prior_actors: Vec::new(),
        person: alice(),
        capability: AskedCapability {
            action: Action::parse("payments:create").unwrap(),
            resource: ResourcePattern::parse("invoice:42").unwrap(),
            audience: Some(Audience::parse("https://pay.example").unwrap()),
            amount: Some(Amount::parse("40.00EUR").unwrap()),
            ttl_secs: 300,
        },
        binding_message: Some("pay invoice 42".to_owned()),
        notification_token: Some("bench-notification-token".to_owned()),
        created_at: now,
        expires_at: now + TimeDelta::seconds(120),
        interval_secs: 2,
        status: ApprovalStatus::Pending,
        decided_by: None,
        decided_at: None,
        last_poll: None,
    }
}

/// The agent's notification endpoint: sends each `auth_req_id` it receives
/// and the instant it did on `tx`.
async fn receiver(tx: mpsc::UnboundedSender<(String, Instant)>) -> String {
    let app = axum::Router::new().route(
        "/cb",
        post(move |body: axum::body::Bytes| {
            let at = Instant::now();
            let tx = tx.clone();
            async move {
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                let id = v["auth_req_id"].as_str().unwrap_or_default().to_owned();
                let _ = tx.send((id, at));
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/cb")
}

/// Waits for the ping of `id` (skipping any other, there should be none).
async fn ping_of(rx: &mut mpsc::UnboundedReceiver<(String, Instant)>, id: &str) -> Instant {
    loop {
        let (got, at) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("a ping within 10 s")
            .unwrap();
        if got == id {
            return at;
        }
    }
}

fn pct(v: &[f64], p: f64) -> f64 {
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn row(store: &str, name: &str, v: &mut [f64], base: Option<(f64, f64)>) -> (f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    let (p50, p99) = (pct(v, 0.5), pct(v, 0.99));
    let ratio = base
        .map(|(b50, b99)| format!("{:.1} | {:.1}", p50 / b50, p99 / b99))
        .unwrap_or_else(|| "1 | 1".to_owned());
    println!(
        "| {store} | {name} | {} | {:.2} | {:.2} | {:.2} | {ratio} |",
        v.len(),
        p50,
        p99,
        v[v.len() - 1]
    );
    (p50, p99)
}

/// A `redis-server` without persistence on a free port, killed on drop.
struct Redis(std::process::Child, String);

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_redis(dir: &std::path::Path) -> Option<Redis> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let child = std::process::Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--dir"])
        .arg(dir)
        .stdout(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let redis = Redis(child, format!("redis://127.0.0.1:{port}"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(redis)
}

fn main() {
    let n: usize = std::env::var("APPROVALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "approval_latency: {n} approvals after {} warm-up per store; loadavg {}",
        n / 10,
        load.trim()
    );
    println!("| store | measured | n | p50 ms | p99 ms | max ms | p50 ratio | p99 ratio |");
    println!("|---|---|---|---|---|---|---|---|");
    let dir = tempfile::tempdir().unwrap();
    let stores = Stores::embedded(dir.path()).unwrap();
    rt.block_on(measure("embedded", n, dir.path(), stores));
    let rdir = tempfile::tempdir().unwrap();
    match start_redis(rdir.path()) {
        Some(redis) => {
            let stores = rt.block_on(Stores::redis(&redis.1, "bench:")).unwrap();
            rt.block_on(measure("redis", n, rdir.path(), stores));
        }
        None => eprintln!("approval_latency: redis-server not available; Redis run skipped"),
    }
}

async fn measure(store: &str, n: usize, data_dir: &std::path::Path, stores: Stores) {
    let config = Config {
        issuer_url: Some("http://127.0.0.1:1".into()),
        data_dir: data_dir.to_owned(),
        ..Config::default()
    };
    let (ring, _) = KeyRing::load_or_create(&config.keys_dir()).unwrap();
    let state = AppState::new(config, stores, ring, Arc::new(SystemClock));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let endpoint = receiver(tx).await;
    let now = Utc::now();
    state
        .stores
        .agents
        .put(&AgentRecord {
            id: AgentId::parse(AGENT).unwrap(),
            public_key: AgentKey::parse(&format!("ed25519/{}", "ab".repeat(32))).unwrap(),
            description: "approval latency bench".into(),
            ceiling: Ceiling {
                actions: vec![Action::parse("payments:create").unwrap()],
                resources: vec![ResourcePattern::parse("invoice:*").unwrap()],
                audiences: Vec::new(),
                max_ttl: Duration::from_secs(300),
            },
            disabled: false,
            created_at: now,
            updated_at: now,
            notification_endpoint: Some(endpoint.clone()),
            redirect_uris: Vec::new(),
        })
        .await
        .unwrap();

    // Baseline: the bare loopback POST of the same body.
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut bare = Vec::new();
    for i in 0..n + n / 10 {
        let id = format!("bare-{i}");
        let t = Instant::now();
        let resp = http
            .post(&endpoint)
            .header("content-type", "application/json")
            .bearer_auth("bench-notification-token")
            .body(serde_json::json!({ "auth_req_id": id }).to_string())
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success());
        let at = ping_of(&mut rx, &id).await;
        if i >= n / 10 {
            bare.push((at - t).as_secs_f64() * 1e3);
        }
    }

    // Decision to ping.
    let (mut to_ping, mut to_return) = (Vec::new(), Vec::new());
    let by = Decider::Person(alice());
    for i in 0..n + n / 10 {
        let a = approval(i);
        state.stores.approvals.create(&a, Utc::now()).await.unwrap();
        let t = Instant::now();
        let decided = notify::decide(&state, &a.id, &by, Verdict::Approve)
            .await
            .unwrap();
        let returned = t.elapsed();
        assert!(matches!(decided, Decided::Decided(_)));
        let at = ping_of(&mut rx, &a.id).await;
        if i >= n / 10 {
            to_ping.push((at - t).as_secs_f64() * 1e3);
            to_return.push(returned.as_secs_f64() * 1e3);
        }
        // Let the delivery task audit its attempt before the next decision.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }

    let base = row(store, "bare loopback POST (baseline)", &mut bare, None);
    row(
        store,
        "notify::decide -> ping received",
        &mut to_ping,
        Some(base),
    );
    row(store, "notify::decide returns", &mut to_return, Some(base));
}
