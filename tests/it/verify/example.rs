//! The verifier guide's example (`examples/verifier_axum.rs`, shown in
//! `docs/verifier.md`), served as its `main` serves it (`tessera::net::serve`)
//! on loopback, with keys and revocations from an issuer running in this
//! process: a valid token is served, a missing one is told where the
//! metadata is, an expired one is refused.
//!
//! The example's code is compiled into this test (as the MCP example's is),
//! so the test runs the same routes and layer on a fresh clone without
//! building or locating the example binary; `cargo test` and clippy build
//! the binary itself.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use tessera::server::admin::feed_capability;
use tessera::token::{self, Lifetime, ResourcePattern};

use crate::server::helpers::{now, TestApp};

#[allow(dead_code)] // the example's `main` is not used here
#[path = "../../../examples/verifier_axum.rs"]
mod guide;

/// The example server on a loopback port, served by `tessera::net::serve`
/// with the default limits; stops when dropped.
pub struct ExampleServer {
    /// `http://127.0.0.1:PORT`: the server's URI and its tokens' audience.
    pub base: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ExampleServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ExampleServer {
    /// Starts the example against `issuer`, following its revocation feed.
    pub async fn start(issuer: &TestApp) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let config = guide::Config {
            service: base.clone(),
            issuer: issuer.base.clone(),
            feed_token: feed_token(issuer),
        };
        // Built here, so that a failure to start fails the test plainly.
        let router = guide::app(&config).await.unwrap();
        let task = tokio::spawn(async move {
            tessera::net::serve(listener, router, tessera::net::ServeLimits::default())
                .await
                .unwrap();
        });
        Self { base, task }
    }

    /// `GET /orders/{id}` with `token` as a bearer token (none if empty).
    pub async fn get_order(&self, http: &reqwest::Client, id: u32, token: &str) -> Answer {
        let mut r = http.get(format!("{}/orders/{id}", self.base));
        if !token.is_empty() {
            r = r.bearer_auth(token);
        }
        let r = r.send().await.unwrap();
        let status = r.status();
        let challenge = r
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = r.text().await.unwrap();
        Answer {
            status,
            challenge,
            body,
        }
    }
}

/// What the example answered.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub challenge: String,
    pub body: String,
}

/// A read-only feed token for the issuer's revocation feed.
fn feed_token(issuer: &TestApp) -> String {
    let cap = feed_capability(Lifetime::parse("1h").unwrap()).unwrap();
    token::mint(&cap, issuer.state.ring().active(), now())
        .unwrap()
        .token
}

/// A bearer token for `action` on `orders/*` at `audience`, minted from the
/// issuer's active key at `issued_at` (5 minutes' lifetime).
pub fn order_token(
    issuer: &TestApp,
    audience: &str,
    action: &str,
    issued_at: chrono::DateTime<chrono::Utc>,
) -> String {
    let cap = token::Capability {
        agent: token::AgentId::parse("agent://acme/orders-bot").unwrap(),
        action: token::Action::parse(action).unwrap(),
        resource: ResourcePattern::parse("orders/*").unwrap(),
        audience: Some(token::Audience::parse(audience).unwrap()),
        lifetime: Lifetime::parse("5m").unwrap(),
        holder_key: None,
        on_behalf: None,
    };
    token::mint(&cap, issuer.state.ring().active(), issued_at)
        .unwrap()
        .token
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guide_example_serves_a_valid_token_and_refuses_missing_and_expired_ones() {
    let issuer = TestApp::spawn().await;
    let server = ExampleServer::start(&issuer).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();

    // A valid token: the handler answers with the grant's agent.
    let valid = order_token(&issuer, &server.base, "orders:read", now());
    let r = server.get_order(&http, 42, &valid).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.body, "order 42, read by agent://acme/orders-bot\n");

    // No token: 401, pointing at the metadata route.
    let metadata_url = format!("{}/.well-known/oauth-protected-resource", server.base);
    let r = server.get_order(&http, 42, "").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{r:?}");
    assert!(r.challenge.starts_with("Bearer "), "{r:?}");
    assert!(
        r.challenge
            .contains(&format!("resource_metadata=\"{metadata_url}\"")),
        "{r:?}"
    );

    // That route serves the RFC 9728 document without a token.
    let r = http.get(&metadata_url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let doc: Value = r.json().await.unwrap();
    assert_eq!(doc["resource"], server.base.as_str());
    assert_eq!(doc["authorization_servers"], json!([issuer.base]));

    // An expired token: 401, saying so.
    let expired = order_token(
        &issuer,
        &server.base,
        "orders:read",
        now() - chrono::Duration::hours(1),
    );
    let r = server.get_order(&http, 42, &expired).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{r:?}");
    assert!(r.challenge.contains("error=\"invalid_token\""), "{r:?}");
    assert!(r.challenge.contains("expired"), "{r:?}");

    // A token for another operation: 403.
    let other = order_token(&issuer, &server.base, "orders:write", now());
    let r = server.get_order(&http, 42, &other).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
    assert!(r.challenge.contains("insufficient_scope"), "{r:?}");
}

#[test]
fn the_guide_shows_the_example_as_it_is() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let code = std::fs::read_to_string(root.join("examples/verifier_axum.rs")).unwrap();
    let guide = std::fs::read_to_string(root.join("docs/verifier.md")).unwrap();
    assert!(
        guide.contains(&format!("```rust\n{code}```\n")),
        "docs/verifier.md must show examples/verifier_axum.rs verbatim in a rust block"
    );
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    assert!(manifest.contains("name = \"verifier_axum\""));
}
