//! An MCP tool server that checks every tool call with a Tessera token.
//!
//! A small in-memory orders tool set (`list_orders`, `get_order`,
//! `create_order`, `delete_order`) served over MCP's streamable HTTP
//! transport with the official Rust SDK (`rmcp`) on axum:
//!
//! - `POST/GET/DELETE /mcp`: the MCP endpoint. The [`VerifyLayer`] checks the
//!   token (and a DPoP proof, when one is presented) on every HTTP request,
//!   with [`Scope::Deferred`]: the operation is only known once the JSON-RPC
//!   body is read, but everything else (signatures, revocation, expiry,
//!   audience, the holder's proof) is refused with 401 before MCP sees the
//!   request, `initialize` and `tools/list` included. Each tool then calls
//!   [`Verifier::authorize`] with
//!   operation = the tool name and resource = what it touches
//!   (`orders/<id>`, or `orders` for listing and creating), plus the
//!   `amount` argument of `create_order` (`12.50EUR`) for a token that caps
//!   amounts (`docs/token-schema.md`, "Amount caps"). A refusal
//!   becomes a tool error (`isError: true`) naming the reason, e.g.
//!   `out_of_scope: …`.
//! - `pay {payee, amount}` (`mcp/pay.rs`): `payments:create` on
//!   `payees/<payee>`, only with a token a person approved for the amount;
//!   a refusal carries the hint to ask at the issuer's `bc-authorize`.
//! - Step-up (RFC 6750 §3.1, the MCP authorization spec's scope
//!   challenge): a `tools/call` for a tool whose action the token's
//!   authority block does not grant at all is answered 403 with
//!   `WWW-Authenticate: Bearer error="insufficient_scope", scope="…",
//!   resource_metadata="…"` before MCP sees it, `scope` naming the actions
//!   the token has plus the tool's, so that an OAuth client (the MCP SDKs')
//!   can ask for a token with that scope and retry. A call the token's
//!   actions cover but whose resource, amount or narrowing it refuses stays
//!   a tool error: a new token with the same scope would not help.
//! - `GET /.well-known/oauth-protected-resource` (and the path-inserted
//!   form `…/oauth-protected-resource/mcp`): RFC 9728 metadata naming the
//!   Tessera issuer (`authorization_servers`) and the tools as
//!   `scopes_supported` (a scope is a tool name: the action a token must
//!   grant). A request without a token is answered 401 with
//!   `WWW-Authenticate: Bearer resource_metadata="…"`.
//! - Revocations are followed from the issuer's Redis stream (`--redis-url`)
//!   or from its HTTP feed with a read-only feed token (`--feed-token`, from
//!   `tessera admin token --feed`, or `--feed-token-file` for a token a
//!   timer renews): revoking a token at the issuer takes effect here within
//!   a second or two. When the follower falls behind by more than 5 s, calls
//!   are refused (`stale`).
//!
//! Run it next to `tessera serve` (see `examples/README-mcp.md`):
//!
//! ```sh
//! tessera admin token --feed --data-dir tessera-data > feed.token
//! cargo run --example mcp_tool_server -- \
//!   --issuer http://127.0.0.1:8080 --feed-token-file feed.token
//! ```
//!
//! (`--feed-token` works too, but a token on the command line is visible in
//! `ps` and in shell history: prefer the file, or `TESSERA_FEED_TOKEN`.)

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use clap::{ArgGroup, Parser};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::Extension;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, Implementation, ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{schemars, tool, tool_handler, tool_router, ServerHandler};
use serde::{Deserialize, Serialize};
use tessera::token::Amount;
use tessera::verify::layer::{resource_metadata, Scope, VerifyLayer, RESOURCE_METADATA_PATH};
use tessera::verify::{
    Authenticated, BuildError, CheckRequest, Grant, KeySource, Revocations, Verifier,
};
use tokio::sync::Mutex;

#[path = "mcp/pay.rs"]
mod pay;

/// The tools, in the order they are listed (each is also the operation a
/// token must grant).
pub const TOOLS: [&str; 4] = ["list_orders", "get_order", "create_order", "delete_order"];

