//! The shape gate: what a block after the authority block may say, read from
//! the decoded protobuf before any Datalog runs.
//!
//! biscuit-auth checks its run limits only between queries (time) and
//! between iterations (facts), so one appended block can cost seconds of CPU
//! or hundreds of megabytes inside a single query: a check that nests
//! closures over arrays, or a rule that joins a predicate with itself over
//! facts the block supplies. Every block after the authority block is signed
//! by whoever holds the token, so nothing in it is trusted to be cheap.
//!
//! The gate lets through exactly what narrows a token, and in a form whose
//! cost is bounded by its size:
//!
//! - **checks** (`check if`, `check all`, `reject if`), at most
//!   [`MAX_CHECKS_PER_BLOCK`] per block and [`MAX_QUERIES_PER_CHECK`]
//!   alternatives (`or`) per check, whose queries either read **one**
//!   predicate (a lookup among the few facts the verifier and the authority
//!   block supply, such as `resource("order:42")`, `time($t), $t <= D` or a
//!   verifier's own `method("GET")`), or **join** only the request facts of
//!   [`SHAPES`], each at most once and with no variable shared between two
//!   of them (`operation($op), resource($r), $op == "x", $r == "y"`);
//! - expressions of at most [`MAX_OPS_PER_QUERY`] operations per query, with
//!   no closure that takes a parameter (`.all()`, `.any()`), no regular
//!   expression and no external function; the parameterless closures that
//!   biscuit uses to encode `&&`, `||` and `.try_or()` pass and count
//!   toward the budget, nested at most [`MAX_CLOSURE_DEPTH`] deep;
//! - facts only where [`SHAPES`] names them: one `delegated_to` in a
//!   delegation (third-party) block, and one `budget` in any block (read
//!   by Tessera from the decoded block, never joined by a check).
//!
//! Refused, with [`Reason::LimitsExceeded`](super::Reason): rules
//! (Tessera never writes one after the authority block, and a rule is how a
//! block generates facts), facts in a first-party block (by Biscuit's
//! scoping they are visible only to the block's own checks, so they can
//! grant nothing, and they are exactly what a join multiplies), scopes other
//! than the default (`trusting previous`, `trusting <key>`), and everything
//! over the budgets above.
//!
//! With first-party facts and rules gone, a check can only read the facts of
//! the verifier (one per request fact), of the authority block (signed by the
//! issuer) and the one `delegated_to` of its own block, so each query costs a
//! handful of fact comparisons and at most [`MAX_OPS_PER_QUERY`] operations.
//!
//! The gate also reads the expiries that later blocks add
//! (`check if time($t), $t <= D`, or `<`), so that the earliest expiry of the
//! whole chain is known without Datalog.

use biscuit_auth::datalog::SymbolTable;
use biscuit_auth::format::schema::{self, check, op, op_binary, op_unary, term};
use chrono::{DateTime, TimeZone, Utc};
use prost::Message;
use std::sync::LazyLock;

/// Most checks in one block after the authority block. Tessera writes at
/// most five; biscuit-python's narrowing at most five.
pub const MAX_CHECKS_PER_BLOCK: usize = 16;
/// Most alternatives (`check if A or B`) in one check.
pub const MAX_QUERIES_PER_CHECK: usize = 4;
/// Most expression operations (values, operators, closures) in one query,
/// summed over its expressions. `$r.starts_with("p")` is three.
pub const MAX_OPS_PER_QUERY: usize = 16;
/// Deepest nesting of the parameterless closures of `&&`, `||` and
/// `.try_or()`.
pub const MAX_CLOSURE_DEPTH: usize = 2;

/// Symbol ids at or above this offset index the block's own symbol list.
const SYMBOL_OFFSET: u64 = 1024;

static DEFAULT_SYMBOLS: LazyLock<SymbolTable> = LazyLock::new(SymbolTable::new);

