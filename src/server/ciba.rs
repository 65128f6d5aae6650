//! Asking a person's approval, in the shape of OpenID CIBA Core 1.0
//! (DESIGN.md, "Human approval, amounts and budgets"; docs/approval.md):
//! `POST /oauth/bc-authorize` records the request, and the token endpoint's
//! `grant_type=urn:openid:params:grant-type:ciba` answers the agent's polls
//! and, once the person approved, mints exactly the approved capability
//! with `approved_by(<issuer>, <subject>, <approval id>)`, once.
//!
//! `login_hint` is `<IdP issuer>|<subject>`, or the subject alone when the
//! issuer trusts exactly one identity provider. The person must hold a role
//! given explicitly (`tessera person grant-role`) and have a standing
//! consent for the agent; what is asked must lie within both the person's
//! roles and the agent's ceiling (the same intersection as token exchange).

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::TimeDelta;
use rand::RngCore;
use serde_json::{json, Value};

use super::error::{quoted, ApiError, OAuthCode};
use super::exchange::intersect;
use super::oauth::{
    self, asked, audit, authenticate, dpop, event, mint_granted, Asked, Client, Form, Granted,
    PersonError,
};
use super::state::AppState;
use crate::people::rights::Rights;
use crate::records::AuditOutcome;
use crate::store::{Approval, ApprovalStatus, AskedCapability, AuditKind, Polled, StoreError};
use crate::token::{self, AgentId, Amount, Lifetime, OnBehalf, Person};

/// The CIBA grant type at the token endpoint.
pub const CIBA_GRANT: &str = "urn:openid:params:grant-type:ciba";
/// Longest `binding_message`, in characters.
pub const MAX_BINDING_MESSAGE: usize = 64;
/// Longest `client_notification_token`, in bytes.
pub const MAX_NOTIFICATION_TOKEN: usize = 1024;
/// `expires_in` when the request names no `requested_expiry`, in seconds.
pub const DEFAULT_EXPIRY_SECS: i64 = 300;
/// Longest `requested_expiry`, in seconds.
pub const MAX_EXPIRY_SECS: i64 = 600;
/// The first polling interval, in seconds.
pub const INTERVAL_SECS: u32 = 5;
/// Longest `login_hint`, in bytes.
const MAX_LOGIN_HINT: usize = 1024;

fn oauth_err(code: OAuthCode, d: impl Into<String>) -> ApiError {
    ApiError::oauth(code, d)
}

/// `POST /oauth/bc-authorize`.
pub async fn bc_authorize(
    State(state): State<AppState>,
    addr: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let remote = oauth::remote(addr);
    let form = match Form::parse(&headers, &body) {
        Ok(f) => f,
        Err(e) => return refused(&state, e, None, None, remote).await,
    };
    let endpoint = format!("{}/oauth/bc-authorize", state.issuer);
    let client = match authenticate(&state, &form, &endpoint).await {
        Ok(c) => c,
        Err(e) => return refused(&state, e, None, None, remote).await,
    };
    match backchannel(&state, &form, &client).await {
        Ok(approval) => {
            let mut ev = approval_event(&state, &approval, AuditOutcome::ApprovalRequested);
            ev.remote_addr = remote;
            if let Err(e) = audit(&state, ev).await {
                return e.into_response();
            }
            super::webhook::requested(&state, &approval).await;
            let expires_in = (approval.expires_at - approval.created_at).num_seconds();
            Json(json!({
                "auth_req_id": approval.id,
                "expires_in": expires_in,
                "interval": approval.interval_secs,
            }))
            .into_response()
        }
        Err(e) => refused(&state, e.error, Some(&client.id), e.person, remote).await,
    }
}

