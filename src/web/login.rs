//! Tessera as an OpenID Connect relying party of the one IdP `[login]`
//! names (authorization code flow with PKCE S256, state and nonce):
//!
//! - `GET /login?return_to=/path`: a fresh state, nonce and PKCE verifier
//!   in a signed login cookie (10 minutes), then a redirect to the IdP's
//!   authorization endpoint (from its discovery document).
//! - `GET /login/callback`: the state must match the login cookie; the code
//!   is exchanged (with the verifier) at the IdP's token endpoint; the ID
//!   token is validated with the IdP's keys (audience: `client_id`) and its
//!   nonce must match; then a new session cookie, and back to `return_to`.
//! - `POST /logout` (CSRF): the session cookie is removed.
//!
//! Any failure is an error page; nothing is granted.

use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::Mac as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::csrf::Form;
pub use super::oidc::LoginClient;
use super::oidc::{exchange_code, Refusal};
use super::page::{html, page, see_other, ErrorPage};
use super::session::{LoggedIn, Session};
use super::{refused, web, Web, LOGIN_COOKIE};
use crate::server::AppState;
use crate::token::Person;

/// How long a started login may take.
pub const LOGIN_TTL: Duration = Duration::from_secs(600);
/// Longest `return_to` accepted (an `/oauth/authorize?...` request with
/// its client id, redirect URI, resource, scopes and state fits).
pub const MAX_RETURN_TO: usize = 2048;
/// Where a login goes when no `return_to` is given.
pub const DEFAULT_RETURN_TO: &str = "/me";

/// What the login cookie holds while the person is at the IdP.
#[derive(Debug, Serialize, Deserialize)]
struct Pending {
    state: String,
    nonce: String,
    verifier: String,
    return_to: String,
}

/// `return_to` if it is a path of this origin: one leading `/` (not `//`
/// or `/\`), printable ASCII without backslashes, no encoded slash or
/// backslash in the path (the query may hold them: `/oauth/authorize`
/// carries URLs there), at most [`MAX_RETURN_TO`] bytes.
pub fn safe_return_to(s: &str) -> Option<&str> {
    let b = s.as_bytes();
    let path = s
        .split(['?', '#'])
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    let ok = !s.is_empty()
        && s.len() <= MAX_RETURN_TO
        && b[0] == b'/'
        && !matches!(b.get(1), Some(b'/' | b'\\'))
        && b.iter().all(|c| (0x21..=0x7e).contains(c) && *c != b'\\')
        && !path.contains("%2f")
        && !path.contains("%5c");
    ok.then_some(s)
}

fn random_text() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

fn login_client(web: &Web) -> Result<&LoginClient, ErrorPage> {
    web.login.as_ref().ok_or_else(|| {
        ErrorPage::new(
            StatusCode::NOT_FOUND,
            "logging in is not configured on this issuer ([login] in its configuration)",
        )
    })
}

/// `GET /login` query.
#[derive(Debug, Deserialize)]
pub struct StartQuery {
    return_to: Option<String>,
}

/// `GET /login?return_to=/path`.
pub async fn start(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let Ok(query) = serde_urlencoded::from_str::<StartQuery>(query.as_deref().unwrap_or("")) else {
        return ErrorPage::bad_request("the address of this page is malformed").into_response();
    };
    match start_inner(&state, query.return_to).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn start_inner(state: &AppState, return_to: Option<String>) -> Result<Response, ErrorPage> {
    let web = web(state)?;
    let client = login_client(web)?;
    let return_to = match return_to.as_deref() {
        None | Some("") => DEFAULT_RETURN_TO.to_owned(),
        Some(r) => match safe_return_to(r) {
            Some(r) => r.to_owned(),
            None => {
                refused(state, "return_to");
                return Err(ErrorPage::bad_request(
                    "return_to must be a path of this site starting with a single /",
                ));
            }
        },
    };
    let endpoints = idp_endpoints(state, client).await?;
    let pending = Pending {
        state: random_text(),
        nonce: random_text(),
        verifier: random_text(),
        return_to,
    };
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(pending.verifier.as_bytes()));
    let query = serde_urlencoded::to_string([
        ("response_type", "code"),
        ("client_id", client.config.client_id.as_str()),
        ("redirect_uri", client.redirect_uri.as_str()),
        ("scope", client.config.scope.as_str()),
        ("state", pending.state.as_str()),
        ("nonce", pending.nonce.as_str()),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ])
    .map_err(|_| internal())?;
    let sep = if endpoints.authorization.contains('?') {
        '&'
    } else {
        '?'
    };
    let location = format!("{}{sep}{query}", endpoints.authorization);
    let now = state.now();
    let expires = now + chrono::Duration::seconds(LOGIN_TTL.as_secs() as i64);
    let name = web.cookies.name(LOGIN_COOKIE);
    let sealed = web
        .key
        .seal(&name, &pending, expires)
        .map_err(|_| internal())?;
    let cookie = web
        .cookies
        .set(&name, &sealed, LOGIN_TTL.as_secs() as i64)
        .ok_or_else(internal)?;
    let mut r = see_other(&location);
    r.headers_mut().append(header::SET_COOKIE, cookie);
    Ok(r)
}

