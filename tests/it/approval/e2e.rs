//! End to end in a real browser: the agent asks, the webhook brings the
//! link, headless chromium (tests/browser/approve.mjs) logs in as the
//! person at the test IdP and approves, and the agent's poll gets a token
//! carrying `approved_by` and the approved amount as a cap.

use reqwest::StatusCode;
use serde_json::json;
use tessera::server::webhook;
use tessera::token::{self, Action, Amount, Audience, Limits, Person, Request, Resource};
use tessera::web::page::CSP;

use super::flow::poll;
use super::page_fixture::{setup, PAY};
use crate::web::browser;

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
