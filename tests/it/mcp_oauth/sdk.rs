//! The whole story, once per SDK: login, consent to a subset, tool call;
//! step-up refused; consent withdrawn and token revoked.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tessera::people::Role;
use tessera::web::{ClientAuth, LoginConfig};

use super::{browser_ready, CimdServer, McpServer, Person, Sdk, SdkClient};
use crate::people::fixture::idp_config;
use crate::people::idp::TestIdp;
use crate::server::helpers::TestApp;

/// Tessera's client at the test IdP (tests/idp/provider.mjs).
const WEB_CLIENT: &str = "tessera-web";

/// The tools alice's role gives her at the MCP server (not `delete_order`).
const ALICE_TOOLS: [&str; 3] = ["list_orders", "get_order", "create_order"];

/// `orders` role: alice's finance group may use three of the four tools.
fn orders_role(audience: &str) -> Role {
    toml::from_str(&format!(
        "name = \"orders\"\nactions = {ALICE_TOOLS:?}\nresources = [\"orders*\"]\n\
         audiences = [\"{audience}\"]\nmax_ttl = \"5m\"\ngroups = [\"finance\"]\n"
    ))
    .unwrap()
}

/// Where screenshots go: `docs/images/` when `TESSERA_SCREENSHOTS` is set.
fn screenshots() -> Option<PathBuf> {
    std::env::var_os("TESSERA_SCREENSHOTS").map(|_| {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/images");
        std::fs::create_dir_all(&dir).unwrap();
        dir
    })
}

/// Everything the story needs, started on free ports: the IdP, the issuer
/// trusting it, the MCP example, the metadata documents' server.
struct World {
    _idp: TestIdp,
    idp_issuer: String,
    issuer: TestApp,
    mcp: McpServer,
    cimd: CimdServer,
}

