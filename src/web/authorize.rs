//! `GET /oauth/authorize`: the authorization endpoint of the
//! authorization-code flow with PKCE (RFC 6749 §4.1, RFC 7636, RFC 8707
//! `resource`, RFC 9207 `iss`), for clients known by their Client ID
//! Metadata Document, and for registered agents with `redirect_uris`
//! (the agent id is the `client_id`; the record's URIs are compared
//! exactly and its ceiling bounds what may be granted; it redeems the code
//! with `private_key_jwt`). A registered agent with `redirect_uris` is
//! taken from the registry even when its id is also a metadata URL.
//!
//! Until the redirect URI is known to be one of the client's, every
//! refusal is an error page (never a redirect: RFC 6749 §4.1.2.1). After
//! it, refusals go back to the client as `error=...&state=...&iss=...`.
//! A person not logged in is sent to `/login` and back here; a logged-in
//! person sees the consent page ([`super::consent`]), or, when a
//! remembered consent covers the request, the client gets its code at
//! once. What may be granted: [`super::grant`].
//!
//! The pending request travels in the consent form, signed and bound to
//! the session ([`Pending`]): nothing is kept on the server for a stranger.

use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::grant::{self, Allowance};
use super::page::{see_other, ErrorPage};
use super::session::{login_url, rights, Session};
use super::{consent, refused, web};
use crate::people::rights::Limits;
use crate::server::authcode::{new_family_id, new_secret, CODE_LIFE_SECS};
use crate::server::AppState;
use crate::store::authcode::{secret_hash, AuthCode};
use crate::token::{Action, AgentId, Audience, Person, ResourcePattern};

/// How long a consent page may stay open.
pub const PENDING_TTL: Duration = Duration::from_secs(600);
/// Longest `state` accepted, bytes.
pub const MAX_STATE: usize = 512;
/// Most scopes in one request.
pub const MAX_SCOPES: usize = 32;
/// The label the pending request is signed under.
pub(super) const PENDING_LABEL: &str = "tessera-authorize";

/// A validated request waiting for the person's decision, signed into the
/// consent form (signed, not encrypted: it holds nothing secret).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Pending {
    /// The session the page was shown in.
    pub sid: String,
    pub client_id: String,
    pub client_name: Option<String>,
    pub client_uri: Option<String>,
    pub redirect_uri: String,
    pub resource: Audience,
    pub pattern: ResourcePattern,
    /// The scopes offered (those that may be granted).
    pub scopes: Vec<Action>,
    pub challenge: String,
    pub state: Option<String>,
    /// Whether the client redeems the code with its client assertion.
    #[serde(default)]
    pub confidential: bool,
}

/// A client as this endpoint knows it.
struct Client {
    name: Option<String>,
    uri: Option<String>,
    redirect_uris: Vec<String>,
    allowance: Allowance,
    /// A registered agent, or a document declaring `private_key_jwt`: its
    /// codes are redeemed only with its client assertion.
    confidential: bool,
}

/// The client's answer: a redirect to `redirect_uri` with `params`, the
/// `state` when one came, and `iss` (RFC 9207).
pub(super) fn back(
    state: &AppState,
    redirect_uri: &str,
    params: &[(&str, &str)],
    client_state: Option<&str>,
) -> Response {
    let mut pairs: Vec<(&str, &str)> = params.to_vec();
    if let Some(s) = client_state {
        pairs.push(("state", s));
    }
    pairs.push(("iss", &state.issuer));
    let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
    let sep = if redirect_uri.contains('?') { '&' } else { '?' };
    see_other(&format!("{redirect_uri}{sep}{query}"))
}

/// An OAuth error sent back to the client.
pub(super) fn back_error(
    state: &AppState,
    redirect_uri: &str,
    error: &'static str,
    description: &str,
    client_state: Option<&str>,
) -> Response {
    refused(state, error);
    back(
        state,
        redirect_uri,
        &[("error", error), ("error_description", description)],
        client_state,
    )
}

fn store_down() -> ErrorPage {
    ErrorPage::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "the store cannot be reached; nothing was granted, try again later",
    )
}

/// The registered agent `id`, when it is one and has `redirect_uris`.
async fn registered(state: &AppState, id: &str) -> Result<Option<Client>, ErrorPage> {
    let Ok(agent) = AgentId::parse(id) else {
        return Ok(None);
    };
    let record = state
        .stores
        .agents
        .get(agent.as_str())
        .await
        .map_err(|_| store_down())?;
    match record {
        Some(r) if !r.redirect_uris.is_empty() => {
            if r.disabled {
                return Err(ErrorPage::forbidden("this client is disabled"));
            }
            Ok(Some(Client {
                name: Some(r.description).filter(|d| !d.is_empty()),
                uri: None,
                redirect_uris: r.redirect_uris,
                allowance: Allowance::Agent(r.ceiling),
                confidential: true,
            }))
        }
        _ => Ok(None),
    }
}

