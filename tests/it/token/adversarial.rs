//! Adversarial blocks (issue 9, finding 1): a holder appends a block whose
//! Datalog would cost seconds or hundreds of megabytes inside one query,
//! where biscuit-auth's run limits never look. The shape gate refuses such a
//! block from its decoded structure, before any Datalog runs, with
//! `limits_exceeded`; the plain narrowing checks that Biscuit libraries write
//! still pass.
//!
//! The bound of one second below is generous on purpose: it shows "no longer
//! runs for seconds", not a speed (`benches/adversarial.rs` measures that).

use std::time::{Duration, Instant};

use biscuit_auth::builder::{self, Term};
use biscuit_auth::{BlockBuilder, KeyPair};
use tessera::token::*;

use super::raw::{append_first_party, append_third_party, block, delegated_to, s};
use super::support::*;

/// "No longer hangs for seconds".
const PROMPT: Duration = Duration::from_secs(1);

/// `[0, 1, ..., n-1]` as Datalog source (constants only).
fn array(n: usize) -> String {
    let items: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    format!("[{}]", items.join(", "))
}

/// The check of the review: closures over 40-element arrays nested five
/// deep (40^5 evaluations of the innermost expression), 2.2 KB of source.
fn nested_closures() -> BlockBuilder {
    let a = array(40);
    let src = format!(
        "check if {a}.all($a -> {a}.all($b -> {a}.all($c -> {a}.all($d -> {a}.all($e -> \
         $a + $b + $c + $d + $e >= 0)))));"
    );
    BlockBuilder::new().code(&src).unwrap()
}

/// The join of the review: facts the block supplies, joined four times over
/// by a rule (k^4 generated facts in a single iteration, before the fact
/// limit is looked at).
fn join_by_rule(k: usize) -> BlockBuilder {
    let facts: String = (0..k).map(|i| format!("n({i});")).collect();
    let src = format!("{facts} j($a, $b, $c, $d) <- n($a), n($b), n($c), n($d);");
    BlockBuilder::new().code(&src).unwrap()
}

/// The same join in a check: k^4 combinations, none matching.
fn join_by_check(k: usize) -> BlockBuilder {
    let facts: String = (0..k).map(|i| format!("n({i});")).collect();
    let src = format!("{facts} check if n($a), n($b), n($c), n($d), $a + $b + $c + $d < 0;");
    BlockBuilder::new().code(&src).unwrap()
}

/// Authorizes `token` for `r`, asserting it is refused with
/// `limits_exceeded` within [`PROMPT`]; the detail.
fn refused_promptly(issuer: &Issuer, token: &str, r: &Request) -> String {
    let start = Instant::now();
    let result = issuer.check(token, r);
    let took = start.elapsed();
    match result {
        Ok(g) => panic!("allowed after {took:?}: {g:?}"),
        Err(d) => {
            assert_eq!(d.reason, Reason::LimitsExceeded, "{d} after {took:?}");
            assert!(took < PROMPT, "refused only after {took:?}: {d}");
            d.detail
        }
    }
}

fn bearer(issuer: &Issuer) -> Minted {
    issuer.mint(&cap("docs:read", "docs/*", Some(SERVICE), None))
}

fn ok_req(holder: Option<&KeyPair>) -> Request {
    req("docs:read", "docs/a/1", Some(SERVICE), t0(), holder)
}

#[test]
fn an_appended_check_of_nested_closures_is_refused_as_limits_exceeded_at_once() {
    let issuer = Issuer::new();
    let m = bearer(&issuer);
    assert!(issuer.check(&m.token, &ok_req(None)).is_ok());
    let t = append_first_party(&m.token, nested_closures());
    let size = bytes_of(&t).len() - bytes_of(&m.token).len();
    // A small block: 1.1 KB on the wire, its source text 2.2 KB.
    assert!((1_000..2_500).contains(&size), "the block is {size} bytes");
    let detail = refused_promptly(&issuer, &t, &ok_req(None));
    assert!(detail.starts_with("block 1: check 0:"), "{detail}");
    assert!(detail.contains("closure"), "{detail}");
}

#[test]
fn an_appended_four_way_join_by_a_rule_is_refused_as_limits_exceeded_at_once() {
    let issuer = Issuer::new();
    let m = bearer(&issuer);
    let t = append_first_party(&m.token, join_by_rule(40));
    let detail = refused_promptly(&issuer, &t, &ok_req(None));
    assert!(detail.starts_with("block 1:"), "{detail}");
}

