//! ID-JAG (identity assertion JWT authorization grant) at /oauth/token:
//! the test IdP issues the assertion from alice's ID token with its own
//! keys; Tessera takes it once, for the agent it names, within the
//! intersection.

use reqwest::StatusCode;

use super::fixture::*;
use super::idp::TestIdp;
use crate::server::helpers::{dpop_proof, random_hex, Reply, TestAgent, TestApp, AUDIENCE};
use tessera::jose::OkpJwk;
use tessera::server::oauth::JWT_BEARER;

/// A jwt-bearer request with `assertion` for `docs:read` on `resource`.
fn jag_form<'a>(
    app: &TestApp,
    agent: &TestAgent,
    aud: &str,
    assertion: &str,
    resource: &str,
) -> Vec<(&'a str, String)> {
    vec![
        ("grant_type", JWT_BEARER_GRANT.to_owned()),
        ("client_assertion_type", JWT_BEARER.to_owned()),
        ("client_assertion", app.assertion_for(agent, aud).build()),
        ("assertion", assertion.to_owned()),
        ("scope", "docs:read".to_owned()),
        ("identifier", resource.to_owned()),
        ("resource", AUDIENCE.to_owned()),
    ]
}

async fn send(app: &TestApp, agent: &TestAgent, jag: &str, dpop: Option<&str>) -> Reply {
    let form = jag_form(app, agent, &app.token_endpoint(), jag, "docs/team-a/x");
    app.request_token(&form, dpop).await
}

#[tokio::test]
async fn a_jag_from_the_idp_gets_a_token_for_alice_once() {
    let Some(idp) = TestIdp::start() else { return };
    let app = app(&idp).await;
    // Any agent the IdP names: ID-JAG needs no may_act.
    let agent = register(&app, "agent://acme/assistant").await;
    let id_token = idp.id_token(CLIENT, "alice", SCOPE).await;
    let jag = idp
        .id_jag(
            CLIENT,
            &id_token,
            &app.base,
            &agent.id,
            &[("scope", "docs:read"), ("resource", AUDIENCE)],
        )
        .await;

    let r = send(&app, &agent, &jag, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["token_type"], "Bearer");
    let block = authority(&app, r.token());
    assert!(
        block.contains(&format!("on_behalf_of(\"{}\", \"alice\")", idp.issuer)),
        "{block}"
    );

    let again = send(&app, &agent, &jag, None).await;
    again.assert_oauth_error(400, "invalid_grant");
    assert!(
        again.description().contains("already used"),
        "{}",
        again.text
    );
    assert_eq!(grants(&app, &agent.id).await, 1);
}

#[tokio::test]
async fn bad_jags_are_each_an_invalid_grant() {
    let Some(idp) = TestIdp::start() else { return };
    let app = app(&idp).await;
    let agent = register(&app, "agent://acme/assistant").await;
    let id_token = idp.id_token(CLIENT, "alice", SCOPE).await;

    let wrong_typ = idp
        .id_jag(
            CLIENT,
            &id_token,
            &app.base,
            &agent.id,
            &[("jag_typ", "JWT")],
        )
        .await;
    let r = send(&app, &agent, &wrong_typ, None).await;
    r.assert_oauth_error(400, "invalid_grant");
    assert!(r.description().contains("oauth-id-jag+jwt"), "{}", r.text);

    let wrong_aud = idp
        .id_jag(
            CLIENT,
            &id_token,
            "https://elsewhere.example",
            &agent.id,
            &[],
        )
        .await;
    let r = send(&app, &agent, &wrong_aud, None).await;
    r.assert_oauth_error(400, "invalid_grant");
    assert!(
        r.description().contains("not for this service"),
        "{}",
        r.text
    );

    let for_other = idp
        .id_jag(
            CLIENT,
            &id_token,
            &app.base,
            "agent://acme/someone-else",
            &[],
        )
        .await;
    let r = send(&app, &agent, &for_other, None).await;
    r.assert_oauth_error(400, "invalid_grant");
    assert!(r.description().contains("client_id"), "{}", r.text);

    // Bound to a key: a proof with another key, or no proof, is refused.
    let other_key = ed25519_dalek::SigningKey::from_bytes(&rand::random::<[u8; 32]>());
    let jkt = OkpJwk::from_key(&other_key.verifying_key()).thumbprint();
    let bound = idp
        .id_jag(
            CLIENT,
            &id_token,
            &app.base,
            &agent.id,
            &[("cnf_jkt", jkt.as_str())],
        )
        .await;
    let proof = dpop_proof(&agent.key, "POST", &app.token_endpoint());
    let r = send(&app, &agent, &bound, Some(&proof)).await;
    r.assert_oauth_error(400, "invalid_grant");
    assert!(r.description().contains("cnf.jkt"), "{}", r.text);
    let r = send(&app, &agent, &bound, None).await;
    r.assert_oauth_error(400, "invalid_grant");
    assert!(r.description().contains("DPoP"), "{}", r.text);

    // Outside the assertion's own scope.
    let narrow = idp
        .id_jag(
            CLIENT,
            &id_token,
            &app.base,
            &agent.id,
            &[("scope", "docs:write")],
        )
        .await;
    send(&app, &agent, &narrow, None)
        .await
        .assert_oauth_error(400, "invalid_scope");

    // Outside the assertion's own resource (the tool server asked is AUDIENCE).
    let elsewhere = idp
        .id_jag(
            CLIENT,
            &id_token,
            &app.base,
            &agent.id,
            &[("resource", "https://other.example")],
        )
        .await;
    send(&app, &agent, &elsewhere, None)
        .await
        .assert_oauth_error(400, "invalid_scope");

    // Not a JWT at all.
    send(&app, &agent, &random_hex(40), None)
        .await
        .assert_oauth_error(400, "invalid_grant");

    assert!(!granted_to(&app, &agent.id).await, "nothing was granted");
}

