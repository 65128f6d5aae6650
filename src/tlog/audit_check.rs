//! The auditor's check of a downloaded audit log (issue 14, point 4): the
//! pure core behind `tessera audit verify` (the CLI is not written yet).
//!
//! Given the verifier key, the expected origin, the signed checkpoint and
//! every leaf's data, [`check`] lists each failure on its own line: a bad
//! signature, another origin, a leaf count that differs, a root that differs.
//! With an older checkpoint it also checks that the leaves extend it. Which
//! leaf diverged cannot be known from hashes alone, so it is never guessed.

use super::checkpoint::{Checkpoint, CheckpointError};
use super::memory::MemoryTree;
use super::merkle::{leaf_hash, root};
use super::note::NoteVerifier;

/// One reason the downloaded log does not match its checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Finding {
    /// The checkpoint (or the old one) was refused: bad signature, other origin, bad text.
    #[error("{which} checkpoint refused: {reason}")]
    Checkpoint {
        /// "the" or "the old".
        which: &'static str,
        /// Why.
        reason: CheckpointError,
    },
    /// The leaves file holds another number of leaves than the checkpoint.
    #[error("leaf count differs: the checkpoint has {expected}, the leaves file {got}")]
    Count {
        /// The checkpoint's size.
        expected: u64,
        /// The number of leaves read.
        got: u64,
    },
    /// The root recomputed from the leaves is not the checkpoint's.
    #[error("root differs: the leaves do not hash to the checkpoint's root (which leaf changed cannot be told from hashes alone)")]
    Root,
    /// The leaves do not extend the old checkpoint.
    #[error("the first {size} leaves do not hash to the old checkpoint's root: the log was rewritten before index {size} (which index cannot be told from hashes alone)")]
    NotExtending {
        /// The old checkpoint's size.
        size: u64,
    },
    /// The old checkpoint is larger than the new one.
    #[error("the old checkpoint has {old} leaves, more than the new one's {new}")]
    Shrunk {
        /// Old size.
        old: u64,
        /// New size.
        new: u64,
    },
}

/// Checks `leaves` against the signed `note` (and `old_note` if given).
/// An empty list means the log verifies.
pub fn check(
    verifier: &NoteVerifier,
    origin: &str,
    note: &str,
    old_note: Option<&str>,
    leaves: &[Vec<u8>],
) -> Vec<Finding> {
    let mut out = Vec::new();
    let tree = MemoryTree::from_leaf_hashes(leaves.iter().map(|l| leaf_hash(l)));
    let got = tree.len();
    match Checkpoint::open(note, verifier, origin) {
        Err(reason) => out.push(Finding::Checkpoint {
            which: "the",
            reason,
        }),
        Ok(cp) if cp.size() != got => out.push(Finding::Count {
            expected: cp.size(),
            got,
        }),
        Ok(cp) => {
            if root(&tree, got).ok().as_ref() != Some(cp.root()) {
                out.push(Finding::Root);
            }
        }
    }
    if let Some(old) = old_note {
        match Checkpoint::open(old, verifier, origin) {
            Err(reason) => out.push(Finding::Checkpoint {
                which: "the old",
                reason,
            }),
            Ok(cp) if cp.size() > got => out.push(Finding::Shrunk {
                old: cp.size(),
                new: got,
            }),
            Ok(cp) => {
                if root(&tree, cp.size()).ok().as_ref() != Some(cp.root()) {
                    out.push(Finding::NotExtending { size: cp.size() });
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tlog::NoteSigner;
    use ed25519_dalek::SigningKey;

    const ORIGIN: &str = "example.test/audit";

    fn signer(seed: u8) -> NoteSigner {
        NoteSigner::new(ORIGIN, SigningKey::from_bytes(&[seed; 32])).unwrap()
    }

    fn leaves(n: u8) -> Vec<Vec<u8>> {
        (0..n).map(|i| vec![b'r', i]).collect()
    }

    fn note(s: &NoteSigner, origin: &str, l: &[Vec<u8>]) -> String {
        let tree = MemoryTree::from_leaf_hashes(l.iter().map(|x| leaf_hash(x)));
        Checkpoint::new(origin, tree.len(), tree.root())
            .unwrap()
            .sign(s)
            .unwrap()
    }

    #[test]
    fn intact_log_verifies_and_each_tampering_is_named() {
        let s = signer(1);
        let v = s.verifier();
        let good = leaves(7);
        let old = note(&s, ORIGIN, &good[..4]);
        let cp = note(&s, ORIGIN, &good);
        assert!(check(&v, ORIGIN, &cp, Some(&old), &good).is_empty());

        let mut altered = good.clone();
        altered[2] = b"forged".to_vec();
        assert_eq!(
            check(&v, ORIGIN, &cp, Some(&old), &altered),
            vec![Finding::Root, Finding::NotExtending { size: 4 }]
        );
        let mut reordered = good.clone();
        reordered.swap(5, 6);
        assert_eq!(
            check(&v, ORIGIN, &cp, Some(&old), &reordered),
            vec![Finding::Root]
        );
        let mut deleted = good.clone();
        deleted.remove(1);
        assert_eq!(
            check(&v, ORIGIN, &cp, None, &deleted),
            vec![Finding::Count {
                expected: 7,
                got: 6
            }]
        );
        let mut duplicated = good.clone();
        duplicated.insert(3, good[3].clone());
        assert_eq!(
            check(&v, ORIGIN, &cp, None, &duplicated),
            vec![Finding::Count {
                expected: 7,
                got: 8
            }]
        );
        assert_eq!(
            check(&v, ORIGIN, &cp, Some(&old), &good[..3]),
            vec![
                Finding::Count {
                    expected: 7,
                    got: 3
                },
                Finding::Shrunk { old: 4, new: 3 }
            ]
        );
    }

    #[test]
    fn foreign_signature_and_other_origin_are_refused() {
        let good = leaves(3);
        let v = signer(1).verifier();
        let forged = note(&signer(2), ORIGIN, &good);
        let found = check(&v, ORIGIN, &forged, None, &good);
        assert!(
            matches!(found.as_slice(), [Finding::Checkpoint { .. }]),
            "{found:?}"
        );
        let other = NoteSigner::new("other.test/audit", SigningKey::from_bytes(&[1; 32])).unwrap();
        let elsewhere = note(&other, "other.test/audit", &good);
        let found = check(&other.verifier(), ORIGIN, &elsewhere, None, &good);
        assert!(
            matches!(
                found.as_slice(),
                [Finding::Checkpoint {
                    reason: CheckpointError::OtherOrigin { .. },
                    ..
                }]
            ),
            "{found:?}"
        );
    }
}
