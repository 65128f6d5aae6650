//! Golden tokens under `tests/fixtures/`, so that a change of the token
//! format shows up in review as a diff of committed files.
//!
//! Everything is derived from fixed seeds at a fixed time: the keys
//! (`ChaCha20Rng` seeds below), the token ids and block keys (`*_with_rng`),
//! and Ed25519 signatures are deterministic, so regenerating gives the same
//! bytes.
//!
//! After an intended format change, regenerate and review the diff:
//!
//! ```text
//! TESSERA_REGENERATE_FIXTURES=1 cargo nextest run --test it token::fixtures
//! ```
//!
//! With that variable set the tests write the files instead of comparing.
//!
//! Files: `root.pub` (`<id>:ed25519/<hex>`), `jwks.json` (the verifier's key
//! set), `<holder>.pem` / `<holder>.pub` (test-only holder keys), and per
//! token `<name>.b64` (the token) and `<name>.inspect.json` (`inspect`
//! output, verified, as `tessera token inspect --json` prints it); for the
//! token that acts for a person, also `person.inspect.txt` (as `tessera
//! token inspect` prints it), which `docs/token-schema.md` shows verbatim.

use std::fs;
use std::path::{Path, PathBuf};

use biscuit_auth::{Algorithm, KeyPair};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use tessera::token::*;

use super::support::{limits, req, secs, t0, SERVICE};

const ROOT_KEY_ID: u32 = 7;
const ROOT_SEED: u64 = 0x7e55_e7a0;
const AGENT_SEED: u64 = 0x7e55_e7a1;
const SUB_SEED: u64 = 0x7e55_e7a2;
const NAMES: [&str; 5] = ["bearer", "bound", "attenuated", "delegated", "person"];
/// The person the `person` token acts for, and its earlier actors.
const PERSON: (&str, &str) = ("https://login.acme.example", "alice");
const PRIOR_ACTORS: [&str; 2] = ["agent://acme/assistant", "agent://acme/travel-desk"];

fn seeded_key(seed: u64) -> KeyPair {
    KeyPair::new_with_rng(Algorithm::Ed25519, &mut ChaCha20Rng::seed_from_u64(seed))
}

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn regenerating() -> bool {
    std::env::var_os("TESSERA_REGENERATE_FIXTURES").is_some_and(|v| v == "1")
}

