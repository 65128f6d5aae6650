//! The verifier's Redis parts on a Redis Cluster of each test's own (three
//! masters): the revocation follower sees what the issuer's store revokes,
//! also across a failover of the master holding the stream, and the audit
//! sink's decisions reach the issuer's audit log.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::TimeDelta;
use tessera::records::redis::RedisLayout;
use tessera::store::{AuditKind, AuditQuery, Revocation, Stores};
use tessera::verify::{
    AuditSink, AuditSinkConfig, Backoff, DecisionAudit, FollowerHandle, RedisFollower,
    RevocationView,
};

use crate::server::helpers::{now, random_hex};
use crate::store::redis_cluster::RedisCluster;

/// Long enough for a loaded machine; every wait polls and returns early.
const WITHIN: Duration = Duration::from_secs(20);

/// Polls `f` every 20 ms until it holds, for at most [`WITHIN`].
async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + WITHIN;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A cluster of the test's own and the issuer's store on it; `None` when
/// `redis-server` is not installed (the test is skipped).
async fn cluster_and_store() -> Option<(RedisCluster, Stores)> {
    let cluster = tokio::task::spawn_blocking(RedisCluster::start)
        .await
        .unwrap()?;
    let stores = Stores::redis(&cluster.cluster_url(), "tessera:")
        .await
        .unwrap();
    Some((cluster, stores))
}

/// A follower of the cluster with short blocks and backoff.
fn follower(cluster: &RedisCluster) -> FollowerHandle {
    RedisFollower {
        block: Duration::from_millis(100),
        timeout: Duration::from_secs(1),
        backoff: Backoff {
            initial: Duration::from_millis(20),
            max: Duration::from_millis(200),
        },
        ..RedisFollower::new(cluster.cluster_url())
    }
    .spawn(RevocationView::new())
    .unwrap()
}

/// Revokes `id` through the store, retrying while the cluster settles
/// (a failover just happened), for at most [`WITHIN`].
async fn revoke(stores: &Stores, id: &str) {
    let deadline = Instant::now() + WITHIN;
    loop {
        match stores.revocations.revoke(&revocation(id)).await {
            Ok(_) => return,
            Err(e) => {
                assert!(Instant::now() < deadline, "revoking {id}: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// A revocation of `id` for ten minutes.
fn revocation(id: &str) -> Revocation {
    let at = now();
    Revocation {
        revocation_id: id.to_owned(),
        token_id: None,
        agent: None,
        reason: "cluster test".to_owned(),
        revoked_at: at,
        expires_at: at + TimeDelta::seconds(600),
    }
}

fn bytes(id: &str) -> Vec<u8> {
    hex::decode(id).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_on_a_cluster_sees_the_stores_revocations() {
    let Some((cluster, stores)) = cluster_and_store().await else {
        return;
    };
    let before = random_hex(64);
    revoke(&stores, &before).await;
    let by_redis = follower(&cluster);
    until("the follower to load the earlier revocation", || {
        by_redis.view().contains(&bytes(&before))
    })
    .await;
    assert!(by_redis.view().staleness().is_some());

    let after = random_hex(64);
    assert!(!by_redis.view().contains(&bytes(&after)));
    revoke(&stores, &after).await;
    until("the follower to apply the new revocation", || {
        by_redis.view().contains(&bytes(&after))
    })
    .await;
    assert!(!by_redis.view().contains(&bytes(&random_hex(64))));
    let stats = by_redis.stats();
    assert_eq!((stats.entries, stats.applied), (2, 2), "{stats:?}");
    by_redis.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_on_a_cluster_misses_nothing_across_a_failover() {
    const N: usize = 20;
    let Some((mut cluster, stores)) = cluster_and_store().await else {
        return;
    };
    let stream = RedisLayout::default().revocations();
    let (replica, mut cluster) = tokio::task::spawn_blocking(move || {
        let replica = cluster.add_replica_for(&stream);
        (replica, cluster)
    })
    .await
    .unwrap();
    let by_redis = follower(&cluster);
    let ids: Vec<String> = (0..2 * N).map(|_| random_hex(64)).collect();
    for id in &ids[..N] {
        revoke(&stores, id).await;
    }
    until(
        "the follower to apply the revocations before the failover",
        || {
            ids[..N]
                .iter()
                .all(|id| by_redis.view().contains(&bytes(id)))
        },
    )
    .await;

    cluster = tokio::task::spawn_blocking(move || {
        cluster.failover(replica);
        cluster
    })
    .await
    .unwrap();
    assert_eq!(
        cluster.master_of(&RedisLayout::default().revocations()),
        replica
    );
    let failed_over = Instant::now();
    for id in &ids[N..] {
        revoke(&stores, id).await;
    }
    until(
        "the follower to apply every revocation after the failover",
        || ids.iter().all(|id| by_redis.view().contains(&bytes(id))),
    )
    .await;
    assert!(
        failed_over.elapsed() < WITHIN,
        "{:?}",
        failed_over.elapsed()
    );
    let stats = by_redis.stats();
    assert_eq!(stats.entries, 2 * N as u64, "{stats:?}");
    by_redis.shutdown().await;
    drop(cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_audit_sink_on_a_cluster_writes_to_the_issuers_audit_log() {
    let Some((cluster, stores)) = cluster_and_store().await else {
        return;
    };
    let sink = Arc::new(
        AuditSink::spawn(AuditSinkConfig {
            batch: 8,
            ..AuditSinkConfig::new(cluster.cluster_url())
        })
        .unwrap(),
    );
    let token_id = random_hex(8);
    for n in 0..20 {
        assert!(sink.record(DecisionAudit {
            at: now(),
            agent: Some("agent://acme/reader".into()),
            token_id: Some(token_id.clone()),
            action: "docs:read".into(),
            resource: format!("docs/{n}"),
            granted: true,
            reason: None,
            chain: vec!["agent://acme/reader".into()],
            person: None,
            remote_addr: None,
        }));
    }
    let stats = sink.shutdown().await;
    assert_eq!((stats.written, stats.dropped), (20, 0), "{stats:?}");
    let events = stores
        .audit
        .query(&AuditQuery {
            token_id: Some(token_id),
            limit: 100,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    let capabilities: Vec<String> = events
        .iter()
        .map(|(_, e)| {
            assert_eq!(e.kind, AuditKind::Decision);
            e.capability.clone().unwrap()
        })
        .collect();
    let expected: Vec<String> = (0..20).map(|n| format!("docs:read docs/{n}")).collect();
    assert_eq!(capabilities, expected);
}
