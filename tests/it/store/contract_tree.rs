//! The audit tree's part of the store contract: the leaves every append
//! adds, and roots and proofs served from the stored nodes, against
//! `MemoryTree` over the same leaf bytes.

use tessera::store::tree::{self, TreeError};
use tessera::store::{Issue, OnceKey, OnceKind, Stores};
use tessera::tlog::merkle::{self, leaf_hash, MerkleError};
use tessera::tlog::record::leaf_bytes;
use tessera::tlog::MemoryTree;

use super::contract::{event, token, wall_clock};

pub async fn every_append_adds_its_leaf_and_roots_and_proofs_match_a_memory_tree(stores: &Stores) {
    let now = wall_clock();
    assert_eq!(stores.tree.tree_size().await.unwrap(), 0);
    assert_eq!(
        tree::head(&*stores.tree).await.unwrap().1,
        merkle::empty_root()
    );
    let mut expected = Vec::new();
    for i in 0..11 {
        let e = event("https://agents.example/alpha", &format!("tree-{i}"), now);
        if i % 2 == 0 {
            stores.audit.append(&e).await.unwrap();
        } else {
            let key = OnceKey {
                kind: OnceKind::DpopProof,
                key: format!("tree-key-{i}"),
                expires_at: now + chrono::TimeDelta::seconds(60),
            };
            let t = token(
                &format!("tree-{i}"),
                "https://agents.example/alpha",
                now,
                60,
            );
            let issued = stores.issuance.record_issue(&[key], &t, &e, now).await;
            assert!(matches!(issued, Ok(Issue::Recorded(_))), "{issued:?}");
        }
        expected.push(leaf_bytes(&e).unwrap());
    }
    // 21 more from concurrent tasks: each leaf exactly once, in some order.
    let mut tasks = Vec::new();
    for i in 11..32 {
        let audit = stores.audit.clone();
        let e = event("https://agents.example/beta", &format!("tree-{i}"), now);
        expected.push(leaf_bytes(&e).unwrap());
        tasks.push(tokio::spawn(async move { audit.append(&e).await }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    // A record written while another catch-up runs is appended by the next
    // one (on Redis; the embedded store appends in the record's own
    // transaction): a checkpoint catches up first, and so does this.
    let size = stores.tree.catch_up().await.unwrap();
    assert_eq!(size, 32);
    assert_eq!(stores.tree.tree_size().await.unwrap(), 32);
    let leaves = stores.tree.leaves(0, 100).await.unwrap();
    assert_eq!(leaves[..11], expected[..11]);
    let (mut got, mut want) = (leaves[11..].to_vec(), expected[11..].to_vec());
    got.sort();
    want.sort();
    assert_eq!(got, want);
    assert_eq!(stores.tree.leaves(30, 40).await.unwrap(), leaves[30..]);
    assert!(stores.tree.leaves(40, 50).await.unwrap().is_empty());

    let memory = MemoryTree::from_leaf_hashes(leaves.iter().map(|l| leaf_hash(l)));
    assert_eq!(
        tree::head(&*stores.tree).await.unwrap(),
        (32, memory.root())
    );
    for n in 1..=size {
        let root = tree::root_at(&*stores.tree, n).await.unwrap();
        assert_eq!(root, merkle::root(&memory, n).unwrap());
        let index = n / 3;
        let proof = tree::inclusion(&*stores.tree, index, n).await.unwrap();
        assert_eq!(proof, merkle::inclusion_proof(&memory, index, n).unwrap());
        merkle::verify_inclusion(&leaf_hash(&leaves[index as usize]), index, n, &proof, &root)
            .unwrap();
        let old = n / 2;
        let proof = tree::consistency(&*stores.tree, old, n).await.unwrap();
        let old_root = merkle::root(&memory, old).unwrap();
        merkle::verify_consistency(old, n, &proof, &old_root, &root).unwrap();
    }
    // Requests past the end or reversed are typed errors.
    assert!(matches!(
        tree::inclusion(&*stores.tree, 32, 32).await,
        Err(TreeError::Request(MerkleError::IndexPastEnd {
            index: 32,
            size: 32
        }))
    ));
    assert!(matches!(
        tree::root_at(&*stores.tree, 33).await,
        Err(TreeError::Request(MerkleError::SizePastEnd {
            size: 33,
            available: 32
        }))
    ));
    assert!(matches!(
        tree::consistency(&*stores.tree, 5, 4).await,
        Err(TreeError::Request(MerkleError::SizesReversed {
            from: 5,
            to: 4
        }))
    ));
}
