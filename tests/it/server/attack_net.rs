//! Attacks on the issuer's HTTP front (issue 9, findings 4, 6 and 10f):
//! metric labels chosen by strangers, connections that never finish their
//! request or never leave, and colour codes in logs that are not a terminal.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use reqwest::StatusCode;
use tempfile::TempDir;
use tessera::server::config::Ttl;
use tessera::server::{AppState, Config, KeyRing, SystemClock};
use tessera::store::Stores;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::store::redis_server::free_port;

/// Limits of the server under test (seconds are short so tests are quick).
#[derive(Clone, Copy, Debug)]
struct Limits {
    header: Duration,
    body: Duration,
    idle: Duration,
    connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header: Duration::from_secs(1),
            body: Duration::from_secs(1),
            idle: Duration::from_secs(1),
            connections: 64,
        }
    }
}

/// The issuer on loopback, embedded store, with these limits; `/metrics`
/// on a listener of its own.
struct Issuer {
    addr: SocketAddr,
    metrics: SocketAddr,
    http: reqwest::Client,
    server: JoinHandle<()>,
    _state: AppState,
    _dir: TempDir,
}

impl Drop for Issuer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Issuer {
    async fn spawn(limits: Limits) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let metrics_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let metrics = metrics_listener.local_addr().unwrap();
        let config = Config {
            listen: addr,
            issuer_url: Some(format!("http://{addr}")),
            data_dir: dir.path().to_owned(),
            header_read_timeout: Ttl(limits.header),
            body_read_timeout: Ttl(limits.body),
            idle_timeout: Ttl(limits.idle),
            max_connections: limits.connections,
            metrics_listen: Some(metrics),
            ..Config::default()
        };
        let (ring, _) = KeyRing::load_or_create(&config.keys_dir()).unwrap();
        let stores = Stores::embedded(&config.data_dir).unwrap();
        let state = AppState::new(config, stores, ring, Arc::new(SystemClock));
        let run = tessera::server::run(
            state.clone(),
            listener,
            Some(metrics_listener),
            std::future::pending(),
        );
        let server = tokio::spawn(async move {
            run.await.unwrap();
        });
        Self {
            addr,
            metrics,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            server,
            _state: state,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn healthz(&self, timeout: Duration) -> Option<StatusCode> {
        let r = self.http.get(self.url("/healthz")).timeout(timeout).send();
        r.await.ok().map(|r| r.status())
    }
}

/// Reads until the server closes the connection; `None` if it is still open
/// after `within`. Returns what was read.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(within, read).await.ok()?;
    Some(got)
}

/// A connection that sent `bytes` and then stalls.
async fn stalled(addr: SocketAddr, bytes: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    s
}

/// Generous: "closed by a timeout", not "left open for good".
const CUT_WITHIN: Duration = Duration::from_secs(10);

