//! RFC 6962 Merkle trees (hashing as in RFC 6962 §2.1, proofs as in RFC 9162
//! §2.1.3 and §2.1.4).
//!
//! A leaf's hash is `SHA-256(0x00 || data)`, an inner node's
//! `SHA-256(0x01 || left || right)`, and the tree of `n` leaves splits at the
//! largest power of two below `n`. Proofs are generated from any
//! [`SubtreeHashes`] source (the hashes of complete, aligned subtrees), so a
//! store can serve them from what it keeps; [`super::MemoryTree`] is the
//! in-memory source. Verification needs only the hashes, the sizes and the proof.

use sha2::{Digest, Sha256};

/// A SHA-256 hash: a leaf hash, a node hash or a root.
pub type Hash = [u8; 32];

/// The hash of a leaf: `SHA-256(0x00 || data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(data);
    h.finalize().into()
}

/// The hash of an inner node: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree: SHA-256 of the empty string.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// Why a proof could not be built or did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MerkleError {
    /// A leaf index at or past the end of the tree it is asked about.
    #[error("leaf index {index} is past the end of a tree of {size} leaves")]
    IndexPastEnd {
        /// The index asked for.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// A tree size larger than the source holds.
    #[error("tree size {size} is larger than the log's {available} leaves")]
    SizePastEnd {
        /// The size asked for.
        size: u64,
        /// The leaves the source holds.
        available: u64,
    },
    /// A consistency proof asked from a larger size to a smaller one.
    #[error("consistency from size {from} to the smaller size {to}")]
    SizesReversed {
        /// The old size.
        from: u64,
        /// The new size.
        to: u64,
    },
    /// The source does not hold a complete subtree it should hold.
    #[error("the log has no subtree of 2^{level} leaves at position {index}")]
    MissingSubtree {
        /// log2 of the subtree's leaf count.
        level: u32,
        /// Its position among subtrees of that size.
        index: u64,
    },
    /// A proof with too few or too many hashes for the sizes it claims.
    #[error("a proof of {got} hashes does not fit these tree sizes")]
    ProofLength {
        /// The number of hashes in the proof.
        got: usize,
    },
    /// The proof leads to another root than the expected (new) root.
    #[error("the proof does not lead to the expected root hash")]
    RootMismatch,
    /// A consistency proof does not lead to the old root.
    #[error("the consistency proof does not lead to the old root hash")]
    OldRootMismatch,
}

/// A source of complete subtree hashes: what proof generation needs.
///
/// The subtree at `(level, index)` covers the `2^level` leaves from
/// `index << level`; level 0 holds the leaf hashes. Only subtrees that lie
/// wholly inside [`SubtreeHashes::size`] are asked for.
pub trait SubtreeHashes {
    /// The error of the source (a store's I/O error); it must carry
    /// [`MerkleError`] for bad requests.
    type Error: From<MerkleError>;

    /// The number of leaves the source holds.
    fn size(&self) -> u64;

    /// The hash of the complete subtree of `2^level` leaves at `index`.
    fn subtree(&self, level: u32, index: u64) -> Result<Hash, Self::Error>;
}

