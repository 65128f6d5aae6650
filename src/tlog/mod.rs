//! The tamper-evident audit log's pure core (issue 14, first slice).
//!
//! - [`merkle`]: RFC 6962 hashing, the Merkle Tree Hash, inclusion and
//!   consistency proofs (generated over any [`merkle::SubtreeHashes`] source,
//!   verified with nothing but hashes).
//! - [`memory`]: [`MemoryTree`], the in-memory source of subtree hashes.
//! - [`note`]: C2SP signed notes with Ed25519 keys, and the verifier key text.
//! - [`checkpoint`]: the C2SP tlog-checkpoint body inside a signed note.
//!
//! Everything here is pure: keys and data in, values out. Stores and HTTP
//! endpoints come later (see `docs/audit.md`).

pub mod audit_check;
pub mod audit_hints;
pub mod checkpoint;
pub mod memory;
pub mod merkle;
pub mod nodes;
pub mod note;
pub mod record;

pub use checkpoint::{Checkpoint, CheckpointError};
pub use memory::MemoryTree;
pub use merkle::{Hash, MerkleError, SubtreeHashes};
pub use note::{NoteError, NoteSigner, NoteVerifier};