fn random_token(rng: &mut impl Rng, len: usize) -> String {
    const CHARS: &[u8] =
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+-.^_`|~";
    (0..len)
        .map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_stay_small_after_ten_thousand_requests_with_random_methods_and_paths() {
    let issuer = Issuer::spawn(Limits::default()).await;
    let base = format!("http://{}", issuer.addr);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let http = issuer.http.clone();
        let base = base.clone();
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            for i in 0..1250 {
                let (method, path) = {
                    let mut rng = rand::thread_rng();
                    let len = rng.gen_range(8..48);
                    let method = random_token(&mut rng, len);
                    let segment = crate::server::helpers::random_hex(8);
                    let path = match i % 3 {
                        0 => format!("/{segment}/{}", crate::server::helpers::random_hex(4)),
                        1 => format!("/v1/agents/{segment}"),
                        _ => "/healthz".to_owned(),
                    };
                    (method, path)
                };
                let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
                let r = http
                    .request(m, format!("{base}{path}"))
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().as_u16() >= 200, "{}", r.status());
                if i % 100 == 0 {
                    seen.push(method);
                }
            }
            seen
        }));
    }
    let mut methods = Vec::new();
    for t in tasks {
        methods.extend(t.await.unwrap());
    }
    let r = issuer
        .http
        .get(format!("http://{}/metrics", issuer.metrics))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.unwrap();
    // A few dozen label sets of a histogram each; before the fix every
    // request added one (about 2 KB each).
    assert!(
        text.len() < 64 * 1024,
        "/metrics grew to {} bytes after 10,000 requests",
        text.len()
    );
    for m in &methods {
        assert!(!text.contains(m.as_str()), "method {m:?} is a label value");
    }
    assert!(text.contains(r#"method="other""#), "{text}");
    assert!(text.contains(r#"route="/v1/agents/{id}""#), "{text}");
    assert!(!text.contains("/v1/agents/0"), "a raw path is a label");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stalls_in_the_request_line_is_disconnected_within_the_header_timeout() {
    let issuer = Issuer::spawn(Limits {
        idle: Duration::from_secs(60),
        body: Duration::from_secs(60),
        ..Limits::default()
    })
    .await;
    let mut s = stalled(issuer.addr, b"GET /heal").await;
    let start = Instant::now();
    assert!(
        closed_within(&mut s, CUT_WITHIN).await.is_some(),
        "a partial request line kept its connection open for {:?}",
        start.elapsed()
    );
    // Headers that never end are cut too.
    let mut s = stalled(
        issuer.addr,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n",
    )
    .await;
    assert!(closed_within(&mut s, CUT_WITHIN).await.is_some());
    assert_eq!(issuer.healthz(CUT_WITHIN).await, Some(StatusCode::OK));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stalls_in_the_body_is_cut_off_within_the_body_timeout() {
    let issuer = Issuer::spawn(Limits {
        header: Duration::from_secs(60),
        idle: Duration::from_secs(60),
        ..Limits::default()
    })
    .await;
    let head = "POST /oauth/token HTTP/1.1\r\nHost: x\r\n\
                Content-Type: application/x-www-form-urlencoded\r\n\
                Content-Length: 1000\r\n\r\ngrant_type=";
    let mut s = stalled(issuer.addr, head.as_bytes()).await;
    let got = closed_within(&mut s, CUT_WITHIN)
        .await
        .expect("a partial body kept its connection open");
    let text = String::from_utf8_lossy(&got);
    assert!(
        got.is_empty() || text.starts_with("HTTP/1.1 4"),
        "a partial body got {text}"
    );
    assert_eq!(issuer.healthz(CUT_WITHIN).await, Some(StatusCode::OK));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let issuer = Issuer::spawn(Limits {
        header: Duration::from_secs(60),
        body: Duration::from_secs(60),
        ..Limits::default()
    })
    .await;
    let mut s = stalled(issuer.addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.ends_with(b"ok") {
        let n = tokio::time::timeout(CUT_WITHIN, s.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed before answering");
        buf.extend_from_slice(&chunk[..n]);
    }
    assert!(buf.starts_with(b"HTTP/1.1 200"));
    // The connection is kept alive after the answer, then left idle.
    let start = Instant::now();
    assert!(
        closed_within(&mut s, CUT_WITHIN).await.is_some(),
        "an idle keep-alive connection stayed open {:?}",
        start.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_connection_slot_held_by_a_stalled_client_healthz_waits_then_answers_once_they_are_cut(
) {
    let limits = Limits {
        header: Duration::from_secs(3),
        connections: 8,
        ..Limits::default()
    };
    let issuer = Issuer::spawn(limits).await;
    let mut held = Vec::new();
    for _ in 0..limits.connections {
        held.push(stalled(issuer.addr, b"GET /").await);
    }
    // More stalled clients wait in the listen queue.
    for _ in 0..20 {
        held.push(stalled(issuer.addr, b"POST /oauth/token HTTP/1.1\r\n").await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Every slot is taken: the limit holds (no answer while they are held).
    assert_eq!(
        issuer.healthz(Duration::from_millis(500)).await,
        None,
        "a connection beyond the limit was served"
    );
    // Once the header timeout cuts them, the server answers again.
    let start = Instant::now();
    let status = loop {
        if let Some(s) = issuer.healthz(Duration::from_secs(5)).await {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "never answered");
    };
    assert_eq!(status, StatusCode::OK);
    assert!(!issuer.server.is_finished(), "the server stopped");
    for mut s in held {
        assert!(closed_within(&mut s, CUT_WITHIN).await.is_some());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_shutdown_the_server_finishes_the_request_in_hand_closes_idle_connections_and_returns() {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = Config {
        listen: addr,
        issuer_url: Some(format!("http://{addr}")),
        data_dir: dir.path().to_owned(),
        ..Config::default()
    };
    let (ring, _) = KeyRing::load_or_create(&config.keys_dir()).unwrap();
    let stores = Stores::embedded(&config.data_dir).unwrap();
    let state = AppState::new(config, stores, ring, Arc::new(SystemClock));
    let admin = {
        let cap = tessera::server::admin::admin_capability(
            tessera::token::Lifetime::parse("1h").unwrap(),
        )
        .unwrap();
        tessera::token::mint(&cap, state.ring().active(), crate::server::helpers::now())
            .unwrap()
            .token
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(tessera::server::run(state, listener, None, async {
        let _ = stopped.await;
    }));
    // An idle kept-alive connection, and a long poll of the feed in hand.
    let mut idle = stalled(addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let mut chunk = [0u8; 1024];
    assert!(idle.read(&mut chunk).await.unwrap() > 0);
    let http = reqwest::Client::new();
    let poll = tokio::spawn(
        http.get(format!("http://{addr}/v1/revocations?wait=2"))
            .bearer_auth(admin)
            .send(),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.send(()).unwrap();
    // The idle connection is closed at once (its timeouts are 10 s and more).
    assert!(closed_within(&mut idle, Duration::from_secs(5))
        .await
        .is_some());
    // The long poll gets its answer, and then the server returns.
    let answer = poll.await.unwrap().unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    tokio::time::timeout(CUT_WITHIN, server)
        .await
        .expect("the server did not return after shutdown")
        .unwrap()
        .unwrap();
    assert!(TcpStream::connect(addr).await.is_err(), "still accepting");
}

// ---- the real binary ----

const BIN: &str = env!("CARGO_BIN_EXE_tessera");

/// `tessera serve` with stderr to a file, killed on drop.
struct Served {
    child: Child,
    port: u16,
    log: std::path::PathBuf,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    /// Starts the binary (through `sh -c "ulimit -n N; exec …"` when
    /// `max_files` is given) with these extra environment variables and
    /// waits for `/healthz`.
    async fn start(dir: &Path, env: &[(&str, String)], max_files: Option<u32>) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let http = reqwest::Client::new();
        for _ in 0..5 {
            let port = free_port();
            let log = dir.join(format!("serve-{port}.log"));
            let mut cmd = match max_files {
                Some(n) => {
                    let mut c = Command::new("sh");
                    c.args(["-c", &format!("ulimit -n {n} && exec \"$0\" \"$@\""), BIN]);
                    c
                }
                None => Command::new(BIN),
            };
            cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}")])
                .arg("--data-dir")
                .arg(dir)
                .env_remove("TESSERA_REDIS_URL")
                .env_remove("NO_COLOR")
                .env("TESSERA_LOG", "info")
                .envs(env.iter().map(|(k, v)| (k, v)))
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap());
            let mut s = Self {
                child: cmd.spawn().unwrap(),
                port,
                log,
            };
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if s.child.try_wait().unwrap().is_some() {
                    break;
                }
                if let Ok(r) = http.get(s.url("/healthz")).send().await {
                    if r.status() == StatusCode::OK {
                        return s;
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let _ = s.child.kill();
        }
        panic!("tessera serve did not start");
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn log(&self) -> Vec<u8> {
        std::fs::read(&self.log).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_written_to_a_file_carry_no_colour_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let served = Served::start(&tmp.path().join("data"), &[], None).await;
    // A refusal and an unknown route: a few more log lines.
    let http = reqwest::Client::new();
    let r = http.get(served.url("/v1/agents")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let log = served.log();
    let text = String::from_utf8_lossy(&log);
    assert!(text.contains("listening"), "{text}");
    assert!(
        !log.contains(&0x1b),
        "ESC bytes in a log written to a file: {text:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_on_the_metrics_listener_only() {
    let tmp = tempfile::tempdir().unwrap();
    let metrics_port = free_port();
    let served = Served::start(
        &tmp.path().join("data"),
        &[(
            "TESSERA_METRICS_LISTEN",
            format!("127.0.0.1:{metrics_port}"),
        )],
        None,
    )
    .await;
    let http = reqwest::Client::new();
    let main = http.get(served.url("/metrics")).send().await.unwrap();
    assert_eq!(main.status(), StatusCode::NOT_FOUND);
    let r = http
        .get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.unwrap();
    assert!(text.contains("tessera_tokens_minted_total"), "{text}");
    assert!(text.contains(r#"route="/healthz""#), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_file_descriptors_the_issuer_backs_off_and_answers_again_once_stalled_clients_are_cut(
) {
    let tmp = tempfile::tempdir().unwrap();
    // 64 descriptors: accept fails with EMFILE after about fifty clients.
    let served = Served::start(
        &tmp.path().join("data"),
        &[("TESSERA_HEADER_READ_TIMEOUT", "2s".to_owned())],
        Some(64),
    )
    .await;
    let addr: SocketAddr = format!("127.0.0.1:{}", served.port).parse().unwrap();
    let mut held = Vec::new();
    for _ in 0..150 {
        held.push(stalled(addr, b"GET /healthz HTTP/1.1\r\n").await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let http = reqwest::Client::new();
    let start = Instant::now();
    loop {
        let r = http
            .get(served.url("/healthz"))
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        if let Ok(r) = r {
            assert_eq!(r.status(), StatusCode::OK);
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "never answered again: {}",
            String::from_utf8_lossy(&served.log())
        );
    }
    let log = String::from_utf8_lossy(&served.log()).into_owned();
    let errors = log.matches("accept error").count();
    assert!(errors > 0, "never ran out of descriptors: {log}");
    assert!(errors < 200, "{errors} accept errors logged: a busy loop");
}
