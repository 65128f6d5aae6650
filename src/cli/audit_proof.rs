//! `tessera audit inclusion` and `tessera audit consistency`: fetch a proof
//! and a signed checkpoint from the live issuer and check the proof with
//! the pure Merkle code (`tessera::tlog::merkle`), trusting only the audit
//! key (`docs/audit.md`, "Verifying as an auditor").

use std::path::PathBuf;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use clap::Args;

use super::audit_export::Live;
use super::audit_verify::{leaves_n, note_downloaded_key, read_note, read_verifier};
use super::issuer::{runtime, AdminConn};
use super::{emit, Failure};
use crate::server::audit_tlog::Proof;
use crate::tlog::merkle::{empty_root, leaf_hash, verify_consistency, verify_inclusion, Hash};
use crate::tlog::{Checkpoint, NoteVerifier};

/// The key and origin options both commands share.
#[derive(Debug, Args)]
pub struct Trust {
    /// The audit verifier key you trust, `<name>+<id>+<key>` or a file
    /// holding it. Without it the key the issuer publishes is used, and the
    /// output says so.
    #[arg(long, value_name = "KEY|FILE")]
    key: Option<String>,
    /// The log's origin (default: the key's name).
    #[arg(long, value_name = "ORIGIN")]
    origin: Option<String>,
}

/// `tessera audit inclusion`.
#[derive(Debug, Args)]
pub struct InclusionArgs {
    #[command(flatten)]
    conn: AdminConn,
    #[command(flatten)]
    trust: Trust,
    /// The leaf's index.
    #[arg(long, value_name = "I")]
    index: u64,
    /// A signed checkpoint file to prove inclusion in (default: the
    /// issuer's latest checkpoint).
    #[arg(long, value_name = "FILE")]
    checkpoint: Option<PathBuf>,
}

/// `tessera audit consistency`.
#[derive(Debug, Args)]
pub struct ConsistencyArgs {
    #[command(flatten)]
    conn: AdminConn,
    #[command(flatten)]
    trust: Trust,
    /// The old tree size (its root is the issuer's, bound by the proofs to
    /// the signed checkpoint).
    #[arg(
        long,
        value_name = "A",
        required_unless_present = "old_checkpoint",
        conflicts_with = "old_checkpoint"
    )]
    from: Option<u64>,
    /// An older signed checkpoint file, kept from before, instead of --from.
    #[arg(long, value_name = "FILE")]
    old_checkpoint: Option<PathBuf>,
    /// The new tree size (default: the latest checkpoint's).
    #[arg(long, value_name = "B")]
    to: Option<u64>,
}

fn b64(hash: &Hash) -> String {
    B64.encode(hash)
}

fn hashes(list: &[String]) -> Result<Vec<Hash>, Failure> {
    list.iter()
        .map(|h| {
            B64.decode(h)
                .ok()
                .and_then(|b| Hash::try_from(b).ok())
                .ok_or_else(|| Failure::new("the issuer's proof holds a hash that is not 32 bytes"))
        })
        .collect()
}

/// The trusted key (or the issuer's, noted) and the origin.
async fn trusted(live: &Live, trust: &Trust) -> Result<(NoteVerifier, String), Failure> {
    let verifier = match &trust.key {
        Some(key) => read_verifier(key)?,
        None => {
            let (v, _) = live.key().await?;
            note_downloaded_key(&format!(
                "{}/.well-known/tessera-audit-key",
                live.issuer().trim_end_matches('/')
            ));
            v
        }
    };
    let origin = trust
        .origin
        .clone()
        .unwrap_or_else(|| verifier.name().to_owned());
    Ok((verifier, origin))
}

fn refused(what: &str, e: impl std::fmt::Display) -> Failure {
    Failure {
        message: format!("{what}: {e}"),
        code: 1,
    }
}

/// The checkpoint in `file`, or the issuer's latest.
async fn checkpoint_from(
    live: &Live,
    file: Option<&std::path::Path>,
    verifier: &NoteVerifier,
    origin: &str,
) -> Result<Checkpoint, Failure> {
    match file {
        Some(path) => Checkpoint::open(&read_note(path)?, verifier, origin)
            .map_err(|e| refused(&format!("checkpoint {} refused", path.display()), e)),
        None => Ok(live.checkpoint(verifier, origin).await?.1),
    }
}