#[test]
fn an_appended_four_way_join_in_a_check_is_refused_as_limits_exceeded_at_once() {
    let issuer = Issuer::new();
    let m = bearer(&issuer);
    let t = append_first_party(&m.token, join_by_check(40));
    refused_promptly(&issuer, &t, &ok_req(None));
    // The same join without the block's own facts, over the verifier's.
    let t = append_first_party(
        &m.token,
        block(
            "check if resource($a), resource($b), resource($c), resource($d);",
            &[],
        ),
    );
    let detail = refused_promptly(&issuer, &t, &ok_req(None));
    assert!(detail.contains("same predicate twice"), "{detail}");
}

#[test]
fn a_delegation_block_carrying_closures_or_a_join_is_refused_as_limits_exceeded_at_once() {
    let issuer = Issuer::new();
    let agent = keypair(10);
    let sub = keypair(11);
    let m = issuer.mint(&cap("docs:read", "docs/*", Some(SERVICE), Some(&agent)));
    // Signed by the rightful holder, naming one next holder: a valid
    // hand-over in every respect but its cost.
    for extra in [nested_closures(), join_by_rule(40), join_by_check(40)] {
        let b = extra.merge(delegated_to("agent://acme/sub", &sub));
        let t = append_third_party(&m.token, &agent, b);
        let detail = refused_promptly(&issuer, &t, &ok_req(Some(&sub)));
        assert!(detail.starts_with("block 1:"), "{detail}");
    }
    // Tessera's own delegation of the same token passes.
    let t = delegate(
        &m.token,
        &agent,
        &AgentId::parse("agent://acme/sub").unwrap(),
        &sub.public(),
        &Narrowing::default(),
        &issuer.limits,
    )
    .unwrap();
    assert!(issuer.check(&t, &ok_req(Some(&sub))).is_ok());
}

#[test]
fn verified_from_bytes_refuses_an_adversarial_block_before_any_request() {
    let issuer = Issuer::new();
    let m = bearer(&issuer);
    let t = append_first_party(&m.token, nested_closures());
    let start = Instant::now();
    let r = Verified::from_bytes(&bytes_of(&t), &issuer.keys, &issuer.limits);
    let d = r.expect_err("an adversarial block must not verify");
    assert_eq!(d.reason, Reason::LimitsExceeded, "{d}");
    assert!(start.elapsed() < PROMPT);
}

