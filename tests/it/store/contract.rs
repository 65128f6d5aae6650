//! The store contract: every function here runs against every backend
//! (see the `contract_suite!` list in `mod.rs`).

use std::sync::Arc;

pub use super::contract_authcode::*;
use std::time::{Duration, Instant};

pub use super::contract_tree::*;
use chrono::{DateTime, TimeDelta, Utc};
use tessera::people::RoleName;
use tessera::store::{
    AgentRecord, AuditEvent, AuditKind, AuditQuery, Ceiling, Cursor, Issue, IssuedToken, OnceKey,
    OnceKind, Revocation, Standing, StoreError, Stores,
};
use tessera::store::{MAX_CONSENTS_PER_PERSON, MAX_ROLES_PER_PERSON};
use tessera::token::{Action, AgentId, AgentKey, Audience, Person, ResourcePattern};

pub use super::contract_approvals::*;

/// The real time. Redis expires keys by its own clock, so the contract uses
/// real time for `now` everywhere.
#[allow(clippy::disallowed_methods)] // tests are an edge: they may read the clock
pub fn wall_clock() -> DateTime<Utc> {
    Utc::now()
}

fn secs(n: i64) -> TimeDelta {
    TimeDelta::seconds(n)
}

pub fn agent(id: &str, now: DateTime<Utc>) -> AgentRecord {
    AgentRecord {
        id: AgentId::parse(id).unwrap(),
        public_key: AgentKey::parse(&format!("ed25519/{}", "ab".repeat(32))).unwrap(),
        description: format!("agent {id}, with \"quotes\"\nand a newline"),
        ceiling: Ceiling {
            actions: vec![
                Action::parse("read").unwrap(),
                Action::parse("write").unwrap(),
            ],
            resources: vec![
                ResourcePattern::parse("docs/*").unwrap(),
                ResourcePattern::parse("reports/2024").unwrap(),
            ],
            audiences: vec![Audience::parse("https://tools.example/").unwrap()],
            max_ttl: Duration::from_secs(300),
        },
        disabled: false,
        created_at: now,
        updated_at: now,
        notification_endpoint: None,
        redirect_uris: vec!["https://tools.example/cb?x=\"1\"".to_owned()],
    }
}

pub fn revocation(id: &str, now: DateTime<Utc>) -> Revocation {
    Revocation {
        revocation_id: id.to_owned(),
        token_id: Some(format!("tok-{id}")),
        agent: Some("https://agents.example/alpha".to_owned()),
        reason: "operator request".to_owned(),
        revoked_at: now,
        expires_at: now + secs(600),
    }
}

pub fn token(token_id: &str, agent: &str, issued_at: DateTime<Utc>, ttl: i64) -> IssuedToken {
    IssuedToken {
        token_id: token_id.to_owned(),
        agent: AgentId::parse(agent).unwrap(),
        revocation_id: format!("{token_id}-sig"),
        expires_at: issued_at + secs(ttl),
        issued_at,
    }
}

pub fn event(agent: &str, token_id: &str, at: DateTime<Utc>) -> AuditEvent {
    AuditEvent {
        at,
        kind: AuditKind::Mint,
        agent: Some(agent.to_owned()),
        token_id: Some(token_id.to_owned()),
        capability: Some("read docs/report.pdf".to_owned()),
        outcome: "granted".into(),
        reason: None,
        remote_addr: Some("127.0.0.1:5555".to_owned()),
        chain: vec![agent.to_owned()],
        person: None,
        amount: None,
        approval_id: None,
        revocation_ids: Vec::new(),
        service: None,
    }
}

fn ids(entries: &[(Cursor, Revocation)]) -> Vec<&str> {
    entries
        .iter()
        .map(|(_, r)| r.revocation_id.as_str())
        .collect()
}

