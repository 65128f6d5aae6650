//! Load test of `tessera serve` on loopback, per grant, on the embedded
//! store, on one Redis server and on a Redis Cluster of three masters,
//! beside the in-process rate of the same work measured in the same run:
//!
//! - `client_credentials` (private_key_jwt): client-assertion verification
//!   plus minting;
//! - `token_exchange` (RFC 8693, issue 11): a person's ID token from the
//!   real test IdP (`tests/idp/provider.mjs`, started here with node on a
//!   free port; one ID token from its login flow, reused for every request)
//!   exchanged for a token acting for her. In process: client-assertion
//!   verification, ID-token validation with the IdP's cached keys, the
//!   person's roles intersected with the agent's ceiling, and minting.
//!   Skipped (with a message) when node or tests/idp/node_modules is
//!   missing, unless `TESSERA_REQUIRE_NODE=1`.
//!
//! Run: `cargo bench --bench issuer_load` (env `LOAD_REQUESTS`, default 5000
//! per run; `LOAD_ROUNDS`, default 3; `LOAD_CONCURRENCY`, default 16;
//! `LOAD_STORES`, default `embedded,redis,cluster`; `LOAD_GRANTS`, default
//! `client_credentials,token_exchange`; `LOAD_BIN`, another `tessera`
//! binary to load; `LOAD_BIN_NO_TREE`, a build without the audit tree, for
//! the comparison in [`tree_cost`] instead of this one). Each round measures the in-process rate, then one HTTP
//! run per store on a fresh server; each run's ratio is against the mean of
//! the in-process rates measured just before and just after it. Prints every
//! run and the medians, as tables for docs/performance.md.
//!
//! The timed requests are pre-built bytes sent over keep-alive connections
//! by a minimal HTTP/1.1 client ([`RawConn`]), so that the load client takes
//! as little as it can of the two cores it shares with the server.

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
use tessera::people::rights::{self, Limits, Rights, Wanted};
use tessera::people::{FetchOptions, IdpConfig, Role, TrustedIdps};
use tessera::store::Ceiling;
use tessera::token::{
    self, Action, AgentId, Audience, Capability, Lifetime, OnBehalf, Person, ResourcePattern,
    RootKeyPair,
};

#[path = "common/cluster.rs"]
mod cluster;

// `LOAD_BIN_NO_TREE`: the same load with and without the audit tree.
#[path = "issuer_load/tree_cost.rs"]
mod tree_cost;

// The test IdP and its login flow, shared with the integration tests.
#[allow(dead_code)]
#[path = "../tests/it/people/idp.rs"]
mod idp;

/// The `tessera` binary: the one cargo built, or `LOAD_BIN` (to compare
/// two builds with one load client).
fn bin() -> String {
    std::env::var("LOAD_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_tessera").to_owned())
}
const AGENT: &str = "agent://bench/agent";
/// The agent alice's `may_act` names (tests/idp/provider.mjs).
const PLANNER: &str = "agent://acme/planner";
/// The test IdP's client whose ID tokens Tessera accepts (their `aud`).
const IDP_CLIENT: &str = "tessera-eddsa";
/// The tool server the exchanged tokens are for.
const DOCS: &str = "https://docs.example";
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ID_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id_token";

/// The grant a case measures.
enum Grant {
    ClientCredentials,
    /// Exchange of `id_token`, issued by the IdP at `issuer` to alice.
    TokenExchange {
        issuer: String,
        id_token: String,
    },
}

/// The people part of the exchange case's configuration: the trusted IdP
/// and one role for alice's `finance` group.
#[derive(serde::Deserialize)]
struct People {
    idp: Vec<IdpConfig>,
    role: Vec<Role>,
}

