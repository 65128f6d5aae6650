//! Following the issuer's revocation stream in Redis.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::redis::aio::MultiplexedConnection;
use ::redis::streams::{StreamId, StreamRangeReply, StreamReadReply};
use ::redis::{AsyncConnectionConfig, Client, RedisError};

use super::{
    entry_of, json_problem, redact_url, wall_clock, Backoff, Entry, FollowError, FollowerHandle,
    Retry,
};
use crate::records::Revocation;
use crate::verify::view::RevocationView;

/// Follows `<prefix>revocations`, the stream the issuer's Redis store
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
    /// `redis://[user:password@]host:port[/db]` (or `rediss://`).
    pub url: String,
    /// The issuer's key prefix (default `tessera:`); the stream is
    /// `<prefix>revocations`.
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
        let client = Client::open(self.url.as_str()).map_err(|e| {
            FollowError::RedisUrl(format!("{} ({:?})", redact_url(&self.url), e.kind()))
        })?;
        let run = Run {
            stream: format!("{}revocations", self.key_prefix),
            batch: self.batch.max(1),
            client,
            view: view.clone(),
            last_id: None,
            last_purge: Instant::now(),
            config: self,
        };
        FollowerHandle::spawn(view, run.run())
    }
}

/// Why a session ended.
#[derive(Debug)]
enum Stop {
    /// Redis failed or did not answer.
    Redis(RedisError),
    /// Redis did not answer within the bound.
    Timeout(Duration),
    /// The view refused the entries (poisoned or out of memory).
    View(String),
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Redis(e) => write!(f, "{e}"),
            Self::Timeout(d) => write!(f, "Redis did not answer within {} ms", d.as_millis()),
            Self::View(e) => write!(f, "the revocation view refused entries: {e}"),
        }
    }
}

impl From<RedisError> for Stop {
    fn from(e: RedisError) -> Self {
        Self::Redis(e)
    }
}

struct Run {
    config: RedisFollower,
    client: Client,
    stream: String,
    batch: usize,
    view: Arc<RevocationView>,
    /// The id of the last stream entry applied (or skipped as malformed).
    last_id: Option<String>,
    last_purge: Instant,
}

impl Run {
    async fn run(mut self) {
        let mut retry = Retry::new(self.config.backoff);
        let url = redact_url(&self.config.url);
        loop {
            let stop = self.session(&mut retry).await;
            self.view.note_reconnect();
            let wait = retry.fail();
            if retry.worth_warning() {
                tracing::warn!(
                    redis = %url,
                    stream = %self.stream,
                    failures = retry.failures,
                    retry_in_ms = wait.as_millis() as u64,
                    error = %stop,
                    "revocation follower lost Redis; the view goes stale until it is back"
                );
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// Connects, catches up, then follows until something fails.
    async fn session(&mut self, retry: &mut Retry) -> Stop {
        let mut conn = match self.connect().await {
            Ok(conn) => conn,
            Err(stop) => return stop,
        };
        // Catch up with XRANGE, page by page.
        loop {
            let sent = Instant::now();
            let page = match self.range(&mut conn).await {
                Ok(page) => page,
                Err(stop) => return stop,
            };
            match self.apply(page, sent) {
                Ok(true) => {}
                Ok(false) => break,
                Err(stop) => return stop,
            }
        }
        let failures = retry.succeed();
        if failures > 0 {
            tracing::info!(
                stream = %self.stream,
                failures,
                position = self.last_id.as_deref().unwrap_or("start"),
                "revocation follower is back on Redis"
            );
        }
        // Follow with blocking reads.
        loop {
            self.purge_if_due();
            let sent = Instant::now();
            let page = match self.read(&mut conn).await {
                Ok(page) => page,
                Err(stop) => return stop,
            };
            if let Err(stop) = self.apply(page, sent) {
                return stop;
            }
        }
    }

    async fn connect(&self) -> Result<MultiplexedConnection, Stop> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.config.timeout))
            .set_response_timeout(Some(self.config.block + self.config.timeout));
        let bound = self.config.timeout * 2;
        match tokio::time::timeout(
            bound,
            self.client
                .get_multiplexed_async_connection_with_config(&config),
        )
        .await
        {
            Ok(conn) => Ok(conn?),
            Err(_) => Err(Stop::Timeout(bound)),
        }
    }

