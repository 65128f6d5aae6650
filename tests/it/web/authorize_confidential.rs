//! A Client ID Metadata Document that declares `private_key_jwt`: the
//! client goes through `/oauth/authorize` and consent like a public one,
//! and at the token and revocation endpoints it must prove itself with an
//! assertion signed by a key its document publishes (`jwks` inline, or
//! `jwks_uri`, served over TLS by the test's document server). Its codes
//! and refresh tokens are never redeemed, refreshed or revoked without that
//! assertion.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};
use tessera::server::oauth::JWT_BEARER;

use super::authorize::{allowed, approve, world, World, VERIFIER};
use crate::server::helpers::{now, random_hex, Reply};

/// A client's signing key: Ed25519 or P-256.
enum ClientKey {
    Ed(ed25519_dalek::SigningKey),
    P256(p256::ecdsa::SigningKey),
}

impl ClientKey {
    fn ed(seed: u8) -> Self {
        Self::Ed(ed25519_dalek::SigningKey::from_bytes(&[seed; 32]))
    }

    fn p256(seed: u8) -> Self {
        Self::P256(p256::ecdsa::SigningKey::from_bytes(&[seed; 32].into()).unwrap())
    }

    /// The public JWK, with `kid`.
    fn jwk(&self, kid: &str) -> Value {
        match self {
            Self::Ed(k) => json!({
                "kty": "OKP", "crv": "Ed25519", "kid": kid, "use": "sig",
                "x": URL_SAFE_NO_PAD.encode(k.verifying_key().as_bytes()),
            }),
            Self::P256(k) => {
                let point = k.verifying_key().to_encoded_point(false);
                json!({
                    "kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256",
                    "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()),
                    "y": URL_SAFE_NO_PAD.encode(point.y().unwrap()),
                })
            }
        }
    }

    /// A compact JWS of `claims` with `header`.
    fn sign(&self, header: &Value, claims: &Value) -> String {
        let enc = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
        let input = format!("{}.{}", enc(header), enc(claims));
        let sig = match self {
            Self::Ed(k) => {
                use ed25519_dalek::Signer as _;
                k.sign(input.as_bytes()).to_bytes().to_vec()
            }
            Self::P256(k) => {
                use p256::ecdsa::signature::Signer as _;
                let s: p256::ecdsa::Signature = k.sign(input.as_bytes());
                s.to_bytes().to_vec()
            }
        };
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    fn alg(&self) -> &'static str {
        match self {
            Self::Ed(_) => "EdDSA",
            Self::P256(_) => "ES256",
        }
    }
}

/// The claims of a fresh assertion by `client` for the token endpoint.
fn claims(w: &World, client: &str) -> Value {
    let t = now().timestamp();
    json!({
        "iss": client, "sub": client, "aud": w.app.token_endpoint(),
        "exp": t + 60, "iat": t, "jti": random_hex(16),
    })
}

fn assertion(w: &World, key: &ClientKey, kid: &str) -> String {
    key.sign(
        &json!({"alg": key.alg(), "kid": kid}),
        &claims(w, &w.client_id),
    )
}

/// Publishes a confidential client's document with `keys` (`"jwks"` inline
/// or `"jwks_uri"`) and makes it the world's client.
fn confidential(w: &mut World, name: &str, keys: (&str, Value)) {
    let mut doc = json!({
        "client_name": "Confidential",
        "redirect_uris": [w.redirect.clone()],
        "grant_types": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_method": "private_key_jwt",
    });
    doc[keys.0] = keys.1;
    w.client_id = w.cimd.publish_json(name, doc);
}

fn code_form(w: &World, code: &str) -> Vec<(&'static str, String)> {
    vec![
        ("grant_type", "authorization_code".into()),
        ("code", code.into()),
        ("client_id", w.client_id.clone()),
        ("redirect_uri", w.redirect.clone()),
        ("code_verifier", VERIFIER.into()),
    ]
}

