//! RFC 7662 introspection: who may ask, what an alive token says, and that
//! every dead token (garbage, forged, expired, revoked, someone else's) gets
//! the same `{"active": false}`.

use reqwest::StatusCode;
use serde_json::{json, Value};
use tessera::server::admin;
use tessera::server::oauth::JWT_BEARER;
use tessera::token::{self, AgentId, Capability, Lifetime, ResourcePattern, RootKeyPair};

use super::helpers::{now, Reply, TestAgent, TestApp, ACTION, AUDIENCE};

const INTROSPECT: &str = "/oauth/introspect";

impl TestApp {
    /// Introspects `token` as the operator.
    async fn introspect_admin(&self, token: &str) -> Reply {
        let r = self
            .http
            .post(self.url(INTROSPECT))
            .bearer_auth(self.admin_token())
            .form(&[("token", token)])
            .send()
            .await
            .unwrap();
        Reply::from(r).await
    }

    /// Introspects `token` as `agent`, with a fresh client assertion.
    async fn introspect_as(&self, agent: &TestAgent, token: &str) -> Reply {
        let assertion = self.assertion_for(agent, &self.url(INTROSPECT)).build();
        self.introspect_with(&assertion, token).await
    }

    async fn introspect_with(&self, assertion: &str, token: &str) -> Reply {
        let r = self
            .http
            .post(self.url(INTROSPECT))
            .form(&[
                ("token", token),
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", assertion),
            ])
            .send()
            .await
            .unwrap();
        Reply::from(r).await
    }

    /// The number of audit events stored.
    async fn audit_count(&self) -> usize {
        let r = self.admin_get("/v1/audit?limit=1000").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        r.json["events"].as_array().unwrap().len()
    }
}

#[track_caller]
fn assert_inactive(r: &Reply, what: &str) {
    assert_eq!(r.status, StatusCode::OK, "{what}: {}", r.text);
    assert_eq!(r.json, json!({ "active": false }), "{what}: {}", r.text);
    assert_eq!(r.headers["cache-control"], "no-store", "{what}");
}

/// A token for `agent` signed offline by `root`, issued at `at`.
fn offline_token(
    agent: &TestAgent,
    root: &RootKeyPair,
    at: chrono::DateTime<chrono::Utc>,
) -> String {
    let cap = Capability {
        agent: AgentId::parse(&agent.id).unwrap(),
        action: ACTION.parse().unwrap(),
        resource: ResourcePattern::parse("docs/team-a/*").unwrap(),
        audience: None,
        lifetime: Lifetime::parse("1m").unwrap(),
        holder_key: None,
        on_behalf: None,
    };
    token::mint(&cap, root, at).unwrap().token
}

#[tokio::test]
async fn an_alive_token_is_active_with_scope_client_chain_expiry_and_id() {
    let app = TestApp::spawn().await;
    let agent = app.agent("reader").await;
    let minted = app.mint_ok(&agent, "docs/team-a/*").await;
    let t = minted["access_token"].as_str().unwrap();
    let seen = app.inspect(t);
    for r in [
        app.introspect_admin(t).await,
        app.introspect_as(&agent, t).await,
    ] {
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.headers["cache-control"], "no-store");
        let j = &r.json;
        assert_eq!(j["active"], true, "{}", r.text);
        assert_eq!(j["scope"], ACTION);
        assert_eq!(j["client_id"], agent.id.as_str());
        assert_eq!(j["chain"], json!([agent.id]));
        assert_eq!(j["aud"], AUDIENCE);
        assert_eq!(j["jti"], seen.token_id.as_str());
        assert_eq!(j["jti"], minted["token_id"]);
        assert_eq!(j["exp"], seen.expires_at.timestamp());
        assert_eq!(j["iat"], seen.issued_at.unwrap().timestamp());
        assert_eq!(j["iss"], app.base.as_str());
        assert_eq!(j["token_type"], "Bearer");
        assert_eq!(j["resources"], json!(["docs/team-a/*"]));
        // Acts for nobody: no person is reported.
        assert!(j.get("sub").is_none(), "{}", r.text);
        assert!(j.get("person").is_none(), "{}", r.text);
    }
}

