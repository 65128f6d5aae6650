//! Amount caps (issue 13, point 7): a token caps one operation's amount in
//! one currency; later blocks can only lower the cap; the amount is a
//! request fact that only the verifier supplies.

use biscuit_auth::builder;
use tessera::token::*;

use super::raw::{append_first_party, append_third_party, block, delegated_to, s};
use super::support::*;

fn eur(text: &str) -> Amount {
    Amount::parse(text).unwrap()
}

fn pay(amount: Option<&str>) -> Request {
    Request {
        amount: amount.map(|a| Amount::parse(a).unwrap()),
        ..req("pay", "order:42", Some(SERVICE), t0(), None)
    }
}

fn capped(issuer: &Issuer, cap_text: &str) -> String {
    let m = issuer.mint(&cap("pay", "order:*", Some(SERVICE), None));
    let n = Narrowing {
        max_amount: Some(eur(cap_text)),
        ..Narrowing::default()
    };
    attenuate(&m.token, &n, &issuer.limits).unwrap()
}

#[test]
fn a_token_capped_at_40_eur_allows_40_eur_and_refuses_one_cent_more_another_currency_or_none() {
    let issuer = Issuer::new();
    let t = capped(&issuer, "40.00EUR");
    assert!(issuer.check(&t, &pay(Some("40.00EUR"))).is_ok());
    assert!(issuer.check(&t, &pay(Some("0EUR"))).is_ok());
    for refused in [Some("40.01EUR"), Some("40USD"), Some("40.00CHF"), None] {
        assert_eq!(
            issuer.denied(&t, &pay(refused)),
            Reason::OutOfScope,
            "{refused:?}"
        );
    }
}

#[test]
fn a_token_without_a_cap_needs_no_amount_and_ignores_one() {
    let issuer = Issuer::new();
    let m = issuer.mint(&cap("pay", "order:*", Some(SERVICE), None));
    assert!(issuer.check(&m.token, &pay(None)).is_ok());
    assert!(issuer.check(&m.token, &pay(Some("4000.00EUR"))).is_ok());
}

#[test]
fn every_cap_of_the_chain_holds_so_a_later_block_can_only_lower_it() {
    let issuer = Issuer::new();
    let t = capped(&issuer, "40.00EUR");
    let raise = Narrowing {
        max_amount: Some(eur("50.00EUR")),
        ..Narrowing::default()
    };
    let raised = attenuate(&t, &raise, &issuer.limits).unwrap();
    assert_eq!(
        issuer.denied(&raised, &pay(Some("45.00EUR"))),
        Reason::OutOfScope
    );
    assert!(issuer.check(&raised, &pay(Some("40.00EUR"))).is_ok());
    let lower = Narrowing {
        max_amount: Some(eur("12.50EUR")),
        ..Narrowing::default()
    };
    let lowered = attenuate(&raised, &lower, &issuer.limits).unwrap();
    assert!(issuer.check(&lowered, &pay(Some("12.50EUR"))).is_ok());
    assert_eq!(
        issuer.denied(&lowered, &pay(Some("12.51EUR"))),
        Reason::OutOfScope
    );
    // A cap in another currency beside a EUR cap leaves nothing payable.
    let usd = Narrowing {
        max_amount: Some(eur("100USD")),
        ..Narrowing::default()
    };
    let both = attenuate(&t, &usd, &issuer.limits).unwrap();
    for a in ["1.00EUR", "1.00USD"] {
        assert_eq!(
            issuer.denied(&both, &pay(Some(a))),
            Reason::OutOfScope,
            "{a}"
        );
    }
}

#[test]
fn a_delegation_caps_the_sub_agent_and_the_parent_cap_still_holds() {
    let issuer = Issuer::new();
    let agent = keypair(20);
    let sub = keypair(21);
    let m = issuer.mint(&cap("pay", "order:*", Some(SERVICE), Some(&agent)));
    let parent = attenuate(
        &m.token,
        &Narrowing {
            max_amount: Some(eur("40.00EUR")),
            ..Narrowing::default()
        },
        &issuer.limits,
    )
    .unwrap();
    let handed = delegate(
        &parent,
        &agent,
        &AgentId::parse("agent://acme/sub").unwrap(),
        &sub.public(),
        &Narrowing {
            max_amount: Some(eur("100.00EUR")),
            ..Narrowing::default()
        },
        &issuer.limits,
    )
    .unwrap();
    let sub_pays = |a: &str| Request {
        proven_key: Some(sub.public()),
        ..pay(Some(a))
    };
    assert!(issuer.check(&handed, &sub_pays("40.00EUR")).is_ok());
    assert_eq!(
        issuer.denied(&handed, &sub_pays("40.01EUR")),
        Reason::OutOfScope
    );
}

#[test]
fn a_block_cannot_supply_the_amount_itself() {
    let issuer = Issuer::new();
    let t = capped(&issuer, "40.00EUR");
    // A fact, or a rule deriving one, in a holder's first-party block.
    for b in [
        block("amount({c}, 0);", &[("c", s("EUR"))]),
        block("amount({c}, 0) <- operation($op);", &[("c", s("EUR"))]),
    ] {
        let forged = append_first_party(&t, b);
        for a in [None, Some("400.00EUR")] {
            assert_eq!(
                issuer.denied(&forged, &pay(a)),
                Reason::LimitsExceeded,
                "{a:?}"
            );
        }
    }
    // Nor in a delegation block beside its `delegated_to`.
    let agent = keypair(22);
    let m = issuer.mint(&cap("pay", "order:*", Some(SERVICE), Some(&agent)));
    let sub = keypair(23);
    let b = delegated_to("agent://acme/sub", &sub)
        .code_with_params(
            "amount({c}, 0);",
            [("c".to_owned(), s("EUR"))].into(),
            Default::default(),
        )
        .unwrap();
    let forged = append_third_party(&m.token, &agent, b);
    let sub_pays = Request {
        proven_key: Some(sub.public()),
        ..pay(None)
    };
    assert_eq!(issuer.denied(&forged, &sub_pays), Reason::LimitsExceeded);
}

