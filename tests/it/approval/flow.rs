//! The backchannel flow over HTTP against a spawned issuer: bad input with
//! each CIBA error, the poll states, another agent's `auth_req_id`, and the
//! minted token carrying `approved_by` and exactly the approved amount.

use reqwest::StatusCode;
use serde_json::{json, Value};
use tessera::people::{IdpConfig, Role, RoleName, SigningAlgorithm};
use tessera::server::approval_policy::{Always, ApprovalRule};
use tessera::server::oauth::JWT_BEARER;
use tessera::store::{AuditQuery, Decided, Decider, Verdict};
use tessera::token::{self, Action, AgentId, Amount, Audience, Limits, Person, Request, Resource};

use crate::server::helpers::{now, Reply, TestAgent, TestApp};

const IDP: &str = "https://login.acme.example";
const PAY: &str = "https://pay.example";
const CIBA: &str = "urn:openid:params:grant-type:ciba";

pub(super) fn alice() -> Person {
    Person::parse(IDP, "alice").unwrap()
}

fn payer_role() -> Role {
    toml::from_str(&format!(
        "name = \"payer\"\nactions = [\"payments:create\"]\nresources = [\"invoice:*\"]\n\
         audiences = [\"{PAY}\"]\nmax_ttl = \"5m\"\ngroups = [\"finance\"]\n"
    ))
    .unwrap()
}

/// An issuer trusting one IdP (never contacted here), the payer role, and
/// the rule that payments always need approval; alice holds the role and
/// consents to `agent`.
async fn issuer() -> (TestApp, TestAgent) {
    issuer_with(|_| {}).await
}

/// [`issuer`] with more settings.
pub(super) async fn issuer_with(
    tweak: impl FnOnce(&mut tessera::server::Config),
) -> (TestApp, TestAgent) {
    let app = TestApp::spawn_with(None, |c| {
        tweak(c);
        c.idp = vec![IdpConfig {
            issuer: IDP.to_owned(),
            audience: "tessera".to_owned(),
            groups_claim: "groups".to_owned(),
            algorithms: SigningAlgorithm::ALL.to_vec(),
            clock_skew_secs: 30,
        }];
        c.role = vec![payer_role()];
        c.approval.rule = vec![ApprovalRule {
            action: Action::parse("payments:create").unwrap(),
            approval: Some(Always::Always),
            approval_above: None,
        }];
    })
    .await;
    let agent = TestAgent::new("payer");
    app.register_agent(
        &agent,
        &["payments:create"],
        &["invoice:*"],
        &[PAY],
        Some("10m"),
    )
    .await;
    let people = &app.state.stores.people;
    people
        .grant_role(&alice(), &RoleName::parse("payer").unwrap())
        .await
        .unwrap();
    people
        .consent(&alice(), &AgentId::parse(&agent.id).unwrap())
        .await
        .unwrap();
    (app, agent)
}

fn details(amount: Value) -> String {
    json!([{
        "type": "tessera", "actions": ["payments:create"],
        "identifier": "invoice:42", "locations": [PAY], "amount": amount,
    }])
    .to_string()
}

pub(super) async fn bc_authorize(
    app: &TestApp,
    agent: &TestAgent,
    extra: &[(&str, String)],
) -> Reply {
    let endpoint = app.url("/oauth/bc-authorize");
    let mut form = vec![
        ("client_assertion_type", JWT_BEARER.to_owned()),
        (
            "client_assertion",
            app.assertion_for(agent, &endpoint).build(),
        ),
    ];
    form.extend(extra.iter().cloned());
    Reply::from(app.http.post(endpoint).form(&form).send().await.unwrap()).await
}

pub(super) fn good(amount: Value) -> Vec<(&'static str, String)> {
    vec![
        ("login_hint", format!("{IDP}|alice")),
        ("binding_message", "Pay invoice 42".to_owned()),
        ("authorization_details", details(amount)),
    ]
}

pub(super) async fn poll(app: &TestApp, agent: &TestAgent, id: &str) -> Reply {
    let form = vec![
        ("grant_type", CIBA.to_owned()),
        ("client_assertion_type", JWT_BEARER.to_owned()),
        ("client_assertion", app.assertion(agent).build()),
        ("auth_req_id", id.to_owned()),
    ];
    app.request_token(&form, None).await
}

