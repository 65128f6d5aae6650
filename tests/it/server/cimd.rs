//! Client ID Metadata Documents fetched from a real HTTP server on
//! loopback: the document checks, the fetch bounds (size, time, redirects,
//! addresses), the cache and the limits on a flood of unknown URLs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use serde_json::json;
use tessera::server::cimd::{AuthMethod, CimdError, ClientMetadataFetcher, ClientsConfig};
use tessera::server::config::Ttl;

use super::helpers::now;

/// The document server: counts requests per path and the most in flight.
#[derive(Clone, Default)]
struct Docs {
    base: Arc<Mutex<String>>,
    hits: Arc<Mutex<HashMap<String, usize>>>,
    in_flight: Arc<AtomicUsize>,
    most_in_flight: Arc<AtomicUsize>,
}

impl Docs {
    async fn start() -> Self {
        let docs = Docs::default();
        let app = Router::new()
            .route("/{name}", get(serve))
            .route("/flood/{n}", get(flood))
            .route("/hold/{n}", get(hold))
            .with_state(docs.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        *docs.base.lock().unwrap() = format!("http://127.0.0.1:{port}");
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        docs
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base.lock().unwrap())
    }

    fn port(&self) -> u16 {
        self.base
            .lock()
            .unwrap()
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    }

    fn hits(&self, path: &str) -> usize {
        let key = format!("/{path}");
        self.hits.lock().unwrap().get(&key).copied().unwrap_or(0)
    }

    fn total_hits(&self) -> usize {
        self.hits.lock().unwrap().values().sum()
    }

    fn hit(&self, path: String) {
        *self.hits.lock().unwrap().entry(path).or_default() += 1;
    }
}

fn document(client_id: &str) -> serde_json::Value {
    json!({
        "client_id": client_id,
        "client_name": "Test\u{202e} Agent\n",
        "client_uri": "https://agent.example/",
        "logo_uri": "https://agent.example/logo.png",
        "redirect_uris": ["http://127.0.0.1:33418/callback", "https://agent.example/cb"],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "scope": "get_order orders:read",
        "software_id": "ignored-extra-field",
    })
}

fn json_reply(headers: &[(header::HeaderName, &str)], body: String) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
    for (k, v) in headers {
        r.headers_mut().insert(k.clone(), v.parse().unwrap());
    }
    r
}

