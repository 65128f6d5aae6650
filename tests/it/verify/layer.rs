//! The axum layer over real HTTP on loopback: statuses, challenges, grants.

use std::sync::Arc;

use axum::extract::Path;
use axum::routing::get;
use axum::Router;
use reqwest::StatusCode;
use tessera::jose::{self, DpopClaims};
use tessera::verify::layer::{resource_metadata, Scope, VerifyLayer, RESOURCE_METADATA_PATH};
use tessera::verify::{
    Authenticated, CheckRequest, Grant, KeySource, RevocationView, Revocations, Verifier,
};

use super::check::{signing_key, TestClock};
use crate::token::support::{cap, keypair, limits, t0, Issuer};

struct Tool {
    base: String,
    view: Arc<RevocationView>,
    clock: TestClock,
    http: reqwest::Client,
}

/// A tool server: `GET /orders/{id}` needs `read` on `orders/{id}`;
/// `POST /mcp` defers the scope to the handler (`read` on `orders/deferred`);
/// `POST /mcp/info` defers too and answers without a scope decision (as MCP
/// `initialize` does); the metadata document is public.
async fn tool(issuer: &Issuer) -> Tool {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let view = RevocationView::new();
    view.confirm_current();
    let clock = TestClock::new();
    let verifier = Verifier::builder(&base)
        .keys(KeySource::Keys(issuer.keys.clone()))
        .revocations(Revocations::View(Arc::clone(&view)))
        .limits(limits())
        .max_staleness(std::time::Duration::from_secs(3600))
        .clock(clock.clock())
        .build()
        .await
        .unwrap();
    let layer = VerifyLayer::new(verifier.clone(), |parts| {
        let path = parts.uri.path();
        if path == RESOURCE_METADATA_PATH {
            Scope::Public
        } else if path == "/mcp" || path == "/mcp/info" {
            Scope::Deferred
        } else if let Some(id) = path.strip_prefix("/orders/") {
            match CheckRequest::new("read", &format!("orders/{id}")) {
                Ok(r) => Scope::Check(r),
                Err(e) => Scope::Refuse(e.to_string()),
            }
        } else {
            Scope::Refuse("no such route".into())
        }
    });
    let meta = resource_metadata(&base, &["https://issuer.example"]);
    let deferred = verifier.clone();
    let app = Router::new()
        .route(
            "/orders/{id}",
            get(|Path(id): Path<String>, grant: Grant| async move {
                format!("{} read {id}", grant.acting())
            }),
        )
        .route(
            "/mcp",
            axum::routing::post(move |auth: Authenticated| async move {
                let req = CheckRequest::new("read", "orders/deferred").unwrap();
                match deferred.authorize(&auth, &req).await {
                    Ok(g) => axum::response::IntoResponse::into_response(g.token_id),
                    Err(r) => axum::response::IntoResponse::into_response(r),
                }
            }),
        )
        .route(
            "/mcp/info",
            axum::routing::post(|auth: Authenticated| async move { auth.token_id().to_owned() }),
        )
        .route(
            RESOURCE_METADATA_PATH,
            get(move || async move { axum::Json(meta) }),
        )
        .layer(layer);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Tool {
        base,
        view,
        clock,
        http: reqwest::Client::new(),
    }
}

