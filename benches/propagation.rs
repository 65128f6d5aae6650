//! Revocation propagation: from the issuer's answer to `POST /v1/revocations`
//! until every follower's view holds the id.
//!
//! Starts a `redis-server` on a free port, the issuer in this process on
//! loopback (Redis store), and 8 followers, each with its own view: first
//! Redis followers, then HTTP followers (feed token, 1 s long polls). For
//! each of 1,000 sequential revocations, the main thread spins on the views
//! from the moment the HTTP answer arrived and records, per follower, when
//! the id appeared (8,000 samples per kind), and the same from the moment
//! the request was sent. Then the same with Redis followers on a Redis
//! Cluster of three masters (`redis+cluster://` URL), the issuer's store on
//! that cluster too.
//!
//! Run: `cargo bench --bench propagation` (env `PROPAGATION_REVOCATIONS`,
//! default 1000; `PROPAGATION_FOLLOWERS`, default 8; `PROPAGATION_CASES`,
//! default `redis,http,cluster`). Needs `redis-server` and `redis-cli` on
//! PATH.

// Benchmark code: a failed unwrap is a failed run; the clock is read here on purpose.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods,
    missing_docs
)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::json;
use tessera::server::{self, admin, AppState, Config, KeyRing, SystemClock};
use tessera::store::Stores;
use tessera::token::{self, Lifetime};
use tessera::verify::{FollowerHandle, HttpFollower, RedisFollower, RevocationView};

