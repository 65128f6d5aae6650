//! A metadata-document client that declares `private_key_jwt` at the
//! token and revocation endpoints: its client assertion is verified against
//! the keys its document publishes (`jwks`, or the set at `jwks_uri`,
//! fetched and cached under the same bounds and address rules as the
//! documents), and its `jti` is taken once.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::jose::AssertionRules;
use crate::server::cimd::{self, AuthMethod, CimdError};
use crate::server::error::{ApiError, OAuthCode};
use crate::server::oauth::{self, Form, JWT_BEARER, MAX_ASSERTION_SECS};
use crate::server::state::AppState;

fn invalid_client(d: impl Into<String>) -> ApiError {
    ApiError::oauth(OAuthCode::InvalidClient, d)
}

fn refused(e: &CimdError) -> ApiError {
    ApiError::oauth(
        e.oauth_error(),
        format!("the client's metadata document is refused: {e}"),
    )
}

/// The `iss` of a compact JWS, read without verifying anything: only to
/// pick whose keys will verify it. `None` when it has none or is not a JWS.
pub(super) fn unverified_iss(assertion: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Iss {
        iss: String,
    }
    if assertion.len() > crate::jose::MAX_JWS_BYTES {
        return None;
    }
    let claims = assertion.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(claims).ok()?;
    serde_json::from_slice::<Iss>(&bytes).ok().map(|c| c.iss)
}

/// Authenticates the document client `url` by the request's client
/// assertion; returns its client id (the URL).
pub(super) async fn authenticate(
    state: &AppState,
    form: &Form,
    url: &str,
    endpoint: &str,
) -> Result<String, ApiError> {
    if form.one("client_assertion_type")? != Some(JWT_BEARER) {
        return Err(invalid_client(
            "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ));
    }
    let assertion = form
        .one("client_assertion")?
        .ok_or_else(|| invalid_client("client_assertion is required"))?;
    let now = state.now();
    let doc = state
        .client_metadata
        .get(url, now)
        .await
        .map_err(|e| refused(&e))?;
    if doc.token_endpoint_auth_method != AuthMethod::PrivateKeyJwt {
        return Err(invalid_client(
            "this client's metadata document declares token_endpoint_auth_method none: \
             it is a public client and sends no client assertion",
        ));
    }
    let fetched;
    let keys = match (&doc.jwks, &doc.jwks_uri) {
        (Some(keys), _) => keys,
        (None, Some(uri)) => {
            fetched = state
                .client_metadata
                .get_jwks(uri, now)
                .await
                .map_err(|e| refused(&e))?;
            &*fetched
        }
        // The document was checked to carry exactly one of them.
        (None, None) => return Err(invalid_client("the client's document has no keys")),
    };
    let token_endpoint = state.token_endpoint();
    let audiences = [state.issuer.as_ref(), token_endpoint.as_str(), endpoint];
    let skew = state.config.clock_skew_secs;
    let rules = AssertionRules {
        audiences: &audiences,
        now,
        max_lifetime_secs: MAX_ASSERTION_SECS,
        skew_secs: skew,
    };
    let claims = cimd::verify_assertion(assertion, url, keys, &rules)
        .map_err(|e| invalid_client(format!("client assertion: {e}")))?;
    let once = oauth::assertion_once_key(url, &claims.jti, claims.exp, skew)?;
    oauth::spend_assertion(state, url, &once, now).await?;
    Ok(url.to_owned())
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;

    use super::unverified_iss;

    #[test]
    fn the_unverified_iss_is_read_only_from_a_jws_shape() {
        let claims = URL_SAFE_NO_PAD.encode(r#"{"iss":"https://app.example/c.json"}"#);
        assert_eq!(
            unverified_iss(&format!("e30.{claims}.sig")).as_deref(),
            Some("https://app.example/c.json")
        );
        assert_eq!(unverified_iss("no-dots"), None);
        assert_eq!(unverified_iss("e30.!!.x"), None);
        assert_eq!(
            unverified_iss(&format!("e30.{}.x", URL_SAFE_NO_PAD.encode("{}"))),
            None
        );
    }
}
