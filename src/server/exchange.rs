//! Tokens on behalf of a person at `POST /oauth/token` (DESIGN.md,
//! "People"): token exchange (RFC 8693) and the identity assertion JWT
//! authorization grant (ID-JAG, `jwt-bearer` with `typ` `oauth-id-jag+jwt`).
//!
//! The agent authenticates exactly as for `client_credentials` (the caller,
//! [`super::oauth`], does that, and records the mint); this module finds the
//! person, checks that the agent may act for them, and intersects what is
//! asked with both the person's rights and the agent's ceiling.

use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::error::{bounded, quoted, ApiError, OAuthCode};
use super::oauth::{asked, dpop, mint_for, Asked, Client, Form, Granted, PersonError};
use super::state::AppState;
use crate::people::id_token::{OtherClaims, MAX_NAME_BYTES};
use crate::people::rights::{self, Limits, Rights, Wanted};
use crate::people::{IdTokenError, PersonIdentity, TrustedIdps};
use crate::store::{OnceKey, OnceKind};
use crate::token::{self, AgentId, OnBehalf, Person};

/// RFC 8693 grant type.
pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// RFC 7523 grant type, used by ID-JAG.
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// The ID-JAG profile, for `authorization_grant_profiles_supported`.
pub const ID_JAG_PROFILE: &str = "urn:ietf:params:oauth:grant-profile:id-jag";
pub use crate::people::id_token::ID_JAG_TYP;
/// Token type: an OpenID Connect ID token.
pub const ID_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id_token";
/// Token type: a JWT (for example an IdP's JWT access token).
pub const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
/// Token type: an access token (an IdP's JWT, or a Tessera token).
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// The subject token types accepted.
pub const SUBJECT_TOKEN_TYPES: [&str; 3] = [ID_TOKEN_TYPE, JWT_TOKEN_TYPE, ACCESS_TOKEN_TYPE];

/// Longest reason text taken from a token error.
const MAX_DETAIL: usize = 200;

fn invalid_grant(d: impl Into<String>) -> ApiError {
    ApiError::oauth(OAuthCode::InvalidGrant, d)
}

fn invalid_request(d: impl Into<String>) -> ApiError {
    ApiError::oauth(OAuthCode::InvalidRequest, d)
}

/// The person a subject token or assertion stands for.
struct Subject {
    person: Person,
    /// Groups from the IdP (none for a Tessera token).
    groups: Vec<String>,
    /// `may_act.sub`, when the token carries it.
    may_act: Option<String>,
    /// Earlier actors (a Tessera subject token's chain).
    prior_actors: Vec<AgentId>,
}

fn idps(state: &AppState) -> Result<&TrustedIdps, ApiError> {
    match &state.idps {
        Some(idps) if !state.config.idp.is_empty() => Ok(idps),
        _ => Err(invalid_grant(
            "this issuer trusts no identity provider, so it acts for no person",
        )),
    }
}

fn person_of(identity: &PersonIdentity) -> Result<Person, ApiError> {
    Person::parse(&identity.issuer, &identity.subject)
        .map_err(|e| invalid_grant(format!("the token names no valid person: {e}")))
}

fn idp_error(what: &str, e: &IdTokenError) -> ApiError {
    invalid_grant(bounded(&format!("{what}: {e}"), MAX_DETAIL))
}

