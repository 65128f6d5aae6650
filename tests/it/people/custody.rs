//! Chain of custody: a tool server that received a token acting for alice
//! exchanges it for its own downstream call; the new token keeps alice and
//! records the planner and its sub-agent as the earlier actors, and the
//! downstream tool's `Verifier` reports person -> planner -> sub-agent ->
//! tool server. The tool server holds alice's standing consent and the role, recorded
//! in the people store.

use biscuit_auth::{KeyPair, PrivateKey};
use reqwest::StatusCode;
use tessera::people::RoleName;
use tessera::token::{self, AgentId, Limits, Narrowing, Person};

use super::fixture::*;
use super::idp::TestIdp;
use crate::server::helpers::{dpop_proof, AUDIENCE};
use tessera::verify::{
    CheckRequest, KeySource, Presentation, RevocationView, Revocations, Verifier,
};

/// The sub-agent the planner hands its token to.
const SUB: &str = "agent://acme/planner-sub";

#[tokio::test]
async fn a_tool_server_exchanges_the_token_it_received_and_the_new_token_names_alice_the_planner_and_its_sub_agent(
) {
    let Some(idp) = TestIdp::start() else { return };
    let app = app(&idp).await;
    let planner = register(&app, PLANNER).await;
    let tool = register(&app, "agent://acme/tool-server").await;
    let alice = Person::parse(&idp.issuer, "alice").unwrap();
    let people = &app.state.stores.people;
    let tool_id = AgentId::parse(&tool.id).unwrap();
    assert!(people.consent(&alice, &tool_id).await.unwrap());
    assert!(people
        .grant_role(&alice, &RoleName::parse("reader").unwrap())
        .await
        .unwrap());

    // The planner gets a token bound to its key for alice and hands a copy
    // to a sub-agent offline; the sub-agent calls the tool server with it.
    let id_token = idp.id_token(CLIENT, "alice", SCOPE).await;
    let form = exchange_form(
        &app,
        &planner,
        &id_token,
        ID_TOKEN,
        "docs:read",
        "docs/team-a/q3",
        &[],
    );
    let proof = dpop_proof(&planner.key, "POST", &app.token_endpoint());
    let r = app.request_token(&form, Some(&proof)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let holder: PrivateKey = format!("ed25519-private/{}", hex::encode(planner.key.to_bytes()))
        .parse()
        .unwrap();
    let sub = KeyPair::new();
    let received = token::delegate(
        r.token(),
        &KeyPair::from(&holder),
        &AgentId::parse(SUB).unwrap(),
        &sub.public(),
        &Narrowing::default(),
        &Limits::default(),
    )
    .unwrap();

    let r = exchange(&app, &tool, &received, ACCESS_TOKEN, "docs/team-a/q3").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let block = authority(&app, r.token());
    assert!(
        block.contains(&format!("on_behalf_of(\"{}\", \"alice\")", idp.issuer)),
        "{block}"
    );
    assert!(
        block.contains(&format!("prior_actor(0, \"{PLANNER}\")")),
        "{block}"
    );
    assert!(
        block.contains(&format!("prior_actor(1, \"{SUB}\")")),
        "{block}"
    );
    assert_eq!(app.inspect(r.token()).agent, tool.id);
    let events = audit(&app).await;
    let last = events
        .iter()
        .rev()
        .find(|e| e["kind"] == "mint" && e["agent"] == tool.id.as_str())
        .expect("the tool server's mint");
    assert_eq!(last["chain"][1], PLANNER, "{last}");
    assert_eq!(last["chain"][2], SUB, "{last}");
    assert_eq!(last["chain"][3], tool.id.as_str(), "{last}");

    // The downstream API verifies offline and sees the whole line.
    let view = RevocationView::new();
    view.confirm_current();
    let downstream = Verifier::builder(AUDIENCE)
        .keys(KeySource::JwksUrl(app.url("/.well-known/jwks.json")))
        .revocations(Revocations::View(view))
        .build()
        .await
        .unwrap();
    let g = downstream
        .check(
            &Presentation::bearer(r.token()),
            &CheckRequest::new("docs:read", "docs/team-a/q3").unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(g.person(), Some(&alice));
    assert_eq!(
        g.custody().to_string(),
        format!(
            "for alice at {} via {PLANNER} -> {SUB} -> {}",
            idp.issuer, tool.id
        )
    );
}
