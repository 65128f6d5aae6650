//! Operators and requests for a person's approval (docs/approval.md,
//! "Operators"; docs/api.md): `GET /v1/approvals`, `GET /v1/approvals/{id}`,
//! and, only where `[approval] operators_may_decide = true`,
//! `POST /v1/approvals/{id}/approve|deny`. Every route is behind the admin
//! token ([`require_admin`](super::admin::require_admin)).
//!
//! A decision goes through [`notify::decide`](super::notify::decide), as the
//! person's own does: recorded once, audited with the operator's name, and
//! the agent pinged in ping mode. The operator's name comes from the
//! [`OPERATOR_HEADER`] header (default `admin`) and is recorded as
//! `operator:<name>` in the request's `decided_by`.
//!
//! What the answer never holds: the agent's `client_notification_token`.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::error::{bounded, ApiError, MAX_DESCRIPTION_CHARS};
use super::state::AppState;
use crate::store::{Approval, ApprovalStatus, AskedCapability, Decided, Decider, Verdict};
use crate::token::{AgentId, Person};

/// The header naming the operator who decides (1 to 64 of
/// `A-Z a-z 0-9 . _ @ -`); without it the operator is `admin`.
pub const OPERATOR_HEADER: &str = "tessera-operator";
/// The operator's name when the header is absent.
pub const DEFAULT_OPERATOR: &str = "admin";
/// Most requests one list answers.
pub const MAX_LIST_LIMIT: usize = 500;
/// Requests a list answers when `limit` is not given.
pub const DEFAULT_LIST_LIMIT: usize = 50;
/// Longest approval id accepted in a path (ids are 64 hex digits).
const MAX_ID_LEN: usize = 128;

/// One request as operators see it: everything but the agent's
/// notification token, plus whether it has expired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalView {
    /// The `auth_req_id`.
    pub id: String,
    /// The agent that asked.
    pub agent: AgentId,
    /// Earlier actors, oldest first.
    pub prior_actors: Vec<AgentId>,
    /// The person asked.
    pub person: Person,
    /// What is asked.
    pub capability: AskedCapability,
    /// What the person is shown.
    pub binding_message: Option<String>,
    /// When it was asked.
    pub created_at: DateTime<Utc>,
    /// When it can no longer be decided or collected.
    pub expires_at: DateTime<Utc>,
    /// `pending`, `approved`, `denied` or `collected`.
    pub status: ApprovalStatus,
    /// Whether `expires_at` has passed.
    pub expired: bool,
    /// `person` or `operator:<name>`.
    pub decided_by: Option<String>,
    /// When it was decided.
    pub decided_at: Option<DateTime<Utc>>,
}

impl ApprovalView {
    /// The view of `a` at `now`.
    pub fn of(a: Approval, now: DateTime<Utc>) -> Self {
        Self {
            expired: a.expired(now),
            id: a.id,
            agent: a.agent,
            prior_actors: a.prior_actors,
            person: a.person,
            capability: a.capability,
            binding_message: a.binding_message,
            created_at: a.created_at,
            expires_at: a.expires_at,
            status: a.status,
            decided_by: a.decided_by,
            decided_at: a.decided_at,
        }
    }
}

/// The `status` filter of a list: a record status, or `expired` (pending
/// past its expiry). `pending` lists only requests that can still be
/// decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusFilter {
    /// Pending and not expired.
    Pending,
    /// Approved, token not yet collected.
    Approved,
    /// Denied.
    Denied,
    /// Approved and collected.
    Collected,
    /// Pending past its expiry.
    Expired,
}

impl StatusFilter {
    /// The record status it reads from the store.
    fn stored(self) -> ApprovalStatus {
        match self {
            Self::Pending | Self::Expired => ApprovalStatus::Pending,
            Self::Approved => ApprovalStatus::Approved,
            Self::Denied => ApprovalStatus::Denied,
            Self::Collected => ApprovalStatus::Collected,
        }
    }

    /// Whether `a` (already of [`stored`](Self::stored) status) matches.
    fn matches(self, a: &Approval, now: DateTime<Utc>) -> bool {
        a.status == self.stored()
            && match self {
                Self::Pending => !a.expired(now),
                Self::Expired => a.expired(now),
                _ => true,
            }
    }
}

/// `GET /v1/approvals` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    person_issuer: Option<String>,
    person_subject: Option<String>,
    status: Option<StatusFilter>,
    limit: Option<usize>,
}

