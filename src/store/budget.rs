//! [`BudgetLedger`]: cumulative budgets charged exactly, with reservations.
//!
//! A spend is reserved on every budget of a token's chain at once (all or
//! nothing), then committed once the tool has acted, or released if it did
//! not. A reservation that is neither committed nor released by its expiry
//! is released by the ledger. Each reservation carries an idempotency key:
//! a retry with the same key (after a timeout, a lost answer, a crash)
//! gets the first outcome back and is charged once.
//!
//! The ledger never reads the clock: `now` is an argument, as for every
//! store. Amounts are integers in minor units of one currency, at most
//! [`MAX_LEDGER_MINOR`] (so that the Redis script's numbers stay exact).

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::StoreError;

/// Largest amount or limit a ledger accepts: 2^53 - 1 minor units, the
/// largest integer a Lua number holds exactly.
pub const MAX_LEDGER_MINOR: i64 = (1 << 53) - 1;
/// Most budgets one spend may charge (one per block of a chain).
pub const MAX_BUDGETS_PER_SPEND: usize = 32;
/// Most reservations pending on one budget at once; more are refused with
/// [`Reserved::Busy`] (the ledger stays bounded whatever callers do).
pub const MAX_PENDING_PER_BUDGET: usize = 1024;
/// Longest idempotency key.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 128;
/// How long an idempotency key's outcome, and a settled reservation, are
/// remembered.
pub const IDEMPOTENCY_RETENTION: Duration = Duration::from_secs(24 * 3600);

/// One budget to charge: its ledger key and its limit (from the signed
/// block that declared it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Charge {
    /// The ledger key (`token::budget_key`).
    pub key: String,
    /// The limit, in minor units of the spend's currency.
    pub limit: i64,
}

/// A reservation request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReserveRequest {
    /// Every budget to charge (all of a token's chain), at least one.
    pub charges: Vec<Charge>,
    /// The amount, in minor units.
    pub amount: i64,
    /// Its currency (every budget must be in it).
    pub currency: String,
    /// The caller's idempotency key, scoped to the first budget.
    pub idempotency_key: String,
    /// How long the reservation holds before the ledger releases it.
    pub ttl: Duration,
    /// Until when the budgets must be remembered (the token's expiry).
    pub keep_until: DateTime<Utc>,
}

impl ReserveRequest {
    /// Refuses a request no ledger should store.
    pub fn validate(&self) -> Result<(), StoreError> {
        let bad = |s: &str| Err(StoreError::Limit(s.to_owned()));
        if self.charges.is_empty() || self.charges.len() > MAX_BUDGETS_PER_SPEND {
            return bad("a spend charges 1 to 32 budgets");
        }
        if !(1..=MAX_LEDGER_MINOR).contains(&self.amount) {
            return bad("the amount must be positive and at most 2^53-1 minor units");
        }
        if self
            .charges
            .iter()
            .any(|c| !(0..=MAX_LEDGER_MINOR).contains(&c.limit) || !valid_token(&c.key, 64))
        {
            return bad("a budget key or limit is out of range");
        }
        if !valid_token(&self.idempotency_key, MAX_IDEMPOTENCY_KEY_LEN) {
            return bad("the idempotency key must be 1 to 128 of A-Z a-z 0-9 . _ - :");
        }
        if self.currency.len() != 3 || !self.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return bad("the currency must be three uppercase letters");
        }
        if self.ttl.is_zero() || self.ttl > Duration::from_secs(3600) {
            return bad("a reservation holds between 1 ms and one hour");
        }
        Ok(())
    }

    /// What a retry with the same idempotency key must repeat.
    pub(crate) fn fingerprint(&self) -> String {
        let keys: Vec<&str> = self.charges.iter().map(|c| c.key.as_str()).collect();
        format!("{} {}{}", keys.join(","), self.amount, self.currency)
    }
}

/// Whether `s` is 1 to `max` of `A-Z a-z 0-9 . _ - :`.
pub(crate) fn valid_token(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-:".contains(&b))
}

/// A spend held on every budget of its chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    /// The reservation id (what commit and release take).
    pub id: String,
    /// The budgets it holds the amount on.
    pub keys: Vec<String>,
    /// The amount, in minor units.
    pub amount: i64,
    /// Its currency.
    pub currency: String,
    /// When the ledger releases it if nobody committed it.
    pub expires_at: DateTime<Utc>,
}

/// The answer to a reservation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Reserved {
    /// Held on every budget.
    Reserved(Reservation),
    /// This budget (its key) would go over its limit; nothing is held.
    Exceeded {
        /// The first budget that would be exceeded.
        which: String,
    },
    /// A budget holds another currency; nothing is held.
    CurrencyMismatch {
        /// The budget in another currency.
        which: String,
    },
    /// The idempotency key was used for another spend (other budgets or
    /// another amount); nothing is held.
    IdempotencyConflict,
    /// Too many reservations pending on this budget; nothing is held.
    Busy {
        /// The budget.
        which: String,
    },
}

/// The state of a reservation after commit or release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Settled {
    /// Charged (now, or by an earlier commit).
    Committed,
    /// Released (now, or earlier); nothing charged.
    Released,
    /// It expired before commit; nothing charged.
    Expired,
    /// No such reservation (never made, or forgotten after the retention).
    Unknown,
}

/// One budget as the ledger holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetState {
    /// The ledger key.
    pub key: String,
    /// Its currency.
    pub currency: String,
    /// Its limit, in minor units.
    pub limit: i64,
    /// Committed spends, in minor units.
    pub committed: i64,
    /// Reservations pending and not expired, in minor units.
    pub reserved: i64,
}

/// The ledger of cumulative budgets.
#[async_trait]
pub trait BudgetLedger: Send + Sync {
    /// Holds `req.amount` on every budget of `req.charges` if none would go
    /// over its limit (committed + pending + amount <= limit), atomically.
    /// The same idempotency key (with the same budgets and amount) returns
    /// the first outcome and holds nothing more.
    async fn reserve(
        &self,
        req: &ReserveRequest,
        now: DateTime<Utc>,
    ) -> Result<Reserved, StoreError>;
    /// Charges a pending reservation to every budget it holds. Idempotent.
    async fn commit(&self, id: &str, now: DateTime<Utc>) -> Result<Settled, StoreError>;
    /// Lets a pending reservation go. Idempotent; a committed reservation
    /// stays committed.
    async fn release(&self, id: &str, now: DateTime<Utc>) -> Result<Settled, StoreError>;
    /// One budget, if the ledger has seen it.
    async fn show(&self, key: &str, now: DateTime<Utc>) -> Result<Option<BudgetState>, StoreError>;
}

/// A new reservation id: 32 random hex digits.
pub fn new_reservation_id() -> String {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    format!("r-{}", hex::encode(b))
}

/// Milliseconds since the Unix epoch.
pub(crate) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// The reservation's expiry.
pub(crate) fn expiry(now: DateTime<Utc>, ttl: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::seconds(3600))
}
