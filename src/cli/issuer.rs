//! Commands that run or talk to the issuer service.

use std::path::{Path, PathBuf};

use biscuit_auth::KeyPair;
use clap::{Args, Subcommand};
use ed25519_dalek::SigningKey;
use rand::RngCore;
use serde_json::json;

use super::{emit, now, read_key_pair, read_token, to_json, Failure};
use crate::jose::{self, AssertionClaims, Audiences, DpopClaims};
use crate::server::oauth::{TokenResponse, JWT_BEARER};
use crate::server::{self, admin, Config, KeyRing, LogFormat, Overrides};
use crate::token::{self, Action, AgentId, Audience, Lifetime, ResourcePattern, RootKeyPair};

/// `tessera serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on (default 127.0.0.1:8080).
    #[arg(long, value_name = "ADDR")]
    listen: Option<std::net::SocketAddr>,
    /// Data directory: embedded store and root keys (default ./tessera-data).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Public issuer URL (default http://<listen>).
    #[arg(long, value_name = "URL")]
    issuer_url: Option<String>,
    /// Keep agents, revocations, replay caches and audit in Redis.
    #[arg(long, value_name = "URL")]
    redis_url: Option<String>,
    /// Log format on standard error: `human` (coloured only on a terminal,
    /// and never with NO_COLOR set) or `json` (one object per line).
    #[arg(long, value_name = "FORMAT", value_parser = log_format())]
    log_format: Option<LogFormat>,
}

fn log_format() -> impl clap::builder::TypedValueParser<Value = LogFormat> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(["human", "json"]).map(|s| match s.as_str() {
        "json" => LogFormat::Json,
        _ => LogFormat::Human,
    })
}

/// `tessera admin ...`.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Print an admin token for the `/v1` API, minted offline from the root key.
    Token {
        /// The issuer's data directory (uses its active root key).
        #[arg(
            long,
            value_name = "DIR",
            conflicts_with = "root_key",
            required_unless_present = "root_key"
        )]
        data_dir: Option<PathBuf>,
        /// A root private key file instead.
        #[arg(long, value_name = "FILE")]
        root_key: Option<PathBuf>,
        /// The root key id, with --root-key.
        #[arg(long, value_name = "N", default_value_t = 0)]
        root_key_id: u32,
        /// Lifetime.
        #[arg(long, value_name = "DURATION", default_value = "1h")]
        ttl: Lifetime,
        /// A read-only token for the revocation feed (`GET /v1/revocations`),
        /// for verifiers that follow it over HTTP, instead of an admin token.
        #[arg(long)]
        feed: bool,
    },
}

/// `tessera agent ...`.
#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Register (or replace) an agent with its public key and ceiling.
    Register {
        #[command(flatten)]
        conn: AdminConn,
        /// The agent URI.
        #[arg(long, value_name = "URI")]
        id: AgentId,
        /// Its public key, `ed25519/<hex>`.
        #[arg(long, value_name = "KEY")]
        public_key: String,
        /// An action it may be granted (repeatable).
        #[arg(long = "action", value_name = "A", required = true)]
        actions: Vec<Action>,
        /// A resource pattern it may be granted (repeatable; trailing `*` = prefix).
        #[arg(long = "resource", value_name = "PATTERN", required = true)]
        resources: Vec<ResourcePattern>,
        /// A tool server its tokens may name (repeatable).
        #[arg(long = "audience", value_name = "URI")]
        audiences: Vec<Audience>,
        /// Longest token lifetime.
        #[arg(long, value_name = "DURATION")]
        max_ttl: Option<String>,
        /// Free text.
        #[arg(long, default_value = "")]
        description: String,
        /// Where `/oauth/authorize` may send its codes (repeatable; https,
        /// or http on loopback; compared exactly).
        #[arg(long = "redirect-uri", value_name = "URL")]
        redirect_uris: Vec<String>,
    },
    /// List agents.
    List {
        #[command(flatten)]
        conn: AdminConn,
    },
    /// Disable an agent and revoke its outstanding tokens.
    Disable {
        #[command(flatten)]
        conn: AdminConn,
        /// The agent URI.
        #[arg(long, value_name = "URI")]
        id: AgentId,
    },
    #[command(flatten)]
    Operator(super::operator::AgentOperatorCommand),
}

/// Where the issuer is and the admin token.
#[derive(Debug, Args)]
pub struct AdminConn {
    /// Issuer URL.
    #[arg(long, value_name = "URL", env = "TESSERA_ISSUER")]
    pub(super) issuer: String,
    /// Admin token (or a file holding it).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "TESSERA_ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub(super) admin_token: String,
}

