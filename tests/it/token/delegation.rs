//! Delegation: the holder chain, proof of possession and revocation by block.

use biscuit_auth::KeyPair;
use tessera::token::*;

use super::raw::{append_third_party, block, delegated_to, s};
use super::support::*;

struct Family {
    issuer: Issuer,
    agent: KeyPair,
    parent: Minted,
}

fn family() -> Family {
    let issuer = Issuer::new();
    let agent = keypair(10);
    let parent = issuer.mint(&cap("docs:read", "docs/*", Some(SERVICE), Some(&agent)));
    Family {
        issuer,
        agent,
        parent,
    }
}

impl Family {
    fn hand(&self, token: &str, from: &KeyPair, to: &str, to_key: &KeyPair) -> String {
        delegate(
            token,
            from,
            &AgentId::parse(to).unwrap(),
            &to_key.public(),
            &Narrowing::default(),
            &self.issuer.limits,
        )
        .unwrap()
    }
}

fn ok_req(proven: &KeyPair) -> Request {
    req("docs:read", "docs/a/1", Some(SERVICE), t0(), Some(proven))
}

fn block_revocation_id(token: &str, index: usize) -> String {
    inspect(token, None, &Limits::default()).unwrap().blocks[index]
        .revocation_id
        .clone()
}

#[test]
fn grant_names_every_agent_in_the_chain_in_order() {
    let f = family();
    let sub = keypair(11);
    let subsub = keypair(12);
    let t2 = f.hand(&f.parent.token, &f.agent, "agent://acme/sub", &sub);
    let t3 = f.hand(&t2, &sub, "agent://acme/subsub", &subsub);
    let g = f.issuer.check(&t3, &ok_req(&subsub)).unwrap();
    let names: Vec<&str> = g.chain.iter().map(AgentId::as_str).collect();
    assert_eq!(
        names,
        [
            "agent://acme/main",
            "agent://acme/sub",
            "agent://acme/subsub"
        ]
    );
    assert_eq!(g.acting().unwrap().as_str(), "agent://acme/subsub");
    assert_eq!(g.token_id, f.parent.token_id);
    let i = inspect(&t3, Some(&f.issuer.keys), &f.issuer.limits).unwrap();
    let rids: Vec<String> = i.blocks.iter().map(|b| b.revocation_id.clone()).collect();
    assert_eq!(g.revocation_ids, rids);
    assert_eq!(g.revocation_ids[0], f.parent.revocation_id);
    assert_eq!(i.holder, Some(subsub.public().to_string()));
    assert_eq!(
        i.blocks.iter().map(|b| b.kind).collect::<Vec<_>>(),
        [
            BlockKind::Authority,
            BlockKind::Delegation,
            BlockKind::Delegation
        ]
    );
    assert_eq!(i.blocks[2].signed_by, Some(sub.public().to_string()));
}

#[test]
fn delegation_block_signed_by_a_key_other_than_the_holder_is_invalid() {
    let f = family();
    let thief = keypair(20);
    // The thief names itself as the next holder and signs with its own key.
    let forged = append_third_party(
        &f.parent.token,
        &thief,
        delegated_to("agent://acme/thief", &thief),
    );
    assert_eq!(
        f.issuer.denied(&forged, &ok_req(&thief)),
        Reason::InvalidDelegation
    );
    // A former holder cannot hand the token on once it has passed to a sub-agent.
    let sub = keypair(11);
    let t2 = f.hand(&f.parent.token, &f.agent, "agent://acme/sub", &sub);
    let forged = append_third_party(&t2, &f.agent, delegated_to("agent://acme/thief", &thief));
    assert_eq!(
        f.issuer.denied(&forged, &ok_req(&thief)),
        Reason::InvalidDelegation
    );
    // Tessera's own delegate refuses it up front.
    let r = delegate(
        &t2,
        &f.agent,
        &AgentId::parse("agent://acme/thief").unwrap(),
        &thief.public(),
        &Narrowing::default(),
        &f.issuer.limits,
    );
    assert!(
        matches!(r, Err(TokenError::NotHolder { ref holder }) if *holder == sub.public().to_string()),
        "{r:?}"
    );
}

