//! Interoperability with JavaScript (issue 15, point 6): a token minted by
//! Tessera and narrowed in Node with `@biscuit-auth/biscuit-wasm`
//! (`examples/js/attenuate.mjs`) is allowed by the Rust `Verifier` within the
//! narrowing and denied outside it; a block written in JavaScript that tries
//! to widen the token grants nothing; biscuit-wasm reads Tessera's own
//! attenuation; and the official MCP TypeScript SDK
//! (`examples/js/call-tool.mjs`) reaches the MCP example
//! (`examples/mcp_tool_server.rs`) with a token from an issuer running in
//! this process, narrowed in JavaScript, and gets the tool's answer, until
//! the parent token is revoked at the issuer.
//!
//! The offline tests fix every time (tokens minted at `T0`, each request names
//! its time), and each decision is taken twice, by the `Verifier` and by the
//! core [`tessera::token::authorize`] it wraps, which must agree.
//!
//! Needs `node` and `examples/js/node_modules` (`npm ci --prefix examples/js`,
//! which `scripts/test.sh` runs). Without them the tests say so loudly and
//! pass, unless `TESSERA_REQUIRE_NODE=1`, which CI sets.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use biscuit_auth::KeyPair;
use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use tempfile::TempDir;
use tessera::token::{
    self, Action, AgentId, Audience, BlockKind, Capability, KeySet, Lifetime, Limits, Minted,
    Narrowing, Reason, Request, Resource, ResourcePattern, RootKeyPair,
};
use tessera::verify::{
    CheckRequest, Grant, KeySource, Presentation, Rejection, Revocations, Verifier,
};

mod mcp;

const AGENT: &str = "agent://acme/planner";
const AUDIENCE: &str = "https://docs.acme.example";
/// Not 0, so that a library writing a default id instead of keeping the
/// token's would be caught.
const ROOT_KEY_ID: u32 = 7;

fn js_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/js")
}

/// Whether node and the example's packages are here; `false` after a loud
/// message, or a failure when `TESSERA_REQUIRE_NODE=1`.
fn node_ready() -> bool {
    let node = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let modules = js_dir().join("node_modules");
    let problem = if !node.is_ok_and(|s| s.success()) {
        "`node` is not on PATH"
    } else if !modules.join("@biscuit-auth/biscuit-wasm").is_dir()
        || !modules.join("@modelcontextprotocol/sdk").is_dir()
    {
        "examples/js/node_modules is missing (run `npm ci --prefix examples/js`)"
    } else {
        return true;
    };
    assert!(
        std::env::var("TESSERA_REQUIRE_NODE").as_deref() != Ok("1"),
        "TESSERA_REQUIRE_NODE=1 but {problem}"
    );
    eprintln!(
        "\n*** SKIPPED: {problem}, so this JavaScript interop test did not run \
         (bash scripts/test.sh installs it; TESSERA_REQUIRE_NODE=1 makes this fail). ***\n"
    );
    false
}

/// When every offline token here is minted.
fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-22T23:48:17Z")
        .unwrap()
        .to_utc()
}

