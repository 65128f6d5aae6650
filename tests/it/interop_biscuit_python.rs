//! Interoperability with another Biscuit library (issue 4, item 8): a token
//! minted by Tessera and attenuated in Python with biscuit-python
//! (`examples/python/attenuate.py`) verifies in Rust, and a block appended in
//! Python that tries to widen the token changes nothing. The other direction
//! too: biscuit-python verifies a token attenuated by Tessera.
//!
//! Every decision is taken twice and must agree: by the Rust `Verifier`
//! (`Verifier::check`, with a DPoP proof made from the holder's key when the
//! request proves one) and by the core [`tessera::token::authorize`] it wraps.
//!
//! All times are fixed (the tokens are minted at `T0` and every request names
//! its time), so nothing here depends on the clock.
//!
//! Needs the virtual environment made by `scripts/python-env.sh` (or a python
//! with the packages of `examples/python/requirements.txt` in
//! `TESSERA_PYTHON`). Without it the tests say so loudly and pass, unless
//! `TESSERA_REQUIRE_PYTHON=1`, which CI sets.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use biscuit_auth::KeyPair;
use chrono::{DateTime, Duration, Utc};
use tempfile::TempDir;
use tessera::jose::{self, DpopClaims};
use tessera::token::{
    self, Action, AgentId, Audience, Authorized, BlockKind, Capability, KeySet, Lifetime, Limits,
    Minted, Narrowing, Reason, Request, Resource, ResourcePattern, RootKeyPair,
};
use tessera::verify::{
    CheckRequest, Grant as VerifiedGrant, KeySource, Presentation, Rejection, Revocations, Verifier,
};

const AGENT: &str = "agent://acme/planner";
const AUDIENCE: &str = "https://docs.acme.example";
/// Not 0, so that a library writing a default id instead of keeping the
/// token's would be caught.
const ROOT_KEY_ID: u32 = 7;

/// When every token here is minted.
fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-22T23:48:17Z")
        .unwrap()
        .to_utc()
}

fn at(minutes: i64) -> DateTime<Utc> {
    t0() + Duration::minutes(minutes)
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/python/attenuate.py")
}

/// The python to run the script with, or `None` when it or biscuit-python is
/// missing and not required.
fn python() -> Option<PathBuf> {
    crate::python::python_with("biscuit_auth", "biscuit-python interop test")
}

/// A root key, the key set a verifier would hold, and a directory for the
/// files handed to the Python script.
struct Interop {
    python: PathBuf,
    dir: TempDir,
    root: RootKeyPair,
    keys: KeySet,
    limits: Limits,
    files: AtomicUsize,
}

impl Interop {
    fn new() -> Option<Self> {
        let python = python()?;
        let root = RootKeyPair::new(ROOT_KEY_ID, KeyPair::new());
        let keys = KeySet::single(ROOT_KEY_ID, root.keypair.public());
        let dir = tempfile::tempdir().unwrap();
        // The root public key as Tessera writes it: `ed25519/<hex>`.
        let public = token::format_public_key(&root.keypair.public());
        assert!(public.starts_with("ed25519/"), "{public}");
        std::fs::write(dir.path().join("root.pub"), format!("{public}\n")).unwrap();
        Some(Self {
            python,
            dir,
            root,
            keys,
            limits: Limits::default(),
            files: AtomicUsize::new(0),
        })
    }

    /// Mints `docs:read` on `docs/team-a/*` at the audience for ten minutes
    /// from `T0`, bound to `holder` when given.
    fn mint(&self, holder: Option<&KeyPair>) -> Minted {
        let cap = Capability {
            agent: AgentId::parse(AGENT).unwrap(),
            action: Action::parse("docs:read").unwrap(),
            resource: ResourcePattern::parse("docs/team-a/*").unwrap(),
            audience: Some(Audience::parse(AUDIENCE).unwrap()),
            lifetime: Lifetime::parse("10m").unwrap(),
            holder_key: holder.map(KeyPair::public),
            on_behalf: None,
        };
        token::mint(&cap, &self.root, t0()).unwrap()
    }

    /// Runs `attenuate.py COMMAND` on `token` with the root key file and the
    /// expected root key id, plus `args`.
    fn run(&self, command: &str, token: &str, args: &[&str]) -> Output {
        self.run_with_key(command, token, "root.pub", ROOT_KEY_ID, args)
    }