fn internal() -> ErrorPage {
    ErrorPage::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "the login could not be started",
    )
}

async fn idp_endpoints(
    state: &AppState,
    client: &LoginClient,
) -> Result<std::sync::Arc<crate::people::Endpoints>, ErrorPage> {
    let unavailable = || {
        ErrorPage::new(
            StatusCode::BAD_GATEWAY,
            "the identity provider cannot be reached; try again later",
        )
    };
    let idps = state.idps.as_ref().ok_or_else(unavailable)?;
    idps.endpoints(&client.config.issuer)
        .await
        .ok_or_else(unavailable)
}

/// `GET /login/callback` query.
#[derive(Debug, Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /login/callback?code=...&state=...`.
pub async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let query = serde_urlencoded::from_str::<CallbackQuery>(query.as_deref().unwrap_or("")).ok();
    match callback_inner(&state, &headers, query).await {
        Ok(r) => r,
        Err((reason, page)) => {
            refused(&state, reason);
            tracing::info!(reason, "login refused");
            page.into_response()
        }
    }
}

async fn callback_inner(
    state: &AppState,
    headers: &HeaderMap,
    query: Option<CallbackQuery>,
) -> Result<Response, Refusal> {
    let web = web(state).map_err(|e| ("unavailable", e))?;
    let client = login_client(web).map_err(|e| ("no_login", e))?;
    let name = web.cookies.name(LOGIN_COOKIE);
    let now = state.now();
    let start_again = "start again from the page you wanted to open";
    let pending: Pending = super::cookie::read(headers, &name)
        .ok_or(())
        .and_then(|text| web.key.open(&name, text, now).map_err(|_| ()))
        .map_err(|()| {
            (
                "login_cookie",
                ErrorPage::bad_request(format!(
                    "this login was not started in this browser, or took longer than 10 minutes: {start_again}"
                )),
            )
        })?;
    let query = query.ok_or_else(|| {
        (
            "callback_query",
            ErrorPage::bad_request("the answer of the identity provider could not be read"),
        )
    })?;
    let given_state = query.state.unwrap_or_default();
    let state_ok = web
        .key
        .mac("state", &[pending.state.as_bytes()])
        .is_some_and(|m| m.verify_slice(&state_mac(web, &given_state)).is_ok());
    if !state_ok {
        return Err((
            "state",
            ErrorPage::bad_request(format!(
                "the answer of the identity provider does not belong to this login: {start_again}"
            )),
        ));
    }
    if let Some(error) = query.error {
        let code =
            if error.len() <= 64 && error.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
                error
            } else {
                "an unknown error".to_owned()
            };
        return Err((
            "idp_error",
            ErrorPage::forbidden(format!("the identity provider did not log you in ({code})")),
        ));
    }
    let code = query
        .code
        .filter(|c| !c.is_empty() && c.len() <= 2048)
        .ok_or((
            "code",
            ErrorPage::bad_request("the identity provider sent no login code"),
        ))?;
    let endpoints = idp_endpoints(state, client)
        .await
        .map_err(|e| ("idp_unavailable", e))?;
    let id_token = exchange_code(client, &endpoints.token, &code, &pending.verifier).await?;
    let idps = state.idps.as_ref().ok_or((
        "idp_unavailable",
        ErrorPage::new(
            StatusCode::BAD_GATEWAY,
            "the identity provider is not usable",
        ),
    ))?;
    let (identity, claims) = idps
        .validate_for_client(&id_token, now, &client.config.client_id)
        .await
        .map_err(|e| {
            tracing::info!(error = %e, "login: ID token refused");
            (
                "id_token",
                ErrorPage::forbidden(
                    "the identity provider's answer could not be verified; nothing was granted",
                ),
            )
        })?;
    if identity.issuer != client.config.issuer {
        return Err((
            "issuer",
            ErrorPage::forbidden(
                "the login came from another identity provider; nothing was granted",
            ),
        ));
    }
    let nonce_ok = claims
        .get("nonce")
        .and_then(|n| n.as_str())
        .is_some_and(|n| {
            web.key
                .mac("nonce", &[pending.nonce.as_bytes()])
                .is_some_and(|m| m.verify_slice(&nonce_mac(web, n)).is_ok())
        });
    if !nonce_ok {
        return Err((
            "nonce",
            ErrorPage::forbidden(
                "the identity provider's answer was not made for this login; nothing was granted",
            ),
        ));
    }
    let person = Person::parse(&identity.issuer, &identity.subject).map_err(|_| {
        (
            "person",
            ErrorPage::forbidden("the identity provider named no valid person"),
        )
    })?;
    let ttl = chrono::Duration::seconds(web.session_ttl.as_secs() as i64);
    let session = Session::new(person, identity.groups, now + ttl);
    let cookie = web.session_cookie(&session, now).map_err(|_| {
        (
            "session_size",
            ErrorPage::forbidden(
                "your identity (subject and groups) is too large for a session cookie",
            ),
        )
    })?;
    tracing::info!(person = %session.person, "logged in");
    let mut r = see_other(&pending.return_to);
    let h = r.headers_mut();
    h.append(header::SET_COOKIE, cookie);
    if let Some(clear) = web.cookies.clear(&name) {
        h.append(header::SET_COOKIE, clear);
    }
    Ok(r)
}

