//! The embedded store: one `redb` file under the data directory.
//!
//! Every write is one redb write transaction committed with immediate
//! durability, so a call that returned `Ok` survives `kill -9`. redb runs one
//! write transaction at a time, which is what makes `insert_once` exact.
//! redb is synchronous, so each operation runs on tokio's blocking pool.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::watch;

use super::{
    AgentRecord, AgentStore, AuditEvent, AuditLog, AuditQuery, Cursor, IssuedToken, ReplayCache,
    Revocation, RevocationStore, StoreError, StoreHealth, TokenLedger,
};

/// The file name under the data directory.
const FILE_NAME: &str = "tessera.redb";
/// How many expired entries one write drops at most, to bound its cost.
const PURGE_BATCH: usize = 64;

/// Agent id -> JSON `AgentRecord`.
const AGENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("agents");
/// Token id -> JSON `IssuedToken`.
const TOKENS: TableDefinition<&str, &[u8]> = TableDefinition::new("tokens");
/// (agent, token id) -> expiry in microseconds since the epoch.
const TOKENS_BY_AGENT: TableDefinition<(&str, &str), i64> = TableDefinition::new("tokens_by_agent");
/// (expiry in microseconds, token id), to drop expired tokens.
const TOKEN_EXPIRY: TableDefinition<(i64, &str), ()> = TableDefinition::new("token_expiry");
/// Revocation id -> feed sequence number of its first revocation.
const REVOKED: TableDefinition<&str, u64> = TableDefinition::new("revoked");
/// Feed sequence number -> JSON `Revocation`.
const FEED: TableDefinition<u64, &[u8]> = TableDefinition::new("revocation_feed");
/// Replay key -> expiry in microseconds.
const REPLAY: TableDefinition<&str, i64> = TableDefinition::new("replay");
/// (expiry in microseconds, replay key), to drop expired keys.
const REPLAY_EXPIRY: TableDefinition<(i64, &str), ()> = TableDefinition::new("replay_expiry");
/// Audit sequence number -> JSON `AuditEvent`.
const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");

/// All stores in one redb database.
#[derive(Debug)]
pub struct RedbStore {
    db: Arc<Database>,
    /// The last feed sequence number written, to wake long-polls.
    feed_head: watch::Sender<u64>,
}

impl RedbStore {
    /// Opens (or creates) `tessera.redb` under `data_dir`, creating the
    /// directory if it is missing.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir)?;
        let db = Database::create(data_dir.join(FILE_NAME)).db()?;
        let txn = db.begin_write().db()?;
        txn.open_table(AGENTS).db()?;
        txn.open_table(TOKENS).db()?;
        txn.open_table(TOKENS_BY_AGENT).db()?;
        txn.open_table(TOKEN_EXPIRY).db()?;
        txn.open_table(REVOKED).db()?;
        let head = last_seq(&txn.open_table(FEED).db()?)?;
        txn.open_table(REPLAY).db()?;
        txn.open_table(REPLAY_EXPIRY).db()?;
        txn.open_table(AUDIT).db()?;
        txn.commit().db()?;
        Ok(Self {
            db: Arc::new(db),
            feed_head: watch::Sender::new(head),
        })
    }

    /// Runs `op` on the blocking pool.
    async fn run<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || op(&db))
            .await
            .map_err(|e| StoreError::Backend(format!("store task failed: {e}")))?
    }
}

/// Starts a write transaction that commits with immediate durability.
fn write_txn(db: &Database) -> Result<WriteTransaction, StoreError> {
    let mut txn = db.begin_write().db()?;
    txn.set_durability(Durability::Immediate).db()?;
    Ok(txn)
}

fn last_seq(table: &impl ReadableTable<u64, &'static [u8]>) -> Result<u64, StoreError> {
    Ok(table.last().db()?.map(|(k, _)| k.value()).unwrap_or(0))
}

fn cursor_of(seq: u64) -> Cursor {
    Cursor::new(format!("{seq:020}"))
}

/// The sequence number a cursor stands for; 0 (before everything) if none.
fn seq_of(cursor: Option<&Cursor>) -> Result<u64, StoreError> {
    let Some(cursor) = cursor else {
        return Ok(0);
    };
    let text = cursor.as_str();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(StoreError::InvalidCursor(text.to_owned()));
    }
    text.parse()
        .map_err(|_| StoreError::InvalidCursor(text.to_owned()))
}

fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Backend(format!("encoding a record: {e}")))
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Decode(e.to_string()))
}

/// Drops up to `PURGE_BATCH` expired tokens (expiry before `now`).
fn purge_tokens(txn: &WriteTransaction, now: i64) -> Result<(), StoreError> {
    let mut expiry = txn.open_table(TOKEN_EXPIRY).db()?;
    let mut tokens = txn.open_table(TOKENS).db()?;
    let mut by_agent = txn.open_table(TOKENS_BY_AGENT).db()?;
    let mut expired = Vec::new();
    for entry in expiry.range(..(now, "")).db()?.take(PURGE_BATCH) {
        let (key, _) = entry.db()?;
        let (at, token_id) = key.value();
        expired.push((at, token_id.to_owned()));
    }
    for (at, token_id) in expired {
        expiry.remove((at, token_id.as_str())).db()?;
        let record = tokens.remove(token_id.as_str()).db()?;
        if let Some(record) = record {
            let token: IssuedToken = decode(record.value())?;
            by_agent
                .remove((token.agent.as_str(), token_id.as_str()))
                .db()?;
        }
    }
    Ok(())
}

/// Drops up to `PURGE_BATCH` replay keys that expired at or before `now`.
fn purge_replay(txn: &WriteTransaction, now: i64) -> Result<(), StoreError> {
    let mut expiry = txn.open_table(REPLAY_EXPIRY).db()?;
    let mut replay = txn.open_table(REPLAY).db()?;
    let mut expired = Vec::new();
    for entry in expiry
        .range(..(now.saturating_add(1), ""))
        .db()?
        .take(PURGE_BATCH)
    {
        let (key, _) = entry.db()?;
        let (at, replay_key) = key.value();
        expired.push((at, replay_key.to_owned()));
    }
    for (at, replay_key) in expired {
        expiry.remove((at, replay_key.as_str())).db()?;
        replay.remove(replay_key.as_str()).db()?;
    }
    Ok(())
}

#[async_trait]
impl AgentStore for RedbStore {
    async fn put(&self, agent: &AgentRecord) -> Result<(), StoreError> {
        let id = agent.id.clone();
        let bytes = encode(agent)?;
        self.run(move |db| {
            let txn = write_txn(db)?;
            txn.open_table(AGENTS)
                .db()?
                .insert(id.as_str(), bytes.as_slice())
                .db()?;
            txn.commit().db()
        })
        .await
    }

    async fn get(&self, id: &str) -> Result<Option<AgentRecord>, StoreError> {
        let id = id.to_owned();
        self.run(move |db| {
            let txn = db.begin_read().db()?;
            let table = txn.open_table(AGENTS).db()?;
            let found = table.get(id.as_str()).db()?;
            found.map(|v| decode(v.value())).transpose()
        })
        .await
    }

    async fn list(&self) -> Result<Vec<AgentRecord>, StoreError> {
        self.run(move |db| {
            let txn = db.begin_read().db()?;
            let table = txn.open_table(AGENTS).db()?;
            let mut agents = Vec::new();
            for entry in table.iter().db()? {
                let (_, value) = entry.db()?;
                agents.push(decode(value.value())?);
            }
            Ok(agents)
        })
        .await
    }

    async fn disable(&self, id: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.run(move |db| {
            let txn = write_txn(db)?;
            {
                let mut table = txn.open_table(AGENTS).db()?;
                let found = table.get(id.as_str()).db()?;
                let Some(mut agent) = found
                    .map(|v| decode::<AgentRecord>(v.value()))
                    .transpose()?
                else {
                    return Ok(false);
                };
                agent.disabled = true;
                agent.updated_at = now;
                table.insert(id.as_str(), encode(&agent)?.as_slice()).db()?;
            }
            txn.commit().db()?;
            Ok(true)
        })
        .await
    }
}

