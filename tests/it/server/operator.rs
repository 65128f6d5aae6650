//! The operator's everyday tools, through the real `tessera` binary against
//! a real issuer: `agent show|update`, `revocations list`, `keys rotate` at a
//! running issuer and offline; the sample configuration; `/metrics`.

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use tessera::server::{admin, Config, KeyRing, Overrides};
use tessera::token::{self, Lifetime};

use super::helpers::{now, segment, Reply, TestApp, ACTION, AUDIENCE};
use crate::store::redis_server::free_port;

const BIN: &str = env!("CARGO_BIN_EXE_tessera");

/// Runs `tessera args`, the admin token (if any) in `TESSERA_ADMIN_TOKEN`.
async fn tessera(args: &[&str], admin_token: Option<&str>) -> Output {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(args)
        .env_remove("TESSERA_ISSUER")
        .env_remove("TESSERA_ADMIN_TOKEN")
        .stdin(Stdio::null());
    if let Some(t) = admin_token {
        cmd.env("TESSERA_ADMIN_TOKEN", t);
    }
    cmd.output().await.unwrap()
}

/// Like [`tessera`], asserting success; returns standard output.
async fn tessera_ok(args: &[&str], admin_token: Option<&str>) -> String {
    let out = tessera(args, admin_token).await;
    assert!(
        out.status.success(),
        "tessera {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Asserts a one-line failure with `code` whose text contains `needle`.
#[track_caller]
fn assert_fails(out: &Output, code: i32, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{err}");
    assert!(err.contains(needle), "wanted {needle:?} in {err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// The audit events with this outcome.
async fn audited(app: &TestApp, outcome: &str) -> Vec<Value> {
    let r = app.admin_get("/v1/audit?limit=1000").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].clone())
        .filter(|e| e["outcome"] == outcome)
        .collect()
}

#[tokio::test]
async fn agent_show_and_update_change_the_ceiling_and_are_audited() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token();
    let agent = app.agent("planner").await;
    let shown: Value = serde_json::from_str(
        &tessera_ok(
            &["agent", "show", "--issuer", &app.base, "--id", &agent.id],
            Some(&admin),
        )
        .await,
    )
    .unwrap();
    assert_eq!(shown["id"], agent.id.as_str());
    assert_eq!(shown["ceiling"]["resources"], json!(["docs/team-a/*"]));
    assert_eq!(shown["disabled"], false);

    // Both resources allowed before the update.
    assert_eq!(app.mint(&agent, "docs/team-a/other").await.status, 200);
    let updated: Value = serde_json::from_str(
        &tessera_ok(
            &[
                "agent",
                "update",
                "--issuer",
                &app.base,
                "--id",
                &agent.id,
                "--description",
                "reads one folder",
                "--action",
                ACTION,
                "--resource",
                "docs/team-a/only/*",
                "--audience",
                AUDIENCE,
                "--max-ttl",
                "5m",
            ],
            Some(&admin),
        )
        .await,
    )
    .unwrap();
    assert_eq!(updated["description"], "reads one folder");
    assert_eq!(
        updated["ceiling"]["resources"],
        json!(["docs/team-a/only/*"])
    );
    assert_eq!(shown["ceiling"]["max_ttl_secs"], 600);
    assert_eq!(updated["ceiling"]["max_ttl_secs"], 300);
    assert_eq!(updated["public_key"], shown["public_key"], "the key stays");
    // The narrower ceiling applies to the next token.
    assert_eq!(app.mint(&agent, "docs/team-a/only/x").await.status, 200);
    let r = app.mint(&agent, "docs/team-a/other").await;
    assert_ne!(r.status, 200, "{}", r.text);

    // A description alone keeps the ceiling.
    tessera_ok(
        &[
            "agent",
            "update",
            "--issuer",
            &app.base,
            "--id",
            &agent.id,
            "--description",
            "second",
        ],
        Some(&admin),
    )
    .await;
    let again = app
        .admin_get(&format!("/v1/agents/{}", segment(&agent.id)))
        .await;
    assert_eq!(again.json["description"], "second");
    assert_eq!(
        again.json["ceiling"]["resources"],
        json!(["docs/team-a/only/*"])
    );

    let events = audited(&app, "agent updated").await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(events.iter().all(|e| e["agent"] == agent.id.as_str()));
    assert!(events
        .iter()
        .all(|e| e["chain"] == json!([admin::ADMIN_AGENT])));
}

#[tokio::test]
async fn agent_update_refuses_reserved_rights_unknown_agents_key_changes_and_strangers() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token();
    let agent = app.agent("target").await;
    let base = &app.base;
    let update = |id: &str, action: &str| {
        [
            "agent",
            "update",
            "--issuer",
            base,
            "--id",
            id,
            "--action",
            action,
            "--resource",
            "/v1/*",
        ]
        .map(str::to_owned)
    };
    let args = update(&agent.id, "tessera:admin");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_fails(&tessera(&args, Some(&admin)).await, 1, "reserved");

    let args = update("agent://acme/nobody", ACTION);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_fails(&tessera(&args, Some(&admin)).await, 1, "404");

    // An agent's own token is no admin token; nor is none.
    let own = app.mint_ok(&agent, "docs/team-a/x").await;
    let own = own["access_token"].as_str().unwrap();
    let args = update(&agent.id, ACTION);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = tessera(&args, Some(own)).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let out = tessera(&args, None).await;
    assert_fails(&out, 2, "required");

    // Nothing to change: refused by the command line and by the API.
    let out = tessera(
        &["agent", "update", "--issuer", base, "--id", &agent.id],
        Some(&admin),
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let patch = |body: Value| {
        let r = app
            .http
            .patch(app.url(&format!("/v1/agents/{}", segment(&agent.id))))
            .bearer_auth(&admin)
            .json(&body)
            .send();
        async move { Reply::from(r.await.unwrap()).await }
    };
    patch(json!({}))
        .await
        .assert_oauth_error(400, "invalid_request");
    // The key is not changed by an update (register again for a new key).
    patch(json!({ "public_key": format!("ed25519/{}", "00".repeat(32)) }))
        .await
        .assert_oauth_error(400, "invalid_request");
    patch(json!({ "description": "x".repeat(2000) }))
        .await
        .assert_oauth_error(400, "invalid_request");
    patch(
        json!({ "ceiling": { "actions": [ACTION], "resources": ["docs/*"], "max_ttl": "1000d" } }),
    )
    .await
    .assert_oauth_error(400, "invalid_request");
    // Whatever was refused, the record is as registered and nothing was audited.
    let r = app
        .admin_get(&format!("/v1/agents/{}", segment(&agent.id)))
        .await;
    assert_eq!(r.json["ceiling"]["resources"], json!(["docs/team-a/*"]));
    assert_eq!(r.json["description"], "test agent");
    assert!(audited(&app, "agent updated").await.is_empty());
}

#[tokio::test]
async fn revocations_list_shows_what_was_revoked_to_admin_and_feed_tokens_only() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token();
    let agent = app.agent("revoked").await;
    let t = app.mint_ok(&agent, "docs/team-a/x").await;
    let seen = app.inspect(t["access_token"].as_str().unwrap());
    let r = app
        .revoke_admin(&json!({ "token_id": t["token_id"], "reason": "lost\nlaptop" }))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);

    let text = tessera_ok(
        &["revocations", "list", "--issuer", &app.base],
        Some(&admin),
    )
    .await;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].contains(&seen.blocks[0].revocation_id), "{text}");
    assert!(lines[0].contains(&format!("agent={}", agent.id)), "{text}");
    assert!(
        lines[0].contains(r#"reason="lost\nlaptop""#),
        "escaped: {text}"
    );
    assert!(lines[1].starts_with("next: "), "{text}");

    let feed = token::mint(
        &admin::feed_capability(Lifetime::parse("5m").unwrap()).unwrap(),
        app.state.ring().active(),
        now(),
    )
    .unwrap()
    .token;
    let page: Value = serde_json::from_str(
        &tessera_ok(
            &["revocations", "list", "--issuer", &app.base, "--json"],
            Some(&feed),
        )
        .await,
    )
    .unwrap();
    assert_eq!(page["entries"].as_array().unwrap().len(), 1, "{page}");
    let next = page["next"].as_str().unwrap();
    let after = tessera_ok(
        &[
            "revocations",
            "list",
            "--issuer",
            &app.base,
            "--after",
            next,
        ],
        Some(&admin),
    )
    .await;
    assert_eq!(after.trim(), format!("next: {next}"));

    let own = app.mint_ok(&agent, "docs/team-a/y").await;
    let out = tessera(
        &["revocations", "list", "--issuer", &app.base],
        Some(own["access_token"].as_str().unwrap()),
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let out = tessera(
        &["revocations", "list", "--issuer", &app.base, "--limit", "0"],
        Some(&admin),
    )
    .await;
    assert_fails(&out, 2, "--limit");
}

#[tokio::test]
async fn keys_rotate_at_a_running_issuer_switches_at_once_and_old_tokens_still_verify() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token();
    let agent = app.agent("rotated").await;
    let before = app.mint_ok(&agent, "docs/team-a/x").await;
    let before = before["access_token"].as_str().unwrap();
    assert_eq!(app.inspect(before).root_key_id, Some(0));

    // Attacks first: too short a retirement, no admin token, an agent token.
    let rotate = |retire: &str| {
        [
            "keys",
            "rotate",
            "--issuer",
            &app.base,
            "--retire-after",
            retire,
        ]
        .map(str::to_owned)
    };
    let short = rotate("1m");
    let short: Vec<&str> = short.iter().map(String::as_str).collect();
    assert_fails(&tessera(&short, Some(&admin)).await, 1, "retire_after");
    let ok = rotate("2h");
    let ok: Vec<&str> = ok.iter().map(String::as_str).collect();
    assert_fails(&tessera(&ok, None).await, 2, "required");
    assert_eq!(tessera(&ok, Some(before)).await.status.code(), Some(1));
    assert_eq!(app.state.ring().active().id, 0, "nothing rotated yet");

    let out = tessera_ok(&ok, Some(&admin)).await;
    assert!(out.starts_with("new active root key id 1;"), "{out}");
    assert_eq!(app.state.ring().active().id, 1);
    let jwks = app.get("/.well-known/jwks.json", None).await;
    let kids: Vec<&str> = jwks.json["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids.len(), 2, "{}", jwks.text);

    let after = app.mint_ok(&agent, "docs/team-a/x").await;
    assert_eq!(
        app.inspect(after["access_token"].as_str().unwrap())
            .root_key_id,
        Some(1)
    );
    // The old token and the old admin token still work.
    let r = app
        .http
        .post(app.url("/oauth/introspect"))
        .bearer_auth(&admin)
        .form(&[("token", before)])
        .send()
        .await
        .unwrap();
    assert_eq!(Reply::from(r).await.json["active"], true);
    let events = audited(&app, "key rotated").await;
    assert_eq!(events.len(), 1, "{events:?}");
}

#[tokio::test]
async fn keys_rotate_offline_adds_a_key_to_the_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    KeyRing::load_or_create(&keys).unwrap();
    let data = dir.path().to_str().unwrap();
    let out = tessera_ok(&["keys", "rotate", "--data-dir", data], None).await;
    assert!(out.starts_with("new active root key id 1;"), "{out}");
    let ring = KeyRing::load(&keys).unwrap();
    assert_eq!(ring.active().id, 1);
    assert!(ring.key_set(now()).get(0).is_some(), "the old key verifies");
    // Neither or both places: a one-line error.
    assert_fails(&tessera(&["keys", "rotate"], None).await, 2, "required");
    let out = tessera(
        &[
            "keys",
            "rotate",
            "--data-dir",
            data,
            "--issuer",
            "http://127.0.0.1:1",
        ],
        Some("t"),
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(KeyRing::load(&keys).unwrap().active().id, 1);
}

fn sample() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/tessera.toml")
}

