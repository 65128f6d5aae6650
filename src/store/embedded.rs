//! The embedded store: one `redb` file under the data directory.
//!
//! Writes go through group commit. Every write operation is handed to one
//! writer thread over a channel. The writer takes the first pending
//! operation, drains those already queued (up to [`MAX_BATCH`]), applies
//! them in arrival order inside one redb write transaction, commits it once
//! with immediate durability (one fsync for the whole batch) and only then
//! answers each caller with its own result. So a call that returned `Ok`
//! survives `kill -9`, as before, but concurrent writers share an fsync
//! instead of queueing for redb's single write transaction one by one.
//!
//! A minted token is one operation ([`Issuance::record_issue`]): its
//! one-time keys, its ledger entry and its audit event in the same
//! transaction, so a mint waits for one commit, not two.
//!
//! Operations apply one after another, so a later operation in a batch sees
//! the writes of the earlier ones: `insert_once` stays exact and feed and
//! audit sequence numbers stay monotonic. An operation that fails fails
//! only its caller: the transaction is aborted (dropping any partial write
//! of the failed operation) and the rest of the batch is applied again in a
//! fresh transaction. If the commit itself fails, every caller in the batch
//! gets the error.
//!
//! Replay keys are kept in one table ordered by expiry, which the writer
//! appends to and purges from its start; to look a key up, the writer keeps
//! an index of the live keys in memory, built from that table when the
//! store opens (see [`ReplayIndex`]).
//!
//! Reads do not need the writer: each runs in its own read transaction,
//! lookups by key on the caller's thread (they take microseconds), scans on
//! tokio's blocking pool, since redb is synchronous.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, Table, TableDefinition, WriteTransaction,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::{oneshot, watch};

mod approvals;
mod authcode;
mod budget;
mod people;
mod tlog;

use super::files;
use super::{
    AgentRecord, AgentStore, AuditEvent, AuditLog, AuditQuery, AuditRetention, Cursor, Issuance,
    Issue, IssuedToken, OnceKey, OnceKind, ReplayCache, Revocation, RevocationStore, StoreError,
    StoreHealth, TokenLedger,
};

/// The file name under the data directory.
const FILE_NAME: &str = "tessera.redb";
/// How many expired entries one write drops at most, to bound its cost.
const PURGE_BATCH: usize = 64;
/// How many write operations one transaction (one fsync) carries at most.
const MAX_BATCH: usize = 256;

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
/// Replay key -> expiry in microseconds: the index that earlier versions
/// kept on disk, beside [`REPLAY_EXPIRY`]. Now kept in memory
/// ([`ReplayIndex`]); the table is deleted when the store opens.
const LEGACY_REPLAY: TableDefinition<&str, i64> = TableDefinition::new("replay");
/// (expiry in microseconds, replay key): the replay keys. Expiries cluster
/// just ahead of the current time, so writes land on the last pages and
/// purges take from the first.
const REPLAY_EXPIRY: TableDefinition<(i64, &str), ()> = TableDefinition::new("replay_expiry");
/// Audit sequence number -> JSON `AuditEvent`.
const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");

/// All stores in one redb database.
#[derive(Debug)]
pub struct RedbStore {
    db: Arc<Database>,
    /// How much of the audit log is kept.
    retention: AuditRetention,
    /// The last feed sequence number written, to wake long-polls. The
    /// writer updates it after each commit that added to the feed.
    feed_head: Arc<watch::Sender<u64>>,
    /// Where write operations are queued for the writer thread. `None` only
    /// while the store is being dropped.
    writes: Option<mpsc::Sender<Box<dyn Job>>>,
    /// The writer thread, joined on drop so that the database file is
    /// closed (and can be reopened) once the store is gone.
    writer: Option<JoinHandle<()>>,
}

