//! The budget ledger contract (issue 13, point 8), on the embedded store
//! and on a real Redis: atomic reservations on every budget of a chain,
//! exact limits, idempotency, release and expiry, and Redis going away.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tessera::store::budget::{BudgetLedger, Charge, ReserveRequest, Reserved, Settled};
use tessera::store::{RedbStore, RedisConfig, RedisStore};

use super::contract::wall_clock;
use super::redis_server::RedisServer;

fn request(keys: &[(&str, i64)], amount: i64, idem: &str) -> ReserveRequest {
    ReserveRequest {
        charges: keys
            .iter()
            .map(|(k, l)| Charge {
                key: (*k).to_owned(),
                limit: *l,
            })
            .collect(),
        amount,
        currency: "EUR".into(),
        idempotency_key: idem.into(),
        ttl: Duration::from_secs(30),
        keep_until: wall_clock() + chrono::Duration::hours(1),
    }
}

fn reserved(r: Reserved) -> tessera::store::Reservation {
    match r {
        Reserved::Reserved(r) => r,
        other => panic!("expected a reservation, got {other:?}"),
    }
}

async fn committed(ledger: &dyn BudgetLedger, key: &str, now: DateTime<Utc>) -> (i64, i64) {
    let s = ledger.show(key, now).await.unwrap().unwrap();
    (s.committed, s.reserved)
}

pub async fn sixteen_concurrent_spenders_never_exceed_the_budget(ledger: Arc<dyn BudgetLedger>) {
    let mut tasks = Vec::new();
    for spender in 0..16 {
        let ledger = Arc::clone(&ledger);
        tasks.push(tokio::spawn(async move {
            let mut spent = 0i64;
            for i in 0..20 {
                let req = request(
                    &[("b1-root", 1_000), ("b1-child", 700)],
                    7,
                    &format!("s{spender}-{i}"),
                );
                match ledger.reserve(&req, wall_clock()).await.unwrap() {
                    Reserved::Reserved(r) => {
                        assert_eq!(
                            ledger.commit(&r.id, wall_clock()).await.unwrap(),
                            Settled::Committed
                        );
                        spent += 7;
                    }
                    Reserved::Exceeded { which } => assert_eq!(which, "b1-child"),
                    other => panic!("{other:?}"),
                }
            }
            spent
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    // 16 x 20 x 7 = 2240 were asked; the child's 700 allows exactly 100 spends.
    assert_eq!(total, 700);
    assert_eq!(
        committed(&*ledger, "b1-child", wall_clock()).await,
        (700, 0)
    );
    assert_eq!(committed(&*ledger, "b1-root", wall_clock()).await, (700, 0));
}

pub async fn a_spend_exceeding_by_one_minor_unit_is_refused(ledger: Arc<dyn BudgetLedger>) {
    let now = wall_clock();
    assert_eq!(
        ledger
            .reserve(&request(&[("b1-a", 4000)], 4001, "k0"), now)
            .await
            .unwrap(),
        Reserved::Exceeded {
            which: "b1-a".into()
        }
    );
    let r = reserved(
        ledger
            .reserve(&request(&[("b1-a", 4000)], 3999, "k1"), now)
            .await
            .unwrap(),
    );
    ledger.commit(&r.id, now).await.unwrap();
    assert_eq!(
        ledger
            .reserve(&request(&[("b1-a", 4000)], 2, "k2"), now)
            .await
            .unwrap(),
        Reserved::Exceeded {
            which: "b1-a".into()
        }
    );
    let r = reserved(
        ledger
            .reserve(&request(&[("b1-a", 4000)], 1, "k3"), now)
            .await
            .unwrap(),
    );
    assert_eq!(ledger.commit(&r.id, now).await.unwrap(), Settled::Committed);
    assert_eq!(committed(&*ledger, "b1-a", now).await, (4000, 0));
}

pub async fn the_same_idempotency_key_is_charged_once(ledger: Arc<dyn BudgetLedger>) {
    let now = wall_clock();
    let req = request(&[("b1-i", 100)], 30, "retry-me");
    let first = reserved(ledger.reserve(&req, now).await.unwrap());
    let again = reserved(ledger.reserve(&req, now).await.unwrap());
    assert_eq!(first.id, again.id);
    assert_eq!(
        ledger.commit(&first.id, now).await.unwrap(),
        Settled::Committed
    );
    assert_eq!(
        ledger.commit(&again.id, now).await.unwrap(),
        Settled::Committed
    );
    assert_eq!(
        reserved(ledger.reserve(&req, now).await.unwrap()).id,
        first.id
    );
    assert_eq!(committed(&*ledger, "b1-i", now).await, (30, 0));
    // The same key for another amount is refused, and holds nothing.
    let other = request(&[("b1-i", 100)], 31, "retry-me");
    assert_eq!(
        ledger.reserve(&other, now).await.unwrap(),
        Reserved::IdempotencyConflict
    );
    assert_eq!(committed(&*ledger, "b1-i", now).await, (30, 0));
}

pub async fn a_refusal_on_one_budget_holds_nothing_on_the_others(ledger: Arc<dyn BudgetLedger>) {
    let now = wall_clock();
    let r = ledger
        .reserve(&request(&[("b1-p", 1000), ("b1-c", 10)], 11, "x"), now)
        .await
        .unwrap();
    assert_eq!(
        r,
        Reserved::Exceeded {
            which: "b1-c".into()
        }
    );
    assert_eq!(ledger.show("b1-p", now).await.unwrap(), None);
    let r = reserved(
        ledger
            .reserve(&request(&[("b1-p", 1000), ("b1-c", 10)], 10, "y"), now)
            .await
            .unwrap(),
    );
    assert_eq!(committed(&*ledger, "b1-p", now).await, (0, 10));
    assert_eq!(ledger.release(&r.id, now).await.unwrap(), Settled::Released);
    assert_eq!(ledger.commit(&r.id, now).await.unwrap(), Settled::Released);
    assert_eq!(committed(&*ledger, "b1-p", now).await, (0, 0));
    assert_eq!(committed(&*ledger, "b1-c", now).await, (0, 0));
}

pub async fn an_expired_reservation_is_released_and_cannot_be_committed(
    ledger: Arc<dyn BudgetLedger>,
) {
    let mut req = request(&[("b1-e", 10)], 10, "e1");
    req.ttl = Duration::from_millis(100);
    let r = reserved(ledger.reserve(&req, wall_clock()).await.unwrap());
    assert_eq!(
        ledger
            .reserve(&request(&[("b1-e", 10)], 1, "e2"), wall_clock())
            .await
            .unwrap(),
        Reserved::Exceeded {
            which: "b1-e".into()
        }
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        ledger.commit(&r.id, wall_clock()).await.unwrap(),
        Settled::Expired
    );
    let r2 = reserved(
        ledger
            .reserve(&request(&[("b1-e", 10)], 10, "e3"), wall_clock())
            .await
            .unwrap(),
    );
    assert_eq!(
        ledger.commit(&r2.id, wall_clock()).await.unwrap(),
        Settled::Committed
    );
    assert_eq!(committed(&*ledger, "b1-e", wall_clock()).await, (10, 0));
}

pub async fn bad_requests_are_refused_and_unknown_ids_are_unknown(ledger: Arc<dyn BudgetLedger>) {
    let now = wall_clock();
    for bad in [
        request(&[("b1-z", 10)], 0, "k"),
        request(&[("b1-z", 10)], -1, "k"),
        request(&[("b1-z", 10)], 1 << 60, "k"),
        request(&[("b1 z", 10)], 1, "k"),
        request(&[("b1-z", 10)], 1, "k\nx"),
        request(&[], 1, "k"),
    ] {
        assert!(ledger.reserve(&bad, now).await.is_err(), "{bad:?}");
    }
    assert_eq!(
        ledger.commit("r-nothing", now).await.unwrap(),
        Settled::Unknown
    );
    assert_eq!(
        ledger.release("r-nothing", now).await.unwrap(),
        Settled::Unknown
    );
    assert_eq!(ledger.show("b1-z", now).await.unwrap(), None);
}

macro_rules! ledger_suite {
    ($($name:ident),+ $(,)?) => {
        mod embedded_budget {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let dir = tempfile::tempdir().unwrap();
                    let ledger = std::sync::Arc::new(tessera::store::RedbStore::open(dir.path()).unwrap());
                    super::$name(ledger).await;
                }
            )+
        }
        mod redis_budget {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some(server) = super::RedisServer::start() else { return };
                    let ledger = tessera::store::RedisStore::connect(
                        tessera::store::RedisConfig::new(server.url()),
                    )
                    .await
                    .unwrap();
                    super::$name(std::sync::Arc::new(ledger)).await;
                    drop(server);
                }
            )+
        }
    };
}

