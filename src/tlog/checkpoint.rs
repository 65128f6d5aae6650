//! C2SP tlog-checkpoints (<https://c2sp.org/tlog-checkpoint>): a log's
//! origin, tree size and root hash as the text of a signed note.
//!
//! ```text
//! <origin>
//! <tree size in decimal>
//! <base64 root hash>
//! [extension lines]
//!
//! — <key name> <base64(key id || Ed25519 signature)>
//! ```

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::merkle::Hash;
use super::note::{NoteError, NoteSigner, NoteVerifier};

/// The longest origin line accepted.
pub const MAX_ORIGIN_BYTES: usize = 256;

/// Why a checkpoint was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// The signed note around the checkpoint was refused.
    #[error("{0}")]
    Note(#[from] NoteError),
    /// An origin that is empty, too long, or has spaces or control characters.
    #[error("the origin must be 1 to {MAX_ORIGIN_BYTES} bytes without spaces")]
    Origin,
    /// A checkpoint for another log.
    #[error("the checkpoint is for origin {got:?}, not {expected:?}")]
    OtherOrigin {
        /// The origin the caller expects.
        expected: String,
        /// The origin in the checkpoint.
        got: String,
    },
    /// Fewer than three lines, or an empty extension line.
    #[error("the checkpoint needs origin, size and root lines, and no empty line")]
    Lines,
    /// The size line is not a decimal number without leading zeros.
    #[error("the tree size is not a decimal number without leading zeros")]
    Size,
    /// The root line is not the base64 of 32 bytes.
    #[error("the root hash is not the base64 of 32 bytes")]
    Root,
}

/// A log's signed tree head: origin, tree size and root hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    origin: String,
    size: u64,
    root: Hash,
    extensions: Vec<String>,
}

fn check_origin(origin: &str) -> Result<(), CheckpointError> {
    if origin.is_empty()
        || origin.len() > MAX_ORIGIN_BYTES
        || origin.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(CheckpointError::Origin);
    }
    Ok(())
}

impl Checkpoint {
    /// The checkpoint of a tree of `size` leaves with root `root`.
    pub fn new(origin: &str, size: u64, root: Hash) -> Result<Self, CheckpointError> {
        check_origin(origin)?;
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
            extensions: Vec::new(),
        })
    }

    /// The log's origin.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The tree size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The root hash.
    pub fn root(&self) -> &Hash {
        &self.root
    }

    /// Extension lines after the root (opaque; Tessera writes none).
    pub fn extensions(&self) -> &[String] {
        &self.extensions
    }

    /// The note text: one line each for origin, size and root, then any
    /// extension lines, each ending in a newline.
    pub fn text(&self) -> String {
        let mut text = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root)
        );
        for line in &self.extensions {
            text.push_str(line);
            text.push('\n');
        }
        text
    }

    /// Parses a note text (see [`Checkpoint::text`]), strictly.
    pub fn parse_text(text: &str) -> Result<Self, CheckpointError> {
        let body = text.strip_suffix('\n').ok_or(CheckpointError::Lines)?;
        let mut lines = body.split('\n');
        let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next())
        else {
            return Err(CheckpointError::Lines);
        };
        check_origin(origin)?;
        let size = parse_size(size)?;
        let root = STANDARD.decode(root).map_err(|_| CheckpointError::Root)?;
        let root: Hash = root.try_into().map_err(|_| CheckpointError::Root)?;
        let extensions: Vec<String> = lines.map(str::to_owned).collect();
        if extensions.iter().any(String::is_empty) {
            return Err(CheckpointError::Lines);
        }
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
            extensions,
        })
    }

    /// The signed note of this checkpoint.
    pub fn sign(&self, signer: &NoteSigner) -> Result<String, CheckpointError> {
        Ok(signer.sign(&self.text())?)
    }

    /// Opens a signed checkpoint: it must carry a valid signature by
    /// `verifier` and name `origin`.
    pub fn open(
        note: &str,
        verifier: &NoteVerifier,
        origin: &str,
    ) -> Result<Self, CheckpointError> {
        let checkpoint = Self::parse_text(verifier.open(note)?)?;
        if checkpoint.origin != origin {
            return Err(CheckpointError::OtherOrigin {
                expected: origin.to_owned(),
                got: checkpoint.origin,
            });
        }
        Ok(checkpoint)
    }
}

