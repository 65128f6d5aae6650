//! The Redis store: what the contract cannot show.

use std::time::{Duration, Instant};

use tessera::store::{RedisConfig, StoreError, Stores};

use super::contract::{event, revocation, wall_clock};
use super::redis_cluster::RedisCluster;
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

/// A Redis store on a Redis Cluster of its own (three masters).
pub struct ClusterBackend {
    pub stores: Stores,
    pub cluster: RedisCluster,
}

impl ClusterBackend {
    /// `None` when `redis-server` is not installed (the test is skipped).
    pub async fn start() -> Option<Self> {
        Self::start_with(false).await
    }

    /// With `persistent`, each node keeps its data across a restart.
    pub async fn start_with(persistent: bool) -> Option<Self> {
        let cluster = tokio::task::spawn_blocking(move || RedisCluster::start_with(persistent))
            .await
            .unwrap()?;
        let stores = Stores::redis(&cluster.cluster_url(), "tessera:")
            .await
            .unwrap();
        Some(Self { stores, cluster })
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_a_cluster_a_revocation_is_acknowledged_only_once_a_replica_has_it() {
    let Some(mut backend) = ClusterBackend::start().await else {
        return;
    };
    let layout = tessera::records::redis::RedisLayout::new("tessera:").unwrap();
    let replica = backend.cluster.add_replica_for(&layout.revocations());
    let now = wall_clock();

    // A frozen replica never confirms: the revocation is not acknowledged.
    backend.cluster.pause(replica);
    let refused = backend
        .stores
        .revocations
        .revoke(&revocation("ee01", now))
        .await;
    backend.cluster.resume(replica);
    assert!(
        matches!(refused, Err(StoreError::Unavailable(_))),
        "{refused:?}"
    );

    // Acknowledged: the replica already holds it when the call returns.
    backend
        .stores
        .revocations
        .revoke(&revocation("ee02", now))
        .await
        .unwrap();
    let on_replica = backend.cluster.get_on(replica, &layout.revoked("ee02"));
    assert!(on_replica.contains("ee02"), "replica holds {on_replica:?}");
}

/// Renames every key of `prefix` in the current layout back to its name in
/// the earlier, untagged layout (`P{tag}:rest` to `P rest`), as an earlier
/// release would have written it, and drops the layout version.
fn back_to_the_untagged_layout(server: &RedisServer, prefix: &str) {
    let cli = |args: &[&str]| {
        let out = std::process::Command::new("redis-cli")
            .args(["-u", &server.url()])
            .args(args)
            .output()
            .expect("run redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let layout = tessera::records::redis::RedisLayout::new(prefix).unwrap();
    cli(&["del", &layout.layout_version()]);
    let keys = cli(&["--scan", "--pattern", &format!("{prefix}{{*")]);
    for key in keys.lines().filter(|k| !k.is_empty()) {
        let rest = &key[prefix.len()..];
        let (_, name) = rest.split_once("}:").expect("a tagged key");
        let old = format!("{prefix}{name}");
        assert_eq!(cli(&["rename", key, &old]).trim(), "OK", "{key}");
    }
    assert_eq!(
        cli(&["exists", &format!("{prefix}revocations")]).trim(),
        "1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn data_in_the_untagged_layout_is_moved_at_open_and_reads_back_with_its_cursors() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let url = server.url();
    let now = wall_clock();
    let expires = now + chrono::TimeDelta::seconds(600);
    let (cursors, audit, agents, token) = {
        let stores = Stores::redis(&url, "tessera:").await.unwrap();
        let agent = super::contract::agent("spiffe://t/a1", now);
        stores.agents.put(&agent).await.unwrap();
        let token = super::contract::token("t1", "spiffe://t/a1", now, 600);
        stores.tokens.record(&token).await.unwrap();
        let mut cursors = Vec::new();
        for id in ["ff01", "ff02"] {
            let cursor = stores
                .revocations
                .revoke(&revocation(id, now))
                .await
                .unwrap();
            cursors.push(cursor);
        }
        stores
            .replay
            .insert_once("jti:old", expires, now)
            .await
            .unwrap();
        stores
            .audit
            .append(&event("spiffe://t/a1", "t1", now))
            .await
            .unwrap();
        let audit = stores
            .audit
            .query(&tessera::store::AuditQuery {
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        (cursors, audit, stores.agents.list().await.unwrap(), token)
    };
    back_to_the_untagged_layout(&server, "tessera:");

    // Two issuers start at once: both open, the data moves once.
    let (a, b) = tokio::join!(
        Stores::redis(&url, "tessera:"),
        Stores::redis(&url, "tessera:")
    );
    let (stores, twin) = (a.unwrap(), b.unwrap());
    assert_eq!(stores.agents.list().await.unwrap(), agents);
    assert_eq!(
        stores.tokens.get("t1").await.unwrap().as_ref(),
        Some(&token)
    );
    assert_eq!(
        stores
            .tokens
            .outstanding("spiffe://t/a1", now)
            .await
            .unwrap(),
        std::slice::from_ref(&token)
    );
    let feed = twin.revocations.feed(None, 10).await.unwrap();
    let got: Vec<_> = feed.iter().map(|(c, _)| c.clone()).collect();
    assert_eq!(got, cursors);
    assert!(stores.revocations.is_revoked("ff02").await.unwrap());
    // Revoking again returns the first cursor, read from the moved key.
    let again = stores
        .revocations
        .revoke(&revocation("ff01", now))
        .await
        .unwrap();
    assert_eq!(again, cursors[0]);
    assert!(!stores
        .replay
        .insert_once("jti:old", expires, now)
        .await
        .unwrap());
    let moved_audit = stores
        .audit
        .query(&tessera::store::AuditQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(moved_audit, audit);
    // Feed resumes after an old cursor.
    let after = stores
        .revocations
        .feed(Some(&cursors[0]), 10)
        .await
        .unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].1.revocation_id, "ff02");
}

/// Two issuers on one Redis write records at once: the tree ends up with
/// one leaf per stream entry, in stream order, whichever issuer appended
/// it (the other finds the tree moved on and reads again). The issuers'
/// followers append every leaf by themselves, with no checkpoint asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_issuers_writing_at_once_leave_one_leaf_per_record_in_stream_order() {
    let Some(backend) = Backend::start().await else {
        return;
    };
    let twin = Stores::redis(&backend.server.url(), "tessera:")
        .await
        .unwrap();
    let now = wall_clock();
    let mut tasks = Vec::new();
    for (n, stores) in [backend.stores.clone(), twin.clone()]
        .into_iter()
        .enumerate()
    {
        tasks.push(tokio::spawn(async move {
            for i in 0..40 {
                let id = format!("issuer-{n}-record-{i}");
                stores
                    .audit
                    .append(&event("agent://acme/a", &id, now))
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut followed = 0;
    while std::time::Instant::now() < deadline {
        followed = backend.stores.tree.tree_size().await.unwrap();
        if followed >= 80 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(followed, 80, "the followers left records without a leaf");
    let size = twin.tree.catch_up().await.unwrap();
    assert_eq!(size, 80);
    let in_tree: Vec<String> = backend
        .stores
        .tree
        .leaves(0, size)
        .await
        .unwrap()
        .iter()
        .map(|l| {
            tessera::tlog::record::decode_leaf(l)
                .unwrap()
                .token_id
                .unwrap()
        })
        .collect();
    let in_stream: Vec<String> = backend
        .stores
        .audit
        .query(&tessera::records::AuditQuery {
            limit: 1000,
            ..tessera::records::AuditQuery::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|(_, e)| e.token_id.unwrap())
        .collect();
    assert_eq!(in_tree, in_stream);
}