struct Golden {
    keys: KeySet,
    agent: KeyPair,
    sub: KeyPair,
    /// (name, token) in [`NAMES`] order.
    tokens: Vec<(&'static str, String)>,
}

fn generate() -> Golden {
    let root = RootKeyPair::new(ROOT_KEY_ID, seeded_key(ROOT_SEED));
    let keys = KeySet::single(ROOT_KEY_ID, root.keypair.public());
    let agent = seeded_key(AGENT_SEED);
    let sub = seeded_key(SUB_SEED);
    let limits = limits();
    let mut rng = ChaCha20Rng::seed_from_u64(0x7e55_e7a3);
    let capability = |action: &str,
                      resource: &str,
                      audience: Option<&str>,
                      holder: Option<&KeyPair>| Capability {
        agent: AgentId::parse("agent://acme/billing-bot").unwrap(),
        action: Action::parse(action).unwrap(),
        resource: ResourcePattern::parse(resource).unwrap(),
        audience: audience.map(|a| Audience::parse(a).unwrap()),
        lifetime: Lifetime::parse("5m").unwrap(),
        holder_key: holder.map(KeyPair::public),
        on_behalf: None,
    };

    let bearer = mint_with_rng(
        &capability("docs:read", "docs/team-a/*", None, None),
        &root,
        t0(),
        &mut rng,
    )
    .unwrap()
    .token;
    let bound = mint_with_rng(
        &capability("orders:create", "orders/eu/*", Some(SERVICE), Some(&agent)),
        &root,
        t0(),
        &mut rng,
    )
    .unwrap()
    .token;
    let attenuated = attenuate_with_rng(
        &bearer,
        &Narrowing {
            resource: Some(ResourcePattern::parse("docs/team-a/reports/*").unwrap()),
            expires_at: Some(t0() + secs(120)),
            ..Default::default()
        },
        &limits,
        &mut rng,
    )
    .unwrap();
    let delegated = delegate_with_rng(
        &bound,
        &agent,
        &AgentId::parse("agent://acme/billing-bot/sub").unwrap(),
        &sub.public(),
        &Narrowing {
            resource: Some(ResourcePattern::parse("orders/eu/123").unwrap()),
            ..Default::default()
        },
        &limits,
        &mut rng,
    )
    .unwrap();
    // Last, so that the earlier tokens keep their bytes: a bound token for a
    // person with two earlier actors, delegated once.
    let person = mint_with_rng(
        &Capability {
            on_behalf: Some(OnBehalf {
                person: Person::parse(PERSON.0, PERSON.1).unwrap(),
                prior_actors: PRIOR_ACTORS
                    .iter()
                    .map(|a| AgentId::parse(a).unwrap())
                    .collect(),
            }),
            ..capability("orders:create", "orders/eu/*", Some(SERVICE), Some(&agent))
        },
        &root,
        t0(),
        &mut rng,
    )
    .unwrap()
    .token;
    let person = delegate_with_rng(
        &person,
        &agent,
        &AgentId::parse("agent://acme/billing-bot/sub").unwrap(),
        &sub.public(),
        &Narrowing {
            resource: Some(ResourcePattern::parse("orders/eu/123").unwrap()),
            ..Default::default()
        },
        &limits,
        &mut rng,
    )
    .unwrap();
    Golden {
        keys,
        agent,
        sub,
        tokens: vec![
            ("bearer", bearer),
            ("bound", bound),
            ("attenuated", attenuated),
            ("delegated", delegated),
            ("person", person),
        ],
    }
}

/// Every fixture file and its content, as generated now.
fn files(g: &Golden) -> Vec<(String, String)> {
    let (id, root) = g.keys.iter().next().unwrap();
    let mut out = vec![
        ("root.pub".to_string(), format!("{id}:{root}\n")),
        (
            "jwks.json".to_string(),
            serde_json::to_string_pretty(&g.keys.to_jwks()).unwrap() + "\n",
        ),
    ];
    for (name, key) in [("agent", &g.agent), ("sub", &g.sub)] {
        out.push((
            format!("{name}.pem"),
            tessera::token::ed25519_private_key_pem(key).unwrap(),
        ));
        out.push((format!("{name}.pub"), format!("{}\n", key.public())));
    }
    for (name, token) in &g.tokens {
        out.push((format!("{name}.b64"), format!("{token}\n")));
        let i = inspect(token, Some(&g.keys), &Limits::default()).unwrap();
        out.push((
            format!("{name}.inspect.json"),
            serde_json::to_string_pretty(&i).unwrap() + "\n",
        ));
        if *name == "person" {
            out.push(("person.inspect.txt".to_string(), i.to_string()));
        }
    }
    out
}

/// Writes atomically, so parallel test processes never see a partial file.
fn write(name: &str, content: &str) {
    fs::create_dir_all(dir()).unwrap();
    let tmp = dir().join(format!(".{name}.{}.tmp", std::process::id()));
    fs::write(&tmp, content).unwrap();
    fs::rename(&tmp, dir().join(name)).unwrap();
}

fn read(name: &str) -> String {
    let path = dir().join(name);
    fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with TESSERA_REGENERATE_FIXTURES=1 to create it)",
            path.display()
        )
    })
}

/// In regeneration mode, (re)writes every file before a test reads them.
fn prepare() {
    if regenerating() {
        for (name, content) in files(&generate()) {
            write(&name, &content);
        }
    }
}

fn fixture_keys() -> KeySet {
    let keys = KeySet::from_jwks_json(&read("jwks.json")).unwrap();
    assert_eq!(keys, KeySet::parse_inline(read("root.pub").trim()).unwrap());
    keys
}

fn fixture_token(name: &str) -> String {
    read(&format!("{name}.b64")).trim().to_string()
}

fn fixture_holder(name: &str) -> KeyPair {
    let key = KeyPair::from_private_key_pem(&read(&format!("{name}.pem"))).unwrap();
    assert_eq!(
        key.public().to_string(),
        read(&format!("{name}.pub")).trim()
    );
    key
}

#[test]
fn regenerating_golden_tokens_with_the_same_seeds_gives_identical_bytes() {
    prepare();
    let first = files(&generate());
    // Two generations in one process agree: nothing random leaks in.
    assert_eq!(first, files(&generate()));
    for (name, content) in first {
        assert_eq!(
            read(&name),
            content,
            "{name} differs from tests/fixtures/{name}"
        );
    }
}

#[test]
fn golden_tokens_verify_and_inspect_as_recorded() {
    prepare();
    let keys = fixture_keys();
    for name in NAMES {
        let token = fixture_token(name);
        let got = inspect(&token, Some(&keys), &Limits::default()).unwrap();
        assert!(got.verified);
        let recorded: serde_json::Value =
            serde_json::from_str(&read(&format!("{name}.inspect.json"))).unwrap();
        assert_eq!(serde_json::to_value(&got).unwrap(), recorded, "{name}");
    }
}