#[async_trait]
impl TokenLedger for RedbStore {
    async fn record(&self, token: &IssuedToken) -> Result<(), StoreError> {
        let token = token.clone();
        let bytes = encode(&token)?;
        self.run(move |db| {
            let txn = write_txn(db)?;
            let expires = micros(token.expires_at);
            {
                let mut tokens = txn.open_table(TOKENS).db()?;
                let mut by_agent = txn.open_table(TOKENS_BY_AGENT).db()?;
                let mut expiry = txn.open_table(TOKEN_EXPIRY).db()?;
                let previous = tokens
                    .insert(token.token_id.as_str(), bytes.as_slice())
                    .db()?;
                if let Some(previous) = previous {
                    let old: IssuedToken = decode(previous.value())?;
                    by_agent
                        .remove((old.agent.as_str(), old.token_id.as_str()))
                        .db()?;
                    expiry
                        .remove((micros(old.expires_at), old.token_id.as_str()))
                        .db()?;
                }
                by_agent
                    .insert((token.agent.as_str(), token.token_id.as_str()), expires)
                    .db()?;
                expiry.insert((expires, token.token_id.as_str()), ()).db()?;
            }
            // Minting time is the freshest `now` this call knows.
            purge_tokens(&txn, micros(token.issued_at))?;
            txn.commit().db()
        })
        .await
    }

    async fn get(&self, token_id: &str) -> Result<Option<IssuedToken>, StoreError> {
        let token_id = token_id.to_owned();
        self.run(move |db| {
            let txn = db.begin_read().db()?;
            let table = txn.open_table(TOKENS).db()?;
            let found = table.get(token_id.as_str()).db()?;
            found.map(|v| decode(v.value())).transpose()
        })
        .await
    }

    async fn outstanding(
        &self,
        agent: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<IssuedToken>, StoreError> {
        let agent = agent.to_owned();
        self.run(move |db| {
            let txn = db.begin_read().db()?;
            let by_agent = txn.open_table(TOKENS_BY_AGENT).db()?;
            let tokens = txn.open_table(TOKENS).db()?;
            let mut found = Vec::new();
            for entry in by_agent.range((agent.as_str(), "")..).db()? {
                let (key, expires) = entry.db()?;
                let (owner, token_id) = key.value();
                if owner != agent {
                    break;
                }
                if expires.value() <= micros(now) {
                    continue;
                }
                if let Some(record) = tokens.get(token_id).db()? {
                    let token: IssuedToken = decode(record.value())?;
                    if token.expires_at > now {
                        found.push(token);
                    }
                }
            }
            found.sort_by(|a, b| (a.issued_at, &a.token_id).cmp(&(b.issued_at, &b.token_id)));
            Ok(found)
        })
        .await
    }
}

#[async_trait]
impl RevocationStore for RedbStore {
    async fn revoke(&self, revocation: &Revocation) -> Result<Cursor, StoreError> {
        let id = revocation.revocation_id.clone();
        let bytes = encode(revocation)?;
        let (seq, added) = self
            .run(move |db| {
                let txn = write_txn(db)?;
                let seq = {
                    let mut revoked = txn.open_table(REVOKED).db()?;
                    let existing = revoked.get(id.as_str()).db()?.map(|v| v.value());
                    if let Some(seq) = existing {
                        return Ok((seq, false));
                    }
                    let mut feed = txn.open_table(FEED).db()?;
                    let seq = last_seq(&feed)? + 1;
                    feed.insert(seq, bytes.as_slice()).db()?;
                    revoked.insert(id.as_str(), seq).db()?;
                    seq
                };
                txn.commit().db()?;
                Ok((seq, true))
            })
            .await?;
        if added {
            self.feed_head.send_replace(seq);
        }
        Ok(cursor_of(seq))
    }

    async fn is_revoked(&self, revocation_id: &str) -> Result<bool, StoreError> {
        let id = revocation_id.to_owned();
        self.run(move |db| {
            let txn = db.begin_read().db()?;
            let table = txn.open_table(REVOKED).db()?;
            Ok(table.get(id.as_str()).db()?.is_some())
        })
        .await
    }