#[path = "common/cluster.rs"]
mod cluster;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `redis-server` without persistence, killed on drop.
struct Redis {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Redis {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on PATH");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            child,
            url: format!("redis://127.0.0.1:{port}/"),
            _dir: dir,
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The issuer on loopback, on `redis_url`; returns its base URL and state.
async fn start_issuer(redis_url: &str, data_dir: &std::path::Path) -> (String, AppState) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let base = format!("http://{addr}");
    let config = Config {
        listen: addr,
        issuer_url: Some(base.clone()),
        data_dir: data_dir.to_owned(),
        redis_url: Some(redis_url.to_owned()),
        ..Config::default()
    };
    let (ring, _) = KeyRing::load_or_create(&config.keys_dir()).unwrap();
    let stores = Stores::redis(redis_url, &config.redis_key_prefix)
        .await
        .unwrap();
    let state = AppState::new(config, stores, ring, Arc::new(SystemClock));
    let app = server::app(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, state)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// Per revocation and follower: the time from the HTTP answer to the id
/// being in the follower's view, and from the request being sent.
struct Samples {
    after_answer: Vec<Duration>,
    after_send: Vec<Duration>,
    posts: Vec<Duration>,
}

/// Revokes `n` ids one after the other and records [`Samples`].
fn measure(
    rt: &tokio::runtime::Runtime,
    http: &reqwest::Client,
    base: &str,
    admin_token: &str,
    followers: &[FollowerHandle],
    n: usize,
) -> Samples {
    let views: Vec<Arc<RevocationView>> = followers.iter().map(|f| f.view().clone()).collect();
    let mut samples = Samples {
        after_answer: Vec::with_capacity(n * views.len()),
        after_send: Vec::with_capacity(n * views.len()),
        posts: Vec::with_capacity(n),
    };
    for _ in 0..n {
        let id: [u8; 64] = std::array::from_fn(|_| rand::random());
        let body = json!({ "revocation_id": hex::encode(id) });
        let sent = Instant::now();
        let status = rt.block_on(async {
            http.post(format!("{base}/v1/revocations"))
                .bearer_auth(admin_token)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
        });
        let answered = Instant::now();
        assert_eq!(status, 201);
        samples.posts.push(answered - sent);
        let mut pending: Vec<usize> = (0..views.len()).collect();
        let mut spins = 0u32;
        while !pending.is_empty() {
            pending.retain(|&i| {
                if views[i].contains(&id) {
                    samples.after_answer.push(answered.elapsed());
                    samples.after_send.push(sent.elapsed());
                    false
                } else {
                    true
                }
            });
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(64) {
                // Two cores: leave room for the followers.
                std::thread::yield_now();
                assert!(
                    answered.elapsed() < Duration::from_secs(30),
                    "a follower never saw a revocation"
                );
            } else {
                std::hint::spin_loop();
            }
        }
    }
    samples
}

fn report(label: &str, samples: Samples) {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let line = |what: &str, mut v: Vec<Duration>| {
        v.sort();
        println!(
            "  {what:<28} n {:>5}  p50 {:>8.3} ms  p99 {:>8.3} ms  max {:>8.3} ms",
            v.len(),
            ms(percentile(&v, 0.50)),
            ms(percentile(&v, 0.99)),
            ms(*v.last().unwrap()),
        );
    };
    println!("{label}");
    line("visible after the answer", samples.after_answer);
    line("visible after the request", samples.after_send);
    line("POST round trip", samples.posts);
}

/// `count` Redis followers of `url` (one server or `redis+cluster://`).
fn redis_followers(url: &str, count: usize) -> Vec<FollowerHandle> {
    (0..count)
        .map(|_| {
            RedisFollower::new(url.to_owned())
                .spawn(RevocationView::new())
                .unwrap()
        })
        .collect()
}

fn wait_confirmed(followers: &[FollowerHandle]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while followers.iter().any(|f| f.view().staleness().is_none()) {
        assert!(Instant::now() < deadline, "followers did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn main() {
    let env = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let n = env("PROPAGATION_REVOCATIONS", 1000);
    let count = env("PROPAGATION_FOLLOWERS", 8);
    let cases =
        std::env::var("PROPAGATION_CASES").unwrap_or_else(|_| "redis,http,cluster".to_owned());
    println!("load average before: {}", load_average());

    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (base, state) = rt.block_on(start_issuer(&redis.url, dir.path()));
    let mint = |cap| {
        token::mint(&cap, state.ring().active(), Utc::now())
            .unwrap()
            .token
    };
    let admin_token = mint(admin::admin_capability(Lifetime::parse("1h").unwrap()).unwrap());
    let feed_token = mint(admin::feed_capability(Lifetime::parse("1h").unwrap()).unwrap());
    let http = reqwest::Client::new();
    let _enter = rt.enter();

    if cases.contains("redis") {
        let followers = redis_followers(&redis.url, count);
        wait_confirmed(&followers);
        let samples = measure(&rt, &http, &base, &admin_token, &followers, n);
        report(
            &format!("{count} Redis followers, {n} revocations"),
            samples,
        );
    }

    if cases.contains("http") {
        let followers: Vec<FollowerHandle> = (0..count)
            .map(|_| {
                HttpFollower::new(base.clone(), feed_token.clone())
                    .spawn(RevocationView::new())
                    .unwrap()
            })
            .collect();
        wait_confirmed(&followers);
        let samples = measure(&rt, &http, &base, &admin_token, &followers, n);
        report(&format!("{count} HTTP followers, {n} revocations"), samples);
    }

    if cases.contains("cluster") {
        // The issuer's store and the followers on a cluster of three masters.
        let cluster = cluster::Cluster::start().expect("a Redis Cluster");
        let dir = tempfile::tempdir().unwrap();
        let (base, state) = rt.block_on(start_issuer(&cluster.url(), dir.path()));
        let admin_token = token::mint(
            &admin::admin_capability(Lifetime::parse("1h").unwrap()).unwrap(),
            state.ring().active(),
            Utc::now(),
        )
        .unwrap()
        .token;
        let followers = redis_followers(&cluster.url(), count);
        wait_confirmed(&followers);
        let samples = measure(&rt, &http, &base, &admin_token, &followers, n);
        report(
            &format!("{count} Redis followers, cluster (3 masters), {n} revocations"),
            samples,
        );
    }
    println!("load average after: {}", load_average());
}
