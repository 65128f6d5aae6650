//! The verifier's decisions in the issuer's audit log, off the request path.
//!
//! [`AuditSink::record`] never waits: it puts the event on a bounded queue
//! and counts it as dropped when the queue is full. A task takes up to
//! `batch` events at a time and appends them to the issuer's Redis audit
//! stream (`<prefix>{audit}:audit`, docs/storage.md; field `event`: JSON of an [`AuditEvent`], the
//! format the issuer's `GET /v1/audit` reads) in one `MULTI`/`EXEC`
//! pipeline. While Redis is down the task retries the same batch with
//! backoff and takes nothing new, so memory stays bounded by the queue
//! plus one batch; events arriving meanwhile are dropped and counted.
//!
//! Delivery is at least once: if the connection drops after Redis ran a
//! batch but before its answer arrived, the batch is written again.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::follow::{redact_url, Backoff, Retry};
use super::redis_conn::{Conn, Target};
use crate::records::redis::{self as redis_layout, LayoutError, RedisLayout};
use crate::records::{AuditEvent, AuditKind, AuditOutcome};
use crate::token::Person;

/// An authorization decision to record: who asked for what, and the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionAudit {
    /// When the decision was made.
    pub at: DateTime<Utc>,
    /// The agent that acted (the last holder of the chain), if known.
    pub agent: Option<String>,
    /// The token id, if the token could be read.
    pub token_id: Option<String>,
    /// The action asked for; empty for a refusal before the action was
    /// known ([`Verifier::authenticate`](super::Verifier::authenticate),
    /// the layer's deferred scope).
    pub action: String,
    /// The resource asked for; empty when the action is.
    pub resource: String,
    /// Whether the request was allowed.
    pub granted: bool,
    /// Why it was denied (the deny reason), if it was.
    pub reason: Option<String>,
    /// Who acted through whom: the earlier actors (of a token exchanged
    /// from another one for the same person), the token's agent, then each
    /// sub-agent.
    pub chain: Vec<String>,
    /// The person the token acts for, if any (from its authority block).
    pub person: Option<Person>,
    /// The caller's address, if known.
    pub remote_addr: Option<String>,
}

impl From<DecisionAudit> for AuditEvent {
    /// A [`AuditKind::Decision`] event: capability `"<action> <resource>"`
    /// (none when the action was not known yet), outcome `granted` or
    /// `denied`.
    fn from(d: DecisionAudit) -> Self {
        AuditEvent {
            at: d.at,
            kind: AuditKind::Decision,
            agent: d.agent,
            token_id: d.token_id,
            capability: (!d.action.is_empty()).then(|| format!("{} {}", d.action, d.resource)),
            outcome: if d.granted {
                AuditOutcome::Granted
            } else {
                AuditOutcome::Denied
            },
            reason: d.reason,
            remote_addr: d.remote_addr,
            chain: d.chain,
            person: d.person,
            amount: None,
            approval_id: None,
            revocation_ids: Vec::new(),
            service: None,
        }
    }
}

/// Settings of an [`AuditSink`].
#[derive(Clone)]
pub struct AuditSinkConfig {
    /// The issuer's Redis, `redis://[user:password@]host:port[/db]`, or
    /// `redis+cluster://[user:password@]host:port[,host:port…]` for a Redis
    /// Cluster (every audit entry is on one key, so one node).
    pub url: String,
    /// The issuer's key prefix (default `tessera:`); the stream is `<prefix>{audit}:audit`.
    pub key_prefix: String,
    /// Events waiting at most (default 10,000); more are dropped.
    pub capacity: usize,
    /// Events per write (default 256).
    pub batch: usize,
    /// Approximate length the stream is capped at (`XADD MAXLEN ~`,
    /// default 1,000,000, as the issuer).
    pub max_len: usize,
    /// Connection and answer timeout (default 2 s).
    pub timeout: Duration,
    /// Waits between attempts while Redis is down.
    pub backoff: Backoff,
    /// How long shutting down may spend flushing (default 5 s); what is
    /// not written by then is dropped and counted.
    pub flush_within: Duration,
}

impl fmt::Debug for AuditSinkConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditSinkConfig")
            .field("url", &redact_url(&self.url))
            .field("key_prefix", &self.key_prefix)
            .field("capacity", &self.capacity)
            .field("batch", &self.batch)
            .field("max_len", &self.max_len)
            .field("timeout", &self.timeout)
            .field("backoff", &self.backoff)
            .field("flush_within", &self.flush_within)
            .finish()
    }
}

impl AuditSinkConfig {
    /// Defaults for `url` (see each field).
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            key_prefix: "tessera:".to_owned(),
            capacity: 10_000,
            batch: 256,
            max_len: 1_000_000,
            timeout: Duration::from_secs(2),
            backoff: Backoff::default(),
            flush_within: Duration::from_secs(5),
        }
    }
}