impl Grant {
    fn title(&self) -> &'static str {
        match self {
            Grant::ClientCredentials => "client_credentials minting",
            Grant::TokenExchange { .. } => "token exchange (ID token in, token for alice out)",
        }
    }

    fn in_process_label(&self) -> &'static str {
        match self {
            Grant::ClientCredentials => "in-process: verify assertion + mint",
            Grant::TokenExchange { .. } => {
                "in-process: verify assertion + validate ID token + intersect + mint"
            }
        }
    }

    fn agent(&self) -> &'static str {
        match self {
            Grant::ClientCredentials => AGENT,
            Grant::TokenExchange { .. } => PLANNER,
        }
    }

    /// The agent's ceiling, as `POST /v1/agents` takes it.
    fn ceiling(&self) -> serde_json::Value {
        match self {
            Grant::ClientCredentials => json!({
                "actions": ["orders:create"], "resources": ["order:*"],
                "audiences": ["https://orders.example"], "max_ttl": "10m"}),
            Grant::TokenExchange { .. } => json!({
                "actions": ["docs:read"], "resources": ["docs/*"],
                "audiences": [DOCS], "max_ttl": "10m"}),
        }
    }

    /// `tessera serve --config` text, if the grant needs one.
    fn config(&self) -> Option<String> {
        match self {
            Grant::ClientCredentials => None,
            Grant::TokenExchange { issuer, .. } => Some(format!(
                "[[idp]]\nissuer = \"{issuer}\"\naudience = \"{IDP_CLIENT}\"\n\
                 groups_claim = \"groups\"\nclock_skew_secs = 30\n\n\
                 [[role]]\nname = \"reader\"\nactions = [\"docs:read\"]\n\
                 resources = [\"docs/*\"]\naudiences = [\"{DOCS}\"]\n\
                 max_ttl = \"10m\"\ngroups = [\"finance\"]\n"
            )),
        }
    }

    /// The form of token request `n`, with its client `assertion`.
    fn form(&self, assertion: String, n: usize) -> Vec<(&'static str, String)> {
        let mut form = vec![
            (
                "client_assertion_type",
                tessera::server::oauth::JWT_BEARER.to_owned(),
            ),
            ("client_assertion", assertion),
        ];
        match self {
            Grant::ClientCredentials => form.extend([
                ("grant_type", "client_credentials".to_owned()),
                ("scope", "orders:create".to_owned()),
                ("identifier", format!("order:{n}")),
                ("resource", "https://orders.example".to_owned()),
            ]),
            Grant::TokenExchange { id_token, .. } => form.extend([
                ("grant_type", TOKEN_EXCHANGE.to_owned()),
                ("subject_token", id_token.clone()),
                ("subject_token_type", ID_TOKEN_TYPE.to_owned()),
                ("scope", "docs:read".to_owned()),
                ("identifier", format!("docs/q/{n}")),
                ("resource", DOCS.to_owned()),
            ]),
        }
        form
    }
}

/// Starts the test IdP (ID tokens living an hour, longer than any run) and
/// gets alice's ID token through its login flow; `None` when node or the
/// IdP's packages are missing.
fn start_idp() -> Option<(idp::TestIdp, Grant)> {
    let idp = idp::TestIdp::start_with(3600)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let id_token = rt.block_on(idp.id_token(IDP_CLIENT, "alice", "openid groups may_act"));
    let grant = Grant::TokenExchange {
        issuer: idp.issuer.clone(),
        id_token,
    };
    Some((idp, grant))
}

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

