//! The whole "ask a person first" story with real parts: the MCP example's
//! `pay` tool, called by the Python agent (`examples/python/pay_agent.py`,
//! official MCP SDK), refuses a payment nobody approved with a hint; the
//! agent asks at `bc-authorize` in ping mode; the signed webhook brings the
//! link; headless chromium logs in as alice at the test IdP and approves;
//! Tessera pings the agent, which collects the approved token and pays.
//! The same token refuses one cent more than the person approved.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};
use tessera::people::{Role, RoleName};
use tessera::server::approval_policy::ApprovalRule;
use tessera::server::webhook;
use tessera::token::{Action, AgentId, Amount, Person};
use tessera::web::{ClientAuth, LoginConfig};
use tokio::sync::oneshot;

use crate::people::fixture::idp_config;
use crate::people::idp::TestIdp;
use crate::server::helpers::{eventually, segment, Reply, TestAgent, TestApp};
use crate::web::browser;
use crate::web::fixture::WEB_CLIENT;

// The example's `main` and flags are not used here; verify::mcp and others
// load the same file.
#[allow(dead_code, clippy::duplicate_mod)]
#[path = "../../../examples/mcp_tool_server.rs"]
mod example;

const SECRET: &str = "a-webhook-secret-for-the-pay-test";

/// The agent's key as PKCS#8 PEM (what `tessera keygen` writes).
fn pem(agent: &TestAgent) -> String {
    let mut der = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    der.extend_from_slice(&agent.key.to_bytes());
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    format!("-----BEGIN PRIVATE KEY-----\n{b64}\n-----END PRIVATE KEY-----\n")
}

fn payer_role(audience: &str) -> Role {
    toml::from_str(&format!(
        "name = \"payer\"\nactions = [\"payments:create\"]\nresources = [\"payees/*\"]\n\
         audiences = [\"{audience}\"]\nmax_ttl = \"5m\"\ngroups = [\"finance\"]\n"
    ))
    .unwrap()
}