pub async fn an_edit_made_from_a_record_read_before_a_disable_keeps_the_agent_disabled(
    stores: &Stores,
) {
    let now = wall_clock();
    let alpha = agent("https://agents.example/edited", now);
    stores.agents.put(&alpha).await.unwrap();
    // An operator's edit read the record while the agent was enabled ...
    let read = stores.agents.get(alpha.id.as_str()).await.unwrap().unwrap();
    // ... another disabled it ...
    assert!(stores
        .agents
        .disable(alpha.id.as_str(), now + secs(1))
        .await
        .unwrap());
    // ... and the edit lands: its fields are written, the disable stays.
    let edited = AgentRecord {
        description: "edited".to_owned(),
        redirect_uris: vec!["https://app.example/cb".to_owned()],
        created_at: now + secs(99),
        updated_at: now + secs(2),
        ..read
    };
    assert!(!edited.disabled);
    let stored = stores.agents.update(&edited).await.unwrap().unwrap();
    let got = stores.agents.get(alpha.id.as_str()).await.unwrap().unwrap();
    assert_eq!(stored, got);
    assert!(got.disabled, "the edit undid the disable");
    assert_eq!(got.description, "edited");
    assert_eq!(got.redirect_uris, edited.redirect_uris);
    assert_eq!(got.updated_at, now + secs(2));
    assert_eq!(got.created_at, alpha.created_at, "created_at is kept");
    // An update of an agent nobody registered writes nothing.
    let ghost = agent("https://agents.example/ghost", now);
    assert_eq!(stores.agents.update(&ghost).await.unwrap(), None);
    assert_eq!(stores.agents.get(ghost.id.as_str()).await.unwrap(), None);
}

pub async fn agent_records_round_trip_through_put_get_list_and_disable(stores: &Stores) {
    let now = wall_clock();
    let alpha = agent("https://agents.example/alpha", now);
    let beta = agent("https://agents.example/beta", now);
    stores.agents.put(&beta).await.unwrap();
    stores.agents.put(&alpha).await.unwrap();

    assert_eq!(
        stores.agents.get(alpha.id.as_str()).await.unwrap(),
        Some(alpha.clone())
    );
    assert_eq!(
        stores.agents.list().await.unwrap(),
        vec![alpha.clone(), beta.clone()]
    );

    let replaced = AgentRecord {
        description: "replaced".to_owned(),
        ceiling: Ceiling {
            actions: vec![Action::parse("read").unwrap()],
            ..alpha.ceiling.clone()
        },
        updated_at: now + secs(1),
        ..alpha.clone()
    };
    stores.agents.put(&replaced).await.unwrap();
    assert_eq!(
        stores.agents.get(alpha.id.as_str()).await.unwrap(),
        Some(replaced.clone())
    );

    let later = now + secs(5);
    assert!(stores
        .agents
        .disable(alpha.id.as_str(), later)
        .await
        .unwrap());
    let disabled = stores.agents.get(alpha.id.as_str()).await.unwrap().unwrap();
    assert!(disabled.disabled);
    assert_eq!(disabled.updated_at, later);
    assert_eq!(disabled.description, "replaced");
    assert_eq!(
        stores.agents.get(beta.id.as_str()).await.unwrap(),
        Some(beta.clone())
    );

    assert!(!stores
        .agents
        .disable("https://agents.example/nobody", later)
        .await
        .unwrap());
    assert_eq!(
        stores
            .agents
            .get("https://agents.example/nobody")
            .await
            .unwrap(),
        None
    );
    assert_eq!(stores.agents.list().await.unwrap().len(), 2);
}

pub async fn agents_are_listed_a_bounded_page_at_a_time_by_id(stores: &Stores) {
    let now = wall_clock();
    let names = ["d", "a", "c", "e", "b"];
    for n in names {
        let a = agent(&format!("https://agents.example/page-{n}"), now);
        stores.agents.put(&a).await.unwrap();
    }
    let ids = |page: &[AgentRecord]| page.iter().map(|a| a.id.to_string()).collect::<Vec<_>>();
    let first = stores.agents.list_page(None, 2).await.unwrap();
    assert_eq!(
        ids(&first),
        [
            "https://agents.example/page-a",
            "https://agents.example/page-b"
        ]
    );
    let second = stores
        .agents
        .list_page(Some(first[1].id.as_str()), 2)
        .await
        .unwrap();
    assert_eq!(
        ids(&second),
        [
            "https://agents.example/page-c",
            "https://agents.example/page-d"
        ]
    );
    let last = stores
        .agents
        .list_page(Some(second[1].id.as_str()), 2)
        .await
        .unwrap();
    assert_eq!(ids(&last), ["https://agents.example/page-e"]);
    assert!(stores
        .agents
        .list_page(Some(last[0].id.as_str()), 2)
        .await
        .unwrap()
        .is_empty());
    assert!(stores.agents.list_page(None, 0).await.unwrap().is_empty());
    assert_eq!(
        stores.agents.list_page(None, 10).await.unwrap(),
        stores.agents.list().await.unwrap()
    );
}

