//! `tessera token verify` with --issuer / --jwks / --redis-url: the real
//! binary against a real issuer on loopback.

use std::process::{Command, Output};

use reqwest::StatusCode;
use serde_json::json;

use crate::server::helpers::{TestApp, ACTION, AUDIENCE};
use crate::store::redis_server::RedisServer;

const BIN: &str = env!("CARGO_BIN_EXE_tessera");

async fn run(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || Command::new(BIN).args(args).output().unwrap())
        .await
        .unwrap()
}

fn args(token: &str, resource: &str, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
        "token",
        "verify",
        token,
        "--service",
        AUDIENCE,
        "--operation",
        ACTION,
        "--resource",
        resource,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    v.extend(extra.iter().map(|s| (*s).to_owned()));
    v
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// An issuer with its data dir, an agent, a token and a feed token.
async fn setup(redis: Option<RedisServer>) -> (TestApp, tempfile::TempDir, String, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_owned();
    let app = TestApp::spawn_with(redis, move |c| c.data_dir = data_dir).await;
    let agent = app.agent("cli-verify").await;
    let agent_id = agent.id.clone();
    let minted = app.mint(&agent, "docs/team-a/plan").await;
    assert_eq!(minted.status, StatusCode::OK, "{}", minted.text);
    let token = minted.token().to_owned();
    let out = run(vec![
        "admin".into(),
        "token".into(),
        "--feed".into(),
        "--data-dir".into(),
        dir.path().display().to_string(),
    ])
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let feed = text(&out.stdout).trim().to_owned();
    (app, dir, token, feed, agent_id)
}

async fn revoke(app: &TestApp, token: &str) {
    let r = app
        .admin_post("/v1/revocations", &json!({ "token": token }))
        .await;
    assert!(r.status.is_success(), "{}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_against_the_issuer_follows_its_feed() {
    let (app, _dir, token, feed, _) = setup(None).await;
    let issuer = app.base.clone();
    let ok = run(args(
        &token,
        "docs/team-a/plan",
        &["--issuer", &issuer, "--feed-token", &feed],
    ))
    .await;
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    assert!(
        text(&ok.stdout).starts_with("allowed: agent://"),
        "{}",
        text(&ok.stdout)
    );

    let out = run(args(
        &token,
        "docs/team-b/plan",
        &["--issuer", &issuer, "--feed-token", &feed],
    ))
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("out_of_scope"),
        "{}",
        text(&out.stderr)
    );

    revoke(&app, &token).await;
    let out = run(args(
        &token,
        "docs/team-a/plan",
        &["--issuer", &issuer, "--feed-token", &feed],
    ))
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("denied: revoked"),
        "{}",
        text(&out.stderr)
    );

    // Without a feed token there is no revocation source: a clear error.
    let out = run(args(&token, "docs/team-a/plan", &["--issuer", &issuer])).await;
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("--feed-token"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_with_a_jwks_file_and_url() {
    let (app, dir, token, _, agent) = setup(None).await;
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, serde_json::to_string(&app.keys().to_jwks()).unwrap()).unwrap();
    let out = run(args(
        &token,
        "docs/team-a/plan",
        &[
            "--jwks",
            &path.display().to_string(),
            "--no-revocation-check",
        ],
    ))
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let url = app.url("/.well-known/jwks.json");
    let out = run(args(
        &token,
        "docs/team-a/plan",
        &["--jwks", &url, "--json", "--no-revocation-check"],
    ))
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let grant: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(grant["agent"], agent.as_str());
    // A JWKS of another issuer: the signature does not verify.
    let other = tessera::token::KeySet::single(0, biscuit_auth::KeyPair::new().public());
    std::fs::write(&path, serde_json::to_string(&other.to_jwks()).unwrap()).unwrap();
    let out = run(args(
        &token,
        "docs/team-a/plan",
        &[
            "--jwks",
            &path.display().to_string(),
            "--no-revocation-check",
        ],
    ))
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("denied: bad_signature"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_following_redis() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let url = redis.url();
    let (app, _dir, token, _, _) = setup(Some(redis)).await;
    let issuer = app.base.clone();
    let ok = run(args(
        &token,
        "docs/team-a/plan",
        &["--issuer", &issuer, "--redis-url", &url],
    ))
    .await;
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    revoke(&app, &token).await;
    let out = run(args(
        &token,
        "docs/team-a/plan",
        &["--issuer", &issuer, "--redis-url", &url],
    ))
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("denied: revoked"),
        "{}",
        text(&out.stderr)
    );
}

/// `--amount` reaches the Verifier's decision (the `--jwks` path): a token
/// attenuated with `--max-amount 40.00EUR` allows 40.00 EUR only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_with_the_verifier_passes_the_amount() {
    let (app, dir, token, _, _) = setup(None).await;
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, serde_json::to_string(&app.keys().to_jwks()).unwrap()).unwrap();
    let out = run(vec![
        "token".into(),
        "attenuate".into(),
        token,
        "--max-amount".into(),
        "40.00EUR".into(),
    ])
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let capped = text(&out.stdout).trim().to_owned();
    let jwks = path.display().to_string();
    let verify = |amount: Option<&str>| {
        let mut extra = vec!["--jwks", jwks.as_str(), "--no-revocation-check"];
        if let Some(a) = amount {
            extra.extend(["--amount", a]);
        }
        run(args(&capped, "docs/team-a/plan", &extra))
    };
    let out = verify(Some("40.00EUR")).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    for refused in [Some("40.01EUR"), Some("40.00USD"), None] {
        let out = verify(refused).await;
        assert_eq!(out.status.code(), Some(1), "{refused:?}");
        assert!(
            text(&out.stderr).contains("denied: out_of_scope"),
            "{refused:?}: {}",
            text(&out.stderr)
        );
    }
}
