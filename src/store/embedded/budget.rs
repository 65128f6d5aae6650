//! [`BudgetLedger`] on the embedded store: one redb write transaction per
//! operation, on the store's single writer thread, so reservations on one
//! or several budgets are atomic and serialized.
//!
//! Expired reservations are dropped from a budget whenever that budget is
//! reserved on or shown (they never count toward it once expired).

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{decode, encode, DbResult, RedbStore};
use crate::store::budget::{
    expiry, ms, new_reservation_id, BudgetLedger, BudgetState, Reservation, ReserveRequest,
    Reserved, Settled, IDEMPOTENCY_RETENTION, MAX_PENDING_PER_BUDGET,
};
use crate::store::StoreError;

/// Budget key -> JSON [`BudgetRecord`].
pub(super) const BUDGETS: TableDefinition<&str, &[u8]> = TableDefinition::new("budgets");
/// Reservation id -> JSON [`ResRecord`].
pub(super) const RESERVATIONS: TableDefinition<&str, &[u8]> =
    TableDefinition::new("budget_reservations");
/// `<first budget key>/<idempotency key>` -> JSON [`IdemRecord`].
pub(super) const IDEMPOTENCY: TableDefinition<&str, &[u8]> =
    TableDefinition::new("budget_idempotency");

#[derive(Debug, Serialize, Deserialize)]
struct BudgetRecord {
    currency: String,
    limit: i64,
    committed: i64,
    /// Reservation id -> (amount, expiry in ms).
    pending: BTreeMap<String, (i64, i64)>,
}

