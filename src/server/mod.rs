//! The issuer service: `tessera serve`.
//!
//! `app(state)` builds the router; `serve(config)` opens the stores and the
//! key ring, binds, and runs until SIGTERM or Ctrl-C, reloading the key ring
//! on SIGHUP. Connections are served by [`crate::net::serve`], with the
//! timeouts and the connection limit of the configuration. `/metrics` is
//! served only on the `metrics_listen` address, by [`metrics_app`].

pub mod admin;
pub mod admin_approvals;
pub mod admin_ops;
pub mod admin_people;
pub mod approval_policy;
pub mod audit_tlog;
pub mod authcode;
pub mod budgets_api;
pub mod budgets_audit;
pub mod ciba;
pub mod cimd;
pub mod config;
pub mod error;
pub mod exchange;
pub mod introspect;
pub mod keyring;
pub mod metrics;
pub mod notify;
pub mod oauth;
pub mod redirect_uris;
pub mod state;
pub mod webhook;

use std::future::{Future, IntoFuture};
use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;
use tower_http::limit::RequestBodyLimitLayer;

pub use config::{Config, ConfigError, LogFormat, Overrides, StoreOutage};
pub use keyring::KeyRing;
pub use state::{AppState, Clock, SystemClock};

use crate::store::Stores;
use metrics::{MethodLabel, RouteLabel};

/// The OpenAPI document served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Builds the router over `state`.
pub fn app(state: AppState) -> Router {
    let admin = Router::new()
        .route(
            "/v1/agents",
            post(admin::register_agent).get(admin::list_agents),
        )
        .route(
            "/v1/agents/{id}",
            get(admin::get_agent)
                .delete(admin::disable_agent)
                .patch(admin_ops::update_agent),
        )
        .route("/v1/keys/rotate", post(admin_ops::rotate_keys))
        .route("/v1/revocations", post(admin::revoke).get(admin::feed))
        .route("/v1/audit", get(admin::audit_log))
        .route("/v1/audit/leaves", get(audit_tlog::leaves))
        .route("/v1/audit/proof/inclusion", get(audit_tlog::inclusion))
        .route("/v1/audit/proof/consistency", get(audit_tlog::consistency))
        .route("/v1/people", get(admin_people::show_person))
        .route(
            "/v1/people/roles",
            post(admin_people::grant_role).delete(admin_people::revoke_role),
        )
        .route(
            "/v1/people/consents",
            post(admin_people::record_consent).delete(admin_people::withdraw_consent),
        )
        .route("/v1/approvals", get(admin_approvals::list))
        .route("/v1/approvals/{id}", get(admin_approvals::show))
        .route("/v1/approvals/{id}/approve", post(admin_approvals::approve))
        .route("/v1/approvals/{id}/deny", post(admin_approvals::deny))
        .route("/v1/budgets/{key}", get(budgets_api::show))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            admin::require_admin,
        ));
    Router::new()
        .route(
            "/.well-known/oauth-authorization-server",
            get(oauth::metadata),
        )
        .route("/.well-known/jwks.json", get(oauth::jwks))
        .route("/.well-known/tessera-audit-key", get(audit_tlog::audit_key))
        .route("/v1/audit/checkpoint", get(audit_tlog::checkpoint))
        .route("/oauth/token", post(oauth::token))
        .route("/oauth/bc-authorize", post(ciba::bc_authorize))
        .route("/v1/budgets/reserve", post(budgets_api::reserve))
        .route("/v1/budgets/commit", post(budgets_api::commit))
        .route("/v1/budgets/release", post(budgets_api::release))
        .route("/oauth/revoke", post(oauth::revoke))
        .route("/oauth/introspect", post(introspect::introspect))
        .merge(admin)
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/openapi.json", get(openapi))
        .merge(crate::web::routes())
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(RequestBodyLimitLayer::new(state.config.max_body_bytes))
        .with_state(state)
}

/// The router of the metrics listener: `GET /metrics` only. Not part of
/// [`app`]: whoever can reach the main listener cannot read the metrics.
pub fn metrics_app(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .with_state(state)
}

async fn readyz(State(state): State<AppState>) -> Response {
    match state.stores.ping().await {
        Ok(()) => "ready".into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            (StatusCode::SERVICE_UNAVAILABLE, "store unavailable").into_response()
        }
    }
}

