//! Spends at the issuer's budget API are audited: each reserve, commit
//! and release writes one record, a refusal is `denied` with its code, and
//! the committed amounts the audit names add up to what the ledger says
//! was spent.

use std::collections::HashMap;

use reqwest::StatusCode;
use tessera::records::{AuditKind, AuditQuery};
use tessera::server::budgets_audit::reservation_of;
use tessera::store::AuditEvent;

use super::budgets_api::{budget_token, reserve, settle};
use super::helpers::{now, TestApp};

async fn spends(app: &TestApp) -> Vec<AuditEvent> {
    app.state
        .stores
        .audit
        .query(&AuditQuery {
            kind: Some(AuditKind::Decision),
            limit: 1000,
            ..AuditQuery::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|(_, e)| e)
        .filter(|e| {
            e.capability
                .as_deref()
                .is_some_and(|c| c.starts_with("spend "))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spends_are_audited_and_the_audit_adds_up_to_the_ledger() {
    audit_adds_up(TestApp::spawn().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spends_are_audited_and_the_audit_adds_up_to_the_ledger_on_redis() {
    let Some(app) = TestApp::spawn_redis().await else {
        return;
    };
    audit_adds_up(app).await;
}

async fn audit_adds_up(app: TestApp) {
    let minted = budget_token(app.state.ring().active(), Some("trip:100.00EUR"));
    let t = minted.token;
    let mut ids = Vec::new();
    for (amount, key) in [
        ("30.00EUR", "a-1"),
        ("20.00EUR", "a-2"),
        ("10.00EUR", "a-3"),
    ] {
        let r = reserve(&app, &t, amount, key).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        ids.push(r.json["id"].as_str().unwrap().to_owned());
    }
    let ledger_key = {
        let r = reserve(&app, &t, "30.00EUR", "a-1").await; // a retry
        assert_eq!(r.json["id"], ids[0].as_str(), "{}", r.text);
        r.json["keys"][0].as_str().unwrap().to_owned()
    };
    for id in &ids[..2] {
        let r = settle(&app, "commit", &t, id).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    let r = settle(&app, "release", &t, &ids[2]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // 50.01 EUR on 50.00 EUR left: refused, and audited as denied.
    let r = reserve(&app, &t, "50.01EUR", "a-4").await;
    assert_eq!(r.error(), "budget_exceeded", "{}", r.text);

    let events = spends(&app).await;
    let count = |o: &str| events.iter().filter(|e| e.outcome.as_str() == o).count();
    assert_eq!(count("budget reserved"), 4, "{events:#?}");
    assert_eq!(count("budget committed"), 2, "{events:#?}");
    assert_eq!(count("budget released"), 1, "{events:#?}");
    let denied: Vec<_> = events
        .iter()
        .filter(|e| e.outcome.as_str() == "denied")
        .collect();
    assert_eq!(denied.len(), 1, "{events:#?}");
    assert_eq!(denied[0].reason.as_deref(), Some("budget_exceeded"));
    assert_eq!(denied[0].amount.as_ref().unwrap().to_string(), "50.01EUR");
    for e in &events {
        assert_eq!(e.agent.as_deref(), Some("agent://acme/shopper"), "{e:?}");
        assert!(e.token_id.is_some(), "{e:?}");
        assert_eq!(e.revocation_ids.len(), 1, "{e:?}");
        let cap = e.capability.as_deref().unwrap();
        assert!(cap.contains(&ledger_key), "{cap}");
        assert!(
            !cap.contains(&t) && !format!("{e:?}").contains(&t),
            "no token in the audit"
        );
    }

    // The amount of each reservation, from its `budget reserved` record;
    // the committed ones summed.
    let mut reserved: HashMap<String, i64> = HashMap::new();
    for e in events
        .iter()
        .filter(|e| e.outcome.as_str() == "budget reserved")
    {
        let id = reservation_of(e.capability.as_deref().unwrap()).unwrap();
        reserved.insert(id.to_owned(), e.amount.as_ref().unwrap().minor());
    }
    let committed: i64 = events
        .iter()
        .filter(|e| e.outcome.as_str() == "budget committed")
        .map(|e| reserved[reservation_of(e.capability.as_deref().unwrap()).unwrap()])
        .sum();
    let ledger = app
        .state
        .stores
        .budgets
        .show(&ledger_key, now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(committed, 5000);
    assert_eq!(
        committed, ledger.committed,
        "the audit adds up to the ledger"
    );
}