#[tokio::test]
async fn a_token_acting_for_a_person_reports_the_person_and_the_earlier_actors() {
    let app = TestApp::spawn().await;
    let agent = app.agent("for-alice").await;
    let mut cap = Capability {
        agent: AgentId::parse(&agent.id).unwrap(),
        action: ACTION.parse().unwrap(),
        resource: ResourcePattern::parse("docs/team-a/*").unwrap(),
        audience: None,
        lifetime: Lifetime::parse("1m").unwrap(),
        holder_key: None,
        on_behalf: None,
    };
    cap.on_behalf = Some(tessera::token::OnBehalf {
        person: tessera::token::Person::parse("https://login.acme.example", "alice").unwrap(),
        prior_actors: vec![AgentId::parse("agent://acme/planner").unwrap()],
    });
    let t = token::mint(&cap, app.state.ring().active(), now())
        .unwrap()
        .token;
    for r in [
        app.introspect_admin(&t).await,
        app.introspect_as(&agent, &t).await,
    ] {
        let j = &r.json;
        assert_eq!(j["active"], true, "{}", r.text);
        assert_eq!(j["sub"], "alice");
        assert_eq!(
            j["person"],
            json!({ "issuer": "https://login.acme.example", "subject": "alice" })
        );
        assert_eq!(j["prior_actors"], json!(["agent://acme/planner"]));
        assert_eq!(j["chain"], json!([agent.id]));
    }
    // The earlier actor is not the holder: it learns nothing.
    let planner_view = app.introspect_as(&app.agent("planner").await, &t).await;
    assert_eq!(planner_view.json, json!({ "active": false }));
}

#[tokio::test]
async fn the_metadata_names_the_introspection_endpoint() {
    let app = TestApp::spawn().await;
    let r = app
        .get("/.well-known/oauth-authorization-server", None)
        .await;
    assert_eq!(r.json["introspection_endpoint"], app.url(INTROSPECT));
}

#[tokio::test]
async fn unauthenticated_callers_get_401_invalid_client() {
    let app = TestApp::spawn().await;
    let agent = app.agent("victim").await;
    let t = app.mint_ok(&agent, "docs/team-a/x").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let post = |bearer: Option<String>, form: Vec<(&'static str, String)>| {
        let mut r = app.http.post(app.url(INTROSPECT)).form(&form);
        if let Some(b) = bearer {
            r = r.bearer_auth(b);
        }
        async move { Reply::from(r.send().await.unwrap()).await }
    };
    let token_only = vec![("token", t.clone())];
    let feed = token::mint(
        &admin::feed_capability(Lifetime::parse("5m").unwrap()).unwrap(),
        app.state.ring().active(),
        now(),
    )
    .unwrap()
    .token;
    let expired_admin = token::mint(
        &admin::admin_capability(Lifetime::parse("1s").unwrap()).unwrap(),
        app.state.ring().active(),
        now() - chrono::Duration::minutes(5),
    )
    .unwrap()
    .token;
    let cases: Vec<(&str, Reply)> = vec![
        ("nothing", post(None, token_only.clone()).await),
        (
            "garbage bearer",
            post(Some("garbage".into()), token_only.clone()).await,
        ),
        (
            "the agent's own token as bearer",
            post(Some(t.clone()), token_only.clone()).await,
        ),
        ("a feed token", post(Some(feed), token_only.clone()).await),
        (
            "an expired admin token",
            post(Some(expired_admin), token_only.clone()).await,
        ),
        (
            "an assertion for another audience",
            app.introspect_with(
                &app.assertion_for(&agent, "https://elsewhere.example")
                    .build(),
                &t,
            )
            .await,
        ),
        (
            "an assertion signed by another key",
            app.introspect_with(
                &app.assertion_for(&agent, &app.url(INTROSPECT))
                    .signed_by(&TestAgent::new("x").key)
                    .build(),
                &t,
            )
            .await,
        ),
        (
            "an unknown client",
            app.introspect_as(&TestAgent::new("stranger"), &t).await,
        ),
        (
            "an admin token and an assertion at once",
            post(
                Some(app.admin_token()),
                vec![
                    ("token", t.clone()),
                    ("client_assertion_type", JWT_BEARER.into()),
                    (
                        "client_assertion",
                        app.assertion_for(&agent, &app.url(INTROSPECT)).build(),
                    ),
                ],
            )
            .await,
        ),
    ];
    for (what, r) in cases {
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{what}: {}", r.text);
        assert_eq!(r.error(), "invalid_client", "{what}: {}", r.text);
        assert!(r.headers.contains_key("www-authenticate"), "{what}");
        assert!(r.json.get("active").is_none(), "{what}: {}", r.text);
    }
}

