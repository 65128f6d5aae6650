//! [`AuditTree`] on Redis: the leaf bytes in a list and the complete
//! subtree hashes in a hash, both under the `{audit}` tag (one slot on a
//! cluster).
//!
//! The audit stream is the log's source: every record in it (the issuer's,
//! and the decisions verifiers write through their `AuditSink`) becomes a
//! leaf, in stream order. [`RedisStore::catch_up_tree`] reads the entries
//! after the last one the tree holds (`tlog:ingested`) and appends each.
//! Redis's Lua has no SHA-256, so the issuer computes the new hashes and
//! one script checks that the tree still has the size they were computed
//! for and that the entry is the next one, then appends the leaf, its nodes
//! and the entry id atomically; another issuer's append first is retried.
//! An issuer that stops between its stream entry and the leaf leaves
//! nothing out: the next catch-up (the next record, or the next checkpoint)
//! appends it.

use async_trait::async_trait;

use super::RedisStore;
use crate::records::redis::AUDIT_FIELD;
use crate::records::AuditEvent;
use crate::store::tree::{AuditTree, AUDIT_TREE_ON, MAX_LEAVES_PER_READ};
use crate::store::StoreError;
use crate::tlog::merkle::{leaf_hash, Hash};
use crate::tlog::nodes::{append_needs, append_nodes, NodeId};

/// KEYS: leaves list, nodes hash, ingested id. ARGV: the size the nodes
/// were computed for, the leaf bytes, the entry id the tree holds last
/// ("" for none), the entry's id, then field and hex hash pairs. Returns the
/// leaf's index; -2 if the tree holds another last entry (another issuer
/// appended this one, or one after it); -1 if only the size changed.
pub(super) const APPEND_SCRIPT: &str = r#"
local last = redis.call('GET', KEYS[3])
if (last or '') ~= ARGV[3] then return -2 end
if redis.call('LLEN', KEYS[1]) ~= tonumber(ARGV[1]) then return -1 end
redis.call('RPUSH', KEYS[1], ARGV[2])
for i = 5, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
redis.call('SET', KEYS[3], ARGV[4])
return tonumber(ARGV[1])
"#;

/// How many times an append is tried against other issuers' appends.
const APPEND_TRIES: usize = 32;
/// Stream entries read at a time while catching up.
const INGEST_BATCH: usize = 256;

fn field(id: NodeId) -> String {
    format!("{}:{}", id.0, id.1)
}

fn parse_hash(text: &str) -> Result<Hash, StoreError> {
    let bytes = hex::decode(text)
        .map_err(|_| StoreError::Corrupt("an audit tree node is not hex".to_owned()))?;
    bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt("an audit tree node is not 32 bytes".to_owned()))
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

    /// Appends a leaf for every audit stream entry after the last one the
    /// tree holds, in stream order; returns the tree size.
    /// A build without the tree ([`AUDIT_TREE_ON`] false) does nothing and
    /// answers 0.
    pub(super) async fn catch_up_tree(&self) -> Result<u64, StoreError> {
        if !AUDIT_TREE_ON {
            return Ok(0);
        }
        let _one_at_a_time = self.tlog_lock.lock().await;
        let stream = self.layout.audit();
        let mut last = self.ingested().await?;
        if last.is_none() {
            self.adopt_older_tree().await?;
            last = self.ingested().await?;
        }
        loop {
            let after = last.as_deref().map(super::cursor_of).transpose()?;
            let entries = self
                .read_range(&stream, after.as_ref(), INGEST_BATCH)
                .await?;
            if entries.is_empty() {
                return self.tree_size().await;
            }
            let mut previous = last.clone().unwrap_or_default();
            let mut size = None;
            for entry in &entries {
                let event: AuditEvent = super::decode(&super::field(entry, AUDIT_FIELD)?)?;
                let leaf = crate::tlog::record::leaf_bytes(&event)
                    .map_err(|e| StoreError::Decode(e.to_string()))?;
                match self.append_leaf(&leaf, &previous, &entry.id).await? {
                    Some(index) => size = Some(index + 1),
                    // Another issuer appended first: read again from its point.
                    None => {
                        size = None;
                        break;
                    }
                }
                previous.clone_from(&entry.id);
            }
            match size {
                // The whole batch appended and it was the stream's end.
                Some(size) if entries.len() < INGEST_BATCH => return Ok(size),
                Some(_) => last = Some(previous),
                None => last = self.ingested().await?,
            }
        }
    }

    /// Appends the leaf of stream entry `id`, which follows entry
    /// `previous` ("" for none); its index, or `None` if the tree moved on
    /// (another issuer appended it, or an entry before it).
    async fn append_leaf(
        &self,
        leaf: &[u8],
        previous: &str,
        id: &str,
    ) -> Result<Option<u64>, StoreError> {
        let keys = [
            self.layout.tlog_leaves(),
            self.layout.tlog_nodes(),
            self.layout.tlog_ingested(),
        ];
        let text = std::str::from_utf8(leaf)
            .map_err(|_| StoreError::Decode("leaf bytes that are not UTF-8".to_owned()))?;
        for _ in 0..APPEND_TRIES {
            let size = self.tree_size().await?;
            let needs = append_needs(size);
            let mut siblings = Vec::with_capacity(needs.len());
            for (nid, hash) in needs.iter().zip(self.subtrees(&needs).await?) {
                siblings.push(hash.ok_or_else(|| {
                    StoreError::Corrupt(format!("audit tree node {}/{} is missing", nid.0, nid.1))
                })?);
            }
            let mut args = vec![
                size.to_string(),
                text.to_owned(),
                previous.to_owned(),
                id.to_owned(),
            ];
            for (nid, hash) in append_nodes(size, leaf_hash(leaf), &siblings) {
                args.push(field(nid));
                args.push(hex::encode(hash));
            }
            let index: i64 = self
                .durable(&self.tlog_script, APPEND_SCRIPT, &keys, &args)
                .await?;
            match index {
                -2 => return Ok(None),
                i if i >= 0 => return Ok(u64::try_from(i).ok()),
                _ => {}
            }
        }
        Err(StoreError::Unavailable(
            "the audit tree kept growing under other appends".to_owned(),
        ))
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