    /// `XRANGE <stream> (<last id> + COUNT <batch>` (from `-` at first).
    async fn range(&self, conn: &mut MultiplexedConnection) -> Result<Vec<StreamId>, Stop> {
        let start = match &self.last_id {
            Some(id) => format!("({id}"),
            None => "-".to_owned(),
        };
        let mut cmd = ::redis::cmd("XRANGE");
        cmd.arg(&self.stream)
            .arg(start)
            .arg("+")
            .arg("COUNT")
            .arg(self.batch);
        let bound = self.config.timeout * 2;
        match tokio::time::timeout(bound, cmd.query_async::<StreamRangeReply>(conn)).await {
            Ok(reply) => Ok(reply?.ids),
            Err(_) => Err(Stop::Timeout(bound)),
        }
    }

    /// `XREAD COUNT <batch> BLOCK <block> STREAMS <stream> <last id>`.
    async fn read(&self, conn: &mut MultiplexedConnection) -> Result<Vec<StreamId>, Stop> {
        let block_ms = u64::try_from(self.config.block.as_millis().max(1)).unwrap_or(u64::MAX);
        let mut cmd = ::redis::cmd("XREAD");
        cmd.arg("COUNT")
            .arg(self.batch)
            .arg("BLOCK")
            .arg(block_ms)
            .arg("STREAMS")
            .arg(&self.stream)
            .arg(self.last_id.as_deref().unwrap_or("0-0"));
        let bound = self.config.block + self.config.timeout * 2;
        match tokio::time::timeout(bound, cmd.query_async::<Option<StreamReadReply>>(conn)).await {
            Ok(reply) => Ok(reply?
                .map(|r| r.keys.into_iter().flat_map(|k| k.ids).collect())
                .unwrap_or_default()),
            Err(_) => Err(Stop::Timeout(bound)),
        }
    }

    /// Applies a page, read by a request sent at `sent`, and moves past
    /// it, skipping malformed entries. A page that is not full holds all
    /// there was, so the view is then current as of `sent`. Returns whether
    /// the page was full (more may be waiting).
    fn apply(&mut self, page: Vec<StreamId>, sent: Instant) -> Result<bool, Stop> {
        let full = page.len() >= self.batch;
        let Some(last) = page.last().map(|e| e.id.clone()) else {
            self.view.confirm_current_at(sent);
            return Ok(false);
        };
        let mut entries: Vec<Entry> = Vec::with_capacity(page.len());
        for stream_entry in &page {
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
        self.view
            .apply(
                entries.iter().map(|(id, exp)| (id.as_slice(), *exp)),
                Some(last.clone()),
            )
            .map_err(|e| Stop::View(e.to_string()))?;
        self.last_id = Some(last);
        if !full {
            self.view.confirm_current_at(sent);
        }
        Ok(full)
    }

    fn purge_if_due(&mut self) {
        if self.last_purge.elapsed() >= self.config.purge_every {
            self.last_purge = Instant::now();
            let purged = self.view.purge_expired(wall_clock());
            if purged > 0 {
                tracing::debug!(purged, "dropped revocations of expired tokens");
            }
        }
    }
}

/// The revoked id and expiry of one stream entry.
fn parse(entry: &StreamId) -> Result<Entry, String> {
    let Some(text) = entry.get::<String>("revocation") else {
        return Err("no `revocation` field".to_owned());
    };
    let revocation: Revocation = serde_json::from_str(&text).map_err(|e| json_problem(&e))?;
    entry_of(&revocation)
}
