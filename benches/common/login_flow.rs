//! The browser's side of a login at the test IdP and at Tessera, over plain
//! HTTP (no redirects followed, cookies carried by hand), for
//! benches/authorize_flow.rs (`#[path]`). The integration tests have their
//! own (tests/it/web/fixture.rs).

use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use reqwest::header::{LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use reqwest::{StatusCode, Url};
use sha2::{Digest, Sha256};

/// Tessera's client at the test IdP (tests/idp/provider.mjs).
pub const WEB_CLIENT: &str = "tessera-web";

/// The value of cookie `name` set by `resp`.
pub fn set_cookie(resp: &reqwest::Response, name: &str) -> String {
    resp.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, v)| *k == name && !v.is_empty())
        .map(|(_, v)| v.to_owned())
        .unwrap_or_else(|| panic!("no {name} cookie"))
}

/// The `Location` of a redirect.
pub fn location(resp: &reqwest::Response) -> String {
    resp.headers()[LOCATION].to_str().unwrap().to_owned()
}

/// The value of the hidden field `name` in `html`.
pub fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let at = html.find(&marker).unwrap() + marker.len();
    html[at..].split('"').next().unwrap().to_owned()
}

/// The IdP's part of a login of `person`, from `authorize` (the login and
/// consent forms, a fresh cookie jar): the callback URL on Tessera.
pub async fn at_idp(authorize: &Url, person: &str) -> Url {
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(Policy::none())
        .no_proxy()
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
        next = next.join(&location(&resp)).unwrap();
        if next.path() == "/login/callback" {
            return next;
        }
    }
    panic!("the IdP never sent the browser back to /login/callback");
}

/// The IdP's token endpoint alone, for the request Tessera's callback
/// sends (client `tessera-web`, client_secret_post, code + PKCE, redirect
/// URI Tessera's callback): a login of alice at the IdP as that client
/// (not timed), then the code exchanged on `http`'s kept-alive connection
/// (timed), as Tessera's own client does; the milliseconds.
pub async fn idp_token_endpoint(http: &reqwest::Client, idp: &str, base: &str) -> f64 {
    let verifier = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let redirect = format!("{base}/login/callback");
    let authorize = Url::parse_with_params(
        &format!("{idp}/auth"),
        [
            ("client_id", WEB_CLIENT),
            ("response_type", "code"),
            ("scope", "openid groups"),
            ("redirect_uri", &redirect),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("state", "bench-state"),
            ("nonce", "bench-nonce"),
        ],
    )
    .unwrap();
    let callback = at_idp(&authorize, "alice").await;
    let code = callback
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("a code from the IdP");
    let secret = format!("{WEB_CLIENT}-secret");
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", redirect.as_str()),
        ("code_verifier", verifier.as_str()),
        ("client_id", WEB_CLIENT),
        ("client_secret", secret.as_str()),
    ];
    let t = Instant::now();
    let resp = http
        .post(format!("{idp}/token"))
        .form(&form)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.unwrap();
    let took = t.elapsed().as_secs_f64() * 1e3;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["id_token"].as_str().is_some_and(|t| !t.is_empty()));
    took
}