async fn metrics_text(State(state): State<AppState>) -> Response {
    let mut r = state.metrics.render().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    r
}

async fn openapi() -> Response {
    let mut r = OPENAPI.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// Records the latency of every request by method, route template and
/// status: labels from closed sets (see [`RouteLabel`]).
async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = MethodLabel::from(req.method());
    let response = next.run(req).await;
    state
        .metrics
        .latency
        .get_or_create(&RouteLabel {
            method,
            route,
            status: response.status().as_u16(),
        })
        .observe(start.elapsed().as_secs_f64());
    response
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The store could not be opened.
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
    /// The key ring could not be loaded or created.
    #[error("root keys: {0}")]
    Keys(#[from] keyring::KeyRingError),
    /// An address to listen on is taken or not allowed (nothing was
    /// created: the listeners are opened before the store and the keys).
    #[error("cannot listen on {addr}: {source} (is another issuer or program using it? choose another address with {setting})")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The setting that named it.
        setting: &'static str,
        /// The cause.
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The audit signing key could not be loaded or created.
    #[error("{0}")]
    AuditKey(#[from] audit_tlog::AuditKeyError),
}

/// Opens a listener on `addr`, naming the address and its `setting` when
/// that fails.
async fn bind(addr: SocketAddr, setting: &'static str) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind {
            addr,
            setting,
            source,
        })
}

/// Opens the stores named by the configuration.
pub async fn open_stores(config: &Config) -> Result<Stores, ServeError> {
    Ok(config.open_stores().await?)
}

/// Runs the issuer until SIGTERM or Ctrl-C. `ready` receives the bound
/// address once the listener is open.
pub async fn serve(
    config: Config,
    ready: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
) -> Result<(), ServeError> {
    // Listen first: a busy address is refused before anything is created
    // (no data directory, no root key).
    let listener = bind(config.listen, "--listen (or `listen` in the configuration)").await?;
    let addr = listener.local_addr()?;
    let metrics_listener = match config.metrics_listen {
        Some(a) => Some(bind(a, "`metrics_listen` in the configuration").await?),
        None => None,
    };
    let keys_dir = config.keys_dir();
    let (ring, created) = KeyRing::load_or_create(&keys_dir)?;
    if created {
        tracing::info!(dir = %keys_dir.display(), "generated a new root key (id 0)");
    }
    tracing::info!(active_key_id = ring.active().id, "root key ring loaded");
    let stores = open_stores(&config).await?;
    let mut config = config;
    if config.issuer_url.is_none() {
        config.issuer_url = Some(format!("http://{addr}"));
    }
    let store_kind = if config.redis_url.is_some() {
        "redis"
    } else {
        "embedded"
    };
    let state = AppState::new(config, stores, ring, Arc::new(SystemClock));
    let audit_key = state
        .config
        .audit_key_file
        .clone()
        .unwrap_or_else(|| keys_dir.join(audit_tlog::AUDIT_KEY_FILE));
    let origin = state
        .config
        .audit_origin
        .clone()
        .unwrap_or_else(|| audit_tlog::default_origin(&state.issuer));
    audit_tlog::install_key(&state, &audit_key, &origin)?;
    tracing::info!(%addr, issuer = %state.issuer, store = store_kind, "tessera issuer listening");
    if !crate::store::tree::AUDIT_TREE_ON {
        tracing::warn!("{}; never run it in production", audit_tlog::NO_TREE);
    }
    if let Some(m) = &metrics_listener {
        tracing::info!(addr = %m.local_addr()?, "metrics listening");
    }
    tell_where(&state.config);
    spawn_reload_on_hangup(state.clone(), keys_dir);
    if let Some(tx) = ready {
        let _ = tx.send(addr);
    }
    run(state, listener, metrics_listener, shutdown_signal()).await?;
    tracing::info!("tessera issuer stopped");
    Ok(())
}

