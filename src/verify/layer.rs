//! An axum/tower layer that checks every request with a [`Verifier`], and
//! extractors for what it found.
//!
//! The layer reads `Authorization: Bearer <token>` or `Authorization: DPoP
//! <token>` with the `DPoP` header, refuses oversized headers before parsing
//! them, and maps the request to a [`Scope`] with a closure. A `DPoP`
//! header counts only with the DPoP scheme (RFC 9449 §7.1): a DPoP-bound
//! token sent as `Bearer` is refused.
//! - [`Scope::Check`]: the whole check runs in the layer and the handler
//!   receives the [`Grant`];
//! - [`Scope::Deferred`]: everything that does not depend on the operation
//!   is checked in the layer (revocations current, signatures and chain,
//!   revocation, expiry, audience, the holder's DPoP proof), so a refused
//!   token never reaches the handler; the handler, which learns the
//!   operation from the body (an MCP tool call), receives [`Authenticated`]
//!   and calls [`Verifier::authorize`];
//! - [`Scope::Public`]: no token needed (metadata documents).
//!
//! Refusals: 401 with `WWW-Authenticate` (`error=`, `error_description=`,
//! `resource_metadata=` per RFC 9728 §5.1), 403 with
//! `error="insufficient_scope"`, 503 with `Retry-After` when revocations are
//! stale. The body is `{"error": …, "error_description": …}`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use tower::{Layer, Service};

use super::{Authenticated, CheckRequest, Grant, Presentation, Reason, Rejection, Verifier};
use crate::token;

/// What a request needs, as decided by the layer's mapping closure.
#[derive(Debug, Clone)]
pub enum Scope {
    /// Check the token for this operation on this resource.
    Check(CheckRequest),
    /// Check the token and proof now; the handler decides the scope.
    Deferred,
    /// No token needed.
    Public,
    /// The request cannot be mapped (for example a path that names no
    /// valid resource): refused as out of scope.
    Refuse(String),
}

/// The path of the protected-resource metadata document (RFC 9728 §3).
pub const RESOURCE_METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

/// Most bytes of a `DPoP` header.
const MAX_DPOP_HEADER: usize = 8 * 1024;

type MapFn = dyn Fn(&Parts) -> Scope + Send + Sync;

/// The layer; see the module documentation.
#[derive(Clone)]
pub struct VerifyLayer {
    verifier: Verifier,
    map: Arc<MapFn>,
    base_url: Arc<str>,
    resource_metadata: Arc<str>,
}

impl std::fmt::Debug for VerifyLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyLayer")
            .field("verifier", &self.verifier)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// `scheme://authority` of an absolute URI.
fn origin(uri: &str) -> &str {
    match uri.split_once("://") {
        Some((scheme, rest)) => {
            let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            &uri[..scheme.len() + 3 + end]
        }
        None => uri,
    }
}

impl VerifyLayer {
    /// A layer checking requests with `verifier`, mapped by `map`. The
    /// public base URL (for DPoP `htu` and the metadata URL) defaults to the
    /// origin of the verifier's service URI.
    pub fn new(verifier: Verifier, map: impl Fn(&Parts) -> Scope + Send + Sync + 'static) -> Self {
        let base = origin(verifier.service()).to_owned();
        let metadata = format!("{base}{RESOURCE_METADATA_PATH}");
        Self {
            verifier,
            map: Arc::new(map),
            base_url: base.into(),
            resource_metadata: metadata.into(),
        }
    }

    /// The URL clients use to reach this server (`https://host[:port]`),
    /// when it differs from the service URI's origin (behind a proxy).
    pub fn base_url(mut self, base: &str) -> Self {
        let base = base.trim_end_matches('/');
        self.resource_metadata = format!("{base}{RESOURCE_METADATA_PATH}").into();
        self.base_url = base.into();
        self
    }
}

impl<S> Layer<S> for VerifyLayer {
    type Service = VerifyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        VerifyService {
            layer: self.clone(),
            inner,
        }
    }
}

/// The service the layer wraps around a handler.
#[derive(Clone, Debug)]
pub struct VerifyService<S> {
    layer: VerifyLayer,
    inner: S,
}

