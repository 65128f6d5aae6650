//! Token exchange (RFC 8693) at /oauth/token with the real test IdP: an
//! agent exchanges a person's ID token for a token that names the person,
//! granted only within both the person's rights and the agent's ceiling.

use reqwest::StatusCode;

use super::fixture::*;
use super::idp::TestIdp;

#[tokio::test]
async fn an_agent_exchanges_alices_id_token_for_a_token_that_names_her() {
    let Some(idp) = TestIdp::start() else { return };
    let app = app(&idp).await;
    let planner = register(&app, PLANNER).await;
    let id_token = idp.id_token(CLIENT, "alice", SCOPE).await;

    let r = exchange(&app, &planner, &id_token, ID_TOKEN, "docs/team-a/q3").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["issued_token_type"], ACCESS_TOKEN);
    assert_eq!(r.json["token_type"], "Bearer");
    assert_eq!(r.json["scope"], "docs:read");
    assert_eq!(
        r.json["expires_in"], 300,
        "the default lifetime, within the role's 5m"
    );
    let block = authority(&app, r.token());
    assert!(
        block.contains(&format!("on_behalf_of(\"{}\", \"alice\")", idp.issuer)),
        "{block}"
    );
    assert!(!block.contains("prior_actor"), "{block}");
    let seen = app.inspect(r.token());
    assert_eq!(seen.agent, PLANNER);

    // The mint is audited with the person and the chain person -> agent.
    let events = audit(&app).await;
    let mint = events
        .iter()
        .find(|e| e["kind"] == "mint" && e["outcome"] == "granted")
        .expect("a mint event");
    assert_eq!(mint["person"]["subject"], "alice", "{mint}");
    assert_eq!(mint["chain"][1], PLANNER, "{mint}");
    assert_eq!(mint["chain"].as_array().map(Vec::len), Some(2), "{mint}");

    // A JWT access token type with the same JWT works as well.
    let r = exchange(&app, &planner, &id_token, ACCESS_TOKEN, "docs/team-a/q4").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn the_grant_is_the_intersection_and_each_side_refuses_by_name() {
    let Some(idp) = TestIdp::start() else { return };
    let app = app(&idp).await;
    let planner = register(&app, PLANNER).await;
    let id_token = idp.id_token(CLIENT, "alice", SCOPE).await;

    // Inside the agent's ceiling (docs:write on docs/team-a/*), outside
    // alice's role (docs:read only).
    let form = exchange_form(
        &app,
        &planner,
        &id_token,
        ID_TOKEN,
        "docs:write",
        "docs/team-a/x",
        &[],
    );
    let r = app.request_token(&form, None).await;
    r.assert_oauth_error(400, "invalid_scope");
    assert!(r.description().contains("person's rights"), "{}", r.text);

    // Inside alice's role (docs/*), outside the ceiling (docs/team-a/*).
    let r = exchange(&app, &planner, &id_token, ID_TOKEN, "docs/team-c/x").await;
    r.assert_oauth_error(400, "invalid_scope");
    assert!(r.description().contains("agent's ceiling"), "{}", r.text);

    // A lifetime within the ceiling (10m) but beyond the role (5m).
    let form = exchange_form(
        &app,
        &planner,
        &id_token,
        ID_TOKEN,
        "docs:read",
        "docs/team-a/x",
        &[("lifetime", "8m")],
    );
    let r = app.request_token(&form, None).await;
    r.assert_oauth_error(400, "invalid_scope");
    assert!(r.description().contains("person's rights"), "{}", r.text);

    assert!(!granted_to(&app, PLANNER).await, "nothing was granted");
}

