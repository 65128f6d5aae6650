//! The audit log's endpoints: the audit key, signed checkpoints, leaf
//! bytes, inclusion and consistency proofs, and their bad requests.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use tessera::tlog::merkle::{leaf_hash, verify_consistency, verify_inclusion, Hash};
use tessera::tlog::{Checkpoint, NoteVerifier};

use super::helpers::{now, TestApp};
use tessera::store::{AuditEvent, AuditKind};

fn event(agent: &str, token_id: &str, at: chrono::DateTime<chrono::Utc>) -> AuditEvent {
    AuditEvent {
        at,
        kind: AuditKind::Mint,
        agent: Some(agent.to_owned()),
        token_id: Some(token_id.to_owned()),
        capability: Some("read docs/report.pdf".to_owned()),
        outcome: "granted".into(),
        reason: None,
        remote_addr: None,
        chain: vec![agent.to_owned()],
        person: None,
        amount: None,
        approval_id: None,
        revocation_ids: Vec::new(),
        service: None,
    }
}

fn hashes(list: &serde_json::Value) -> Vec<Hash> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|h| B64.decode(h.as_str().unwrap()).unwrap().try_into().unwrap())
        .collect()
}

async fn append(app: &TestApp, n: usize, from: usize) {
    for i in from..from + n {
        let e = event("https://agents.example/alpha", &format!("log-{i}"), now());
        app.state.stores.audit.append(&e).await.unwrap();
    }
}

async fn checkpoint(app: &TestApp, verifier: &NoteVerifier, origin: &str) -> Checkpoint {
    let note = app.get("/v1/audit/checkpoint", None).await;
    assert_eq!(note.status, 200, "{}", note.text);
    Checkpoint::open(&note.text, verifier, origin).unwrap()
}

