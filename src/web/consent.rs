//! The consent page of `/oauth/authorize` and its form (`POST
//! /oauth/authorize`): the client's name and URL, the MCP server, one
//! checkbox per scope that may be granted, "remember", approve or deny.
//!
//! The form carries the pending request signed ([`Pending`], 10 minutes)
//! and a CSRF token bound to the session **and** to that request. A form
//! posted in another session (another person) is refused (403). Approve:
//! a code (60 s) for the ticked scopes, sent back with `state` and `iss`.
//! Deny, or nothing ticked: `error=access_denied`.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};

use super::authorize::{back, back_error, issue_code, Pending, PENDING_LABEL};
use super::csrf::Form;
use super::page::{html, page, ErrorPage, Markup, CSP};
use super::session::{LoggedIn, Session};
use super::{refused, web, Web};
use crate::server::AppState;
use crate::store::authcode::RememberedConsent;
use crate::store::StoreError;

/// The form field holding the signed pending request.
pub const REQUEST_FIELD: &str = "request";

/// The CSRF purpose of a consent form: bound to its pending request.
fn purpose(sealed: &str) -> String {
    format!(
        "authorize:{}",
        URL_SAFE_NO_PAD.encode(Sha256::digest(sealed.as_bytes()))
    )
}

/// The consent page for `p` (signed as `sealed`).
pub(super) fn render(web: &Web, session: &Session, p: &Pending, sealed: &str) -> Response {
    let name = p.client_name.as_deref().unwrap_or("An application");
    let mut boxes = Markup::default();
    for s in &p.scopes {
        boxes.push(html(
            "<li><label><input type=\"checkbox\" name=\"scope\" value=\"{}\" checked> \
             <code>{}</code></label></li>",
            &[&s.as_str(), &s.as_str()],
        ));
    }
    let home = match &p.client_uri {
        Some(u) => html(
            "<p class=\"muted\">Its home page: <code>{}</code></p>",
            &[u],
        ),
        None => Markup::default(),
    };
    let body = html(
        "<h1>Allow access?</h1>\
         <p id=\"client\"><strong>{}</strong> (<code>{}</code>) asks to act for you at \
         the MCP server <code id=\"resource\">{}</code>, on <code>{}</code>.</p>{}\
         <form method=\"post\" action=\"/oauth/authorize\">{}\
         <input type=\"hidden\" name=\"request\" value=\"{}\">\
         <fieldset><legend>Tools it may use</legend><ul class=\"scopes\">{}</ul></fieldset>\
         <p><label><input type=\"checkbox\" name=\"remember\" value=\"1\"> \
         Remember this for this application and server (withdraw it at \
         <a href=\"/consents\">your consents</a>)</label></p>\
         <p><button type=\"submit\" name=\"decision\" value=\"approve\">Approve</button> \
         <button type=\"submit\" name=\"decision\" value=\"deny\" class=\"secondary\">Deny</button></p>\
         </form>\
         <p class=\"muted\" id=\"who\">Signed in as <strong>{}</strong> at <code>{}</code></p>",
        &[
            &name,
            &p.client_id.as_str(),
            &p.resource.as_str(),
            &p.pattern.to_string(),
            &home,
            &web.csrf_field(session, &purpose(sealed)),
            &sealed,
            &boxes,
            &session.person.subject(),
            &session.person.issuer(),
        ],
    );
    let mut r = page("Allow access?", body);
    if let Some(csp) = form_action_csp(&p.redirect_uri) {
        r.headers_mut().insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    r
}

/// The pages' CSP with `form-action` also allowing the origin of
/// `redirect_uri`: browsers apply `form-action` to the redirect that
/// follows the form, and the answer goes to the client. `None` (the
/// default CSP stays, and the browser will refuse the redirect) when the
/// origin cannot be written as a source expression.
fn form_action_csp(redirect_uri: &str) -> Option<HeaderValue> {
    let url = reqwest::Url::parse(redirect_uri).ok()?;
    let source = match url.scheme() {
        "http" | "https" => url.origin().ascii_serialization(),
        scheme => format!("{scheme}:"),
    };
    let plain = source
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b".:/[]-+".contains(&b));
    if !plain || source == "null" {
        return None;
    }
    let csp = CSP.replace(
        "form-action 'self'",
        &format!("form-action 'self' {source}"),
    );
    HeaderValue::from_str(&csp).ok()
}