fn parse_size(line: &str) -> Result<u64, CheckpointError> {
    let canonical = !line.is_empty()
        && line.bytes().all(|b| b.is_ascii_digit())
        && (line == "0" || !line.starts_with('0'));
    if !canonical {
        return Err(CheckpointError::Size);
    }
    line.parse().map_err(|_| CheckpointError::Size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tlog::merkle::leaf_hash;
    use crate::tlog::MemoryTree;
    use ed25519_dalek::SigningKey;

    const ORIGIN: &str = "tessera.example/audit";

    fn signer() -> NoteSigner {
        NoteSigner::new(ORIGIN, SigningKey::from_bytes(&[42; 32])).unwrap()
    }

    /// The example in docs/audit.md: three records, signed by the key with
    /// seed 42 (32 bytes of 0x2a). Ed25519 signatures are deterministic, so
    /// the document's text is checked byte for byte.
    #[test]
    fn the_example_in_docs_audit_md_is_what_the_code_produces() {
        let tree = MemoryTree::from_leaf_hashes(
            [&b"record 0"[..], b"record 1", b"record 2"]
                .into_iter()
                .map(leaf_hash),
        );
        let note = Checkpoint::new(ORIGIN, tree.len(), tree.root())
            .unwrap()
            .sign(&signer())
            .unwrap();
        let verifier_key = signer().verifier().to_string();
        let doc = include_str!("../../docs/audit.md");
        assert!(doc.contains(&note), "docs/audit.md lacks:\n{note}");
        assert!(
            doc.contains(&verifier_key),
            "docs/audit.md lacks {verifier_key}"
        );
    }

    #[test]
    fn text_has_three_lines_and_round_trips() {
        let cp = Checkpoint::new(ORIGIN, 20_852_163, [7; 32]).unwrap();
        let text = cp.text();
        assert_eq!(
            text,
            format!("{ORIGIN}\n20852163\n{}\n", STANDARD.encode([7; 32]))
        );
        assert_eq!(Checkpoint::parse_text(&text).unwrap(), cp);
        let with_ext = format!("{text}ext one\n");
        assert_eq!(
            Checkpoint::parse_text(&with_ext).unwrap().extensions(),
            ["ext one"]
        );
    }

    #[test]
    fn malformed_bodies_are_refused_with_a_reason() {
        let root = STANDARD.encode([7; 32]);
        let cases = [
            (format!("{ORIGIN}\n5\n{root}"), CheckpointError::Lines),
            (format!("{ORIGIN}\n5\n"), CheckpointError::Lines),
            (format!("{ORIGIN}\n5\n{root}\n\n"), CheckpointError::Lines),
            (format!("\n5\n{root}\n"), CheckpointError::Origin),
            (format!("a b\n5\n{root}\n"), CheckpointError::Origin),
            (format!("{ORIGIN}\n05\n{root}\n"), CheckpointError::Size),
            (format!("{ORIGIN}\n+5\n{root}\n"), CheckpointError::Size),
            (format!("{ORIGIN}\n-1\n{root}\n"), CheckpointError::Size),
            (format!("{ORIGIN}\n\n{root}\n"), CheckpointError::Size),
            (
                format!("{ORIGIN}\n18446744073709551616\n{root}\n"),
                CheckpointError::Size,
            ),
            (
                format!("{ORIGIN}\n5\n{}\n", STANDARD.encode([7; 31])),
                CheckpointError::Root,
            ),
            (
                format!("{ORIGIN}\n5\n{}\n", &root[..43]),
                CheckpointError::Root,
            ),
        ];
        for (text, want) in cases {
            assert_eq!(Checkpoint::parse_text(&text), Err(want), "{text:?}");
        }
        assert_eq!(
            Checkpoint::parse_text(&format!("{ORIGIN}\n18446744073709551615\n{root}\n"))
                .unwrap()
                .size(),
            u64::MAX
        );
    }

    #[test]
    fn a_checkpoint_for_another_origin_is_refused() {
        let s = NoteSigner::new("other.example/log", SigningKey::from_bytes(&[1; 32])).unwrap();
        let note = Checkpoint::new("other.example/log", 1, [0; 32])
            .unwrap()
            .sign(&s)
            .unwrap();
        assert_eq!(
            Checkpoint::open(&note, &s.verifier(), ORIGIN),
            Err(CheckpointError::OtherOrigin {
                expected: ORIGIN.into(),
                got: "other.example/log".into()
            })
        );
    }
}
