//! The token endpoint's `authorization_code` (with PKCE, RFC 7636) and
//! `refresh_token` grants, for codes issued at the consent page.
//!
//! - A registered agent authenticates with `private_key_jwt` as at every
//!   grant. A client whose `client_id` is a Client ID Metadata Document URL
//!   authenticates as its document says: with `private_key_jwt`, by an
//!   assertion signed with a key of the document's `jwks` or `jwks_uri`
//!   (`authcode/confidential.rs`); with `none`, it is a public client that
//!   names itself with `client_id`. Either way the code is proven with the
//!   PKCE verifier. Whether the client must authenticate is fixed in the
//!   code when it is issued and passed on to its refresh family: a public
//!   request for a confidential client's code is `invalid_client` (and, like
//!   a wrong verifier, spends the code), for its family `invalid_client`.
//! - A code is single use: its second presentation fails with
//!   `invalid_grant` and revokes its refresh family and every access token
//!   minted in it.
//! - Refresh tokens (`<family id>.<secret>`) rotate on every use; presenting
//!   an earlier one revokes the family and its access tokens.
//! - The token is a Biscuit for the person (`on_behalf_of`), the client as
//!   agent, the scopes as its action set on the granted resource pattern,
//!   the `resource` as audience, DPoP-bound when a proof comes (and a
//!   family bound once stays bound to that key).

use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::error::{ApiError, OAuthCode};
use super::oauth::{self, Form};
use super::state::AppState;
use crate::records::AuditOutcome;
use crate::store::authcode::{secret_hash, CodeTake, FamilyToken, RefreshFamily, Rotation};
use crate::store::{AuditKind, Issue, IssuedToken, OnceKey, OnceKind, Revocation};
use crate::token::{self, Action, AgentId, Capability, Lifetime, OnBehalf};

mod confidential;

/// `grant_type=authorization_code`.
pub const AUTHORIZATION_CODE: &str = "authorization_code";
/// `grant_type=refresh_token`.
pub const REFRESH_TOKEN: &str = "refresh_token";
/// How long a refresh family lives, whatever its rotations.
pub const FAMILY_LIFE_SECS: i64 = 24 * 3600;
/// How long an authorization code is redeemable.
pub const CODE_LIFE_SECS: i64 = 60;

fn invalid_grant(d: impl Into<String>) -> ApiError {
    ApiError::oauth(OAuthCode::InvalidGrant, d)
}

/// A fresh secret: 256 random bits, base64url.
pub fn new_secret() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

/// A fresh family id: 128 random bits, hex.
pub fn new_family_id() -> String {
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// Whether `verifier` is an RFC 7636 code verifier (43 to 128 characters of
/// `[A-Za-z0-9-._~]`) whose S256 challenge is `challenge`.
pub fn pkce_s256_matches(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    well_formed && URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) == challenge
}

/// The client of a code, refresh or revocation request.
struct ClientOf {
    /// Its client id.
    id: String,
    /// Whether it proved itself with a client assertion (a public client
    /// only names itself).
    authenticated: bool,
}

impl ClientOf {
    /// Refuses a public request for a confidential client's code or family.
    fn must_authenticate(&self, confidential: bool) -> Result<(), ApiError> {
        if confidential && !self.authenticated {
            return Err(ApiError::oauth(
                OAuthCode::InvalidClient,
                "this client authenticates with private_key_jwt: send its client assertion",
            ));
        }
        Ok(())
    }
}

/// The client of a request: a registered agent or a metadata-document
/// client declaring `private_key_jwt`, authenticated by its client
/// assertion; or a public client named by `client_id`, which may only use
/// the codes and families of public clients ([`ClientOf::must_authenticate`]).
async fn client_of(state: &AppState, form: &Form, endpoint: &str) -> Result<ClientOf, ApiError> {
    if form.one("client_assertion")?.is_some() || form.one("client_assertion_type")?.is_some() {
        let id = match document_client(state, form).await? {
            Some(url) => confidential::authenticate(state, form, &url, endpoint).await?,
            None => oauth::authenticate(state, form, endpoint)
                .await?
                .id
                .to_string(),
        };
        return Ok(ClientOf {
            id,
            authenticated: true,
        });
    }
    let id = form.required("client_id")?;
    if registered(state, id).await? {
        return Err(ApiError::oauth(
            OAuthCode::InvalidClient,
            "a registered agent authenticates with private_key_jwt",
        ));
    }
    Ok(ClientOf {
        id: id.to_owned(),
        authenticated: false,
    })
}

