//! The person's approval page over plain HTTP, with the real test IdP
//! (tests/idp) for the login: only the person named may see and decide,
//! once, before expiry, with a CSRF token bound to the session and the
//! request; the agent's poll then gets the token or `access_denied`.

use reqwest::header::LOCATION;
use reqwest::StatusCode;
use tessera::store::ApprovalStatus;
use tessera::web::page::CSP;

use super::flow::poll;
use super::page_fixture::{setup, PAY};
use crate::server::helpers::random_hex;
use crate::web::fixture::get_with;

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