/// Most bytes of a request body the step-up check reads (rmcp's own bound).
const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// The tools a JSON-RPC message (or batch) calls: `params.name` of each
/// `tools/call` request. Anything else (not JSON, other methods) names
/// none and is left to MCP.
fn called_tools(message: &serde_json::Value) -> Vec<&str> {
    fn one(m: &serde_json::Value) -> Option<&str> {
        if m.get("method")?.as_str()? != "tools/call" {
            return None;
        }
        m.get("params")?.get("name")?.as_str()
    }
    match message {
        serde_json::Value::Array(batch) => batch.iter().filter_map(one).collect(),
        single => one(single).into_iter().collect(),
    }
}

/// The scope a client should ask for to call `tool`: the actions the
/// token has, then the tool (RFC 6749 §3.3, space-separated), so that a
/// client that replaces its scope with the challenge's keeps what it had.
fn step_up_scope(granted: &[&str], tool: &str) -> String {
    let mut scope: Vec<&str> = granted.iter().copied().filter(|a| *a != tool).collect();
    scope.push(tool);
    scope.join(" ")
}

/// Answers 403 `insufficient_scope` to a `tools/call` whose tool the
/// token's authority block does not grant (see the module documentation).
/// Runs behind the [`VerifyLayer`], which left the [`Authenticated`]
/// token in the request; other requests pass untouched.
async fn step_up(State(layer): State<VerifyLayer>, request: Request, next: Next) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let Some(authenticated) = request.extensions().get::<Authenticated>().cloned() else {
        return next.run(request).await;
    };
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_MESSAGE_BYTES).await else {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than {MAX_MESSAGE_BYTES} bytes"),
        )
            .into_response();
    };
    if let Ok(message) = serde_json::from_slice::<serde_json::Value>(&bytes) {
        let granted = authenticated.granted_actions();
        let missing = called_tools(&message)
            .into_iter()
            .find(|tool| TOOLS.contains(tool) && !authenticated.grants_action(tool));
        if let Some(tool) = missing {
            tracing::info!(
                tool,
                token_id = authenticated.token_id(),
                "refused: the token does not grant this tool (step-up)"
            );
            return layer.insufficient_scope(
                &parts.headers,
                &step_up_scope(&granted, tool),
                &format!("the token grants no `{tool}`"),
            );
        }
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// Where the server learns about revocations.
#[derive(Debug, Clone)]
pub enum RevocationSource {
    /// The issuer's Redis (the stream `tessera:{rev}:revocations`, docs/storage.md).
    Redis {
        /// `redis://[user:password@]host:port[/db]`.
        url: String,
    },
    /// The issuer's feed, `GET <issuer>/v1/revocations`, with a feed token
    /// (`tessera admin token --feed`) or an admin token.
    Feed {
        /// The bearer credential for the feed.
        token: String,
    },
    /// The issuer's feed with a feed token kept in a file, read again when
    /// a timer renews it (see `docs/verifier.md`).
    FeedFile {
        /// The file holding the bearer credential.
        path: PathBuf,
    },
}

/// What the server needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// This server's canonical URI, `http(s)://host[:port]/mcp`: the
    /// audience its tokens must name.
    pub public_url: String,
    /// The Tessera issuer's base URL (for the key set, the feed, and the
    /// protected-resource metadata).
    pub issuer: String,
    /// Where revocations come from.
    pub revocations: RevocationSource,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The verifier could not be built (for example the issuer's key set
    /// could not be fetched, or the revocation follower could not start).
    #[error("verifier: {0}")]
    Verifier(#[from] BuildError),
    /// A setting is invalid.
    #[error("{0}")]
    Config(String),
    /// Listening or serving failed.
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
}

/// The revocation source for the verifier: the one place that picks a
/// follower. The verifier runs it (and stops it when the last clone of the
/// verifier is dropped).
fn revocations(issuer: &str, source: &RevocationSource) -> Revocations {
    match source {
        RevocationSource::Redis { url } => Revocations::Redis { url: url.clone() },
        RevocationSource::Feed { token } => Revocations::Issuer {
            url: issuer.to_owned(),
            feed_token: token.clone(),
        },
        RevocationSource::FeedFile { path } => Revocations::IssuerTokenFile {
            url: issuer.to_owned(),
            feed_token_file: path.clone(),
        },
    }
}

/// Waits (a bounded while) for the follower's first complete read, so that
/// the first calls are not refused as `stale`.
async fn wait_until_current(verifier: &Verifier, within: Duration) {
    let Some(view) = verifier.revocations() else {
        return;
    };
    let deadline = Instant::now() + within;
    while view.staleness().is_none() {
        if Instant::now() >= deadline {
            tracing::warn!(
                "revocations are not loaded yet; calls are refused (stale) until they are"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An order.
#[derive(Debug, Clone, Serialize)]
pub struct Order {
    /// Its number.
    pub id: u64,
    /// What was ordered.
    pub item: String,
}

/// The in-memory orders, shared by every MCP session.
#[derive(Debug)]
struct Orders {
    next: u64,
    by_id: BTreeMap<u64, Order>,
}

impl Orders {
    fn seeded() -> Self {
        let mut orders = Self {
            next: 1,
            by_id: BTreeMap::new(),
        };
        orders.create("espresso beans, 1 kg".into());
        orders.create("paper filters, 100".into());
        orders
    }

    fn create(&mut self, item: String) -> Order {
        let order = Order {
            id: self.next,
            item,
        };
        self.next += 1;
        self.by_id.insert(order.id, order.clone());
        order
    }
}

/// `get_order` and `delete_order` arguments.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct OrderId {
    /// The order number.
    pub id: u64,
}

/// `create_order` arguments.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct NewOrder {
    /// What to order.
    pub item: String,
    /// The order's total, as in `12.50EUR`: checked against the token's
    /// amount cap, if it has one (a capped token refuses an order without it).
    #[serde(default)]
    pub amount: Option<String>,
}

/// The MCP server: one per session, sharing the verifier and the orders.
#[derive(Clone)]
pub struct OrdersServer {
    verifier: Verifier,
    orders: Arc<Mutex<Orders>>,
    tool_router: ToolRouter<Self>,
    pay: pay::PayDesk,
}

/// A tool answer: success, or a tool error (`isError: true`) with a message.
/// A success says for whom the tool acted in a second text block.
type ToolResult = Result<CallToolResult, CallToolResult>;

fn failure(message: impl Into<String>) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message)])
}