/// `grant_type=urn:ietf:params:oauth:grant-type:token-exchange`.
pub(crate) async fn token_exchange(
    state: &AppState,
    headers: &HeaderMap,
    form: &Form,
    client: &Client,
    remote: Option<String>,
) -> Result<Granted, PersonError> {
    let kind = form.required("subject_token_type")?;
    let token = form.required("subject_token")?;
    if form.one("actor_token")?.is_some() || form.one("actor_token_type")?.is_some() {
        return Err(invalid_request(
            "actor_token is not supported: the actor is the authenticated client",
        )
        .into());
    }
    if let Some(t) = form.one("requested_token_type")? {
        if t != ACCESS_TOKEN_TYPE {
            return Err(invalid_request(format!(
                "requested_token_type must be {ACCESS_TOKEN_TYPE}"
            ))
            .into());
        }
    }
    if form.one("audience")?.is_some() {
        return Err(invalid_request("name the tool server with `resource`, not `audience`").into());
    }
    let asked = asked(form)?;
    let now = state.now();
    let subject = match kind {
        ID_TOKEN_TYPE | JWT_TOKEN_TYPE => idp_subject(state, token, now).await?,
        // An access token with dots is a JWT; a Tessera token (base64url) has none.
        ACCESS_TOKEN_TYPE if token.contains('.') => idp_subject(state, token, now).await?,
        ACCESS_TOKEN_TYPE => tessera_subject(state, token, now).await?,
        other => {
            return Err(invalid_request(format!(
                "subject_token_type {} is not supported; use {}",
                quoted(other),
                SUBJECT_TOKEN_TYPES.join(", ")
            ))
            .into())
        }
    };
    let person = subject.person.clone();
    let with_person = |error: ApiError| PersonError {
        error,
        person: Some(person.clone()),
    };
    let standing = state
        .stores
        .people
        .standing(&subject.person, &client.id)
        .await
        .map_err(|e| with_person(e.into()))?;
    match subject.may_act.as_deref() {
        Some(agent) if agent != client.id.as_str() => {
            return Err(with_person(invalid_grant(
                "the subject token's may_act names another agent",
            )))
        }
        Some(_) => {}
        None if !standing.consents => {
            return Err(with_person(invalid_grant(
                "the person has not approved this agent: record a standing consent with \
                 `tessera person consent` or POST /v1/people/consents (the subject token \
                 has no may_act naming this agent)",
            )))
        }
        None => {}
    }
    let rights = Rights::of(&state.config.role, &subject.groups, &standing.roles);
    let on = OnBehalf {
        person: subject.person,
        prior_actors: subject.prior_actors,
    };
    let mut granted =
        finish(state, headers, client, &asked, &rights, on, remote).map_err(with_person)?;
    granted.issued_token_type = Some(ACCESS_TOKEN_TYPE);
    Ok(granted)
}

/// The intersection, the DPoP proof and the mint, shared by both grants.
fn finish(
    state: &AppState,
    headers: &HeaderMap,
    client: &Client,
    asked: &Asked,
    rights: &Rights,
    on: OnBehalf,
    remote: Option<String>,
) -> Result<Granted, ApiError> {
    if let Some(why) = state.config.approval.refusal(&asked.action) {
        return Err(ApiError::oauth(OAuthCode::AccessDenied, why));
    }
    let lifetime = intersect(state, client, asked, rights)?;
    let proof = dpop(state, headers)?;
    mint_for(state, client, asked, lifetime, proof, Some(on), remote)
}

pub(crate) fn intersect(
    state: &AppState,
    client: &Client,
    asked: &Asked,
    rights: &Rights,
) -> Result<token::Lifetime, ApiError> {
    let wanted = Wanted {
        action: asked.action.clone(),
        resource: asked.resource.clone(),
        audience: asked.audience.clone(),
        lifetime: asked.lifetime,
    };
    let limits = Limits {
        max_ttl: state.config.max_ttl.0,
        default_ttl: state.config.default_ttl.0,
    };
    rights::intersect(rights, &client.record.ceiling, &wanted, limits)
        .map_err(|e| ApiError::oauth(OAuthCode::InvalidScope, e.to_string()))
}

async fn idp_subject(
    state: &AppState,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Subject, ApiError> {
    let identity = idps(state)?
        .validate(token, now)
        .await
        .map_err(|e| idp_error("subject token", &e))?;
    Ok(Subject {
        person: person_of(&identity)?,
        groups: identity.groups,
        may_act: identity.may_act,
        prior_actors: Vec::new(),
    })
}

/// A Tessera token that acts for a person: verified with this issuer's
/// keys, not expired, no block revoked.
async fn tessera_subject(
    state: &AppState,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Subject, ApiError> {
    let keys = state.ring().key_set(now);
    let seen = token::inspect(token, Some(&keys), &state.limits).map_err(|e| {
        invalid_grant(bounded(
            &format!("the subject token is not a token of this issuer: {e}"),
            MAX_DETAIL,
        ))
    })?;
    if seen.expires_at <= now {
        return Err(invalid_grant("the subject token has expired"));
    }
    for block in &seen.blocks {
        if state
            .stores
            .revocations
            .is_revoked(&block.revocation_id)
            .await?
        {
            return Err(invalid_grant("the subject token has been revoked"));
        }
    }
    let on = seen
        .on_behalf
        .ok_or_else(|| invalid_grant("the subject token does not act for a person"))?;
    let mut prior_actors = on.prior_actors;
    for agent in &seen.chain {
        let agent = AgentId::parse(agent)
            .map_err(|_| invalid_grant("the subject token names an invalid agent"))?;
        prior_actors.push(agent);
    }
    if prior_actors.len() > token::MAX_PRIOR_ACTORS {
        return Err(invalid_grant(format!(
            "the subject token has passed through too many agents (at most {})",
            token::MAX_PRIOR_ACTORS
        )));
    }
    Ok(Subject {
        person: on.person,
        groups: Vec::new(),
        may_act: None,
        prior_actors,
    })
}

fn claim_str<'c>(claims: &'c OtherClaims, name: &str) -> Option<&'c str> {
    claims.get(name).and_then(|v| v.as_str())
}