/// The text blocks of one step's tool result, joined.
fn text(step: &Value) -> String {
    step["content"]
        .as_array()
        .map(|c| {
            c.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

/// The MCP example on `listener`, following revocations from the issuer's
/// feed; stops when the sender is dropped.
async fn start_mcp(
    app: &TestApp,
    listener: tokio::net::TcpListener,
    url: &str,
) -> oneshot::Sender<()> {
    let config = example::Config {
        public_url: url.to_owned(),
        issuer: app.base.clone(),
        revocations: example::RevocationSource::Feed {
            token: app.admin_token(),
        },
    };
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
    stop
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_payee_or_amount_or_an_unapproved_token_is_a_tool_error_and_nothing_is_paid() {
    let Some(python) = crate::python::python_with("mcp", "pay tool bad-input test") else {
        return;
    };
    let app = TestApp::spawn().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let agent = TestAgent::new("payer");
    app.register_agent(
        &agent,
        &["payments:create"],
        &["payees/*"],
        &[&url],
        Some("10m"),
    )
    .await;
    let form = TestApp::form(
        app.assertion(&agent).build(),
        &[
            ("scope", "payments:create"),
            ("identifier", "payees/*"),
            ("resource", &url),
        ],
    );
    let r = app.request_token(&form, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let token = r.token().to_owned();
    let _stop = start_mcp(&app, listener, &url).await;

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/python/mcp_client.py");
    for (payee, amount, says) in [
        ("acme", "40.005EUR", "amount: "),
        ("acme", "-1.00EUR", "amount: "),
        ("acme", "99999999999999999999EUR", "amount: "),
        ("../admin", "1.00EUR", "payee: "),
        ("", "1.00EUR", "payee: "),
        // The verifier allows the agent's own token; the tool wants a person's approval.
        (
            "acme",
            "1.00EUR",
            "forbidden: the token carries no person's approval",
        ),
    ] {
        let args = json!({ "payee": payee, "amount": amount }).to_string();
        let out = tokio::process::Command::new(&python)
            .arg(&script)
            .args([&url, &token, "pay", &args])
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(Duration::from_secs(60), out)
            .await
            .expect("mcp_client.py did not finish within 60 s")
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let v: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "no JSON ({e}): {stdout} {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        assert_eq!(v["is_error"], true, "{payee} {amount}: {v}");
        let got = text(&v);
        assert!(got.starts_with(says), "{payee} {amount}: {got}");
        assert!(!got.contains("paid "), "{got}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_is_refused_asks_the_person_who_approves_in_a_browser_and_the_payment_goes_through(
) {
    let Some(python) = crate::python::python_with("mcp, authlib, joserfc, requests", "pay agent")
    else {
        return;
    };
    let Some(idp) = TestIdp::start() else {
        return;
    };
    let (hook, seen) = super::webhook::receiver().await;
    let mcp_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mcp_url = format!("http://{}/mcp", mcp_listener.local_addr().unwrap());

    let idp_conf = idp_config(&idp, 30);
    let idp_issuer = idp.issuer.clone();
    let audience = mcp_url.clone();
    let app = TestApp::spawn_with(None, move |c| {
        let secret_file = c.data_dir.join("login-client-secret");
        std::fs::write(&secret_file, format!("{WEB_CLIENT}-secret\n")).unwrap();
        let hook_secret = c.data_dir.join("webhook.secret");
        std::fs::write(&hook_secret, format!("{SECRET}\n")).unwrap();
        c.idp = vec![idp_conf];
        c.role = vec![payer_role(&audience)];
        c.login = Some(LoginConfig {
            issuer: idp_issuer,
            client_id: WEB_CLIENT.into(),
            client_secret_file: secret_file,
            scope: "openid groups".into(),
            client_auth: ClientAuth::ClientSecretPost,
        });
        c.approval.loopback_http_notifications = true;
        c.approval.webhook_url = Some(hook);
        c.approval.webhook_secret_file = Some(hook_secret);
        c.approval.rule = vec![ApprovalRule {
            action: Action::parse("payments:create").unwrap(),
            approval: None,
            approval_above: Some(Amount::parse("10.00EUR").unwrap()),
        }];
    })
    .await;

    // The agent: it may pay payees at the MCP server; its ping endpoint.
    let agent = TestAgent::new("payer");
    app.register_agent(
        &agent,
        &["payments:create"],
        &["payees/*"],
        &[&mcp_url],
        Some("10m"),
    )
    .await;
    let notify_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{notify_port}/ciba-ping");
    let r = app
        .http
        .patch(app.url(&format!("/v1/agents/{}", segment(&agent.id))))
        .bearer_auth(app.admin_token())
        .json(&json!({ "notification_endpoint": endpoint }))
        .send()
        .await
        .unwrap();
    let r = Reply::from(r).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let alice = Person::parse(&idp.issuer, "alice").unwrap();
    let people = &app.state.stores.people;
    people
        .grant_role(&alice, &RoleName::parse("payer").unwrap())
        .await
        .unwrap();
    people
        .consent(&alice, &AgentId::parse(&agent.id).unwrap())
        .await
        .unwrap();

    let _stop = start_mcp(&app, mcp_listener, &mcp_url).await;

    // The agent runs until the payment is done (or it gives up).
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("agent.key");
    std::fs::write(&key, pem(&agent)).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/python/pay_agent.py");
    let person = format!("{}|alice", idp.issuer);
    let port = notify_port.to_string();
    let agent_run = tokio::process::Command::new(&python)
        .arg(&script)
        .args(["--issuer", &app.base, "--agent", &agent.id, "--key"])
        .arg(&key)
        .args([
            "--mcp",
            &mcp_url,
            "--notify-port",
            &port,
            "--person",
            &person,
        ])
        .args([
            "--payee", "acme", "--amount", "40.00EUR", "--over", "40.01EUR",
        ])
        .args(["--message", "Pay acme 40 EUR", "--wait", "120"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .output();
    let mut agent_run = tokio::spawn(agent_run);

    // The webhook brings the link, signed (its first attempt is refused, the retry lands).
    let (sig, body) = tokio::select! {
        done = &mut agent_run => {
            let out = done.unwrap().unwrap();
            panic!(
                "the agent stopped before the webhook: {}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        }
        got = eventually(Duration::from_secs(60), "the webhook", || {
        let seen = seen.clone();
        async move { seen.lock().unwrap().get(1).cloned() }
    }) => got,
    };
    let now = app.state.now().timestamp();
    webhook::verify(SECRET.as_bytes(), &sig.unwrap(), &body, now, 300).unwrap();
    let mut forged = body.clone();
    forged.push(b' ');
    let sig = seen.lock().unwrap()[1].0.clone().unwrap();
    assert!(webhook::verify(SECRET.as_bytes(), &sig, &forged, now, 300).is_err());
    let notice: webhook::Notice = serde_json::from_slice(&body).unwrap();

    // Alice approves in the browser.
    let Some(r) = browser::run("approve.mjs", &[&notice.approval_url, &idp.issuer, "alice"]).await
    else {
        return;
    };
    assert_eq!(r["message"], "Pay acme 40 EUR", "{r}");
    assert_eq!(r["action"], "payments:create", "{r}");
    assert_eq!(r["resource"], "payees/acme", "{r}");
    assert_eq!(r["amount"], "40.00EUR", "{r}");
    assert_eq!(r["outcome"], "Approved", "{r}");

    let out = tokio::time::timeout(Duration::from_secs(120), agent_run)
        .await
        .expect("the agent did not finish within 120 s")
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let steps: BTreeMap<String, Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| Some((v["step"].as_str()?.to_owned(), v)))
        .collect();
    assert!(out.status.success(), "{stdout}\n{stderr}");

    // First call: refused, with the hint naming what to ask and where.
    let first = &steps["first_call"];
    assert_eq!(first["ok"], false, "{first}");
    assert!(text(first).contains("no person's approval"), "{first}");
    assert_eq!(
        first["hint"],
        json!({
            "remediation": "person_approval",
            "bc_authorize": app.url("/oauth/bc-authorize"),
            "action": "payments:create", "resource": "payees/acme",
            "audience": mcp_url, "amount": "40.00EUR",
        })
    );
    // The request the webhook announced is the agent's; the ping reached it.
    let asked = steps["asked"]["auth_req_id"].as_str().unwrap();
    assert_eq!(notice.auth_req_id, asked);
    assert_eq!(steps["pinged"]["auth_req_id"], asked, "{stdout}");
    // Second call: paid, naming the person and the approval.
    let second = &steps["second_call"];
    assert_eq!(second["ok"], true, "{second}");
    assert_eq!(
        text(second),
        format!("paid 40.00EUR to acme, approved by {alice} (approval {asked})")
    );
    // One cent more than approved: refused by the token's cap, with the hint.
    let over = &steps["over_call"];
    assert_eq!(over["ok"], false, "{over}");
    assert!(text(over).starts_with("forbidden: "), "{over}");
    assert_eq!(over["hint"]["amount"], "40.01EUR", "{over}");
    // No token in what the agent printed.
    assert!(!stdout.contains("access_token"), "{stdout}");
}
