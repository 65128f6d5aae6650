//! Interoperability: a standard OAuth client library from another ecosystem
//! (Python Authlib, `examples/python/authlib_client.py`) gets tokens from the
//! issuer, running in-process on a loopback port.
//!
//! Needs the virtual environment made by `scripts/python-env.sh` (or a python
//! with the packages of `examples/python/requirements.txt` in
//! `TESSERA_PYTHON`). Without it the tests say so loudly and pass, unless
//! `TESSERA_REQUIRE_PYTHON=1`, which CI sets.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use biscuit_auth::KeyPair;
use serde_json::json;
use tempfile::TempDir;
use tessera::server::admin::admin_capability;
use tessera::server::{app, AppState, Clock, Config, KeyRing, SystemClock};
use tessera::store::Stores;
use tessera::token::{
    self, Action, Audience, Authorized, KeySet, Lifetime, Limits, Reason, Request, Resource,
};

const AGENT: &str = "agent://acme/planner";
const AUDIENCE: &str = "https://docs.acme.example";

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/python/authlib_client.py")
}

/// The python to run the example with, or `None` when it is missing and not
/// required.
async fn python() -> Option<PathBuf> {
    crate::python::python_with(
        "authlib, joserfc, requests",
        "Python (Authlib) interop test",
    )
}

/// An issuer serving on a loopback port, with one registered agent.
struct Issuer {
    url: String,
    state: AppState,
    agent_key: KeyPair,
    dir: TempDir,
}

impl Issuer {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (ring, _) = KeyRing::load_or_create(&dir.path().join("keys")).unwrap();
        let stores = Stores::embedded(&dir.path().join("data")).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let config = Config {
            issuer_url: Some(url.clone()),
            data_dir: dir.path().join("data"),
            ..Config::default()
        };
        let state = AppState::new(config, stores, ring, Arc::new(SystemClock));
        let router = app(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
        tokio::spawn(async move { axum::serve(listener, router).await });

        let issuer = Self {
            url,
            state,
            agent_key: KeyPair::new(),
            dir,
        };
        issuer.register_agent().await;
        issuer
    }

    /// Registers the agent through the admin API: `docs:read` on
    /// `docs/team-a/*` at one tool server.
    async fn register_agent(&self) {
        let cap = admin_capability(Lifetime::new(Duration::from_secs(600)).unwrap()).unwrap();
        let admin = token::mint(&cap, self.state.ring().active(), SystemClock.now()).unwrap();
        let body = json!({
            "id": AGENT,
            "public_key": self.agent_key.public().to_string(),
            "description": "the Python interop test's agent",
            "ceiling": {
                "actions": ["docs:read"],
                "resources": ["docs/team-a/*"],
                "audiences": [AUDIENCE],
                "max_ttl": "10m",
            },
        });
        let resp = reqwest::Client::new()
            .post(format!("{}/v1/agents", self.url))
            .bearer_auth(&admin.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        assert!(
            status.is_success(),
            "register: {status} {}",
            resp.text().await.unwrap()
        );
    }

    /// The agent's private key as PEM (PKCS#8, as `tessera keygen` writes it).
    fn write_agent_key(&self) -> PathBuf {
        let path = self.dir.path().join("agent.key");
        let pem = tessera::token::ed25519_private_key_pem(&self.agent_key).unwrap();
        std::fs::write(&path, pem.as_bytes()).unwrap();
        path
    }

    /// Runs the Python example for `action` on `resource` at the audience.
    async fn run_client(
        &self,
        python: &Path,
        action: &str,
        resource: &str,
        extra: &[&str],
    ) -> Output {
        let key = self.write_agent_key();
        tokio::process::Command::new(python)
            .arg(script())
            .args(["--issuer", &self.url, "--agent", AGENT])
            .arg("--key")
            .arg(&key)
            .args([
                "--action",
                action,
                "--resource",
                resource,
                "--audience",
                AUDIENCE,
            ])
            .args(extra)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .kill_on_drop(true)
            .output()
            .await
            .unwrap()
    }

    /// The issuer's published keys, read from its JWKS endpoint.
    async fn jwks(&self) -> KeySet {
        let text = reqwest::get(format!("{}/.well-known/jwks.json", self.url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        KeySet::from_jwks_json(&text).unwrap()
    }

    /// Checks `token` for `action` on `resource` at the audience, as a tool
    /// server would.
    async fn authorize(
        &self,
        token: &str,
        action: &str,
        resource: &str,
        proven_key: Option<biscuit_auth::PublicKey>,
    ) -> Result<Authorized, token::Denial> {
        let req = Request {
            amount: None,
            operation: Action::parse(action).unwrap(),
            resource: Resource::parse(resource).unwrap(),
            service: Some(Audience::parse(AUDIENCE).unwrap()),
            now: SystemClock.now(),
            proven_key,
        };
        token::authorize(
            token,
            &self.jwks().await,
            &req,
            |_| false,
            &Limits::default(),
        )
    }
}

/// The token printed on stdout by a successful run.
fn printed_token(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the Python client failed: {stderr}");
    assert!(stderr.trim().is_empty(), "unexpected stderr: {stderr}");
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "stdout must hold the token only: {stdout:?}"
    );
    lines[0].to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn authlib_gets_a_bearer_token_that_verifies() {
    let Some(python) = python().await else { return };
    let issuer = Issuer::start().await;

    let out = issuer
        .run_client(&python, "docs:read", "docs/team-a/q3.pdf", &[])
        .await;
    let token = printed_token(&out);

    let grant = issuer
        .authorize(&token, "docs:read", "docs/team-a/q3.pdf", None)
        .await
        .unwrap();
    assert_eq!(grant.agent().map(|a| a.as_str()), Some(AGENT));
    // Exactly what was asked: another resource is refused.
    let denial = issuer
        .authorize(&token, "docs:read", "docs/team-a/q4.pdf", None)
        .await
        .unwrap_err();
    assert_eq!(denial.reason, Reason::OutOfScope, "{denial}");
}

#[tokio::test(flavor = "multi_thread")]
async fn authlib_with_dpop_gets_a_token_bound_to_the_agent_key() {
    let Some(python) = python().await else { return };
    let issuer = Issuer::start().await;

    let out = issuer
        .run_client(&python, "docs:read", "docs/team-a/*", &["--dpop"])
        .await;
    let token = printed_token(&out);

    let agent_key = issuer.agent_key.public();
    let grant = issuer
        .authorize(
            &token,
            "docs:read",
            "docs/team-a/reports/q3.pdf",
            Some(agent_key),
        )
        .await
        .unwrap();
    assert_eq!(grant.agent().map(|a| a.as_str()), Some(AGENT));
    let denial = issuer
        .authorize(&token, "docs:read", "docs/team-a/reports/q3.pdf", None)
        .await
        .unwrap_err();
    assert_eq!(denial.reason, Reason::HolderNotProven, "{denial}");
}

#[tokio::test(flavor = "multi_thread")]
async fn authlib_asking_outside_the_ceiling_gets_invalid_scope() {
    let Some(python) = python().await else { return };
    let issuer = Issuer::start().await;

    let out = issuer
        .run_client(&python, "docs:write", "docs/team-a/q3.pdf", &[])
        .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a token outside the ceiling was issued"
    );
    assert!(
        out.stdout.is_empty(),
        "stdout: {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(stderr.contains("invalid_scope"), "stderr: {stderr}");
    assert!(
        stderr.contains("docs:write"),
        "the refusal names the action: {stderr}"
    );
    assert_eq!(
        stderr.trim().lines().count(),
        1,
        "one line on stderr: {stderr}"
    );
}
