//! Tokens that act for a person: `on_behalf_of` and `prior_actor` are read
//! from the authority block only, malformed ones are refused, a holder's
//! block cannot add them, and the token's own checks still decide.

use biscuit_auth::builder::Term;
use biscuit_auth::{Biscuit, UnverifiedBiscuit};
use tessera::token::*;

use super::raw::{
    allow_if_true, append_first_party, append_third_party, block, delegated_to, s, ALL_FACTS,
};
use super::support::*;

const IDP: &str = "https://login.acme.example";

/// Named parameters of a Datalog snippet.
type Params<'a> = Vec<(&'a str, Term)>;

fn alice_via(prior: &[&str]) -> OnBehalf {
    OnBehalf {
        person: Person::parse(IDP, "alice").unwrap(),
        prior_actors: prior.iter().map(|a| AgentId::parse(a).unwrap()).collect(),
    }
}

/// A bound token for alice on `docs/a/*` at SERVICE, two earlier actors.
fn alice_token(issuer: &Issuer, holder: &biscuit_auth::KeyPair) -> String {
    let mut c = cap("docs:read", "docs/a/*", Some(SERVICE), Some(holder));
    c.on_behalf = Some(alice_via(&["agent://acme/assistant", "agent://acme/desk"]));
    issuer.mint(&c).token
}

/// The issuer's authority block of a freshly minted bound token, with
/// `extra` facts added, signed by the issuer's root key: what a buggy or
/// hostile issuer could write (the values are parameters, never source).
fn authority_with(issuer: &Issuer, extra: &str, params: &[(&str, Term)]) -> String {
    let plain = issuer
        .mint(&cap("docs:read", "docs/a/*", Some(SERVICE), None))
        .token;
    let source = UnverifiedBiscuit::from(bytes_of(&plain))
        .unwrap()
        .print_block_source(0)
        .unwrap();
    let params = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let raw = Biscuit::builder()
        .code(&source)
        .unwrap()
        .code_with_params(extra, params, Default::default())
        .unwrap()
        .root_key_id(1)
        .build(&issuer.root.keypair)
        .unwrap();
    encode(&raw.to_vec().unwrap())
}

fn allowed_req() -> Request {
    req("docs:read", "docs/a/1", Some(SERVICE), t0(), None)
}

#[test]
fn a_person_token_reports_the_person_and_earlier_actors_after_a_delegation() {
    let issuer = Issuer::new();
    let holder = keypair(10);
    let sub = keypair(11);
    let t = alice_token(&issuer, &holder);
    let t = delegate(
        &t,
        &holder,
        &AgentId::parse("agent://acme/main/sub").unwrap(),
        &sub.public(),
        &Narrowing::default(),
        &issuer.limits,
    )
    .unwrap();
    let g = issuer
        .check(
            &t,
            &req("docs:read", "docs/a/1", Some(SERVICE), t0(), Some(&sub)),
        )
        .unwrap();
    assert_eq!(
        g.on_behalf,
        Some(alice_via(&["agent://acme/assistant", "agent://acme/desk"]))
    );
    let chain: Vec<&str> = g.chain.iter().map(AgentId::as_str).collect();
    assert_eq!(chain, ["agent://acme/main", "agent://acme/main/sub"]);
    assert_eq!(
        g.custody().to_string(),
        "for alice at https://login.acme.example via agent://acme/assistant -> \
         agent://acme/desk -> agent://acme/main -> agent://acme/main/sub"
    );
    let json = serde_json::to_value(&g).unwrap();
    assert_eq!(json["person"]["issuer"], IDP);
    assert_eq!(json["person"]["subject"], "alice");
    assert_eq!(json["prior_actors"][1], "agent://acme/desk");

    let i = inspect(&t, Some(&issuer.keys), &issuer.limits).unwrap();
    assert_eq!(i.on_behalf, g.on_behalf);
    let text = i.to_string();
    assert!(
        text.contains("acts for:    alice at https://login.acme.example\n"),
        "{text}"
    );
    assert!(
        text.contains("earlier:     agent://acme/assistant -> agent://acme/desk\n"),
        "{text}"
    );
}

