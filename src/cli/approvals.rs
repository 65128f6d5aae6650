//! `tessera approvals list|show|approve|deny`: requests for a person's
//! approval, over the issuer's admin API (`/v1/approvals`, see
//! docs/approval.md, "Operators"). Deciding works only where the issuer's
//! policy allows operators to (`[approval] operators_may_decide = true`).

use clap::{Args, Subcommand};
use serde_json::Value;

use super::issuer::{admin_token_text, check, client, runtime, segment, send_err, url, AdminConn};
use super::{emit, to_json, Failure};
use crate::token::Person;

/// `tessera approvals ...`.
#[derive(Debug, Subcommand)]
pub enum ApprovalsCommand {
    /// List requests, newest first: one line each.
    List {
        #[command(flatten)]
        conn: AdminConn,
        /// Only this person's: their identity provider's issuer URL (with --subject).
        #[arg(long, value_name = "URL", requires = "subject")]
        idp: Option<String>,
        /// Only this person's: their subject at --idp.
        #[arg(long, value_name = "SUB", requires = "idp")]
        subject: Option<String>,
        /// Only requests in this state.
        #[arg(long, value_name = "STATUS", value_parser = ["pending", "approved", "denied", "collected", "expired"])]
        status: Option<String>,
        /// Most requests (1 to 500).
        #[arg(long, value_name = "N", default_value_t = 50)]
        limit: usize,
        /// Print the list as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one request (as JSON).
    Show(OneArgs),
    /// Approve a pending request as an operator (where the policy allows).
    Approve(DecideArgs),
    /// Deny a pending request as an operator (where the policy allows).
    Deny(DecideArgs),
}

/// One request.
#[derive(Debug, Args)]
pub struct OneArgs {
    #[command(flatten)]
    conn: AdminConn,
    /// The request's id (`auth_req_id`).
    #[arg(value_name = "ID")]
    id: String,
}

/// A decision.
#[derive(Debug, Args)]
pub struct DecideArgs {
    #[command(flatten)]
    one: OneArgs,
    /// Your name, recorded as `operator:<name>` (1 to 64 of A-Z a-z 0-9 . _ @ -).
    #[arg(
        long,
        value_name = "NAME",
        env = "TESSERA_OPERATOR",
        default_value = "admin"
    )]
    operator: String,
    /// Print the decided request as JSON.
    #[arg(long)]
    json: bool,
}

/// `tessera approvals ...`.
pub fn approvals(cmd: ApprovalsCommand) -> Result<(), Failure> {
    runtime()?.block_on(async move {
        let http = client()?;
        match cmd {
            ApprovalsCommand::List {
                conn,
                idp,
                subject,
                status,
                limit,
                json,
            } => {
                if !(1..=500).contains(&limit) {
                    return Err(Failure::new("--limit must be between 1 and 500"));
                }
                let mut query = vec![("limit", limit.to_string())];
                if let (Some(i), Some(s)) = (idp, subject) {
                    let person = Person::parse(&i, &s)?;
                    query.push(("person_issuer", person.issuer().to_owned()));
                    query.push(("person_subject", person.subject().to_owned()));
                }
                if let Some(s) = status {
                    query.push(("status", s));
                }
                let resp = http
                    .get(url(&conn.issuer, "/v1/approvals"))
                    .query(&query)
                    .bearer_auth(admin_token_text(&conn.admin_token)?)
                    .send()
                    .await
                    .map_err(send_err(&conn.issuer))?;
                let body = check(resp).await?;
                if json {
                    return emit(&format!("{}\n", to_json(&body)?));
                }
                emit(&lines(&body))
            }
            ApprovalsCommand::Show(OneArgs { conn, id }) => {
                let resp = http
                    .get(url(
                        &conn.issuer,
                        &format!("/v1/approvals/{}", segment(&id)),
                    ))
                    .bearer_auth(admin_token_text(&conn.admin_token)?)
                    .send()
                    .await
                    .map_err(send_err(&conn.issuer))?;
                emit(&format!("{}\n", to_json(&check(resp).await?)?))
            }
            ApprovalsCommand::Approve(args) => decide(&http, args, "approve").await,
            ApprovalsCommand::Deny(args) => decide(&http, args, "deny").await,
        }
    })
}

async fn decide(http: &reqwest::Client, args: DecideArgs, verb: &str) -> Result<(), Failure> {
    let DecideArgs {
        one: OneArgs { conn, id },
        operator,
        json,
    } = args;
    let resp = http
        .post(url(
            &conn.issuer,
            &format!("/v1/approvals/{}/{verb}", segment(&id)),
        ))
        .header("tessera-operator", operator)
        .bearer_auth(admin_token_text(&conn.admin_token)?)
        .send()
        .await
        .map_err(send_err(&conn.issuer))?;
    let body = check(resp).await?;
    if json {
        return emit(&format!("{}\n", to_json(&body)?));
    }
    emit(&format!("{}\n", line(&body)))
}

/// One line per request, or `no approval requests`.
fn lines(body: &Value) -> String {
    let all = body["approvals"].as_array().cloned().unwrap_or_default();
    if all.is_empty() {
        return "no approval requests\n".to_owned();
    }
    all.iter().map(|a| format!("{}\n", line(a))).collect()
}

/// `<id>  <status>  <agent>  <action> <resource> [<amount>]  for <subject> at
/// <idp>  [by <decider>]  expires <time>`.
fn line(a: &Value) -> String {
    let text = |v: &Value| v.as_str().unwrap_or("-").to_owned();
    let status = if a["expired"].as_bool() == Some(true) && a["status"] == "pending" {
        "expired".to_owned()
    } else {
        text(&a["status"])
    };
    let cap = &a["capability"];
    let amount = cap["amount"]
        .as_str()
        .map(|m| format!(" {m}"))
        .unwrap_or_default();
    let by = a["decided_by"]
        .as_str()
        .map(|b| format!("  by {b}"))
        .unwrap_or_default();
    // Printable only: these fields came from agents.
    let clean = |s: String| s.replace(|c: char| c.is_control(), "?");
    clean(format!(
        "{}  {status}  {}  {} {}{amount}  for {} at {}{by}  expires {}",
        text(&a["id"]),
        text(&a["agent"]),
        text(&cap["action"]),
        text(&cap["resource"]),
        text(&a["person"]["subject"]),
        text(&a["person"]["issuer"]),
        text(&a["expires_at"]),
    ))
}