#[tokio::test]
async fn a_jag_bound_to_the_dpop_key_gets_a_bound_token() {
    let Some(idp) = TestIdp::start() else { return };
    let app = app(&idp).await;
    let agent = register(&app, "agent://acme/assistant").await;
    let id_token = idp.id_token(CLIENT, "alice", SCOPE).await;
    let jkt = OkpJwk::from_key(&agent.key.verifying_key()).thumbprint();
    let bound = idp
        .id_jag(
            CLIENT,
            &id_token,
            &app.base,
            &agent.id,
            &[("cnf_jkt", jkt.as_str())],
        )
        .await;
    let proof = dpop_proof(&agent.key, "POST", &app.token_endpoint());
    let r = send(&app, &agent, &bound, Some(&proof)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["token_type"], "DPoP");
}

#[tokio::test]
async fn a_jag_replayed_against_two_issuers_on_one_redis_is_taken_exactly_once() {
    let Some(idp) = TestIdp::start() else { return };
    let keys = tempfile::tempdir().unwrap();
    let issuer = "https://issuer.example";
    let config = idp_config(&idp, 30);
    let roles = vec![reader_role("finance")];
    let shared = |c: &mut tessera::server::Config| {
        c.issuer_url = Some(issuer.into());
        c.keys_dir = Some(keys.path().to_owned());
        c.idp = vec![config.clone()];
        c.role = roles.clone();
    };
    let Some(a) = TestApp::spawn_on(crate::server::helpers::OnRedis::Server, shared).await else {
        return;
    };
    let url = a.redis_url();
    let b = TestApp::spawn_with(None, |c| {
        shared(c);
        c.redis_url = Some(url.clone());
    })
    .await;
    let agent = register(&a, "agent://acme/assistant").await;
    let id_token = idp.id_token(CLIENT, "alice", SCOPE).await;
    let jag = idp.id_jag(CLIENT, &id_token, issuer, &agent.id, &[]).await;

    let to_a = jag_form(&a, &agent, issuer, &jag, "docs/team-a/x");
    let to_b = jag_form(&b, &agent, issuer, &jag, "docs/team-a/x");
    let (ra, rb) = tokio::join!(a.request_token(&to_a, None), b.request_token(&to_b, None));
    let ok: Vec<&Reply> = [&ra, &rb]
        .into_iter()
        .filter(|r| r.status == StatusCode::OK)
        .collect();
    assert_eq!(ok.len(), 1, "a: {} b: {}", ra.text, rb.text);
    let refused = if ra.status == StatusCode::OK {
        &rb
    } else {
        &ra
    };
    refused.assert_oauth_error(400, "invalid_grant");
    assert!(
        refused.description().contains("already used"),
        "{}",
        refused.text
    );
}