/// Counts a refusal, audits it when the agent is known, and answers it.
async fn refused(
    state: &AppState,
    e: ApiError,
    agent: Option<&AgentId>,
    person: Option<Person>,
    remote: Option<String>,
) -> Response {
    state.metrics.refuse(e.reason());
    if let Some(agent) = agent {
        let mut ev = event(state, AuditKind::Approval, AuditOutcome::Refused);
        ev.agent = Some(agent.to_string());
        ev.person = person;
        ev.reason = Some(e.to_string());
        ev.remote_addr = remote;
        if let Err(store) = audit(state, ev).await {
            return store.into_response();
        }
    }
    e.into_response()
}

/// An audit event about `approval`.
pub(crate) fn approval_event(
    state: &AppState,
    approval: &Approval,
    outcome: AuditOutcome,
) -> crate::store::AuditEvent {
    let mut ev = event(state, AuditKind::Approval, outcome);
    ev.agent = Some(approval.agent.to_string());
    ev.person = Some(approval.person.clone());
    ev.approval_id = Some(approval.id.clone());
    ev.amount = approval.capability.amount.clone();
    ev.capability = Some(describe(&approval.capability));
    ev.chain = std::iter::once(approval.person.to_string())
        .chain(approval.prior_actors.iter().map(ToString::to_string))
        .chain(std::iter::once(approval.agent.to_string()))
        .collect();
    ev
}

/// `<action> on <resource>[ at <audience>]`, as mint events say it.
fn describe(c: &AskedCapability) -> String {
    format!(
        "{} on {}{}",
        c.action,
        c.resource,
        c.audience
            .as_ref()
            .map(|a| format!(" at {a}"))
            .unwrap_or_default()
    )
}

/// Checks a backchannel request and records it.
async fn backchannel(
    state: &AppState,
    form: &Form,
    client: &Client,
) -> Result<Approval, PersonError> {
    for unsupported in [
        "login_hint_token",
        "id_token_hint",
        "user_code",
        "acr_values",
    ] {
        if form.one(unsupported)?.is_some() {
            return Err(ApiError::bad_request(format!(
                "{unsupported} is not supported: name the person with login_hint"
            ))
            .into());
        }
    }
    let person = login_hint(state, form.required("login_hint")?)?;
    let with_person = |error: ApiError| PersonError {
        error,
        person: Some(person.clone()),
    };
    let binding_message = form
        .one("binding_message")?
        .map(binding_message)
        .transpose()
        .map_err(with_person)?;
    let expiry = requested_expiry(form.one("requested_expiry")?).map_err(with_person)?;
    let notification_token = form
        .one("client_notification_token")?
        .map(notification_token)
        .transpose()
        .map_err(with_person)?;
    if notification_token.is_some() {
        let endpoint = state
            .stores
            .agents
            .get(client.id.as_str())
            .await
            .map_err(|e| with_person(e.into()))?
            .and_then(|a| a.notification_endpoint);
        if endpoint.is_none() {
            return Err(with_person(ApiError::bad_request(
                "client_notification_token (ping mode) needs the agent's notification_endpoint: \
                 register it (PATCH /v1/agents/{id}) or poll without the token",
            )));
        }
    }
    let (asked, amount) = asked_with_amount(form).map_err(with_person)?;

    let standing = state
        .stores
        .people
        .standing(&person, &client.id)
        .await
        .map_err(|e| with_person(e.into()))?;
    if standing.roles.is_empty() && !standing.consents {
        return Err(with_person(oauth_err(
            OAuthCode::UnknownUserId,
            "no such person here: they hold no role given to them and no consent",
        )));
    }
    if !standing.consents {
        return Err(with_person(oauth_err(
            OAuthCode::AccessDenied,
            "the person has not approved this agent: record a standing consent with \
             `tessera person consent` or POST /v1/people/consents",
        )));
    }
    let rights = Rights::of(&state.config.role, &[], &standing.roles);
    let lifetime = intersect(state, client, &asked, &rights).map_err(with_person)?;

    let now = state.now();
    let approval = Approval {
        id: new_id(),
        agent: client.id.clone(),
        prior_actors: Vec::new(),
        person: person.clone(),
        capability: AskedCapability {
            action: asked.action.clone(),
            resource: asked.resource.clone(),
            audience: asked.audience.clone(),
            amount,
            ttl_secs: lifetime.duration().as_secs(),
        },
        binding_message,
        notification_token,
        created_at: now,
        expires_at: now + TimeDelta::seconds(expiry),
        interval_secs: INTERVAL_SECS,
        status: ApprovalStatus::Pending,
        decided_by: None,
        decided_at: None,
        last_poll: None,
    };
    match state.stores.approvals.create(&approval, now).await {
        Ok(()) => Ok(approval),
        Err(StoreError::Limit(m)) => Err(with_person(oauth_err(
            OAuthCode::SlowDown,
            format!("{m}: wait for a decision before asking again"),
        ))),
        Err(e) => Err(with_person(e.into())),
    }
}

