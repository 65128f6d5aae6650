//! `/oauth/authorize` and the consent page over HTTP, with the real test
//! IdP for the login and a real HTTPS server for the client's metadata
//! document (trusted through `[clients] extra_root_cert_file`): the happy
//! path to a token, and every refusal of the request and of the form.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use reqwest::header::{COOKIE, LOCATION, ORIGIN};
use reqwest::{StatusCode, Url};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tessera::people::Role;
use tessera::server::approval_policy::{Always, ApprovalRule};
use tessera::token::{self, Action, Audience, Request, Resource};
use tessera::web::{ClientAuth, LoginConfig};

use super::fixture::{get_with, login, plain, WEB_CLIENT};
use crate::mcp_oauth::CimdServer;
use crate::people::fixture::idp_config;
use crate::people::idp::TestIdp;
use crate::server::helpers::{now, TestApp};

pub const MCP: &str = "https://mcp.example/mcp";
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub const STATE: &str = "st-123";

/// The issuer, the IdP, the document server and one public client.
pub struct World {
    pub idp: TestIdp,
    pub cimd: CimdServer,
    pub app: TestApp,
    pub client_id: String,
    pub redirect: String,
}

fn orders_role() -> Role {
    toml::from_str(&format!(
        "name = \"orders\"\nactions = [\"list_orders\", \"get_order\", \"create_order\", \"refund_order\"]\n\
         resources = [\"orders*\"]\naudiences = [\"{MCP}\"]\nmax_ttl = \"5m\"\n\
         groups = [\"finance\"]\n"
    ))
    .unwrap()
}

/// Everything started, or `None` (skipped) when node or the IdP is missing.
pub async fn world() -> Option<World> {
    world_on(41234).await
}

/// The same, the client redirecting to `http://127.0.0.1:<port>/callback`.
pub async fn world_on(port: u16) -> Option<World> {
    let idp = TestIdp::start()?;
    let cimd = CimdServer::start();
    let client_id = cimd.publish("client", "Test <client>", port);
    let redirect = format!("http://127.0.0.1:{port}/callback");
    let idp_conf = idp_config(&idp, 30);
    let issuer = idp.issuer.clone();
    let cert = cimd.certificate();
    let app = TestApp::spawn_with(None, move |c| {
        let secret_file = c.data_dir.join("login-client-secret");
        std::fs::write(&secret_file, format!("{WEB_CLIENT}-secret\n")).unwrap();
        c.idp = vec![idp_conf];
        c.role = vec![orders_role()];
        // Refunds need the person's approval for each one.
        c.approval.rule = vec![ApprovalRule {
            action: Action::parse("refund_order").unwrap(),
            approval: Some(Always::Always),
            approval_above: None,
        }];
        c.clients.allow_private_addresses = true;
        c.clients.extra_root_cert_file = Some(cert);
        c.login = Some(LoginConfig {
            issuer,
            client_id: WEB_CLIENT.into(),
            client_secret_file: secret_file,
            scope: "openid groups".into(),
            client_auth: ClientAuth::ClientSecretPost,
        });
    })
    .await;
    Some(World {
        idp,
        cimd,
        app,
        client_id,
        redirect,
    })
}

pub fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

impl World {
    /// The usual request's parameters.
    pub fn params(&self) -> Vec<(&'static str, String)> {
        vec![
            ("response_type", "code".into()),
            ("client_id", self.client_id.clone()),
            ("redirect_uri", self.redirect.clone()),
            ("code_challenge", challenge(VERIFIER)),
            ("code_challenge_method", "S256".into()),
            ("state", STATE.into()),
            ("resource", MCP.into()),
            ("scope", "get_order list_orders".into()),
        ]
    }

