//! `/oauth/authorize` for a registered agent with `redirect_uris`: the
//! agent id is the `client_id`, its registered URIs are compared exactly,
//! its ceiling bounds the scopes, and it redeems the code with
//! `private_key_jwt` (never as a public client).

use reqwest::header::LOCATION;
use reqwest::StatusCode;
use serde_json::json;
use tessera::server::oauth::JWT_BEARER;

use super::authorize::{allowed, approve, consent_page, world, World, MCP, VERIFIER};
use super::fixture::get_with;
use crate::server::helpers::{segment, Reply, TestAgent};

const REDIRECT: &str = "https://app.example/cb";

/// Registers an agent allowed `get_order` and `list_orders` (not
/// `create_order`) at the MCP server, redirecting to [`REDIRECT`], and
/// makes it the world's client.
async fn agent_client(w: &mut World) -> TestAgent {
    let agent = TestAgent::new("orders-bot");
    let r = w
        .app
        .admin_post(
            "/v1/agents",
            &json!({
                "id": agent.id, "public_key": agent.public_key(),
                "description": "Orders <bot>",
                "ceiling": {
                    "actions": ["get_order", "list_orders"],
                    "resources": ["orders*"], "audiences": [MCP],
                },
                "redirect_uris": [REDIRECT, "http://127.0.0.1:7777/cb"],
            }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json["redirect_uris"][0], REDIRECT, "{}", r.text);
    w.client_id = agent.id.clone();
    w.redirect = REDIRECT.to_owned();
    agent
}

fn code_form(w: &World, code: &str) -> Vec<(&'static str, String)> {
    vec![
        ("grant_type", "authorization_code".into()),
        ("code", code.into()),
        ("redirect_uri", w.redirect.clone()),
        ("code_verifier", VERIFIER.into()),
    ]
}

async fn redeem_as_agent(w: &World, agent: &TestAgent, code: &str) -> Reply {
    let mut form = code_form(w, code);
    form.push(("client_assertion_type", JWT_BEARER.into()));
    form.push(("client_assertion", w.app.assertion(agent).build()));
    w.app.request_token(&form, None).await
}

#[tokio::test]
async fn a_registered_agent_gets_a_token_through_consent_and_private_key_jwt() {
    let Some(mut w) = world().await else { return };
    let agent = agent_client(&mut w).await;
    let alice = w.session("alice").await;
    // Alice may create orders, the agent's ceiling may not: not offered.
    let url = w.with("scope", Some("get_order list_orders create_order"));
    let html = consent_page(&url, &alice).await;
    assert!(html.contains("Orders &lt;bot&gt;"), "{html}");
    assert!(html.contains(&agent.id), "{html}");
    assert!(!html.contains("create_order"), "beyond the ceiling: {html}");
    // Even posted, a scope beyond the ceiling is not granted.
    let code = approve(
        &w,
        &alice,
        &url,
        &["get_order", "list_orders", "create_order"],
        false,
    )
    .await;

    // As a public client (no assertion): refused, and the code stays.
    let mut public = code_form(&w, &code);
    public.push(("client_id", agent.id.clone()));
    let r = w.app.request_token(&public, None).await;
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(r.error(), "invalid_client");

    // As the agent itself: only what the ceiling allows.
    let r = redeem_as_agent(&w, &agent, &code).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["scope"], "get_order list_orders");
    let g = allowed(&w, r.token(), "get_order").unwrap();
    assert_eq!(g.chain[0].as_str(), agent.id);
    assert_eq!(g.on_behalf.unwrap().person.subject(), "alice");
    assert!(allowed(&w, r.token(), "list_orders").is_ok());
    assert!(allowed(&w, r.token(), "create_order").is_err());

    // Another agent's assertion: the code is not its own.
    let code = approve(&w, &alice, &url, &["get_order"], false).await;
    let other = w.app.agent("other").await;
    let r = redeem_as_agent(&w, &other, &code).await;
    r.assert_oauth_error(400, "invalid_grant");
    assert!(r.text.contains("another client"), "{}", r.text);
}

#[tokio::test]
async fn an_unregistered_redirect_uri_of_an_agent_gets_an_error_page_never_a_redirect() {
    let Some(mut w) = world().await else { return };
    agent_client(&mut w).await;
    let alice = w.session("alice").await;
    for bad in [
        "https://app.example/cb/",
        "https://app.example/cb?x=1",
        "https://app.example:444/cb",
        "https://evil.example/cb",
        "http://127.0.0.1:7778/cb",
    ] {
        let resp = get_with(&w.with("redirect_uri", Some(bad)), Some(&alice)).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert!(resp.headers().get(LOCATION).is_none(), "{bad}");
        let body = resp.text().await.unwrap();
        assert!(body.contains("redirect_uri"), "{body}");
    }
    // The other registered URI is accepted.
    let ok = get_with(
        &w.with("redirect_uri", Some("http://127.0.0.1:7777/cb")),
        Some(&alice),
    )
    .await;
    assert_eq!(ok.status(), StatusCode::OK);
}

#[tokio::test]
async fn redirect_uris_are_validated_and_without_them_an_agent_cannot_use_authorize() {
    let Some(mut w) = world().await else { return };
    let agent = agent_client(&mut w).await;
    for bad in [
        json!(["http://app.example/cb"]),
        json!(["https://app.example/cb#x"]),
        json!(["/cb"]),
        json!(["https://u:p@app.example/cb"]),
        json!((0..11)
            .map(|i| format!("https://app.example/{i}"))
            .collect::<Vec<_>>()),
    ] {
        let r = w
            .app
            .admin_post(
                "/v1/agents",
                &json!({
                    "id": TestAgent::new("bad").id, "public_key": agent.public_key(),
                    "ceiling": { "actions": ["get_order"], "resources": ["orders*"] },
                    "redirect_uris": bad,
                }),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad} {}", r.text);
        assert!(r.text.contains("redirect_uri"), "{}", r.text);
    }
    // PATCH replaces the list; `[]` removes it, and then the agent is no
    // client of /oauth/authorize (an error page, no redirect).
    let patch = |body: serde_json::Value| {
        w.app
            .http
            .patch(w.app.url(&format!("/v1/agents/{}", segment(&agent.id))))
            .bearer_auth(w.app.admin_token())
            .json(&body)
            .send()
    };
    let r = Reply::from(
        patch(json!({ "redirect_uris": ["ftp://x/cb"] }))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = Reply::from(patch(json!({ "redirect_uris": [] })).await.unwrap()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.json.get("redirect_uris").is_none(), "{}", r.text);
    let alice = w.session("alice").await;
    let resp = get_with(&w.url(&w.params()), Some(&alice)).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.headers().get(LOCATION).is_none());
}

#[tokio::test]
async fn a_disabled_agent_gets_an_error_page_and_no_code() {
    let Some(mut w) = world().await else { return };
    let agent = agent_client(&mut w).await;
    let r = w
        .app
        .http
        .delete(w.app.url(&format!("/v1/agents/{}", segment(&agent.id))))
        .bearer_auth(w.app.admin_token())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let alice = w.session("alice").await;
    let resp = get_with(&w.url(&w.params()), Some(&alice)).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(resp.headers().get(LOCATION).is_none());
    assert!(resp.text().await.unwrap().contains("disabled"));
}