#[tokio::test]
async fn a_replayed_client_assertion_is_refused() {
    let app = TestApp::spawn().await;
    let agent = app.agent("replayer").await;
    let t = app.mint_ok(&agent, "docs/team-a/x").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let assertion = app.assertion_for(&agent, &app.url(INTROSPECT)).build();
    let first = app.introspect_with(&assertion, &t).await;
    assert_eq!(first.json["active"], true, "{}", first.text);
    let again = app.introspect_with(&assertion, &t).await;
    again.assert_oauth_error(401, "invalid_client");
}

#[tokio::test]
async fn an_agent_learns_nothing_about_another_agents_token() {
    let app = TestApp::spawn().await;
    let alice = app.agent("alice").await;
    let mallory = app.agent("mallory").await;
    let alices = app.mint_ok(&alice, "docs/team-a/x").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app.introspect_as(&mallory, &alices).await;
    assert_inactive(&r, "another agent's token");
    // Alice and the operator still see it alive.
    assert_eq!(
        app.introspect_as(&alice, &alices).await.json["active"],
        true
    );
    assert_eq!(app.introspect_admin(&alices).await.json["active"], true);
}

#[tokio::test]
async fn garbage_forged_expired_and_revoked_tokens_are_all_just_inactive() {
    let app = TestApp::spawn().await;
    let agent = app.agent("many").await;
    let ring = app.state.ring();
    let forged_root = RootKeyPair::new(ring.active().id, biscuit_auth::KeyPair::new());
    let forged = offline_token(&agent, &forged_root, now());
    let expired = offline_token(&agent, ring.active(), now() - chrono::Duration::minutes(5));
    let alive = offline_token(&agent, ring.active(), now());
    let unknown_key = offline_token(
        &agent,
        &RootKeyPair::new(77, biscuit_auth::KeyPair::new()),
        now(),
    );
    let revoked = app.mint_ok(&agent, "docs/team-a/y").await;
    let r = app
        .revoke_admin(&json!({ "token_id": revoked["token_id"] }))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let revoked = revoked["access_token"].as_str().unwrap();
    // An attenuated copy of the revoked token is revoked too.
    let narrowed = token::attenuate(
        revoked,
        &token::Narrowing {
            max_amount: None,
            budget: None,
            action: None,
            resource: Some(ResourcePattern::parse("docs/team-a/y").unwrap()),
            expires_at: None,
            audience: None,
        },
        &token::Limits::default(),
    )
    .unwrap();
    let oversized = "A".repeat(40 * 1024);
    assert_eq!(app.introspect_admin(&alive).await.json["active"], true);
    for (what, t) in [
        ("garbage", "not a token at all"),
        ("base64 garbage", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        ("forged", forged.as_str()),
        ("unknown root key id", unknown_key.as_str()),
        ("expired", expired.as_str()),
        ("revoked", revoked),
        ("a narrowed copy of a revoked token", narrowed.as_str()),
        ("larger than any token", oversized.as_str()),
    ] {
        assert_inactive(&app.introspect_admin(t).await, what);
        assert_inactive(&app.introspect_as(&agent, t).await, what);
    }
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_before_anything_is_read() {
    let app = TestApp::spawn().await;
    let huge = "A".repeat(app.state.config.max_body_bytes + 1);
    let r = app
        .http
        .post(app.url(INTROSPECT))
        .bearer_auth(app.admin_token())
        .form(&[("token", huge)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // A missing token or a JSON body is a typed 400, never a 500.
    let r = app
        .http
        .post(app.url(INTROSPECT))
        .bearer_auth(app.admin_token())
        .form(&[("token_type_hint", "access_token")])
        .send()
        .await
        .unwrap();
    Reply::from(r)
        .await
        .assert_oauth_error(400, "invalid_request");
    let r = app
        .http
        .post(app.url(INTROSPECT))
        .bearer_auth(app.admin_token())
        .json(&json!({ "token": "x" }))
        .send()
        .await
        .unwrap();
    Reply::from(r)
        .await
        .assert_oauth_error(400, "invalid_request");
}

#[tokio::test]
async fn a_flood_of_unauthenticated_callers_stores_nothing_and_is_counted() {
    let app = TestApp::spawn().await;
    let before = app.audit_count().await;
    for i in 0..300 {
        let r = app
            .http
            .post(app.url(INTROSPECT))
            .form(&[
                ("token", format!("t{i}")),
                ("client_id", format!("agent://x/{i}")),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(app.audit_count().await, before, "refusals were stored");
    let metrics = app.state.metrics.render();
    let line = metrics
        .lines()
        .find(|l| l.starts_with("tessera_tokens_refused_total{reason=\"invalid_client\"}"))
        .unwrap_or_else(|| panic!("no invalid_client count in {metrics}"));
    let n: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n >= 300.0, "{line}");
    // One label per reason code, whatever the callers sent.
    assert_eq!(
        metrics
            .lines()
            .filter(|l| l.starts_with("tessera_tokens_refused_total{"))
            .count(),
        1,
        "{metrics}"
    );
}

#[tokio::test]
async fn a_disabled_agent_cannot_introspect() {
    let app = TestApp::spawn().await;
    let agent = app.agent("gone").await;
    let t: Value = app.mint_ok(&agent, "docs/team-a/x").await;
    let t = t["access_token"].as_str().unwrap();
    let r = app
        .http
        .delete(app.url(&format!(
            "/v1/agents/{}",
            super::helpers::segment(&agent.id)
        )))
        .bearer_auth(app.admin_token())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    app.introspect_as(&agent, t)
        .await
        .assert_oauth_error(401, "invalid_client");
    // Its tokens were revoked when it was disabled.
    assert_inactive(&app.introspect_admin(t).await, "a disabled agent's token");
}

#[tokio::test]
async fn a_delegated_token_shows_its_chain_to_each_agent_in_it_and_to_no_one_else() {
    let app = TestApp::spawn().await;
    let planner = app.agent("planner").await;
    let helper = app.agent("helper").await;
    let outsider = app.agent("outsider").await;
    let holder = biscuit_auth::KeyPair::new();
    let cap = Capability {
        agent: AgentId::parse(&planner.id).unwrap(),
        action: ACTION.parse().unwrap(),
        resource: ResourcePattern::parse("docs/team-a/*").unwrap(),
        audience: None,
        lifetime: Lifetime::parse("5m").unwrap(),
        holder_key: Some(holder.public()),
        on_behalf: None,
    };
    let parent = token::mint(&cap, app.state.ring().active(), now())
        .unwrap()
        .token;
    let child = token::delegate(
        &parent,
        &holder,
        &AgentId::parse(&helper.id).unwrap(),
        &token::parse_public_key(&helper.public_key()).unwrap(),
        &token::Narrowing::default(),
        &token::Limits::default(),
    )
    .unwrap();
    for (who, r) in [
        ("helper", app.introspect_as(&helper, &child).await),
        ("planner", app.introspect_as(&planner, &child).await),
        ("operator", app.introspect_admin(&child).await),
    ] {
        assert_eq!(r.json["active"], true, "{who}: {}", r.text);
        assert_eq!(r.json["chain"], json!([planner.id, helper.id]), "{who}");
        assert_eq!(r.json["client_id"], planner.id.as_str(), "{who}");
        assert_eq!(r.json["token_type"], "DPoP", "{who}");
    }
    assert_inactive(
        &app.introspect_as(&outsider, &child).await,
        "an agent outside the chain",
    );
    // The helper is not in the parent's chain.
    assert_inactive(
        &app.introspect_as(&helper, &parent).await,
        "the parent, asked by the sub-agent",
    );
}

#[tokio::test]
async fn on_redis_a_revocation_turns_a_token_inactive_and_an_outage_is_503_not_a_guess() {
    let Some(mut app) = TestApp::spawn_redis().await else {
        return;
    };
    let agent = app.agent("on-redis").await;
    let minted = app.mint_ok(&agent, "docs/team-a/x").await;
    let t = minted["access_token"].as_str().unwrap().to_owned();
    assert_eq!(app.introspect_as(&agent, &t).await.json["active"], true);
    let r = app
        .revoke_admin(&json!({ "token_id": minted["token_id"] }))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_inactive(&app.introspect_admin(&t).await, "revoked, on Redis");

    let other = app.mint_ok(&agent, "docs/team-a/y").await;
    let other = other["access_token"].as_str().unwrap().to_owned();
    let admin = app.admin_token();
    app.stop_redis();
    let r = app
        .http
        .post(app.url(INTROSPECT))
        .bearer_auth(&admin)
        .form(&[("token", other.as_str())])
        .send()
        .await
        .unwrap();
    let r = Reply::from(r).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    assert!(r.json.get("active").is_none(), "{}", r.text);
    app.restart_redis();
}
