//! Bad subject tokens at the token exchange: each a typed OAuth error, and
//! nothing recorded as granted.

use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey};
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::fixture::*;
use super::idp::TestIdp;
use crate::server::helpers::{Reply, TestApp};

fn part(token: &str, i: usize) -> Value {
    let raw = URL_SAFE_NO_PAD
        .decode(token.split('.').nth(i).unwrap())
        .unwrap();
    serde_json::from_slice(&raw).unwrap()
}

fn b64json(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

/// `claims` under `header`, signed by a key the IdP never published.
fn forged(header: Value, claims: &Value) -> String {
    let input = format!("{}.{}", b64json(&header), b64json(claims));
    let key = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
    format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(key.sign(input.as_bytes()).to_bytes())
    )
}

#[track_caller]
fn refused(r: &Reply, code: &str, words: &str) {
    r.assert_oauth_error(400, code);
    assert!(
        r.description().contains(words),
        "expected {words:?} in {}",
        r.text
    );
}

#[tokio::test]
async fn bad_idp_subject_tokens_are_each_an_invalid_grant() {
    let Some(idp) = TestIdp::start() else { return };
    let Some(stranger_idp) = TestIdp::start() else {
        return;
    };
    let app = app(&idp).await;
    let planner = register(&app, PLANNER).await;
    let alice = idp.id_token(CLIENT, "alice", SCOPE).await;
    let claims = part(&alice, 1);

    let untrusted = stranger_idp.id_token(CLIENT, "alice", SCOPE).await;
    let r = exchange(&app, &planner, &untrusted, ID_TOKEN, "docs/team-a/x").await;
    refused(&r, "invalid_grant", "not a trusted identity provider");

    let other_audience = idp.id_token("other-app", "alice", SCOPE).await;
    let r = exchange(&app, &planner, &other_audience, ID_TOKEN, "docs/team-a/x").await;
    refused(&r, "invalid_grant", "not for this service");

    let none = format!("{}.{}.", b64json(&json!({"alg": "none"})), b64json(&claims));
    let r = exchange(&app, &planner, &none, ID_TOKEN, "docs/team-a/x").await;
    refused(&r, "invalid_grant", "algorithm `none`");

    let hs256 = forged(json!({"alg": "HS256", "kid": "ed-1"}), &claims);
    let r = exchange(&app, &planner, &hs256, ID_TOKEN, "docs/team-a/x").await;
    refused(&r, "invalid_grant", "algorithm `HS256`");

    let unknown_key = forged(json!({"alg": "EdDSA", "kid": "not-published"}), &claims);
    let r = exchange(&app, &planner, &unknown_key, ID_TOKEN, "docs/team-a/x").await;
    refused(&r, "invalid_grant", "does not publish");

    let wrong_key = forged(json!({"alg": "EdDSA", "kid": "ed-1"}), &claims);
    let r = exchange(&app, &planner, &wrong_key, ID_TOKEN, "docs/team-a/x").await;
    refused(&r, "invalid_grant", "signature does not verify");

    let oversized = "a".repeat(40 * 1024);
    let r = exchange(&app, &planner, &oversized, ID_TOKEN, "docs/team-a/x").await;
    refused(&r, "invalid_grant", "larger than");
    let r = exchange(&app, &planner, &oversized, ACCESS_TOKEN, "docs/team-a/x").await;
    refused(&r, "invalid_grant", "not a token of this issuer");

    for malformed in ["abc.def.ghi", "...", "%%%", "eyJhbGciOiJFZERTQSJ9.e30"] {
        let r = exchange(&app, &planner, malformed, ID_TOKEN, "docs/team-a/x").await;
        r.assert_oauth_error(400, "invalid_grant");
    }
    let r = exchange(&app, &planner, "AAAA", ACCESS_TOKEN, "docs/team-a/x").await;
    r.assert_oauth_error(400, "invalid_grant");

    // An identity assertion for the audience ID tokens carry is still not
    // an ID token (its one-time jti would be skipped otherwise).
    let jag = idp.id_jag(CLIENT, &alice, CLIENT, PLANNER, &[]).await;
    let r = exchange(&app, &planner, &jag, ID_TOKEN, "docs/team-a/x").await;
    refused(&r, "invalid_grant", "not an ID token");

    // Unsupported shapes of the request itself.
    let r = exchange(
        &app,
        &planner,
        &alice,
        "urn:ietf:params:oauth:token-type:saml2",
        "docs/team-a/x",
    )
    .await;
    refused(&r, "invalid_request", "subject_token_type");
    let form = exchange_form(
        &app,
        &planner,
        &alice,
        ID_TOKEN,
        "docs:read",
        "docs/team-a/x",
        &[("actor_token", "x")],
    );
    refused(
        &app.request_token(&form, None).await,
        "invalid_request",
        "actor_token",
    );

    assert!(!granted_to(&app, PLANNER).await, "nothing was granted");
}