impl RedbStore {
    /// Opens (or creates) `tessera.redb` under `data_dir`, creating the
    /// directory if it is missing, and starts the writer thread; with the
    /// default [`AuditRetention`].
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        Self::open_with(data_dir, AuditRetention::default())
    }

    /// Like [`open`](Self::open), keeping the audit log within `retention`.
    ///
    /// The directory is created with mode 0700 and the file with 0600; an
    /// existing directory or file that other users can access is tightened
    /// (see [`files`](super::files) for what happens when it cannot be).
    pub fn open_with(data_dir: &Path, retention: AuditRetention) -> Result<Self, StoreError> {
        let path = data_dir.join(FILE_NAME);
        files::report(data_dir, files::private_dir(data_dir)?);
        let (file, privacy) = files::open_private_file(&path)?;
        files::report(&path, privacy);
        let db = Database::builder().create_file(file).db()?;
        let txn = db.begin_write().db()?;
        txn.open_table(AGENTS).db()?;
        txn.open_table(TOKENS).db()?;
        txn.open_table(TOKENS_BY_AGENT).db()?;
        txn.open_table(TOKEN_EXPIRY).db()?;
        txn.open_table(REVOKED).db()?;
        let head = last_seq(&txn.open_table(FEED).db()?)?;
        txn.delete_table(LEGACY_REPLAY).db()?;
        let replay = ReplayIndex::load(&txn.open_table(REPLAY_EXPIRY).db()?)?;
        txn.open_table(AUDIT).db()?;
        txn.open_table(people::PEOPLE).db()?;
        authcode::create(&txn)?;
        approvals::create_tables(&txn)?;
        txn.open_table(tlog::TLOG_LEAVES).db()?;
        txn.open_table(tlog::TLOG_NODES).db()?;
        txn.open_table(budget::BUDGETS).db()?;
        txn.open_table(budget::RESERVATIONS).db()?;
        txn.open_table(budget::IDEMPOTENCY).db()?;
        txn.commit().db()?;
        let db = Arc::new(db);
        let feed_head = Arc::new(watch::Sender::new(head));
        let (writes, queue) = mpsc::channel();
        let writer = {
            let db = Arc::clone(&db);
            let feed_head = Arc::clone(&feed_head);
            std::thread::Builder::new()
                .name("tessera-redb-writer".to_owned())
                .spawn(move || write_loop(&db, &feed_head, replay, &queue))?
        };
        Ok(Self {
            db,
            retention,
            feed_head,
            writes: Some(writes),
            writer: Some(writer),
        })
    }

    /// Runs the point read `op` (one key) on the caller's thread.
    ///
    /// A read transaction never waits for the writer, and a lookup by key
    /// touches a few pages that are normally in redb's cache: it takes
    /// microseconds, less than handing it to the blocking pool and back
    /// (two thread wake-ups), which the token endpoint would otherwise pay
    /// on every request for the agent record.
    fn lookup<T>(
        &self,
        op: impl FnOnce(&Database) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        op(&self.db)
    }

    /// Runs `op` on the blocking pool (scans and other longer reads).
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

    /// Queues the write `op` for the writer thread and waits until the
    /// transaction that applied it is committed (durable).
    ///
    /// `op` may run more than once, each time in a fresh transaction: when
    /// another operation of its batch fails, the batch is aborted and
    /// applied again without it. Only the run that is committed counts.
    async fn write<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Fn(&WriteTransaction, &mut BatchNotes<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        self.write_with(true, op).await
    }

    /// Like [`write`](Self::write); with `durable` false the answer may come
    /// before the write reaches the disk: it becomes durable with the next
    /// durable commit (redb `Durability::None`), and is lost only if the
    /// process dies first.
    async fn write_with<T, F>(&self, durable: bool, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Fn(&WriteTransaction, &mut BatchNotes<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(Pending {
            op,
            durable,
            applied: None,
            reply,
        });
        let writes = self.writes.as_ref().ok_or_else(writer_gone)?;
        writes.send(job).map_err(|_| writer_gone())?;
        answer.await.map_err(|_| writer_gone())?
    }
}

impl Drop for RedbStore {
    fn drop(&mut self) {
        // Closing the channel ends the writer loop once the queued
        // operations are committed; joining it releases its handle on the
        // database, so the file can be reopened right after.
        drop(self.writes.take());
        if let Some(writer) = self.writer.take() {
            // A writer that panicked has nothing left to clean up.
            let _ = writer.join();
        }
    }
}

/// The error of a write whose writer thread is not running.
fn writer_gone() -> StoreError {
    StoreError::Unavailable("the embedded store's writer has stopped".to_owned())
}

/// The live replay keys and their expiries (microseconds), as committed:
/// the index of [`REPLAY_EXPIRY`] by key. Only the writer thread has it.
///
/// It holds each key until its expiry and one purge after (a key lives at
/// most as long as what it protects: a client assertion, 5 minutes; a
/// DPoP proof, minutes), about 100 bytes per key.
#[derive(Debug, Default)]
struct ReplayIndex {
    live: HashMap<Box<str>, i64>,
}

