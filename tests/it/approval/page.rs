//! The person's approval page over plain HTTP, with the real test IdP
//! (tests/idp) for the login: only the person named may see and decide,
//! once, before expiry, with a CSRF token bound to the session and the
//! request; the agent's poll then gets the token or `access_denied`.

use reqwest::header::{COOKIE, LOCATION};
use reqwest::StatusCode;
use serde_json::json;
use tessera::people::{Role, RoleName};
use tessera::server::approval_policy::{Always, ApprovalRule};
use tessera::server::webhook;
use tessera::server::Config;
use tessera::store::ApprovalStatus;
use tessera::token::{self, Action, AgentId, Amount, Audience, Limits, Person, Request, Resource};
use tessera::web::page::CSP;
use tessera::web::{ClientAuth, LoginConfig};

use super::flow::{bc_authorize, poll};
use crate::people::fixture::idp_config;
use crate::people::idp::TestIdp;
use crate::server::helpers::{random_hex, TestAgent, TestApp};
use crate::web::browser;
use crate::web::fixture::{get_with, login, plain, WEB_CLIENT};

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

    fn page_url(&self, id: &str) -> String {
        self.app.url(&format!("/approvals/{id}"))
    }

    /// POSTs the approval form of `id` with `fields`, `cookie` and `headers`.
    async fn post(
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

    async fn status_of(&self, id: &str) -> ApprovalStatus {
        let a = self.app.state.stores.approvals.get(id).await.unwrap();
        a.unwrap().status
    }
}

/// A POST of the approval form: cookie, fields, headers, what it is.
type Attempt<'a> = (
    Option<&'a str>,
    Vec<(&'a str, &'a str)>,
    Vec<(&'static str, &'a str)>,
    &'static str,
);