#[test]
fn a_token_for_nobody_reports_nobody_and_prints_as_before() {
    let issuer = Issuer::new();
    let t = issuer.mint(&cap("docs:read", "docs/a/*", None, None)).token;
    let g = issuer
        .check(&t, &req("docs:read", "docs/a/1", None, t0(), None))
        .unwrap();
    assert_eq!(g.on_behalf, None);
    assert_eq!(g.custody().to_string(), "agent://acme/main");
    let json = serde_json::to_value(&g).unwrap();
    assert!(json.get("person").is_none(), "{json}");
    let text = inspect(&t, None, &issuer.limits).unwrap().to_string();
    assert!(!text.contains("acts for"), "{text}");
    assert!(text.contains("chain:       agent://acme/main\n"), "{text}");
}

/// Decision: a holder's block that names a person or an earlier actor is
/// refused by the shape gate (`limits_exceeded`), and inspection, which
/// reads a token without deciding, still reports the authority block's.
#[test]
fn a_holder_block_that_adds_on_behalf_of_or_prior_actor_is_refused_and_changes_nothing_reported() {
    let issuer = Issuer::new();
    let holder = keypair(10);
    let mallory = || {
        block(
            "on_behalf_of({issuer}, {subject});",
            &[
                ("issuer", s("https://evil.example")),
                ("subject", s("mallory")),
            ],
        )
    };
    let actor = || {
        block(
            "prior_actor({p}, {agent});",
            &[("p", Term::Integer(2)), ("agent", s("agent://evil/x"))],
        )
    };
    let for_nobody = issuer
        .mint(&cap("docs:read", "docs/a/*", Some(SERVICE), Some(&holder)))
        .token;
    for base in [alice_token(&issuer, &holder), for_nobody] {
        let before = inspect(&base, Some(&issuer.keys), &issuer.limits)
            .unwrap()
            .on_behalf;
        let with_delegation = |b: biscuit_auth::BlockBuilder| {
            let sub = keypair(12);
            let d = delegated_to("agent://acme/main/sub", &sub);
            append_third_party(&base, &holder, d.merge(b))
        };
        for forged in [
            append_first_party(&base, mallory()),
            append_first_party(&base, actor()),
            with_delegation(mallory()),
            with_delegation(actor()),
        ] {
            let r = req("docs:read", "docs/a/1", Some(SERVICE), t0(), Some(&holder));
            assert_eq!(issuer.denied(&forged, &r), Reason::LimitsExceeded);
            let after = inspect(&forged, Some(&issuer.keys), &issuer.limits)
                .unwrap()
                .on_behalf;
            assert_eq!(after, before);
        }
    }
}