impl ReplayIndex {
    /// Reads every key of `table` (expired ones too: the next purges drop
    /// them from both).
    fn load(table: &impl ReadableTable<(i64, &'static str), ()>) -> Result<Self, StoreError> {
        let mut live = HashMap::new();
        for entry in table.iter().db()? {
            let (key, _) = entry.db()?;
            let (at, replay_key) = key.value();
            let slot = live.entry(Box::from(replay_key)).or_insert(at);
            *slot = (*slot).max(at);
        }
        Ok(Self { live })
    }

    /// Applies the changes of a committed transaction.
    fn apply(&mut self, changes: HashMap<Box<str>, Option<i64>>) {
        for (key, change) in changes {
            match change {
                Some(at) => self.live.insert(key, at),
                None => self.live.remove(&key),
            };
        }
    }
}

/// What a batch's operations tell the writer to do after the commit, and
/// what they read of the writer's in-memory state.
#[derive(Debug)]
struct BatchNotes<'a> {
    /// The highest feed sequence number added in this batch, if any.
    feed_head: Option<u64>,
    /// The replay keys as of the last commit.
    replay: &'a ReplayIndex,
    /// Replay keys taken (`Some(expiry)`) or dropped (`None`) in this
    /// transaction: applied to [`replay`](Self::replay) after the commit,
    /// forgotten if it is aborted.
    replay_changes: HashMap<Box<str>, Option<i64>>,
}

impl<'a> BatchNotes<'a> {
    fn new(replay: &'a ReplayIndex) -> Self {
        Self {
            feed_head: None,
            replay,
            replay_changes: HashMap::new(),
        }
    }

    /// The expiry of replay key `key` as this transaction sees it.
    fn replay_expiry(&self, key: &str) -> Option<i64> {
        match self.replay_changes.get(key) {
            Some(change) => *change,
            None => self.replay.live.get(key).copied(),
        }
    }
}

/// A queued write operation, with the caller waiting for its result.
trait Job: Send {
    /// Applies the operation in `txn`, keeping its result for
    /// [`answer`](Job::answer). On `Err`, the writer aborts `txn`.
    fn apply(
        &mut self,
        txn: &WriteTransaction,
        notes: &mut BatchNotes<'_>,
    ) -> Result<(), StoreError>;
    /// Answers the caller: with the kept result if `outcome` is `Ok` (the
    /// transaction holding it is committed), otherwise with the error.
    fn answer(self: Box<Self>, outcome: Result<(), StoreError>);
    /// Whether the caller needs the commit to be durable before its answer.
    fn durable(&self) -> bool;
}

/// A write operation `op` returning `T`, as a [`Job`].
struct Pending<T, F> {
    op: F,
    /// See [`Job::durable`].
    durable: bool,
    /// The result of the last run of `op`.
    applied: Option<T>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Job for Pending<T, F>
where
    T: Send,
    F: Fn(&WriteTransaction, &mut BatchNotes<'_>) -> Result<T, StoreError> + Send,
{
    fn apply(
        &mut self,
        txn: &WriteTransaction,
        notes: &mut BatchNotes<'_>,
    ) -> Result<(), StoreError> {
        self.applied = Some((self.op)(txn, notes)?);
        Ok(())
    }

    fn answer(self: Box<Self>, outcome: Result<(), StoreError>) {
        let result = match (outcome, self.applied) {
            (Ok(()), Some(value)) => Ok(value),
            (Err(e), _) => Err(e),
            (Ok(()), None) => Err(StoreError::Backend(
                "a write was answered before it was applied".to_owned(),
            )),
        };
        // The caller may have stopped waiting; the write stands anyway.
        let _ = self.reply.send(result);
    }

    fn durable(&self) -> bool {
        self.durable
    }
}

/// The writer thread: commits queued operations in batches until the
/// store's sender is dropped.
///
/// A batch is the first pending operation plus every one already queued
/// (up to [`MAX_BATCH`]); the writer never waits for more. Under load the
/// operations that arrive during one commit make up the next batch. (An
/// earlier version held a short batch open for up to half a commit time,
/// expecting callers to follow up; with one operation per minted token that
/// wait cost more throughput than the larger batches gained: see the
/// issuer section of docs/performance.md.)
fn write_loop(
    db: &Database,
    feed_head: &watch::Sender<u64>,
    mut replay: ReplayIndex,
    queue: &mpsc::Receiver<Box<dyn Job>>,
) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        drain_queued(queue, &mut batch);
        commit_batch(db, feed_head, &mut replay, batch);
    }
}

