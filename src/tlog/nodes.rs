//! Appending to a stored tree and serving proofs from stored nodes.
//!
//! A store keeps the hash of every complete subtree `(level, index)` (level
//! 0: the leaf hashes). Appending leaf `n` writes its hash and the hash of
//! each subtree it completes, which needs the left siblings on the tree's
//! right edge ([`append_needs`], then [`append_nodes`]). A proof needs a
//! few of the stored nodes, and which ones depends only on the sizes: a
//! first pass over a recording [`NodeMap`] lists them, the store reads them
//! in one go (O(log n) reads), and a second pass computes the proof.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};

use super::merkle::{node_hash, Hash, MerkleError, SubtreeHashes};

/// A subtree's position: `(level, index)`.
pub type NodeId = (u32, u64);

/// The stored nodes that appending the leaf at index `size` reads: the
/// left siblings of the subtrees it completes, lowest first.
pub fn append_needs(size: u64) -> Vec<NodeId> {
    let mut needs = Vec::new();
    let (mut level, mut index) = (0, size);
    while index & 1 == 1 {
        needs.push((level, index - 1));
        index >>= 1;
        level += 1;
    }
    needs
}

/// The nodes to store when appending the leaf hash `leaf` at index `size`,
/// given the hashes of [`append_needs`]`(size)` in that order.
pub fn append_nodes(size: u64, leaf: Hash, siblings: &[Hash]) -> Vec<(NodeId, Hash)> {
    let mut out = vec![((0, size), leaf)];
    let (mut level, mut index, mut hash) = (0u32, size, leaf);
    for sibling in siblings {
        hash = node_hash(sibling, &hash);
        index >>= 1;
        level += 1;
        out.push(((level, index), hash));
    }
    out
}

/// Subtree hashes read from a store for one computation; in recording mode
/// it answers zeros and notes which nodes were asked for.
#[derive(Debug)]
pub struct NodeMap {
    size: u64,
    nodes: HashMap<NodeId, Hash>,
    asked: Option<RefCell<BTreeSet<NodeId>>>,
}

impl NodeMap {
    /// Runs `op` over a tree of `size` leaves, recording the nodes it reads.
    /// Fails as `op` would for a bad request (sizes past the end).
    pub fn needed<T>(
        size: u64,
        op: impl Fn(&NodeMap) -> Result<T, MerkleError>,
    ) -> Result<Vec<NodeId>, MerkleError> {
        let map = Self {
            size,
            nodes: HashMap::new(),
            asked: Some(RefCell::new(BTreeSet::new())),
        };
        op(&map)?;
        Ok(map
            .asked
            .map(|a| a.into_inner().into_iter().collect())
            .unwrap_or_default())
    }

    /// The nodes read, for a tree of `size` leaves.
    pub fn new(size: u64, nodes: impl IntoIterator<Item = (NodeId, Hash)>) -> Self {
        Self {
            size,
            nodes: nodes.into_iter().collect(),
            asked: None,
        }
    }
}

impl SubtreeHashes for NodeMap {
    type Error = MerkleError;

    fn size(&self) -> u64 {
        self.size
    }

    fn subtree(&self, level: u32, index: u64) -> Result<Hash, MerkleError> {
        if let Some(asked) = &self.asked {
            asked.borrow_mut().insert((level, index));
            return Ok([0; 32]);
        }
        self.nodes
            .get(&(level, index))
            .copied()
            .ok_or(MerkleError::MissingSubtree { level, index })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tlog::merkle::{inclusion_proof, leaf_hash, root};
    use crate::tlog::MemoryTree;

    #[test]
    fn stored_nodes_give_the_memory_trees_roots_and_proofs() {
        let mut stored: HashMap<NodeId, Hash> = HashMap::new();
        let mut memory = MemoryTree::new();
        for n in 0..37u64 {
            let leaf = leaf_hash(&n.to_be_bytes());
            let siblings: Vec<Hash> = append_needs(n).iter().map(|id| stored[id]).collect();
            stored.extend(append_nodes(n, leaf, &siblings));
            memory.push(leaf);
            let size = n + 1;
            let wanted = NodeMap::needed(size, |m| root(m, size)).unwrap();
            let map = NodeMap::new(size, wanted.iter().map(|id| (*id, stored[id])));
            assert_eq!(root(&map, size).unwrap(), memory.root());
            let wanted = NodeMap::needed(size, |m| inclusion_proof(m, n / 2, size)).unwrap();
            assert!(wanted.len() <= 2 * 64);
            let map = NodeMap::new(size, wanted.iter().map(|id| (*id, stored[id])));
            assert_eq!(
                inclusion_proof(&map, n / 2, size).unwrap(),
                inclusion_proof(&memory, n / 2, size).unwrap()
            );
        }
        assert!(NodeMap::needed(3, |m| inclusion_proof(m, 3, 3)).is_err());
    }
}