impl<S> Service<Request<Body>> for VerifyService<S>
where
    S: Service<Request<Body>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            match layer.decide(&mut parts).await {
                Ok(()) => inner.call(Request::from_parts(parts, body)).await,
                Err((rejection, scheme)) => Ok(rejection_response(
                    &rejection,
                    scheme,
                    &layer.resource_metadata,
                    None,
                )),
            }
        })
    }
}

/// The authorization scheme a client used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Bearer,
    Dpop,
}

impl VerifyLayer {
    async fn decide(&self, parts: &mut Parts) -> Result<(), (Rejection, Scheme)> {
        let scope = (self.map)(parts);
        if matches!(scope, Scope::Public) {
            return Ok(());
        }
        let (scheme, token) = credentials(&parts.headers, self.verifier.limits().max_token_bytes)
            .map_err(|r| (r, Scheme::Bearer))?;
        let fail = |r: Rejection| (r, scheme);
        let dpop = match parts.headers.get_all("dpop").iter().collect::<Vec<_>>()[..] {
            [] => None,
            [one] if one.len() <= MAX_DPOP_HEADER => Some(one.to_str().map_err(|_| {
                fail(Rejection::new(
                    Reason::InvalidDpop,
                    "the DPoP header is not ASCII",
                ))
            })?),
            [_] => {
                return Err(fail(Rejection::new(
                    Reason::InvalidDpop,
                    "the DPoP header is too large",
                )))
            }
            _ => {
                return Err(fail(Rejection::new(
                    Reason::InvalidDpop,
                    "more than one DPoP header",
                )))
            }
        };
        if scheme == Scheme::Dpop && dpop.is_none() {
            return Err(fail(Rejection::new(
                Reason::InvalidDpop,
                "the DPoP scheme needs a DPoP proof header",
            )));
        }
        // RFC 9449 §7.1: a proof counts only with the DPoP scheme. Under
        // Bearer a DPoP header proves nothing, so a bound token sent that
        // way is refused (its holder is not proven) and a bearer token is
        // what it is.
        let stray_proof = scheme == Scheme::Bearer && dpop.is_some();
        let fail = |r: Rejection| {
            if stray_proof && r.reason == Reason::HolderNotProven {
                let detail = format!(
                    "{}; a DPoP-bound token must be sent with the DPoP scheme, not Bearer (RFC 9449 §7.1)",
                    r.detail
                );
                (Rejection::new(r.reason, detail), scheme)
            } else {
                (r, scheme)
            }
        };
        let url = format!("{}{}", self.base_url, parts.uri.path());
        let presentation = Presentation {
            token,
            dpop: if scheme == Scheme::Dpop { dpop } else { None },
            method: parts.method.as_str(),
            url: &url,
        };
        match scope {
            Scope::Public => Ok(()),
            Scope::Refuse(why) => Err(fail(Rejection::new(Reason::OutOfScope, why))),
            Scope::Check(request) => {
                let grant = self
                    .verifier
                    .check(&presentation, &request)
                    .await
                    .map_err(fail)?;
                parts.extensions.insert(grant);
                Ok(())
            }
            Scope::Deferred => {
                let authenticated = self
                    .verifier
                    .authenticate(&presentation)
                    .await
                    .map_err(fail)?;
                parts.extensions.insert(authenticated);
                Ok(())
            }
        }
    }
}

/// The scheme and token of the `Authorization` header, refusing oversized
/// or repeated headers before looking inside them.
fn credentials(headers: &HeaderMap, max_token_bytes: usize) -> Result<(Scheme, &str), Rejection> {
    let max_header = max_token_bytes.div_ceil(3) * 4 + 16;
    let values: Vec<&HeaderValue> = headers.get_all(header::AUTHORIZATION).iter().collect();
    let value = match values[..] {
        [] => {
            return Err(Rejection::new(
                Reason::MissingToken,
                "no Authorization header",
            ))
        }
        [one] => one,
        _ => {
            return Err(Rejection::new(
                Reason::Malformed,
                "more than one Authorization header",
            ))
        }
    };
    if value.len() > max_header {
        return Err(Rejection::new(
            Reason::TooLarge,
            format!("the Authorization header is larger than {max_header} bytes"),
        ));
    }
    let text = value
        .to_str()
        .map_err(|_| Rejection::new(Reason::Malformed, "the Authorization header is not ASCII"))?;
    let (scheme, token) = text.split_once(' ').ok_or_else(|| {
        Rejection::new(
            Reason::Malformed,
            "expected `Bearer <token>` or `DPoP <token>`",
        )
    })?;
    let scheme = if scheme.eq_ignore_ascii_case("bearer") {
        Scheme::Bearer
    } else if scheme.eq_ignore_ascii_case("dpop") {
        Scheme::Dpop
    } else {
        return Err(Rejection::new(
            Reason::MissingToken,
            "the Authorization scheme is neither Bearer nor DPoP",
        ));
    };
    Ok((scheme, token.trim()))
}

