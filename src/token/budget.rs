//! Cumulative budgets: `budget(<id>, <currency>, <limit in minor units>)`.
//!
//! A block (the authority block at mint, or a later attenuation or
//! delegation block) may declare at most one budget. Every budget declared
//! anywhere in a token's chain is charged for each spend, so a sub-agent's
//! budget can neither exceed nor escape its parent's.
//!
//! The ledger entry of a budget is keyed by [`budget_key`]: a hash of the
//! revocation id (the signature) of the block that declared it and the id.
//! A holder chooses the id but not the signature of a block it did not
//! sign, so it cannot name another chain's ledger entry; and a block it adds
//! gets a fresh signature, so re-declaring an id (with a larger limit, to
//! "reset" it) opens a new entry while the old one is still charged. The
//! limit comes from the signed block, never from the ledger's caller.

use std::fmt;
use std::str::FromStr;

use biscuit_auth::{builder, BlockBuilder};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::amount::Amount;
use super::schema::add;
use super::wire::{chain_facts, Value};

/// Longest budget id.
pub const MAX_BUDGET_ID_LEN: usize = 64;

/// A budget id: 1 to 64 of `a-z 0-9 . _ -`, starting with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct BudgetId(String);

/// Why a budget was refused (one line, no input echoed but a checked id).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BudgetError {
    /// Not `<id>:<amount>`.
    #[error("invalid budget: expected <id>:<amount>, as in trip:200.00EUR")]
    Malformed,
    /// An id outside the allowed alphabet or length.
    #[error(
        "invalid budget id: 1 to 64 of a-z, 0-9, '.', '_', '-', starting with a letter or digit"
    )]
    Id,
    /// The limit is not a valid amount.
    #[error(transparent)]
    Amount(#[from] super::amount::AmountError),
}

impl BudgetId {
    /// Checks the shape of an id.
    pub fn parse(s: &str) -> Result<Self, BudgetError> {
        let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || ".-_".contains(c);
        let first_ok = s
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if s.len() > MAX_BUDGET_ID_LEN || !first_ok || !s.chars().all(ok_char) {
            return Err(BudgetError::Id);
        }
        Ok(Self(s.to_owned()))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BudgetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A budget a block declares: an id and a limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Budget {
    /// The id (the holder's name for it; not the ledger key).
    pub id: BudgetId,
    /// The most that may be spent in total, in one currency.
    pub limit: Amount,
}

impl Budget {
    /// A budget from its parts.
    pub fn new(id: BudgetId, limit: Amount) -> Self {
        Self { id, limit }
    }

    /// Reads `<id>:<amount>`, as in `trip:200.00EUR`.
    pub fn parse(s: &str) -> Result<Self, BudgetError> {
        let (id, amount) = s.split_once(':').ok_or(BudgetError::Malformed)?;
        Ok(Self {
            id: BudgetId::parse(id)?,
            limit: Amount::parse(amount)?,
        })
    }
}

impl FromStr for Budget {
    type Err = BudgetError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.id, self.limit)
    }
}

/// One budget of a verified token: where it was declared and its ledger key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BudgetLine {
    /// The ledger key ([`budget_key`]).
    pub key: String,
    /// The id the block gave it.
    pub id: BudgetId,
    /// Its limit, from the signed block.
    pub limit: Amount,
    /// The index of the block that declared it (0 is the authority block).
    pub block: usize,
}

/// The ledger key of budget `id` declared by the block whose revocation id
/// (signature) is `revocation_id`: `b1-` and 32 hex digits of
/// SHA-256(`tessera-budget-v1`, 0, revocation id, 0, id).
pub fn budget_key(revocation_id: &[u8], id: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"tessera-budget-v1\0");
    h.update(revocation_id);
    h.update(b"\0");
    h.update(id.as_bytes());
    let digest = h.finalize();
    format!("b1-{}", hex::encode(&digest[..16]))
}

/// Adds the `budget` fact to a block.
pub(crate) fn declare(
    block: BlockBuilder,
    b: &Budget,
) -> Result<BlockBuilder, biscuit_auth::error::Token> {
    add(
        block,
        "budget({id}, {currency}, {limit});",
        [
            ("id", builder::string(b.id.as_str())),
            ("currency", builder::string(b.limit.currency())),
            ("limit", builder::int(b.limit.minor())),
        ],
    )
}

/// Reads the budgets of every block, failing closed on a malformed or
/// repeated `budget` fact. `revocation_ids[i]` is block `i`'s and
/// `third_party[i]` whether it carries an external signature.
pub fn read_budgets(
    payloads: &[impl AsRef<[u8]>],
    third_party: &[bool],
    revocation_ids: &[Vec<u8>],
) -> Result<Vec<BudgetLine>, String> {
    let mut out = Vec::new();
    let all = chain_facts(payloads, third_party).map_err(|e| e.to_string())?;
    for (i, facts) in all.iter().enumerate() {
        let mut found = facts.iter().filter(|f| f.name == "budget");
        let Some(f) = found.next() else { continue };
        if found.next().is_some() {
            return Err(format!("block {i}: more than one `budget` fact"));
        }
        let (id, currency, limit) = match f.terms.as_slice() {
            [Value::Str(id), Value::Str(c), Value::Int(l)] => (id, c, *l),
            _ => {
                return Err(format!(
                    "block {i}: `budget` must hold an id, a currency and an integer limit"
                ))
            }
        };
        let id = BudgetId::parse(id).map_err(|e| format!("block {i}: {e}"))?;
        let limit = Amount::new(currency, limit).map_err(|e| format!("block {i}: {e}"))?;
        let rev = revocation_ids
            .get(i)
            .ok_or_else(|| format!("block {i}: no revocation id"))?;
        out.push(BudgetLine {
            key: budget_key(rev, id.as_str()),
            id,
            limit,
            block: i,
        });
    }
    Ok(out)
}