ledger_suite!(
    sixteen_concurrent_spenders_never_exceed_the_budget,
    a_spend_exceeding_by_one_minor_unit_is_refused,
    the_same_idempotency_key_is_charged_once,
    a_refusal_on_one_budget_holds_nothing_on_the_others,
    an_expired_reservation_is_released_and_cannot_be_committed,
    bad_requests_are_refused_and_unknown_ids_are_unknown,
);

/// Redis killed during a spend: while it is away every reservation fails
/// (the verifier denies); the reservation made before is neither lost nor
/// charged twice once Redis is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_killed_during_a_spend_loses_nothing_and_charges_nothing_twice() {
    let Some(mut server) = RedisServer::start_with(true) else {
        return;
    };
    let mut config = RedisConfig::new(server.url());
    config.timeout = Duration::from_millis(300);
    let ledger = RedisStore::connect(config).await.unwrap();
    let req = request(&[("b1-k", 100)], 60, "kill");
    let r = reserved(ledger.reserve(&req, wall_clock()).await.unwrap());
    server.stop();
    assert!(ledger
        .reserve(&request(&[("b1-k", 100)], 1, "while-down"), wall_clock())
        .await
        .is_err());
    assert!(ledger.commit(&r.id, wall_clock()).await.is_err());
    server.restart();
    // The agent retries the whole spend with its idempotency key.
    let again = reserved(ledger.reserve(&req, wall_clock()).await.unwrap());
    assert_eq!(again.id, r.id);
    assert_eq!(
        ledger.commit(&r.id, wall_clock()).await.unwrap(),
        Settled::Committed
    );
    assert_eq!(
        ledger.commit(&r.id, wall_clock()).await.unwrap(),
        Settled::Committed
    );
    assert_eq!(committed(&ledger, "b1-k", wall_clock()).await, (60, 0));
    assert_eq!(
        ledger
            .reserve(&request(&[("b1-k", 100)], 41, "after"), wall_clock())
            .await
            .unwrap(),
        Reserved::Exceeded {
            which: "b1-k".into()
        }
    );
    let _ = RedbStore::open; // both ledgers are exercised by the suite above
}
