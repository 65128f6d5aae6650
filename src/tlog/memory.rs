//! The in-memory Merkle tree: leaf hashes and every complete subtree above
//! them, the [`SubtreeHashes`] source the benchmarks and tests use and the
//! model for a store's.

use super::merkle::{empty_root, node_hash, Hash, MerkleError, SubtreeHashes};

/// An in-memory tree of leaf hashes that keeps every complete subtree, so a
/// root or a proof at any size costs O(log² n) hashes at most. Memory: about
/// two hashes (64 bytes) per leaf.
#[derive(Debug, Clone, Default)]
pub struct MemoryTree {
    /// `levels[l][i]`: the complete subtree of `2^l` leaves at `i`.
    levels: Vec<Vec<Hash>>,
}

impl MemoryTree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// A tree of the given leaf hashes, in order.
    pub fn from_leaf_hashes(leaves: impl IntoIterator<Item = Hash>) -> Self {
        let mut tree = Self::new();
        for leaf in leaves {
            tree.push(leaf);
        }
        tree
    }

    /// Appends a leaf hash (see [`super::merkle::leaf_hash`]); amortized one node hash.
    pub fn push(&mut self, leaf: Hash) {
        let mut level = 0;
        let mut hash = leaf;
        loop {
            if self.levels.len() == level {
                self.levels.push(Vec::new());
            }
            let row = &mut self.levels[level];
            row.push(hash);
            let n = row.len();
            if n % 2 == 1 {
                return;
            }
            hash = node_hash(&row[n - 2], &row[n - 1]);
            level += 1;
        }
    }

    /// The number of leaves.
    pub fn len(&self) -> u64 {
        self.levels.first().map_or(0, |row| row.len() as u64)
    }

    /// Whether the tree has no leaves.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The root of the whole tree.
    pub fn root(&self) -> Hash {
        // The unpaired last subtree of each level is a peak of the tree;
        // folding the peaks from the smallest up gives RFC 6962's root.
        let mut acc: Option<Hash> = None;
        for row in &self.levels {
            if row.len() % 2 == 1 {
                if let Some(peak) = row.last() {
                    acc = Some(match acc {
                        None => *peak,
                        Some(right) => node_hash(peak, &right),
                    });
                }
            }
        }
        acc.unwrap_or_else(empty_root)
    }
}

impl SubtreeHashes for MemoryTree {
    type Error = MerkleError;

    fn size(&self) -> u64 {
        self.len()
    }

    fn subtree(&self, level: u32, index: u64) -> Result<Hash, MerkleError> {
        let missing = MerkleError::MissingSubtree { level, index };
        let row = usize::try_from(level)
            .ok()
            .and_then(|l| self.levels.get(l))
            .ok_or(missing.clone())?;
        usize::try_from(index)
            .ok()
            .and_then(|i| row.get(i))
            .copied()
            .ok_or(missing)
    }
}