impl BudgetRecord {
    fn sweep(&mut self, now_ms: i64) {
        self.pending.retain(|_, (_, exp)| *exp > now_ms);
    }
    fn reserved(&self) -> i64 {
        self.pending.values().map(|(a, _)| *a).sum()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum State {
    Pending,
    Committed,
    Released,
    Expired,
}

#[derive(Debug, Serialize, Deserialize)]
struct ResRecord {
    keys: Vec<String>,
    amount: i64,
    currency: String,
    exp_ms: i64,
    state: State,
}

#[derive(Debug, Serialize, Deserialize)]
struct IdemRecord {
    fingerprint: String,
    outcome: Reserved,
    forget_ms: i64,
}

fn get<T: serde::de::DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<T>, StoreError> {
    table
        .get(key)
        .db()?
        .map(|v| decode::<T>(v.value()))
        .transpose()
}

fn reserve_in(
    txn: &WriteTransaction,
    req: &ReserveRequest,
    id: &str,
    now_ms: i64,
    exp: DateTime<Utc>,
) -> Result<Reserved, StoreError> {
    let mut idem = txn.open_table(IDEMPOTENCY).db()?;
    let idem_key = format!("{}/{}", req.charges[0].key, req.idempotency_key);
    let fingerprint = req.fingerprint();
    if let Some(seen) = get::<IdemRecord>(&idem, &idem_key)? {
        if seen.forget_ms > now_ms {
            if seen.fingerprint != fingerprint {
                return Ok(Reserved::IdempotencyConflict);
            }
            return Ok(seen.outcome);
        }
    }
    let mut budgets = txn.open_table(BUDGETS).db()?;
    let mut records = Vec::with_capacity(req.charges.len());
    let mut refusal = None;
    for c in &req.charges {
        let mut r = get::<BudgetRecord>(&budgets, &c.key)?.unwrap_or(BudgetRecord {
            currency: req.currency.clone(),
            limit: c.limit,
            committed: 0,
            pending: BTreeMap::new(),
        });
        r.sweep(now_ms);
        // The limit comes from the signed block; a key's limit never
        // changes, but if two callers disagree the lower one holds.
        r.limit = r.limit.min(c.limit);
        let which = c.key.clone();
        if r.currency != req.currency {
            refusal = Some(Reserved::CurrencyMismatch { which });
        } else if r.pending.len() >= MAX_PENDING_PER_BUDGET {
            refusal = Some(Reserved::Busy { which });
        } else if r
            .committed
            .saturating_add(r.reserved())
            .saturating_add(req.amount)
            > r.limit
        {
            refusal = Some(Reserved::Exceeded { which });
        }
        if refusal.is_some() {
            break;
        }
        records.push((c.key.as_str(), r));
    }
    let forget_ms = now_ms.saturating_add(IDEMPOTENCY_RETENTION.as_millis() as i64);
    let outcome = match refusal {
        Some(r) => r,
        None => {
            let exp_ms = ms(exp);
            for (key, mut r) in records {
                r.pending.insert(id.to_owned(), (req.amount, exp_ms));
                budgets.insert(key, encode(&r)?.as_slice()).db()?;
            }
            let res = ResRecord {
                keys: req.charges.iter().map(|c| c.key.clone()).collect(),
                amount: req.amount,
                currency: req.currency.clone(),
                exp_ms,
                state: State::Pending,
            };
            txn.open_table(RESERVATIONS)
                .db()?
                .insert(id, encode(&res)?.as_slice())
                .db()?;
            Reserved::Reserved(Reservation {
                id: id.to_owned(),
                keys: res.keys,
                amount: req.amount,
                currency: req.currency.clone(),
                expires_at: exp,
            })
        }
    };
    let record = IdemRecord {
        fingerprint,
        outcome: outcome.clone(),
        forget_ms,
    };
    idem.insert(idem_key.as_str(), encode(&record)?.as_slice())
        .db()?;
    Ok(outcome)
}

fn settle_in(
    txn: &WriteTransaction,
    id: &str,
    now_ms: i64,
    commit: bool,
) -> Result<Settled, StoreError> {
    let mut reservations = txn.open_table(RESERVATIONS).db()?;
    let Some(mut res) = get::<ResRecord>(&reservations, id)? else {
        return Ok(Settled::Unknown);
    };
    let settled = match res.state {
        State::Committed => return Ok(Settled::Committed),
        State::Released => return Ok(Settled::Released),
        State::Expired => return Ok(Settled::Expired),
        State::Pending if res.exp_ms <= now_ms => (State::Expired, Settled::Expired),
        State::Pending if commit => (State::Committed, Settled::Committed),
        State::Pending => (State::Released, Settled::Released),
    };
    let mut budgets = txn.open_table(BUDGETS).db()?;
    for key in &res.keys {
        let Some(mut r) = get::<BudgetRecord>(&budgets, key)? else {
            continue;
        };
        let held = r.pending.remove(id).is_some();
        if held && settled.0 == State::Committed {
            r.committed = r.committed.saturating_add(res.amount);
        }
        budgets.insert(key.as_str(), encode(&r)?.as_slice()).db()?;
    }
    res.state = settled.0;
    reservations.insert(id, encode(&res)?.as_slice()).db()?;
    Ok(settled.1)
}

#[async_trait]
impl BudgetLedger for RedbStore {
    async fn reserve(
        &self,
        req: &ReserveRequest,
        now: DateTime<Utc>,
    ) -> Result<Reserved, StoreError> {
        req.validate()?;
        let req = req.clone();
        let id = new_reservation_id();
        let exp = expiry(now, req.ttl);
        let now_ms = ms(now);
        self.write(move |txn, _| reserve_in(txn, &req, &id, now_ms, exp))
            .await
    }

    async fn commit(&self, id: &str, now: DateTime<Utc>) -> Result<Settled, StoreError> {
        let id = id.to_owned();
        let now_ms = ms(now);
        self.write(move |txn, _| settle_in(txn, &id, now_ms, true))
            .await
    }

    async fn release(&self, id: &str, now: DateTime<Utc>) -> Result<Settled, StoreError> {
        let id = id.to_owned();
        let now_ms = ms(now);
        self.write(move |txn, _| settle_in(txn, &id, now_ms, false))
            .await
    }

    async fn show(&self, key: &str, now: DateTime<Utc>) -> Result<Option<BudgetState>, StoreError> {
        let now_ms = ms(now);
        self.lookup(|db| {
            let txn = db.begin_read().db()?;
            let table = txn.open_table(BUDGETS).db()?;
            Ok(get::<BudgetRecord>(&table, key)?.map(|mut r| {
                r.sweep(now_ms);
                BudgetState {
                    key: key.to_owned(),
                    reserved: r.reserved(),
                    currency: r.currency,
                    limit: r.limit,
                    committed: r.committed,
                }
            }))
        })
    }
}