    /// `/oauth/authorize` with `params`.
    pub fn url(&self, params: &[(&'static str, String)]) -> String {
        Url::parse_with_params(&self.app.url("/oauth/authorize"), params)
            .unwrap()
            .to_string()
    }

    /// The usual request with `name` set to `value` (`None`: left out).
    pub fn with(&self, name: &'static str, value: Option<&str>) -> String {
        let mut p: Vec<_> = self
            .params()
            .into_iter()
            .filter(|(k, _)| *k != name)
            .collect();
        if let Some(v) = value {
            p.push((name, v.to_owned()));
        }
        self.url(&p)
    }

    /// A logged-in person's session cookie header value.
    pub async fn session(&self, person: &str) -> String {
        format!(
            "tessera-session={}",
            login(&self.app, &self.idp, person).await
        )
    }

    /// Redeems `code` as the public client.
    pub async fn redeem(&self, code: &str) -> crate::server::helpers::Reply {
        self.app
            .request_token(
                &[
                    ("grant_type", "authorization_code".into()),
                    ("code", code.into()),
                    ("client_id", self.client_id.clone()),
                    ("redirect_uri", self.redirect.clone()),
                    ("code_verifier", VERIFIER.into()),
                ],
                None,
            )
            .await
    }

    /// Refreshes with `refresh` as the public client.
    pub async fn refresh(&self, refresh: &str) -> crate::server::helpers::Reply {
        self.app
            .request_token(
                &[
                    ("grant_type", "refresh_token".into()),
                    ("refresh_token", refresh.into()),
                    ("client_id", self.client_id.clone()),
                ],
                None,
            )
            .await
    }
}

/// The value of the hidden field `name` in `html`.
pub fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let at = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + marker.len();
    html[at..].split('"').next().unwrap().to_owned()
}

/// The consent page of `url` for `cookie`: its HTML.
pub async fn consent_page(url: &str, cookie: &str) -> String {
    let resp = get_with(url, Some(cookie)).await;
    if resp.status() != StatusCode::OK {
        let status = resp.status();
        let location = resp.headers().get(LOCATION).cloned();
        panic!("{status} {location:?} {}", resp.text().await.unwrap());
    }
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("script-src"),
        "{csp}"
    );
    resp.text().await.unwrap()
}

/// Posts a consent form.
pub async fn post_form(
    app: &TestApp,
    path: &str,
    cookie: &str,
    form: &[(&str, &str)],
    origin: Option<&str>,
) -> reqwest::Response {
    let mut req = plain()
        .post(app.url(path))
        .header(COOKIE, cookie)
        .form(form);
    if let Some(o) = origin {
        req = req.header(ORIGIN, o);
    }
    req.send().await.unwrap()
}

