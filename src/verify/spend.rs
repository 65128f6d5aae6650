//! Spending from a token's cumulative budgets, at the tool server.
//!
//! Before the tool acts, [`Grant::reserve`] holds the operation's amount on
//! every budget of the token's chain in the ledger (a [`BudgetLedger`]: the
//! Redis store, the embedded store, or the issuer's `/v1/budgets` API); the
//! tool then commits the [`Spend`] once it has acted, or releases it. A
//! ledger that cannot be reached, a budget in another currency, or a
//! budget that would be exceeded all deny: nothing is charged and the tool
//! must not act (fail closed).

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::request::Grant;
use crate::store::budget::{BudgetLedger, Charge, ReserveRequest, Reserved, Settled};
use crate::store::StoreError;
use crate::token::Amount;

/// How long a reservation holds by default before the ledger lets it go.
pub const DEFAULT_RESERVATION_TTL: Duration = Duration::from_secs(60);

/// Why a spend was refused. The messages are one line and name budget ids
/// and keys only.
#[derive(Debug, thiserror::Error)]
pub enum SpendError {
    /// The token declares no budget: there is nothing to charge.
    #[error("the token declares no budget")]
    NoBudget,
    /// A budget of the chain is in another currency than the amount.
    #[error("budget `{id}` is in {currency}, not in the amount's currency")]
    Currency {
        /// The budget's id.
        id: String,
        /// Its currency.
        currency: String,
    },
    /// The spend would take this budget over its limit; nothing is held.
    #[error("budget `{id}` would be exceeded")]
    Exceeded {
        /// The budget's id.
        id: String,
        /// Its ledger key.
        key: String,
    },
    /// The idempotency key was already used for another spend.
    #[error("the idempotency key was used for another spend")]
    IdempotencyConflict,
    /// Too many spends pending on this budget.
    #[error("too many spends pending on budget `{id}`")]
    Busy {
        /// The budget's id.
        id: String,
    },
    /// The ledger could not be reached or refused the request: denied.
    #[error("budget ledger unavailable: {0}")]
    Ledger(#[from] StoreError),
}

/// A reserved spend: commit it once the tool has acted, release it if it
/// did not. Dropping it without either leaves the ledger to release it at
/// its expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spend {
    /// The reservation id.
    pub id: String,
    /// The amount held.
    pub amount: Amount,
    /// The ledger keys of the budgets charged.
    pub keys: Vec<String>,
    /// When the ledger lets it go if not committed.
    pub expires_at: DateTime<Utc>,
}

impl Spend {
    /// Charges the spend. `Ok(Settled::Committed)` is the only success.
    pub async fn commit(
        &self,
        ledger: &dyn BudgetLedger,
        now: DateTime<Utc>,
    ) -> Result<Settled, StoreError> {
        ledger.commit(&self.id, now).await
    }

    /// Lets the spend go.
    pub async fn release(
        &self,
        ledger: &dyn BudgetLedger,
        now: DateTime<Utc>,
    ) -> Result<Settled, StoreError> {
        ledger.release(&self.id, now).await
    }
}

impl Grant {
    /// Holds `amount` on every budget of the token's chain, atomically,
    /// with `idempotency_key` (a retry with the same key is charged once).
    pub async fn reserve(
        &self,
        ledger: &dyn BudgetLedger,
        amount: &Amount,
        idempotency_key: &str,
        now: DateTime<Utc>,
    ) -> Result<Spend, SpendError> {
        self.reserve_for(
            ledger,
            amount,
            idempotency_key,
            DEFAULT_RESERVATION_TTL,
            now,
        )
        .await
    }

    /// [`Grant::reserve`] with a reservation lifetime.
    pub async fn reserve_for(
        &self,
        ledger: &dyn BudgetLedger,
        amount: &Amount,
        idempotency_key: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<Spend, SpendError> {
        if self.budgets.is_empty() {
            return Err(SpendError::NoBudget);
        }
        if let Some(b) = self
            .budgets
            .iter()
            .find(|b| b.limit.currency() != amount.currency())
        {
            return Err(SpendError::Currency {
                id: b.id.to_string(),
                currency: b.limit.currency().to_owned(),
            });
        }
        let req = ReserveRequest {
            charges: self
                .budgets
                .iter()
                .map(|b| Charge {
                    key: b.key.clone(),
                    limit: b.limit.minor(),
                })
                .collect(),
            amount: amount.minor(),
            currency: amount.currency().to_owned(),
            idempotency_key: idempotency_key.to_owned(),
            ttl,
            keep_until: self.expires_at,
        };
        let id_of = |key: &str| {
            self.budgets
                .iter()
                .find(|b| b.key == key)
                .map_or_else(|| key.to_owned(), |b| b.id.to_string())
        };
        match ledger.reserve(&req, now).await? {
            Reserved::Reserved(r) => Ok(Spend {
                id: r.id,
                amount: amount.clone(),
                keys: r.keys,
                expires_at: r.expires_at,
            }),
            Reserved::Exceeded { which } => Err(SpendError::Exceeded {
                id: id_of(&which),
                key: which,
            }),
            Reserved::CurrencyMismatch { which } => Err(SpendError::Currency {
                id: id_of(&which),
                currency: "another currency".into(),
            }),
            Reserved::IdempotencyConflict => Err(SpendError::IdempotencyConflict),
            Reserved::Busy { which } => Err(SpendError::Busy { id: id_of(&which) }),
        }
    }
}
