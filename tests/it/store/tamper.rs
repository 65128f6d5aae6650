//! Tampering with the audit tree in the embedded store's file (opened with
//! redb directly, as an attacker with the file would): every change to a
//! leaf, a deletion, a duplicate or a reordering no longer verifies
//! against a checkpoint root taken before.

use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tessera::store::tree;
use tessera::store::{RedbStore, Stores};
use tessera::tlog::merkle::{leaf_hash, verify_inclusion, Hash};
use tessera::tlog::MemoryTree;

use super::contract::{event, wall_clock};

const LEAVES: TableDefinition<u64, &[u8]> = TableDefinition::new("tlog_leaves");

/// Whether every leaf in the file still proves its inclusion in `root`.
fn all_included(leaves: &[Vec<u8>], size: u64, root: &Hash) -> bool {
    if leaves.len() as u64 != size {
        return false;
    }
    let tree = MemoryTree::from_leaf_hashes(leaves.iter().map(|l| leaf_hash(l)));
    (0..size).all(|i| {
        let proof = tessera::tlog::merkle::inclusion_proof(&tree, i, size).unwrap();
        verify_inclusion(&leaf_hash(&leaves[i as usize]), i, size, &proof, root).is_ok()
    })
}

#[tokio::test]
async fn changed_deleted_duplicated_or_reordered_leaves_no_longer_match_the_old_root() {
    let dir = tempfile::tempdir().unwrap();
    let (size, root) = {
        let stores = Stores::from_backend(Arc::new(RedbStore::open(dir.path()).unwrap()));
        for i in 0..9 {
            let e = event(
                "https://agents.example/alpha",
                &format!("t-{i}"),
                wall_clock(),
            );
            stores.audit.append(&e).await.unwrap();
        }
        tree::head(&*stores.tree).await.unwrap()
    };
    let path = dir.path().join("tessera.redb");
    let read = || -> Vec<Vec<u8>> {
        let db = Database::open(&path).unwrap();
        let txn = db.begin_read().unwrap();
        let table = txn.open_table(LEAVES).unwrap();
        table
            .iter()
            .unwrap()
            .map(|e| e.unwrap().1.value().to_vec())
            .collect()
    };
    let original = read();
    assert!(all_included(&original, size, &root));
    type Edit = fn(&mut Vec<Vec<u8>>);
    let edits: [(&str, Edit); 5] = [
        ("altered", |l| l[4][10] ^= 1),
        ("deleted", |l| {
            l.remove(3);
        }),
        ("duplicated", |l| {
            let copy = l[2].clone();
            l.insert(3, copy);
            l.pop();
        }),
        ("reordered", |l| l.swap(1, 2)),
        ("truncated", |l| l.truncate(5)),
    ];
    for (what, edit) in edits {
        let mut leaves = original.clone();
        edit(&mut leaves);
        {
            let db = Database::open(&path).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut table = txn.open_table(LEAVES).unwrap();
                table.retain(|_, _| false).unwrap();
                for (i, leaf) in leaves.iter().enumerate() {
                    table.insert(i as u64, leaf.as_slice()).unwrap();
                }
            }
            txn.commit().unwrap();
        }
        let stored = read();
        assert_eq!(stored, leaves);
        assert!(!all_included(&stored, size, &root), "{what} leaves passed");
    }
}
