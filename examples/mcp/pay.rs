//! The `pay` tool of the MCP example: a payment that a person must approve.
//!
//! `pay {payee, amount}` is the operation `payments:create` on the resource
//! `payees/<payee>` with the amount (`40.00EUR`) as the request's amount.
//! It runs only with a token that a person approved (`approved_by`, from
//! `POST /oauth/bc-authorize`) and whose amount cap covers the payment: a
//! token the verifier refuses (no `payments:create`, no cap, a cap too low,
//! another currency), and an unapproved token it would allow, both get a
//! tool error carrying a remediation hint, as text and as one JSON block:
//!
//! ```json
//! {"remediation": "person_approval", "bc_authorize": "<issuer>/oauth/bc-authorize",
//!  "action": "payments:create", "resource": "payees/acme",
//!  "audience": "<this server's URL>", "amount": "40.00EUR"}
//! ```
//!
//! An agent asks the person with exactly those (`authorization_details`),
//! collects the approved token and calls again (`examples/python/pay_agent.py`).

use axum::http::request::Parts;
use rmcp::handler::server::tool::Extension;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock};
use rmcp::{schemars, tool, tool_router};
use serde::{Deserialize, Serialize};
use tessera::token::Amount;

use super::{failure, OrdersServer, ToolResult};

/// The operation a payment needs.
pub const PAY_ACTION: &str = "payments:create";

/// What the pay tool needs to know about its deployment.
#[derive(Debug, Clone)]
pub struct PayDesk {
    /// The issuer's backchannel endpoint, `<issuer>/oauth/bc-authorize`.
    pub bc_authorize: String,
    /// This server's URL: the audience an approved token must name.
    pub audience: String,
}

impl PayDesk {
    /// The desk of a server at `audience` trusting `issuer`.
    pub fn new(issuer: &str, audience: &str) -> Self {
        Self {
            bc_authorize: format!("{}/oauth/bc-authorize", issuer.trim_end_matches('/')),
            audience: audience.to_owned(),
        }
    }

    /// The hint appended to a refusal: what to ask the person for, where.
    fn hint(&self, resource: &str, amount: &Amount) -> Vec<ContentBlock> {
        let text = format!(
            "a person must approve this payment: ask at {} (authorization_details: action \
             `{PAY_ACTION}`, resource `{resource}`, audience `{}`, amount {amount}), then call \
             again with the approved token",
            self.bc_authorize, self.audience
        );
        let hint = Hint {
            remediation: "person_approval",
            bc_authorize: &self.bc_authorize,
            action: PAY_ACTION,
            resource,
            audience: &self.audience,
            amount: amount.to_string(),
        };
        let mut blocks = vec![ContentBlock::text(text)];
        if let Ok(block) = ContentBlock::json(&hint) {
            blocks.push(block);
        }
        blocks
    }
}

/// The machine-readable remediation hint.
#[derive(Debug, Serialize)]
struct Hint<'a> {
    remediation: &'static str,
    bc_authorize: &'a str,
    action: &'static str,
    resource: &'a str,
    audience: &'a str,
    amount: String,
}

/// `pay` arguments.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct Payment {
    /// Whom to pay (letters, digits, `-`, `_`, `.`).
    pub payee: String,
    /// How much, as in `40.00EUR`.
    pub amount: String,
}

/// A payee name the resource `payees/<payee>` can carry as one segment.
fn payee_ok(payee: &str) -> bool {
    (1..=64).contains(&payee.len())
        && payee
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && payee != "."
        && payee != ".."
}

#[tool_router(router = pay_router, vis = "pub(crate)")]
impl OrdersServer {
    #[tool(
        description = "Pay a payee an amount (as in 40.00EUR). Needs a token for `payments:create` on `payees/<payee>` that a person approved for at least this amount; otherwise the error says what to ask the person for and where."
    )]
    async fn pay(
        &self,
        Parameters(Payment { payee, amount }): Parameters<Payment>,
        Extension(parts): Extension<Parts>,
    ) -> ToolResult {
        if !payee_ok(&payee) {
            return Err(failure("payee: 1 to 64 letters, digits, `-`, `_` or `.`"));
        }
        let amount = Amount::parse(&amount).map_err(|e| failure(format!("amount: {e}")))?;
        let resource = format!("payees/{payee}");
        let grant = match self
            .authorize(&parts, PAY_ACTION, &resource, Some(amount.clone()))
            .await
        {
            Ok(grant) => grant,
            Err(mut refused) => {
                refused.content.extend(self.pay.hint(&resource, &amount));
                return Err(refused);
            }
        };
        let Some(approval) = grant.approval() else {
            tracing::info!(payee, %amount, token_id = %grant.token_id, "refused: no approval");
            let mut refused = failure("forbidden: the token carries no person's approval");
            refused.content.extend(self.pay.hint(&resource, &amount));
            return Err(refused);
        };
        tracing::info!(payee, %amount, approval = %approval.approval_id, "paid");
        Ok(CallToolResult::success(vec![ContentBlock::text(format!(
            "paid {amount} to {payee}, approved by {} (approval {})",
            approval.person, approval.approval_id
        ))]))
    }
}
