//! The authorization-code flow per completed login (issue 12), with the real
//! test IdP (`node tests/idp/provider.mjs`, oidc-provider) in the loop and
//! Tessera spawned in-process on loopback. The client is a registered agent
//! with `redirect_uris` (no metadata document server needed), redeeming the
//! code with PKCE and `private_key_jwt`.
//!
//! Each login is timed per request, as the client sees it on loopback:
//!
//! 1. `GET /oauth/authorize` without a session (303 to `/login`);
//! 2. `GET /login` (303 to the IdP, login cookie set);
//! 3. the IdP's own steps (authorization request, login form, consent form,
//!    redirects), timed together and reported apart;
//! 4. `GET /login/callback` (Tessera exchanges the code at the IdP's token
//!    endpoint and validates the ID token: that back-channel call is
//!    included in this step, and the same request, sent to the IdP by the
//!    bench on a kept-alive connection after the logins, is timed apart);
//! 5. `GET /oauth/authorize` with the session (the consent page);
//! 6. `POST /oauth/authorize` (approve; 303 to the client with the code);
//! 7. `POST /oauth/token` (code, PKCE verifier, client assertion built
//!    before the clock starts).
//!
//! `LOGINS` (default 50) completed logins after 5 warm-up ones. A custom
//! harness printing p50/p99: criterion does not report percentiles.
//! Figures and the command: `docs/performance.md`, "Authorization-code flow".

// Benches are test code: a failed setup should stop the run loudly. A bench
// is an edge of the program, so it reads the clock.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::Utc;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use reqwest::{StatusCode, Url};
use sha2::{Digest, Sha256};
use tessera::people::{IdpConfig, Role, SigningAlgorithm};
use tessera::server::oauth::JWT_BEARER;
use tessera::server::{self, AppState, Config, KeyRing, SystemClock};
use tessera::store::{AgentRecord, Ceiling, Stores};
use tessera::token::{Action, AgentId, AgentKey, Audience, ResourcePattern};
use tessera::web::{ClientAuth, LoginConfig};

const MCP: &str = "https://mcp.example/mcp";
const AGENT: &str = "agent://bench/orders-bot";
const REDIRECT: &str = "https://app.example/cb";
const WEB_CLIENT: &str = "tessera-web";

/// The test IdP, killed on drop.
struct Idp(Child, String);

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `node tests/idp/provider.mjs <port> 300`, or `None` when node or
/// its packages are missing.
fn start_idp() -> Option<Idp> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/idp");
    if !dir.join("node_modules/oidc-provider").is_dir() {
        return None;
    }
    let port = free_port();
    let mut child = Command::new("node")
        .arg(dir.join("provider.mjs"))
        .arg(port.to_string())
        .arg("300")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let issuer = format!("http://127.0.0.1:{port}");
    assert_eq!(line.trim(), format!("ready {issuer}"), "the IdP started");
    Some(Idp(child, issuer))
}

fn orders_role() -> Role {
    toml::from_str(&format!(
        "name = \"orders\"\nactions = [\"list_orders\", \"get_order\"]\n\
         resources = [\"orders*\"]\naudiences = [\"{MCP}\"]\nmax_ttl = \"5m\"\n\
         groups = [\"finance\"]\n"
    ))
    .unwrap()
}

/// Tessera on a free loopback port, logging people in at `idp`, with the
/// agent (its key `key`) registered as a client; its base URL and issuer.
async fn spawn_tessera(
    idp: &str,
    dir: &std::path::Path,
    key: &ed25519_dalek::SigningKey,
) -> (String, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let base = format!("http://{addr}");
    let secret_file = dir.join("login-client-secret");
    std::fs::write(&secret_file, format!("{WEB_CLIENT}-secret\n")).unwrap();
    let config = Config {
        listen: addr,
        issuer_url: Some(base.clone()),
        data_dir: dir.to_owned(),
        idp: vec![IdpConfig {
            issuer: idp.to_owned(),
            audience: "tessera-eddsa".to_owned(),
            groups_claim: "groups".to_owned(),
            algorithms: SigningAlgorithm::ALL.to_vec(),
            clock_skew_secs: 30,
        }],
        role: vec![orders_role()],
        login: Some(LoginConfig {
            issuer: idp.to_owned(),
            client_id: WEB_CLIENT.into(),
            client_secret_file: secret_file,
            scope: "openid groups".into(),
            client_auth: ClientAuth::ClientSecretPost,
        }),
        ..Config::default()
    };
    let (ring, _) = KeyRing::load_or_create(&config.keys_dir()).unwrap();
    let stores = Stores::embedded(&config.data_dir).unwrap();
    let state = AppState::new(config, stores, ring, Arc::new(SystemClock));
    let issuer = state.issuer.to_string();
    let now = Utc::now();
    state
        .stores
        .agents
        .put(&AgentRecord {
            id: AgentId::parse(AGENT).unwrap(),
            public_key: AgentKey::parse(&format!(
                "ed25519/{}",
                hex::encode(key.verifying_key().as_bytes())
            ))
            .unwrap(),
            description: "authorization-code flow bench".into(),
            ceiling: Ceiling {
                actions: vec![
                    Action::parse("get_order").unwrap(),
                    Action::parse("list_orders").unwrap(),
                ],
                resources: vec![ResourcePattern::parse("orders*").unwrap()],
                audiences: vec![Audience::parse(MCP).unwrap()],
                max_ttl: Duration::from_secs(300),
            },
            disabled: false,
            created_at: now,
            updated_at: now,
            notification_endpoint: None,
            redirect_uris: vec![REDIRECT.to_owned()],
        })
        .await
        .unwrap();
    let app = server::app(state).into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, issuer)
}

