//! Cumulative budgets over HTTP (docs/budgets.md, docs/api.md):
//!
//! - `GET /v1/budgets/{key}` (admin token): one budget as the ledger holds
//!   it ([`BudgetLedger::show`]).
//! - `POST /v1/budgets/reserve`, `/v1/budgets/commit`, `/v1/budgets/release`:
//!   the issuer's ledger for verifiers without Redis. The verifier presents
//!   the token being spent; the issuer checks it (signatures, expiry,
//!   revocation of every block) and derives the budgets to charge, and
//!   their limits, from the token's signed blocks. A caller never names a
//!   budget key or a limit, so it cannot charge or lift a budget its token
//!   does not declare.
//!
//! Each call is audited ([`super::budgets_audit`]).
//!
//! The ledger's refusals (exceeded, another currency, an idempotency key
//! reused for another spend, too many pending) are answered 409 with the
//! ledger's outcome and an `error` code; an unreachable store 503, so a
//! verifier denies (fail closed).

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::budgets_audit::{spend_event, spend_text};
use super::error::ApiError;
use super::oauth::audit;
use super::state::AppState;
use crate::records::AuditOutcome;
use crate::store::budget::{
    valid_token, BudgetState, Charge, ReserveRequest, Reserved, Settled, MAX_IDEMPOTENCY_KEY_LEN,
};
use crate::token::{self, Amount};

/// How long a reservation holds when the request does not say.
pub const DEFAULT_TTL_MS: u64 = 60_000;
/// Longest reservation, as the ledger allows.
pub const MAX_TTL_MS: u64 = 3_600_000;

/// `GET /v1/budgets/{key}` (admin): the budget's currency, limit,
/// committed and reserved minor units; 404 if the ledger has not seen it.
pub async fn show(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<Json<BudgetState>, ApiError> {
    if !valid_token(&key, 64) {
        return Err(ApiError::NotFound("no such budget".into()));
    }
    state
        .stores
        .budgets
        .show(&key, state.now())
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound("no such budget".into()))
}

/// `POST /v1/budgets/reserve` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReserveInput {
    /// The token being spent (its text form).
    token: String,
    /// The operation's amount, as `12.50EUR`.
    amount: Amount,
    /// The caller's idempotency key.
    idempotency_key: String,
    /// How long the reservation holds, in milliseconds (default 60000).
    #[serde(default)]
    ttl_ms: Option<u64>,
}

/// `POST /v1/budgets/commit` and `/release` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SettleInput {
    /// The token the reservation was made with.
    token: String,
    /// The reservation id `reserve` answered.
    reservation: String,
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid body: {e}")))
}

/// Checks the token as a verifier would before spending (signatures and
/// holder chain, expiry, revocation of any block), without its Datalog:
/// the verifier authorized the operation; the issuer only needs to know
/// the budgets are the ones its root key signed.
async fn spendable(state: &AppState, text: &str) -> Result<token::Verified, ApiError> {
    let now = state.now();
    let invalid = |d: token::Denial| ApiError::Unauthenticated(d.to_string());
    let bytes = token::decode(text, &state.limits).map_err(|e| invalid(token::Denial::from(e)))?;
    let keys = state.ring().key_set(now);
    let verified = token::Verified::from_bytes(&bytes, &keys, &state.limits).map_err(invalid)?;
    if verified.expires_at() <= now {
        return Err(ApiError::Unauthenticated(
            "expired: the token expired".into(),
        ));
    }
    for id in verified.revocation_ids() {
        if state
            .stores
            .revocations
            .is_revoked(&hex::encode(id))
            .await?
        {
            return Err(ApiError::Unauthenticated(
                "revoked: the token is revoked".into(),
            ));
        }
    }
    Ok(verified)
}

