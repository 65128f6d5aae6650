//! Load test of `tessera serve` on loopback: client_credentials minting
//! (private_key_jwt) on the embedded store and on Redis, beside the
//! in-process rate of the same work (client-assertion verification plus
//! minting) measured in the same run.
//!
//! Run: `cargo bench --bench issuer_load` (env `LOAD_REQUESTS`, default 2000;
//! `LOAD_CONCURRENCY`, default 16; `LOAD_STORES`, default `embedded,redis`;
//! `LOAD_BIN`, another `tessera` binary to load). Prints a table for
//! docs/performance.md.

// Benchmark code: a failed unwrap is a failed run; the clock is read here on purpose.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods,
    missing_docs
)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use biscuit_auth::KeyPair;
use chrono::Utc;
use ed25519_dalek::SigningKey;
use serde_json::json;
use tessera::jose::{self, AssertionClaims, AssertionRules, Audiences, Jws};
use tessera::token::{
    self, Action, AgentId, Audience, Capability, Lifetime, ResourcePattern, RootKeyPair,
};

/// The `tessera` binary: the one cargo built, or `LOAD_BIN` (to compare
/// two builds with one load client).
fn bin() -> String {
    std::env::var("LOAD_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_tessera").to_owned())
}
const AGENT: &str = "agent://bench/agent";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until `GET url` answers 200.
fn wait_http(url: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let up = rt.block_on(async {
            reqwest::get(url)
                .await
                .is_ok_and(|r| r.status().is_success())
        });
        if up {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{url} did not come up");
}

fn signing_key(kp: &KeyPair) -> SigningKey {
    let bytes: [u8; 32] = kp.private().to_bytes().as_slice().try_into().unwrap();
    SigningKey::from_bytes(&bytes)
}

fn assertion(key: &SigningKey, aud: &str, n: usize) -> String {
    let t = Utc::now().timestamp();
    let claims = AssertionClaims {
        iss: AGENT.into(),
        sub: AGENT.into(),
        aud: Audiences::One(aud.into()),
        exp: t + 240,
        iat: Some(t),
        nbf: None,
        jti: format!("bench-{n}-{}", rand_suffix()),
    };
    jose::sign(key, None, false, &claims).unwrap()
}

fn rand_suffix() -> u64 {
    use rand::RngCore;
    rand::rngs::OsRng.next_u64()
}

struct Run {
    label: String,
    requests: usize,
    seconds: f64,
    p50: Duration,
    p99: Duration,
    errors: usize,
    /// CPU time of the server process per request (all its threads), and
    /// of `redis-server` when it is the store.
    server_cpu: Option<Duration>,
    redis_cpu: Option<Duration>,
    /// CPU time of this process (the load client) per request.
    client_cpu: Option<Duration>,
}

/// CPU time used so far by every thread of process `pid` (Linux
/// `/proc/<pid>/task/*/schedstat`, nanoseconds); `None` elsewhere.
fn cpu_time(pid: u32) -> Option<Duration> {
    let mut total = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(Duration::from_nanos(total))
}

/// CPU time per request between two readings of [`cpu_time`].
fn per_request(
    before: Option<Duration>,
    after: Option<Duration>,
    requests: usize,
) -> Option<Duration> {
    Some(after?.checked_sub(before?)? / u32::try_from(requests.max(1)).ok()?)
}

fn micros(d: Option<Duration>) -> String {
    d.map(|d| format!("{:.0} µs", d.as_secs_f64() * 1e6))
        .unwrap_or_else(|| "n/a".to_owned())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Starts `tessera serve`, registers the bench agent, fires `requests`
/// token requests with `concurrency` workers.
fn http_run(
    label: &str,
    redis: Option<(&str, u32)>,
    requests: usize,
    concurrency: usize,
    agent: &KeyPair,
) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let mut cmd = Command::new(bin());
    cmd.args([
        "serve",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--data-dir",
    ])
    .arg(dir.path())
    .env("TESSERA_LOG", "warn")
    .stdout(Stdio::null())
    .stderr(Stdio::inherit());
    if let Some((url, _)) = redis {
        cmd.args(["--redis-url", url]);
    }
    let server = Proc(cmd.spawn().unwrap());
    let server_pid = server.0.id();
    wait_http(&format!("{issuer}/healthz"));
    let admin = String::from_utf8(
        Command::new(bin())
            .args(["admin", "token", "--data-dir"])
            .arg(dir.path())
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_owned();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let key = signing_key(agent);
    let endpoint = format!("{issuer}/oauth/token");
    let forms: Vec<Vec<(&str, String)>> = (0..requests + 50)
        .map(|n| {
            vec![
                ("grant_type", "client_credentials".to_owned()),
                (
                    "client_assertion_type",
                    tessera::server::oauth::JWT_BEARER.to_owned(),
                ),
                ("client_assertion", assertion(&key, &endpoint, n)),
                ("scope", "orders:create".to_owned()),
                ("identifier", format!("order:{n}")),
                ("resource", "https://orders.example".to_owned()),
            ]
        })
        .collect();
    rt.block_on(async {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(concurrency)
            .build()
            .unwrap();
        let r = http
            .post(format!("{issuer}/v1/agents"))
            .bearer_auth(&admin)
            .json(&json!({
                "id": AGENT,
                "public_key": agent.public().to_string(),
                "ceiling": {"actions": ["orders:create"], "resources": ["order:*"],
                            "audiences": ["https://orders.example"], "max_ttl": "10m"}
            }))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "register: {}", r.status());
        let forms = Arc::new(forms);
        // Warm-up: 50 requests.
        for f in forms.iter().skip(requests) {
            let r = http.post(&endpoint).form(f).send().await.unwrap();
            assert_eq!(
                r.status(),
                200,
                "warm-up: {}",
                r.text().await.unwrap_or_default()
            );
        }
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let redis_pid = redis.map(|(_, pid)| pid);
        let cpu = || {
            (
                cpu_time(server_pid),
                cpu_time(std::process::id()),
                redis_pid.and_then(cpu_time),
            )
        };
        let (server_before, client_before, redis_before) = cpu();
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..concurrency {
            let (http, forms, next, endpoint) =
                (http.clone(), forms.clone(), next.clone(), endpoint.clone());
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut errors = 0;
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= requests {
                        break;
                    }
                    let t = Instant::now();
                    match http.post(&endpoint).form(&forms[i]).send().await {
                        Ok(r) if r.status() == 200 => {
                            let _ = r.bytes().await;
                            lat.push(t.elapsed());
                        }
                        _ => errors += 1,
                    }
                }
                (lat, errors)
            }));
        }
        let mut all = Vec::new();
        let mut errors = 0;
        for t in tasks {
            let (l, e) = t.await.unwrap();
            all.extend(l);
            errors += e;
        }
        let seconds = start.elapsed().as_secs_f64();
        let (server_after, client_after, redis_after) = cpu();
        all.sort();
        Run {
            label: label.to_owned(),
            requests: all.len(),
            seconds,
            p50: percentile(&all, 0.50),
            p99: percentile(&all, 0.99),
            errors,
            server_cpu: per_request(server_before, server_after, requests),
            client_cpu: per_request(client_before, client_after, requests),
            redis_cpu: per_request(redis_before, redis_after, requests),
        }
    })
}

