//! Interoperability on behalf of a person: a person logs in at the real test
//! IdP (`scripts/idp-login.py` drives its authorization-code flow with PKCE),
//! and the Python agent (`examples/python/exchange.py`, Authlib) exchanges
//! the ID token at an issuer trusting that IdP (RFC 8693). The token must
//! name the person; every refusal must be one line, with no token written.
//!
//! Needs node with tests/idp/node_modules (else skips, unless
//! `TESSERA_REQUIRE_NODE=1`) and the Python venv (else skips, unless
//! `TESSERA_REQUIRE_PYTHON=1`).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use biscuit_auth::{KeyPair, PrivateKey};
use tempfile::TempDir;
use tessera::token::{self, Action, Audience, Authorized, Limits, Reason, Request, Resource};

use crate::people::fixture::{app_with, granted_to, reader_role, register, PLANNER};
use crate::people::idp::TestIdp;
use crate::server::helpers::{now, TestAgent, TestApp, AUDIENCE};

const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn python() -> Option<PathBuf> {
    crate::python::python_with(
        "authlib, joserfc, requests",
        "Python token exchange interop test",
    )
}

/// The test IdP, an issuer trusting it (alice's `finance` group holds
/// `docs:read` on `docs/*`), the planner registered (`docs:read` and
/// `docs:write` on `docs/team-a/*`), and a directory for the files.
struct Setup {
    python: PathBuf,
    idp: TestIdp,
    app: TestApp,
    planner: TestAgent,
    dir: TempDir,
}

impl Setup {
    async fn start() -> Option<Self> {
        Self::start_with_role_for("finance").await
    }

    /// As [`start`](Self::start), the reader role held by `group`.
    async fn start_with_role_for(group: &str) -> Option<Self> {
        let python = python()?;
        let idp = TestIdp::start()?;
        let app = app_with(&idp, vec![reader_role(group)], 30).await;
        let planner = register(&app, PLANNER).await;
        Some(Self {
            python,
            idp,
            app,
            planner,
            dir: tempfile::tempdir().unwrap(),
        })
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `agent`'s key as `tessera keygen` does (PKCS#8 PEM).
    fn key_file(&self, agent: &TestAgent) -> PathBuf {
        let private: PrivateKey = format!("ed25519-private/{}", hex::encode(agent.key.to_bytes()))
            .parse()
            .unwrap();
        let pem = tessera::token::ed25519_private_key_pem(&KeyPair::from(&private)).unwrap();
        let path = self.file("agent.key");
        std::fs::write(&path, pem).unwrap();
        path
    }

    /// Checks `token` for `docs:read` on `resource` at the test audience,
    /// as a tool server would, with the issuer's published keys.
    fn authorize(&self, token: &str, resource: &str) -> Result<Authorized, token::Denial> {
        let req = Request {
            amount: None,
            operation: Action::parse("docs:read").unwrap(),
            resource: Resource::parse(resource).unwrap(),
            service: Some(Audience::parse(AUDIENCE).unwrap()),
            now: now(),
            proven_key: None,
        };
        token::authorize(token, &self.app.keys(), &req, |_| false, &Limits::default())
    }

    async fn run(&self, script: &str, args: &[&str]) -> Output {
        tokio::process::Command::new(&self.python)
            .arg(repo(script))
            .args(args)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .kill_on_drop(true)
            .output()
            .await
            .unwrap()
    }

    /// `person` logs in through the IdP's pages (the login script); their
    /// ID token (for `client`) is in the returned file.
    async fn login(&self, person: &str, client: &str) -> PathBuf {
        let out = self.file(&format!("{person}-{client}.idtoken"));
        let run = self
            .run(
                "scripts/idp-login.py",
                &[
                    "--idp",
                    &self.idp.issuer,
                    "--person",
                    person,
                    "--client",
                    client,
                    "--out",
                    out.to_str().unwrap(),
                ],
            )
            .await;
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(run.status.success(), "idp-login failed: {stderr}");
        let token = std::fs::read_to_string(&out).unwrap();
        let token = token.trim();
        assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
        let stdout = String::from_utf8_lossy(&run.stdout);
        assert!(
            !stdout.contains(token) && !stderr.contains(token),
            "the ID token is never printed"
        );
        let mode = std::fs::metadata(&out).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the ID token file is private: {mode:o}");
        out
    }

    /// The agent exchanges the ID token in `id_token` with the Python
    /// example, for `action` on `resource` at the test audience.
    async fn exchange(
        &self,
        agent: &TestAgent,
        id_token: &Path,
        action: &str,
        resource: &str,
        extra: &[&str],
    ) -> (Output, PathBuf) {
        let key = self.key_file(agent);
        let out = self.file("person.tok");
        let _ = std::fs::remove_file(&out);
        let issuer = self.app.url("");
        let mut args = vec![
            "--issuer",
            &issuer,
            "--agent",
            &agent.id,
            "--key",
            key.to_str().unwrap(),
            "--id-token",
            id_token.to_str().unwrap(),
            "--action",
            action,
            "--resource",
            resource,
            "--audience",
            AUDIENCE,
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        (self.run("examples/python/exchange.py", &args).await, out)
    }
}

/// The token written by a successful exchange, and the JSON line printed.
fn exchanged(run: &Output, out: &Path) -> (String, serde_json::Value) {
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "exchange.py failed: {stderr}");
    assert!(stderr.trim().is_empty(), "unexpected stderr: {stderr}");
    let token = std::fs::read_to_string(out).unwrap().trim().to_owned();
    let stdout = String::from_utf8(run.stdout.clone()).unwrap();
    assert!(!stdout.contains(&token), "the token is never printed");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one JSON line: {stdout:?}");
    let shown: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert!(shown.get("access_token").is_none(), "{shown}");
    let mode = std::fs::metadata(out).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "the token file is private: {mode:o}");
    (token, shown)
}

