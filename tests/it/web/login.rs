//! Logging in: over plain HTTP, and in a real browser.

use reqwest::header::LOCATION;
use reqwest::StatusCode;
use tessera::web::page::CSP;
use tessera::web::ClientAuth;

use super::browser;
use super::fixture::{self, app, get_with, login};
use crate::people::idp::TestIdp;

#[tokio::test]
async fn a_person_logs_in_at_the_idp_and_me_shows_who_and_their_groups() {
    let Some(idp) = TestIdp::start() else { return };
    let app = app(&idp).await;
    let session = login(&app, &idp, "alice").await;
    let resp = get_with(&app.url("/me"), Some(&format!("tessera-session={session}"))).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-security-policy"], CSP);
    let page = resp.text().await.unwrap();
    assert!(
        page.contains("Signed in as <strong>alice</strong>"),
        "{page}"
    );
    assert!(page.contains(&idp.issuer), "{page}");
    assert!(
        page.contains("<li>finance</li>") && page.contains("<li>staff</li>"),
        "{page}"
    );
    assert!(
        page.contains("<li>reader</li>"),
        "the role finance maps to: {page}"
    );
    assert!(page.contains(r#"name="csrf""#), "{page}");
}

#[tokio::test]
async fn client_secret_basic_works_too() {
    let Some(idp) = TestIdp::start() else { return };
    let app =
        fixture::app_with_client(&idp, "tessera-web-basic", ClientAuth::ClientSecretBasic).await;
    let session = login(&app, &idp, "bob").await;
    let resp = get_with(&app.url("/me"), Some(&format!("tessera-session={session}"))).await;
    assert!(resp.text().await.unwrap().contains("<strong>bob</strong>"));
}

#[tokio::test]
async fn without_a_session_me_sends_the_browser_to_the_login_and_back() {
    let Some(idp) = TestIdp::start() else { return };
    let app = app(&idp).await;
    let resp = get_with(&app.url("/me?tab=1"), None).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()[LOCATION], "/login?return_to=%2Fme%3Ftab%3D1");
    let started = fixture::start(&app, "/me?tab=1").await;
    assert!(started
        .authorize
        .as_str()
        .starts_with(&format!("{}/auth?", idp.issuer)));
    let q: Vec<(String, String)> = started.authorize.query_pairs().into_owned().collect();
    let has = |k: &str, v: &str| q.iter().any(|(a, b)| a == k && b == v);
    assert!(has("code_challenge_method", "S256"), "{q:?}");
    assert!(has("client_id", "tessera-web"), "{q:?}");
    assert!(has("redirect_uri", &app.url("/login/callback")), "{q:?}");
    assert!(q.iter().any(|(k, _)| k == "nonce") && q.iter().any(|(k, _)| k == "state"));
}

#[tokio::test]
async fn the_browser_logs_in_through_the_idp_and_lands_on_me() {
    let Some(idp) = TestIdp::start() else { return };
    let app = app(&idp).await;
    let Some(r) = browser::run("login.mjs", &[&app.base, &idp.issuer, "alice"]).await else {
        return;
    };
    assert_eq!(r["atIdp"], true, "{r}");
    assert_eq!(
        r["who"],
        format!("Signed in as alice at {}", idp.issuer),
        "{r}"
    );
    assert_eq!(r["groups"], serde_json::json!(["finance", "staff"]), "{r}");
    assert_eq!(r["csp"], CSP, "{r}");
    assert_eq!(r["stylesheetLoaded"], true, "{r}");
    assert_eq!(r["signedOut"], "Signed out", "{r}");
    assert_eq!(
        r["loginAgain"], true,
        "after logout /me asks for a login: {r}"
    );
}
