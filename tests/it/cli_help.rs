//! A command line that helps (issue 15): clap's full usage errors, the
//! command lists, examples, completions and the man page, path-like token
//! arguments, errors that name the cause and the next step, and the start-up
//! of `tessera serve` (busy address, where the keys are, git work trees,
//! colours, JSON logs). Each test drives the real binary.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_tessera");

/// Runs `tessera args` in `dir` with no `TESSERA_*` variables set.
fn run_in(dir: &Path, args: &[&str]) -> Output {
    command(dir).args(args).output().unwrap()
}

fn command(dir: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.current_dir(dir).stdin(Stdio::null());
    for (name, _) in std::env::vars() {
        if name.starts_with("TESSERA_") {
            c.env_remove(name);
        }
    }
    c
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A failure reported as one line on stderr, without a panic.
fn one_line_failure(out: &Output, needle: &str) -> String {
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "stderr: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "stderr: {stderr}");
    assert!(stderr.starts_with("tessera: "), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
    assert!(stderr.contains(needle), "expected {needle:?} in {stderr}");
    stderr
}

/// A loopback port that nothing listens on (bound, then released).
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn usage_errors_are_clap_s_own_with_the_missing_arguments_and_a_suggestion() {
    let d = TempDir::new().unwrap();
    let out = run_in(d.path(), &["token", "verify", "planner.tok"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("required arguments were not provided"),
        "{stderr}"
    );
    assert!(stderr.contains("--operation <ACTION>"), "{stderr}");
    assert!(stderr.contains("--resource <RESOURCE>"), "{stderr}");
    assert!(stderr.contains("Usage: tessera token verify"), "{stderr}");

    let out = run_in(
        d.path(),
        &["token", "verify", "t", "--operaton", "a", "--resource", "r"],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("a similar argument exists: '--operation'"),
        "{stderr}"
    );

    let out = run_in(d.path(), &["tokn", "inspect"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("a similar subcommand exists: 'token'"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn bare_tessera_and_each_group_list_their_commands() {
    let d = TempDir::new().unwrap();
    let groups: &[(&[&str], &[&str])] = &[
        (
            &[],
            &[
                "keygen",
                "keys",
                "token",
                "serve",
                "admin",
                "agent",
                "completions",
                "man",
            ],
        ),
        (
            &["token"],
            &[
                "mint",
                "attenuate",
                "delegate",
                "inspect",
                "verify",
                "request",
                "revoke",
            ],
        ),
        (&["keys"], &["public", "jwks", "rotate"]),
        (&["admin"], &["token"]),
        (&["agent"], &["register", "list", "disable"]),
    ];
    for (args, commands) in groups {
        let out = run_in(d.path(), args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("Commands:"), "{args:?}: {stderr}");
        for c in *commands {
            assert!(
                stderr
                    .lines()
                    .any(|l| l.trim_start().starts_with(&format!("{c} "))),
                "{args:?} does not list {c}: {stderr}"
            );
        }
    }
}

#[test]
fn help_of_the_main_commands_ends_with_examples_that_run_the_command() {
    let d = TempDir::new().unwrap();
    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["keygen", "--help"],
        &["admin", "token", "--help"],
        &["agent", "register", "--help"],
        &["token", "mint", "--help"],
        &["token", "attenuate", "--help"],
        &["token", "delegate", "--help"],
        &["token", "inspect", "--help"],
        &["token", "verify", "--help"],
        &["token", "request", "--help"],
        &["token", "revoke", "--help"],
    ] {
        let out = run_in(d.path(), args);
        assert!(out.status.success(), "{args:?}");
        let stdout = text(&out.stdout);
        let (_, examples) = stdout
            .split_once("Example")
            .unwrap_or_else(|| panic!("{args:?} has no examples: {stdout}"));
        let command = args[..args.len() - 1].join(" ");
        assert!(
            examples.contains(&format!("tessera {command}")),
            "{args:?}: {examples}"
        );
    }
}

#[test]
fn help_never_shows_the_value_of_an_environment_variable() {
    let d = TempDir::new().unwrap();
    for value in ["", "http://issuer.internal:8080"] {
        let out = command(d.path())
            .args(["agent", "list", "--help"])
            .env("TESSERA_ISSUER", value)
            .env("TESSERA_ADMIN_TOKEN", "secret-admin-token")
            .output()
            .unwrap();
        let stdout = text(&out.stdout);
        assert!(stdout.contains("[env: TESSERA_ISSUER]"), "{stdout}");
        assert!(!stdout.contains("TESSERA_ISSUER="), "{stdout}");
        assert!(!stdout.contains("issuer.internal"), "{stdout}");
        assert!(!stdout.contains("secret-admin-token"), "{stdout}");
    }
}

#[test]
fn a_token_argument_that_looks_like_a_path_is_a_missing_file_not_a_token() {
    let d = TempDir::new().unwrap();
    std::fs::create_dir(d.path().join("tokens")).unwrap();
    for (arg, needle) in [
        ("plnner.tok", "no such file: plnner.tok"),
        ("tokens/bot", "no such file: tokens/bot"),
        ("feed.token", "no such file: feed.token"),
        ("tokens", "tokens is a directory"),
    ] {
        let stderr = one_line_failure(&run_in(d.path(), &["token", "inspect", arg]), needle);
        assert!(!stderr.contains("malformed"), "{stderr}");
    }
    one_line_failure(
        &run_in(d.path(), &["token", "inspect", "x", "--keys", "jwks.jsn"]),
        "no such file: jwks.jsn",
    );
    // A word that is no file is still read as a token.
    one_line_failure(
        &run_in(d.path(), &["token", "inspect", "plnnertok"]),
        "malformed",
    );
}

#[test]
fn completions_and_the_man_page_are_generated_from_the_definitions() {
    let d = TempDir::new().unwrap();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = run_in(d.path(), &["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", text(&out.stderr));
        let script = text(&out.stdout);
        for word in ["attenuate", "holder-key", "log-format"] {
            assert!(script.contains(word), "{shell} lacks {word}");
        }
    }
    let out = run_in(d.path(), &["completions", "tcsh"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("possible values") && stderr.contains("bash"),
        "{stderr}"
    );

    let out = run_in(d.path(), &["man"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let page = text(&out.stdout);
    assert!(
        page.starts_with(".ie") || page.contains(".TH tessera"),
        "{page}"
    );
    assert!(page.contains("completions"), "{page}");

    let out = run_in(d.path(), &["man", "--out-dir", "man1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for page in [
        "tessera.1",
        "tessera-token.1",
        "tessera-token-verify.1",
        "tessera-serve.1",
    ] {
        let body = std::fs::read_to_string(d.path().join("man1").join(page)).unwrap();
        assert!(body.contains(".TH"), "{page}");
    }
    let verify = std::fs::read_to_string(d.path().join("man1/tessera-token-verify.1")).unwrap();
    assert!(verify.contains("no\\-revocation\\-check"), "{verify}");
}

#[test]
fn an_issuer_that_is_not_running_is_named_with_the_next_step() {
    let d = TempDir::new().unwrap();
    let issuer = format!("http://127.0.0.1:{}", closed_port());
    let hint = format!("connection refused; is `tessera serve` running at {issuer}?");
    assert!(run_in(d.path(), &["keygen", "--out", "bot.key"])
        .status
        .success());
    one_line_failure(
        &run_in(
            d.path(),
            &[
                "token",
                "request",
                "--issuer",
                &issuer,
                "--agent",
                "agent://a/b",
                "--key",
                "bot.key",
                "--action",
                "a",
                "--resource",
                "r",
            ],
        ),
        &hint,
    );
    one_line_failure(
        &run_in(
            d.path(),
            &["agent", "list", "--issuer", &issuer, "--admin-token", "t"],
        ),
        &hint,
    );
    for revocations in [&["--feed-token", "t"][..], &["--no-revocation-check"]] {
        let mut args = vec![
            "token",
            "verify",
            "t",
            "--issuer",
            &issuer,
            "--service",
            "https://s",
            "--operation",
            "a",
            "--resource",
            "r",
        ];
        args.extend_from_slice(revocations);
        one_line_failure(&run_in(d.path(), &args), &hint);
    }
}

#[test]
fn a_feed_that_does_not_answer_is_reported_within_seconds() {
    let d = TempDir::new().unwrap();
    // Connections complete in the backlog, and nothing ever answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let issuer = format!("http://{}", silent.local_addr().unwrap());
    let start = Instant::now();
    let out = run_in(
        d.path(),
        &[
            "token",
            "verify",
            "t",
            "--issuer",
            &issuer,
            "--feed-token",
            "t",
            "--service",
            "https://s",
            "--operation",
            "a",
            "--resource",
            "r",
        ],
    );
    one_line_failure(
        &out,
        &format!("the issuer at {issuer} did not answer within 5 s"),
    );
    assert!(
        start.elapsed() < Duration::from_secs(9),
        "{:?}",
        start.elapsed()
    );
    drop(silent);
}

/// A `tessera serve` child, killed on drop, whose standard error lines are
/// read as they come.
struct Served {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Served {
    fn start(dir: &Path, extra: &[&str]) -> Self {
        let mut child = command(dir)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .env("TESSERA_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The first line containing `needle`, waiting for it if not seen yet
    /// (all lines so far are kept).
    fn wait_for(&mut self, needle: &str) -> String {
        if let Some(line) = self.seen.iter().find(|l| l.contains(needle)) {
            return line.clone();
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => break,
            }
        }
        panic!("no {needle:?} in {:#?}", self.seen);
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn serve_refuses_a_busy_address_before_creating_anything() {
    let d = TempDir::new().unwrap();
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let out = run_in(
        d.path(),
        &["serve", "--listen", &addr, "--data-dir", "data"],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("tessera: cannot listen on {addr}: ")),
        "{stderr}"
    );
    assert!(stderr.contains("--listen"), "{stderr}");
    assert!(!d.path().join("data").exists(), "data directory created");
    // The metrics address too.
    let out = command(d.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir", "data"])
        .env("TESSERA_METRICS_LISTEN", &addr)
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("tessera: cannot listen on {addr}: ")),
        "{stderr}"
    );
    assert!(stderr.contains("metrics_listen"), "{stderr}");
    assert!(!d.path().join("data").exists(), "data directory created");
    drop(busy);
}

#[test]
fn serve_says_where_the_keys_are_and_the_command_that_prints_an_admin_token() {
    let d = TempDir::new().unwrap();
    // A git work tree that does not ignore the data directory.
    std::fs::create_dir(d.path().join(".git")).unwrap();
    let mut served = Served::start(d.path(), &["--log-format", "json"]);
    let line = served.wait_for("admin token for the /v1 API");
    served.wait_for("tessera issuer listening");
    let keys = d.path().join("tessera-data").join("keys");
    let keys = std::fs::canonicalize(keys).unwrap();
    assert!(
        served
            .seen
            .iter()
            .any(|l| l.contains("root keys") && l.contains(&keys.display().to_string())),
        "{:#?}",
        served.seen
    );
    // Every line is one JSON object (--log-format json).
    for l in &served.seen {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        assert!(v["level"].is_string(), "{l}");
    }
    let warning = served
        .seen
        .iter()
        .find(|l| l.contains("inside a git work tree"))
        .unwrap_or_else(|| panic!("no git warning in {:#?}", served.seen));
    assert!(
        warning.contains("\"WARN\"") && warning.contains(".gitignore"),
        "{warning}"
    );
    // The command printed runs as written and prints a token.
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    let message = v["fields"]["message"].as_str().unwrap();
    let (_, cmd) = message.split_once(": ").unwrap();
    let words: Vec<&str> = cmd.split(' ').collect();
    assert_eq!(words[..3], ["tessera", "admin", "token"], "{cmd}");
    let out = run_in(d.path(), &words[1..]);
    assert!(out.status.success(), "{cmd}: {}", text(&out.stderr));
    assert!(text(&out.stdout).trim().len() > 100, "{cmd}");
}

#[test]
fn serve_writes_no_colour_codes_when_its_output_is_not_a_terminal_and_knows_ignored_data() {
    let d = TempDir::new().unwrap();
    let git = Command::new("git")
        .args(["init", "-q", "."])
        .current_dir(d.path())
        .status()
        .unwrap();
    assert!(git.success());
    std::fs::write(d.path().join(".gitignore"), "tessera-data/\n").unwrap();
    let mut served = Served::start(d.path(), &[]);
    served.wait_for("admin token for the /v1 API");
    served.wait_for("tessera issuer listening");
    for l in &served.seen {
        assert!(!l.contains('\u{1b}'), "colour code in {l:?}");
        assert!(!l.contains("inside a git work tree"), "{l}");
        assert!(!l.starts_with('{'), "human format expected: {l}");
    }
}

#[test]
fn a_refused_feed_or_admin_token_says_so_with_the_issuer_s_reason() {
    let d = TempDir::new().unwrap();
    let mut served = Served::start(d.path(), &["--log-format", "json"]);
    let line = served.wait_for("tessera issuer listening");
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    let issuer = v["fields"]["issuer"].as_str().unwrap().to_owned();
    // Well-formed tokens, signed by a key the issuer does not know.
    assert!(run_in(d.path(), &["keygen", "--out", "other.key"])
        .status
        .success());
    let mint = |extra: &[&str]| {
        let mut args = vec!["admin", "token", "--root-key", "other.key"];
        args.extend_from_slice(extra);
        let out = run_in(d.path(), &args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout).trim().to_owned()
    };
    let feed = mint(&["--feed"]);
    let admin = mint(&[]);
    let stderr = one_line_failure(
        &run_in(
            d.path(),
            &[
                "token",
                "verify",
                &admin,
                "--issuer",
                &issuer,
                "--feed-token",
                &feed,
                "--service",
                "https://s",
                "--operation",
                "a",
                "--resource",
                "r",
            ],
        ),
        "the feed token was refused: ",
    );
    assert!(stderr.contains("bad_signature"), "{stderr}");
    assert!(stderr.contains("tessera admin token --feed"), "{stderr}");
    let stderr = one_line_failure(
        &run_in(
            d.path(),
            &[
                "agent",
                "list",
                "--issuer",
                &issuer,
                "--admin-token",
                &admin,
            ],
        ),
        "issuer answered 401 invalid_token: ",
    );
    assert!(stderr.contains("bad_signature"), "{stderr}");
    assert!(
        stderr.contains("print a fresh admin token with `tessera admin token"),
        "{stderr}"
    );
}

#[test]
fn a_password_in_the_issuer_url_is_not_repeated_in_an_error() {
    let d = TempDir::new().unwrap();
    let issuer = format!("http://operator:hunter2@127.0.0.1:{}", closed_port());
    let stderr = one_line_failure(
        &run_in(
            d.path(),
            &["agent", "list", "--issuer", &issuer, "--admin-token", "t"],
        ),
        "connection refused",
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[test]
fn a_redis_that_is_not_running_is_named_at_once() {
    let d = TempDir::new().unwrap();
    let root = run_in(d.path(), &["keygen", "--out", "root.key"]);
    let root = text(&root.stdout).trim().to_owned();
    let url = format!("redis://:hunter2@127.0.0.1:{}", closed_port());
    let start = Instant::now();
    let stderr = one_line_failure(
        &run_in(
            d.path(),
            &[
                "token",
                "verify",
                "t",
                "--keys",
                &root,
                "--redis-url",
                &url,
                "--service",
                "https://s",
                "--operation",
                "a",
                "--resource",
                "r",
            ],
        ),
        "cannot connect to Redis at redis://***@127.0.0.1:",
    );
    assert!(
        stderr.contains("is the issuer's Redis running there?"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}