/// The same work without HTTP or a store: verify the client assertion
/// (parse, signature, claims) and mint the token.
fn in_process_rate(iterations: usize, agent: &KeyPair) -> f64 {
    let root = RootKeyPair::new(0, KeyPair::new());
    let key = signing_key(agent);
    let verifying = key.verifying_key();
    let aud = "http://127.0.0.1:1/oauth/token";
    let assertions: Vec<String> = (0..iterations).map(|n| assertion(&key, aud, n)).collect();
    let start = Instant::now();
    for (n, a) in assertions.iter().enumerate() {
        let jws: Jws<AssertionClaims> = Jws::parse(a).unwrap();
        jws.verify(&verifying).unwrap();
        jws.claims
            .check(&AssertionRules {
                audiences: &[aud],
                now: Utc::now(),
                max_lifetime_secs: 300,
                skew_secs: 30,
            })
            .unwrap();
        let cap = Capability {
            agent: AgentId::parse(AGENT).unwrap(),
            action: Action::parse("orders:create").unwrap(),
            resource: ResourcePattern::parse(&format!("order:{n}")).unwrap(),
            audience: Some(Audience::parse("https://orders.example").unwrap()),
            lifetime: Lifetime::parse("5m").unwrap(),
            holder_key: None,
        };
        std::hint::black_box(token::mint(&cap, &root, Utc::now()).unwrap());
    }
    iterations as f64 / start.elapsed().as_secs_f64()
}

fn start_redis() -> Option<(Proc, String, tempfile::TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(dir.path())
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
    Some((proc, format!("redis://127.0.0.1:{port}"), dir))
}

fn main() {
    // `cargo bench` passes `--bench`; a bare run with other args (e.g. from
    // `cargo test --benches`) only checks that it starts.
    let quick = !std::env::args().any(|a| a == "--bench");
    let requests: usize = std::env::var("LOAD_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 100 } else { 2000 });
    let concurrency: usize = std::env::var("LOAD_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);
    // `LOAD_STORES`: which stores to run, `embedded,redis` by default.
    let stores = std::env::var("LOAD_STORES").unwrap_or_else(|_| "embedded,redis".to_owned());
    let agent = KeyPair::new();
    let mut runs = Vec::new();
    if stores.contains("embedded") {
        runs.push(http_run(
            "HTTP, embedded store",
            None,
            requests,
            concurrency,
            &agent,
        ));
    }
    if stores.contains("redis") {
        match start_redis() {
            Some((redis, url, _dir)) => runs.push(http_run(
                "HTTP, Redis store",
                Some((&url, redis.0.id())),
                requests,
                concurrency,
                &agent,
            )),
            None => eprintln!("issuer_load: redis-server not available; Redis run skipped"),
        }
    }
    let baseline = in_process_rate(requests.max(500), &agent);
    println!(
        "\nclient_credentials minting: {requests} requests, {concurrency} concurrent, loopback"
    );
    println!(
        "| run | tokens/s | p50 | p99 | errors | ratio to in-process | server CPU/request | redis-server CPU/request | client CPU/request |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for r in &runs {
        let rate = r.requests as f64 / r.seconds;
        println!(
            "| {} | {:.0} | {:.2} ms | {:.2} ms | {} | {:.2} | {} | {} | {} |",
            r.label,
            rate,
            r.p50.as_secs_f64() * 1e3,
            r.p99.as_secs_f64() * 1e3,
            r.errors,
            rate / baseline,
            micros(r.server_cpu),
            micros(r.redis_cpu),
            micros(r.client_cpu),
        );
    }
    println!("| in-process: verify assertion + mint | {baseline:.0} | | | | 1.00 | | | |");
}