/// Why an audit sink could not start.
#[derive(Debug, thiserror::Error)]
pub enum AuditSinkError {
    /// The sink runs a tokio task: start it inside a runtime.
    #[error("the audit sink must be started inside a tokio runtime")]
    NoRuntime,
    /// The Redis URL could not be parsed (the message never holds the password).
    #[error("invalid Redis URL: {0}")]
    RedisUrl(String),
    /// The key prefix would change the keys' Redis Cluster hash tags.
    #[error(transparent)]
    KeyPrefix(#[from] LayoutError),
}

/// The sink's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuditStats {
    /// Events accepted by [`AuditSink::record`].
    pub accepted: u64,
    /// Events written to Redis.
    pub written: u64,
    /// Events dropped: queue full, sink closed, or not written before the
    /// flush deadline.
    pub dropped: u64,
    /// Writes that failed (each retried).
    pub failed_writes: u64,
}

#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    written: AtomicU64,
    dropped: AtomicU64,
    failed_writes: AtomicU64,
}

/// Records decisions into the issuer's audit stream in the background.
/// Share it behind an `Arc`; [`shutdown`](Self::shutdown) flushes.
/// Dropping it flushes too, in the background, for at most `flush_within`.
pub struct AuditSink {
    tx: mpsc::Sender<AuditEvent>,
    counters: Arc<Counters>,
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl fmt::Debug for AuditSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditSink")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl AuditSink {
    /// Starts the writer task on the current tokio runtime. Connecting
    /// happens in the task: a sink can start while Redis is down.
    pub fn spawn(config: AuditSinkConfig) -> Result<Self, AuditSinkError> {
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|_| AuditSinkError::NoRuntime)?;
        let target = Target::open(&config.url, config.timeout, config.timeout).map_err(|kind| {
            AuditSinkError::RedisUrl(format!("{} ({kind:?})", redact_url(&config.url)))
        })?;
        let layout = RedisLayout::new(config.key_prefix.clone())?;
        let (tx, rx) = mpsc::channel(config.capacity.max(1));
        let (stop, stopping) = watch::channel(false);
        let counters = Arc::new(Counters::default());
        let writer = Writer {
            stream: layout.audit(),
            batch: config.batch.max(1),
            target,
            conn: None,
            counters: counters.clone(),
            config,
        };
        let task = runtime.spawn(writer.run(rx, stopping));
        Ok(Self {
            tx,
            counters,
            stop,
            task: Mutex::new(Some(task)),
        })
    }

    /// Queues `event` without waiting. Returns `false` (and counts a drop)
    /// when the queue is full or the sink is shut down.
    pub fn record(&self, event: impl Into<AuditEvent>) -> bool {
        match self.tx.try_send(event.into()) {
            Ok(()) => {
                self.counters.accepted.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(_) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> AuditStats {
        let c = &self.counters;
        AuditStats {
            accepted: c.accepted.load(Ordering::Relaxed),
            written: c.written.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            failed_writes: c.failed_writes.load(Ordering::Relaxed),
        }
    }

    /// Stops taking events, writes what is queued (for at most
    /// `flush_within`) and waits for the task. Later calls return at once.
    pub async fn shutdown(&self) -> AuditStats {
        let _ = self.stop.send(true);
        let task = match self.task.lock() {
            Ok(mut slot) => slot.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(task) = task {
            let _ = task.await;
        }
        self.stats()
    }
}

struct Writer {
    config: AuditSinkConfig,
    target: Target,
    conn: Option<Conn>,
    stream: String,
    batch: usize,
    counters: Arc<Counters>,
}

impl Writer {
    async fn run(
        mut self,
        mut rx: mpsc::Receiver<AuditEvent>,
        mut stopping: watch::Receiver<bool>,
    ) {
        let mut buf: Vec<AuditEvent> = Vec::with_capacity(self.batch);
        let mut retry = Retry::new(self.config.backoff);
        // Set once the queue is closed (shutdown, or the sink dropped).
        let mut give_up_at: Option<Instant> = None;
        loop {
            if rx.is_closed() && give_up_at.is_none() {
                give_up_at = Some(Instant::now() + self.config.flush_within);
            }
            if buf.is_empty() {
                tokio::select! {
                    biased;
                    n = rx.recv_many(&mut buf, self.batch) => {
                        if n == 0 {
                            break; // closed and drained
                        }
                    }
                    _ = stopping.changed(), if give_up_at.is_none() => {
                        rx.close();
                        continue;
                    }
                }
            }
            match self.write(&buf).await {
                Ok(written) => {
                    self.counters.written.fetch_add(written, Ordering::Relaxed);
                    buf.clear();
                    let failures = retry.succeed();
                    if failures > 0 {
                        tracing::info!(failures, "audit sink is writing to Redis again");
                    }
                }
                Err(problem) => {
                    self.conn = None;
                    self.counters.failed_writes.fetch_add(1, Ordering::Relaxed);
                    let mut wait = retry.fail();
                    if retry.worth_warning() {
                        tracing::warn!(
                            redis = %redact_url(&self.config.url),
                            failures = retry.failures,
                            pending = buf.len() + rx.len(),
                            error = %problem,
                            "audit sink cannot write decisions; retrying"
                        );
                    }
                    if let Some(deadline) = give_up_at {
                        let now = Instant::now();
                        if now >= deadline {
                            self.give_up(&mut buf, &mut rx);
                            break;
                        }
                        wait = wait.min(deadline - now);
                    }
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        _ = stopping.changed(), if give_up_at.is_none() => rx.close(),
                    }
                }
            }
        }
    }

    /// Counts everything still held as dropped.
    fn give_up(&self, buf: &mut Vec<AuditEvent>, rx: &mut mpsc::Receiver<AuditEvent>) {
        let mut lost = buf.len() as u64;
        buf.clear();
        while rx.try_recv().is_ok() {
            lost += 1;
        }
        self.counters.dropped.fetch_add(lost, Ordering::Relaxed);
        tracing::error!(
            lost,
            "audit sink gave up flushing decisions to Redis at shutdown"
        );
    }

    /// Appends `events` in one `MULTI`/`EXEC` pipeline; returns how many.
    async fn write(&mut self, events: &[AuditEvent]) -> Result<u64, String> {
        let mut pipe = ::redis::pipe();
        pipe.atomic();
        let mut written = 0;
        for event in events {
            // These records always encode; a failure would be a bug, so the
            // event is counted as dropped rather than retried forever.
            let Ok(json) = redis_layout::encode_audit(event) else {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            pipe.cmd("XADD")
                .arg(&self.stream)
                .arg(&redis_layout::max_len_args(self.config.max_len)[..])
                .arg("*")
                .arg(redis_layout::AUDIT_FIELD)
                .arg(json)
                .ignore();
            written += 1;
        }
        let bound = self.config.timeout * 2;
        let attempt = async {
            let conn = match &mut self.conn {
                Some(conn) => conn,
                None => {
                    let conn = self
                        .target
                        .connect(self.config.timeout, self.config.timeout)
                        .await
                        .map_err(|e| e.to_string())?;
                    self.conn.insert(conn)
                }
            };
            pipe.query_async::<()>(conn)
                .await
                .map_err(|e| e.to_string())?;
            Ok(written)
        };
        match tokio::time::timeout(bound, attempt).await {
            Ok(result) => result,
            Err(_) => Err(format!(
                "Redis did not answer within {} ms",
                bound.as_millis()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decision_becomes_a_decision_event() {
        let d = DecisionAudit {
            at: DateTime::UNIX_EPOCH,
            agent: Some("agent://acme/a".into()),
            token_id: Some("t1".into()),
            action: "docs:read".into(),
            resource: "docs/a b".into(),
            granted: false,
            reason: Some("revoked".into()),
            chain: vec!["agent://acme/a".into()],
            person: Some(Person::parse("https://login.acme.example", "alice").unwrap()),
            remote_addr: None,
        };
        let e = AuditEvent::from(d);
        assert_eq!(e.kind, AuditKind::Decision);
        assert_eq!(
            e.person.as_ref().map(ToString::to_string).as_deref(),
            Some("alice at https://login.acme.example")
        );
        assert_eq!(e.capability.as_deref(), Some("docs:read docs/a b"));
        assert_eq!(e.outcome, "denied");
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts_without_waiting() {
        // Nothing listens on port 1: the writer keeps failing and retrying.
        let mut config = AuditSinkConfig::new("redis://127.0.0.1:1/");
        config.capacity = 4;
        config.batch = 2;
        config.flush_within = Duration::from_millis(50);
        let sink = AuditSink::spawn(config).unwrap();
        let event = || AuditEvent {
            at: DateTime::UNIX_EPOCH,
            kind: AuditKind::Decision,
            agent: None,
            token_id: None,
            capability: None,
            outcome: "granted".into(),
            reason: None,
            remote_addr: None,
            chain: Vec::new(),
            person: None,
            amount: None,
            approval_id: None,
            revocation_ids: Vec::new(),
            service: None,
        };
        let accepted = (0..100).filter(|_| sink.record(event())).count();
        // The queue holds 4, the writer at most one batch of 2.
        assert!((4..=6).contains(&accepted), "{accepted}");
        let stats = sink.shutdown().await;
        assert_eq!(stats.written, 0);
        assert_eq!(stats.accepted, accepted as u64);
        assert_eq!(stats.dropped, 100, "{stats:?}");
        assert!(!sink.record(event()));
    }
}