/// Whether `id` names a registered agent.
async fn registered(state: &AppState, id: &str) -> Result<bool, ApiError> {
    match AgentId::parse(id) {
        Ok(agent) => Ok(state.stores.agents.get(agent.as_str()).await?.is_some()),
        Err(_) => Ok(false),
    }
}

/// The metadata-document URL an assertion request names (its `client_id`,
/// or else the assertion's unverified `iss`), when that is not a
/// registered agent. The assertion is verified against the document's keys
/// afterwards; the unverified `iss` only picks which keys.
async fn document_client(state: &AppState, form: &Form) -> Result<Option<String>, ApiError> {
    let id = match form.one("client_id")? {
        Some(id) => id.to_owned(),
        None => match form
            .one("client_assertion")?
            .and_then(confidential::unverified_iss)
        {
            Some(iss) => iss,
            None => return Ok(None),
        },
    };
    if !state.client_metadata.is_metadata_url(&id) || registered(state, &id).await? {
        return Ok(None);
    }
    Ok(Some(id))
}

/// Answers `grant_type=authorization_code` or `refresh_token`.
pub(crate) async fn token(
    state: &AppState,
    headers: &HeaderMap,
    form: &Form,
    grant_type: &str,
    remote: Option<String>,
) -> Result<Response, ApiError> {
    let client = client_of(state, form, &state.token_endpoint()).await?;
    let proof = oauth::dpop(state, headers)?;
    let now = state.now();
    let (family, refresh) = if grant_type == AUTHORIZATION_CODE {
        redeem_code(
            state,
            form,
            &client,
            proof.as_ref().map(|p| p.jkt.clone()),
            now,
        )
        .await?
    } else {
        refresh_family(
            state,
            form,
            &client,
            proof.as_ref().map(|p| p.jkt.as_str()),
            now,
        )
        .await?
    };
    mint(state, &family, refresh, proof, grant_type, remote).await
}

/// Takes the code; on its first use starts its family.
async fn redeem_code(
    state: &AppState,
    form: &Form,
    client: &ClientOf,
    jkt: Option<String>,
    now: DateTime<Utc>,
) -> Result<(RefreshFamily, String), ApiError> {
    let code = form.required("code")?;
    let redirect_uri = form.required("redirect_uri")?;
    let verifier = form.required("code_verifier")?;
    let taken = state
        .stores
        .authcodes
        .take_code(&secret_hash(code), now)
        .await?;
    let code = match taken {
        CodeTake::Unknown => return Err(invalid_grant("unknown or expired authorization code")),
        CodeTake::Spent(code) => {
            revoke_family(state, &code.family_id, "authorization code used twice").await?;
            return Err(invalid_grant(
                "the authorization code was already used; what it produced is revoked",
            ));
        }
        CodeTake::Fresh(code) => code,
    };
    if code.expires_at <= now {
        return Err(invalid_grant("the authorization code has expired"));
    }
    if code.client_id != client.id {
        return Err(invalid_grant(
            "the authorization code was issued to another client",
        ));
    }
    client.must_authenticate(code.confidential)?;
    if code.redirect_uri != redirect_uri {
        return Err(invalid_grant(
            "redirect_uri differs from the authorization request's",
        ));
    }
    if !pkce_s256_matches(verifier, &code.code_challenge) {
        return Err(invalid_grant(
            "code_verifier does not match the code_challenge",
        ));
    }
    let refresh = format!("{}.{}", code.family_id, new_secret());
    let family = RefreshFamily {
        id: code.family_id,
        client_id: code.client_id,
        person: code.person,
        resource: code.resource,
        pattern: code.pattern,
        scopes: code.scopes,
        refresh_hash: secret_hash(&refresh),
        jkt,
        revoked: false,
        tokens: Vec::new(),
        expires_at: now + chrono::Duration::seconds(FAMILY_LIFE_SECS),
        confidential: code.confidential,
    };
    state.stores.authcodes.start_family(&family, now).await?;
    Ok((family, refresh))
}

