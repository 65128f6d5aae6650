//! The issuer's budget API over real HTTP: `GET /v1/budgets/{key}` (admin)
//! and the spend API for verifiers without Redis (`POST
//! /v1/budgets/reserve|commit|release`, authenticated by the token being
//! spent); `tessera budget show` through the real binary.

use std::process::{Output, Stdio};

use reqwest::StatusCode;
use serde_json::{json, Value};
use tessera::token::{
    self, Action, AgentId, Budget, Capability, Lifetime, ResourcePattern, RootKeyPair,
};

use super::helpers::{now, Reply, TestApp};

const BIN: &str = env!("CARGO_BIN_EXE_tessera");

/// A token with budget `budget` (as `trip:100.00EUR`) signed by `root`.
pub(crate) fn budget_token(root: &RootKeyPair, budget: Option<&str>) -> token::Minted {
    let cap = Capability {
        agent: AgentId::parse("agent://acme/shopper").unwrap(),
        action: Action::parse("payments:create").unwrap(),
        resource: ResourcePattern::parse("order:*").unwrap(),
        audience: None,
        lifetime: Lifetime::parse("10m").unwrap(),
        holder_key: None,
        on_behalf: None,
    };
    let b = budget.map(|b| Budget::parse(b).unwrap());
    token::mint_with_budgets(&cap, b.as_ref(), root, now(), &mut rand::rngs::OsRng).unwrap()
}