/// What a predicate is for, in a block after the authority block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A fact the verifier supplies for each request. A check may join
    /// several different request facts in one query.
    Request,
    /// A fact a delegation (third-party) block carries, at most `max` times.
    /// Tessera reads it from the decoded block; Datalog never trusts it
    /// outside the block.
    DelegationFact {
        /// How many such facts one block may hold.
        max: usize,
    },
    /// A fact any block after the authority block may carry (first-party
    /// or third-party), at most `max` times. Tessera reads it from the
    /// decoded block; no check of Tessera's reads it.
    BlockFact {
        /// How many such facts one block may hold.
        max: usize,
    },
}

/// One entry of the table of shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// The predicate name.
    pub name: &'static str,
    /// Its number of terms.
    pub arity: usize,
    /// What it is for.
    pub role: Role,
}

/// The predicates a block after the authority block may name beyond a
/// one-predicate lookup.
///
/// `amount(currency, minor units)` is the amount a tool server supplies with
/// an operation (`check if amount($c, $v), $c == "EUR", $v <= 1250`; the
/// one-predicate check passes as a lookup, the entry lets it be joined with
/// `operation`). Being a request fact, no block may carry one. A future shape
/// of `DESIGN.md` is one entry here too: a budget that a delegation lowers is
/// `Shape { name: "budget", arity: 3, role: Role::DelegationFact { max: 1 } }`.
pub const SHAPES: &[Shape] = &[
    Shape {
        name: "time",
        arity: 1,
        role: Role::Request,
    },
    Shape {
        name: "operation",
        arity: 1,
        role: Role::Request,
    },
    Shape {
        name: "resource",
        arity: 1,
        role: Role::Request,
    },
    Shape {
        name: "service",
        arity: 1,
        role: Role::Request,
    },
    Shape {
        name: "holder_proven",
        arity: 1,
        role: Role::Request,
    },
    Shape {
        name: "amount",
        arity: 2,
        role: Role::Request,
    },
    Shape {
        name: "delegated_to",
        arity: 2,
        role: Role::DelegationFact { max: 1 },
    },
    Shape {
        name: "budget",
        arity: 3,
        role: Role::BlockFact { max: 1 },
    },
];

fn shape(name: &str) -> Option<&'static Shape> {
    SHAPES.iter().find(|s| s.name == name)
}

/// Why a block was refused: its index and a fixed sentence (never text
/// taken from the token).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("block {block}: {why}")]
pub struct Refusal {
    /// Index of the block (0 is the authority block, never refused here).
    pub block: usize,
    /// What is wrong with it.
    pub why: String,
}

/// What the gate learned from blocks that passed it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Passed {
    /// The earliest expiry that a block after the authority block adds with
    /// `check if time($t), $t <= D` (or `$t < D`, which is `D` minus one
    /// second), if any.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Resolves symbol ids of one block.
struct Symbols<'a> {
    shared: &'a [String],
    own: &'a [String],
}

impl Symbols<'_> {
    fn get(&self, i: u64) -> Option<&str> {
        if i < SYMBOL_OFFSET {
            return DEFAULT_SYMBOLS.get_symbol(i);
        }
        let j = usize::try_from(i - SYMBOL_OFFSET).ok()?;
        match j.checked_sub(self.shared.len()) {
            None => self.shared.get(j).map(String::as_str),
            Some(k) => self.own.get(k).map(String::as_str),
        }
    }
}

/// Passes every block after the authority block through the gate.
///
/// `payloads[i]` is block `i`'s payload and `third_party[i]` whether it
/// carries an external signature (the authority block and first-party
/// blocks share one growing symbol table; a third-party block has its own).
pub fn check_blocks(payloads: &[&[u8]], third_party: &[bool]) -> Result<Passed, Refusal> {
    check_from(payloads, third_party, 1)
}

