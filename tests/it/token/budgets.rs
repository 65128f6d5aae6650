//! Cumulative budgets in tokens (issue 13, point 8), spent through a real
//! ledger (the embedded store): every budget of the chain is charged, a
//! sub-agent is stopped by its own budget and by its parent's, and a
//! forged budget block raises nothing.

use std::sync::Arc;

use tessera::store::budget::BudgetLedger;
use tessera::store::RedbStore;
use tessera::token::*;
use tessera::verify::spend::SpendError;
use tessera::verify::Grant;

use super::support::*;

const SERVICE: &str = "https://shop.example/";

fn eur(s: &str) -> Amount {
    Amount::parse(s).unwrap()
}

fn budget(s: &str) -> Budget {
    Budget::parse(s).unwrap()
}

fn grant(issuer: &Issuer, token: &str, holder: &biscuit_auth::KeyPair) -> Grant {
    let a = issuer
        .check(
            token,
            &req("pay", "order:42", Some(SERVICE), t0(), Some(holder)),
        )
        .unwrap();
    Grant {
        agent: a.chain[0].clone(),
        on_behalf: a.on_behalf.clone(),
        chain: a.chain.clone(),
        token_id: a.token_id.clone(),
        expires_at: now_ish(),
        holder_proven: true,
        actions: a.actions,
        approval: None,
        budgets: a.budgets,
    }
}

/// Reservations are judged by the ledger at the real time (Redis expires
/// by its own clock), so the tests spend at the wall clock.
#[allow(clippy::disallowed_methods)]
fn now_ish() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now() + chrono::Duration::hours(1)
}

#[allow(clippy::disallowed_methods)]
fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

struct Setup {
    issuer: Issuer,
    parent: biscuit_auth::KeyPair,
    token: String,
    _dir: tempfile::TempDir,
    ledger: Arc<RedbStore>,
}

fn setup() -> Setup {
    let issuer = Issuer::new();
    let parent = keypair(2);
    let m = mint_with_budgets(
        &cap("pay", "order:*", Some(SERVICE), Some(&parent)),
        Some(&budget("trip:200.00EUR")),
        &issuer.root,
        t0(),
        &mut rand::rngs::OsRng,
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ledger = Arc::new(RedbStore::open(dir.path()).unwrap());
    Setup {
        issuer,
        parent,
        token: m.token,
        _dir: dir,
        ledger,
    }
}

fn hand(s: &Setup, to: &biscuit_auth::KeyPair, b: &str) -> String {
    delegate(
        &s.token,
        &s.parent,
        &AgentId::parse("agent://acme/sub").unwrap(),
        &to.public(),
        &Narrowing {
            budget: Some(budget(b)),
            ..Narrowing::default()
        },
        &s.issuer.limits,
    )
    .unwrap()
}

async fn spend(
    g: &Grant,
    ledger: &dyn BudgetLedger,
    amount: &str,
    idem: &str,
) -> Result<(), SpendError> {
    let s = g.reserve(ledger, &eur(amount), idem, now()).await?;
    assert_eq!(
        s.commit(ledger, now()).await.unwrap(),
        tessera::store::Settled::Committed
    );
    Ok(())
}

fn exceeded_id(r: Result<(), SpendError>) -> String {
    match r {
        Err(SpendError::Exceeded { id, .. }) => id,
        other => panic!("expected an exceeded budget, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sub_agent_is_stopped_by_its_own_budget_and_by_its_parents() {
    let s = setup();
    let ledger: &dyn BudgetLedger = &*s.ledger;
    let sub = keypair(3);
    let sub_grant = grant(&s.issuer, &hand(&s, &sub, "sub:50.00EUR"), &sub);
    assert_eq!(sub_grant.budgets.len(), 2);
    spend(&sub_grant, ledger, "50.00EUR", "s1").await.unwrap();
    assert_eq!(
        exceeded_id(spend(&sub_grant, ledger, "0.01EUR", "s2").await),
        "sub"
    );

    let parent_grant = grant(&s.issuer, &s.token, &s.parent);
    spend(&parent_grant, ledger, "150.00EUR", "p1")
        .await
        .unwrap();
    // A second sub-agent with a budget of its own, still inside the
    // parent's, which is now spent.
    let sub2 = keypair(4);
    let sub2_grant = grant(&s.issuer, &hand(&s, &sub2, "sub:100.00EUR"), &sub2);
    assert_eq!(
        exceeded_id(spend(&sub2_grant, ledger, "0.01EUR", "t1").await),
        "trip"
    );
    let root_key = &parent_grant.budgets[0].key;
    let state = ledger.show(root_key, now()).await.unwrap().unwrap();
    assert_eq!((state.committed, state.limit), (20_000, 20_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_budget_with_the_same_id_and_a_larger_limit_raises_nothing() {
    let s = setup();
    let ledger: &dyn BudgetLedger = &*s.ledger;
    let g = grant(&s.issuer, &s.token, &s.parent);
    spend(&g, ledger, "200.00EUR", "a").await.unwrap();
    // The holder appends a block re-declaring `trip` with a far larger limit.
    let forged = attenuate(
        &s.token,
        &Narrowing {
            budget: Some(budget("trip:1000000.00EUR")),
            ..Narrowing::default()
        },
        &s.issuer.limits,
    )
    .unwrap();
    let fg = grant(&s.issuer, &forged, &s.parent);
    assert_eq!(fg.budgets.len(), 2);
    assert_eq!(fg.budgets[0], g.budgets[0]);
    assert_ne!(fg.budgets[1].key, g.budgets[0].key);
    assert_eq!(
        exceeded_id(spend(&fg, ledger, "0.01EUR", "b").await),
        "trip"
    );
    // Another token minted with the same id has a ledger entry of its own.
    let other = mint_with_budgets(
        &cap("pay", "order:*", Some(SERVICE), Some(&s.parent)),
        Some(&budget("trip:200.00EUR")),
        &s.issuer.root,
        t0(),
        &mut rand::rngs::OsRng,
    )
    .unwrap();
    assert_ne!(
        grant(&s.issuer, &other.token, &s.parent).budgets[0].key,
        g.budgets[0].key
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spend_in_another_currency_or_from_a_token_without_budget_is_refused() {
    let s = setup();
    let ledger: &dyn BudgetLedger = &*s.ledger;
    let g = grant(&s.issuer, &s.token, &s.parent);
    assert!(matches!(
        g.reserve(ledger, &eur("1USD"), "c", now()).await,
        Err(SpendError::Currency { .. })
    ));
    let plain = s
        .issuer
        .mint(&cap("pay", "order:*", Some(SERVICE), Some(&s.parent)));
    let pg = grant(&s.issuer, &plain.token, &s.parent);
    assert!(matches!(
        pg.reserve(ledger, &eur("1EUR"), "c", now()).await,
        Err(SpendError::NoBudget)
    ));
}

#[test]
fn budget_text_is_checked() {
    assert_eq!(budget("trip:200.00EUR").to_string(), "trip:200.00EUR");
    for bad in [
        "trip",
        "Trip:1EUR",
        ":1EUR",
        "trip:1.001EUR",
        "trip:-1EUR",
        &"a".repeat(65),
    ] {
        assert!(Budget::parse(bad).is_err(), "{bad}");
    }
}