#[test]
fn malformed_person_facts_in_the_authority_block_are_refused_as_malformed() {
    let issuer = Issuer::new();
    let a = |v: &str| s(v);
    let n = Term::Integer;
    let cases: Vec<(&str, &str, Params)> = vec![
        (
            "two persons",
            "on_behalf_of({i}, {s}); on_behalf_of({i}, {t});",
            vec![("i", a(IDP)), ("s", a("alice")), ("t", a("bob"))],
        ),
        (
            "a gap in positions",
            "on_behalf_of({i}, {s}); prior_actor(0, {x}); prior_actor(2, {y});",
            vec![
                ("i", a(IDP)),
                ("s", a("alice")),
                ("x", a("agent://acme/x")),
                ("y", a("agent://acme/y")),
            ],
        ),
        (
            "a duplicate position",
            "on_behalf_of({i}, {s}); prior_actor(0, {x}); prior_actor(0, {y});",
            vec![
                ("i", a(IDP)),
                ("s", a("alice")),
                ("x", a("agent://acme/x")),
                ("y", a("agent://acme/y")),
            ],
        ),
        (
            "a position not starting at 0",
            "on_behalf_of({i}, {s}); prior_actor(1, {x});",
            vec![("i", a(IDP)), ("s", a("alice")), ("x", a("agent://acme/x"))],
        ),
        (
            "a negative position",
            "on_behalf_of({i}, {s}); prior_actor({p}, {x});",
            vec![
                ("i", a(IDP)),
                ("s", a("alice")),
                ("p", n(-1)),
                ("x", a("agent://acme/x")),
            ],
        ),
        (
            "an earlier actor without a person",
            "prior_actor(0, {x});",
            vec![("x", a("agent://acme/x"))],
        ),
        (
            "a person with one term",
            "on_behalf_of({s});",
            vec![("s", a("alice"))],
        ),
        (
            "a subject that is a number",
            "on_behalf_of({i}, {p});",
            vec![("i", a(IDP)), ("p", n(7))],
        ),
        (
            "an issuer that is not a URI",
            "on_behalf_of({i}, {s});",
            vec![("i", a("acme")), ("s", a("alice"))],
        ),
        (
            "an empty subject",
            "on_behalf_of({i}, {s});",
            vec![("i", a(IDP)), ("s", a(""))],
        ),
        (
            "a subject with a newline",
            "on_behalf_of({i}, {s});",
            vec![("i", a(IDP)), ("s", a("alice\nbob"))],
        ),
        (
            "an overlong subject",
            "on_behalf_of({i}, {s});",
            vec![("i", a(IDP)), ("s", a(&"a".repeat(256)))],
        ),
        (
            "an earlier actor that is not an agent id",
            "on_behalf_of({i}, {s}); prior_actor(0, {x});",
            vec![("i", a(IDP)), ("s", a("alice")), ("x", a("not an agent"))],
        ),
        (
            "a position that is a string",
            "on_behalf_of({i}, {s}); prior_actor({p}, {x});",
            vec![
                ("i", a(IDP)),
                ("s", a("alice")),
                ("p", a("0")),
                ("x", a("agent://acme/x")),
            ],
        ),
    ];
    for (what, extra, params) in cases {
        let t = authority_with(&issuer, extra, &params);
        assert_eq!(
            issuer.denied(&t, &allowed_req()),
            Reason::Malformed,
            "{what}"
        );
        assert!(
            matches!(
                inspect(&t, Some(&issuer.keys), &issuer.limits),
                Err(TokenError::Chain(ChainError::Schema(_)))
            ),
            "{what}"
        );
    }
    // The same writer with well-formed facts is read: the cases above fail
    // for what they say, not for how they were built.
    let good = authority_with(
        &issuer,
        "on_behalf_of({i}, {s}); prior_actor(1, {y}); prior_actor(0, {x});",
        &[
            ("i", a(IDP)),
            ("s", a("alice")),
            ("x", a("agent://acme/x")),
            ("y", a("agent://acme/y")),
        ],
    );
    let g = issuer.check(&good, &allowed_req()).unwrap();
    assert_eq!(
        g.on_behalf,
        Some(alice_via(&["agent://acme/x", "agent://acme/y"]))
    );
}

/// A verifier that ignores the new facts (an older one, or any Biscuit
/// library) still denies what the token does not grant: the authority
/// block's checks carry the decision.
#[test]
fn a_verifier_that_ignores_the_person_still_denies_outside_the_right() {
    let issuer = Issuer::new();
    let holder = keypair(10);
    let t = alice_token(&issuer, &holder);
    let proven = Some(&holder);
    // Tessera's own authorize, which reads but never decides on the person.
    for (r, reason) in [
        (
            req("docs:write", "docs/a/1", Some(SERVICE), t0(), proven),
            Reason::OutOfScope,
        ),
        (
            req("docs:read", "docs/b/1", Some(SERVICE), t0(), proven),
            Reason::OutOfScope,
        ),
        (
            req("docs:read", "docs/a/1", Some(OTHER_SERVICE), t0(), proven),
            Reason::WrongAudience,
        ),
        (
            req("docs:read", "docs/a/1", Some(SERVICE), t0(), None),
            Reason::HolderNotProven,
        ),
        (
            req(
                "docs:read",
                "docs/a/1",
                Some(SERVICE),
                t0() + secs(301),
                proven,
            ),
            Reason::Expired,
        ),
    ] {
        assert_eq!(issuer.denied(&t, &r), reason, "{r:?}");
    }
    // A raw biscuit-auth verifier with `allow if true` that knows nothing of
    // `on_behalf_of`: the right request passes, every other one fails a check.
    let run = |op: &str, res: &str, svc: &str| {
        allow_if_true(&t, &issuer.keys, &ALL_FACTS, op, res, svc, t0())
    };
    assert_eq!(run("docs:read", "docs/a/1", SERVICE).ok(), Some(0));
    assert!(run("docs:write", "docs/a/1", SERVICE).is_err());
    assert!(run("docs:read", "docs/b/1", SERVICE).is_err());
    assert!(run("docs:read", "docs/a/1", OTHER_SERVICE).is_err());
}
