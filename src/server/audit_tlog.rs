//! The audit log's public face: the audit key (not the root token key),
//! signed checkpoints, leaf bytes by index range, and proofs
//! (`docs/audit.md`).
//!
//! - `GET /.well-known/tessera-audit-key`: the C2SP verifier key (public).
//! - `GET /v1/audit/checkpoint`: the latest signed checkpoint (public). It
//!   is signed at most once per [`SIGN_INTERVAL`] whoever asks; between
//!   signatures the last one is served, so callers cannot make the issuer
//!   sign on demand.
//! - `GET /v1/audit/leaves?start=&end=` (admin): JSON
//!   `{"start": n, "leaves": [base64 leaf bytes, …]}`, at most
//!   [`MAX_LEAVES_PER_READ`] leaves.
//! - `GET /v1/audit/proof/inclusion?index=&size=` and
//!   `GET /v1/audit/proof/consistency?from=&to=` (admin): JSON with the
//!   sizes, the root(s) and `proof`, a list of base64 hashes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::state::AppState;
use crate::store::tree::{self, AuditTree, TreeError, AUDIT_TREE_ON, MAX_LEAVES_PER_READ};
use crate::tlog::{Checkpoint, NoteSigner};

/// The shortest time between two checkpoint signatures.
pub const SIGN_INTERVAL: Duration = Duration::from_secs(1);

/// Why a build without the audit tree ([`AUDIT_TREE_ON`] false, a
/// benchmark build) signs no checkpoint; `tessera serve` logs it at start.
pub const NO_TREE: &str = "this build keeps no audit tree (--cfg tessera_bench_no_audit_tree, \
                           a benchmark build): no checkpoint can be signed";

/// The file name of the audit key in the key directory.
pub const AUDIT_KEY_FILE: &str = "audit-ed25519.key";

/// Why the audit key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum AuditKeyError {
    /// Reading or writing the key file failed.
    #[error("audit key {path}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The key file does not hold a key.
    #[error("audit key {0}: not 64 hex digits (an Ed25519 seed)")]
    Invalid(PathBuf),
    /// The origin cannot name a note key.
    #[error("audit origin: {0}")]
    Origin(String),
}

/// Loads the audit signing key (the hex Ed25519 seed in `path`), creating
/// it with mode 0600 if missing. Returns the key and whether it was created.
pub fn load_or_create_key(path: &Path) -> Result<(SigningKey, bool), AuditKeyError> {
    let io = |source| AuditKeyError::Io {
        path: path.to_owned(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let seed: [u8; 32] = hex::decode(text.trim())
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| AuditKeyError::Invalid(path.to_owned()))?;
            Ok((SigningKey::from_bytes(&seed), false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = SigningKey::generate(&mut rand::rngs::OsRng);
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let mut f = opts.open(path).map_err(io)?;
            f.write_all(hex::encode(key.to_bytes()).as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(io)?;
            Ok((key, true))
        }
        Err(e) => Err(io(e)),
    }
}

/// The default origin of the log: the issuer URL's host (and port) followed
/// by `/audit`.
pub fn default_origin(issuer: &str) -> String {
    let rest = issuer.split_once("://").map_or(issuer, |(_, r)| r);
    let host = rest.split('/').next().unwrap_or(rest);
    format!("{host}/audit")
}

struct Signed {
    size: u64,
    note: String,
    at: Instant,
}

/// The audit key and the last signed checkpoint.
#[derive(Default)]
pub struct AuditPublisher {
    signer: OnceLock<NoteSigner>,
    last: tokio::sync::Mutex<Option<Signed>>,
}

impl std::fmt::Debug for AuditPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditPublisher")
            .field("signer", &self.signer.get().map(NoteSigner::name))
            .finish_non_exhaustive()
    }
}

impl AuditPublisher {
    /// Sets the audit key, named `origin` (once; later calls are ignored).
    pub fn set_key(&self, origin: &str, key: SigningKey) -> Result<(), AuditKeyError> {
        let signer =
            NoteSigner::new(origin, key).map_err(|e| AuditKeyError::Origin(e.to_string()))?;
        let _ = self.signer.set(signer);
        Ok(())
    }

    /// The verifier of the audit key, once it is set (for the console).
    pub fn verifier(&self) -> Option<crate::tlog::NoteVerifier> {
        self.signer.get().map(NoteSigner::verifier)
    }

    fn signer(&self) -> Result<&NoteSigner, ApiError> {
        self.signer
            .get()
            .ok_or_else(|| ApiError::Unavailable("the audit key is not loaded".into()))
    }

    /// The latest checkpoint, signed at most once per [`SIGN_INTERVAL`].
    pub async fn checkpoint(&self, tree: &dyn AuditTree) -> Result<String, ApiError> {
        if !AUDIT_TREE_ON {
            return Err(ApiError::Unavailable(NO_TREE.into()));
        }
        let signer = self.signer()?;
        let mut last = self.last.lock().await;
        if let Some(signed) = last.as_ref() {
            if signed.at.elapsed() < SIGN_INTERVAL {
                return Ok(signed.note.clone());
            }
        }
        // Records written by others (verifiers' decisions on Redis) become
        // leaves before the tree is signed.
        tree.catch_up().await.map_err(ApiError::from)?;
        let (size, root) = tree::head(tree).await.map_err(api_error)?;
        if let Some(signed) = last.as_mut() {
            if signed.size == size {
                signed.at = Instant::now();
                return Ok(signed.note.clone());
            }
        }
        let note = Checkpoint::new(signer.name(), size, root)
            .and_then(|c| c.sign(signer))
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        *last = Some(Signed {
            size,
            note: note.clone(),
            at: Instant::now(),
        });
        Ok(note)
    }
}

