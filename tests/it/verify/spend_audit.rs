//! Spends at a tool server (the Redis ledger, `Grant::reserve_audited`)
//! reach the issuer's audit through the verifier's `AuditSink`: the sum
//! of the committed amounts in the audit equals the ledger's.

use std::sync::Arc;

use tessera::store::budget::Settled;
use tessera::token::Amount;
use tessera::verify::{AuditSink, AuditSinkConfig};

use crate::server::budgets_api::budget_token;
use crate::server::budgets_http::grant;
use crate::server::helpers::{now, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spends_at_the_tool_server_are_audited_and_add_up_to_the_ledger() {
    let Some(app) = TestApp::spawn_redis().await else {
        return;
    };
    let url = app.redis.as_ref().unwrap().url();
    let sink = Arc::new(AuditSink::spawn(AuditSinkConfig::new(url)).unwrap());
    let t = budget_token(app.state.ring().active(), Some("trip:5.00EUR")).token;
    let token_id = "spend-audit-token";
    let mut g = grant(&app, &t);
    g.token_id = token_id.to_owned();
    let ledger = app.state.stores.budgets.as_ref();
    let eur = |s: &str| Amount::parse(s).unwrap();

    // 2.00 committed, 1.50 released, 2.50 committed, then 1.00 over the limit.
    let a = g
        .reserve_audited(ledger, &sink, &eur("2.00EUR"), "k-a", now())
        .await
        .unwrap();
    assert_eq!(
        a.commit_audited(ledger, &sink, &g, now()).await.unwrap(),
        Settled::Committed
    );
    let b = g
        .reserve_audited(ledger, &sink, &eur("1.50EUR"), "k-b", now())
        .await
        .unwrap();
    assert_eq!(
        b.release_audited(ledger, &sink, &g, now()).await.unwrap(),
        Settled::Released
    );
    let c = g
        .reserve_audited(ledger, &sink, &eur("2.50EUR"), "k-c", now())
        .await
        .unwrap();
    c.commit_audited(ledger, &sink, &g, now()).await.unwrap();
    assert!(g
        .reserve_audited(ledger, &sink, &eur("1.00EUR"), "k-d", now())
        .await
        .is_err());
    let stats = sink.shutdown().await;
    assert_eq!(stats.written, 7, "{stats:?}");

    let r = app
        .admin_get(&format!("/v1/audit?token_id={token_id}&limit=100"))
        .await;
    let events: Vec<&serde_json::Value> = r.json["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["event"])
        .collect();
    let outcomes: Vec<&str> = events
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        [
            "budget reserved",
            "budget committed",
            "budget reserved",
            "budget released",
            "budget reserved",
            "budget committed",
            "denied"
        ],
        "{}",
        r.text
    );
    assert_eq!(events[6]["reason"], "budget_exceeded");
    assert_eq!(events[6]["amount"], "1.00EUR");
    assert_eq!(events[0]["chain"][0], "agent://acme/shopper");
    // The committed amounts in the audit add up to the ledger's.
    let committed_in_audit: i64 = events
        .iter()
        .filter(|e| e["outcome"] == "budget committed")
        .map(|e| eur(e["amount"].as_str().unwrap()).minor())
        .sum();
    let key = &g.budgets[0].key;
    let state = app
        .state
        .stores
        .budgets
        .show(key, now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state.committed, 450);
    assert_eq!(committed_in_audit, state.committed);
    // Every record names the reservation it is about.
    assert!(events[1]["capability"]
        .as_str()
        .unwrap()
        .starts_with(&format!("spend reservation={}", a.id)));
}
