//! The OAuth surface: metadata, JWKS, the token endpoint and its refusals.

use reqwest::StatusCode;
use serde_json::json;
use tessera::jose;
use tessera::store::{AuditKind, AuditQuery};
use tessera::token::{
    self, Action, Audience, KeySet, Limits, Reason, Request, Resource, RightView,
};

use super::helpers::{dpop_proof, now, Reply, TestAgent, TestApp, ACTION, AUDIENCE};

#[tokio::test]
async fn metadata_names_the_issuer_its_endpoints_and_private_key_jwt_with_eddsa() {
    let app = TestApp::spawn().await;
    let r = app
        .get("/.well-known/oauth-authorization-server", None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let m = &r.json;
    assert_eq!(m["issuer"], app.base.as_str());
    assert_eq!(m["token_endpoint"], app.url("/oauth/token").as_str());
    assert_eq!(m["jwks_uri"], app.url("/.well-known/jwks.json").as_str());
    assert_eq!(
        m["token_endpoint_auth_methods_supported"],
        json!(["private_key_jwt", "none"])
    );
    assert_eq!(
        m["token_endpoint_auth_signing_alg_values_supported"],
        json!(["EdDSA", "ES256", "RS256"])
    );
    assert_eq!(
        m["revocation_endpoint_auth_methods_supported"],
        json!(["private_key_jwt", "none"])
    );
    assert_eq!(
        m["grant_types_supported"],
        json!([
            "client_credentials",
            "authorization_code",
            "refresh_token",
            "urn:ietf:params:oauth:grant-type:token-exchange",
            "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "urn:openid:params:grant-type:ciba"
        ])
    );
    assert_eq!(
        m["backchannel_authentication_endpoint"],
        json!(app.url("/oauth/bc-authorize"))
    );
    assert_eq!(
        m["backchannel_token_delivery_modes_supported"],
        json!(["poll", "ping"])
    );
}

#[tokio::test]
async fn jwks_publishes_root_key_0_as_an_okp_ed25519_key_that_verifies_minted_tokens() {
    let app = TestApp::spawn().await;
    let r = app.get("/.well-known/jwks.json", None).await;
    assert_eq!(r.status, StatusCode::OK);
    let keys = r.json["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{}", r.text);
    assert_eq!(keys[0]["kid"], "0");
    assert_eq!(keys[0]["kty"], "OKP");
    assert_eq!(keys[0]["crv"], "Ed25519");
    assert!(
        keys[0].get("d").is_none(),
        "private part published: {}",
        r.text
    );

    let set = KeySet::from_jwks_json(&r.text).unwrap();
    let agent = app.agent("reader").await;
    let minted = app.mint_ok(&agent, "docs/team-a/q3.pdf").await;
    let req = Request {
        amount: None,
        operation: Action::parse(ACTION).unwrap(),
        resource: Resource::parse("docs/team-a/q3.pdf").unwrap(),
        service: Some(Audience::parse(AUDIENCE).unwrap()),
        now: now(),
        proven_key: None,
    };
    let t = minted["access_token"].as_str().unwrap();
    let grant = token::authorize(t, &set, &req, |_| false, &Limits::default()).unwrap();
    assert_eq!(grant.agent().unwrap().as_str(), agent.id);
    // And the JWKS of another issuer does not.
    let other = TestApp::spawn().await;
    let other_set =
        KeySet::from_jwks_json(&other.get("/.well-known/jwks.json", None).await.text).unwrap();
    let d = token::authorize(t, &other_set, &req, |_| false, &Limits::default()).unwrap_err();
    assert_eq!(d.reason, Reason::BadSignature);
}

#[tokio::test]
async fn scope_identifier_and_resource_mint_exactly_that_right_for_that_audience() {
    let app = TestApp::spawn().await;
    let agent = app.agent("reader").await;
    let form = TestApp::form(
        app.assertion(&agent).build(),
        &[
            ("scope", ACTION),
            ("identifier", "docs/team-a/q3.pdf"),
            ("resource", AUDIENCE),
        ],
    );
    let r = app.request_token(&form, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["token_type"], "Bearer");
    assert_eq!(r.json["scope"], ACTION);
    assert_eq!(r.json["expires_in"], 300);
    assert_eq!(r.headers["cache-control"], "no-store");
    let seen = app.inspect(r.token());
    assert_eq!(seen.agent, agent.id);
    assert_eq!(
        seen.rights,
        vec![RightView {
            action: ACTION.into(),
            resource: "docs/team-a/q3.pdf".into(),
            prefix: false,
        }]
    );
    assert_eq!(seen.audience.as_deref(), Some(AUDIENCE));
    assert_eq!(seen.holder, None);
    assert_eq!(seen.token_id, r.json["token_id"].as_str().unwrap());
    assert_eq!(
        (seen.expires_at - seen.issued_at.unwrap()).num_seconds(),
        300
    );
    assert_eq!(
        r.json["authorization_details"],
        json!([{
            "type": "tessera", "actions": [ACTION],
            "identifier": "docs/team-a/q3.pdf", "locations": [AUDIENCE],
        }])
    );
}

#[tokio::test]
async fn authorization_details_mint_exactly_the_detail_and_are_echoed() {
    let app = TestApp::spawn().await;
    let agent = app.agent("reader").await;
    let detail = json!([{
        "type": "tessera", "actions": [ACTION],
        "locations": [AUDIENCE], "identifier": "docs/team-a/reports/*",
    }]);
    let form = TestApp::form(
        app.assertion(&agent).build(),
        &[
            ("authorization_details", &detail.to_string()),
            ("lifetime", "2m"),
        ],
    );
    let r = app.request_token(&form, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["token_type"], "Bearer");
    assert_eq!(r.json["expires_in"], 120);
    let seen = app.inspect(r.token());
    assert_eq!(
        seen.rights,
        vec![RightView {
            action: ACTION.into(),
            resource: "docs/team-a/reports/".into(),
            prefix: true,
        }]
    );
    assert_eq!(seen.audience.as_deref(), Some(AUDIENCE));
    assert_eq!(r.json["authorization_details"], detail);

    // A detail of another type is refused with its own code.
    let other = json!([{ "type": "payment", "actions": [ACTION], "identifier": "x" }]);
    let form = TestApp::form(
        app.assertion(&agent).build(),
        &[("authorization_details", &other.to_string())],
    );
    app.request_token(&form, None)
        .await
        .assert_oauth_error(400, "invalid_authorization_details");
}

fn dpop_form(app: &TestApp, agent: &TestAgent) -> Vec<(&'static str, String)> {
    TestApp::form(
        app.assertion(agent).build(),
        &[
            ("scope", ACTION),
            ("identifier", "docs/team-a/x"),
            ("resource", AUDIENCE),
        ],
    )
}

#[tokio::test]
async fn a_dpop_proof_binds_the_token_to_the_proof_key() {
    let app = TestApp::spawn().await;
    let agent = app.agent("bound").await;
    // The proof key is not the agent's key: the token is bound to the proof's.
    let holder = TestAgent::new("holder").key;
    let proof = dpop_proof(&holder, "POST", &app.token_endpoint());
    let r = app
        .request_token(&dpop_form(&app, &agent), Some(&proof))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["token_type"], "DPoP");
    let expected = jose::to_biscuit_key(&holder.verifying_key()).unwrap();
    assert_eq!(app.inspect(r.token()).holder, Some(expected.to_string()));
}

