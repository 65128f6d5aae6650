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

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::Utc;
use reqwest::header::COOKIE;
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
use login_flow::WEB_CLIENT;

// The test IdP (started and killed on drop), shared with the integration
// tests.
#[allow(dead_code)]
#[path = "../tests/it/people/idp.rs"]
mod idp;

// Cookies, redirects and the IdP's side of a login, over plain HTTP.
#[path = "common/login_flow.rs"]
mod login_flow;
use login_flow::{at_idp, hidden, idp_token_endpoint, location, set_cookie};

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

fn pct(v: &[f64], p: f64) -> f64 {
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let n: usize = std::env::var("LOGINS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let warm = 5;
    // Says why and returns `None` when node or tests/idp/node_modules is
    // missing (`TESSERA_REQUIRE_NODE=1` makes that fail).
    let Some(idp) = idp::TestIdp::start() else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = ed25519_dalek::SigningKey::from_bytes(&rand::random::<[u8; 32]>());
    let (base, issuer) = rt.block_on(spawn_tessera(&idp.issuer, dir.path(), &key));
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
        let took = rt.block_on(idp_token_endpoint(&http, &idp.issuer, &base));
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