pub async fn revoked_id_is_reported_and_an_unknown_id_is_not(stores: &Stores) {
    let now = wall_clock();
    assert!(!stores.revocations.is_revoked("aa01").await.unwrap());
    stores
        .revocations
        .revoke(&revocation("aa01", now))
        .await
        .unwrap();
    assert!(stores.revocations.is_revoked("aa01").await.unwrap());
    assert!(!stores.revocations.is_revoked("aa02").await.unwrap());
}

pub async fn feed_lists_revocations_in_order_and_resumes_after_a_cursor(stores: &Stores) {
    let now = wall_clock();
    let mut cursors = Vec::new();
    for i in 0..5 {
        let cursor = stores
            .revocations
            .revoke(&revocation(&format!("bb{i:02}"), now))
            .await
            .unwrap();
        cursors.push(cursor);
    }
    assert!(cursors.windows(2).all(|w| w[0] < w[1]), "{cursors:?}");

    let all = stores.revocations.feed(None, 100).await.unwrap();
    assert_eq!(ids(&all), ["bb00", "bb01", "bb02", "bb03", "bb04"]);
    let feed_cursors: Vec<Cursor> = all.iter().map(|(c, _)| c.clone()).collect();
    assert_eq!(feed_cursors, cursors);
    assert_eq!(all[0].1, revocation("bb00", now));

    let rest = stores
        .revocations
        .feed(Some(&cursors[1]), 100)
        .await
        .unwrap();
    assert_eq!(ids(&rest), ["bb02", "bb03", "bb04"]);
    let page = stores.revocations.feed(Some(&cursors[1]), 2).await.unwrap();
    assert_eq!(ids(&page), ["bb02", "bb03"]);
    let next = stores.revocations.feed(Some(&page[1].0), 2).await.unwrap();
    assert_eq!(ids(&next), ["bb04"]);
    assert!(stores
        .revocations
        .feed(Some(&cursors[4]), 100)
        .await
        .unwrap()
        .is_empty());
    assert!(stores.revocations.feed(None, 0).await.unwrap().is_empty());
}

pub async fn revoking_the_same_id_twice_keeps_one_feed_entry(stores: &Stores) {
    let now = wall_clock();
    let first = stores
        .revocations
        .revoke(&revocation("cc01", now))
        .await
        .unwrap();
    let again = Revocation {
        reason: "revoked again".to_owned(),
        ..revocation("cc01", now + secs(1))
    };
    let second = stores.revocations.revoke(&again).await.unwrap();
    assert_eq!(first, second);
    let other = stores
        .revocations
        .revoke(&revocation("cc02", now))
        .await
        .unwrap();
    assert!(other > first);

    let feed = stores.revocations.feed(None, 100).await.unwrap();
    assert_eq!(ids(&feed), ["cc01", "cc02"]);
    assert_eq!(feed[0].1.reason, "operator request");
    assert!(stores.revocations.is_revoked("cc01").await.unwrap());
}

pub async fn a_malformed_cursor_is_refused(stores: &Stores) {
    let bad = Cursor::new("not a cursor");
    let feed = stores.revocations.feed(Some(&bad), 10).await;
    assert!(
        matches!(feed, Err(StoreError::InvalidCursor(_))),
        "{feed:?}"
    );
    let query = AuditQuery {
        after: Some(bad),
        limit: 10,
        ..AuditQuery::default()
    };
    let audit = stores.audit.query(&query).await;
    assert!(
        matches!(audit, Err(StoreError::InvalidCursor(_))),
        "{audit:?}"
    );
}

pub async fn wait_returns_promptly_when_a_revocation_arrives_from_another_task(stores: &Stores) {
    let now = wall_clock();
    let revocations = Arc::clone(&stores.revocations);
    let writer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        revocations.revoke(&revocation("dd01", now)).await.unwrap()
    });
    let started = Instant::now();
    let got = stores
        .revocations
        .wait(None, 10, Duration::from_secs(20))
        .await
        .unwrap();
    let waited = started.elapsed();
    assert_eq!(ids(&got), ["dd01"]);
    assert!(
        waited >= Duration::from_millis(250),
        "returned before the write: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(5),
        "did not wake promptly: {waited:?}"
    );
    let cursor = writer.await.unwrap();
    assert_eq!(got[0].0, cursor);

    // Resuming after that cursor waits for the next one only.
    let revocations = Arc::clone(&stores.revocations);
    let writer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        revocations.revoke(&revocation("dd02", now)).await.unwrap()
    });
    let started = Instant::now();
    let got = stores
        .revocations
        .wait(Some(&cursor), 10, Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(ids(&got), ["dd02"]);
    assert!(started.elapsed() < Duration::from_secs(5));
    writer.await.unwrap();
}

