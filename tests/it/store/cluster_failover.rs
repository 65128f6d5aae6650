//! The Redis store on a Redis Cluster when the master holding the
//! revocations goes away: restarted on its own data, replaced by its replica
//! (`CLUSTER FAILOVER`), or killed and taken over by its replica. In each
//! case every acknowledged revocation is still revoked and in the feed,
//! with its cursor and in order, through the same store object, and new
//! revocations follow the old ones.

use std::time::{Duration, Instant};

use tessera::records::redis::RedisLayout;
use tessera::store::{Cursor, Stores};

use super::contract::{revocation, wall_clock};
use super::redis::ClusterBackend;

/// How long the store may take to find the slot's new master.
const SETTLE_WITHIN: Duration = Duration::from_secs(20);

/// The acknowledged revocations: `n` ids with the cursors `revoke` returned.
async fn revoke_some(stores: &Stores, tag: &str, n: usize) -> Vec<(String, Cursor)> {
    let now = wall_clock();
    let mut acknowledged = Vec::new();
    for i in 0..n {
        let id = format!("{tag}{i:02}");
        let cursor = stores
            .revocations
            .revoke(&revocation(&id, now))
            .await
            .unwrap();
        acknowledged.push((id, cursor));
    }
    acknowledged
}

/// Every acknowledged revocation is there (the store finds the slot's new
/// master within [`SETTLE_WITHIN`]: the first read may be retried, no other
/// call is), and a new revocation is acknowledged and follows them.
async fn all_there_and_new_ones_follow(stores: &Stores, acknowledged: &[(String, Cursor)]) {
    let deadline = Instant::now() + SETTLE_WITHIN;
    let feed = loop {
        match stores.revocations.feed(None, 1000).await {
            Ok(feed) => break feed,
            Err(e) => {
                assert!(Instant::now() < deadline, "feed after the change: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let got: Vec<(String, Cursor)> = feed
        .iter()
        .map(|(cursor, r)| (r.revocation_id.to_string(), cursor.clone()))
        .collect();
    assert_eq!(got, acknowledged, "the feed holds what was acknowledged");
    for (id, _) in acknowledged {
        assert!(stores.revocations.is_revoked(id).await.unwrap(), "{id}");
    }
    // Revoking one again returns its first cursor: the key is there too.
    let (first_id, first_cursor) = &acknowledged[0];
    let again = stores
        .revocations
        .revoke(&revocation(first_id, wall_clock()))
        .await
        .unwrap();
    assert_eq!(&again, first_cursor);

    let (_, last) = acknowledged.last().unwrap();
    let fresh = stores
        .revocations
        .revoke(&revocation("ffff", wall_clock()))
        .await
        .unwrap();
    assert!(&fresh > last, "{fresh:?} after {last:?}");
    assert!(stores.revocations.is_revoked("ffff").await.unwrap());
    let after = stores.revocations.feed(Some(last), 10).await.unwrap();
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0].0, fresh);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_revocations_survive_a_restart_of_their_master() {
    let Some(mut backend) = ClusterBackend::start_with(true).await else {
        return;
    };
    let master = backend
        .cluster
        .master_of(&RedisLayout::default().revocations());
    let acknowledged = revoke_some(&backend.stores, "a1", 10).await;

    tokio::task::block_in_place(|| backend.cluster.restart(master));

    all_there_and_new_ones_follow(&backend.stores, &acknowledged).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_revocations_survive_a_failover_to_the_replica_of_their_master() {
    let Some(mut backend) = ClusterBackend::start().await else {
        return;
    };
    let stream = RedisLayout::default().revocations();
    let replica = tokio::task::block_in_place(|| backend.cluster.add_replica_for(&stream));
    // Acknowledged means a replica has it (`WAIT 1`): no persistence here.
    let acknowledged = revoke_some(&backend.stores, "b1", 10).await;

    tokio::task::block_in_place(|| backend.cluster.failover(replica));
    assert_eq!(backend.cluster.master_of(&stream), replica);

    all_there_and_new_ones_follow(&backend.stores, &acknowledged).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_revocations_survive_the_crash_of_their_master_once_its_replica_takes_over() {
    let Some(mut backend) = ClusterBackend::start().await else {
        return;
    };
    let stream = RedisLayout::default().revocations();
    let master = backend.cluster.master_of(&stream);
    let replica = tokio::task::block_in_place(|| backend.cluster.add_replica_for(&stream));
    let acknowledged = revoke_some(&backend.stores, "c1", 10).await;

    // SIGKILL, no persistence: only what the replica holds can survive.
    tokio::task::block_in_place(|| {
        backend.cluster.stop(master);
        backend.cluster.wait_master(replica);
    });
    assert_eq!(backend.cluster.master_of(&stream), replica);

    all_there_and_new_ones_follow(&backend.stores, &acknowledged).await;
}
