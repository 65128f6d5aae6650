//! Spends at the tool server in the issuer's audit (DESIGN.md, "Audit"):
//! [`Grant::reserve_audited`], [`Spend::commit_audited`] and
//! [`Spend::release_audited`] do what [`Grant::reserve`], [`Spend::commit`]
//! and [`Spend::release`] do and queue one record each on an
//! [`AuditSink`] (never waiting for it).
//!
//! The records have the shape of the issuer's spend API's: kind
//! `decision`; outcome `budget reserved`, `budget committed`, `budget
//! released`, or `denied` with a refusal code as `reason`
//! (`budget_exceeded`, `currency_mismatch`, `idempotency_conflict`,
//! `budget_busy`, `no_budget`, `ledger_unavailable`, `not_settled`); the
//! token id, the chain, the person, the approval id, the amount; and as
//! `capability` the spend, `spend reservation=<id> budgets=<key>,<key>`.
//! [`spend_event`] builds one record and reads nothing but its arguments.

use chrono::{DateTime, Utc};

use super::audit::AuditSink;
use super::request::Grant;
use super::spend::{Spend, SpendError};
use crate::records::{AuditEvent, AuditKind, AuditOutcome};
use crate::store::budget::{BudgetLedger, Settled};
use crate::store::StoreError;
use crate::token::Amount;

/// The `capability` text of a spend record (also the issuer's).
pub fn spend_text(reservation: Option<&str>, keys: &[String]) -> String {
    match reservation {
        Some(r) => format!("spend reservation={r} budgets={}", keys.join(",")),
        None => format!("spend budgets={}", keys.join(",")),
    }
}

/// The refusal code of a spend error (the `reason` of its record).
pub fn refusal_code(e: &SpendError) -> &'static str {
    match e {
        SpendError::NoBudget => "no_budget",
        SpendError::Currency { .. } => "currency_mismatch",
        SpendError::Exceeded { .. } => "budget_exceeded",
        SpendError::IdempotencyConflict => "idempotency_conflict",
        SpendError::Busy { .. } => "budget_busy",
        SpendError::Ledger(_) => "ledger_unavailable",
    }
}

/// One spend record about `grant`.
pub fn spend_event(
    grant: &Grant,
    outcome: AuditOutcome,
    amount: Option<&Amount>,
    reservation: Option<&str>,
    reason: Option<&str>,
    at: DateTime<Utc>,
) -> AuditEvent {
    let keys: Vec<String> = grant.budgets.iter().map(|b| b.key.clone()).collect();
    let mut chain: Vec<String> = Vec::new();
    if let Some(on) = &grant.on_behalf {
        chain.extend(on.prior_actors.iter().map(ToString::to_string));
    }
    chain.extend(grant.chain.iter().map(ToString::to_string));
    AuditEvent {
        at,
        kind: AuditKind::Decision,
        agent: grant.chain.last().map(ToString::to_string),
        token_id: Some(grant.token_id.clone()),
        capability: Some(spend_text(reservation, &keys)),
        outcome,
        reason: reason.map(str::to_owned),
        remote_addr: None,
        chain,
        person: grant.on_behalf.as_ref().map(|o| o.person.clone()),
        amount: amount.cloned(),
        approval_id: grant.approval.as_ref().map(|a| a.approval_id.clone()),
        revocation_ids: Vec::new(),
        service: None,
    }
}

impl Grant {
    /// [`Grant::reserve`], recording `budget reserved` or `denied` on `sink`.
    pub async fn reserve_audited(
        &self,
        ledger: &dyn BudgetLedger,
        sink: &AuditSink,
        amount: &Amount,
        idempotency_key: &str,
        now: DateTime<Utc>,
    ) -> Result<Spend, SpendError> {
        let result = self.reserve(ledger, amount, idempotency_key, now).await;
        let event = match &result {
            Ok(spend) => spend_event(
                self,
                AuditOutcome::BudgetReserved,
                Some(amount),
                Some(&spend.id),
                None,
                now,
            ),
            Err(e) => spend_event(
                self,
                AuditOutcome::Denied,
                Some(amount),
                None,
                Some(refusal_code(e)),
                now,
            ),
        };
        sink.record(event);
        result
    }
}

impl Spend {
    /// [`Spend::commit`], recording `budget committed` (or `denied` when
    /// the ledger did not commit it) on `sink`.
    pub async fn commit_audited(
        &self,
        ledger: &dyn BudgetLedger,
        sink: &AuditSink,
        grant: &Grant,
        now: DateTime<Utc>,
    ) -> Result<Settled, StoreError> {
        let result = self.commit(ledger, now).await;
        sink.record(self.settled_event(grant, &result, AuditOutcome::BudgetCommitted, now));
        result
    }

    /// [`Spend::release`], recording `budget released` (or `denied`) on `sink`.
    pub async fn release_audited(
        &self,
        ledger: &dyn BudgetLedger,
        sink: &AuditSink,
        grant: &Grant,
        now: DateTime<Utc>,
    ) -> Result<Settled, StoreError> {
        let result = self.release(ledger, now).await;
        sink.record(self.settled_event(grant, &result, AuditOutcome::BudgetReleased, now));
        result
    }

    fn settled_event(
        &self,
        grant: &Grant,
        result: &Result<Settled, StoreError>,
        done: AuditOutcome,
        now: DateTime<Utc>,
    ) -> AuditEvent {
        let wanted = match done {
            AuditOutcome::BudgetReleased => Settled::Released,
            _ => Settled::Committed,
        };
        let (outcome, reason) = match result {
            Ok(s) if *s == wanted => (done, None),
            Ok(_) => (AuditOutcome::Denied, Some("not_settled")),
            Err(_) => (AuditOutcome::Denied, Some("ledger_unavailable")),
        };
        spend_event(
            grant,
            outcome,
            Some(&self.amount),
            Some(&self.id),
            reason,
            now,
        )
    }
}