#[test]
fn a_cap_written_by_hand_in_another_shape_does_not_widen() {
    // A holder's own, higher check beside Tessera's cap: the lower one holds.
    let issuer = Issuer::new();
    let t = capped(&issuer, "40.00EUR");
    let higher = block(
        "check if amount($c, $v), $c == {c}, $v <= {v};",
        &[("c", s("EUR")), ("v", builder::int(i64::MAX))],
    );
    let t2 = append_first_party(&t, higher);
    assert!(issuer.check(&t2, &pay(Some("40.00EUR"))).is_ok());
    assert_eq!(
        issuer.denied(&t2, &pay(Some("40.01EUR"))),
        Reason::OutOfScope
    );
}

#[test]
fn the_cap_is_one_parameterised_check_in_minor_units() {
    let issuer = Issuer::new();
    let t = capped(&issuer, "12.50EUR");
    let i = inspect(&t, Some(&issuer.keys), &issuer.limits).unwrap();
    let text = &i.blocks.last().unwrap().datalog;
    assert!(
        text.contains(r#"check if amount($c, $v), $c == "EUR", $v <= 1250"#),
        "{text}"
    );
}

#[test]
fn an_amount_cap_does_not_change_a_token_without_one() {
    // The same narrowing with and without `max_amount: None` writes the
    // same bytes (the golden fixtures cover the tokens themselves).
    let issuer = Issuer::new();
    let m = issuer.mint(&cap("pay", "order:*", Some(SERVICE), None));
    let n = Narrowing {
        resource: Some(ResourcePattern::parse("order:4*").unwrap()),
        max_amount: None,
        ..Narrowing::default()
    };
    let seeded = |seed| {
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
        attenuate_with_rng(&m.token, &n, &issuer.limits, &mut rng).unwrap()
    };
    assert_eq!(seeded(7), seeded(7));
    assert!(issuer.check(&seeded(7), &pay(None)).is_ok());
}

#[test]
fn a_bad_amount_is_a_typed_one_line_error() {
    for (text, want) in [
        ("12.501EUR", "minor-unit digit"),
        ("-1.00EUR", "negative"),
        ("92233720368547758.08EUR", "too large"),
        ("1.00XXX", "unknown currency XXX"),
        ("1.00eur", "three uppercase letters"),
    ] {
        let e = Amount::parse(text).unwrap_err().to_string();
        assert!(e.contains(want), "{text}: {e}");
        assert!(!e.contains('\n'));
    }
}

/// The command line: `--max-amount` on attenuate and delegate, `--amount`
/// on verify, and a bad amount as a one-line failure.
#[test]
fn the_cli_caps_and_checks_amounts() {
    use std::process::{Command, Output};
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| -> Output {
        Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    let ok = |args: &[&str]| -> String {
        let out = run(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {err}");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let root = ok(&["keygen", "--out", "root.key"]);
    let agent = ok(&["keygen", "--out", "agent.key"]);
    let sub = ok(&["keygen", "--out", "sub.key"]);
    let token = ok(&[
        "token",
        "mint",
        "--root-key",
        "root.key",
        "--agent",
        "agent://acme/a",
        "--action",
        "pay",
        "--resource",
        "order:*",
        "--bind-key",
        &agent,
    ]);
    let capped = ok(&["token", "attenuate", &token, "--max-amount", "40.00EUR"]);
    let handed = ok(&[
        "token",
        "delegate",
        &capped,
        "--holder-key",
        "agent.key",
        "--to",
        "agent://acme/sub",
        "--to-key",
        &sub,
        "--max-amount",
        "12.50EUR",
    ]);
    let verify = |amount: Option<&str>| {
        let mut args = vec![
            "token",
            "verify",
            &handed,
            "--keys",
            &root,
            "--no-revocation-check",
            "--operation",
            "pay",
            "--resource",
            "order:42",
            "--holder-key",
            "sub.key",
        ];
        if let Some(a) = amount {
            args.extend(["--amount", a]);
        }
        run(&args)
    };
    let allowed = verify(Some("12.50EUR"));
    assert!(
        allowed.status.success(),
        "{}",
        String::from_utf8_lossy(&allowed.stderr)
    );
    for denied in [Some("12.51EUR"), Some("12.50USD"), None] {
        let out = verify(denied);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{denied:?}: {err}");
        assert!(err.contains("out_of_scope"), "{denied:?}: {err}");
    }
    for (bad, needle) in [
        ("12.501EUR", "minor-unit"),
        ("-5EUR", "negative"),
        ("5XYZ", "unknown currency"),
    ] {
        let flag = format!("--max-amount={bad}");
        let out = run(&["token", "attenuate", &token, &flag]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{bad}: {err}");
        assert!(
            err.contains(needle) && !err.contains("panicked"),
            "{bad}: {err}"
        );
    }
}
