//! `tessera budget show KEY`: one cumulative budget as the issuer's ledger
//! holds it (`GET /v1/budgets/{key}`, see docs/budgets.md).

use clap::Subcommand;

use super::issuer::{admin_token_text, check, client, runtime, segment, send_err, url, AdminConn};
use super::{emit, to_json, Failure};
use crate::token::Amount;

/// `tessera budget ...`.
#[derive(Debug, Subcommand)]
pub enum BudgetCommand {
    /// Show a budget: its limit, what is committed, reserved and left.
    Show {
        #[command(flatten)]
        conn: AdminConn,
        /// The budget's ledger key (`b1-…`: a spend's `keys`).
        #[arg(value_name = "KEY")]
        key: String,
        /// Print it as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `tessera budget ...`.
pub fn budget(cmd: BudgetCommand) -> Result<(), Failure> {
    let BudgetCommand::Show { conn, key, json } = cmd;
    runtime()?.block_on(async move {
        let resp = client()?
            .get(url(&conn.issuer, &format!("/v1/budgets/{}", segment(&key))))
            .bearer_auth(admin_token_text(&conn.admin_token)?)
            .send()
            .await
            .map_err(send_err(&conn.issuer))?;
        let body = check(resp).await?;
        if json {
            return emit(&format!("{}\n", to_json(&body)?));
        }
        emit(&format!("{}\n", line(&body)?))
    })
}

/// `<key>  limit <L>  committed <C>  reserved <R>  left <L-C-R>`, amounts
/// in their text form.
fn line(b: &serde_json::Value) -> Result<String, Failure> {
    let currency = b["currency"].as_str().unwrap_or("");
    let amount = |field: &str| -> Result<(i64, String), Failure> {
        let minor = b[field]
            .as_i64()
            .ok_or_else(|| Failure::new(format!("the issuer's answer has no `{field}`")))?;
        let text = Amount::new(currency, minor.max(0))
            .map(|a| a.to_string())
            .unwrap_or_else(|_| format!("{minor} {currency}"));
        Ok((minor, text))
    };
    let (limit, limit_text) = amount("limit")?;
    let (committed, committed_text) = amount("committed")?;
    let (reserved, reserved_text) = amount("reserved")?;
    let left = limit.saturating_sub(committed).saturating_sub(reserved);
    let left_text = Amount::new(currency, left.max(0))
        .map(|a| a.to_string())
        .unwrap_or_else(|_| format!("{left} {currency}"));
    Ok(format!(
        "{}  limit {limit_text}  committed {committed_text}  reserved {reserved_text}  left {left_text}",
        b["key"].as_str().unwrap_or("?")
    ))
}