#[tokio::test]
async fn dpop_proofs_with_the_wrong_method_url_or_time_are_refused() {
    let app = TestApp::spawn().await;
    let agent = app.agent("bound").await;
    let k = TestAgent::new("holder").key;
    let stale = jose::sign(
        &k,
        Some("dpop+jwt"),
        true,
        &jose::DpopClaims {
            jti: "stale".into(),
            htm: "POST".into(),
            htu: app.token_endpoint(),
            iat: now().timestamp() - 600,
            ath: None,
        },
    )
    .unwrap();
    let untyped = jose::sign(
        &k,
        None,
        true,
        &jose::DpopClaims {
            jti: "untyped".into(),
            htm: "POST".into(),
            htu: app.token_endpoint(),
            iat: now().timestamp(),
            ath: None,
        },
    )
    .unwrap();
    for proof in [
        dpop_proof(&k, "GET", &app.token_endpoint()),
        dpop_proof(&k, "POST", &app.url("/oauth/revoke")),
        dpop_proof(&k, "POST", "http://elsewhere.example/oauth/token"),
        stale,
        untyped,
        "garbage".to_owned(),
    ] {
        let r = app
            .request_token(&dpop_form(&app, &agent), Some(&proof))
            .await;
        r.assert_oauth_error(400, "invalid_dpop_proof");
    }
}