/// Moves operations already queued into `batch`, up to [`MAX_BATCH`].
fn drain_queued(queue: &mpsc::Receiver<Box<dyn Job>>, batch: &mut Vec<Box<dyn Job>>) {
    while batch.len() < MAX_BATCH {
        match queue.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
}

/// Applies `batch` in order in one write transaction, commits it, wakes
/// feed long-polls if the feed grew, then answers every caller.
///
/// An operation that fails is answered with its error and removed; the
/// transaction is aborted (so none of its partial writes remain) and the
/// others are applied again in a new one. Each retry removes an operation,
/// so this ends.
fn commit_batch(
    db: &Database,
    feed_head: &watch::Sender<u64>,
    replay: &mut ReplayIndex,
    mut batch: Vec<Box<dyn Job>>,
) {
    while !batch.is_empty() {
        let durable = batch.iter().any(|job| job.durable());
        let txn = match write_txn(db, durable) {
            Ok(txn) => txn,
            Err(e) => {
                fail_all(batch, &e);
                return;
            }
        };
        let mut notes = BatchNotes::new(replay);
        let mut failed = None;
        for (index, job) in batch.iter_mut().enumerate() {
            if let Err(e) = job.apply(&txn, &mut notes) {
                failed = Some((index, e));
                break;
            }
        }
        if let Some((index, e)) = failed {
            // Dropping an uncommitted transaction aborts it too; an error
            // here changes nothing for the retry.
            let _ = txn.abort();
            batch.remove(index).answer(Err(e));
            continue;
        }
        let BatchNotes {
            feed_head: added_to_feed,
            replay_changes,
            ..
        } = notes;
        if let Err(e) = txn.commit().db() {
            // Whether a failed commit reached the disk is not known: keep
            // the keys it took as taken (a retry is refused, never let
            // through twice), and those it dropped as they were. A key
            // that did not reach the disk is never purged from the index
            // (it is free again once it expires); it costs its memory
            // until the next restart, and only on a failing disk.
            replay.apply(
                replay_changes
                    .into_iter()
                    .filter(|(_, change)| change.is_some())
                    .collect(),
            );
            fail_all(batch, &e);
            return;
        }
        replay.apply(replay_changes);
        if let Some(seq) = added_to_feed {
            feed_head.send_if_modified(|head| {
                let newer = seq > *head;
                if newer {
                    *head = seq;
                }
                newer
            });
        }
        for job in batch {
            job.answer(Ok(()));
        }
        return;
    }
}

/// Answers every operation of `batch` with (a copy of) `error`.
fn fail_all(batch: Vec<Box<dyn Job>>, error: &StoreError) {
    for job in batch {
        job.answer(Err(copy_error(error)));
    }
}

/// A copy of `error` for another caller ([`StoreError`] is not `Clone`
/// because `std::io::Error` is not).
fn copy_error(error: &StoreError) -> StoreError {
    match error {
        StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
        StoreError::Corrupt(m) => StoreError::Corrupt(m.clone()),
        StoreError::Decode(m) => StoreError::Decode(m.clone()),
        StoreError::InvalidCursor(m) => StoreError::InvalidCursor(m.clone()),
        StoreError::Limit(m) => StoreError::Limit(m.clone()),
        StoreError::Io(e) => StoreError::Io(std::io::Error::new(e.kind(), e.to_string())),
        StoreError::Backend(m) => StoreError::Backend(m.clone()),
    }
}

/// Starts a write transaction that commits with immediate durability, or,
/// when no operation in it needs that, with none (made durable by the next
/// immediate commit).
fn write_txn(db: &Database, durable: bool) -> Result<WriteTransaction, StoreError> {
    let mut txn = db.begin_write().db()?;
    let level = if durable {
        Durability::Immediate
    } else {
        Durability::None
    };
    txn.set_durability(level).db()?;
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

/// The ledger's tables, open in one write transaction.
struct TokenTables<'txn> {
    tokens: Table<'txn, &'static str, &'static [u8]>,
    by_agent: Table<'txn, (&'static str, &'static str), i64>,
    expiry: Table<'txn, (i64, &'static str), ()>,
}

impl<'txn> TokenTables<'txn> {
    fn open(txn: &'txn WriteTransaction) -> Result<Self, StoreError> {
        Ok(Self {
            tokens: txn.open_table(TOKENS).db()?,
            by_agent: txn.open_table(TOKENS_BY_AGENT).db()?,
            expiry: txn.open_table(TOKEN_EXPIRY).db()?,
        })
    }

    /// Records `token` (JSON `bytes`), replacing the entry with its id,
    /// then drops some expired tokens (minting time is the freshest `now`
    /// the caller knows).
    fn record(&mut self, token: &IssuedToken, bytes: &[u8]) -> Result<(), StoreError> {
        let expires = micros(token.expires_at);
        let previous = self
            .tokens
            .insert(token.token_id.as_str(), bytes)
            .db()?
            .map(|previous| decode::<IssuedToken>(previous.value()))
            .transpose()?;
        if let Some(old) = previous {
            self.by_agent
                .remove((old.agent.as_str(), old.token_id.as_str()))
                .db()?;
            self.expiry
                .remove((micros(old.expires_at), old.token_id.as_str()))
                .db()?;
        }
        self.by_agent
            .insert((token.agent.as_str(), token.token_id.as_str()), expires)
            .db()?;
        self.expiry
            .insert((expires, token.token_id.as_str()), ())
            .db()?;
        self.purge(micros(token.issued_at))
    }

