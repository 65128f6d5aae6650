//! [`AuditTree`] on the embedded store: the leaf bytes and the complete
//! subtree hashes in two tables, written in the same transaction as the
//! audit event (so in the same group commit, one fsync per batch).

use async_trait::async_trait;
use redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

use super::{DbResult, RedbStore};
use crate::store::tree::{AuditTree, MAX_LEAVES_PER_READ};
use crate::store::StoreError;
use crate::tlog::merkle::{leaf_hash, Hash};
use crate::tlog::nodes::{append_needs, append_nodes, NodeId};

/// Leaf index -> the record's leaf bytes (`tessera::tlog::record`).
pub(super) const TLOG_LEAVES: TableDefinition<u64, &[u8]> = TableDefinition::new("tlog_leaves");
/// (level, index) -> the 32-byte hash of that complete subtree.
pub(super) const TLOG_NODES: TableDefinition<(u32, u64), &[u8]> =
    TableDefinition::new("tlog_nodes");

fn size_of(leaves: &impl ReadableTable<u64, &'static [u8]>) -> Result<u64, StoreError> {
    Ok(leaves.last().db()?.map_or(0, |(k, _)| k.value() + 1))
}

fn hash_of(bytes: &[u8]) -> Result<Hash, StoreError> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt("an audit tree node is not 32 bytes".to_owned()))
}

/// Appends `leaf` (leaf bytes) to the tree in `txn`; returns its index.
pub(super) fn append_leaf(txn: &WriteTransaction, leaf: &[u8]) -> Result<u64, StoreError> {
    let mut leaves = txn.open_table(TLOG_LEAVES).db()?;
    let mut nodes = txn.open_table(TLOG_NODES).db()?;
    let size = size_of(&leaves)?;
    let mut siblings = Vec::new();
    for id in append_needs(size) {
        let hash = nodes.get(id).db()?.ok_or_else(|| {
            StoreError::Corrupt(format!("audit tree node {}/{} is missing", id.0, id.1))
        })?;
        siblings.push(hash_of(hash.value())?);
    }
    leaves.insert(size, leaf).db()?;
    for (id, hash) in append_nodes(size, leaf_hash(leaf), &siblings) {
        nodes.insert(id, hash.as_slice()).db()?;
    }
    Ok(size)
}

#[async_trait]
impl AuditTree for RedbStore {
    async fn tree_size(&self) -> Result<u64, StoreError> {
        self.lookup(|db| {
            let txn = db.begin_read().db()?;
            size_of(&txn.open_table(TLOG_LEAVES).db()?)
        })
    }

    async fn subtrees(&self, ids: &[NodeId]) -> Result<Vec<Option<Hash>>, StoreError> {
        let ids = ids.to_vec();
        self.lookup(move |db| {
            let txn = db.begin_read().db()?;
            let nodes = txn.open_table(TLOG_NODES).db()?;
            ids.iter()
                .map(|id| match nodes.get(*id).db()? {
                    Some(hash) => hash_of(hash.value()).map(Some),
                    None => Ok(None),
                })
                .collect()
        })
    }

    async fn leaves(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        let end = end.min(start.saturating_add(MAX_LEAVES_PER_READ));
        self.run(move |db| {
            let txn = db.begin_read().db()?;
            let leaves = txn.open_table(TLOG_LEAVES).db()?;
            let mut out = Vec::new();
            for (next, entry) in (start..).zip(leaves.range(start..end).db()?) {
                let (index, bytes) = entry.db()?;
                if index.value() != next {
                    break;
                }
                out.push(bytes.value().to_vec());
            }
            Ok(out)
        })
        .await
    }
}
