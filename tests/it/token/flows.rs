use biscuit_auth::KeyPair;
use chrono::{DateTime, Duration, Utc};
use tessera::token::*;

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-22T12:00:00Z")
        .unwrap()
        .to_utc()
}

#[test]
fn smoke_mint_attenuate_delegate_authorize() {
    let root = RootKeyPair::new(1, KeyPair::new());
    let keys = KeySet::single(1, root.keypair.public());
    let agent = KeyPair::new();
    let sub = KeyPair::new();
    let cap = Capability {
        agent: AgentId::parse("agent://acme/a").unwrap(),
        action: Action::parse("docs:read").unwrap(),
        resource: ResourcePattern::parse("docs/team-a/*").unwrap(),
        audience: Some(Audience::parse("https://tool.example").unwrap()),
        lifetime: Lifetime::parse("5m").unwrap(),
        holder_key: Some(agent.public()),
        on_behalf: None,
    };
    let m = mint(&cap, &root, t0()).unwrap();
    let limits = Limits::default();
    let req = |res: &str, key: Option<&KeyPair>, now: DateTime<Utc>| Request {
        amount: None,
        operation: Action::parse("docs:read").unwrap(),
        resource: Resource::parse(res).unwrap(),
        service: Some(Audience::parse("https://tool.example").unwrap()),
        now,
        proven_key: key.map(|k| k.public()),
    };
    let g = authorize(
        &m.token,
        &keys,
        &req("docs/team-a/x", Some(&agent), t0()),
        |_| false,
        &limits,
    )
    .unwrap();
    assert_eq!(g.chain.len(), 1);
    let d = authorize(
        &m.token,
        &keys,
        &req("docs/team-b/x", Some(&agent), t0()),
        |_| false,
        &limits,
    )
    .unwrap_err();
    assert_eq!(d.reason, Reason::OutOfScope, "{d}");
    let d = authorize(
        &m.token,
        &keys,
        &req("docs/team-a/x", Some(&agent), t0() + Duration::seconds(301)),
        |_| false,
        &limits,
    )
    .unwrap_err();
    assert_eq!(d.reason, Reason::Expired, "{d}");
    let d = authorize(
        &m.token,
        &keys,
        &req("docs/team-a/x", None, t0()),
        |_| false,
        &limits,
    )
    .unwrap_err();
    assert_eq!(d.reason, Reason::HolderNotProven, "{d}");

    let n = Narrowing {
        resource: Some(ResourcePattern::parse("docs/team-a/sub/*").unwrap()),
        ..Default::default()
    };
    let t2 = delegate(
        &m.token,
        &agent,
        &AgentId::parse("agent://acme/sub").unwrap(),
        &sub.public(),
        &n,
        &limits,
    )
    .unwrap();
    let g = authorize(
        &t2,
        &keys,
        &req("docs/team-a/sub/1", Some(&sub), t0()),
        |_| false,
        &limits,
    )
    .unwrap();
    assert_eq!(g.chain.len(), 2);
    let d = authorize(
        &t2,
        &keys,
        &req("docs/team-a/sub/1", Some(&agent), t0()),
        |_| false,
        &limits,
    )
    .unwrap_err();
    assert_eq!(d.reason, Reason::HolderNotProven, "{d}");
    let d = authorize(
        &t2,
        &keys,
        &req("docs/team-a/x", Some(&sub), t0()),
        |_| false,
        &limits,
    )
    .unwrap_err();
    assert_eq!(d.reason, Reason::OutOfScope, "{d}");
    let t3 = attenuate(
        &t2,
        &Narrowing {
            expires_at: Some(t0() + Duration::seconds(60)),
            ..Default::default()
        },
        &limits,
    )
    .unwrap();
    let d = authorize(
        &t3,
        &keys,
        &req(
            "docs/team-a/sub/1",
            Some(&sub),
            t0() + Duration::seconds(61),
        ),
        |_| false,
        &limits,
    )
    .unwrap_err();
    assert_eq!(d.reason, Reason::Expired, "{d}");
    let i = inspect(&t3, Some(&keys), &limits).unwrap();
    println!("{i}");
}
