//! The `[web]` and `[login]` settings.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::people::IdpConfig;
use crate::server::config::Ttl;

/// `[web]`: the cookies of the web pages.
///
/// ```toml
/// [web]
/// cookie_key_file = "/var/lib/tessera/web-cookie.key"
/// session_ttl = "1h"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// The key that signs cookies and CSRF tokens: 32 random bytes as 64
    /// hex digits, created (mode 0600) on first start when absent. Several
    /// issuers behind one name must share it. Default:
    /// `<data_dir>/web-cookie.key`.
    pub cookie_key_file: Option<PathBuf>,
    /// How long a login lasts (1m..=12h).
    pub session_ttl: Ttl,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            cookie_key_file: None,
            session_ttl: Ttl(Duration::from_secs(3600)),
        }
    }
}

/// Longest `session_ttl`.
pub const MAX_SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

/// Why `[web]` or `[login]` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WebConfigError(pub String);

impl WebConfig {
    /// Checks the values serde cannot.
    pub fn check(&self) -> Result<(), WebConfigError> {
        let t = self.session_ttl.0;
        if t < Duration::from_secs(60) || t > MAX_SESSION_TTL {
            return Err(WebConfigError(
                "[web] session_ttl must be between 1m and 12h".into(),
            ));
        }
        Ok(())
    }

    /// The cookie key file: `cookie_key_file`, or `<data_dir>/web-cookie.key`.
    pub fn key_file(&self, data_dir: &std::path::Path) -> PathBuf {
        self.cookie_key_file
            .clone()
            .unwrap_or_else(|| data_dir.join("web-cookie.key"))
    }
}

/// How Tessera authenticates at the IdP's token endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// `client_id` and `client_secret` in the form body.
    #[default]
    ClientSecretPost,
    /// HTTP Basic with `client_id` and `client_secret`.
    ClientSecretBasic,
}

/// `[login]`: people log in to Tessera's pages at one trusted IdP, Tessera
/// being an OpenID Connect relying party (authorization code with PKCE).
///
/// ```toml
/// [login]
/// issuer = "https://login.acme.example"   # one of the [[idp]] issuers
/// client_id = "tessera"
/// client_secret_file = "/etc/tessera/login-client-secret"
/// scope = "openid groups"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginConfig {
    /// The IdP: one of the `[[idp]]` issuers (its keys and clock skew apply).
    pub issuer: String,
    /// Tessera's client id at that IdP (the ID tokens' audience).
    pub client_id: String,
    /// A file holding the client secret (surrounding whitespace ignored;
    /// never logged).
    pub client_secret_file: PathBuf,
    /// The scopes asked for; must include `openid`. Ask for the one that
    /// releases the groups claim too, if the IdP needs it.
    #[serde(default = "default_scope")]
    pub scope: String,
    /// How to authenticate at the token endpoint.
    #[serde(default)]
    pub client_auth: ClientAuth,
}

fn default_scope() -> String {
    "openid".into()
}

impl LoginConfig {
    /// Checks the values serde cannot, against the trusted IdPs.
    pub fn check(&self, idps: &[IdpConfig]) -> Result<(), WebConfigError> {
        if !idps.iter().any(|i| i.issuer == self.issuer) {
            return Err(WebConfigError(format!(
                "[login] issuer `{}` is not one of the [[idp]] issuers",
                self.issuer
            )));
        }
        if self.client_id.is_empty() || self.client_id.len() > 255 {
            return Err(WebConfigError(
                "[login] client_id must be 1 to 255 bytes".into(),
            ));
        }
        if !self.scope.split(' ').any(|s| s == "openid")
            || self.scope.chars().any(|c| c.is_control())
        {
            return Err(WebConfigError(
                "[login] scope must be space-separated and include `openid`".into(),
            ));
        }
        Ok(())
    }
}
