//! The consent page and the consents page in a real headless chromium:
//! log in at the IdP, approve (remembered), land on the client's redirect
//! URI with a code, then withdraw the consent on /consents. Screenshots
//! consent.png and consents.png go to `TESSERA_SCREENSHOTS=<dir>` (as
//! login.mjs's do; docs/images/ for the README).

use axum::routing::get;
use axum::Router;

use super::authorize::{world_on, MCP, STATE};
use super::browser;

#[tokio::test]
async fn a_person_approves_in_a_browser_and_withdraws_on_the_consents_page() {
    // The client's redirect URI answers, so the browser lands somewhere.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = Router::new().route("/callback", get(|| async { "the client got its answer" }));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let Some(w) = world_on(port).await else {
        return;
    };
    let url = w.url(&w.params());
    let Some(out) = browser::run("consent.mjs", &[&url, "alice"]).await else {
        return;
    };
    assert!(
        out["csp"]
            .as_str()
            .is_some_and(|c| c.contains("default-src 'none'")),
        "{out}"
    );
    assert_eq!(
        out["scopes"],
        serde_json::json!(["get_order", "list_orders"]),
        "{out}"
    );
    assert!(out["client"].as_str().unwrap().contains(MCP), "{out}");
    assert_eq!(out["hasCode"], true, "{out}");
    assert_eq!(out["state"], STATE, "{out}");
    assert_eq!(out["iss"], w.app.state.issuer.as_ref(), "{out}");
    assert_eq!(out["listed"], serde_json::json!([w.client_id]), "{out}");
    assert_eq!(out["withdrawn"], true, "{out}");
    let left = w
        .app
        .state
        .stores
        .authcodes
        .remembered(&tessera::token::Person::parse(&w.idp.issuer, "alice").unwrap())
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
}
