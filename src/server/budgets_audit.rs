//! The audit records of the issuer's spend API ([`super::budgets_api`]).
//!
//! Each reserve, commit and release writes one record of kind `decision`:
//! outcome `budget reserved`, `budget committed` or `budget released`, or
//! `denied` with the ledger's refusal code as `reason` (`budget_exceeded`,
//! `currency_mismatch`, `idempotency_conflict`, `budget_busy`). The record
//! names the token (`token_id`, its revocation ids), the agents of its
//! chain (`agent`: the last; `chain`), the person it acts for, its
//! audience as `service` (the tool server it was minted for), the amount (at reserve
//! and on refusals) and, as `capability`, the spend:
//! `spend reservation=<id> budgets=<key>,<key>` (the ledger keys; no
//! reservation on a refusal). A commit's amount is the one its
//! reservation's record names. Never the token itself.

use crate::records::{AuditEvent, AuditKind, AuditOutcome};
use crate::token::{Amount, Verified};

use super::state::AppState;

/// The `capability` text of a spend record.
pub fn spend_text(reservation: Option<&str>, keys: &[String]) -> String {
    match reservation {
        Some(r) => format!("spend reservation={r} budgets={}", keys.join(",")),
        None => format!("spend budgets={}", keys.join(",")),
    }
}

/// The reservation id a spend record's `capability` names, if any.
pub fn reservation_of(capability: &str) -> Option<&str> {
    capability
        .strip_prefix("spend reservation=")?
        .split(' ')
        .next()
}

/// A spend record about `verified` (everything but what the caller sets).
pub fn spend_event(
    state: &AppState,
    verified: &Verified,
    outcome: AuditOutcome,
    amount: Option<Amount>,
    capability: String,
    reason: Option<&str>,
) -> AuditEvent {
    let chain = verified.chain();
    let agents = chain.agents();
    AuditEvent {
        at: state.now(),
        kind: AuditKind::Decision,
        agent: agents.last().map(ToString::to_string),
        token_id: Some(chain.claims.token_id.clone()),
        capability: Some(capability),
        outcome,
        reason: reason.map(str::to_owned),
        remote_addr: None,
        chain: agents.iter().map(ToString::to_string).collect(),
        person: chain.claims.on_behalf.as_ref().map(|o| o.person.clone()),
        amount,
        approval_id: None,
        revocation_ids: verified.revocation_ids().iter().map(hex::encode).collect(),
        service: chain.claims.audience.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reservation_id_is_read_back_from_the_text() {
        let keys = vec!["b1-aa".to_owned(), "b1-bb".to_owned()];
        let t = spend_text(Some("r-1"), &keys);
        assert_eq!(t, "spend reservation=r-1 budgets=b1-aa,b1-bb");
        assert_eq!(reservation_of(&t), Some("r-1"));
        assert_eq!(reservation_of(&spend_text(None, &keys)), None);
    }
}