    async fn feed(
        &self,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<Vec<(Cursor, Revocation)>, StoreError> {
        let start = seq_of(after)?.saturating_add(1);
        self.run(move |db| {
            let txn = db.begin_read().db()?;
            let table = txn.open_table(FEED).db()?;
            let mut entries = Vec::new();
            for entry in table.range(start..).db()?.take(limit) {
                let (seq, value) = entry.db()?;
                entries.push((cursor_of(seq.value()), decode(value.value())?));
            }
            Ok(entries)
        })
        .await
    }

    async fn wait(
        &self,
        after: Option<&Cursor>,
        limit: usize,
        timeout: Duration,
    ) -> Result<Vec<(Cursor, Revocation)>, StoreError> {
        let deadline = tokio::time::Instant::now() + timeout;
        // Subscribe before reading, so a revocation committed in between
        // still wakes us.
        let mut head = self.feed_head.subscribe();
        loop {
            let entries = self.feed(after, limit).await?;
            if !entries.is_empty() || limit == 0 {
                return Ok(entries);
            }
            match tokio::time::timeout_at(deadline, head.changed()).await {
                Ok(Ok(())) => continue,
                // Timed out, or the sender is gone (cannot happen while
                // `self` lives).
                Ok(Err(_)) | Err(_) => return Ok(Vec::new()),
            }
        }
    }
}

#[async_trait]
impl ReplayCache for RedbStore {
    async fn insert_once(
        &self,
        key: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        if expires_at <= now {
            return Ok(false);
        }
        let key = key.to_owned();
        let (expires, now) = (micros(expires_at), micros(now));
        self.run(move |db| {
            let txn = write_txn(db)?;
            {
                let mut replay = txn.open_table(REPLAY).db()?;
                let existing = replay.get(key.as_str()).db()?.map(|v| v.value());
                let mut expiry = txn.open_table(REPLAY_EXPIRY).db()?;
                match existing {
                    Some(at) if at > now => return Ok(false),
                    Some(at) => {
                        expiry.remove((at, key.as_str())).db()?;
                    }
                    None => {}
                }
                replay.insert(key.as_str(), expires).db()?;
                expiry.insert((expires, key.as_str()), ()).db()?;
            }
            purge_replay(&txn, now)?;
            txn.commit().db()?;
            Ok(true)
        })
        .await
    }
}

#[async_trait]
impl AuditLog for RedbStore {
    async fn append(&self, event: &AuditEvent) -> Result<Cursor, StoreError> {
        let bytes = encode(event)?;
        self.run(move |db| {
            let txn = write_txn(db)?;
            let seq = {
                let mut table = txn.open_table(AUDIT).db()?;
                let seq = last_seq(&table)? + 1;
                table.insert(seq, bytes.as_slice()).db()?;
                seq
            };
            txn.commit().db()?;
            Ok(cursor_of(seq))
        })
        .await
    }

    async fn query(&self, query: &AuditQuery) -> Result<Vec<(Cursor, AuditEvent)>, StoreError> {
        let query = query.clone();
        let start = seq_of(query.after.as_ref())?.saturating_add(1);
        self.run(move |db| {
            let txn = db.begin_read().db()?;
            let table = txn.open_table(AUDIT).db()?;
            let mut events = Vec::new();
            for entry in table.range(start..).db()? {
                if events.len() >= query.limit {
                    break;
                }
                let (seq, value) = entry.db()?;
                let event: AuditEvent = decode(value.value())?;
                if query.matches(&event) {
                    events.push((cursor_of(seq.value()), event));
                }
            }
            Ok(events)
        })
        .await
    }
}

#[async_trait]
impl StoreHealth for RedbStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.run(|db| {
            let txn = db.begin_read().db()?;
            txn.open_table(FEED).db()?;
            Ok(())
        })
        .await
    }
}

/// Converts redb's error types into [`StoreError`].
trait DbResult<T> {
    fn db(self) -> Result<T, StoreError>;
}

impl<T, E: Into<redb::Error>> DbResult<T> for Result<T, E> {
    fn db(self) -> Result<T, StoreError> {
        self.map_err(|e| match e.into() {
            redb::Error::Io(e) => StoreError::Io(e),
            redb::Error::DatabaseAlreadyOpen => {
                StoreError::Unavailable("the database is open in another process".to_owned())
            }
            redb::Error::PreviousIo => StoreError::Unavailable(
                "an earlier I/O error left the database unusable until reopened".to_owned(),
            ),
            e @ (redb::Error::Corrupted(_)
            | redb::Error::UpgradeRequired(_)
            | redb::Error::TableTypeMismatch { .. }
            | redb::Error::TypeDefinitionChanged { .. }
            | redb::Error::TableIsMultimap(_)
            | redb::Error::TableIsNotMultimap(_)) => StoreError::Corrupt(e.to_string()),
            e => StoreError::Backend(e.to_string()),
        })
    }
}