async fn with_assertion(w: &World, mut form: Vec<(&'static str, String)>, jwt: String) -> Reply {
    form.push(("client_assertion_type", JWT_BEARER.into()));
    form.push(("client_assertion", jwt));
    w.app.request_token(&form, None).await
}

#[tokio::test]
async fn a_document_client_with_inline_keys_redeems_and_refreshes_only_with_its_assertion() {
    let Some(mut w) = world().await else { return };
    let key = ClientKey::ed(11);
    confidential(
        &mut w,
        "confidential",
        ("jwks", json!({"keys": [key.jwk("k1")]})),
    );
    let alice = w.session("alice").await;
    let url = w.url(&w.params());
    let code = approve(&w, &alice, &url, &["get_order"], false).await;

    // Signed by a key the document does not publish; for another audience;
    // `alg: none`; another client's `iss` under this `client_id`: refused.
    let stranger = ClientKey::ed(12);
    let forged = stranger.sign(
        &json!({"alg": "EdDSA", "kid": "k1"}),
        &claims(&w, &w.client_id),
    );
    with_assertion(&w, code_form(&w, &code), forged)
        .await
        .assert_oauth_error(401, "invalid_client");
    let mut elsewhere = claims(&w, &w.client_id);
    elsewhere["aud"] = json!("https://other-issuer.example");
    let jwt = key.sign(&json!({"alg": "EdDSA", "kid": "k1"}), &elsewhere);
    with_assertion(&w, code_form(&w, &code), jwt)
        .await
        .assert_oauth_error(401, "invalid_client");
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(json!({"alg": "none"}).to_string()),
        URL_SAFE_NO_PAD.encode(claims(&w, &w.client_id).to_string())
    );
    with_assertion(&w, code_form(&w, &code), none)
        .await
        .assert_oauth_error(401, "invalid_client");
    let other = "https://127.0.0.1:9/other.json";
    let jwt = key.sign(&json!({"alg": "EdDSA", "kid": "k1"}), &claims(&w, other));
    let r = with_assertion(&w, code_form(&w, &code), jwt).await;
    r.assert_oauth_error(401, "invalid_client");
    assert!(r.text.contains("iss"), "{}", r.text);

    // None of those spent the code. With its assertion: the token names
    // alice, the client as agent.
    let r = with_assertion(&w, code_form(&w, &code), assertion(&w, &key, "k1")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["scope"], "get_order");
    let g = allowed(&w, r.token(), "get_order").unwrap();
    assert_eq!(g.chain[0].as_str(), w.client_id);
    assert_eq!(g.on_behalf.unwrap().person.subject(), "alice");
    let refresh = r.json["refresh_token"].as_str().unwrap().to_owned();

    // Redeemed as a public client (`client_id` alone): refused, and, like
    // a wrong verifier, the attempt spends the code.
    let code = approve(&w, &alice, &url, &["get_order"], false).await;
    let r = w.app.request_token(&code_form(&w, &code), None).await;
    r.assert_oauth_error(401, "invalid_client");
    assert!(r.text.contains("private_key_jwt"), "{}", r.text);
    let r = with_assertion(&w, code_form(&w, &code), assertion(&w, &key, "k1")).await;
    r.assert_oauth_error(400, "invalid_grant");

    // The refresh token, too, needs the assertion; a replayed one is refused.
    let form = vec![
        ("grant_type", "refresh_token".into()),
        ("refresh_token", refresh.clone()),
        ("client_id", w.client_id.clone()),
    ];
    w.app
        .request_token(&form, None)
        .await
        .assert_oauth_error(401, "invalid_client");
    let once = assertion(&w, &key, "k1");
    let r = with_assertion(&w, form.clone(), once.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let next = r.json["refresh_token"].as_str().unwrap().to_owned();
    let form = vec![
        ("grant_type", "refresh_token".into()),
        ("refresh_token", next),
        ("client_id", w.client_id.clone()),
    ];
    let r = with_assertion(&w, form.clone(), once).await;
    r.assert_oauth_error(401, "invalid_client");
    assert!(r.text.contains("already used"), "{}", r.text);

    // Revocation authenticates it the same way: without the assertion,
    // refused; with it, the family ends.
    let Some(next) = form.iter().find(|(k, _)| *k == "refresh_token") else {
        unreachable!()
    };
    let revoke = |jwt: Option<String>| {
        let mut f = vec![
            ("token", next.1.clone()),
            ("client_id", w.client_id.clone()),
        ];
        if let Some(j) = jwt {
            f.push(("client_assertion_type", JWT_BEARER.into()));
            f.push(("client_assertion", j));
        }
        w.app.http.post(w.app.url("/oauth/revoke")).form(&f).send()
    };
    let r = Reply::from(revoke(None).await.unwrap()).await;
    r.assert_oauth_error(401, "invalid_client");
    let r = Reply::from(revoke(Some(assertion(&w, &key, "k1"))).await.unwrap()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = with_assertion(&w, form, assertion(&w, &key, "k1")).await;
    r.assert_oauth_error(400, "invalid_grant");
}

#[tokio::test]
async fn a_document_client_with_a_jwks_uri_signs_with_es256() {
    let Some(mut w) = world().await else { return };
    let key = ClientKey::p256(21);
    let jwks = w
        .cimd
        .publish_raw("es-keys.json", &json!({"keys": [key.jwk("p1")]}));
    confidential(&mut w, "es-client", ("jwks_uri", json!(jwks)));
    let alice = w.session("alice").await;
    let url = w.url(&w.params());
    let code = approve(&w, &alice, &url, &["get_order", "list_orders"], false).await;

    // An EdDSA key of the same kid is not the client's.
    let ed = ClientKey::ed(22);
    let jwt = ed.sign(
        &json!({"alg": "EdDSA", "kid": "p1"}),
        &claims(&w, &w.client_id),
    );
    with_assertion(&w, code_form(&w, &code), jwt)
        .await
        .assert_oauth_error(401, "invalid_client");

    let r = with_assertion(&w, code_form(&w, &code), assertion(&w, &key, "p1")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["scope"], "get_order list_orders");
    assert!(allowed(&w, r.token(), "list_orders").is_ok());
}

#[tokio::test]
async fn a_document_client_whose_keys_cannot_be_read_gets_no_token() {
    let Some(mut w) = world().await else { return };
    let key = ClientKey::ed(31);
    // The key set's URL answers 404.
    let missing = format!("{}/no-such-keys.json", w.cimd.origin);
    confidential(&mut w, "lost-keys", ("jwks_uri", json!(missing)));
    let alice = w.session("alice").await;
    let url = w.url(&w.params());
    let code = approve(&w, &alice, &url, &["get_order"], false).await;
    let r = with_assertion(&w, code_form(&w, &code), assertion(&w, &key, "k1")).await;
    r.assert_oauth_error(401, "invalid_client");
    assert!(
        r.text.contains("jwks") || r.text.contains("404"),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn a_public_document_client_that_sends_an_assertion_is_refused() {
    let Some(w) = world().await else { return };
    let alice = w.session("alice").await;
    let url = w.url(&w.params());
    let code = approve(&w, &alice, &url, &["get_order"], false).await;
    let key = ClientKey::ed(41);
    let r = with_assertion(&w, code_form(&w, &code), assertion(&w, &key, "k1")).await;
    r.assert_oauth_error(401, "invalid_client");
    assert!(r.text.contains("public client"), "{}", r.text);
    // Its own way still works: the code was not spent by the refusal.
    let r = w.redeem(&code).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

/// `tests/python/confidential_client.py` (Authlib) with `args`: its
/// standard output as JSON.
fn authlib(python: &std::path::Path, args: &[&str]) -> Value {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python/confidential_client.py");
    let out = std::process::Command::new(python)
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "confidential_client.py {:?}: {}",
        args.first(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authlib_redeems_and_refreshes_as_a_confidential_document_client_with_es256_and_rs256() {
    let Some(python) = crate::python::python_with("authlib, joserfc, requests", "Authlib test")
    else {
        return;
    };
    let Some(mut w) = world().await else { return };
    let alice = w.session("alice").await;
    for (alg, kid) in [("ES256", "es-1"), ("RS256", "rs-1")] {
        let key = authlib(&python, &["keygen", alg, kid]);
        confidential(
            &mut w,
            &format!("authlib-{kid}"),
            ("jwks", json!({"keys": [key["public"]]})),
        );
        let key_file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(key_file.path(), key["private"].to_string()).unwrap();
        let url = w.url(&w.params());
        let code = approve(&w, &alice, &url, &["get_order"], false).await;
        let (endpoint, client, redirect) = (
            w.app.token_endpoint(),
            w.client_id.clone(),
            w.redirect.clone(),
        );
        let key_path = key_file.path().to_str().unwrap().to_owned();
        let py = python.clone();
        let out = tokio::task::spawn_blocking(move || {
            authlib(
                &py,
                &[
                    "redeem", &endpoint, &client, &key_path, &code, &redirect, VERIFIER,
                ],
            )
        })
        .await
        .unwrap();
        assert_eq!(out["scope"], "get_order", "{alg}: {out}");
        for token in ["access_token", "refreshed"] {
            let g = allowed(&w, out[token].as_str().unwrap(), "get_order").unwrap();
            assert_eq!(g.chain[0].as_str(), w.client_id, "{alg} {token}");
            assert!(allowed(&w, out[token].as_str().unwrap(), "list_orders").is_err());
        }
    }
}