/// The value of cookie `name` set by `resp`.
fn set_cookie(resp: &reqwest::Response, name: &str) -> String {
    resp.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, v)| *k == name && !v.is_empty())
        .map(|(_, v)| v.to_owned())
        .unwrap_or_else(|| panic!("no {name} cookie"))
}

fn location(resp: &reqwest::Response) -> String {
    resp.headers()[LOCATION].to_str().unwrap().to_owned()
}

/// The value of the hidden field `name` in `html`.
fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let at = html.find(&marker).unwrap() + marker.len();
    html[at..].split('"').next().unwrap().to_owned()
}

/// The IdP's part of a login of `person`, from `authorize` (the login and
/// consent forms, a fresh cookie jar): the callback URL on Tessera.
async fn at_idp(authorize: &Url, person: &str) -> Url {
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(Policy::none())
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let mut next = authorize.clone();
    for _ in 0..10 {
        let resp = http.get(next.clone()).send().await.unwrap();
        let resp = if next.path().starts_with("/interaction/") {
            let page = resp.text().await.unwrap();
            let form: Vec<(&str, &str)> = if page.contains(r#"name="prompt" value="login""#) {
                vec![("prompt", "login"), ("login", person), ("password", "test")]
            } else {
                vec![("prompt", "consent")]
            };
            http.post(next.clone()).form(&form).send().await.unwrap()
        } else {
            resp
        };
        assert!(resp.status().is_redirection(), "{next}: {}", resp.status());
        next = next.join(&location(&resp)).unwrap();
        if next.path() == "/login/callback" {
            return next;
        }
    }
    panic!("the IdP never sent the browser back to /login/callback");
}

const STEPS: [&str; 7] = [
    "GET /oauth/authorize, no session (303 to /login)",
    "GET /login (303 to the IdP)",
    "IdP: authorize, login form, consent form (oidc-provider)",
    "GET /login/callback (incl. back-channel code exchange at the IdP)",
    "GET /oauth/authorize, session (consent page)",
    "POST /oauth/authorize (approve; 303 with code)",
    "POST /oauth/token (code + PKCE + private_key_jwt)",
];

/// One completed login; the milliseconds of each of [`STEPS`].
async fn one_login(
    http: &reqwest::Client,
    base: &str,
    issuer: &str,
    key: &ed25519_dalek::SigningKey,
) -> [f64; 7] {
    let ms = |t: Instant| t.elapsed().as_secs_f64() * 1e3;
    let mut out = [0.0; 7];
    let verifier = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let state = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 12]>());
    let authorize = Url::parse_with_params(
        &format!("{base}/oauth/authorize"),
        [
            ("response_type", "code"),
            ("client_id", AGENT),
            ("redirect_uri", REDIRECT),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("state", &state),
            ("resource", MCP),
            ("scope", "get_order list_orders"),
        ],
    )
    .unwrap()
    .to_string();

    let t = Instant::now();
    let resp = http.get(&authorize).send().await.unwrap();
    let status = resp.status();
    let to_login = location(&resp);
    let _ = resp.bytes().await;
    out[0] = ms(t);
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(to_login.starts_with("/login?return_to="), "{to_login}");

    let t = Instant::now();
    let resp = http.get(format!("{base}{to_login}")).send().await.unwrap();
    let login_cookie = set_cookie(&resp, "tessera-login");
    let to_idp = Url::parse(&location(&resp)).unwrap();
    let _ = resp.bytes().await;
    out[1] = ms(t);

    let t = Instant::now();
    let callback = at_idp(&to_idp, "alice").await;
    out[2] = ms(t);

    let t = Instant::now();
    let resp = http
        .get(callback.as_str())
        .header(COOKIE, format!("tessera-login={login_cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let session = format!("tessera-session={}", set_cookie(&resp, "tessera-session"));
    let back = location(&resp);
    let _ = resp.bytes().await;
    out[3] = ms(t);
    assert!(back.starts_with("/oauth/authorize?"), "{back}");

    let t = Instant::now();
    let resp = http
        .get(format!("{base}{back}"))
        .header(COOKIE, &session)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let html = resp.text().await.unwrap();
    out[4] = ms(t);

    let (request, csrf) = (hidden(&html, "request"), hidden(&html, "csrf"));
    let form = [
        ("request", request.as_str()),
        ("csrf", csrf.as_str()),
        ("decision", "approve"),
        ("scope", "get_order"),
        ("scope", "list_orders"),
    ];
    let t = Instant::now();
    let resp = http
        .post(format!("{base}/oauth/authorize"))
        .header(COOKIE, &session)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let to_client = Url::parse(&location(&resp)).unwrap();
    let _ = resp.bytes().await;
    out[5] = ms(t);
    let param = |name: &str| {
        to_client
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    assert_eq!(param("state").as_deref(), Some(state.as_str()));
    assert_eq!(param("iss").as_deref(), Some(issuer));
    let code = param("code").expect("a code");

    let now = Utc::now().timestamp();
    let claims = serde_json::json!({
        "iss": AGENT, "sub": AGENT, "aud": format!("{base}/oauth/token"),
        "exp": now + 60, "iat": now, "jti": hex::encode(rand::random::<[u8; 16]>()),
    });
    let assertion = tessera::jose::sign(key, None, false, &claims).unwrap();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", verifier.as_str()),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", assertion.as_str()),
    ];
    let t = Instant::now();
    let resp = http
        .post(format!("{base}/oauth/token"))
        .form(&form)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.unwrap();
    out[6] = ms(t);
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "get_order list_orders", "{body}");
    assert!(body["access_token"].as_str().is_some_and(|t| !t.is_empty()));
    out
}

