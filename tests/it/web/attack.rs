//! Attacks on the login and the session, over plain HTTP: nothing is
//! granted, and each refusal is a page with the security headers.

use chrono::Duration;
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, ORIGIN};
use reqwest::{StatusCode, Url};
use serde_json::Value;
use tessera::token::Person;
use tessera::web::page::CSP;
use tessera::web::Session;

use super::fixture::{app, at_idp, get_with, login, plain, set_cookie, start, web};
use crate::people::idp::TestIdp;
use crate::server::helpers::now;

#[track_caller]
fn assert_page(resp: &reqwest::Response, status: u16) {
    assert_eq!(resp.status().as_u16(), status);
    let h = resp.headers();
    assert_eq!(h["content-security-policy"], CSP);
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert_eq!(h["cache-control"], "no-store");
    assert!(h[CONTENT_TYPE].to_str().unwrap().starts_with("text/html"));
    assert!(
        set_cookie(resp, "tessera-session").is_none(),
        "no session granted"
    );
}

#[tokio::test]
async fn a_callback_without_its_login_cookie_or_with_another_state_grants_nothing() {
    let Some(idp) = TestIdp::start() else { return };
    let app = app(&idp).await;
    let a = start(&app, "/me").await;
    let callback = at_idp(&a.authorize, "alice").await;
    // No login cookie.
    let resp = get_with(callback.as_str(), None).await;
    assert_page(&resp, 400);
    // A forged state.
    let mut forged = callback.clone();
    let pairs: Vec<(String, String)> = callback
        .query_pairs()
        .into_owned()
        .map(|(k, v)| {
            if k == "state" {
                (k, "forged".into())
            } else {
                (k, v)
            }
        })
        .collect();
    forged.query_pairs_mut().clear().extend_pairs(pairs);
    let cookie = format!("tessera-login={}", a.login_cookie);
    assert_page(&get_with(forged.as_str(), Some(&cookie)).await, 400);
    // Another login's cookie (its state differs).
    let b = start(&app, "/me").await;
    let other = format!("tessera-login={}", b.login_cookie);
    assert_page(&get_with(callback.as_str(), Some(&other)).await, 400);
    // A tampered login cookie.
    let tampered = format!("tessera-login=x{}", a.login_cookie);
    assert_page(&get_with(callback.as_str(), Some(&tampered)).await, 400);
    // The genuine pair still works once.
    let resp = get_with(callback.as_str(), Some(&cookie)).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert!(set_cookie(&resp, "tessera-session").is_some());
    // Replayed: the IdP refuses the code a second time.
    let resp = get_with(callback.as_str(), Some(&cookie)).await;
    assert_page(&resp, 400);
    assert!(resp
        .text()
        .await
        .unwrap()
        .contains("refused the login code"));
}

#[tokio::test]
async fn an_id_token_with_another_nonce_grants_nothing() {
    let Some(idp) = TestIdp::start() else { return };
    let app = app(&idp).await;
    let web = web(&app);
    let a = start(&app, "/me").await;
    // Whoever holds the cookie key could swap the nonce; with the state
    // kept, only the nonce check stops the login.
    let mut pending: Value = web
        .key()
        .open("tessera-login", &a.login_cookie, now())
        .unwrap();
    pending["nonce"] = "another-nonce".into();
    let forged = web
        .key()
        .seal("tessera-login", &pending, now() + Duration::minutes(5))
        .unwrap();
    let callback = at_idp(&a.authorize, "alice").await;
    let resp = get_with(callback.as_str(), Some(&format!("tessera-login={forged}"))).await;
    assert_page(&resp, 403);
    assert!(resp
        .text()
        .await
        .unwrap()
        .contains("not made for this login"));
}

