//! Following the issuer's revocation stream in Redis.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use ::redis::streams::{StreamId, StreamRangeReply, StreamReadReply};
use ::redis::RedisError;

use super::{
    entry_of, follow, json_problem, redact_url, Backoff, Entry, FeedSource, FollowError,
    FollowerHandle, Loop, Page,
};
use crate::records::redis::{RedisLayout, REVOCATION_FIELD};
use crate::records::Revocation;
use crate::verify::redis_conn::{is_cluster_url, Conn, Target};
use crate::verify::view::RevocationView;

/// The longest `XREAD` block on a Redis Cluster. The follower's cluster
/// connection is its own, so a blocking read holds up nothing else; the cap
/// keeps each read short so that a failover (the stream's slot moving to a
/// new master) is noticed within about a second, by the read failing or
/// being redirected, rather than after a long block on the old master.
const CLUSTER_BLOCK_CAP: Duration = Duration::from_secs(1);

/// Follows `<prefix>{rev}:revocations` (docs/storage.md), the stream the issuer's Redis store
/// writes (field `revocation`: JSON of a [`Revocation`]).
///
/// The whole stream is read once with `XRANGE` in pages of `batch`, then
/// the follower loops on `XREAD BLOCK <block> STREAMS <stream> <last id>`
/// on a connection of its own (a blocking read would hold up every other
/// command on a shared one), with a response timeout above the block time.
///
/// ```no_run
/// # async fn run() -> Result<(), tessera::verify::FollowError> {
/// use tessera::verify::{RedisFollower, RevocationView};
///
/// let view = RevocationView::new();
/// let follower = RedisFollower::new("redis://127.0.0.1:6379/").spawn(view.clone())?;
/// // Hand `view` to the verifier; keep `follower` alive as long as it runs.
/// # drop(follower);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisFollower {
    /// `redis://[user:password@]host:port[/db]` (or `rediss://`), or
    /// `redis+cluster://[user:password@]host:port[,host:port…]` (or
    /// `rediss+cluster://`) for a Redis Cluster.
    pub url: String,
    /// The issuer's key prefix (default `tessera:`); the stream is
    /// `<prefix>{rev}:revocations`.
    pub key_prefix: String,
    /// How long one `XREAD` waits for new entries (default 1 s). Staleness
    /// peaks at about twice this while Redis is reachable.
    pub block: Duration,
    /// Entries per read (default 1,000).
    pub batch: usize,
    /// Connection timeout, and how much longer than `block` an answer may
    /// take before the connection is given up (default 2 s).
    pub timeout: Duration,
    /// Waits between reconnection attempts.
    pub backoff: Backoff,
    /// How often expired ids are dropped (default 60 s).
    pub purge_every: Duration,
}

impl fmt::Debug for RedisFollower {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisFollower")
            .field("url", &redact_url(&self.url))
            .field("key_prefix", &self.key_prefix)
            .field("block", &self.block)
            .field("batch", &self.batch)
            .field("timeout", &self.timeout)
            .field("backoff", &self.backoff)
            .field("purge_every", &self.purge_every)
            .finish()
    }
}

impl RedisFollower {
    /// Defaults for `url`: prefix `tessera:`, 1 s blocks, pages of 1,000,
    /// 2 s timeout, backoff from 50 ms to 2 s, purge every minute.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            key_prefix: "tessera:".to_owned(),
            block: Duration::from_secs(1),
            batch: 1000,
            timeout: Duration::from_secs(2),
            backoff: Backoff::default(),
            purge_every: Duration::from_secs(60),
        }
    }

    /// Starts following into `view`, in a task on the current tokio
    /// runtime. The first read happens in the task: until it succeeds the
    /// view stays unconfirmed (and the verifier refuses).
    pub fn spawn(self, view: Arc<RevocationView>) -> Result<FollowerHandle, FollowError> {
        let block = if is_cluster_url(&self.url) {
            self.block.min(CLUSTER_BLOCK_CAP)
        } else {
            self.block
        };
        // Answers may take the block time plus the timeout.
        let target =
            Target::open(&self.url, self.timeout, block + self.timeout).map_err(|kind| {
                FollowError::RedisUrl(format!("{} ({kind:?})", redact_url(&self.url)))
            })?;
        let layout = RedisLayout::new(self.key_prefix.clone())?;
        let source = Source {
            stream: layout.revocations(),
            batch: self.batch.max(1),
            target,
            conn: None,
            caught_up: false,
            url: redact_url(&self.url),
            block,
            timeout: self.timeout,
        };
        let config = Loop {
            backoff: self.backoff,
            purge_every: self.purge_every,
        };
        FollowerHandle::spawn(view.clone(), follow(source, view, config))
    }
}

