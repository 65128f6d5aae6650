//! The two clients' bad input: a one-line reason and exit status 2 for a
//! usage mistake, a JSON line naming the cause for a client id the SDK
//! refuses; no browser, issuer or server needed.

use std::process::{Command, Stdio};

use serde_json::Value;

use super::root;

/// Whether node and the TypeScript SDK are installed (loud skip otherwise,
/// a failure with `TESSERA_REQUIRE_NODE=1`).
fn node_with_sdk() -> bool {
    let node = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let sdk = root()
        .join("examples/js/node_modules/@modelcontextprotocol/sdk")
        .is_dir();
    if node && sdk {
        return true;
    }
    assert!(
        !super::required("TESSERA_REQUIRE_NODE"),
        "TESSERA_REQUIRE_NODE=1 but node or examples/js/node_modules is missing"
    );
    eprintln!(
        "\n*** SKIPPED: node or examples/js/node_modules is missing (npm ci --prefix examples/js). ***\n"
    );
    false
}

#[test]
fn the_typescript_client_names_a_missing_flag_in_one_line() {
    if !node_with_sdk() {
        return;
    }
    let out = Command::new("node")
        .arg(root().join("examples/js/oauth-connect.mjs"))
        .args(["--server", "http://127.0.0.1:9/mcp", "--redirect-port", "1"])
        .args([
            "--store",
            "/nonexistent/state.json",
            "--no-login",
            "get_order",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("usage error: --client-id is required"),
        "{stderr}"
    );
}

#[test]
fn the_python_client_refuses_a_client_id_that_is_not_https() {
    let Some(python) = crate::python::python_with("mcp, httpx2", "MCP SDK client usage test")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let script = root().join("examples/python/oauth_connect.py");
    let out = Command::new(&python)
        .arg(&script)
        .args(["--server", "http://127.0.0.1:9/mcp", "--redirect-port", "1"])
        .args([
            "--client-id",
            "http://client.example/doc.json",
            "--no-login",
        ])
        .arg("--store")
        .arg(dir.path().join("state.json"))
        .arg("get_order")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["ok"], false);
    assert!(
        json["error"]
            .as_str()
            .unwrap()
            .contains("client_metadata_url must be a valid HTTPS URL"),
        "{json}"
    );
    assert!(!dir.path().join("state.json").exists());

    let out = Command::new(&python)
        .arg(&script)
        .args(["--server", "http://127.0.0.1:9/mcp", "get_order"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .lines()
            .last()
            .is_some_and(|l| l.contains("required: --client-id")),
        "{stderr}"
    );
}