fn api_error(e: TreeError) -> ApiError {
    match e {
        TreeError::Request(e) => ApiError::bad_request(e.to_string()),
        TreeError::Store(e) => e.into(),
    }
}

fn text(body: String) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body)
}

/// `GET /.well-known/tessera-audit-key`.
pub async fn audit_key(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    Ok(text(format!("{}\n", state.audit.signer()?.verifier())))
}

/// `GET /v1/audit/checkpoint`. A build without the tree answers 503 with
/// [`NO_TREE`] (not the store outage's "retry later": retrying cannot help).
pub async fn checkpoint(State(state): State<AppState>) -> Result<Response, ApiError> {
    if !AUDIT_TREE_ON {
        let body = serde_json::json!({ "error": "no_audit_tree", "error_description": NO_TREE });
        return Ok((StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response());
    }
    Ok(text(state.audit.checkpoint(&*state.stores.tree).await?).into_response())
}

/// A query's numbers: required, decimal.
fn number(name: &str, value: Option<&str>) -> Result<u64, ApiError> {
    let value = value.ok_or_else(|| ApiError::bad_request(format!("{name} is required")))?;
    value
        .parse()
        .map_err(|_| ApiError::bad_request(format!("{name} is not a non-negative integer")))
}

/// The parameters of the leaves and proof endpoints.
#[derive(Debug, Deserialize)]
pub struct RangeParams {
    start: Option<String>,
    end: Option<String>,
    index: Option<String>,
    size: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

/// The answer of `GET /v1/audit/leaves`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Leaves {
    /// The index of the first leaf.
    pub start: u64,
    /// The leaf bytes, base64.
    pub leaves: Vec<String>,
}

/// `GET /v1/audit/leaves?start=&end=`.
pub async fn leaves(
    State(state): State<AppState>,
    Query(q): Query<RangeParams>,
) -> Result<Json<Leaves>, ApiError> {
    let start = number("start", q.start.as_deref())?;
    let end = number("end", q.end.as_deref())?;
    if end <= start {
        return Err(ApiError::bad_request("end must be larger than start"));
    }
    if end - start > MAX_LEAVES_PER_READ {
        return Err(ApiError::bad_request(format!(
            "at most {MAX_LEAVES_PER_READ} leaves per request"
        )));
    }
    let size = state.stores.tree.tree_size().await?;
    if end > size {
        return Err(ApiError::bad_request(format!(
            "end {end} is past the end of a log of {size} leaves"
        )));
    }
    let leaves = state.stores.tree.leaves(start, end).await?;
    Ok(Json(Leaves {
        start,
        leaves: leaves.iter().map(|l| B64.encode(l)).collect(),
    }))
}

/// The answer of the proof endpoints.
#[derive(Debug, Serialize, Deserialize)]
pub struct Proof {
    /// The leaf index (inclusion proofs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
    /// The old size (consistency proofs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<u64>,
    /// The tree size the proof leads to.
    pub size: u64,
    /// The root of that tree, base64.
    pub root: String,
    /// The hashes, base64, deepest first.
    pub proof: Vec<String>,
}

fn b64_all(hashes: &[[u8; 32]]) -> Vec<String> {
    hashes.iter().map(|h| B64.encode(h)).collect()
}

/// `GET /v1/audit/proof/inclusion?index=&size=`.
pub async fn inclusion(
    State(state): State<AppState>,
    Query(q): Query<RangeParams>,
) -> Result<Json<Proof>, ApiError> {
    let index = number("index", q.index.as_deref())?;
    let size = number("size", q.size.as_deref())?;
    let tree = &*state.stores.tree;
    let proof = tree::inclusion(tree, index, size)
        .await
        .map_err(api_error)?;
    let root = tree::root_at(tree, size).await.map_err(api_error)?;
    Ok(Json(Proof {
        index: Some(index),
        from: None,
        size,
        root: B64.encode(root),
        proof: b64_all(&proof),
    }))
}

/// `GET /v1/audit/proof/consistency?from=&to=`.
pub async fn consistency(
    State(state): State<AppState>,
    Query(q): Query<RangeParams>,
) -> Result<Json<Proof>, ApiError> {
    let from = number("from", q.from.as_deref())?;
    let to = number("to", q.to.as_deref())?;
    let tree = &*state.stores.tree;
    let proof = tree::consistency(tree, from, to).await.map_err(api_error)?;
    let root = tree::root_at(tree, to).await.map_err(api_error)?;
    Ok(Json(Proof {
        index: None,
        from: Some(from),
        size: to,
        root: B64.encode(root),
        proof: b64_all(&proof),
    }))
}

/// Loads the audit key for `config` into `state` (at start).
pub fn install_key(state: &AppState, key_path: &Path, origin: &str) -> Result<(), AuditKeyError> {
    let (key, created) = load_or_create_key(key_path)?;
    if created {
        tracing::info!(path = %key_path.display(), "generated a new audit signing key");
    }
    state.audit.set_key(origin, key)
}

/// Shared publisher handle type.
pub type SharedPublisher = Arc<AuditPublisher>;