/// `tessera audit inclusion`.
pub fn inclusion(args: InclusionArgs) -> Result<(), Failure> {
    let live = Live::new(&args.conn)?;
    runtime()?.block_on(async {
        let (verifier, origin) = trusted(&live, &args.trust).await?;
        let cp = checkpoint_from(&live, args.checkpoint.as_deref(), &verifier, &origin).await?;
        let (index, size) = (args.index, cp.size());
        let proof: Proof = live
            .json(&format!(
                "/v1/audit/proof/inclusion?index={index}&size={size}"
            ))
            .await?;
        let leaf = live
            .leaves(index, index + 1)
            .await?
            .pop()
            .ok_or_else(|| Failure::new(format!("the issuer returned no leaf {index}")))?;
        verify_inclusion(
            &leaf_hash(&leaf),
            index,
            size,
            &hashes(&proof.proof)?,
            cp.root(),
        )
        .map_err(|e| {
            refused(
                &format!(
                    "leaf {index} is not included in the checkpoint of {}",
                    leaves_n(size)
                ),
                e,
            )
        })?;
        emit(&format!(
            "ok: leaf {index} (leaf hash {}) is included in the checkpoint of {}, \
             root {}, origin {origin}\n",
            hex::encode(leaf_hash(&leaf)),
            leaves_n(size),
            b64(cp.root())
        ))
    })
}

/// The root of the first `size` leaves as the issuer states it (bound to
/// a signed root only by a consistency proof checked afterwards).
async fn stated_root(live: &Live, size: u64) -> Result<Hash, Failure> {
    if size == 0 {
        return Ok(empty_root());
    }
    let proof: Proof = live
        .json(&format!("/v1/audit/proof/consistency?from=0&to={size}"))
        .await?;
    Ok(hashes(std::slice::from_ref(&proof.root))?[0])
}

/// `tessera audit consistency`.
pub fn consistency(args: ConsistencyArgs) -> Result<(), Failure> {
    let live = Live::new(&args.conn)?;
    runtime()?.block_on(async {
        let (verifier, origin) = trusted(&live, &args.trust).await?;
        let (_, latest) = live.checkpoint(&verifier, &origin).await?;
        let n = latest.size();
        let (from, old_root, old_signed) = match &args.old_checkpoint {
            Some(path) => {
                let old = checkpoint_from(&live, Some(path), &verifier, &origin).await?;
                (old.size(), *old.root(), true)
            }
            None => {
                let from = args.from.unwrap_or(0);
                (from, [0; 32], false)
            }
        };
        let to = args.to.unwrap_or(n);
        let proof: Proof = live
            .json(&format!("/v1/audit/proof/consistency?from={from}&to={to}"))
            .await?;
        if to > n {
            return Err(Failure::new(format!(
                "--to {to} is past the latest checkpoint's {}",
                leaves_n(n)
            )));
        }
        let old_root = if old_signed {
            old_root
        } else {
            stated_root(&live, from).await?
        };
        let stated_new = hashes(std::slice::from_ref(&proof.root))?[0];
        let new_root = if to == n { *latest.root() } else { stated_new };
        let broken = |a: u64, b: u64, e| {
            refused(
                &format!(
                    "the log of {} is not a prefix of the log of {}",
                    leaves_n(a),
                    leaves_n(b)
                ),
                e,
            )
        };
        verify_consistency(from, to, &hashes(&proof.proof)?, &old_root, &new_root)
            .map_err(|e| broken(from, to, e))?;
        let mut tail = String::new();
        if to < n {
            let second: Proof = live
                .json(&format!("/v1/audit/proof/consistency?from={to}&to={n}"))
                .await?;
            verify_consistency(to, n, &hashes(&second.proof)?, &new_root, latest.root())
                .map_err(|e| broken(to, n, e))?;
            tail = format!(", which the latest checkpoint of {} extends", leaves_n(n));
        }
        emit(&format!(
            "ok: the log of {} (root {}{}) is a prefix of the log of {} \
             (root {}){tail}, origin {origin}\n",
            leaves_n(from),
            b64(&old_root),
            if old_signed { ", signed" } else { "" },
            leaves_n(to),
            b64(&new_root)
        ))
    })
}
