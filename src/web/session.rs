//! The session of a person logged in through `[login]`: a signed,
//! expiring cookie ([`super::SESSION_COOKIE`]) holding a fresh random id,
//! the person and their groups. [`LoggedIn`] extracts it; without one, a
//! GET is sent to `/login?return_to=<this page>` and a POST is refused.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::cookie::{self, CookieError};
use super::page::{see_other, ErrorPage};
use super::{refused, web, Web, SESSION_COOKIE};
use crate::people::Rights;
use crate::server::AppState;
use crate::store::StoreError;
use crate::token::Person;

/// A logged-in person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// A random id, new at every login (CSRF tokens are bound to it).
    pub id: String,
    /// Who: the IdP's issuer and their subject there.
    pub person: Person,
    /// Their groups, from the IdP's groups claim at login.
    pub groups: Vec<String>,
    /// When the session ends.
    pub expires: DateTime<Utc>,
}

#[derive(Serialize, Deserialize)]
struct Wire {
    sid: String,
    iss: String,
    sub: String,
    groups: Vec<String>,
}

impl Session {
    /// A new session (a fresh random id) for `person` until `expires`.
    pub fn new(person: Person, groups: Vec<String>, expires: DateTime<Utc>) -> Self {
        Self {
            id: URL_SAFE_NO_PAD.encode(rand::random::<[u8; 18]>()),
            person,
            groups,
            expires,
        }
    }
}

impl Web {
    /// The session cookie's full name.
    pub fn session_cookie_name(&self) -> String {
        self.cookies.name(SESSION_COOKIE)
    }

    /// The session of the request, if its cookie is valid at `now` and
    /// names a person of the IdP `[login]` trusts now.
    pub fn session(&self, headers: &HeaderMap, now: DateTime<Utc>) -> Option<Session> {
        let name = self.session_cookie_name();
        let text = cookie::read(headers, &name)?;
        self.open_session(text, now).ok()
    }

    /// Opens a session cookie value.
    pub fn open_session(&self, text: &str, now: DateTime<Utc>) -> Result<Session, CookieError> {
        let name = self.session_cookie_name();
        let (wire, exp): (Wire, i64) = self.key.open(&name, text, now)?;
        let person = Person::parse(&wire.iss, &wire.sub).map_err(|_| CookieError::Malformed)?;
        if self.login_issuer() != Some(person.issuer()) {
            return Err(CookieError::Malformed);
        }
        let expires = DateTime::from_timestamp(exp, 0).ok_or(CookieError::Malformed)?;
        Ok(Session {
            id: wire.sid,
            person,
            groups: wire.groups,
            expires,
        })
    }

    /// The `Set-Cookie` value that stores `session`.
    pub fn session_cookie(
        &self,
        session: &Session,
        now: DateTime<Utc>,
    ) -> Result<HeaderValue, CookieError> {
        let name = self.session_cookie_name();
        let wire = Wire {
            sid: session.id.clone(),
            iss: session.person.issuer().to_owned(),
            sub: session.person.subject().to_owned(),
            groups: session.groups.clone(),
        };
        let value = self
            .key
            .seal(&name, &(wire, session.expires.timestamp()), session.expires)?;
        let max_age = (session.expires - now).num_seconds().max(0);
        self.cookies
            .set(&name, &value, max_age)
            .ok_or(CookieError::Malformed)
    }

    /// The `Set-Cookie` value that ends the session.
    pub fn clear_session_cookie(&self) -> Option<HeaderValue> {
        self.cookies.clear(&self.session_cookie_name())
    }

    /// How long a new session lasts.
    pub fn session_ttl(&self) -> std::time::Duration {
        self.session_ttl
    }
}

/// `/login?return_to=<path and query of uri>`.
pub fn login_url(path_and_query: &str) -> String {
    let q = serde_urlencoded::to_string([("return_to", path_and_query)]).unwrap_or_default();
    format!("/login?{q}")
}

/// Extracts the [`Session`]. Without a valid one: a GET or HEAD is sent to
/// the login (and back here afterwards), anything else is refused (403).
#[derive(Debug, Clone)]
pub struct LoggedIn(pub Session);

impl FromRequestParts<AppState> for LoggedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let web = web(state).map_err(IntoResponse::into_response)?;
        if let Some(s) = web.session(&parts.headers, state.now()) {
            return Ok(Self(s));
        }
        if parts.method == Method::GET || parts.method == Method::HEAD {
            let here = parts
                .uri
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_owned();
            return Err(see_other(&login_url(&here)));
        }
        refused(state, "no_session");
        Err(ErrorPage::forbidden(
            "you are not logged in (or your session has ended); nothing was done",
        )
        .into_response())
    }
}

/// The person's rights: the roles their groups map to and the roles given
/// to them explicitly (`tessera person grant`), as the token exchange
/// computes them ([`Rights::of`]).
pub async fn rights(state: &AppState, session: &Session) -> Result<Rights, StoreError> {
    let explicit = state.stores.people.roles(&session.person).await?;
    Ok(Rights::of(&state.config.role, &session.groups, &explicit))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::CookieKey;

    #[test]
    fn a_session_cookie_opens_only_for_the_login_issuer_and_until_it_expires() {
        let key = CookieKey::random();
        let web = |issuer: &str| {
            let login = crate::web::login::LoginClient::for_tests(issuer);
            Web::with_key(
                key.clone(),
                "http://127.0.0.1:1",
                std::time::Duration::from_secs(60),
                Some(login),
            )
        };
        let a = web("https://idp-a.example");
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let s = Session::new(
            Person::parse("https://idp-a.example", "alice").unwrap(),
            vec!["staff".into()],
            t0 + chrono::Duration::seconds(60),
        );
        let set = a.session_cookie(&s, t0).unwrap();
        let set = set.to_str().unwrap();
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Lax"),
            "{set}"
        );
        let value = set
            .strip_prefix("tessera-session=")
            .unwrap()
            .split(';')
            .next()
            .unwrap();
        assert_eq!(a.open_session(value, t0).unwrap(), s);
        assert!(a
            .open_session(value, t0 + chrono::Duration::seconds(60))
            .is_err());
        let b = web("https://idp-b.example");
        assert!(b.open_session(value, t0).is_err(), "another IdP's session");
        assert_ne!(Session::new(s.person.clone(), vec![], s.expires).id, s.id);
    }

    #[test]
    fn the_login_url_carries_the_page_to_come_back_to() {
        assert_eq!(login_url("/me?a=1&b"), "/login?return_to=%2Fme%3Fa%3D1%26b");
    }
}