/// The CSRF field's value in `page`.
fn csrf_of(page: &str) -> String {
    let at = page.find(r#"name="csrf" value=""#).expect("a CSRF field") + 19;
    page[at..].split('"').next().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_person_named_sees_the_request_approves_once_and_the_token_says_so() {
    let Some(s) = setup(|_| {}).await else { return };
    let id = s.ask(&[]).await;

    // Without a session: to the login, and back here afterwards.
    let resp = get_with(&s.page_url(&id), None).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        resp.headers()[LOCATION],
        format!("/login?return_to=%2Fapprovals%2F{id}")
    );

    let alice = s.session("alice").await;
    let resp = get_with(&s.page_url(&id), Some(&alice)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-security-policy"], CSP);
    let page = resp.text().await.unwrap();
    for shown in [
        "Pay invoice 42 &lt;now&gt;",
        &s.agent.id,
        "payments:create",
        "invoice:42",
        PAY,
        "40.00EUR",
        "waiting for you",
        r#"value="approve""#,
        r#"value="deny""#,
    ] {
        assert!(page.contains(shown), "{shown} in {page}");
    }
    let csrf = csrf_of(&page);

    let (status, done) = s
        .post(
            &id,
            Some(&alice),
            &[("csrf", &csrf), ("verdict", "approve")],
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert!(done.contains("Approved"), "{done}");
    // Once: a second decision is a conflict, whatever it says.
    let (status, again) = s
        .post(
            &id,
            Some(&alice),
            &[("csrf", &csrf), ("verdict", "deny")],
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    assert_eq!(s.status_of(&id).await, ApprovalStatus::Approved);

    // The page now shows the decision, without a form.
    let page = get_with(&s.page_url(&id), Some(&alice))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("approved") && !page.contains(r#"value="approve""#),
        "{page}"
    );

    // The agent collects exactly the approved capability, with approved_by.
    let r = poll(&s.app, &s.agent, &id).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let authority = format!("{:?}", s.app.inspect(r.token()));
    assert!(
        authority.contains("approved_by") && authority.contains(&id),
        "{authority}"
    );
    assert_eq!(r.json["authorization_details"][0]["amount"]["value"], 4000);

    // The list shows it among the past ones.
    let list = get_with(&s.app.url("/approvals"), Some(&alice))
        .await
        .text()
        .await
        .unwrap();
    let past = &list[list.find("id=\"past\"").expect("a past list")..];
    assert!(past.contains(&format!("/approvals/{id}")), "{list}");
    assert!(list.contains("<p id=\"pending\">none</p>"), "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_person_sees_nothing_and_decides_nothing() {
    let Some(s) = setup(|_| {}).await else { return };
    let id = s.ask(&[]).await;
    let bob = s.session("bob").await;
    let resp = get_with(&s.page_url(&id), Some(&bob)).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let page = resp.text().await.unwrap();
    assert!(
        !page.contains("invoice:42") && !page.contains("Pay invoice"),
        "{page}"
    );
    // Even with a CSRF token of bob's own session for this request.
    let web = crate::web::fixture::web(&s.app);
    let bob_session = web
        .open_session(
            bob.trim_start_matches("tessera-session="),
            s.app.state.now(),
        )
        .unwrap();
    let token = web.csrf_token(&bob_session, &format!("approval:{id}"));
    let (status, _) = s
        .post(
            &id,
            Some(&bob),
            &[("csrf", &token), ("verdict", "approve")],
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(s.status_of(&id).await, ApprovalStatus::Pending);
    // Bob's list does not show alice's request.
    let list = get_with(&s.app.url("/approvals"), Some(&bob))
        .await
        .text()
        .await
        .unwrap();
    assert!(!list.contains(&id), "{list}");

    // Unknown and malformed ids: 404 pages.
    for other in [random_hex(32), "not-an-id".into(), id.to_uppercase()] {
        let resp = get_with(&s.page_url(&other), Some(&bob)).await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{other}");
        assert!(resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_forged_or_cross_site_csrf_token_is_refused_and_decides_nothing() {
    let Some(s) = setup(|_| {}).await else { return };
    let id = s.ask(&[]).await;
    let other = s.ask(&[]).await;
    let alice = s.session("alice").await;
    let page = get_with(&s.page_url(&id), Some(&alice))
        .await
        .text()
        .await
        .unwrap();
    let csrf = csrf_of(&page);
    let other_csrf = csrf_of(
        &get_with(&s.page_url(&other), Some(&alice))
            .await
            .text()
            .await
            .unwrap(),
    );
    let cases: Vec<Attempt> = vec![
        (
            Some(&alice),
            vec![("verdict", "approve")],
            vec![],
            "missing",
        ),
        (
            Some(&alice),
            vec![("csrf", "AAAAforged"), ("verdict", "approve")],
            vec![],
            "forged",
        ),
        (
            Some(&alice),
            vec![("csrf", &other_csrf), ("verdict", "approve")],
            vec![],
            "another request's token",
        ),
        (
            Some(&alice),
            vec![("csrf", &csrf), ("verdict", "approve")],
            vec![("origin", "https://evil.example")],
            "cross-origin",
        ),
        (
            Some(&alice),
            vec![("csrf", &csrf), ("verdict", "approve")],
            vec![("sec-fetch-site", "cross-site")],
            "cross-site",
        ),
        (
            None,
            vec![("csrf", &csrf), ("verdict", "approve")],
            vec![],
            "no session",
        ),
    ];
    for (cookie, fields, headers, what) in cases {
        let (status, body) = s.post(&id, cookie, &fields, &headers).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{what}: {body}");
        assert_eq!(s.status_of(&id).await, ApprovalStatus::Pending, "{what}");
    }
    // A verdict that is neither: 400, nothing decided.
    let (status, _) = s
        .post(
            &id,
            Some(&alice),
            &[("csrf", &csrf), ("verdict", "maybe")],
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(s.status_of(&id).await, ApprovalStatus::Pending);

    // The real form, from this origin: denied, and the agent hears so.
    let origin = s.app.base.clone();
    let (status, body) = s
        .post(
            &id,
            Some(&alice),
            &[("csrf", &csrf), ("verdict", "deny")],
            &[("origin", &origin), ("sec-fetch-site", "same-origin")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("Denied"), "{body}");
    poll(&s.app, &s.agent, &id)
        .await
        .assert_oauth_error(400, "access_denied");
    assert_eq!(s.status_of(&other).await, ApprovalStatus::Pending);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_expiry_the_page_is_gone_and_nothing_is_granted() {
    let Some(s) = setup(|_| {}).await else { return };
    let alice = s.session("alice").await;
    let id = s.ask(&[("requested_expiry", "2".to_owned())]).await;
    let page = get_with(&s.page_url(&id), Some(&alice))
        .await
        .text()
        .await
        .unwrap();
    let csrf = csrf_of(&page);
    tokio::time::sleep(std::time::Duration::from_millis(2300)).await;
    let resp = get_with(&s.page_url(&id), Some(&alice)).await;
    assert_eq!(resp.status(), StatusCode::GONE);
    let page = resp.text().await.unwrap();
    assert!(
        page.contains("expired") && !page.contains(r#"value="approve""#),
        "{page}"
    );
    let (status, body) = s
        .post(
            &id,
            Some(&alice),
            &[("csrf", &csrf), ("verdict", "approve")],
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::GONE, "{body}");
    assert_eq!(s.status_of(&id).await, ApprovalStatus::Pending);
    poll(&s.app, &s.agent, &id)
        .await
        .assert_oauth_error(400, "expired_token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_browser_the_person_follows_the_webhook_link_approves_and_the_agent_gets_the_token() {
    let (hook, seen) = super::webhook::receiver().await;
    let Some(s) = setup(move |c| {
        let file = c.data_dir.join("webhook.secret");
        std::fs::write(&file, "a-webhook-secret-for-the-browser-test\n").unwrap();
        c.approval.loopback_http_notifications = true;
        c.approval.webhook_url = Some(hook);
        c.approval.webhook_secret_file = Some(file);
    })
    .await
    else {
        return;
    };
    let id = s.ask(&[]).await;

    // The webhook brings the link (its first attempt is refused, the retry lands).
    let (sig, body) = crate::server::helpers::eventually(
        std::time::Duration::from_secs(5),
        "the webhook",
        || {
            let seen = seen.clone();
            async move { seen.lock().unwrap().get(1).cloned() }
        },
    )
    .await;
    let now = s.app.state.now().timestamp();
    webhook::verify(
        b"a-webhook-secret-for-the-browser-test",
        &sig.unwrap(),
        &body,
        now,
        300,
    )
    .unwrap();
    let notice: webhook::Notice = serde_json::from_slice(&body).unwrap();
    assert_eq!(notice.auth_req_id, id);

    let Some(r) = browser::run(
        "approve.mjs",
        &[&notice.approval_url, &s.idp.issuer, "alice"],
    )
    .await
    else {
        return;
    };
    assert_eq!(r["atIdp"], true, "{r}");
    assert_eq!(r["pageStatus"], 200, "{r}");
    assert_eq!(r["csp"], CSP, "{r}");
    assert_eq!(r["stylesheetLoaded"], true, "{r}");
    assert_eq!(r["message"], "Pay invoice 42 <now>", "{r}");
    assert_eq!(r["chain"], json!([s.agent.id]), "{r}");
    assert_eq!(r["action"], "payments:create", "{r}");
    assert_eq!(r["resource"], "invoice:42", "{r}");
    assert_eq!(r["amount"], "40.00EUR", "{r}");
    assert_eq!(r["status"], "waiting for you", "{r}");
    assert_eq!(r["outcome"], "Approved", "{r}");
    assert_eq!(r["statusAfter"], "approved", "{r}");

    // The agent's poll gets the token; it carries approved_by and the cap.
    let r = poll(&s.app, &s.agent, &id).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let keys = s.app.keys();
    let bytes = token::decode(r.token(), &Limits::default()).unwrap();
    let verified = token::Verified::from_bytes(&bytes, &keys, &Limits::default()).unwrap();
    let approval = verified.chain().claims.approval.clone().unwrap();
    assert_eq!(approval.approval_id, id);
    assert_eq!(
        approval.person,
        Person::parse(&s.idp.issuer, "alice").unwrap()
    );
    let pay = |amount: &str| Request {
        operation: Action::parse("payments:create").unwrap(),
        resource: Resource::parse("invoice:42").unwrap(),
        service: Some(Audience::parse(PAY).unwrap()),
        now: crate::server::helpers::now(),
        proven_key: None,
        amount: Some(Amount::parse(amount).unwrap()),
    };
    let check =
        |a: &str| token::authorize(r.token(), &keys, &pay(a), |_| false, &Limits::default());
    assert!(check("40.00EUR").is_ok());
    assert!(check("40.01EUR").is_err());
}
