//! The token endpoint's `authorization_code` (PKCE S256) and
//! `refresh_token` grants over HTTP. The code is put in the store as the
//! consent page will (that page comes with the web kit); everything after
//! it is the real endpoint.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::TimeDelta;
use sha2::{Digest, Sha256};
use tessera::store::authcode::{secret_hash, AuthCode};
use tessera::token::{self, Action, Audience, Person, Request, Resource, ResourcePattern};

use super::helpers::{now, random_hex, TestApp};

const CLIENT: &str = "https://client.example/oauth/metadata.json";
const REDIRECT: &str = "http://127.0.0.1:33418/callback";
const MCP: &str = "https://mcp.example/mcp";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn alice() -> Person {
    Person::parse("https://idp.example", "alice").unwrap()
}

/// Stores a code as the consent page does and returns it.
async fn consented(app: &TestApp, client: &str) -> String {
    let secret = random_hex(32);
    let code = AuthCode {
        code_hash: secret_hash(&secret),
        client_id: client.into(),
        redirect_uri: REDIRECT.into(),
        resource: Audience::parse(MCP).unwrap(),
        pattern: ResourcePattern::parse("orders/*").unwrap(),
        scopes: vec![
            Action::parse("get_order").unwrap(),
            Action::parse("list_orders").unwrap(),
        ],
        code_challenge: challenge(VERIFIER),
        person: alice(),
        family_id: random_hex(16),
        expires_at: now() + TimeDelta::seconds(60),
        confidential: false,
    };
    app.state
        .stores
        .authcodes
        .put_code(&code, now())
        .await
        .unwrap();
    secret
}

fn code_form(
    code: &str,
    client: &str,
    redirect: &str,
    verifier: &str,
) -> Vec<(&'static str, String)> {
    vec![
        ("grant_type", "authorization_code".into()),
        ("code", code.into()),
        ("client_id", client.into()),
        ("redirect_uri", redirect.into()),
        ("code_verifier", verifier.into()),
    ]
}

fn refresh_form(refresh: &str) -> Vec<(&'static str, String)> {
    vec![
        ("grant_type", "refresh_token".into()),
        ("refresh_token", refresh.into()),
        ("client_id", CLIENT.into()),
    ]
}

fn allowed(app: &TestApp, access: &str, op: &str) -> Result<token::Authorized, token::Denial> {
    let req = Request {
        amount: None,
        operation: Action::parse(op).unwrap(),
        resource: Resource::parse("orders/42").unwrap(),
        service: Some(Audience::parse(MCP).unwrap()),
        now: now(),
        proven_key: None,
    };
    token::authorize(access, &app.keys(), &req, |_| false, &Default::default())
}

async fn is_revoked(app: &TestApp, access: &str) -> bool {
    let id = app.inspect(access).blocks[0].revocation_id.clone();
    app.state.stores.revocations.is_revoked(&id).await.unwrap()
}

#[tokio::test]
async fn a_code_with_its_verifier_gives_a_token_for_the_person_and_the_consented_tools() {
    let app = TestApp::spawn().await;
    let code = consented(&app, CLIENT).await;
    let r = app
        .request_token(&code_form(&code, CLIENT, REDIRECT, VERIFIER), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["token_type"], "Bearer");
    assert_eq!(r.json["scope"], "get_order list_orders");
    assert_eq!(r.headers["cache-control"], "no-store");
    assert!(r.json["refresh_token"].as_str().unwrap().len() > 40);
    let access = r.token();
    let g = allowed(&app, access, "list_orders").unwrap();
    assert_eq!(g.on_behalf.unwrap().person, alice());
    assert_eq!(g.chain[0].as_str(), CLIENT);
    assert!(allowed(&app, access, "get_order").is_ok());
    let refused = allowed(&app, access, "create_order").unwrap_err();
    assert_eq!(refused.reason, token::Reason::OutOfScope);
}

#[tokio::test]
async fn a_code_used_twice_fails_and_revokes_what_the_first_use_minted() {
    let app = TestApp::spawn().await;
    let code = consented(&app, CLIENT).await;
    let form = code_form(&code, CLIENT, REDIRECT, VERIFIER);
    let first = app.request_token(&form, None).await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert!(!is_revoked(&app, first.token()).await);
    app.request_token(&form, None)
        .await
        .assert_oauth_error(400, "invalid_grant");
    assert!(is_revoked(&app, first.token()).await);
    // And the refresh token of the first use is dead too.
    let refresh = first.json["refresh_token"].as_str().unwrap();
    app.request_token(&refresh_form(refresh), None)
        .await
        .assert_oauth_error(400, "invalid_grant");
}

#[tokio::test]
async fn a_wrong_or_plain_verifier_another_client_or_another_redirect_uri_gets_nothing() {
    let app = TestApp::spawn().await;
    let wrong = "x".repeat(43);
    let plain = challenge(VERIFIER);
    let other = "https://other.example/metadata.json";
    let cases: Vec<(&str, &str, String)> = vec![
        ("wrong verifier", CLIENT, wrong.clone()),
        ("plain verifier", CLIENT, plain.clone()),
        ("another client", other, VERIFIER.into()),
    ];
    for (what, client, verifier) in cases {
        let code = consented(&app, CLIENT).await;
        let r = app
            .request_token(&code_form(&code, client, REDIRECT, &verifier), None)
            .await;
        assert_eq!(r.status, 400, "{what}: {}", r.text);
        assert_eq!(r.error(), "invalid_grant", "{what}: {}", r.text);
    }
    for redirect in [
        "http://127.0.0.1:33419/callback",
        "http://127.0.0.1:33418/callback/",
        "http://127.0.0.1:33418/other",
        "http://localhost:33418/callback",
    ] {
        let code = consented(&app, CLIENT).await;
        let r = app
            .request_token(&code_form(&code, CLIENT, redirect, VERIFIER), None)
            .await;
        assert_eq!(r.status, 400, "{redirect}: {}", r.text);
        assert_eq!(r.error(), "invalid_grant", "{redirect}: {}", r.text);
    }
    // A missing verifier is a malformed request.
    let code = consented(&app, CLIENT).await;
    let mut form = code_form(&code, CLIENT, REDIRECT, VERIFIER);
    form.retain(|(k, _)| *k != "code_verifier");
    let r = app.request_token(&form, None).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.json.get("access_token").is_none());
}