async fn client(state: &AppState, id: &str, now: DateTime<Utc>) -> Result<Client, ErrorPage> {
    if let Some(c) = registered(state, id).await? {
        return Ok(c);
    }
    if !state.client_metadata.is_metadata_url(id) {
        return Err(ErrorPage::bad_request(
            "client_id must be a registered agent with redirect_uris, \
             or the https URL of the client's metadata document",
        ));
    }
    let doc = state.client_metadata.get(id, now).await.map_err(|e| {
        ErrorPage::bad_request(format!("the client's metadata document is refused: {e}"))
    })?;
    let agent = match AgentId::parse(id) {
        Ok(a) => state
            .stores
            .agents
            .get(a.as_str())
            .await
            .map_err(|_| store_down())?,
        Err(_) => None,
    };
    let confidential = agent.is_some()
        || doc.token_endpoint_auth_method == crate::server::cimd::AuthMethod::PrivateKeyJwt;
    let allowance = match agent {
        Some(record) if record.disabled => {
            return Err(ErrorPage::forbidden("this client is disabled"))
        }
        Some(record) => Allowance::Agent(record.ceiling),
        None => Allowance::Document(doc.scope.as_deref().map(|s| {
            s.split_whitespace()
                .filter_map(|a| Action::parse(a).ok())
                .collect()
        })),
    };
    Ok(Client {
        name: doc.client_name.clone(),
        uri: doc.client_uri.clone(),
        redirect_uris: doc.redirect_uris.clone(),
        allowance,
        confidential,
    })
}

/// `GET /oauth/authorize`.
pub async fn authorize(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    RawQuery(query): RawQuery,
) -> Response {
    match run(&state, &headers, &uri, query.as_deref().unwrap_or("")).await {
        Ok(r) | Err(r) => r,
    }
}

async fn run(
    state: &AppState,
    headers: &HeaderMap,
    uri: &Uri,
    query: &str,
) -> Result<Response, Response> {
    let page = |e: ErrorPage| e.into_response();
    let web = web(state).map_err(page)?;
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).map_err(|_| {
        page(ErrorPage::bad_request(
            "the address of this page is malformed",
        ))
    })?;
    if pairs.len() > super::csrf::MAX_FIELDS {
        return Err(page(ErrorPage::bad_request("too many parameters")));
    }
    let one = |name: &str| -> Result<Option<&str>, ()> {
        let mut v = pairs.iter().filter(|(k, _)| k == name);
        match (v.next(), v.next()) {
            (None, _) => Ok(None),
            (Some((_, x)), None) => Ok(Some(x.as_str())),
            _ => Err(()),
        }
    };
    let required = |name: &'static str| -> Result<&str, ErrorPage> {
        one(name)
            .ok()
            .flatten()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                refused(state, "authorize_request");
                ErrorPage::bad_request(format!(
                    "{name} is missing or repeated; this request cannot go back to the application"
                ))
            })
    };
    let now = state.now();
    let client_id = required("client_id").map_err(page)?;
    let client = client(state, client_id, now).await.map_err(|e| {
        refused(state, "authorize_client");
        page(e)
    })?;
    let redirect_uri = required("redirect_uri").map_err(page)?;
    if !client.redirect_uris.iter().any(|r| r == redirect_uri) {
        refused(state, "redirect_uri");
        return Err(page(ErrorPage::bad_request(
            "redirect_uri is not one of this client's redirect URIs (compared exactly); \
             you were not sent back to it",
        )));
    }
    // From here on, refusals go back to the client.
    let client_state = one("state").ok().flatten();
    let fail =
        |error: &'static str, d: &str| back_error(state, redirect_uri, error, d, client_state);
    if one("state").is_err() || client_state.is_some_and(|s| s.len() > MAX_STATE) {
        return Err(fail("invalid_request", "state is repeated or too long"));
    }
    match one("response_type") {
        Ok(Some("code")) => {}
        Ok(_) => {
            return Err(fail(
                "unsupported_response_type",
                "response_type must be code",
            ));
        }
        Err(()) => return Err(fail("invalid_request", "response_type is repeated")),
    }
    if one("code_challenge_method") != Ok(Some("S256")) {
        return Err(fail(
            "invalid_request",
            "PKCE is required with code_challenge_method=S256",
        ));
    }
    let challenge = match one("code_challenge") {
        Ok(Some(c))
            if c.len() == 43
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            c.to_owned()
        }
        _ => {
            return Err(fail(
                "invalid_request",
                "code_challenge must be the base64url SHA-256 of the verifier (43 characters)",
            ))
        }
    };
    let resource = match one("resource") {
        Ok(Some(r)) => Audience::parse(r)
            .map_err(|_| fail("invalid_target", "resource is not an absolute URI"))?,
        _ => {
            return Err(fail(
                "invalid_target",
                "resource (the MCP server's URL) is required, once",
            ))
        }
    };
    if !grant::served(&state.config.role, &client.allowance, &resource) {
        return Err(fail(
            "invalid_target",
            "this issuer makes no tokens for that resource",
        ));
    }
    let asked: Option<Vec<Action>> = match one("scope") {
        Ok(None) => None,
        Ok(Some(s)) => {
            let list: Result<Vec<Action>, _> = s.split_whitespace().map(Action::parse).collect();
            match list {
                Ok(l) if !l.is_empty() && l.len() <= MAX_SCOPES => Some(l),
                _ => {
                    return Err(fail(
                        "invalid_scope",
                        "scope must be 1 to 32 action names separated by spaces",
                    ))
                }
            }
        }
        Err(()) => return Err(fail("invalid_request", "scope is repeated")),
    };
    let Some(session) = web.session(headers, now) else {
        let here = uri.path_and_query().map_or("/", |p| p.as_str());
        return Ok(see_other(&login_url(here)));
    };
    let rights = rights(state, &session)
        .await
        .map_err(|_| page(store_down()))?;
    let held = grant::held(&state.config.role, &rights);
    let mut requested = asked.unwrap_or_else(|| grant::default_scopes(&held, &resource));
    requested.dedup();
    // An action the operator marked for approval is approved per use
    // (POST /oauth/bc-authorize), never consented to once for a client.
    let before = requested.len();
    requested.retain(|a| state.config.approval.rule_for(a).is_none());
    if requested.is_empty() && before > 0 {
        return Err(fail(
            "invalid_scope",
            "the requested scopes need the person's approval for each use (POST /oauth/bc-authorize), not a consent",
        ));
    }
    let limits = Limits {
        max_ttl: state.config.max_ttl.0,
        default_ttl: state.config.default_ttl.0,
    };
    let Some(g) = grant::grantable(
        &held,
        &rights,
        &client.allowance,
        &requested,
        &resource,
        limits,
    ) else {
        return Err(fail(
            "invalid_scope",
            "none of the requested scopes may be granted to this client for you at this resource",
        ));
    };
    let pending = Pending {
        sid: session.id.clone(),
        client_id: client_id.to_owned(),
        client_name: client.name,
        client_uri: client.uri,
        redirect_uri: redirect_uri.to_owned(),
        resource,
        pattern: g.pattern,
        scopes: g.scopes,
        challenge,
        state: client_state.map(str::to_owned),
        confidential: client.confidential,
    };
    if let Some(r) = remembered(state, &session, &pending).await? {
        return Ok(r);
    }
    let expires = now + chrono::Duration::seconds(PENDING_TTL.as_secs() as i64);
    let sealed = web
        .key()
        .seal(PENDING_LABEL, &pending, expires)
        .map_err(|_| {
            fail(
                "invalid_request",
                "the request is too large to show a consent page for",
            )
        })?;
    Ok(consent::render(web, &session, &pending, &sealed))
}

