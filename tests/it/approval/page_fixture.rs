//! The issuer of the approval-page tests: its pages log people in at the
//! real test IdP (tests/idp), payments always need approval, alice holds
//! the payer role and consents to the agent.

use reqwest::header::COOKIE;
use reqwest::StatusCode;
use serde_json::json;
use tessera::people::{Role, RoleName};
use tessera::server::approval_policy::{Always, ApprovalRule};
use tessera::server::Config;
use tessera::store::ApprovalStatus;
use tessera::token::{Action, AgentId, Person};
use tessera::web::{ClientAuth, LoginConfig};

use super::flow::bc_authorize;
use crate::people::fixture::idp_config;
use crate::people::idp::TestIdp;
use crate::server::helpers::{TestAgent, TestApp};
use crate::web::fixture::{login, plain, WEB_CLIENT};

pub(super) const PAY: &str = "https://pay.example";

/// An issuer whose pages log people in at `idp`, where payments always
/// need approval; alice holds the payer role and consents to the agent.
pub(super) struct Setup {
    pub idp: TestIdp,
    pub app: TestApp,
    pub agent: TestAgent,
}

fn payer_role() -> Role {
    toml::from_str(&format!(
        "name = \"payer\"\nactions = [\"payments:create\"]\nresources = [\"invoice:*\"]\n\
         audiences = [\"{PAY}\"]\nmax_ttl = \"5m\"\ngroups = [\"finance\"]\n"
    ))
    .unwrap()
}

/// [`Setup`], or `None` when the test IdP cannot run (said loudly).
pub(super) async fn setup(tweak: impl FnOnce(&mut Config)) -> Option<Setup> {
    let idp = TestIdp::start()?;
    let idp_conf = idp_config(&idp, 30);
    let issuer = idp.issuer.clone();
    let app = TestApp::spawn_with(None, move |c| {
        let secret_file = c.data_dir.join("login-client-secret");
        std::fs::write(&secret_file, format!("{WEB_CLIENT}-secret\n")).unwrap();
        c.idp = vec![idp_conf];
        c.role = vec![payer_role()];
        c.login = Some(LoginConfig {
            issuer,
            client_id: WEB_CLIENT.into(),
            client_secret_file: secret_file,
            scope: "openid groups".into(),
            client_auth: ClientAuth::ClientSecretPost,
        });
        c.approval.rule = vec![ApprovalRule {
            action: Action::parse("payments:create").unwrap(),
            approval: Some(Always::Always),
            approval_above: None,
        }];
        tweak(c);
    })
    .await;
    let agent = TestAgent::new("payer");
    app.register_agent(
        &agent,
        &["payments:create"],
        &["invoice:*"],
        &[PAY],
        Some("10m"),
    )
    .await;
    let alice = Person::parse(&idp.issuer, "alice").unwrap();
    let people = &app.state.stores.people;
    people
        .grant_role(&alice, &RoleName::parse("payer").unwrap())
        .await
        .unwrap();
    people
        .consent(&alice, &AgentId::parse(&agent.id).unwrap())
        .await
        .unwrap();
    Some(Setup { idp, app, agent })
}

impl Setup {
    /// The agent asks alice to approve paying invoice 42 (40.00 EUR); the
    /// `auth_req_id`.
    pub async fn ask(&self, extra: &[(&'static str, String)]) -> String {
        let details = json!([{
            "type": "tessera", "actions": ["payments:create"],
            "identifier": "invoice:42", "locations": [PAY],
            "amount": {"currency": "EUR", "value": 4000},
        }]);
        let mut form = vec![
            ("login_hint", format!("{}|alice", self.idp.issuer)),
            ("binding_message", "Pay invoice 42 <now>".to_owned()),
            ("authorization_details", details.to_string()),
        ];
        form.extend(extra.iter().cloned());
        let r = bc_authorize(&self.app, &self.agent, &form).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        r.json["auth_req_id"].as_str().unwrap().to_owned()
    }

    /// `tessera-session=<value>` of `person` logged in at the IdP.
    pub async fn session(&self, person: &str) -> String {
        format!(
            "tessera-session={}",
            login(&self.app, &self.idp, person).await
        )
    }

    pub fn page_url(&self, id: &str) -> String {
        self.app.url(&format!("/approvals/{id}"))
    }

    /// POSTs the approval form of `id` with `fields`, `cookie` and `headers`.
    pub async fn post(
        &self,
        id: &str,
        cookie: Option<&str>,
        fields: &[(&str, &str)],
        headers: &[(&'static str, &str)],
    ) -> (StatusCode, String) {
        let mut req = plain().post(self.page_url(id)).form(fields);
        if let Some(c) = cookie {
            req = req.header(COOKIE, c);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.unwrap();
        (resp.status(), resp.text().await.unwrap())
    }

    pub async fn status_of(&self, id: &str) -> ApprovalStatus {
        let a = self.app.state.stores.approvals.get(id).await.unwrap();
        a.unwrap().status
    }
}