/// An unguessable approval id: 32 random bytes, hex.
fn new_id() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// `<IdP issuer>|<subject>`, or the subject alone with one trusted IdP.
fn login_hint(state: &AppState, hint: &str) -> Result<Person, ApiError> {
    let unknown = |d: String| oauth_err(OAuthCode::UnknownUserId, d);
    if hint.len() > MAX_LOGIN_HINT {
        return Err(ApiError::bad_request(format!(
            "login_hint is longer than {MAX_LOGIN_HINT} bytes"
        )));
    }
    let idps = &state.config.idp;
    let (issuer, subject) = match hint.split_once('|') {
        Some((issuer, subject)) => (issuer, subject),
        None => match idps.as_slice() {
            [one] => (one.issuer.as_str(), hint),
            [] => return Err(unknown("this issuer trusts no identity provider".into())),
            _ => {
                return Err(ApiError::bad_request(
                    "this issuer trusts several identity providers: \
                     write login_hint as <issuer>|<subject>",
                ))
            }
        },
    };
    if !idps.iter().any(|i| i.issuer == issuer) {
        return Err(unknown(format!(
            "identity provider {} is not trusted here",
            quoted(issuer)
        )));
    }
    Person::parse(issuer, subject).map_err(|e| unknown(format!("login_hint: {e}")))
}

fn binding_message(m: &str) -> Result<String, ApiError> {
    let bad = |d: &str| oauth_err(OAuthCode::InvalidBindingMessage, d);
    if m.trim().is_empty() {
        return Err(bad("binding_message is empty"));
    }
    if m.chars().count() > MAX_BINDING_MESSAGE {
        return Err(bad("binding_message is longer than 64 characters"));
    }
    if m.chars().any(|c| c.is_control()) {
        return Err(bad("binding_message holds a control character"));
    }
    Ok(m.to_owned())
}

fn requested_expiry(v: Option<&str>) -> Result<i64, ApiError> {
    let Some(v) = v else {
        return Ok(DEFAULT_EXPIRY_SECS);
    };
    match v.parse::<i64>() {
        Ok(secs) if (1..=MAX_EXPIRY_SECS).contains(&secs) && !v.starts_with('+') => Ok(secs),
        _ => Err(ApiError::bad_request(format!(
            "requested_expiry must be a whole number of seconds from 1 to {MAX_EXPIRY_SECS}"
        ))),
    }
}

fn notification_token(t: &str) -> Result<String, ApiError> {
    if t.is_empty() || t.len() > MAX_NOTIFICATION_TOKEN || !t.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(ApiError::bad_request(format!(
            "client_notification_token must be 1 to {MAX_NOTIFICATION_TOKEN} visible ASCII characters"
        )));
    }
    Ok(t.to_owned())
}

/// What is asked, and the amount of its one `authorization_details` entry
/// (`{"currency": "EUR", "value": 1250}` in minor units, or `"12.50EUR"`).
fn asked_with_amount(form: &Form) -> Result<(Asked, Option<Amount>), ApiError> {
    let Some(details) = form.one("authorization_details")? else {
        return Ok((asked(form)?, None));
    };
    let bad = |d: String| oauth_err(OAuthCode::InvalidAuthorizationDetails, d);
    let mut list: Vec<Value> = serde_json::from_str(details)
        .map_err(|e| bad(format!("not a JSON array of details: {e}")))?;
    let amount = match list.as_mut_slice() {
        [Value::Object(one)] => one.remove("amount").map(amount).transpose()?,
        _ => None,
    };
    let rest = serde_json::to_string(&list).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok((asked(&form.with("authorization_details", rest))?, amount))
}