/// Why a read failed.
#[derive(Debug)]
enum Stop {
    /// Redis failed or did not answer.
    Redis(RedisError),
    /// Redis did not answer within the bound.
    Timeout(Duration),
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Redis(e) => write!(f, "{e}"),
            Self::Timeout(d) => write!(f, "Redis did not answer within {} ms", d.as_millis()),
        }
    }
}

impl From<RedisError> for Stop {
    fn from(e: RedisError) -> Self {
        Self::Redis(e)
    }
}

/// The issuer's Redis stream as a [`FeedSource`]: after each (re)connection
/// it catches up with `XRANGE`, page by page, then follows with blocking
/// `XREAD`s on a connection of its own.
struct Source {
    target: Target,
    /// `None` before the first connection and after a failure.
    conn: Option<Conn>,
    /// Whether the catch-up since the last connection reached the end.
    caught_up: bool,
    stream: String,
    batch: usize,
    /// The Redis URL without its password.
    url: String,
    block: Duration,
    timeout: Duration,
}

impl FeedSource for Source {
    fn describe(&self) -> String {
        format!("{} stream {}", self.url, self.stream)
    }

    async fn next_page(&mut self, after: Option<&str>) -> Result<Page, String> {
        let read = self.read_page(after).await;
        if read.is_err() {
            self.conn = None;
        }
        read.map_err(|stop| stop.to_string())
    }
}

impl Source {
    async fn read_page(&mut self, after: Option<&str>) -> Result<Page, Stop> {
        let mut conn = match self.conn.take() {
            Some(conn) => conn,
            None => {
                self.caught_up = false;
                self.connect().await?
            }
        };
        let ids = if self.caught_up {
            self.read(&mut conn, after).await?
        } else {
            self.range(&mut conn, after).await?
        };
        self.conn = Some(conn);
        let full = ids.len() >= self.batch;
        if !full {
            self.caught_up = true;
        }
        let next = ids
            .last()
            .map(|e| e.id.clone())
            .or(after.map(str::to_owned));
        let mut entries: Vec<Entry> = Vec::with_capacity(ids.len());
        for stream_entry in &ids {
            match parse(stream_entry) {
                Ok(entry) => entries.push(entry),
                Err(problem) => tracing::warn!(
                    stream = %self.stream,
                    entry = %stream_entry.id,
                    problem = %problem,
                    "skipping a malformed revocation entry"
                ),
            }
        }
        Ok(Page {
            entries,
            next,
            full,
        })
    }

    async fn connect(&self) -> Result<Conn, Stop> {
        let bound = self.timeout * 2;
        let connecting = self.target.connect(self.timeout, self.block + self.timeout);
        match tokio::time::timeout(bound, connecting).await {
            Ok(conn) => Ok(conn?),
            Err(_) => Err(Stop::Timeout(bound)),
        }
    }

    /// `XRANGE <stream> (<after> + COUNT <batch>` (from `-` at first).
    async fn range(&self, conn: &mut Conn, after: Option<&str>) -> Result<Vec<StreamId>, Stop> {
        let start = match after {
            Some(id) => format!("({id}"),
            None => "-".to_owned(),
        };
        let mut cmd = ::redis::cmd("XRANGE");
        cmd.arg(&self.stream)
            .arg(start)
            .arg("+")
            .arg("COUNT")
            .arg(self.batch);
        let bound = self.timeout * 2;
        match tokio::time::timeout(bound, cmd.query_async::<StreamRangeReply>(conn)).await {
            Ok(reply) => Ok(reply?.ids),
            Err(_) => Err(Stop::Timeout(bound)),
        }
    }

    /// `XREAD COUNT <batch> BLOCK <block> STREAMS <stream> <after>`.
    async fn read(&self, conn: &mut Conn, after: Option<&str>) -> Result<Vec<StreamId>, Stop> {
        let block_ms = u64::try_from(self.block.as_millis().max(1)).unwrap_or(u64::MAX);
        let mut cmd = ::redis::cmd("XREAD");
        cmd.arg("COUNT")
            .arg(self.batch)
            .arg("BLOCK")
            .arg(block_ms)
            .arg("STREAMS")
            .arg(&self.stream)
            .arg(after.unwrap_or("0-0"));
        let bound = self.block + self.timeout * 2;
        match tokio::time::timeout(bound, cmd.query_async::<Option<StreamReadReply>>(conn)).await {
            Ok(reply) => Ok(reply?
                .map(|r| r.keys.into_iter().flat_map(|k| k.ids).collect())
                .unwrap_or_default()),
            Err(_) => Err(Stop::Timeout(bound)),
        }
    }
}

/// The revoked id and expiry of one stream entry.
fn parse(entry: &StreamId) -> Result<Entry, String> {
    let Some(text) = entry.get::<String>(REVOCATION_FIELD) else {
        return Err(format!("no `{REVOCATION_FIELD}` field"));
    };
    let revocation: Revocation = serde_json::from_str(&text).map_err(|e| json_problem(&e))?;
    entry_of(&revocation)
}
