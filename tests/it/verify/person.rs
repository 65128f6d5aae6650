//! The verifier's grant for a token that acts for a person: the person and
//! the whole chain (person -> earlier actors -> agent -> sub-agents) reach
//! the handler, the axum extractor, the CLI's line and JSON, and the audit
//! log; the token is still refused what it does not grant.

use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use biscuit_auth::KeyPair;
use reqwest::StatusCode;
use tessera::token::{self, AgentId, Narrowing, OnBehalf, Person, ResourcePattern};
use tessera::verify::{
    AuditSink, AuditSinkConfig, CheckRequest, KeySource, Presentation, Reason, RevocationView,
    Revocations, Verifier,
};

use super::check::{proof, verifier_with, TestClock, URL};
use super::example::ExampleServer;
use crate::server::helpers::{now, TestApp, ACTION, AUDIENCE};
use crate::token::support::{cap, keypair, limits, t0, Issuer, SERVICE};

const IDP: &str = "https://login.acme.example";
const BIN: &str = env!("CARGO_BIN_EXE_tessera");

fn alice() -> Person {
    Person::parse(IDP, "alice").unwrap()
}

fn for_alice_via(prior: &[&str]) -> Option<OnBehalf> {
    Some(OnBehalf {
        person: alice(),
        prior_actors: prior.iter().map(|a| AgentId::parse(a).unwrap()).collect(),
    })
}

fn presented<'a>(token: &'a str, proof: &'a str) -> Presentation<'a> {
    Presentation {
        token,
        dpop: Some(proof),
        method: "POST",
        url: URL,
    }
}

/// A bound token for alice with two earlier actors, delegated once to `sub`.
fn delegated_for_alice(issuer: &Issuer, holder: &KeyPair, sub: &KeyPair) -> String {
    let mut c = cap("docs:read", "docs/a/*", Some(SERVICE), Some(holder));
    c.on_behalf = for_alice_via(&["agent://acme/assistant", "agent://acme/desk"]);
    let t = issuer.mint(&c).token;
    token::delegate(
        &t,
        holder,
        &AgentId::parse("agent://acme/main/sub").unwrap(),
        &sub.public(),
        &Narrowing::default(),
        &limits(),
    )
    .unwrap()
}

#[tokio::test]
async fn the_grant_names_the_person_and_the_whole_chain() {
    let issuer = Issuer::new();
    let (holder, sub) = (keypair(10), keypair(11));
    let t = delegated_for_alice(&issuer, &holder, &sub);
    let view = RevocationView::new();
    view.confirm_current();
    let v = verifier_with(
        KeySource::Keys(issuer.keys.clone()),
        Revocations::View(view),
        &TestClock::new(),
    )
    .await;
    let read = CheckRequest::new("docs:read", "docs/a/1").unwrap();
    let p1 = proof(&sub, &t, t0(), "j1");
    let g = v.check(&presented(&t, &p1), &read).await.unwrap();
    assert_eq!(g.person(), Some(&alice()));
    assert_eq!(
        g.on_behalf(),
        for_alice_via(&["agent://acme/assistant", "agent://acme/desk"]).as_ref()
    );
    assert_eq!(g.agent.as_str(), "agent://acme/main");
    assert_eq!(g.acting().as_str(), "agent://acme/main/sub");
    let whole: Vec<&str> = g.custody().actors().map(AgentId::as_str).collect();
    assert_eq!(
        whole,
        [
            "agent://acme/assistant",
            "agent://acme/desk",
            "agent://acme/main",
            "agent://acme/main/sub"
        ]
    );
    assert_eq!(
        g.custody().to_string(),
        "for alice at https://login.acme.example via agent://acme/assistant -> \
         agent://acme/desk -> agent://acme/main -> agent://acme/main/sub"
    );
    let json = serde_json::to_value(&g).unwrap();
    assert_eq!(json["person"]["subject"], "alice");
    assert_eq!(json["person"]["issuer"], IDP);
    assert_eq!(json["prior_actors"][0], "agent://acme/assistant");
    assert_eq!(json["chain"][1], "agent://acme/main/sub");

    // What an axum handler gets before its scope decision says the same.
    let p2 = proof(&sub, &t, t0(), "j2");
    let a = v.authenticate(&presented(&t, &p2)).await.unwrap();
    assert_eq!(a.on_behalf(), g.on_behalf());

    // Acting for alice widens nothing.
    let p3 = proof(&sub, &t, t0(), "j3");
    let write = CheckRequest::new("docs:write", "docs/a/1").unwrap();
    let denied = v.check(&presented(&t, &p3), &write).await.unwrap_err();
    assert_eq!(denied.reason, Reason::OutOfScope);
}