/// When the person remembered a consent covering every offered scope for
/// this client and resource: the code, at once.
async fn remembered(
    state: &AppState,
    session: &Session,
    p: &Pending,
) -> Result<Option<Response>, Response> {
    let page = |e: ErrorPage| e.into_response();
    let list = state
        .stores
        .authcodes
        .remembered(&session.person)
        .await
        .map_err(|_| page(store_down()))?;
    let covered = list.iter().any(|c| {
        c.client_id == p.client_id
            && c.resource == p.resource
            && p.scopes.iter().all(|s| c.scopes.contains(s))
    });
    if !covered {
        return Ok(None);
    }
    let (code, family) = issue_code(state, &session.person, p, p.scopes.clone())
        .await
        .map_err(page)?;
    state
        .stores
        .authcodes
        .add_consent_family(&session.person, &p.client_id, &p.resource, &family)
        .await
        .map_err(|_| page(store_down()))?;
    Ok(Some(back(
        state,
        &p.redirect_uri,
        &[("code", &code)],
        p.state.as_deref(),
    )))
}

/// Stores a new code for `scopes` of the pending request; the code and its
/// refresh family's id.
pub(super) async fn issue_code(
    state: &AppState,
    person: &Person,
    p: &Pending,
    scopes: Vec<Action>,
) -> Result<(String, String), ErrorPage> {
    let now = state.now();
    let code = new_secret();
    let family_id = new_family_id();
    let record = AuthCode {
        code_hash: secret_hash(&code),
        client_id: p.client_id.clone(),
        redirect_uri: p.redirect_uri.clone(),
        resource: p.resource.clone(),
        pattern: p.pattern.clone(),
        scopes,
        code_challenge: p.challenge.clone(),
        person: person.clone(),
        family_id: family_id.clone(),
        expires_at: now + chrono::Duration::seconds(CODE_LIFE_SECS),
        confidential: p.confidential,
    };
    state
        .stores
        .authcodes
        .put_code(&record, now)
        .await
        .map_err(|_| store_down())?;
    tracing::info!(client = %p.client_id, person = %person, resource = %p.resource, "authorization code issued");
    Ok((code, family_id))
}
