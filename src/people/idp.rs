//! Trusted identity providers: their configuration ([`IdpConfig`], read
//! from TOML) and [`TrustedIdps`], which fetches each one's OpenID discovery
//! document and JWKS, caches the keys and validates ID tokens with them.
//!
//! Fetching is bounded: a timeout per request, a deadline per refresh, a
//! size limit per document and a fixed number of retries. Keys are fetched
//! again on an unknown `kid` at most once per `refresh_interval`, and when
//! they are older than `max_key_age`; a failed fetch keeps the cached keys,
//! so tokens signed with known keys keep validating while the IdP is down.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::id_token::{
    shown, unverified_issuer, validate_jwt, Expect, IdTokenError, OtherClaims, PersonIdentity,
};
use super::jwk::{IdpKeys, SigningAlgorithm};

/// One trusted identity provider, as the operator configures it.
///
/// ```toml
/// [[idp]]
/// issuer = "https://login.acme.example"
/// audience = "tessera"
/// groups_claim = "groups"
/// algorithms = ["EdDSA", "ES256", "RS256"]
/// clock_skew_secs = 60
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdpConfig {
    /// The issuer URL: the `iss` of its tokens, and where
    /// `/.well-known/openid-configuration` is fetched from.
    pub issuer: String,
    /// The audience its tokens must carry for Tessera (its client id there).
    pub audience: String,
    /// The claim that lists a person's groups.
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// The signing algorithms accepted from it.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<SigningAlgorithm>,
    /// Clock skew allowed on `exp`, `nbf` and `iat`, seconds (0..=300).
    #[serde(default = "default_skew")]
    pub clock_skew_secs: u32,
}

fn default_groups_claim() -> String {
    "groups".to_owned()
}
fn default_algorithms() -> Vec<SigningAlgorithm> {
    SigningAlgorithm::ALL.to_vec()
}
fn default_skew() -> u32 {
    60
}

/// Why an IdP configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("identity provider `{issuer}`: {problem}")]
pub struct IdpConfigError {
    /// The issuer the problem is about.
    pub issuer: String,
    /// What is wrong.
    pub problem: &'static str,
}

impl IdpConfig {
    /// Checks the values serde cannot.
    pub fn check(&self) -> Result<(), IdpConfigError> {
        let bad = |problem| {
            Err(IdpConfigError {
                issuer: shown(&self.issuer),
                problem,
            })
        };
        let scheme_ok = self.issuer.starts_with("https://") || self.issuer.starts_with("http://");
        if !scheme_ok || self.issuer.ends_with('/') || self.issuer.contains(['?', '#']) {
            return bad(
                "issuer must be an http(s) URL without a trailing slash, query or fragment",
            );
        }
        if self.audience.is_empty() || self.groups_claim.is_empty() {
            return bad("audience and groups_claim must not be empty");
        }
        if self.algorithms.is_empty() {
            return bad("algorithms must name at least one of EdDSA, ES256, RS256");
        }
        if self.clock_skew_secs > 300 {
            return bad("clock_skew_secs must be 0..=300");
        }
        Ok(())
    }
}

/// Bounds on fetching an IdP's documents.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Timeout of one HTTP request (connect, headers and body).
    pub request_timeout: Duration,
    /// Attempts per refresh after the first one.
    pub retries: u32,
    /// Pause between attempts.
    pub retry_pause: Duration,
    /// Deadline of one refresh, all attempts included.
    pub deadline: Duration,
    /// Largest discovery or JWKS document, bytes.
    pub max_document_bytes: usize,
    /// Least time between two refreshes of one IdP's keys.
    pub refresh_interval: Duration,
    /// Keys older than this are fetched again (and kept if that fails).
    pub max_key_age: Duration,
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(2),
            retries: 1,
            retry_pause: Duration::from_millis(200),
            deadline: Duration::from_secs(5),
            max_document_bytes: 256 * 1024,
            refresh_interval: Duration::from_secs(30),
            max_key_age: Duration::from_secs(3600),
        }
    }
}

struct Cached {
    keys: Arc<IdpKeys>,
    endpoints: Option<Arc<Endpoints>>,
    fetched: Instant,
}

/// An IdP's endpoints for the authorization-code flow, from its discovery
/// document (Tessera as a relying party: src/web/login.rs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// `authorization_endpoint`.
    pub authorization: String,
    /// `token_endpoint`.
    pub token: String,
}

struct Idp {
    config: IdpConfig,
    cached: RwLock<Option<Cached>>,
    /// Held while fetching; the time of the last attempt.
    last_attempt: Mutex<Option<Instant>>,
}

/// The trusted identity providers, their cached keys, and an HTTP client.
pub struct TrustedIdps {
    idps: Vec<Idp>,
    http: reqwest::Client,
    options: FetchOptions,
}

impl std::fmt::Debug for TrustedIdps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let issuers: Vec<&str> = self.idps.iter().map(|i| i.config.issuer.as_str()).collect();
        f.debug_struct("TrustedIdps")
            .field("issuers", &issuers)
            .finish()
    }
}