/// The largest power of two strictly below `n` (`n >= 2`).
fn split(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

/// The Merkle Tree Hash of the leaves `start..end` (`start < end`), built
/// from the largest complete subtrees the range holds: O(log n) lookups.
pub fn range_hash<S: SubtreeHashes + ?Sized>(
    src: &S,
    start: u64,
    end: u64,
) -> Result<Hash, S::Error> {
    let n = end.saturating_sub(start);
    if n == 0 {
        return Ok(empty_root());
    }
    if n.is_power_of_two() && start.is_multiple_of(n) {
        let level = n.trailing_zeros();
        return src.subtree(level, start >> level);
    }
    // n >= 2 here: a single leaf is an aligned subtree of level 0.
    let k = split(n);
    let left = range_hash(src, start, start + k)?;
    let right = range_hash(src, start + k, end)?;
    Ok(node_hash(&left, &right))
}

fn check_size<S: SubtreeHashes + ?Sized>(src: &S, size: u64) -> Result<(), MerkleError> {
    if size > src.size() {
        return Err(MerkleError::SizePastEnd {
            size,
            available: src.size(),
        });
    }
    Ok(())
}

/// The root of the first `size` leaves of `src` (the MTH of RFC 6962 §2.1).
pub fn root<S: SubtreeHashes + ?Sized>(src: &S, size: u64) -> Result<Hash, S::Error> {
    check_size(src, size)?;
    range_hash(src, 0, size)
}

/// The inclusion proof (audit path) of leaf `index` in the tree of the first
/// `size` leaves, deepest sibling first (RFC 9162 §2.1.3.1).
pub fn inclusion_proof<S: SubtreeHashes + ?Sized>(
    src: &S,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, S::Error> {
    check_size(src, size)?;
    if index >= size {
        return Err(MerkleError::IndexPastEnd { index, size }.into());
    }
    // Walk down from the root, noting each sibling range; the proof lists
    // them from the leaf up.
    let mut siblings = Vec::with_capacity(64);
    let (mut lo, mut hi) = (0, size);
    while hi - lo > 1 {
        let mid = lo + split(hi - lo);
        if index < mid {
            siblings.push((mid, hi));
            hi = mid;
        } else {
            siblings.push((lo, mid));
            lo = mid;
        }
    }
    siblings
        .iter()
        .rev()
        .map(|&(a, b)| range_hash(src, a, b))
        .collect()
}

/// The consistency proof between the trees of the first `from` and the first
/// `to` leaves (RFC 9162 §2.1.4.1). Empty when `from` is 0 or `from == to`.
pub fn consistency_proof<S: SubtreeHashes + ?Sized>(
    src: &S,
    from: u64,
    to: u64,
) -> Result<Vec<Hash>, S::Error> {
    if from > to {
        return Err(MerkleError::SizesReversed { from, to }.into());
    }
    check_size(src, to)?;
    if from == 0 || from == to {
        return Ok(Vec::new());
    }
    // SUBPROOF(m, D[lo:hi], b), unrolled: record the ranges top-down, then
    // emit them bottom-up.
    let mut ranges = Vec::with_capacity(64);
    let (mut m, mut lo, mut hi, mut whole) = (from, 0, to, true);
    loop {
        let n = hi - lo;
        if m == n {
            if !whole {
                ranges.push((lo, hi));
            }
            break;
        }
        let k = split(n);
        if m <= k {
            ranges.push((lo + k, hi));
            hi = lo + k;
        } else {
            ranges.push((lo, lo + k));
            m -= k;
            lo += k;
            whole = false;
        }
    }
    ranges
        .iter()
        .rev()
        .map(|&(a, b)| range_hash(src, a, b))
        .collect()
}

/// Checks that `leaf` is leaf `index` of the tree of `size` leaves whose root
/// is `root`, with the audit path `proof` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), MerkleError> {
    if index >= size {
        return Err(MerkleError::IndexPastEnd { index, size });
    }
    let bad_length = MerkleError::ProofLength { got: proof.len() };
    let (mut f, mut s, mut r) = (index, size - 1, *leaf);
    for p in proof {
        if s == 0 {
            return Err(bad_length);
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(bad_length);
    }
    if &r != root {
        return Err(MerkleError::RootMismatch);
    }
    Ok(())
}

/// Checks that the tree of `from` leaves with root `old_root` is a prefix of
/// the tree of `to` leaves with root `new_root` (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    from: u64,
    to: u64,
    proof: &[Hash],
    old_root: &Hash,
    new_root: &Hash,
) -> Result<(), MerkleError> {
    if from > to {
        return Err(MerkleError::SizesReversed { from, to });
    }
    let bad_length = MerkleError::ProofLength { got: proof.len() };
    if from == 0 || from == to {
        if !proof.is_empty() {
            return Err(bad_length);
        }
        if from == 0 && old_root != &empty_root() {
            return Err(MerkleError::OldRootMismatch);
        }
        if from == to && old_root != new_root {
            return Err(MerkleError::RootMismatch);
        }
        return Ok(());
    }
    // When `from` is a power of two the old root is itself the first node.
    let (first, rest) = if from.is_power_of_two() {
        (old_root, proof)
    } else {
        match proof.split_first() {
            Some(split) => split,
            None => return Err(bad_length),
        }
    };
    let (mut f, mut s) = (from - 1, to - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if s == 0 {
            return Err(bad_length);
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(bad_length);
    }
    if &fr != old_root {
        return Err(MerkleError::OldRootMismatch);
    }
    if &sr != new_root {
        return Err(MerkleError::RootMismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tlog::MemoryTree;

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    #[test]
    fn known_vectors_of_rfc_6962_hashing() {
        assert_eq!(
            hex::encode(empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        // The leaf hash of empty data (RFC 6962's first test vector).
        assert_eq!(
            hex::encode(leaf_hash(b"")),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
        // Domain separation: a leaf of 64 bytes is not the node of two hashes.
        let (a, b) = (leaf_hash(b"a"), leaf_hash(b"b"));
        assert_ne!(leaf_hash(&[a, b].concat()), node_hash(&a, &b));
    }

    #[test]
    fn roots_of_small_trees_match_the_tree_drawn_by_hand() {
        let l = leaves(7);
        let tree = MemoryTree::from_leaf_hashes(l.clone());
        let n01 = node_hash(&l[0], &l[1]);
        let n23 = node_hash(&l[2], &l[3]);
        let n45 = node_hash(&l[4], &l[5]);
        let n0123 = node_hash(&n01, &n23);
        assert_eq!(root(&tree, 0).unwrap(), empty_root());
        assert_eq!(root(&tree, 1).unwrap(), l[0]);
        assert_eq!(root(&tree, 2).unwrap(), n01);
        assert_eq!(root(&tree, 3).unwrap(), node_hash(&n01, &l[2]));
        assert_eq!(root(&tree, 4).unwrap(), n0123);
        assert_eq!(root(&tree, 5).unwrap(), node_hash(&n0123, &l[4]));
        assert_eq!(
            root(&tree, 7).unwrap(),
            node_hash(&n0123, &node_hash(&n45, &l[6]))
        );
        assert_eq!(tree.root(), root(&tree, 7).unwrap());
    }

    #[test]
    fn proofs_of_a_three_leaf_tree_match_the_rfc_recursion_by_hand() {
        let l = leaves(3);
        let tree = MemoryTree::from_leaf_hashes(l.clone());
        let n01 = node_hash(&l[0], &l[1]);
        assert_eq!(inclusion_proof(&tree, 0, 3).unwrap(), vec![l[1], l[2]]);
        assert_eq!(inclusion_proof(&tree, 1, 3).unwrap(), vec![l[0], l[2]]);
        assert_eq!(inclusion_proof(&tree, 2, 3).unwrap(), vec![n01]);
        // PROOF(1, D[3]) = [l1, l2]; PROOF(2, D[3]) = [l2] (the old root,
        // a power-of-two size, is left out).
        assert_eq!(consistency_proof(&tree, 1, 3).unwrap(), vec![l[1], l[2]]);
        assert_eq!(consistency_proof(&tree, 2, 3).unwrap(), vec![l[2]]);
        let r3 = tree.root();
        verify_consistency(1, 3, &[l[1], l[2]], &l[0], &r3).unwrap();
        verify_consistency(2, 3, &[l[2]], &n01, &r3).unwrap();
        verify_inclusion(&l[2], 2, 3, &[n01], &r3).unwrap();
    }

    #[test]
    fn requests_past_the_end_are_typed_errors() {
        let tree = MemoryTree::from_leaf_hashes(leaves(5));
        assert_eq!(
            inclusion_proof(&tree, 5, 5),
            Err(MerkleError::IndexPastEnd { index: 5, size: 5 })
        );
        assert_eq!(
            inclusion_proof(&tree, 0, 6),
            Err(MerkleError::SizePastEnd {
                size: 6,
                available: 5
            })
        );
        assert_eq!(
            consistency_proof(&tree, 4, 2),
            Err(MerkleError::SizesReversed { from: 4, to: 2 })
        );
        assert_eq!(
            inclusion_proof(&tree, u64::MAX, u64::MAX),
            Err(MerkleError::SizePastEnd {
                size: u64::MAX,
                available: 5
            })
        );
        assert_eq!(
            verify_inclusion(&[0; 32], 3, 3, &[], &[0; 32]),
            Err(MerkleError::IndexPastEnd { index: 3, size: 3 })
        );
        assert_eq!(
            tree.subtree(40, 0),
            Err(MerkleError::MissingSubtree {
                level: 40,
                index: 0
            })
        );
    }

    #[test]
    fn consistency_with_the_empty_tree_or_the_same_size_needs_no_hashes() {
        let tree = MemoryTree::from_leaf_hashes(leaves(4));
        let r = tree.root();
        assert!(consistency_proof(&tree, 0, 4).unwrap().is_empty());
        assert!(consistency_proof(&tree, 4, 4).unwrap().is_empty());
        verify_consistency(0, 4, &[], &empty_root(), &r).unwrap();
        verify_consistency(4, 4, &[], &r, &r).unwrap();
        assert_eq!(
            verify_consistency(4, 4, &[], &r, &empty_root()),
            Err(MerkleError::RootMismatch)
        );
        assert_eq!(
            verify_consistency(4, 4, &[r], &r, &r),
            Err(MerkleError::ProofLength { got: 1 })
        );
        assert_eq!(
            verify_consistency(0, 4, &[], &r, &r),
            Err(MerkleError::OldRootMismatch)
        );
    }

    #[test]
    fn a_proof_padded_or_cut_short_is_refused_for_its_length() {
        let tree = MemoryTree::from_leaf_hashes(leaves(10));
        let r = tree.root();
        let mut proof = inclusion_proof(&tree, 6, 10).unwrap();
        proof.push([0; 32]);
        assert_eq!(
            verify_inclusion(&leaf_hash(&6u64.to_be_bytes()), 6, 10, &proof, &r),
            Err(MerkleError::ProofLength { got: proof.len() })
        );
        proof.truncate(proof.len() - 2);
        assert_eq!(
            verify_inclusion(&leaf_hash(&6u64.to_be_bytes()), 6, 10, &proof, &r),
            Err(MerkleError::ProofLength { got: proof.len() })
        );
    }
}
