//! The MCP tool server example (`examples/mcp_tool_server.rs`), driven by
//! the official MCP Python SDK (`examples/python/mcp_client.py`) with tokens
//! from an issuer running in this process.
//!
//! Needs the virtual environment made by `scripts/python-env.sh` (or a python
//! with the `mcp` package in `TESSERA_PYTHON`). Without it the tests say so
//! loudly and pass, unless `TESSERA_REQUIRE_PYTHON=1`, which CI sets.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use tessera::server::admin::feed_capability;
use tessera::token::{
    self, Action, AgentId, Audience, Lifetime, Limits, Narrowing, OnBehalf, Person, ResourcePattern,
};
use tokio::sync::oneshot;

use crate::server::helpers::{now, TestAgent, TestApp};

#[allow(dead_code)] // the example's `main` and flags are not used here
#[path = "../../../examples/mcp_tool_server.rs"]
mod example;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/python/mcp_client.py")
}

/// The example server on a loopback port; stops when dropped.
struct McpServer {
    url: String,
    _stop: oneshot::Sender<()>,
}

impl McpServer {
    /// Binds first: the URL is the audience the tokens must name.
    async fn bind() -> (tokio::net::TcpListener, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/mcp", listener.local_addr().unwrap());
        (listener, url)
    }

    async fn start(
        listener: tokio::net::TcpListener,
        url: &str,
        issuer: &TestApp,
        revocations: example::RevocationSource,
    ) -> Self {
        let config = example::Config {
            public_url: url.to_owned(),
            issuer: issuer.base.clone(),
            revocations,
        };
        // Built here, so that a failure to start fails the test plainly.
        let router = example::app(&config).await.unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Self {
            url: url.to_owned(),
            _stop: stop,
        }
    }
}

/// What `mcp_client.py` printed.
#[derive(Debug)]
struct Outcome {
    json: Value,
    #[allow(dead_code)] // read through `Debug`, in assertion messages
    stderr: String,
}

impl Outcome {
    fn ok(&self) -> bool {
        self.json["ok"] == true
    }

    fn is_error(&self) -> bool {
        self.json["is_error"] == true
    }