async fn exercise(app: TestApp) {
    let key = app.get("/.well-known/tessera-audit-key", None).await;
    assert_eq!(key.status, 200);
    let verifier = NoteVerifier::parse(key.text.trim()).expect(&key.text);
    let origin = format!("{}/audit", app.base.trim_start_matches("http://"));
    assert_eq!(verifier.name(), origin);

    let empty = checkpoint(&app, &verifier, &origin).await;
    append(&app, 7, 0).await;
    // Signed at most once a second: the same note comes back meanwhile.
    assert_eq!(checkpoint(&app, &verifier, &origin).await, empty);
    tokio::time::sleep(tessera::server::audit_tlog::SIGN_INTERVAL).await;
    let old = checkpoint(&app, &verifier, &origin).await;
    assert!(old.size() >= 7, "{old:?}");
    append(&app, 6, 7).await;
    tokio::time::sleep(tessera::server::audit_tlog::SIGN_INTERVAL).await;
    let new = checkpoint(&app, &verifier, &origin).await;
    assert_eq!(new.size(), old.size() + 6);

    // Every leaf, hashed by the caller, is included in the new checkpoint.
    let leaves = app
        .admin_get(&format!("/v1/audit/leaves?start=0&end={}", new.size()))
        .await;
    assert_eq!(leaves.status, 200, "{}", leaves.text);
    let leaves: Vec<Vec<u8>> = leaves.json["leaves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| B64.decode(l.as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(leaves.len() as u64, new.size());
    for (index, leaf) in leaves.iter().enumerate() {
        let proof = app
            .admin_get(&format!(
                "/v1/audit/proof/inclusion?index={index}&size={}",
                new.size()
            ))
            .await;
        assert_eq!(proof.status, 200, "{}", proof.text);
        verify_inclusion(
            &leaf_hash(leaf),
            index as u64,
            new.size(),
            &hashes(&proof.json["proof"]),
            new.root(),
        )
        .unwrap();
    }
    let proof = app
        .admin_get(&format!(
            "/v1/audit/proof/consistency?from={}&to={}",
            old.size(),
            new.size()
        ))
        .await;
    assert_eq!(proof.status, 200, "{}", proof.text);
    verify_consistency(
        old.size(),
        new.size(),
        &hashes(&proof.json["proof"]),
        old.root(),
        new.root(),
    )
    .unwrap();

    // Bad requests are typed 400s; the admin endpoints need the admin token.
    let size = new.size();
    for (path, says) in [
        (
            format!("/v1/audit/proof/inclusion?index={size}&size={size}"),
            "past the end",
        ),
        (
            format!("/v1/audit/proof/inclusion?index=0&size={}", size + 1),
            "larger than",
        ),
        (
            "/v1/audit/proof/consistency?from=3&to=2".to_owned(),
            "smaller size",
        ),
        (
            format!("/v1/audit/proof/consistency?from=0&to={}", size + 5),
            "larger than",
        ),
        (
            "/v1/audit/proof/inclusion?index=-1&size=3".to_owned(),
            "non-negative integer",
        ),
        (
            "/v1/audit/proof/inclusion?size=3".to_owned(),
            "index is required",
        ),
        (
            format!("/v1/audit/leaves?start=0&end={}", size + 1),
            "past the end",
        ),
        (
            "/v1/audit/leaves?start=5&end=5".to_owned(),
            "larger than start",
        ),
        (
            "/v1/audit/leaves?start=0&end=5000".to_owned(),
            "at most 1000",
        ),
    ] {
        let reply = app.admin_get(&path).await;
        reply.assert_oauth_error(400, "invalid_request");
        assert!(reply.description().contains(says), "{path}: {}", reply.text);
    }
    for path in [
        "/v1/audit/leaves?start=0&end=1",
        "/v1/audit/proof/inclusion?index=0&size=1",
        "/v1/audit/proof/consistency?from=0&to=1",
    ] {
        assert_eq!(app.get(path, None).await.status, 401, "{path}");
    }
}

#[tokio::test]
async fn checkpoints_leaves_and_proofs_verify_on_the_embedded_store() {
    let app = TestApp::spawn().await;
    // The audit key is its own file, private, and not a root key.
    let path = app
        .state
        .config
        .keys_dir()
        .join(tessera::server::audit_tlog::AUDIT_KEY_FILE);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    exercise(app).await;
}

#[tokio::test]
async fn checkpoints_leaves_and_proofs_verify_on_redis() {
    let Some(app) = TestApp::spawn_redis().await else {
        return;
    };
    exercise(app).await;
}

#[tokio::test]
async fn the_audit_query_filters_by_chain_kind_outcome_and_time_and_refuses_malformed_ones() {
    let app = TestApp::spawn().await;
    let t0 = now();
    let mut e = event("https://agents.example/sub", "q-1", t0);
    e.chain = vec![
        "https://agents.example/top".into(),
        "https://agents.example/sub".into(),
    ];
    e.revocation_ids = vec!["parent-rev".into(), "child-rev".into()];
    app.state.stores.audit.append(&e).await.unwrap();
    let mut other = event("https://agents.example/lone", "q-2", t0);
    other.outcome = "refused".into();
    other.kind = tessera::store::AuditKind::Refusal;
    app.state.stores.audit.append(&other).await.unwrap();

    let ids = |reply: &super::helpers::Reply| -> Vec<String> {
        assert_eq!(reply.status, 200, "{}", reply.text);
        reply.json["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["event"]["token_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let top = super::helpers::segment("https://agents.example/top");
    for (query, want) in [
        (format!("chain_agent={top}"), vec!["q-1"]),
        ("revocation_id=parent-rev".to_owned(), vec!["q-1"]),
        ("kind=refusal".to_owned(), vec!["q-2"]),
        ("outcome=granted".to_owned(), vec!["q-1"]),
        ("since=2999-01-01T00:00:00Z".to_owned(), vec![]),
        ("until=2999-01-01T00:00:00Z".to_owned(), vec!["q-1", "q-2"]),
    ] {
        let reply = app.admin_get(&format!("/v1/audit?{query}")).await;
        assert_eq!(ids(&reply), want, "{query}");
    }
    for (query, says) in [
        ("since=yesterday", "since is not an RFC 3339 time"),
        (
            "until=2026-13-01T00:00:00Z",
            "until is not an RFC 3339 time",
        ),
        (
            "since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z",
            "since must be before until",
        ),
        ("kind=party", "kind is not a known audit kind"),
        ("after=not-a-cursor", "invalid cursor"),
    ] {
        let reply = app.admin_get(&format!("/v1/audit?{query}")).await;
        reply.assert_oauth_error(400, "invalid_request");
        assert!(
            reply.description().contains(says),
            "{query}: {}",
            reply.text
        );
    }
}
