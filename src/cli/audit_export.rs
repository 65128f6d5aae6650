//! `tessera audit export`: downloads the issuer's audit key, its latest
//! signed checkpoint and every leaf up to that checkpoint's size (paged by
//! index range) into a directory that `tessera audit verify` reads
//! (`docs/audit.md`, "Verifying as an auditor").
//!
//! Also the HTTP helpers the live audit commands share.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use clap::Args;

use super::audit_verify::{leaves_n, write_leaves, CHECKPOINT_FILE, KEY_FILE, LEAVES_FILE};
use super::issuer::{admin_token_text, check, client, runtime, send_err, url, AdminConn};
use super::{emit, Failure};
use crate::server::audit_tlog::Leaves;
use crate::store::tree::MAX_LEAVES_PER_READ;
use crate::tlog::{Checkpoint, NoteVerifier};

/// `tessera audit export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    conn: AdminConn,
    /// The directory to write `checkpoint`, `audit-key` and `leaves` into
    /// (created if missing; it must not hold an export already).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

/// A connection to the issuer's audit endpoints.
pub(super) struct Live {
    http: reqwest::Client,
    issuer: String,
    admin: String,
}

impl Live {
    /// Connects with `conn` (reads the admin token, or its file, now).
    pub(super) fn new(conn: &AdminConn) -> Result<Self, Failure> {
        Ok(Self {
            http: client()?,
            issuer: conn.issuer.clone(),
            admin: admin_token_text(&conn.admin_token)?,
        })
    }

    /// The issuer's URL, as given.
    pub(super) fn issuer(&self) -> &str {
        &self.issuer
    }

    async fn send(&self, path: &str, admin: bool) -> Result<reqwest::Response, Failure> {
        let mut req = self.http.get(url(&self.issuer, path));
        if admin {
            req = req.bearer_auth(&self.admin);
        }
        req.send().await.map_err(send_err(&self.issuer))
    }

    /// A public text answer (the key, the checkpoint).
    pub(super) async fn text(&self, path: &str) -> Result<String, Failure> {
        let resp = self.send(path, false).await?;
        if !resp.status().is_success() {
            check(resp).await?;
            return Err(Failure::new(format!("{path}: unexpected answer")));
        }
        resp.text()
            .await
            .map_err(|e| Failure::new(format!("reading {path}: {e}")))
    }

    /// An admin JSON answer, parsed as `T`.
    pub(super) async fn json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<T, Failure> {
        let body = check(self.send(path, true).await?).await?;
        serde_json::from_value(body)
            .map_err(|e| Failure::new(format!("unexpected answer to {path}: {e}")))
    }

    /// The issuer's audit key, as it publishes it.
    pub(super) async fn key(&self) -> Result<(NoteVerifier, String), Failure> {
        let text = self.text("/.well-known/tessera-audit-key").await?;
        let verifier = NoteVerifier::parse(text.trim())
            .map_err(|e| Failure::new(format!("the issuer's audit key does not parse: {e}")))?;
        Ok((verifier, text))
    }

    /// The issuer's latest checkpoint: the note, and the checkpoint opened
    /// with `verifier` for `origin`.
    pub(super) async fn checkpoint(
        &self,
        verifier: &NoteVerifier,
        origin: &str,
    ) -> Result<(String, Checkpoint), Failure> {
        let note = self.text("/v1/audit/checkpoint").await?;
        let cp = Checkpoint::open(&note, verifier, origin).map_err(|e| Failure {
            message: format!("the issuer's checkpoint refused: {e}"),
            code: 1,
        })?;
        Ok((note, cp))
    }

    /// The leaf bytes of leaves `start..end`, paged.
    pub(super) async fn leaves(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, Failure> {
        let mut out = Vec::new();
        let mut next = start;
        while next < end {
            let last = end.min(next.saturating_add(MAX_LEAVES_PER_READ));
            let page: Leaves = self
                .json(&format!("/v1/audit/leaves?start={next}&end={last}"))
                .await?;
            if page.start != next || page.leaves.is_empty() {
                return Err(Failure::new(format!(
                    "the issuer returned no leaves from index {next}"
                )));
            }
            for leaf in page.leaves {
                let bytes = B64
                    .decode(leaf.as_bytes())
                    .map_err(|_| Failure::new(format!("the issuer's leaf {next} is not base64")))?;
                out.push(bytes);
                next += 1;
            }
        }
        out.truncate(usize::try_from(end - start).unwrap_or(usize::MAX));
        Ok(out)
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    let mut f = fs::File::create(path)
        .map_err(|e| Failure::new(format!("cannot create {}: {e}", path.display())))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| Failure::new(format!("cannot write {}: {e}", path.display())))
}

/// `tessera audit export`.
pub fn export(args: ExportArgs) -> Result<(), Failure> {
    let dir = &args.out;
    if dir.join(CHECKPOINT_FILE).exists() {
        return Err(Failure::new(format!(
            "{} already holds an export (keep it: its checkpoint is what a later export is \
             checked against); choose a new directory",
            dir.display()
        )));
    }
    fs::create_dir_all(dir)
        .map_err(|e| Failure::new(format!("cannot create {}: {e}", dir.display())))?;
    let live = Live::new(&args.conn)?;
    let (note, size, key_text) = runtime()?.block_on(async {
        let (verifier, key_text) = live.key().await?;
        let (note, cp) = live.checkpoint(&verifier, verifier.name()).await?;
        let leaves = live.leaves(0, cp.size()).await?;
        let mut text = Vec::new();
        write_leaves(&mut text, &leaves).map_err(Failure::new)?;
        write_file(&dir.join(LEAVES_FILE), &text)?;
        Ok::<_, Failure>((note, cp.size(), key_text))
    })?;
    write_file(&dir.join(KEY_FILE), key_text.as_bytes())?;
    // The checkpoint last: its presence marks a complete export.
    write_file(&dir.join(CHECKPOINT_FILE), note.as_bytes())?;
    emit(&format!(
        "exported {} from {} to {} ({CHECKPOINT_FILE}, {KEY_FILE}, {LEAVES_FILE})\n",
        leaves_n(size),
        live.issuer(),
        dir.display()
    ))
}
