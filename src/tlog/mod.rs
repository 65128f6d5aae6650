//! The tamper-evident audit log's pure core (issue 14, first slice).
//!
//! - [`merkle`]: RFC 6962 hashing, the Merkle Tree Hash, inclusion and
//!   consistency proofs (generated over any [`merkle::SubtreeHashes`] source,
//!   verified with nothing but hashes), and [`merkle::MemoryTree`].
//! - [`note`]: C2SP signed notes with Ed25519 keys, and the verifier key text.
//! - [`checkpoint`]: the C2SP tlog-checkpoint body inside a signed note.
//!
//! Everything here is pure: keys and data in, values out. Stores and HTTP
//! endpoints come later (see `docs/audit.md`).

pub mod checkpoint;
pub mod merkle;
pub mod note;

pub use checkpoint::{Checkpoint, CheckpointError};
pub use merkle::{Hash, MemoryTree, MerkleError, SubtreeHashes};
pub use note::{NoteError, NoteSigner, NoteVerifier};