impl TrustedIdps {
    /// The IdPs `configs` name (each checked; issuers distinct). Nothing is
    /// fetched until the first token, or [`TrustedIdps::prefetch`].
    pub fn new(configs: Vec<IdpConfig>, options: FetchOptions) -> Result<Self, IdpConfigError> {
        for (i, config) in configs.iter().enumerate() {
            config.check()?;
            if configs[..i].iter().any(|c| c.issuer == config.issuer) {
                return Err(IdpConfigError {
                    issuer: shown(&config.issuer),
                    problem: "configured twice",
                });
            }
        }
        let http = reqwest::Client::builder()
            .timeout(options.request_timeout)
            .connect_timeout(options.request_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|_| IdpConfigError {
                issuer: String::new(),
                problem: "the HTTP client cannot be built",
            })?;
        let idps = configs
            .into_iter()
            .map(|config| Idp {
                config,
                cached: RwLock::new(None),
                last_attempt: Mutex::new(None),
            })
            .collect();
        Ok(Self {
            idps,
            http,
            options,
        })
    }

    /// The configuration of the IdP with this issuer.
    pub fn config(&self, issuer: &str) -> Option<&IdpConfig> {
        self.find(issuer).map(|i| &i.config)
    }

    fn find(&self, issuer: &str) -> Option<&Idp> {
        self.idps.iter().find(|i| i.config.issuer == issuer)
    }

    /// Fetches the keys of every IdP now; the issuers that failed.
    pub async fn prefetch(&self) -> Vec<String> {
        let mut failed = Vec::new();
        for idp in &self.idps {
            if !self.refresh(idp).await {
                failed.push(idp.config.issuer.clone());
            }
        }
        failed
    }