/// The answer: the value, then for whom and through whom the tool acted,
/// from the verified grant: `acting for alice at https://idp.example via
/// agent://acme/bot -> agent://acme/helper` for a token that acts for a
/// person, `acting as agent://acme/bot` for one that acts for its agent.
fn success<T: Serialize>(grant: &Grant, value: &T) -> ToolResult {
    let block = ContentBlock::json(value).map_err(|e| failure(e.message.to_string()))?;
    let custody = grant.custody();
    let mut acting = match custody.person() {
        Some(_) => format!("acting {custody}"),
        None => format!("acting as {custody}"),
    };
    if let Some(a) = grant.approval() {
        acting.push_str(&format!(
            ", approved by {} (approval {})",
            a.person, a.approval_id
        ));
    }
    Ok(CallToolResult::success(vec![
        block,
        ContentBlock::text(acting),
    ]))
}

impl OrdersServer {
    fn new(verifier: Verifier, orders: Arc<Mutex<Orders>>, pay: pay::PayDesk) -> Self {
        Self {
            verifier,
            orders,
            tool_router: Self::tool_router() + Self::pay_router(),
            pay,
        }
    }

    /// The scope decision for one tool call. `parts` are the HTTP request
    /// the call came in, where the layer left what it authenticated.
    async fn authorize(
        &self,
        parts: &Parts,
        tool: &str,
        resource: &str,
        amount: Option<Amount>,
    ) -> Result<Grant, CallToolResult> {
        let Some(authenticated) = parts.extensions.get::<Authenticated>() else {
            // The layer is installed on every route: this is a server bug.
            tracing::error!(
                tool,
                "no authenticated token in the request (is the layer missing?)"
            );
            return Err(failure("internal error: the request was not authenticated"));
        };
        let mut request = CheckRequest::new(tool, resource).map_err(|e| failure(e.to_string()))?;
        if let Some(amount) = amount {
            request = request.with_amount(amount);
        }
        match self.verifier.authorize(authenticated, &request).await {
            Ok(grant) => {
                tracing::info!(
                    tool,
                    resource,
                    agent = %grant.acting(),
                    chain = %grant.custody(),
                    token_id = %grant.token_id,
                    "allowed"
                );
                Ok(grant)
            }
            Err(rejection) => {
                tracing::info!(tool, resource, reason = %rejection.reason, detail = %rejection.detail, "refused");
                Err(failure(format!("forbidden: {rejection}")))
            }
        }
    }
}

