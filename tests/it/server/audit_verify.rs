//! `tessera audit export | verify | inclusion | consistency`: the real
//! binary against an issuer (a `TestApp` on the embedded store or on a
//! Redis of its own). A downloaded copy is altered, cut, duplicated,
//! reordered and truncated, its checkpoint forged or taken for another
//! origin, its history rewritten under an old checkpoint; Redis leaves and
//! nodes are overwritten in place. Each change is named by the CLI.

use std::path::Path;
use std::process::Output;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::SigningKey;
use tessera::server::audit_tlog::{AUDIT_KEY_FILE, SIGN_INTERVAL};
use tessera::store::{AuditEvent, AuditKind};
use tessera::tlog::merkle::leaf_hash;
use tessera::tlog::nodes::{append_needs, append_nodes, NodeId};
use tessera::tlog::{Checkpoint, MemoryTree, NoteSigner};

use super::helpers::{now, TestApp};

const BIN: &str = env!("CARGO_BIN_EXE_tessera");

pub(super) fn event(token_id: &str) -> AuditEvent {
    AuditEvent {
        at: now(),
        kind: AuditKind::Mint,
        agent: Some("https://agents.example/alpha".to_owned()),
        token_id: Some(token_id.to_owned()),
        capability: Some("read docs/report.pdf".to_owned()),
        outcome: "granted".into(),
        reason: None,
        remote_addr: None,
        chain: vec!["https://agents.example/alpha".to_owned()],
        person: None,
        amount: None,
        approval_id: None,
        revocation_ids: Vec::new(),
        service: None,
    }
}

/// Runs the binary (without a terminal or the caller's issuer settings).
pub(super) async fn cli(args: &[&str]) -> Output {
    tokio::process::Command::new(BIN)
        .args(args)
        .env_remove("TESSERA_ISSUER")
        .env_remove("TESSERA_ADMIN_TOKEN")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap()
}

pub(super) fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub(super) fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs a command that must succeed; returns its stdout.
pub(super) async fn ok(args: &[&str]) -> String {
    let out = cli(args).await;
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    stdout(&out)
}

/// Runs a command that must fail with exit 1, one line on stderr and no
/// panic; returns its stdout and stderr.
pub(super) async fn fails(args: &[&str]) -> (String, String) {
    fails_with(1, args).await
}

/// Like [`fails`], with exit status `code`.
pub(super) async fn fails_with(code: i32, args: &[&str]) -> (String, String) {
    let out = cli(args).await;
    let (o, e) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(code), "{args:?}: {o}{e}");
    assert!(!e.contains("panicked"), "{e}");
    let lines: Vec<&str> = e.lines().filter(|l| !l.contains("note:")).collect();
    assert_eq!(lines.len(), 1, "{args:?}: {e}");
    assert!(lines[0].starts_with("tessera: "), "{e}");
    (o, e)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `tessera audit export` into `dir`.
pub(super) async fn export(issuer: &str, admin_file: &Path, dir: &Path) -> String {
    ok(&[
        "audit",
        "export",
        "--issuer",
        issuer,
        "--admin-token",
        s(admin_file),
        "--out",
        s(dir),
    ])
    .await
}

pub(super) fn read_leaves(dir: &Path) -> Vec<Vec<u8>> {
    std::fs::read_to_string(dir.join("leaves"))
        .unwrap()
        .lines()
        .map(|l| B64.decode(l).unwrap())
        .collect()
}

/// A copy of export `from` in `to`, with `leaves` as its leaves.
fn copy_with(from: &Path, to: &Path, leaves: &[Vec<u8>]) {
    std::fs::create_dir_all(to).unwrap();
    for f in ["checkpoint", "audit-key"] {
        std::fs::copy(from.join(f), to.join(f)).unwrap();
    }
    let text: String = leaves.iter().map(|l| B64.encode(l) + "\n").collect();
    std::fs::write(to.join("leaves"), text).unwrap();
}