#[test]
fn the_sample_configuration_loads_equals_the_defaults_and_names_every_setting() {
    let path = sample();
    let loaded = Config::load(Some(&path), Vec::new(), Overrides::default()).unwrap();
    assert_eq!(loaded, Config::default());
    let text = std::fs::read_to_string(&path).unwrap();
    let defaults = serde_json::to_value(Config::default()).unwrap();
    for key in defaults.as_object().unwrap().keys() {
        let named = text.lines().any(|l| {
            let l = l.trim_start_matches("# ");
            l.starts_with(&format!("{key} = "))
                || l == format!("[[{key}]]")
                || l == format!("[{key}]")
        });
        assert!(named, "examples/tessera.toml does not name `{key}`");
    }
    // The commented-out examples are valid too.
    let uncommented: String = text
        .lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(rest)
                if rest.starts_with("[[")
                    || rest.split_once(" = ").is_some_and(|(k, _)| {
                        k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                    }) =>
            {
                rest
            }
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let dir = tempfile::tempdir().unwrap();
    let all = dir.path().join("all.toml");
    std::fs::write(&all, &uncommented).unwrap();
    let c = Config::load(Some(&all), Vec::new(), Overrides::default()).unwrap();
    assert!(c.issuer_url.is_some() && c.redis_url.is_some() && c.metrics_listen.is_some());
    assert_eq!((c.idp.len(), c.role.len()), (1, 1));
}