#[tool_router]
impl OrdersServer {
    #[tool(description = "List all orders. Needs a token for `list_orders` on `orders`.")]
    async fn list_orders(&self, Extension(parts): Extension<Parts>) -> ToolResult {
        let grant = self
            .authorize(&parts, "list_orders", "orders", None)
            .await?;
        let orders = self.orders.lock().await;
        success(&grant, &orders.by_id.values().collect::<Vec<_>>())
    }

    #[tool(description = "Get one order. Needs a token for `get_order` on `orders/<id>`.")]
    async fn get_order(
        &self,
        Parameters(OrderId { id }): Parameters<OrderId>,
        Extension(parts): Extension<Parts>,
    ) -> ToolResult {
        let grant = self
            .authorize(&parts, "get_order", &format!("orders/{id}"), None)
            .await?;
        match self.orders.lock().await.by_id.get(&id) {
            Some(order) => success(&grant, order),
            None => Err(failure(format!("no order {id}"))),
        }
    }

    #[tool(
        description = "Place an order. Needs a token for `create_order` on `orders`, and an `amount` (as in 12.50EUR) when the token caps amounts."
    )]
    async fn create_order(
        &self,
        Parameters(NewOrder { item, amount }): Parameters<NewOrder>,
        Extension(parts): Extension<Parts>,
    ) -> ToolResult {
        let amount = amount
            .as_deref()
            .map(Amount::parse)
            .transpose()
            .map_err(|e| failure(e.to_string()))?;
        let grant = self
            .authorize(&parts, "create_order", "orders", amount)
            .await?;
        let order = self.orders.lock().await.create(item);
        success(&grant, &order)
    }

    #[tool(description = "Delete one order. Needs a token for `delete_order` on `orders/<id>`.")]
    async fn delete_order(
        &self,
        Parameters(OrderId { id }): Parameters<OrderId>,
        Extension(parts): Extension<Parts>,
    ) -> ToolResult {
        let grant = self
            .authorize(&parts, "delete_order", &format!("orders/{id}"), None)
            .await?;
        match self.orders.lock().await.by_id.remove(&id) {
            Some(order) => success(&grant, &order),
            None => Err(failure(format!("no order {id}"))),
        }
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for OrdersServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "tessera-mcp-orders",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(
                "An orders tool set. Every call needs a Tessera token for the tool's name \
                 on `orders` (list, create) or `orders/<id>` (get, delete).",
            )
    }
}

