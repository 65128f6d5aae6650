//! The `tessera` command line, run as a process.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_tessera");

struct Dir {
    tmp: TempDir,
}

impl Dir {
    fn new() -> Self {
        Self {
            tmp: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_with_stdin(args, "")
    }

    fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = Command::new(BIN)
            .args(args)
            .current_dir(self.tmp.path())
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    /// Runs a command that must succeed; returns its trimmed stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// A root key, an agent key and a bound token for `docs:read` on `docs/*`.
    fn setup(&self) -> (String, String) {
        let root_pub = self.ok(&["keygen", "--out", "root.key"]);
        let agent_pub = self.ok(&["keygen", "--out", "agent.key"]);
        let token = self.ok(&[
            "token",
            "mint",
            "--root-key",
            "root.key",
            "--agent",
            "agent://acme/a",
            "--action",
            "docs:read",
            "--resource",
            "docs/*",
            "--bind-key",
            &agent_pub,
        ]);
        (root_pub, token)
    }
}

/// Asserts a failure reported as exactly one line, without a panic.
fn assert_one_line_failure(out: &Output, code: i32, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "stderr: {stderr}");
    assert!(stderr.starts_with("tessera: "), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
    assert!(stderr.contains(needle), "expected {needle:?} in {stderr}");
}

#[cfg(unix)]
#[test]
fn keygen_writes_a_private_key_readable_only_by_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    let d = Dir::new();
    let public = d.ok(&["keygen", "--out", "k.key"]);
    assert!(public.starts_with("ed25519/") && public.len() == 8 + 64);
    let mode = std::fs::metadata(d.path("k.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(d.ok(&["keys", "public", "--key", "k.key"]), public);
    // An existing key is never overwritten by accident.
    assert_one_line_failure(&d.run(&["keygen", "--out", "k.key"]), 2, "exists");
    assert_eq!(d.ok(&["keys", "public", "--key", "k.key"]), public);
}

#[test]
fn verify_exits_zero_with_a_summary_when_allowed_and_one_with_the_reason_when_denied() {
    let d = Dir::new();
    let (root_pub, token) = d.setup();
    let allowed = d.ok(&[
        "token",
        "verify",
        &token,
        "--keys",
        &root_pub,
        "--no-revocation-check",
        "--operation",
        "docs:read",
        "--resource",
        "docs/x",
        "--holder-key",
        "agent.key",
    ]);
    assert!(
        allowed.starts_with("allowed: agent://acme/a may docs:read"),
        "{allowed}"
    );
    assert_eq!(allowed.lines().count(), 1);

    let out = d.run(&[
        "token",
        "verify",
        &token,
        "--keys",
        &root_pub,
        "--no-revocation-check",
        "--operation",
        "docs:write",
        "--resource",
        "docs/x",
        "--holder-key",
        "agent.key",
    ]);
    assert_one_line_failure(&out, 1, "denied: out_of_scope");
    assert!(out.stdout.is_empty());

    let out = d.run(&[
        "token",
        "verify",
        &token,
        "--keys",
        &root_pub,
        "--no-revocation-check",
        "--operation",
        "docs:read",
        "--resource",
        "docs/x",
    ]);
    assert_one_line_failure(&out, 1, "denied: holder_not_proven");
}

#[test]
fn a_token_is_read_from_an_argument_a_file_or_standard_input() {
    let d = Dir::new();
    let (root_pub, token) = d.setup();
    std::fs::write(d.path("t.tok"), format!("{token}\n")).unwrap();
    let from_arg = d.ok(&["token", "inspect", &token, "--keys", &root_pub, "--json"]);
    let from_file = d.ok(&["token", "inspect", "t.tok", "--keys", &root_pub, "--json"]);
    let out = d.run_with_stdin(
        &["token", "inspect", "-", "--keys", &root_pub, "--json"],
        &token,
    );
    assert!(out.status.success());
    let from_stdin = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(from_arg, from_file);
    assert_eq!(from_arg, from_stdin);
    let v: serde_json::Value = serde_json::from_str(&from_arg).unwrap();
    assert_eq!(v["verified"], true);
    assert_eq!(v["agent"], "agent://acme/a");
    assert_eq!(v["rights"][0]["resource"], "docs/");
    assert_eq!(v["rights"][0]["prefix"], true);
}

#[test]
fn attenuate_and_delegate_narrow_what_verify_allows() {
    let d = Dir::new();
    let (root_pub, token) = d.setup();
    let sub_pub = d.ok(&["keygen", "--out", "sub.key"]);
    let narrowed = d.ok(&["token", "attenuate", &token, "--resource", "docs/a/*"]);
    let delegated = d.ok(&[
        "token",
        "delegate",
        &narrowed,
        "--holder-key",
        "agent.key",
        "--to",
        "agent://acme/sub",
        "--to-key",
        &sub_pub,
        "--resource",
        "docs/a/b",
    ]);
    let verify = |resource: &str, key: &str| {
        d.run(&[
            "token",
            "verify",
            &delegated,
            "--keys",
            &root_pub,
            "--no-revocation-check",
            "--operation",
            "docs:read",
            "--resource",
            resource,
            "--holder-key",
            key,
        ])
    };
    let ok = verify("docs/a/b", "sub.key");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("agent://acme/a -> agent://acme/sub"));
    assert_one_line_failure(&verify("docs/a/c", "sub.key"), 1, "out_of_scope");
    assert_one_line_failure(&verify("docs/a/b", "agent.key"), 1, "holder_not_proven");
    // Only the current holder can delegate further.
    let out = d.run(&[
        "token",
        "delegate",
        &delegated,
        "--holder-key",
        "agent.key",
        "--to",
        "agent://acme/x",
        "--to-key",
        &sub_pub,
    ]);
    assert_one_line_failure(&out, 2, "not the current holder");
}

#[test]
fn verify_without_a_revocation_source_refuses_unless_told_and_then_says_so() {
    let d = Dir::new();
    let (root_pub, token) = d.setup();
    std::fs::write(
        d.path("jwks.json"),
        d.ok(&["keys", "jwks", "--root-key", "root.key"]),
    )
    .unwrap();
    let verify = |keys: &[&str], extra: &[&str]| {
        let mut args = vec!["token", "verify", token.as_str()];
        args.extend_from_slice(keys);
        args.extend_from_slice(&[
            "--operation",
            "docs:read",
            "--resource",
            "docs/x",
            "--holder-key",
            "agent.key",
        ]);
        args.extend_from_slice(extra);
        d.run(&args)
    };
    // No revocation source: refused as bad input, naming the ways out,
    // with root keys given inline and from a JWKS file alike.
    // (The Verifier behind --jwks checks for one tool server: --service.)
    let jwks = ["--jwks", "jwks.json", "--service", "https://tool.example"];
    for keys in [&["--keys", root_pub.as_str()][..], &jwks[..]] {
        let out = verify(keys, &[]);
        assert_one_line_failure(&out, 2, "--no-revocation-check");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("--issuer"), "{stderr}");
        assert!(out.stdout.is_empty());

        // Said explicitly: allowed, and the output says revocation was
        // not checked (standard output keeps its one line).
        let out = verify(keys, &["--no-revocation-check"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.starts_with("allowed: "), "{stdout}");
        assert_eq!(stdout.trim_end().lines().count(), 1, "{stdout}");
        assert!(stderr.contains("revocation was not checked"), "{stderr}");

        // --json output stays JSON; the warning goes to standard error.
        let out = verify(keys, &["--no-revocation-check", "--json"]);
        assert!(out.status.success());
        let _: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(String::from_utf8_lossy(&out.stderr).contains("revocation was not checked"));
    }
    // Only known ids: allowed when not among them, and said so.
    let out = verify(
        &["--keys", root_pub.as_str()],
        &["--revoked", &"ab".repeat(64)],
    );
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("only against the ids given with --revoked"),
        "{stderr}"
    );
    // The two contradict each other.
    let out = verify(
        &["--keys", root_pub.as_str()],
        &["--revoked", &"ab".repeat(64), "--no-revocation-check"],
    );
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn revoked_ids_given_on_the_command_line_deny() {
    let d = Dir::new();
    let (root_pub, token) = d.setup();
    let inspected: serde_json::Value =
        serde_json::from_str(&d.ok(&["token", "inspect", &token, "--json"])).unwrap();
    assert_eq!(inspected["verified"], false);
    let rid = inspected["blocks"][0]["revocation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = d.run(&[
        "token",
        "verify",
        &token,
        "--keys",
        &root_pub,
        "--operation",
        "docs:read",
        "--resource",
        "docs/x",
        "--holder-key",
        "agent.key",
        "--revoked",
        &rid,
    ]);
    assert_one_line_failure(&out, 1, "denied: revoked");
}