fn challenge(r: &reqwest::Response) -> String {
    r.headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn missing_token_gets_401_with_resource_metadata_and_metadata_is_public() {
    let issuer = Issuer::new();
    let tool = tool(&issuer).await;
    let r = tool
        .http
        .get(format!("{}/orders/1", tool.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let c = challenge(&r);
    assert!(c.starts_with("Bearer "), "{c}");
    assert!(
        c.contains(&format!(
            "resource_metadata=\"{}{RESOURCE_METADATA_PATH}\"",
            tool.base
        )),
        "{c}"
    );
    assert!(!c.contains("error="), "no error code without a token: {c}");
    let r = tool
        .http
        .get(format!("{}{RESOURCE_METADATA_PATH}", tool.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let doc: serde_json::Value = r.json().await.unwrap();
    assert_eq!(doc["resource"], tool.base);
    assert_eq!(doc["authorization_servers"][0], "https://issuer.example");
}

#[tokio::test]
async fn allowed_out_of_scope_revoked_and_stale() {
    let issuer = Issuer::new();
    let tool = tool(&issuer).await;
    let minted = issuer.mint(&cap("read", "orders/*", Some(&tool.base), None));
    let get = |path: &str| {
        tool.http
            .get(format!("{}{path}", tool.base))
            .bearer_auth(&minted.token)
            .send()
    };
    let r = get("/orders/1").await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.unwrap(), "agent://acme/main read 1");

    // Another audience's token: 401 invalid_token.
    let other = issuer.mint(&cap(
        "read",
        "orders/*",
        Some("https://other.example"),
        None,
    ));
    let r = tool
        .http
        .get(format!("{}/orders/1", tool.base))
        .bearer_auth(&other.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(challenge(&r).contains("error=\"invalid_token\""));
    assert!(challenge(&r).contains("wrong_audience"));

    // A route the mapping refuses: 403 insufficient_scope.
    let r = get("/admin").await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(
        challenge(&r).contains("error=\"insufficient_scope\""),
        "{}",
        challenge(&r)
    );
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "insufficient_scope");

    // Revoked.
    let id = hex::decode(&minted.revocation_id).unwrap();
    tool.view
        .apply([(&id[..], t0() + chrono::Duration::hours(1))], None)
        .unwrap();
    let r = get("/orders/1").await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(challenge(&r).contains("revoked"), "{}", challenge(&r));
}

#[tokio::test]
async fn stale_revocations_answer_503_with_retry_after() {
    let issuer = Issuer::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let clock = TestClock::new();
    let verifier = Verifier::builder(&base)
        .keys(KeySource::Keys(issuer.keys.clone()))
        .revocations(Revocations::View(RevocationView::new()))
        .clock(clock.clock())
        .build()
        .await
        .unwrap();
    let layer = VerifyLayer::new(verifier, |_| {
        Scope::Check(CheckRequest::new("read", "orders/1").unwrap())
    });
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(layer);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let t = issuer
        .mint(&cap("read", "orders/*", Some(&base), None))
        .token;
    let r = reqwest::Client::new()
        .get(&base)
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.headers()["retry-after"], "1");
}

#[tokio::test]
async fn an_oversized_header_is_refused_before_parsing() {
    let issuer = Issuer::new();
    let tool = tool(&issuer).await;
    let huge = "A".repeat(64 * 1024);
    let r = tool
        .http
        .get(format!("{}/orders/1", tool.base))
        .bearer_auth(&huge)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(challenge(&r).contains("too_large"), "{}", challenge(&r));
    // Two Authorization headers: refused, not guessed at.
    let t = issuer
        .mint(&cap("read", "orders/*", Some(&tool.base), None))
        .token;
    let r = tool
        .http
        .get(format!("{}/orders/1", tool.base))
        .header("authorization", format!("Bearer {t}"))
        .header("authorization", format!("Bearer {t}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn dpop_scheme_round_trip_and_replay() {
    let issuer = Issuer::new();
    let tool = tool(&issuer).await;
    let holder = keypair(20);
    let t = issuer
        .mint(&cap("read", "orders/*", Some(&tool.base), Some(&holder)))
        .token;
    let url = format!("{}/orders/9", tool.base);
    let proof = |jti: &str| {
        let claims = DpopClaims {
            jti: jti.into(),
            htm: "GET".into(),
            htu: url.clone(),
            iat: t0().timestamp(),
            ath: Some(jose::access_token_hash(&t)),
        };
        jose::sign(&signing_key(&holder), Some("dpop+jwt"), true, &claims).unwrap()
    };
    let send = |p: Option<String>| {
        let mut b = tool
            .http
            .get(&url)
            .header("authorization", format!("DPoP {t}"));
        if let Some(p) = p {
            b = b.header("dpop", p);
        }
        b.send()
    };
    let p = proof("one");
    let r = send(Some(p.clone())).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = send(Some(p)).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let c = challenge(&r);
    assert!(c.starts_with("DPoP "), "{c}");
    assert!(c.contains("error=\"invalid_dpop_proof\""), "{c}");
    // DPoP scheme without a proof.
    let r = send(None).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(challenge(&r).contains("invalid_dpop_proof"));
    // A bound token as a bearer token: the holder is not proven.
    let r = tool.http.get(&url).bearer_auth(&t).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(
        challenge(&r).contains("holder_not_proven"),
        "{}",
        challenge(&r)
    );
}

#[tokio::test]
async fn deferred_scope_is_decided_by_the_handler() {
    let issuer = Issuer::new();
    let tool = tool(&issuer).await;
    let good = issuer.mint(&cap("read", "orders/*", Some(&tool.base), None));
    let r = tool
        .http
        .post(format!("{}/mcp", tool.base))
        .bearer_auth(&good.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.unwrap(), good.token_id);
    let narrow = issuer.mint(&cap("read", "orders/1", Some(&tool.base), None));
    let r = tool
        .http
        .post(format!("{}/mcp", tool.base))
        .bearer_auth(&narrow.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_bound_token_sent_with_the_bearer_scheme_is_refused_even_with_a_dpop_header() {
    let issuer = Issuer::new();
    let tool = tool(&issuer).await;
    let holder = keypair(20);
    let t = issuer
        .mint(&cap("read", "orders/*", Some(&tool.base), Some(&holder)))
        .token;
    let url = format!("{}/orders/9", tool.base);
    let proof = |jti: &str| {
        let claims = DpopClaims {
            jti: jti.into(),
            htm: "GET".into(),
            htu: url.clone(),
            iat: t0().timestamp(),
            ath: Some(jose::access_token_hash(&t)),
        };
        jose::sign(&signing_key(&holder), Some("dpop+jwt"), true, &claims).unwrap()
    };
    // RFC 9449 §7.1: a DPoP-bound token goes with the DPoP scheme only.
    let r = tool
        .http
        .get(&url)
        .header("authorization", format!("Bearer {t}"))
        .header("dpop", proof("as-bearer"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let c = challenge(&r);
    assert!(c.contains("holder_not_proven"), "{c}");
    assert!(c.contains("DPoP scheme"), "{c}");
    // The same token and a fresh proof with the DPoP scheme: allowed.
    let r = tool
        .http
        .get(&url)
        .header("authorization", format!("DPoP {t}"))
        .header("dpop", proof("as-dpop"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // A bearer token with a stray DPoP header is still a bearer token.
    let bearer = issuer
        .mint(&cap("read", "orders/*", Some(&tool.base), None))
        .token;
    let r = tool
        .http
        .get(&url)
        .bearer_auth(&bearer)
        .header("dpop", proof("stray"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_deferred_scope_refuses_expired_foreign_and_unproven_tokens_at_the_layer() {
    let issuer = Issuer::new();
    let tool = tool(&issuer).await;
    let post = |token: &str| {
        tool.http
            .post(format!("{}/mcp/info", tool.base))
            .bearer_auth(token)
            .send()
    };
    let good = issuer.mint(&cap("read", "orders/*", Some(&tool.base), None));
    let r = post(&good.token).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.unwrap(), good.token_id);

    // Another audience: refused before any handler runs.
    let foreign = issuer.mint(&cap(
        "read",
        "orders/*",
        Some("https://other.example"),
        None,
    ));
    let r = post(&foreign.token).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(
        challenge(&r).contains("wrong_audience"),
        "{}",
        challenge(&r)
    );

    // A bound token without its holder's proof.
    let bound = issuer.mint(&cap(
        "read",
        "orders/*",
        Some(&tool.base),
        Some(&keypair(21)),
    ));
    let r = post(&bound.token).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(
        challenge(&r).contains("holder_not_proven"),
        "{}",
        challenge(&r)
    );

    // Expired.
    tool.clock.set(t0() + chrono::Duration::minutes(6));
    let r = post(&good.token).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let c = challenge(&r);
    assert!(c.contains("error=\"invalid_token\""), "{c}");
    assert!(c.contains("expired"), "{c}");
}
