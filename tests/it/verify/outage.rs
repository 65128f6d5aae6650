//! Redis killed while a tool server verifies: checks are refused as stale
//! once the bound has passed, and allowed again when Redis is back, with no
//! restart of the verifier; a revocation made meanwhile is then enforced.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use tessera::verify::{CheckRequest, KeySource, Presentation, Reason, Revocations, Verifier};

use crate::server::helpers::{TestApp, ACTION, AUDIENCE};

/// Polls the check until `want(outcome)` holds, for at most 20 s.
async fn until_check(
    v: &Verifier,
    token: &str,
    what: &str,
    want: impl Fn(&Result<tessera::verify::Grant, tessera::verify::Rejection>) -> bool,
) {
    let request = CheckRequest::new(ACTION, "docs/team-a/q3").unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let outcome = v.check(&Presentation::bearer(token), &request).await;
        if want(&outcome) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {outcome:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_while_verifying_goes_stale_then_recovers_and_applies_what_it_missed() {
    let Some(mut app) = TestApp::spawn_redis().await else {
        return;
    };
    let url = app.redis.as_ref().unwrap().url();
    let verifier = Verifier::builder(AUDIENCE)
        .keys(KeySource::Keys(app.keys()))
        .revocations(Revocations::Redis { url })
        .max_staleness(Duration::from_millis(2500))
        .build()
        .await
        .unwrap();
    assert!(verifier.ready(Duration::from_secs(10)).await);
    let agent = app.agent("outage").await;
    let keep = app.mint(&agent, "docs/team-a/q3").await.token().to_owned();
    let doomed = app.mint(&agent, "docs/team-a/q3").await.token().to_owned();
    until_check(&verifier, &keep, "allowed", Result::is_ok).await;

    app.redis.as_mut().unwrap().stop();
    let stopped = Instant::now();
    until_check(
        &verifier,
        &keep,
        "stale",
        |o| matches!(o, Err(r) if r.reason == Reason::Stale),
    )
    .await;
    // Not before the bound (the last confirmation was at most one read ago).
    assert!(
        stopped.elapsed() >= Duration::from_millis(400),
        "{:?}",
        stopped.elapsed()
    );
    assert_eq!(Reason::Stale.status(), 503);

    // Redis back; revoke one token at once, likely before the follower is back.
    app.redis.as_mut().unwrap().restart();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = app
            .admin_post("/v1/revocations", &json!({ "token": doomed }))
            .await;
        if r.status.is_success() {
            break;
        }
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
        assert!(
            Instant::now() < deadline,
            "the issuer did not get Redis back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    until_check(&verifier, &keep, "allowed again", Result::is_ok).await;
    until_check(
        &verifier,
        &doomed,
        "the missed revocation",
        |o| matches!(o, Err(r) if r.reason == Reason::Revoked),
    )
    .await;
    let stats = verifier.revocations().unwrap().stats();
    assert!(stats.reconnects >= 1, "{stats:?}");
}
