//! Moving data written by earlier releases (untagged keys, layout version 1)
//! to the current layout, once, at open, on one server.
//!
//! `RENAME` keeps a key's value, its expiry and, for a stream, its entry
//! ids: cursors handed out before stay valid. One issuer migrates while
//! holding a lock key; another starting at the same time waits for the
//! layout version to appear. Renaming is idempotent (a key already moved is
//! no longer found under its old name), so a migration cut short is
//! finished by the next start.

use std::time::{Duration, Instant};

use ::redis::Value;

use super::{RedisStore, StoreError};
use crate::records::redis::LAYOUT_VERSION;

/// How long the lock lasts if its holder dies mid-migration.
const LOCK_MS: u64 = 60_000;

/// Kinds of keyed entries, by their old name.
const KINDS: [&str; 5] = ["revoked", "agent-tokens", "agent", "token", "replay"];

impl RedisStore {
    /// Migrates the untagged layout if found; records the layout version.
    pub(super) async fn migrate(&self) -> Result<(), StoreError> {
        let version_key = self.layout.layout_version();
        let deadline = Instant::now() + Duration::from_millis(LOCK_MS + 5_000);
        loop {
            let mut get = ::redis::cmd("GET");
            get.arg(&version_key);
            if self.query::<Option<String>>(&get).await?.is_some() {
                return Ok(());
            }
            let mut lock = ::redis::cmd("SET");
            lock.arg(self.layout.migration_lock())
                .arg(1)
                .arg("NX")
                .arg("PX")
                .arg(LOCK_MS);
            let taken: Value = self.query(&lock).await?;
            if !matches!(taken, Value::Nil) {
                break;
            }
            if Instant::now() > deadline {
                return Err(StoreError::Unavailable(
                    "another issuer is migrating the Redis layout".to_owned(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let moved = self.rename_legacy_keys().await?;
        let mut done = ::redis::pipe();
        done.cmd("SET")
            .arg(&version_key)
            .arg(LAYOUT_VERSION)
            .ignore()
            .cmd("DEL")
            .arg(self.layout.migration_lock())
            .ignore();
        self.query_pipe::<()>(&done).await?;
        let _ = moved;
        Ok(())
    }

    /// Renames every key of the old layout; returns how many moved.
    async fn rename_legacy_keys(&self) -> Result<usize, StoreError> {
        let legacy = self.layout.legacy();
        let mut pairs = vec![
            (legacy.revocations(), self.layout.revocations()),
            (legacy.audit(), self.layout.audit()),
            (legacy.agents(), self.layout.agents()),
        ];
        for kind in KINDS {
            let old_prefix = legacy.kind_prefix(kind);
            for old in self.scan(&format!("{}*", glob_escape(&old_prefix))).await? {
                let id = &old[old_prefix.len()..];
                let new = match kind {
                    "revoked" => self.layout.revoked(id),
                    "agent-tokens" => self.layout.agent_tokens(id),
                    "agent" => self.layout.agent(id),
                    "token" => self.layout.token(id),
                    _ => self.layout.replay(id),
                };
                pairs.push((old, new));
            }
        }
        let mut moved = 0;
        for (old, new) in pairs {
            let mut exists = ::redis::cmd("EXISTS");
            exists.arg(&old);
            if self.query::<i64>(&exists).await? == 0 {
                continue;
            }
            let mut rename = ::redis::cmd("RENAME");
            rename.arg(&old).arg(&new);
            match self.query::<()>(&rename).await {
                Ok(()) => moved += 1,
                // Gone since: another issuer (after a lock expiry) moved it.
                Err(StoreError::Backend(e)) if e.contains("no such key") => {}
                Err(e) => return Err(e),
            }
        }
        Ok(moved)
    }

    /// Every key matching `pattern` (`SCAN`).
    async fn scan(&self, pattern: &str) -> Result<Vec<String>, StoreError> {
        let mut keys = Vec::new();
        let mut cursor = "0".to_owned();
        loop {
            let mut scan = ::redis::cmd("SCAN");
            scan.arg(&cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000);
            let (next, batch): (String, Vec<String>) = self.query(&scan).await?;
            keys.extend(batch);
            if next == "0" {
                break;
            }
            cursor = next;
        }
        keys.sort();
        keys.dedup();
        Ok(keys)
    }
}

/// `text` with the glob characters of `SCAN MATCH` escaped.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(super::glob_escape("a*b?[c]\\:"), "a\\*b\\?\\[c\\]\\\\:");
    }
}