/// A refusal: exit 1, one line on stderr naming `code`, no token file.
fn refused(run: &Output, out: &Path, code: &str) -> String {
    let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
    assert!(!run.status.success(), "a token was issued: {stderr}");
    assert!(run.stdout.is_empty(), "stdout: {:?}", run.stdout);
    assert!(stderr.contains(code), "{code} expected: {stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(!out.exists(), "no token file is written on a refusal");
    stderr
}

#[tokio::test(flavor = "multi_thread")]
async fn alice_logs_in_and_the_python_agent_gets_a_token_that_names_her() {
    let Some(s) = Setup::start().await else {
        return;
    };
    let id_token = s.login("alice", "tessera-eddsa").await;
    let (run, out) = s
        .exchange(&s.planner, &id_token, "docs:read", "docs/team-a/q3", &[])
        .await;
    let (token, shown) = exchanged(&run, &out);
    assert_eq!(shown["token_type"], "Bearer", "{shown}");
    assert_eq!(shown["issued_token_type"], ACCESS_TOKEN, "{shown}");
    assert_eq!(shown["scope"], "docs:read", "{shown}");
    assert_eq!(shown["expires_in"], 300, "{shown}");

    let seen = s.app.inspect(&token);
    assert_eq!(seen.agent, PLANNER);
    assert!(seen.holder.is_none(), "a bearer token");
    let authority = &seen.blocks[0].datalog;
    assert!(
        authority.contains(&format!("on_behalf_of(\"{}\", \"alice\")", s.idp.issuer)),
        "{authority}"
    );
    // As a tool server sees it: allowed for alice, through the planner,
    // for exactly what was asked.
    let grant = s.authorize(&token, "docs/team-a/q3").unwrap();
    let on_behalf = grant
        .on_behalf
        .as_ref()
        .expect("the grant names the person");
    assert_eq!(on_behalf.person.issuer(), s.idp.issuer);
    assert_eq!(on_behalf.person.subject(), "alice");
    assert!(on_behalf.prior_actors.is_empty());
    assert_eq!(grant.agent().map(|a| a.as_str()), Some(PLANNER));
    let denial = s.authorize(&token, "docs/team-a/q4").unwrap_err();
    assert_eq!(denial.reason, Reason::OutOfScope, "{denial}");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_dpop_the_exchanged_token_is_bound_to_the_agent_key() {
    let Some(s) = Setup::start().await else {
        return;
    };
    let id_token = s.login("alice", "tessera-eddsa").await;
    let (run, out) = s
        .exchange(
            &s.planner,
            &id_token,
            "docs:read",
            "docs/team-a/*",
            &["--dpop"],
        )
        .await;
    let (token, shown) = exchanged(&run, &out);
    assert_eq!(shown["token_type"], "DPoP", "{shown}");
    let seen = s.app.inspect(&token);
    let holder = seen.holder.expect("bound to a key");
    assert!(
        holder.contains(&hex::encode(s.planner.key.verifying_key().as_bytes())),
        "bound to the planner's key: {holder}"
    );
    assert!(seen.blocks[0].datalog.contains("on_behalf_of("));
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_are_one_line_and_write_no_token() {
    let Some(s) = Setup::start().await else {
        return;
    };
    let alice = s.login("alice", "tessera-eddsa").await;

    // Inside the planner's ceiling, outside alice's role (docs:read only).
    let (run, out) = s
        .exchange(&s.planner, &alice, "docs:write", "docs/team-a/q3", &[])
        .await;
    let e = refused(&run, &out, "invalid_scope");
    assert!(e.contains("person's rights"), "{e}");

    // Inside alice's role, outside the planner's ceiling.
    let (run, out) = s
        .exchange(&s.planner, &alice, "docs:read", "docs/team-b/q3", &[])
        .await;
    let e = refused(&run, &out, "invalid_scope");
    assert!(e.contains("agent's ceiling"), "{e}");

    // bob approved no agent: no may_act, no standing consent.
    let bob = s.login("bob", "tessera-eddsa").await;
    let (run, out) = s
        .exchange(&s.planner, &bob, "docs:read", "docs/team-a/q3", &[])
        .await;
    let e = refused(&run, &out, "invalid_grant");
    assert!(e.contains("tessera person consent"), "{e}");

    // alice's ID token stolen by another registered agent: her may_act
    // names the planner.
    let thief = register(&s.app, "agent://acme/thief").await;
    let (run, out) = s
        .exchange(&thief, &alice, "docs:read", "docs/team-a/q3", &[])
        .await;
    let e = refused(&run, &out, "invalid_grant");
    assert!(e.contains("may_act"), "{e}");

    // An ID token the IdP issued to another application (another audience).
    let other = s.login("alice", "other-app").await;
    let (run, out) = s
        .exchange(&s.planner, &other, "docs:read", "docs/team-a/q3", &[])
        .await;
    refused(&run, &out, "invalid_grant");

    // alice's ID token with a group added (its signature no longer holds).
    let text = std::fs::read_to_string(&alice).unwrap();
    let parts: Vec<&str> = text.trim().split('.').collect();
    let mut claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["groups"] = serde_json::json!(["finance", "admins"]);
    let forged_payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let forged = s.file("forged.idtoken");
    std::fs::write(
        &forged,
        format!("{}.{forged_payload}.{}", parts[0], parts[2]),
    )
    .unwrap();
    let (run, out) = s
        .exchange(&s.planner, &forged, "docs:read", "docs/team-a/q3", &[])
        .await;
    refused(&run, &out, "invalid_grant");

    // An oversized subject token never leaves the agent.
    let big = s.file("big.idtoken");
    std::fs::write(&big, "a".repeat(20 * 1024)).unwrap();
    let (run, out) = s
        .exchange(&s.planner, &big, "docs:read", "docs/team-a/q3", &[])
        .await;
    refused(&run, &out, "16 KiB");

    assert!(!granted_to(&s.app, PLANNER).await, "nothing was granted");
    assert!(!granted_to(&s.app, "agent://acme/thief").await);
}

#[tokio::test(flavor = "multi_thread")]
async fn bobs_standing_consent_lets_the_python_agent_act_for_him() {
    // bob is in `staff`; his ID token names no agent (no may_act).
    let Some(s) = Setup::start_with_role_for("staff").await else {
        return;
    };
    let bob = s.login("bob", "tessera-eddsa").await;
    let (run, out) = s
        .exchange(&s.planner, &bob, "docs:read", "docs/team-a/q3", &[])
        .await;
    refused(&run, &out, "invalid_grant");

    let consent = serde_json::json!({
        "issuer": s.idp.issuer, "subject": "bob", "agent": PLANNER,
    });
    let r = s.app.admin_post("/v1/people/consents", &consent).await;
    assert!(r.status.is_success(), "{}", r.text);

    let (run, out) = s
        .exchange(&s.planner, &bob, "docs:read", "docs/team-a/q3", &[])
        .await;
    let (token, _) = exchanged(&run, &out);
    let grant = s.authorize(&token, "docs/team-a/q3").unwrap();
    let on_behalf = grant
        .on_behalf
        .as_ref()
        .expect("the grant names the person");
    assert_eq!(on_behalf.person.subject(), "bob");
    assert_eq!(on_behalf.person.issuer(), s.idp.issuer);
    // The consent is for the planner only.
    let other = register(&s.app, "agent://acme/other").await;
    let (run, out) = s
        .exchange(&other, &bob, "docs:read", "docs/team-a/q3", &[])
        .await;
    refused(&run, &out, "invalid_grant");
}