/// [`check_blocks`] for blocks `from` onwards only; earlier blocks are read
/// for their symbols and not judged (attenuation checks the block it
/// appends, whatever came before).
pub fn check_from(
    payloads: &[&[u8]],
    third_party: &[bool],
    from: usize,
) -> Result<Passed, Refusal> {
    let mut shared: Vec<String> = Vec::new();
    let mut passed = Passed::default();
    for (i, payload) in payloads.iter().enumerate() {
        let refuse = |why: &str| Refusal {
            block: i,
            why: why.to_owned(),
        };
        let block =
            schema::Block::decode(*payload).map_err(|_| refuse("the block does not decode"))?;
        let own_table = third_party.get(i).copied().unwrap_or(false);
        if i == 0 || i < from {
            if !own_table {
                shared.extend(block.symbols);
            }
            continue;
        }
        let symbols = Symbols {
            shared: if own_table { &[] } else { shared.as_slice() },
            own: &block.symbols,
        };
        let expiry = check_block(&block, own_table, &symbols).map_err(|why| refuse(&why))?;
        if let Some(e) = expiry {
            passed.expires_at = Some(passed.expires_at.map_or(e, |p| p.min(e)));
        }
        if !own_table {
            shared.extend(block.symbols);
        }
    }
    Ok(passed)
}

/// One block: its earliest expiry check, or why it is refused.
fn check_block(
    block: &schema::Block,
    third_party: bool,
    symbols: &Symbols<'_>,
) -> Result<Option<DateTime<Utc>>, String> {
    if !block.scope.is_empty() {
        return Err("a block scope other than the default (trusting ...)".into());
    }
    if !block.rules.is_empty() {
        return Err(format!(
            "{} rule(s): a block after the authority block may hold checks only",
            block.rules.len()
        ));
    }
    check_facts(block, third_party, symbols)?;
    if block.checks.len() > MAX_CHECKS_PER_BLOCK {
        return Err(format!(
            "{} checks (at most {MAX_CHECKS_PER_BLOCK})",
            block.checks.len()
        ));
    }
    let mut expiry: Option<DateTime<Utc>> = None;
    for (c, chk) in block.checks.iter().enumerate() {
        check_check(chk, symbols).map_err(|why| format!("check {c}: {why}"))?;
        if let Some(e) = expiry_of(chk, symbols) {
            expiry = Some(expiry.map_or(e, |x| x.min(e)));
        }
    }
    Ok(expiry)
}

fn check_facts(
    block: &schema::Block,
    third_party: bool,
    symbols: &Symbols<'_>,
) -> Result<(), String> {
    if block.facts.is_empty() {
        return Ok(());
    }
    let mut counts = vec![0usize; SHAPES.len()];
    for f in &block.facts {
        let name = symbols
            .get(f.predicate.name)
            .ok_or("a fact with an unknown symbol")?;
        let found = SHAPES
            .iter()
            .position(|s| s.name == name && s.arity == f.predicate.terms.len());
        let (k, max) = match found.map(|k| (k, SHAPES[k].role)) {
            Some((k, Role::BlockFact { max })) => (k, max),
            Some((k, Role::DelegationFact { max })) if third_party => (k, max),
            _ if !third_party => {
                return Err(format!(
                    "{} fact(s) in a first-party block (it may hold checks and one `budget` only)",
                    block.facts.len()
                ))
            }
            _ => return Err("a fact that a delegation block does not carry".into()),
        };
        counts[k] = counts[k].saturating_add(1);
        if counts[k] > max {
            return Err(format!("more than {max} `{}` fact(s)", SHAPES[k].name));
        }
    }
    Ok(())
}

fn check_check(chk: &schema::Check, symbols: &Symbols<'_>) -> Result<(), String> {
    match chk.kind {
        None | Some(0..=2) => {}
        Some(_) => return Err("an unknown kind of check".into()),
    }
    if chk.queries.is_empty() {
        return Err("a check without a query".into());
    }
    if chk.queries.len() > MAX_QUERIES_PER_CHECK {
        return Err(format!(
            "{} alternatives (at most {MAX_QUERIES_PER_CHECK})",
            chk.queries.len()
        ));
    }
    for q in &chk.queries {
        check_query(q, symbols)?;
    }
    Ok(())
}

