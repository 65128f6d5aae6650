//! The operator's everyday commands over the admin API: `agent show`,
//! `agent update`, `revocations list`, and `keys rotate` (at a running
//! issuer, or offline on its data directory).

use std::path::PathBuf;

use clap::{ArgGroup, Args, Subcommand};
use serde_json::{json, Value};

use super::issuer::{self, admin_token_text, check, client, runtime, segment, send_err, url};
use super::{emit, to_json, Failure};
use crate::token::{Action, AgentId, Audience, ResourcePattern};

/// `tessera agent show|update` (beside `register`, `list` and `disable`).
#[derive(Debug, Subcommand)]
pub enum AgentOperatorCommand {
    /// Show one agent: its key, ceiling, description and whether it is disabled.
    Show {
        #[command(flatten)]
        conn: issuer::AdminConn,
        /// The agent URI.
        #[arg(long, value_name = "URI")]
        id: AgentId,
    },
    /// Change an agent's description or ceiling (replaced as a whole).
    ///
    /// Its key and id stay. Tokens already issued keep what they say until
    /// they expire or are revoked.
    #[command(group(ArgGroup::new("change").required(true).multiple(true).args(["description", "actions", "notification_endpoint", "redirect_uris"])))]
    Update {
        #[command(flatten)]
        conn: issuer::AdminConn,
        /// The agent URI.
        #[arg(long, value_name = "URI")]
        id: AgentId,
        /// New free text.
        #[arg(long)]
        description: Option<String>,
        /// An action of the new ceiling (repeatable).
        #[arg(long = "action", value_name = "A", requires = "resources")]
        actions: Vec<Action>,
        /// A resource pattern of the new ceiling (repeatable; trailing `*` = prefix).
        #[arg(long = "resource", value_name = "PATTERN", requires = "actions")]
        resources: Vec<ResourcePattern>,
        /// A tool server the new ceiling's tokens may name (repeatable).
        #[arg(long = "audience", value_name = "URI", requires = "actions")]
        audiences: Vec<Audience>,
        /// Longest token lifetime of the new ceiling.
        #[arg(long, value_name = "DURATION", requires = "actions")]
        max_ttl: Option<String>,
        /// Ping mode: where Tessera POSTs `{"auth_req_id"}` once a person
        /// decided (https; `""` removes it).
        #[arg(long, value_name = "URL")]
        notification_endpoint: Option<String>,
        /// Where `/oauth/authorize` may send its codes (repeatable; replaces
        /// the list; one `""` removes them).
        #[arg(long = "redirect-uri", value_name = "URL")]
        redirect_uris: Vec<String>,
    },
}

/// `tessera revocations ...`.
#[derive(Debug, Subcommand)]
pub enum RevocationsCommand {
    /// List revocations in feed order (an admin or a feed token).
    List {
        #[command(flatten)]
        conn: issuer::AdminConn,
        /// Start after this cursor (the `next` of a previous page).
        #[arg(long, value_name = "CURSOR")]
        after: Option<String>,
        /// Most entries (1 to 10000).
        #[arg(long, value_name = "N", default_value_t = 100)]
        limit: usize,
        /// Print the page as JSON (`entries` and `next`).
        #[arg(long)]
        json: bool,
    },
}

/// `tessera keys rotate`: at a running issuer (`--issuer`, admin token), or
/// offline on a stopped issuer's data directory (`--data-dir`).
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("where").required(true).args(["data_dir", "issuer"])))]
pub struct RotateArgs {
    /// Rotate offline in this data directory; a running issuer switches on
    /// SIGHUP or restart.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Rotate at this running issuer, through its admin API: it switches at once.
    #[arg(long, value_name = "URL", requires = "admin_token")]
    issuer: Option<String>,
    /// Admin token (or a file holding it), with --issuer.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "TESSERA_ADMIN_TOKEN",
        hide_env_values = true
    )]
    admin_token: Option<String>,
    /// How long the retired key stays published (at least the longest token lifetime).
    #[arg(long, value_name = "DURATION", default_value = "24h")]
    retire_after: String,
}

