//! [`AuditTree`] on Redis: the leaf bytes in a list and the complete
//! subtree hashes in a hash, both under the `{audit}` tag (one slot on a
//! cluster).
//!
//! The audit stream is the log's source: every record in it (the issuer's,
//! and the decisions verifiers write through their `AuditSink`) becomes a
//! leaf, in stream order. [`RedisStore::catch_up_tree`] reads the entries
//! after the last one the tree holds (`tlog:ingested`) and appends them.
//! Redis's Lua has no SHA-256, so the issuer computes the new hashes and
//! one script checks that the tree still has the size they were computed
//! for and that the tree's last entry is the one they follow, then appends
//! the leaves, their nodes and the last entry id atomically; if another
//! issuer appended first, the issuer reads again from the tree's new end.
//!
//! The leaves are appended off the records' path: writing a record wakes
//! this issuer's follower ([`RedisStore::wake_follower`]), a task that
//! catches up, and while records keep coming, catches up again every
//! couple of milliseconds, so that one stream read and one script append
//! the records of that time. A checkpoint catches up itself before it is
//! signed, so it covers every record written before it. An issuer that
//! stops between its stream entry and the leaf leaves nothing out: the
//! next catch-up (any issuer's follower, or the next checkpoint) appends
//! it.
//!
//! Between catch-ups an issuer remembers the tree's size, its last entry
//! and the subtree hashes on its right edge ([`TreeMemo`]), so that a
//! catch-up costs one stream read and one script. The script's checks
//! make the memo safe: if another issuer moved the tree, the script
//! refuses and the memo is read again from Redis.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;

use super::RedisStore;
use crate::records::redis::AUDIT_FIELD;
use crate::records::AuditEvent;
use crate::store::tree::{AuditTree, AUDIT_TREE_ON, MAX_LEAVES_PER_READ};
use crate::store::StoreError;
use crate::tlog::merkle::{leaf_hash, Hash};
use crate::tlog::nodes::{append_needs, append_nodes, NodeId};

/// KEYS: leaves list, nodes hash, ingested id. ARGV: the size the nodes
/// were computed for, the entry id the tree holds last ("" for none), the
/// id of the last entry appended, the number of leaves `n`, then `n` leaf
/// bytes, then field and hex hash pairs. Returns the first new leaf's
/// index; -2 if the tree holds another last entry (another issuer appended
/// these, or some of them); -1 if only the size changed.
pub(super) const APPEND_SCRIPT: &str = r#"
local last = redis.call('GET', KEYS[3])
if (last or '') ~= ARGV[2] then return -2 end
if redis.call('LLEN', KEYS[1]) ~= tonumber(ARGV[1]) then return -1 end
local n = tonumber(ARGV[4])
for i = 5, 4 + n do redis.call('RPUSH', KEYS[1], ARGV[i]) end
for i = 5 + n, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
redis.call('SET', KEYS[3], ARGV[3])
return tonumber(ARGV[1])
"#;

/// How many times an append is tried against other issuers' appends.
const APPEND_TRIES: usize = 32;
/// Stream entries read, and appended by one script, at a time.
const INGEST_BATCH: usize = 256;
/// How long the follower waits, while records keep coming, before its
/// next catch-up: the leaves trail the stream by about this much, and
/// each catch-up appends the records of that time in one script.
const FOLLOW_PAUSE: Duration = Duration::from_millis(2);
/// How long the follower waits after a failed catch-up.
const FOLLOW_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// Whether the follower runs, and whether a record came since its
/// catch-up last read the stream.
#[derive(Debug, Default)]
pub(super) struct FollowerState {
    running: AtomicBool,
    pending: AtomicBool,
}

fn field(id: NodeId) -> String {
    format!("{}:{}", id.0, id.1)
}

/// A record's leaf bytes, as text (they are canonical JSON).
fn leaf_text(event: &AuditEvent) -> Result<String, StoreError> {
    let leaf =
        crate::tlog::record::leaf_bytes(event).map_err(|e| StoreError::Decode(e.to_string()))?;
    String::from_utf8(leaf)
        .map_err(|_| StoreError::Decode("leaf bytes that are not UTF-8".to_owned()))
}

fn parse_hash(text: &str) -> Result<Hash, StoreError> {
    let bytes = hex::decode(text)
        .map_err(|_| StoreError::Corrupt("an audit tree node is not hex".to_owned()))?;
    bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt("an audit tree node is not 32 bytes".to_owned()))
}

/// What an issuer remembers of the tree between its catch-ups (behind
/// `RedisStore::tlog_lock`): a cache the append script checks.
#[derive(Debug, Default)]
pub(super) struct TreeMemo {
    /// The size and the last entry id ("" for none) the tree had after
    /// this issuer's last read or append; `None` until read.
    head: Option<(u64, String)>,
    /// Hashes of complete subtrees on the tree's right edge, as read or
    /// written; a node missing here is read from Redis when needed.
    nodes: HashMap<NodeId, Hash>,
}