#[test]
fn delegation_block_naming_no_or_two_next_holders_is_invalid() {
    let f = family();
    let a = keypair(21);
    let b = keypair(22);
    let none = append_third_party(&f.parent.token, &f.agent, block("check if true;", &[]));
    assert_eq!(
        f.issuer.denied(&none, &ok_req(&f.agent)),
        Reason::InvalidDelegation
    );
    let two = append_third_party(
        &f.parent.token,
        &f.agent,
        block(
            "delegated_to({a}, {ka}); delegated_to({b}, {kb});",
            &[
                ("a", s("agent://acme/a")),
                ("ka", s(&a.public().to_string())),
                ("b", s("agent://acme/b")),
                ("kb", s(&b.public().to_string())),
            ],
        ),
    );
    for k in [&a, &b, &f.agent] {
        assert_eq!(f.issuer.denied(&two, &ok_req(k)), Reason::InvalidDelegation);
    }
    let bad_key = append_third_party(
        &f.parent.token,
        &f.agent,
        block(
            "delegated_to({a}, {k});",
            &[("a", s("agent://acme/a")), ("k", s("ed25519/not-a-key"))],
        ),
    );
    assert_eq!(
        f.issuer.denied(&bad_key, &ok_req(&a)),
        Reason::InvalidDelegation
    );
}

#[test]
fn third_party_block_on_a_bearer_token_is_an_invalid_delegation() {
    let issuer = Issuer::new();
    let m = issuer.mint(&cap("docs:read", "docs/*", None, None));
    let x = keypair(23);
    let t = append_third_party(&m.token, &x, delegated_to("agent://acme/x", &x));
    let r = req("docs:read", "docs/a/1", None, t0(), Some(&x));
    assert_eq!(issuer.denied(&t, &r), Reason::InvalidDelegation);
}

#[test]
fn proof_from_a_key_other_than_the_final_holder_is_not_proven() {
    let f = family();
    let sub = keypair(11);
    let t2 = f.hand(&f.parent.token, &f.agent, "agent://acme/sub", &sub);
    assert!(f.issuer.check(&t2, &ok_req(&sub)).is_ok());
    for other in [&f.agent, &keypair(30), &f.issuer.root.keypair] {
        assert_eq!(
            f.issuer.denied(&t2, &ok_req(other)),
            Reason::HolderNotProven
        );
    }
    let unproven = req("docs:read", "docs/a/1", Some(SERVICE), t0(), None);
    assert_eq!(f.issuer.denied(&t2, &unproven), Reason::HolderNotProven);
    // And on the undelegated token, only the agent's key proves.
    assert!(f.issuer.check(&f.parent.token, &ok_req(&f.agent)).is_ok());
    assert_eq!(
        f.issuer.denied(&f.parent.token, &ok_req(&sub)),
        Reason::HolderNotProven
    );
}

#[test]
fn revoking_a_delegation_block_denies_that_branch_and_not_its_sibling() {
    let f = family();
    let (ka, kb) = (keypair(11), keypair(12));
    let a = f.hand(&f.parent.token, &f.agent, "agent://acme/a", &ka);
    let b = f.hand(&f.parent.token, &f.agent, "agent://acme/b", &kb);
    let a_deeper = attenuate(
        &a,
        &Narrowing {
            resource: Some(ResourcePattern::parse("docs/a/*").unwrap()),
            ..Default::default()
        },
        &f.issuer.limits,
    )
    .unwrap();
    let revoked = block_revocation_id(&a, 1);
    assert_ne!(revoked, block_revocation_id(&b, 1));
    let is_revoked = |id: &[u8]| hex::encode(id) == revoked;
    let check = |t: &str, k: &KeyPair| {
        authorize(t, &f.issuer.keys, &ok_req(k), is_revoked, &f.issuer.limits)
    };
    assert_eq!(check(&a, &ka).unwrap_err().reason, Reason::Revoked);
    assert_eq!(check(&a_deeper, &ka).unwrap_err().reason, Reason::Revoked);
    assert!(check(&b, &kb).is_ok(), "the sibling branch stays valid");
    assert!(
        check(&f.parent.token, &f.agent).is_ok(),
        "the parent stays valid"
    );
}

