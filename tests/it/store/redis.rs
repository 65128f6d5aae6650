//! The Redis store: what the contract cannot show.

use std::time::{Duration, Instant};

use tessera::store::{RedisConfig, StoreError, Stores};

use super::contract::{revocation, wall_clock};
use super::redis_server::RedisServer;

/// A Redis store on a `redis-server` of its own.
pub struct Backend {
    pub stores: Stores,
    pub server: RedisServer,
}

impl Backend {
    /// `None` when `redis-server` is not installed (the test is skipped).
    pub async fn start() -> Option<Self> {
        Self::start_with(false).await
    }

    pub async fn start_with(persistent: bool) -> Option<Self> {
        let server = RedisServer::start_with(persistent)?;
        let stores = Stores::redis(&server.url(), "tessera:").await.unwrap();
        Some(Self { stores, server })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revocation_is_unavailable_while_redis_is_down_and_the_same_store_recovers() {
    let Some(mut backend) = Backend::start_with(true).await else {
        return;
    };
    let stores = &backend.stores;
    let now = wall_clock();
    let acknowledged = stores
        .revocations
        .revoke(&revocation("aa01", now))
        .await
        .unwrap();

    backend.server.stop();
    let started = Instant::now();
    let failed = stores.revocations.revoke(&revocation("aa02", now)).await;
    let took = started.elapsed();
    assert!(
        matches!(failed, Err(StoreError::Unavailable(_))),
        "{failed:?}"
    );
    assert!(took < Duration::from_secs(6), "took {took:?}");
    let ping = stores.ping().await;
    assert!(matches!(ping, Err(StoreError::Unavailable(_))), "{ping:?}");
    // Let the connection manager's own reconnection attempts run out, so
    // that recovery below does not depend on one of them still being under
    // way when Redis comes back.
    tokio::time::sleep(Duration::from_secs(2)).await;

    backend.server.restart();
    let stores = &backend.stores;
    // The same store object, not rebuilt: the first call after Redis is
    // back already succeeds.
    assert!(stores.revocations.is_revoked("aa01").await.unwrap());
    assert!(!stores.revocations.is_revoked("aa02").await.unwrap());
    let fresh = stores
        .revocations
        .revoke(&revocation("aa03", now))
        .await
        .unwrap();
    assert!(fresh > acknowledged);
    let feed = stores.revocations.feed(None, 10).await.unwrap();
    let ids: Vec<_> = feed.iter().map(|(_, r)| r.revocation_id.as_str()).collect();
    assert_eq!(ids, ["aa01", "aa03"]);
}

#[tokio::test]
async fn connecting_to_a_redis_that_is_not_running_is_reported_unavailable() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let url = server.url();
    server.stop();
    let started = Instant::now();
    let stores = Stores::redis(&url, "tessera:").await;
    assert!(
        matches!(stores, Err(StoreError::Unavailable(_))),
        "{:?}",
        stores.err()
    );
    assert!(started.elapsed() < Duration::from_secs(6));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issuers_sharing_a_prefix_share_state_and_other_prefixes_are_apart() {
    let Some(backend) = Backend::start().await else {
        return;
    };
    let url = backend.server.url();
    let twin = Stores::redis(&url, "tessera:").await.unwrap();
    let other = Stores::redis_with(RedisConfig {
        key_prefix: "other:".to_owned(),
        ..RedisConfig::new(url.as_str())
    })
    .await
    .unwrap();
    let now = wall_clock();
    let expires = now + chrono::TimeDelta::seconds(60);

    backend
        .stores
        .revocations
        .revoke(&revocation("bb01", now))
        .await
        .unwrap();
    assert!(twin.revocations.is_revoked("bb01").await.unwrap());
    assert!(!other.revocations.is_revoked("bb01").await.unwrap());
    assert!(other.revocations.feed(None, 10).await.unwrap().is_empty());

    assert!(backend
        .stores
        .replay
        .insert_once("jti:1", expires, now)
        .await
        .unwrap());
    assert!(!twin
        .replay
        .insert_once("jti:1", expires, now)
        .await
        .unwrap());
    assert!(other
        .replay
        .insert_once("jti:1", expires, now)
        .await
        .unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_expires_in_redis_with_its_token() {
    let Some(backend) = Backend::start().await else {
        return;
    };
    let now = wall_clock();
    let short = tessera::store::Revocation {
        expires_at: now + chrono::TimeDelta::milliseconds(500),
        ..revocation("cc01", now)
    };
    backend.stores.revocations.revoke(&short).await.unwrap();
    assert!(backend.stores.revocations.is_revoked("cc01").await.unwrap());
    // EXAT rounds up to the next whole second.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(!backend.stores.revocations.is_revoked("cc01").await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_each_of_ten_restarts_the_first_call_of_an_idle_store_is_answered() {
    let Some(mut backend) = Backend::start_with(true).await else {
        return;
    };
    let now = wall_clock();
    for i in 0..10 {
        let id = format!("ab{i:02}");
        backend
            .stores
            .revocations
            .revoke(&revocation(&id, now))
            .await
            .unwrap();
        // Redis goes away and comes back while the store sends nothing; it
        // may still be loading its data when the first call arrives.
        backend.server.stop();
        tokio::time::sleep(Duration::from_millis(300)).await;
        backend.server.restart();
        let first = backend.stores.revocations.is_revoked(&id).await;
        assert!(matches!(first, Ok(true)), "restart {i}: {first:?}");
    }
}