impl TreeMemo {
    fn forget(&mut self) {
        self.head = None;
        self.nodes.clear();
    }

    /// Records the nodes of appending a leaf: the siblings it consumed are
    /// inside the new top node and never needed again.
    fn appended(&mut self, size: u64, nodes: &[(NodeId, Hash)]) {
        for id in append_needs(size) {
            self.nodes.remove(&id);
        }
        if let Some((id, hash)) = nodes.last() {
            self.nodes.insert(*id, *hash);
        }
    }
}

impl RedisStore {
    /// The id of the last stream entry the tree holds, if any.
    async fn ingested(&self) -> Result<Option<String>, StoreError> {
        let mut cmd = ::redis::cmd("GET");
        cmd.arg(self.layout.tlog_ingested());
        self.query(&cmd).await
    }

    /// A tree written before the stream was its source (no
    /// `tlog:ingested`, some leaves) holds every entry up to now: the
    /// catch-up starts after the stream's last entry.
    /// (Called only when `tlog:ingested` is absent.)
    async fn adopt_older_tree(&self) -> Result<(), StoreError> {
        if self.tree_size().await? == 0 {
            return Ok(());
        }
        let mut cmd = ::redis::cmd("XREVRANGE");
        cmd.arg(self.layout.audit())
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1);
        let reply: ::redis::streams::StreamRangeReply = self.query(&cmd).await?;
        if let Some(last) = reply.ids.first() {
            let mut set = ::redis::cmd("SET");
            set.arg(self.layout.tlog_ingested()).arg(&last.id).arg("NX");
            let _: Option<String> = self.query(&set).await?;
        }
        Ok(())
    }

    /// The tree's last entry id ("" for none) and size, read from Redis.
    async fn read_head(&self) -> Result<(u64, String), StoreError> {
        let mut last = self.ingested().await?;
        if last.is_none() {
            self.adopt_older_tree().await?;
            last = self.ingested().await?;
        }
        Ok((self.tree_size().await?, last.unwrap_or_default()))
    }

    /// Appends a leaf for every audit stream entry after the last one the
    /// tree holds, in stream order, and returns the tree's size. It waits
    /// for the follower's append in progress, if any, and reads the tree's
    /// end from Redis first: a checkpoint signed after it covers every
    /// record written before it. A build without the tree
    /// ([`AUDIT_TREE_ON`] false) does nothing and answers 0.
    pub(super) async fn catch_up_tree(&self) -> Result<u64, StoreError> {
        if !AUDIT_TREE_ON {
            return Ok(0);
        }
        let mut memo = self.tlog_lock.lock().await;
        memo.forget();
        let caught_up = self.catch_up_from(&mut memo).await;
        if caught_up.is_err() {
            // The memo may hold nodes of leaves that were not appended.
            memo.forget();
        }
        caught_up
    }

    /// Tells the follower that a record was written to the audit stream,
    /// and starts it if it is not running. Costs the record's writer two
    /// atomic operations (and, when the follower is idle, a task spawn):
    /// the leaf is appended off the record's path.
    pub(super) fn wake_follower(&self) {
        if !AUDIT_TREE_ON {
            return;
        }
        self.follower.pending.store(true, Ordering::SeqCst);
        if self.follower.running.swap(true, Ordering::SeqCst) {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(self.clone().follow());
            }
            // No runtime to run on: the next catch-up appends the leaf.
            Err(_) => self.follower.running.store(false, Ordering::SeqCst),
        }
    }

    /// The follower: catches up until no record came during its last
    /// catch-up, pausing [`FOLLOW_PAUSE`] between catch-ups so that each
    /// one appends the records of that time in one script. A record
    /// written at any moment is either read by the catch-up running then,
    /// seen as `pending` before the follower stops, or starts a new one.
    async fn follow(self) {
        loop {
            self.follower.pending.store(false, Ordering::SeqCst);
            {
                let mut memo = self.tlog_lock.lock().await;
                if let Err(e) = self.catch_up_from(&mut memo).await {
                    memo.forget();
                    // The records are in the stream: the next catch-up (the
                    // next record's, or a checkpoint's) appends them.
                    tracing::warn!(error = %e, "the audit tree did not follow the audit stream");
                    drop(memo);
                    // At most one such warning (and one failing catch-up)
                    // a second, however many records come.
                    tokio::time::sleep(FOLLOW_ERROR_PAUSE).await;
                }
            }
            if self.follower.pending.load(Ordering::SeqCst) {
                tokio::time::sleep(FOLLOW_PAUSE).await;
                continue;
            }
            self.follower.running.store(false, Ordering::SeqCst);
            if !self.follower.pending.load(Ordering::SeqCst)
                || self.follower.running.swap(true, Ordering::SeqCst)
            {
                return;
            }
        }
    }

    /// [`Self::catch_up_tree`]'s reads and appends, from the tree's end as
    /// `memo` knows it (or as read from Redis).
    async fn catch_up_from(&self, memo: &mut TreeMemo) -> Result<u64, StoreError> {
        let stream = self.layout.audit();
        let mut conflicts = 0;
        loop {
            let (size, last) = match memo.head.clone() {
                Some(head) => head,
                None => self.read_head().await?,
            };
            let after = if last.is_empty() {
                None
            } else {
                Some(super::cursor_of(&last)?)
            };
            let entries = self
                .read_range(&stream, after.as_ref(), INGEST_BATCH)
                .await?;
            let Some(newest) = entries.last() else {
                memo.head = Some((size, last));
                return Ok(size);
            };
            let mut args = vec![
                size.to_string(),
                last.clone(),
                newest.id.clone(),
                entries.len().to_string(),
            ];
            let mut pairs = Vec::new();
            let mut next = size;
            for entry in &entries {
                let event: AuditEvent = super::decode(&super::field(entry, AUDIT_FIELD)?)?;
                let text = leaf_text(&event)?;
                let siblings = self.siblings(&mut memo.nodes, next).await?;
                let nodes = append_nodes(next, leaf_hash(text.as_bytes()), &siblings);
                memo.appended(next, &nodes);
                for (nid, hash) in nodes {
                    pairs.push(field(nid));
                    pairs.push(hex::encode(hash));
                }
                args.push(text);
                next += 1;
            }
            args.extend(pairs);
            let keys = [
                self.layout.tlog_leaves(),
                self.layout.tlog_nodes(),
                self.layout.tlog_ingested(),
            ];
            let index: i64 = self
                .durable(&self.tlog_script, APPEND_SCRIPT, &keys, &args)
                .await?;
            if index >= 0 {
                memo.head = Some((next, newest.id.clone()));
                if entries.len() < INGEST_BATCH {
                    return Ok(next);
                }
            } else {
                // Another issuer moved the tree: read it again.
                memo.forget();
                conflicts += 1;
                if conflicts >= APPEND_TRIES {
                    return Err(StoreError::Unavailable(
                        "the audit tree kept growing under other appends".to_owned(),
                    ));
                }
            }
        }
    }

    /// The hashes of [`append_needs`]`(size)`, from `nodes` or else read
    /// from Redis (and kept in `nodes`).
    async fn siblings(
        &self,
        nodes: &mut HashMap<NodeId, Hash>,
        size: u64,
    ) -> Result<Vec<Hash>, StoreError> {
        let needs = append_needs(size);
        let missing: Vec<NodeId> = needs
            .iter()
            .filter(|id| !nodes.contains_key(id))
            .copied()
            .collect();
        for (id, hash) in missing.iter().zip(self.subtrees(&missing).await?) {
            let hash = hash.ok_or_else(|| {
                StoreError::Corrupt(format!("audit tree node {}/{} is missing", id.0, id.1))
            })?;
            nodes.insert(*id, hash);
        }
        needs
            .iter()
            .map(|id| {
                nodes.get(id).copied().ok_or_else(|| {
                    StoreError::Corrupt(format!("audit tree node {}/{} is missing", id.0, id.1))
                })
            })
            .collect()
    }
}

