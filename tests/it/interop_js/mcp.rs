//! The MCP TypeScript SDK (`examples/js/call-tool.mjs`) calls the MCP example
//! (`examples/mcp_tool_server.rs`) with a token from an issuer running in this
//! process, narrowed in JavaScript (`examples/js/attenuate.mjs`).

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tessera::server::admin::feed_capability;
use tessera::token::{self, Lifetime};
use tokio::sync::oneshot;

use super::{js_dir, node_ready, Interop, WIDEN};
use crate::server::helpers::{now, TestAgent, TestApp};

// The example's `main` and flags are not used here; `verify::mcp` compiles
// the same file as its own private module.
#[allow(dead_code, clippy::duplicate_mod)]
#[path = "../../../examples/mcp_tool_server.rs"]
mod mcp_example;

/// What `call-tool.mjs` printed.
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

    fn text(&self) -> String {
        self.json["content"]
            .as_array()
            .map(|b| {
                b.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default()
    }

    /// The refused HTTP requests: status and `WWW-Authenticate`.
    fn refusals(&self) -> Vec<(u64, String)> {
        self.json["http_refusals"]
            .as_array()
            .map(|r| {
                r.iter()
                    .map(|r| {
                        (
                            r["status"].as_u64().unwrap_or(0),
                            r["www_authenticate"].as_str().unwrap_or("").to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// One tool call through the MCP TypeScript SDK; the token from a file
/// (`@FILE`), as an agent would keep it.
async fn call_tool(dir: &Path, url: &str, token: &str, tool: &str, args: Value) -> Outcome {
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    let file = dir.join(format!(
        "call-{}.tok",
        CALLS.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&file, token).unwrap();
    let out = tokio::process::Command::new("node")
        .arg(js_dir().join("call-tool.mjs"))
        .arg(url)
        .arg(format!("@{}", file.display()))
        .arg(tool)
        .arg(args.to_string())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), out)
        .await
        .expect("call-tool.mjs did not finish within 60 s")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!("call-tool.mjs printed no JSON ({e}): stdout {stdout:?}, stderr {stderr}")
    });
    assert_eq!(
        out.status.success(),
        json["ok"] == true,
        "exit status follows ok: {json}"
    );
    Outcome { json, stderr }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mcp_typescript_sdk_calls_the_example_with_a_token_narrowed_in_javascript() {
    if !node_ready() {
        return;
    }
    let issuer = TestApp::spawn().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());

    // The agent's token from the issuer: get_order on orders*.
    let agent = TestAgent::new("orders-bot");
    issuer
        .register_agent(
            &agent,
            &["list_orders", "get_order"],
            &["orders*"],
            &[&url],
            Some("10m"),
        )
        .await;
    let form = TestApp::form(
        issuer.assertion(&agent).build(),
        &[
            ("scope", "get_order"),
            ("identifier", "orders*"),
            ("resource", &url),
        ],
    );
    let r = issuer.request_token(&form, None).await;
    assert_eq!(r.status, reqwest::StatusCode::OK, "{}", r.text);
    let parent = r.token().to_owned();

    // Narrowed in JavaScript to orders/1, with the issuer's root public key;
    // and a copy widened in JavaScript.
    let active = issuer.state.ring().active().keypair.public();
    let it = Interop::with_root(issuer.state.ring().active().id, &active);
    let child = it.ok("narrow", &parent, &["--resource", "orders/1"]);
    let widened = it.ok("widen", &parent, WIDEN);

    // The MCP example, following the issuer's revocation feed.
    let feed = feed_capability(Lifetime::parse("1h").unwrap()).unwrap();
    let config = mcp_example::Config {
        public_url: url.clone(),
        issuer: issuer.base.clone(),
        revocations: mcp_example::RevocationSource::Feed {
            token: token::mint(&feed, issuer.state.ring().active(), now())
                .unwrap()
                .token,
        },
    };
    let router = mcp_example::app(&config).await.unwrap();
    let (_stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    let dir = it.dir.path();

    // Within the JavaScript narrowing: the tool's answer.
    let got = call_tool(dir, &url, &child, "get_order", json!({"id": 1})).await;
    assert!(got.ok(), "{got:?}");
    assert!(got.text().contains("espresso beans"), "{got:?}");
    assert!(got.refusals().is_empty(), "{got:?}");

    // Outside it (the parent allows orders/2): a tool error naming
    // out_of_scope.
    let parent_two = call_tool(dir, &url, &parent, "get_order", json!({"id": 2})).await;
    assert!(parent_two.ok(), "{parent_two:?}");
    let denied = call_tool(dir, &url, &child, "get_order", json!({"id": 2})).await;
    assert!(!denied.ok(), "{denied:?}");
    assert_eq!(denied.json["is_error"], true, "{denied:?}");
    assert!(denied.text().contains("out_of_scope"), "{denied:?}");
    // Another tool, which the token does not grant at all: refused over
    // HTTP, 403 insufficient_scope naming the scope to ask for (step-up).
    let denied = call_tool(dir, &url, &child, "delete_order", json!({"id": 1})).await;
    assert!(!denied.ok(), "{denied:?}");
    assert!(
        denied.refusals().iter().any(|(s, c)| *s == 403
            && c.contains("error=\"insufficient_scope\"")
            && c.contains("scope=\"get_order delete_order\"")),
        "{denied:?}"
    );

    // The widened copy is refused before MCP: 401, limits_exceeded.
    let refused = call_tool(dir, &url, &widened, "get_order", json!({"id": 1})).await;
    assert!(!refused.ok(), "{refused:?}");
    let refusals = refused.refusals();
    assert!(!refusals.is_empty(), "{refused:?}");
    assert!(
        refusals.iter().all(|(s, c)| *s == 401
            && c.contains("invalid_token")
            && c.contains("limits_exceeded")),
        "{refused:?}"
    );

    // No token: 401 with the metadata's address.
    let none = call_tool(dir, &url, "", "get_order", json!({"id": 1})).await;
    assert!(!none.ok(), "{none:?}");
    assert!(
        none.refusals()
            .iter()
            .any(|(s, c)| *s == 401 && c.contains("resource_metadata=")),
        "{none:?}"
    );

    // The JavaScript block kept the chain of revocation ids: revoking the
    // parent at the issuer stops the narrowed copy at the MCP server.
    let token_id = issuer.inspect(&parent).token_id;
    let r = issuer.revoke_admin(&json!({ "token_id": token_id })).await;
    assert!(r.status.is_success(), "{} {}", r.status, r.text);
    let deadline = Instant::now() + Duration::from_secs(30);
    let refused = loop {
        let out = call_tool(dir, &url, &child, "get_order", json!({"id": 1})).await;
        if !out.ok() {
            break out;
        }
        assert!(
            Instant::now() < deadline,
            "the revocation did not reach the MCP server within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // Refused by the layer (401) or, if the revocation landed between the
    // layer and the tool, by the tool; either way naming `revoked`.
    let said_revoked = refused
        .refusals()
        .iter()
        .any(|(_, c)| c.contains("revoked"))
        || (refused.json["is_error"] == true && refused.text().contains("revoked"));
    assert!(said_revoked, "{refused:?}");
}