fn check_query(q: &schema::Rule, symbols: &Symbols<'_>) -> Result<(), String> {
    if !q.scope.is_empty() {
        return Err("a scope other than the default (trusting ...)".into());
    }
    if q.body.len() > 1 {
        let mut seen: Vec<&str> = Vec::with_capacity(q.body.len());
        let mut variables: Vec<u32> = Vec::new();
        for p in &q.body {
            let name = symbols
                .get(p.name)
                .ok_or("a predicate with an unknown symbol")?;
            match shape(name) {
                Some(s) if s.role == Role::Request => {}
                _ => {
                    return Err(
                        "a join with a predicate that is not a request fact of the verifier".into(),
                    )
                }
            }
            if seen.contains(&name) {
                return Err("a join that reads the same predicate twice".into());
            }
            seen.push(name);
            let mut here: Vec<u32> = p
                .terms
                .iter()
                .filter_map(|t| match t.content {
                    Some(term::Content::Variable(v)) => Some(v),
                    _ => None,
                })
                .collect();
            here.sort_unstable();
            here.dedup();
            if here.iter().any(|v| variables.contains(v)) {
                return Err("a join on a variable shared by two predicates".into());
            }
            variables.extend(here);
        }
    }
    let mut budget = MAX_OPS_PER_QUERY;
    for e in &q.expressions {
        check_ops(&e.ops, 0, &mut budget)?;
    }
    Ok(())
}

/// Counts `ops` against `budget`, refusing what costs more than its size.
fn check_ops(ops: &[schema::Op], depth: usize, budget: &mut usize) -> Result<(), String> {
    for o in ops {
        *budget = budget
            .checked_sub(1)
            .ok_or_else(|| format!("an expression of more than {MAX_OPS_PER_QUERY} operations"))?;
        match &o.content {
            None => return Err("an empty operation".into()),
            Some(op::Content::Value(_)) => {}
            Some(op::Content::Unary(u)) => {
                if u.kind == op_unary::Kind::Ffi as i32 || u.ffi_name.is_some() {
                    return Err("an external function".into());
                }
            }
            Some(op::Content::Binary(b)) => {
                let refused = [
                    (op_binary::Kind::All, "a closure over a collection (.all)"),
                    (op_binary::Kind::Any, "a closure over a collection (.any)"),
                    (op_binary::Kind::Regex, "a regular expression"),
                    (op_binary::Kind::Ffi, "an external function"),
                ];
                if let Some((_, why)) = refused.iter().find(|(k, _)| b.kind == *k as i32) {
                    return Err((*why).into());
                }
                if b.ffi_name.is_some() {
                    return Err("an external function".into());
                }
            }
            Some(op::Content::Closure(c)) => {
                if !c.params.is_empty() {
                    return Err("a closure that takes a parameter (.all, .any)".into());
                }
                if depth >= MAX_CLOSURE_DEPTH {
                    return Err(format!(
                        "closures nested more than {MAX_CLOSURE_DEPTH} deep"
                    ));
                }
                check_ops(&c.ops, depth + 1, budget)?;
            }
        }
    }
    Ok(())
}