#[async_trait]
impl AuditTree for RedisStore {
    async fn catch_up(&self) -> Result<u64, StoreError> {
        self.catch_up_tree().await
    }

    async fn tree_size(&self) -> Result<u64, StoreError> {
        let mut cmd = ::redis::cmd("LLEN");
        cmd.arg(self.layout.tlog_leaves());
        self.query(&cmd).await
    }

    async fn subtrees(&self, ids: &[NodeId]) -> Result<Vec<Option<Hash>>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = ::redis::cmd("HMGET");
        cmd.arg(self.layout.tlog_nodes());
        for id in ids {
            cmd.arg(field(*id));
        }
        let hashes: Vec<Option<String>> = self.query(&cmd).await?;
        hashes
            .into_iter()
            .map(|h| h.as_deref().map(parse_hash).transpose())
            .collect()
    }

    async fn leaves(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        let end = end.min(start.saturating_add(MAX_LEAVES_PER_READ));
        if end <= start {
            return Ok(Vec::new());
        }
        let (Ok(first), Ok(last)) = (i64::try_from(start), i64::try_from(end - 1)) else {
            return Ok(Vec::new());
        };
        let mut cmd = ::redis::cmd("LRANGE");
        cmd.arg(self.layout.tlog_leaves()).arg(first).arg(last);
        self.query(&cmd).await
    }
}
