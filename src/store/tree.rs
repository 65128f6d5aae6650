//! The audit log's Merkle tree as stored: [`AuditTree`], kept by both
//! backends alongside [`super::AuditLog`] (every append adds a leaf in the
//! same store operation), and roots and proofs computed from its stored
//! nodes with O(log n) reads.

use async_trait::async_trait;

use super::StoreError;
use crate::tlog::merkle::{self, Hash, MerkleError};
use crate::tlog::nodes::{NodeId, NodeMap};

/// Whether the stores write the audit tree: `true` in every build but one
/// compiled with `RUSTFLAGS="--cfg tessera_bench_no_audit_tree"`, which
/// exists only to measure what the tree adds to a mint (benches/issuer_load.rs,
/// `LOAD_BIN_NO_TREE`). That cfg is not a cargo feature, so `--all-features`
/// never sets it; its `tessera serve` logs a warning at start and answers
/// every checkpoint request with 503.
pub const AUDIT_TREE_ON: bool = !cfg!(tessera_bench_no_audit_tree);

/// The most leaves one [`AuditTree::leaves`] call returns.
pub const MAX_LEAVES_PER_READ: u64 = 1000;

/// The stored Merkle tree of the audit log: the exact leaf bytes of each
/// record (`tessera::tlog::record`) and the hash of every complete subtree.
#[async_trait]
pub trait AuditTree: Send + Sync {
    /// The number of leaves.
    async fn tree_size(&self) -> Result<u64, StoreError>;
    /// The hashes of the complete subtrees `ids` (`(level, index)`), in the
    /// same order; `None` for one that is not stored.
    async fn subtrees(&self, ids: &[NodeId]) -> Result<Vec<Option<Hash>>, StoreError>;
    /// The leaf bytes of leaves `start..end`, cut at the tree size and at
    /// [`MAX_LEAVES_PER_READ`] leaves. A leaf no longer kept (pruned after
    /// export) ends the answer.
    async fn leaves(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, StoreError>;
    /// Appends the leaves of audit records that the tree does not hold yet
    /// (on Redis: records written by others, such as verifiers' decisions
    /// through their `AuditSink`, and records whose own catch-up found
    /// another running and left them to the next); returns the size. Every
    /// record written before the call is a leaf after it. The embedded
    /// store's tree is written with each record, so it has nothing to catch
    /// up.
    async fn catch_up(&self) -> Result<u64, StoreError> {
        self.tree_size().await
    }
}

/// Why a root or proof could not be served.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// The request itself is wrong (sizes or index past the end, reversed).
    #[error(transparent)]
    Request(#[from] MerkleError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Runs `op` over the stored nodes of a tree of `size` leaves (the store's
/// current size if `None`), reading exactly the nodes it needs.
async fn over_nodes<T>(
    tree: &dyn AuditTree,
    size: u64,
    op: impl Fn(&NodeMap) -> Result<T, MerkleError>,
) -> Result<T, TreeError> {
    let ids = NodeMap::needed(size, &op)?;
    let hashes = tree.subtrees(&ids).await?;
    let mut nodes = Vec::with_capacity(ids.len());
    for (id, hash) in ids.into_iter().zip(hashes) {
        let hash = hash.ok_or_else(|| {
            StoreError::Corrupt(format!("audit tree node {}/{} is missing", id.0, id.1))
        })?;
        nodes.push((id, hash));
    }
    Ok(op(&NodeMap::new(size, nodes))?)
}

/// The current size and root of the stored tree.
pub async fn head(tree: &dyn AuditTree) -> Result<(u64, Hash), TreeError> {
    let size = tree.tree_size().await?;
    let root = over_nodes(tree, size, |m| merkle::root(m, size)).await?;
    Ok((size, root))
}

/// The root of the first `size` leaves.
pub async fn root_at(tree: &dyn AuditTree, size: u64) -> Result<Hash, TreeError> {
    let available = tree.tree_size().await?;
    over_nodes(tree, available, |m| merkle::root(m, size)).await
}

/// The inclusion proof of leaf `index` in the tree of `size` leaves.
pub async fn inclusion(
    tree: &dyn AuditTree,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, TreeError> {
    let available = tree.tree_size().await?;
    over_nodes(tree, available, |m| merkle::inclusion_proof(m, index, size)).await
}

/// The consistency proof between the trees of `from` and `to` leaves.
pub async fn consistency(tree: &dyn AuditTree, from: u64, to: u64) -> Result<Vec<Hash>, TreeError> {
    let available = tree.tree_size().await?;
    over_nodes(tree, available, |m| merkle::consistency_proof(m, from, to)).await
}
