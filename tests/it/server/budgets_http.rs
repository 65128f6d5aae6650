//! `verify::spend` over the issuer's budget API (`HttpBudgetLedger`): 16
//! concurrent spenders never go over the budget, and a tool server whose
//! issuer is down denies.

use std::sync::Arc;
use std::time::Duration;

use tessera::store::budget::Settled;
use tessera::token::{self, AgentId, Amount, Limits};
use tessera::verify::http_ledger::HttpBudgetLedger;
use tessera::verify::spend::SpendError;
use tessera::verify::Grant;

use super::budgets_api::budget_token;
use super::helpers::{now, TestApp};

/// The grant a verifier would hand the tool for `token` (the fields the
/// spend reads: budgets and expiry).
pub(crate) fn grant(app: &TestApp, token: &str) -> Grant {
    let bytes = token::decode(token, &Limits::default()).unwrap();
    let v = token::Verified::from_bytes(&bytes, &app.keys(), &Limits::default()).unwrap();
    let agent = AgentId::parse("agent://acme/shopper").unwrap();
    Grant {
        agent: agent.clone(),
        on_behalf: None,
        chain: vec![agent],
        token_id: "t".into(),
        expires_at: v.expires_at(),
        holder_proven: false,
        actions: vec!["payments:create".into()],
        approval: None,
        budgets: v.budgets().to_vec(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_concurrent_spenders_over_http_never_exceed_the_budget() {
    sixteen_spenders(TestApp::spawn().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_concurrent_spenders_over_http_never_exceed_the_budget_on_redis() {
    let Some(app) = TestApp::spawn_redis().await else {
        return;
    };
    sixteen_spenders(app).await;
}

async fn sixteen_spenders(app: TestApp) {
    let t = budget_token(app.state.ring().active(), Some("trip:10.00EUR")).token;
    let grant = Arc::new(grant(&app, &t));
    let ledger = Arc::new(HttpBudgetLedger::new(&app.base, &t).unwrap());
    // 16 spenders, 5 tries of 1.00 EUR each: 80 EUR asked of 10.
    let mut tasks = Vec::new();
    for n in 0..16 {
        let (grant, ledger) = (grant.clone(), ledger.clone());
        tasks.push(tokio::spawn(async move {
            let mut charged = 0i64;
            let mut spent = Vec::new();
            for i in 0..5 {
                let key = format!("spender-{n}-{i}");
                match grant
                    .reserve(
                        ledger.as_ref(),
                        &Amount::parse("1.00EUR").unwrap(),
                        &key,
                        now(),
                    )
                    .await
                {
                    Ok(spend) => {
                        assert_eq!(
                            spend.commit(ledger.as_ref(), now()).await.unwrap(),
                            Settled::Committed
                        );
                        charged += 100;
                        spent.push((key, spend.id));
                    }
                    Err(SpendError::Exceeded { id, .. }) => assert_eq!(id, "trip"),
                    Err(e) => panic!("unexpected refusal: {e}"),
                }
            }
            (charged, spent)
        }));
    }
    let (mut total, mut spent) = (0, Vec::new());
    for t in tasks {
        let (charged, keys) = t.await.unwrap();
        total += charged;
        spent.extend(keys);
    }
    assert_eq!(spent.len(), 10);
    assert_eq!(total, 1000, "exactly the budget is spent, never more");
    let key = &grant.budgets[0].key;
    let state = app
        .state
        .stores
        .budgets
        .show(key, now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((state.committed, state.reserved), (1000, 0));
    // A retried key (one that was charged) is charged once: it answers
    // the first reservation.
    let (first_key, first_id) = &spent[0];
    let again = grant
        .reserve(
            ledger.as_ref(),
            &Amount::parse("1.00EUR").unwrap(),
            first_key,
            now(),
        )
        .await;
    assert_eq!(
        again.as_ref().map(|s| &s.id).ok(),
        Some(first_id),
        "{again:?}"
    );
    let state = app
        .state
        .stores
        .budgets
        .show(key, now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state.committed, 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_server_whose_issuer_is_down_denies_the_spend() {
    let app = TestApp::spawn().await;
    let t = budget_token(app.state.ring().active(), Some("trip:10.00EUR")).token;
    let grant = grant(&app, &t);
    let amount = Amount::parse("1.00EUR").unwrap();
    let ledger = HttpBudgetLedger::new(&app.base, &t).unwrap();
    let spend = grant
        .reserve(&ledger, &amount, "up-1", now())
        .await
        .unwrap();
    let base = app.base.clone();
    drop(app);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let down = HttpBudgetLedger::new(&base, &t).unwrap();
    let r = grant.reserve(&down, &amount, "down-1", now()).await;
    assert!(matches!(r, Err(SpendError::Ledger(_))), "{r:?}");
    assert!(spend.commit(&down, now()).await.is_err());
    // Nothing listens on this port at all.
    let nowhere = HttpBudgetLedger::new("http://127.0.0.1:9", &t).unwrap();
    let r = grant.reserve(&nowhere, &amount, "down-2", now()).await;
    assert!(matches!(r, Err(SpendError::Ledger(_))), "{r:?}");
}
