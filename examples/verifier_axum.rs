//! A tool server that checks every request with a Tessera token: the
//! example of `docs/verifier.md`, "Add it to an axum service".
//!
//! - `GET /orders/{id}` needs `orders:read` on `orders/{id}`; the handler
//!   receives the [`Grant`] (who is calling, through which agents, and for
//!   which person when the token acts for one).
//! - `GET /.well-known/oauth-protected-resource`: the RFC 9728 metadata
//!   naming the issuer, with no token needed. A request without a token is
//!   answered 401 with `WWW-Authenticate: Bearer resource_metadata="…"`
//!   pointing there.
//! - Keys come from the issuer's JWKS, revocations from its feed (with a
//!   read-only feed token), and the server runs under `tessera::net::serve`
//!   (header, body and idle timeouts, a connection limit).
//!
//! Run it next to `tessera serve` on 127.0.0.1:8080:
//!
//! ```sh
//! TESSERA_FEED_TOKEN="$(tessera admin token --feed --data-dir tessera-data)" \
//!   cargo run --example verifier_axum --features verifier-axum
//! ```
//!
//! Settings (environment): `TESSERA_ISSUER` (default
//! `http://127.0.0.1:8080`), `TESSERA_FEED_TOKEN` (required), `LISTEN`
//! (default `127.0.0.1:8081`), `SERVICE_URI` (this server's URI, the
//! audience its tokens name; default `http://<LISTEN>`).

use std::time::Duration;

use axum::extract::Path;
use axum::routing::get;
use axum::{Json, Router};
use tessera::net::ServeLimits;
use tessera::verify::layer::{resource_metadata, Scope, VerifyLayer, RESOURCE_METADATA_PATH};
use tessera::verify::{BuildError, CheckRequest, Grant, KeySource, Revocations, Verifier};

/// What the server needs.
pub struct Config {
    /// This server's URI: the audience its tokens must name.
    pub service: String,
    /// The Tessera issuer's base URL (key set, revocation feed, metadata).
    pub issuer: String,
    /// A read-only feed token, from `tessera admin token --feed`.
    pub feed_token: String,
}

/// The routes, behind the verifier's layer.
pub async fn app(config: &Config) -> Result<Router, BuildError> {
    let issuer = config.issuer.trim_end_matches('/');
    let verifier = Verifier::builder(&config.service)
        .keys(KeySource::JwksUrl(format!(
            "{issuer}/.well-known/jwks.json"
        )))
        .revocations(Revocations::Issuer {
            url: issuer.to_owned(),
            feed_token: config.feed_token.clone(),
        })
        .build()
        .await?;
    // Until the first read of the feed, every call is refused as `stale`.
    if !verifier.ready(Duration::from_secs(5)).await {
        eprintln!("revocations not loaded yet: calls are refused (stale) until they are");
    }
    let metadata = resource_metadata(verifier.service(), &[issuer]);

    // Map each request to what it needs: (operation, resource), or nothing.
    let layer = VerifyLayer::new(verifier, |parts| {
        let path = parts.uri.path();
        if path == RESOURCE_METADATA_PATH {
            return Scope::Public;
        }
        let Some(id) = path.strip_prefix("/orders/") else {
            return Scope::Refuse("no such route".into());
        };
        match CheckRequest::new("orders:read", &format!("orders/{id}")) {
            Ok(request) => Scope::Check(request),
            Err(e) => Scope::Refuse(e.to_string()),
        }
    });
    Ok(Router::new()
        .route(
            "/orders/{id}",
            get(|Path(id): Path<String>, grant: Grant| async move {
                // A token that acts for a person names them, and the
                // whole chain: for <person> via <agents, oldest first>.
                match grant.person() {
                    Some(_) => format!("order {id}, read {}\n", grant.custody()),
                    None => format!("order {id}, read by {}\n", grant.acting()),
                }
            }),
        )
        .route(
            RESOURCE_METADATA_PATH,
            get(move || async move { Json(metadata) }),
        )
        .layer(layer))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let env = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    let feed_token = std::env::var("TESSERA_FEED_TOKEN")
        .map_err(|_| "set TESSERA_FEED_TOKEN (from `tessera admin token --feed`)")?;
    let listener = tokio::net::TcpListener::bind(env("LISTEN", "127.0.0.1:8081")).await?;
    let config = Config {
        service: env("SERVICE_URI", &format!("http://{}", listener.local_addr()?)),
        issuer: env("TESSERA_ISSUER", "http://127.0.0.1:8080"),
        feed_token,
    };
    let router = app(&config).await?;
    println!("listening on {}", config.service);
    // Header 10 s, body 30 s, idle 60 s, 1024 connections: strangers cannot
    // hold connections open (`axum::serve` has none of these limits).
    tessera::net::serve(listener, router, ServeLimits::default()).await?;
    Ok(())
}
