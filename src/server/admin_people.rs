//! The admin API for people (issue 11): explicit roles and standing
//! consents, under `/v1/people`, behind the same admin token as the rest
//! of `/v1` ([`super::admin::require_admin`]).
//!
//! A person is the pair (IdP issuer, subject). The issuer is a URL, so it
//! never goes into a path segment: writes take it in the JSON body, reads
//! and deletions in the query string (`issuer`, `subject`).
//!
//! - `GET /v1/people?issuer=&subject=`: the person's explicit roles, the
//!   configured definitions of those roles, and their standing consents.
//! - `POST /v1/people/roles` `{issuer, subject, role}`: gives a configured role.
//! - `DELETE /v1/people/roles?issuer=&subject=&role=`: takes it back.
//! - `POST /v1/people/consents` `{issuer, subject, agent}`: records a
//!   standing consent for a registered agent.
//! - `DELETE /v1/people/consents?issuer=&subject=&agent=`: withdraws it.
//!
//! Each change is an audit event (kind `admin`, with `person` set); a call
//! that changes nothing (granting a role held already) answers
//! `"changed": false` and records nothing.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::error::{quoted, ApiError};
use super::oauth::{audit, remote};
use super::state::AppState;
use crate::people::{Role, RoleName};
use crate::records::AuditOutcome;
use crate::store::{AuditEvent, AuditKind};
use crate::token::{AgentId, Authorized, Person};

/// Who the call is about, as sent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PersonInput {
    issuer: String,
    subject: String,
}

/// `POST /v1/people/roles` body and `DELETE /v1/people/roles` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleInput {
    issuer: String,
    subject: String,
    role: String,
}

/// `POST /v1/people/consents` body and `DELETE /v1/people/consents` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsentInput {
    issuer: String,
    subject: String,
    agent: String,
}

/// What `GET /v1/people` answers.
#[derive(Debug, Serialize, Deserialize)]
pub struct PersonView {
    /// The IdP issuer URL.
    pub issuer: String,
    /// The subject at that IdP.
    pub subject: String,
    /// Roles given explicitly (roles from IdP groups show only in a token
    /// exchange, since they come from the person's token).
    pub roles: Vec<RoleName>,
    /// The configured definitions of those roles.
    pub role_definitions: Vec<Role>,
    /// Explicit roles that the configuration no longer defines: they give
    /// nothing until defined again.
    pub undefined_roles: Vec<RoleName>,
    /// Agents the person has a standing consent for.
    pub consents: Vec<AgentId>,
}

/// What a change answers.
#[derive(Debug, Serialize, Deserialize)]
pub struct PersonChange {
    /// The IdP issuer URL.
    pub issuer: String,
    /// The subject at that IdP.
    pub subject: String,
    /// The role given or taken, if the call was about a role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<RoleName>,
    /// The agent, if the call was about a consent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentId>,
    /// Whether anything changed (false: granted or withdrawn already).
    pub changed: bool,
}

fn person_of(issuer: &str, subject: &str) -> Result<Person, ApiError> {
    Person::parse(issuer, subject).map_err(|e| ApiError::bad_request(format!("person: {e}")))
}

fn body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::bad_request(format!("invalid body: {e}")))
}

fn query<T: DeserializeOwned>(raw: Option<String>) -> Result<T, ApiError> {
    serde_urlencoded::from_str(raw.as_deref().unwrap_or(""))
        .map_err(|e| ApiError::bad_request(format!("invalid query: {e}")))
}

fn role_name(text: &str) -> Result<RoleName, ApiError> {
    RoleName::parse(text).map_err(|e| ApiError::bad_request(e.to_string()))
}

fn agent_id(text: &str) -> Result<AgentId, ApiError> {
    AgentId::parse(text).map_err(|e| ApiError::bad_request(format!("agent: {e}")))
}

/// A role the configuration defines; else `invalid_request` naming the
/// roles it does define.
fn configured(state: &AppState, text: &str) -> Result<RoleName, ApiError> {
    let name = role_name(text)?;
    if state.config.role.iter().any(|r| r.name == name) {
        return Ok(name);
    }
    let known: Vec<&str> = state.config.role.iter().map(|r| r.name.as_str()).collect();
    Err(ApiError::bad_request(if known.is_empty() {
        format!(
            "unknown role {}: the configuration defines no [[role]]",
            quoted(text)
        )
    } else {
        format!(
            "unknown role {}: known roles are {}",
            quoted(text),
            known.join(", ")
        )
    }))
}

/// The audit event of a change to `person`.
fn person_event(
    state: &AppState,
    grant: &Authorized,
    addr: Option<Extension<ConnectInfo<SocketAddr>>>,
    outcome: AuditOutcome,
    person: &Person,
    agent: Option<&AgentId>,
    role: Option<&RoleName>,
) -> AuditEvent {
    AuditEvent {
        at: state.now(),
        kind: AuditKind::Admin,
        agent: agent.map(ToString::to_string),
        token_id: None,
        capability: role.map(|r| format!("role {r}")),
        outcome,
        reason: None,
        remote_addr: remote(addr),
        chain: grant.chain.iter().map(ToString::to_string).collect(),
        person: Some(person.clone()),
        amount: None,
        approval_id: None,
        revocation_ids: Vec::new(),
        service: None,
    }
}

