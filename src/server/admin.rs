//! The admin API under `/v1`, authorized by an admin Biscuit minted from the
//! root key (`tessera admin token`) and checked by the token core.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::error::ApiError;
use super::oauth::{audit, remote};
use super::state::AppState;
use crate::jose::OkpJwk;
use crate::records::{AuditEntry, AuditOutcome, AuditPage, FeedEntry, FeedPage};
use crate::store::{AgentRecord, AuditEvent, AuditKind, AuditQuery, Ceiling, Cursor, Revocation};
use crate::token::{
    self, parse_duration, parse_public_key, Action, AgentId, AgentKey, Audience, Authorized,
    Lifetime, Request as AuthzRequest, Resource, ResourcePattern,
};

/// The action an admin token grants, on the resource prefix `/v1/`.
pub const ADMIN_ACTION: &str = "tessera:admin";
/// The action a feed token grants: reading the revocation feed, nothing else.
pub const FEED_ACTION: &str = "tessera:feed";
/// The one resource a feed token covers.
pub const FEED_RESOURCE: &str = "/v1/revocations";
/// The agent named in admin tokens.
pub const ADMIN_AGENT: &str = "agent://tessera/operator";

/// The admin capability: `tessera:admin` on every `/v1/` path.
pub fn admin_capability(lifetime: Lifetime) -> Result<token::Capability, token::InvalidInput> {
    Ok(token::Capability {
        agent: AgentId::parse(ADMIN_AGENT)?,
        action: Action::parse(ADMIN_ACTION)?,
        resource: ResourcePattern::parse("/v1/*")?,
        audience: None,
        lifetime,
        holder_key: None,
        on_behalf: None,
    })
}

/// The feed capability: `tessera:feed` on `/v1/revocations` only, for
/// verifiers that follow revocations over HTTP (`GET /v1/revocations`)
/// without holding an admin token.
pub fn feed_capability(lifetime: Lifetime) -> Result<token::Capability, token::InvalidInput> {
    Ok(token::Capability {
        agent: AgentId::parse(ADMIN_AGENT)?,
        action: Action::parse(FEED_ACTION)?,
        resource: ResourcePattern::parse(FEED_RESOURCE)?,
        audience: None,
        lifetime,
        holder_key: None,
        on_behalf: None,
    })
}

/// Middleware: checks the admin token for every `/v1` request. Reading the
/// revocation feed (`GET /v1/revocations`) also accepts a feed token
/// ([`feed_capability`]); the rules are otherwise the same.
///
/// Cheap checks first, so that a token nobody should be able to use never
/// gets its Datalog evaluated (DESIGN.md, "Verification cost is bounded
/// before Datalog runs"): size, signatures and the holder chain
/// ([`Verified::from_bytes`](token::Verified::from_bytes)); expiry, from the
/// decoded claims; revocation of any block, from the store; the operator
/// agent and an undelegated chain. Only then the token's own checks, in
/// Datalog, on the blocking pool rather than on the async workers.
pub async fn require_admin(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let token = bearer(req.headers())
        .ok_or_else(|| ApiError::Unauthenticated("an admin token is required (Bearer)".into()))?
        .to_owned();
    let path = req.uri().path().to_owned();
    let reads_feed = req.method() == Method::GET && path == FEED_RESOURCE;
    let grant = admin_grant(&state, &token, &path, reads_feed).await?;
    req.extensions_mut().insert(grant);
    Ok(next.run(req).await)
}