/// `tessera token request`.
#[derive(Debug, Args)]
pub struct RequestArgs {
    /// Issuer URL.
    #[arg(long, value_name = "URL")]
    issuer: String,
    /// The agent URI (client id).
    #[arg(long, value_name = "URI")]
    agent: AgentId,
    /// The agent's private key file.
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// The one action.
    #[arg(long, value_name = "A")]
    action: Action,
    /// The resource, or prefix with a trailing `*`.
    #[arg(long, value_name = "R|PREFIX*")]
    resource: ResourcePattern,
    /// The tool server (RFC 8707 resource).
    #[arg(long, value_name = "URI")]
    audience: Option<Audience>,
    /// Lifetime to ask for.
    #[arg(long, value_name = "DURATION")]
    ttl: Option<String>,
    /// Bind the token to the agent's key with a DPoP proof.
    #[arg(long)]
    dpop: bool,
    /// Print the whole token response as JSON.
    #[arg(long)]
    json: bool,
}

/// `tessera token revoke`.
///
/// (Its `--issuer` and `--admin-token` repeat [`AdminConn`]'s declarations:
/// clap arguments are declarations, and here the admin token is optional.)
#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The token to revoke (argument, file or `-`); not needed with --token-id or --revocation-id.
    token: Option<String>,
    /// Issuer URL.
    #[arg(long, value_name = "URL")]
    issuer: String,
    /// Revoke as an operator with this admin token.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "TESSERA_ADMIN_TOKEN",
        hide_env_values = true
    )]
    admin_token: Option<String>,
    /// With an admin token: revoke by token id.
    #[arg(long, value_name = "ID")]
    token_id: Option<String>,
    /// With an admin token: revoke one block by revocation id (hex).
    #[arg(long, value_name = "HEX")]
    revocation_id: Option<String>,
    /// Revoke as the agent the token was issued to (RFC 7009): its URI.
    #[arg(long, value_name = "URI", requires = "key")]
    agent: Option<AgentId>,
    /// The agent's private key file.
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
}

pub(super) fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(format!("cannot start the runtime: {e}")))
}

/// `tessera serve`.
pub fn serve(args: ServeArgs) -> Result<(), Failure> {
    let config = Config::load(
        args.config.as_deref(),
        std::env::vars(),
        Overrides {
            listen: args.listen,
            issuer_url: args.issuer_url,
            data_dir: args.data_dir,
            redis_url: args.redis_url,
        },
    )
    .map_err(Failure::new)?;
    let mut config = config;
    if let Some(format) = args.log_format {
        config.log_format = format;
    }
    server::init_logging(config.log_format);
    warn_if_in_a_git_work_tree(&config.keys_dir());
    runtime()?
        .block_on(server::serve(config, None))
        .map_err(Failure::new)
}

