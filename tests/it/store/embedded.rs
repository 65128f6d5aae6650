//! The embedded (redb) store: what the contract cannot show.

use tempfile::TempDir;
use tessera::store::{AuditQuery, StoreError, Stores};

use super::contract::{event, revocation, wall_clock};

/// An embedded store in a temporary data directory.
pub struct Backend {
    pub stores: Stores,
    _dir: TempDir,
}

impl Backend {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let stores = Stores::embedded(dir.path()).unwrap();
        Self { stores, _dir: dir }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_written_is_there_after_reopening_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let now = wall_clock();
    let agent = {
        let stores = Stores::embedded(dir.path()).unwrap();
        let mut agent = tessera::store::AgentRecord {
            id: "https://agents.example/alpha".to_owned(),
            public_key: format!("ed25519/{}", "cd".repeat(32)),
            description: "kept".to_owned(),
            ceiling: tessera::store::Ceiling {
                actions: vec!["read".to_owned()],
                resources: vec!["docs/*".to_owned()],
                audiences: vec![],
                max_ttl_secs: 60,
            },
            disabled: false,
            created_at: now,
            updated_at: now,
        };
        stores.agents.put(&agent).await.unwrap();
        assert!(stores.agents.disable(&agent.id, now).await.unwrap());
        agent.disabled = true;
        stores
            .revocations
            .revoke(&revocation("ff01", now))
            .await
            .unwrap();
        stores
            .audit
            .append(&event(&agent.id, "t1", now))
            .await
            .unwrap();
        let token = tessera::store::IssuedToken {
            token_id: "tok-1".to_owned(),
            agent: agent.id.clone(),
            revocation_id: "ff02".to_owned(),
            expires_at: now + chrono::TimeDelta::seconds(600),
            issued_at: now,
        };
        stores.tokens.record(&token).await.unwrap();
        assert!(stores
            .replay
            .insert_once("jti:kept", now + chrono::TimeDelta::seconds(600), now)
            .await
            .unwrap());
        agent
    };

    let stores = Stores::embedded(dir.path()).unwrap();
    assert_eq!(
        stores.agents.get(&agent.id).await.unwrap(),
        Some(agent.clone())
    );
    assert!(stores.revocations.is_revoked("ff01").await.unwrap());
    let feed = stores.revocations.feed(None, 10).await.unwrap();
    assert_eq!(feed.len(), 1);
    assert_eq!(feed[0].1, revocation("ff01", now));
    let audit = stores
        .audit
        .query(&AuditQuery {
            limit: 10,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].1, event(&agent.id, "t1", now));
    assert_eq!(
        stores
            .tokens
            .outstanding(&agent.id, now)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(!stores
        .replay
        .insert_once("jti:kept", now + chrono::TimeDelta::seconds(600), now)
        .await
        .unwrap());

    // The feed continues after the old entries.
    let next = stores
        .revocations
        .revoke(&revocation("ff03", now))
        .await
        .unwrap();
    assert!(next > feed[0].0);
    let after = stores.revocations.feed(Some(&feed[0].0), 10).await.unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].1.revocation_id, "ff03");
}

#[tokio::test]
async fn a_missing_data_dir_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("a").join("b");
    let stores = Stores::embedded(&nested).unwrap();
    stores.ping().await.unwrap();
    assert!(nested.join("tessera.redb").is_file());
}

#[tokio::test]
async fn a_data_dir_held_by_another_store_is_reported_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Stores::embedded(dir.path()).unwrap();
    let second = Stores::embedded(dir.path());
    assert!(
        matches!(second, Err(StoreError::Unavailable(_))),
        "{:?}",
        second.err()
    );
}