#[tokio::test]
async fn a_person_with_no_role_gets_nothing() {
    let Some(idp) = TestIdp::start() else { return };
    let app = app_with(&idp, vec![reader_role("auditors")], 30).await;
    let planner = register(&app, PLANNER).await;
    let id_token = idp.id_token(CLIENT, "alice", SCOPE).await;
    let r = exchange(&app, &planner, &id_token, ID_TOKEN, "docs/team-a/x").await;
    r.assert_oauth_error(400, "invalid_scope");
    assert!(r.description().contains("no role"), "{}", r.text);
    assert!(!granted_to(&app, PLANNER).await);
    // The refusal is audited with the person.
    let events = audit(&app).await;
    assert!(
        events
            .iter()
            .any(|e| e["outcome"] == "refused" && e["person"]["subject"] == "alice"),
        "{events:?}"
    );
}

#[tokio::test]
async fn may_act_naming_another_agent_and_a_missing_consent_are_refused() {
    let Some(idp) = TestIdp::start() else { return };
    let app = app_with(
        &idp,
        vec![
            reader_role("finance"),
            reader_role_named("staff-reader", "staff"),
        ],
        30,
    )
    .await;
    let other = register(&app, "agent://acme/other").await;
    let alice = idp.id_token(CLIENT, "alice", SCOPE).await;
    let r = exchange(&app, &other, &alice, ID_TOKEN, "docs/team-a/x").await;
    r.assert_oauth_error(400, "invalid_grant");
    assert!(r.description().contains("may_act"), "{}", r.text);

    // bob's token has no may_act, and bob gave no standing consent.
    let bob = idp.id_token(CLIENT, "bob", SCOPE).await;
    let r = exchange(&app, &other, &bob, ID_TOKEN, "docs/team-a/x").await;
    r.assert_oauth_error(400, "invalid_grant");
    assert!(
        r.description().contains("tessera person consent"),
        "{}",
        r.text
    );
    assert!(
        r.description().contains("/v1/people/consents"),
        "{}",
        r.text
    );
    assert!(!granted_to(&app, "agent://acme/other").await);
}

fn reader_role_named(name: &str, group: &str) -> tessera::people::Role {
    let mut r = reader_role(group);
    r.name = tessera::people::RoleName::parse(name).unwrap();
    r
}

#[tokio::test]
async fn a_dpop_proof_binds_the_exchanged_token() {
    let Some(idp) = TestIdp::start() else { return };
    let app = app(&idp).await;
    let planner = register(&app, PLANNER).await;
    let id_token = idp.id_token(CLIENT, "alice", SCOPE).await;
    let form = exchange_form(
        &app,
        &planner,
        &id_token,
        ID_TOKEN,
        "docs:read",
        "docs/team-a/x",
        &[],
    );
    let proof = crate::server::helpers::dpop_proof(&planner.key, "POST", &app.token_endpoint());
    let r = app.request_token(&form, Some(&proof)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["token_type"], "DPoP");
    assert!(app.inspect(r.token()).holder.is_some());
}

#[tokio::test]
async fn the_metadata_lists_both_grants_the_id_jag_profile_and_the_subject_token_types() {
    let app = crate::server::helpers::TestApp::spawn().await;
    let r = app
        .get("/.well-known/oauth-authorization-server", None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let grants = r.json["grant_types_supported"].as_array().unwrap();
    for g in ["client_credentials", TOKEN_EXCHANGE, JWT_BEARER_GRANT] {
        assert!(grants.iter().any(|x| x == g), "{g} missing: {}", r.text);
    }
    assert_eq!(
        r.json["authorization_grant_profiles_supported"][0],
        "urn:ietf:params:oauth:grant-profile:id-jag"
    );
    let types = r.json["token_exchange_subject_token_types_supported"]
        .as_array()
        .unwrap();
    assert!(types.iter().any(|t| t == ID_TOKEN) && types.iter().any(|t| t == ACCESS_TOKEN));
}

#[tokio::test]
async fn without_a_trusted_idp_no_exchange_is_granted() {
    let app = crate::server::helpers::TestApp::spawn().await;
    let planner = register(&app, PLANNER).await;
    let r = exchange(&app, &planner, "a.b.c", ID_TOKEN, "docs/team-a/x").await;
    r.assert_oauth_error(400, "invalid_grant");
    assert!(
        r.description().contains("trusts no identity provider"),
        "{}",
        r.text
    );
}
