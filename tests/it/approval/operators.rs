//! Operators and requests for approval over the admin API
//! (`/v1/approvals`): refused unless `[approval] operators_may_decide`;
//! where allowed, an operator's approval lets the agent collect its token,
//! a denial gives `access_denied`, and a request is decided once.

use chrono::TimeDelta;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tessera::store::{Approval, ApprovalStatus, AskedCapability};
use tessera::token::{Action, AgentId, ResourcePattern};

use super::flow::{alice, bc_authorize, good, issuer_with, poll};
use crate::server::helpers::{Reply, TestAgent, TestApp};

/// A pending request of `agent` for alice; its id.
async fn ask(app: &TestApp, agent: &TestAgent) -> String {
    let r = bc_authorize(app, agent, &good(json!({"currency": "EUR", "value": 4000}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json["auth_req_id"].as_str().unwrap().to_owned()
}

async fn decide(app: &TestApp, id: &str, verb: &str, operator: Option<&str>) -> Reply {
    let mut req = app
        .http
        .post(app.url(&format!("/v1/approvals/{id}/{verb}")))
        .bearer_auth(app.admin_token());
    if let Some(name) = operator {
        req = req.header("tessera-operator", name);
    }
    Reply::from(req.send().await.unwrap()).await
}

async fn status_of(app: &TestApp, id: &str) -> ApprovalStatus {
    app.state
        .stores
        .approvals
        .get(id)
        .await
        .unwrap()
        .unwrap()
        .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_may_not_decide_unless_the_policy_says_so() {
    let (app, agent) = issuer_with(|_| {}).await;
    let id = ask(&app, &agent).await;
    for verb in ["approve", "deny"] {
        let r = decide(&app, &id, verb, Some("ops")).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
        assert_eq!(r.error(), "access_denied", "{}", r.text);
        assert!(
            r.description().contains("operators_may_decide"),
            "{}",
            r.text
        );
    }
    // Nothing was decided: still pending, and the agent still waits.
    assert_eq!(status_of(&app, &id).await, ApprovalStatus::Pending);
    poll(&app, &agent, &id)
        .await
        .assert_oauth_error(400, "authorization_pending");
    // Reading is allowed all the same.
    let r = app.admin_get(&format!("/v1/approvals/{id}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["status"], "pending");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operators_approval_lets_the_agent_collect_its_token_once_decided_once() {
    let (app, agent) = issuer_with(|c| c.approval.operators_may_decide = true).await;
    let id = ask(&app, &agent).await;
    let r = decide(&app, &id, "approve", Some("ops-alice")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["status"], "approved");
    assert_eq!(r.json["decided_by"], "operator:ops-alice");
    assert_eq!(r.json["capability"]["amount"], "40.00EUR");
    // Decided once: a second decision either way is a conflict.
    for verb in ["approve", "deny"] {
        let again = decide(&app, &id, verb, None).await;
        assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text);
        assert_eq!(again.error(), "already_decided", "{}", again.text);
    }
    // The agent's (first) poll collects the token.
    let token = poll(&app, &agent, &id).await;
    assert_eq!(token.status, StatusCode::OK, "{}", token.text);
    let authority = format!("{:?}", app.inspect(token.token()));
    assert!(authority.contains(&id), "{authority}");
    // Audited with the operator's name.
    let audit = app
        .admin_get(&format!("/v1/audit?agent={}", urlencode(&agent.id)))
        .await;
    assert!(
        audit.text.contains("decided by the operator ops-alice"),
        "{}",
        audit.text
    );
    assert_eq!(status_of(&app, &id).await, ApprovalStatus::Collected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operators_denial_gives_the_agent_access_denied() {
    let (app, agent) = issuer_with(|c| c.approval.operators_may_decide = true).await;
    let id = ask(&app, &agent).await;
    let r = decide(&app, &id, "deny", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["status"], "denied");
    assert_eq!(r.json["decided_by"], "operator:admin");
    poll(&app, &agent, &id)
        .await
        .assert_oauth_error(400, "access_denied");
    let again = decide(&app, &id, "approve", None).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_expired_and_unauthenticated_decisions_change_nothing() {
    let (app, agent) = issuer_with(|c| c.approval.operators_may_decide = true).await;
    // Unknown ids: 404, also for ids that could never be one.
    for id in ["0".repeat(64), "x%2Fy".to_owned(), "a".repeat(200)] {
        let r = decide(&app, &id, "approve", None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{id}: {}", r.text);
        assert_eq!(r.error(), "not_found");
        let r = app.admin_get(&format!("/v1/approvals/{id}")).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{id}: {}", r.text);
    }
    // A bad operator name: 400, nothing decided.
    let id = ask(&app, &agent).await;
    let r = decide(&app, &id, "approve", Some("not a name")).await;
    r.assert_oauth_error(400, "invalid_request");
    // No admin token, or an agent's token: 401, nothing decided.
    let r = Reply::from(
        app.http
            .post(app.url(&format!("/v1/approvals/{id}/approve")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert!(r.headers.contains_key("www-authenticate"));
    let r = app.get("/v1/approvals", None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    let r = app.get("/v1/approvals", Some("not-a-token")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert_eq!(status_of(&app, &id).await, ApprovalStatus::Pending);

    // Expired before the decision: 410, still pending.
    let now = app.state.now();
    let old = Approval {
        id: format!("{:064x}", rand::random::<u128>()),
        agent: AgentId::parse(&agent.id).unwrap(),
        prior_actors: vec![],
        person: alice(),
        capability: AskedCapability {
            action: Action::parse("payments:create").unwrap(),
            resource: ResourcePattern::parse("invoice:7").unwrap(),
            audience: None,
            amount: None,
            ttl_secs: 60,
        },
        binding_message: None,
        notification_token: None,
        created_at: now - TimeDelta::seconds(600),
        expires_at: now - TimeDelta::seconds(1),
        interval_secs: 5,
        status: ApprovalStatus::Pending,
        decided_by: None,
        decided_at: None,
        last_poll: None,
    };
    app.state.stores.approvals.create(&old, now).await.unwrap();
    let r = decide(&app, &old.id, "approve", None).await;
    assert_eq!(r.status, StatusCode::GONE, "{}", r.text);
    assert_eq!(r.error(), "expired_token");
    assert_eq!(status_of(&app, &old.id).await, ApprovalStatus::Pending);
    let r = app.admin_get("/v1/approvals?status=expired").await;
    assert_eq!(ids(&r), vec![old.id.clone()], "{}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_list_requests_by_person_and_status_without_notification_tokens() {
    let (app, agent) = issuer_with(|c| {
        c.approval.operators_may_decide = true;
        c.approval.loopback_http_notifications = true;
    })
    .await;
    let first = ask(&app, &agent).await;
    // Ping mode: the request holds the agent's notification token.
    let r = app
        .http
        .patch(app.url(&format!("/v1/agents/{}", urlencode(&agent.id))))
        .bearer_auth(app.admin_token())
        .json(&json!({ "notification_endpoint": "http://127.0.0.1:9/cb" }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let mut form = good(json!({"currency": "EUR", "value": 100}));
    form.push((
        "client_notification_token",
        "secret-notification-token-123".into(),
    ));
    let r = bc_authorize(&app, &agent, &form).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let second = r.json["auth_req_id"].as_str().unwrap().to_owned();
    let stored = app
        .state
        .stores
        .approvals
        .get(&second)
        .await
        .unwrap()
        .unwrap();
    assert!(stored.notification_token.is_some());
    let r = decide(&app, &first, "deny", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    let all = app.admin_get("/v1/approvals").await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.text);
    assert!(
        !all.text.contains("secret-notification-token"),
        "{}",
        all.text
    );
    assert!(!all.text.contains("notification_token"), "{}", all.text);
    let one = app.admin_get(&format!("/v1/approvals/{second}")).await;
    assert_eq!(one.status, StatusCode::OK, "{}", one.text);
    assert!(
        !one.text.contains("secret-notification-token"),
        "{}",
        one.text
    );
    assert_eq!(ids(&all), vec![second.clone(), first.clone()]);
    assert_eq!(all.json["approvals"][0]["person"]["subject"], "alice");

    let denied = app.admin_get("/v1/approvals?status=denied").await;
    assert_eq!(ids(&denied), vec![first.clone()]);
    let pending = app.admin_get("/v1/approvals?status=pending").await;
    assert_eq!(ids(&pending), vec![second.clone()]);
    let alices = app
        .admin_get(
            "/v1/approvals?person_issuer=https%3A%2F%2Flogin.acme.example&person_subject=alice&limit=1",
        )
        .await;
    assert_eq!(ids(&alices).len(), 1, "{}", alices.text);
    let bobs = app
        .admin_get(
            "/v1/approvals?person_issuer=https%3A%2F%2Flogin.acme.example&person_subject=bob",
        )
        .await;
    assert_eq!(ids(&bobs), Vec::<String>::new());
    // Bad queries: 400 invalid_request.
    for q in [
        "limit=0",
        "limit=501",
        "status=maybe",
        "person_subject=alice",
        "person_issuer=nope&person_subject=alice",
        "colour=red",
    ] {
        let r = app.admin_get(&format!("/v1/approvals?{q}")).await;
        r.assert_oauth_error(400, "invalid_request");
    }
}

fn ids(r: &Reply) -> Vec<String> {
    r.json["approvals"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", r.text))
        .iter()
        .map(|a: &Value| a["id"].as_str().unwrap().to_owned())
        .collect()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

const BIN: &str = env!("CARGO_BIN_EXE_tessera");

async fn tessera(args: &[&str], admin_token: &str) -> std::process::Output {
    tokio::process::Command::new(BIN)
        .args(args)
        .env_remove("TESSERA_ISSUER")
        .env_remove("TESSERA_OPERATOR")
        .env("TESSERA_ADMIN_TOKEN", admin_token)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap()
}

#[track_caller]
fn one_line_failure(out: &std::process::Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains(needle), "wanted {needle:?} in {err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_approvals_cli_lists_shows_and_approves_with_one_line_errors() {
    let (app, agent) = issuer_with(|c| c.approval.operators_may_decide = true).await;
    let admin = app.admin_token();
    let id = ask(&app, &agent).await;
    let base = app.base.as_str();

    let out = tessera(&["approvals", "list", "--issuer", base], &admin).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert!(
        lines[0].starts_with(&format!("{id}  pending  {}", agent.id)),
        "{text}"
    );
    assert!(
        lines[0].contains("payments:create invoice:42 40.00EUR"),
        "{text}"
    );
    assert!(
        lines[0].contains("for alice at https://login.acme.example"),
        "{text}"
    );

    let out = tessera(&["approvals", "show", &id, "--issuer", base], &admin).await;
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["id"], id.as_str());
    assert_eq!(shown["binding_message"], "Pay invoice 42");

    let out = tessera(
        &[
            "approvals",
            "approve",
            &id,
            "--issuer",
            base,
            "--operator",
            "carol",
        ],
        &admin,
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("approved"), "{text}");
    assert!(text.contains("by operator:carol"), "{text}");
    let token = poll(&app, &agent, &id).await;
    assert_eq!(token.status, StatusCode::OK, "{}", token.text);

    let out = tessera(
        &["approvals", "list", "--issuer", base, "--status", "pending"],
        &admin,
    )
    .await;
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "no approval requests\n"
    );
    // Errors: one line each.
    one_line_failure(
        &tessera(&["approvals", "deny", &id, "--issuer", base], &admin).await,
        "409 already_decided",
    );
    one_line_failure(
        &tessera(
            &["approvals", "show", &"0".repeat(64), "--issuer", base],
            &admin,
        )
        .await,
        "404 not_found",
    );
    one_line_failure(
        &tessera(&["approvals", "list", "--issuer", base], "not-a-token").await,
        "401 invalid_token",
    );
    let out = tessera(
        &[
            "approvals",
            "list",
            "--issuer",
            base,
            "--idp",
            "nope",
            "--subject",
            "a",
        ],
        &admin,
    )
    .await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}