    fn run_with_key(
        &self,
        command: &str,
        token: &str,
        key_file: &str,
        key_id: u32,
        args: &[&str],
    ) -> Output {
        let n = self.files.fetch_add(1, Ordering::Relaxed);
        let token_file = self.dir.path().join(format!("in-{n}.tok"));
        std::fs::write(&token_file, token).unwrap();
        Command::new(&self.python)
            .arg(script())
            .arg(command)
            .arg("--token")
            .arg(&token_file)
            .arg("--root-key-file")
            .arg(self.dir.path().join(key_file))
            .args(["--root-key-id", &key_id.to_string()])
            .args(args)
            .output()
            .unwrap()
    }

    /// [`Self::run`], which must succeed; its standard output, trimmed.
    fn ok(&self, command: &str, token: &str, args: &[&str]) -> String {
        let out = self.run(command, token, args);
        assert!(
            out.status.success(),
            "attenuate.py {command} {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert_eq!(
            stdout.lines().count(),
            1,
            "one line on stdout, got {stdout:?}"
        );
        stdout.trim().to_owned()
    }

    /// The core's decision, after checking that the Verifier agrees.
    fn authorize(&self, token: &str, req: &Request) -> Result<Authorized, token::Denial> {
        let core = token::authorize(token, &self.keys, req, |_| false, &self.limits);
        let verdict = self.verify(token, req);
        match (&core, &verdict) {
            (Ok(g), Ok(v)) => assert_eq!(g.chain, v.chain, "the chains differ"),
            (Err(d), Err(r)) => assert_eq!(d.reason, r.reason, "{d} vs {r}"),
            _ => panic!("the core and the Verifier disagree: {core:?} vs {verdict:?}"),
        }
        core
    }

    /// The Verifier's decision, at the request's time and service; a proven
    /// key is proven with a DPoP proof, as a client would.
    fn verify(&self, token: &str, req: &Request) -> Result<VerifiedGrant, Rejection> {
        const URL: &str = "https://docs.example/call";
        let now = req.now;
        let proof = req.proven_key.as_ref().map(|pk| {
            let secret = HOLDERS.with(|h| h.borrow().get(&pk.to_bytes()).cloned().unwrap());
            let key = ed25519_dalek::SigningKey::from_bytes(&secret);
            let claims = DpopClaims {
                jti: format!("{}", PROOFS.fetch_add(1, Ordering::SeqCst)),
                htm: "POST".into(),
                htu: URL.into(),
                iat: now.timestamp(),
                ath: Some(jose::access_token_hash(token)),
            };
            jose::sign(&key, Some("dpop+jwt"), true, &claims).unwrap()
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let v = Verifier::builder(req.service.as_ref().unwrap().as_str())
                .keys(KeySource::Keys(self.keys.clone()))
                .revocations(Revocations::Unchecked)
                .limits(self.limits.clone())
                .clock(Arc::new(move || now))
                .build()
                .await
                .unwrap();
            let presentation = Presentation {
                token,
                dpop: proof.as_deref(),
                method: "POST",
                url: URL,
            };
            let request = CheckRequest {
                amount: None,
                operation: req.operation.clone(),
                resource: req.resource.clone(),
                facts: Vec::new(),
            };
            v.check(&presentation, &request).await
        })
    }

    fn allows(&self, token: &str, req: &Request) -> Authorized {
        self.authorize(token, req)
            .unwrap_or_else(|d| panic!("expected {req:?} to be allowed, denied: {d}"))
    }

    fn denies(&self, token: &str, req: &Request) -> Reason {
        match self.authorize(token, req) {
            Ok(g) => panic!("expected {req:?} to be denied, allowed: {g:?}"),
            Err(d) => d.reason,
        }
    }
}

thread_local! {
    /// Private keys of the holders named in requests, by public key bytes,
    /// so that the Verifier side can make DPoP proofs with them.
    static HOLDERS: RefCell<HashMap<Vec<u8>, [u8; 32]>> = RefCell::new(HashMap::new());
}

/// A counter for unique DPoP proof ids.
static PROOFS: AtomicUsize = AtomicUsize::new(0);

