//! End to end with the real IdP and the real verifier: alice logs in, the
//! planner exchanges her ID token for a token bound to its key, hands it to
//! a sub-agent offline, and a tool server's `Verifier` (keys from the
//! issuer's JWKS, revocations from its feed) grants the sub-agent's call
//! naming alice, the planner and the sub-agent. Revoking the exchanged
//! token then refuses the sub-agent's copy.

use std::time::Duration;

use biscuit_auth::{KeyPair, PrivateKey};
use reqwest::StatusCode;
use serde_json::json;
use tessera::server::admin;
use tessera::token::{self, AgentId, Lifetime, Limits, Narrowing};
use tessera::verify::{CheckRequest, KeySource, Presentation, Reason, Revocations, Verifier};

use super::fixture::*;
use super::idp::TestIdp;
use crate::server::helpers::{dpop_proof, now, AUDIENCE};
use crate::verify::check::{proof, URL};

const SUB: &str = "agent://acme/planner/summarizer";

/// The sub-agent's call to the tool server: its token and DPoP proof.
fn presented<'a>(token: &'a str, proof: &'a str) -> Presentation<'a> {
    Presentation {
        token,
        dpop: Some(proof),
        method: "POST",
        url: URL,
    }
}

#[tokio::test]
async fn alices_token_delegated_offline_is_granted_by_the_verifier_naming_her_the_planner_and_the_sub_agent_until_revoked(
) {
    let Some(idp) = TestIdp::start() else { return };
    let app = app(&idp).await;
    let planner = register(&app, PLANNER).await;
    let id_token = idp.id_token(CLIENT, "alice", SCOPE).await;

    // The planner exchanges alice's ID token, binding the new token to its key.
    let form = exchange_form(
        &app,
        &planner,
        &id_token,
        ID_TOKEN,
        "docs:read",
        "docs/team-a/*",
        &[],
    );
    let bind = dpop_proof(&planner.key, "POST", &app.token_endpoint());
    let r = app.request_token(&form, Some(&bind)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["token_type"], "DPoP");
    let exchanged = r.token().to_owned();
    let token_id = r.json["token_id"].as_str().unwrap().to_owned();

    // Offline: the planner hands a narrower copy to its sub-agent.
    let holder: PrivateKey = format!("ed25519-private/{}", hex::encode(planner.key.to_bytes()))
        .parse()
        .unwrap();
    let sub = KeyPair::new();
    let narrow = Narrowing {
        resource: Some("docs/team-a/q3".parse().unwrap()),
        ..Narrowing::default()
    };
    let delegated = token::delegate(
        &exchanged,
        &KeyPair::from(&holder),
        &AgentId::parse(SUB).unwrap(),
        &sub.public(),
        &narrow,
        &Limits::default(),
    )
    .unwrap();

    // The tool server verifies with public keys and the revocation feed only.
    let feed_token = token::mint(
        &admin::feed_capability(Lifetime::parse("1h").unwrap()).unwrap(),
        app.state.ring().active(),
        now(),
    )
    .unwrap()
    .token;
    let verifier = Verifier::builder(AUDIENCE)
        .keys(KeySource::JwksUrl(app.url("/.well-known/jwks.json")))
        .revocations(Revocations::Issuer {
            url: app.base.clone(),
            feed_token,
        })
        .build()
        .await
        .unwrap();
    assert!(verifier.ready(Duration::from_secs(10)).await);

    let q3 = CheckRequest::new("docs:read", "docs/team-a/q3").unwrap();
    let p = proof(&sub, &delegated, now(), "e2e-1");
    let g = verifier
        .check(&presented(&delegated, &p), &q3)
        .await
        .unwrap();
    let alice = g.person().expect("the grant names the person");
    assert_eq!(alice.subject(), "alice");
    assert_eq!(alice.issuer(), idp.issuer);
    assert_eq!(g.agent.as_str(), PLANNER);
    assert_eq!(g.acting().as_str(), SUB);
    let chain: Vec<&str> = g.custody().actors().map(AgentId::as_str).collect();
    assert_eq!(chain, [PLANNER, SUB]);
    assert_eq!(
        g.custody().to_string(),
        format!("for alice at {} via {PLANNER} -> {SUB}", idp.issuer)
    );

    // The sub-agent's copy is narrower than the planner's: q4 is refused.
    let q4 = CheckRequest::new("docs:read", "docs/team-a/q4").unwrap();
    let p = proof(&sub, &delegated, now(), "e2e-2");
    let denied = verifier
        .check(&presented(&delegated, &p), &q4)
        .await
        .unwrap_err();
    assert_eq!(denied.reason, Reason::OutOfScope);

    // Revoking the exchanged token (by its id) kills the sub-agent's copy.
    let r = app.revoke_admin(&json!({ "token_id": token_id })).await;
    assert!(r.status.is_success(), "{}", r.text);
    let mut refused = None;
    for i in 0..100 {
        let p = proof(&sub, &delegated, now(), &format!("e2e-r{i}"));
        match verifier.check(&presented(&delegated, &p), &q3).await {
            Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(e) => {
                refused = Some(e.reason);
                break;
            }
        }
    }
    assert_eq!(refused, Some(Reason::Revoked));
}
