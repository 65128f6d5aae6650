//! Ping mode (OpenID CIBA): the agent registers a `notification_endpoint`,
//! asks with a `client_notification_token`, and once the person decides
//! Tessera POSTs `{"auth_req_id"}` with the token as bearer to a real
//! receiver started here, retrying after a failure; every attempt and the
//! decision are audited.

use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{json, Value};
use tessera::server::notify;
use tessera::store::{AuditQuery, Decided, Decider, Verdict};

use super::flow::{alice, bc_authorize, good, issuer_with};
use crate::server::helpers::{eventually, Reply};

type Seen = Arc<Mutex<Vec<(Option<String>, Value)>>>;

/// A receiver on a free loopback port that refuses its first request with
/// 503 and records every request (Authorization header, JSON body).
async fn receiver() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let app = axum::Router::new().route(
        "/cb",
        post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let s = s.clone();
            async move {
                let auth = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let mut seen = s.lock().unwrap();
                seen.push((auth, body));
                if seen.len() == 1 {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::NO_CONTENT
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/cb"), seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_pings_the_agent_with_its_token_retrying_and_audited() {
    let (app, agent) = issuer_with(|c| c.approval.loopback_http_notifications = true).await;
    let (endpoint, seen) = receiver().await;
    let token = "notify-me-42".to_owned();

    // Without an endpoint, ping mode is refused.
    let mut ask = good(json!("12.50EUR"));
    ask.push(("client_notification_token", token.clone()));
    bc_authorize(&app, &agent, &ask)
        .await
        .assert_oauth_error(400, "invalid_request");

    // A plain-http endpoint elsewhere than loopback is refused; loopback is taken.
    let patch = |url: String| {
        app.http
            .patch(app.url(&format!(
                "/v1/agents/{}",
                crate::server::helpers::segment(&agent.id)
            )))
            .bearer_auth(app.admin_token())
            .json(&json!({ "notification_endpoint": url }))
            .send()
    };
    Reply::from(patch("http://agent.example/cb".into()).await.unwrap())
        .await
        .assert_oauth_error(400, "invalid_request");
    let r = Reply::from(patch(endpoint.clone()).await.unwrap()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["notification_endpoint"], json!(endpoint));

    let r = bc_authorize(&app, &agent, &ask).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let id = r.json["auth_req_id"].as_str().unwrap().to_owned();

    let by = Decider::Person(alice());
    assert!(matches!(
        notify::decide(&app.state, &id, &by, Verdict::Approve)
            .await
            .unwrap(),
        Decided::Decided(_)
    ));
    // A second decision is not audited and pings nobody.
    assert!(matches!(
        notify::decide(&app.state, &id, &by, Verdict::Deny)
            .await
            .unwrap(),
        Decided::AlreadyDecided(_)
    ));

    // The first attempt is refused (503), the second delivered.
    let got = eventually(std::time::Duration::from_secs(5), "two pings", || {
        let seen = seen.clone();
        async move {
            let now = seen.lock().unwrap().clone();
            (now.len() >= 2).then_some(now)
        }
    })
    .await;
    for (auth, body) in &got {
        assert_eq!(auth.as_deref(), Some("Bearer notify-me-42"));
        assert_eq!(body, &json!({ "auth_req_id": id }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(seen.lock().unwrap().len(), 2, "no attempt after delivery");

    let events = app
        .state
        .stores
        .audit
        .query(&AuditQuery {
            limit: 100,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    let events: Vec<_> = events.into_iter().map(|(_, e)| e).collect();
    let mine: Vec<_> = events
        .iter()
        .filter(|e| e.approval_id.as_deref() == Some(id.as_str()))
        .map(|e| e.outcome.as_str().to_owned())
        .collect();
    for outcome in [
        "approval requested",
        "approval approved",
        "notification failed",
        "notification delivered",
    ] {
        assert_eq!(
            mine.iter().filter(|o| *o == outcome).count(),
            1,
            "{outcome} in {mine:?}"
        );
    }
    // The token is in no audit event.
    let all = serde_json::to_string(&events).unwrap();
    assert!(!all.contains("notify-me-42"));
}
