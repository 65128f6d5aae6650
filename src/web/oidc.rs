//! The relying party's side of the IdP: Tessera's client there (its
//! configuration, secret and HTTP client) and the code exchange at the
//! IdP's token endpoint.

use std::time::Duration;

use axum::http::StatusCode;
use serde::Deserialize;

use super::config::{ClientAuth, LoginConfig};
use super::page::ErrorPage;
use super::WebSetupError;

/// Largest token endpoint answer read, bytes.
const MAX_TOKEN_RESPONSE: usize = 64 * 1024;

/// A refusal of the callback: the metric's reason and the page shown.
pub(crate) type Refusal = (&'static str, ErrorPage);

/// The relying party: its configuration, secret and HTTP client.
pub struct LoginClient {
    pub(crate) config: LoginConfig,
    pub(crate) secret: String,
    pub(crate) http: reqwest::Client,
    pub(crate) redirect_uri: String,
}

impl std::fmt::Debug for LoginClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginClient")
            .field("issuer", &self.config.issuer)
            .field("client_id", &self.config.client_id)
            .finish_non_exhaustive()
    }
}

impl LoginClient {
    /// Reads the client secret; `issuer` is Tessera's own URL (the
    /// redirect URI is `<issuer>/login/callback`).
    pub fn new(config: LoginConfig, issuer: &str) -> Result<Self, WebSetupError> {
        let file = config.client_secret_file.display().to_string();
        let secret = std::fs::read_to_string(&config.client_secret_file)
            .map_err(|_| WebSetupError::Secret(file.clone()))?
            .trim()
            .to_owned();
        if secret.is_empty() {
            return Err(WebSetupError::Secret(file));
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .connect_timeout(Duration::from_secs(2))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|_| WebSetupError::Http)?;
        Ok(Self {
            config,
            secret,
            http,
            redirect_uri: format!("{issuer}/login/callback"),
        })
    }

    #[cfg(test)]
    pub(crate) fn for_tests(issuer: &str) -> Self {
        Self {
            config: LoginConfig {
                issuer: issuer.into(),
                client_id: "tessera".into(),
                client_secret_file: "/nonexistent".into(),
                scope: "openid".into(),
                client_auth: ClientAuth::ClientSecretPost,
            },
            secret: "s".into(),
            http: reqwest::Client::new(),
            redirect_uri: "http://127.0.0.1:1/login/callback".into(),
        }
    }
}

/// Exchanges `code` at the token endpoint; the ID token.
pub(crate) async fn exchange_code(
    client: &LoginClient,
    token_endpoint: &str,
    code: &str,
    verifier: &str,
) -> Result<String, Refusal> {
    let unreachable = || {
        (
            "token_endpoint",
            ErrorPage::new(
                StatusCode::BAD_GATEWAY,
                "the identity provider cannot be reached; try again later",
            ),
        )
    };
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", client.redirect_uri.as_str()),
        ("code_verifier", verifier),
    ];
    let mut request = client.http.post(token_endpoint);
    match client.config.client_auth {
        ClientAuth::ClientSecretPost => {
            form.push(("client_id", client.config.client_id.as_str()));
            form.push(("client_secret", client.secret.as_str()));
        }
        ClientAuth::ClientSecretBasic => {
            request = request.basic_auth(
                form_encode(&client.config.client_id),
                Some(form_encode(&client.secret)),
            );
        }
    }
    let mut resp = request
        .form(&form)
        .send()
        .await
        .map_err(|_| unreachable())?;
    let status = resp.status();
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|_| unreachable())? {
        if body.len() + chunk.len() > MAX_TOKEN_RESPONSE {
            return Err(unreachable());
        }
        body.extend_from_slice(&chunk);
    }
    if status.is_client_error() {
        return Err((
            "code_refused",
            ErrorPage::bad_request(
                "the identity provider refused the login code (it may have been used already): start again",
            ),
        ));
    }
    if !status.is_success() {
        return Err(unreachable());
    }
    #[derive(Deserialize)]
    struct TokenResponse {
        id_token: Option<String>,
    }
    serde_json::from_slice::<TokenResponse>(&body)
        .ok()
        .and_then(|t| t.id_token)
        .ok_or_else(|| {
            (
                "no_id_token",
                ErrorPage::new(
                    StatusCode::BAD_GATEWAY,
                    "the identity provider sent no ID token",
                ),
            )
        })
}

/// RFC 6749 §2.3.1: client id and secret are form-encoded before Basic.
fn form_encode(s: &str) -> String {
    serde_urlencoded::to_string([("", s)])
        .map(|e| e.trim_start_matches('=').to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_encoded() {
        assert_eq!(form_encode("a b:c"), "a+b%3Ac");
    }
}
