//! Admin changes beside registration: `PATCH /v1/agents/{id}` (an agent's
//! description or ceiling) and `POST /v1/keys/rotate` (a new active root
//! key). Both are authorized by [`require_admin`](super::admin::require_admin)
//! and audited.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{ConnectInfo, Path, State};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;

use super::admin::{admin_event, validate_ceiling, CeilingInput};
use super::error::ApiError;
use super::keyring::KeyRing;
use super::oauth::{audit, remote};
use super::state::AppState;
use crate::records::AuditOutcome;
use crate::store::AgentRecord;
use crate::token::{parse_duration, Authorized};

/// Longest description of an agent, in bytes.
const MAX_DESCRIPTION_BYTES: usize = 1024;

/// `PATCH /v1/agents/{id}` body: what changes. The key and the id do not
/// (register the agent again for a new key).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentUpdate {
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    ceiling: Option<CeilingInput>,
    /// Ping mode: where to POST `{"auth_req_id"}`; `""` removes it.
    #[serde(default)]
    notification_endpoint: Option<String>,
    /// Where `/oauth/authorize` may send its codes, replaced as a whole;
    /// `[]` removes them.
    #[serde(default)]
    redirect_uris: Option<Vec<String>>,
}

/// `PATCH /v1/agents/{id}`: changes an agent's description or ceiling
/// (audited as `agent updated`). A narrower ceiling applies to the next
/// token; tokens already issued keep what they say until they expire or
/// are revoked.
pub async fn update_agent(
    State(state): State<AppState>,
    Extension(grant): Extension<Authorized>,
    addr: Option<Extension<ConnectInfo<SocketAddr>>>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<AgentRecord>, ApiError> {
    let input: AgentUpdate = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid agent update: {e}")))?;
    if input.description.is_none()
        && input.ceiling.is_none()
        && input.notification_endpoint.is_none()
        && input.redirect_uris.is_none()
    {
        return Err(ApiError::bad_request(
            "give description, ceiling, notification_endpoint or redirect_uris",
        ));
    }
    let redirect_uris = input
        .redirect_uris
        .as_deref()
        .map(super::redirect_uris::check_redirect_uris)
        .transpose()
        .map_err(ApiError::bad_request)?;
    let endpoint = match input.notification_endpoint.as_deref() {
        None => None,
        Some("") => Some(None),
        Some(url) => Some(Some(
            super::notify::check_endpoint(url, state.config.approval.loopback_http_notifications)
                .map_err(ApiError::bad_request)?,
        )),
    };
    if input
        .description
        .as_ref()
        .is_some_and(|d| d.len() > MAX_DESCRIPTION_BYTES)
    {
        return Err(ApiError::bad_request(format!(
            "description is longer than {MAX_DESCRIPTION_BYTES} bytes"
        )));
    }
    let ceiling = input
        .ceiling
        .map(|c| validate_ceiling(c, state.config.max_ttl.0))
        .transpose()?;
    let mut record = state
        .stores
        .agents
        .get(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no agent {id}")))?;
    if let Some(d) = input.description {
        record.description = d;
    }
    if let Some(c) = ceiling {
        record.ceiling = c;
    }
    if let Some(e) = endpoint {
        record.notification_endpoint = e;
    }
    if let Some(r) = redirect_uris {
        record.redirect_uris = r;
    }
    record.updated_at = state.now();
    // Atomic against a concurrent disable, which stays.
    let record = state
        .stores
        .agents
        .update(&record)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no agent {id}")))?;
    let mut ev = admin_event(
        &state,
        AuditOutcome::AgentUpdated,
        Some(record.id.to_string()),
        &grant,
    );
    ev.remote_addr = remote(addr);
    audit(&state, ev).await?;
    Ok(Json(record))
}

/// `POST /v1/keys/rotate` body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateInput {
    /// How long the retired key stays published (default 24h).
    #[serde(default)]
    retire_after: Option<String>,
}

/// Longest time a retired root key stays published.
const MAX_RETIRE_AFTER: Duration = Duration::from_secs(90 * 24 * 3600);

/// `POST /v1/keys/rotate`: adds a new active root key to the ring; the
/// previous one is retired but still verifies, and stays published, for
/// `retire_after` (at least the issuer's `max_ttl`, so that every token it
/// signed expires before it goes). This process switches at once; other
/// processes sharing the key directory reload on SIGHUP. Audited as
/// `key rotated`.
pub async fn rotate_keys(
    State(state): State<AppState>,
    Extension(grant): Extension<Authorized>,
    addr: Option<Extension<ConnectInfo<SocketAddr>>>,
    body: axum::body::Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let input: RotateInput = if body.iter().all(u8::is_ascii_whitespace) {
        RotateInput::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid rotation: {e}")))?
    };
    let retire_after = match input.retire_after {
        Some(t) => parse_duration(&t).map_err(|e| ApiError::bad_request(e.to_string()))?,
        None => Duration::from_secs(24 * 3600),
    };
    let max_ttl = state.config.max_ttl.0;
    if retire_after < max_ttl || retire_after > MAX_RETIRE_AFTER {
        return Err(ApiError::bad_request(format!(
            "retire_after must be between the issuer's max_ttl ({}s) and {}s, so that \
             every token the old key signed expires while it still verifies",
            max_ttl.as_secs(),
            MAX_RETIRE_AFTER.as_secs()
        )));
    }
    let until = state.now()
        + chrono::Duration::from_std(retire_after)
            .map_err(|_| ApiError::bad_request("retire_after is too large"))?;
    let dir = state.config.keys_dir();
    let ring = tokio::task::spawn_blocking(move || {
        KeyRing::rotate(&dir, until).and_then(|_| KeyRing::load(&dir))
    })
    .await
    .map_err(|e| ApiError::Internal(format!("key rotation failed: {e}")))?
    .map_err(|e| ApiError::Internal(format!("key rotation failed: {e}")))?;
    let id = ring.active().id;
    state.replace_ring(ring);
    tracing::info!(active_key_id = id, retired_until = %until.to_rfc3339(), "root key rotated");
    let mut ev = admin_event(&state, AuditOutcome::KeyRotated, None, &grant);
    ev.reason = Some(format!("new active root key id {id}"));
    ev.remote_addr = remote(addr);
    audit(&state, ev).await?;
    Ok(Json(json!({
        "active_key_id": id,
        "retired_until": until.to_rfc3339(),
    })))
}