    /// Validates an ID token from any trusted IdP at `now`. An unknown `kid`
    /// fetches the IdP's keys again (at most once per refresh interval,
    /// within the refresh deadline) and tries once more.
    pub async fn validate(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<PersonIdentity, IdTokenError> {
        self.validate_as(token, now, None).await.map(|(p, _)| p)
    }

    /// Validates an identity assertion (ID-JAG) from any trusted IdP: `typ`
    /// `typ`, `aud` containing `audience` (Tessera's issuer URL), with the
    /// same key handling as [`validate`](Self::validate). Returns the claims
    /// not read into the person too (`client_id`, `jti`, `cnf`, ...).
    pub async fn validate_assertion(
        &self,
        token: &str,
        now: DateTime<Utc>,
        audience: &str,
        typ: &'static str,
    ) -> Result<(PersonIdentity, OtherClaims), IdTokenError> {
        self.validate_as(token, now, Some((audience, Some(typ))))
            .await
    }

    /// Validates an ID token that the IdP issued to `client_id` (Tessera's
    /// own login, src/web/login.rs): the checks of
    /// [`validate`](Self::validate) with `client_id` as the required
    /// audience. Returns the claims not read into the person too (`nonce`).
    pub async fn validate_for_client(
        &self,
        token: &str,
        now: DateTime<Utc>,
        client_id: &str,
    ) -> Result<(PersonIdentity, OtherClaims), IdTokenError> {
        self.validate_as(token, now, Some((client_id, None))).await
    }

    /// The authorization and token endpoints of the IdP with this issuer,
    /// from its discovery document (fetched with its keys, and cached with
    /// them); `None` when it is not trusted, cannot be reached, or publishes
    /// no such endpoints.
    pub async fn endpoints(&self, issuer: &str) -> Option<Arc<Endpoints>> {
        let idp = self.find(issuer)?;
        if let Some(e) = self.cached_endpoints(idp) {
            return Some(e);
        }
        self.refresh(idp).await;
        self.cached_endpoints(idp)
    }

    fn cached_endpoints(&self, idp: &Idp) -> Option<Arc<Endpoints>> {
        let guard = idp.cached.read().ok()?;
        guard.as_ref().and_then(|c| c.endpoints.clone())
    }

    async fn validate_as(
        &self,
        token: &str,
        now: DateTime<Utc>,
        assertion: Option<(&str, Option<&'static str>)>,
    ) -> Result<(PersonIdentity, OtherClaims), IdTokenError> {
        let issuer = unverified_issuer(token)?;
        let idp = self
            .find(&issuer)
            .ok_or_else(|| IdTokenError::UnknownIssuer(shown(&issuer)))?;
        let stale = match self.cached(idp) {
            None => true,
            Some((_, fetched)) => fetched.elapsed() > self.options.max_key_age,
        };
        if stale {
            self.refresh(idp).await;
        }
        let Some((keys, _)) = self.cached(idp) else {
            return Err(IdTokenError::IdpUnavailable(shown(&issuer)));
        };
        let expect = match assertion {
            None => Expect::id_token(&idp.config),
            Some((audience, typ)) => Expect { audience, typ },
        };
        match validate_jwt(token, &idp.config, &keys, now, &expect) {
            Err(IdTokenError::UnknownKey(kid)) => {
                if !self.refresh(idp).await {
                    return Err(IdTokenError::UnknownKey(kid));
                }
                let keys = self.cached(idp).map_or(keys, |(k, _)| k);
                validate_jwt(token, &idp.config, &keys, now, &expect)
            }
            other => other,
        }
    }

    fn cached(&self, idp: &Idp) -> Option<(Arc<IdpKeys>, Instant)> {
        let guard = idp.cached.read().ok()?;
        guard.as_ref().map(|c| (c.keys.clone(), c.fetched))
    }

    /// Fetches `idp`'s keys unless an attempt was made within the refresh
    /// interval; whether new keys were stored.
    async fn refresh(&self, idp: &Idp) -> bool {
        let Ok(mut last) =
            tokio::time::timeout(self.options.deadline, idp.last_attempt.lock()).await
        else {
            return false;
        };
        if last.is_some_and(|t| t.elapsed() < self.options.refresh_interval) {
            return false;
        }
        *last = Some(Instant::now());
        let fetched =
            tokio::time::timeout(self.options.deadline, self.fetch_with_retries(&idp.config)).await;
        let Ok(Some((keys, endpoints))) = fetched else {
            return false;
        };
        match idp.cached.write() {
            Ok(mut slot) => {
                *slot = Some(Cached {
                    keys: Arc::new(keys),
                    endpoints: endpoints.map(Arc::new),
                    fetched: Instant::now(),
                });
                true
            }
            Err(_) => false,
        }
    }

    async fn fetch_with_retries(&self, config: &IdpConfig) -> Option<(IdpKeys, Option<Endpoints>)> {
        for attempt in 0..=self.options.retries {
            if attempt > 0 {
                tokio::time::sleep(self.options.retry_pause).await;
            }
            if let Ok(keys) = self.fetch(config).await {
                return Some(keys);
            }
        }
        None
    }

    async fn fetch(&self, config: &IdpConfig) -> Result<(IdpKeys, Option<Endpoints>), ()> {
        #[derive(Deserialize)]
        struct Discovery {
            issuer: String,
            jwks_uri: String,
            authorization_endpoint: Option<String>,
            token_endpoint: Option<String>,
        }
        let url = format!("{}/.well-known/openid-configuration", config.issuer);
        let discovery: Discovery =
            serde_json::from_slice(&self.get(&url).await?).map_err(|_| ())?;
        // OpenID Connect Discovery §4.3: the document's issuer is the one asked for.
        if discovery.issuer != config.issuer {
            return Err(());
        }
        let jwks = self.get(&discovery.jwks_uri).await?;
        let text = std::str::from_utf8(&jwks).map_err(|_| ())?;
        let keys = IdpKeys::from_jwks_json(text).map_err(|_| ())?;
        let web = |u: &String| u.starts_with("https://") || u.starts_with("http://");
        let endpoints = match (discovery.authorization_endpoint, discovery.token_endpoint) {
            (Some(authorization), Some(token)) if web(&authorization) && web(&token) => {
                Some(Endpoints {
                    authorization,
                    token,
                })
            }
            _ => None,
        };
        Ok((keys, endpoints))
    }

    /// GET `url`, reading at most `max_document_bytes`.
    async fn get(&self, url: &str) -> Result<Vec<u8>, ()> {
        let max = self.options.max_document_bytes;
        let mut resp = self.http.get(url).send().await.map_err(|_| ())?;
        if !resp.status().is_success() || resp.content_length().is_some_and(|n| n > max as u64) {
            return Err(());
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|_| ())? {
            if body.len() + chunk.len() > max {
                return Err(());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_toml_form_has_defaults_and_refuses_unknown_keys() {
        let c: IdpConfig = toml::from_str(
            "issuer = \"https://login.acme.example\"\naudience = \"tessera\"\nalgorithms = [\"RS256\"]",
        )
        .unwrap();
        assert_eq!(c.groups_claim, "groups");
        assert_eq!(c.algorithms, [SigningAlgorithm::Rs256]);
        assert_eq!(c.clock_skew_secs, 60);
        assert!(c.check().is_ok());
        assert!(toml::from_str::<IdpConfig>(
            "issuer = \"https://a\"\naudience = \"t\"\naudiance = \"t\""
        )
        .is_err());
        assert!(toml::from_str::<IdpConfig>(
            "issuer = \"https://a\"\naudience = \"t\"\nalgorithms = [\"HS256\"]"
        )
        .is_err());
    }

    #[test]
    fn bad_configurations_are_refused() {
        let good: IdpConfig =
            toml::from_str("issuer = \"https://a.example\"\naudience = \"t\"").unwrap();
        for bad in [
            IdpConfig {
                issuer: "https://a.example/".into(),
                ..good.clone()
            },
            IdpConfig {
                issuer: "ftp://a.example".into(),
                ..good.clone()
            },
            IdpConfig {
                audience: String::new(),
                ..good.clone()
            },
            IdpConfig {
                algorithms: vec![],
                ..good.clone()
            },
            IdpConfig {
                clock_skew_secs: 301,
                ..good.clone()
            },
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
        let twice = TrustedIdps::new(vec![good.clone(), good], FetchOptions::default());
        assert!(twice.is_err());
    }
}
