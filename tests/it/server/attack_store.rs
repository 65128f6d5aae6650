//! Attacks on the issuer's store and its admin gate, over real HTTP on
//! loopback: strangers flooding the audit log, expired or revoked admin and
//! feed tokens carrying Datalog, and Redis coming back under an idle issuer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use tessera::server::oauth::JWT_BEARER;
use tessera::server::{self, admin, AppState, Config, KeyRing, SystemClock};
use tessera::store::{AuditEvent, AuditKind, AuditQuery, Cursor, RedisConfig, Stores};
use tessera::token::{self, Lifetime};
use tokio::task::JoinSet;

use super::helpers::{now, random_hex, Reply, TestAgent, TestApp};
use crate::store::redis_server::RedisServer;
use crate::token::raw::{append_first_party, block};

/// Every audit event the store holds, oldest first.
async fn all_events(state: &AppState) -> Vec<(Cursor, AuditEvent)> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = state
            .stores
            .audit
            .query(&AuditQuery {
                after: after.clone(),
                limit: 1000,
                ..AuditQuery::default()
            })
            .await
            .unwrap();
        let Some((last, _)) = page.last() else {
            return out;
        };
        after = Some(last.clone());
        out.extend(page);
    }
}

/// The form of the `n`th unauthenticated refusal: four shapes a stranger
/// can send without any key the issuer knows.
fn stranger_form(n: usize, padding: &str) -> Vec<(String, String)> {
    let kv = |k: &str, v: String| (k.to_owned(), v);
    match n % 4 {
        // A long, attacker-chosen grant type.
        0 => vec![kv("grant_type", format!("{padding}{n}"))],
        // No client authentication at all.
        1 => vec![kv("grant_type", "client_credentials".into())],
        // An assertion that is not a JWS, with an attacker-chosen type.
        2 => vec![
            kv("grant_type", "client_credentials".into()),
            kv("client_assertion_type", JWT_BEARER.into()),
            kv("client_assertion", format!("{padding}.{n}.x")),
        ],
        // A well-formed assertion from an agent nobody registered.
        _ => {
            let agent = TestAgent::new("stranger");
            let t = now().timestamp();
            let claims = json!({
                "iss": agent.id, "sub": agent.id, "aud": "http://issuer.invalid",
                "exp": t + 60, "iat": t, "jti": random_hex(8),
            });
            let assertion = tessera::jose::sign(&agent.key, None, false, &claims).unwrap();
            vec![
                kv("grant_type", "client_credentials".into()),
                kv("client_assertion_type", JWT_BEARER.into()),
                kv("client_assertion", assertion),
            ]
        }
    }
}

