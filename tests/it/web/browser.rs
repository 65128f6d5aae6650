//! Runs a browser scenario of tests/browser (`node <script> <args>`, a
//! headless Debian chromium driven by playwright-core) and returns its one
//! JSON result line.
//!
//! Skips (loudly) when node, tests/browser/node_modules or chromium is
//! missing, unless `TESSERA_REQUIRE_BROWSER=1`: then it fails. Screenshots
//! are written only when `TESSERA_SCREENSHOTS=<dir>` is set.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// The chromium to launch: `TESSERA_CHROMIUM`, else /usr/bin/chromium.
pub fn chromium() -> PathBuf {
    std::env::var_os("TESSERA_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

fn ready() -> Result<(), String> {
    let node = std::process::Command::new("node")
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    if !node.is_ok_and(|s| s.success()) {
        return Err("`node` is not on PATH".into());
    }
    if !browser_dir().join("node_modules/playwright-core").is_dir() {
        return Err(
            "tests/browser/node_modules is missing (run `npm ci --prefix tests/browser`)".into(),
        );
    }
    if !Path::new(&chromium()).exists() {
        return Err(format!(
            "no chromium at {} (apt-get install chromium, or set TESSERA_CHROMIUM)",
            chromium().display()
        ));
    }
    Ok(())
}

/// Runs `tests/browser/<script>` with `args`; its JSON result, or `None`
/// (after saying so) when the browser tools are missing and
/// `TESSERA_REQUIRE_BROWSER` is not `1`. Panics when the scenario fails.
pub async fn run(script: &str, args: &[&str]) -> Option<Value> {
    if let Err(why) = ready() {
        if std::env::var("TESSERA_REQUIRE_BROWSER").as_deref() == Ok("1") {
            panic!("TESSERA_REQUIRE_BROWSER=1 but {why}");
        }
        eprintln!(
            "\n*** SKIPPED: {why}, so this browser test did not run \
             (bash scripts/test.sh installs it; TESSERA_REQUIRE_BROWSER=1 makes this fail). ***\n"
        );
        return None;
    }
    let child = tokio::process::Command::new("node")
        .arg(browser_dir().join(script))
        .args(args)
        .current_dir(browser_dir())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn node");
    let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("the browser scenario finished within 2 minutes")
        .expect("the browser scenario ran");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().rev().find(|l| l.starts_with('{'));
    let value: Value = line
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| {
            panic!(
                "{script}: no JSON result (status {}): {stdout}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
        });
    assert!(
        out.status.success() && value.get("error").is_none(),
        "{script} failed: {value}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(value)
}