/// Fetches the issuer's key set, starts following revocations and builds
/// the routes (serve them with `tessera::net::serve`).
pub async fn app(config: &Config) -> Result<Router, ServeError> {
    let issuer = config.issuer.trim_end_matches('/');
    let verifier = Verifier::builder(&config.public_url)
        .keys(KeySource::JwksUrl(format!(
            "{issuer}/.well-known/jwks.json"
        )))
        .revocations(revocations(issuer, &config.revocations))
        .build()
        .await?;
    wait_until_current(&verifier, Duration::from_secs(10)).await;

    // The MCP transport checks the Host header against a list (DNS
    // rebinding): loopback names, and the host this server is published as.
    let public: axum::http::Uri = config
        .public_url
        .parse()
        .map_err(|e| ServeError::Config(format!("public URL: {e}")))?;
    let authority = public
        .authority()
        .ok_or_else(|| ServeError::Config("public URL: no host".into()))?;
    let mut hosts = vec!["localhost".to_owned(), "127.0.0.1".into(), "::1".into()];
    hosts.push(authority.as_str().to_owned());

    let orders = Arc::new(Mutex::new(Orders::seeded()));
    let desk = pay::PayDesk::new(issuer, &config.public_url);
    let mcp = {
        let verifier = verifier.clone();
        StreamableHttpService::new(
            move || {
                Ok(OrdersServer::new(
                    verifier.clone(),
                    orders.clone(),
                    desk.clone(),
                ))
            },
            Arc::new(LocalSessionManager::default()),
            StreamableHttpServerConfig::default().with_allowed_hosts(hosts),
        )
    };

    let mut metadata = resource_metadata(verifier.service(), &[issuer]);
    metadata["resource_name"] = "Tessera MCP orders example".into();
    metadata["scopes_supported"] = TOOLS.to_vec().into();
    let document = move || std::future::ready(Json(metadata.clone()));
    // RFC 9728 §3.1: the path-inserted URL for a resource with a path, and
    // the root one that the 401 challenges name.
    let inserted = format!("{RESOURCE_METADATA_PATH}{}", public.path());

    let layer = VerifyLayer::new(verifier, |parts: &Parts| {
        if parts.uri.path().starts_with(RESOURCE_METADATA_PATH) {
            Scope::Public
        } else {
            Scope::Deferred
        }
    });
    // The step-up check runs inside the verify layer (axum: the last
    // layer added is the outermost), where the token is authenticated.
    Ok(Router::new()
        .route_service(public.path(), mcp)
        .route(RESOURCE_METADATA_PATH, get(document.clone()))
        .route(&inserted, get(document))
        .layer(axum::middleware::from_fn_with_state(layer.clone(), step_up))
        .layer(layer))
}

/// Serves on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let router = app(&config).await?;
    tracing::info!(
        url = %config.public_url,
        issuer = %config.issuer,
        "MCP tool server listening"
    );
    // Header, body and idle timeouts and a connection limit, so that
    // strangers cannot hold connections open (docs/verifier.md).
    tessera::net::serve(listener, router, tessera::net::ServeLimits::default())
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

/// The example's settings, from flags or the environment.
#[derive(Debug, Parser)]
#[command(about = "An MCP tool server (orders) that checks each tool call with a Tessera token")]
#[command(group(ArgGroup::new("revocation_source").required(true).args(["redis_url", "feed_token", "feed_token_file"])))]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "TESSERA_MCP_LISTEN", default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
    /// This server's canonical URI, the audience its tokens name (default
    /// `http://<listen>/mcp`).
    #[arg(long, env = "TESSERA_MCP_PUBLIC_URL", value_name = "URL")]
    public_url: Option<String>,
    /// The Tessera issuer's URL.
    #[arg(long, env = "TESSERA_ISSUER", default_value = "http://127.0.0.1:8080")]
    issuer: String,
    /// Follow revocations from the issuer's Redis.
    #[arg(
        long,
        env = "TESSERA_REDIS_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    redis_url: Option<String>,
    /// Follow revocations from the issuer's feed with this token (`tessera
    /// admin token --feed`).
    #[arg(
        long,
        env = "TESSERA_FEED_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    feed_token: Option<String>,
    /// Follow revocations from the issuer's feed with the token in this
    /// file, read again whenever a timer renews it (feed tokens expire).
    #[arg(long, env = "TESSERA_FEED_TOKEN_FILE", value_name = "FILE")]
    feed_token_file: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rmcp=warn")),
        )
        .init();
    let args = Args::parse();
    let revocations = match (args.redis_url, args.feed_token, args.feed_token_file) {
        (Some(url), _, _) => RevocationSource::Redis { url },
        (None, Some(token), _) => RevocationSource::Feed { token },
        (None, None, Some(path)) => RevocationSource::FeedFile { path },
        (None, None, None) => {
            return Err("give --redis-url, --feed-token or --feed-token-file".into())
        }
    };
    let config = Config {
        public_url: args
            .public_url
            .unwrap_or_else(|| format!("http://{}/mcp", args.listen)),
        issuer: args.issuer,
        revocations,
    };
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    serve(listener, config, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
