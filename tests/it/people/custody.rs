//! Chain of custody: a tool server that received a token acting for alice
//! exchanges it for its own downstream call; the new token keeps alice and
//! records the planner as the earlier actor.
//!
//! Needs a people store that records consents and roles. While the store
//! on this branch is the placeholder (writes refused), the test says so
//! loudly and stops; `TESSERA_REQUIRE_PEOPLE_STORE=1` makes that a failure.

use reqwest::StatusCode;
use tessera::people::RoleName;
use tessera::token::{AgentId, Person};

use super::fixture::*;
use super::idp::TestIdp;

#[tokio::test]
async fn a_tool_server_exchanges_the_token_it_received_and_the_new_token_names_alice_and_the_planner(
) {
    let Some(idp) = TestIdp::start() else { return };
    let app = app(&idp).await;
    let planner = register(&app, PLANNER).await;
    let tool = register(&app, "agent://acme/tool-server").await;
    let alice = Person::parse(&idp.issuer, "alice").unwrap();
    let people = &app.state.stores.people;
    let tool_id = AgentId::parse(&tool.id).unwrap();
    let recorded = people.consent(&alice, &tool_id).await.and(
        people
            .grant_role(&alice, &RoleName::parse("reader").unwrap())
            .await,
    );
    if let Err(e) = recorded {
        if std::env::var("TESSERA_REQUIRE_PEOPLE_STORE").as_deref() == Ok("1") {
            panic!("TESSERA_REQUIRE_PEOPLE_STORE=1 but the people store refused: {e}");
        }
        eprintln!("\n*** SKIPPED: the people store cannot record a consent yet ({e}). ***\n");
        return;
    }

    let id_token = idp.id_token(CLIENT, "alice", SCOPE).await;
    let r = exchange(&app, &planner, &id_token, ID_TOKEN, "docs/team-a/q3").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let received = r.token().to_owned();

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
    assert_eq!(app.inspect(r.token()).agent, tool.id);
    let events = audit(&app).await;
    let last = events
        .iter()
        .rev()
        .find(|e| e["kind"] == "mint" && e["agent"] == tool.id.as_str())
        .expect("the tool server's mint");
    assert_eq!(last["chain"][1], PLANNER, "{last}");
    assert_eq!(last["chain"][2], tool.id.as_str(), "{last}");
}
