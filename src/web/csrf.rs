//! CSRF tokens: an HMAC of the session id and the form's purpose, in a
//! hidden field named [`FIELD`], checked (in constant time) on every POST,
//! with the request's `Origin` and `Sec-Fetch-Site` when the browser sends
//! them. A refusal is a 403 page.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::Mac;

use super::page::{html, ErrorPage, Markup};
use super::session::Session;
use super::Web;

/// The name of the hidden field.
pub const FIELD: &str = "csrf";

/// Most fields a form of the web pages may have.
pub const MAX_FIELDS: usize = 64;

/// A posted `application/x-www-form-urlencoded` form (at most
/// [`MAX_FIELDS`] fields; the body size is bounded by `max_body_bytes`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form(pub Vec<(String, String)>);

impl Form {
    /// Parses a form body.
    pub fn parse(body: &[u8]) -> Result<Self, ErrorPage> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
            .map_err(|_| ErrorPage::bad_request("the form could not be read"))?;
        if pairs.len() > MAX_FIELDS {
            return Err(ErrorPage::bad_request("the form has too many fields"));
        }
        Ok(Self(pairs))
    }

    /// The value of field `name` when it is sent exactly once.
    pub fn one(&self, name: &str) -> Option<&str> {
        let mut values = self.0.iter().filter(|(k, _)| k == name);
        match (values.next(), values.next()) {
            (Some((_, v)), None) => Some(v),
            _ => None,
        }
    }
}

impl<S: Send + Sync> FromRequest<S> for Form {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let body = Bytes::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        Self::parse(&body).map_err(IntoResponse::into_response)
    }
}

impl Web {
    /// The CSRF token of `session` for forms of `purpose` (`logout`, ...).
    pub fn csrf_token(&self, session: &Session, purpose: &str) -> String {
        self.key
            .mac("csrf", &[session.id.as_bytes(), purpose.as_bytes()])
            .map(|m| URL_SAFE_NO_PAD.encode(m.finalize().into_bytes()))
            .unwrap_or_default()
    }

    /// The hidden field carrying [`csrf_token`](Self::csrf_token).
    pub fn csrf_field(&self, session: &Session, purpose: &str) -> Markup {
        html(
            "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
            &[&self.csrf_token(session, purpose)],
        )
    }

    /// Checks a POST of a form of `purpose`: the Origin and Sec-Fetch-Site
    /// headers (when sent) name this origin, and the form's [`FIELD`] is
    /// the token of `session` and `purpose`.
    pub fn check_post(
        &self,
        headers: &HeaderMap,
        session: &Session,
        purpose: &str,
        form: &Form,
    ) -> Result<(), ErrorPage> {
        if !self.same_origin(headers) {
            return Err(ErrorPage::forbidden(
                "this form was sent from another site; nothing was done",
            ));
        }
        let refused = || {
            ErrorPage::forbidden(
                "this form has expired or was not made by this site; reload the page and try again",
            )
        };
        let given = form.one(FIELD).ok_or_else(refused)?;
        let given = URL_SAFE_NO_PAD.decode(given).map_err(|_| refused())?;
        self.key
            .mac("csrf", &[session.id.as_bytes(), purpose.as_bytes()])
            .ok_or_else(refused)?
            .verify_slice(&given)
            .map_err(|_| refused())
    }

    /// Whether the request comes from this origin, as far as the browser
    /// says: `Sec-Fetch-Site` (when sent) must be `same-origin`, and
    /// `Origin` (when sent) this issuer's origin. `Origin: null` (what a
    /// browser sends on a POST from a page with `Referrer-Policy:
    /// no-referrer`, as all of ours) is accepted only with `Sec-Fetch-Site:
    /// same-origin`. Requests without either header (not a browser) rely
    /// on the CSRF token alone.
    pub fn same_origin(&self, headers: &HeaderMap) -> bool {
        let site = headers.get("sec-fetch-site").map(|s| s.to_str().ok());
        let site_ok = match site {
            None => true,
            Some(s) => s == Some("same-origin"),
        };
        let origin_ok = match headers.get(axum::http::header::ORIGIN) {
            None => true,
            Some(o) => match o.to_str() {
                Ok("null") => site == Some(Some("same-origin")),
                Ok(o) => o == self.origin,
                Err(_) => false,
            },
        };
        origin_ok && site_ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::Person;
    use axum::http::HeaderValue;

    fn session(id: &str) -> Session {
        Session {
            id: id.into(),
            person: Person::parse("https://idp.example", "alice").unwrap(),
            groups: vec![],
            expires: chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
        }
    }

    #[test]
    fn the_token_is_bound_to_the_session_and_the_purpose() {
        let web = Web::with_key(
            super::super::CookieKey::random(),
            "https://t.example",
            std::time::Duration::from_secs(3600),
            None,
        );
        let s = session("s1");
        let token = web.csrf_token(&s, "logout");
        let form = |t: &str| Form(vec![("csrf".into(), t.into())]);
        let h = HeaderMap::new();
        assert!(web.check_post(&h, &s, "logout", &form(&token)).is_ok());
        assert!(web
            .check_post(&h, &session("s2"), "logout", &form(&token))
            .is_err());
        assert!(web.check_post(&h, &s, "approve", &form(&token)).is_err());
        assert!(web.check_post(&h, &s, "logout", &Form::default()).is_err());
        let twice = Form(vec![
            ("csrf".into(), token.clone()),
            ("csrf".into(), token.clone()),
        ]);
        assert!(web.check_post(&h, &s, "logout", &twice).is_err());
        let mut cross = HeaderMap::new();
        cross.insert("origin", HeaderValue::from_static("https://evil.example"));
        assert!(web.check_post(&cross, &s, "logout", &form(&token)).is_err());
        let mut same = HeaderMap::new();
        same.insert("origin", HeaderValue::from_static("https://t.example"));
        same.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(web.check_post(&same, &s, "logout", &form(&token)).is_ok());
        same.insert("sec-fetch-site", HeaderValue::from_static("same-site"));
        assert!(web.check_post(&same, &s, "logout", &form(&token)).is_err());
        let mut null = HeaderMap::new();
        null.insert("origin", HeaderValue::from_static("null"));
        assert!(web.check_post(&null, &s, "logout", &form(&token)).is_err());
        null.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(web.check_post(&null, &s, "logout", &form(&token)).is_ok());
    }
}