#[tokio::test]
async fn return_to_must_be_a_path_of_this_site() {
    let Some(idp) = TestIdp::start() else { return };
    let app = app(&idp).await;
    for raw in [
        "%2F%2Fevil.example",
        "//evil.example",
        "https%3A%2F%2Fevil.example",
        "%2F%5Cevil.example",
        "/%5Cevil.example",
        "%252F%252Fevil.example",
        "/%252F%252Fevil.example",
        "javascript:alert(1)",
    ] {
        let resp = get_with(&app.url(&format!("/login?return_to={raw}")), None).await;
        assert_page(&resp, 400);
        assert!(resp.headers().get(LOCATION).is_none(), "{raw}");
        assert!(set_cookie(&resp, "tessera-login").is_none(), "{raw}");
    }
    let ok = get_with(&app.url("/login?return_to=%2Fme%3Fx%3D1"), None).await;
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn logout_needs_the_csrf_token_and_the_same_origin() {
    let Some(idp) = TestIdp::start() else { return };
    let app = app(&idp).await;
    let session = login(&app, &idp, "alice").await;
    let cookie = format!("tessera-session={session}");
    let page = get_with(&app.url("/me"), Some(&cookie))
        .await
        .text()
        .await
        .unwrap();
    let token = page
        .split(r#"name="csrf" value=""#)
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_owned();
    let post = |form: Vec<(&'static str, String)>, cookie: Option<String>, origin: Option<&str>| {
        let mut req = plain().post(app.url("/logout")).form(&form);
        if let Some(c) = cookie {
            req = req.header(COOKIE, c);
        }
        if let Some(o) = origin {
            req = req.header(ORIGIN, o);
        }
        req.send()
    };
    assert_page(
        &post(vec![], Some(cookie.clone()), None).await.unwrap(),
        403,
    );
    assert_page(
        &post(vec![("csrf", "AAAA".into())], Some(cookie.clone()), None)
            .await
            .unwrap(),
        403,
    );
    assert_page(
        &post(
            vec![("csrf", token.clone())],
            Some(cookie.clone()),
            Some("http://evil.example"),
        )
        .await
        .unwrap(),
        403,
    );
    assert_page(
        &post(vec![("csrf", token.clone())], None, None)
            .await
            .unwrap(),
        403,
    );
    // Still logged in after all that.
    let me = get_with(&app.url("/me"), Some(&cookie)).await;
    assert_eq!(me.status(), StatusCode::OK);
    let resp = post(vec![("csrf", token)], Some(cookie), Some(&app.base))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let cleared = resp.headers().get_all("set-cookie").iter().any(|v| {
        v.to_str().unwrap().starts_with("tessera-session=;")
            && v.to_str().unwrap().contains("Max-Age=0")
    });
    assert!(cleared, "the session cookie is removed");
}

#[tokio::test]
async fn a_tampered_expired_or_foreign_session_is_no_session() {
    let Some(idp) = TestIdp::start() else { return };
    let app = app(&idp).await;
    let web = web(&app);
    let session = login(&app, &idp, "alice").await;
    let to_login = |resp: &reqwest::Response| {
        resp.status() == StatusCode::SEE_OTHER
            && resp.headers()[LOCATION] == "/login?return_to=%2Fme"
    };
    // Tampered: one character of the payload changed.
    let mut bytes = session.clone().into_bytes();
    bytes[3] = if bytes[3] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(bytes).unwrap();
    let resp = get_with(
        &app.url("/me"),
        Some(&format!("tessera-session={tampered}")),
    )
    .await;
    assert!(to_login(&resp));
    // Expired: a session that ended a minute ago, validly signed.
    let alice = Person::parse(&idp.issuer, "alice").unwrap();
    let past = now() - Duration::hours(1);
    let old = Session::new(alice, vec!["finance".into()], past + Duration::minutes(59));
    let old = web.session_cookie(&old, past).unwrap();
    let old = old.to_str().unwrap().split(';').next().unwrap().to_owned();
    assert!(to_login(&get_with(&app.url("/me"), Some(&old)).await));
    // Of another IdP: validly signed, but [login] does not trust its issuer.
    let mallory = Person::parse("http://127.0.0.1:1", "alice").unwrap();
    let foreign = Session::new(mallory, vec![], now() + Duration::minutes(5));
    let foreign = web.session_cookie(&foreign, now()).unwrap();
    let foreign = foreign
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert!(to_login(&get_with(&app.url("/me"), Some(&foreign)).await));
    // Two session cookies at once (one planted): no session.
    let both = format!("tessera-session={session}; tessera-session={session}");
    assert!(to_login(&get_with(&app.url("/me"), Some(&both)).await));
    // The genuine one works.
    let ok = get_with(&app.url("/me"), Some(&format!("tessera-session={session}"))).await;
    assert_eq!(ok.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_issuer_without_login_answers_not_found_pages() {
    let app = crate::server::helpers::TestApp::spawn_with(None, |_| {}).await;
    let resp = get_with(&app.url("/login"), None).await;
    assert_page(&resp, 404);
    let css = plain()
        .get(app.url("/static/tessera.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(css.status(), StatusCode::OK);
    assert!(css.headers()[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/css"));
    let _ = Url::parse(&app.base).unwrap();
}