async fn serve(State(docs): State<Docs>, Path(name): Path<String>) -> Response {
    docs.hit(format!("/{name}"));
    let me = docs.url(&name);
    let cache = |v: &'static str| [(header::CACHE_CONTROL, v)];
    match name.as_str() {
        "good.json" => json_reply(&cache("max-age=300"), document(&me).to_string()),
        "nostore.json" => json_reply(&cache("no-store"), document(&me).to_string()),
        "short.json" => json_reply(&cache("max-age=1"), document(&me).to_string()),
        "mismatch.json" => json_reply(&[], document(&docs.url("other.json")).to_string()),
        "secret.json" => {
            let mut d = document(&me);
            d["token_endpoint_auth_method"] = json!("client_secret_basic");
            json_reply(&[], d.to_string())
        }
        "jwt.json" => {
            let mut d = document(&me);
            d["token_endpoint_auth_method"] = json!("private_key_jwt");
            d["jwks"] = json!({"keys": [{
                "kty": "OKP", "crv": "Ed25519", "kid": "k1",
                "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
            }]});
            json_reply(&[], d.to_string())
        }
        "keys.json" => json_reply(
            &cache("max-age=600"),
            json!({"keys": [{
                "kty": "OKP", "crv": "Ed25519", "kid": "k1",
                "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
            }]})
            .to_string(),
        ),
        "nokeys.json" => {
            let mut d = document(&me);
            d["token_endpoint_auth_method"] = json!("private_key_jwt");
            json_reply(&[], d.to_string())
        }
        "big.json" => {
            let mut d = document(&me);
            d["padding"] = json!("x".repeat(10 * 1024));
            json_reply(&[], d.to_string())
        }
        "big-chunked.json" => {
            // No Content-Length: the fetcher must stop reading past the bound.
            let head = format!("{{\"client_id\":\"{me}\",\"padding\":\"");
            let chunks = Chunks {
                head: Some(head.into_bytes()),
                left: 64,
            };
            let mut r = Response::new(Body::new(chunks));
            r.headers_mut()
                .insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
            r
        }
        "slow.json" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            json_reply(&[], document(&me).to_string())
        }
        "redirect.json" => {
            let mut r = StatusCode::FOUND.into_response();
            r.headers_mut()
                .insert(header::LOCATION, docs.url("good.json").parse().unwrap());
            r
        }
        "bad.json" => json_reply(&[], "{\"client_id\": ".into()),
        "text.json" => {
            let mut r = document(&me).to_string().into_response();
            r.headers_mut()
                .insert(header::CONTENT_TYPE, "text/html".parse().unwrap());
            r
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

/// A body past the bound, sent in 1 KiB chunks without a length.
struct Chunks {
    head: Option<Vec<u8>>,
    left: usize,
}

impl http_body::Body for Chunks {
    type Data = axum::body::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let next = if let Some(head) = self.head.take() {
            Some(head)
        } else if self.left > 0 {
            self.left -= 1;
            Some(vec![b'x'; 1024])
        } else {
            None
        };
        std::task::Poll::Ready(next.map(|b| Ok(http_body::Frame::data(b.into()))))
    }
}

async fn flood(State(docs): State<Docs>, Path(n): Path<String>) -> Response {
    docs.hit(format!("/flood/{n}"));
    StatusCode::NOT_FOUND.into_response()
}

async fn hold(State(docs): State<Docs>, Path(n): Path<String>, h: HeaderMap) -> Response {
    docs.hit(format!("/hold/{n}"));
    let now = docs.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    docs.most_in_flight.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    docs.in_flight.fetch_sub(1, Ordering::SeqCst);
    // The document names the URL as the client wrote it (Host header).
    let host = h
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let me = format!("http://{host}/hold/{n}");
    json_reply(&[], document(&me).to_string())
}

fn config() -> ClientsConfig {
    ClientsConfig {
        allow_private_addresses: true,
        fetch_timeout: Ttl(Duration::from_secs(1)),
        ..ClientsConfig::default()
    }
}

fn later(t: DateTime<Utc>, secs: i64) -> DateTime<Utc> {
    t + chrono::Duration::seconds(secs)
}

#[tokio::test]
async fn a_valid_document_is_fetched_checked_and_cleaned() {
    let docs = Docs::start().await;
    let fetcher = ClientMetadataFetcher::new(config());
    let id = docs.url("good.json");
    assert!(fetcher.is_metadata_url(&id));
    let m = fetcher.get(&id, now()).await.unwrap();
    assert_eq!(m.client_id, id);
    assert_eq!(m.client_name.as_deref(), Some("Test Agent"));
    assert_eq!(m.token_endpoint_auth_method, AuthMethod::None);
    assert!(m.allows_redirect_uri("http://127.0.0.1:33418/callback"));
    assert!(!m.allows_redirect_uri("http://127.0.0.1:33419/callback"));
    assert!(!m.allows_redirect_uri("https://agent.example/cb/"));
    assert!(m.allows_grant_type("refresh_token"));
    assert_eq!(m.scope.as_deref(), Some("get_order orders:read"));
    assert_eq!(
        m.logo_uri.as_deref(),
        Some("https://agent.example/logo.png")
    );

    let jwt = fetcher.get(&docs.url("jwt.json"), now()).await.unwrap();
    assert_eq!(jwt.token_endpoint_auth_method, AuthMethod::PrivateKeyJwt);
    assert_eq!(jwt.jwks.as_ref().map(|k| k.keys().len()), Some(1));
}

#[tokio::test]
async fn a_jwks_uri_is_fetched_under_the_same_rules_and_cached() {
    let docs = Docs::start().await;
    let fetcher = ClientMetadataFetcher::new(config());
    let t = now();
    let keys = fetcher.get_jwks(&docs.url("keys.json"), t).await.unwrap();
    assert_eq!(keys.keys().len(), 1);
    fetcher
        .get_jwks(&docs.url("keys.json"), later(t, 599))
        .await
        .unwrap();
    assert_eq!(docs.hits("keys.json"), 1);
    assert_eq!(
        fetcher
            .get_jwks(&docs.url("bad.json"), t)
            .await
            .unwrap_err(),
        CimdError::Field("jwks_uri", "not a usable JWK set")
    );
    // A key set is never taken for a document, nor the reverse.
    assert_eq!(
        fetcher.get(&docs.url("keys.json"), t).await.unwrap_err(),
        CimdError::ClientIdMismatch
    );
    let private = ClientMetadataFetcher::new(ClientsConfig::default());
    assert_eq!(
        private
            .get_jwks("https://10.1.2.3/jwks", t)
            .await
            .unwrap_err(),
        CimdError::ForbiddenAddress
    );
}

#[tokio::test]
async fn bad_documents_are_refused_with_typed_errors() {
    let docs = Docs::start().await;
    let fetcher = ClientMetadataFetcher::new(config());
    let cases = [
        ("mismatch.json", CimdError::ClientIdMismatch),
        ("secret.json", CimdError::SecretAuth),
        ("nokeys.json", CimdError::Keys),
        ("bad.json", CimdError::Json),
        ("text.json", CimdError::ContentType),
        ("missing.json", CimdError::Status(404)),
        ("big.json", CimdError::TooLarge(5 * 1024)),
        ("big-chunked.json", CimdError::TooLarge(5 * 1024)),
        ("redirect.json", CimdError::Redirect(302)),
    ];
    for (path, want) in cases {
        let got = fetcher.get(&docs.url(path), now()).await.unwrap_err();
        assert_eq!(got, want, "{path}");
        assert_eq!(got.oauth_error().as_str(), "invalid_client");
        let reason = got.to_string();
        let api = tessera::server::error::ApiError::from(got.clone());
        assert_eq!(api.to_string(), format!("invalid_client: {reason}"));
        assert!(
            !reason.contains('\n') && !reason.contains("client_name"),
            "{reason}"
        );
    }
    // The redirect was not followed.
    assert_eq!(docs.hits("good.json"), 0);
}

#[tokio::test]
async fn a_slow_document_times_out() {
    let docs = Docs::start().await;
    let fetcher = ClientMetadataFetcher::new(config());
    let started = std::time::Instant::now();
    let got = fetcher
        .get(&docs.url("slow.json"), now())
        .await
        .unwrap_err();
    assert_eq!(got, CimdError::Timeout);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn private_and_loopback_addresses_are_refused_unless_allowed() {
    let docs = Docs::start().await;
    let fetcher = ClientMetadataFetcher::new(ClientsConfig::default());
    let port = docs.port();
    // Plain http is refused outright when private addresses are not allowed.
    assert!(!fetcher.is_metadata_url(&docs.url("good.json")));
    assert!(matches!(
        fetcher.get(&docs.url("good.json"), now()).await,
        Err(CimdError::BadUrl(_))
    ));
    for id in [
        format!("https://127.0.0.1:{port}/good.json"),
        "https://10.0.0.1/client.json".to_owned(),
        "https://169.254.169.254/latest/meta-data".to_owned(),
        "https://[::1]/client.json".to_owned(),
        "https://[::ffff:7f00:1]/client.json".to_owned(),
        format!("https://localhost:{port}/good.json"),
    ] {
        let got = fetcher.get(&id, now()).await.unwrap_err();
        assert_eq!(got, CimdError::ForbiddenAddress, "{id}");
        assert_eq!(got.oauth_error().as_str(), "invalid_client");
    }
    assert_eq!(docs.total_hits(), 0, "nothing may reach the server");
    assert_eq!(fetcher.stats().failures.load(Ordering::Relaxed), 6);
}

#[tokio::test]
async fn a_host_name_is_resolved_once_and_the_connection_goes_to_the_checked_address() {
    let docs = Docs::start().await;
    let fetcher = ClientMetadataFetcher::new(config());
    // `localhost` resolves to loopback: allowed here, so the fetch goes to
    // the address Tessera resolved (the document names the host-name URL).
    let id = format!("http://localhost:{}/hold/by-name", docs.port());
    let m = fetcher.get(&id, now()).await.unwrap();
    assert_eq!(m.client_id, id);
    assert_eq!(docs.hits("hold/by-name"), 1);
}

#[tokio::test]
async fn client_id_urls_must_follow_the_draft() {
    let fetcher = ClientMetadataFetcher::new(config());
    for id in [
        "https://agent.example",
        "https://agent.example/a#b",
        "https://u:p@agent.example/c",
        "https://agent.example/a/../c",
        "https://agent.example/%2e/c",
    ] {
        assert!(
            matches!(fetcher.get(id, now()).await, Err(CimdError::BadUrl(_))),
            "{id}"
        );
    }
    let off = ClientMetadataFetcher::new(ClientsConfig {
        metadata_documents: false,
        ..config()
    });
    assert_eq!(
        off.get("https://agent.example/c", now()).await.unwrap_err(),
        CimdError::Disabled
    );
}

#[tokio::test]
async fn the_cache_honours_max_age_and_no_store() {
    let docs = Docs::start().await;
    let fetcher = ClientMetadataFetcher::new(config());
    let t = now();
    let good = docs.url("good.json");
    fetcher.get(&good, t).await.unwrap();
    fetcher.get(&good, later(t, 299)).await.unwrap();
    assert_eq!(docs.hits("good.json"), 1, "within max-age: from the cache");
    fetcher.get(&good, later(t, 301)).await.unwrap();
    assert_eq!(docs.hits("good.json"), 2, "past max-age: fetched again");

    let no_store = docs.url("nostore.json");
    fetcher.get(&no_store, t).await.unwrap();
    fetcher.get(&no_store, t).await.unwrap();
    assert_eq!(docs.hits("nostore.json"), 2, "no-store: fetched every time");

    // max-age below min_cache (60 s) is raised to it.
    let short = docs.url("short.json");
    fetcher.get(&short, t).await.unwrap();
    fetcher.get(&short, later(t, 59)).await.unwrap();
    assert_eq!(docs.hits("short.json"), 1);
    fetcher.get(&short, later(t, 61)).await.unwrap();
    assert_eq!(docs.hits("short.json"), 2);

    // Failures are remembered for failure_cache (30 s).
    let bad = docs.url("bad.json");
    for s in [0, 10, 29] {
        assert_eq!(
            fetcher.get(&bad, later(t, s)).await.unwrap_err(),
            CimdError::Json
        );
    }
    assert_eq!(docs.hits("bad.json"), 1);
    fetcher.get(&bad, later(t, 31)).await.unwrap_err();
    assert_eq!(docs.hits("bad.json"), 2);
    assert!(fetcher.stats().cache_hits.load(Ordering::Relaxed) >= 4);
}

#[tokio::test]
async fn a_flood_of_unknown_urls_is_bounded() {
    let docs = Docs::start().await;
    let fetcher = ClientMetadataFetcher::new(ClientsConfig {
        fetches_per_minute: 5,
        cache_entries: 3,
        ..config()
    });
    let t = now();
    let mut busy = 0;
    for i in 0..200 {
        match fetcher.get(&docs.url(&format!("flood/{i}")), t).await {
            Err(CimdError::Busy) => busy += 1,
            Err(CimdError::Status(404)) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(docs.total_hits(), 5, "at most fetches_per_minute fetches");
    assert_eq!(busy, 195);
    assert_eq!(CimdError::Busy.oauth_error().as_str(), "invalid_request");
    assert!(
        fetcher.cached_len() <= 3,
        "cache bounded: {}",
        fetcher.cached_len()
    );
    assert_eq!(fetcher.stats().busy.load(Ordering::Relaxed), 195);
    assert!(fetcher.stats().evictions.load(Ordering::Relaxed) >= 2);
    // A minute later the budget is back.
    assert_eq!(
        fetcher
            .get(&docs.url("good.json"), later(t, 61))
            .await
            .unwrap()
            .client_id,
        docs.url("good.json")
    );
}

#[tokio::test]
async fn fetches_from_one_host_are_limited_at_once() {
    let docs = Docs::start().await;
    let fetcher = Arc::new(ClientMetadataFetcher::new(config()));
    let t = now();
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let (f, url) = (fetcher.clone(), docs.url(&format!("hold/{i}")));
            tokio::spawn(async move { f.get(&url, t).await })
        })
        .collect();
    let mut ok = 0;
    let mut busy = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => ok += 1,
            Err(CimdError::Busy) => busy += 1,
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert!(docs.most_in_flight.load(Ordering::SeqCst) <= 2);
    assert_eq!(ok + busy, 20);
    assert!(ok >= 1 && busy >= 1, "ok {ok}, busy {busy}");
    assert_eq!(docs.total_hits(), ok);
}

#[test]
fn the_clients_table_is_read_and_checked() {
    use tessera::server::config::{Config, Overrides};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tessera.toml");
    std::fs::write(
        &path,
        "[clients]\nallow_private_addresses = true\nfetch_timeout = \"3s\"\nmax_document_bytes = 8192\n",
    )
    .unwrap();
    let config = Config::load(Some(&path), [], Overrides::default()).unwrap();
    assert!(config.clients.allow_private_addresses);
    assert_eq!(config.clients.fetch_timeout.0, Duration::from_secs(3));
    assert_eq!(config.clients.max_document_bytes, 8192);
    assert_eq!(config.clients.fetches_per_minute, 60);
    for bad in [
        "[clients]\nmax_document_bytes = 10\n",
        "[clients]\nfetch_timeout = \"0s\"\n",
        "[clients]\nmin_cache = \"2h\"\nmax_cache = \"1h\"\n",
        "[clients]\nno_such_key = 1\n",
    ] {
        std::fs::write(&path, bad).unwrap();
        assert!(
            Config::load(Some(&path), [], Overrides::default()).is_err(),
            "{bad}"
        );
    }
}