/// `POST /oauth/authorize`: the person's decision.
pub async fn decide(
    State(state): State<AppState>,
    LoggedIn(session): LoggedIn,
    headers: HeaderMap,
    form: Form,
) -> Response {
    match run(&state, &session, &headers, &form).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn run(
    state: &AppState,
    session: &Session,
    headers: &HeaderMap,
    form: &Form,
) -> Result<Response, ErrorPage> {
    let web = web(state)?;
    let sealed = form.one(REQUEST_FIELD).ok_or_else(|| {
        refused(state, "consent_form");
        ErrorPage::bad_request("the consent form is incomplete; start again from the application")
    })?;
    let p: Pending = web
        .key()
        .open(PENDING_LABEL, sealed, state.now())
        .map_err(|_| {
            refused(state, "consent_form");
            ErrorPage::bad_request(
                "this consent page has expired (10 minutes) or was altered; \
                 start again from the application",
            )
        })?;
    if p.sid != session.id {
        refused(state, "consent_session");
        return Err(ErrorPage::forbidden(
            "this consent page was opened by someone else (or in another session); nothing was granted",
        ));
    }
    web.check_post(headers, session, &purpose(sealed), form)
        .inspect_err(|_| refused(state, "csrf"))?;
    let client_state = p.state.as_deref();
    match form.one("decision") {
        Some("approve") => {}
        Some("deny") => {
            return Ok(back_error(
                state,
                &p.redirect_uri,
                "access_denied",
                "the person denied the request",
                client_state,
            ))
        }
        _ => return Err(ErrorPage::bad_request("approve or deny")),
    }
    let ticked: Vec<&str> = form
        .0
        .iter()
        .filter(|(k, _)| k == "scope")
        .map(|(_, v)| v.as_str())
        .collect();
    let scopes: Vec<_> = p
        .scopes
        .iter()
        .filter(|s| ticked.contains(&s.as_str()))
        .cloned()
        .collect();
    if scopes.is_empty() {
        return Ok(back_error(
            state,
            &p.redirect_uri,
            "access_denied",
            "the person approved no scope",
            client_state,
        ));
    }
    let (code, family) = issue_code(state, &session.person, &p, scopes.clone()).await?;
    if form.one("remember").is_some() {
        let consent = RememberedConsent {
            person: session.person.clone(),
            client_id: p.client_id.clone(),
            resource: p.resource.clone(),
            scopes,
            granted_at: state.now(),
            families: vec![family],
        };
        match state.stores.authcodes.remember(&consent).await {
            Ok(()) => {}
            Err(StoreError::Limit(_)) => {
                return Err(ErrorPage::bad_request(
                    "you remember too many consents: withdraw some at /consents first",
                ))
            }
            Err(_) => {
                return Err(ErrorPage::new(
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    "the store cannot be reached; try again later",
                ))
            }
        }
    }
    Ok(back(
        state,
        &p.redirect_uri,
        &[("code", &code)],
        client_state,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_may_send_the_browser_to_the_redirect_uri_origin_only() {
        let csp = |u: &str| form_action_csp(u).map(|v| v.to_str().unwrap().to_owned());
        let c = csp("http://127.0.0.1:8765/callback?x=1").unwrap();
        assert!(
            c.contains("form-action 'self' http://127.0.0.1:8765;"),
            "{c}"
        );
        assert!(
            c.contains("default-src 'none'") && !c.contains("script-src"),
            "{c}"
        );
        assert!(csp("cursor://anysphere.cursor-retrieval/oauth/callback")
            .unwrap()
            .contains("form-action 'self' cursor:;"));
        assert_eq!(csp("not a url"), None);
        assert_eq!(csp("a;b:x"), None);
    }
}
