//! The admin API for people (`/v1/people`): explicit roles, standing
//! consents, the audit by person; its authorization and its bounds; and the
//! `tessera person` / `tessera audit` commands against a running issuer.

use std::process::{Command, Output};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tessera::people::{Role, RoleName};
use tessera::server::admin;
use tessera::store::{MAX_CONSENTS_PER_PERSON, MAX_ROLES_PER_PERSON};
use tessera::token::{self, Action, AgentId, Lifetime, Person, ResourcePattern};

use super::helpers::{now, Reply, TestAgent, TestApp};

const IDP: &str = "https://login.acme.example";
const OTHER_IDP: &str = "https://login.evil.example";
const BIN: &str = env!("CARGO_BIN_EXE_tessera");

fn role(name: &str) -> Role {
    Role {
        name: RoleName::parse(name).unwrap(),
        actions: vec![Action::parse("payments:create").unwrap()],
        resources: vec![ResourcePattern::parse("invoices/*").unwrap()],
        audiences: Vec::new(),
        max_ttl: Duration::from_secs(600),
        groups: vec!["finance".to_owned()],
    }
}

/// An issuer (embedded store) whose configuration defines `payer` and `auditor`.
async fn issuer() -> TestApp {
    TestApp::spawn_with(None, |c| c.role = vec![role("payer"), role("auditor")]).await
}

/// Sends `method path` with an optional JSON body and bearer token.
async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<&Value>,
    bearer: Option<&str>,
) -> Reply {
    let mut r = app.http.request(method, app.url(path));
    if let Some(b) = body {
        r = r.json(b);
    }
    if let Some(t) = bearer {
        r = r.bearer_auth(t);
    }
    Reply::from(r.send().await.unwrap()).await
}

async fn admin_call(app: &TestApp, method: Method, path: &str, body: Option<&Value>) -> Reply {
    call(app, method, path, body, Some(&app.admin_token())).await
}

/// `?issuer=…&subject=…&<extra>` percent-encoded.
fn query(issuer: &str, subject: &str, extra: &[(&str, &str)]) -> String {
    let mut pairs = vec![("issuer", issuer), ("subject", subject)];
    pairs.extend_from_slice(extra);
    format!("?{}", serde_urlencoded::to_string(&pairs).unwrap())
}