/// `GET /v1/approvals`: requests, newest first; by person
/// (`person_issuer` and `person_subject` together) and by `status`, at most
/// `limit` (1 to 500, default 50).
pub async fn list(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(format!("invalid query: {e}")))?;
    let limit = q.limit.unwrap_or(DEFAULT_LIST_LIMIT);
    if !(1..=MAX_LIST_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_LIST_LIMIT}"
        )));
    }
    let person = match (q.person_issuer.as_deref(), q.person_subject.as_deref()) {
        (None, None) => None,
        (Some(i), Some(s)) => Some(
            Person::parse(i, s)
                .map_err(|e| ApiError::bad_request(format!("invalid person: {e}")))?,
        ),
        _ => {
            return Err(ApiError::bad_request(
                "give person_issuer and person_subject together",
            ))
        }
    };
    let now = state.now();
    let store = &state.stores.approvals;
    let found = match &person {
        Some(p) => store.for_person(p, usize::MAX).await?,
        None => {
            store
                .list(q.status.map(StatusFilter::stored), usize::MAX)
                .await?
        }
    };
    let approvals: Vec<ApprovalView> = found
        .into_iter()
        .filter(|a| q.status.is_none_or(|s| s.matches(a, now)))
        .take(limit)
        .map(|a| ApprovalView::of(a, now))
        .collect();
    Ok(Json(json!({ "approvals": approvals })))
}

/// `GET /v1/approvals/{id}`.
pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ApprovalView>, ApiError> {
    let found = if plausible_id(&id) {
        state.stores.approvals.get(&id).await?
    } else {
        None
    };
    found
        .map(|a| Json(ApprovalView::of(a, state.now())))
        .ok_or_else(|| ApiError::NotFound("no such approval request".into()))
}

/// `POST /v1/approvals/{id}/approve`.
pub async fn approve(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    decide(&state, &headers, &id, Verdict::Approve).await
}

/// `POST /v1/approvals/{id}/deny`.
pub async fn deny(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    decide(&state, &headers, &id, Verdict::Deny).await
}

/// Decides as an operator: 403 `access_denied` unless the policy allows
/// it; then 200 with the request as decided, 404 `not_found`, 409
/// `already_decided`, or 410 `expired_token`. Nothing changes on a refusal.
async fn decide(
    state: &AppState,
    headers: &HeaderMap,
    id: &str,
    verdict: Verdict,
) -> Result<Response, ApiError> {
    if !state.config.approval.operators_may_decide {
        return Ok(refusal(
            StatusCode::FORBIDDEN,
            "access_denied",
            "operators may not decide requests for approval here: only the person asked \
             ([approval] operators_may_decide = false)",
        ));
    }
    let operator = operator_name(headers)?;
    if !plausible_id(id) {
        return Err(ApiError::NotFound("no such approval request".into()));
    }
    let by = Decider::Operator(operator);
    match super::notify::decide(state, id, &by, verdict).await? {
        Decided::Decided(a) => Ok(Json(ApprovalView::of(*a, state.now())).into_response()),
        Decided::Unknown => Err(ApiError::NotFound("no such approval request".into())),
        Decided::AlreadyDecided(status) => Ok(refusal(
            StatusCode::CONFLICT,
            "already_decided",
            &format!("the request was decided already ({})", status.as_str()),
        )),
        Decided::Expired => Ok(refusal(
            StatusCode::GONE,
            "expired_token",
            "the request expired before it was decided",
        )),
        // A person's check only; an operator is never refused by it.
        Decided::NotYours => Ok(refusal(
            StatusCode::FORBIDDEN,
            "access_denied",
            "not yours to decide",
        )),
    }
}

/// A JSON error answer with `error` and `error_description`.
fn refusal(status: StatusCode, code: &str, description: &str) -> Response {
    (
        status,
        Json(json!({
            "error": code,
            "error_description": bounded(description, MAX_DESCRIPTION_CHARS),
        })),
    )
        .into_response()
}

/// The operator's name from [`OPERATOR_HEADER`], or [`DEFAULT_OPERATOR`].
fn operator_name(headers: &HeaderMap) -> Result<String, ApiError> {
    let Some(value) = headers.get(OPERATOR_HEADER) else {
        return Ok(DEFAULT_OPERATOR.to_owned());
    };
    let name = value.to_str().unwrap_or("");
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._@-".contains(&b));
    if !ok {
        return Err(ApiError::bad_request(format!(
            "{OPERATOR_HEADER} must be 1 to 64 of A-Z a-z 0-9 . _ @ -"
        )));
    }
    Ok(name.to_owned())
}

/// Whether `id` could be an approval id at all (else: not found, without
/// asking the store).
fn plausible_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_names_are_short_and_plain() {
        let mut h = HeaderMap::new();
        assert_eq!(operator_name(&h).unwrap(), "admin");
        h.insert(OPERATOR_HEADER, "alice@ops".parse().unwrap());
        assert_eq!(operator_name(&h).unwrap(), "alice@ops");
        for bad in ["", "a b", "x:y", &"a".repeat(65)] {
            h.insert(OPERATOR_HEADER, bad.parse().unwrap());
            assert!(operator_name(&h).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn approval_ids_in_paths_are_bounded() {
        assert!(plausible_id(&"ab12".repeat(16)));
        assert!(!plausible_id(""));
        assert!(!plausible_id("a/b"));
        assert!(!plausible_id(&"a".repeat(129)));
    }
}