pub(crate) async fn post(app: &TestApp, path: &str, body: &Value) -> Reply {
    Reply::from(
        app.http
            .post(app.url(path))
            .json(body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

pub(crate) async fn reserve(app: &TestApp, token: &str, amount: &str, key: &str) -> Reply {
    post(
        app,
        "/v1/budgets/reserve",
        &json!({ "token": token, "amount": amount, "idempotency_key": key }),
    )
    .await
}

pub(crate) async fn settle(app: &TestApp, verb: &str, token: &str, reservation: &str) -> Reply {
    post(
        app,
        &format!("/v1/budgets/{verb}"),
        &json!({ "token": token, "reservation": reservation }),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spends_over_http_are_charged_once_and_never_past_the_limit() {
    charged_once_never_past_the_limit(TestApp::spawn().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spends_over_http_are_charged_once_and_never_past_the_limit_on_redis() {
    let Some(app) = TestApp::spawn_redis().await else {
        return;
    };
    charged_once_never_past_the_limit(app).await;
}

async fn charged_once_never_past_the_limit(app: TestApp) {
    let t = budget_token(app.state.ring().active(), Some("trip:100.00EUR")).token;

    let r = reserve(&app, &t, "60.00EUR", "spend-1").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["outcome"], "reserved");
    let id = r.json["id"].as_str().unwrap().to_owned();
    let key = r.json["keys"][0].as_str().unwrap().to_owned();
    assert!(key.starts_with("b1-"), "{key}");
    // A retry with the same key gets the same reservation, held once.
    let again = reserve(&app, &t, "60.00EUR", "spend-1").await;
    assert_eq!(again.json["id"], id.as_str(), "{}", again.text);
    // The same key for another amount is a conflict.
    let other = reserve(&app, &t, "1.00EUR", "spend-1").await;
    assert_eq!(other.status, StatusCode::CONFLICT, "{}", other.text);
    assert_eq!(other.error(), "idempotency_conflict");

    let r = settle(&app, "commit", &t, &id).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["settled"], "committed");
    // Committing again is the same answer; releasing a committed spend is refused.
    let r = settle(&app, "commit", &t, &id).await;
    assert_eq!(r.json["settled"], "committed", "{}", r.text);
    let r = settle(&app, "release", &t, &id).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.error(), "already_settled");

    // 40.01 EUR is one minor unit too many: refused, nothing held.
    let r = reserve(&app, &t, "40.01EUR", "spend-2").await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.error(), "budget_exceeded");
    assert!(r.description().contains("trip"), "{}", r.text);
    // Another currency: refused.
    let r = reserve(&app, &t, "1.00USD", "spend-3").await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.error(), "currency_mismatch");
    // Exactly what is left: reserved, then released.
    let r = reserve(&app, &t, "40.00EUR", "spend-4").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let held = r.json["id"].as_str().unwrap().to_owned();

    let shown = app.admin_get(&format!("/v1/budgets/{key}")).await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.text);
    assert_eq!(
        (
            &shown.json["currency"],
            &shown.json["limit"],
            &shown.json["committed"],
            &shown.json["reserved"]
        ),
        (&json!("EUR"), &json!(10000), &json!(6000), &json!(4000))
    );
    let r = settle(&app, "release", &t, &held).await;
    assert_eq!(r.json["settled"], "released", "{}", r.text);
    let shown = app.admin_get(&format!("/v1/budgets/{key}")).await;
    assert_eq!(shown.json["reserved"], 0, "{}", shown.text);
    assert_eq!(shown.json["committed"], 6000, "{}", shown.text);

    // Unknown reservation and unknown budget: 404.
    let r = settle(&app, "commit", &t, "r-00000000000000000000000000000000").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let r = app.admin_get("/v1/budgets/b1-0000").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    // Showing a budget takes the admin token.
    let r = app.get(&format!("/v1/budgets/{key}"), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    let r = app.get(&format!("/v1/budgets/{key}"), Some(&t)).await;
    assert!(
        matches!(r.status.as_u16(), 401 | 403),
        "an agent's token is no admin token: {}",
        r.text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_valid_token_with_a_budget_spends_and_callers_never_name_limits() {
    let app = TestApp::spawn().await;
    let minted = budget_token(app.state.ring().active(), Some("trip:10.00EUR"));
    let t = minted.token.clone();
    // Another root's token: 401, whatever budget it declares.
    let forged = budget_token(
        &RootKeyPair::new(0, biscuit_auth::KeyPair::new()),
        Some("trip:999999.00EUR"),
    )
    .token;
    let r = reserve(&app, &forged, "1.00EUR", "f-1").await;
    refused(&r, 401, "invalid_token");
    // Garbage: 401.
    let r = reserve(&app, "not-a-token", "1.00EUR", "f-2").await;
    refused(&r, 401, "invalid_token");
    // No budget: 400.
    let plain = budget_token(app.state.ring().active(), None).token;
    reserve(&app, &plain, "1.00EUR", "f-3")
        .await
        .assert_oauth_error(400, "invalid_request");
    // A caller naming budgets or limits: refused (unknown field).
    let r = post(
        &app,
        "/v1/budgets/reserve",
        &json!({ "token": t, "amount": "1.00EUR", "idempotency_key": "f-4",
                 "charges": [{"key": "b1-x", "limit": 999999999}] }),
    )
    .await;
    r.assert_oauth_error(400, "invalid_request");
    // Bad amounts, keys and lifetimes: 400.
    for (amount, key, ttl) in [
        ("1.001EUR", "f-5", 1000),
        ("-1.00EUR", "f-6", 1000),
        ("0.00EUR", "f-7", 1000),
        ("99999999999999999999EUR", "f-8", 1000),
        ("1.00EUR", "bad key", 1000),
        ("1.00EUR", "f-9", 0),
        ("1.00EUR", "f-10", 3_600_001),
    ] {
        let r = post(
            &app,
            "/v1/budgets/reserve",
            &json!({ "token": t, "amount": amount, "idempotency_key": key, "ttl_ms": ttl }),
        )
        .await;
        r.assert_oauth_error(400, "invalid_request");
    }
    // Nothing was held by any of these.
    let key = &token::Verified::from_bytes(
        &token::decode(&t, &token::Limits::default()).unwrap(),
        &app.keys(),
        &token::Limits::default(),
    )
    .unwrap()
    .budgets()[0]
        .key
        .clone();
    let r = app.admin_get(&format!("/v1/budgets/{key}")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);

    // A revoked token spends no more.
    let r = reserve(&app, &t, "1.00EUR", "ok-1").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let id = r.json["id"].as_str().unwrap().to_owned();
    let r = app
        .revoke_admin(&json!({ "revocation_id": minted.revocation_id }))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = reserve(&app, &t, "1.00EUR", "ok-2").await;
    refused(&r, 401, "invalid_token");
    let r = settle(&app, "commit", &t, &id).await;
    refused(&r, 401, "invalid_token");
}

/// A refusal with this status and `error` code, and a challenge on 401.
#[track_caller]
fn refused(r: &Reply, status: u16, code: &str) {
    assert_eq!(r.status.as_u16(), status, "{}", r.text);
    assert_eq!(r.error(), code, "{}", r.text);
    if status == 401 {
        assert!(r.headers.contains_key("www-authenticate"), "{}", r.text);
    }
}

async fn tessera(args: &[&str], admin_token: Option<&str>) -> Output {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(args)
        .env_remove("TESSERA_ISSUER")
        .env_remove("TESSERA_ADMIN_TOKEN")
        .stdin(Stdio::null());
    if let Some(t) = admin_token {
        cmd.env("TESSERA_ADMIN_TOKEN", t);
    }
    cmd.output().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_show_prints_the_ledger_in_one_line_or_one_line_of_error() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token();
    let t = budget_token(app.state.ring().active(), Some("trip:100.00EUR")).token;
    let r = reserve(&app, &t, "12.50EUR", "cli-1").await;
    let key = r.json["keys"][0].as_str().unwrap().to_owned();
    let id = r.json["id"].as_str().unwrap().to_owned();
    settle(&app, "commit", &t, &id).await;
    reserve(&app, &t, "7.50EUR", "cli-2").await;

    let out = tessera(
        &["budget", "show", &key, "--issuer", &app.base],
        Some(&admin),
    )
    .await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        text.trim(),
        format!("{key}  limit 100.00EUR  committed 12.50EUR  reserved 7.50EUR  left 80.00EUR")
    );
    let out = tessera(
        &["budget", "show", &key, "--issuer", &app.base, "--json"],
        Some(&admin),
    )
    .await;
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["committed"], 1250);

    for (args, admin, needle) in [
        (
            vec!["budget", "show", "b1-0000"],
            Some(admin.as_str()),
            "404 not_found",
        ),
        (
            vec!["budget", "show", &key],
            Some("not-a-token"),
            "401 invalid_token",
        ),
    ] {
        let mut args = args.clone();
        args.extend(["--issuer", &app.base]);
        let out = tessera(&args, admin).await;
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains(needle), "wanted {needle:?} in {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}