async fn audit_of(app: &TestApp, issuer: &str, subject: &str) -> Vec<Value> {
    let q = serde_urlencoded::to_string([("person_issuer", issuer), ("person_subject", subject)])
        .unwrap();
    let r = app.admin_get(&format!("/v1/audit?{q}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json["events"].as_array().unwrap().clone()
}

async fn roles_are_granted_shown_and_revoked_and_audited_with_the_person(app: &TestApp) {
    let grant = json!({ "issuer": IDP, "subject": "alice", "role": "payer" });
    let r = admin_call(app, Method::POST, "/v1/people/roles", Some(&grant)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json["changed"], true);
    let r = admin_call(app, Method::POST, "/v1/people/roles", Some(&grant)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["changed"], false);

    let show = app
        .admin_get(&format!("/v1/people{}", query(IDP, "alice", &[])))
        .await;
    assert_eq!(show.status, StatusCode::OK, "{}", show.text);
    assert_eq!(show.json["roles"], json!(["payer"]));
    assert_eq!(show.json["role_definitions"][0]["name"], "payer");
    assert_eq!(
        show.json["role_definitions"][0]["actions"],
        json!(["payments:create"])
    );
    assert_eq!(show.json["consents"], json!([]));
    // The same subject at another IdP is someone else.
    let namesake = app
        .admin_get(&format!("/v1/people{}", query(OTHER_IDP, "alice", &[])))
        .await;
    assert_eq!(namesake.json["roles"], json!([]), "{}", namesake.text);

    let revoke = format!(
        "/v1/people/roles{}",
        query(IDP, "alice", &[("role", "payer")])
    );
    let r = admin_call(app, Method::DELETE, &revoke, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["changed"], true);
    let r = admin_call(app, Method::DELETE, &revoke, None).await;
    assert_eq!(r.json["changed"], false, "{}", r.text);
    let alice = Person::parse(IDP, "alice").unwrap();
    assert!(app
        .state
        .stores
        .people
        .roles(&alice)
        .await
        .unwrap()
        .is_empty());

    // Two changes, two events; the no-ops recorded nothing.
    let events = audit_of(app, IDP, "alice").await;
    let outcomes: Vec<_> = events
        .iter()
        .map(|e| e["event"]["outcome"].clone())
        .collect();
    assert_eq!(outcomes, vec![json!("role granted"), json!("role revoked")]);
    for e in &events {
        assert_eq!(e["event"]["kind"], "admin");
        assert_eq!(
            e["event"]["person"],
            json!({ "issuer": IDP, "subject": "alice" })
        );
        assert_eq!(e["event"]["capability"], "role payer");
        assert_eq!(e["event"]["chain"], json!([admin::ADMIN_AGENT]));
    }
    assert!(audit_of(app, OTHER_IDP, "alice").await.is_empty());
}

#[tokio::test]
async fn roles_are_granted_shown_and_revoked_and_each_change_is_audited_with_the_person() {
    roles_are_granted_shown_and_revoked_and_audited_with_the_person(&issuer().await).await;
}

#[tokio::test]
async fn on_redis_the_audit_keeps_the_person_of_each_change() {
    let Some(app) = TestApp::spawn_on(super::helpers::OnRedis::Server, |c| {
        c.role = vec![role("payer"), role("auditor")]
    })
    .await
    else {
        return;
    };
    roles_are_granted_shown_and_revoked_and_audited_with_the_person(&app).await;
}

#[tokio::test]
async fn an_unknown_role_is_refused_naming_the_configured_roles() {
    let app = issuer().await;
    for bad in ["admin", "Payer", "pay er", ""] {
        let body = json!({ "issuer": IDP, "subject": "alice", "role": bad });
        let r = admin_call(&app, Method::POST, "/v1/people/roles", Some(&body)).await;
        r.assert_oauth_error(400, "invalid_request");
        if bad == "admin" {
            assert!(r.description().contains("payer"), "{}", r.text);
            assert!(r.description().contains("auditor"), "{}", r.text);
        }
    }
    let alice = Person::parse(IDP, "alice").unwrap();
    assert!(app
        .state
        .stores
        .people
        .roles(&alice)
        .await
        .unwrap()
        .is_empty());
    assert!(audit_of(&app, IDP, "alice").await.is_empty());
}

#[tokio::test]
async fn a_consent_needs_a_registered_enabled_agent_and_is_withdrawn() {
    let app = issuer().await;
    let alice = Person::parse(IDP, "alice").unwrap();
    let consent = |agent: &str| json!({ "issuer": IDP, "subject": "alice", "agent": agent });

    let r = admin_call(
        &app,
        Method::POST,
        "/v1/people/consents",
        Some(&consent("agent://acme/ghost")),
    )
    .await;
    r.assert_oauth_error(400, "invalid_request");
    assert!(r.description().contains("not registered"), "{}", r.text);
    let r = admin_call(
        &app,
        Method::POST,
        "/v1/people/consents",
        Some(&consent("not an agent uri")),
    )
    .await;
    r.assert_oauth_error(400, "invalid_request");

    let bot = app.agent("bot").await;
    let bot_id = AgentId::parse(&bot.id).unwrap();
    let r = admin_call(
        &app,
        Method::POST,
        "/v1/people/consents",
        Some(&consent(&bot.id)),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert!(
        app.state
            .stores
            .people
            .standing(&alice, &bot_id)
            .await
            .unwrap()
            .consents
    );
    let show = app
        .admin_get(&format!("/v1/people{}", query(IDP, "alice", &[])))
        .await;
    assert_eq!(show.json["consents"], json!([bot.id]), "{}", show.text);

    let withdraw = format!(
        "/v1/people/consents{}",
        query(IDP, "alice", &[("agent", &bot.id)])
    );
    let r = admin_call(&app, Method::DELETE, &withdraw, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["changed"], true);
    assert!(
        !app.state
            .stores
            .people
            .standing(&alice, &bot_id)
            .await
            .unwrap()
            .consents
    );

    // A disabled agent cannot be consented to.
    let r = admin_call(
        &app,
        Method::DELETE,
        &format!("/v1/agents/{}", super::helpers::segment(&bot.id)),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = admin_call(
        &app,
        Method::POST,
        "/v1/people/consents",
        Some(&consent(&bot.id)),
    )
    .await;
    r.assert_oauth_error(400, "invalid_request");
    assert!(r.description().contains("disabled"), "{}", r.text);

    let events = audit_of(&app, IDP, "alice").await;
    let seen: Vec<_> = events
        .iter()
        .map(|e| (e["event"]["outcome"].clone(), e["event"]["agent"].clone()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (json!("consent recorded"), json!(bot.id)),
            (json!("consent withdrawn"), json!(bot.id)),
        ]
    );
}

/// Every people route, with a valid body or query.
fn routes() -> Vec<(Method, String, Option<Value>)> {
    let who = json!({ "issuer": IDP, "subject": "alice" });
    let mut role = who.clone();
    role["role"] = "payer".into();
    let mut consent = who;
    consent["agent"] = "agent://acme/bot".into();
    vec![
        (
            Method::GET,
            format!("/v1/people{}", query(IDP, "alice", &[])),
            None,
        ),
        (Method::POST, "/v1/people/roles".into(), Some(role)),
        (
            Method::DELETE,
            format!(
                "/v1/people/roles{}",
                query(IDP, "alice", &[("role", "payer")])
            ),
            None,
        ),
        (Method::POST, "/v1/people/consents".into(), Some(consent)),
        (
            Method::DELETE,
            format!(
                "/v1/people/consents{}",
                query(IDP, "alice", &[("agent", "agent://acme/bot")])
            ),
            None,
        ),
    ]
}

#[tokio::test]
async fn without_an_admin_token_401_and_with_a_feed_or_agent_token_403() {
    let app = issuer().await;
    let feed_cap = admin::feed_capability(Lifetime::parse("1h").unwrap()).unwrap();
    let feed = token::mint(&feed_cap, app.state.ring().active(), now())
        .unwrap()
        .token;
    // An agent whose ceiling covers the admin paths, with a valid token.
    let plain = TestAgent::new("plain");
    app.register_agent(&plain, &["docs:read"], &["/v1/*"], &[], None)
        .await;
    let form = TestApp::form(
        app.assertion(&plain).build(),
        &[("scope", "docs:read"), ("identifier", "/v1/*")],
    );
    let agent_token = app.request_token(&form, None).await.token().to_owned();
    for (method, path, body) in routes() {
        let r = call(&app, method.clone(), &path, body.as_ref(), None).await;
        assert_eq!(
            r.status,
            StatusCode::UNAUTHORIZED,
            "{method} {path}: {}",
            r.text
        );
        assert!(r.headers.contains_key("www-authenticate"), "{path}");
        for bearer in [&feed, &agent_token] {
            let r = call(&app, method.clone(), &path, body.as_ref(), Some(bearer)).await;
            assert_eq!(
                r.status,
                StatusCode::FORBIDDEN,
                "{method} {path}: {}",
                r.text
            );
        }
    }
    let alice = Person::parse(IDP, "alice").unwrap();
    assert!(app
        .state
        .stores
        .people
        .roles(&alice)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn malformed_or_oversized_people_are_refused_with_invalid_request() {
    let app = issuer().await;
    let long = format!("https://login.acme.example/{}", "x".repeat(300));
    let bad_people = [
        json!({ "issuer": "not a url", "subject": "alice" }),
        json!({ "issuer": long, "subject": "alice" }),
        json!({ "issuer": IDP, "subject": "a".repeat(256) }),
        json!({ "issuer": IDP, "subject": "" }),
        json!({ "issuer": IDP, "subject": "al\u{0}ice" }),
        json!({ "issuer": IDP, "subject": "al\nice" }),
        json!({ "issuer": IDP }),
        json!({ "issuer": IDP, "subject": 7 }),
    ];
    for who in &bad_people {
        let mut body = who.clone();
        body["role"] = "payer".into();
        let r = admin_call(&app, Method::POST, "/v1/people/roles", Some(&body)).await;
        r.assert_oauth_error(400, "invalid_request");
        let (issuer, subject) = (
            who["issuer"].as_str().unwrap_or(""),
            who["subject"].as_str().unwrap_or(""),
        );
        let r = app
            .admin_get(&format!("/v1/people{}", query(issuer, subject, &[])))
            .await;
        r.assert_oauth_error(400, "invalid_request");
    }
    // Unknown fields, broken JSON, a missing query: all 400, never 500.
    let extra = json!({ "issuer": IDP, "subject": "alice", "role": "payer", "admin": true });
    let r = admin_call(&app, Method::POST, "/v1/people/roles", Some(&extra)).await;
    r.assert_oauth_error(400, "invalid_request");
    let r = app
        .http
        .post(app.url("/v1/people/consents"))
        .bearer_auth(app.admin_token())
        .header("content-type", "application/json")
        .body("{\"issuer\":")
        .send()
        .await
        .unwrap();
    Reply::from(r)
        .await
        .assert_oauth_error(400, "invalid_request");
    let r = admin_call(&app, Method::DELETE, "/v1/people/roles", None).await;
    r.assert_oauth_error(400, "invalid_request");
    // The audit's person filter needs both halves.
    for q in [
        format!("person_issuer={IDP}"),
        "person_subject=alice".to_owned(),
        "person_issuer=nope&person_subject=alice".to_owned(),
    ] {
        let r = app.admin_get(&format!("/v1/audit?{q}")).await;
        r.assert_oauth_error(400, "invalid_request");
    }
}

#[tokio::test]
async fn a_person_cannot_be_flooded_with_roles_or_consents() {
    let app = issuer().await;
    let alice = Person::parse(IDP, "alice").unwrap();
    let people = &app.state.stores.people;
    // Fill alice's explicit roles and consents to the bound.
    for i in 0..MAX_ROLES_PER_PERSON {
        let name = RoleName::parse(&format!("filler-{i}")).unwrap();
        assert!(people.grant_role(&alice, &name).await.unwrap());
    }
    for i in 0..MAX_CONSENTS_PER_PERSON {
        let agent = AgentId::parse(&format!("agent://acme/filler-{i}")).unwrap();
        assert!(people.consent(&alice, &agent).await.unwrap());
    }
    let body = json!({ "issuer": IDP, "subject": "alice", "role": "payer" });
    let r = admin_call(&app, Method::POST, "/v1/people/roles", Some(&body)).await;
    r.assert_oauth_error(400, "invalid_request");
    assert!(r.description().contains("at most 64"), "{}", r.text);

    let bot = app.agent("bot").await;
    let body = json!({ "issuer": IDP, "subject": "alice", "agent": bot.id });
    let r = admin_call(&app, Method::POST, "/v1/people/consents", Some(&body)).await;
    r.assert_oauth_error(400, "invalid_request");
    assert!(r.description().contains("at most 256"), "{}", r.text);
    assert!(audit_of(&app, IDP, "alice").await.is_empty());
    // Someone else is not held back by alice's bounds.
    let body = json!({ "issuer": IDP, "subject": "bob", "role": "payer" });
    let r = admin_call(&app, Method::POST, "/v1/people/roles", Some(&body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}

/// Runs the `tessera` binary against `app` with an admin token in the
/// environment.
async fn tessera(app: &TestApp, args: &[&str]) -> Output {
    let (base, admin) = (app.base.clone(), app.admin_token());
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(&args)
            .env("TESSERA_ISSUER", base)
            .env("TESSERA_ADMIN_TOKEN", admin)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn stdout_json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn the_person_and_audit_commands_drive_the_admin_api() {
    let app = issuer().await;
    let bot = app.agent("bot").await;
    let who = ["--idp", IDP, "--subject", "alice"];
    let with = |cmd: &[&'static str], extra: &[&str]| -> Vec<String> {
        cmd.iter()
            .chain(who.iter())
            .chain(extra.iter())
            .map(|s| (*s).to_owned())
            .collect()
    };
    let run = |args: Vec<String>| {
        let app = &app;
        async move {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            tessera(app, &refs).await
        }
    };

    let granted = stdout_json(&run(with(&["person", "grant"], &["--role", "payer"])).await);
    assert_eq!(granted["changed"], true);
    let consented = stdout_json(&run(with(&["person", "consent"], &["--agent", &bot.id])).await);
    assert_eq!(consented["changed"], true);
    let shown = stdout_json(&run(with(&["person", "show"], &[])).await);
    assert_eq!(shown["roles"], json!(["payer"]));
    assert_eq!(shown["consents"], json!([bot.id]));

    // The audit by person, as lines and as JSON.
    let out = run(["audit", "--person-issuer", IDP, "--person", "alice"]
        .map(str::to_owned)
        .to_vec())
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<_> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[0].contains("role granted") && lines[0].contains("alice at"),
        "{text}"
    );
    assert!(lines[1].contains("consent recorded"), "{text}");
    assert!(lines[2].starts_with("next "), "{text}");
    let page = stdout_json(
        &run([
            "audit",
            "--person-issuer",
            OTHER_IDP,
            "--person",
            "alice",
            "--json",
        ]
        .map(str::to_owned)
        .to_vec())
        .await,
    );
    assert_eq!(page["events"], json!([]));

    // The same with a time window: the future holds nothing, the past all;
    // each line tells who -> what -> outcome.
    let window = |flag: &str, time: &str| {
        [
            "audit",
            "--person-issuer",
            IDP,
            "--person",
            "alice",
            flag,
            time,
            "--json",
        ]
        .map(str::to_owned)
        .to_vec()
    };
    let later = stdout_json(&run(window("--since", "2999-01-01T00:00:00Z")).await);
    assert_eq!(later["events"], json!([]));
    let before = stdout_json(&run(window("--until", "2999-01-01T00:00:00Z")).await);
    assert_eq!(
        before["events"].as_array().map(Vec::len),
        Some(2),
        "{before}"
    );
    assert!(
        lines[0].contains("story=") && lines[0].contains(" -> "),
        "{text}"
    );
    let by_kind = stdout_json(
        &run([
            "audit",
            "--person-issuer",
            IDP,
            "--person",
            "alice",
            "--kind",
            before["events"][1]["event"]["kind"].as_str().unwrap(),
            "--outcome",
            "consent recorded",
            "--json",
        ]
        .map(str::to_owned)
        .to_vec())
        .await,
    );
    let outcomes: Vec<_> = by_kind["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"]["outcome"].clone())
        .collect();
    assert_eq!(outcomes, vec![json!("consent recorded")], "{by_kind}");

    let withdrawn = stdout_json(&run(with(&["person", "withdraw"], &["--agent", &bot.id])).await);
    assert_eq!(withdrawn["changed"], true);
    let revoked = stdout_json(&run(with(&["person", "revoke"], &["--role", "payer"])).await);
    assert_eq!(revoked["changed"], true);
    let alice = Person::parse(IDP, "alice").unwrap();
    assert!(app
        .state
        .stores
        .people
        .roles(&alice)
        .await
        .unwrap()
        .is_empty());

    // Refusals are one line on stderr, never a panic: from the issuer
    // (unknown role), and before any request (a subject with a control
    // character; half a person for the audit).
    for (args, code, needle) in [
        (
            with(&["person", "grant"], &["--role", "admin"]),
            1,
            "known roles are",
        ),
        (
            ["person", "show", "--idp", IDP, "--subject", "al\u{7}ice"]
                .map(str::to_owned)
                .to_vec(),
            2,
            "control character",
        ),
        (
            ["audit", "--person", "alice"].map(str::to_owned).to_vec(),
            2,
            "required arguments were not provided",
        ),
        (
            ["audit", "--since", "yesterday"]
                .map(str::to_owned)
                .to_vec(),
            2,
            "not an RFC 3339 time",
        ),
    ] {
        let out = run(args.clone()).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

#[tokio::test]
async fn the_openapi_document_lists_the_people_routes_and_the_audit_person_filter() {
    let app = issuer().await;
    let r = app.get("/openapi.json", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let paths = &r.json["paths"];
    for (path, method) in [
        ("/v1/people", "get"),
        ("/v1/people/roles", "post"),
        ("/v1/people/roles", "delete"),
        ("/v1/people/consents", "post"),
        ("/v1/people/consents", "delete"),
    ] {
        assert!(paths[path][method].is_object(), "{method} {path}");
        assert_eq!(
            paths[path][method]["security"][0],
            json!({ "adminToken": [] })
        );
    }
    let audit_params: Vec<_> = paths["/v1/audit"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(audit_params.contains(&"person_issuer".to_owned()));
    assert!(audit_params.contains(&"person_subject".to_owned()));
}
