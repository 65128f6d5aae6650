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
//! An issuer that stops between its stream entry and the leaf leaves
//! nothing out: the next catch-up (the next record, or the next checkpoint)
//! appends it.
//!
//! Between catch-ups an issuer remembers the tree's size, its last entry
//! and the subtree hashes on its right edge ([`TreeMemo`]), so that a
//! record costs one stream read and one script, and a record that an
//! earlier catch-up of the same issuer already appended costs nothing. The
//! script's checks make the memo safe: if another issuer moved the tree,
//! the script refuses and the memo is read again from Redis. With the memo,
//! a record written through [`AuditLog::append`](crate::store::AuditLog)
//! (every mint's record on a cluster) goes with its leaf in one script
//! ([`RECORD_SCRIPT`]), which appends the leaf only if the record directly
//! follows the tree's last entry.

use std::collections::HashMap;

use async_trait::async_trait;

use super::RedisStore;
use crate::records::redis::AUDIT_FIELD;
use crate::records::{AuditEvent, Cursor};
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

/// One audit record and, when the tree holds every entry before it, its
/// leaf, in one script (on the `{audit}` slot): the record's own
/// catch-up without a round trip of its own. KEYS: stream, leaves list,
/// nodes hash, ingested id. ARGV: stream cap, field, record JSON, the size
/// and the last entry id ("" for none) the issuer's memo holds, the leaf
/// bytes, then field and hex hash pairs for appending it at that size.
/// Returns `{id, 1}` with the leaf appended; `{id, 0}` without it (the
/// tree moved, or another entry came between: the caller catches up).
pub(super) const RECORD_SCRIPT: &str = r#"
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', ARGV[2], ARGV[3])
if (redis.call('GET', KEYS[4]) or '') ~= ARGV[5] then return {id, 0} end
if redis.call('LLEN', KEYS[2]) ~= tonumber(ARGV[4]) then return {id, 0} end
local start = '-'
if ARGV[5] ~= '' then start = '(' .. ARGV[5] end
local after = redis.call('XRANGE', KEYS[1], start, '+', 'COUNT', 2)
if #after ~= 1 or after[1][1] ~= id then return {id, 0} end
redis.call('RPUSH', KEYS[2], ARGV[6])
for i = 7, #ARGV, 2 do redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1]) end
redis.call('SET', KEYS[4], id)
return {id, 1}
"#;

/// How many times an append is tried against other issuers' appends.
const APPEND_TRIES: usize = 32;
/// Stream entries read, and appended by one script, at a time.
const INGEST_BATCH: usize = 256;

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
    /// tree holds, in stream order; returns the tree size (as this issuer
    /// knows it). `entry`, the cursor of a record just written: if this
    /// issuer already appended it (or an entry after it), nothing is read;
    /// and if another of its catch-ups is running, this one does not wait
    /// for it: that one, or the next (a later record's, or a checkpoint's),
    /// appends the entry, so a record never waits behind others' appends.
    /// Without `entry` (a checkpoint), it waits its turn and reads the
    /// tree's end from Redis first: a checkpoint covers every record
    /// written before it. A build without the tree ([`AUDIT_TREE_ON`]
    /// false) does nothing and answers 0.
    pub(super) async fn catch_up_tree(&self, entry: Option<&Cursor>) -> Result<u64, StoreError> {
        if !AUDIT_TREE_ON {
            return Ok(0);
        }
        let mut memo = match entry {
            Some(_) => match self.tlog_lock.try_lock() {
                Ok(memo) => memo,
                Err(_) => return Ok(0),
            },
            None => self.tlog_lock.lock().await,
        };
        match (entry, &memo.head) {
            (Some(entry), Some((size, last)))
                if !last.is_empty() && super::cursor_of(last)? >= *entry =>
            {
                return Ok(*size);
            }
            (None, _) => memo.forget(),
            _ => {}
        }
        let caught_up = self.catch_up_from(&mut memo).await;
        if caught_up.is_err() {
            // The memo may hold nodes of leaves that were not appended.
            memo.forget();
        }
        caught_up
    }

    /// Writes the audit record `json` and, when this issuer's memo knows the
    /// tree's end and no other catch-up runs, its leaf in the same script
    /// ([`RECORD_SCRIPT`]); if the script finds the tree moved, catches up
    /// as usual. `None` when the memo is unknown or busy: nothing was
    /// written, and the caller appends the usual way.
    pub(super) async fn append_with_leaf(&self, json: &str) -> Result<Option<Cursor>, StoreError> {
        if !AUDIT_TREE_ON {
            return Ok(None);
        }
        let Ok(mut memo) = self.tlog_lock.try_lock() else {
            return Ok(None);
        };
        let Some((size, last)) = memo.head.clone() else {
            return Ok(None);
        };
        let event: AuditEvent = super::decode(json)?;
        let leaf = leaf_text(&event)?;
        let siblings = self.siblings(&mut memo.nodes, size).await?;
        let nodes = append_nodes(size, leaf_hash(leaf.as_bytes()), &siblings);
        let mut args = vec![
            self.audit_max_len.to_string(),
            AUDIT_FIELD.to_owned(),
            json.to_owned(),
            size.to_string(),
            last,
            leaf,
        ];
        for (id, hash) in &nodes {
            args.push(field(*id));
            args.push(hex::encode(hash));
        }
        let keys = [
            self.layout.audit(),
            self.layout.tlog_leaves(),
            self.layout.tlog_nodes(),
            self.layout.tlog_ingested(),
        ];
        let reply = self
            .durable(&self.tlog_record_script, RECORD_SCRIPT, &keys, &args)
            .await;
        let (id, appended): (String, i64) = match reply {
            Ok(r) => r,
            Err(e) => {
                // Whether the script ran is unknown: read the tree's end anew.
                memo.forget();
                return Err(e);
            }
        };
        let cursor = super::cursor_of(&id)?;
        if appended == 1 {
            memo.appended(size, &nodes);
            memo.head = Some((size + 1, id));
        } else {
            let caught_up = self.catch_up_from(&mut memo).await;
            if caught_up.is_err() {
                memo.forget();
            }
            caught_up?;
        }
        Ok(Some(cursor))
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
        self.catch_up_tree(None).await
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
