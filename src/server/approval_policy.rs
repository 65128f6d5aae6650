//! Which actions need a person's approval (`[approval]` in the
//! configuration; docs/approval.md).
//!
//! ```toml
//! [approval]
//! operators_may_decide = false
//!
//! [[approval.rule]]
//! action = "db:drop"
//! approval = "always"
//!
//! [[approval.rule]]
//! action = "payments:create"
//! approval_above = "100.00EUR"
//! ```
//!
//! A token on behalf of a person for an action a rule names is minted only
//! through `POST /oauth/bc-authorize` and the person's approval: the token
//! exchange and ID-JAG grants refuse it with `access_denied` naming that
//! path (never a narrowed token). At `bc-authorize`, an `approval_above`
//! rule lets a request carry its amount; the approval is asked whatever the
//! amount (so the token's cap is the amount the person saw).

use serde::{Deserialize, Serialize};

use crate::token::{Action, Amount};

/// The `[approval]` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApprovalConfig {
    /// Whether operators may approve or deny through the admin API
    /// (`tessera approvals approve|deny`); off by default: only the person.
    pub operators_may_decide: bool,
    /// Whether an agent's `notification_endpoint` (ping mode) and the
    /// `webhook_url` may be `http://` on a loopback address (127.0.0.1, [::1], localhost);
    /// off by default: https only.
    pub loopback_http_notifications: bool,
    /// Where to POST the signed notice of each new request (the person's
    /// webhook; src/server/webhook.rs). None by default.
    pub webhook_url: Option<String>,
    /// The file holding the webhook's HMAC secret (with `webhook_url`).
    pub webhook_secret_file: Option<std::path::PathBuf>,
    /// The actions that need approval (`[[approval.rule]]`).
    pub rule: Vec<ApprovalRule>,
}

/// `always`, the one value of `approval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Always {
    /// Every token for the action needs approval.
    Always,
}

/// One action that needs approval: always, or above an amount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRule {
    /// The action.
    pub action: Action,
    /// `"always"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Always>,
    /// Operations above this amount need approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_above: Option<Amount>,
}

impl ApprovalConfig {
    /// Refuses a rule with neither or both of `approval` and
    /// `approval_above`, and an action named twice.
    pub fn check(&self) -> Result<(), String> {
        match (&self.webhook_url, &self.webhook_secret_file) {
            (Some(url), Some(_)) => {
                super::webhook::check_url(url, self.loopback_http_notifications)?;
            }
            (None, None) => {}
            _ => return Err("[approval] webhook_url and webhook_secret_file go together".into()),
        }
        let mut seen = std::collections::HashSet::new();
        for r in &self.rule {
            if r.approval.is_some() == r.approval_above.is_some() {
                return Err(format!(
                    "approval rule for `{}`: set exactly one of approval = \"always\" and approval_above",
                    r.action
                ));
            }
            if !seen.insert(r.action.as_str()) {
                return Err(format!("approval rule for `{}` is given twice", r.action));
            }
        }
        Ok(())
    }

    /// The rule for `action`, if any.
    pub fn rule_for(&self, action: &Action) -> Option<&ApprovalRule> {
        self.rule.iter().find(|r| &r.action == action)
    }

    /// The error of a grant (other than CIBA) that names a person and asks
    /// for an action needing approval; `None` if no rule names it.
    pub fn refusal(&self, action: &Action) -> Option<String> {
        let rule = self.rule_for(action)?;
        let when = match &rule.approval_above {
            Some(above) => format!("above {above}"),
            None => "always".to_owned(),
        };
        Some(format!(
            "action `{action}` needs the person's approval ({when}): POST /oauth/bc-authorize"
        ))
    }
}