/// The query parameters of a redirect to the client.
pub fn back_params(resp: &reqwest::Response, redirect: &str) -> Vec<(String, String)> {
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let location = resp.headers()[LOCATION].to_str().unwrap();
    assert!(location.starts_with(&format!("{redirect}?")), "{location}");
    Url::parse(location)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

pub fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Approves `scopes` on the page of `url`; the code.
pub async fn approve(
    w: &World,
    cookie: &str,
    url: &str,
    scopes: &[&str],
    remember: bool,
) -> String {
    let html = consent_page(url, cookie).await;
    let (request, csrf) = (hidden(&html, "request"), hidden(&html, "csrf"));
    let mut form = vec![
        ("request", request.as_str()),
        ("csrf", csrf.as_str()),
        ("decision", "approve"),
    ];
    form.extend(scopes.iter().map(|s| ("scope", *s)));
    if remember {
        form.push(("remember", "1"));
    }
    let resp = post_form(&w.app, "/oauth/authorize", cookie, &form, None).await;
    let params = back_params(&resp, &w.redirect);
    assert_eq!(param(&params, "state"), Some(STATE));
    assert_eq!(param(&params, "iss"), Some(w.app.state.issuer.as_ref()));
    param(&params, "code").expect("a code").to_owned()
}

/// Whether `access` allows `op` on `orders/42` at the MCP server now.
pub fn allowed(w: &World, access: &str, op: &str) -> Result<token::Authorized, token::Denial> {
    let req = Request {
        amount: None,
        operation: Action::parse(op).unwrap(),
        resource: Resource::parse("orders/42").unwrap(),
        service: Some(Audience::parse(MCP).unwrap()),
        now: now(),
        proven_key: None,
    };
    token::authorize(access, &w.app.keys(), &req, |_| false, &Default::default())
}

#[tokio::test]
async fn a_person_logs_in_consents_and_the_client_gets_a_token_for_them_at_that_server() {
    let Some(w) = world().await else { return };
    let meta: Value = w
        .app
        .http
        .get(w.app.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        meta["authorization_endpoint"],
        w.app.url("/oauth/authorize")
    );
    assert_eq!(
        meta["response_types_supported"],
        serde_json::json!(["code"])
    );
    assert_eq!(
        meta["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(meta["authorization_response_iss_parameter_supported"], true);
    assert_eq!(meta["client_id_metadata_document_supported"], true);
    assert_eq!(
        meta["scopes_supported"],
        serde_json::json!(["create_order", "get_order", "list_orders"])
    );

    // Not logged in: to the login, which takes the whole request back.
    let url = w.url(&w.params());
    let resp = get_with(&url, None).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let to_login = resp.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(
        to_login.starts_with("/login?return_to=%2Foauth%2Fauthorize%3F"),
        "{to_login}"
    );
    let login = get_with(&w.app.url(&to_login), None).await;
    assert_eq!(
        login.status(),
        StatusCode::SEE_OTHER,
        "the login accepts the authorize URL"
    );
    assert!(login.headers()[LOCATION]
        .to_str()
        .unwrap()
        .starts_with(&w.idp.issuer));

    let alice = w.session("alice").await;
    let html = consent_page(&url, &alice).await;
    assert!(html.contains("Test &lt;client&gt;"), "{html}");
    assert!(html.contains(&w.client_id) && html.contains(MCP), "{html}");
    assert!(
        html.contains("value=\"get_order\" checked")
            && html.contains("value=\"list_orders\" checked")
    );
    assert!(
        !html.contains("create_order"),
        "only what was asked is offered"
    );
    let code = approve(&w, &alice, &url, &["get_order", "list_orders"], false).await;
    let r = w.redeem(&code).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["scope"], "get_order list_orders");
    let g = allowed(&w, r.token(), "get_order").unwrap();
    let person = g.on_behalf.unwrap().person;
    assert_eq!(
        (person.issuer(), person.subject()),
        (w.idp.issuer.as_str(), "alice")
    );
    assert_eq!(g.chain[0].as_str(), w.client_id);
    assert!(allowed(&w, r.token(), "list_orders").is_ok());
    assert!(allowed(&w, r.token(), "create_order").is_err());
    // The code is single use.
    w.redeem(&code)
        .await
        .assert_oauth_error(400, "invalid_grant");
}

#[tokio::test]
async fn missing_or_plain_pkce_goes_back_with_invalid_request_and_iss() {
    let Some(w) = world().await else { return };
    for url in [
        w.with("code_challenge_method", None),
        w.with("code_challenge_method", Some("plain")),
        w.with("code_challenge", None),
        w.with("code_challenge", Some("short")),
    ] {
        let resp = get_with(&url, None).await;
        let p = back_params(&resp, &w.redirect);
        assert_eq!(param(&p, "error"), Some("invalid_request"), "{url}");
        assert_eq!(param(&p, "state"), Some(STATE));
        assert_eq!(param(&p, "iss"), Some(w.app.state.issuer.as_ref()));
        assert!(param(&p, "code").is_none());
    }
    // Without a state, none comes back; iss always does.
    let mut no_state: Vec<_> = w
        .params()
        .into_iter()
        .filter(|(k, _)| *k != "state")
        .collect();
    no_state.retain(|(k, _)| *k != "code_challenge_method");
    let p = back_params(&get_with(&w.url(&no_state), None).await, &w.redirect);
    assert!(param(&p, "state").is_none());
    assert_eq!(param(&p, "iss"), Some(w.app.state.issuer.as_ref()));
    let p = back_params(
        &get_with(&w.with("response_type", Some("token")), None).await,
        &w.redirect,
    );
    assert_eq!(param(&p, "error"), Some("unsupported_response_type"));
}

#[tokio::test]
async fn a_redirect_uri_not_in_the_document_gets_an_error_page_never_a_redirect() {
    let Some(w) = world().await else { return };
    for bad in [
        "http://127.0.0.1:41235/callback",
        "http://127.0.0.1:41234/callback/",
        "http://127.0.0.1:41234/other",
        "http://localhost:41234/callback",
        "https://evil.example/callback",
        "",
    ] {
        let resp = get_with(&w.with("redirect_uri", Some(bad)), None).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert!(resp.headers().get(LOCATION).is_none(), "{bad}");
        assert!(resp.text().await.unwrap().contains("redirect_uri"), "{bad}");
    }
    let resp = get_with(&w.with("redirect_uri", None), None).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    // The login takes encoded slashes back only in the query (the authorize
    // URL's shape), never in the path.
    for raw in [
        "%2F%252F%252Fevil.example%3Fredirect_uri%3Dhttps%253A%252F%252Fx",
        "%2F%255Cevil%3Fa%3D%252F",
    ] {
        let resp = get_with(&w.app.url(&format!("/login?return_to={raw}")), None).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{raw}");
        assert!(resp.headers().get(LOCATION).is_none(), "{raw}");
    }
    // An unknown client, or one that is no metadata document: a page too.
    for client in ["agent://acme/unknown", "http://[::1", ""] {
        let resp = get_with(&w.with("client_id", Some(client)), None).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{client}");
        assert!(resp.headers().get(LOCATION).is_none());
    }
}

#[tokio::test]
async fn a_missing_or_unknown_resource_is_invalid_target() {
    let Some(w) = world().await else { return };
    for url in [
        w.with("resource", None),
        w.with("resource", Some("https://other.example/mcp")),
        w.with("resource", Some("not a uri")),
    ] {
        let p = back_params(&get_with(&url, None).await, &w.redirect);
        assert_eq!(param(&p, "error"), Some("invalid_target"), "{url}");
        assert_eq!(param(&p, "iss"), Some(w.app.state.issuer.as_ref()));
    }
    let p = back_params(
        &get_with(&w.with("scope", Some("bad scope!")), None).await,
        &w.redirect,
    );
    assert_eq!(param(&p, "error"), Some("invalid_scope"));
}

/// A form's fields.
type Form<'a> = Vec<(&'a str, &'a str)>;

#[tokio::test]
async fn the_consent_form_needs_its_csrf_token_its_request_and_the_same_origin() {
    let Some(w) = world().await else { return };
    let alice = w.session("alice").await;
    let url = w.url(&w.params());
    let html = consent_page(&url, &alice).await;
    let (request, csrf) = (hidden(&html, "request"), hidden(&html, "csrf"));
    // Another request's page: its token does not fit this request.
    let other = consent_page(&w.with("scope", Some("get_order")), &alice).await;
    let other_csrf = hidden(&other, "csrf");
    let cases: Vec<(Form, Option<&str>, u16)> = vec![
        (
            vec![
                ("request", &request),
                ("decision", "approve"),
                ("scope", "get_order"),
            ],
            None,
            403,
        ),
        (
            vec![
                ("request", &request),
                ("csrf", &other_csrf),
                ("decision", "approve"),
            ],
            None,
            403,
        ),
        (
            vec![
                ("request", &request),
                ("csrf", "AAAA"),
                ("decision", "approve"),
            ],
            None,
            403,
        ),
        (
            vec![
                ("request", &request),
                ("csrf", &csrf),
                ("decision", "approve"),
                ("scope", "get_order"),
            ],
            Some("https://evil.example"),
            403,
        ),
        (
            vec![
                ("csrf", &csrf),
                ("decision", "approve"),
                ("scope", "get_order"),
            ],
            None,
            400,
        ),
    ];
    for (form, origin, status) in cases {
        let resp = post_form(&w.app, "/oauth/authorize", &alice, &form, origin).await;
        assert_eq!(resp.status().as_u16(), status, "{form:?}");
        assert!(resp.headers().get(LOCATION).is_none());
    }
    // An altered request does not open.
    let mut altered = request.clone();
    altered.insert(3, 'x');
    let resp = post_form(
        &w.app,
        "/oauth/authorize",
        &alice,
        &[
            ("request", &altered),
            ("csrf", &csrf),
            ("decision", "approve"),
        ],
        None,
    )
    .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    // Without a session: refused.
    let resp = post_form(
        &w.app,
        "/oauth/authorize",
        "",
        &[("request", &request), ("csrf", &csrf)],
        None,
    )
    .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    // The untouched form still works, and deny goes back with access_denied.
    let resp = post_form(
        &w.app,
        "/oauth/authorize",
        &alice,
        &[("request", &request), ("csrf", &csrf), ("decision", "deny")],
        None,
    )
    .await;
    let p = back_params(&resp, &w.redirect);
    assert_eq!(param(&p, "error"), Some("access_denied"));
    assert_eq!(param(&p, "state"), Some(STATE));
    assert!(param(&p, "code").is_none());
}

#[tokio::test]
async fn a_consent_form_posted_by_another_person_is_refused() {
    let Some(w) = world().await else { return };
    let alice = w.session("alice").await;
    let bob = w.session("bob").await;
    let html = consent_page(&w.url(&w.params()), &alice).await;
    let (request, csrf) = (hidden(&html, "request"), hidden(&html, "csrf"));
    let resp = post_form(
        &w.app,
        "/oauth/authorize",
        &bob,
        &[
            ("request", &request),
            ("csrf", &csrf),
            ("decision", "approve"),
            ("scope", "get_order"),
        ],
        None,
    )
    .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(resp.headers().get(LOCATION).is_none());
    // Bob holds no role for the MCP server: his own request gets nothing.
    let resp = get_with(&w.url(&w.params()), Some(&bob)).await;
    let p = back_params(&resp, &w.redirect);
    assert_eq!(param(&p, "error"), Some("invalid_scope"));
}

#[tokio::test]
async fn approving_a_subset_grants_only_the_subset() {
    let Some(w) = world().await else { return };
    let alice = w.session("alice").await;
    let code = approve(
        &w,
        &alice,
        &w.url(&w.params()),
        &["list_orders", "create_order"],
        false,
    )
    .await;
    let r = w.redeem(&code).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json["scope"], "list_orders",
        "a scope not offered is not granted"
    );
    assert!(allowed(&w, r.token(), "list_orders").is_ok());
    assert!(allowed(&w, r.token(), "get_order").is_err());
    // Nothing ticked is a denial.
    let html = consent_page(&w.url(&w.params()), &alice).await;
    let resp = post_form(
        &w.app,
        "/oauth/authorize",
        &alice,
        &[
            ("request", &hidden(&html, "request")),
            ("csrf", &hidden(&html, "csrf")),
            ("decision", "approve"),
        ],
        None,
    )
    .await;
    assert_eq!(
        param(&back_params(&resp, &w.redirect), "error"),
        Some("access_denied")
    );
}

#[tokio::test]
async fn a_remembered_consent_skips_the_page_until_withdrawn_and_withdrawing_ends_its_tokens() {
    let Some(w) = world().await else { return };
    let alice = w.session("alice").await;
    let url = w.url(&w.params());
    let first = w
        .redeem(&approve(&w, &alice, &url, &["get_order", "list_orders"], true).await)
        .await;
    assert_eq!(first.status, 200, "{}", first.text);
    // Again: no page, a code at once.
    let resp = get_with(&url, Some(&alice)).await;
    let p = back_params(&resp, &w.redirect);
    assert_eq!(param(&p, "state"), Some(STATE));
    let second = w.redeem(param(&p, "code").unwrap()).await;
    assert_eq!(second.status, 200, "{}", second.text);
    // A request for more than was remembered shows the page.
    let more = w.with("scope", Some("get_order create_order"));
    assert_eq!(get_with(&more, Some(&alice)).await.status(), StatusCode::OK);

    // The consents page lists it; withdrawing needs the CSRF token.
    let page = get_with(&w.app.url("/consents"), Some(&alice)).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains(&w.client_id) && html.contains(MCP), "{html}");
    let csrf = hidden(&html, "csrf");
    let form = |csrf: &str| {
        vec![
            ("client_id".to_owned(), w.client_id.clone()),
            ("resource".to_owned(), MCP.to_owned()),
            ("csrf".to_owned(), csrf.to_owned()),
        ]
    };
    let send = |f: Vec<(String, String)>, cookie: String| {
        let app_url = w.app.url("/consents/withdraw");
        async move {
            plain()
                .post(app_url)
                .header(COOKIE, cookie)
                .form(&f)
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(
        send(form("forged"), alice.clone()).await.status(),
        StatusCode::FORBIDDEN
    );
    let bob = w.session("bob").await;
    assert_eq!(send(form(&csrf), bob).await.status(), StatusCode::FORBIDDEN);
    let resp = send(form(&csrf), alice.clone()).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()[LOCATION], "/consents");

    // Both refresh families are over, and their access tokens revoked.
    for r in [&first, &second] {
        let refresh = r.json["refresh_token"].as_str().unwrap();
        w.refresh(refresh)
            .await
            .assert_oauth_error(400, "invalid_grant");
        let id = w.app.inspect(r.token()).blocks[0].revocation_id.clone();
        assert!(w
            .app
            .state
            .stores
            .revocations
            .is_revoked(&id)
            .await
            .unwrap());
    }
    let html = get_with(&w.app.url("/consents"), Some(&alice))
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("no remembered consents"), "{html}");
    // And the page is shown again.
    assert_eq!(get_with(&url, Some(&alice)).await.status(), StatusCode::OK);
    // Withdrawing what is not there: 404.
    assert_eq!(
        send(form(&csrf), alice.clone()).await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn an_action_that_needs_approval_is_never_consented_to() {
    let Some(w) = world().await else { return };
    let alice = w.session("alice").await;
    // Asked alone: refused, naming the approval path.
    let resp = get_with(&w.with("scope", Some("refund_order")), Some(&alice)).await;
    let p = back_params(&resp, &w.redirect);
    assert_eq!(param(&p, "error"), Some("invalid_scope"));
    assert!(
        param(&p, "error_description").is_some_and(|d| d.contains("bc-authorize")),
        "{p:?}"
    );
    assert!(param(&p, "code").is_none());
    // Asked with another: the page offers only the other.
    let html = consent_page(&w.with("scope", Some("get_order refund_order")), &alice).await;
    assert!(html.contains("get_order"), "{html}");
    assert!(!html.contains("refund_order"), "{html}");
    let code = approve(
        &w,
        &alice,
        &w.with("scope", Some("get_order refund_order")),
        &["get_order", "refund_order"],
        false,
    )
    .await;
    let r = w.redeem(&code).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["scope"], "get_order");
}