/// `POST /v1/budgets/reserve`: holds the amount on every budget the token
/// declares. 200 `{"outcome": "reserved", ...}`, or 409 with the ledger's
/// refusal.
pub async fn reserve(
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let input: ReserveInput = parse(&body)?;
    if !valid_token(&input.idempotency_key, MAX_IDEMPOTENCY_KEY_LEN) {
        return Err(ApiError::bad_request(
            "idempotency_key must be 1 to 128 of A-Z a-z 0-9 . _ - :",
        ));
    }
    let ttl_ms = input.ttl_ms.unwrap_or(DEFAULT_TTL_MS);
    if !(1..=MAX_TTL_MS).contains(&ttl_ms) {
        return Err(ApiError::bad_request(format!(
            "ttl_ms must be between 1 and {MAX_TTL_MS}"
        )));
    }
    let verified = spendable(&state, &input.token).await?;
    let budgets = verified.budgets();
    if budgets.is_empty() {
        return Err(ApiError::bad_request("the token declares no budget"));
    }
    let keys: Vec<String> = budgets.iter().map(|b| b.key.clone()).collect();
    let denied = |code: &str| {
        spend_event(
            &state,
            &verified,
            AuditOutcome::Denied,
            Some(input.amount.clone()),
            spend_text(None, &keys),
            Some(code),
        )
    };
    if let Some(b) = budgets
        .iter()
        .find(|b| b.limit.currency() != input.amount.currency())
    {
        audit(&state, denied("currency_mismatch")).await?;
        return Ok(refusal(
            "currency_mismatch",
            format!(
                "budget `{}` is in {}, not in {}",
                b.id,
                b.limit.currency(),
                input.amount.currency()
            ),
            &Reserved::CurrencyMismatch {
                which: b.key.clone(),
            },
        ));
    }
    let req = ReserveRequest {
        charges: budgets
            .iter()
            .map(|b| Charge {
                key: b.key.clone(),
                limit: b.limit.minor(),
            })
            .collect(),
        amount: input.amount.minor(),
        currency: input.amount.currency().to_owned(),
        idempotency_key: input.idempotency_key,
        ttl: Duration::from_millis(ttl_ms),
        keep_until: verified.expires_at(),
    };
    if req.amount <= 0 {
        return Err(ApiError::bad_request("the amount must be positive"));
    }
    let id_of = |key: &str| {
        budgets
            .iter()
            .find(|b| b.key == key)
            .map_or_else(|| key.to_owned(), |b| b.id.to_string())
    };
    let outcome = state.stores.budgets.reserve(&req, state.now()).await?;
    let event = match &outcome {
        Reserved::Reserved(r) => spend_event(
            &state,
            &verified,
            AuditOutcome::BudgetReserved,
            Some(input.amount.clone()),
            spend_text(Some(&r.id), &r.keys),
            None,
        ),
        Reserved::Exceeded { .. } => denied("budget_exceeded"),
        Reserved::CurrencyMismatch { .. } => denied("currency_mismatch"),
        Reserved::IdempotencyConflict => denied("idempotency_conflict"),
        Reserved::Busy { .. } => denied("budget_busy"),
    };
    audit(&state, event).await?;
    Ok(match &outcome {
        Reserved::Reserved(_) => Json(&outcome).into_response(),
        Reserved::Exceeded { which } => refusal(
            "budget_exceeded",
            format!("budget `{}` would be exceeded", id_of(which)),
            &outcome,
        ),
        Reserved::CurrencyMismatch { which } => refusal(
            "currency_mismatch",
            format!("budget `{}` is in another currency", id_of(which)),
            &outcome,
        ),
        Reserved::IdempotencyConflict => refusal(
            "idempotency_conflict",
            "the idempotency key was used for another spend".into(),
            &outcome,
        ),
        Reserved::Busy { which } => refusal(
            "budget_busy",
            format!("too many spends pending on budget `{}`", id_of(which)),
            &outcome,
        ),
    })
}

/// A 409 answer: `error`, `error_description`, and the ledger's outcome.
fn refusal(code: &str, description: String, outcome: &Reserved) -> Response {
    let mut body = serde_json::to_value(outcome).unwrap_or_else(|_| json!({}));
    body["error"] = code.into();
    body["error_description"] = description.into();
    (StatusCode::CONFLICT, Json(body)).into_response()
}

/// `POST /v1/budgets/commit`: charges a reservation. 200
/// `{"settled": "committed"}` (also on a retry); 409 with `settled`
/// `released` or `expired`; 404 for an unknown reservation.
pub async fn commit(
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    settle(&state, &body, true).await
}

/// `POST /v1/budgets/release`: lets a reservation go. 200
/// `{"settled": "released"}` (or `expired`); 409 with `settled`
/// `committed` (a committed spend stays charged); 404 for an unknown one.
pub async fn release(
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    settle(&state, &body, false).await
}

async fn settle(state: &AppState, body: &[u8], commit: bool) -> Result<Response, ApiError> {
    let input: SettleInput = parse(body)?;
    if !valid_token(&input.reservation, 64) {
        return Err(ApiError::NotFound("no such reservation".into()));
    }
    let verified = spendable(state, &input.token).await?;
    if verified.budgets().is_empty() {
        return Err(ApiError::bad_request("the token declares no budget"));
    }
    let ledger = &state.stores.budgets;
    let now = state.now();
    let settled = if commit {
        ledger.commit(&input.reservation, now).await?
    } else {
        ledger.release(&input.reservation, now).await?
    };
    let ok = match settled {
        Settled::Unknown => return Err(ApiError::NotFound("no such reservation".into())),
        Settled::Committed => commit,
        Settled::Released | Settled::Expired => !commit,
    };
    let keys: Vec<String> = verified.budgets().iter().map(|b| b.key.clone()).collect();
    let (outcome, reason) = match (ok, commit) {
        (true, true) => (AuditOutcome::BudgetCommitted, None),
        (true, false) => (AuditOutcome::BudgetReleased, None),
        (false, _) => (AuditOutcome::Denied, Some("already_settled")),
    };
    let text = spend_text(Some(&input.reservation), &keys);
    audit(
        state,
        spend_event(state, &verified, outcome, None, text, reason),
    )
    .await?;
    let body = json!({ "settled": settled });
    Ok(if ok {
        Json(body).into_response()
    } else {
        let mut body = body;
        body["error"] = "already_settled".into();
        body["error_description"] = format!(
            "the reservation is {} already",
            serde_json::to_value(settled)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        )
        .into();
        (StatusCode::CONFLICT, Json(body)).into_response()
    })
}