#[test]
fn bad_input_is_one_line_on_stderr_and_never_a_panic() {
    let d = Dir::new();
    let (root_pub, token) = d.setup();
    let mint = |agent: &str, action: &str, ttl: &str| {
        d.run(&[
            "token",
            "mint",
            "--root-key",
            "root.key",
            "--agent",
            agent,
            "--action",
            action,
            "--resource",
            "r",
            "--ttl",
            ttl,
        ])
    };
    assert_one_line_failure(&mint("agent://a b", "x", "5m"), 2, "invalid agent id");
    assert_one_line_failure(&mint("agent://a\"b", "x", "5m"), 2, "invalid agent id");
    assert_one_line_failure(
        &mint("agent://ab", "orders create", "5m"),
        2,
        "invalid action",
    );
    assert_one_line_failure(&mint("agent://ab", "x", "0s"), 2, "invalid lifetime");
    assert_one_line_failure(&mint("agent://ab", "x", "2d"), 2, "invalid lifetime");
    assert_one_line_failure(
        &d.run(&["token", "inspect", "not*base64"]),
        2,
        "malformed token",
    );
    let truncated = &token[..token.len() / 2];
    assert_one_line_failure(&d.run(&["token", "inspect", truncated]), 2, "malformed");
    let other_pub = d.ok(&["keygen", "--out", "other.key"]);
    assert_one_line_failure(
        &d.run(&["token", "inspect", &token, "--keys", &other_pub]),
        2,
        "bad_signature",
    );
    assert_one_line_failure(
        &d.run(&[
            "token",
            "inspect",
            &token,
            "--keys",
            &format!("9:{root_pub}"),
        ]),
        2,
        "unknown_key_id",
    );
    assert_one_line_failure(
        &d.run(&["token", "inspect", &token, "--keys", "nonsense"]),
        2,
        "neither a JWKS file nor a public key",
    );
    assert_one_line_failure(
        &d.run(&[
            "token",
            "mint",
            "--root-key",
            "missing.key",
            "--agent",
            "agent://a",
            "--action",
            "a",
            "--resource",
            "r",
        ]),
        2,
        "cannot read key file",
    );
    assert_one_line_failure(
        &d.run_with_stdin(&["token", "inspect"], ""),
        2,
        "no token given",
    );
    // A usage error is clap's, in full (tests/it/cli_help.rs), and no panic.
    let out = d.run(&["token", "frobnicate"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("unrecognized subcommand 'frobnicate'"),
        "{stderr}"
    );
    assert!(stderr.contains("Usage: tessera token"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_resource_with_datalog_syntax_is_one_exact_resource() {
    let d = Dir::new();
    let root_pub = d.ok(&["keygen", "--out", "root.key"]);
    let evil = "x\"); right(\"admin:all\", \"*\"); check if true; //\nline";
    let token = d.ok(&[
        "token",
        "mint",
        "--root-key",
        "root.key",
        "--agent",
        "agent://a",
        "--action",
        "docs:read",
        "--resource",
        evil,
    ]);
    let v: serde_json::Value =
        serde_json::from_str(&d.ok(&["token", "inspect", &token, "--json"])).unwrap();
    assert_eq!(v["rights"].as_array().unwrap().len(), 1);
    assert_eq!(v["rights"][0]["resource"], evil);
    let verify = |op: &str, res: &str| {
        d.run(&[
            "token",
            "verify",
            &token,
            "--keys",
            &root_pub,
            "--no-revocation-check",
            "--operation",
            op,
            "--resource",
            res,
        ])
    };
    assert!(verify("docs:read", evil).status.success());
    assert_one_line_failure(&verify("admin:all", "*"), 1, "out_of_scope");
    assert_one_line_failure(&verify("docs:read", "x"), 1, "out_of_scope");
}

#[test]
fn a_closed_standard_output_ends_quietly() {
    let d = Dir::new();
    let (_, token) = d.setup();
    let mut child = Command::new(BIN)
        .args(["token", "inspect", &token])
        .current_dir(d.tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader goes away before anything is written
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.status.success(), "{stderr}");
}

#[test]
fn jwks_lists_each_root_key_under_its_id() {
    let d = Dir::new();
    let a = d.ok(&["keygen", "--out", "a.key"]);
    let b = d.ok(&["keygen", "--out", "b.key"]);
    let jwks = d.ok(&[
        "keys",
        "jwks",
        "--root-key",
        "a.key",
        "--root-key",
        "7=b.key",
    ]);
    let set = tessera::token::KeySet::from_jwks_json(&jwks).unwrap();
    assert_eq!(set.get(0).map(ToString::to_string), Some(a));
    assert_eq!(set.get(7).map(ToString::to_string), Some(b));
    assert!(Path::new(&d.path("a.key")).exists());
}