/// The token of an `Authorization: Bearer` header, if there is one.
pub(crate) fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// Checks an admin token for `path` (the rules of [`require_admin`]);
/// with `or_feed`, a feed token is accepted too.
pub(crate) async fn admin_grant(
    state: &AppState,
    token: &str,
    path: &str,
    or_feed: bool,
) -> Result<Authorized, ApiError> {
    let now = state.now();
    let resource = Resource::parse(path).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let unauthenticated = |d: token::Denial| ApiError::Unauthenticated(d.to_string());

    // Size, signatures, holder chain: no Datalog.
    let bytes =
        token::decode(token, &state.limits).map_err(|e| unauthenticated(token::Denial::from(e)))?;
    let keys = state.ring().key_set(now);
    let verified =
        token::Verified::from_bytes(&bytes, &keys, &state.limits).map_err(unauthenticated)?;
    // Expiry, from the authority block's claims (a later block may only
    // shorten it; Datalog checks that below).
    let claims = &verified.chain().claims;
    if claims.expires_at <= now {
        return Err(ApiError::Unauthenticated(format!(
            "expired: the admin token expired at {}",
            claims.expires_at.to_rfc3339()
        )));
    }
    // Revocation of any block.
    for id in verified.revocation_ids() {
        if state
            .stores
            .revocations
            .is_revoked(&hex::encode(id))
            .await?
        {
            return Err(ApiError::Unauthenticated(
                "revoked: the admin token is revoked".into(),
            ));
        }
    }
    // Only the operator's own token, as minted from the root key: never an
    // agent's token (whatever its rights) and never a delegated one.
    if !verified.chain().hops.is_empty() || claims.agent.as_str() != ADMIN_AGENT {
        return Err(ApiError::Forbidden(
            "not an admin token: admin tokens come from `tessera admin token`".into(),
        ));
    }
    // The token's own checks, off the async workers.
    let limits = state.limits.clone();
    let decide = move |action: &str| {
        let authz = AuthzRequest {
            operation: Action::parse(action).map_err(|e| ApiError::Internal(e.to_string()))?,
            resource: resource.clone(),
            service: None,
            now,
            proven_key: None,
            amount: None,
        };
        verified
            .decide(&authz, &limits)
            .map_err(|d| match d.reason.status() {
                403 => ApiError::Forbidden(d.to_string()),
                _ => ApiError::Unauthenticated(d.to_string()),
            })
    };
    tokio::task::spawn_blocking(move || match decide(ADMIN_ACTION) {
        Err(ApiError::Forbidden(_)) if or_feed => decide(FEED_ACTION),
        other => other,
    })
    .await
    .map_err(|e| ApiError::Internal(format!("admin token check failed: {e}")))?
}

/// A public key as `ed25519/<hex>` or as an OKP JWK.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum KeyInput {
    Text(String),
    Jwk(OkpJwk),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CeilingInput {
    actions: Vec<String>,
    resources: Vec<String>,
    #[serde(default)]
    audiences: Vec<String>,
    #[serde(default)]
    max_ttl: Option<String>,
}

/// `POST /v1/agents` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentInput {
    id: String,
    public_key: KeyInput,
    #[serde(default)]
    description: String,
    ceiling: CeilingInput,
    /// Ping mode: where to POST `{"auth_req_id"}` (https, or loopback http
    /// where `[approval] loopback_http_notifications` allows).
    #[serde(default)]
    notification_endpoint: Option<String>,
    /// Where `/oauth/authorize` may send its codes (see
    /// [`super::redirect_uris`]).
    #[serde(default)]
    redirect_uris: Vec<String>,
}

/// A registration that passed [`validate`]: the parts of the agent record
/// the caller gives.
struct ValidAgent {
    id: AgentId,
    public_key: AgentKey,
    ceiling: Ceiling,
    description: String,
}

fn validate(input: AgentInput, max_ttl: Duration) -> Result<ValidAgent, ApiError> {
    let bad = |m: String| ApiError::bad_request(m);
    let id = AgentId::parse(&input.id).map_err(|e| bad(e.to_string()))?;
    let key = match input.public_key {
        KeyInput::Text(s) => parse_public_key(&s).map_err(|e| bad(e.to_string()))?,
        KeyInput::Jwk(jwk) => jwk
            .key()
            .and_then(|k| crate::jose::to_biscuit_key(&k))
            .map_err(|e| bad(format!("public_key: {e}")))?,
    };
    let public_key = AgentKey::from_public_key(&key).map_err(|e| bad(e.to_string()))?;
    if id.as_str().starts_with("agent://tessera/") {
        return Err(bad("agent ids under agent://tessera/ are reserved".into()));
    }
    Ok(ValidAgent {
        id,
        public_key,
        ceiling: validate_ceiling(input.ceiling, max_ttl)?,
        description: input.description,
    })
}