/// Kills the child on drop.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn serve_starts_with_the_sample_configuration_and_metrics_carry_build_and_process_figures() {
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    for _ in 0..5 {
        let (port, metrics_port) = (free_port(), free_port());
        let log = std::fs::File::create(dir.path().join("serve.log")).unwrap();
        let child = Child(
            std::process::Command::new(BIN)
                .args(["serve", "--config"])
                .arg(sample())
                .args(["--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
                .arg(dir.path().join("data"))
                .env(
                    "TESSERA_METRICS_LISTEN",
                    format!("127.0.0.1:{metrics_port}"),
                )
                .env_remove("TESSERA_REDIS_URL")
                .env("TESSERA_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
        let mut child = child;
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut up = false;
        while Instant::now() < deadline && child.0.try_wait().unwrap().is_none() {
            if let Ok(r) = http
                .get(format!("http://127.0.0.1:{port}/healthz"))
                .send()
                .await
            {
                up = r.status() == StatusCode::OK;
                if up {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if !up {
            continue; // a port was taken: try others
        }
        let text = http
            .get(format!("http://127.0.0.1:{metrics_port}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let value = |name: &str| -> f64 {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{name} ")))
                .unwrap_or_else(|| panic!("no {name} in {text}"))
                .parse()
                .unwrap()
        };
        let build = text
            .lines()
            .find(|l| l.starts_with("tessera_build_info{"))
            .unwrap_or_else(|| panic!("no build info in {text}"));
        assert!(
            build.contains(&format!("version=\"{}\"", env!("CARGO_PKG_VERSION")))
                && build.ends_with(" 1"),
            "{build}"
        );
        assert!(value("tessera_process_resident_memory_bytes") > 1e6);
        assert!(value("tessera_process_open_fds") >= 3.0);
        assert!(value("tessera_process_cpu_seconds_total") >= 0.0);
        let started = value("tessera_process_start_time_seconds");
        let age = now().timestamp() as f64 - started;
        assert!((-5.0..600.0).contains(&age), "started {age}s ago");
        // The main listener does not serve the metrics.
        let r = http
            .get(format!("http://127.0.0.1:{port}/metrics"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        drop(child);
        return;
    }
    panic!(
        "tessera serve --config examples/tessera.toml did not start: {}",
        std::fs::read_to_string(dir.path().join("serve.log")).unwrap_or_default()
    );
}
