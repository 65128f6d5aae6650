//! The web kit: server-rendered pages for people (DESIGN.md, "Web pages").
//!
//! - [`page`]: [`Markup`](page::Markup) (HTML built only from literals and
//!   escaped text), the layout, the security headers, error pages.
//! - [`cookie`]: signed, expiring cookie values and their attributes.
//! - [`csrf`]: tokens bound to the session and a purpose, checked on every
//!   POST with an Origin / Sec-Fetch-Site check.
//! - [`login`]: Tessera as an OpenID Connect relying party of the one IdP
//!   `[login]` names: `GET /login`, `GET /login/callback`, `POST /logout`.
//! - [`session`]: the [`Session`] in its signed cookie, the
//!   [`LoggedIn`] extractor and the person's [`rights`](session::rights).
//! - `GET /me`: who is signed in, and a logout button.
//! - `authorize`, `consent`, [`grant`]: `GET /oauth/authorize` (the
//!   authorization-code flow's endpoint), the consent page and its form.
//! - `consents`: `GET /consents` and `POST /consents/withdraw`.
//!
//! Nothing here keeps server-side state: the pending login and the session
//! live in signed cookies, so a stranger cannot grow memory or disk.

mod approval;
mod approval_view;
mod authorize;
pub mod config;
mod consent;
mod consents;
pub mod console;
pub mod cookie;
pub mod csrf;
pub mod grant;
pub mod login;
mod me;
pub mod oidc;
pub mod page;
pub mod session;

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::middleware;
use axum::routing::{get, post};
use axum::Router;

pub use config::{ClientAuth, LoginConfig, WebConfig};
pub use cookie::{CookieKey, CookiePolicy};
pub use csrf::Form;
pub use page::{html, page, ErrorPage, Markup};
pub use session::{rights, LoggedIn, Session};

use crate::server::{AppState, Config};

/// Base name of the session cookie (`__Host-` prefixed over https).
pub const SESSION_COOKIE: &str = "tessera-session";
/// Base name of the pending-login cookie (`__Host-` prefixed over https).
pub const LOGIN_COOKIE: &str = "tessera-login";

/// The web pages' keys and settings, built once from the configuration.
pub struct Web {
    key: CookieKey,
    cookies: CookiePolicy,
    session_ttl: Duration,
    /// `scheme://host[:port]` of the issuer URL.
    origin: String,
    login: Option<login::LoginClient>,
}

impl std::fmt::Debug for Web {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Web")
            .field("origin", &self.origin)
            .field("login", &self.login.is_some())
            .finish()
    }
}

/// Why the web pages could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum WebSetupError {
    /// The cookie key could not be read or created.
    #[error(transparent)]
    Key(#[from] cookie::CookieKeyError),
    /// The login client secret could not be read.
    #[error("[login] client_secret_file {0}: cannot be read or is empty")]
    Secret(String),
    /// The HTTP client for the IdP could not be built.
    #[error("the HTTP client for the identity provider cannot be built")]
    Http,
}

impl Web {
    /// Reads (or creates) the cookie key and the login client's secret.
    pub fn from_config(config: &Config, issuer: &str) -> Result<Self, WebSetupError> {
        let (key, created) = CookieKey::load_or_create(&config.web.key_file(&config.data_dir))?;
        if created {
            tracing::info!(
                file = %config.web.key_file(&config.data_dir).display(),
                "generated the web cookie key (issuers behind one name must share it)"
            );
        }
        let login = match &config.login {
            Some(c) => Some(login::LoginClient::new(c.clone(), issuer)?),
            None => None,
        };
        Ok(Self::with_key(key, issuer, config.web.session_ttl.0, login))
    }

    /// The web pages with this key (for tests and for [`from_config`](Self::from_config)).
    pub fn with_key(
        key: CookieKey,
        issuer: &str,
        session_ttl: Duration,
        login: Option<login::LoginClient>,
    ) -> Self {
        let origin = origin_of(issuer);
        Self {
            key,
            cookies: CookiePolicy {
                secure: issuer.starts_with("https://"),
            },
            session_ttl,
            origin,
            login,
        }
    }

    /// The cookie attributes.
    pub fn cookies(&self) -> CookiePolicy {
        self.cookies
    }

    /// The key that signs cookies and CSRF tokens.
    pub fn key(&self) -> &CookieKey {
        &self.key
    }

    /// The issuer of the one IdP people log in at, if login is configured.
    pub fn login_issuer(&self) -> Option<&str> {
        self.login.as_ref().map(|l| l.config.issuer.as_str())
    }
}

/// `scheme://authority` of `url`.
fn origin_of(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
            format!("{}://{}", scheme.to_ascii_lowercase(), authority)
        }
        None => url.to_owned(),
    }
}

/// The web pages of `state`, or a 503 page when they could not be set up.
pub fn web(state: &AppState) -> Result<&Arc<Web>, ErrorPage> {
    state.web.as_ref().ok_or_else(|| {
        ErrorPage::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the web pages are unavailable on this issuer (its log says why)",
        )
    })
}

/// Counts a refusal of the web pages (`reason` from a closed set).
pub fn refused(state: &AppState, reason: &'static str) {
    state
        .metrics
        .web_refused
        .get_or_create(&crate::server::metrics::ReasonLabel {
            reason: reason.to_owned(),
        })
        .inc();
}

/// The routes of the web pages. Every response of theirs but the
/// stylesheet carries [`page::secure_headers`].
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/login", get(login::start))
        .route("/login/callback", get(login::callback))
        .route("/logout", post(login::logout))
        .route("/me", get(me::me))
        .route(
            "/oauth/authorize",
            get(authorize::authorize).post(consent::decide),
        )
        .route("/consents", get(consents::list))
        .route("/consents/withdraw", post(consents::withdraw))
        .route("/approvals", get(approval::list))
        .route("/approvals/{id}", approval::one())
        .merge(console::routes())
        .layer(middleware::map_response(page::with_secure_headers))
        .route(page::STYLESHEET_PATH, get(page::stylesheet))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_origin_is_scheme_and_authority() {
        assert_eq!(
            origin_of("https://id.example/tessera"),
            "https://id.example"
        );
        assert_eq!(origin_of("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
    }
}
