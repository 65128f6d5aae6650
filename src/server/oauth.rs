//! OAuth surface: metadata (RFC 8414), JWKS, the token endpoint
//! (client_credentials with private_key_jwt, RFC 7523; scope + resource
//! (RFC 8707) or authorization_details (RFC 9396); DPoP binding, RFC 9449)
//! and revocation (RFC 7009).

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::config::StoreOutage;
use super::error::{bounded, quoted, ApiError, OAuthCode};
use super::exchange;
use super::state::AppState;
use crate::jose::{self, AssertionClaims, AssertionRules, DpopRules, Jws};
use crate::records::AuditOutcome;
use crate::replay::dpop_replay_key;
use crate::store::{
    AgentRecord, AuditEvent, AuditKind, Issue, IssuedToken, OnceKey, OnceKind, Revocation,
    StoreError,
};
use crate::token::{
    self, Action, AgentId, Audience, Capability, Lifetime, OnBehalf, Person, ResourcePattern,
};
use biscuit_auth::PublicKey;

/// RFC 7523 client assertion type.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Longest accepted client assertion lifetime.
pub(crate) const MAX_ASSERTION_SECS: i64 = 300;
/// Algorithms of client assertions: EdDSA for registered agents; EdDSA,
/// ES256 and RS256 for metadata-document clients.
const CLIENT_SIGNING_ALGS: [&str; 3] = ["EdDSA", "ES256", "RS256"];

/// A form-encoded body, with repeated parameters refused.
pub(crate) struct Form(Vec<(String, String)>);

impl Form {
    pub(crate) fn parse(headers: &HeaderMap, body: &[u8]) -> Result<Self, ApiError> {
        let ct = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !ct.split(';').next().is_some_and(|m| {
            m.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        }) {
            return Err(ApiError::bad_request(
                "the body must be application/x-www-form-urlencoded",
            ));
        }
        serde_urlencoded::from_bytes(body)
            .map(Self)
            .map_err(|_| ApiError::bad_request("the body is not a valid form"))
    }

    /// The one value of `name`; a repeated parameter is an error.
    pub(crate) fn one(&self, name: &str) -> Result<Option<&str>, ApiError> {
        let mut it = self.0.iter().filter(|(k, _)| k == name);
        match (it.next(), it.next()) {
            (None, _) => Ok(None),
            (Some((_, v)), None) => Ok(Some(v.as_str())),
            _ => Err(ApiError::bad_request(format!(
                "parameter `{name}` is repeated"
            ))),
        }
    }

    /// The same form with `name` set to `value` (replacing it if present).
    pub(crate) fn with(&self, name: &str, value: String) -> Self {
        let mut pairs: Vec<(String, String)> =
            self.0.iter().filter(|(k, _)| k != name).cloned().collect();
        pairs.push((name.to_owned(), value));
        Self(pairs)
    }

    pub(crate) fn required(&self, name: &str) -> Result<&str, ApiError> {
        self.one(name)?
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ApiError::bad_request(format!("parameter `{name}` is required")))
    }
}

/// The caller's address, when the server runs with connection info.
pub(crate) fn remote(addr: Option<Extension<ConnectInfo<SocketAddr>>>) -> Option<String> {
    addr.map(|Extension(ConnectInfo(a))| a.ip().to_string())
}

/// Whether `e` may be tolerated for minting under `store_outage = "local"`.
pub(crate) fn tolerate(state: &AppState, e: &StoreError) -> bool {
    matches!(e, StoreError::Unavailable(_)) && state.config.store_outage == StoreOutage::Local
}

/// The agent record, from the store or (during an outage, if configured)
/// from what this process saw recently.
async fn agent_record(state: &AppState, id: &AgentId) -> Result<Option<AgentRecord>, ApiError> {
    let now = state.now();
    match state.stores.agents.get(id.as_str()).await {
        Ok(r) => {
            if let Some(r) = &r {
                state.fallback.remember(r, now);
            }
            Ok(r)
        }
        Err(e) if tolerate(state, &e) => {
            tracing::warn!(agent = %id, "store unavailable: using this process's copy of the agent");
            state
                .fallback
                .agent(id.as_str(), now)
                .map(Some)
                .ok_or_else(|| ApiError::from(e))
        }
        Err(e) => Err(e.into()),
    }
}