    /// Drops up to `PURGE_BATCH` expired tokens (expiry before `now`).
    fn purge(&mut self, now: i64) -> Result<(), StoreError> {
        let mut expired = Vec::new();
        for entry in self.expiry.range(..(now, "")).db()?.take(PURGE_BATCH) {
            let (key, _) = entry.db()?;
            let (at, token_id) = key.value();
            expired.push((at, token_id.to_owned()));
        }
        for (at, token_id) in expired {
            self.expiry.remove((at, token_id.as_str())).db()?;
            let record = self.tokens.remove(token_id.as_str()).db()?;
            if let Some(record) = record {
                let token: IssuedToken = decode(record.value())?;
                self.by_agent
                    .remove((token.agent.as_str(), token_id.as_str()))
                    .db()?;
            }
        }
        Ok(())
    }
}

/// The replay keys' table, open in one write transaction, with the
/// in-memory index as that transaction sees it.
struct ReplayTables<'txn, 'n, 'a> {
    expiry: Table<'txn, (i64, &'static str), ()>,
    notes: &'n mut BatchNotes<'a>,
}

impl<'txn, 'n, 'a> ReplayTables<'txn, 'n, 'a> {
    fn open(
        txn: &'txn WriteTransaction,
        notes: &'n mut BatchNotes<'a>,
    ) -> Result<Self, StoreError> {
        Ok(Self {
            expiry: txn.open_table(REPLAY_EXPIRY).db()?,
            notes,
        })
    }

    /// Takes `key` until `expires` (microseconds) unless it is taken and
    /// has not expired at `now`; returns whether it took it.
    fn take(&mut self, key: &str, expires: i64, now: i64) -> Result<bool, StoreError> {
        match self.notes.replay_expiry(key) {
            Some(at) if at > now => return Ok(false),
            Some(at) => {
                self.expiry.remove((at, key)).db()?;
            }
            None => {}
        }
        self.expiry.insert((expires, key), ()).db()?;
        self.notes
            .replay_changes
            .insert(Box::from(key), Some(expires));
        Ok(true)
    }

    /// Drops up to `PURGE_BATCH` keys that expired at or before `now`.
    fn purge(&mut self, now: i64) -> Result<(), StoreError> {
        let mut expired = Vec::new();
        for entry in self
            .expiry
            .range(..(now.saturating_add(1), ""))
            .db()?
            .take(PURGE_BATCH)
        {
            let (key, _) = entry.db()?;
            let (at, replay_key) = key.value();
            expired.push((at, replay_key.to_owned()));
        }
        for (at, replay_key) in expired {
            self.expiry.remove((at, replay_key.as_str())).db()?;
            // The index forgets the key only if this entry is its current
            // one (a key taken again after expiring has a later entry).
            if self.notes.replay_expiry(&replay_key) == Some(at) {
                self.notes
                    .replay_changes
                    .insert(Box::from(replay_key.as_str()), None);
            }
        }
        Ok(())
    }
}

/// Appends an audit event (JSON `bytes`, recorded at `at`), then drops
/// what `retention` no longer keeps; returns its sequence number.
fn append_audit(
    txn: &WriteTransaction,
    bytes: &[u8],
    leaf: &[u8],
    at: DateTime<Utc>,
    retention: AuditRetention,
) -> Result<u64, StoreError> {
    if super::tree::AUDIT_TREE_ON {
        tlog::append_leaf(txn, leaf)?;
    }
    let mut table = txn.open_table(AUDIT).db()?;
    let seq = last_seq(&table)?
        .checked_add(1)
        .ok_or_else(|| StoreError::Backend("audit sequence numbers exhausted".to_owned()))?;
    table.insert(seq, bytes).db()?;
    trim_audit(&mut table, seq, at, retention)?;
    Ok(seq)
}

/// Drops up to [`PURGE_BATCH`] of the oldest audit events: those beyond
/// `retention.max_events` counting back from `newest`, then those recorded
/// before `at - retention.max_age`. Never drops `newest` itself, so the
/// table is never emptied and sequence numbers keep growing.
///
/// Events are only ever removed from the start, so the sequence numbers
/// kept are contiguous and the count is `newest - first + 1`.
fn trim_audit(
    table: &mut Table<'_, u64, &'static [u8]>,
    newest: u64,
    at: DateTime<Utc>,
    retention: AuditRetention,
) -> Result<(), StoreError> {
    let keep_from = newest.saturating_sub(retention.max_events.saturating_sub(1));
    let cutoff = retention
        .max_age
        .and_then(|age| chrono::TimeDelta::from_std(age).ok())
        .and_then(|age| at.checked_sub_signed(age));
    let mut dropped = Vec::new();
    for entry in table.range(..newest).db()?.take(PURGE_BATCH) {
        let (seq, value) = entry.db()?;
        let seq = seq.value();
        // An event that cannot be read is kept (the count bound still
        // drops it in its turn).
        let too_old =
            || cutoff.is_some_and(|cutoff| recorded_at(value.value()).is_some_and(|t| t < cutoff));
        if seq >= keep_from && !too_old() {
            break;
        }
        dropped.push(seq);
    }
    for seq in dropped {
        table.remove(seq).db()?;
    }
    Ok(())
}

