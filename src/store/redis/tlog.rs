//! [`AuditTree`] on Redis: the leaf bytes in a list and the complete
//! subtree hashes in a hash, both under the `{audit}` tag (one slot on a
//! cluster). Redis's Lua has no SHA-256, so the issuer computes the new
//! hashes and one script checks that the tree still has the size they were
//! computed for and appends the leaf and its nodes atomically; a stale size
//! (another issuer appended first) is retried.

use async_trait::async_trait;

use super::RedisStore;
use crate::store::tree::{AuditTree, MAX_LEAVES_PER_READ};
use crate::store::StoreError;
use crate::tlog::merkle::{leaf_hash, Hash};
use crate::tlog::nodes::{append_needs, append_nodes, NodeId};

/// KEYS: leaves list, nodes hash. ARGV: the size the nodes were computed
/// for, the leaf bytes, then field and hex hash pairs. Returns the leaf's
/// index, or -1 if the size changed.
pub(super) const APPEND_SCRIPT: &str = r#"
if redis.call('LLEN', KEYS[1]) ~= tonumber(ARGV[1]) then return -1 end
redis.call('RPUSH', KEYS[1], ARGV[2])
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
return tonumber(ARGV[1])
"#;

/// How many times an append is tried against other issuers' appends.
const APPEND_TRIES: usize = 32;

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
    /// Appends the leaf bytes `leaf` to the audit tree; returns its index.
    pub(super) async fn append_leaf(&self, leaf: &[u8]) -> Result<u64, StoreError> {
        let _one_at_a_time = self.tlog_lock.lock().await;
        let keys = [self.layout.tlog_leaves(), self.layout.tlog_nodes()];
        let text = std::str::from_utf8(leaf)
            .map_err(|_| StoreError::Decode("leaf bytes that are not UTF-8".to_owned()))?;
        for _ in 0..APPEND_TRIES {
            let size = self.tree_size().await?;
            let needs = append_needs(size);
            let mut siblings = Vec::with_capacity(needs.len());
            for (id, hash) in needs.iter().zip(self.subtrees(&needs).await?) {
                siblings.push(hash.ok_or_else(|| {
                    StoreError::Corrupt(format!("audit tree node {}/{} is missing", id.0, id.1))
                })?);
            }
            let mut args = vec![size.to_string(), text.to_owned()];
            for (id, hash) in append_nodes(size, leaf_hash(leaf), &siblings) {
                args.push(field(id));
                args.push(hex::encode(hash));
            }
            let index: i64 = self
                .durable(&self.tlog_script, APPEND_SCRIPT, &keys, &args)
                .await?;
            if let Ok(index) = u64::try_from(index) {
                return Ok(index);
            }
        }
        Err(StoreError::Unavailable(
            "the audit tree kept growing under other appends".to_owned(),
        ))
    }
}

#[async_trait]
impl AuditTree for RedisStore {
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
