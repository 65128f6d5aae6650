//! The embedded store's file edited offline, between two runs of the real
//! `tessera serve`: `tessera audit verify` on a fresh export names a leaf
//! changed behind the tree's back, and a tree rewritten to match is caught
//! by the checkpoint exported before (tests/it/store/tamper.rs shows the
//! store side with proofs; this is the auditor's side, with the CLI).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redb::{Database, ReadableDatabase, ReadableTableMetadata, TableDefinition};
use tessera::store::{RedbStore, Stores};

use super::audit_verify::{all_nodes, event, export, fails, ok, read_leaves};
use crate::store::redis_server::free_port;

const BIN: &str = env!("CARGO_BIN_EXE_tessera");
const LEAVES: TableDefinition<u64, &[u8]> = TableDefinition::new("tlog_leaves");
const NODES: TableDefinition<(u32, u64), &[u8]> = TableDefinition::new("tlog_nodes");

/// `tessera serve` on `dir`, killed on drop.
struct Served {
    child: Child,
    base: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    /// Starts the binary on a free port, always naming itself `issuer_url`
    /// (so the log's origin stays the same from run to run).
    async fn start(dir: &Path, issuer_url: &str) -> Self {
        let http = reqwest::Client::new();
        for _ in 0..5 {
            let port = free_port();
            let log = std::fs::File::create(dir.join(format!("serve-{port}.log"))).unwrap();
            let child = Command::new(BIN)
                .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
                .args(["--issuer-url", issuer_url, "--data-dir"])
                .arg(dir)
                .env_remove("TESSERA_REDIS_URL")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap();
            let mut served = Self {
                child,
                base: format!("http://127.0.0.1:{port}"),
            };
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline && served.child.try_wait().unwrap().is_none() {
                let healthy = http.get(format!("{}/healthz", served.base)).send().await;
                if healthy.is_ok_and(|r| r.status().is_success()) {
                    return served;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        panic!("tessera serve did not start");
    }
}

/// Replaces the leaves (and, with `nodes`, the tree's nodes) in the file.
fn rewrite(db_path: &Path, leaves: &[Vec<u8>], nodes: bool) {
    let db = Database::open(db_path).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut table = txn.open_table(LEAVES).unwrap();
        for (i, leaf) in (0u64..).zip(leaves) {
            table.insert(i, leaf.as_slice()).unwrap();
        }
    }
    if nodes {
        let mut table = txn.open_table(NODES).unwrap();
        for (id, hash) in all_nodes(leaves) {
            table.insert(id, hash.as_slice()).unwrap();
        }
    }
    txn.commit().unwrap();
}

fn count(db_path: &Path) -> u64 {
    let db = Database::open(db_path).unwrap();
    let txn = db.begin_read().unwrap();
    txn.open_table(LEAVES).unwrap().len().unwrap()
}

fn admin_token(dir: &Path, out: &Path) {
    let token = Command::new(BIN)
        .args(["admin", "token", "--data-dir"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(token.status.success());
    std::fs::write(out, token.stdout).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_file_edited_offline_is_caught_by_a_fresh_export_or_the_old_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let db_path = data.join("tessera.redb");
    std::fs::create_dir_all(&data).unwrap();
    {
        let stores = Stores::from_backend(Arc::new(RedbStore::open(&data).unwrap()));
        for i in 0..6 {
            stores
                .audit
                .append(&event(&format!("e-{i}")))
                .await
                .unwrap();
        }
    }
    let issuer_url = format!("http://127.0.0.1:{}", free_port());
    let admin = tmp.path().join("admin.token");
    let before = tmp.path().join("before");
    {
        let served = Served::start(&data, &issuer_url).await;
        admin_token(&data, &admin);
        export(&served.base, &admin, &before).await;
    }
    let key = before.join("audit-key");
    let size = count(&db_path);
    assert!(size >= 6, "{size}");
    let verified = ok(&["audit", "verify", "--dir", before.to_str().unwrap()]).await;
    assert!(
        verified.starts_with(&format!("ok: {size} leaves")),
        "{verified}"
    );

    // One byte of one leaf, changed in the file while the issuer is down.
    let mut leaves = read_leaves(&before);
    leaves[3][12] ^= 0x20;
    rewrite(&db_path, &leaves, false);
    let fresh = tmp.path().join("fresh");
    {
        let served = Served::start(&data, &issuer_url).await;
        export(&served.base, &admin, &fresh).await;
    }
    let (o, _) = fails(&[
        "audit",
        "verify",
        "--dir",
        fresh.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ])
    .await;
    assert!(o.contains("failed: root differs"), "{o}");

    // The nodes recomputed to match: the issuer now signs the forged tree,
    // which verifies on its own; the checkpoint from before refuses it.
    rewrite(&db_path, &leaves, true);
    let after = tmp.path().join("after");
    let served = Served::start(&data, &issuer_url).await;
    export(&served.base, &admin, &after).await;
    let (after_s, key_s) = (after.to_str().unwrap(), key.to_str().unwrap());
    ok(&["audit", "verify", "--dir", after_s, "--key", key_s]).await;
    let old = before.join("checkpoint");
    let (o, _) = fails(&[
        "audit",
        "verify",
        "--dir",
        after_s,
        "--key",
        key_s,
        "--old-checkpoint",
        old.to_str().unwrap(),
    ])
    .await;
    assert!(
        o.contains(&format!(
            "failed: the first {size} leaves do not hash to the old checkpoint's root"
        )),
        "{o}"
    );
    let (_, e) = fails(&[
        "audit",
        "consistency",
        "--issuer",
        &served.base,
        "--admin-token",
        admin.to_str().unwrap(),
        "--key",
        key_s,
        "--old-checkpoint",
        old.to_str().unwrap(),
    ])
    .await;
    assert!(
        e.contains(&format!("the log of {size} leaves is not a prefix")),
        "{e}"
    );
}
