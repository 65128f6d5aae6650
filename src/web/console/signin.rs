//! The admin-token sign-in, for issuers without `[login]`:
//!
//! - `GET /console/login`: a form with one password field.
//! - `POST /console/login`: no CSRF token (there is no session yet), but
//!   the request must come from this origin as far as the browser says
//!   (`Origin`, `Sec-Fetch-Site`). The token is checked exactly as the
//!   admin API checks it (signature by the root key, not expired, not
//!   revoked, the operator's own undelegated token): no secret is compared
//!   byte by byte, and nothing is kept per attempt. Success sets the signed
//!   [`OPERATOR_COOKIE`](super::OPERATOR_COOKIE), which ends with the
//!   session TTL, the token's expiry or the token's revocation.
//! - `POST /console/logout`: removes it (its own CSRF token).

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::Deserialize;

use super::operator::{admin_session, signout_ok, AdminSession, OPERATOR_COOKIE};
use crate::server::admin::admin_grant;
use crate::server::AppState;
use crate::token;
use crate::web::login::safe_return_to;
use crate::web::page::{html, page, page_with_status, see_other, ErrorPage};
use crate::web::{refused, web, Form, Web};

/// The admin path the sign-in checks the token for.
const CHECKED_PATH: &str = "/v1/audit";
/// Longest admin token accepted in the form (bytes).
const MAX_TOKEN: usize = 16 * 1024;

#[derive(Debug, Deserialize)]
pub(super) struct Query {
    return_to: Option<String>,
}

fn no_admin_sign_in() -> ErrorPage {
    ErrorPage::new(
        StatusCode::NOT_FOUND,
        "operators sign in through the identity provider on this issuer ([login] is configured)",
    )
}

fn the_form(return_to: &str, problem: Option<&str>) -> crate::web::Markup {
    let problem = match problem {
        Some(p) => html("<p class=\"reason\">{}</p>", &[&p]),
        None => crate::web::Markup::default(),
    };
    html(
        "<h1>Operator console</h1>{}\
         <p>This issuer has no identity provider for its pages: sign in with an admin \
         token (<code>tessera admin token</code>).</p>\
         <form method=\"post\" action=\"/console/login\">\
         <input type=\"hidden\" name=\"return_to\" value=\"{}\">\
         <label for=\"token\">Admin token</label>\
         <input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"off\" required>\
         <button type=\"submit\">Sign in</button></form>",
        &[&problem, &return_to],
    )
}

fn checked_return_to(r: Option<&str>) -> String {
    r.and_then(safe_return_to)
        .filter(|r| r.starts_with("/console"))
        .unwrap_or("/console")
        .to_owned()
}

/// `GET /console/login`.
pub(super) async fn form(State(state): State<AppState>, RawQuery(q): RawQuery) -> Response {
    if let Err(e) = web(&state) {
        return e.into_response();
    }
    if state.config.login.is_some() {
        return no_admin_sign_in().into_response();
    }
    let q: Query = match super::chrome::query(q.as_deref()) {
        Ok(q) => q,
        Err(e) => return e.into_response(),
    };
    page(
        "Operator sign-in",
        the_form(&checked_return_to(q.return_to.as_deref()), None),
    )
}

/// `POST /console/login`.
pub(super) async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Form,
) -> Response {
    let web = match web(&state) {
        Ok(w) => w,
        Err(e) => return e.into_response(),
    };
    if state.config.login.is_some() {
        refused(&state, "console_signin");
        return no_admin_sign_in().into_response();
    }
    if !web.same_origin(&headers) {
        refused(&state, "csrf");
        return ErrorPage::forbidden("this form was sent from another site; nothing was done")
            .into_response();
    }
    let return_to = checked_return_to(form.one("return_to"));
    let token = form.one("token").unwrap_or("").trim();
    if token.is_empty() || token.len() > MAX_TOKEN {
        return refuse(&state, &return_to, "give an admin token");
    }
    let grant = admin_grant(&state, token, CHECKED_PATH, false).await;
    if grant.is_err() {
        return refuse(
            &state,
            &return_to,
            "that is not a valid admin token (wrong, expired or revoked)",
        );
    }
    match signed_in(&state, web, token, &return_to) {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

fn refuse(state: &AppState, return_to: &str, why: &str) -> Response {
    refused(state, "console_signin");
    tracing::info!("console: admin-token sign-in refused");
    page_with_status(
        StatusCode::FORBIDDEN,
        "Operator sign-in",
        the_form(return_to, Some(why)),
    )
}

fn signed_in(
    state: &AppState,
    web: &Web,
    text: &str,
    return_to: &str,
) -> Result<Response, ErrorPage> {
    let internal = || {
        ErrorPage::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the sign-in could not be completed",
        )
    };
    let now = state.now();
    let bytes = token::decode(text, &state.limits).map_err(|_| internal())?;
    let keys = state.ring().key_set(now);
    let verified =
        token::Verified::from_bytes(&bytes, &keys, &state.limits).map_err(|_| internal())?;
    let token_end = verified.chain().claims.expires_at;
    let rids: Vec<String> = verified.revocation_ids().iter().map(hex::encode).collect();
    let ttl = chrono::Duration::seconds(web.session_ttl().as_secs() as i64);
    let expires = (now + ttl).min(token_end);
    let session = AdminSession {
        sid: URL_SAFE_NO_PAD.encode(rand::random::<[u8; 18]>()),
        rids,
    };
    let name = web.cookies().name(OPERATOR_COOKIE);
    let sealed = web
        .key()
        .seal(&name, &session, expires)
        .map_err(|_| internal())?;
    let max_age = (expires - now).num_seconds().max(0);
    let cookie = web
        .cookies()
        .set(&name, &sealed, max_age)
        .ok_or_else(internal)?;
    tracing::info!("console: operator signed in with an admin token");
    let mut r = see_other(return_to);
    r.headers_mut().append(header::SET_COOKIE, cookie);
    Ok(r)
}

/// `POST /console/logout`.
pub(super) async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Form,
) -> Response {
    let web = match web(&state) {
        Ok(w) => w,
        Err(e) => return e.into_response(),
    };
    let session = admin_session(web, &headers, state.now());
    let ok = web.same_origin(&headers)
        && session
            .as_ref()
            .is_some_and(|s| signout_ok(web, &s.sid, form.one("csrf").unwrap_or("")));
    if !ok {
        refused(&state, "csrf");
        return ErrorPage::forbidden(
            "this form has expired or was not made by this site; reload the page and try again",
        )
        .into_response();
    }
    let mut r = page(
        "Signed out",
        html(
            "<h1>Signed out</h1><p>You are signed out of the operator console.</p>\
             <p><a class=\"button\" href=\"/console/login\">Sign in again</a></p>",
            &[],
        ),
    );
    if let Some(clear) = web.cookies().clear(&web.cookies().name(OPERATOR_COOKIE)) {
        r.headers_mut().append(header::SET_COOKIE, clear);
    }
    r
}