/// A ceiling as given, checked: reserved actions refused, patterns parsed,
/// `max_ttl` within the issuer's maximum.
pub(super) fn validate_ceiling(c: CeilingInput, max_ttl: Duration) -> Result<Ceiling, ApiError> {
    let bad = |m: String| ApiError::bad_request(m);
    if c.actions.iter().any(|a| a.starts_with("tessera:")) {
        return Err(bad(
            "actions starting with `tessera:` are reserved for the issuer".into(),
        ));
    }
    if c.actions.is_empty() || c.resources.is_empty() {
        return Err(bad(
            "the ceiling needs at least one action and one resource pattern".into(),
        ));
    }
    let actions = c
        .actions
        .iter()
        .map(|a| Action::parse(a))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    let resources = c
        .resources
        .iter()
        .map(|r| ResourcePattern::parse(r))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    let audiences = c
        .audiences
        .iter()
        .map(|a| Audience::parse(a))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    let ttl = match c.max_ttl {
        Some(t) => parse_duration(&t).map_err(|e| bad(e.to_string()))?,
        None => max_ttl,
    };
    if ttl.is_zero() || ttl > max_ttl {
        return Err(bad(format!(
            "max_ttl must be between 1s and the issuer's maximum of {}s",
            max_ttl.as_secs()
        )));
    }
    Ok(Ceiling {
        actions: dedup(actions),
        resources: dedup(resources),
        audiences: dedup(audiences),
        max_ttl: Duration::from_secs(ttl.as_secs()),
    })
}

/// `v` without repeats, in first-seen order.
fn dedup<T: Clone + Eq + std::hash::Hash>(v: Vec<T>) -> Vec<T> {
    let mut seen = HashSet::new();
    v.into_iter().filter(|x| seen.insert(x.clone())).collect()
}

pub(super) fn admin_event(
    state: &AppState,
    outcome: AuditOutcome,
    agent: Option<String>,
    grant: &Authorized,
) -> AuditEvent {
    AuditEvent {
        at: state.now(),
        kind: AuditKind::Admin,
        agent,
        token_id: None,
        capability: None,
        outcome,
        reason: None,
        remote_addr: None,
        chain: grant.chain.iter().map(ToString::to_string).collect(),
        person: None,
        amount: None,
        approval_id: None,
        revocation_ids: Vec::new(),
        service: None,
    }
}

/// `POST /v1/agents`: registers (or replaces) an agent.
pub async fn register_agent(
    State(state): State<AppState>,
    Extension(grant): Extension<Authorized>,
    addr: Option<Extension<ConnectInfo<SocketAddr>>>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let input: AgentInput = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid agent: {e}")))?;
    let notification_endpoint = input
        .notification_endpoint
        .as_deref()
        .map(|url| {
            super::notify::check_endpoint(url, state.config.approval.loopback_http_notifications)
        })
        .transpose()
        .map_err(ApiError::bad_request)?;
    let redirect_uris = super::redirect_uris::check_redirect_uris(&input.redirect_uris)
        .map_err(ApiError::bad_request)?;
    let ValidAgent {
        id,
        public_key,
        ceiling,
        description,
    } = validate(input, state.config.max_ttl.0)?;
    let now = state.now();
    let existing = state.stores.agents.get(id.as_str()).await?;
    let record = AgentRecord {
        id: id.clone(),
        public_key,
        description,
        ceiling,
        disabled: false,
        created_at: existing.as_ref().map_or(now, |e| e.created_at),
        updated_at: now,
        notification_endpoint,
        redirect_uris,
    };
    state.stores.agents.put(&record).await?;
    let mut ev = admin_event(
        &state,
        AuditOutcome::AgentRegistered,
        Some(id.to_string()),
        &grant,
    );
    ev.remote_addr = remote(addr);
    audit(&state, ev).await?;
    let status = if existing.is_some() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(record)).into_response())
}