/// The IdP's token endpoint alone, for the request Tessera's callback
/// sends (client `tessera-web`, client_secret_post, code + PKCE, redirect
/// URI Tessera's callback): a login of alice at the IdP as that client
/// (not timed), then the code exchanged on `http`'s kept-alive connection
/// (timed), as Tessera's own client does; the milliseconds.
async fn idp_token_endpoint(http: &reqwest::Client, idp: &str, base: &str) -> f64 {
    let verifier = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let redirect = format!("{base}/login/callback");
    let authorize = Url::parse_with_params(
        &format!("{idp}/auth"),
        [
            ("client_id", WEB_CLIENT),
            ("response_type", "code"),
            ("scope", "openid groups"),
            ("redirect_uri", &redirect),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("state", "bench-state"),
            ("nonce", "bench-nonce"),
        ],
    )
    .unwrap();
    let callback = at_idp(&authorize, "alice").await;
    let code = callback
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("a code from the IdP");
    let secret = format!("{WEB_CLIENT}-secret");
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", redirect.as_str()),
        ("code_verifier", verifier.as_str()),
        ("client_id", WEB_CLIENT),
        ("client_secret", secret.as_str()),
    ];
    let t = Instant::now();
    let resp = http
        .post(format!("{idp}/token"))
        .form(&form)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.unwrap();
    let took = t.elapsed().as_secs_f64() * 1e3;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["id_token"].as_str().is_some_and(|t| !t.is_empty()));
    took
}

fn pct(v: &[f64], p: f64) -> f64 {
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let n: usize = std::env::var("LOGINS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let warm = 5;
    let Some(idp) = start_idp() else {
        eprintln!(
            "authorize_flow: node or tests/idp/node_modules missing \
             (npm ci --prefix tests/idp); nothing measured"
        );
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = ed25519_dalek::SigningKey::from_bytes(&rand::random::<[u8; 32]>());
    let (base, issuer) = rt.block_on(spawn_tessera(&idp.1, dir.path(), &key));
    // One kept-alive connection to Tessera, no redirects followed, cookies
    // carried by hand (as a browser would send them).
    let http = reqwest::Client::builder()
        .redirect(Policy::none())
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); STEPS.len()];
    let mut tessera_total = Vec::new();
    let mut wall = Vec::new();
    for i in 0..warm + n {
        let t = Instant::now();
        let one = rt.block_on(one_login(&http, &base, &issuer, &key));
        let whole = t.elapsed().as_secs_f64() * 1e3;
        if i >= warm {
            for (s, v) in samples.iter_mut().zip(one) {
                s.push(v);
            }
            tessera_total.push(one.iter().sum::<f64>() - one[2]);
            wall.push(whole);
        }
    }
    // The back-channel call's share of the callback, measured apart: the
    // same request to the IdP's token endpoint, sent by the bench.
    let mut idp_token = Vec::new();
    for i in 0..warm + n {
        let took = rt.block_on(idp_token_endpoint(&http, &idp.1, &base));
        if i >= warm {
            idp_token.push(took);
        }
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "authorize_flow: {n} completed logins after {warm} warm-up; embedded store; loadavg {}",
        load.trim()
    );
    println!("| step | n | p50 ms | p99 ms | max ms | mean ms |");
    println!("|---|---|---|---|---|---|");
    let row = |name: &str, v: &mut [f64]| {
        v.sort_by(|a, b| a.total_cmp(b));
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        println!(
            "| {name} | {} | {:.2} | {:.2} | {:.2} | {:.2} |",
            v.len(),
            pct(v, 0.5),
            pct(v, 0.99),
            v[v.len() - 1],
            mean
        );
    };
    for (name, v) in STEPS.iter().zip(samples.iter_mut()) {
        row(name, v);
    }
    row(
        "Tessera total per login (steps 1, 2, 4-7; incl. back-channel)",
        &mut tessera_total,
    );
    row(
        "apart: IdP token endpoint, the callback's back-channel request",
        &mut idp_token,
    );
    row("whole login, wall clock (incl. IdP)", &mut wall);
}