fn amount(v: Value) -> Result<Amount, ApiError> {
    let bad = |d: String| {
        oauth_err(
            OAuthCode::InvalidAuthorizationDetails,
            format!("amount: {d}"),
        )
    };
    match v {
        Value::String(text) => Amount::parse(&text).map_err(|e| bad(e.to_string())),
        Value::Object(o) => {
            if o.keys().any(|k| k != "currency" && k != "value") {
                return Err(bad("only currency and value".into()));
            }
            let currency = o
                .get("currency")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("currency (ISO 4217) is required".into()))?;
            let value = o
                .get("value")
                .ok_or_else(|| bad("value (integer minor units) is required".into()))?;
            let minor = value
                .as_i64()
                .filter(|_| value.is_i64())
                .ok_or_else(|| bad("value must be an integer of minor units within i64".into()))?;
            Amount::new(currency, minor).map_err(|e| bad(e.to_string()))
        }
        _ => Err(bad(
            "an object {currency, value} or a string like 12.50EUR".into()
        )),
    }
}

/// `grant_type=urn:openid:params:grant-type:ciba` at the token endpoint.
pub(crate) async fn collect(
    state: &AppState,
    headers: &HeaderMap,
    form: &Form,
    client: &Client,
    remote: Option<String>,
) -> Result<Granted, PersonError> {
    let id = form.required("auth_req_id")?;
    // The proof is checked before the poll: a bad proof must not use up
    // the approval.
    let proof = dpop(state, headers)?;
    let now = state.now();
    let polled = state
        .stores
        .approvals
        .poll(id, &client.id, now)
        .await
        .map_err(ApiError::from)?;
    let approval = match polled {
        Polled::Collect(a) => a,
        Polled::Unknown => {
            return Err(oauth_err(
                OAuthCode::InvalidGrant,
                "no such auth_req_id for this agent",
            )
            .into())
        }
        Polled::AlreadyCollected => {
            return Err(oauth_err(
                OAuthCode::InvalidGrant,
                "the token for this auth_req_id was handed out already",
            )
            .into())
        }
        Polled::Pending => {
            return Err(oauth_err(
                OAuthCode::AuthorizationPending,
                "the person has not decided yet",
            )
            .into())
        }
        Polled::SlowDown(interval) => {
            return Err(oauth_err(
                OAuthCode::SlowDown,
                format!("polled too soon: wait at least {interval} s between polls"),
            )
            .into())
        }
        Polled::Expired => {
            return Err(
                oauth_err(OAuthCode::ExpiredToken, "the request for approval expired").into(),
            )
        }
        Polled::Denied => {
            return Err(oauth_err(OAuthCode::AccessDenied, "the approval was denied").into())
        }
    };
    let person = approval.person.clone();
    let with_person = |error: ApiError| PersonError {
        error,
        person: Some(person.clone()),
    };
    let c = &approval.capability;
    let asked = Asked::approved(c.action.clone(), c.resource.clone(), c.audience.clone());
    let lifetime = Lifetime::new(std::time::Duration::from_secs(c.ttl_secs))
        .map_err(|e| with_person(ApiError::Internal(e.to_string())))?;
    let on = OnBehalf {
        person: approval.person.clone(),
        prior_actors: approval.prior_actors.clone(),
    };
    let approved = token::Approved {
        person: approval.person.clone(),
        approval_id: approval.id.clone(),
        max_amount: c.amount.clone(),
    };
    mint_granted(
        state,
        client,
        &asked,
        lifetime,
        proof,
        Some(on),
        Some(approved),
        remote,
    )
    .map_err(with_person)
}
