//! `tessera audit verify`: checks a downloaded audit log (an export
//! directory, see `audit_export`) against its signed checkpoint, and
//! optionally against an older checkpoint, offline (`docs/audit.md`).
//!
//! The files of an export directory:
//!
//! - `checkpoint`: the signed checkpoint, exactly as the issuer served it;
//! - `audit-key`: the issuer's audit verifier key, one line;
//! - `leaves`: one line per leaf, in index order, each the standard base64
//!   (with padding) of the leaf bytes.

use std::fs;
use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use clap::Args;

use super::{emit, read_small_file, Failure};
use crate::tlog::audit_check::{check, Finding};
use crate::tlog::audit_hints::hints;
use crate::tlog::merkle::{leaf_hash, root};
use crate::tlog::{Checkpoint, MemoryTree, NoteVerifier};

/// The checkpoint's file name in an export directory.
pub const CHECKPOINT_FILE: &str = "checkpoint";
/// The audit verifier key's file name in an export directory.
pub const KEY_FILE: &str = "audit-key";
/// The leaves' file name in an export directory.
pub const LEAVES_FILE: &str = "leaves";

/// `tessera audit verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// An export directory (`tessera audit export --out DIR`): its
    /// `checkpoint`, `leaves` and, unless --key is given, `audit-key`.
    #[arg(long, value_name = "DIR", required_unless_present_all = ["checkpoint", "leaves", "key"])]
    dir: Option<PathBuf>,
    /// The signed checkpoint file (instead of DIR/checkpoint).
    #[arg(long, value_name = "FILE")]
    checkpoint: Option<PathBuf>,
    /// The leaves file, one base64 leaf per line (instead of DIR/leaves).
    #[arg(long, value_name = "FILE")]
    leaves: Option<PathBuf>,
    /// The audit verifier key you trust, `<name>+<id>+<key>` or a file
    /// holding it. Without it the key downloaded into DIR is used, and the
    /// output says so.
    #[arg(long, value_name = "KEY|FILE")]
    key: Option<String>,
    /// The log's origin (default: the key's name).
    #[arg(long, value_name = "ORIGIN")]
    origin: Option<String>,
    /// An older signed checkpoint, kept from before: the leaves must extend it.
    #[arg(long, value_name = "FILE")]
    old_checkpoint: Option<PathBuf>,
}

/// A verifier key given as itself or as a file holding it.
pub(super) fn read_verifier(arg: &str) -> Result<NoteVerifier, Failure> {
    if Path::new(arg).is_file() {
        return read_verifier_file(Path::new(arg));
    }
    NoteVerifier::parse(arg.trim())
        .map_err(|e| Failure::new(format!("--key is not an audit verifier key: {e}")))
}

/// A verifier key read from a file.
fn read_verifier_file(path: &Path) -> Result<NoteVerifier, Failure> {
    let text = read_small_file(path, "audit key")?;
    NoteVerifier::parse(text.trim()).map_err(|e| {
        Failure::new(format!(
            "{} does not hold an audit verifier key: {e}",
            path.display()
        ))
    })
}

/// Reads a checkpoint file (a signed note).
pub(super) fn read_note(path: &Path) -> Result<String, Failure> {
    read_small_file(path, "checkpoint")
}

/// Reads a leaves file: one standard base64 leaf per line.
pub(super) fn read_leaves(path: &Path) -> Result<Vec<Vec<u8>>, Failure> {
    let cannot =
        |e: io::Error| Failure::new(format!("cannot read leaves file {}: {e}", path.display()));
    let file = fs::File::open(path).map_err(cannot)?;
    let mut leaves = Vec::new();
    for (n, line) in io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(cannot)?;
        let leaf = B64.decode(line.trim_end_matches('\r')).map_err(|_| {
            Failure::new(format!(
                "{} line {} is not the base64 of a leaf",
                path.display(),
                n + 1
            ))
        })?;
        leaves.push(leaf);
    }
    Ok(leaves)
}

/// Writes a leaves file: one standard base64 leaf per line.
pub(super) fn write_leaves(out: &mut impl Write, leaves: &[Vec<u8>]) -> io::Result<()> {
    for leaf in leaves {
        out.write_all(B64.encode(leaf).as_bytes())?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// `1 leaf`, `2 leaves`.
pub(super) fn leaves_n(n: u64) -> String {
    if n == 1 {
        "1 leaf".to_owned()
    } else {
        format!("{n} leaves")
    }
}

/// Where the key came from: given, or downloaded with the log.
pub(super) fn note_downloaded_key(from: &str) {
    let _ = writeln!(
        io::stderr(),
        "tessera: note: the audit key was taken from {from}, not from a source you trust: \
         give the key you obtained independently with --key for this check to mean more \
         than the issuer's word"
    );
}

/// `tessera audit verify`.
pub fn verify(args: VerifyArgs) -> Result<(), Failure> {
    let in_dir = |name: &str, given: &Option<PathBuf>| -> Result<PathBuf, Failure> {
        match (given, &args.dir) {
            (Some(path), _) => Ok(path.clone()),
            (None, Some(dir)) => Ok(dir.join(name)),
            (None, None) => Err(Failure::new(format!("give --dir or --{name}"))),
        }
    };
    let checkpoint_path = in_dir(CHECKPOINT_FILE, &args.checkpoint)?;
    let leaves_path = in_dir(LEAVES_FILE, &args.leaves)?;
    let verifier = match (&args.key, &args.dir) {
        (Some(key), _) => read_verifier(key)?,
        (None, Some(dir)) => {
            let path = dir.join(KEY_FILE);
            let v = read_verifier_file(&path)?;
            note_downloaded_key(&path.display().to_string());
            v
        }
        (None, None) => return Err(Failure::new("give --key or --dir")),
    };
    let origin = args
        .origin
        .clone()
        .unwrap_or_else(|| verifier.name().to_owned());
    let note = read_note(&checkpoint_path)?;
    let old = args.old_checkpoint.as_deref().map(read_note).transpose()?;
    let leaves = read_leaves(&leaves_path)?;
    let findings = check(&verifier, &origin, &note, old.as_deref(), &leaves);
    if findings.is_empty() {
        return emit(&ok_line(&leaves, &origin, old.as_deref(), &verifier));
    }
    let mut text = String::new();
    for finding in &findings {
        text.push_str(&format!("failed: {finding}\n"));
    }
    let checkpoint_refused = findings
        .iter()
        .all(|f| matches!(f, Finding::Checkpoint { .. }));
    if !checkpoint_refused {
        for hint in hints(&leaves) {
            text.push_str(&format!("hint: {hint}\n"));
        }
    }
    emit(&text)?;
    Err(Failure {
        message: format!(
            "the audit log in {} does not verify ({} finding{})",
            leaves_path.display(),
            findings.len(),
            if findings.len() == 1 { "" } else { "s" }
        ),
        code: 1,
    })
}

/// `ok: N leaves, root R, origin O[, extending the old checkpoint of M leaves]`.
fn ok_line(leaves: &[Vec<u8>], origin: &str, old: Option<&str>, v: &NoteVerifier) -> String {
    let tree = MemoryTree::from_leaf_hashes(leaves.iter().map(|l| leaf_hash(l)));
    let size = tree.len();
    let root = root(&tree, size).map(|r| B64.encode(r)).unwrap_or_default();
    let extends = old
        .and_then(|n| Checkpoint::open(n, v, origin).ok())
        .map(|cp| format!(", extending the old checkpoint of {}", leaves_n(cp.size())))
        .unwrap_or_default();
    let size = leaves_n(size);
    format!("ok: {size}, root {root}, origin {origin}{extends}\n")
}