#[tokio::test]
async fn a_replayed_dpop_proof_is_refused() {
    let app = TestApp::spawn().await;
    let agent = app.agent("bound").await;
    let proof = dpop_proof(&TestAgent::new("holder").key, "POST", &app.token_endpoint());
    let first = app
        .request_token(&dpop_form(&app, &agent), Some(&proof))
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    let again = app
        .request_token(&dpop_form(&app, &agent), Some(&proof))
        .await;
    again.assert_oauth_error(400, "invalid_dpop_proof");
    assert!(again.description().contains("jti"), "{}", again.text);
}

#[tokio::test]
async fn a_replayed_dpop_proof_still_spends_the_fresh_assertion_it_came_with() {
    let app = TestApp::spawn().await;
    let agent = app.agent("bound").await;
    let holder = TestAgent::new("holder").key;
    let proof = dpop_proof(&holder, "POST", &app.token_endpoint());
    let first = app
        .request_token(&dpop_form(&app, &agent), Some(&proof))
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    let fresh = dpop_form(&app, &agent);
    app.request_token(&fresh, Some(&proof))
        .await
        .assert_oauth_error(400, "invalid_dpop_proof");
    // The assertion was used by the refused request.
    let again = app
        .request_token(
            &fresh,
            Some(&dpop_proof(&holder, "POST", &app.token_endpoint())),
        )
        .await;
    again.assert_oauth_error(401, "invalid_client");
    assert!(again.description().contains("jti"), "{}", again.text);
}

#[tokio::test]
async fn a_refused_request_still_spends_its_assertion() {
    let app = TestApp::spawn().await;
    let agent = app.agent("refused").await;
    let assertion = app.assertion(&agent).build();
    let outside = TestApp::form(
        assertion.clone(),
        &[
            ("scope", ACTION),
            ("identifier", "docs/team-b/x"),
            ("resource", AUDIENCE),
        ],
    );
    app.request_token(&outside, None)
        .await
        .assert_oauth_error(400, "invalid_scope");
    let inside = TestApp::form(
        assertion,
        &[
            ("scope", ACTION),
            ("identifier", "docs/team-a/x"),
            ("resource", AUDIENCE),
        ],
    );
    let r = app.request_token(&inside, None).await;
    r.assert_oauth_error(401, "invalid_client");
    assert!(r.description().contains("jti"), "{}", r.text);
}