/// One change to a person, for its audit event and the answer.
struct Change {
    outcome: AuditOutcome,
    person: Person,
    role: Option<RoleName>,
    agent: Option<AgentId>,
    /// Whether the store changed anything.
    changed: bool,
    /// Whether a change is a creation (201) rather than a removal (200).
    created: bool,
}

/// Audits a change that happened, then answers with it: 201 for something
/// created now, 200 otherwise.
async fn finish(
    state: &AppState,
    grant: &Authorized,
    addr: Option<Extension<ConnectInfo<SocketAddr>>>,
    c: Change,
) -> Result<Response, ApiError> {
    if c.changed {
        let ev = person_event(
            state,
            grant,
            addr,
            c.outcome,
            &c.person,
            c.agent.as_ref(),
            c.role.as_ref(),
        );
        audit(state, ev).await?;
    }
    let status = if c.created && c.changed {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let change = PersonChange {
        issuer: c.person.issuer().to_owned(),
        subject: c.person.subject().to_owned(),
        role: c.role,
        agent: c.agent,
        changed: c.changed,
    };
    Ok((status, Json(change)).into_response())
}

/// `GET /v1/people?issuer=&subject=`.
pub async fn show_person(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<PersonView>, ApiError> {
    let input: PersonInput = query(raw)?;
    let person = person_of(&input.issuer, &input.subject)?;
    let people = &state.stores.people;
    let (roles, consents) = tokio::try_join!(people.roles(&person), people.consents(&person))?;
    let (role_definitions, undefined_roles) = roles.iter().fold(
        (Vec::new(), Vec::new()),
        |(mut defined, mut undefined), name| {
            match state.config.role.iter().find(|r| &r.name == name) {
                Some(role) => defined.push(role.clone()),
                None => undefined.push(name.clone()),
            }
            (defined, undefined)
        },
    );
    Ok(Json(PersonView {
        issuer: input.issuer,
        subject: input.subject,
        roles,
        role_definitions,
        undefined_roles,
        consents,
    }))
}

/// `POST /v1/people/roles`: gives a configured role; 201 when given now,
/// 200 when held already.
pub async fn grant_role(
    State(state): State<AppState>,
    Extension(grant): Extension<Authorized>,
    addr: Option<Extension<ConnectInfo<SocketAddr>>>,
    bytes: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let input: RoleInput = body(&bytes)?;
    let person = person_of(&input.issuer, &input.subject)?;
    let role = configured(&state, &input.role)?;
    let changed = state.stores.people.grant_role(&person, &role).await?;
    finish(
        &state,
        &grant,
        addr,
        Change {
            outcome: AuditOutcome::RoleGranted,
            person,
            role: Some(role),
            agent: None,
            changed,
            created: true,
        },
    )
    .await
}

/// `DELETE /v1/people/roles?issuer=&subject=&role=`: takes a role back. A
/// role the configuration no longer defines may be taken back too.
pub async fn revoke_role(
    State(state): State<AppState>,
    Extension(grant): Extension<Authorized>,
    addr: Option<Extension<ConnectInfo<SocketAddr>>>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let input: RoleInput = query(raw)?;
    let person = person_of(&input.issuer, &input.subject)?;
    let role = role_name(&input.role)?;
    let changed = state.stores.people.revoke_role(&person, &role).await?;
    finish(
        &state,
        &grant,
        addr,
        Change {
            outcome: AuditOutcome::RoleRevoked,
            person,
            role: Some(role),
            agent: None,
            changed,
            created: false,
        },
    )
    .await
}

/// `POST /v1/people/consents`: records a standing consent for a registered,
/// enabled agent; 201 when recorded now, 200 when recorded already.
pub async fn record_consent(
    State(state): State<AppState>,
    Extension(grant): Extension<Authorized>,
    addr: Option<Extension<ConnectInfo<SocketAddr>>>,
    bytes: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let input: ConsentInput = body(&bytes)?;
    let person = person_of(&input.issuer, &input.subject)?;
    let agent = agent_id(&input.agent)?;
    match state.stores.agents.get(agent.as_str()).await? {
        None => {
            return Err(ApiError::bad_request(format!(
                "agent {} is not registered",
                quoted(agent.as_str())
            )))
        }
        Some(record) if record.disabled => {
            return Err(ApiError::bad_request(format!(
                "agent {} is disabled",
                quoted(agent.as_str())
            )))
        }
        Some(_) => {}
    }
    let changed = state.stores.people.consent(&person, &agent).await?;
    finish(
        &state,
        &grant,
        addr,
        Change {
            outcome: AuditOutcome::ConsentRecorded,
            person,
            role: None,
            agent: Some(agent),
            changed,
            created: true,
        },
    )
    .await
}

/// `DELETE /v1/people/consents?issuer=&subject=&agent=`: withdraws a
/// standing consent (the agent need not be registered any more).
pub async fn withdraw_consent(
    State(state): State<AppState>,
    Extension(grant): Extension<Authorized>,
    addr: Option<Extension<ConnectInfo<SocketAddr>>>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let input: ConsentInput = query(raw)?;
    let person = person_of(&input.issuer, &input.subject)?;
    let agent = agent_id(&input.agent)?;
    let changed = state
        .stores
        .people
        .withdraw_consent(&person, &agent)
        .await?;
    finish(
        &state,
        &grant,
        addr,
        Change {
            outcome: AuditOutcome::ConsentWithdrawn,
            person,
            role: None,
            agent: Some(agent),
            changed,
            created: false,
        },
    )
    .await
}
