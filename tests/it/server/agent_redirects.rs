//! `tessera agent register|update --redirect-uri` through the real binary
//! against a real issuer: the list is stored as given, replaced, removed,
//! and a bad URI is a one-line refusal.

use std::process::{Output, Stdio};

use serde_json::{json, Value};

use super::helpers::{segment, TestAgent, TestApp};

const BIN: &str = env!("CARGO_BIN_EXE_tessera");

async fn tessera(args: &[&str], admin_token: &str) -> Output {
    tokio::process::Command::new(BIN)
        .args(args)
        .env_remove("TESSERA_ISSUER")
        .env("TESSERA_ADMIN_TOKEN", admin_token)
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap()
}

fn json_of(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn the_cli_registers_replaces_and_removes_an_agents_redirect_uris() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token();
    let agent = TestAgent::new("cli-redirects");
    let key = agent.public_key();
    let register = |uris: &'static [&'static str]| {
        let mut args = vec![
            "agent",
            "register",
            "--issuer",
            &app.base,
            "--id",
            &agent.id,
            "--public-key",
            &key,
            "--action",
            "get_order",
            "--resource",
            "orders*",
        ];
        for u in uris {
            args.extend(["--redirect-uri", u]);
        }
        args.iter()
            .map(|s| (*s).to_owned())
            .collect::<Vec<String>>()
    };
    let args = register(&["https://app.example/cb", "http://127.0.0.1:9000/cb"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let rec = json_of(&tessera(&args, &admin).await);
    assert_eq!(
        rec["redirect_uris"],
        json!(["https://app.example/cb", "http://127.0.0.1:9000/cb"])
    );

    // Not https and not loopback: one line, nothing changed.
    let args = register(&["http://app.example/cb"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = tessera(&args, &admin).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("redirect_uri must be https"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(!err.contains("panicked"), "{err}");

    let update = |uri: &'static str| {
        let (base, id) = (app.base.clone(), agent.id.clone());
        let admin = admin.clone();
        async move {
            let args = [
                "agent",
                "update",
                "--issuer",
                &base,
                "--id",
                &id,
                "--redirect-uri",
                uri,
            ];
            json_of(&tessera(&args, &admin).await)
        }
    };
    let rec = update("https://app.example/other").await;
    assert_eq!(rec["redirect_uris"], json!(["https://app.example/other"]));
    let rec = update("").await;
    assert!(rec.get("redirect_uris").is_none(), "{rec}");
    let shown = app
        .admin_get(&format!("/v1/agents/{}", segment(&agent.id)))
        .await;
    assert!(shown.json.get("redirect_uris").is_none(), "{}", shown.text);
    assert_eq!(shown.json["ceiling"]["actions"], json!(["get_order"]));
}