fn at(minutes: i64) -> DateTime<Utc> {
    t0() + Duration::minutes(minutes)
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A root key, the key set a verifier would hold, and a directory for the
/// files handed to `attenuate.mjs`.
struct Interop {
    dir: TempDir,
    /// The root key that mints here (none when the issuer mints).
    minter: Option<RootKeyPair>,
    root_id: u32,
    keys: KeySet,
    limits: Limits,
    files: AtomicUsize,
}

impl Interop {
    fn new() -> Option<Self> {
        if !node_ready() {
            return None;
        }
        let root = RootKeyPair::new(ROOT_KEY_ID, KeyPair::new());
        let mut it = Self::with_root(root.id, &root.keypair.public());
        it.minter = Some(root);
        Some(it)
    }

    /// For tokens under the root key `public` with id `id`.
    fn with_root(id: u32, public: &biscuit_auth::PublicKey) -> Self {
        let keys = KeySet::single(id, *public);
        let dir = tempfile::tempdir().unwrap();
        let public = token::format_public_key(public);
        std::fs::write(dir.path().join("root.pub"), format!("{public}\n")).unwrap();
        Self {
            dir,
            minter: None,
            root_id: id,
            keys,
            limits: Limits::default(),
            files: AtomicUsize::new(0),
        }
    }

    /// Mints `docs:read` on `docs/team-a/*` at the audience for ten minutes
    /// from `T0`.
    fn mint(&self) -> Minted {
        let cap = Capability {
            agent: AgentId::parse(AGENT).unwrap(),
            action: Action::parse("docs:read").unwrap(),
            resource: ResourcePattern::parse("docs/team-a/*").unwrap(),
            audience: Some(Audience::parse(AUDIENCE).unwrap()),
            lifetime: Lifetime::parse("10m").unwrap(),
            holder_key: None,
            on_behalf: None,
        };
        token::mint(&cap, self.minter.as_ref().unwrap(), t0()).unwrap()
    }

    /// Runs `node attenuate.mjs COMMAND` on `token` with the root key file
    /// `key_file` and the root key id `key_id`, plus `args`.
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
        Command::new("node")
            .arg(js_dir().join("attenuate.mjs"))
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

    fn run(&self, command: &str, token: &str, args: &[&str]) -> Output {
        self.run_with_key(command, token, "root.pub", self.root_id, args)
    }

    /// [`Self::run`], which must succeed with one line on standard output
    /// and nothing on standard error; that line.
    fn ok(&self, command: &str, token: &str, args: &[&str]) -> String {
        let out = self.run(command, token, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "attenuate.mjs {command} {args:?} failed ({}): {stderr}",
            out.status
        );
        assert!(stderr.is_empty(), "nothing on stderr, got {stderr:?}");
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert_eq!(stdout.lines().count(), 1, "one line, got {stdout:?}");
        stdout.trim().to_owned()
    }

    /// The core's decision, after checking that the Verifier agrees.
    fn authorize(&self, token: &str, req: &Request) -> Result<Vec<String>, Reason> {
        let core = token::authorize(token, &self.keys, req, |_| false, &self.limits);
        let verdict = self.verify(token, req);
        match (&core, &verdict) {
            (Ok(g), Ok(v)) => assert_eq!(g.chain, v.chain, "the chains differ"),
            (Err(d), Err(r)) => assert_eq!(d.reason, r.reason, "{d} vs {r}"),
            _ => panic!("the core and the Verifier disagree: {core:?} vs {verdict:?}"),
        }
        core.map(|g| g.revocation_ids).map_err(|d| d.reason)
    }

    /// The Verifier's decision at the request's time and service (bearer
    /// tokens only here: no proof of possession).
    fn verify(&self, token: &str, req: &Request) -> Result<Grant, Rejection> {
        let now = req.now;
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
                dpop: None,
                method: "POST",
                url: "https://docs.example/call",
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

    fn allows(&self, token: &str, req: &Request) -> Vec<String> {
        self.authorize(token, req)
            .unwrap_or_else(|r| panic!("expected {req:?} to be allowed, denied: {r:?}"))
    }

    fn denies(&self, token: &str, req: &Request) -> Reason {
        match self.authorize(token, req) {
            Ok(_) => panic!("expected {req:?} to be denied, allowed"),
            Err(r) => r,
        }
    }

    /// The kinds of the token's blocks and the Datalog of its last block.
    fn blocks(&self, token: &str) -> (Vec<BlockKind>, String) {
        let view = token::inspect(token, Some(&self.keys), &self.limits).unwrap();
        assert!(view.verified);
        assert_eq!(view.root_key_id, Some(self.root_id), "the root key id kept");
        let kinds = view.blocks.iter().map(|b| b.kind).collect();
        (kinds, view.blocks.last().unwrap().datalog.clone())
    }
}

/// A request at the audience.
fn req(op: &str, resource: &str, now: DateTime<Utc>) -> Request {
    Request {
        amount: None,
        operation: Action::parse(op).unwrap(),
        resource: Resource::parse(resource).unwrap(),
        service: Some(Audience::parse(AUDIENCE).unwrap()),
        now,
        proven_key: None,
    }
}

/// A failed run: non-zero exit, nothing on standard output, one line on
/// standard error, which is returned.
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
fn a_token_narrowed_in_javascript_is_allowed_within_the_narrowing_only() {
    let Some(it) = Interop::new() else { return };
    let minted = it.mint();
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

    // The token as minted allows the requests the narrowing is about to
    // refuse, so the refusals below come from the JavaScript block.
    it.allows(&minted.token, &req("docs:read", "docs/team-a/hr", at(1)));
    it.allows(
        &minted.token,
        &req("docs:read", "docs/team-a/reports/q3", at(6)),
    );

    let ids = it.allows(
        &narrowed,
        &req("docs:read", "docs/team-a/reports/q3", at(1)),
    );
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[0], minted.revocation_id);
    // At the JavaScript expiry itself, still allowed (`$t <= expiry`).
    it.allows(
        &narrowed,
        &req("docs:read", "docs/team-a/reports/q3", at(5)),
    );

    assert_eq!(
        it.denies(&narrowed, &req("docs:read", "docs/team-a/hr", at(1))),
        Reason::OutOfScope
    );
    assert_eq!(
        it.denies(
            &narrowed,
            &req("docs:read", "docs/team-a/reports/q3", at(6))
        ),
        Reason::Expired
    );
    // The authority block's own limits still hold.
    assert_eq!(
        it.denies(
            &narrowed,
            &req("docs:write", "docs/team-a/reports/q3", at(1))
        ),
        Reason::OutOfScope
    );
    let mut elsewhere = req("docs:read", "docs/team-a/reports/q3", at(1));
    elsewhere.service = Some(Audience::parse("https://other.acme.example").unwrap());
    assert_eq!(it.denies(&narrowed, &elsewhere), Reason::WrongAudience);

    // Tessera reads the block as an attenuation holding exactly the two
    // checks of the token schema, with their values as written.
    let (kinds, datalog) = it.blocks(&narrowed);
    assert_eq!(kinds, [BlockKind::Authority, BlockKind::Attenuation]);
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
fn a_javascript_narrowing_by_action_resource_and_audience_holds_in_rust() {
    let Some(it) = Interop::new() else { return };
    let minted = it.mint();
    // A resource name that would be Datalog syntax if it were formatted into
    // source: as a parameter it is one string, matched exactly.
    let odd = r#"docs/team-a/"); right("docs:read", "docs/team-b/x"#;
    let narrowed = it.ok(
        "narrow",
        &minted.token,
        &[
            "--action",
            "docs:read",
            "--resource",
            odd,
            "--audience",
            AUDIENCE,
        ],
    );
    let (kinds, datalog) = it.blocks(&narrowed);
    assert_eq!(kinds, [BlockKind::Authority, BlockKind::Attenuation]);
    assert_eq!(datalog.matches("check if").count(), 3, "{datalog}");

    it.allows(&narrowed, &req("docs:read", odd, at(1)));
    for other in ["docs/team-a/", "docs/team-a/x", "docs/team-b/x"] {
        assert_eq!(
            it.denies(&narrowed, &req("docs:read", other, at(1))),
            Reason::OutOfScope,
            "{other}"
        );
    }
}

/// Every way a first-party block might try to grant more
/// (`attenuate.mjs widen`).
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

#[test]
fn a_widening_block_written_in_javascript_grants_nothing() {
    let Some(it) = Interop::new() else { return };
    let minted = it.mint();
    it.allows(&minted.token, &req("docs:read", "docs/team-a/x", at(1)));
    let widened = it.ok("widen", &minted.token, WIDEN);

    // The block made it into the token as written, so the denials below are
    // not for want of it.
    let (kinds, datalog) = it.blocks(&widened);
    assert_eq!(kinds, [BlockKind::Authority, BlockKind::Attenuation]);
    for expected in [
        r#"right("docs:write", "docs/team-a/x");"#,
        r#"right_prefix("docs:read", "");"#,
        "holder_proven(true);",
        "right($op, $r) <- operation($op), resource($r);",
    ] {
        assert!(datalog.contains(expected), "{expected} in {datalog}");
    }

    // A first-party block with facts or a rule fails the shape gate: the
    // whole token is refused, for what it granted and for anything the
    // block tried to add, later, or elsewhere.
    let mut elsewhere = req("docs:read", "docs/team-a/x", at(1));
    elsewhere.service = Some(Audience::parse("https://other.acme.example").unwrap());
    for request in [
        req("docs:read", "docs/team-a/x", at(1)),
        req("docs:write", "docs/team-a/x", at(1)),
        req("docs:read", "docs/team-b/plans", at(1)),
        req("docs:write", "docs/team-b/plans", at(1)),
        req("docs:read", "docs/team-a/x", at(11)),
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

    // Narrowed in JavaScript first, widened after: still nothing.
    let narrowed = it.ok(
        "narrow",
        &minted.token,
        &["--resource-prefix", "docs/team-a/reports/"],
    );
    let both = it.ok("widen", &narrowed, WIDEN);
    assert_eq!(
        it.denies(&both, &req("docs:read", "docs/team-a/reports/q3", at(1))),
        Reason::LimitsExceeded
    );
}

#[test]
fn javascript_verifies_a_token_attenuated_by_tessera() {
    let Some(it) = Interop::new() else { return };
    let minted = it.mint();
    let narrowing = Narrowing {
        resource: Some(ResourcePattern::parse("docs/team-a/reports/*").unwrap()),
        expires_at: Some(at(5)),
        ..Narrowing::default()
    };
    let attenuated = token::attenuate(&minted.token, &narrowing, &it.limits).unwrap();
    let view = token::inspect(&attenuated, Some(&it.keys), &it.limits).unwrap();
    let verify = |resource: &str, service: &str, minutes: i64| {
        it.run(
            "verify",
            &attenuated,
            &[
                "--operation",
                "docs:read",
                "--resource",
                resource,
                "--service",
                service,
                "--time",
                &rfc3339(at(minutes)),
            ],
        )
    };

    let out = verify("docs/team-a/reports/q3", AUDIENCE, 1);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["allowed"], true, "{result}");
    assert_eq!(result["blocks"], 2, "{result}");
    let js_ids: Vec<&str> = result["revocation_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let rust_ids: Vec<&str> = view
        .blocks
        .iter()
        .map(|b| b.revocation_id.as_str())
        .collect();
    assert_eq!(js_ids, rust_ids, "both libraries name the same blocks");

    // Tessera's block holds in JavaScript: outside the prefix, and after
    // the narrowed expiry; and the authority block's audience check.
    let outside = failed(&verify("docs/team-a/hr", AUDIENCE, 1));
    assert!(outside.contains("denied"), "{outside}");
    assert!(outside.contains("docs/team-a/reports/"), "{outside}");
    let late = failed(&verify("docs/team-a/reports/q3", AUDIENCE, 6));
    assert!(late.contains("time($t)"), "{late}");
    let elsewhere = failed(&verify(
        "docs/team-a/reports/q3",
        "https://other.acme.example",
        1,
    ));
    assert!(elsewhere.contains("service($s)"), "{elsewhere}");
}

#[test]
fn javascript_refuses_a_token_under_another_root_key_or_key_id() {
    let Some(it) = Interop::new() else { return };
    let minted = it.mint();
    let other = token::format_public_key(&KeyPair::new().public());
    std::fs::write(it.dir.path().join("other.pub"), other).unwrap();
    std::fs::write(it.dir.path().join("bad.pub"), "ed25519/zz").unwrap();

    let args = ["--resource-prefix", "docs/team-a/reports/"];
    let wrong_key =
        failed(&it.run_with_key("narrow", &minted.token, "other.pub", ROOT_KEY_ID, &args));
    assert!(wrong_key.contains("token rejected"), "{wrong_key}");
    let wrong_id = failed(&it.run_with_key("narrow", &minted.token, "root.pub", 0, &args));
    assert!(
        wrong_id.contains(&format!("root key id {ROOT_KEY_ID}, not 0")),
        "{wrong_id}"
    );
    let bad_key = failed(&it.run_with_key("narrow", &minted.token, "bad.pub", ROOT_KEY_ID, &args));
    assert!(bad_key.contains("root key"), "{bad_key}");

    // One byte of the authority block changed.
    let mut bytes = token::decode(&minted.token, &it.limits).unwrap();
    let i = bytes.len() / 3;
    bytes[i] ^= 0x01;
    let tampered = failed(&it.run("narrow", &token::encode(&bytes), &args));
    assert!(tampered.contains("token rejected"), "{tampered}");

    // Bad usage: exit status 2, one line.
    let out = it.run("narrow", &minted.token, &["--expires-at", "tomorrow"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(failed(&out).contains("RFC 3339"));
    let out = it.run("narrow", &minted.token, &[]);
    assert!(failed(&out).contains("nothing to narrow"));
}
