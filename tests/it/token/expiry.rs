//! Expiry at the boundary, with the time as an argument.

use chrono::Duration;
use tessera::token::*;

use super::raw::{allow_if_true, VerifierFact};
use super::support::*;

#[test]
fn allowed_at_expiry_and_one_second_before_and_expired_one_second_after() {
    let issuer = Issuer::new();
    let holder = keypair(10);
    for c in [
        cap("docs:read", "docs/a/1", None, None),
        cap("docs:read", "docs/*", Some(SERVICE), Some(&holder)),
    ] {
        let m = issuer.mint(&c);
        assert_eq!(m.issued_at, t0());
        assert_eq!(m.expires_at, t0() + secs(300));
        let at = |t| req("docs:read", "docs/a/1", Some(SERVICE), t, Some(&holder));
        assert!(issuer.check(&m.token, &at(m.expires_at - secs(1))).is_ok());
        let g = issuer.check(&m.token, &at(m.expires_at)).unwrap();
        assert_eq!(g.expires_at, m.expires_at);
        assert_eq!(
            issuer.denied(&m.token, &at(m.expires_at + secs(1))),
            Reason::Expired
        );
        assert_eq!(
            issuer.denied(&m.token, &at(m.expires_at + secs(3600))),
            Reason::Expired
        );
    }
}

#[test]
fn sub_second_mint_time_is_truncated_so_the_lifetime_is_whole_seconds() {
    let issuer = Issuer::new();
    let c = cap("docs:read", "docs/a/1", None, None);
    let m = mint(&c, &issuer.root, t0() + Duration::milliseconds(700)).unwrap();
    assert_eq!(m.issued_at, t0());
    assert_eq!(m.expires_at, t0() + secs(300));
}

#[test]
fn a_fraction_of_a_second_past_expiry_is_expired() {
    let issuer = Issuer::new();
    let m = issuer.mint(&cap("docs:read", "docs/a/1", None, None));
    let r = req(
        "docs:read",
        "docs/a/1",
        None,
        m.expires_at + Duration::milliseconds(500),
        None,
    );
    assert_eq!(issuer.denied(&m.token, &r), Reason::Expired);
}

#[test]
fn attenuated_and_delegated_expiry_is_enforced_at_its_own_boundary() {
    let issuer = Issuer::new();
    let agent = keypair(10);
    let sub = keypair(11);
    let m = issuer.mint(&cap("docs:read", "docs/*", None, Some(&agent)));
    let n = Narrowing {
        expires_at: Some(t0() + secs(60)),
        ..Default::default()
    };
    let attenuated = attenuate(&m.token, &n, &issuer.limits).unwrap();
    let delegated = delegate(
        &m.token,
        &agent,
        &agent_id("agent://acme/sub"),
        &sub.public(),
        &n,
        &issuer.limits,
    )
    .unwrap();
    for (token, holder) in [(&attenuated, &agent), (&delegated, &sub)] {
        let at = |t| req("docs:read", "docs/a/1", None, t, Some(holder));
        assert!(issuer.check(token, &at(t0() + secs(59))).is_ok());
        assert!(issuer.check(token, &at(t0() + secs(60))).is_ok());
        assert_eq!(issuer.denied(token, &at(t0() + secs(61))), Reason::Expired);
    }
}

fn agent_id(s: &str) -> AgentId {
    AgentId::parse(s).unwrap()
}

#[test]
fn missing_time_fact_is_denied_by_the_tokens_own_check() {
    let issuer = Issuer::new();
    let holder = keypair(10);
    let m = issuer.mint(&cap("docs:read", "docs/*", Some(SERVICE), Some(&holder)));
    let no_time = [
        VerifierFact::Operation,
        VerifierFact::Resource,
        VerifierFact::Service,
        VerifierFact::HolderProven,
    ];
    let r = allow_if_true(
        &m.token,
        &issuer.keys,
        &no_time,
        "docs:read",
        "docs/a/1",
        SERVICE,
        t0(),
    );
    let err = r.expect_err("a verifier without a time fact must be denied");
    assert!(err.to_string().contains("failed"), "{err}");
    // Control: the same authorizer with the time fact allows.
    let mut with_time = no_time.to_vec();
    with_time.push(VerifierFact::Time);
    assert!(allow_if_true(
        &m.token,
        &issuer.keys,
        &with_time,
        "docs:read",
        "docs/a/1",
        SERVICE,
        t0()
    )
    .is_ok());
}