/// A bearer token for alice, one earlier actor, minted now by `app`.
fn bearer_for_alice(app: &TestApp, audience: &str, action: &str, resource: &str) -> String {
    let mut c = cap(action, resource, Some(audience), None);
    c.agent = AgentId::parse("agent://acme/orders-bot").unwrap();
    c.on_behalf = for_alice_via(&["agent://acme/assistant"]);
    token::mint(&c, app.state.ring().active(), now())
        .unwrap()
        .token
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_axum_example_answers_for_whom_it_read() {
    let issuer = TestApp::spawn().await;
    let server = ExampleServer::start(&issuer).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let t = bearer_for_alice(&issuer, &server.base, "orders:read", "orders/*");
    let r = server.get_order(&http, 42, &t).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(
        r.body,
        "order 42, read for alice at https://login.acme.example via \
         agent://acme/assistant -> agent://acme/orders-bot\n"
    );
    let other = bearer_for_alice(&issuer, &server.base, "orders:write", "orders/*");
    let r = server.get_order(&http, 42, &other).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audited_decisions_name_the_person_and_the_whole_chain() {
    let Some(app) = TestApp::spawn_redis().await else {
        return;
    };
    let url = app.redis.as_ref().unwrap().url();
    let sink = Arc::new(AuditSink::spawn(AuditSinkConfig::new(url.clone())).unwrap());
    let verifier = Verifier::builder(AUDIENCE)
        .keys(KeySource::JwksUrl(app.url("/.well-known/jwks.json")))
        .revocations(Revocations::Redis { url })
        .audit(Arc::clone(&sink))
        .build()
        .await
        .unwrap();
    assert!(verifier.ready(Duration::from_secs(10)).await);
    let t = bearer_for_alice(&app, AUDIENCE, ACTION, "docs/team-a/*");
    let token_id = app.inspect(&t).token_id.clone();
    let p = Presentation::bearer(&t);
    verifier
        .check(&p, &CheckRequest::new(ACTION, "docs/team-a/q3").unwrap())
        .await
        .unwrap();
    verifier
        .check(&p, &CheckRequest::new(ACTION, "docs/team-b/q3").unwrap())
        .await
        .unwrap_err();
    let stats = sink.shutdown().await;
    assert_eq!(stats.written, 2, "{stats:?}");
    let r = app
        .admin_get(&format!("/v1/audit?token_id={token_id}&limit=100"))
        .await;
    let decisions: Vec<&serde_json::Value> = r.json["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["event"])
        .filter(|e| e["kind"] == "decision")
        .collect();
    assert_eq!(decisions.len(), 2, "{}", r.text);
    for e in decisions {
        assert_eq!(e["person"]["issuer"], IDP, "{e}");
        assert_eq!(e["person"]["subject"], "alice", "{e}");
        assert_eq!(
            e["chain"],
            serde_json::json!(["agent://acme/assistant", "agent://acme/orders-bot"]),
            "{e}"
        );
        assert_eq!(e["agent"], "agent://acme/orders-bot", "{e}");
    }
}

async fn run(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || Command::new(BIN).args(args).output().unwrap())
        .await
        .unwrap()
}

/// `tessera token verify` on a person token, offline (`--keys`) and through
/// the Verifier (`--jwks`): the line says for whom and via whom, the JSON
/// has `person`, `prior_actors` and `chain`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_verify_line_and_json_name_the_person_and_the_chain() {
    let issuer = Issuer::new();
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    std::fs::write(
        &jwks,
        serde_json::to_string(&issuer.keys.to_jwks()).unwrap(),
    )
    .unwrap();
    let mut c = cap("docs:read", "docs/a/*", Some(SERVICE), None);
    c.on_behalf = for_alice_via(&["agent://acme/assistant", "agent://acme/desk"]);
    c.resource = ResourcePattern::parse("docs/a/*").unwrap();
    let t = token::mint(&c, &issuer.root, now()).unwrap().token;
    let jwks = jwks.display().to_string();
    for keys_flag in ["--keys", "--jwks"] {
        let base = |json: bool| {
            let mut v: Vec<String> = [
                "token",
                "verify",
                &t,
                keys_flag,
                &jwks,
                "--service",
                SERVICE,
                "--operation",
                "docs:read",
                "--resource",
                "docs/a/1",
                "--no-revocation-check",
            ]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
            if json {
                v.push("--json".into());
            }
            v
        };
        let out = run(base(false)).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{keys_flag}: {out:?}");
        assert!(
            stdout.starts_with(
                "allowed: for alice at https://login.acme.example via agent://acme/assistant \
                 -> agent://acme/desk -> agent://acme/main may docs:read on \"docs/a/1\""
            ),
            "{keys_flag}: {stdout}"
        );
        let out = run(base(true)).await;
        assert!(out.status.success(), "{keys_flag}: {out:?}");
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(json["person"]["subject"], "alice", "{keys_flag}: {json}");
        assert_eq!(json["person"]["issuer"], IDP, "{keys_flag}: {json}");
        assert_eq!(
            json["prior_actors"],
            serde_json::json!(["agent://acme/assistant", "agent://acme/desk"]),
            "{keys_flag}: {json}"
        );
        assert_eq!(
            json["chain"],
            serde_json::json!(["agent://acme/main"]),
            "{keys_flag}: {json}"
        );
    }
}
