//! `GET /console`: counts, and the latest checkpoint of the audit log with
//! whether it verifies: its signature with the issuer's own audit key (and
//! its origin), and its root against the root recomputed from the stored
//! tree — from the leaf bytes themselves when the log is small enough
//! ([`RECOMPUTE_FROM_LEAVES`]), else from the stored subtree hashes.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

use super::chrome::{console_page, store_error};
use super::Operator;
use crate::server::AppState;
use crate::store::tree::{self, AuditTree, MAX_LEAVES_PER_READ};
use crate::tlog::merkle::leaf_hash;
use crate::tlog::{Checkpoint, MemoryTree};
use crate::web::page::{html, Markup};

/// Agents counted at most (more show as `1000+`).
pub const MAX_COUNTED: usize = 1000;

/// Logs up to this many records are recomputed from their leaf bytes.
pub const RECOMPUTE_FROM_LEAVES: u64 = 10_000;

/// What the overview says of the latest checkpoint.
enum Status {
    Verified { how: &'static str },
    NotVerified(String),
}

pub(super) async fn page(State(state): State<AppState>, op: Operator) -> Response {
    let agents = match state.stores.agents.list_page(None, MAX_COUNTED + 1).await {
        Ok(a) => a,
        Err(e) => return store_error(e).into_response(),
    };
    let over = if agents.len() > MAX_COUNTED { "+" } else { "" };
    let counted = &agents[..agents.len().min(MAX_COUNTED)];
    let disabled = counted.iter().filter(|a| a.disabled).count();
    let size = match state.stores.tree.tree_size().await {
        Ok(s) => s,
        Err(e) => return store_error(e).into_response(),
    };
    let counts = html(
        "<dl class=\"counts\"><dt>Agents</dt><dd id=\"count-agents\">{}{}</dd>\
         <dt>Disabled agents</dt><dd>{}{}</dd>\
         <dt>Audit records</dt><dd id=\"count-audit\">{}</dd></dl>",
        &[&counted.len(), &over, &disabled, &over, &size],
    );
    let checkpoint = checkpoint_section(&state).await;
    let body = html("{}<h2>Latest checkpoint</h2>{}", &[&counts, &checkpoint]);
    console_page(&state, &op, "/console", "Overview", body)
}

async fn checkpoint_section(state: &AppState) -> Markup {
    let note = match state.audit.checkpoint(&*state.stores.tree).await {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "console: no checkpoint");
            return Markup::lit(
                "<p class=\"status bad\" id=\"checkpoint-status\">NOT verified: \
                 no checkpoint could be signed (is the audit key loaded and the store up?)</p>",
            );
        }
    };
    let Some(verifier) = state.audit.verifier() else {
        return Markup::lit(
            "<p class=\"status bad\" id=\"checkpoint-status\">NOT verified: the audit key is not loaded</p>",
        );
    };
    let (size, root, status) = match Checkpoint::open(&note, &verifier, verifier.name()) {
        Err(e) => (
            None,
            None,
            Status::NotVerified(format!("the signature: {e}")),
        ),
        Ok(c) => {
            let status = match recomputed_root(&*state.stores.tree, c.size()).await {
                Ok((root, how)) if &root == c.root() => Status::Verified { how },
                Ok((_, how)) => Status::NotVerified(format!(
                    "the root recomputed {how} differs from the checkpoint's"
                )),
                Err(why) => Status::NotVerified(why),
            };
            (Some(c.size()), Some(B64.encode(c.root())), status)
        }
    };
    let status = match status {
        Status::Verified { how } => html(
            "<p class=\"status ok\" id=\"checkpoint-status\">verified: the signature by the audit \
             key <code>{}</code> holds, and the root recomputed {} matches</p>",
            &[&verifier.name(), &how],
        ),
        Status::NotVerified(why) => html(
            "<p class=\"status bad\" id=\"checkpoint-status\">NOT verified: {}</p>",
            &[&why],
        ),
    };
    html(
        "{}<dl><dt>Tree size</dt><dd id=\"checkpoint-size\">{}</dd>\
         <dt>Root</dt><dd><code id=\"checkpoint-root\">{}</code></dd>\
         <dt>Origin</dt><dd><code>{}</code></dd></dl>\
         <details><summary>The signed note</summary><pre>{}</pre></details>",
        &[
            &status,
            &size.map_or_else(|| "?".to_owned(), |s| s.to_string()),
            &root.unwrap_or_else(|| "?".to_owned()),
            &verifier.name(),
            &note,
        ],
    )
}

/// The root of the first `size` records, recomputed, and how.
async fn recomputed_root(
    tree: &dyn AuditTree,
    size: u64,
) -> Result<([u8; 32], &'static str), String> {
    if size > RECOMPUTE_FROM_LEAVES {
        let root = tree::root_at(tree, size)
            .await
            .map_err(|e| format!("the stored tree cannot give a root: {e}"))?;
        return Ok((root, "from the stored subtree hashes"));
    }
    let mut memory = MemoryTree::new();
    let mut start = 0;
    while start < size {
        let end = (start + MAX_LEAVES_PER_READ).min(size);
        let leaves = tree
            .leaves(start, end)
            .await
            .map_err(|e| store_error(e).reason)?;
        if leaves.len() as u64 != end - start {
            return Err(format!(
                "records {start}..{end} are not all kept (pruned?), so the root cannot be recomputed from them"
            ));
        }
        for leaf in &leaves {
            memory.push(leaf_hash(leaf));
        }
        start = end;
    }
    Ok((memory.root(), "from every record's bytes"))
}
