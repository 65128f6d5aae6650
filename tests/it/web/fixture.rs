//! An issuer whose pages log people in at the test IdP (client
//! `tessera-web`), and the IdP's part of a login driven over plain HTTP.

use std::time::Duration;

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use reqwest::{StatusCode, Url};
use tessera::web::{ClientAuth, LoginConfig, Web};

use crate::people::fixture::{idp_config, reader_role};
use crate::people::idp::TestIdp;
use crate::server::helpers::TestApp;

/// Tessera's client at the test IdP.
pub const WEB_CLIENT: &str = "tessera-web";

/// An issuer trusting `idp` (audience `tessera-eddsa` for exchanges), with
/// `[login]` at it as `client` (`tessera-web` or `tessera-web-basic`).
pub async fn app_with_client(idp: &TestIdp, client: &str, auth: ClientAuth) -> TestApp {
    let idp_conf = idp_config(idp, 30);
    let issuer = idp.issuer.clone();
    let client = client.to_owned();
    TestApp::spawn_with(None, move |c| {
        let secret_file = c.data_dir.join("login-client-secret");
        std::fs::write(&secret_file, format!("{client}-secret\n")).unwrap();
        c.idp = vec![idp_conf];
        c.role = vec![reader_role("finance")];
        c.login = Some(LoginConfig {
            issuer,
            client_id: client,
            client_secret_file: secret_file,
            scope: "openid groups".into(),
            client_auth: auth,
        });
    })
    .await
}

/// The usual issuer: client `tessera-web`, client_secret_post.
pub async fn app(idp: &TestIdp) -> TestApp {
    app_with_client(idp, WEB_CLIENT, ClientAuth::ClientSecretPost).await
}

/// The issuer's web kit.
pub fn web(app: &TestApp) -> &Web {
    app.state.web.as_deref().expect("the web pages are set up")
}

/// A client that follows no redirects and keeps no cookies.
pub fn plain() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// The value of cookie `name` set by `resp` (`None` when it is not set, or
/// set empty to remove it).
pub fn set_cookie(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
        .filter(|v| !v.is_empty())
}

/// A started login: the login cookie and the IdP URL to go to.
pub struct Started {
    pub login_cookie: String,
    pub authorize: Url,
}

/// `GET /login?return_to=...` on `app`.
pub async fn start(app: &TestApp, return_to: &str) -> Started {
    let url = Url::parse_with_params(&app.url("/login"), [("return_to", return_to)]).unwrap();
    let resp = plain().get(url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let login_cookie = set_cookie(&resp, "tessera-login").expect("a login cookie");
    let authorize = Url::parse(resp.headers()[LOCATION].to_str().unwrap()).unwrap();
    Started {
        login_cookie,
        authorize,
    }
}

/// Logs `person` in at the IdP from `authorize` on, through its login and
/// consent forms; the callback URL on Tessera the IdP sends the browser
/// to (not followed).
pub async fn at_idp(authorize: &Url, person: &str) -> Url {
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let mut next = authorize.clone();
    for _ in 0..10 {
        let resp = http.get(next.clone()).send().await.unwrap();
        let resp = if next.path().starts_with("/interaction/") {
            let page = resp.text().await.unwrap();
            let form: Vec<(&str, &str)> = if page.contains(r#"name="prompt" value="login""#) {
                vec![("prompt", "login"), ("login", person), ("password", "test")]
            } else {
                vec![("prompt", "consent")]
            };
            http.post(next.clone()).form(&form).send().await.unwrap()
        } else {
            resp
        };
        assert!(resp.status().is_redirection(), "{next}: {}", resp.status());
        let location = resp.headers()[LOCATION].to_str().unwrap().to_owned();
        next = next.join(&location).unwrap();
        if next.path() == "/login/callback" {
            return next;
        }
    }
    panic!("the IdP never sent the browser back to /login/callback");
}

/// GET `url` on Tessera with `cookie` (`name=value`), no redirects followed.
pub async fn get_with(url: &str, cookie: Option<&str>) -> reqwest::Response {
    let mut req = plain().get(url);
    if let Some(c) = cookie {
        req = req.header(COOKIE, c);
    }
    req.send().await.unwrap()
}

/// A full login of `person` over HTTP; the session cookie value.
pub async fn login(app: &TestApp, idp: &TestIdp, person: &str) -> String {
    let started = start(app, "/me").await;
    let callback = at_idp(&started.authorize, person).await;
    let resp = get_with(
        callback.as_str(),
        Some(&format!("tessera-login={}", started.login_cookie)),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{}", idp.issuer);
    assert_eq!(resp.headers()[LOCATION], "/me");
    set_cookie(&resp, "tessera-session").expect("a session cookie")
}