/// Serves [`app`] on `listener` and, if given, [`metrics_app`] on
/// `metrics`, both with the configuration's connection limits, until
/// `shutdown` completes; then both stop gracefully.
pub async fn run(
    state: AppState,
    listener: TcpListener,
    metrics: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = state.config.serve_limits();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let signal = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let main = crate::net::serve(listener, app(state.clone()), limits)
        .with_graceful_shutdown(signal(stopped.clone()));
    let servers = async move {
        match metrics {
            Some(m) => {
                let m = crate::net::serve(m, metrics_app(state), limits)
                    .with_graceful_shutdown(signal(stopped));
                tokio::try_join!(main.into_future(), m.into_future()).map(|_| ())
            }
            None => main.await,
        }
    };
    let mut servers = std::pin::pin!(servers);
    tokio::select! {
        result = &mut servers => result,
        () = shutdown => {
            let _ = stop.send(true);
            servers.await
        }
    }
}

/// Says where the data and the root keys are, and the exact command that
/// prints an admin token for the `/v1` API.
fn tell_where(config: &Config) {
    let absolute =
        |p: &std::path::Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let keys_dir = config.keys_dir();
    if config.redis_url.is_none() {
        tracing::info!(dir = %absolute(&config.data_dir).display(), "data (embedded store)");
    }
    tracing::info!(dir = %absolute(&keys_dir).display(), "root keys (private: keep this directory out of backups you share and out of git)");
    // `admin token --data-dir D` reads the ring in `D/keys`.
    match keys_dir.parent().filter(|_| keys_dir.ends_with("keys")) {
        Some(dir) => tracing::info!(
            "admin token for the /v1 API: tessera admin token --data-dir {}",
            shell_word(&if dir.as_os_str().is_empty() {
                ".".to_owned()
            } else {
                dir.display().to_string()
            })
        ),
        None => tracing::info!(
            "admin token for the /v1 API: tessera admin token --root-key <the active key file \
             named in {}> --root-key-id <its id>",
            keys_dir.join("ring.json").display()
        ),
    }
}

/// `s` as one shell word: as is when it needs no quoting, else in single quotes.
fn shell_word(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@+,".contains(&b));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

fn spawn_reload_on_hangup(state: AppState, dir: std::path::PathBuf) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; key ring reload disabled");
            return;
        };
        while hup.recv().await.is_some() {
            match KeyRing::load(&dir) {
                Ok(ring) => {
                    tracing::info!(active_key_id = ring.active().id, "root key ring reloaded");
                    state.replace_ring(ring);
                }
                Err(e) => {
                    tracing::error!(error = %e, "key ring reload failed; keeping the old ring")
                }
            }
        }
    });
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}

/// Installs the log subscriber (`TESSERA_LOG` or `RUST_LOG` filter, default
/// `info`) writing to standard error, coloured only if that is a terminal
/// and `NO_COLOR` is unset or empty.
pub fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("TESSERA_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let colour = use_colour(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Human => builder.try_init(),
    };
}

/// Colour codes only on a terminal, and never when `NO_COLOR` is set to a
/// non-empty value (<https://no-color.org>).
fn use_colour(terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(use_colour(true, None));
        assert!(use_colour(true, Some(OsStr::new(""))));
        assert!(!use_colour(true, Some(OsStr::new("1"))));
        assert!(!use_colour(false, None));
        assert!(!use_colour(false, Some(OsStr::new(""))));
    }

    #[test]
    fn a_path_is_one_shell_word() {
        assert_eq!(shell_word("tessera-data"), "tessera-data");
        assert_eq!(shell_word("/var/lib/tessera"), "/var/lib/tessera");
        assert_eq!(shell_word("my data"), "'my data'");
        assert_eq!(shell_word("it's"), "'it'\\''s'");
        assert_eq!(shell_word("$(rm -rf x)"), "'$(rm -rf x)'");
    }

    #[test]
    fn method_labels_come_from_a_closed_set() {
        use axum::http::Method;
        assert_eq!(MethodLabel::from(&Method::GET).as_str(), "GET");
        assert_eq!(MethodLabel::from(&Method::CONNECT).as_str(), "other");
        let odd =
            Method::from_bytes(b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").unwrap();
        assert_eq!(MethodLabel::from(&odd).as_str(), "other");
        assert_eq!(
            MethodLabel::from(&Method::from_bytes(b"get").unwrap()).as_str(),
            "other"
        );
    }
}