/// `GET /v1/agents`.
pub async fn list_agents(
    State(state): State<AppState>,
) -> Result<Json<Vec<AgentRecord>>, ApiError> {
    Ok(Json(state.stores.agents.list().await?))
}

/// `GET /v1/agents/{id}`.
pub async fn get_agent(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<AgentRecord>, ApiError> {
    state
        .stores
        .agents
        .get(&id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no agent {id}")))
}

/// `DELETE /v1/agents/{id}`: disables the agent and revokes its tokens.
pub async fn disable_agent(
    State(state): State<AppState>,
    Extension(grant): Extension<Authorized>,
    addr: Option<Extension<ConnectInfo<SocketAddr>>>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let now = state.now();
    if !state.stores.agents.disable(&id, now).await? {
        return Err(ApiError::NotFound(format!("no agent {id}")));
    }
    let revoked = revoke_agent_tokens(&state, &id, "agent disabled").await?;
    let mut ev = admin_event(
        &state,
        AuditOutcome::AgentDisabled,
        Some(id.clone()),
        &grant,
    );
    ev.remote_addr = remote(addr);
    audit(&state, ev).await?;
    Ok(Json(
        json!({ "id": id, "disabled": true, "revoked": revoked }),
    ))
}

/// One acknowledged revocation.
#[derive(Debug, Serialize, Deserialize)]
pub struct Revoked {
    /// The revoked id, hex.
    pub revocation_id: String,
    /// Its position in the feed.
    pub cursor: String,
}

async fn revoke_one(state: &AppState, r: Revocation) -> Result<Revoked, ApiError> {
    let cursor = state.stores.revocations.revoke(&r).await?;
    state.metrics.revocations.inc();
    tracing::info!(target: "tessera::audit", revocation_id = %r.revocation_id, token_id = r.token_id.as_deref().unwrap_or(""), "revoked");
    Ok(Revoked {
        revocation_id: r.revocation_id,
        cursor: cursor.to_string(),
    })
}

async fn revoke_agent_tokens(
    state: &AppState,
    agent: &str,
    reason: &str,
) -> Result<Vec<Revoked>, ApiError> {
    let now = state.now();
    let mut out = Vec::new();
    for t in state.stores.tokens.outstanding(agent, now).await? {
        out.push(
            revoke_one(
                state,
                Revocation {
                    revocation_id: t.revocation_id,
                    token_id: Some(t.token_id),
                    agent: Some(agent.to_owned()),
                    reason: reason.to_owned(),
                    revoked_at: now,
                    expires_at: t.expires_at,
                },
            )
            .await?,
        );
    }
    Ok(out)
}

/// `POST /v1/revocations` body as sent: one of the four ways, each an
/// optional field (see [`RevokeWay`]), and an optional reason.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeBody {
    token: Option<String>,
    revocation_id: Option<String>,
    token_id: Option<String>,
    agent: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

/// What an operator revokes: exactly one of the four ways.
#[derive(Debug)]
enum RevokeWay {
    /// A token's last block: that token and all derived from it.
    Token(String),
    /// One revocation id, hex.
    RevocationId(String),
    /// A whole token from the ledger, by its id.
    TokenId(String),
    /// Every outstanding token of an agent.
    Agent(String),
}

impl RevokeWay {
    /// The one way `body` names; an error when it names none or several.
    fn of(body: &mut RevokeBody) -> Result<Self, ApiError> {
        let ways = [
            body.token.take().map(Self::Token),
            body.revocation_id.take().map(Self::RevocationId),
            body.token_id.take().map(Self::TokenId),
            body.agent.take().map(Self::Agent),
        ];
        let mut given = ways.into_iter().flatten();
        match (given.next(), given.next()) {
            (Some(way), None) => Ok(way),
            _ => Err(ApiError::bad_request(
                "give exactly one of token, revocation_id, token_id, agent",
            )),
        }
    }
}

/// `POST /v1/revocations`: by token (its last block: that token and all
/// derived from it), by revocation id, by token id (the whole token), or by
/// agent (every outstanding token). Answers only once the store acknowledged.
pub async fn revoke(
    State(state): State<AppState>,
    Extension(grant): Extension<Authorized>,
    addr: Option<Extension<ConnectInfo<SocketAddr>>>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let mut input: RevokeBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid revocation: {e}")))?;
    let now = state.now();
    let reason = input
        .reason
        .take()
        .unwrap_or_else(|| "revoked by an operator".into());
    if reason.len() > 512 {
        return Err(ApiError::bad_request("reason is longer than 512 bytes"));
    }
    let way = RevokeWay::of(&mut input)?;
    let latest = || now + chrono::Duration::seconds(Lifetime::MAX.as_secs() as i64);
    let (revoked, agent, token_id) = match way {
        RevokeWay::Token(t) => {
            let seen = token::inspect(&t, Some(&state.ring().key_set(now)), &state.limits)
                .map_err(|e| ApiError::bad_request(format!("token: {e}")))?;
            let last = seen
                .blocks
                .last()
                .ok_or_else(|| ApiError::bad_request("token has no blocks"))?;
            let r = Revocation {
                revocation_id: last.revocation_id.clone(),
                token_id: Some(seen.token_id.clone()),
                agent: Some(seen.agent.clone()),
                reason: reason.clone(),
                revoked_at: now,
                expires_at: seen.expires_at,
            };
            (
                vec![revoke_one(&state, r).await?],
                Some(seen.agent),
                Some(seen.token_id),
            )
        }
        RevokeWay::RevocationId(id) => {
            let bytes =
                hex::decode(&id).map_err(|_| ApiError::bad_request("revocation_id must be hex"))?;
            if bytes.len() != 64 {
                return Err(ApiError::bad_request(
                    "revocation_id must be 64 bytes (128 hex digits)",
                ));
            }
            let r = Revocation {
                revocation_id: id.to_ascii_lowercase(),
                token_id: None,
                agent: None,
                reason: reason.clone(),
                revoked_at: now,
                // Unknown token: keep it for the longest lifetime any token has.
                expires_at: latest(),
            };
            (vec![revoke_one(&state, r).await?], None, None)
        }
        RevokeWay::TokenId(tid) => {
            let t = state
                .stores
                .tokens
                .get(&tid)
                .await?
                .ok_or_else(|| ApiError::NotFound(format!("no token {tid}")))?;
            let agent = t.agent.to_string();
            let r = Revocation {
                revocation_id: t.revocation_id,
                token_id: Some(t.token_id),
                agent: Some(agent.clone()),
                reason: reason.clone(),
                revoked_at: now,
                expires_at: t.expires_at,
            };
            (vec![revoke_one(&state, r).await?], Some(agent), Some(tid))
        }
        RevokeWay::Agent(agent) => {
            let id = AgentId::parse(&agent).map_err(|e| ApiError::bad_request(e.to_string()))?;
            (
                revoke_agent_tokens(&state, id.as_str(), &reason).await?,
                Some(agent),
                None,
            )
        }
    };
    let mut ev = admin_event(&state, AuditOutcome::Revoked, agent, &grant);
    ev.kind = AuditKind::Revocation;
    ev.token_id = token_id;
    ev.reason = Some(reason);
    ev.remote_addr = remote(addr);
    if let Err(e) = audit(&state, ev).await {
        tracing::warn!(error = %e, "revocation recorded, audit event lost");
    }
    Ok((StatusCode::CREATED, Json(json!({ "revoked": revoked }))).into_response())
}

/// Query of the revocation feed.
#[derive(Debug, Deserialize)]
pub struct FeedQuery {
    after: Option<String>,
    wait: Option<u64>,
    limit: Option<usize>,
}

/// `GET /v1/revocations?after=&wait=&limit=`: the feed verifiers follow.
pub async fn feed(
    State(state): State<AppState>,
    Query(q): Query<FeedQuery>,
) -> Result<Json<FeedPage>, ApiError> {
    let after = q.after.filter(|a| !a.is_empty()).map(Cursor::new);
    let limit = q.limit.unwrap_or(1000).clamp(1, 10_000);
    let wait = Duration::from_secs(q.wait.unwrap_or(0).min(60));
    let entries = if wait.is_zero() {
        state.stores.revocations.feed(after.as_ref(), limit).await?
    } else {
        state
            .stores
            .revocations
            .wait(after.as_ref(), limit, wait)
            .await?
    };
    let next = entries.last().map(|(c, _)| c.clone()).or(after);
    let entries = entries
        .into_iter()
        .map(|(cursor, revocation)| FeedEntry { cursor, revocation })
        .collect();
    Ok(Json(FeedPage { entries, next }))
}

/// Query of the audit log.
#[derive(Debug, Deserialize)]
pub struct AuditParams {
    agent: Option<String>,
    token_id: Option<String>,
    person_issuer: Option<String>,
    person_subject: Option<String>,
    after: Option<String>,
    limit: Option<usize>,
    chain_agent: Option<String>,
    revocation_id: Option<String>,
    kind: Option<String>,
    outcome: Option<String>,
    since: Option<String>,
    until: Option<String>,
}

/// An RFC 3339 time of a query, or a 400 naming the parameter.
fn query_time(
    name: &str,
    value: Option<&str>,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, ApiError> {
    value
        .filter(|v| !v.is_empty())
        .map(|v| {
            chrono::DateTime::parse_from_rfc3339(v)
                .map(|t| t.with_timezone(&chrono::Utc))
                .map_err(|_| ApiError::bad_request(format!("{name} is not an RFC 3339 time")))
        })
        .transpose()
}

/// `GET /v1/audit?agent=&token_id=&person_issuer=&person_subject=&after=&limit=`
/// (the person filter needs both `person_issuer` and `person_subject`).
pub async fn audit_log(
    State(state): State<AppState>,
    Query(q): Query<AuditParams>,
) -> Result<Json<AuditPage>, ApiError> {
    let person = match (q.person_issuer, q.person_subject) {
        (None, None) => None,
        (Some(issuer), Some(subject)) => Some(
            token::Person::parse(&issuer, &subject)
                .map_err(|e| ApiError::bad_request(format!("person: {e}")))?,
        ),
        _ => {
            return Err(ApiError::bad_request(
                "give both person_issuer and person_subject, or neither",
            ))
        }
    };
    let kind = q
        .kind
        .as_deref()
        .filter(|k| !k.is_empty())
        .map(|k| {
            serde_json::from_value(serde_json::Value::String(k.to_owned()))
                .map_err(|_| ApiError::bad_request("kind is not a known audit kind"))
        })
        .transpose()?;
    let since = query_time("since", q.since.as_deref())?;
    let until = query_time("until", q.until.as_deref())?;
    if let (Some(since), Some(until)) = (since, until) {
        if since >= until {
            return Err(ApiError::bad_request("since must be before until"));
        }
    }
    let query = AuditQuery {
        agent: q.agent,
        token_id: q.token_id,
        person,
        after: q.after.filter(|a| !a.is_empty()).map(Cursor::new),
        limit: q.limit.unwrap_or(100).clamp(1, 1000),
        in_chain: q.chain_agent.filter(|a| !a.is_empty()),
        revocation_id: q.revocation_id.filter(|r| !r.is_empty()),
        kind,
        outcome: q.outcome.filter(|o| !o.is_empty()).map(AuditOutcome::from),
        since,
        until,
    };
    let events = state.stores.audit.query(&query).await?;
    let next = events.last().map(|(c, _)| c.clone());
    let events = events
        .into_iter()
        .map(|(cursor, event)| AuditEntry { cursor, event })
        .collect();
    Ok(Json(AuditPage { events, next }))
}