#[tokio::test]
async fn a_refresh_token_rotates_and_its_reuse_revokes_the_whole_family() {
    let app = TestApp::spawn().await;
    let code = consented(&app, CLIENT).await;
    let first = app
        .request_token(&code_form(&code, CLIENT, REDIRECT, VERIFIER), None)
        .await;
    let r1 = first.json["refresh_token"].as_str().unwrap().to_owned();
    let second = app.request_token(&refresh_form(&r1), None).await;
    assert_eq!(second.status, 200, "{}", second.text);
    let r2 = second.json["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(r1, r2);
    assert!(allowed(&app, second.token(), "get_order").is_ok());
    // r1 again: reuse. Everything of the family is revoked, r2 included.
    app.request_token(&refresh_form(&r1), None)
        .await
        .assert_oauth_error(400, "invalid_grant");
    assert!(is_revoked(&app, first.token()).await);
    assert!(is_revoked(&app, second.token()).await);
    app.request_token(&refresh_form(&r2), None)
        .await
        .assert_oauth_error(400, "invalid_grant");
}

#[tokio::test]
async fn a_refresh_token_presented_by_another_client_is_refused_and_stays_valid() {
    let app = TestApp::spawn().await;
    let code = consented(&app, CLIENT).await;
    let first = app
        .request_token(&code_form(&code, CLIENT, REDIRECT, VERIFIER), None)
        .await;
    let r1 = first.json["refresh_token"].as_str().unwrap().to_owned();
    let mut form = refresh_form(&r1);
    form[2].1 = "https://other.example/metadata.json".into();
    app.request_token(&form, None)
        .await
        .assert_oauth_error(400, "invalid_grant");
    let ok = app.request_token(&refresh_form(&r1), None).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
}

#[tokio::test]
async fn a_registered_agent_must_authenticate_to_redeem_a_code() {
    let app = TestApp::spawn().await;
    let agent = app.agent("coder").await;
    let code = consented(&app, &agent.id).await;
    let r = app
        .request_token(&code_form(&code, &agent.id, REDIRECT, VERIFIER), None)
        .await;
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(r.error(), "invalid_client");
}

#[tokio::test]
async fn the_metadata_advertises_pkce_s256_and_the_new_grants() {
    let app = TestApp::spawn().await;
    let m = app
        .get("/.well-known/oauth-authorization-server", None)
        .await
        .json;
    assert_eq!(
        m["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    let grants = m["grant_types_supported"].as_array().unwrap();
    for g in ["authorization_code", "refresh_token"] {
        assert!(grants.iter().any(|x| x == g), "{g} missing");
    }
    assert_eq!(m["authorization_response_iss_parameter_supported"], true);
}

#[tokio::test]
async fn a_revoked_refresh_token_no_longer_refreshes_and_its_access_token_is_revoked() {
    let app = TestApp::spawn().await;
    let code = consented(&app, CLIENT).await;
    let first = app
        .request_token(&code_form(&code, CLIENT, REDIRECT, VERIFIER), None)
        .await;
    let r1 = first.json["refresh_token"].as_str().unwrap().to_owned();
    // Another client cannot revoke it.
    let other = app
        .http
        .post(app.url("/oauth/revoke"))
        .form(&[
            ("token", r1.as_str()),
            ("token_type_hint", "refresh_token"),
            ("client_id", "https://other.example/metadata.json"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 400);
    assert!(!is_revoked(&app, first.token()).await);
    let r = app
        .http
        .post(app.url("/oauth/revoke"))
        .form(&[("token", r1.as_str()), ("client_id", CLIENT)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(is_revoked(&app, first.token()).await);
    app.request_token(&refresh_form(&r1), None)
        .await
        .assert_oauth_error(400, "invalid_grant");
}

#[tokio::test]
async fn a_code_redeemed_with_a_dpop_proof_gives_a_bound_token_and_a_bound_family() {
    let app = TestApp::spawn().await;
    let holder = super::helpers::TestAgent::new("holder");
    let code = consented(&app, CLIENT).await;
    let proof = super::helpers::dpop_proof(&holder.key, "POST", &app.token_endpoint());
    let first = app
        .request_token(&code_form(&code, CLIENT, REDIRECT, VERIFIER), Some(&proof))
        .await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.json["token_type"], "DPoP");
    assert!(app.inspect(first.token()).agent_key.is_some());
    let r1 = first.json["refresh_token"].as_str().unwrap().to_owned();
    // Without a proof by that key the family does not refresh.
    app.request_token(&refresh_form(&r1), None)
        .await
        .assert_oauth_error(400, "invalid_dpop_proof");
    let other = super::helpers::TestAgent::new("thief");
    let wrong = super::helpers::dpop_proof(&other.key, "POST", &app.token_endpoint());
    app.request_token(&refresh_form(&r1), Some(&wrong))
        .await
        .assert_oauth_error(400, "invalid_dpop_proof");
    let again = super::helpers::dpop_proof(&holder.key, "POST", &app.token_endpoint());
    let ok = app.request_token(&refresh_form(&r1), Some(&again)).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(ok.json["token_type"], "DPoP");
}
