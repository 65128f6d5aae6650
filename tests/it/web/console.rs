//! The operator console (src/web/console): who may open it, what it shows,
//! the admin-token sign-in, bad input; and a real chromium clicking
//! through every page (tests/browser/console.mjs).

use reqwest::header::{COOKIE, LOCATION};
use reqwest::StatusCode;
use serde_json::json;
use tessera::records::{AuditEvent, AuditKind, AuditOutcome};
use tessera::store::{Approval, ApprovalStatus, AskedCapability};
use tessera::token::{Action, AgentId, Person, ResourcePattern};
use tessera::web::page::CSP;
use tessera::web::{ClientAuth, LoginConfig};

use super::browser;
use super::fixture::{get_with, login, plain, set_cookie, WEB_CLIENT};
use crate::people::fixture::{idp_config, reader_role};
use crate::people::idp::TestIdp;
use crate::server::helpers::{TestAgent, TestApp, ACTION, AUDIENCE};

const PAGES: [&str; 6] = [
    "/console",
    "/console/agents",
    "/console/tokens",
    "/console/approvals",
    "/console/revocations",
    "/console/audit",
];

/// An issuer with `[login]` at `idp` whose operators are the group
/// `finance` (alice is in it, bob is not).
async fn app(idp: &TestIdp) -> TestApp {
    let idp_conf = idp_config(idp, 30);
    let issuer = idp.issuer.clone();
    TestApp::spawn_with(None, move |c| {
        let secret_file = c.data_dir.join("login-client-secret");
        std::fs::write(&secret_file, format!("{WEB_CLIENT}-secret\n")).unwrap();
        c.idp = vec![idp_conf];
        c.role = vec![reader_role("finance")];
        c.login = Some(LoginConfig {
            issuer,
            client_id: WEB_CLIENT.into(),
            client_secret_file: secret_file,
            scope: "openid groups".into(),
            client_auth: ClientAuth::ClientSecretPost,
        });
        c.console.operator_role = "finance".into();
    })
    .await
}