#[test]
fn the_refusal_says_which_block_and_why_for_each_refused_shape() {
    let issuer = Issuer::new();
    let m = bearer(&issuer);
    let narrow = block(
        "check if resource($r), $r.starts_with({p});",
        &[("p", s("docs/"))],
    );
    let base = append_first_party(&m.token, narrow);
    for (b, why) in [
        (
            block("right($op, $r) <- operation($op), resource($r);", &[]),
            "rule",
        ),
        (block(r#"right("docs:write", "docs/x");"#, &[]), "fact"),
        (
            block("check if resource($r) trusting previous;", &[]),
            "scope",
        ),
        (
            block(r#"check if resource($r), $r.matches("^(a+)+$");"#, &[]),
            "regular expression",
        ),
        (
            block("check if right($a, $r), resource($r);", &[]),
            "not a request fact",
        ),
        (
            block("check if operation($x), resource($x);", &[]),
            "shared",
        ),
        (
            block(
                "check if resource($r), $r + $r + $r + $r + $r + $r + $r + $r + $r == {x};",
                &[("x", s("x"))],
            ),
            "operations",
        ),
    ] {
        let t = append_first_party(&base, b);
        let detail = refused_promptly(&issuer, &t, &ok_req(None));
        assert!(detail.starts_with("block 2: "), "{detail}");
        assert!(detail.contains(why), "{why} in {detail}");
    }
    let many: String = (0..17)
        .map(|i| format!("check if resource(\"docs/{i}\") or resource($r);"))
        .collect();
    let t = append_first_party(&base, BlockBuilder::new().code(&many).unwrap());
    let detail = refused_promptly(&issuer, &t, &ok_req(None));
    assert!(detail.contains("17 checks"), "{detail}");
}

/// A date term.
fn date(t: chrono::DateTime<chrono::Utc>) -> Term {
    builder::date(&std::time::SystemTime::from(t))
}

#[test]
fn the_plain_narrowing_checks_a_biscuit_library_writes_still_pass_and_still_narrow() {
    let issuer = Issuer::new();
    // No audience, so that a service check narrows it.
    let m = issuer.mint(&cap("orders:read", "order:*", None, None));
    let at = |op: &str, r: &str, secs_after: i64| {
        req(op, r, Some(SERVICE), t0() + secs(secs_after), None)
    };
    // (block, a request it still allows, a request the token allowed and
    // the block refuses); `None` when the block leaves nothing allowed.
    let cases: Vec<(BlockBuilder, Option<Request>, Request)> = vec![
        (
            block("check if resource({r});", &[("r", s("order:42"))]),
            Some(at("orders:read", "order:42", 1)),
            at("orders:read", "order:43", 1),
        ),
        (
            block("check if operation({o});", &[("o", s("orders:read"))]),
            Some(at("orders:read", "order:42", 1)),
            at("orders:read", "order:42", 301),
        ),
        (
            block("check if operation({o});", &[("o", s("orders:write"))]),
            None,
            at("orders:read", "order:42", 1),
        ),
        (
            block(
                "check if time($t), $t <= {d};",
                &[("d", date(t0() + secs(60)))],
            ),
            Some(at("orders:read", "order:42", 60)),
            at("orders:read", "order:42", 61),
        ),
        (
            block("check if service($s), $s == {a};", &[("a", s(SERVICE))]),
            Some(at("orders:read", "order:42", 1)),
            req("orders:read", "order:42", Some(OTHER_SERVICE), t0(), None),
        ),
        (
            block(
                "check if resource($r), $r.starts_with({p});",
                &[("p", s("order:4"))],
            ),
            Some(at("orders:read", "order:42", 1)),
            at("orders:read", "order:52", 1),
        ),
        (
            block(
                "check if operation($op), resource($r), $op == {o}, $r == {r};",
                &[("o", s("orders:read")), ("r", s("order:42"))],
            ),
            Some(at("orders:read", "order:42", 1)),
            at("orders:read", "order:7", 1),
        ),
    ];
    for (b, allowed, denied) in cases {
        let t = append_first_party(&m.token, b);
        if let Some(allowed) = allowed {
            assert!(issuer.check(&t, &allowed).is_ok(), "{allowed:?}");
        }
        // Control: what the block refuses, the minted token allowed (but
        // for the request past the token's own expiry).
        if denied.now < m.expires_at {
            assert!(issuer.check(&m.token, &denied).is_ok(), "{denied:?}");
        }
        let reason = issuer.denied(&t, &denied);
        assert_ne!(reason, Reason::LimitsExceeded);
    }
}

#[test]
fn an_expired_token_is_refused_from_its_claims_before_any_datalog_runs() {
    let issuer = Issuer::new();
    let m = bearer(&issuer);
    // So tight that any Datalog evaluation fails with limits_exceeded: an
    // `expired` answer can only come from the claims.
    let tight = Limits {
        max_time: Duration::from_nanos(1),
        ..limits()
    };
    let late = req(
        "docs:read",
        "docs/a/1",
        Some(SERVICE),
        m.expires_at + secs(1),
        None,
    );
    let d = authorize(&m.token, &issuer.keys, &late, |_| false, &tight).unwrap_err();
    assert_eq!(d.reason, Reason::Expired, "{d}");
    // Also the expiry an attenuation added.
    let n = Narrowing {
        expires_at: Some(t0() + secs(60)),
        ..Default::default()
    };
    let t = attenuate(&m.token, &n, &issuer.limits).unwrap();
    let late = req(
        "docs:read",
        "docs/a/1",
        Some(SERVICE),
        t0() + secs(61),
        None,
    );
    let d = authorize(&t, &issuer.keys, &late, |_| false, &tight).unwrap_err();
    assert_eq!(d.reason, Reason::Expired, "{d}");
    // Control: in time, the tight limit is what refuses.
    let early = req(
        "docs:read",
        "docs/a/1",
        Some(SERVICE),
        t0() + secs(59),
        None,
    );
    let d = authorize(&t, &issuer.keys, &early, |_| false, &tight).unwrap_err();
    assert_eq!(d.reason, Reason::LimitsExceeded, "{d}");
}

#[test]
fn the_grant_reports_the_earliest_expiry_of_the_whole_chain() {
    let issuer = Issuer::new();
    let agent = keypair(10);
    let sub = keypair(11);
    let m = issuer.mint(&cap("docs:read", "docs/*", Some(SERVICE), Some(&agent)));
    let at = |n: i64, k: &KeyPair| {
        req(
            "docs:read",
            "docs/a/1",
            Some(SERVICE),
            t0() + secs(n),
            Some(k),
        )
    };
    let g = issuer.check(&m.token, &at(1, &agent)).unwrap();
    assert_eq!(g.expires_at, m.expires_at);

    // Attenuated to an earlier expiry.
    let earlier = Narrowing {
        expires_at: Some(t0() + secs(120)),
        ..Default::default()
    };
    let t = attenuate(&m.token, &earlier, &issuer.limits).unwrap();
    let g = issuer.check(&t, &at(1, &agent)).unwrap();
    assert_eq!(g.expires_at, t0() + secs(120));
    let v = Verified::from_bytes(&bytes_of(&t), &issuer.keys, &issuer.limits).unwrap();
    assert_eq!(v.expires_at(), t0() + secs(120));
    assert_eq!(v.chain().claims.expires_at, m.expires_at);

    // Delegated with a still earlier one.
    let sooner = Narrowing {
        expires_at: Some(t0() + secs(90)),
        ..Default::default()
    };
    let t = delegate(
        &t,
        &agent,
        &AgentId::parse("agent://acme/sub").unwrap(),
        &sub.public(),
        &sooner,
        &issuer.limits,
    )
    .unwrap();
    assert_eq!(
        issuer.check(&t, &at(1, &sub)).unwrap().expires_at,
        t0() + secs(90)
    );

    // A strict bound written by another library: the last allowed second.
    let strict = block(
        "check if time($t), $t < {d};",
        &[("d", date(t0() + secs(30)))],
    );
    let t2 = append_first_party(&t, strict);
    assert_eq!(
        issuer.check(&t2, &at(29, &sub)).unwrap().expires_at,
        t0() + secs(29)
    );
    assert_eq!(issuer.denied(&t2, &at(30, &sub)), Reason::Expired);

    // A later expiry in a later block changes nothing.
    let later = block(
        "check if time($t), $t <= {d};",
        &[("d", date(t0() + secs(3600)))],
    );
    let t3 = append_first_party(&t, later);
    assert_eq!(
        issuer.check(&t3, &at(1, &sub)).unwrap().expires_at,
        t0() + secs(90)
    );
}

#[test]
fn delegate_refuses_a_reserved_tessera_agent_id() {
    let issuer = Issuer::new();
    let agent = keypair(10);
    let sub = keypair(11);
    let m = issuer.mint(&cap("docs:read", "docs/*", None, Some(&agent)));
    for reserved in [
        "agent://tessera/operator",
        "agent://Tessera/x",
        "AGENT://TESSERA/feed",
    ] {
        let Ok(to) = AgentId::parse(reserved) else {
            continue;
        };
        let r = delegate(
            &m.token,
            &agent,
            &to,
            &sub.public(),
            &Narrowing::default(),
            &issuer.limits,
        );
        assert!(
            matches!(r, Err(TokenError::Input(InvalidInput::AgentId(_)))),
            "{reserved}: {r:?}"
        );
    }
    // Control: an ordinary sub-agent id is accepted.
    let to = AgentId::parse("agent://acme/tessera/x").unwrap();
    assert!(delegate(
        &m.token,
        &agent,
        &to,
        &sub.public(),
        &Narrowing::default(),
        &issuer.limits
    )
    .is_ok());
}

#[test]
fn a_delegation_block_naming_a_reserved_tessera_agent_id_is_an_invalid_delegation() {
    let issuer = Issuer::new();
    let agent = keypair(10);
    let sub = keypair(11);
    let m = issuer.mint(&cap("docs:read", "docs/*", None, Some(&agent)));
    let r = req("docs:read", "docs/a/1", None, t0(), Some(&sub));
    let ok = append_third_party(&m.token, &agent, delegated_to("agent://acme/sub", &sub));
    assert!(issuer.check(&ok, &r).is_ok());
    for reserved in ["agent://tessera/operator", "agent://Tessera/operator"] {
        let forged = append_third_party(&m.token, &agent, delegated_to(reserved, &sub));
        let d = issuer.check(&forged, &r).unwrap_err();
        assert_eq!(d.reason, Reason::InvalidDelegation, "{reserved}: {d}");
        assert!(d.detail.contains("reserved"), "{d}");
    }
}
