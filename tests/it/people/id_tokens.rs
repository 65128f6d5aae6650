//! ID tokens from the real test IdP: accepted for each algorithm, refused
//! with the right error for each kind of bad token, and the IdP going down.

use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use ed25519_dalek::{Signer as _, SigningKey};
use tessera::people::{
    validate_id_token, FetchOptions, IdTokenError, IdpConfig, IdpKeys, SigningAlgorithm,
    TrustedIdps,
};

use super::idp::TestIdp;

/// The wall clock: these tokens come from a running IdP that reads it too.
fn now() -> DateTime<Utc> {
    use tessera::clock::Clock as _;
    tessera::clock::SystemClock.now()
}

const SCOPE: &str = "openid groups";

fn config(idp: &TestIdp, audience: &str) -> IdpConfig {
    IdpConfig {
        issuer: idp.issuer.clone(),
        audience: audience.to_owned(),
        groups_claim: "groups".to_owned(),
        algorithms: SigningAlgorithm::ALL.to_vec(),
        clock_skew_secs: 30,
    }
}

fn fast() -> FetchOptions {
    FetchOptions {
        request_timeout: Duration::from_millis(500),
        retries: 1,
        retry_pause: Duration::from_millis(50),
        deadline: Duration::from_secs(2),
        refresh_interval: Duration::ZERO,
        ..FetchOptions::default()
    }
}

async fn keys(idp: &TestIdp) -> IdpKeys {
    let text = reqwest::get(format!("{}/jwks", idp.issuer))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    IdpKeys::from_jwks_json(&text).unwrap()
}

fn part(token: &str, i: usize) -> serde_json::Value {
    let raw = URL_SAFE_NO_PAD
        .decode(token.split('.').nth(i).unwrap())
        .unwrap();
    serde_json::from_slice(&raw).unwrap()
}

fn exp(token: &str) -> DateTime<Utc> {
    DateTime::from_timestamp(part(token, 1)["exp"].as_i64().unwrap(), 0).unwrap()
}