/// Warns when the root keys would live inside a git work tree and git does
/// not ignore them: one `git add .` would commit the private key.
fn warn_if_in_a_git_work_tree(keys_dir: &Path) {
    let Ok(cwd) = std::env::current_dir() else {
        return;
    };
    let keys_dir = cwd.join(keys_dir);
    let Some(tree) = keys_dir
        .ancestors()
        .find(|d| d.join(".git").exists())
        .map(Path::to_path_buf)
    else {
        return;
    };
    // `git check-ignore` exits 0 when the path is ignored (it need not exist).
    let ignored = std::process::Command::new("git")
        .arg("-C")
        .arg(&tree)
        .args(["check-ignore", "-q", "--no-index", "--"])
        .arg(keys_dir.join("ring.json"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ignored {
        tracing::warn!(
            keys = %keys_dir.display(),
            work_tree = %tree.display(),
            "the root keys (private) are inside a git work tree and not ignored: add the data \
             directory to .gitignore (e.g. `tessera-data/`), or choose one outside with --data-dir"
        );
    }
}

/// `tessera admin token`.
pub fn admin_token(cmd: AdminCommand) -> Result<(), Failure> {
    let AdminCommand::Token {
        data_dir,
        root_key,
        root_key_id,
        ttl,
        feed,
    } = cmd;
    let root = match (data_dir, root_key) {
        (Some(dir), _) => {
            let ring = KeyRing::load(&dir.join("keys")).map_err(Failure::new)?;
            let active = ring.active();
            RootKeyPair::new(active.id, KeyPair::from(&active.keypair.private()))
        }
        (None, Some(file)) => RootKeyPair::new(root_key_id, read_key_pair(&file)?),
        (None, None) => return Err(Failure::new("give --data-dir or --root-key")),
    };
    let cap = if feed {
        admin::feed_capability(ttl)?
    } else {
        admin::admin_capability(ttl)?
    };
    let minted = token::mint(&cap, &root, now())?;
    emit(&format!("{}\n", minted.token))
}

/// `tessera keys rotate`.
pub fn rotate(data_dir: &Path, retire_after: &str) -> Result<(), Failure> {
    let d = token::parse_duration(retire_after)?;
    let until = now()
        + chrono::Duration::from_std(d).map_err(|_| Failure::new("--retire-after is too large"))?;
    let id = KeyRing::rotate(&data_dir.join("keys"), until).map_err(Failure::new)?;
    emit(&format!(
        "new active root key id {id}; the previous key stays published until {}\n\
         reload a running issuer with SIGHUP (or restart it)\n",
        until.to_rfc3339()
    ))
}

/// How long a request to the issuer may take in all.
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(70);

pub(super) fn client() -> Result<reqwest::Client, Failure> {
    reqwest::Client::builder()
        .connect_timeout(super::http::CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|e| Failure::new(format!("HTTP client: {e}")))
}

pub(super) fn url(issuer: &str, path: &str) -> String {
    format!("{}{path}", issuer.trim_end_matches('/'))
}

/// Percent-encodes a path segment.
pub(super) fn segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Turns a non-success response into a one-line failure.
pub(super) async fn check(resp: reqwest::Response) -> Result<serde_json::Value, Failure> {
    let status = resp.status();
    let text = resp
        .text()
        .await
        .map_err(|e| Failure::new(format!("reading the response: {e}")))?;
    let body: serde_json::Value = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
    if status.is_success() {
        return Ok(body);
    }
    let error = body["error"].as_str().unwrap_or("error");
    let desc = body["error_description"]
        .as_str()
        .map(|d| format!(": {d}"))
        .unwrap_or_default();
    // A refused bearer token (admin API): say how to get a good one.
    let next = if status == reqwest::StatusCode::UNAUTHORIZED && error == "invalid_token" {
        "; print a fresh admin token with `tessera admin token --data-dir <the issuer's data \
         directory>`"
    } else {
        ""
    };
    Err(Failure {
        message: format!("issuer answered {} {error}{desc}{next}", status.as_u16()),
        code: 1,
    })
}

/// A request that got no answer: the cause, and the next step.
pub(super) fn send_err(issuer: &str) -> impl FnOnce(reqwest::Error) -> Failure + '_ {
    move |e| super::http::unreachable(&e, issuer, REQUEST_TIMEOUT)
}

pub(super) fn admin_token_text(t: &str) -> Result<String, Failure> {
    read_token(t)
}

/// `tessera agent ...`.
pub fn agent(cmd: AgentCommand) -> Result<(), Failure> {
    runtime()?.block_on(async move {
        let http = client()?;
        match cmd {
            AgentCommand::Register {
                conn,
                id,
                public_key,
                actions,
                resources,
                audiences,
                max_ttl,
                description,
                redirect_uris,
            } => {
                let mut ceiling = json!({
                    "actions": actions.iter().map(Action::as_str).collect::<Vec<_>>(),
                    "resources": resources.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "audiences": audiences.iter().map(Audience::as_str).collect::<Vec<_>>(),
                });
                if let Some(t) = max_ttl {
                    ceiling["max_ttl"] = t.into();
                }
                let mut body = json!({
                    "id": id.as_str(), "public_key": public_key,
                    "description": description, "ceiling": ceiling,
                });
                if !redirect_uris.is_empty() {
                    body["redirect_uris"] = redirect_uris.into();
                }
                let resp = http
                    .post(url(&conn.issuer, "/v1/agents"))
                    .bearer_auth(admin_token_text(&conn.admin_token)?)
                    .json(&body)
                    .send()
                    .await
                    .map_err(send_err(&conn.issuer))?;
                emit(&format!("{}\n", to_json(&check(resp).await?)?))
            }
            AgentCommand::List { conn } => {
                let resp = http
                    .get(url(&conn.issuer, "/v1/agents"))
                    .bearer_auth(admin_token_text(&conn.admin_token)?)
                    .send()
                    .await
                    .map_err(send_err(&conn.issuer))?;
                emit(&format!("{}\n", to_json(&check(resp).await?)?))
            }
            AgentCommand::Disable { conn, id } => {
                let resp = http
                    .delete(url(
                        &conn.issuer,
                        &format!("/v1/agents/{}", segment(id.as_str())),
                    ))
                    .bearer_auth(admin_token_text(&conn.admin_token)?)
                    .send()
                    .await
                    .map_err(send_err(&conn.issuer))?;
                emit(&format!("{}\n", to_json(&check(resp).await?)?))
            }
            AgentCommand::Operator(cmd) => super::operator::agent(&http, cmd).await,
        }
    })
}

fn signing_key(kp: &KeyPair) -> Result<SigningKey, Failure> {
    let bytes: [u8; 32] = kp
        .private()
        .to_bytes()
        .as_slice()
        .try_into()
        .map_err(|_| Failure::new("the agent key must be Ed25519"))?;
    Ok(SigningKey::from_bytes(&bytes))
}

fn random_id() -> String {
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// A client assertion for `endpoint`, signed by the agent key.
pub fn client_assertion(
    agent: &AgentId,
    key: &SigningKey,
    endpoint: &str,
) -> Result<String, Failure> {
    let t = now().timestamp();
    let claims = AssertionClaims {
        iss: agent.to_string(),
        sub: agent.to_string(),
        aud: Audiences::One(endpoint.to_owned()),
        exp: t + 60,
        iat: Some(t),
        nbf: None,
        jti: random_id(),
    };
    jose::sign(key, None, false, &claims).map_err(Failure::new)
}

/// `tessera token request`.
pub fn request(args: RequestArgs) -> Result<(), Failure> {
    let kp = read_key_pair(&args.key)?;
    let key = signing_key(&kp)?;
    let endpoint = url(&args.issuer, "/oauth/token");
    let mut form = vec![
        ("grant_type", "client_credentials".to_owned()),
        ("client_assertion_type", JWT_BEARER.to_owned()),
        (
            "client_assertion",
            client_assertion(&args.agent, &key, &endpoint)?,
        ),
        ("scope", args.action.to_string()),
        ("identifier", args.resource.to_string()),
    ];
    if let Some(a) = &args.audience {
        form.push(("resource", a.to_string()));
    }
    if let Some(t) = &args.ttl {
        form.push(("lifetime", t.clone()));
    }
    let dpop = if args.dpop {
        let claims = DpopClaims {
            jti: random_id(),
            htm: "POST".into(),
            htu: endpoint.clone(),
            iat: now().timestamp(),
            ath: None,
        };
        Some(jose::sign(&key, Some("dpop+jwt"), true, &claims).map_err(Failure::new)?)
    } else {
        None
    };
    runtime()?.block_on(async move {
        let mut req = client()?.post(&endpoint).form(&form);
        if let Some(p) = dpop {
            req = req.header("DPoP", p);
        }
        let body = check(req.send().await.map_err(send_err(&args.issuer))?).await?;
        if args.json {
            return emit(&format!("{}\n", to_json(&body)?));
        }
        let r: TokenResponse = serde_json::from_value(body)
            .map_err(|e| Failure::new(format!("unexpected token response: {e}")))?;
        emit(&format!("{}\n", r.access_token))
    })
}

/// `tessera token revoke`.
pub fn revoke(args: RevokeArgs) -> Result<(), Failure> {
    runtime()?.block_on(async move {
        let http = client()?;
        if let (Some(agent), Some(key)) = (&args.agent, &args.key) {
            let t = read_token(args.token.as_deref().unwrap_or("-"))?;
            let key = signing_key(&read_key_pair(key)?)?;
            let endpoint = url(&args.issuer, "/oauth/revoke");
            let form = [
                ("token", t),
                ("client_assertion_type", JWT_BEARER.to_owned()),
                (
                    "client_assertion",
                    client_assertion(agent, &key, &endpoint)?,
                ),
            ];
            let resp = http
                .post(&endpoint)
                .form(&form)
                .send()
                .await
                .map_err(send_err(&args.issuer))?;
            check(resp).await?;
            return emit("revoked\n");
        }
        let admin = args
            .admin_token
            .as_deref()
            .ok_or_else(|| Failure::new("give --admin-token, or --agent and --key"))?;
        let body = match (&args.token_id, &args.revocation_id, &args.token) {
            (Some(id), None, None) => json!({ "token_id": id }),
            (None, Some(id), None) => json!({ "revocation_id": id }),
            (None, None, Some(t)) => json!({ "token": read_token(t)? }),
            _ => {
                return Err(Failure::new(
                    "give exactly one of TOKEN, --token-id, --revocation-id",
                ))
            }
        };
        let resp = http
            .post(url(&args.issuer, "/v1/revocations"))
            .bearer_auth(admin_token_text(admin)?)
            .json(&body)
            .send()
            .await
            .map_err(send_err(&args.issuer))?;
        emit(&format!("{}\n", to_json(&check(resp).await?)?))
    })
}