    /// The tool's text content.
    fn text(&self) -> String {
        self.json["content"]
            .as_array()
            .map(|blocks| {
                blocks
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default()
    }

    /// The `WWW-Authenticate` challenges of refused HTTP requests.
    fn challenges(&self) -> Vec<String> {
        self.json["http_refusals"]
            .as_array()
            .map(|r| {
                r.iter()
                    .filter_map(|r| r["www_authenticate"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The call was refused over HTTP with 403 `insufficient_scope`, the
/// challenge naming `scope` and where the metadata is, and no tool ran.
fn assert_step_up(outcome: &Outcome, scope: &str) {
    assert!(!outcome.ok(), "{outcome:?}");
    assert_eq!(outcome.json["is_error"], Value::Null, "{outcome:?}");
    let refusal = outcome.json["http_refusals"]
        .as_array()
        .and_then(|r| r.last())
        .unwrap_or_else(|| panic!("no HTTP refusal: {outcome:?}"));
    assert_eq!(refusal["status"], 403, "{outcome:?}");
    let challenge = refusal["www_authenticate"].as_str().unwrap_or_default();
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert!(
        challenge.contains(&format!("scope=\"{scope}\"")),
        "{challenge}"
    );
    assert!(
        challenge.contains("resource_metadata=\"http://127.0.0.1:"),
        "{challenge}"
    );
}

/// Runs one tool call through the Python MCP client.
async fn call(python: &Path, url: &str, token: &str, tool: &str, args: Value) -> Outcome {
    let out = tokio::process::Command::new(python)
        .arg(script())
        .args([url, token, tool, &args.to_string()])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), out)
        .await
        .expect("mcp_client.py did not finish within 60 s")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!("mcp_client.py printed no JSON ({e}): stdout {stdout:?}, stderr {stderr}")
    });
    Outcome { json, stderr }
}

/// A registered agent whose ceiling allows `list_orders` and `get_order` on
/// `orders*` at `audience`, and its token (from the token endpoint) for
/// `get_order` on `orders*`.
async fn agent_token(issuer: &TestApp, audience: &str) -> String {
    let agent = TestAgent::new("orders-bot");
    issuer
        .register_agent(
            &agent,
            &["list_orders", "get_order"],
            &["orders*"],
            &[audience],
            Some("10m"),
        )
        .await;
    let form = TestApp::form(
        issuer.assertion(&agent).build(),
        &[
            ("scope", "get_order"),
            ("identifier", "orders*"),
            ("resource", audience),
        ],
    );
    let r = issuer.request_token(&form, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.token().to_owned()
}

/// A feed token for the issuer's revocation feed.
fn feed_token(issuer: &TestApp) -> String {
    let cap = feed_capability(Lifetime::parse("1h").unwrap()).unwrap();
    token::mint(&cap, issuer.state.ring().active(), now())
        .unwrap()
        .token
}

/// The story, with revocations from `source`: an attenuated child of the
/// agent's token calls an allowed tool, is refused out-of-scope ones (when
/// `scope_checks`), and is refused the allowed one once the parent is
/// revoked at the issuer.
async fn tool_calls_follow_the_token_and_its_revocation(
    issuer: &TestApp,
    scope_checks: bool,
    source: impl FnOnce(&TestApp) -> example::RevocationSource,
) {
    let Some(python) = crate::python::python_with("mcp, httpx2", "MCP example test") else {
        return;
    };
    let (listener, url) = McpServer::bind().await;
    let parent = agent_token(issuer, &url).await;
    // The sub-agent's copy: narrowed to `orders/*` by a first-party block.
    let narrowing = Narrowing {
        resource: Some(ResourcePattern::parse("orders/*").unwrap()),
        ..Narrowing::default()
    };
    let child = token::attenuate(&parent, &narrowing, &Limits::default()).unwrap();
    let server = McpServer::start(listener, &url, issuer, source(issuer)).await;

    // Allowed: get_order on orders/1, acting for the agent itself.
    let got = call(&python, &server.url, &child, "get_order", json!({"id": 1})).await;
    assert!(got.ok(), "{:?}", got);
    assert!(got.text().contains("espresso beans"), "{:?}", got);
    assert!(
        got.text().contains("acting as agent://"),
        "the answer says for whom the tool acted: {:?}",
        got
    );

    if scope_checks {
        // Not granted at all: the token grants get_order, not delete_order,
        // so the HTTP request is refused 403 with the scope to ask for.
        let denied = call(
            &python,
            &server.url,
            &child,
            "delete_order",
            json!({"id": 1}),
        )
        .await;
        assert_step_up(&denied, "get_order delete_order");
        // Nor list_orders, which the ceiling allows but this token does not.
        let denied = call(&python, &server.url, &child, "list_orders", json!({})).await;
        assert_step_up(&denied, "get_order list_orders");
        // Nothing was deleted.
        let got = call(&python, &server.url, &child, "get_order", json!({"id": 1})).await;
        assert!(got.ok(), "{:?}", got);
    }

    // Revoke the parent at the issuer: the child dies with it.
    let token_id = issuer.inspect(&parent).token_id;
    let r = issuer.revoke_admin(&json!({ "token_id": token_id })).await;
    assert!(r.status.is_success(), "{} {}", r.status, r.text);
    let deadline = Instant::now() + Duration::from_secs(30);
    let refused = loop {
        let out = call(&python, &server.url, &child, "get_order", json!({"id": 1})).await;
        if !out.ok() {
            break out;
        }
        assert!(
            Instant::now() < deadline,
            "the revocation did not reach the MCP server within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // Refused by the layer (401 invalid_token) or, if the revocation landed
    // between the two checks, by the tool; either way naming `revoked`.
    let said_revoked = refused.challenges().iter().any(|c| c.contains("revoked"))
        || (refused.is_error() && refused.text().contains("revoked"));
    assert!(said_revoked, "{:?}", refused);
    assert!(
        refused
            .challenges()
            .iter()
            .all(|c| c.contains("invalid_token")),
        "{:?}",
        refused
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_calls_are_authorized_per_tool_and_revocation_over_the_feed_takes_effect() {
    let issuer = TestApp::spawn().await;
    tool_calls_follow_the_token_and_its_revocation(&issuer, true, |issuer| {
        example::RevocationSource::Feed {
            token: feed_token(issuer),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_through_redis_takes_effect_at_the_mcp_server() {
    let Some(issuer) = TestApp::spawn_redis().await else {
        return;
    };
    tool_calls_follow_the_token_and_its_revocation(&issuer, false, |issuer| {
        assert_eq!(issuer.state.config.redis_key_prefix, "tessera:");
        example::RevocationSource::Redis {
            url: issuer.redis.as_ref().unwrap().url(),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_without_a_token_is_told_where_the_metadata_is() {
    let issuer = TestApp::spawn().await;
    let (listener, url) = McpServer::bind().await;
    let server = McpServer::start(
        listener,
        &url,
        &issuer,
        example::RevocationSource::Feed {
            token: feed_token(&issuer),
        },
    )
    .await;
    let origin = server.url.trim_end_matches("/mcp");
    let metadata_url = format!("{origin}/.well-known/oauth-protected-resource");

    let initialize = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "reqwest", "version": "0"},
        },
    });
    let r = issuer
        .http
        .post(&server.url)
        .header("accept", "application/json, text/event-stream")
        .json(&initialize)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(
        challenge.contains(&format!("resource_metadata=\"{metadata_url}\"")),
        "{challenge}"
    );

    // The metadata needs no token and names the issuer; the path-inserted
    // form (RFC 9728 §3.1) answers the same.
    for path in [metadata_url.clone(), format!("{metadata_url}/mcp")] {
        let r = issuer.http.get(&path).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        let doc: Value = r.json().await.unwrap();
        assert_eq!(doc["resource"], server.url.as_str());
        assert_eq!(doc["authorization_servers"], json!([issuer.base]));
        assert!(doc["scopes_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("get_order")));
    }
}

/// A valid token without the tool's action: the `tools/call` is answered
/// 403 `insufficient_scope` naming the scope to ask for (the token's
/// actions and the tool) before MCP runs anything; the metadata lists the
/// tools as scopes. A tool the token grants, or another method, passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_the_token_does_not_grant_is_a_403_step_up_challenge() {
    let issuer = TestApp::spawn().await;
    let (listener, url) = McpServer::bind().await;
    let server = McpServer::start(
        listener,
        &url,
        &issuer,
        example::RevocationSource::Feed {
            token: feed_token(&issuer),
        },
    )
    .await;
    let t = token_at(&issuer, &server.url, now());
    let post = |body: Value| {
        issuer
            .http
            .post(&server.url)
            .header("accept", "application/json, text/event-stream")
            .bearer_auth(&t)
            .json(&body)
            .send()
    };
    let tools_call = |name: &str| {
        json!({
            "jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": name, "arguments": {"id": 1}},
        })
    };
    let metadata = format!(
        "{}/.well-known/oauth-protected-resource",
        server.url.trim_end_matches("/mcp")
    );
    for (tool, scope) in [
        ("delete_order", "get_order delete_order"),
        ("list_orders", "get_order list_orders"),
    ] {
        let r = post(tools_call(tool)).await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{tool}");
        let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
        assert!(
            challenge.starts_with("Bearer error=\"insufficient_scope\""),
            "{challenge}"
        );
        assert!(
            challenge.contains(&format!("scope=\"{scope}\"")),
            "{challenge}"
        );
        assert!(
            challenge.contains(&format!("resource_metadata=\"{metadata}\"")),
            "{challenge}"
        );
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "insufficient_scope");
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains(&format!("the token grants no `{tool}`")),
            "{body}"
        );
    }
    // In a batch too.
    let r = post(json!([tools_call("delete_order")])).await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // A tool the token grants reaches MCP (which wants a session first:
    // not a step-up refusal), and so does a method that calls no tool.
    let r = post(tools_call("get_order")).await.unwrap();
    assert_ne!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.headers().get("www-authenticate").is_none());
    let r = post(json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "reqwest", "version": "0"},
        },
    }))
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // Without a token the same call is 401 (authentication comes first).
    let r = issuer
        .http
        .post(&server.url)
        .header("accept", "application/json, text/event-stream")
        .json(&tools_call("delete_order"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

/// A token for `get_order` on `orders*` at `audience`, minted from the
/// issuer's active key at `issued_at` (5 minutes' lifetime).
fn token_at(issuer: &TestApp, audience: &str, issued_at: chrono::DateTime<chrono::Utc>) -> String {
    let cap = token::Capability {
        agent: token::AgentId::parse("agent://acme/orders-bot").unwrap(),
        action: token::Action::parse("get_order").unwrap(),
        resource: ResourcePattern::parse("orders*").unwrap(),
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
async fn an_expired_or_foreign_token_gets_401_on_initialize() {
    let issuer = TestApp::spawn().await;
    let (listener, url) = McpServer::bind().await;
    let server = McpServer::start(
        listener,
        &url,
        &issuer,
        example::RevocationSource::Feed {
            token: feed_token(&issuer),
        },
    )
    .await;
    let initialize = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "reqwest", "version": "0"},
        },
    });
    let post = |token: String| {
        issuer
            .http
            .post(&server.url)
            .header("accept", "application/json, text/event-stream")
            .bearer_auth(token)
            .json(&initialize)
            .send()
    };
    // A valid token: MCP answers.
    let r = post(token_at(&issuer, &server.url, now())).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let expired = token_at(&issuer, &server.url, now() - chrono::Duration::hours(1));
    let r = post(expired).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert!(challenge.contains("expired"), "{challenge}");

    let foreign = token_at(&issuer, "https://other.example/mcp", now());
    let r = post(foreign).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(challenge.contains("wrong_audience"), "{challenge}");
}

/// A token acting for a person: the tool's answer names the person and the
/// whole chain; the same token is still refused a tool it does not grant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_answer_for_a_person_token_names_the_person_and_the_chain() {
    let Some(python) = crate::python::python_with("mcp, httpx2", "MCP example test") else {
        return;
    };
    let issuer = TestApp::spawn().await;
    let (listener, url) = McpServer::bind().await;
    let cap = token::Capability {
        agent: AgentId::parse("agent://acme/orders-bot").unwrap(),
        action: Action::parse("get_order").unwrap(),
        resource: ResourcePattern::parse("orders/*").unwrap(),
        audience: Some(Audience::parse(&url).unwrap()),
        lifetime: Lifetime::parse("5m").unwrap(),
        holder_key: None,
        on_behalf: Some(OnBehalf {
            person: Person::parse("https://login.acme.example", "alice").unwrap(),
            prior_actors: vec![AgentId::parse("agent://acme/assistant").unwrap()],
        }),
    };
    let t = token::mint(&cap, issuer.state.ring().active(), now())
        .unwrap()
        .token;
    let source = example::RevocationSource::Feed {
        token: feed_token(&issuer),
    };
    let server = McpServer::start(listener, &url, &issuer, source).await;

    let got = call(&python, &server.url, &t, "get_order", json!({"id": 1})).await;
    assert!(got.ok(), "{:?}", got);
    assert!(got.text().contains("espresso beans"), "{:?}", got);
    assert!(
        got.text().contains(
            "acting for alice at https://login.acme.example via agent://acme/assistant -> \
             agent://acme/orders-bot"
        ),
        "{:?}",
        got
    );
    let denied = call(&python, &server.url, &t, "delete_order", json!({"id": 1})).await;
    assert_step_up(&denied, "get_order delete_order");
}

/// A token capped at 40.00 EUR: `create_order` with its `amount` argument
/// is allowed up to the cap and refused one cent more, in another currency,
/// without an amount, or with an amount finer than the currency's cents.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_order_passes_its_amount_to_the_tokens_cap() {
    let Some(python) = crate::python::python_with("mcp, httpx2", "MCP example test") else {
        return;
    };
    let issuer = TestApp::spawn().await;
    let (listener, url) = McpServer::bind().await;
    let cap = token::Capability {
        agent: AgentId::parse("agent://acme/orders-bot").unwrap(),
        action: Action::parse("create_order").unwrap(),
        resource: ResourcePattern::parse("orders").unwrap(),
        audience: Some(Audience::parse(&url).unwrap()),
        lifetime: Lifetime::parse("5m").unwrap(),
        holder_key: None,
        on_behalf: None,
    };
    let t = token::mint(&cap, issuer.state.ring().active(), now())
        .unwrap()
        .token;
    let capped = token::attenuate(
        &t,
        &Narrowing {
            max_amount: Some(token::Amount::parse("40.00EUR").unwrap()),
            ..Narrowing::default()
        },
        &Limits::default(),
    )
    .unwrap();
    let source = example::RevocationSource::Feed {
        token: feed_token(&issuer),
    };
    let server = McpServer::start(listener, &url, &issuer, source).await;
    let order = |amount: Option<&str>| {
        let mut args = json!({"item": "espresso cups, 6"});
        if let Some(a) = amount {
            args["amount"] = a.into();
        }
        args
    };

    let got = call(
        &python,
        &server.url,
        &capped,
        "create_order",
        order(Some("40.00EUR")),
    )
    .await;
    assert!(got.ok(), "{:?}", got);
    assert!(got.text().contains("espresso cups"), "{:?}", got);
    for refused in [Some("40.01EUR"), Some("40.00USD"), None] {
        let got = call(
            &python,
            &server.url,
            &capped,
            "create_order",
            order(refused),
        )
        .await;
        assert!(got.is_error(), "{refused:?}: {:?}", got);
        assert!(
            got.text().contains("out_of_scope"),
            "{refused:?}: {:?}",
            got
        );
    }
    let bad = call(
        &python,
        &server.url,
        &capped,
        "create_order",
        order(Some("40.001EUR")),
    )
    .await;
    assert!(bad.is_error(), "{:?}", bad);
    assert!(bad.text().contains("minor-unit"), "{:?}", bad);
}