/// Rotates the presented refresh token.
async fn refresh_family(
    state: &AppState,
    form: &Form,
    client: &ClientOf,
    jkt: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(RefreshFamily, String), ApiError> {
    let presented = form.required("refresh_token")?;
    let Some((family_id, _)) = presented.split_once('.') else {
        return Err(invalid_grant("malformed refresh token"));
    };
    let store = &state.stores.authcodes;
    let Some(known) = store.family(family_id, now).await? else {
        return Err(invalid_grant("unknown or expired refresh token"));
    };
    if known.client_id != client.id {
        return Err(invalid_grant(
            "the refresh token was issued to another client",
        ));
    }
    client.must_authenticate(known.confidential)?;
    if let Some(bound) = &known.jkt {
        if jkt != Some(bound.as_str()) {
            return Err(ApiError::oauth(
                OAuthCode::InvalidDpopProof,
                "this refresh token is bound to a DPoP key: send a proof by that key",
            ));
        }
    }
    let next = format!("{family_id}.{}", new_secret());
    match store
        .rotate(family_id, &secret_hash(presented), &secret_hash(&next), now)
        .await?
    {
        Rotation::Rotated(family) => Ok((family, next)),
        Rotation::Reused(family) => {
            revoke_tokens(state, &family, "refresh token reused").await?;
            Err(invalid_grant(
                "the refresh token was already used; its family is revoked",
            ))
        }
        Rotation::Revoked(_) => Err(invalid_grant("the refresh token is revoked")),
        Rotation::Unknown => Err(invalid_grant("unknown or expired refresh token")),
    }
}

/// Whether `token` has the shape of a refresh token (`<32 hex>.<secret>`).
pub(crate) fn looks_like_refresh_token(token: &str) -> bool {
    token
        .split_once('.')
        .is_some_and(|(id, _)| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `POST /oauth/revoke` for a refresh token (RFC 7009): revokes its family
/// and the family's access tokens. The client authenticates as at the token
/// endpoint (public clients by `client_id`). An unknown token is not an
/// error; another client's token is `unauthorized_client`.
pub(crate) async fn revoke_refresh(state: &AppState, form: &Form) -> Result<Response, ApiError> {
    let client = client_of(state, form, &state.revocation_endpoint()).await?;
    let presented = form.required("token")?;
    let Some((family_id, _)) = presented.split_once('.') else {
        return Ok(().into_response());
    };
    let now = state.now();
    let Some(family) = state.stores.authcodes.family(family_id, now).await? else {
        return Ok(().into_response());
    };
    if family.refresh_hash != secret_hash(presented) {
        // An earlier token of the family: it no longer refreshes anything.
        return Ok(().into_response());
    }
    if family.client_id != client.id {
        return Err(ApiError::oauth(
            OAuthCode::UnauthorizedClient,
            "this token was not issued to this client",
        ));
    }
    client.must_authenticate(family.confidential)?;
    revoke_family(state, family_id, "refresh token revoked by its client").await?;
    Ok(().into_response())
}

/// Revokes a family and its access tokens (audited).
pub(crate) async fn revoke_family(
    state: &AppState,
    family_id: &str,
    reason: &str,
) -> Result<(), ApiError> {
    let now = state.now();
    if let Some(family) = state.stores.authcodes.revoke_family(family_id, now).await? {
        revoke_tokens(state, &family, reason).await?;
    }
    Ok(())
}

/// Revokes the access tokens of a (revoked) family, then audits it.
async fn revoke_tokens(
    state: &AppState,
    family: &RefreshFamily,
    reason: &str,
) -> Result<(), ApiError> {
    let now = state.now();
    for t in &family.tokens {
        if t.expires_at <= now {
            continue;
        }
        let revocation = Revocation {
            revocation_id: t.revocation_id.clone(),
            token_id: Some(t.token_id.clone()),
            agent: Some(family.client_id.clone()),
            reason: reason.to_owned(),
            revoked_at: now,
            expires_at: t.expires_at,
        };
        state.stores.revocations.revoke(&revocation).await?;
        state.metrics.revocations.inc();
    }
    let mut ev = oauth::event(state, AuditKind::Revocation, AuditOutcome::Revoked);
    ev.agent = Some(family.client_id.clone());
    ev.person = Some(family.person.clone());
    ev.reason = Some(format!("{reason}: refresh family revoked"));
    ev.revocation_ids = family
        .tokens
        .iter()
        .map(|t| t.revocation_id.clone())
        .collect();
    oauth::audit(state, ev).await
}

/// Mints the family's token, records it and answers with it and the next
/// refresh token.
async fn mint(
    state: &AppState,
    family: &RefreshFamily,
    refresh: String,
    proof: Option<oauth::Proof>,
    grant_type: &str,
    remote: Option<String>,
) -> Result<Response, ApiError> {
    let now = state.now();
    let agent = AgentId::parse(&family.client_id)
        .map_err(|e| ApiError::oauth(OAuthCode::InvalidClient, format!("client_id: {e}")))?;
    let (first, more) = family
        .scopes
        .split_first()
        .ok_or_else(|| ApiError::Internal("a family without scopes".into()))?;
    let wanted = state.config.default_ttl.0.min(state.config.max_ttl.0);
    let lifetime =
        Lifetime::new(wanted).map_err(|e| ApiError::Internal(format!("lifetime: {e}")))?;
    let (holder_key, dpop_jti): (_, Option<OnceKey>) = match proof {
        Some(p) => (Some(p.holder_key), Some(p.jti)),
        None => (None, None),
    };
    let bound = holder_key.is_some();
    let cap = Capability {
        agent: agent.clone(),
        action: first.clone(),
        resource: family.pattern.clone(),
        audience: Some(family.resource.clone()),
        lifetime,
        holder_key,
        on_behalf: Some(OnBehalf {
            person: family.person.clone(),
            prior_actors: Vec::new(),
        }),
    };
    let minted = token::mint_actions(&cap, more, state.ring().active(), now)
        .map_err(|e| ApiError::Internal(format!("mint: {e}")))?;
    let issued = IssuedToken {
        token_id: minted.token_id.clone(),
        agent: agent.clone(),
        revocation_id: minted.revocation_id.clone(),
        expires_at: minted.expires_at,
        issued_at: minted.issued_at,
    };
    let scope = scope_text(&family.scopes);
    let mut ev = oauth::event(state, AuditKind::Mint, AuditOutcome::Granted);
    ev.agent = Some(agent.to_string());
    ev.person = Some(family.person.clone());
    ev.token_id = Some(minted.token_id.clone());
    ev.capability = Some(format!(
        "{scope} on {} at {}",
        family.pattern, family.resource
    ));
    ev.chain = vec![family.person.to_string(), agent.to_string()];
    ev.reason = Some(format!(
        "grant_type {grant_type}, refresh family {}",
        family.id
    ));
    ev.remote_addr = remote;
    ev.service = Some(family.resource.to_string());
    let keys: Vec<OnceKey> = dpop_jti.into_iter().collect();
    match state
        .stores
        .issuance
        .record_issue(&keys, &issued, &ev, now)
        .await?
    {
        Issue::Recorded(_) => {}
        Issue::Replayed(OnceKind::DpopProof) => {
            return Err(ApiError::oauth(
                OAuthCode::InvalidDpopProof,
                "DPoP proof jti was already used",
            ))
        }
        Issue::Replayed(_) => return Err(invalid_grant("a one-time key was already used")),
    }
    state
        .stores
        .authcodes
        .add_family_token(
            &family.id,
            &FamilyToken {
                token_id: minted.token_id.clone(),
                revocation_id: minted.revocation_id.clone(),
                expires_at: minted.expires_at,
            },
            now,
        )
        .await?;
    state.metrics.minted.inc();
    let body = json!({
        "access_token": minted.token,
        "token_type": if bound { "DPoP" } else { "Bearer" },
        "expires_in": lifetime.duration().as_secs(),
        "scope": scope,
        "refresh_token": refresh,
        "token_id": minted.token_id,
        "authorization_details": [{
            "type": "tessera",
            "actions": family.scopes.iter().map(Action::as_str).collect::<Vec<_>>(),
            "identifier": family.pattern.to_string(),
            "locations": [family.resource.as_str()],
        }],
    });
    let mut r = Json(body).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r.headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(r)
}

/// Scopes as the `scope` parameter writes them.
pub fn scope_text(scopes: &[Action]) -> String {
    scopes
        .iter()
        .map(Action::as_str)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_7636_example_verifier_matches_its_challenge() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(pkce_s256_matches(verifier, challenge));
        assert!(!pkce_s256_matches(&verifier.replace('d', "e"), challenge));
        // The plain method (verifier == challenge) never matches.
        assert!(!pkce_s256_matches(challenge, challenge));
        // Too short, or a character outside the grammar.
        assert!(!pkce_s256_matches("abc", challenge));
        assert!(!pkce_s256_matches(&format!("{verifier}+"), challenge));
    }

    #[test]
    fn secrets_are_256_bits_and_differ() {
        let (a, b) = (new_secret(), new_secret());
        assert_eq!(URL_SAFE_NO_PAD.decode(&a).unwrap().len(), 32);
        assert_ne!(a, b);
    }
}