/// The issuer's audit signer, read from its key file (as an insider with
/// the key could).
fn audit_signer(app: &TestApp) -> NoteSigner {
    let path = app.state.config.keys_dir().join(AUDIT_KEY_FILE);
    let seed: [u8; 32] = hex::decode(std::fs::read_to_string(path).unwrap().trim())
        .unwrap()
        .try_into()
        .unwrap();
    let origin = format!("{}/audit", app.base.trim_start_matches("http://"));
    NoteSigner::new(&origin, SigningKey::from_bytes(&seed)).unwrap()
}

fn sign(signer: &NoteSigner, leaves: &[Vec<u8>]) -> String {
    let tree = MemoryTree::from_leaf_hashes(leaves.iter().map(|l| leaf_hash(l)));
    Checkpoint::new(signer.name(), tree.len(), tree.root())
        .unwrap()
        .sign(signer)
        .unwrap()
}

/// Every node a store keeps for `leaves`, as appending them one by one writes them.
pub(super) fn all_nodes(leaves: &[Vec<u8>]) -> Vec<(NodeId, [u8; 32])> {
    let mut nodes = std::collections::HashMap::new();
    for (i, leaf) in (0u64..).zip(leaves) {
        let siblings: Vec<[u8; 32]> = append_needs(i).iter().map(|id| nodes[id]).collect();
        nodes.extend(append_nodes(i, leaf_hash(leaf), &siblings));
    }
    nodes.into_iter().collect()
}