#[tokio::test]
async fn an_expired_id_token_is_refused() {
    let Some(idp) = TestIdp::start_with(1) else {
        return;
    };
    let app = app_with(&idp, vec![reader_role("finance")], 0).await;
    let planner = register(&app, PLANNER).await;
    let alice = idp.id_token(CLIENT, "alice", SCOPE).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = exchange(&app, &planner, &alice, ID_TOKEN, "docs/team-a/x").await;
    refused(&r, "invalid_grant", "expired");
    assert!(!granted_to(&app, PLANNER).await);
}

#[tokio::test]
async fn with_the_idp_down_cached_keys_still_work_and_an_unknown_kid_is_refused_quickly() {
    let Some(mut idp) = TestIdp::start() else {
        return;
    };
    let app = app(&idp).await;
    let planner = register(&app, PLANNER).await;
    let first = idp.id_token(CLIENT, "alice", SCOPE).await;
    let second = idp.id_token(CLIENT, "alice", SCOPE).await;
    let r = exchange(&app, &planner, &first, ID_TOKEN, "docs/team-a/x").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    idp.stop();
    let r = exchange(&app, &planner, &second, ID_TOKEN, "docs/team-a/y").await;
    assert_eq!(r.status, StatusCode::OK, "cached keys: {}", r.text);

    let claims = part(&second, 1);
    let rotated = forged(json!({"alg": "EdDSA", "kid": "rotated-1"}), &claims);
    let started = Instant::now();
    let r = exchange(&app, &planner, &rotated, ID_TOKEN, "docs/team-a/z").await;
    refused(&r, "invalid_grant", "does not publish");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
}

/// Alice's token, exchanged by the planner (for `docs/team-a/x`), with extra form fields.
async fn alices_tessera_token(
    app: &TestApp,
    idp: &TestIdp,
    planner: &crate::server::helpers::TestAgent,
    extra: &[(&str, &str)],
) -> String {
    let alice = idp.id_token(CLIENT, "alice", SCOPE).await;
    let form = exchange_form(
        app,
        planner,
        &alice,
        ID_TOKEN,
        "docs:read",
        "docs/team-a/x",
        extra,
    );
    let r = app.request_token(&form, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.token().to_owned()
}

#[tokio::test]
async fn bad_tessera_subject_tokens_are_refused() {
    let Some(idp) = TestIdp::start() else { return };
    let app = app(&idp).await;
    let tool = register(&app, "agent://acme/tool-server").await;
    let planner = register(&app, PLANNER).await;

    // Acting for no one.
    let plain = app.mint_ok(&tool, "docs/team-a/plain").await;
    let plain = plain["access_token"].as_str().unwrap();
    let r = exchange(&app, &tool, plain, ACCESS_TOKEN, "docs/team-a/x").await;
    refused(&r, "invalid_grant", "does not act for a person");

    // Revoked.
    let revoked = alices_tessera_token(&app, &idp, &planner, &[]).await;
    let r = app.revoke_admin(&json!({ "token": revoked })).await;
    assert!(r.status.is_success(), "{}", r.text);
    let r = exchange(&app, &tool, &revoked, ACCESS_TOKEN, "docs/team-a/x").await;
    refused(&r, "invalid_grant", "revoked");

    // Another issuer's token (a fresh issuer, its own root key).
    let elsewhere = app_with(&idp, vec![reader_role("finance")], 30).await;
    let elsewhere_planner = register(&elsewhere, PLANNER).await;
    let foreign = alices_tessera_token(&elsewhere, &idp, &elsewhere_planner, &[]).await;
    let r = exchange(&app, &tool, &foreign, ACCESS_TOKEN, "docs/team-a/x").await;
    refused(&r, "invalid_grant", "not a token of this issuer");

    // Valid and acting for alice, but she never approved the tool server:
    // the refusal names the approval path.
    let fresh = alices_tessera_token(&app, &idp, &planner, &[]).await;
    let r = exchange(&app, &tool, &fresh, ACCESS_TOKEN, "docs/team-a/x").await;
    refused(&r, "invalid_grant", "tessera person consent");

    assert_eq!(grants(&app, &tool.id).await, 1, "only the plain token");
}

#[tokio::test]
async fn an_expired_tessera_subject_token_is_refused() {
    let Some(idp) = TestIdp::start() else { return };
    let app = app(&idp).await;
    let planner = register(&app, PLANNER).await;
    let short = alices_tessera_token(&app, &idp, &planner, &[("lifetime", "1s")]).await;
    let tool = register(&app, "agent://acme/tool-server").await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = exchange(&app, &tool, &short, ACCESS_TOKEN, "docs/team-a/x").await;
    refused(&r, "invalid_grant", "expired");
    assert!(!granted_to(&app, &tool.id).await);
}