/// `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer` with an
/// identity assertion (ID-JAG) as `assertion`.
pub(crate) async fn id_jag(
    state: &AppState,
    headers: &HeaderMap,
    form: &Form,
    client: &Client,
    remote: Option<String>,
) -> Result<Granted, PersonError> {
    let assertion = form.required("assertion")?;
    let asked = asked(form)?;
    let now = state.now();
    let idps = idps(state)?;
    let (identity, claims) = idps
        .validate_assertion(assertion, now, &state.issuer, ID_JAG_TYP)
        .await
        .map_err(|e| idp_error("identity assertion", &e))?;
    let person = person_of(&identity)?;
    let with_person = |error: ApiError| PersonError {
        error,
        person: Some(person.clone()),
    };
    if claim_str(&claims, "client_id") != Some(client.id.as_str()) {
        return Err(with_person(invalid_grant(
            "the identity assertion's client_id is not the authenticated client",
        )));
    }
    let jti = match claim_str(&claims, "jti") {
        Some(j) if !j.is_empty() && j.len() <= MAX_NAME_BYTES => j,
        _ => {
            return Err(with_person(invalid_grant(
                "the identity assertion has no valid jti",
            )))
        }
    };
    let jkt = match claims.get("cnf") {
        None => None,
        Some(cnf) => match cnf.get("jkt").and_then(|v| v.as_str()) {
            Some(jkt) => Some(jkt),
            None => {
                return Err(with_person(invalid_grant(
                    "the identity assertion's cnf has no jkt",
                )))
            }
        },
    };
    if let Some(jkt) = jkt {
        let proof = dpop(state, headers).map_err(with_person)?;
        match proof {
            Some(p) if p.jkt == jkt => {}
            Some(_) => {
                return Err(with_person(invalid_grant(
                    "the DPoP key is not the one the identity assertion is bound to (cnf.jkt)",
                )))
            }
            None => {
                return Err(with_person(invalid_grant(
                    "the identity assertion is bound to a key (cnf.jkt): send a DPoP proof",
                )))
            }
        }
    }
    within_assertion(&claims, &asked).map_err(with_person)?;
    let standing = state
        .stores
        .people
        .standing(&person, &client.id)
        .await
        .map_err(|e| with_person(e.into()))?;
    let rights = Rights::of(&state.config.role, &identity.groups, &standing.roles);
    let skew = idps
        .config(&identity.issuer)
        .map_or(0, |c| i64::from(c.clock_skew_secs));
    let once = OnceKey {
        kind: OnceKind::IdJag,
        key: format!(
            "jag:{}",
            hex::encode(Sha256::digest(format!("{}\n{jti}", identity.issuer)))
        ),
        expires_at: identity
            .expires_at
            .checked_add_signed(chrono::Duration::seconds(skew))
            .unwrap_or(identity.expires_at),
    };
    let on = OnBehalf {
        person: person.clone(),
        prior_actors: Vec::new(),
    };
    let mut granted =
        finish(state, headers, client, &asked, &rights, on, remote).map_err(with_person)?;
    granted.once.push(once);
    Ok(granted)
}

/// The assertion's own `scope` and `resource`, when present, bound what
/// may be asked.
fn within_assertion(claims: &OtherClaims, asked: &Asked) -> Result<(), ApiError> {
    let out = |d: &str| ApiError::oauth(OAuthCode::InvalidScope, d);
    if let Some(scope) = claims.get("scope") {
        let ok = scope
            .as_str()
            .is_some_and(|s| s.split_whitespace().any(|a| a == asked.action.as_str()));
        if !ok {
            return Err(out("the action is outside the identity assertion's scope"));
        }
    }
    if let Some(resource) = claims.get("resource") {
        let listed: Vec<&str> = match resource {
            serde_json::Value::String(s) => vec![s.as_str()],
            serde_json::Value::Array(a) => a.iter().filter_map(|v| v.as_str()).collect(),
            _ => Vec::new(),
        };
        let ok = asked
            .audience
            .as_ref()
            .is_some_and(|a| listed.contains(&a.as_str()));
        if !ok {
            return Err(out(
                "the tool server is outside the identity assertion's resource",
            ));
        }
    }
    Ok(())
}