/// The leaf bytes of `event` in the audit tree.
/// Empty in a build without the tree, whose appends skip it.
fn leaf_of(event: &AuditEvent) -> Result<Vec<u8>, StoreError> {
    if !super::tree::AUDIT_TREE_ON {
        return Ok(Vec::new());
    }
    crate::tlog::record::leaf_bytes(event).map_err(|e| StoreError::Decode(e.to_string()))
}

/// When a stored audit event (JSON) was recorded.
fn recorded_at(bytes: &[u8]) -> Option<DateTime<Utc>> {
    #[derive(serde::Deserialize)]
    struct At {
        at: DateTime<Utc>,
    }
    serde_json::from_slice::<At>(bytes).ok().map(|a| a.at)
}

#[async_trait]
impl AgentStore for RedbStore {
    async fn put(&self, agent: &AgentRecord) -> Result<(), StoreError> {
        let id = agent.id.clone();
        let bytes = encode(agent)?;
        self.write(move |txn, _| {
            txn.open_table(AGENTS)
                .db()?
                .insert(id.as_str(), bytes.as_slice())
                .db()?;
            Ok(())
        })
        .await
    }

    async fn get(&self, id: &str) -> Result<Option<AgentRecord>, StoreError> {
        self.lookup(|db| {
            let txn = db.begin_read().db()?;
            let table = txn.open_table(AGENTS).db()?;
            let found = table.get(id).db()?;
            found.map(|v| decode(v.value())).transpose()
        })
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

    async fn list_page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AgentRecord>, StoreError> {
        let after = after.map(str::to_owned);
        self.run(move |db| {
            let txn = db.begin_read().db()?;
            let table = txn.open_table(AGENTS).db()?;
            let from = after.as_deref().unwrap_or("");
            let mut agents = Vec::new();
            for entry in table.range::<&str>(from..).db()? {
                if agents.len() >= limit {
                    break;
                }
                let (key, value) = entry.db()?;
                if after.as_deref() == Some(key.value()) {
                    continue;
                }
                agents.push(decode(value.value())?);
            }
            Ok(agents)
        })
        .await
    }

    async fn update(&self, agent: &AgentRecord) -> Result<Option<AgentRecord>, StoreError> {
        let agent = agent.clone();
        self.write(move |txn, _| {
            let mut agent = agent.clone();
            let mut table = txn.open_table(AGENTS).db()?;
            let found = table.get(agent.id.as_str()).db()?;
            let Some(stored) = found
                .map(|v| decode::<AgentRecord>(v.value()))
                .transpose()?
            else {
                return Ok(None);
            };
            agent.disabled = stored.disabled;
            agent.created_at = stored.created_at;
            table
                .insert(agent.id.as_str(), encode(&agent)?.as_slice())
                .db()?;
            Ok(Some(agent))
        })
        .await
    }

    async fn disable(&self, id: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.write(move |txn, _| {
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
        self.write(move |txn, _| TokenTables::open(txn)?.record(&token, &bytes))
            .await
    }

    async fn get(&self, token_id: &str) -> Result<Option<IssuedToken>, StoreError> {
        self.lookup(|db| {
            let txn = db.begin_read().db()?;
            let table = txn.open_table(TOKENS).db()?;
            let found = table.get(token_id).db()?;
            found.map(|v| decode(v.value())).transpose()
        })
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
        // The writer wakes feed long-polls after the commit (`notes`).
        let seq = self
            .write(move |txn, notes| {
                let mut revoked = txn.open_table(REVOKED).db()?;
                let existing = revoked.get(id.as_str()).db()?.map(|v| v.value());
                if let Some(seq) = existing {
                    return Ok(seq);
                }
                let mut feed = txn.open_table(FEED).db()?;
                let seq = last_seq(&feed)? + 1;
                feed.insert(seq, bytes.as_slice()).db()?;
                revoked.insert(id.as_str(), seq).db()?;
                notes.feed_head = Some(seq);
                Ok(seq)
            })
            .await?;
        Ok(cursor_of(seq))
    }

    async fn is_revoked(&self, revocation_id: &str) -> Result<bool, StoreError> {
        self.lookup(|db| {
            let txn = db.begin_read().db()?;
            let table = txn.open_table(REVOKED).db()?;
            Ok(table.get(revocation_id).db()?.is_some())
        })
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

/// Replay keys are written without their own fsync: the issuer never acts on
/// an accepted key (issues a token, records a revocation) without a durable
/// write of its own, and redb makes the key durable with that commit. If the
/// process dies before, nothing was issued for the key, so accepting it again
/// after a restart still issues at most one token per key.
// (The trait methods' signatures repeat in each store: the same contract.)
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
        self.write_with(false, move |txn, notes| {
            let mut replay = ReplayTables::open(txn, notes)?;
            if !replay.take(&key, expires, now)? {
                return Ok(false);
            }
            replay.purge(now)?;
            Ok(true)
        })
        .await
    }
}

/// One write job per mint: the one-time keys, the ledger entry and the
/// audit event in the same transaction, committed with immediate
/// durability (one fsync, shared with the rest of the batch).
// (The signature repeats the trait's default method: the same contract.)
#[async_trait]
impl Issuance for RedbStore {
    async fn record_issue(
        &self,
        keys: &[OnceKey],
        token: &IssuedToken,
        event: &AuditEvent,
        now: DateTime<Utc>,
    ) -> Result<Issue, StoreError> {
        let now = micros(now);
        let keys: Vec<(OnceKind, String, i64)> = keys
            .iter()
            .map(|k| (k.kind, k.key.clone(), micros(k.expires_at)))
            .collect();
        let token = token.clone();
        let token_bytes = encode(&token)?;
        let event_bytes = encode(event)?;
        let leaf = leaf_of(event)?;
        let (at, retention) = (event.at, self.retention);
        self.write(move |txn, notes| {
            {
                let mut replay = ReplayTables::open(txn, notes)?;
                for (kind, key, expires) in &keys {
                    // A key already expired is never accepted (as in `insert_once`).
                    if *expires <= now || !replay.take(key, *expires, now)? {
                        return Ok(Issue::Replayed(*kind));
                    }
                }
                replay.purge(now)?;
            }
            TokenTables::open(txn)?.record(&token, &token_bytes)?;
            Ok(Issue::Recorded(cursor_of(append_audit(
                txn,
                &event_bytes,
                &leaf,
                at,
                retention,
            )?)))
        })
        .await
    }
}

#[async_trait]
impl AuditLog for RedbStore {
    async fn append(&self, event: &AuditEvent) -> Result<Cursor, StoreError> {
        let bytes = encode(event)?;
        let leaf = leaf_of(event)?;
        let (at, retention) = (event.at, self.retention);
        self.write(move |txn, _| Ok(cursor_of(append_audit(txn, &bytes, &leaf, at, retention)?)))
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

#[cfg(test)]
mod tests {
    use super::*;
    use redb::ReadableTableMetadata;

    /// A job writing `key` into the replay table, failing after the write
    /// when `fail` is set; and the receiver of its answer.
    fn replay_job(
        key: &'static str,
        fail: bool,
    ) -> (Box<dyn Job>, oneshot::Receiver<Result<bool, StoreError>>) {
        let (reply, answer) = oneshot::channel();
        let op = move |txn: &WriteTransaction, notes: &mut BatchNotes<'_>| {
            let fresh = ReplayTables::open(txn, notes)?.take(key, 10, 0)?;
            if fail {
                return Err(StoreError::Decode(format!("{key} failed")));
            }
            Ok(fresh)
        };
        let job = Box::new(Pending {
            op,
            durable: true,
            applied: None,
            reply,
        });
        (job, answer)
    }

    fn replay_keys(db: &Database) -> Vec<String> {
        let txn = db.begin_read().unwrap();
        let table = txn.open_table(REPLAY_EXPIRY).unwrap();
        table
            .iter()
            .unwrap()
            .map(|e| e.unwrap().0.value().1.to_owned())
            .collect()
    }

    #[test]
    fn a_failed_operation_fails_alone_and_leaves_no_write() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path()).unwrap();
        let (a, mut a_answer) = replay_job("a", false);
        let (b, mut b_answer) = replay_job("b", true);
        let (again, mut again_answer) = replay_job("a", false);
        let (c, mut c_answer) = replay_job("c", false);
        let mut index = ReplayIndex::default();
        commit_batch(
            &store.db,
            &store.feed_head,
            &mut index,
            vec![a, b, again, c],
        );

        assert!(a_answer.try_recv().unwrap().unwrap());
        assert!(matches!(
            b_answer.try_recv().unwrap(),
            Err(StoreError::Decode(_))
        ));
        // Later operations of the batch see the earlier ones.
        assert!(!again_answer.try_recv().unwrap().unwrap());
        assert!(c_answer.try_recv().unwrap().unwrap());
        assert_eq!(replay_keys(&store.db), ["a", "c"]);
        let mut indexed: Vec<&str> = index.live.keys().map(|k| &**k).collect();
        indexed.sort_unstable();
        assert_eq!(indexed, ["a", "c"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stored_agent_that_no_longer_parses_is_a_decode_error_never_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path()).unwrap();
        let key = format!("ed25519/{}", "ab".repeat(32));
        let good = format!(
            r#"{{"id":"agent://a","public_key":"{key}","description":"","ceiling":{{"actions":["read"],"resources":["docs/*"],"audiences":[],"max_ttl_secs":60}},"disabled":false,"created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z"}}"#
        );
        // A bare `*` is no pattern any build accepts.
        let bad = good.replace(r#""docs/*""#, r#""*""#);
        {
            let txn = store.db.begin_write().unwrap();
            let mut agents = txn.open_table(AGENTS).unwrap();
            agents.insert("agent://a", good.as_bytes()).unwrap();
            agents.insert("agent://b", bad.as_bytes()).unwrap();
            drop(agents);
            txn.commit().unwrap();
        }
        let a = AgentStore::get(&store, "agent://a").await.unwrap().unwrap();
        assert_eq!(a.public_key.to_string(), key);
        assert_eq!(a.ceiling.max_ttl, Duration::from_secs(60));
        let b = AgentStore::get(&store, "agent://b").await;
        assert!(matches!(b, Err(StoreError::Decode(_))), "{b:?}");
        let all = AgentStore::list(&store).await;
        assert!(matches!(all, Err(StoreError::Decode(_))), "{all:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_record_that_cannot_be_decoded_fails_only_its_own_write() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(RedbStore::open(dir.path()).unwrap());
        {
            let txn = store.db.begin_write().unwrap();
            txn.open_table(TOKENS)
                .unwrap()
                .insert("tok-bad", b"not json".as_slice())
                .unwrap();
            txn.commit().unwrap();
        }
        let now = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap();
        let token = IssuedToken {
            token_id: "tok-bad".to_owned(),
            agent: crate::token::AgentId::parse("agent://a").unwrap(),
            revocation_id: "ff".to_owned(),
            expires_at: now + chrono::TimeDelta::seconds(60),
            issued_at: now,
        };
        let writes: Vec<_> = (0..16)
            .map(|n| {
                let store = Arc::clone(&store);
                let token = token.clone();
                tokio::spawn(async move {
                    if n == 7 {
                        store.record(&token).await.map(|()| false)
                    } else {
                        store
                            .insert_once(
                                &format!("k{n}"),
                                now + chrono::TimeDelta::seconds(60),
                                now,
                            )
                            .await
                    }
                })
            })
            .collect();
        for (n, write) in writes.into_iter().enumerate() {
            let result = write.await.unwrap();
            if n == 7 {
                assert!(matches!(result, Err(StoreError::Decode(_))), "{result:?}");
            } else {
                assert!(result.unwrap());
            }
        }
        // The failed record left nothing behind.
        let txn = store.db.begin_read().unwrap();
        let by_agent = txn.open_table(TOKENS_BY_AGENT).unwrap();
        assert_eq!(by_agent.len().unwrap(), 0);
        assert_eq!(replay_keys(&store.db).len(), 15);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replay_keys_of_the_earlier_layout_are_kept_and_its_index_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let now = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap();
        let live = micros(now + chrono::TimeDelta::seconds(60));
        let gone = micros(now - chrono::TimeDelta::seconds(1));
        {
            // A data directory as the earlier version left it: each key in
            // both the key index and the expiry table.
            let db = Database::create(dir.path().join(FILE_NAME)).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut index = txn.open_table(LEGACY_REPLAY).unwrap();
                let mut expiry = txn.open_table(REPLAY_EXPIRY).unwrap();
                for (key, at) in [("jti:live", live), ("jti:gone", gone)] {
                    index.insert(key, at).unwrap();
                    expiry.insert((at, key), ()).unwrap();
                }
            }
            txn.commit().unwrap();
        }
        let store = RedbStore::open(dir.path()).unwrap();
        {
            let txn = store.db.begin_read().unwrap();
            assert!(matches!(
                txn.open_table(LEGACY_REPLAY),
                Err(redb::TableError::TableDoesNotExist(_))
            ));
        }
        let later = now + chrono::TimeDelta::seconds(120);
        // Still taken until it expires; the expired one is free again.
        assert!(!store.insert_once("jti:live", later, now).await.unwrap());
        assert!(store.insert_once("jti:gone", later, now).await.unwrap());
        assert!(!store.insert_once("jti:gone", later, now).await.unwrap());
        // The purge at `now` dropped the expired entry of "jti:gone" but
        // not its new one.
        assert_eq!(replay_keys(&store.db), ["jti:live", "jti:gone"]);
    }
}
