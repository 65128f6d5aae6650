//! The axum layer with amounts (issue 13, point 7): the tool server's
//! mapping closure reads the operation's amount from the request (here the
//! `amount` query parameter) into the `CheckRequest`; a capped token is
//! refused above its cap, in another currency and without an amount, and
//! a malformed amount is refused before any check.

use std::sync::Arc;

use axum::routing::post;
use axum::Router;
use reqwest::StatusCode;
use tessera::token::{attenuate, Amount, Narrowing};
use tessera::verify::layer::{Scope, VerifyLayer};
use tessera::verify::{CheckRequest, Grant, KeySource, RevocationView, Revocations, Verifier};

use super::check::TestClock;
use crate::token::support::{cap, limits, Issuer};

/// `POST /pay/{invoice}?amount=12.50EUR` needs `pay` on `invoice:{invoice}`
/// for that amount.
fn scope_of(parts: &axum::http::request::Parts) -> Scope {
    let Some(invoice) = parts.uri.path().strip_prefix("/pay/") else {
        return Scope::Refuse("no such route".into());
    };
    let request = match CheckRequest::new("pay", &format!("invoice:{invoice}")) {
        Ok(r) => r,
        Err(e) => return Scope::Refuse(e.to_string()),
    };
    let amount = parts
        .uri
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("amount="));
    match amount.map(Amount::parse) {
        None => Scope::Check(request),
        Some(Ok(a)) => Scope::Check(request.with_amount(a)),
        Some(Err(e)) => Scope::Refuse(format!("amount: {e}")),
    }
}

#[tokio::test]
async fn the_layer_checks_the_amount_the_mapping_reads_from_the_request() {
    let issuer = Issuer::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let view = RevocationView::new();
    view.confirm_current();
    let verifier = Verifier::builder(&base)
        .keys(KeySource::Keys(issuer.keys.clone()))
        .revocations(Revocations::View(Arc::clone(&view)))
        .limits(limits())
        .max_staleness(std::time::Duration::from_secs(3600))
        .clock(TestClock::new().clock())
        .build()
        .await
        .unwrap();
    let app = Router::new()
        .route(
            "/pay/{invoice}",
            post(|grant: Grant| async move { format!("paid by {}", grant.acting()) }),
        )
        .layer(VerifyLayer::new(verifier, scope_of));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let minted = issuer.mint(&cap("pay", "invoice:*", Some(&base), None));
    let capped = attenuate(
        &minted.token,
        &Narrowing {
            max_amount: Some(Amount::parse("40.00EUR").unwrap()),
            ..Narrowing::default()
        },
        &issuer.limits,
    )
    .unwrap();
    let http = reqwest::Client::new();
    let pay = |token: String, query: &'static str| {
        let http = http.clone();
        let url = format!("{base}/pay/42{query}");
        async move {
            let r = http.post(url).bearer_auth(token).send().await.unwrap();
            (r.status(), r.text().await.unwrap())
        }
    };
    let (status, body) = pay(capped.clone(), "?amount=40.00EUR").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.starts_with("paid by agent://"), "{body}");
    for query in ["?amount=40.01EUR", "?amount=40.00USD", ""] {
        let (status, body) = pay(capped.clone(), query).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{query}: {body}");
        assert!(body.contains("insufficient_scope"), "{query}: {body}");
    }
    for query in [
        "?amount=40.005EUR",
        "?amount=-1.00EUR",
        "?amount=99999999999999999999EUR",
    ] {
        let (status, body) = pay(capped.clone(), query).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{query}: {body}");
        assert!(body.contains("amount: "), "{query}: {body}");
    }
    // The uncapped token is indifferent to the amount.
    let (status, body) = pay(minted.token.clone(), "?amount=1000000.00EUR").await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