async fn append(app: &TestApp, from: usize, n: usize) {
    for i in from..from + n {
        app.state
            .stores
            .audit
            .append(&event(&format!("v-{i}")))
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_verifies_and_every_change_to_the_downloaded_copy_is_named() {
    let app = TestApp::spawn().await;
    let tmp = tempfile::tempdir().unwrap();
    let admin = tmp.path().join("admin.token");
    std::fs::write(&admin, app.admin_token()).unwrap();
    let (old, new) = (tmp.path().join("old"), tmp.path().join("new"));
    append(&app, 0, 5).await;
    assert!(export(&app.base, &admin, &old)
        .await
        .starts_with("exported 5 leaves"));
    tokio::time::sleep(SIGN_INTERVAL).await;
    append(&app, 5, 4).await;
    assert!(export(&app.base, &admin, &new)
        .await
        .starts_with("exported 9 leaves"));
    // An export never overwrites an earlier one.
    let (_, e) = fails_with(
        2,
        &[
            "audit",
            "export",
            "--issuer",
            &app.base,
            "--admin-token",
            s(&admin),
            "--out",
            s(&new),
        ],
    )
    .await;
    assert!(e.contains("already holds an export"), "{e}");

    // The intact copy verifies; the key that came with it is named as such.
    let out = cli(&["audit", "verify", "--dir", s(&new)]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("ok: 9 leaves, root "),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("the audit key was taken from"),
        "{}",
        stderr(&out)
    );
    let key = old.join("audit-key");
    let with_old = ok(&[
        "audit",
        "verify",
        "--dir",
        s(&new),
        "--key",
        s(&key),
        "--old-checkpoint",
        s(&old.join("checkpoint")),
    ])
    .await;
    assert!(
        with_old.contains("extending the old checkpoint of 5 leaves"),
        "{with_old}"
    );

    let good = read_leaves(&new);
    type Edit = fn(&mut Vec<Vec<u8>>);
    let edits: [(&str, Edit, &[&str]); 5] = [
        (
            "altered",
            |l| l[4][10] ^= 1,
            &[
                "failed: root differs",
                "hint: leaf 4 is not a readable version-1 record",
            ],
        ),
        (
            "deleted",
            |l| {
                l.remove(3);
            },
            &["failed: leaf count differs: the checkpoint has 9, the leaves file 8"],
        ),
        (
            "duplicated",
            |l| l.insert(3, l[2].clone()),
            &[
                "failed: leaf count differs: the checkpoint has 9, the leaves file 10",
                "hint: leaf 3 repeats leaf 2 byte for byte",
            ],
        ),
        (
            "swapped",
            |l| l.swap(5, 6),
            &[
                "failed: root differs",
                "hint: leaf 6 is dated",
                "before leaf 5",
            ],
        ),
        (
            "truncated",
            |l| l.truncate(5),
            &["failed: leaf count differs: the checkpoint has 9, the leaves file 5"],
        ),
    ];
    for (what, edit, says) in edits {
        let mut leaves = good.clone();
        edit(&mut leaves);
        let copy = tmp.path().join(what);
        copy_with(&new, &copy, &leaves);
        let (o, e) = fails(&["audit", "verify", "--dir", s(&copy), "--key", s(&key)]).await;
        assert!(e.contains("does not verify"), "{what}: {e}");
        for needle in says {
            assert!(o.contains(needle), "{what}: expected {needle:?} in\n{o}");
        }
    }

    // A checkpoint with one signature byte flipped, and one read for another origin.
    let note = std::fs::read_to_string(new.join("checkpoint")).unwrap();
    let (text, sig_line) = note.trim_end().rsplit_once('\n').unwrap();
    let (head, sig) = sig_line.rsplit_once(' ').unwrap();
    let mut sig = B64.decode(sig).unwrap();
    *sig.last_mut().unwrap() ^= 1;
    let forged = format!("{text}\n{head} {}\n", B64.encode(&sig));
    let copy = tmp.path().join("forged");
    copy_with(&new, &copy, &good);
    std::fs::write(copy.join("checkpoint"), forged).unwrap();
    let (o, _) = fails(&["audit", "verify", "--dir", s(&copy), "--key", s(&key)]).await;
    assert!(o.starts_with("failed: the checkpoint refused: "), "{o}");
    assert!(o.contains("signature"), "{o}");
    assert!(!o.contains("hint:"), "{o}");
    let (o, _) = fails(&[
        "audit",
        "verify",
        "--dir",
        s(&new),
        "--key",
        s(&key),
        "--origin",
        "elsewhere.example/audit",
    ])
    .await;
    assert!(
        o.contains("failed: the checkpoint refused: the checkpoint is for origin"),
        "{o}"
    );

    // History rewritten and signed again with the audit key: the new
    // checkpoint matches, the old one does not.
    let mut rewritten = good.clone();
    rewritten[1] = tessera::tlog::record::leaf_bytes(&event("forged")).unwrap();
    let copy = tmp.path().join("rewritten");
    copy_with(&new, &copy, &rewritten);
    std::fs::write(
        copy.join("checkpoint"),
        sign(&audit_signer(&app), &rewritten),
    )
    .unwrap();
    ok(&["audit", "verify", "--dir", s(&copy), "--key", s(&key)]).await;
    let (o, _) = fails(&[
        "audit",
        "verify",
        "--dir",
        s(&copy),
        "--key",
        s(&key),
        "--old-checkpoint",
        s(&old.join("checkpoint")),
    ])
    .await;
    assert!(
        o.contains("failed: the first 5 leaves do not hash to the old checkpoint's root"),
        "{o}"
    );

    // Against the live issuer: a leaf's inclusion, consistency, and an
    // index past the end (a 400 with its code, one line).
    let conn = [
        "--issuer",
        &app.base,
        "--admin-token",
        s(&admin),
        "--key",
        s(&key),
    ];
    let inc = ok(&[&["audit", "inclusion", "--index", "3"][..], &conn].concat()).await;
    assert!(inc.starts_with("ok: leaf 3 (leaf hash "), "{inc}");
    assert!(inc.contains(&hex::encode(leaf_hash(&good[3]))), "{inc}");
    let (_, e) = fails(&[&["audit", "inclusion", "--index", "9"][..], &conn].concat()).await;
    assert!(
        e.contains("issuer answered 400 invalid_request: leaf index 9 is past the end of a tree of 9 leaves"),
        "{e}"
    );
    let old_cp = old.join("checkpoint");
    let cons = ok(&[
        &["audit", "consistency", "--old-checkpoint", s(&old_cp)][..],
        &conn,
    ]
    .concat())
    .await;
    assert!(cons.starts_with("ok: the log of 5 leaves (root "), "{cons}");
    assert!(
        cons.contains(", signed) is a prefix of the log of 9 leaves"),
        "{cons}"
    );
    let cons = ok(&[
        &["audit", "consistency", "--from", "3", "--to", "7"][..],
        &conn,
    ]
    .concat())
    .await;
    assert!(
        cons.contains("which the latest checkpoint of 9 leaves extends"),
        "{cons}"
    );
    let (_, e) = fails(
        &[
            &["audit", "consistency", "--from", "7", "--to", "3"][..],
            &conn,
        ]
        .concat(),
    )
    .await;
    assert!(e.contains("400 invalid_request"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaves_and_nodes_overwritten_in_redis_are_caught_by_a_fresh_export_or_the_old_checkpoint()
{
    let Some(app) = TestApp::spawn_redis().await else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let admin = tmp.path().join("admin.token");
    std::fs::write(&admin, app.admin_token()).unwrap();
    let before = tmp.path().join("before");
    append(&app, 0, 6).await;
    export(&app.base, &admin, &before).await;
    let key = before.join("audit-key");
    ok(&["audit", "verify", "--dir", s(&before), "--key", s(&key)]).await;

    let layout =
        tessera::records::redis::RedisLayout::new(app.state.config.redis_key_prefix.clone())
            .unwrap();
    let client = redis::Client::open(app.redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut leaves = read_leaves(&before);
    leaves[2] = tessera::tlog::record::leaf_bytes(&event("overwritten")).unwrap();
    let _: () = redis::cmd("LSET")
        .arg(layout.tlog_leaves())
        .arg(2)
        .arg(leaves[2].as_slice())
        .query_async(&mut conn)
        .await
        .unwrap();

    // Only the leaf changed: the issuer's own root no longer matches it.
    let fresh = tmp.path().join("fresh");
    export(&app.base, &admin, &fresh).await;
    let (o, _) = fails(&["audit", "verify", "--dir", s(&fresh), "--key", s(&key)]).await;
    assert!(o.contains("failed: root differs"), "{o}");

    // The nodes rewritten to match, and the log grown so a new checkpoint is
    // signed over them: only the old checkpoint tells.
    for ((level, index), hash) in all_nodes(&leaves) {
        let _: () = redis::cmd("HSET")
            .arg(layout.tlog_nodes())
            .arg(format!("{level}:{index}"))
            .arg(hex::encode(hash))
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    append(&app, 6, 1).await;
    tokio::time::sleep(SIGN_INTERVAL).await;
    let later = tmp.path().join("later");
    assert!(export(&app.base, &admin, &later)
        .await
        .starts_with("exported 7 leaves"));
    ok(&["audit", "verify", "--dir", s(&later), "--key", s(&key)]).await;
    let (o, _) = fails(&[
        "audit",
        "verify",
        "--dir",
        s(&later),
        "--key",
        s(&key),
        "--old-checkpoint",
        s(&before.join("checkpoint")),
    ])
    .await;
    assert!(
        o.contains("failed: the first 6 leaves do not hash to the old checkpoint's root"),
        "{o}"
    );
    let (_, e) = fails(&[
        "audit",
        "consistency",
        "--issuer",
        &app.base,
        "--admin-token",
        s(&admin),
        "--key",
        s(&key),
        "--old-checkpoint",
        s(&before.join("checkpoint")),
    ])
    .await;
    assert!(
        e.contains("the log of 6 leaves is not a prefix of the log of 7 leaves"),
        "{e}"
    );
}