fn b64json(v: &serde_json::Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

/// A token with `header` and `claims`, signed by an Ed25519 key the IdP
/// never published.
fn signed_by_stranger(header: serde_json::Value, claims: &serde_json::Value) -> String {
    let input = format!("{}.{}", b64json(&header), b64json(claims));
    let key = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
    let sig = key.sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
}

#[tokio::test]
async fn alice_validates_to_her_subject_and_groups_for_each_algorithm() {
    let Some(idp) = TestIdp::start() else { return };
    for (client, alg) in [
        ("tessera-eddsa", "EdDSA"),
        ("tessera-es256", "ES256"),
        ("tessera-rs256", "RS256"),
    ] {
        let token = idp.id_token(client, "alice", SCOPE).await;
        assert_eq!(part(&token, 0)["alg"], alg);
        let idps = TrustedIdps::new(vec![config(&idp, client)], fast()).unwrap();
        let person = idps.validate(&token, now()).await.unwrap();
        assert_eq!(person.issuer, idp.issuer);
        assert_eq!(person.subject, "alice");
        assert_eq!(person.groups, ["finance", "staff"]);
        assert_eq!(person.may_act, None);
        assert_eq!(person.expires_at, exp(&token));
    }
}

#[tokio::test]
async fn bob_has_his_groups_and_alice_may_let_an_agent_act() {
    let Some(idp) = TestIdp::start() else { return };
    let idps = TrustedIdps::new(vec![config(&idp, "tessera-eddsa")], fast()).unwrap();
    let bob = idp.id_token("tessera-eddsa", "bob", SCOPE).await;
    let bob = idps.validate(&bob, now()).await.unwrap();
    assert_eq!(
        (bob.subject.as_str(), bob.groups),
        ("bob", vec!["staff".to_owned()])
    );
    let alice = idp
        .id_token("tessera-eddsa", "alice", "openid groups may_act")
        .await;
    let alice = idps.validate(&alice, now()).await.unwrap();
    assert_eq!(alice.may_act.as_deref(), Some("agent://acme/planner"));
}

#[tokio::test]
async fn bad_id_tokens_are_refused_with_the_right_error() {
    let Some(idp) = TestIdp::start() else { return };
    let cfg = config(&idp, "tessera-eddsa");
    let keys = keys(&idp).await;
    let token = idp.id_token("tessera-eddsa", "alice", SCOPE).await;
    let now = now();
    let check = |t: &str, cfg: &IdpConfig, now| validate_id_token(t, cfg, &keys, now);
    assert_eq!(check(&token, &cfg, now).unwrap().subject, "alice");

    // Another client's token: another audience.
    let other = idp.id_token("other-app", "alice", SCOPE).await;
    assert_eq!(
        check(&other, &cfg, now),
        Err(IdTokenError::Audience {
            expected: "tessera-eddsa".into()
        })
    );
    // Expired (past exp and the skew), and not yet valid.
    let late = exp(&token) + chrono::Duration::seconds(31);
    assert_eq!(check(&token, &cfg, late), Err(IdTokenError::Expired));
    let early = now - chrono::Duration::seconds(120);
    assert_eq!(check(&token, &cfg, early), Err(IdTokenError::NotYetValid));
    // An issuer Tessera does not trust.
    let elsewhere = IdpConfig {
        issuer: "https://login.elsewhere.example".into(),
        ..cfg.clone()
    };
    assert!(matches!(
        check(&token, &elsewhere, now),
        Err(IdTokenError::UnknownIssuer(_))
    ));
    // An algorithm the configuration does not allow.
    let rs = idp.id_token("tessera-rs256", "alice", SCOPE).await;
    let only_eddsa = IdpConfig {
        audience: "tessera-rs256".into(),
        algorithms: vec![SigningAlgorithm::EdDsa],
        ..cfg.clone()
    };
    assert_eq!(
        check(&rs, &only_eddsa, now),
        Err(IdTokenError::Algorithm("RS256".into()))
    );

    // alg none and HS256, hand-built from the real token's claims.
    let claims = part(&token, 1);
    let kid = part(&token, 0)["kid"].clone();
    for alg in ["none", "HS256"] {
        let head = b64json(&serde_json::json!({ "alg": alg, "kid": kid }));
        let sig = if alg == "none" {
            String::new()
        } else {
            URL_SAFE_NO_PAD.encode([7u8; 32])
        };
        let forged = format!("{head}.{}.{sig}", b64json(&claims));
        assert_eq!(
            check(&forged, &cfg, now),
            Err(IdTokenError::Algorithm(alg.into()))
        );
    }
    // Signed by a key not in the JWKS: under the IdP's kid, and under another.
    let stolen_kid = signed_by_stranger(serde_json::json!({ "alg": "EdDSA", "kid": kid }), &claims);
    assert_eq!(check(&stolen_kid, &cfg, now), Err(IdTokenError::Signature));
    let own_kid = signed_by_stranger(
        serde_json::json!({ "alg": "EdDSA", "kid": "rogue" }),
        &claims,
    );
    assert!(matches!(
        check(&own_kid, &cfg, now),
        Err(IdTokenError::UnknownKey(_))
    ));
    // The real signature over a tampered payload.
    let mut tampered_claims = claims.clone();
    tampered_claims["groups"] = serde_json::json!(["finance", "staff", "admin"]);
    let mut pieces: Vec<String> = token.split('.').map(str::to_owned).collect();
    pieces[1] = b64json(&tampered_claims);
    assert_eq!(
        check(&pieces.join("."), &cfg, now),
        Err(IdTokenError::Signature)
    );
    // Oversized and malformed.
    let huge = format!("{token}{}", "A".repeat(17 * 1024));
    assert!(matches!(
        check(&huge, &cfg, now),
        Err(IdTokenError::Oversized { .. })
    ));
    for junk in [
        "",
        "a.b",
        "a.b.c.d",
        "!!.??.##",
        &format!("{}.e30.", b64json(&serde_json::json!([1]))),
    ] {
        assert!(
            matches!(check(junk, &cfg, now), Err(IdTokenError::Malformed(_))),
            "{junk}"
        );
    }
}

#[tokio::test]
async fn trusted_idps_refuse_an_issuer_they_do_not_know() {
    let Some(idp) = TestIdp::start() else { return };
    let token = idp.id_token("tessera-eddsa", "alice", SCOPE).await;
    let other = IdpConfig {
        issuer: "https://login.elsewhere.example".into(),
        ..config(&idp, "tessera-eddsa")
    };
    let idps = TrustedIdps::new(vec![other], fast()).unwrap();
    let err = idps.validate(&token, now()).await.unwrap_err();
    assert!(matches!(err, IdTokenError::UnknownIssuer(_)), "{err}");
    assert!(err.to_string().contains("not a trusted identity provider"));
}

#[tokio::test]
async fn with_the_idp_down_cached_keys_work_and_an_unknown_kid_fails_fast() {
    let Some(mut idp) = TestIdp::start() else {
        return;
    };
    let cfg = config(&idp, "tessera-eddsa");
    let token = idp.id_token("tessera-eddsa", "alice", SCOPE).await;
    let idps = TrustedIdps::new(vec![cfg.clone()], fast()).unwrap();
    assert!(idps.prefetch().await.is_empty());
    let never_cached = TrustedIdps::new(vec![cfg], fast()).unwrap();
    idp.stop();

    let person = idps.validate(&token, now()).await.unwrap();
    assert_eq!(person.subject, "alice");

    let rotated = signed_by_stranger(
        serde_json::json!({ "alg": "EdDSA", "kid": "rotated-1" }),
        &part(&token, 1),
    );
    let started = Instant::now();
    let err = idps.validate(&rotated, now()).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert!(matches!(err, IdTokenError::UnknownKey(_)), "{err}");

    let started = Instant::now();
    let err = never_cached.validate(&token, now()).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert!(matches!(err, IdTokenError::IdpUnavailable(_)), "{err}");
}