/// The MAC of a state value, to compare in constant time.
fn state_mac(web: &Web, s: &str) -> Vec<u8> {
    web.key
        .mac("state", &[s.as_bytes()])
        .map(|m| m.finalize().into_bytes().to_vec())
        .unwrap_or_default()
}

fn nonce_mac(web: &Web, s: &str) -> Vec<u8> {
    web.key
        .mac("nonce", &[s.as_bytes()])
        .map(|m| m.finalize().into_bytes().to_vec())
        .unwrap_or_default()
}

/// `POST /logout` (CSRF purpose `logout`).
pub async fn logout(
    State(state): State<AppState>,
    LoggedIn(session): LoggedIn,
    headers: HeaderMap,
    form: Form,
) -> Response {
    let web = match web(&state) {
        Ok(w) => w,
        Err(e) => return e.into_response(),
    };
    if let Err(e) = web.check_post(&headers, &session, "logout", &form) {
        refused(&state, "csrf");
        return e.into_response();
    }
    let mut r = page(
        "Signed out",
        html(
            "<h1>Signed out</h1><p>You are signed out of Tessera.</p>\
             <p><a class=\"button\" href=\"/login\">Sign in again</a></p>",
            &[],
        ),
    );
    if let Some(clear) = web.clear_session_cookie() {
        r.headers_mut().append(header::SET_COOKIE, clear);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_to_accepts_only_paths_of_this_site() {
        for ok in [
            "/me",
            "/approvals/1?x=%20y",
            "/",
            "/a/b#frag",
            "/oauth/authorize?client_id=https%3A%2F%2Fc.example%2Fm.json&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb",
        ] {
            assert_eq!(safe_return_to(ok), Some(ok), "{ok}");
        }
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "https://evil.example",
            "javascript:alert(1)",
            "%2F%2Fevil",
            "/%2F%2Fevil",
            "/%5cevil",
            "/a%2F%2Fevil?x=1",
            "/%5C%5Cevil?redirect_uri=https%3A%2F%2Fx",
            "/a b",
            "/a\tb",
            "/é",
            "me",
            "",
        ] {
            assert_eq!(safe_return_to(bad), None, "{bad}");
        }
        assert_eq!(
            safe_return_to(&format!("/{}", "a".repeat(MAX_RETURN_TO))),
            None
        );
    }
}