/// Accepts a one-time key, falling back on this process's cache during an
/// outage if configured.
async fn accept_once(
    state: &AppState,
    client: &str,
    key: &str,
    until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<bool, ApiError> {
    match state.stores.replay.insert_once(key, until, now).await {
        Ok(fresh) => Ok(fresh),
        Err(e) if tolerate(state, &e) => state
            .fallback
            .insert_once(client, key, until, now)
            .ok_or_else(|| ApiError::from(e)),
        Err(e) => Err(e.into()),
    }
}

fn invalid_client(d: impl Into<String>) -> ApiError {
    ApiError::oauth(OAuthCode::InvalidClient, d)
}

/// An authenticated agent.
pub(crate) struct Client {
    pub(crate) id: AgentId,
    pub(crate) record: AgentRecord,
}

/// The error for an assertion whose jti was already used.
pub(crate) fn replayed_assertion() -> ApiError {
    invalid_client("client assertion jti was already used")
}

/// Takes a client assertion's one-time key; a key already taken (a
/// replayed assertion) is `invalid_client`.
pub(crate) async fn spend_assertion(
    state: &AppState,
    client: &str,
    once: &OnceKey,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    if accept_once(state, client, &once.key, once.expires_at, now).await? {
        Ok(())
    } else {
        Err(replayed_assertion())
    }
}

/// Authenticates the client by `private_key_jwt`, taking the assertion's
/// jti (a replay is refused).
pub(crate) async fn authenticate(
    state: &AppState,
    form: &Form,
    endpoint: &str,
) -> Result<Client, ApiError> {
    let (client, jti) = authenticate_unspent(state, form, endpoint).await?;
    spend_assertion(state, client.id.as_str(), &jti, state.now()).await?;
    Ok(client)
}

/// Authenticates the client by `private_key_jwt` except for the replay
/// check: returns the assertion's one-time key, which the caller must take
/// (with [`accept_once`] or in the mint's
/// [`record_issue`](crate::store::Issuance::record_issue)) before it
/// answers, whatever the answer.
async fn authenticate_unspent(
    state: &AppState,
    form: &Form,
    endpoint: &str,
) -> Result<(Client, OnceKey), ApiError> {
    match form.one("client_assertion_type")? {
        Some(JWT_BEARER) => {}
        Some(other) => {
            return Err(invalid_client(format!(
                "client_assertion_type {} is not supported; use private_key_jwt",
                quoted(other)
            )))
        }
        None => {
            return Err(invalid_client(
                "client authentication by private_key_jwt is required",
            ))
        }
    }
    let assertion = form
        .one("client_assertion")?
        .ok_or_else(|| invalid_client("client_assertion is required"))?;
    let jws: Jws<AssertionClaims> =
        Jws::parse(assertion).map_err(|e| invalid_client(format!("client assertion: {e}")))?;
    let id = AgentId::parse(&jws.claims.iss)
        .map_err(|e| invalid_client(format!("client assertion iss: {e}")))?;
    if let Some(client_id) = form.one("client_id")? {
        if client_id != id.as_str() {
            return Err(invalid_client("client_id differs from the assertion's iss"));
        }
    }
    let record = agent_record(state, &id)
        .await?
        .ok_or_else(|| invalid_client("unknown client"))?;
    if record.disabled {
        return Err(invalid_client("client is disabled"));
    }
    let key = state
        .agent_keys
        .verifying_key(&record.public_key)
        .ok_or_else(|| ApiError::Internal(format!("agent {id} has an unreadable key")))?;
    jws.verify(&key)
        .map_err(|_| invalid_client("the client assertion is not signed by the registered key"))?;
    let now = state.now();
    let token_endpoint = state.token_endpoint();
    let audiences = [state.issuer.as_ref(), token_endpoint.as_str(), endpoint];
    jws.claims
        .check(&AssertionRules {
            audiences: &audiences,
            now,
            max_lifetime_secs: MAX_ASSERTION_SECS,
            skew_secs: state.config.clock_skew_secs,
        })
        .map_err(|e| invalid_client(format!("client assertion: {e}")))?;
    let once = assertion_once_key(
        id.as_str(),
        &jws.claims.jti,
        jws.claims.exp,
        state.config.clock_skew_secs,
    )?;
    Ok((Client { id, record }, once))
}

/// The one-time key of `client`'s assertion `jti`, kept until its `exp`
/// plus the clock skew.
pub(crate) fn assertion_once_key(
    client: &str,
    jti: &str,
    exp: i64,
    skew_secs: i64,
) -> Result<OnceKey, ApiError> {
    let expires_at = exp
        .checked_add(skew_secs)
        .and_then(|t| DateTime::from_timestamp(t, 0))
        .ok_or_else(|| invalid_client("client assertion: exp out of range"))?;
    let key = format!(
        "assertion:{}",
        hex::encode(Sha256::digest(format!("{client}\n{jti}")))
    );
    Ok(OnceKey {
        kind: OnceKind::ClientAssertion,
        key,
        expires_at,
    })
}

/// What the request asks for.
#[derive(Debug)]
pub(crate) struct Asked {
    pub(crate) action: Action,
    pub(crate) resource: ResourcePattern,
    pub(crate) audience: Option<Audience>,
    pub(crate) lifetime: Option<Duration>,
    via_details: bool,
}

impl Asked {
    /// What an approval names, as if asked with `authorization_details`.
    pub(crate) fn approved(
        action: Action,
        resource: ResourcePattern,
        audience: Option<Audience>,
    ) -> Self {
        Self {
            action,
            resource,
            audience,
            lifetime: None,
            via_details: true,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Detail {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    actions: Vec<String>,
    #[serde(default)]
    locations: Vec<String>,
    identifier: Option<String>,
}

pub(crate) fn asked(form: &Form) -> Result<Asked, ApiError> {
    let lifetime = form
        .one("lifetime")?
        .map(token::parse_duration)
        .transpose()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let scope = form.one("scope")?;
    let details = form.one("authorization_details")?;
    let bad_details = |d: String| ApiError::oauth(OAuthCode::InvalidAuthorizationDetails, d);
    match (scope, details) {
        (Some(_), Some(_)) => Err(ApiError::bad_request(
            "ask with scope or with authorization_details, not both",
        )),
        (None, None) => Err(ApiError::oauth(
            OAuthCode::InvalidScope,
            "scope (one action) or authorization_details is required",
        )),
        (Some(scope), None) => {
            let actions: Vec<&str> = scope.split_whitespace().collect();
            let [action] = actions.as_slice() else {
                return Err(ApiError::oauth(
                    OAuthCode::InvalidScope,
                    "scope must name exactly one action",
                ));
            };
            let action = Action::parse(action)
                .map_err(|e| ApiError::oauth(OAuthCode::InvalidScope, e.to_string()))?;
            let identifier = form.required("identifier")?;
            let resource = ResourcePattern::parse(identifier)
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
            let audience = form
                .one("resource")?
                .map(Audience::parse)
                .transpose()
                .map_err(|e| ApiError::bad_request(format!("resource: {e}")))?;
            Ok(Asked {
                action,
                resource,
                audience,
                lifetime,
                via_details: false,
            })
        }
        (None, Some(details)) => {
            let list: Vec<Detail> = serde_json::from_str(details)
                .map_err(|e| bad_details(format!("not a JSON array of details: {e}")))?;
            let [d] = list.as_slice() else {
                return Err(bad_details(
                    "exactly one authorization detail per token".into(),
                ));
            };
            if d.kind != "tessera" {
                return Err(bad_details(format!(
                    "type {} is not supported",
                    quoted(&d.kind)
                )));
            }
            let [action] = d.actions.as_slice() else {
                return Err(bad_details("actions must hold exactly one action".into()));
            };
            let action = Action::parse(action).map_err(|e| bad_details(e.to_string()))?;
            let identifier = d
                .identifier
                .as_deref()
                .ok_or_else(|| bad_details("identifier (the resource) is required".into()))?;
            let resource =
                ResourcePattern::parse(identifier).map_err(|e| bad_details(e.to_string()))?;
            let audience = match d.locations.as_slice() {
                [] => None,
                [one] => Some(Audience::parse(one).map_err(|e| bad_details(e.to_string()))?),
                _ => return Err(bad_details("at most one location per token".into())),
            };
            if form.one("resource")?.is_some() {
                return Err(ApiError::bad_request(
                    "with authorization_details, name the tool server in locations",
                ));
            }
            Ok(Asked {
                action,
                resource,
                audience,
                lifetime,
                via_details: true,
            })
        }
    }
}

/// Checks the request against the agent's ceiling; never narrows silently.
fn within_ceiling(
    state: &AppState,
    record: &AgentRecord,
    asked: &Asked,
) -> Result<Lifetime, ApiError> {
    let out = |d: String| ApiError::oauth(OAuthCode::InvalidScope, d);
    let c = &record.ceiling;
    if !c.actions.contains(&asked.action) {
        return Err(out(format!(
            "action `{}` is outside this agent's ceiling",
            asked.action
        )));
    }
    if !c.resources.iter().any(|p| p.covers(&asked.resource)) {
        return Err(out(format!(
            "resource `{}` is outside this agent's ceiling",
            asked.resource
        )));
    }
    if !c.audiences.is_empty() {
        match &asked.audience {
            None => {
                return Err(out(
                    "this agent's tokens must name a tool server (resource)".into(),
                ))
            }
            Some(a) if !c.audiences.contains(a) => {
                return Err(out(format!(
                    "audience `{a}` is outside this agent's ceiling"
                )))
            }
            Some(_) => {}
        }
    }
    let max = c.max_ttl.min(state.config.max_ttl.0);
    let wanted = asked
        .lifetime
        .unwrap_or_else(|| state.config.default_ttl.0.min(max));
    if wanted > max {
        return Err(out(format!(
            "lifetime {}s is beyond this agent's maximum of {}s",
            wanted.as_secs(),
            max.as_secs()
        )));
    }
    Lifetime::new(wanted).map_err(|e| out(e.to_string()))
}

/// The token response (RFC 6749 §5.1).
#[derive(Debug, Serialize, Deserialize)]
pub struct TokenResponse {
    /// The token.
    pub access_token: String,
    /// `DPoP` when bound, `Bearer` otherwise.
    pub token_type: String,
    /// Seconds until expiry.
    pub expires_in: u64,
    /// The granted action.
    pub scope: String,
    /// The granted capability, in RFC 9396 form.
    pub authorization_details: serde_json::Value,
    /// The token id (for audit and revocation by id).
    pub token_id: String,
    /// RFC 8693 §2.2.1: the type of the issued token (token exchange only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_token_type: Option<String>,
}

/// Records an audit event; logs it as a structured event too.
pub(crate) async fn audit(state: &AppState, event: AuditEvent) -> Result<(), ApiError> {
    log_audit(&event);
    state.stores.audit.append(&event).await?;
    Ok(())
}

/// Logs an audit event as a structured event.
fn log_audit(event: &AuditEvent) {
    tracing::info!(
        target: "tessera::audit",
        kind = ?event.kind,
        agent = event.agent.as_deref().unwrap_or(""),
        token_id = event.token_id.as_deref().unwrap_or(""),
        capability = event.capability.as_deref().unwrap_or(""),
        outcome = %event.outcome,
        reason = event.reason.as_deref().unwrap_or(""),
        remote_addr = event.remote_addr.as_deref().unwrap_or(""),
    );
}

pub(crate) fn event(state: &AppState, kind: AuditKind, outcome: AuditOutcome) -> AuditEvent {
    AuditEvent {
        at: state.now(),
        kind,
        agent: None,
        token_id: None,
        capability: None,
        outcome,
        reason: None,
        remote_addr: None,
        chain: Vec::new(),
        person: None,
        amount: None,
        approval_id: None,
        revocation_ids: Vec::new(),
        service: None,
    }
}

/// `POST /oauth/token`.
pub async fn token(
    State(state): State<AppState>,
    addr: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let remote = remote(addr);
    match issue(&state, &headers, &body, remote.clone()).await {
        Ok(r) => r,
        Err(Refused {
            error: e,
            client,
            person,
        }) => {
            state.metrics.refuse(e.reason());
            match client {
                Some(client) => {
                    let mut ev = event(&state, AuditKind::Refusal, AuditOutcome::Refused);
                    ev.agent = Some(client.to_string());
                    ev.person = person;
                    ev.reason = Some(bounded(&e.to_string(), MAX_REASON_CHARS));
                    ev.remote_addr = remote;
                    record_refusal(&state, ev).await;
                }
                None => refused_stranger(&state, e.reason(), remote).await,
            }
            e.into_response()
        }
    }
}

/// Longest reason text of an audit event about an authenticated client.
const MAX_REASON_CHARS: usize = 300;

/// The outcome of a summary of refusals not stored one by one.
pub const SUMMARY_OUTCOME: AuditOutcome = AuditOutcome::Summary;

/// Records a refusal; it is answered even when the audit store is down.
async fn record_refusal(state: &AppState, ev: AuditEvent) {
    if let Err(audit_err) = audit(state, ev).await {
        tracing::warn!(error = %audit_err, "could not record a refusal");
    }
}

/// A refusal before client authentication: counted by reason code, stored
/// only as sampled (see [`RefusalSampler`](super::state::RefusalSampler)),
/// with the reason code and the caller's address, nothing it sent.
async fn refused_stranger(state: &AppState, reason: &'static str, remote: Option<String>) {
    let sampled = state.refusals.admit(reason, state.now());
    if let Some(skipped) = sampled.summary {
        record_refusal(state, summary_event(state, &skipped)).await;
    }
    if sampled.store {
        let mut ev = event(state, AuditKind::Refusal, AuditOutcome::Refused);
        ev.reason = Some(reason.to_owned());
        ev.remote_addr = remote;
        record_refusal(state, ev).await;
    }
    if let Some(at) = sampled.flush_at {
        let state = state.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            if let Some(skipped) = state.refusals.flush(state.now()) {
                record_refusal(&state, summary_event(&state, &skipped)).await;
            }
        });
    }
}

/// One event for the refusals of an interval that were not stored.
fn summary_event(state: &AppState, skipped: &super::state::Skipped) -> AuditEvent {
    let by_reason: Vec<String> = skipped
        .by_reason
        .iter()
        .map(|(code, n)| format!("{code} {n}"))
        .collect();
    let mut ev = event(state, AuditKind::Refusal, SUMMARY_OUTCOME);
    ev.reason = Some(format!(
        "{} unauthenticated refusals not recorded one by one from {} to {}: {}",
        skipped.count,
        skipped.from.to_rfc3339(),
        skipped.to.to_rfc3339(),
        by_reason.join(", ")
    ));
    ev
}

/// A refused token request.
struct Refused {
    /// Why.
    error: ApiError,
    /// The client, when it was authenticated before the refusal.
    client: Option<AgentId>,
    /// The person the request was for, when known.
    person: Option<Person>,
}

/// An error, with the person the request was for when it is known.
pub(crate) struct PersonError {
    pub(crate) error: ApiError,
    pub(crate) person: Option<Person>,
}

impl From<ApiError> for PersonError {
    fn from(error: ApiError) -> Self {
        Self {
            error,
            person: None,
        }
    }
}

/// The grant types of the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GrantType {
    ClientCredentials,
    TokenExchange,
    IdJag,
    Ciba,
}

/// Answers a token request, or says why not and (once the client is
/// authenticated) to whom.
async fn issue(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
    remote: Option<String>,
) -> Result<Response, Refused> {
    let stranger = |error| Refused {
        error,
        client: None,
        person: None,
    };
    let form = Form::parse(headers, body).map_err(stranger)?;
    if let Some(g @ (super::authcode::AUTHORIZATION_CODE | super::authcode::REFRESH_TOKEN)) =
        form.one("grant_type").map_err(stranger)?
    {
        return super::authcode::token(state, headers, &form, g, remote)
            .await
            .map_err(stranger);
    }
    let (grant_type, client, jti) = authenticated(state, &form).await.map_err(stranger)?;
    let id = client.id.clone();
    issue_to(state, headers, &form, grant_type, client, jti, remote)
        .await
        .map_err(|e| Refused {
            error: e.error,
            client: Some(id),
            person: e.person,
        })
}

/// Checks the grant type and authenticates the client, leaving its
/// assertion unspent.
async fn authenticated(
    state: &AppState,
    form: &Form,
) -> Result<(GrantType, Client, OnceKey), ApiError> {
    let grant_type = match form.required("grant_type")? {
        "client_credentials" => GrantType::ClientCredentials,
        exchange::TOKEN_EXCHANGE => GrantType::TokenExchange,
        exchange::JWT_BEARER_GRANT => GrantType::IdJag,
        super::ciba::CIBA_GRANT => GrantType::Ciba,
        other => {
            return Err(ApiError::oauth(
                OAuthCode::UnsupportedGrantType,
                format!(
                    "grant_type {} is not supported; use client_credentials, {}, {} or {}",
                    quoted(other),
                    exchange::TOKEN_EXCHANGE,
                    exchange::JWT_BEARER_GRANT,
                    super::ciba::CIBA_GRANT
                ),
            ))
        }
    };
    let (client, jti) = authenticate_unspent(state, form, &state.token_endpoint()).await?;
    Ok((grant_type, client, jti))
}

/// Mints for an authenticated client: checks what it asks for, takes its
/// one-time keys and records the token.
async fn issue_to(
    state: &AppState,
    headers: &HeaderMap,
    form: &Form,
    grant_type: GrantType,
    client: Client,
    jti: OnceKey,
    remote: Option<String>,
) -> Result<Response, PersonError> {
    let granted = match grant_type {
        GrantType::ClientCredentials => grant(state, headers, form, &client, remote)
            .await
            .map_err(PersonError::from),
        GrantType::TokenExchange => {
            exchange::token_exchange(state, headers, form, &client, remote).await
        }
        GrantType::IdJag => exchange::id_jag(state, headers, form, &client, remote).await,
        GrantType::Ciba => super::ciba::collect(state, headers, form, &client, remote).await,
    };
    let granted = match granted {
        Ok(granted) => granted,
        Err(e) => {
            // A refused request spends its assertion all the same; a
            // replayed one is refused as a replay, whatever else is wrong.
            spend_assertion(state, client.id.as_str(), &jti, state.now()).await?;
            return Err(e);
        }
    };
    let person = granted.event.person.clone();
    finish(state, &client, jti, granted)
        .await
        .map_err(|error| PersonError { error, person })
}

/// Takes the one-time keys of a granted request, records the token and
/// answers with it.
async fn finish(
    state: &AppState,
    client: &Client,
    jti: OnceKey,
    granted: Granted,
) -> Result<Response, ApiError> {
    let Granted {
        minted,
        issued,
        event,
        dpop_jti,
        once,
        detail,
        bound,
        expires_in,
        scope,
        issued_token_type,
    } = granted;
    // One store call takes the one-time keys and records the ledger entry
    // and the audit event; the token is returned only once that is durable.
    let mut keys = vec![jti];
    keys.extend(dpop_jti);
    keys.extend(once);
    let now = state.now();
    let replayed = match state
        .stores
        .issuance
        .record_issue(&keys, &issued, &event, now)
        .await
    {
        Ok(Issue::Recorded(_)) => None,
        Ok(Issue::Replayed(kind)) => Some(kind),
        Err(e) if tolerate(state, &e) => {
            // As the separate calls would: this process's replay cache,
            // then a token without a ledger entry (and its audit event in
            // the log only).
            let mut replayed = None;
            for k in &keys {
                let taken =
                    state
                        .fallback
                        .insert_once(client.id.as_str(), &k.key, k.expires_at, now);
                match taken {
                    Some(true) => {}
                    Some(false) => {
                        replayed = Some(k.kind);
                        break;
                    }
                    // Full: fail closed, as the store's outage would.
                    None => return Err(e.into()),
                }
            }
            if replayed.is_none() {
                tracing::warn!(
                    target: "tessera::audit",
                    token_id = %issued.token_id,
                    agent = %issued.agent,
                    revocation_id = %issued.revocation_id,
                    expires_at = %issued.expires_at,
                    "store unavailable: token minted without a ledger entry"
                );
            }
            replayed
        }
        Err(e) => return Err(e.into()),
    };
    match replayed {
        None => {}
        Some(OnceKind::ClientAssertion) => return Err(replayed_assertion()),
        Some(OnceKind::DpopProof) => {
            return Err(ApiError::oauth(
                OAuthCode::InvalidDpopProof,
                "DPoP proof jti was already used",
            ))
        }
        Some(OnceKind::IdJag) => {
            return Err(ApiError::oauth(
                OAuthCode::InvalidGrant,
                "the identity assertion (ID-JAG) jti was already used",
            ))
        }
    }
    log_audit(&event);
    state.metrics.minted.inc();

    let body = TokenResponse {
        access_token: minted.token,
        token_type: if bound { "DPoP" } else { "Bearer" }.into(),
        expires_in,
        scope,
        authorization_details: json!([detail]),
        token_id: minted.token_id,
        issued_token_type: issued_token_type.map(str::to_owned),
    };
    let mut r = Json(body).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r.headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(r)
}

/// A token minted for an authenticated request, not yet recorded.
pub(crate) struct Granted {
    minted: token::Minted,
    issued: IssuedToken,
    event: AuditEvent,
    /// The DPoP proof's one-time key, when the request has a proof.
    dpop_jti: Option<OnceKey>,
    /// Other one-time keys of the grant (an ID-JAG's `jti`).
    pub(crate) once: Vec<OnceKey>,
    detail: serde_json::Value,
    bound: bool,
    expires_in: u64,
    scope: String,
    /// `issued_token_type` of the answer (RFC 8693), if any.
    pub(crate) issued_token_type: Option<&'static str>,
}

/// A request's DPoP proof, checked: the key to bind the token to, and the
/// proof's one-time key and key thumbprint.
pub(crate) struct Proof {
    pub(crate) holder_key: PublicKey,
    pub(crate) jti: OnceKey,
    pub(crate) jkt: String,
}

/// Checks what an authenticated client asks for (and its DPoP proof) and
/// mints the token. Writes nothing.
async fn grant(
    state: &AppState,
    headers: &HeaderMap,
    form: &Form,
    client: &Client,
    remote: Option<String>,
) -> Result<Granted, ApiError> {
    let asked = asked(form)?;
    // An action the operator marked needs a person's yes for each token;
    // an agent acting for itself has nobody to ask (fail closed).
    if let Some(why) = state.config.approval.refusal(&asked.action) {
        return Err(ApiError::oauth(
            OAuthCode::AccessDenied,
            format!("{why} (for a person: an agent acting for itself cannot be approved)"),
        ));
    }
    let lifetime = within_ceiling(state, &client.record, &asked)?;
    let proof = dpop(state, headers)?;
    mint_for(state, client, &asked, lifetime, proof, None, remote)
}

/// Checks the request's DPoP proof, if it has one.
pub(crate) fn dpop(state: &AppState, headers: &HeaderMap) -> Result<Option<Proof>, ApiError> {
    let now = state.now();
    Ok(match dpop_header(headers)? {
        None => None,
        Some(proof) => {
            let endpoint = state.token_endpoint();
            let p = jose::verify_dpop(
                proof,
                &DpopRules {
                    method: "POST",
                    url: &endpoint,
                    access_token: None,
                    now,
                    window_secs: state.config.dpop_window_secs,
                },
            )
            .map_err(|e| ApiError::oauth(OAuthCode::InvalidDpopProof, e.to_string()))?;
            let until = p
                .iat
                .checked_add(state.config.dpop_window_secs)
                .and_then(|t| t.checked_add(1))
                .and_then(|t| DateTime::from_timestamp(t, 0))
                .ok_or_else(|| ApiError::oauth(OAuthCode::InvalidDpopProof, "iat out of range"))?;
            let key = format!("dpop:{}", hex::encode(dpop_replay_key(&p.jkt, &p.jti)));
            let holder = jose::to_biscuit_key(&p.key)
                .map_err(|e| ApiError::oauth(OAuthCode::InvalidDpopProof, e.to_string()))?;
            Some(Proof {
                holder_key: holder,
                jti: OnceKey {
                    kind: OnceKind::DpopProof,
                    key,
                    expires_at: until,
                },
                jkt: p.jkt,
            })
        }
    })
}

/// Mints what was checked, for `client` (and the person it acts for), and
/// prepares its ledger entry and audit event. Writes nothing.
pub(crate) fn mint_for(
    state: &AppState,
    client: &Client,
    asked: &Asked,
    lifetime: Lifetime,
    proof: Option<Proof>,
    on_behalf: Option<OnBehalf>,
    remote: Option<String>,
) -> Result<Granted, ApiError> {
    mint_granted(
        state, client, asked, lifetime, proof, on_behalf, None, remote,
    )
}

/// [`mint_for`], with the person's approval when there is one.
#[allow(clippy::too_many_arguments)]
pub(crate) fn mint_granted(
    state: &AppState,
    client: &Client,
    asked: &Asked,
    lifetime: Lifetime,
    proof: Option<Proof>,
    on_behalf: Option<OnBehalf>,
    approved: Option<token::Approved>,
    remote: Option<String>,
) -> Result<Granted, ApiError> {
    let now = state.now();
    let (holder_key, dpop_jti) = match proof {
        Some(p) => (Some(p.holder_key), Some(p.jti)),
        None => (None, None),
    };
    let bound = holder_key.is_some();
    let cap = Capability {
        agent: client.id.clone(),
        action: asked.action.clone(),
        resource: asked.resource.clone(),
        audience: asked.audience.clone(),
        lifetime,
        holder_key,
        on_behalf,
    };
    let ring = state.ring();
    let minted = match &approved {
        None => token::mint(&cap, ring.active(), now),
        Some(a) => token::mint_approved(&cap, a, ring.active(), now),
    }
    .map_err(|e| ApiError::Internal(format!("mint: {e}")))?;
    let issued = IssuedToken {
        token_id: minted.token_id.clone(),
        agent: client.id.clone(),
        revocation_id: minted.revocation_id.clone(),
        expires_at: minted.expires_at,
        issued_at: minted.issued_at,
    };
    let capability = format!(
        "{} on {}{}",
        asked.action,
        asked.resource,
        asked
            .audience
            .as_ref()
            .map(|a| format!(" at {a}"))
            .unwrap_or_default()
    );
    let mut ev = event(state, AuditKind::Mint, AuditOutcome::Granted);
    ev.agent = Some(client.id.to_string());
    ev.token_id = Some(minted.token_id.clone());
    ev.capability = Some(capability);
    ev.chain = match &cap.on_behalf {
        None => vec![client.id.to_string()],
        Some(on) => {
            ev.person = Some(on.person.clone());
            std::iter::once(on.person.to_string())
                .chain(on.prior_actors.iter().map(ToString::to_string))
                .chain(std::iter::once(client.id.to_string()))
                .collect()
        }
    };
    ev.remote_addr = remote;
    if let Some(a) = &approved {
        ev.approval_id = Some(a.approval_id.clone());
        ev.amount = a.max_amount.clone();
    }

    let mut detail = json!({
        "type": "tessera",
        "actions": [asked.action.as_str()],
        "identifier": asked.resource.to_string(),
    });
    if let Some(a) = &asked.audience {
        detail["locations"] = json!([a.as_str()]);
    }
    if let Some(max) = approved.as_ref().and_then(|a| a.max_amount.as_ref()) {
        detail["amount"] = json!({"currency": max.currency(), "value": max.minor()});
    }
    let _ = asked.via_details; // both forms get the same echo
    Ok(Granted {
        minted,
        issued,
        event: ev,
        dpop_jti,
        once: Vec::new(),
        detail,
        bound,
        expires_in: lifetime.duration().as_secs(),
        scope: asked.action.to_string(),
        issued_token_type: None,
    })
}

fn dpop_header(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let mut all = headers.get_all("dpop").iter();
    match (all.next(), all.next()) {
        (None, _) => Ok(None),
        (Some(v), None) => v
            .to_str()
            .map(Some)
            .map_err(|_| ApiError::oauth(OAuthCode::InvalidDpopProof, "DPoP header is not text")),
        _ => Err(ApiError::oauth(
            OAuthCode::InvalidDpopProof,
            "more than one DPoP header",
        )),
    }
}

/// `POST /oauth/revoke` (RFC 7009): an agent revokes a token issued to it.
pub async fn revoke(
    State(state): State<AppState>,
    addr: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let form = Form::parse(&headers, &body)?;
    let hint = form.one("token_type_hint")?;
    let refresh = hint == Some("refresh_token")
        || (hint.is_none()
            && form
                .one("token")?
                .is_some_and(super::authcode::looks_like_refresh_token));
    if refresh {
        return super::authcode::revoke_refresh(&state, &form).await;
    }
    let client = authenticate(&state, &form, &state.revocation_endpoint()).await?;
    let presented = form.required("token")?;
    if let Some(hint) = form.one("token_type_hint")? {
        if hint != "access_token" {
            return Err(ApiError::oauth(
                OAuthCode::UnsupportedTokenType,
                "only access tokens can be revoked",
            ));
        }
    }
    let now = state.now();
    // An invalid token is not an error (RFC 7009 §2.2): there is nothing to revoke.
    let Ok(seen) = token::inspect(presented, Some(&state.ring().key_set(now)), &state.limits)
    else {
        return Ok(().into_response());
    };
    if seen.agent != client.id.as_str() {
        return Err(ApiError::oauth(
            OAuthCode::UnauthorizedClient,
            "this token was not issued to this client",
        ));
    }
    let Some(authority) = seen.blocks.first() else {
        return Ok(().into_response());
    };
    let revocation = Revocation {
        revocation_id: authority.revocation_id.clone(),
        token_id: Some(seen.token_id.clone()),
        agent: Some(seen.agent.clone()),
        reason: "revoked by its agent".into(),
        revoked_at: now,
        expires_at: seen.expires_at,
    };
    state.stores.revocations.revoke(&revocation).await?;
    state.metrics.revocations.inc();
    let mut ev = event(&state, AuditKind::Revocation, AuditOutcome::Revoked);
    ev.agent = Some(seen.agent);
    ev.token_id = Some(seen.token_id);
    ev.reason = Some(revocation.reason);
    ev.remote_addr = remote(addr);
    if let Err(e) = audit(&state, ev).await {
        tracing::warn!(error = %e, "revocation recorded, audit event lost");
    }
    Ok(().into_response())
}

/// `GET /.well-known/oauth-authorization-server` (RFC 8414).
pub async fn metadata(State(state): State<AppState>) -> Json<serde_json::Value> {
    let i = &state.issuer;
    Json(json!({
        "issuer": i.as_ref(),
        "token_endpoint": state.token_endpoint(),
        "authorization_endpoint": format!("{i}/oauth/authorize"),
        "revocation_endpoint": state.revocation_endpoint(),
        "introspection_endpoint": super::introspect::endpoint(&state),
        "jwks_uri": format!("{i}/.well-known/jwks.json"),
        "grant_types_supported": [
            "client_credentials",
            super::authcode::AUTHORIZATION_CODE,
            super::authcode::REFRESH_TOKEN,
            exchange::TOKEN_EXCHANGE,
            exchange::JWT_BEARER_GRANT,
            super::ciba::CIBA_GRANT,
        ],
        "backchannel_authentication_endpoint": format!("{}/oauth/bc-authorize", state.issuer),
        "backchannel_token_delivery_modes_supported": ["poll", "ping"],
        "backchannel_user_code_parameter_supported": false,
        "authorization_grant_profiles_supported": [exchange::ID_JAG_PROFILE],
        "token_exchange_subject_token_types_supported": exchange::SUBJECT_TOKEN_TYPES,
        "token_endpoint_auth_methods_supported": ["private_key_jwt", "none"],
        "code_challenge_methods_supported": ["S256"],
        "client_id_metadata_document_supported": true,
        "authorization_response_iss_parameter_supported": true,
        // Registered agents sign with Ed25519; metadata-document clients
        // with any key their document publishes that Tessera can verify.
        "token_endpoint_auth_signing_alg_values_supported": CLIENT_SIGNING_ALGS,
        "revocation_endpoint_auth_methods_supported": ["private_key_jwt", "none"],
        "revocation_endpoint_auth_signing_alg_values_supported": CLIENT_SIGNING_ALGS,
        "dpop_signing_alg_values_supported": ["EdDSA"],
        "authorization_details_types_supported": ["tessera"],
        "response_types_supported": ["code"],
        "scopes_supported": scopes_supported(&state),
        "service_documentation": format!("{i}/openapi.json"),
    }))
}

/// The actions the configured roles name (the scopes `/oauth/authorize`
/// may grant), sorted, without repeats; not those that need a person's
/// approval for each use (they are asked at `/oauth/bc-authorize`).
fn scopes_supported(state: &AppState) -> Vec<&str> {
    let mut all: Vec<&str> = state
        .config
        .role
        .iter()
        .flat_map(|r| r.actions.iter())
        .filter(|a| state.config.approval.rule_for(a).is_none())
        .map(Action::as_str)
        .collect();
    all.sort_unstable();
    all.dedup();
    all
}

/// `GET /.well-known/jwks.json`: root public keys, retired ones included
/// until their publication date.
pub async fn jwks(State(state): State<AppState>) -> Response {
    let set = state.ring().key_set(state.now());
    let mut r = Json(set.to_jwks()).into_response();
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    r
}