async fn world() -> Option<World> {
    if !browser_ready() {
        return None;
    }
    let idp = TestIdp::start()?;
    let cimd = CimdServer::start();
    let (listener, url) = McpServer::bind().await;
    let config = idp_config(&idp, 30);
    let role = orders_role(&url);
    let idp_issuer = idp.issuer.clone();
    let cert = cimd.certificate();
    let issuer = TestApp::spawn_with(None, move |c| {
        // Tessera's login at the test IdP (tests/it/web/fixture.rs).
        let secret_file = c.data_dir.join("login-client-secret");
        std::fs::write(&secret_file, format!("{WEB_CLIENT}-secret\n")).unwrap();
        c.idp = vec![config];
        c.role = vec![role];
        // The metadata documents are on loopback, over TLS with a test root.
        c.clients.allow_private_addresses = true;
        c.clients.extra_root_cert_file = Some(cert);
        c.login = Some(LoginConfig {
            issuer: idp_issuer,
            client_id: WEB_CLIENT.into(),
            client_secret_file: secret_file,
            scope: "openid groups".into(),
            client_auth: ClientAuth::ClientSecretPost,
        });
    })
    .await;
    // The authorization-code flow is issue 12's: until this build has it
    // (its metadata names an authorization endpoint), say so and stop.
    let metadata: Value = issuer
        .http
        .get(issuer.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    if metadata["authorization_endpoint"].as_str().is_none() {
        eprintln!(
            "\n*** SKIPPED: this issuer has no authorization endpoint yet, so the MCP SDK \
             browser test did not run. ***\n"
        );
        return None;
    }
    let mcp = McpServer::start(listener, &url, &issuer).await;
    Some(World {
        idp_issuer: idp.issuer.clone(),
        _idp: idp,
        issuer,
        mcp,
        cimd,
    })
}

/// The story for one SDK's client.
async fn an_sdk_client_connects_through_the_browser(world: &World, sdk: Sdk, name: &str) {
    let client = SdkClient::new(sdk, &world.cimd, name);
    let server = world.mcp.url.as_str();
    let shots = screenshots();

    // 1. From nothing but the URL: 401 -> discovery -> authorize -> login
    //    -> consent (alice approves two of the tools) -> token -> call.
    let got = client
        .call(
            server,
            Person::Approves("alice", "list_orders get_order", shots.as_deref()),
            "get_order",
            json!({"id": 1}),
        )
        .await;
    assert!(got.ok(), "{got:?}");
    assert!(got.text().contains("espresso beans"), "{got:?}");
    assert!(
        got.text()
            .contains(&format!("acting for alice at {}", world.idp_issuer)),
        "{got:?}"
    );
    let first = got.refusals();
    assert!(
        first
            .first()
            .is_some_and(|(s, c)| *s == 401 && c.contains("resource_metadata=")),
        "{got:?}"
    );
    let asked = got.authorized_scopes();
    assert_eq!(asked.len(), 1, "{got:?}");
    assert!(asked[0].split(' ').any(|s| s == "get_order"), "{got:?}");
    assert_eq!(
        got.json["authorizations"][0]["client_id"], client.client_id,
        "{got:?}"
    );
    assert_eq!(got.json["authorizations"][0]["resource"], server, "{got:?}");

    // 2. A tool outside the consented scopes: 403 insufficient_scope with
    //    the scope to ask for; nobody is at the browser to approve more.
    let refused = client
        .call(server, Person::Absent, "delete_order", json!({"id": 1}))
        .await;
    assert!(!refused.ok(), "{refused:?}");
    assert!(
        refused.refusals().iter().any(|(s, c)| *s == 403
            && c.contains("error=\"insufficient_scope\"")
            && c.contains("delete_order")),
        "{refused:?}"
    );
    // The stored token still works for what was consented, and nothing
    // was deleted.
    let got = client
        .call(server, Person::Absent, "get_order", json!({"id": 1}))
        .await;
    assert!(got.ok(), "{got:?}");

    // 3. Alice withdraws her consent on her consents page (which ends the
    //    refresh families started under it) and the token is revoked: the
    //    call is refused, and no new token comes without her.
    let alice = format!(
        "tessera-session={}",
        crate::web::fixture::login(&world.issuer, &world._idp, "alice").await
    );
    let page = crate::web::fixture::get_with(&world.issuer.url("/consents"), Some(&alice))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains(&client.client_id), "{page}");
    let csrf = crate::web::authorize::hidden(&page, "csrf");
    let withdrawn = crate::web::authorize::post_form(
        &world.issuer,
        "/consents/withdraw",
        &alice,
        &[
            ("client_id", client.client_id.as_str()),
            ("resource", server),
            ("csrf", csrf.as_str()),
        ],
        None,
    )
    .await;
    assert_eq!(withdrawn.status().as_u16(), 303);
    let token = client.stored_access_token();
    let token_id = world.issuer.inspect(&token).token_id;
    let r = world
        .issuer
        .revoke_admin(&json!({ "token_id": token_id }))
        .await;
    assert!(r.status.is_success(), "{} {}", r.status, r.text);
    let deadline = Instant::now() + Duration::from_secs(30);
    let refused = loop {
        let out = client
            .call(server, Person::Absent, "get_order", json!({"id": 1}))
            .await;
        if !out.ok() {
            break out;
        }
        assert!(
            Instant::now() < deadline,
            "the revocation did not reach the MCP server within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(
        refused
            .refusals()
            .iter()
            .any(|(s, c)| *s == 401 && c.contains("revoked")),
        "{refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typescript_sdk_connects_through_the_browser_and_is_refused_after_revocation() {
    let Some(world) = world().await else {
        return;
    };
    an_sdk_client_connects_through_the_browser(&world, Sdk::TypeScript, "ts-client").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_connects_through_the_browser_and_is_refused_after_revocation() {
    let Some(python) = crate::python::python_with("mcp, httpx2", "MCP SDK browser test") else {
        return;
    };
    let Some(world) = world().await else {
        return;
    };
    an_sdk_client_connects_through_the_browser(&world, Sdk::Python(python), "py-client").await;
}
