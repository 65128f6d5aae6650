//! [`Operator`]: the extractor every console page takes.
//!
//! With `[login]`: the person's session ([`crate::web::Session`]) and the
//! `[console] operator_role` among its groups. Without `[login]`: the
//! console's own cookie ([`OPERATOR_COOKIE`]), set by the admin-token
//! sign-in, whose admin token must not have been revoked since.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::Mac as _;
use serde::{Deserialize, Serialize};

use crate::server::AppState;
use crate::web::page::{html, see_other, ErrorPage, Markup};
use crate::web::{cookie, refused, web, Session, Web};

/// Base name of the admin-token sign-in cookie (`__Host-` prefixed over https).
pub const OPERATOR_COOKIE: &str = "tessera-console";

/// Who is looking at the console.
#[derive(Debug, Clone)]
pub enum Operator {
    /// A person logged in through `[login]` holding the operator role.
    Person(Session),
    /// Someone who signed in with an admin token (no `[login]`).
    AdminToken(AdminSession),
}

/// What the admin-token sign-in cookie holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminSession {
    /// A random id, new at every sign-in (the sign-out form is bound to it).
    pub sid: String,
    /// The revocation ids of the admin token used (revoking it ends this).
    pub rids: Vec<String>,
}

impl Operator {
    /// Who, for the page header.
    pub fn name(&self) -> String {
        match self {
            Self::Person(s) => s.person.to_string(),
            Self::AdminToken(_) => "operator (admin token)".into(),
        }
    }

    /// The sign-out form (CSRF-protected).
    pub fn sign_out_form(&self, web: &Web) -> Markup {
        match self {
            Self::Person(s) => html(
                "<form method=\"post\" action=\"/logout\" class=\"signout\">{}\
                 <button type=\"submit\" class=\"secondary\">Sign out</button></form>",
                &[&web.csrf_field(s, "logout")],
            ),
            Self::AdminToken(a) => html(
                "<form method=\"post\" action=\"/console/logout\" class=\"signout\">\
                 <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
                 <button type=\"submit\" class=\"secondary\">Sign out</button></form>",
                &[&signout_token(web, &a.sid)],
            ),
        }
    }
}

/// The sign-out token of an admin-token sign-in with id `sid`.
pub(super) fn signout_token(web: &Web, sid: &str) -> String {
    web.key()
        .mac("console-signout", &[sid.as_bytes()])
        .map(|m| URL_SAFE_NO_PAD.encode(m.finalize().into_bytes()))
        .unwrap_or_default()
}

/// Whether `given` is the sign-out token of `sid` (constant time).
pub(super) fn signout_ok(web: &Web, sid: &str, given: &str) -> bool {
    let Ok(given) = URL_SAFE_NO_PAD.decode(given) else {
        return false;
    };
    web.key()
        .mac("console-signout", &[sid.as_bytes()])
        .is_some_and(|m| m.verify_slice(&given).is_ok())
}

/// The admin-token sign-in of the request, if its cookie is valid at `now`.
pub(super) fn admin_session(
    web: &Web,
    headers: &HeaderMap,
    now: DateTime<Utc>,
) -> Option<AdminSession> {
    let name = web.cookies().name(OPERATOR_COOKIE);
    let text = cookie::read(headers, &name)?;
    web.key().open(&name, text, now).ok()
}

fn not_an_operator(state: &AppState) -> Response {
    refused(state, "not_operator");
    ErrorPage::forbidden(
        "you are signed in, but not as an operator: the console is for members of the \
         operator group ([console] operator_role)",
    )
    .into_response()
}

fn go_sign_in(state: &AppState, parts: &Parts, login: &str) -> Response {
    if parts.method == Method::GET || parts.method == Method::HEAD {
        let here = parts
            .uri
            .path_and_query()
            .map_or("/console", |p| p.as_str());
        let q = serde_urlencoded::to_string([("return_to", here)]).unwrap_or_default();
        return see_other(&format!("{login}?{q}"));
    }
    refused(state, "no_session");
    ErrorPage::forbidden("you are not signed in (or your session has ended); nothing was done")
        .into_response()
}

impl FromRequestParts<AppState> for Operator {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let web = web(state).map_err(IntoResponse::into_response)?;
        let now = state.now();
        if web.login_issuer().is_some() {
            let Some(session) = web.session(&parts.headers, now) else {
                return Err(go_sign_in(state, parts, "/login"));
            };
            let role = &state.config.console.operator_role;
            if !session.groups.iter().any(|g| g == role) {
                return Err(not_an_operator(state));
            }
            return Ok(Self::Person(session));
        }
        let Some(admin) = admin_session(web, &parts.headers, now) else {
            return Err(go_sign_in(state, parts, "/console/login"));
        };
        for rid in &admin.rids {
            match state.stores.revocations.is_revoked(rid).await {
                Ok(false) => {}
                Ok(true) => return Err(go_sign_in(state, parts, "/console/login")),
                Err(_) => {
                    return Err(ErrorPage::new(
                        axum::http::StatusCode::SERVICE_UNAVAILABLE,
                        "the store cannot be reached to check your sign-in; try again later",
                    )
                    .into_response())
                }
            }
        }
        Ok(Self::AdminToken(admin))
    }
}