fn assertion(key: &SigningKey, agent: &str, aud: &str, n: usize) -> String {
    let t = Utc::now().timestamp();
    let claims = AssertionClaims {
        iss: agent.into(),
        sub: agent.into(),
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
    /// of `redis-server` (every node of a cluster) when it is the store.
    server_cpu: Option<Duration>,
    /// The part of `server_cpu` spent by the embedded store's writer thread.
    writer_cpu: Option<Duration>,
    redis_cpu: Option<Duration>,
    /// CPU time of this process (the load client) per request.
    client_cpu: Option<Duration>,
    /// Whether the server signed an audit checkpoint (200), which a build
    /// without the audit tree refuses (503).
    tree: bool,
}

impl Run {
    /// Requests per second.
    fn rate(&self) -> f64 {
        self.requests as f64 / self.seconds
    }
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

/// CPU time used so far by the threads of process `pid` named `name`.
fn thread_cpu_time(pid: u32, name: &str) -> Option<Duration> {
    let mut total = None;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let path = task.ok()?.path();
        if std::fs::read_to_string(path.join("comm")).ok()?.trim() != name {
            continue;
        }
        let stat = std::fs::read_to_string(path.join("schedstat")).ok()?;
        let ns = stat.split_whitespace().next()?.parse::<u64>().ok()?;
        total = Some(total.unwrap_or(Duration::ZERO) + Duration::from_nanos(ns));
    }
    total
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

/// A token request with the pre-encoded form `body`.
fn post(http: &reqwest::Client, endpoint: &str, body: &str) -> reqwest::RequestBuilder {
    http.post(endpoint)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(body.to_owned())
}

/// The whole HTTP/1.1 request for `POST /oauth/token` with form `body`.
fn raw_request(port: u16, body: &str) -> Vec<u8> {
    format!(
        "POST /oauth/token HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n\
         content-type: application/x-www-form-urlencoded\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A keep-alive HTTP/1.1 connection that sends pre-built requests and reads
/// just enough of each response (status line, `content-length`, body) to
/// know it is complete. It does far less per request than a general HTTP
/// client, and the load client shares the machine's CPU with the server.
struct RawConn {
    port: u16,
    stream: Option<tokio::net::TcpStream>,
    buf: Vec<u8>,
}

impl RawConn {
    fn new(port: u16) -> Self {
        Self {
            port,
            stream: None,
            buf: Vec::with_capacity(4096),
        }
    }

    /// Sends `request` and returns the response's status. After an error
    /// the connection is dropped; the next request opens a new one.
    async fn send(&mut self, request: &[u8]) -> std::io::Result<u16> {
        let result = self.round_trip(request).await;
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    async fn round_trip(&mut self, request: &[u8]) -> std::io::Result<u16> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let stream = match &mut self.stream {
            Some(stream) => stream,
            empty => {
                let stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await?;
                stream.set_nodelay(true)?;
                empty.insert(stream)
            }
        };
        stream.write_all(request).await?;
        self.buf.clear();
        let mut chunk = [0u8; 4096];
        let (head_end, status, length) = loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = std::str::from_utf8(&self.buf[..end]).map_err(invalid)?;
                let status = head
                    .get(9..12)
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| invalid("no status"))?;
                let length = head
                    .lines()
                    .filter_map(|l| l.split_once(':'))
                    .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, v)| v.trim().parse::<usize>().ok())
                    .ok_or_else(|| invalid("no content-length"))?;
                break (end + 4, status, length);
            }
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        };
        while self.buf.len() < head_end + length {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
        Ok(status)
    }
}

fn invalid(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())
}

