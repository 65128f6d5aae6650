//! One error type for every handler, mapped to an HTTP response.
//!
//! Bad input: 400 with an OAuth error code. Unauthenticated: 401 with
//! `WWW-Authenticate`. Denied: 403. Store unavailable: 503. Anything else:
//! 500 with an opaque body; the cause goes to the log only.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::store::StoreError;
use crate::token::challenge;

/// Longest `error_description` an answer carries, in characters. Descriptions
/// may quote what the caller sent; whatever it sent, the answer stays small.
pub const MAX_DESCRIPTION_CHARS: usize = 200;

/// `text` made safe to echo into an answer, a log line or an audit event:
/// control characters become `?`, and beyond `max` characters it is cut and
/// ends with `…`.
pub fn bounded(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max.saturating_mul(4)));
    for (n, c) in text.chars().enumerate() {
        if n == max {
            out.push('…');
            break;
        }
        out.push(if c.is_control() { '?' } else { c });
    }
    out
}

/// What the caller sent, quoted for a description: at most 32 characters
/// of it, control characters replaced (see [`bounded`]).
pub fn quoted(text: &str) -> String {
    format!("`{}`", bounded(text, 32))
}

/// An OAuth error code (RFC 6749 §5.2 and extensions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuthCode {
    /// `invalid_request`.
    InvalidRequest,
    /// `invalid_client` (401).
    InvalidClient,
    /// `invalid_grant`.
    InvalidGrant,
    /// `invalid_scope`.
    InvalidScope,
    /// `unsupported_grant_type`.
    UnsupportedGrantType,
    /// `unauthorized_client`.
    UnauthorizedClient,
    /// `invalid_authorization_details` (RFC 9396).
    InvalidAuthorizationDetails,
    /// `invalid_dpop_proof` (RFC 9449).
    InvalidDpopProof,
    /// `unsupported_token_type` (RFC 7009).
    UnsupportedTokenType,
    /// `authorization_pending` (OpenID CIBA Core, token endpoint).
    AuthorizationPending,
    /// `slow_down` (CIBA: polled sooner than the interval).
    SlowDown,
    /// `expired_token` (CIBA: the request expired).
    ExpiredToken,
    /// `access_denied` (CIBA: the person denied, or approval is needed).
    AccessDenied,
    /// `unknown_user_id` (CIBA backchannel request).
    UnknownUserId,
    /// `invalid_binding_message` (CIBA backchannel request).
    InvalidBindingMessage,
}

impl OAuthCode {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::InvalidScope => "invalid_scope",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::InvalidAuthorizationDetails => "invalid_authorization_details",
            Self::InvalidDpopProof => "invalid_dpop_proof",
            Self::UnsupportedTokenType => "unsupported_token_type",
            Self::AuthorizationPending => "authorization_pending",
            Self::SlowDown => "slow_down",
            Self::ExpiredToken => "expired_token",
            Self::AccessDenied => "access_denied",
            Self::UnknownUserId => "unknown_user_id",
            Self::InvalidBindingMessage => "invalid_binding_message",
        }
    }
}

/// What went wrong in a handler.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// An OAuth error with a one-line description.
    #[error("{}: {description}", code.as_str())]
    OAuth {
        /// The code.
        code: OAuthCode,
        /// What exactly was wrong.
        description: String,
    },
    /// The admin token is missing or invalid.
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// The admin token does not allow this.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// No such resource.
    #[error("not found: {0}")]
    NotFound(String),
    /// The store is unavailable: nothing was acknowledged.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A bug or an unexpected failure.
    #[error("internal: {0}")]
    Internal(String),
}

impl ApiError {
    /// An OAuth error.
    pub fn oauth(code: OAuthCode, description: impl Into<String>) -> Self {
        Self::OAuth {
            code,
            description: bounded(&description.into(), MAX_DESCRIPTION_CHARS),
        }
    }

    /// `invalid_request`.
    pub fn bad_request(description: impl Into<String>) -> Self {
        Self::oauth(OAuthCode::InvalidRequest, description)
    }

    /// A short label for metrics and audit.
    ///
    /// A list of its own, not [`crate::token::Reason`]'s codes: these label
    /// answers of the issuer's own API (a bad OAuth request, by its OAuth
    /// code from [`OAuthCode::as_str`], the one table of those; an admin
    /// call without a valid admin token; a missing record; a store outage),
    /// most of which involve no token at all. Where a token was refused
    /// (the admin token), the handler keeps the token's reason in the
    /// description and maps it here by its [`crate::token::Reason::status`].
    pub fn reason(&self) -> &'static str {
        match self {
            Self::OAuth { code, .. } => code.as_str(),
            Self::Unauthenticated(_) => "unauthenticated",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal",
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => Self::Unavailable(m),
            StoreError::InvalidCursor(c) => Self::bad_request(format!("invalid cursor {c:?}")),
            StoreError::Limit(m) => Self::bad_request(m),
            other => Self::Internal(other.to_string()),
        }
    }
}

fn no_store(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    r
}

/// Adds `WWW-Authenticate: Bearer realm="tessera", error="<code>"`, built
/// as the verifier builds its challenges ([`challenge`]).
fn bearer_challenge(r: &mut Response, code: &str) {
    let value = challenge("Bearer", &[("realm", "tessera"), ("error", code)]);
    if let Ok(v) = HeaderValue::from_str(&value) {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let short = |d: String| bounded(&d, MAX_DESCRIPTION_CHARS);
        match self {
            Self::OAuth { code, description } => {
                let description = short(description);
                let status = if code == OAuthCode::InvalidClient {
                    StatusCode::UNAUTHORIZED
                } else {
                    StatusCode::BAD_REQUEST
                };
                let mut r = (
                    status,
                    Json(json!({ "error": code.as_str(), "error_description": description })),
                )
                    .into_response();
                if status == StatusCode::UNAUTHORIZED {
                    bearer_challenge(&mut r, code.as_str());
                }
                no_store(r)
            }
            Self::Unauthenticated(d) => {
                let d = short(d);
                let mut r = (
                    StatusCode::UNAUTHORIZED,
                    Json(json!({ "error": "invalid_token", "error_description": d })),
                )
                    .into_response();
                bearer_challenge(&mut r, "invalid_token");
                r
            }
            Self::Forbidden(d) => (
                StatusCode::FORBIDDEN,
                Json(json!({ "error": "insufficient_scope", "error_description": short(d) })),
            )
                .into_response(),
            Self::NotFound(d) => (
                StatusCode::NOT_FOUND,
                Json(json!({ "error": "not_found", "error_description": short(d) })),
            )
                .into_response(),
            Self::Unavailable(cause) => {
                let cause = short(cause);
                tracing::warn!(%cause, "store unavailable");
                let mut r = (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Json(json!({
                        "error": "temporarily_unavailable",
                        "error_description": "the store is unavailable; nothing was recorded, retry later"
                    })),
                )
                    .into_response();
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                no_store(r)
            }
            Self::Internal(cause) => {
                let cause = short(cause);
                tracing::error!(%cause, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Json(json!({ "error": "server_error" })),
                )
                    .into_response()
            }
        }
    }
}
