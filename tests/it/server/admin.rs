//! The admin API: its own authorization, the agent registry, revocations,
//! the feed and the audit log; and RFC 7009 revocation by an agent.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use tessera::server::admin;
use tessera::token::{self, Lifetime};

use super::helpers::{entries, now, random_hex, segment, Reply, TestAgent, TestApp, AUDIENCE};

#[tokio::test]
async fn the_admin_api_without_a_token_is_401_with_www_authenticate() {
    let app = TestApp::spawn().await;
    for path in ["/v1/agents", "/v1/revocations", "/v1/audit"] {
        let r = app.get(path, None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path}: {}", r.text);
        assert!(r.headers.contains_key("www-authenticate"), "{path}");
    }
    let r = app.get("/v1/agents", Some("not-a-token")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
}

#[tokio::test]
async fn an_expired_admin_token_is_refused() {
    let app = TestApp::spawn().await;
    let cap = admin::admin_capability(Lifetime::parse("1s").unwrap()).unwrap();
    let past = now() - chrono::Duration::minutes(10);
    let expired = token::mint(&cap, app.state.ring().active(), past)
        .unwrap()
        .token;
    let r = app.get("/v1/agents", Some(&expired)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert!(r.headers.contains_key("www-authenticate"));
}

#[tokio::test]
async fn a_revoked_admin_token_is_refused() {
    let app = TestApp::spawn().await;
    let cap = admin::admin_capability(Lifetime::parse("1h").unwrap()).unwrap();
    let doomed = token::mint(&cap, app.state.ring().active(), now()).unwrap();
    let r = app.get("/v1/agents", Some(&doomed.token)).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "works before revocation: {}",
        r.text
    );
    let r = app
        .revoke_admin(&json!({ "revocation_id": doomed.revocation_id }))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = app.get("/v1/agents", Some(&doomed.token)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert!(r.headers.contains_key("www-authenticate"));
}

#[tokio::test]
async fn an_agent_token_lacking_the_admin_right_is_refused() {
    let app = TestApp::spawn().await;
    let agent = app.agent("sneaky").await;
    let minted = app.mint_ok(&agent, "docs/team-a/x").await;
    let with_audience = minted["access_token"].as_str().unwrap();
    // A token for a tool server is not for the issuer at all.
    let r = app.get("/v1/agents", Some(with_audience)).await;
    assert!(
        matches!(r.status.as_u16(), 401 | 403),
        "{} {}",
        r.status,
        r.text
    );
    assert!(r.json.get("error").is_some(), "{}", r.text);

    // A valid token with no audience and another right: 403 (docs/api.md).
    let plain = TestAgent::new("plain");
    app.register_agent(&plain, &["docs:read"], &["/v1/*"], &[], None)
        .await;
    let form = TestApp::form(
        app.assertion(&plain).build(),
        &[("scope", "docs:read"), ("identifier", "/v1/*")],
    );
    let r = app.request_token(&form, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let t = r.token().to_owned();
    for path in ["/v1/agents", "/v1/revocations", "/v1/audit"] {
        let r = app.get(path, Some(&t)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}: {}", r.text);
        assert_eq!(r.error(), "insufficient_scope");
    }
}

#[tokio::test]
async fn no_agent_can_hold_an_admin_token() {
    let app = TestApp::spawn().await;
    // Registration refuses the issuer's reserved actions and agent ids, so
    // the token endpoint can never mint `tessera:admin`.
    let agent = TestAgent::new("climber");
    for (id, action) in [
        (agent.id.as_str(), "tessera:admin"),
        (agent.id.as_str(), "tessera:anything"),
        ("agent://tessera/operator", "orders:read"),
    ] {
        let r = app
            .admin_post(
                "/v1/agents",
                &json!({
                    "id": id, "public_key": agent.public_key(),
                    "ceiling": { "actions": [action], "resources": ["/v1/*"] },
                }),
            )
            .await;
        r.assert_oauth_error(400, "invalid_request");
        assert!(r.description().contains("reserved"), "{}", r.text);
    }
    // Even a root-signed token with the admin right is refused unless it is
    // the operator's own, undelegated token.
    let ring = app.state.ring();
    let cap = tessera::token::Capability {
        agent: tessera::token::AgentId::parse(&agent.id).unwrap(),
        ..tessera::server::admin::admin_capability(tessera::token::Lifetime::parse("5m").unwrap())
            .unwrap()
    };
    let t = tessera::token::mint(&cap, ring.active(), now())
        .unwrap()
        .token;
    for path in ["/v1/agents", "/v1/revocations", "/v1/audit"] {
        let r = app.get(path, Some(&t)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}: {}", r.text);
    }
    // The operator's token still works.
    let r = app.get("/v1/agents", Some(&app.admin_token())).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn agents_round_trip_through_register_list_get_and_disable() {
    let app = TestApp::spawn().await;
    let agent = TestAgent::new("roundtrip");
    let created = app
        .register_agent(
            &agent,
            &["docs:read", "docs:write"],
            &["docs/*"],
            &[AUDIENCE],
            Some("5m"),
        )
        .await;
    assert_eq!(created.json["id"], agent.id.as_str());
    assert_eq!(created.json["public_key"], agent.public_key().as_str());
    assert_eq!(created.json["ceiling"]["max_ttl_secs"], 300);
    assert_eq!(created.json["disabled"], false);

    // Registering again replaces (200), here with the key as a JWK.
    let jwk = tessera::jose::OkpJwk::from_key(&agent.key.verifying_key());
    let again = app
        .admin_post(
            "/v1/agents",
            &json!({
                "id": agent.id, "public_key": jwk,
                "ceiling": { "actions": ["docs:read"], "resources": ["docs/*"], "audiences": [AUDIENCE] },
            }),
        )
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    assert_eq!(again.json["public_key"], agent.public_key().as_str());
    assert_eq!(again.json["ceiling"]["actions"], json!(["docs:read"]));

    let list = app.admin_get("/v1/agents").await;
    assert_eq!(list.status, StatusCode::OK);
    let ids: Vec<&str> = list
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![agent.id.as_str()]);

    let path = format!("/v1/agents/{}", segment(&agent.id));
    let one = app.admin_get(&path).await;
    assert_eq!(one.status, StatusCode::OK, "{}", one.text);
    assert_eq!(one.json["id"], agent.id.as_str());
    assert_eq!(
        app.admin_get("/v1/agents/agent%3A%2F%2Fnobody")
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    let r = app
        .http
        .delete(app.url(&path))
        .bearer_auth(app.admin_token())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(app.admin_get(&path).await.json["disabled"], true);

    // Bad registrations are refused.
    for bad in [
        json!({ "id": "not a uri", "public_key": agent.public_key(), "ceiling": { "actions": ["a"], "resources": ["r"] } }),
        json!({ "id": "agent://x", "public_key": "ed25519/zz", "ceiling": { "actions": ["a"], "resources": ["r"] } }),
        json!({ "id": "agent://x", "public_key": agent.public_key(), "ceiling": { "actions": [], "resources": ["r"] } }),
        json!({ "id": "agent://x", "public_key": agent.public_key(), "ceiling": { "actions": ["a"], "resources": ["*"] } }),
        json!({ "id": "agent://x", "public_key": agent.public_key(), "ceiling": { "actions": ["a"], "resources": ["r"], "max_ttl": "2d" } }),
        json!({ "id": "agent://x", "public_key": agent.public_key(), "ceiling": { "actions": ["a"], "resources": ["r"] }, "extra": 1 }),
    ] {
        let r = app.admin_post("/v1/agents", &bad).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text);
    }
}

fn authority_rid(app: &TestApp, token: &str) -> String {
    app.inspect(token).blocks[0].revocation_id.clone()
}

#[tokio::test]
async fn deleting_an_agent_disables_it_and_revokes_its_outstanding_tokens() {
    let app = TestApp::spawn().await;
    let agent = app.agent("retiring").await;
    let bystander = app.agent("bystander").await;
    let t1 = app.mint_ok(&agent, "docs/team-a/1").await;
    let t2 = app.mint_ok(&agent, "docs/team-a/2").await;
    let other = app.mint_ok(&bystander, "docs/team-a/1").await;
    let rid = |v: &Value| authority_rid(&app, v["access_token"].as_str().unwrap());

    let r = app
        .http
        .delete(app.url(&format!("/v1/agents/{}", segment(&agent.id))))
        .bearer_auth(app.admin_token())
        .send()
        .await
        .unwrap();
    let r = Reply::from(r).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["disabled"], true);
    assert_eq!(r.json["revoked"].as_array().unwrap().len(), 2, "{}", r.text);

    let mut feed: Vec<String> = app.feed(None).await.into_iter().map(|(_, id)| id).collect();
    // Minted in the same second: either order.
    feed.sort();
    let mut expected = vec![rid(&t1), rid(&t2)];
    expected.sort();
    assert_eq!(feed, expected);
    assert!(!feed.contains(&rid(&other)));

    app.mint(&agent, "docs/team-a/3")
        .await
        .assert_oauth_error(401, "invalid_client");
    app.mint_ok(&bystander, "docs/team-a/3").await;
    assert_eq!(
        app.admin_get(&format!("/v1/agents/{}", segment(&agent.id)))
            .await
            .json["disabled"],
        true
    );
}

#[tokio::test]
async fn revocations_by_token_revocation_id_token_id_and_agent_appear_in_the_feed_in_order() {
    let app = TestApp::spawn().await;
    let a = app.agent("a").await;
    let b = app.agent("b").await;
    let by_token = app.mint_ok(&a, "docs/team-a/1").await;
    let by_token_id = app.mint_ok(&a, "docs/team-a/2").await;
    let b1 = app.mint_ok(&b, "docs/team-a/1").await;
    let b2 = app.mint_ok(&b, "docs/team-a/2").await;
    let tok = |v: &Value| v["access_token"].as_str().unwrap().to_owned();
    let raw_id = random_hex(64);

    let mut expected = Vec::new();
    let mut acked_cursors = Vec::new();
    let steps = [
        (
            json!({ "token": tok(&by_token) }),
            vec![authority_rid(&app, &tok(&by_token))],
        ),
        (json!({ "revocation_id": raw_id }), vec![raw_id.clone()]),
        (
            json!({ "token_id": by_token_id["token_id"] }),
            vec![authority_rid(&app, &tok(&by_token_id))],
        ),
        (
            json!({ "agent": b.id, "reason": "compromised" }),
            vec![
                authority_rid(&app, &tok(&b1)),
                authority_rid(&app, &tok(&b2)),
            ],
        ),
    ];
    for (body, ids) in steps {
        let r = app.revoke_admin(&body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{body}: {}", r.text);
        let revoked = r.json["revoked"].as_array().unwrap();
        let got: Vec<String> = revoked
            .iter()
            .map(|x| x["revocation_id"].as_str().unwrap().to_owned())
            .collect();
        // By agent: the tokens were minted in the same second, either order.
        let (mut sorted_got, mut sorted_ids) = (got.clone(), ids);
        sorted_got.sort();
        sorted_ids.sort();
        assert_eq!(sorted_got, sorted_ids, "{body}");
        acked_cursors.extend(
            revoked
                .iter()
                .map(|x| x["cursor"].as_str().unwrap().to_owned()),
        );
        // The feed follows the acknowledged order.
        expected.extend(got);
    }

    let feed = app.feed(None).await;
    let (cursors, ids): (Vec<String>, Vec<String>) = feed.iter().cloned().unzip();
    assert_eq!(ids, expected);
    assert_eq!(
        cursors, acked_cursors,
        "the feed's cursors are the acknowledged ones"
    );
    assert!(cursors.windows(2).all(|w| w[0] < w[1]), "{cursors:?}");

    // Resuming after the second entry gives the rest.
    let rest: Vec<String> = app
        .feed(Some(&cursors[1]))
        .await
        .into_iter()
        .map(|(_, i)| i)
        .collect();
    assert_eq!(rest, expected[2..].to_vec());
    let full = app.admin_get("/v1/revocations").await;
    assert_eq!(full.json["next"], cursors.last().unwrap().as_str());
    let b_entry = &full.json["entries"][3]["revocation"];
    assert_eq!(b_entry["reason"], "compromised");
    assert_eq!(b_entry["agent"], b.id.as_str());

    // Bad requests: none or two ways, a bad id.
    for bad in [
        json!({}),
        json!({ "revocation_id": raw_id, "agent": b.id }),
        json!({ "revocation_id": "xyz" }),
        json!({ "token": "garbage" }),
    ] {
        let r = app.revoke_admin(&bad).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text);
    }
    assert_eq!(app.feed(None).await.len(), expected.len());
    let r = app.admin_get("/v1/revocations?after=not-a-cursor").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_long_poll_on_the_feed_returns_promptly_when_a_revocation_is_posted() {
    let app = TestApp::spawn().await;
    let first = random_hex(64);
    let r = app.revoke_admin(&json!({ "revocation_id": first })).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let cursor = r.json["revoked"][0]["cursor"].as_str().unwrap().to_owned();

    let http = app.http.clone();
    let url = app.url(&format!("/v1/revocations?after={cursor}&wait=5"));
    let admin = app.admin_token();
    let started = Instant::now();
    let poll = tokio::spawn(async move {
        let r = http.get(url).bearer_auth(admin).send().await.unwrap();
        (Reply::from(r).await, started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !poll.is_finished(),
        "the long poll returned before anything was posted"
    );
    let second = random_hex(64);
    let r = app.revoke_admin(&json!({ "revocation_id": second })).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let (reply, took) = poll.await.unwrap();
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let ids: Vec<String> = entries(&reply.json).into_iter().map(|(_, i)| i).collect();
    assert_eq!(ids, vec![second]);
    assert!(took < Duration::from_secs(3), "long poll took {took:?}");

    // With nothing new, it waits and answers empty with the same cursor.
    let next = reply.json["next"].as_str().unwrap().to_owned();
    let started = Instant::now();
    let r = app
        .admin_get(&format!("/v1/revocations?after={next}&wait=1"))
        .await;
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert_eq!(entries(&r.json), vec![]);
    assert_eq!(r.json["next"], next.as_str());
}

async fn oauth_revoke(app: &TestApp, agent: &TestAgent, token: &str) -> Reply {
    let aud = app.url("/oauth/revoke");
    let form = [
        ("token", token.to_owned()),
        (
            "client_assertion_type",
            tessera::server::oauth::JWT_BEARER.to_owned(),
        ),
        ("client_assertion", app.assertion_for(agent, &aud).build()),
    ];
    let r = app.http.post(&aud).form(&form).send().await.unwrap();
    Reply::from(r).await
}

#[tokio::test]
async fn an_agent_revokes_its_own_token_but_not_another_agents() {
    let app = TestApp::spawn().await;
    let owner = app.agent("owner").await;
    let thief = app.agent("thief").await;
    let minted = app.mint_ok(&owner, "docs/team-a/1").await;
    let t = minted["access_token"].as_str().unwrap();

    let r = oauth_revoke(&app, &thief, t).await;
    r.assert_oauth_error(400, "unauthorized_client");
    assert!(app.feed(None).await.is_empty());

    let r = oauth_revoke(&app, &owner, t).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let ids: Vec<String> = app.feed(None).await.into_iter().map(|(_, i)| i).collect();
    assert_eq!(ids, vec![authority_rid(&app, t)]);

    // An invalid token is not an error (RFC 7009 §2.2), and records nothing.
    let r = oauth_revoke(&app, &owner, "garbage").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(app.feed(None).await.len(), 1);
}

#[tokio::test]
async fn the_audit_log_holds_mints_refusals_and_revocations_but_never_a_token() {
    let app = TestApp::spawn().await;
    let agent = app.agent("audited").await;
    let other = app.agent("other").await;
    let minted = app.mint_ok(&agent, "docs/team-a/1").await;
    let t = minted["access_token"].as_str().unwrap();
    let token_id = minted["token_id"].as_str().unwrap();
    app.mint(&agent, "docs/team-b/secret")
        .await
        .assert_oauth_error(400, "invalid_scope");
    assert_eq!(oauth_revoke(&app, &agent, t).await.status, StatusCode::OK);
    app.mint_ok(&other, "docs/team-a/1").await;

    let r = app
        .admin_get(&format!("/v1/audit?agent={}", segment(&agent.id)))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let events = r.json["events"].as_array().unwrap();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"]["kind"].as_str().unwrap())
        .collect();
    for k in ["admin", "mint", "refusal", "revocation"] {
        assert!(kinds.contains(&k), "no {k} event in {kinds:?}");
    }
    assert!(
        events
            .iter()
            .all(|e| e["event"]["agent"] == agent.id.as_str()),
        "{}",
        r.text
    );
    let mint = events
        .iter()
        .find(|e| e["event"]["kind"] == "mint")
        .unwrap();
    assert_eq!(mint["event"]["token_id"], token_id);
    assert_eq!(mint["event"]["remote_addr"], "127.0.0.1");
    let refusal = events
        .iter()
        .find(|e| e["event"]["kind"] == "refusal")
        .unwrap();
    assert!(
        refusal["event"]["reason"]
            .as_str()
            .unwrap()
            .contains("docs/team-b/secret"),
        "{refusal}"
    );

    let by_token = app
        .admin_get(&format!("/v1/audit?token_id={token_id}"))
        .await;
    let kinds: Vec<&str> = by_token.json["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"]["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["mint", "revocation"]);

    let everything = app.admin_get("/v1/audit?limit=1000").await;
    assert!(!everything.text.contains(t), "the audit log holds a token");
    // Nor a piece of it long enough to matter.
    assert!(!everything.text.contains(&t[..40]));
}