/// Starts `tessera serve` (binary `bin`), registers the bench agent, asks
/// for an audit checkpoint, fires `requests` token requests with
/// `concurrency` workers.
fn http_run(
    grant: &Grant,
    label: &str,
    bin: &str,
    redis: Option<(&str, &[u32])>,
    requests: usize,
    concurrency: usize,
    agent: &KeyPair,
) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let mut cmd = Command::new(bin);
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
    if let Some(config) = grant.config() {
        let path = dir.path().join("people.toml");
        std::fs::write(&path, config).unwrap();
        cmd.arg("--config").arg(path);
    }
    if let Some((url, _)) = redis {
        cmd.args(["--redis-url", url]);
    }
    let server = Proc(cmd.spawn().unwrap());
    let server_pid = server.0.id();
    wait_http(&format!("{issuer}/healthz"));
    let admin = String::from_utf8(
        Command::new(bin)
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
    // Bodies are encoded before the timed part, so that the load client
    // spends as little as it can of the CPU the server shares with it.
    let bodies: Vec<String> = (0..requests + 50)
        .map(|n| {
            let form = grant.form(assertion(&key, grant.agent(), &endpoint, n), n);
            serde_urlencoded::to_string(form).unwrap()
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
                "id": grant.agent(),
                "public_key": agent.public().to_string(),
                "ceiling": grant.ceiling(),
            }))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "register: {}", r.status());
        let checkpoint = http
            .get(format!("{issuer}/v1/audit/checkpoint"))
            .send()
            .await
            .unwrap()
            .status();
        assert!(
            checkpoint == 200 || checkpoint == 503,
            "checkpoint: {checkpoint}"
        );
        let bodies = Arc::new(bodies);
        // Warm-up: 50 requests.
        for body in bodies.iter().skip(requests) {
            let r = post(&http, &endpoint, body).send().await.unwrap();
            assert_eq!(
                r.status(),
                200,
                "warm-up: {}",
                r.text().await.unwrap_or_default()
            );
        }
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let redis_pids = redis.map(|(_, pids)| pids);
        let cpu = || {
            (
                cpu_time(server_pid),
                thread_cpu_time(server_pid, "tessera-redb-wr"),
                cpu_time(std::process::id()),
                redis_pids.and_then(|pids| pids.iter().map(|&p| cpu_time(p)).sum()),
            )
        };
        let (server_before, writer_before, client_before, redis_before) = cpu();
        let start = Instant::now();
        let mut tasks = Vec::new();
        let requests_bytes: Arc<Vec<Vec<u8>>> = Arc::new(
            bodies
                .iter()
                .take(requests)
                .map(|body| raw_request(port, body))
                .collect(),
        );
        for _ in 0..concurrency {
            let (requests_bytes, next) = (requests_bytes.clone(), next.clone());
            tasks.push(tokio::spawn(async move {
                let mut conn = RawConn::new(port);
                let mut lat = Vec::new();
                let mut errors = 0;
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= requests {
                        break;
                    }
                    let t = Instant::now();
                    match conn.send(&requests_bytes[i]).await {
                        Ok(200) => lat.push(t.elapsed()),
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
        let (server_after, writer_after, client_after, redis_after) = cpu();
        if checkpoint == 200 {
            // Every mint is a leaf: a checkpoint signed after the run (at
            // most one a second) counts at least as many.
            tokio::time::sleep(Duration::from_millis(1100)).await;
            let url = format!("{issuer}/v1/audit/checkpoint");
            let note = http.get(url).send().await.unwrap().text().await.unwrap();
            let size: usize = note.lines().nth(1).unwrap().parse().unwrap();
            assert!(size >= requests, "{size} leaves after {requests} mints");
        }
        all.sort();
        Run {
            label: label.to_owned(),
            requests: all.len(),
            seconds,
            p50: percentile(&all, 0.50),
            p99: percentile(&all, 0.99),
            errors,
            server_cpu: per_request(server_before, server_after, requests),
            writer_cpu: per_request(writer_before, writer_after, requests),
            client_cpu: per_request(client_before, client_after, requests),
            redis_cpu: per_request(redis_before, redis_after, requests),
            tree: checkpoint == 200,
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
    let assertions: Vec<String> = (0..iterations)
        .map(|n| assertion(&key, AGENT, aud, n))
        .collect();
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
            on_behalf: None,
        };
        std::hint::black_box(token::mint(&cap, &root, Utc::now()).unwrap());
    }
    iterations as f64 / start.elapsed().as_secs_f64()
}

/// The exchange's work without HTTP or a store: verify the client
/// assertion, validate the ID token with the IdP's keys (fetched once
/// before timing, as the server caches them), check that `may_act` names
/// the agent, intersect the person's roles with the agent's ceiling, and
/// mint the token acting for her. The configuration is the server's.
fn exchange_in_process_rate(iterations: usize, agent: &KeyPair, grant: &Grant) -> f64 {
    let Grant::TokenExchange { id_token, .. } = grant else {
        unreachable!("an exchange grant")
    };
    let people: People = toml::from_str(&grant.config().unwrap()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let idps = TrustedIdps::new(people.idp, FetchOptions::default()).unwrap();
    assert!(rt.block_on(idps.prefetch()).is_empty(), "the IdP's keys");
    let ceiling = Ceiling {
        actions: vec![Action::parse("docs:read").unwrap()],
        resources: vec![ResourcePattern::parse("docs/*").unwrap()],
        audiences: vec![Audience::parse(DOCS).unwrap()],
        max_ttl: Duration::from_secs(600),
    };
    // The server's defaults (`default_ttl` 5m, `max_ttl` 1h).
    let limits = Limits {
        max_ttl: Duration::from_secs(3600),
        default_ttl: Duration::from_secs(300),
    };
    let root = RootKeyPair::new(0, KeyPair::new());
    let key = signing_key(agent);
    let verifying = key.verifying_key();
    let aud = "http://127.0.0.1:1/oauth/token";
    let assertions: Vec<String> = (0..iterations)
        .map(|n| assertion(&key, PLANNER, aud, n))
        .collect();
    let planner = AgentId::parse(PLANNER).unwrap();
    rt.block_on(async {
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
            let identity = idps.validate(id_token, Utc::now()).await.unwrap();
            let person = Person::parse(&identity.issuer, &identity.subject).unwrap();
            assert_eq!(identity.may_act.as_deref(), Some(PLANNER));
            let rights = Rights::of(&people.role, &identity.groups, &[]);
            let wanted = Wanted {
                action: Action::parse("docs:read").unwrap(),
                resource: ResourcePattern::parse(&format!("docs/q/{n}")).unwrap(),
                audience: Some(Audience::parse(DOCS).unwrap()),
                lifetime: None,
            };
            let lifetime = rights::intersect(&rights, &ceiling, &wanted, limits).unwrap();
            let cap = Capability {
                agent: planner.clone(),
                action: wanted.action,
                resource: wanted.resource,
                audience: wanted.audience,
                lifetime,
                holder_key: None,
                on_behalf: Some(OnBehalf {
                    person,
                    prior_actors: Vec::new(),
                }),
            };
            std::hint::black_box(token::mint(&cap, &root, Utc::now()).unwrap());
        }
        iterations as f64 / start.elapsed().as_secs_f64()
    })
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

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// One HTTP run and the in-process rate it is compared with.
struct Measured {
    round: usize,
    run: Run,
    baseline: f64,
}

impl Measured {
    fn rate(&self) -> f64 {
        self.run.rate()
    }

    fn ratio(&self) -> f64 {
        self.rate() / self.baseline
    }
}

fn main() {
    // `cargo bench` passes `--bench`; a bare run with other args (e.g. from
    // `cargo test --benches`) only checks that it starts.
    let quick = !std::env::args().any(|a| a == "--bench");
    let requests = env_or("LOAD_REQUESTS", if quick { 100 } else { 5000 });
    let rounds = env_or("LOAD_ROUNDS", if quick { 1 } else { 3 }).max(1);
    let concurrency = env_or("LOAD_CONCURRENCY", 16);
    // `LOAD_STORES`: which stores to run, `embedded,redis,cluster` by default.
    let stores =
        std::env::var("LOAD_STORES").unwrap_or_else(|_| "embedded,redis,cluster".to_owned());
    // `LOAD_GRANTS`: which grants to load, both by default.
    let grants = std::env::var("LOAD_GRANTS")
        .unwrap_or_else(|_| "client_credentials,token_exchange".to_owned());
    // `LOAD_BIN_NO_TREE`: a build without the audit tree; if set, each case
    // compares it with the normal binary instead of the in-process rate.
    let no_tree = std::env::var("LOAD_BIN_NO_TREE").ok();
    let case = |grant: &Grant| match &no_tree {
        Some(no_tree) => tree_cost::compare(grant, no_tree, requests, rounds, concurrency, &stores),
        None => bench(grant, requests, rounds, concurrency, &stores),
    };
    if grants.contains("client_credentials") {
        case(&Grant::ClientCredentials);
    }
    if grants.contains("token_exchange") {
        match start_idp() {
            // `_idp` lives until the case is done: the server fetches its keys.
            Some((_idp, grant)) => case(&grant),
            None => eprintln!("issuer_load: no test IdP; token_exchange case skipped"),
        }
    }
}

/// The rounds of one grant's case, and its tables.
fn bench(grant: &Grant, requests: usize, rounds: usize, concurrency: usize, stores: &str) {
    let agent = KeyPair::new();
    let in_process = || match grant {
        Grant::ClientCredentials => in_process_rate(requests.max(500), &agent),
        Grant::TokenExchange { .. } => exchange_in_process_rate(requests.max(500), &agent, grant),
    };
    let mut baselines = vec![in_process()];
    let mut measured = Vec::new();
    for round in 1..=rounds {
        let mut runs = Vec::new();
        if stores.contains("embedded") {
            runs.push(http_run(
                grant,
                "HTTP, embedded store",
                &bin(),
                None,
                requests,
                concurrency,
                &agent,
            ));
        }
        if stores.contains("redis") {
            // A fresh redis-server per run, as the embedded store gets a
            // fresh data directory.
            match start_redis() {
                Some((proc, url, _dir)) => runs.push(http_run(
                    grant,
                    "HTTP, Redis store",
                    &bin(),
                    Some((&url, &[proc.0.id()])),
                    requests,
                    concurrency,
                    &agent,
                )),
                None => eprintln!("issuer_load: redis-server not available; Redis run skipped"),
            }
        }
        if stores.contains("cluster") {
            // A fresh three-master cluster per run.
            match cluster::Cluster::start() {
                Ok(c) => runs.push(http_run(
                    grant,
                    "HTTP, Redis store, cluster (3 masters)",
                    &bin(),
                    Some((&c.url(), &c.pids())),
                    requests,
                    concurrency,
                    &agent,
                )),
                Err(e) => eprintln!("issuer_load: no Redis Cluster ({e}); cluster run skipped"),
            }
        }
        let before = baselines[baselines.len() - 1];
        let after = in_process();
        baselines.push(after);
        measured.extend(runs.into_iter().map(|run| Measured {
            round,
            run,
            baseline: (before + after) / 2.0,
        }));
    }

    println!(
        "\n{}: {requests} requests per run, {concurrency} concurrent, loopback, {rounds} rounds",
        grant.title()
    );
    println!(
        "| round | run | tokens/s | p50 | p99 | errors | in-process tokens/s | ratio | server CPU/request | of which store writer | redis-server CPU/request | client CPU/request |"
    );
    println!(
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for m in &measured {
        let r = &m.run;
        println!(
            "| {} | {} | {:.0} | {:.2} ms | {:.2} ms | {} | {:.0} | {:.2} | {} | {} | {} | {} |",
            m.round,
            r.label,
            m.rate(),
            r.p50.as_secs_f64() * 1e3,
            r.p99.as_secs_f64() * 1e3,
            r.errors,
            m.baseline,
            m.ratio(),
            micros(r.server_cpu),
            micros(r.writer_cpu),
            micros(r.redis_cpu),
            micros(r.client_cpu),
        );
    }
    println!("\nMedians over {rounds} rounds:");
    println!("| run | tokens/s | p50 | p99 | ratio to in-process | server CPU/request |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    let labels: Vec<String> = measured
        .iter()
        .filter(|m| m.round == 1)
        .map(|m| m.run.label.clone())
        .collect();
    for label in labels {
        let of: Vec<&Measured> = measured.iter().filter(|m| m.run.label == label).collect();
        let med = |f: &dyn Fn(&Measured) -> f64| median(of.iter().map(|m| f(m)).collect());
        println!(
            "| {label} | {:.0} | {:.2} ms | {:.2} ms | {:.2} | {:.0} µs |",
            med(&|m| m.rate()),
            med(&|m| m.run.p50.as_secs_f64() * 1e3),
            med(&|m| m.run.p99.as_secs_f64() * 1e3),
            med(&|m| m.ratio()),
            med(&|m| m.run.server_cpu.map_or(f64::NAN, |d| d.as_secs_f64() * 1e6)),
        );
    }
    println!(
        "| {} | {:.0} | | | 1.00 | |",
        grant.in_process_label(),
        median(baselines)
    );
}
