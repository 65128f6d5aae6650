//! An issuer that trusts the test IdP, with roles, and an agent that may
//! act for alice (her `may_act` names `agent://acme/planner`).

use serde_json::Value;
use tessera::people::{IdpConfig, Role, SigningAlgorithm};
use tessera::server::oauth::JWT_BEARER;

use super::idp::TestIdp;
use crate::server::helpers::{Reply, TestAgent, TestApp, AUDIENCE};

/// The agent alice's `may_act` names.
pub const PLANNER: &str = "agent://acme/planner";
/// The IdP client Tessera trusts ID tokens of (their audience).
pub const CLIENT: &str = "tessera-eddsa";
/// Scopes that release groups and `may_act`.
pub const SCOPE: &str = "openid groups may_act";
pub const ID_TOKEN: &str = "urn:ietf:params:oauth:token-type:id_token";
pub const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

pub fn idp_config(idp: &TestIdp, skew: u32) -> IdpConfig {
    IdpConfig {
        issuer: idp.issuer.clone(),
        audience: CLIENT.to_owned(),
        groups_claim: "groups".to_owned(),
        algorithms: SigningAlgorithm::ALL.to_vec(),
        clock_skew_secs: skew,
    }
}

/// `docs:read` on `docs/*` at the test audience for 5 minutes, held by
/// the members of `group`.
pub fn reader_role(group: &str) -> Role {
    toml::from_str(&format!(
        "name = \"reader\"\nactions = [\"docs:read\"]\nresources = [\"docs/*\"]\n\
         audiences = [\"{AUDIENCE}\"]\nmax_ttl = \"5m\"\ngroups = [\"{group}\"]\n"
    ))
    .unwrap()
}

/// An issuer trusting `idp`, with `roles` (alice is in `finance` and `staff`).
pub async fn app_with(idp: &TestIdp, roles: Vec<Role>, skew: u32) -> TestApp {
    let config = idp_config(idp, skew);
    TestApp::spawn_with(None, move |c| {
        c.idp = vec![config];
        c.role = roles;
    })
    .await
}

/// The usual issuer: the reader role for `finance`.
pub async fn app(idp: &TestIdp) -> TestApp {
    app_with(idp, vec![reader_role("finance")], 30).await
}

/// Registers an agent with this id: `docs:read` and `docs:write` on
/// `docs/team-a/*` at the test audience, 10 minutes.
pub async fn register(app: &TestApp, id: &str) -> TestAgent {
    let agent = TestAgent {
        id: id.to_owned(),
        key: ed25519_dalek::SigningKey::from_bytes(&rand::random::<[u8; 32]>()),
    };
    app.register_agent(
        &agent,
        &["docs:read", "docs:write"],
        &["docs/team-a/*"],
        &[AUDIENCE],
        Some("10m"),
    )
    .await;
    agent
}

/// A token-exchange form for `agent`, asking `action` on `resource` at the
/// test audience, plus `extra`.
pub fn exchange_form<'a>(
    app: &TestApp,
    agent: &TestAgent,
    subject: &str,
    subject_type: &str,
    action: &str,
    resource: &str,
    extra: &[(&'a str, &str)],
) -> Vec<(&'a str, String)> {
    let mut form = vec![
        ("grant_type", TOKEN_EXCHANGE.to_owned()),
        ("client_assertion_type", JWT_BEARER.to_owned()),
        ("client_assertion", app.assertion(agent).build()),
        ("subject_token", subject.to_owned()),
        ("subject_token_type", subject_type.to_owned()),
        ("scope", action.to_owned()),
        ("identifier", resource.to_owned()),
        ("resource", AUDIENCE.to_owned()),
    ];
    form.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    form
}

/// Exchanges `subject` for `docs:read` on `resource`.
pub async fn exchange(
    app: &TestApp,
    agent: &TestAgent,
    subject: &str,
    kind: &str,
    resource: &str,
) -> Reply {
    let form = exchange_form(app, agent, subject, kind, "docs:read", resource, &[]);
    app.request_token(&form, None).await
}

/// The authority block's Datalog of a token this issuer minted.
pub fn authority(app: &TestApp, token: &str) -> String {
    app.inspect(token).blocks[0].datalog.clone()
}

/// The audit events (newest last) as JSON.
pub async fn audit(app: &TestApp) -> Vec<Value> {
    let r = app.admin_get("/v1/audit?limit=1000").await;
    assert!(r.status.is_success(), "{}", r.text);
    r.json["events"]
        .as_array()
        .map(|all| all.iter().map(|e| e["event"].clone()).collect())
        .unwrap_or_default()
}

/// How many tokens the audit log says were granted to `agent`.
pub async fn grants(app: &TestApp, agent: &str) -> usize {
    audit(app)
        .await
        .iter()
        .filter(|e| e["kind"] == "mint" && e["outcome"] == "granted" && e["agent"] == agent)
        .count()
}

/// Whether any token was granted to `agent`.
pub async fn granted_to(app: &TestApp, agent: &str) -> bool {
    grants(app, agent).await > 0
}
