//! Hints for an auditor whose downloaded log did not verify.
//!
//! Hashes tell only *that* the leaves differ from what the checkpoint
//! signed ([`super::audit_check`]), never which leaf. These hints look at
//! the leaves themselves and point at the ones that look wrong: a leaf that
//! is not a readable record, a leaf that repeats an earlier one byte for
//! byte, a record dated before the one ahead of it. A hint is a pointer
//! for a human, not a verdict: a log that verifies is not second-guessed,
//! and a log that fails may show no hint at all.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::merkle::{leaf_hash, Hash};
use super::record::decode_leaf;

/// The most hints [`hints`] returns.
pub const MAX_HINTS: usize = 20;

/// A leaf that looks wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Hint {
    /// The leaf is not a version-1 record this version can read.
    #[error("leaf {index} is not a readable version-1 record (changed bytes?)")]
    Unreadable {
        /// The leaf's index.
        index: u64,
    },
    /// The leaf has the same bytes as an earlier one.
    #[error("leaf {index} repeats leaf {first} byte for byte (duplicated?)")]
    Repeats {
        /// The leaf's index.
        index: u64,
        /// The earlier leaf with the same bytes.
        first: u64,
    },
    /// The record is dated before the record ahead of it.
    #[error("leaf {index} is dated {at}, before leaf {previous} ({previous_at}) (reordered?)")]
    OutOfOrder {
        /// The leaf's index.
        index: u64,
        /// Its time.
        at: String,
        /// The index of the readable record ahead of it.
        previous: u64,
        /// That record's time.
        previous_at: String,
    },
}

fn time(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// The hints for `leaves`, in leaf order, at most [`MAX_HINTS`].
pub fn hints(leaves: &[Vec<u8>]) -> Vec<Hint> {
    let mut out = Vec::new();
    let mut seen: HashMap<Hash, u64> = HashMap::new();
    let mut previous: Option<(u64, DateTime<Utc>)> = None;
    for (index, leaf) in (0u64..).zip(leaves) {
        if out.len() >= MAX_HINTS {
            break;
        }
        if let Some(&first) = seen.get(&leaf_hash(leaf)) {
            out.push(Hint::Repeats { index, first });
            continue;
        }
        seen.insert(leaf_hash(leaf), index);
        let Some(record) = decode_leaf(leaf) else {
            out.push(Hint::Unreadable { index });
            continue;
        };
        if let Some((prev, prev_at)) = previous {
            if record.at < prev_at {
                out.push(Hint::OutOfOrder {
                    index,
                    at: time(&record.at),
                    previous: prev,
                    previous_at: time(&prev_at),
                });
            }
        }
        previous = Some((index, record.at));
    }
    out.truncate(MAX_HINTS);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{AuditEvent, AuditKind, AuditOutcome};
    use crate::tlog::record::leaf_bytes;

    fn leaf(second: u32, token: &str) -> Vec<u8> {
        leaf_bytes(&AuditEvent {
            at: format!("2026-01-02T03:04:{second:02}Z").parse().unwrap(),
            kind: AuditKind::Mint,
            agent: Some("agent://a".into()),
            token_id: Some(token.into()),
            capability: None,
            outcome: AuditOutcome::Granted,
            reason: None,
            remote_addr: None,
            chain: vec![],
            person: None,
            amount: None,
            approval_id: None,
            revocation_ids: vec![],
            service: None,
        })
        .unwrap()
    }

    fn log() -> Vec<Vec<u8>> {
        (0..5).map(|i| leaf(i, &format!("t{i}"))).collect()
    }

    #[test]
    fn an_intact_log_has_no_hints() {
        assert!(hints(&log()).is_empty());
    }

    #[test]
    fn a_changed_byte_a_duplicate_and_a_swap_each_point_at_their_leaf() {
        let mut changed = log();
        changed[2][1] = b'[';
        assert_eq!(hints(&changed), vec![Hint::Unreadable { index: 2 }]);

        let mut duplicated = log();
        duplicated.insert(3, duplicated[1].clone());
        assert_eq!(
            hints(&duplicated),
            vec![Hint::Repeats { index: 3, first: 1 }]
        );

        let mut swapped = log();
        swapped.swap(1, 2);
        let found = hints(&swapped);
        assert!(
            matches!(
                found.as_slice(),
                [Hint::OutOfOrder {
                    index: 2,
                    previous: 1,
                    ..
                }]
            ),
            "{found:?}"
        );
        assert_eq!(
            found[0].to_string(),
            "leaf 2 is dated 2026-01-02T03:04:01Z, before leaf 1 (2026-01-02T03:04:02Z) (reordered?)"
        );
    }

    #[test]
    fn hints_are_bounded() {
        let junk: Vec<Vec<u8>> = (0..100u8).map(|i| vec![9, i]).collect();
        assert_eq!(hints(&junk).len(), MAX_HINTS);
    }
}