/// Sends refusals `from..to` to `base`, 16 at a time; asserts each was refused.
async fn flood(http: &reqwest::Client, base: &str, from: usize, to: usize, padding: &str) {
    let url = format!("{base}/oauth/token");
    let mut tasks = JoinSet::new();
    let per_task = (to - from).div_ceil(16);
    for start in (from..to).step_by(per_task.max(1)) {
        let (http, url, padding) = (http.clone(), url.clone(), padding.to_owned());
        let end = (start + per_task).min(to);
        tasks.spawn(async move {
            for n in start..end {
                let r = http
                    .post(&url)
                    .form(&stranger_form(n, &padding))
                    .send()
                    .await
                    .unwrap();
                let status = r.status();
                assert!(
                    matches!(status.as_u16(), 400 | 401),
                    "refusal {n}: {status}"
                );
                let body = r.bytes().await.unwrap();
                assert!(
                    body.len() < 1024,
                    "refusal {n}: a {} byte answer",
                    body.len()
                );
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
}

/// The count at the start of a summary's reason (`"<count> unauthenticated
/// refusals not recorded one by one ..."`).
fn summarized(event: &AuditEvent) -> Option<u64> {
    if event.kind != AuditKind::Refusal || event.outcome != "summary" {
        return None;
    }
    event.reason.as_deref()?.split(' ').next()?.parse().ok()
}

fn is_unauthenticated_refusal(event: &AuditEvent) -> bool {
    event.kind == AuditKind::Refusal && event.agent.is_none() && event.outcome == "refused"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_unauthenticated_refusals_grow_the_embedded_audit_store_by_a_bounded_amount() {
    const TOTAL: usize = 10_000;
    const SAMPLE: u32 = 20;
    const INTERVAL: Duration = Duration::from_secs(2);
    let app = TestApp::spawn_with(None, |c| {
        c.audit_unauthenticated_sample = SAMPLE;
        c.audit_unauthenticated_interval = tessera::server::config::Ttl(INTERVAL);
    })
    .await;
    // One real, authenticated event before the flood.
    let agent = app.agent("before-the-flood").await;
    let minted = app.mint_ok(&agent, "docs/team-a/1").await;
    let file = app.state.config.data_dir.join("tessera.redb");
    let size_before = std::fs::metadata(&file).unwrap().len();
    let events_before = all_events(&app.state).await.len();

    let padding = "g".repeat(4096);
    let started = Instant::now();
    // In batches, so that an unbounded log fails fast instead of filling the disk.
    for batch in 0..10 {
        flood(
            &app.http,
            &app.base,
            batch * 1000,
            (batch + 1) * 1000,
            &padding,
        )
        .await;
        let windows = started.elapsed().as_secs() / INTERVAL.as_secs() + 2;
        let bound = windows * (u64::from(SAMPLE) + 1);
        let grown = (all_events(&app.state).await.len() - events_before) as u64;
        assert!(
            grown <= bound,
            "after {} refusals the audit log grew by {grown} events (bound {bound})",
            (batch + 1) * 1000
        );
    }
    let size_after = std::fs::metadata(&file).unwrap().len();
    assert!(
        size_after <= size_before + 2 * 1024 * 1024,
        "tessera.redb grew from {size_before} to {size_after} bytes"
    );

    // Every refusal is accounted for: stored one by one, or counted in a
    // summary written once its interval is over.
    let accounted = super::helpers::eventually(
        INTERVAL * 3,
        "the last summary of skipped refusals",
        || async {
            let events = all_events(&app.state).await;
            let stored = events
                .iter()
                .filter(|(_, e)| is_unauthenticated_refusal(e))
                .count() as u64;
            let skipped: u64 = events.iter().filter_map(|(_, e)| summarized(e)).sum();
            (stored + skipped == TOTAL as u64).then_some((stored, skipped))
        },
    )
    .await;
    assert!(accounted.1 > 0, "{accounted:?}");
    // The stored refusals hold typed codes, never the attacker's text.
    let events = all_events(&app.state).await;
    for (_, e) in events.iter().filter(|(_, e)| e.kind == AuditKind::Refusal) {
        let text = serde_json::to_string(e).unwrap();
        assert!(
            !text.contains("gggggggggggggggggggggggggggggggggggggggg"),
            "{text}"
        );
        assert!(text.len() < 600, "{text}");
    }
    // And the real event is still there.
    let token_id = minted["token_id"].as_str().unwrap();
    assert!(
        events
            .iter()
            .any(|(_, e)| e.kind == AuditKind::Mint && e.token_id.as_deref() == Some(token_id)),
        "the mint event is gone"
    );
}

#[tokio::test]
async fn a_60_kb_grant_type_is_echoed_nowhere_beyond_a_short_prefix() {
    let app = TestApp::spawn().await;
    // Distinct characters, so that any 65-character run of it is telling.
    let long: String = (0..60 * 1024)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    for grant_type in [
        long.clone(),
        format!("x\u{1b}[31mred\r\nforged: line\u{0}{long}"),
    ] {
        let form = [("grant_type", grant_type.clone())];
        let r = app.request_token(&form, None).await;
        r.assert_oauth_error(400, "unsupported_grant_type");
        assert!(r.text.len() < 512, "a {} byte answer", r.text.len());
        assert!(!r.text.contains(&long[..65]), "{}", r.text);
        for c in ['\u{1b}', '\r', '\n', '\u{0}'] {
            assert!(!r.description().contains(c), "{:?}", r.description());
        }
    }
    for (_, e) in all_events(&app.state).await {
        let text = serde_json::to_string(&e).unwrap();
        assert!(!text.contains(&long[..65]), "{text}");
        assert!(!text.contains("forged"), "{text}");
    }
}

/// The issuer on stores of the test's choosing (here: a Redis store with a
/// small audit stream).
struct Issuer {
    base: String,
    http: reqwest::Client,
    state: AppState,
    server: tokio::task::JoinHandle<()>,
    _keys: tempfile::TempDir,
}

impl Drop for Issuer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Issuer {
    async fn spawn(stores: Stores, tweak: impl FnOnce(&mut Config)) -> Self {
        let keys = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let mut config = Config {
            listen: listener.local_addr().unwrap(),
            issuer_url: Some(base.clone()),
            data_dir: keys.path().to_owned(),
            ..Config::default()
        };
        tweak(&mut config);
        let (ring, _) = KeyRing::load_or_create(&config.keys_dir()).unwrap();
        let state = AppState::new(config, stores, ring, Arc::new(SystemClock));
        let app = server::app(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            base,
            http: reqwest::Client::new(),
            state,
            server,
            _keys: keys,
        }
    }

    fn admin_token(&self) -> String {
        let cap = admin::admin_capability(Lifetime::parse("1h").unwrap()).unwrap();
        token::mint(&cap, self.state.ring().active(), now())
            .unwrap()
            .token
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unauthenticated_refusals_do_not_push_real_events_out_of_the_capped_redis_stream() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let stores = Stores::redis_with(RedisConfig {
        audit_max_len: 1000,
        ..RedisConfig::new(redis.url())
    })
    .await
    .unwrap();
    let issuer = Issuer::spawn(stores, |_| {}).await;
    // A real event: an operator registers an agent.
    let agent = TestAgent::new("kept");
    let r = issuer
        .http
        .post(format!("{}/v1/agents", issuer.base))
        .bearer_auth(issuer.admin_token())
        .json(&json!({
            "id": agent.id, "public_key": agent.public_key(),
            "ceiling": { "actions": ["docs:read"], "resources": ["docs/*"] },
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);

    flood(&issuer.http, &issuer.base, 0, 5000, &"r".repeat(1024)).await;

    let events = all_events(&issuer.state).await;
    assert!(
        events
            .iter()
            .any(|(_, e)| e.kind == AuditKind::Admin
                && e.agent.as_deref() == Some(agent.id.as_str())),
        "the operator's event was pushed out of the stream ({} events kept)",
        events.len()
    );
    assert!(events.len() < 500, "{} events in the stream", events.len());
}

/// A check whose evaluation takes seconds: closures nested five deep over
/// forty integers (about 10^8 evaluations).
fn costly_check() -> biscuit_auth::BlockBuilder {
    let list = format!(
        "[{}]",
        (0..40)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let source = format!(
        "check if {list}.all($a -> {list}.all($b -> {list}.all($c -> {list}.all($d -> \
         {list}.all($e -> $a + $b + $c + $d + $e >= 0)))));"
    );
    block(&source, &[])
}

/// A check that fails with an execution error (integer overflow) if it ever runs.
fn overflowing_check() -> biscuit_auth::BlockBuilder {
    block("check if 9223372036854775807 + 1 > 0;", &[])
}

/// `GET path` with `token`, timed.
async fn timed_get(app: &TestApp, path: &str, token: &str) -> (Reply, Duration) {
    let start = Instant::now();
    let r = app.get(path, Some(token)).await;
    (r, start.elapsed())
}

/// The refusal of a token with an appended block that was never evaluated:
/// 401, promptly, for `why` (or refused by the shape gate before it).
#[track_caller]
fn assert_refused_unrun(r: &Reply, took: Duration, why: &str) {
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert!(r.headers.contains_key("www-authenticate"));
    let d = r.description();
    assert!(
        d.contains(why) || d.contains("limits_exceeded"),
        "refused for another reason than {why}: {d}"
    );
    // Generous: evaluating the costly check takes seconds.
    assert!(
        took < Duration::from_secs(3),
        "the refusal took {took:?}: the appended Datalog ran"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_admin_or_feed_token_with_appended_datalog_is_refused_without_running_it() {
    let app = TestApp::spawn().await;
    let past = now() - chrono::Duration::minutes(10);
    let ring = app.state.ring();
    let admin_cap = admin::admin_capability(Lifetime::parse("1m").unwrap()).unwrap();
    let feed_cap = admin::feed_capability(Lifetime::parse("1m").unwrap()).unwrap();
    let expired_admin = token::mint(&admin_cap, ring.active(), past).unwrap().token;
    let expired_feed = token::mint(&feed_cap, ring.active(), past).unwrap().token;
    for (token, path) in [
        (&expired_admin, "/v1/agents"),
        (&expired_feed, "/v1/revocations"),
    ] {
        let costly = append_first_party(token, costly_check());
        let (r, took) = timed_get(&app, path, &costly).await;
        assert_refused_unrun(&r, took, "expired");
        // A check that could only fail by running is never reached either.
        let overflowing = append_first_party(token, overflowing_check());
        let (r, took) = timed_get(&app, path, &overflowing).await;
        assert_refused_unrun(&r, took, "expired");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_admin_or_feed_token_with_appended_datalog_is_refused_without_running_it() {
    let app = TestApp::spawn().await;
    let ring = app.state.ring();
    let admin_cap = admin::admin_capability(Lifetime::parse("1h").unwrap()).unwrap();
    let feed_cap = admin::feed_capability(Lifetime::parse("1h").unwrap()).unwrap();
    for (cap, path) in [(admin_cap, "/v1/agents"), (feed_cap, "/v1/revocations")] {
        let minted = token::mint(&cap, ring.active(), now()).unwrap();
        let r = app
            .revoke_admin(&json!({ "revocation_id": minted.revocation_id }))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let costly = append_first_party(&minted.token, costly_check());
        let (r, took) = timed_get(&app, path, &costly).await;
        assert_refused_unrun(&r, took, "revoked");
        let overflowing = append_first_party(&minted.token, overflowing_check());
        let (r, took) = timed_get(&app, path, &overflowing).await;
        assert_refused_unrun(&r, took, "revoked");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_token_with_a_harmless_appended_check_still_works() {
    let app = TestApp::spawn().await;
    let narrowed = append_first_party(
        &app.admin_token(),
        block("check if resource(\"/v1/agents\");", &[]),
    );
    let r = app.get("/v1/agents", Some(&narrowed)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app.get("/v1/audit", Some(&narrowed)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_redis_returns_the_first_token_request_of_an_issuer_idle_during_the_outage_succeeds()
{
    let Some(mut app) = TestApp::spawn_redis().await else {
        return;
    };
    let agent = app.agent("idle-through-outage").await;
    app.mint_ok(&agent, "docs/team-a/before").await;

    // Redis dies and comes back while the issuer serves nothing at all.
    app.redis.as_mut().unwrap().stop();
    tokio::time::sleep(Duration::from_millis(500)).await;
    app.redis.as_mut().unwrap().restart();

    // The very first request after it is back is answered.
    let r = app.mint(&agent, "docs/team-a/after").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // And so is the first admin request after another idle outage.
    app.redis.as_mut().unwrap().stop();
    tokio::time::sleep(Duration::from_millis(500)).await;
    app.redis.as_mut().unwrap().restart();
    let r = app
        .revoke_admin(&json!({ "revocation_id": random_hex(64) }))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}

#[cfg(unix)]
#[tokio::test]
async fn the_issuer_creates_its_data_dir_0700_with_its_keys_0700_and_the_database_0600() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        data_dir: dir.path().join("tessera-data"),
        ..Config::default()
    };
    // In the order `tessera serve` takes: the key ring, then the store.
    KeyRing::load_or_create(&config.keys_dir()).unwrap();
    let stores = Stores::embedded(&config.data_dir).unwrap();
    stores.ping().await.unwrap();
    assert_eq!(mode(&config.data_dir), 0o700);
    assert_eq!(mode(&config.keys_dir()), 0o700);
    assert_eq!(mode(&config.data_dir.join("tessera.redb")), 0o600);
    assert_eq!(mode(&config.keys_dir().join("root-0.pem")), 0o600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_configured_audit_bound_reaches_the_embedded_store() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        data_dir: dir.path().to_owned(),
        audit_max_events: 1000,
        ..Config::default()
    };
    let stores = config.open_stores().await.unwrap();
    let mut appends = JoinSet::new();
    for n in 0..1200 {
        let audit = stores.audit.clone();
        appends.spawn(async move {
            let event = AuditEvent {
                at: now(),
                kind: AuditKind::Admin,
                agent: None,
                token_id: Some(format!("t{n}")),
                capability: None,
                outcome: "agent registered".into(),
                reason: None,
                remote_addr: None,
                chain: Vec::new(),
                person: None,
                amount: None,
                approval_id: None,
                revocation_ids: Vec::new(),
                service: None,
            };
            audit.append(&event).await.unwrap()
        });
    }
    let mut last = None;
    while let Some(cursor) = appends.join_next().await {
        let cursor = cursor.unwrap();
        last = last.max(Some(cursor));
    }
    let kept = stores
        .audit
        .query(&AuditQuery {
            limit: 2000,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(kept.len(), 1000);
    assert_eq!(kept.last().map(|(c, _)| c.clone()), last);
}