/// The HTTP answer for a refusal: status, body and challenge all come
/// from the [`Reason`] ([`Reason::status`], [`Reason::body_error`],
/// [`Reason::error_code`]), the challenge built by [`token::challenge`].
fn rejection_response(
    rejection: &Rejection,
    scheme: Scheme,
    metadata: &str,
    scope: Option<&str>,
) -> Response {
    let reason = rejection.reason;
    let status = StatusCode::from_u16(reason.status()).unwrap_or(StatusCode::UNAUTHORIZED);
    let description = format!("{}: {}", reason, rejection.detail);
    let body = serde_json::json!({
        "error": reason.body_error(),
        "error_description": description,
    });
    let mut response = (status, axum::Json(body)).into_response();
    let headers = response.headers_mut();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return response;
    }
    let dpop = scheme == Scheme::Dpop || reason.needs_dpop_scheme();
    let mut params = Vec::with_capacity(5);
    if let Some(code) = reason.error_code() {
        params.push(("error", code));
        params.push(("error_description", description.as_str()));
    }
    if let Some(scope) = scope {
        params.push(("scope", scope));
    }
    if dpop {
        params.push(("algs", "EdDSA"));
    }
    if !metadata.is_empty() {
        params.push(("resource_metadata", metadata));
    }
    let challenge = token::challenge(if dpop { "DPoP" } else { "Bearer" }, &params);
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        headers.insert(header::WWW_AUTHENTICATE, v);
    }
    response
}

/// An RFC 9728 protected-resource metadata document for `resource` (the
/// verifier's service URI), naming the issuers that mint its tokens.
pub fn resource_metadata(resource: &str, issuers: &[&str]) -> serde_json::Value {
    serde_json::json!({
        "resource": resource,
        "authorization_servers": issuers,
        "bearer_methods_supported": ["header"],
        "dpop_signing_alg_values_supported": ["EdDSA"],
        "resource_signing_alg_values_supported": [],
    })
}

/// A handler reached without the layer: a server bug, answered 500.
#[derive(Debug)]
pub struct LayerMissing;

impl IntoResponse for LayerMissing {
    fn into_response(self) -> Response {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the verifier layer is not installed on this route",
        )
            .into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Grant {
    type Rejection = LayerMissing;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Grant>().cloned().ok_or(LayerMissing)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = LayerMissing;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Authenticated>()
            .cloned()
            .ok_or(LayerMissing)
    }
}

/// The refusal as an HTTP response, for handlers that call
/// [`Verifier::authorize`] themselves.
impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        rejection_response(&self, Scheme::Bearer, "", None)
    }
}

impl VerifyLayer {
    /// The 403 answer for a request whose token is valid but does not grant
    /// what the request needs, for a handler or middleware behind the layer
    /// that learns the operation from the body (an MCP `tools/call`):
    /// `WWW-Authenticate: Bearer error="insufficient_scope",
    /// error_description="…", scope="<scope>", resource_metadata="…"`
    /// (RFC 6750 §3.1, RFC 9728 §5.1), so that a client can ask its
    /// authorization server for a token with `scope` (step-up) and retry.
    /// `scope` is space-separated (RFC 6749 §3.3); `headers` are the
    /// request's, whose `Authorization` scheme the challenge repeats.
    pub fn insufficient_scope(&self, headers: &HeaderMap, scope: &str, detail: &str) -> Response {
        let scheme = match credentials(headers, self.verifier.limits().max_token_bytes) {
            Ok((scheme, _)) => scheme,
            Err(_) => Scheme::Bearer,
        };
        let rejection = Rejection::new(Reason::OutOfScope, detail);
        rejection_response(&rejection, scheme, &self.resource_metadata, Some(scope))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_of_uris() {
        assert_eq!(origin("https://a.example/mcp"), "https://a.example");
        assert_eq!(origin("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
        assert_eq!(origin("https://a.example?x"), "https://a.example");
    }
}
