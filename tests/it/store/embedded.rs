//! The embedded (redb) store: what the contract cannot show.

use tempfile::TempDir;
use tessera::store::{AuditQuery, AuditRetention, StoreError, Stores};
use tessera::token::{Action, AgentId, AgentKey, ResourcePattern};

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
            id: AgentId::parse("https://agents.example/alpha").unwrap(),
            public_key: AgentKey::parse(&format!("ed25519/{}", "cd".repeat(32))).unwrap(),
            description: "kept".to_owned(),
            ceiling: tessera::store::Ceiling {
                actions: vec![Action::parse("read").unwrap()],
                resources: vec![ResourcePattern::parse("docs/*").unwrap()],
                audiences: vec![],
                max_ttl: std::time::Duration::from_secs(60),
            },
            disabled: false,
            created_at: now,
            updated_at: now,
            notification_endpoint: None,
            redirect_uris: Vec::new(),
        };
        stores.agents.put(&agent).await.unwrap();
        assert!(stores.agents.disable(agent.id.as_str(), now).await.unwrap());
        agent.disabled = true;
        stores
            .revocations
            .revoke(&revocation("ff01", now))
            .await
            .unwrap();
        stores
            .audit
            .append(&event(agent.id.as_str(), "t1", now))
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
        stores.agents.get(agent.id.as_str()).await.unwrap(),
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
    assert_eq!(audit[0].1, event(agent.id.as_str(), "t1", now));
    assert_eq!(
        stores
            .tokens
            .outstanding(agent.id.as_str(), now)
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

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[cfg(unix)]
#[tokio::test]
async fn a_new_data_dir_is_private_to_its_owner_and_so_is_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let stores = Stores::embedded(&data).unwrap();
    stores.ping().await.unwrap();
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("tessera.redb")), 0o600);
}

#[cfg(unix)]
#[tokio::test]
async fn an_existing_data_dir_and_database_open_to_others_are_tightened() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    drop(Stores::embedded(&data).unwrap());
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let db = data.join("tessera.redb");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();

    let stores = Stores::embedded(&data).unwrap();
    stores.ping().await.unwrap();
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&db), 0o600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_table_keeps_at_most_max_events_dropping_the_oldest() {
    let dir = tempfile::tempdir().unwrap();
    let retention = AuditRetention {
        max_events: 100,
        max_age: None,
    };
    let stores = Stores::embedded_with(dir.path(), retention).unwrap();
    let now = wall_clock();
    let mut cursors = Vec::new();
    for n in 0..250 {
        let cursor = stores
            .audit
            .append(&event("agent://a/b", &format!("t{n}"), now))
            .await
            .unwrap();
        cursors.push(cursor);
    }
    let kept = stores
        .audit
        .query(&AuditQuery {
            limit: 1000,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(kept.len(), 100);
    // The newest ones, with the cursors they were given.
    assert_eq!(
        kept.iter().map(|(c, _)| c.clone()).collect::<Vec<_>>(),
        cursors[150..]
    );
    assert_eq!(kept[0].1.token_id.as_deref(), Some("t150"));
    // Reopened with the same bound, cursors keep growing.
    drop(stores);
    let stores = Stores::embedded_with(dir.path(), retention).unwrap();
    let next = stores
        .audit
        .append(&event("agent://a/b", "t250", now))
        .await
        .unwrap();
    assert!(next > cursors[249]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_table_drops_events_older_than_max_age_when_it_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let stores = Stores::embedded_with(
        dir.path(),
        AuditRetention {
            max_events: 1_000_000,
            max_age: Some(std::time::Duration::from_secs(3600)),
        },
    )
    .unwrap();
    let then = wall_clock();
    for n in 0..100 {
        stores
            .audit
            .append(&event("agent://a/b", &format!("old{n}"), then))
            .await
            .unwrap();
    }
    let later = then + chrono::TimeDelta::minutes(59);
    stores
        .audit
        .append(&event("agent://a/b", "recent", later))
        .await
        .unwrap();
    let all = AuditQuery {
        limit: 1000,
        ..AuditQuery::default()
    };
    assert_eq!(stores.audit.query(&all).await.unwrap().len(), 101);
    // Two hours on, each write drops a bounded batch of what is too old.
    let much_later = then + chrono::TimeDelta::minutes(61);
    for n in 0..3 {
        stores
            .audit
            .append(&event("agent://a/b", &format!("new{n}"), much_later))
            .await
            .unwrap();
    }
    let kept: Vec<String> = stores
        .audit
        .query(&all)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, e)| e.token_id.unwrap())
        .collect();
    assert_eq!(kept, ["recent", "new0", "new1", "new2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persons_roles_and_consents_are_there_after_reopening_the_data_dir() {
    use tessera::people::RoleName;
    use tessera::token::Person;

    let dir = tempfile::tempdir().unwrap();
    let alice = Person::parse("https://login.acme.example", "alice").unwrap();
    let payer = RoleName::parse("payer").unwrap();
    let bot = AgentId::parse("agent://acme/bot").unwrap();
    {
        let stores = Stores::embedded(dir.path()).unwrap();
        assert!(stores.people.grant_role(&alice, &payer).await.unwrap());
        assert!(stores.people.consent(&alice, &bot).await.unwrap());
    }
    let stores = Stores::embedded(dir.path()).unwrap();
    let standing = stores.people.standing(&alice, &bot).await.unwrap();
    assert_eq!(standing.roles, vec![payer.clone()]);
    assert!(standing.consents);
    // Still bounded and exact after reopening: a second grant changes nothing.
    assert!(!stores.people.grant_role(&alice, &payer).await.unwrap());
}
