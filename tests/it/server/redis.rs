//! The issuer on Redis: the replay cache shared by concurrent requests,
//! Redis going away and coming back under a running service, and two
//! issuers on one Redis. Each of those runs on one `redis-server` and on a
//! three-master Redis Cluster: one body, taking [`OnRedis`].

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use super::helpers::{eventually, random_hex, OnRedis, TestApp};
use super::oauth::one_of_16_concurrent_uses_of_an_assertion_wins;

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn a_replayed_assertion_jti_succeeds_exactly_once_among_16_concurrent_requests_on_redis() {
    a_replayed_assertion_succeeds_once(OnRedis::Server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn a_replayed_assertion_jti_succeeds_exactly_once_among_16_concurrent_requests_on_a_redis_cluster(
) {
    a_replayed_assertion_succeeds_once(OnRedis::Cluster).await;
}

async fn a_replayed_assertion_succeeds_once(on: OnRedis) {
    let Some(app) = TestApp::spawn_on(on, |_| {}).await else {
        return;
    };
    one_of_16_concurrent_uses_of_an_assertion_wins(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_redis_down_revocation_and_minting_answer_503_and_recover_without_a_restart() {
    down_and_back(OnRedis::Server).await;
}

/// The whole cluster is down (every node killed), not one master: with one
/// master down only its slots fail, and which calls answer 503 would depend
/// on where each key lives.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_the_redis_cluster_down_revocation_and_minting_answer_503_and_recover_without_a_restart(
) {
    down_and_back(OnRedis::Cluster).await;
}

/// Redis (or every cluster node) is killed and started again on its own
/// data (append-only file, fsync always) under a running issuer: while it
/// is down revoking and minting answer 503; once it is back, the same
/// issuer answers again, and the feed holds exactly the revocations that
/// were acknowledged (201), in order, and none that was refused.
async fn down_and_back(on: OnRedis) {
    let Some(mut app) = TestApp::spawn_on(on, |_| {}).await else {
        return;
    };
    let agent = app.agent("through-outage").await;
    app.mint_ok(&agent, "docs/team-a/before").await;
    let before = random_hex(64);
    let r = app.revoke_admin(&json!({ "revocation_id": before })).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(app.get("/readyz", None).await.status, StatusCode::OK);

    app.stop_redis();

    let lost = random_hex(64);
    let r = app.revoke_admin(&json!({ "revocation_id": lost })).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    assert_eq!(r.error(), "temporarily_unavailable", "{}", r.text);
    assert!(r.headers.contains_key("retry-after"));

    let r = app.mint(&agent, "docs/team-a/during").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    assert!(r.json.get("access_token").is_none());

    assert_eq!(
        app.get("/readyz", None).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(app.get("/healthz", None).await.status, StatusCode::OK);

    app.restart_redis();

    eventually(Duration::from_secs(20), "/readyz to answer 200", || async {
        (app.get("/readyz", None).await.status == StatusCode::OK).then_some(())
    })
    .await;

    // Only what was acknowledged is there.
    let ids: Vec<String> = app.feed(None).await.into_iter().map(|(_, i)| i).collect();
    assert_eq!(
        ids,
        vec![before.clone()],
        "a 503 revocation must not be stored"
    );

    // Minting and revoking work again, on the same app.
    let minted = app.mint_ok(&agent, "docs/team-a/after").await;
    let r = app
        .revoke_admin(&json!({ "token_id": minted["token_id"] }))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let again = random_hex(64);
    let r = app.revoke_admin(&json!({ "revocation_id": again })).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let ids: Vec<String> = app.feed(None).await.into_iter().map(|(_, i)| i).collect();
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert_eq!(ids[0], before);
    assert_eq!(ids[2], again);
    assert!(!ids.contains(&lost));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_store_outage_local_agents_seen_recently_keep_minting_while_redis_is_down() {
    let Some(redis) = crate::store::redis_server::RedisServer::start_with(true) else {
        return;
    };
    let mut app = TestApp::spawn_with(Some(redis), |c| {
        c.store_outage = tessera::server::StoreOutage::Local;
    })
    .await;
    let agent = app.agent("through-outage-local").await;
    let never_minted = app.agent("registered-but-unseen").await;
    app.mint_ok(&agent, "docs/team-a/before").await;

    app.redis.as_mut().unwrap().stop();

    // An agent this process authenticated a moment ago keeps getting tokens.
    let form = TestApp::form(
        app.assertion(&agent).build(),
        &[
            ("scope", "docs:read"),
            ("identifier", "docs/team-a/during"),
            ("resource", super::helpers::AUDIENCE),
        ],
    );
    let r = app.request_token(&form, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let minted = app.inspect(r.token());
    assert_eq!(minted.agent, agent.id);
    // The same assertion is still accepted only once (in-process cache).
    let again = app.request_token(&form, None).await;
    again.assert_oauth_error(401, "invalid_client");
    // An agent this process has not seen cannot be authenticated.
    let r = app.mint(&never_minted, "docs/team-a/during").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    // Revocations are never acknowledged without the store.
    let r = app
        .revoke_admin(&json!({ "revocation_id": random_hex(64) }))
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_issuers_on_one_redis_behave_as_one() {
    two_issuers_behave_as_one(OnRedis::Server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_issuers_on_one_redis_cluster_behave_as_one() {
    two_issuers_behave_as_one(OnRedis::Cluster).await;
}

/// Two issuers with one key ring on one Redis (or cluster): agents,
/// one-time keys, the ledger and the feed are shared.
async fn two_issuers_behave_as_one(on: OnRedis) {
    let keys = tempfile::tempdir().unwrap();
    let shared = |c: &mut tessera::server::Config| {
        c.issuer_url = Some("https://issuer.example".into());
        c.keys_dir = Some(keys.path().to_owned());
    };
    let Some(a) = TestApp::spawn_on(on, shared).await else {
        return;
    };
    let url = a.redis_url();
    let b = TestApp::spawn_with(None, |c| {
        shared(c);
        c.redis_url = Some(url.clone());
    })
    .await;

    // An agent registered through one is known to the other.
    let agent = a.agent("shared").await;
    let form = TestApp::form(
        a.assertion_for(&agent, "https://issuer.example").build(),
        &[
            ("scope", "docs:read"),
            ("identifier", "docs/team-a/x"),
            ("resource", super::helpers::AUDIENCE),
        ],
    );
    let r = b.request_token(&form, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let token_id = r.json["token_id"].as_str().unwrap().to_owned();
    // The same assertion replayed at the other issuer is refused.
    a.request_token(&form, None)
        .await
        .assert_oauth_error(401, "invalid_client");
    // A token minted by one is revoked through the other, by token id
    // (shared ledger), and the revocation is in both feeds.
    let r = a.revoke_admin(&json!({ "token_id": token_id })).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let in_a: Vec<String> = a.feed(None).await.into_iter().map(|(_, i)| i).collect();
    let in_b: Vec<String> = b.feed(None).await.into_iter().map(|(_, i)| i).collect();
    assert_eq!(in_a.len(), 1);
    assert_eq!(in_a, in_b);
    // Both publish the same keys.
    assert_eq!(a.keys(), b.keys());
}
