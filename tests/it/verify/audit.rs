//! A verifier with an audit sink: its decisions reach the issuer's audit log.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use tessera::verify::{
    AuditSink, AuditSinkConfig, CheckRequest, KeySource, Presentation, Revocations, Verifier,
};

use crate::server::helpers::{TestApp, ACTION, AUDIENCE};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verifier_decisions_are_audited_with_the_chain() {
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
    let agent = app.agent("audited").await;
    let minted = app.mint(&agent, "docs/team-a/q3").await;
    assert_eq!(minted.status, StatusCode::OK, "{}", minted.text);
    let token = minted.token().to_owned();
    let token_id = app.inspect(&token).token_id.clone();
    let p = Presentation::bearer(&token);
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
    let decisions: Vec<(String, String, Option<String>)> = r.json["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["event"])
        .filter(|e| e["kind"] == "decision")
        .map(|e| {
            assert_eq!(e["chain"][0], agent.id.as_str());
            (
                e["capability"].as_str().unwrap().to_owned(),
                e["outcome"].as_str().unwrap().to_owned(),
                e["reason"].as_str().map(str::to_owned),
            )
        })
        .collect();
    assert_eq!(
        decisions,
        [
            (format!("{ACTION} docs/team-a/q3"), "granted".into(), None),
            (
                format!("{ACTION} docs/team-b/q3"),
                "denied".into(),
                Some("out_of_scope".into())
            ),
        ]
    );
    // The decisions are leaves of the audit tree once the issuer catches
    // up (the next record or the next checkpoint), in stream order, and the
    // public checkpoint covers them.
    let tree = &app.state.stores.tree;
    let size = tree.catch_up().await.unwrap();
    let leaves = tree.leaves(0, size).await.unwrap();
    let capabilities: Vec<String> = leaves
        .iter()
        .filter_map(|l| tessera::tlog::record::decode_leaf(l))
        .filter(|e| e.token_id.as_deref() == Some(token_id.as_str()))
        .filter(|e| e.kind == tessera::records::AuditKind::Decision)
        .filter_map(|e| e.capability)
        .collect();
    assert_eq!(
        capabilities,
        [
            format!("{ACTION} docs/team-a/q3"),
            format!("{ACTION} docs/team-b/q3")
        ]
    );
    let checkpoint = app.get("/v1/audit/checkpoint", None).await;
    assert_eq!(checkpoint.status, StatusCode::OK);
    assert!(
        checkpoint.text.lines().nth(1) == Some(size.to_string().as_str()),
        "{}",
        checkpoint.text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_before_the_operation_is_known_are_audited_too() {
    let Some(app) = TestApp::spawn_redis().await else {
        return;
    };
    let url = app.redis.as_ref().unwrap().url();
    let sink = Arc::new(AuditSink::spawn(AuditSinkConfig::new(url.clone())).unwrap());
    // A verifier for another tool server: the issuer's tokens name
    // AUDIENCE, so the deferred path refuses them as `wrong_audience`.
    let verifier = Verifier::builder("https://elsewhere.example")
        .keys(KeySource::JwksUrl(app.url("/.well-known/jwks.json")))
        .revocations(Revocations::Redis { url })
        .audit(Arc::clone(&sink))
        .build()
        .await
        .unwrap();
    assert!(verifier.ready(Duration::from_secs(10)).await);
    let agent = app.agent("deferred").await;
    let minted = app.mint(&agent, "docs/team-a/q3").await;
    assert_eq!(minted.status, StatusCode::OK, "{}", minted.text);
    let token = minted.token().to_owned();
    let token_id = app.inspect(&token).token_id.clone();
    let rejection = verifier
        .authenticate(&Presentation::bearer(&token))
        .await
        .unwrap_err();
    assert_eq!(rejection.reason, tessera::verify::Reason::WrongAudience);
    let stats = sink.shutdown().await;
    assert_eq!(stats.written, 1, "{stats:?}");
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
    assert_eq!(decisions.len(), 1, "{decisions:?}");
    let d = decisions[0];
    assert_eq!(d["outcome"], "denied");
    assert_eq!(d["reason"], "wrong_audience");
    assert_eq!(d["chain"][0], agent.id.as_str());
    assert!(d["capability"].is_null(), "{d}");
}
