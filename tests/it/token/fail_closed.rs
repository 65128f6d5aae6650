//! Fail closed: the token carries its own checks, so a verifier that forgets
//! a fact denies even with an `allow if true` policy.

use biscuit_auth::error::{Logic, Token as BiscuitError};
use tessera::token::*;

use super::raw::{allow_if_true, VerifierFact, ALL_FACTS};
use super::support::*;

fn without(missing: VerifierFact) -> Vec<VerifierFact> {
    ALL_FACTS
        .iter()
        .copied()
        .filter(|f| *f != missing)
        .collect()
}

fn is_failed_check(r: &Result<usize, BiscuitError>) -> bool {
    matches!(
        r,
        Err(BiscuitError::FailedLogic(Logic::Unauthorized { checks, .. })) if !checks.is_empty()
    )
}

#[test]
fn allow_if_true_verifier_denies_a_bound_audience_token_when_any_one_fact_is_missing() {
    let issuer = Issuer::new();
    let holder = keypair(10);
    let m = issuer.mint(&cap("docs:read", "docs/a/*", Some(SERVICE), Some(&holder)));
    let run = |facts: &[VerifierFact]| {
        allow_if_true(
            &m.token,
            &issuer.keys,
            facts,
            "docs:read",
            "docs/a/1",
            SERVICE,
            t0(),
        )
    };
    assert_eq!(
        run(&ALL_FACTS).ok(),
        Some(0),
        "all facts present must allow"
    );
    for missing in ALL_FACTS {
        let r = run(&without(missing));
        assert!(is_failed_check(&r), "without {missing:?}: {r:?}");
    }
}

#[test]
fn allow_if_true_verifier_still_denies_wrong_values() {
    let issuer = Issuer::new();
    let holder = keypair(10);
    let m = issuer.mint(&cap("docs:read", "docs/a/*", Some(SERVICE), Some(&holder)));
    for (op, res, svc, now) in [
        ("docs:write", "docs/a/1", SERVICE, t0()),
        ("docs:read", "docs/b/1", SERVICE, t0()),
        ("docs:read", "docs/a/1", OTHER_SERVICE, t0()),
        ("docs:read", "docs/a/1", SERVICE, t0() + secs(301)),
    ] {
        let r = allow_if_true(&m.token, &issuer.keys, &ALL_FACTS, op, res, svc, now);
        assert!(is_failed_check(&r), "{op} {res} {svc} {now}: {r:?}");
    }
}

#[test]
fn allow_if_true_verifier_denies_a_bearer_token_without_operation_or_resource() {
    let issuer = Issuer::new();
    let m = issuer.mint(&cap("docs:read", "docs/a/1", None, None));
    let base = [
        VerifierFact::Time,
        VerifierFact::Operation,
        VerifierFact::Resource,
    ];
    let run = |facts: &[VerifierFact]| {
        allow_if_true(
            &m.token,
            &issuer.keys,
            facts,
            "docs:read",
            "docs/a/1",
            SERVICE,
            t0(),
        )
    };
    // A bearer token without an audience needs neither service nor holder.
    assert_eq!(run(&base).ok(), Some(0));
    for missing in base {
        let facts: Vec<_> = base.iter().copied().filter(|f| *f != missing).collect();
        let r = run(&facts);
        assert!(is_failed_check(&r), "without {missing:?}: {r:?}");
    }
}

#[test]
fn attenuation_checks_also_fail_closed() {
    let issuer = Issuer::new();
    let m = issuer.mint(&cap("docs:read", "docs/*", None, None));
    let n = Narrowing {
        audience: Some(Audience::parse(SERVICE).unwrap()),
        expires_at: Some(t0() + secs(60)),
        ..Default::default()
    };
    let t = attenuate(&m.token, &n, &issuer.limits).unwrap();
    let run = |facts: &[VerifierFact], now| {
        allow_if_true(
            &t,
            &issuer.keys,
            facts,
            "docs:read",
            "docs/a/1",
            SERVICE,
            now,
        )
    };
    let base = [
        VerifierFact::Time,
        VerifierFact::Operation,
        VerifierFact::Resource,
        VerifierFact::Service,
    ];
    assert_eq!(run(&base, t0()).ok(), Some(0));
    assert!(is_failed_check(&run(&base, t0() + secs(61))));
    let no_service = [
        VerifierFact::Time,
        VerifierFact::Operation,
        VerifierFact::Resource,
    ];
    assert!(is_failed_check(&run(&no_service, t0())));
}

#[test]
fn request_without_a_service_is_refused_for_a_token_with_an_audience() {
    let issuer = Issuer::new();
    let m = issuer.mint(&cap("docs:read", "docs/a/*", Some(SERVICE), None));
    let r = |svc: Option<&str>| req("docs:read", "docs/a/1", svc, t0(), None);
    assert!(issuer.check(&m.token, &r(Some(SERVICE))).is_ok());
    assert_eq!(issuer.denied(&m.token, &r(None)), Reason::WrongAudience);
    assert_eq!(
        issuer.denied(&m.token, &r(Some(OTHER_SERVICE))),
        Reason::WrongAudience
    );
}
