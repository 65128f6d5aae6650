//! `POST /oauth/introspect` (RFC 7662): the online alternative to the
//! offline [`Verifier`](crate::verify::Verifier), for a tool that would
//! rather ask the issuer whether a token is alive than verify it itself.
//!
//! Callers authenticate, in one of two ways (docs/api.md, "Introspection"):
//! - an agent, by `private_key_jwt` as at the token endpoint (the
//!   assertion's `aud` may be the issuer, the token endpoint or this
//!   endpoint; its `jti` is spent). An agent learns only about tokens whose
//!   chain names it: any other token is `{"active": false}`.
//! - the operator, with an admin token (`Authorization: Bearer`), which may
//!   introspect any token. A feed token is not enough.
//!
//! Anyone else gets 401 `invalid_client`, counted in
//! `tessera_tokens_refused{reason="invalid_client"}` and nothing else: a
//! flood of strangers stores nothing.
//!
//! The answer for a token that is not alive is `{"active": false}` and only
//! that, whatever the cause (garbage, forged, unknown key, expired, revoked,
//! someone else's): the caller learns nothing about why. Only cheap checks
//! run (size, signatures, holder chain, expiry of every block, revocation of
//! every block); no Datalog. `scope` is what the issuer granted: a later
//! attenuation block may narrow it further, which the verifier of a request
//! enforces.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use super::admin::{admin_grant, bearer};
use super::error::{ApiError, OAuthCode};
use super::oauth::{authenticate, Form};
use super::state::AppState;
use crate::token::{self, AgentId};

/// The resource an admin token is checked against for introspection (it
/// lies under the admin API's `/v1/` prefix; no route serves it).
pub const ADMIN_RESOURCE: &str = "/v1/introspect";

/// `<issuer>/oauth/introspect`.
pub fn endpoint(state: &AppState) -> String {
    format!("{}/oauth/introspect", state.issuer)
}

/// Who asked.
enum Caller {
    /// The operator, with an admin token: any token.
    Operator,
    /// An agent, by `private_key_jwt`: tokens whose chain names it.
    Agent(AgentId),
}

fn refused(description: &str) -> ApiError {
    ApiError::oauth(OAuthCode::InvalidClient, description)
}

/// Authenticates the caller; every failure is 401 `invalid_client` (a store
/// outage stays 503).
async fn caller(state: &AppState, headers: &HeaderMap, form: &Form) -> Result<Caller, ApiError> {
    let assertion =
        form.one("client_assertion")?.is_some() || form.one("client_assertion_type")?.is_some();
    let admin = headers.contains_key(header::AUTHORIZATION);
    match (admin, assertion) {
        (true, true) => Err(refused("use one client authentication method, not two")),
        (true, false) => {
            let token = bearer(headers).ok_or_else(|| {
                refused("the Authorization header must be `Bearer <admin token>`")
            })?;
            match admin_grant(state, token, ADMIN_RESOURCE, false).await {
                Ok(_) => Ok(Caller::Operator),
                Err(e @ (ApiError::Unavailable(_) | ApiError::Internal(_))) => Err(e),
                Err(_) => Err(refused("the admin token was refused")),
            }
        }
        (false, true) => {
            let endpoint = endpoint(state);
            match authenticate(state, form, &endpoint).await {
                Ok(client) => Ok(Caller::Agent(client.id)),
                Err(e @ (ApiError::Unavailable(_) | ApiError::Internal(_))) => Err(e),
                Err(e) => Err(refused(&e.to_string())),
            }
        }
        (false, false) => Err(refused(
            "authenticate with private_key_jwt or an admin token (Bearer)",
        )),
    }
}

/// `POST /oauth/introspect`.
pub async fn introspect(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let answer = async {
        let form = Form::parse(&headers, &body)?;
        let who = caller(&state, &headers, &form).await?;
        let presented = form
            .one("token")?
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::bad_request("parameter `token` is required"))?;
        // token_type_hint is advisory (RFC 7662 §2.1): every Tessera token
        // is an access token, so any hint is ignored.
        look_up(&state, &who, presented).await
    }
    .await;
    let answer = match answer {
        Ok(a) => a,
        Err(e) => {
            state.metrics.refuse(e.reason());
            return Err(e);
        }
    };
    let mut r = Json(answer).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

/// What the issuer says about `presented`, for `who`.
async fn look_up(state: &AppState, who: &Caller, presented: &str) -> Result<Value, ApiError> {
    let inactive = || json!({ "active": false });
    let now = state.now();
    let Ok(bytes) = token::decode(presented, &state.limits) else {
        return Ok(inactive());
    };
    let keys = state.ring().key_set(now);
    let Ok(verified) = token::Verified::from_bytes(&bytes, &keys, &state.limits) else {
        return Ok(inactive());
    };
    if verified.expires_at() <= now {
        return Ok(inactive());
    }
    let chain = verified.chain();
    let agents = chain.agents();
    if let Caller::Agent(id) = who {
        if !agents.contains(id) {
            return Ok(inactive());
        }
    }
    // Revocation last: the store is asked only about a token worth asking
    // about. An outage is an error (503), never a guess either way.
    for id in verified.revocation_ids() {
        if state
            .stores
            .revocations
            .is_revoked(&hex::encode(id))
            .await?
        {
            return Ok(inactive());
        }
    }
    let c = &chain.claims;
    let mut scope: Vec<&str> = Vec::new();
    for (action, _) in &c.rights {
        if !scope.contains(&action.as_str()) {
            scope.push(action);
        }
    }
    let resources: Vec<String> = c.rights.iter().map(|(_, p)| p.to_string()).collect();
    let mut out = Map::new();
    out.insert("active".into(), true.into());
    out.insert("scope".into(), scope.join(" ").into());
    out.insert("client_id".into(), c.agent.as_str().into());
    out.insert(
        "token_type".into(),
        if chain.holder().is_some() {
            "DPoP"
        } else {
            "Bearer"
        }
        .into(),
    );
    out.insert("exp".into(), verified.expires_at().timestamp().into());
    if let Some(iat) = c.issued_at {
        out.insert("iat".into(), iat.timestamp().into());
    }
    out.insert("jti".into(), c.token_id.clone().into());
    out.insert("iss".into(), state.issuer.as_ref().into());
    if let Some(aud) = &c.audience {
        out.insert("aud".into(), aud.clone().into());
    }
    if let Some(on) = &c.on_behalf {
        // RFC 7662 `sub`: the person the token acts for, at their IdP.
        out.insert("sub".into(), on.person.subject().into());
        out.insert(
            "person".into(),
            json!({ "issuer": on.person.issuer(), "subject": on.person.subject() }),
        );
    }
    if let Some(on) = &c.on_behalf {
        out.insert(
            "prior_actors".into(),
            on.prior_actors
                .iter()
                .map(|a| a.as_str())
                .collect::<Vec<_>>()
                .into(),
        );
    }
    out.insert(
        "chain".into(),
        agents.iter().map(|a| a.as_str()).collect::<Vec<_>>().into(),
    );
    out.insert("resources".into(), resources.into());
    Ok(Value::Object(out))
}