pub async fn wait_returns_nothing_once_the_timeout_passes(stores: &Stores) {
    let now = wall_clock();
    let cursor = stores
        .revocations
        .revoke(&revocation("ee01", now))
        .await
        .unwrap();

    // Something already there: no waiting.
    let started = Instant::now();
    let got = stores
        .revocations
        .wait(None, 10, Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(ids(&got), ["ee01"]);
    assert!(started.elapsed() < Duration::from_secs(2));

    let started = Instant::now();
    let got = stores
        .revocations
        .wait(Some(&cursor), 10, Duration::from_millis(700))
        .await
        .unwrap();
    let waited = started.elapsed();
    assert!(got.is_empty(), "{got:?}");
    assert!(
        waited >= Duration::from_millis(650),
        "returned early: {waited:?}"
    );
    assert!(waited < Duration::from_secs(5), "overslept: {waited:?}");
}

pub async fn exactly_one_of_32_concurrent_replay_inserts_wins(stores: &Stores) {
    let now = wall_clock();
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let replay = Arc::clone(&stores.replay);
            tokio::spawn(async move {
                replay
                    .insert_once("jti:same", now + secs(60), now)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut winners = 0;
    for task in tasks {
        if task.await.unwrap() {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
    assert!(!stores
        .replay
        .insert_once("jti:same", now + secs(60), now)
        .await
        .unwrap());
    assert!(stores
        .replay
        .insert_once("jti:other", now + secs(60), now)
        .await
        .unwrap());
}

pub async fn an_expired_replay_key_can_be_used_again(stores: &Stores) {
    let now = wall_clock();
    let expires = now + TimeDelta::milliseconds(800);
    assert!(stores
        .replay
        .insert_once("jti:short", expires, now)
        .await
        .unwrap());
    assert!(!stores
        .replay
        .insert_once("jti:short", expires, now)
        .await
        .unwrap());

    // Past its expiry (by the argument and by Redis's own clock).
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let later = wall_clock();
    assert!(later > expires);
    assert!(stores
        .replay
        .insert_once("jti:short", later + secs(60), later)
        .await
        .unwrap());
    assert!(!stores
        .replay
        .insert_once("jti:short", later + secs(60), later)
        .await
        .unwrap());

    // A key that is already expired is never accepted.
    assert!(!stores
        .replay
        .insert_once("jti:dead", later - secs(1), later)
        .await
        .unwrap());
}

pub async fn ledger_finds_tokens_by_id_and_lists_outstanding_ones_by_agent(stores: &Stores) {
    let t0 = wall_clock();
    let alpha = "https://agents.example/alpha";
    let beta = "https://agents.example/beta";
    let short = token("tok-short", alpha, t0, 60);
    let long = token("tok-long", alpha, t0 + secs(1), 600);
    let other = token("tok-other", beta, t0, 600);
    for t in [&long, &short, &other] {
        stores.tokens.record(t).await.unwrap();
    }

    assert_eq!(
        stores.tokens.get("tok-short").await.unwrap(),
        Some(short.clone())
    );
    assert_eq!(stores.tokens.get("tok-none").await.unwrap(), None);
    assert_eq!(
        stores.tokens.outstanding(alpha, t0).await.unwrap(),
        vec![short.clone(), long.clone()]
    );
    assert_eq!(
        stores.tokens.outstanding(beta, t0).await.unwrap(),
        vec![other]
    );
    assert_eq!(
        stores
            .tokens
            .outstanding(alpha, t0 + secs(120))
            .await
            .unwrap(),
        vec![long.clone()]
    );
    assert!(stores
        .tokens
        .outstanding("https://agents.example/nobody", t0)
        .await
        .unwrap()
        .is_empty());
    assert!(stores
        .tokens
        .outstanding(alpha, t0 + secs(601))
        .await
        .unwrap()
        .is_empty());
}

pub async fn audit_query_filters_by_agent_and_token_and_pages_with_after_and_limit(
    stores: &Stores,
) {
    let now = wall_clock();
    let agents = ["https://agents.example/a", "https://agents.example/b"];
    let mut appended = Vec::new();
    for i in 0..6 {
        let e = event(agents[i % 2], &format!("t{i}"), now + secs(i as i64));
        let cursor = stores.audit.append(&e).await.unwrap();
        appended.push((cursor, e));
    }
    assert!(appended.windows(2).all(|w| w[0].0 < w[1].0));

    let all = stores
        .audit
        .query(&AuditQuery {
            limit: 100,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(all, appended);

    let by_agent = stores
        .audit
        .query(&AuditQuery {
            agent: Some(agents[0].to_owned()),
            limit: 100,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    let expected: Vec<_> = appended.iter().step_by(2).cloned().collect();
    assert_eq!(by_agent, expected);

    let by_token = stores
        .audit
        .query(&AuditQuery {
            token_id: Some("t3".to_owned()),
            limit: 100,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(by_token, vec![appended[3].clone()]);

    let both = stores
        .audit
        .query(&AuditQuery {
            agent: Some(agents[0].to_owned()),
            token_id: Some("t3".to_owned()),
            limit: 100,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert!(both.is_empty());

    let page = stores
        .audit
        .query(&AuditQuery {
            after: Some(appended[1].0.clone()),
            limit: 2,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(page, appended[2..4].to_vec());

    let next_for_a = stores
        .audit
        .query(&AuditQuery {
            agent: Some(agents[0].to_owned()),
            after: Some(appended[0].0.clone()),
            limit: 1,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(next_for_a, vec![appended[2].clone()]);

    let after_last = stores
        .audit
        .query(&AuditQuery {
            after: Some(appended[5].0.clone()),
            limit: 10,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert!(after_last.is_empty());
    let none = stores.audit.query(&AuditQuery::default()).await.unwrap();
    assert!(none.is_empty());
}

pub async fn the_store_answers_ping(stores: &Stores) {
    stores.ping().await.unwrap();
}

fn once(kind: OnceKind, key: &str, expires_at: DateTime<Utc>) -> OnceKey {
    OnceKey {
        kind,
        key: key.to_owned(),
        expires_at,
    }
}

/// The audit events about `token_id`.
async fn events_about(stores: &Stores, token_id: &str) -> Vec<(Cursor, AuditEvent)> {
    stores
        .audit
        .query(&AuditQuery {
            token_id: Some(token_id.to_owned()),
            limit: 100,
            ..AuditQuery::default()
        })
        .await
        .unwrap()
}

pub async fn record_issue_takes_the_keys_and_records_the_token_and_its_event(stores: &Stores) {
    let now = wall_clock();
    let alpha = "https://agents.example/alpha";
    let minted = token("tok-issued", alpha, now, 300);
    let ev = event(alpha, "tok-issued", now);
    let keys = [
        once(OnceKind::ClientAssertion, "assertion:i1", now + secs(60)),
        once(OnceKind::DpopProof, "dpop:i1", now + secs(60)),
    ];
    let outcome = stores
        .issuance
        .record_issue(&keys, &minted, &ev, now)
        .await
        .unwrap();
    let Issue::Recorded(cursor) = outcome else {
        panic!("not recorded: {outcome:?}");
    };

    assert_eq!(
        stores.tokens.get("tok-issued").await.unwrap(),
        Some(minted.clone())
    );
    assert_eq!(
        stores.tokens.outstanding(alpha, now).await.unwrap(),
        vec![minted]
    );
    assert_eq!(
        events_about(stores, "tok-issued").await,
        vec![(cursor.clone(), ev)]
    );
    // The keys are taken, for `insert_once` too.
    for key in &keys {
        assert!(!stores
            .replay
            .insert_once(&key.key, key.expires_at, now)
            .await
            .unwrap());
    }
    // Its event takes its place in the log's order.
    let later = stores
        .audit
        .append(&event(alpha, "tok-after", now))
        .await
        .unwrap();
    assert!(later > cursor);
}

pub async fn record_issue_stops_at_the_first_used_key_and_writes_nothing_else(stores: &Stores) {
    let now = wall_clock();
    let alpha = "https://agents.example/alpha";
    assert!(stores
        .replay
        .insert_once("used:b", now + secs(60), now)
        .await
        .unwrap());
    let refused = token("tok-refused", alpha, now, 300);
    let keys = [
        once(OnceKind::ClientAssertion, "fresh:a", now + secs(60)),
        once(OnceKind::DpopProof, "used:b", now + secs(60)),
        once(OnceKind::ClientAssertion, "fresh:c", now + secs(60)),
    ];
    let outcome = stores
        .issuance
        .record_issue(&keys, &refused, &event(alpha, "tok-refused", now), now)
        .await
        .unwrap();
    // The one DPoP key is the used one: the store names it.
    assert_eq!(outcome, Issue::Replayed(OnceKind::DpopProof));

    assert_eq!(stores.tokens.get("tok-refused").await.unwrap(), None);
    assert!(stores
        .tokens
        .outstanding(alpha, now)
        .await
        .unwrap()
        .is_empty());
    assert!(events_about(stores, "tok-refused").await.is_empty());
    // The key before the used one is taken, as separate calls would have
    // left it; the one after is not.
    assert!(!stores
        .replay
        .insert_once("fresh:a", now + secs(60), now)
        .await
        .unwrap());
    assert!(stores
        .replay
        .insert_once("fresh:c", now + secs(60), now)
        .await
        .unwrap());

    // A replay of a lone assertion key names it; an expired key is never taken.
    let again = stores
        .issuance
        .record_issue(
            &[once(OnceKind::ClientAssertion, "fresh:a", now + secs(60))],
            &refused,
            &event(alpha, "tok-refused", now),
            now,
        )
        .await
        .unwrap();
    assert_eq!(again, Issue::Replayed(OnceKind::ClientAssertion));
    let dead = stores
        .issuance
        .record_issue(
            &[
                once(OnceKind::ClientAssertion, "fresh:d", now + secs(60)),
                once(OnceKind::DpopProof, "dead:e", now - secs(1)),
            ],
            &refused,
            &event(alpha, "tok-refused", now),
            now,
        )
        .await
        .unwrap();
    assert_eq!(dead, Issue::Replayed(OnceKind::DpopProof));
    assert_eq!(stores.tokens.get("tok-refused").await.unwrap(), None);
    assert!(events_about(stores, "tok-refused").await.is_empty());
    assert!(stores
        .replay
        .insert_once("dead:e", now + secs(60), now)
        .await
        .unwrap());
}

pub async fn exactly_one_of_32_concurrent_issues_with_one_key_is_recorded(stores: &Stores) {
    let now = wall_clock();
    let alpha = "https://agents.example/alpha";
    let tasks: Vec<_> = (0..32)
        .map(|n| {
            let issuance = Arc::clone(&stores.issuance);
            tokio::spawn(async move {
                let token_id = format!("tok-race-{n}");
                let outcome = issuance
                    .record_issue(
                        &[
                            once(
                                OnceKind::ClientAssertion,
                                &format!("own:{n}"),
                                now + secs(60),
                            ),
                            once(OnceKind::DpopProof, "jti:race", now + secs(60)),
                        ],
                        &token(&token_id, alpha, now, 300),
                        &event(alpha, &token_id, now),
                        now,
                    )
                    .await
                    .unwrap();
                (token_id, outcome)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        let (token_id, outcome) = task.await.unwrap();
        match outcome {
            Issue::Recorded(_) => winners.push(token_id),
            Issue::Replayed(kind) => assert_eq!(kind, OnceKind::DpopProof, "{token_id}"),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let outstanding = stores.tokens.outstanding(alpha, now).await.unwrap();
    let ids: Vec<&str> = outstanding.iter().map(|t| t.token_id.as_str()).collect();
    assert_eq!(ids, [winners[0].as_str()]);
    let minted = stores
        .audit
        .query(&AuditQuery {
            agent: Some(alpha.to_owned()),
            limit: 100,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(minted.len(), 1, "{minted:?}");
    assert_eq!(minted[0].1.token_id.as_deref(), Some(winners[0].as_str()));
}

fn person(issuer: &str, subject: &str) -> Person {
    Person::parse(issuer, subject).unwrap()
}

fn role(name: &str) -> RoleName {
    RoleName::parse(name).unwrap()
}

fn agent_id(id: &str) -> AgentId {
    AgentId::parse(id).unwrap()
}

pub async fn roles_are_granted_once_listed_sorted_and_revoked(stores: &Stores) {
    let alice = person("https://login.acme.example", "alice");
    let people = &stores.people;
    assert_eq!(people.roles(&alice).await.unwrap(), Vec::<RoleName>::new());
    assert!(people.grant_role(&alice, &role("payer")).await.unwrap());
    assert!(!people.grant_role(&alice, &role("payer")).await.unwrap());
    assert!(people.grant_role(&alice, &role("auditor")).await.unwrap());
    assert_eq!(
        people.roles(&alice).await.unwrap(),
        vec![role("auditor"), role("payer")]
    );
    assert!(people.revoke_role(&alice, &role("payer")).await.unwrap());
    assert!(!people.revoke_role(&alice, &role("payer")).await.unwrap());
    assert!(!people.revoke_role(&alice, &role("never")).await.unwrap());
    assert_eq!(people.roles(&alice).await.unwrap(), vec![role("auditor")]);
    // Consents are a separate set: granting roles recorded none.
    assert!(people.consents(&alice).await.unwrap().is_empty());
}

pub async fn consents_are_recorded_once_listed_sorted_and_withdrawn(stores: &Stores) {
    let alice = person("https://login.acme.example", "alice");
    let (bot, aide) = (agent_id("agent://acme/bot"), agent_id("agent://acme/aide"));
    let people = &stores.people;
    assert!(people.consent(&alice, &bot).await.unwrap());
    assert!(!people.consent(&alice, &bot).await.unwrap());
    assert!(people.consent(&alice, &aide).await.unwrap());
    assert_eq!(
        people.consents(&alice).await.unwrap(),
        vec![aide.clone(), bot.clone()]
    );
    assert!(people.withdraw_consent(&alice, &bot).await.unwrap());
    assert!(!people.withdraw_consent(&alice, &bot).await.unwrap());
    assert_eq!(people.consents(&alice).await.unwrap(), vec![aide]);
    assert!(people.roles(&alice).await.unwrap().is_empty());
}

pub async fn standing_reports_the_roles_and_the_consent_for_that_agent_only(stores: &Stores) {
    let alice = person("https://login.acme.example", "alice");
    let (bot, other) = (agent_id("agent://acme/bot"), agent_id("agent://acme/other"));
    let people = &stores.people;
    assert_eq!(
        people.standing(&alice, &bot).await.unwrap(),
        Standing::default()
    );
    people.grant_role(&alice, &role("payer")).await.unwrap();
    people.grant_role(&alice, &role("auditor")).await.unwrap();
    people.consent(&alice, &bot).await.unwrap();
    let standing = people.standing(&alice, &bot).await.unwrap();
    assert_eq!(standing.roles, vec![role("auditor"), role("payer")]);
    assert!(standing.consents);
    let for_other = people.standing(&alice, &other).await.unwrap();
    assert_eq!(for_other.roles, standing.roles);
    assert!(!for_other.consents);
    people.withdraw_consent(&alice, &bot).await.unwrap();
    assert!(!people.standing(&alice, &bot).await.unwrap().consents);
    // Everything taken back: the person is as if never stored.
    people.revoke_role(&alice, &role("payer")).await.unwrap();
    people.revoke_role(&alice, &role("auditor")).await.unwrap();
    assert_eq!(
        people.standing(&alice, &bot).await.unwrap(),
        Standing::default()
    );
}

pub async fn the_same_subject_at_two_identity_providers_is_two_people(stores: &Stores) {
    let at_acme = person("https://login.acme.example", "alice");
    let at_evil = person("https://login.evil.example", "alice");
    // An issuer that is a prefix of another, with the rest in the subject.
    let prefixed = person("https://login.acme.example/x", "alice");
    let shifted = person("https://login.acme.example/x:alice", "alice");
    let bot = agent_id("agent://acme/bot");
    let people = &stores.people;
    people.grant_role(&at_acme, &role("payer")).await.unwrap();
    people.consent(&at_acme, &bot).await.unwrap();
    people
        .grant_role(&prefixed, &role("auditor"))
        .await
        .unwrap();
    for stranger in [&at_evil, &shifted] {
        assert_eq!(
            people.standing(stranger, &bot).await.unwrap(),
            Standing::default(),
            "{stranger}"
        );
        assert!(people.roles(stranger).await.unwrap().is_empty());
        assert!(people.consents(stranger).await.unwrap().is_empty());
    }
    assert_eq!(
        people.roles(&prefixed).await.unwrap(),
        vec![role("auditor")]
    );
    assert!(!people.standing(&prefixed, &bot).await.unwrap().consents);
    // Withdrawing for the namesake changes nothing for the real one.
    assert!(!people.withdraw_consent(&at_evil, &bot).await.unwrap());
    assert!(!people.revoke_role(&at_evil, &role("payer")).await.unwrap());
    let standing = people.standing(&at_acme, &bot).await.unwrap();
    assert_eq!(standing.roles, vec![role("payer")]);
    assert!(standing.consents);
}

pub async fn a_person_holds_at_most_the_bounded_number_of_roles_and_consents(stores: &Stores) {
    let alice = person("https://login.acme.example", "alice");
    let people = &stores.people;
    // Concurrent grants beyond the bound: exactly the bound succeeds.
    let attempts = MAX_ROLES_PER_PERSON + 16;
    let grants = (0..attempts).map(|i| {
        let people = stores.people.clone();
        let alice = alice.clone();
        tokio::spawn(async move { people.grant_role(&alice, &role(&format!("r{i:03}"))).await })
    });
    let mut granted = 0;
    let mut refused = 0;
    for grant in grants {
        match grant.await.unwrap() {
            Ok(true) => granted += 1,
            Err(StoreError::Limit(_)) => refused += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((granted, refused), (MAX_ROLES_PER_PERSON, 16));
    let held = people.roles(&alice).await.unwrap();
    assert_eq!(held.len(), MAX_ROLES_PER_PERSON);
    // At the bound, a role already held is still "already held", and a
    // new one is refused until one is taken back.
    assert!(!people.grant_role(&alice, &held[0]).await.unwrap());
    assert!(matches!(
        people.grant_role(&alice, &role("one-more")).await,
        Err(StoreError::Limit(_))
    ));
    assert!(people.revoke_role(&alice, &held[0]).await.unwrap());
    assert!(people.grant_role(&alice, &role("one-more")).await.unwrap());

    for i in 0..MAX_CONSENTS_PER_PERSON {
        let agent = agent_id(&format!("agent://acme/bot-{i:03}"));
        assert!(people.consent(&alice, &agent).await.unwrap());
    }
    let over = agent_id("agent://acme/one-too-many");
    assert!(matches!(
        people.consent(&alice, &over).await,
        Err(StoreError::Limit(_))
    ));
    assert!(!people.standing(&alice, &over).await.unwrap().consents);
    assert_eq!(
        people.consents(&alice).await.unwrap().len(),
        MAX_CONSENTS_PER_PERSON
    );
    // Another person is not affected by alice's bounds.
    let bob = person("https://login.acme.example", "bob");
    assert!(people.consent(&bob, &over).await.unwrap());
}

pub async fn audit_query_filters_by_person_and_keeps_the_person_of_each_event(stores: &Stores) {
    let now = wall_clock();
    let alice = person("https://login.acme.example", "alice");
    let namesake = person("https://login.evil.example", "alice");
    let for_person = |p: Option<&Person>, token_id: &str, i: i64| AuditEvent {
        person: p.cloned(),
        amount: None,
        approval_id: None,
        revocation_ids: Vec::new(),
        service: None,
        ..event("https://agents.example/a", token_id, now + secs(i))
    };
    let appended = [
        for_person(Some(&alice), "p0", 0),
        for_person(Some(&namesake), "p1", 1),
        for_person(None, "p2", 2),
        for_person(Some(&alice), "p3", 3),
    ];
    for e in &appended {
        stores.audit.append(e).await.unwrap();
    }
    // A mint's event goes through the store's one-operation path.
    let minted = for_person(Some(&alice), "p4", 4);
    let issued = token("p4", "https://agents.example/a", now, 600);
    let outcome = stores
        .issuance
        .record_issue(&[], &issued, &minted, now)
        .await
        .unwrap();
    assert!(matches!(outcome, Issue::Recorded(_)), "{outcome:?}");

    let query = |p: Person, limit| AuditQuery {
        person: Some(p),
        limit,
        ..AuditQuery::default()
    };
    let found = stores
        .audit
        .query(&query(alice.clone(), 100))
        .await
        .unwrap();
    let events: Vec<_> = found.iter().map(|(_, e)| e.clone()).collect();
    assert_eq!(
        events,
        vec![appended[0].clone(), appended[3].clone(), minted.clone()]
    );
    let theirs = stores
        .audit
        .query(&query(namesake.clone(), 100))
        .await
        .unwrap();
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0].1, appended[1]);
    // Pages with `after` and `limit` like the other filters.
    let first = stores.audit.query(&query(alice.clone(), 1)).await.unwrap();
    assert_eq!(first.len(), 1);
    let rest = stores
        .audit
        .query(&AuditQuery {
            after: Some(first[0].0.clone()),
            ..query(alice.clone(), 100)
        })
        .await
        .unwrap();
    assert_eq!(rest.len(), 2);
    // Combined with the agent filter, both must hold.
    let none = stores
        .audit
        .query(&AuditQuery {
            agent: Some("https://agents.example/b".to_owned()),
            ..query(alice, 100)
        })
        .await
        .unwrap();
    assert!(none.is_empty());
}