/// `D` for a check that is exactly `check if time($t), $t <= D` (also
/// `D >= $t`), `D - 1s` for `$t < D` (`D > $t`); `None` for anything else.
fn expiry_of(chk: &schema::Check, symbols: &Symbols<'_>) -> Option<DateTime<Utc>> {
    use op_binary::Kind as K;
    if chk.kind == Some(check::Kind::Reject as i32) {
        return None;
    }
    let [q] = chk.queries.as_slice() else {
        return None;
    };
    let [p] = q.body.as_slice() else { return None };
    let [e] = q.expressions.as_slice() else {
        return None;
    };
    if symbols.get(p.name) != Some("time") {
        return None;
    }
    let [schema::Term {
        content: Some(term::Content::Variable(t)),
    }] = p.terms.as_slice()
    else {
        return None;
    };
    let value = |o: &schema::Op| match &o.content {
        Some(op::Content::Value(schema::Term { content })) => content.clone(),
        _ => None,
    };
    let kind = |o: &schema::Op| match &o.content {
        Some(op::Content::Binary(b)) => Some(b.kind),
        _ => None,
    };
    let [a, b, k] = e.ops.as_slice() else {
        return None;
    };
    let (date, kind) = match (value(a), value(b), kind(k)) {
        (Some(term::Content::Variable(v)), Some(term::Content::Date(d)), Some(k)) if v == *t => {
            (d, k)
        }
        (Some(term::Content::Date(d)), Some(term::Content::Variable(v)), Some(k)) if v == *t => {
            // `D >= $t` is `$t <= D`; `D > $t` is `$t < D`.
            let flipped = if k == K::GreaterOrEqual as i32 {
                K::LessOrEqual as i32
            } else if k == K::GreaterThan as i32 {
                K::LessThan as i32
            } else {
                return None;
            };
            (d, flipped)
        }
        _ => return None,
    };
    let last = if kind == K::LessOrEqual as i32 {
        date
    } else if kind == K::LessThan as i32 {
        date.checked_sub(1)?
    } else {
        return None;
    };
    i64::try_from(last)
        .ok()
        .and_then(|s| Utc.timestamp_opt(s, 0).single())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::schema::{narrowing_checks, Narrowing};
    use crate::token::types::{Action, Audience, ResourcePattern};
    use crate::token::wire::scan;
    use biscuit_auth::{Biscuit, BlockBuilder, KeyPair};
    use proptest::prelude::*;

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(secs, 0).single().unwrap()
    }

    fn authority() -> Biscuit {
        Biscuit::builder()
            .code(r#"right("docs:read", "docs/a"); check if time($t), $t <= 2026-11-22T12:05:00Z;"#)
            .unwrap()
            .build(&KeyPair::new())
            .unwrap()
    }

    /// The gate over a token made of the authority block and `blocks`
    /// (first-party).
    fn gate(blocks: &[BlockBuilder]) -> Result<Passed, Refusal> {
        let mut t = authority();
        for b in blocks {
            t = t.append(b.clone()).unwrap();
        }
        let bytes = t.to_vec().unwrap();
        let layout = scan(&bytes, 64).unwrap();
        let third: Vec<bool> = t
            .external_public_keys()
            .iter()
            .map(Option::is_some)
            .collect();
        check_blocks(&layout.payloads, &third)
    }

    fn code(src: &str) -> BlockBuilder {
        BlockBuilder::new().code(src).unwrap()
    }

    fn refused(src: &str) -> String {
        match gate(&[code(src)]) {
            Ok(p) => panic!("{src} passed: {p:?}"),
            Err(r) => {
                assert_eq!(r.block, 1, "{r}");
                r.why
            }
        }
    }

    #[test]
    fn the_plain_narrowing_checks_of_biscuit_libraries_pass() {
        for src in [
            r#"check if resource("order:42");"#,
            r#"check if operation("x");"#,
            "check if time($t), $t <= 2026-11-22T12:01:00Z;",
            "check if time($t), $t < 2026-11-22T12:01:00Z;",
            r#"check if service($s), $s == "https://tool.example";"#,
            r#"check if resource($r), $r.starts_with("p");"#,
            r#"check if resource($r), $r == "x";"#,
            r#"check if operation($op), resource($r), $op == "x", $r.starts_with("d");"#,
            r#"check if resource($r), ["a", "b"].contains($r);"#,
            r#"check if resource($r), $r == "a" || $r == "b";"#,
            r#"check if resource("a") or resource("b");"#,
            r#"check if method("GET");"#,
            "check if holder_proven(true);",
            "check all operation($op), $op == \"x\";",
            "reject if resource(\"secret\");",
            "check if true;",
        ] {
            assert!(gate(&[code(src)]).is_ok(), "{src}");
        }
    }

    #[test]
    fn rules_facts_scopes_closures_and_joins_are_refused_with_a_reason() {
        for (src, why) in [
            ("right($op, $r) <- operation($op), resource($r);", "rule"),
            (r#"right("docs:write", "x");"#, "fact"),
            ("check if resource($r) trusting previous;", "scope"),
            ("check if [1, 2].all($a -> $a > 0);", "closure"),
            ("check if [1, 2].any($a -> $a > 0);", "closure"),
            (
                r#"check if resource($r), $r.matches("a+");"#,
                "regular expression",
            ),
            (
                "check if operation($a), operation($b);",
                "same predicate twice",
            ),
            (
                "check if right($a, $r), resource($r);",
                "not a request fact",
            ),
            ("check if resource($r), operation($r);", "shared"),
            (
                "check if time($t), $t + 1 + 2 + 3 + 4 + 5 + 6 + 7 + 8 == 0;",
                "operations",
            ),
            (
                "check if true && (true && (true && true));",
                "nested more than",
            ),
        ] {
            let got = refused(src);
            assert!(got.contains(why), "{src}: {got}");
        }
        let scoped =
            code(r#"check if resource("x");"#).scope(biscuit_auth::builder::Scope::Previous);
        assert!(gate(&[scoped]).unwrap_err().why.contains("block scope"));
        let many: String = (0..=MAX_CHECKS_PER_BLOCK)
            .map(|i| format!("check if resource(\"r{i}\");"))
            .collect();
        assert!(refused(&many).contains("checks"));
        let alternatives = "check if resource(\"a\") or resource(\"b\") or resource(\"c\") \
                            or resource(\"d\") or resource(\"e\");";
        assert!(refused(alternatives).contains("alternatives"));
    }

    #[test]
    fn the_refusal_names_the_block_and_never_the_tokens_own_text() {
        let ok = code(r#"check if resource("x");"#);
        let bad = code(r#"check if resource("x"), resource("x"), resource("x");"#);
        let r = gate(&[ok.clone(), ok, bad]).unwrap_err();
        assert_eq!(r.block, 3);
        assert_eq!(
            r.to_string(),
            "block 3: check 0: a join that reads the same predicate twice"
        );
        let hostile = code("check if evil_name_here($a), evil_name_here($b);");
        let r = gate(&[hostile]).unwrap_err();
        assert!(!r.to_string().contains("evil_name_here"), "{r}");
    }

    #[test]
    fn an_amount_cap_passes_and_an_amount_fact_or_rule_does_not() {
        for ok in [
            "check if amount($c, $v), $c == \"EUR\", $v <= 1250;",
            "check if operation($op), amount($c, $v), $op == \"pay\", $c == \"EUR\", $v <= 1250;",
        ] {
            assert!(gate(&[code(ok)]).is_ok(), "{ok}");
        }
        for bad in [
            "amount(\"EUR\", 1);",
            "amount($c, 0) <- amount($c, $v);",
            "check if amount($c, $v), amount($d, $w), $v <= 1;",
        ] {
            assert!(gate(&[code(bad)]).is_err(), "{bad}");
        }
        // Nor may a delegation (third-party) block carry one.
        let holder = KeyPair::new();
        let t = authority();
        let b = code("amount(\"EUR\", 1);");
        let signed = t
            .third_party_request()
            .unwrap()
            .create_block(&holder.private(), b)
            .unwrap();
        let t = t.append_third_party(holder.public(), signed).unwrap();
        let bytes = t.to_vec().unwrap();
        let layout = scan(&bytes, 64).unwrap();
        let r = check_blocks(&layout.payloads, &[false, true]).unwrap_err();
        assert!(r.why.contains("does not carry"), "{r}");
    }

    #[test]
    fn the_earliest_added_expiry_is_read_from_time_checks() {
        let p = gate(&[
            code("check if time($t), $t <= 2026-11-22T12:03:00Z;"),
            code("check if time($t), $t < 2026-11-22T12:02:00Z;"),
            code("check if time($t), 2026-11-22T12:04:00Z >= $t;"),
        ])
        .unwrap();
        assert_eq!(
            p.expires_at,
            Some(
                DateTime::parse_from_rfc3339("2026-11-22T12:01:59Z")
                    .unwrap()
                    .to_utc()
            )
        );
        // Not a plain expiry: none is read (Datalog still enforces it).
        for src in [
            "check if time($t), $t <= 2026-11-22T12:03:00Z or resource(\"x\");",
            "reject if time($t), $t <= 2026-11-22T12:03:00Z;",
            "check if time($t), $t >= 2026-11-22T12:03:00Z;",
        ] {
            assert_eq!(gate(&[code(src)]).unwrap().expires_at, None, "{src}");
        }
        assert_eq!(gate(&[]).unwrap(), Passed::default());
    }

    fn narrowing() -> impl Strategy<Value = Narrowing> {
        (
            proptest::option::of("[a-z:]{1,20}"),
            proptest::option::of((any::<bool>(), "\\PC{1,40}")),
            proptest::option::of(0i64..4_000_000_000),
            proptest::option::of("[a-z]{1,20}"),
            proptest::option::of(0i64..=i64::MAX),
        )
            .prop_map(|(action, resource, expiry, audience, cap)| Narrowing {
                action: action.map(|a| Action::parse(&a).unwrap()),
                resource: resource.map(|(prefix, r)| {
                    let r = crate::token::types::Resource::parse(&r).unwrap();
                    if prefix {
                        ResourcePattern::Prefix(r)
                    } else {
                        ResourcePattern::Exact(r)
                    }
                }),
                expires_at: expiry.map(at),
                audience: audience.map(|a| Audience::parse(&format!("https://{a}")).unwrap()),
                max_amount: cap.map(|v| crate::token::Amount::new("EUR", v).unwrap()),
                budget: cap.map(|v| {
                    crate::token::Budget::new(
                        crate::token::BudgetId::parse("trip").unwrap(),
                        crate::token::Amount::new("EUR", v).unwrap(),
                    )
                }),
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever Tessera writes passes the gate, and the expiry it writes
        /// is the one the gate reads.
        #[test]
        fn every_narrowing_tessera_writes_passes_and_its_expiry_is_read(
            n in narrowing(),
            delegated in any::<bool>(),
        ) {
            let mut b = narrowing_checks(BlockBuilder::new(), &n).unwrap();
            let t = authority();
            let (t, expect_third) = if delegated {
                let holder = KeyPair::new();
                b = b.code_with_params(
                    "delegated_to({a}, {k});",
                    [
                        ("a".to_owned(), biscuit_auth::builder::string("agent://acme/sub")),
                        ("k".to_owned(), biscuit_auth::builder::string(&KeyPair::new().public().to_string())),
                    ].into(),
                    Default::default(),
                ).unwrap();
                let signed = t.third_party_request().unwrap()
                    .create_block(&holder.private(), b).unwrap();
                (t.append_third_party(holder.public(), signed).unwrap(), true)
            } else {
                (t.append(b).unwrap(), false)
            };
            let bytes = t.to_vec().unwrap();
            let layout = scan(&bytes, 64).unwrap();
            let third = [false, expect_third];
            let passed = check_blocks(&layout.payloads, &third).unwrap();
            prop_assert_eq!(passed.expires_at, n.expires_at);
        }

        /// A closure that takes a parameter is refused at any depth of an
        /// expression, whatever surrounds it.
        #[test]
        fn a_closure_with_a_parameter_is_refused_wherever_it_stands(
            before in 0usize..3,
            after in 0usize..3,
        ) {
            let mut src = String::from("check if resource($r)");
            for _ in 0..before { src.push_str(", true"); }
            src.push_str(", [1].any($x -> $x == 1)");
            for _ in 0..after { src.push_str(", true"); }
            src.push(';');
            prop_assert!(refused(&src).contains("closure"));
        }
    }
}