#[test]
fn revoking_the_authority_block_denies_every_descendant() {
    let f = family();
    let (ka, kb, kc) = (keypair(11), keypair(12), keypair(13));
    let a = f.hand(&f.parent.token, &f.agent, "agent://acme/a", &ka);
    let b = f.hand(&f.parent.token, &f.agent, "agent://acme/b", &kb);
    let c = f.hand(&b, &kb, "agent://acme/c", &kc);
    let attenuated = attenuate(
        &f.parent.token,
        &Narrowing {
            resource: Some(ResourcePattern::parse("docs/a/1").unwrap()),
            ..Default::default()
        },
        &f.issuer.limits,
    )
    .unwrap();
    let revoked = f.parent.revocation_id.clone();
    assert_eq!(revoked, block_revocation_id(&f.parent.token, 0));
    let is_revoked = |id: &[u8]| hex::encode(id) == revoked;
    for (t, k) in [
        (&f.parent.token, &f.agent),
        (&a, &ka),
        (&b, &kb),
        (&c, &kc),
        (&attenuated, &f.agent),
    ] {
        assert!(
            f.issuer.check(t, &ok_req(k)).is_ok(),
            "valid before revocation"
        );
        let d = authorize(t, &f.issuer.keys, &ok_req(k), is_revoked, &f.issuer.limits).unwrap_err();
        assert_eq!(d.reason, Reason::Revoked, "{d}");
    }
}

#[test]
fn delegate_with_a_key_that_is_not_the_holder_fails_with_not_holder() {
    let f = family();
    let stranger = keypair(40);
    let r = delegate(
        &f.parent.token,
        &stranger,
        &AgentId::parse("agent://acme/sub").unwrap(),
        &keypair(11).public(),
        &Narrowing::default(),
        &f.issuer.limits,
    );
    assert_eq!(
        r,
        Err(TokenError::NotHolder {
            holder: f.agent.public().to_string()
        })
    );
}

#[test]
fn delegate_on_a_bearer_token_fails_with_not_bound() {
    let issuer = Issuer::new();
    let m = issuer.mint(&cap("docs:read", "docs/*", None, None));
    let k = keypair(10);
    let r = delegate(
        &m.token,
        &k,
        &AgentId::parse("agent://acme/sub").unwrap(),
        &keypair(11).public(),
        &Narrowing::default(),
        &issuer.limits,
    );
    assert_eq!(r, Err(TokenError::NotBound));
}

#[test]
fn attenuate_or_delegate_with_a_narrowing_outside_the_token_is_not_narrower() {
    let f = family();
    let n = |action: Option<&str>, resource: Option<&str>, exp: Option<i64>, aud: Option<&str>| {
        Narrowing {
            max_amount: None,
            budget: None,
            action: action.map(|a| Action::parse(a).unwrap()),
            resource: resource.map(|r| ResourcePattern::parse(r).unwrap()),
            expires_at: exp.map(|e| t0() + secs(e)),
            audience: aud.map(|a| Audience::parse(a).unwrap()),
        }
    };
    let outside = [
        n(Some("docs:write"), None, None, None),
        n(None, Some("files/*"), None, None),
        n(None, Some("doc*"), None, None),
        n(None, Some("other"), None, None),
        n(None, None, Some(301), None),
        n(None, None, None, Some(OTHER_SERVICE)),
        n(
            Some("docs:read"),
            Some("docs/a/*"),
            Some(60),
            Some(OTHER_SERVICE),
        ),
    ];
    for bad in &outside {
        let r = attenuate(&f.parent.token, bad, &f.issuer.limits);
        assert!(
            matches!(r, Err(TokenError::NotNarrower(_))),
            "attenuate {bad:?}: {r:?}"
        );
        let r = delegate(
            &f.parent.token,
            &f.agent,
            &AgentId::parse("agent://acme/sub").unwrap(),
            &keypair(11).public(),
            bad,
            &f.issuer.limits,
        );
        assert!(
            matches!(r, Err(TokenError::NotNarrower(_))),
            "delegate {bad:?}: {r:?}"
        );
    }
    assert!(matches!(
        attenuate(&f.parent.token, &Narrowing::default(), &f.issuer.limits),
        Err(TokenError::NotNarrower(_))
    ));
    // Inside the token, each of these is accepted.
    let inside = n(
        Some("docs:read"),
        Some("docs/a/*"),
        Some(300),
        Some(SERVICE),
    );
    assert!(attenuate(&f.parent.token, &inside, &f.issuer.limits).is_ok());
}