#[test]
fn golden_tokens_authorize_as_expected() {
    prepare();
    let keys = fixture_keys();
    let agent = fixture_holder("agent");
    let sub = fixture_holder("sub");
    let limits = limits();
    let main = "agent://acme/billing-bot";
    let child = "agent://acme/billing-bot/sub";
    type Expect<'a> = Result<Vec<&'a str>, Reason>;
    let cases: Vec<(&str, Request, Expect)> = vec![
        (
            "bearer",
            req("docs:read", "docs/team-a/x", None, t0(), None),
            Ok(vec![main]),
        ),
        (
            "bearer",
            req("docs:read", "docs/team-b/x", None, t0(), None),
            Err(Reason::OutOfScope),
        ),
        (
            "bearer",
            req("docs:read", "docs/team-a/x", None, t0() + secs(301), None),
            Err(Reason::Expired),
        ),
        (
            "bound",
            req(
                "orders:create",
                "orders/eu/9",
                Some(SERVICE),
                t0(),
                Some(&agent),
            ),
            Ok(vec![main]),
        ),
        (
            "bound",
            req("orders:create", "orders/eu/9", Some(SERVICE), t0(), None),
            Err(Reason::HolderNotProven),
        ),
        (
            "bound",
            req(
                "orders:create",
                "orders/eu/9",
                Some("https://other.example"),
                t0(),
                Some(&agent),
            ),
            Err(Reason::WrongAudience),
        ),
        (
            "attenuated",
            req(
                "docs:read",
                "docs/team-a/reports/q3",
                None,
                t0() + secs(120),
                None,
            ),
            Ok(vec![main]),
        ),
        (
            "attenuated",
            req("docs:read", "docs/team-a/x", None, t0(), None),
            Err(Reason::OutOfScope),
        ),
        (
            "attenuated",
            req(
                "docs:read",
                "docs/team-a/reports/q3",
                None,
                t0() + secs(121),
                None,
            ),
            Err(Reason::Expired),
        ),
        (
            "delegated",
            req(
                "orders:create",
                "orders/eu/123",
                Some(SERVICE),
                t0(),
                Some(&sub),
            ),
            Ok(vec![main, child]),
        ),
        (
            "delegated",
            req(
                "orders:create",
                "orders/eu/123",
                Some(SERVICE),
                t0(),
                Some(&agent),
            ),
            Err(Reason::HolderNotProven),
        ),
        (
            "delegated",
            req(
                "orders:create",
                "orders/eu/9",
                Some(SERVICE),
                t0(),
                Some(&sub),
            ),
            Err(Reason::OutOfScope),
        ),
        (
            "person",
            req(
                "orders:create",
                "orders/eu/123",
                Some(SERVICE),
                t0(),
                Some(&sub),
            ),
            Ok(vec![main, child]),
        ),
        (
            "person",
            req(
                "orders:create",
                "orders/eu/9",
                Some(SERVICE),
                t0(),
                Some(&sub),
            ),
            Err(Reason::OutOfScope),
        ),
    ];
    for (name, r, expected) in cases {
        let got = authorize(&fixture_token(name), &keys, &r, |_| false, &limits);
        match (got, expected) {
            (Ok(g), Ok(chain)) => {
                let names: Vec<&str> = g.chain.iter().map(AgentId::as_str).collect();
                assert_eq!(names, chain, "{name} {r:?}");
            }
            (Err(d), Err(reason)) => assert_eq!(d.reason, reason, "{name} {r:?}: {d}"),
            (got, expected) => panic!("{name} {r:?}: got {got:?}, expected {expected:?}"),
        }
    }
}

#[test]
fn the_golden_person_token_names_alice_and_the_whole_chain() {
    prepare();
    let keys = fixture_keys();
    let sub = fixture_holder("sub");
    let r = req(
        "orders:create",
        "orders/eu/123",
        Some(SERVICE),
        t0(),
        Some(&sub),
    );
    let g = authorize(&fixture_token("person"), &keys, &r, |_| false, &limits()).unwrap();
    let on = g.on_behalf.as_ref().unwrap();
    assert_eq!(on.person, Person::parse(PERSON.0, PERSON.1).unwrap());
    let prior: Vec<&str> = on.prior_actors.iter().map(AgentId::as_str).collect();
    assert_eq!(prior, PRIOR_ACTORS);
    assert_eq!(
        g.custody().to_string(),
        "for alice at https://login.acme.example via agent://acme/assistant -> \
         agent://acme/travel-desk -> agent://acme/billing-bot -> agent://acme/billing-bot/sub"
    );
}

#[test]
fn the_token_schema_guide_prints_the_golden_person_token_as_inspect_does() {
    prepare();
    let keys = fixture_keys();
    let printed = inspect(&fixture_token("person"), Some(&keys), &Limits::default())
        .unwrap()
        .to_string();
    assert_eq!(read("person.inspect.txt"), printed);
    let guide =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/token-schema.md"))
            .unwrap();
    assert!(
        guide.contains(&format!("```\n{printed}```\n")),
        "docs/token-schema.md must show tests/fixtures/person.inspect.txt verbatim"
    );
}
