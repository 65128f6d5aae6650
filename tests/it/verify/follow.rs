//! Revocation followers (Redis stream and the issuer's HTTP feed) against a
//! real issuer and a real redis-server of each test's own; the feed token;
//! the decision audit sink.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use tessera::server::admin;
use tessera::store::{AuditEvent, AuditKind, Revocation};
use tessera::token::{self, Lifetime};
use tessera::verify::{
    AuditSink, AuditSinkConfig, Backoff, DecisionAudit, FollowerHandle, HttpFollower,
    RedisFollower, RevocationView,
};

use crate::server::helpers::{now, random_hex, TestApp};

/// Long enough for a loaded machine; every wait polls and returns early.
const WITHIN: Duration = Duration::from_secs(15);
/// The staleness a follower on a 100 ms block keeps under while Redis
/// answers (twice the block plus slack), and exceeds while it does not.
const FRESH: Duration = Duration::from_millis(300);

/// Polls `f` every 10 ms until it holds, for at most [`WITHIN`].
async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + WITHIN;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A Redis follower with short blocks and backoff, for tests.
fn redis_follower(app: &TestApp) -> RedisFollower {
    RedisFollower {
        block: Duration::from_millis(100),
        timeout: Duration::from_secs(1),
        backoff: Backoff {
            initial: Duration::from_millis(20),
            max: Duration::from_millis(200),
        },
        ..RedisFollower::new(app.redis.as_ref().unwrap().url())
    }
}

/// A read-only feed token minted from the issuer's active root key.
fn feed_token(app: &TestApp) -> String {
    let cap = admin::feed_capability(Lifetime::parse("1h").unwrap()).unwrap();
    token::mint(&cap, app.state.ring().active(), now())
        .unwrap()
        .token
}

/// An HTTP follower with a feed token and short backoff, for tests.
fn http_follower(app: &TestApp) -> HttpFollower {
    HttpFollower {
        backoff: Backoff {
            initial: Duration::from_millis(20),
            max: Duration::from_millis(200),
        },
        ..HttpFollower::new(&app.base, feed_token(app))
    }
}

fn rid() -> String {
    random_hex(64)
}

fn bytes(id: &str) -> Vec<u8> {
    hex::decode(id).unwrap()
}

async fn revoke(app: &TestApp, id: &str) {
    let r = app.revoke_admin(&json!({ "revocation_id": id })).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}