/// Registers an agent whose description holds markup; mints a token for
/// it and revokes another. Returns (agent, live token id, revoked token id).
async fn activity(app: &TestApp) -> (TestAgent, String, String) {
    let agent = TestAgent::new("console");
    let r = app
        .admin_post(
            "/v1/agents",
            &json!({
                "id": agent.id, "public_key": agent.public_key(),
                "description": "Planner <b>beta</b>",
                "ceiling": { "actions": [ACTION], "resources": ["docs/team-a/*"],
                             "audiences": [AUDIENCE], "max_ttl": "10m" },
            }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let live = app.inspect(
        app.mint_ok(&agent, "docs/team-a/q3").await["access_token"]
            .as_str()
            .unwrap(),
    );
    let gone = app.inspect(
        app.mint_ok(&agent, "docs/team-a/q4").await["access_token"]
            .as_str()
            .unwrap(),
    );
    let r = app
        .revoke_admin(&json!({ "token_id": gone.token_id }))
        .await;
    assert!(r.status.is_success(), "{}", r.text);
    asked_approval(app, &agent).await;
    (agent, live.token_id, gone.token_id)
}

/// A pending request for alice's approval, asked by `agent` for the
/// planner, with its audit record (as `/oauth/bc-authorize` writes them).
async fn asked_approval(app: &TestApp, agent: &TestAgent) -> String {
    let now = app.state.now();
    let issuer = app
        .state
        .config
        .login
        .as_ref()
        .map_or("https://idp.example".to_owned(), |l| l.issuer.clone());
    let alice = Person::parse(&issuer, "alice").unwrap();
    let id = format!("ar-{}", crate::server::helpers::random_hex(8));
    let approval = Approval {
        id: id.clone(),
        agent: AgentId::parse(&agent.id).unwrap(),
        prior_actors: vec![AgentId::parse("agent://acme/planner").unwrap()],
        person: alice.clone(),
        capability: AskedCapability {
            action: Action::parse("payments:create").unwrap(),
            resource: ResourcePattern::parse("invoice:42").unwrap(),
            audience: None,
            amount: None,
            ttl_secs: 300,
        },
        binding_message: Some("pay invoice <42>".into()),
        notification_token: None,
        created_at: now,
        expires_at: now + chrono::TimeDelta::seconds(600),
        interval_secs: 5,
        status: ApprovalStatus::Pending,
        decided_by: None,
        decided_at: None,
        last_poll: None,
    };
    app.state
        .stores
        .approvals
        .create(&approval, now)
        .await
        .unwrap();
    let event = AuditEvent {
        at: now,
        kind: AuditKind::Approval,
        agent: Some(agent.id.clone()),
        token_id: None,
        capability: Some("payments:create on invoice:<42>".into()),
        outcome: AuditOutcome::ApprovalRequested,
        reason: None,
        remote_addr: None,
        chain: vec!["agent://acme/planner".into(), agent.id.clone()],
        person: Some(alice),
        amount: None,
        approval_id: Some(id.clone()),
        revocation_ids: Vec::new(),
        service: None,
    };
    app.state.stores.audit.append(&event).await.unwrap();
    id
}

async fn page(app: &TestApp, path: &str, cookie: &str) -> (StatusCode, String) {
    let r = get_with(&app.url(path), Some(cookie)).await;
    let status = r.status();
    if status == StatusCode::OK {
        assert_eq!(r.headers()["content-security-policy"], CSP, "{path}");
    }
    (status, r.text().await.unwrap())
}

#[tokio::test]
async fn without_a_login_every_console_page_sends_the_browser_to_the_idp_login() {
    let Some(idp) = TestIdp::start() else { return };
    let app = app(&idp).await;
    for p in PAGES {
        let r = get_with(&app.url(p), None).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{p}");
        let to = r.headers()[LOCATION].to_str().unwrap().to_owned();
        assert!(to.starts_with("/login?return_to=%2Fconsole"), "{p}: {to}");
    }
    let r = get_with(&app.url("/console/audit?agent=x"), None).await;
    assert_eq!(
        r.headers()[LOCATION],
        "/login?return_to=%2Fconsole%2Faudit%3Fagent%3Dx"
    );
}

#[tokio::test]
async fn a_person_without_the_operator_role_gets_403_on_every_page() {
    let Some(idp) = TestIdp::start() else { return };
    let app = app(&idp).await;
    let bob = format!("tessera-session={}", login(&app, &idp, "bob").await);
    for p in PAGES {
        let (status, body) = page(&app, p, &bob).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{p}");
        assert!(body.contains("not as an operator"), "{p}: {body}");
    }
}

#[tokio::test]
async fn an_operator_sees_the_agents_tokens_revocations_and_audit_records_of_the_test() {
    let Some(idp) = TestIdp::start() else { return };
    let app = app(&idp).await;
    let (agent, live, gone) = activity(&app).await;
    let alice = format!("tessera-session={}", login(&app, &idp, "alice").await);

    let (s, overview) = page(&app, "/console", &alice).await;
    assert_eq!(s, StatusCode::OK, "{overview}");
    assert!(overview.contains("alice at"), "{overview}");
    assert!(
        overview.contains("id=\"checkpoint-status\">verified:"),
        "{overview}"
    );
    assert!(
        overview.contains("from every record&#39;s bytes"),
        "{overview}"
    );

    let (s, agents) = page(&app, "/console/agents", &alice).await;
    assert_eq!(s, StatusCode::OK);
    assert!(agents.contains(&agent.id), "{agents}");
    assert!(
        agents.contains("Planner &lt;b&gt;beta&lt;/b&gt;"),
        "{agents}"
    );
    assert!(
        !agents.contains("<b>beta"),
        "markup from a description is escaped"
    );
    assert!(agents.contains("docs/team-a/*"), "{agents}");

    for p in PAGES {
        let (_, body) = page(&app, p, &alice).await;
        assert_eq!(
            body.matches("method=\"post\"").count(),
            1,
            "{p}: read-only, its one POST form is the sign-out: {body}"
        );
        assert!(body.contains("action=\"/logout\""), "{p}");
        assert!(!body.contains("<script"), "{p}");
    }

    let (s, tokens) = page(&app, "/console/tokens", &alice).await;
    assert_eq!(s, StatusCode::OK);
    let at = |t: &str| {
        tokens
            .find(t)
            .unwrap_or_else(|| panic!("{t} missing: {tokens}"))
    };
    assert!(tokens[at(&live)..].contains("live"), "{tokens}");
    assert!(tokens[at(&gone)..].contains("revoked"), "{tokens}");
    let (_, other) = page(
        &app,
        "/console/tokens?agent=agent%3A%2F%2Facme%2Fnobody",
        &alice,
    )
    .await;
    assert!(!other.contains(&live), "the agent filter applies");

    let (s, revocations) = page(&app, "/console/revocations", &alice).await;
    assert_eq!(s, StatusCode::OK);
    assert!(revocations.contains(&gone), "{revocations}");

    let q = format!(
        "/console/audit?agent={}&kind=mint",
        super::super::server::helpers::segment(&agent.id)
    );
    let (s, audit) = page(&app, &q, &alice).await;
    assert_eq!(s, StatusCode::OK, "{audit}");
    assert!(audit.contains(&live) && audit.contains(&gone), "{audit}");
    assert!(
        audit.contains("docs:read on docs/team-a/q3"),
        "the chain reads agent -> action on resource -> outcome: {audit}"
    );
    assert!(audit.contains("granted"), "{audit}");

    let (s, approvals) = page(&app, "/console/approvals", &alice).await;
    assert_eq!(s, StatusCode::OK);
    assert!(approvals.contains(">pending<"), "{approvals}");
    assert!(approvals.contains("pay invoice &lt;42&gt;"), "{approvals}");

    // The approval's record: person -> agent -> sub-agent -> action -> outcome.
    let q = format!(
        "/console/audit?agent={}&kind=approval",
        super::super::server::helpers::segment(&agent.id)
    );
    let (s, audit) = page(&app, &q, &alice).await;
    assert_eq!(s, StatusCode::OK, "{audit}");
    let chain = audit
        .split("<p class=\"chain\">")
        .nth(1)
        .and_then(|c| c.split("</p>").next())
        .unwrap_or_else(|| panic!("no chain: {audit}"));
    let order = [
        "alice at",
        "agent://acme/planner",
        agent.id.as_str(),
        "payments:create on invoice:&lt;42&gt;",
        "approval requested",
    ];
    let at: Vec<usize> = order
        .iter()
        .map(|t| {
            chain
                .find(t)
                .unwrap_or_else(|| panic!("{t} not in {chain}"))
        })
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{chain}");
    assert!(!audit.contains("invoice:<42>"), "escaped");
}

#[tokio::test]
async fn malformed_cursors_and_time_windows_are_400_pages() {
    let Some(idp) = TestIdp::start() else { return };
    let app = app(&idp).await;
    let alice = format!("tessera-session={}", login(&app, &idp, "alice").await);
    for q in [
        "/console/audit?since=yesterday",
        "/console/audit?until=2026-13-01T00:00:00Z",
        "/console/audit?since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z",
        "/console/audit?after=%3Cscript%3E",
        "/console/audit?after=not-a-cursor",
        "/console/audit?kind=nonsense",
        "/console/tokens?person_subject=alice",
        "/console/revocations?after=not-a-cursor",
        "/console/approvals?since=never",
    ] {
        let (status, body) = page(&app, q, &alice).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{q}: {body}");
        assert!(body.contains("class=\"reason\""), "{q}: {body}");
        assert!(!body.contains("<script>"), "{q}");
    }
}

async fn sign_in(app: &TestApp, token: &str, origin: Option<&str>) -> reqwest::Response {
    let mut req = plain()
        .post(app.url("/console/login"))
        .form(&[("token", token), ("return_to", "/console/agents")]);
    if let Some(o) = origin {
        req = req
            .header("origin", o)
            .header("sec-fetch-site", "cross-site");
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn the_admin_token_signs_in_only_where_no_idp_login_is_configured() {
    let app = TestApp::spawn().await;
    let r = get_with(&app.url("/console"), None).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()[LOCATION], "/console/login?return_to=%2Fconsole");
    let form = get_with(&app.url("/console/login"), None).await;
    assert_eq!(form.status(), StatusCode::OK);
    assert!(form.text().await.unwrap().contains("type=\"password\""));

    let wrong = sign_in(&app, "not-a-token", None).await;
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    assert!(set_cookie(&wrong, "tessera-console").is_none());
    let agent = app.agent("not-admin").await;
    let agents_token = app.mint_ok(&agent, "docs/team-a/x").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = sign_in(&app, &agents_token, None).await;
    assert_eq!(
        r.status(),
        StatusCode::FORBIDDEN,
        "an agent's token is no admin token"
    );
    let cross = sign_in(&app, &app.admin_token(), Some("https://evil.example")).await;
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);
    assert!(set_cookie(&cross, "tessera-console").is_none());

    let ok = sign_in(&app, &app.admin_token(), None).await;
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    assert_eq!(ok.headers()[LOCATION], "/console/agents");
    let cookie = format!(
        "tessera-console={}",
        set_cookie(&ok, "tessera-console").expect("a console cookie")
    );
    for p in PAGES {
        let (status, body) = page(&app, p, &cookie).await;
        assert_eq!(status, StatusCode::OK, "{p}: {body}");
        assert!(body.contains("operator (admin token)"), "{p}");
    }
    assert!(page(&app, "/console/agents", &cookie)
        .await
        .1
        .contains(&agent.id));
    let (status, _) = page(&app, "/console/audit?after=%3Cx%3E", &cookie).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Sign-out needs its token; a forged one is refused.
    let out = plain()
        .post(app.url("/console/logout"))
        .header(COOKIE, &cookie)
        .form(&[("csrf", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::FORBIDDEN);
    let (_, overview) = page(&app, "/console", &cookie).await;
    let csrf = overview
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|v| v.split('"').next())
        .expect("the sign-out form's token");
    let out = plain()
        .post(app.url("/console/logout"))
        .header(COOKIE, &cookie)
        .form(&[("csrf", csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::OK);
    assert!(
        out.headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .any(|v| v.to_str().unwrap().starts_with("tessera-console=;")),
        "the sign-in cookie is removed"
    );

    // Where [login] is configured, the admin token signs nobody in.
    let Some(idp) = TestIdp::start() else { return };
    let with_login = self::app(&idp).await;
    let r = sign_in(&with_login, &with_login.admin_token(), None).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(set_cookie(&r, "tessera-console").is_none());
    let r = get_with(&with_login.url("/console/login"), None).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn revoking_the_admin_token_ends_its_console_sign_in() {
    let app = TestApp::spawn().await;
    let token = app.admin_token();
    let ok = sign_in(&app, &token, None).await;
    let cookie = format!(
        "tessera-console={}",
        set_cookie(&ok, "tessera-console").unwrap()
    );
    assert_eq!(page(&app, "/console", &cookie).await.0, StatusCode::OK);
    let r = app.revoke_admin(&json!({ "token": token })).await;
    assert!(r.status.is_success(), "{}", r.text);
    let r = get_with(&app.url("/console"), Some(&cookie)).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn the_browser_operator_logs_in_and_visits_every_console_page() {
    let Some(idp) = TestIdp::start() else { return };
    let app = app(&idp).await;
    let (agent, live, gone) = activity(&app).await;
    let Some(r) = browser::run(
        "console.mjs",
        &[&app.base, &idp.issuer, "alice", &agent.id, &live, &gone],
    )
    .await
    else {
        return;
    };
    assert_eq!(r["atIdp"], true, "{r}");
    assert_eq!(r["csp"], CSP, "{r}");
    assert_eq!(r["checkpoint"], "verified", "{r}");
    assert_eq!(r["agentShown"], true, "{r}");
    assert_eq!(r["descriptionText"], "Planner <b>beta</b>", "{r}");
    assert_eq!(r["tokenLive"], true, "{r}");
    assert_eq!(r["revokedShown"], true, "{r}");
    assert_eq!(r["auditChain"], true, "{r}");
    assert_eq!(r["approvalsPage"], "Approvals", "{r}");
    assert_eq!(r["approvalPending"], true, "{r}");
    assert_eq!(r["personChain"], true, "{r}");
    assert_eq!(r["scripts"], 0, "{r}");
    assert_eq!(r["signedOut"], "Signed out", "{r}");
}

#[tokio::test]
async fn on_redis_the_console_shows_the_same_records_and_pages_by_its_cursors() {
    let Some(app) = TestApp::spawn_redis().await else {
        return;
    };
    let (agent, live, gone) = activity(&app).await;
    let ok = sign_in(&app, &app.admin_token(), None).await;
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    let cookie = format!(
        "tessera-console={}",
        set_cookie(&ok, "tessera-console").unwrap()
    );
    let (s, overview) = page(&app, "/console", &cookie).await;
    assert_eq!(s, StatusCode::OK, "{overview}");
    assert!(
        overview.contains("id=\"checkpoint-status\">verified:"),
        "{overview}"
    );
    let (_, tokens) = page(&app, "/console/tokens", &cookie).await;
    assert!(tokens.contains(&live) && tokens.contains(&gone), "{tokens}");
    let (_, approvals) = page(&app, "/console/approvals", &cookie).await;
    assert!(approvals.contains(">pending<"), "{approvals}");
    let (_, revocations) = page(&app, "/console/revocations", &cookie).await;
    assert!(revocations.contains(&gone), "{revocations}");
    let (_, audit) = page(&app, "/console/audit", &cookie).await;
    assert!(
        audit.contains(&agent.id) && audit.contains(&live),
        "{audit}"
    );
    // A Redis stream id past everything: a valid cursor, an empty page.
    let (s, empty) = page(&app, "/console/audit?after=99999999999999-0", &cookie).await;
    assert_eq!(s, StatusCode::OK, "{empty}");
    assert!(empty.contains("No record matches"), "{empty}");
    let (s, _) = page(&app, "/console/revocations?after=not-a-cursor", &cookie).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}