fn pay(amount: &str) -> Request {
    Request {
        operation: Action::parse("payments:create").unwrap(),
        resource: Resource::parse("invoice:42").unwrap(),
        service: Some(Audience::parse(PAY).unwrap()),
        now: now(),
        proven_key: None,
        amount: Some(Amount::parse(amount).unwrap()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_request_mints_approved_by_and_exactly_the_approved_amount_once() {
    let (app, agent) = issuer().await;
    let r = bc_authorize(
        &app,
        &agent,
        &good(json!({"currency": "EUR", "value": 4000})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let id = r.json["auth_req_id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 64);
    assert_eq!(r.json["expires_in"], 300);
    assert_eq!(r.json["interval"], 5);

    // Pending, then too soon: slow_down.
    poll(&app, &agent, &id)
        .await
        .assert_oauth_error(400, "authorization_pending");
    poll(&app, &agent, &id)
        .await
        .assert_oauth_error(400, "slow_down");
    // Another agent's auth_req_id is not its own.
    let other = TestAgent::new("other");
    app.register_agent(&other, &["payments:create"], &["invoice:*"], &[PAY], None)
        .await;
    poll(&app, &other, &id)
        .await
        .assert_oauth_error(400, "invalid_grant");

    // The person approves (the page's decide()); a second decision is refused.
    let approvals = &app.state.stores.approvals;
    let at = app.state.now();
    let by = Decider::Person(alice());
    assert!(matches!(
        approvals
            .decide(&id, &by, Verdict::Approve, at)
            .await
            .unwrap(),
        Decided::Decided(_)
    ));
    assert!(matches!(
        approvals.decide(&id, &by, Verdict::Deny, at).await.unwrap(),
        Decided::AlreadyDecided(_)
    ));
    // The interval (now 10 s) must pass before the next poll.
    tokio::time::sleep(std::time::Duration::from_secs(10)).await;
    let r = poll(&app, &agent, &id).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let token = r.json["access_token"].as_str().unwrap().to_owned();
    assert_eq!(r.json["authorization_details"][0]["amount"]["value"], 4000);
    let authority = format!("{:?}", app.inspect(&token));
    assert!(authority.contains("approved_by"), "{authority}");
    assert!(authority.contains(&id), "{authority}");

    let keys = app.keys();
    let bytes = token::decode(&token, &Limits::default()).unwrap();
    let verified = token::Verified::from_bytes(&bytes, &keys, &Limits::default()).unwrap();
    let approval = verified.chain().claims.approval.clone().unwrap();
    assert_eq!(
        (approval.person, approval.approval_id),
        (alice(), id.clone())
    );
    let check =
        |amount: &str| token::authorize(&token, &keys, &pay(amount), |_| false, &Limits::default());
    assert!(check("40.00EUR").is_ok());
    assert!(check("40.01EUR").is_err());
    assert!(check("40.00USD").is_err());

    // Collected once.
    tokio::time::sleep(std::time::Duration::from_secs(10)).await;
    poll(&app, &agent, &id)
        .await
        .assert_oauth_error(400, "invalid_grant");

    // Audited: the request and the mint name the approval.
    let events = app
        .state
        .stores
        .audit
        .query(&AuditQuery {
            limit: 100,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    let about: Vec<_> = events
        .iter()
        .filter(|(_, e)| e.approval_id.as_deref() == Some(id.as_str()))
        .map(|(_, e)| e.outcome.to_string())
        .collect();
    assert_eq!(about, ["approval requested", "granted"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_request_gives_access_denied_and_an_unknown_id_invalid_grant() {
    let (app, agent) = issuer().await;
    let r = bc_authorize(&app, &agent, &good(json!("12.50EUR"))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let id = r.json["auth_req_id"].as_str().unwrap().to_owned();
    let at = app.state.now();
    app.state
        .stores
        .approvals
        .decide(&id, &Decider::Person(alice()), Verdict::Deny, at)
        .await
        .unwrap();
    poll(&app, &agent, &id)
        .await
        .assert_oauth_error(400, "access_denied");
    poll(&app, &agent, "0000")
        .await
        .assert_oauth_error(400, "invalid_grant");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_backchannel_requests_get_each_ciba_error_and_record_nothing() {
    let (app, agent) = issuer().await;
    let with = |name: &'static str, value: &str| {
        let mut f: Vec<(&'static str, String)> = good(json!({"currency": "EUR", "value": 100}))
            .into_iter()
            .filter(|(k, _)| *k != name)
            .collect();
        f.push((name, value.to_owned()));
        f
    };
    let cases: Vec<(Vec<(&'static str, String)>, &str)> = vec![
        (
            with("login_hint", &format!("{IDP}|mallory")),
            "unknown_user_id",
        ),
        (
            with("login_hint", "https://evil.example|alice"),
            "unknown_user_id",
        ),
        (
            with("binding_message", &"x".repeat(65)),
            "invalid_binding_message",
        ),
        (
            with("binding_message", "pay\u{7}now"),
            "invalid_binding_message",
        ),
        (with("requested_expiry", "0"), "invalid_request"),
        (with("requested_expiry", "601"), "invalid_request"),
        (
            with("authorization_details", &details(json!("12.505EUR"))),
            "invalid_authorization_details",
        ),
        (
            with("authorization_details", &details(json!("-1.00EUR"))),
            "invalid_authorization_details",
        ),
        (
            with(
                "authorization_details",
                &details(json!({"currency": "EUR", "value": 9_223_372_036_854_775_808u64})),
            ),
            "invalid_authorization_details",
        ),
        (
            with(
                "authorization_details",
                &details(json!({"currency": "EUR", "value": 12.5})),
            ),
            "invalid_authorization_details",
        ),
        (
            with(
                "authorization_details",
                &json!([{"type": "tessera", "actions": ["payments:create"],
                         "identifier": "vault:1", "locations": [PAY]}])
                .to_string(),
            ),
            "invalid_scope",
        ),
    ];
    for (form, code) in cases {
        let r = bc_authorize(&app, &agent, &form).await;
        r.assert_oauth_error(400, code);
    }
    assert!(app
        .state
        .stores
        .approvals
        .for_person(&alice(), 10)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn an_agent_acting_for_itself_gets_no_token_for_an_action_that_needs_approval() {
    let (app, agent) = issuer().await;
    let form = TestApp::form(
        app.assertion(&agent).build(),
        &[
            ("scope", "payments:create"),
            ("identifier", "invoice:1"),
            ("resource", PAY),
        ],
    );
    let r = app.request_token(&form, None).await;
    r.assert_oauth_error(400, "access_denied");
    assert!(
        r.text.contains("POST /oauth/bc-authorize"),
        "the refusal names the approval path: {}",
        r.text
    );
}
