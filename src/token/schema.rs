//! Token schema v1: the Datalog each block carries (see `docs/token-schema.md`).
//!
//! Every source text here is a constant. Values reach Datalog only as
//! parameters (`{name}`), so a resource such as `"); right("admin` is a
//! string term like any other.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use biscuit_auth::builder::{self, Term};
use biscuit_auth::{error, BlockBuilder};
use chrono::{DateTime, Utc};

use super::amount::Amount;
use super::types::{Action, Audience, ResourcePattern};

/// The schema version written in every authority block: `tessera_schema(1)`.
pub const SCHEMA_VERSION: i64 = 1;

/// Narrowing carried by an attenuation or delegation block. Every field is
/// optional; each one present becomes one check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Narrowing {
    /// Only this action.
    pub action: Option<Action>,
    /// Only resources matched by this pattern.
    pub resource: Option<ResourcePattern>,
    /// Not after this time.
    pub expires_at: Option<DateTime<Utc>>,
    /// Only at this tool server.
    pub audience: Option<Audience>,
    /// Only operations whose amount (a request fact the tool server
    /// supplies) is in this currency and at most this many minor units; an
    /// operation without an amount is refused. Caps of several blocks all
    /// hold, so a later block can only lower the cap.
    pub max_amount: Option<Amount>,
    /// A cumulative budget this block declares (`budget(id, currency,
    /// limit)`): charged, with every other budget of the chain, for each
    /// spend (see `token::budget`).
    pub budget: Option<super::budget::Budget>,
}

impl Narrowing {
    /// Whether no narrowing is asked for.
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// A date term from a UTC time, truncated to the second.
pub(crate) fn date(t: DateTime<Utc>) -> Term {
    let secs = u64::try_from(t.timestamp()).unwrap_or(0);
    builder::date(&(SystemTime::UNIX_EPOCH + Duration::from_secs(secs)))
}

fn params<const N: usize>(pairs: [(&str, Term); N]) -> HashMap<String, Term> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// Adds parameterised source to a block builder.
pub(crate) fn add<const N: usize>(
    block: BlockBuilder,
    source: &str,
    pairs: [(&str, Term); N],
) -> Result<BlockBuilder, error::Token> {
    block.code_with_params(source, params(pairs), HashMap::new())
}

/// The right fact and the matching scope check of an authority block.
pub(crate) fn right(
    block: BlockBuilder,
    action: &Action,
    resource: &ResourcePattern,
) -> Result<BlockBuilder, error::Token> {
    let a = builder::string(action.as_str());
    match resource {
        ResourcePattern::Exact(r) => add(
            block,
            "right({action}, {resource});
             check if operation($op), resource($r), $op == {action}, $r == {resource};",
            [("action", a), ("resource", builder::string(r.as_str()))],
        ),
        ResourcePattern::Prefix(p) => add(
            block,
            "right_prefix({action}, {prefix});
             check if operation($op), resource($r), $op == {action}, $r.starts_with({prefix});",
            [("action", a), ("prefix", builder::string(p.as_str()))],
        ),
    }
}

/// The right facts and the one scope check of an authority block that
/// grants several actions on one resource pattern. With one action this is
/// exactly [`right`] (same bytes); with more, one `right` (or
/// `right_prefix`) fact per action and one check that the operation is in
/// the set: `{"a1", "a2"}.contains($op)`. The set is a parameter, never
/// source text.
pub(crate) fn rights(
    block: BlockBuilder,
    actions: &[Action],
    resource: &ResourcePattern,
) -> Result<BlockBuilder, error::Token> {
    let mut unique: Vec<&Action> = Vec::with_capacity(actions.len());
    for a in actions {
        if !unique.contains(&a) {
            unique.push(a);
        }
    }
    match unique.as_slice() {
        [] => Err(error::Token::InternalError),
        [one] => right(block, one, resource),
        many => {
            let set = builder::set(many.iter().map(|a| builder::string(a.as_str())).collect());
            let (fact, check, name, value) = match resource {
                ResourcePattern::Exact(r) => (
                    "right({action}, {resource});",
                    "check if operation($op), resource($r), {actions}.contains($op), $r == {resource};",
                    "resource",
                    r.as_str(),
                ),
                ResourcePattern::Prefix(p) => (
                    "right_prefix({action}, {resource});",
                    "check if operation($op), resource($r), {actions}.contains($op), $r.starts_with({resource});",
                    "resource",
                    p.as_str(),
                ),
            };
            let mut block = block;
            for a in many {
                block = add(
                    block,
                    fact,
                    [
                        ("action", builder::string(a.as_str())),
                        (name, builder::string(value)),
                    ],
                )?;
            }
            add(
                block,
                check,
                [("actions", set), (name, builder::string(value))],
            )
        }
    }
}

/// The checks of an attenuation or delegation block.
pub(crate) fn narrowing_checks(
    mut block: BlockBuilder,
    n: &Narrowing,
) -> Result<BlockBuilder, error::Token> {
    if let Some(action) = &n.action {
        block = add(
            block,
            "check if operation($op), $op == {action};",
            [("action", builder::string(action.as_str()))],
        )?;
    }
    match &n.resource {
        Some(ResourcePattern::Exact(r)) => {
            block = add(
                block,
                "check if resource($r), $r == {resource};",
                [("resource", builder::string(r.as_str()))],
            )?;
        }
        Some(ResourcePattern::Prefix(p)) => {
            block = add(
                block,
                "check if resource($r), $r.starts_with({prefix});",
                [("prefix", builder::string(p.as_str()))],
            )?;
        }
        None => {}
    }
    if let Some(exp) = n.expires_at {
        block = add(
            block,
            "check if time($t), $t <= {expires_at};",
            [("expires_at", date(exp))],
        )?;
    }
    if let Some(aud) = &n.audience {
        block = add(
            block,
            "check if service($s), $s == {audience};",
            [("audience", builder::string(aud.as_str()))],
        )?;
    }
    if let Some(cap) = &n.max_amount {
        block = add(
            block,
            "check if amount($c, $v), $c == {currency}, $v <= {max};",
            [
                ("currency", builder::string(cap.currency())),
                ("max", builder::int(cap.minor())),
            ],
        )?;
    }
    if let Some(b) = &n.budget {
        block = super::budget::declare(block, b)?;
    }
    Ok(block)
}
