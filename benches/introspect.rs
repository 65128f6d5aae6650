//! The cost of asking the issuer (`POST /oauth/introspect`, RFC 7662)
//! beside deciding offline, in one run:
//!
//! - `offline_authorize`: what a tool server with the verifier does per
//!   request: signatures, holder chain and Datalog ([`token::authorize`]);
//! - `offline_signatures`: the checks introspection runs, in process
//!   ([`token::Verified::from_bytes`]: size, signatures, chain, no Datalog);
//! - `introspect_in_process`: the introspection handler through the router
//!   (`oneshot`), embedded store, admin-token authentication included;
//! - `introspect_loopback`: the same over HTTP/1.1 on loopback with a
//!   kept-alive connection, as a tool server would ask.
//!
//! Run: `cargo bench --bench introspect` (median per operation; the ratio
//! of each to `offline_authorize` is in docs/performance.md).

// Benchmark code: a failed unwrap is a failed run; the clock is read here on purpose.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods,
    missing_docs
)]

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request as HttpRequest, StatusCode};
use chrono::Utc;
use criterion::{criterion_group, criterion_main, Criterion};
use tessera::server::{self, admin, AppState, Config, KeyRing, SystemClock};
use tessera::store::Stores;
use tessera::token::{
    self, Action, AgentId, Capability, Lifetime, Limits, Request, Resource, ResourcePattern,
};
use tower::ServiceExt as _;

struct Setup {
    _dir: tempfile::TempDir,
    state: AppState,
    token: String,
    admin: String,
}

fn setup(rt: &tokio::runtime::Runtime) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        issuer_url: Some("http://127.0.0.1:1".into()),
        data_dir: dir.path().to_owned(),
        ..Config::default()
    };
    let (ring, _) = KeyRing::load_or_create(&config.keys_dir()).unwrap();
    let stores = rt.block_on(async { Stores::embedded(&config.data_dir).unwrap() });
    let state = AppState::new(config, stores, ring, Arc::new(SystemClock));
    let cap = Capability {
        agent: AgentId::parse("agent://bench/reader").unwrap(),
        action: Action::parse("docs:read").unwrap(),
        resource: ResourcePattern::parse("docs/team-a/*").unwrap(),
        audience: None,
        lifetime: Lifetime::parse("1h").unwrap(),
        holder_key: None,
        on_behalf: None,
    };
    let ring = state.ring();
    let token = token::mint(&cap, ring.active(), Utc::now()).unwrap().token;
    let admin = token::mint(
        &admin::admin_capability(Lifetime::parse("1h").unwrap()).unwrap(),
        ring.active(),
        Utc::now(),
    )
    .unwrap()
    .token;
    Setup {
        _dir: dir,
        state,
        token,
        admin,
    }
}

fn form(token: &str) -> String {
    serde_urlencoded::to_string([("token", token)]).unwrap()
}

fn introspection(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let s = setup(&rt);
    let keys = s.state.ring().key_set(Utc::now());
    let limits = Limits::default();
    let mut g = c.benchmark_group("introspect");

    g.bench_function("offline_authorize", |b| {
        b.iter(|| {
            let req = Request {
                amount: None,
                operation: Action::parse("docs:read").unwrap(),
                resource: Resource::parse("docs/team-a/x").unwrap(),
                service: None,
                now: Utc::now(),
                proven_key: None,
            };
            token::authorize(&s.token, &keys, &req, |_| false, &limits).unwrap()
        })
    });

    g.bench_function("offline_signatures", |b| {
        b.iter(|| {
            let bytes = token::decode(&s.token, &limits).unwrap();
            token::Verified::from_bytes(&bytes, &keys, &limits).unwrap()
        })
    });

    let app = server::app(s.state.clone());
    let body = form(&s.token);
    g.bench_function("introspect_in_process", |b| {
        b.iter(|| {
            let req = HttpRequest::post("/oauth/introspect")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::AUTHORIZATION, format!("Bearer {}", s.admin))
                .body(Body::from(body.clone()))
                .unwrap();
            let r = rt.block_on(app.clone().oneshot(req)).unwrap();
            assert_eq!(r.status(), StatusCode::OK);
        })
    });

    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let served = server::app(s.state.clone());
    rt.spawn(async move { axum::serve(listener, served).await.unwrap() });
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .unwrap();
    let url = format!("http://{addr}/oauth/introspect");
    g.bench_function("introspect_loopback", |b| {
        b.iter(|| {
            rt.block_on(async {
                let r = http
                    .post(&url)
                    .bearer_auth(&s.admin)
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), StatusCode::OK);
                let j: serde_json::Value = r.json().await.unwrap();
                assert_eq!(j["active"], true);
            })
        })
    });
    g.finish();
}

/// Private, so the `pub fn` that `criterion_group!` generates needs no doc.
mod group {
    use super::*;

    criterion_group! {
        name = benches;
        config = Criterion::default()
            .sample_size(30)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(4));
        targets = introspection
    }
}
criterion_main!(group::benches);