#[tokio::test]
async fn a_minted_token_is_in_the_ledger_and_its_event_in_the_audit_log_once_answered() {
    let app = TestApp::spawn().await;
    let agent = app.agent("recorded").await;
    let minted = app.mint_ok(&agent, "docs/team-a/ledger").await;
    let token_id = minted["token_id"].as_str().unwrap();
    let stores = &app.state.stores;
    let entry = stores.tokens.get(token_id).await.unwrap().unwrap();
    assert_eq!(entry.agent.as_str(), agent.id);
    assert_eq!(
        entry.revocation_id,
        app.inspect(minted["access_token"].as_str().unwrap()).blocks[0].revocation_id
    );
    let events = stores
        .audit
        .query(&AuditQuery {
            token_id: Some(token_id.to_owned()),
            limit: 10,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    let event = &events[0].1;
    assert_eq!(event.kind, AuditKind::Mint);
    assert_eq!(event.outcome, "granted");
    assert_eq!(event.agent.as_deref(), Some(agent.id.as_str()));
    assert_eq!(
        event.capability.as_deref(),
        Some(format!("{ACTION} on docs/team-a/ledger at {AUDIENCE}").as_str())
    );
}

#[tokio::test]
async fn bad_client_assertions_are_invalid_client_with_www_authenticate() {
    let app = TestApp::spawn().await;
    let agent = app.agent("client").await;
    let t = now().timestamp();
    let impostor = TestAgent::new("impostor").key;
    let cases: Vec<(&str, String)> = vec![
        (
            "signed by another key",
            app.assertion(&agent).signed_by(&impostor).build(),
        ),
        (
            "expired",
            app.assertion(&agent)
                .claim("iat", t - 600)
                .claim("exp", t - 120)
                .build(),
        ),
        (
            "issued in the future",
            app.assertion(&agent)
                .claim("iat", t + 120)
                .claim("exp", t + 200)
                .build(),
        ),
        (
            "wrong aud",
            app.assertion(&agent)
                .claim("aud", "https://other-issuer.example/oauth/token")
                .build(),
        ),
        ("alg none", app.assertion(&agent).alg("none").build()),
        ("alg HS256", app.assertion(&agent).alg("HS256").build()),
        (
            "sub differs from iss",
            app.assertion(&agent)
                .claim("sub", "agent://acme/else")
                .build(),
        ),
        (
            "lives longer than 5 minutes",
            app.assertion(&agent).claim("exp", t + 3600).build(),
        ),
        ("no jti", {
            let mut b = app.assertion(&agent);
            b.remove_claim("jti");
            b.build()
        }),
        ("not a JWS", "not.a.jws".to_owned()),
    ];
    for (what, assertion) in cases {
        let form = TestApp::form(
            assertion,
            &[
                ("scope", ACTION),
                ("identifier", "docs/team-a/x"),
                ("resource", AUDIENCE),
            ],
        );
        let r = app.request_token(&form, None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{what}: {}", r.text);
        r.assert_oauth_error(401, "invalid_client");
    }
    // A client_id that differs from the assertion's iss.
    let form = TestApp::form(
        app.assertion(&agent).build(),
        &[
            ("client_id", "agent://acme/someone-else"),
            ("scope", ACTION),
            ("identifier", "docs/team-a/x"),
            ("resource", AUDIENCE),
        ],
    );
    app.request_token(&form, None)
        .await
        .assert_oauth_error(401, "invalid_client");
    // The same agent with a good assertion still gets a token.
    app.mint_ok(&agent, "docs/team-a/x").await;
}

#[tokio::test]
async fn a_missing_client_assertion_is_invalid_client() {
    let app = TestApp::spawn().await;
    let form = [
        ("grant_type", "client_credentials".to_owned()),
        ("scope", ACTION.to_owned()),
        ("identifier", "docs/team-a/x".to_owned()),
    ];
    app.request_token(&form, None)
        .await
        .assert_oauth_error(401, "invalid_client");
}

#[tokio::test]
async fn an_unknown_agent_is_invalid_client() {
    let app = TestApp::spawn().await;
    let stranger = TestAgent::new("stranger");
    app.mint(&stranger, "docs/team-a/x")
        .await
        .assert_oauth_error(401, "invalid_client");
}

#[tokio::test]
async fn a_disabled_agent_is_invalid_client() {
    let app = TestApp::spawn().await;
    let agent = app.agent("soon-disabled").await;
    app.mint_ok(&agent, "docs/team-a/x").await;
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
    let r = app.mint(&agent, "docs/team-a/x").await;
    r.assert_oauth_error(401, "invalid_client");
    assert!(r.description().contains("disabled"), "{}", r.text);
}

/// Of 16 concurrent requests carrying one assertion, exactly one gets a token.
pub async fn one_of_16_concurrent_uses_of_an_assertion_wins(app: &TestApp) {
    let agent = app.agent("racer").await;
    let assertion = app.assertion(&agent).build();
    let form = TestApp::form(
        assertion,
        &[
            ("scope", ACTION),
            ("identifier", "docs/team-a/x"),
            ("resource", AUDIENCE),
        ],
    );
    let form: Vec<(String, String)> = form.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(16));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let http = app.http.clone();
        let url = app.token_endpoint();
        let form = form.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let r = http.post(url).form(&form).send().await.unwrap();
            Reply::from(r).await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        let r = t.await.unwrap();
        match r.status {
            StatusCode::OK => ok += 1,
            _ => r.assert_oauth_error(401, "invalid_client"),
        }
    }
    assert_eq!(ok, 1, "exactly one request may use the assertion");
    // The refused requests left no ledger entry and no mint event.
    let stores = &app.state.stores;
    assert_eq!(
        stores
            .tokens
            .outstanding(&agent.id, now())
            .await
            .unwrap()
            .len(),
        1
    );
    let events = stores
        .audit
        .query(&AuditQuery {
            agent: Some(agent.id.clone()),
            limit: 100,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    let mints = events
        .iter()
        .filter(|(_, e)| e.kind == AuditKind::Mint)
        .count();
    assert_eq!(mints, 1, "{events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn a_replayed_assertion_jti_succeeds_exactly_once_among_16_concurrent_requests() {
    let app = TestApp::spawn().await;
    one_of_16_concurrent_uses_of_an_assertion_wins(&app).await;
}

#[tokio::test]
async fn a_scope_outside_the_ceiling_is_invalid_scope_naming_what_was_outside() {
    let app = TestApp::spawn().await;
    let agent = app.agent("bounded").await;
    let cases: [(&[(&str, &str)], &str); 6] = [
        (
            &[
                ("scope", "docs:write"),
                ("identifier", "docs/team-a/x"),
                ("resource", AUDIENCE),
            ],
            "docs:write",
        ),
        (
            &[
                ("scope", ACTION),
                ("identifier", "docs/team-b/x"),
                ("resource", AUDIENCE),
            ],
            "docs/team-b/x",
        ),
        (
            // Wider than the ceiling's prefix: never narrowed silently.
            &[
                ("scope", ACTION),
                ("identifier", "docs/*"),
                ("resource", AUDIENCE),
            ],
            "docs/*",
        ),
        (
            &[
                ("scope", ACTION),
                ("identifier", "docs/team-a/x"),
                ("resource", "https://evil.example"),
            ],
            "https://evil.example",
        ),
        (
            &[
                ("scope", ACTION),
                ("identifier", "docs/team-a/x"),
                ("resource", AUDIENCE),
                ("lifetime", "1h"),
            ],
            "3600s",
        ),
        (
            &[("scope", ACTION), ("identifier", "docs/team-a/x")],
            "tool server",
        ),
    ];
    for (extra, named) in cases {
        let form = TestApp::form(app.assertion(&agent).build(), extra);
        let r = app.request_token(&form, None).await;
        r.assert_oauth_error(400, "invalid_scope");
        assert!(
            r.description().contains(named),
            "{extra:?}: description should name {named}: {}",
            r.text
        );
    }
}

#[tokio::test]
async fn resource_names_with_quotes_and_newlines_get_exactly_that_resource() {
    let app = TestApp::spawn().await;
    let agent = TestAgent::new("quoting");
    let names = ["a\"b\nc", "\"); right(\"admin", "x\") or true; //\n\\"];
    app.register_agent(&agent, &[ACTION], &names, &[AUDIENCE], None)
        .await;
    for name in names {
        let minted = app.mint_ok(&agent, name).await;
        let t = minted["access_token"].as_str().unwrap();
        let seen = app.inspect(t);
        assert_eq!(
            seen.rights,
            vec![RightView {
                action: ACTION.into(),
                resource: name.into(),
                prefix: false,
            }],
            "{name:?}"
        );
        assert_eq!(minted["authorization_details"][0]["identifier"], name);
        let req = |resource: &str| Request {
            amount: None,
            operation: Action::parse(ACTION).unwrap(),
            resource: Resource::parse(resource).unwrap(),
            service: Some(Audience::parse(AUDIENCE).unwrap()),
            now: now(),
            proven_key: None,
        };
        let keys = app.keys();
        let limits = Limits::default();
        assert!(token::authorize(t, &keys, &req(name), |_| false, &limits).is_ok());
        for other in ["admin", "a", "a\"b", "docs/team-a/x"] {
            let d = token::authorize(t, &keys, &req(other), |_| false, &limits).unwrap_err();
            assert_eq!(d.reason, Reason::OutOfScope, "{name:?} allowed {other:?}");
        }
    }
}

async fn post_raw(app: &TestApp, content_type: &str, body: impl Into<reqwest::Body>) -> Reply {
    let r = app
        .http
        .post(app.token_endpoint())
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    Reply::from(r).await
}

#[tokio::test]
async fn malformed_token_requests_get_rfc_6749_json_errors() {
    let app = TestApp::spawn().await;
    let agent = app.agent("sloppy").await;
    let good = |app: &TestApp| {
        serde_urlencoded::to_string(TestApp::form(
            app.assertion(&agent).build(),
            &[
                ("scope", ACTION),
                ("identifier", "docs/team-a/x"),
                ("resource", AUDIENCE),
            ],
        ))
        .unwrap()
    };

    // JSON instead of a form.
    let json_body = json!({ "grant_type": "client_credentials" }).to_string();
    post_raw(&app, "application/json", json_body)
        .await
        .assert_oauth_error(400, "invalid_request");

    // A repeated parameter.
    let r = post_raw(
        &app,
        "application/x-www-form-urlencoded",
        format!("{}&scope=docs%3Aread", good(&app)),
    )
    .await;
    r.assert_oauth_error(400, "invalid_request");
    assert!(r.description().contains("scope"), "{}", r.text);

    // No grant_type.
    let body = good(&app).replace("grant_type=client_credentials&", "");
    assert!(!body.contains("grant_type"));
    post_raw(&app, "application/x-www-form-urlencoded", body)
        .await
        .assert_oauth_error(400, "invalid_request");

    // Another grant type.
    let body = good(&app).replace("grant_type=client_credentials", "grant_type=password");
    post_raw(&app, "application/x-www-form-urlencoded", body)
        .await
        .assert_oauth_error(400, "unsupported_grant_type");

    // Scope naming two actions.
    let body = good(&app).replace("scope=docs%3Aread", "scope=docs%3Aread+docs%3Awrite");
    post_raw(&app, "application/x-www-form-urlencoded", body)
        .await
        .assert_oauth_error(400, "invalid_scope");

    // After all that, a good request still works.
    let r = post_raw(
        &app,
        "application/x-www-form-urlencoded; charset=utf-8",
        good(&app),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn an_oversized_body_is_413() {
    let app = TestApp::spawn().await;
    let max = app.state.config.max_body_bytes;
    let body = format!("grant_type=client_credentials&pad={}", "a".repeat(max));
    let r = post_raw(&app, "application/x-www-form-urlencoded", body).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.text);
}

#[tokio::test]
async fn an_oversized_chunked_body_without_content_length_is_413() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn().await;
    let max = app.state.config.max_body_bytes;
    let host = app.base.trim_start_matches("http://").to_owned();
    let mut s = tokio::net::TcpStream::connect(&host).await.unwrap();
    let head = format!(
        "POST /oauth/token HTTP/1.1\r\nHost: {host}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let chunk = format!("400\r\n{}\r\n", "a".repeat(1024));
    // Writes may fail once the server has answered and closed.
    for _ in 0..=max / 1024 {
        if s.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let _ = s.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        s.read_to_end(&mut answer),
    )
    .await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}
