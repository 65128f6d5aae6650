//! The person's approval pages (docs/approval.md, "The approval page"):
//!
//! - `GET /approvals/{id}`: the request (agent chain, action, resource,
//!   amount, binding message, expiry) and, while it is pending, approve and
//!   deny buttons. Only the person the request names may see it (403).
//! - `POST /approvals/{id}` (CSRF bound to the session and the id):
//!   decides once through [`notify::decide`] (which records, audits and
//!   pings): already decided 409, expired 410, unknown 404.
//! - `GET /approvals`: the person's pending and past requests.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::approval_view as view;
use super::csrf::Form;
use super::page::ErrorPage;
use super::session::{LoggedIn, Session};
use super::{refused, web};
use crate::server::notify;
use crate::server::AppState;
use crate::store::{Approval, Decided, Decider, Verdict};

/// Most requests `GET /approvals` lists.
pub const LIST_LIMIT: usize = 100;

/// The CSRF purpose of request `id`'s form.
pub fn purpose(id: &str) -> String {
    format!("approval:{id}")
}

fn unknown() -> ErrorPage {
    ErrorPage::new(
        StatusCode::NOT_FOUND,
        "no such request for approval (or it was dropped a day after it expired)",
    )
}

fn unavailable() -> ErrorPage {
    ErrorPage::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "the store of requests cannot be reached; nothing was done, try again shortly",
    )
}

fn not_yours(state: &AppState) -> ErrorPage {
    refused(state, "approval_not_yours");
    ErrorPage::forbidden(
        "this request asks another person; log out and log in as the person it names",
    )
}

/// The id of the path: an approval id is 64 lower-case hex digits, anything
/// else is no request (and never reaches the store).
fn approval_id(path: Result<Path<String>, PathRejection>) -> Result<String, ErrorPage> {
    match path {
        Ok(Path(id))
            if id.len() == 64 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) =>
        {
            Ok(id)
        }
        _ => Err(unknown()),
    }
}

/// The request `id` if it asks `session`'s person.
async fn own(state: &AppState, session: &Session, id: &str) -> Result<Approval, ErrorPage> {
    let approval = state
        .stores
        .approvals
        .get(id)
        .await
        .map_err(|_| unavailable())?
        .ok_or_else(unknown)?;
    if approval.person != session.person {
        return Err(not_yours(state));
    }
    Ok(approval)
}

/// `GET` and `POST /approvals/{id}`.
pub(super) fn one() -> axum::routing::MethodRouter<AppState> {
    axum::routing::get(show).post(decide)
}

/// `GET /approvals/{id}`.
async fn show(
    State(state): State<AppState>,
    LoggedIn(session): LoggedIn,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    let run = async {
        let web = web(&state)?;
        let id = approval_id(path)?;
        let approval = own(&state, &session, &id).await?;
        let csrf = web.csrf_field(&session, &purpose(&id));
        Ok::<_, ErrorPage>(view::request(&approval, state.now(), csrf))
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /approvals/{id}`: `verdict=approve|deny` and the CSRF field.
async fn decide(
    State(state): State<AppState>,
    LoggedIn(session): LoggedIn,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    form: Form,
) -> Response {
    let run = async {
        let web = web(&state)?;
        let id = approval_id(path)?;
        if let Err(e) = web.check_post(&headers, &session, &purpose(&id), &form) {
            refused(&state, "csrf");
            return Err(e);
        }
        let verdict = match form.one("verdict") {
            Some("approve") => Verdict::Approve,
            Some("deny") => Verdict::Deny,
            _ => return Err(ErrorPage::bad_request("choose approve or deny")),
        };
        let by = Decider::Person(session.person.clone());
        let decided = notify::decide(&state, &id, &by, verdict)
            .await
            .map_err(|_| unavailable())?;
        match decided {
            Decided::Decided(approval) => Ok(view::decided(&approval, verdict)),
            Decided::Unknown => Err(unknown()),
            Decided::NotYours => Err(not_yours(&state)),
            Decided::AlreadyDecided(status) => Err(ErrorPage::new(
                StatusCode::CONFLICT,
                format!(
                    "this request was decided already ({}); nothing changed",
                    status.as_str()
                ),
            )),
            Decided::Expired => Err(ErrorPage::new(
                StatusCode::GONE,
                "this request expired before your decision; nothing was granted \
                 (the agent may ask again)",
            )),
        }
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

/// `GET /approvals`.
pub(super) async fn list(State(state): State<AppState>, LoggedIn(session): LoggedIn) -> Response {
    match state
        .stores
        .approvals
        .for_person(&session.person, LIST_LIMIT)
        .await
    {
        Ok(items) => view::list(&items, state.now()),
        Err(_) => unavailable().into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_64_lower_hex_digits_name_a_request() {
        let ok = "a".repeat(64);
        assert_eq!(approval_id(Ok(Path(ok.clone()))).unwrap(), ok);
        for bad in [
            "A".repeat(64),
            "a".repeat(63),
            "a".repeat(65),
            "../x".into(),
        ] {
            assert_eq!(
                approval_id(Ok(Path(bad))).unwrap_err().status,
                StatusCode::NOT_FOUND
            );
        }
        assert_ne!(purpose("a"), purpose("b"));
    }
}