/// Waits until the follower has confirmed its view once.
async fn confirmed(follower: &FollowerHandle) {
    until("the follower's first confirmation", || {
        follower.view().staleness().is_some()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revocation_posted_to_the_issuer_reaches_a_redis_follower_and_an_http_follower() {
    let Some(app) = TestApp::spawn_redis().await else {
        return;
    };
    let by_redis = redis_follower(&app).spawn(RevocationView::new()).unwrap();
    let by_http = http_follower(&app).spawn(RevocationView::new()).unwrap();
    confirmed(&by_redis).await;
    confirmed(&by_http).await;

    let id = rid();
    assert!(!by_redis.view().contains(&bytes(&id)));
    revoke(&app, &id).await;
    until("the Redis follower to apply the revocation", || {
        by_redis.view().contains(&bytes(&id))
    })
    .await;
    until("the HTTP follower to apply the revocation", || {
        by_http.view().contains(&bytes(&id))
    })
    .await;
    assert!(!by_http.view().contains(&bytes(&rid())));
    for follower in [&by_redis, &by_http] {
        let stats = follower.stats();
        assert_eq!((stats.entries, stats.applied), (1, 1), "{stats:?}");
        assert!(stats.lag.unwrap() < WITHIN, "{stats:?}");
    }
    // Each keeps its source's position: the stream id, the feed cursor.
    let cursor = &app.feed(None).await[0].0;
    assert_eq!(by_http.stats().position.as_ref(), Some(cursor));
    let stream_id = by_redis.stats().position.unwrap();
    let (ms, seq) = stream_id.split_once('-').unwrap();
    assert_eq!(
        format!(
            "{:020}-{:020}",
            ms.parse::<u64>().unwrap(),
            seq.parse::<u64>().unwrap()
        ),
        *cursor
    );

    by_redis.shutdown().await;
    by_http.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_started_after_250_revocations_loads_them_all_across_pages() {
    let Some(app) = TestApp::spawn_redis().await else {
        return;
    };
    let ids: Vec<String> = (0..250).map(|_| rid()).collect();
    let t = now();
    for id in &ids {
        app.state
            .stores
            .revocations
            .revoke(&Revocation {
                revocation_id: id.clone(),
                token_id: None,
                agent: None,
                reason: "test".into(),
                revoked_at: t,
                expires_at: t + chrono::Duration::hours(1),
            })
            .await
            .unwrap();
    }
    let last_cursor = app.feed(None).await.last().unwrap().0.clone();
    // Pages of 100: the catch-up takes three reads.
    let by_redis = RedisFollower {
        batch: 100,
        ..redis_follower(&app)
    }
    .spawn(RevocationView::new())
    .unwrap();
    let by_http = HttpFollower {
        batch: 100,
        ..http_follower(&app)
    }
    .spawn(RevocationView::new())
    .unwrap();
    for follower in [&by_redis, &by_http] {
        confirmed(follower).await;
        let view = follower.view();
        // Confirmed current means everything before the read is in.
        assert!(ids.iter().all(|id| view.contains(&bytes(id))));
        let stats = follower.stats();
        assert_eq!((stats.entries, stats.applied), (250, 250), "{stats:?}");
    }
    assert_eq!(by_http.stats().position, Some(last_cursor));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_redis_killed_the_view_goes_stale_and_recovers_by_itself_without_rereading() {
    let Some(mut app) = TestApp::spawn_redis().await else {
        return;
    };
    let follower = RedisFollower {
        // Long enough that the issuer usually writes before it reconnects.
        backoff: Backoff {
            initial: Duration::from_millis(400),
            max: Duration::from_millis(400),
        },
        ..redis_follower(&app)
    }
    .spawn(RevocationView::new())
    .unwrap();
    let view = follower.view().clone();
    let before = rid();
    revoke(&app, &before).await;
    until("the first revocation", || view.contains(&bytes(&before))).await;
    until("a fresh view", || view.staleness().unwrap() < FRESH).await;
    assert_eq!(view.stats().reconnects, 0);

    app.redis.as_mut().unwrap().stop();
    until("the view to go stale", || view.staleness().unwrap() > FRESH).await;
    // And it is not confirmed while Redis is down: staleness keeps growing.
    let stale = view.staleness().unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(view.staleness().unwrap() >= stale + Duration::from_millis(200));
    assert!(view.stats().reconnects >= 1);

    // Back on the same port with its data; revoke at once, most likely
    // before the follower is back.
    app.redis.as_mut().unwrap().restart();
    let during = rid();
    let t = now();
    let revocation = Revocation {
        revocation_id: during.clone(),
        token_id: None,
        agent: None,
        reason: "while the follower was away".into(),
        revoked_at: t,
        expires_at: t + chrono::Duration::hours(1),
    };
    // The issuer's connection notices the restart on its first call.
    let deadline = Instant::now() + WITHIN;
    while let Err(e) = app.state.stores.revocations.revoke(&revocation).await {
        assert!(
            Instant::now() < deadline,
            "the store did not come back: {e}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    until("the revocation made during the outage", || {
        view.contains(&bytes(&during))
    })
    .await;
    until("a fresh view again", || view.staleness().unwrap() < FRESH).await;
    let stats = view.stats();
    assert!(view.contains(&bytes(&before)));
    // Resumed after its last entry: nothing was applied twice.
    assert_eq!((stats.entries, stats.applied), (2, 2), "{stats:?}");
    assert!(stats.reconnects >= 1);
    assert!(follower.is_running());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_http_follower_rides_out_an_issuer_outage_and_resumes_from_its_cursor() {
    let Some(mut app) = TestApp::spawn_redis().await else {
        return;
    };
    let follower = http_follower(&app).spawn(RevocationView::new()).unwrap();
    let view = follower.view().clone();
    let before = rid();
    revoke(&app, &before).await;
    until("the first revocation", || view.contains(&bytes(&before))).await;

    // The issuer's store goes away: the feed answers 503, the follower backs off.
    app.redis.as_mut().unwrap().stop();
    until("a failed poll", || view.stats().reconnects >= 1).await;
    let stale = view.staleness().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(view.staleness().unwrap() >= stale + Duration::from_millis(300));

    app.redis.as_mut().unwrap().restart();
    let during = rid();
    let r = loop {
        // The issuer's own connection may need a moment to come back.
        let r = app.revoke_admin(&json!({ "revocation_id": during })).await;
        if r.status != StatusCode::SERVICE_UNAVAILABLE {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    until("the revocation made during the outage", || {
        view.contains(&bytes(&during))
    })
    .await;
    until("a fresh view again", || {
        view.staleness().unwrap() < Duration::from_millis(1500)
    })
    .await;
    let stats = view.stats();
    assert_eq!((stats.entries, stats.applied), (2, 2), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_stream_entries_are_skipped_and_following_continues() {
    let Some(app) = TestApp::spawn_redis().await else {
        return;
    };
    let client = redis::Client::open(app.redis.as_ref().unwrap().url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let stream = &tessera::records::redis::RedisLayout::default().revocations();
    let short = json!({
        "revocation_id": "abcd", "token_id": null, "agent": null, "reason": "r",
        "revoked_at": "2026-01-01T00:00:00Z", "expires_at": "2099-01-01T00:00:00Z",
    })
    .to_string();
    let junk: [(&str, &str); 3] = [
        ("revocation", "not json"),
        ("something", "else"),
        ("revocation", &short),
    ];
    let xadd = |field: &str, value: &str| {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(stream).arg("*").arg(field).arg(value);
        cmd
    };
    // Junk before the follower starts (its catch-up read) ...
    for (field, value) in junk {
        let _: String = xadd(field, value).query_async(&mut conn).await.unwrap();
    }
    let first = rid();
    revoke(&app, &first).await;
    let follower = redis_follower(&app).spawn(RevocationView::new()).unwrap();
    let view = follower.view().clone();
    confirmed(&follower).await;
    assert!(view.contains(&bytes(&first)));

    // ... and while it follows (its blocking reads).
    for (field, value) in junk {
        let _: String = xadd(field, value).query_async(&mut conn).await.unwrap();
    }
    let second = rid();
    revoke(&app, &second).await;
    until("the revocation after the junk", || {
        view.contains(&bytes(&second))
    })
    .await;
    let stats = view.stats();
    assert_eq!((stats.entries, stats.applied), (2, 2), "{stats:?}");
    assert_eq!(stats.reconnects, 0, "junk is not a connection failure");
    // The position moved past the junk, to the last entry.
    let last: redis::streams::StreamRangeReply = redis::cmd("XREVRANGE")
        .arg(stream)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query_async(&mut conn)
        .await
        .unwrap();
    until("the position to reach the stream's end", || {
        view.position() == Some(last.ids[0].id.clone())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_feed_token_reads_the_feed_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_owned();
    let app = TestApp::spawn_with(None, move |c| c.data_dir = data_dir).await;
    let id = rid();
    revoke(&app, &id).await;

    // Minted by the library, and by `tessera admin token --feed`.
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["admin", "token", "--feed", "--ttl", "10m", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let from_cli = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    for token in [feed_token(&app), from_cli] {
        let r = app.get("/v1/revocations", Some(&token)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(
            r.json["entries"][0]["revocation"]["revocation_id"],
            id.as_str()
        );

        let r = app
            .http
            .post(app.url("/v1/revocations"))
            .bearer_auth(&token)
            .json(&json!({ "revocation_id": rid() }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        for path in ["/v1/agents", "/v1/audit"] {
            let r = app.get(path, Some(&token)).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}: {}", r.text);
        }
    }
    assert_eq!(
        app.feed(None).await.len(),
        1,
        "the feed token revoked nothing"
    );

    // Revoked like any other token.
    let token = feed_token(&app);
    let r = app.revoke_admin(&json!({ "token": token })).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = app.get("/v1/revocations", Some(&token)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn decisions_recorded_through_the_sink_show_up_in_the_issuers_audit_log() {
    let Some(app) = TestApp::spawn_redis().await else {
        return;
    };
    let sink = Arc::new(
        AuditSink::spawn(AuditSinkConfig {
            batch: 16,
            ..AuditSinkConfig::new(app.redis.as_ref().unwrap().url())
        })
        .unwrap(),
    );
    let token_id = random_hex(8);
    let decision = |n: usize, granted: bool| DecisionAudit {
        at: now(),
        agent: Some("agent://acme/reader".into()),
        token_id: Some(token_id.clone()),
        action: "docs:read".into(),
        resource: format!("docs/team-a/{n}"),
        granted,
        reason: (!granted).then(|| "revoked".to_owned()),
        chain: vec!["agent://acme/planner".into(), "agent://acme/reader".into()],
        person: None,
        remote_addr: None,
    };
    assert!(sink.record(decision(0, false)));
    let path = format!("/v1/audit?token_id={token_id}");
    let events = loop {
        let r = app.admin_get(&path).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let events = r.json["events"].as_array().unwrap().clone();
        if !events.is_empty() {
            break events;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let event: AuditEvent = serde_json::from_value(events[0]["event"].clone()).unwrap();
    assert_eq!(event.kind, AuditKind::Decision);
    assert_eq!(event.outcome, "denied");
    assert_eq!(event.capability.as_deref(), Some("docs:read docs/team-a/0"));
    assert_eq!(event.reason.as_deref(), Some("revoked"));
    assert_eq!(event.chain.len(), 2);

    // What is queued at shutdown is flushed, in order, in batches.
    for n in 1..=100 {
        assert!(sink.record(decision(n, true)));
    }
    let stats = sink.shutdown().await;
    assert_eq!((stats.written, stats.dropped), (101, 0), "{stats:?}");
    let r = app.admin_get(&format!("{path}&limit=1000")).await;
    let outcomes: Vec<String> = r.json["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"]["capability"].as_str().unwrap().to_owned())
        .collect();
    let expected: Vec<String> = (0..=100)
        .map(|n| format!("docs:read docs/team-a/{n}"))
        .collect();
    assert_eq!(outcomes, expected);
    assert!(
        !sink.record(decision(101, true)),
        "a shut-down sink takes nothing"
    );
}

/// A read-only feed token that lives `ttl`, minted now.
fn short_feed_token(app: &TestApp, ttl: &str) -> String {
    let cap = admin::feed_capability(Lifetime::parse(ttl).unwrap()).unwrap();
    token::mint(&cap, app.state.ring().active(), now())
        .unwrap()
        .token
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_http_follower_with_a_10_s_feed_credential_renewed_in_its_file_stays_current_for_60_s() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("feed.token");
    std::fs::write(&path, short_feed_token(&app, "10s")).unwrap();
    let follower = HttpFollower {
        backoff: Backoff {
            initial: Duration::from_millis(20),
            max: Duration::from_millis(200),
        },
        ..HttpFollower::with_credential_file(&app.base, &path)
    }
    .spawn(RevocationView::new())
    .unwrap();
    confirmed(&follower).await;

    // What a timer does: a fresh 10 s token every 4 s, written in place
    // or replaced through a rename.
    let renewer = {
        let (state, path) = (app.state.clone(), path.clone());
        tokio::spawn(async move {
            for round in 0u32.. {
                tokio::time::sleep(Duration::from_secs(4)).await;
                let cap = admin::feed_capability(Lifetime::parse("10s").unwrap()).unwrap();
                let t = token::mint(&cap, state.ring().active(), now())
                    .unwrap()
                    .token;
                if round % 2 == 0 {
                    std::fs::write(&path, format!("{t}\n")).unwrap();
                } else {
                    let tmp = path.with_extension("tmp");
                    std::fs::write(&tmp, &t).unwrap();
                    std::fs::rename(&tmp, &path).unwrap();
                }
            }
        })
    };

    let start = Instant::now();
    let mut worst = Duration::ZERO;
    while start.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let lag = follower.view().staleness().unwrap();
        worst = worst.max(lag);
        assert!(
            lag < Duration::from_secs(5),
            "the follower went stale {:?} after it started: lag {lag:?}",
            start.elapsed()
        );
    }
    // Still following: a revocation made now arrives.
    let id = rid();
    revoke(&app, &id).await;
    until("the revocation made after a minute of renewals", || {
        follower.view().contains(&bytes(&id))
    })
    .await;
    renewer.abort();
    eprintln!("worst staleness over 60 s: {worst:?}");
    follower.shutdown().await;
}

#[tokio::test]
async fn an_http_follower_whose_credential_file_cannot_be_read_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such.token");
    let err = HttpFollower::with_credential_file("http://127.0.0.1:9", &missing)
        .spawn(RevocationView::new())
        .unwrap_err();
    assert!(err.to_string().contains("no-such.token"), "{err}");
    let empty = dir.path().join("empty.token");
    std::fs::write(&empty, "\n").unwrap();
    let err = HttpFollower::with_credential_file("http://127.0.0.1:9", &empty)
        .spawn(RevocationView::new())
        .unwrap_err();
    assert!(err.to_string().contains("empty"), "{err}");
}