/// A request at the audience.
fn req(op: &str, resource: &str, now: DateTime<Utc>, proven: Option<&KeyPair>) -> Request {
    if let Some(kp) = proven {
        let secret: [u8; 32] = kp.private().to_bytes().as_slice().try_into().unwrap();
        HOLDERS.with(|h| h.borrow_mut().insert(kp.public().to_bytes(), secret));
    }
    Request {
        amount: None,
        operation: Action::parse(op).unwrap(),
        resource: Resource::parse(resource).unwrap(),
        service: Some(Audience::parse(AUDIENCE).unwrap()),
        now,
        proven_key: proven.map(KeyPair::public),
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A failed run of the script: non-zero exit, nothing on standard output,
/// one line on standard error, which is returned.
fn failed(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "expected failure, got {}",
        out.status
    );
    assert!(
        out.stdout.is_empty(),
        "nothing on stdout after a failure, got {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stderr = String::from_utf8(out.stderr.clone()).unwrap();
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "one line on stderr, got {stderr:?}"
    );
    stderr.trim_end().to_owned()
}

#[test]
fn a_token_narrowed_in_python_verifies_in_rust_within_the_narrowing() {
    let Some(it) = Interop::new() else { return };
    let minted = it.mint(None);
    let narrowed = it.ok(
        "narrow",
        &minted.token,
        &[
            "--resource-prefix",
            "docs/team-a/reports/",
            "--expires-at",
            &rfc3339(at(5)),
        ],
    );
    assert_ne!(narrowed, minted.token);

    // The original token allows both requests the narrowing is about to
    // refuse, so the refusals below come from the Python block.
    it.allows(
        &minted.token,
        &req("docs:read", "docs/team-a/hr", at(1), None),
    );
    it.allows(
        &minted.token,
        &req("docs:read", "docs/team-a/reports/q3", at(6), None),
    );

    let grant = it.allows(
        &narrowed,
        &req("docs:read", "docs/team-a/reports/q3", at(1), None),
    );
    assert_eq!(grant.token_id, minted.token_id);
    assert_eq!(grant.agent().unwrap().as_str(), AGENT);
    assert_eq!(grant.revocation_ids.len(), 2);
    assert_eq!(grant.revocation_ids[0], minted.revocation_id);
    // At the Python expiry itself, still allowed (`$t <= expiry`).
    it.allows(
        &narrowed,
        &req("docs:read", "docs/team-a/reports/q3", at(5), None),
    );

    assert_eq!(
        it.denies(&narrowed, &req("docs:read", "docs/team-a/hr", at(1), None)),
        Reason::OutOfScope
    );
    assert_eq!(
        it.denies(
            &narrowed,
            &req("docs:read", "docs/team-a/reports/q3", at(6), None)
        ),
        Reason::Expired
    );
    // The authority block's own limits still hold.
    assert_eq!(
        it.denies(
            &narrowed,
            &req("docs:write", "docs/team-a/reports/q3", at(1), None)
        ),
        Reason::OutOfScope
    );
    let mut elsewhere = req("docs:read", "docs/team-a/reports/q3", at(1), None);
    elsewhere.service = Some(Audience::parse("https://other.acme.example").unwrap());
    assert_eq!(it.denies(&narrowed, &elsewhere), Reason::WrongAudience);

    // Python kept the root key id, and Tessera reads the block as an
    // attenuation holding exactly the two checks.
    let view = token::inspect(&narrowed, Some(&it.keys), &it.limits).unwrap();
    assert!(view.verified);
    assert_eq!(view.root_key_id, Some(ROOT_KEY_ID));
    assert_eq!(view.token_id, minted.token_id);
    let kinds: Vec<BlockKind> = view.blocks.iter().map(|b| b.kind).collect();
    assert_eq!(kinds, [BlockKind::Authority, BlockKind::Attenuation]);
    assert_eq!(view.blocks[1].signed_by, None);
    let datalog = &view.blocks[1].datalog;
    assert!(
        datalog.contains(r#"check if resource($r), $r.starts_with("docs/team-a/reports/")"#),
        "{datalog}"
    );
    assert!(
        datalog.contains("check if time($t), $t <= 2026-11-22T23:53:17Z"),
        "{datalog}"
    );
    assert_eq!(datalog.matches("check if").count(), 2, "{datalog}");
}

#[test]
fn a_python_narrowing_of_a_delegated_token_verifies_for_the_sub_agent() {
    let Some(it) = Interop::new() else { return };
    let planner = KeyPair::new();
    let summarizer = KeyPair::new();
    let minted = it.mint(Some(&planner));
    let delegated = token::delegate(
        &minted.token,
        &planner,
        &AgentId::parse("agent://acme/summarizer").unwrap(),
        &summarizer.public(),
        &Narrowing::default(),
        &it.limits,
    )
    .unwrap();
    let narrowed = it.ok(
        "narrow",
        &delegated,
        &["--resource-prefix", "docs/team-a/reports/"],
    );

    let view = token::inspect(&narrowed, Some(&it.keys), &it.limits).unwrap();
    let kinds: Vec<BlockKind> = view.blocks.iter().map(|b| b.kind).collect();
    assert_eq!(
        kinds,
        [
            BlockKind::Authority,
            BlockKind::Delegation,
            BlockKind::Attenuation
        ]
    );
    assert_eq!(
        view.holder.as_deref(),
        Some(token::format_public_key(&summarizer.public()).as_str())
    );

    let grant = it.allows(
        &narrowed,
        &req(
            "docs:read",
            "docs/team-a/reports/q3",
            at(1),
            Some(&summarizer),
        ),
    );
    let chain: Vec<&str> = grant.chain.iter().map(AgentId::as_str).collect();
    assert_eq!(chain, [AGENT, "agent://acme/summarizer"]);
    assert_eq!(
        it.denies(
            &narrowed,
            &req("docs:read", "docs/team-a/hr", at(1), Some(&summarizer))
        ),
        Reason::OutOfScope
    );
    // The Python block moved nothing: the holder is still the summarizer.
    assert_eq!(
        it.denies(
            &narrowed,
            &req("docs:read", "docs/team-a/reports/q3", at(1), Some(&planner))
        ),
        Reason::HolderNotProven
    );
}

/// The block of `attenuate.py widen` used below: every way a first-party
/// block might try to grant more.
const WIDEN: &[&str] = &[
    "--right",
    "docs:write",
    "docs/team-a/x",
    "--right-prefix",
    "docs:read",
    "",
    "--holder-proven",
    "--grant-requested",
];

/// The widening block made it into the token as written, so the denials
/// below are not for want of it.
fn assert_widening_block(it: &Interop, token: &str) {
    let view = token::inspect(token, Some(&it.keys), &it.limits).unwrap();
    assert_eq!(view.root_key_id, Some(ROOT_KEY_ID));
    let kinds: Vec<BlockKind> = view.blocks.iter().map(|b| b.kind).collect();
    assert_eq!(kinds, [BlockKind::Authority, BlockKind::Attenuation]);
    let datalog = &view.blocks[1].datalog;
    for expected in [
        r#"right("docs:write", "docs/team-a/x");"#,
        r#"right_prefix("docs:read", "");"#,
        "holder_proven(true);",
        "right($op, $r) <- operation($op), resource($r);",
    ] {
        assert!(datalog.contains(expected), "{expected} in {datalog}");
    }
    // Inspect reports the authority block's right only.
    assert_eq!(view.rights.len(), 1, "{:?}", view.rights);
    assert_eq!(view.rights[0].action, "docs:read");
    assert_eq!(view.rights[0].resource, "docs/team-a/");
    assert!(view.rights[0].prefix);
}

#[test]
fn a_widening_block_appended_in_python_grants_nothing() {
    let Some(it) = Interop::new() else { return };
    let minted = it.mint(None);
    // Control: the token as minted allows what it granted.
    it.allows(
        &minted.token,
        &req("docs:read", "docs/team-a/x", at(1), None),
    );
    let widened = it.ok("widen", &minted.token, WIDEN);
    assert_widening_block(&it, &widened);

    // A block with facts or a rule fails the shape gate: the whole token is
    // refused before any Datalog runs, for what it granted and for anything
    // the block tried to add, later, or elsewhere.
    let mut elsewhere = req("docs:read", "docs/team-a/x", at(1), None);
    elsewhere.service = Some(Audience::parse("https://other.acme.example").unwrap());
    for request in [
        req("docs:read", "docs/team-a/x", at(1), None),
        req("docs:write", "docs/team-a/x", at(1), None),
        req("docs:read", "docs/team-b/plans", at(1), None),
        req("docs:read", "docs/team-b/", at(1), None),
        req("docs:write", "docs/team-b/plans", at(1), None),
        req("docs:read", "docs/team-a/x", at(11), None),
        elsewhere,
    ] {
        assert_eq!(
            it.denies(&widened, &request),
            Reason::LimitsExceeded,
            "{} on {}",
            request.operation.as_str(),
            request.resource.as_str()
        );
    }
}

#[test]
fn a_widening_block_appended_in_python_does_not_prove_the_holder() {
    let Some(it) = Interop::new() else { return };
    let planner = KeyPair::new();
    let minted = it.mint(Some(&planner));
    let target = "docs/team-a/x";
    // Control: the token as minted allows its holder.
    it.allows(
        &minted.token,
        &req("docs:read", target, at(1), Some(&planner)),
    );
    let widened = it.ok("widen", &minted.token, WIDEN);
    assert_widening_block(&it, &widened);

    let view = token::inspect(&widened, Some(&it.keys), &it.limits).unwrap();
    assert_eq!(
        view.holder.as_deref(),
        Some(token::format_public_key(&planner.public()).as_str())
    );

    // Refused by the shape gate whoever proves what: no proof, a stranger's
    // proof, and the holder's own proof alike.
    let stranger = KeyPair::new();
    for request in [
        req("docs:read", target, at(1), None),
        req("docs:read", target, at(1), Some(&stranger)),
        req("docs:read", target, at(1), Some(&planner)),
        req("docs:write", target, at(1), Some(&planner)),
        req("docs:read", "docs/team-b/plans", at(1), Some(&planner)),
    ] {
        assert_eq!(it.denies(&widened, &request), Reason::LimitsExceeded);
    }
}

#[test]
fn python_verifies_a_token_attenuated_by_tessera() {
    let Some(it) = Interop::new() else { return };
    let minted = it.mint(None);
    let narrowing = Narrowing {
        resource: Some(ResourcePattern::parse("docs/team-a/reports/*").unwrap()),
        expires_at: Some(at(5)),
        ..Narrowing::default()
    };
    let attenuated = token::attenuate(&minted.token, &narrowing, &it.limits).unwrap();
    let rust_view = token::inspect(&attenuated, Some(&it.keys), &it.limits).unwrap();
    assert_eq!(rust_view.blocks.len(), 2);

    let verify = |resource: &str, minutes: i64| {
        it.run(
            "verify",
            &attenuated,
            &[
                "--operation",
                "docs:read",
                "--resource",
                resource,
                "--service",
                AUDIENCE,
                "--time",
                &rfc3339(at(minutes)),
            ],
        )
    };

    let out = verify("docs/team-a/reports/q3", 1);
    assert!(
        out.status.success(),
        "python verify failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["allowed"], true, "{result}");
    assert_eq!(result["blocks"], 2, "{result}");
    let python_ids: Vec<&str> = result["revocation_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let rust_ids: Vec<&str> = rust_view
        .blocks
        .iter()
        .map(|b| b.revocation_id.as_str())
        .collect();
    assert_eq!(python_ids, rust_ids, "both libraries name the same blocks");

    // The Tessera block's checks hold in Python: outside the prefix, and
    // after the narrowed expiry (before the authority's).
    let outside = failed(&verify("docs/team-a/hr", 1));
    assert!(outside.contains("denied"), "{outside}");
    assert!(outside.contains("docs/team-a/reports/"), "{outside}");
    let late = failed(&verify("docs/team-a/reports/q3", 6));
    assert!(late.contains("denied"), "{late}");
    assert!(late.contains("time($t)"), "{late}");
    // And the authority block's: another audience.
    let elsewhere = failed(&it.run(
        "verify",
        &attenuated,
        &[
            "--operation",
            "docs:read",
            "--resource",
            "docs/team-a/reports/q3",
            "--service",
            "https://other.acme.example",
            "--time",
            &rfc3339(at(1)),
        ],
    ));
    assert!(elsewhere.contains("service($s)"), "{elsewhere}");
}

#[test]
fn python_refuses_a_token_under_another_root_key_or_key_id() {
    let Some(it) = Interop::new() else { return };
    let minted = it.mint(None);
    let other = token::format_public_key(&KeyPair::new().public());
    std::fs::write(it.dir.path().join("other.pub"), other).unwrap();

    let args = ["--resource-prefix", "docs/team-a/reports/"];
    let wrong_key =
        failed(&it.run_with_key("narrow", &minted.token, "other.pub", ROOT_KEY_ID, &args));
    assert!(wrong_key.contains("token rejected"), "{wrong_key}");
    let wrong_id = failed(&it.run_with_key("narrow", &minted.token, "root.pub", 0, &args));
    assert!(
        wrong_id.contains(&format!("root key id {ROOT_KEY_ID}, not 0")),
        "{wrong_id}"
    );

    // A token whose signature no longer matches: one byte of the authority
    // block changed.
    let mut bytes = token::decode(&minted.token, &it.limits).unwrap();
    let i = bytes.len() / 3;
    bytes[i] ^= 0x01;
    let tampered = failed(&it.run("narrow", &token::encode(&bytes), &args));
    assert!(
        tampered.contains("token rejected") || tampered.contains("malformed"),
        "{tampered}"
    );
}