/// `tessera agent show|update`.
pub async fn agent(http: &reqwest::Client, cmd: AgentOperatorCommand) -> Result<(), Failure> {
    match cmd {
        AgentOperatorCommand::Show { conn, id } => {
            let resp = http
                .get(url(
                    &conn.issuer,
                    &format!("/v1/agents/{}", segment(id.as_str())),
                ))
                .bearer_auth(admin_token_text(&conn.admin_token)?)
                .send()
                .await
                .map_err(send_err(&conn.issuer))?;
            emit(&format!("{}\n", to_json(&check(resp).await?)?))
        }
        AgentOperatorCommand::Update {
            conn,
            id,
            description,
            actions,
            resources,
            audiences,
            max_ttl,
            notification_endpoint,
            redirect_uris,
        } => {
            let mut body = json!({});
            if !redirect_uris.is_empty() {
                let list: Vec<&String> = redirect_uris.iter().filter(|u| !u.is_empty()).collect();
                body["redirect_uris"] = json!(list);
            }
            if let Some(d) = description {
                body["description"] = d.into();
            }
            if let Some(e) = notification_endpoint {
                body["notification_endpoint"] = e.into();
            }
            if !actions.is_empty() {
                let mut ceiling = json!({
                    "actions": actions.iter().map(Action::as_str).collect::<Vec<_>>(),
                    "resources": resources.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "audiences": audiences.iter().map(Audience::as_str).collect::<Vec<_>>(),
                });
                if let Some(t) = max_ttl {
                    ceiling["max_ttl"] = t.into();
                }
                body["ceiling"] = ceiling;
            }
            let resp = http
                .patch(url(
                    &conn.issuer,
                    &format!("/v1/agents/{}", segment(id.as_str())),
                ))
                .bearer_auth(admin_token_text(&conn.admin_token)?)
                .json(&body)
                .send()
                .await
                .map_err(send_err(&conn.issuer))?;
            emit(&format!("{}\n", to_json(&check(resp).await?)?))
        }
    }
}

/// `tessera revocations list`.
pub fn revocations(cmd: RevocationsCommand) -> Result<(), Failure> {
    let RevocationsCommand::List {
        conn,
        after,
        limit,
        json,
    } = cmd;
    if !(1..=10_000).contains(&limit) {
        return Err(Failure::new("--limit must be between 1 and 10000"));
    }
    runtime()?.block_on(async move {
        let mut query = vec![("limit", limit.to_string())];
        if let Some(a) = after {
            query.push(("after", a));
        }
        let resp = client()?
            .get(url(&conn.issuer, "/v1/revocations"))
            .query(&query)
            .bearer_auth(admin_token_text(&conn.admin_token)?)
            .send()
            .await
            .map_err(send_err(&conn.issuer))?;
        let page = check(resp).await?;
        if json {
            return emit(&format!("{}\n", to_json(&page)?));
        }
        emit(&revocation_lines(&page))
    })
}

/// One line per revocation (`revoked_at  revocation id  token  agent  reason`),
/// then the cursor of the next page.
fn revocation_lines(page: &Value) -> String {
    let text = |v: &Value| v.as_str().unwrap_or("-").to_owned();
    let mut out = String::new();
    for e in page["entries"].as_array().into_iter().flatten() {
        let r = &e["revocation"];
        out.push_str(&format!(
            "{}  {}  token={}  agent={}  reason={:?}\n",
            text(&r["revoked_at"]),
            text(&r["revocation_id"]),
            text(&r["token_id"]),
            text(&r["agent"]),
            r["reason"].as_str().unwrap_or(""),
        ));
    }
    match page["next"].as_str() {
        Some(next) => out.push_str(&format!("next: {next}\n")),
        None => out.push_str("no revocations\n"),
    }
    out
}

/// `tessera keys rotate`.
pub fn rotate(args: RotateArgs) -> Result<(), Failure> {
    let RotateArgs {
        data_dir,
        issuer: at,
        admin_token,
        retire_after,
    } = args;
    match (data_dir, at, admin_token) {
        (Some(dir), None, _) => issuer::rotate(&dir, &retire_after),
        (None, Some(at), Some(admin)) => runtime()?.block_on(async move {
            let resp = client()?
                .post(url(&at, "/v1/keys/rotate"))
                .bearer_auth(admin_token_text(&admin)?)
                .json(&json!({ "retire_after": retire_after }))
                .send()
                .await
                .map_err(send_err(&at))?;
            let body = check(resp).await?;
            emit(&format!(
                "new active root key id {}; the previous key stays published until {}\n",
                body["active_key_id"],
                body["retired_until"].as_str().unwrap_or("?"),
            ))
        }),
        _ => Err(Failure::new(
            "give --data-dir (offline), or --issuer with --admin-token",
        )),
    }
}
