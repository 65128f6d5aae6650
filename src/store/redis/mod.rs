//! The Redis store, shared by several issuers, on one Redis server or on a
//! Redis Cluster.
//!
//! The keys and their hash tags are [`crate::records::redis::RedisLayout`]'s
//! (see docs/storage.md): every script and `MULTI` touches keys of one tag,
//! so each runs on one node of a cluster.
//!
//! A revocation is written by one Lua script (the revoked key and the stream
//! entry together, or neither). A mint is one script on one server (its
//! one-time keys, its ledger entry and its audit event: one round trip); on
//! a cluster, the one-time keys and the ledger entry are one script and the
//! audit event a second command. When the node written to has replicas, a
//! revocation and a mint return only once one replica has them (`WAIT 1`).
//! Every call is bounded in time: when Redis is down, calls fail with
//! [`StoreError::Unavailable`] and the connection reconnects by itself once
//! Redis is back.

mod approvals;
mod authcode;
mod budget;
mod conn;
mod migrate;
mod people;
mod store;
mod tlog;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::streams::{StreamId, StreamRangeReply, StreamReadReply};
use ::redis::{
    AsyncConnectionConfig, Client, Cmd, ErrorKind, FromRedisValue, Pipeline, RedisError,
    RedisResult, Script, ScriptInvocation, ServerErrorKind, Value,
};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::de::DeserializeOwned;
use serde::Serialize;

use self::conn::Conn;
use super::{AgentRecord, Ceiling, Cursor, StoreError};
use crate::records::redis::{self as layout, RedisLayout};
use crate::redis_conn;
use crate::token::{AgentId, AgentKey, InvalidInput};

/// Records the revocation unless its id is already revoked.
///
/// KEYS: revoked key, revocations stream (tag `rev`). ARGV: revocation
/// JSON, expiry (Unix seconds), then the revoked value's text before and
/// after its stream id ([`layout::revoked_value_parts`]). Returns the stream
/// id of the (first) feed entry.
const REVOKE_SCRIPT: &str = r#"
local existing = redis.call('GET', KEYS[1])
if existing then
  return cjson.decode(existing)['cursor']
end
local id = redis.call('XADD', KEYS[2], '*', 'revocation', ARGV[1])
redis.call('SET', KEYS[1], ARGV[3] .. id .. ARGV[4], 'EXAT', ARGV[2])
return id
"#;

/// The writes of one mint: takes the one-time keys, then records the token
/// and, when given the audit stream, appends the audit event; or stops at
/// the first key already taken.
///
/// KEYS: the `n` replay keys, then the token key and the agent's token
/// index (all tag `mint`), then, on one server only, the audit stream.
/// ARGV: `n`, the replay keys' expiries (Unix ms), then the token JSON, its
/// expiry in Unix seconds and in Unix ms, the token id, the audit stream's
/// approximate length and the event JSON. Returns the index (from 0) of the
/// key already taken, or the audit entry's id, or `""` when no audit stream
/// was given.
const ISSUE_SCRIPT: &str = r#"
local n = tonumber(ARGV[1])
for i = 1, n do
  if not redis.call('SET', KEYS[i], '1', 'NX', 'PXAT', ARGV[1 + i]) then
    return i - 1
  end
end
local a = n + 1
local index = KEYS[n + 2]
redis.call('SET', KEYS[n + 1], ARGV[a + 1], 'EXAT', ARGV[a + 2])
redis.call('ZADD', index, ARGV[a + 3], ARGV[a + 4])
redis.call('EXPIREAT', index, ARGV[a + 2], 'NX')
redis.call('EXPIREAT', index, ARGV[a + 2], 'GT')
if #KEYS < n + 3 then
  return ''
end
return redis.call('XADD', KEYS[n + 3], 'MAXLEN', '~', ARGV[a + 5], '*', 'event', ARGV[a + 6])
"#;

/// Marks an existing agent disabled. KEYS: agent hash. ARGV: `updated_at`.
/// Returns 1 if the agent exists, else 0.
const DISABLE_SCRIPT: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[1], 'disabled', '1', 'updated_at', ARGV[1])
return 1
"#;

/// Replaces an existing agent's hash with the given fields, keeping its
/// `disabled` and `created_at` as stored (an edit never undoes a disable).
/// KEYS: agent hash. ARGV: field, value, ... Returns 1 if the agent exists,
/// else 0.
const UPDATE_AGENT_SCRIPT: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
local keep = redis.call('HMGET', KEYS[1], 'disabled', 'created_at')
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV))
redis.call('HSET', KEYS[1], 'disabled', keep[1] or '1', 'created_at', keep[2] or '')
return 1
"#;

/// How many audit entries one round trip reads while filtering.
const AUDIT_BATCH: usize = 256;

/// Settings of the Redis store.
#[derive(Clone)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]` for one server, or
    /// `redis+cluster://[user:password@]host:port[,host:port…]` for a Redis
    /// Cluster (any reachable nodes; the rest are discovered).
    pub url: String,
    /// Prefix of every key (default `tessera:`); must not hold `{` or `}`.
    pub key_prefix: String,
    /// Approximate number of audit events kept (`XADD MAXLEN ~`).
    pub audit_max_len: usize,
    /// How long to wait to connect and for each answer; a call fails with
    /// [`StoreError::Unavailable`] after about twice this.
    pub timeout: Duration,
}

impl RedisConfig {
    /// Defaults for `url`: prefix `tessera:`, 1,000,000 audit events, 2 s.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            key_prefix: "tessera:".to_owned(),
            audit_max_len: 1_000_000,
            timeout: Duration::from_secs(2),
        }
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &redact_url(&self.url))
            .field("key_prefix", &self.key_prefix)
            .field("audit_max_len", &self.audit_max_len)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// The URL without its credentials, for logs.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://***{}", &url[..scheme_end], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// All stores in one Redis database or one Redis Cluster. Cloning it is
/// cheap: clones share one connection (the audit tree's follower runs on
/// one, see [`tlog`]).
#[derive(Clone)]
pub struct RedisStore {
    shared: Arc<Shared>,
}

impl std::ops::Deref for RedisStore {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.shared
    }
}

/// What the clones of one [`RedisStore`] share.
pub struct Shared {
    /// For blocking reads on a connection of their own (one server only).
    client: Option<Client>,
    conn: Conn,
    layout: RedisLayout,
    audit_max_len: usize,
    timeout: Duration,
    revoke_script: Script,
    disable_script: Script,
    update_agent_script: Script,
    issue_script: Script,
    add_bounded_script: Script,
    remove_script: Script,
    approval_create_script: Script,
    approval_cas_script: Script,
    tlog_script: Script,
    /// One audit tree append at a time from this process, and what it
    /// remembers of the tree between appends.
    tlog_lock: tokio::sync::Mutex<tlog::TreeMemo>,
    /// The audit tree's follower: whether one runs, and whether records
    /// came since it last read the stream.
    follower: tlog::FollowerState,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.layout.prefix())
            .field("cluster", &self.client.is_none())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to Redis (or to a Redis Cluster, for a `redis+cluster://`
    /// URL). Fails with [`StoreError::Unavailable`] if it does not answer;
    /// after that, the connection is re-established by itself. On one
    /// server, data written by earlier releases (untagged keys) is moved to
    /// the current layout first.
    pub async fn connect(config: RedisConfig) -> Result<Self, StoreError> {
        let layout = RedisLayout::new(config.key_prefix.clone())
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        let bound = config.timeout * 2;
        let (client, conn) = match redis_conn::cluster_nodes(&config.url) {
            Some(nodes) => {
                let client = redis_conn::cluster_client(nodes, config.timeout, config.timeout)
                    .map_err(|e| StoreError::Backend(format!("invalid Redis Cluster URL: {e}")))?;
                let connecting = client.get_async_connection();
                let conn = match tokio::time::timeout(bound, connecting).await {
                    Ok(conn) => conn.map_err(redis_error)?,
                    Err(_) => return Err(unanswered(bound)),
                };
                (None, Conn::Cluster(conn))
            }
            None => {
                let client = Client::open(config.url.as_str())
                    .map_err(|e| StoreError::Backend(format!("invalid Redis URL: {e}")))?;
                let manager_config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(config.timeout))
                    .set_response_timeout(Some(config.timeout))
                    .set_number_of_retries(2)
                    .set_max_delay(Duration::from_millis(500));
                let connecting = ConnectionManager::new_with_config(client.clone(), manager_config);
                let conn = match tokio::time::timeout(bound, connecting).await {
                    Ok(conn) => conn.map_err(redis_error)?,
                    Err(_) => return Err(unanswered(bound)),
                };
                (Some(client), Conn::Single(conn))
            }
        };
        let store = Self {
            shared: Arc::new(Shared {
                client,
                conn,
                layout,
                audit_max_len: config.audit_max_len,
                timeout: config.timeout,
                revoke_script: Script::new(REVOKE_SCRIPT),
                disable_script: Script::new(DISABLE_SCRIPT),
                update_agent_script: Script::new(UPDATE_AGENT_SCRIPT),
                issue_script: Script::new(ISSUE_SCRIPT),
                add_bounded_script: Script::new(people::ADD_BOUNDED_SCRIPT),
                remove_script: Script::new(people::REMOVE_SCRIPT),
                approval_create_script: Script::new(approvals::CREATE_SCRIPT),
                approval_cas_script: Script::new(approvals::CAS_SCRIPT),
                tlog_script: Script::new(tlog::APPEND_SCRIPT),
                tlog_lock: tokio::sync::Mutex::new(tlog::TreeMemo::default()),
                follower: tlog::FollowerState::default(),
            }),
        };
        if store.client.is_some() {
            store.migrate().await?;
        }
        Ok(store)
    }

    /// Whether this store is on a Redis Cluster.
    fn is_cluster(&self) -> bool {
        self.client.is_none()
    }

    /// Runs `op` on the shared connection, bounded in time.
    ///
    /// When the connection is broken, `op` is tried once more, on the
    /// connection the manager opens in its place (the failed attempt is what
    /// tells the manager to reconnect). This makes the first call after
    /// Redis returns succeed, even on an issuer that sent nothing while
    /// Redis was away and so still holds the connection Redis dropped:
    ///
    /// - refused: the connection could not even be opened, nothing was sent;
    /// - loading: Redis is back but still reading its data; nothing ran, and
    ///   the call is tried again until Redis answers or the bound passes;
    /// - dropped: the connection was found closed. In the case this is for
    ///   (Redis went away while the issuer was idle) the command was never
    ///   sent either. If Redis went away while the command was in flight, it
    ///   may have run once already: every write here is idempotent or fails
    ///   closed when run twice (a one-time key already taken reads as a
    ///   replay and the request is refused; a revocation already recorded
    ///   returns its first cursor), except an audit append, which may then
    ///   be stored twice.
    async fn guard<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        F: Fn(Conn) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let attempt = async {
            let mut result = op(self.conn.clone()).await;
            if matches!(&result, Err(e) if e.is_connection_refusal() || e.is_connection_dropped()) {
                result = op(self.conn.clone()).await;
            }
            // A Redis that has just come back answers LOADING until it has
            // read its data, and runs nothing meanwhile: wait for it,
            // within the time bound.
            let mut pause = Duration::from_millis(10);
            while matches!(&result, Err(e) if is_loading(e)) {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(200));
                result = op(self.conn.clone()).await;
            }
            result
        };
        let bound = self.timeout * 2;
        match tokio::time::timeout(bound, attempt).await {
            Ok(result) => result.map_err(redis_error),
            Err(_) => Err(unanswered(bound)),
        }
    }

    async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, StoreError> {
        self.guard(|mut conn| async move { cmd.query_async(&mut conn).await })
            .await
    }

    async fn query_pipe<T: FromRedisValue>(&self, pipe: &Pipeline) -> Result<T, StoreError> {
        self.guard(|mut conn| async move { pipe.query_async(&mut conn).await })
            .await
    }

    async fn invoke<T: FromRedisValue>(
        &self,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        self.guard(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await
    }

    /// Reads feed entries after `after` with `XRANGE`.
    async fn read_range(
        &self,
        stream: &str,
        after: Option<&Cursor>,
        count: usize,
    ) -> Result<Vec<StreamId>, StoreError> {
        let start = match after {
            Some(cursor) => format!("({}", stream_id(cursor)?),
            None => "-".to_owned(),
        };
        let mut cmd = ::redis::cmd("XRANGE");
        cmd.arg(stream).arg(start).arg("+").arg("COUNT").arg(count);
        let reply: StreamRangeReply = self.query(&cmd).await?;
        Ok(reply.ids)
    }

    /// On a cluster: reads every 50 ms until an entry after `after` exists
    /// or `timeout` passes (a blocking read would hold up the node's shared
    /// connection).
    async fn read_polling(
        &self,
        stream: &str,
        after: Option<&Cursor>,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<StreamId>, StoreError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let entries = self.read_range(stream, after, count).await?;
            if !entries.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(entries);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs `script` (source `code`; KEYS `keys`, ARGV `args`) on the node serving
    /// `keys[0]`, and if that node has replicas, returns only once one of
    /// them has the writes (`WAIT 1`); fails with
    /// [`StoreError::Unavailable`] if none confirms in time (the writes are
    /// then on the master only, and the call may be repeated).
    async fn durable<T: FromRedisValue>(
        &self,
        script: &Script,
        code: &str,
        keys: &[String],
        args: &[String],
    ) -> Result<T, StoreError> {
        let pipe_with = |command: &str, script_arg: &str| {
            let mut pipe = ::redis::pipe();
            pipe.cmd(command)
                .arg(script_arg)
                .arg(keys.len())
                .arg(keys)
                .arg(args)
                .cmd("ROLE");
            pipe
        };
        let by_hash = pipe_with("EVALSHA", script.get_hash());
        let by_text = pipe_with("EVAL", code);
        let (by_hash, by_text) = (&by_hash, &by_text);
        let (reply, role): (T, Value) = self
            .guard(|mut conn| async move {
                match by_hash.query_async(&mut conn).await {
                    Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                        by_text.query_async(&mut conn).await
                    }
                    other => other,
                }
            })
            .await?;
        if conn::has_replicas(&role) {
            let wait_ms = u64::try_from((self.timeout / 2).as_millis()).unwrap_or(1000);
            let mut wait = ::redis::pipe();
            wait.cmd("EXISTS")
                .arg(&keys[0])
                .ignore()
                .cmd("WAIT")
                .arg(1)
                .arg(wait_ms.max(1));
            let (acknowledged,): (i64,) = self.query_pipe(&wait).await?;
            if acknowledged < 1 {
                return Err(StoreError::Unavailable(format!(
                    "no Redis replica confirmed the write within {wait_ms} ms"
                )));
            }
        }
        Ok(reply)
    }

    /// Blocks on a connection of its own (a blocking read would hold up
    /// every other command on the shared one) until an entry after `after`
    /// exists or `timeout` passes. (Same signature as `read_polling`: the
    /// two ways one read is done, picked by the connection kind.)
    async fn read_blocking(
        &self,
        stream: &str,
        after: Option<&Cursor>,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<StreamId>, StoreError> {
        let Some(client) = &self.client else {
            return self.read_polling(stream, after, count, timeout).await;
        };
        let start = match after {
            Some(cursor) => stream_id(cursor)?,
            None => "0-0".to_owned(),
        };
        let block_ms = u64::try_from(timeout.as_millis().max(1)).unwrap_or(u64::MAX);
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(timeout + self.timeout));
        let mut cmd = ::redis::cmd("XREAD");
        cmd.arg("COUNT")
            .arg(count)
            .arg("BLOCK")
            .arg(block_ms)
            .arg("STREAMS")
            .arg(stream)
            .arg(start);
        let read = async {
            let mut conn = client
                .get_multiplexed_async_connection_with_config(&config)
                .await?;
            cmd.query_async::<Option<StreamReadReply>>(&mut conn).await
        };
        let bound = timeout + self.timeout * 2;
        let reply = match tokio::time::timeout(bound, read).await {
            Ok(reply) => reply.map_err(redis_error)?,
            Err(_) => return Err(unanswered(bound)),
        };
        Ok(reply
            .map(|r| r.keys.into_iter().flat_map(|k| k.ids).collect())
            .unwrap_or_default())
    }
}

/// Whether Redis refused the command because it is still loading its data.
fn is_loading(e: &RedisError) -> bool {
    matches!(e.kind(), ErrorKind::Server(ServerErrorKind::BusyLoading))
}

/// Maps a Redis error: connection trouble is `Unavailable`.
fn redis_error(e: RedisError) -> StoreError {
    let down = e.is_io_error()
        || e.is_timeout()
        || e.is_connection_refusal()
        || e.is_connection_dropped()
        || e.is_unrecoverable_error()
        || matches!(
            e.kind(),
            ErrorKind::Server(
                ServerErrorKind::BusyLoading
                    | ServerErrorKind::TryAgain
                    | ServerErrorKind::MasterDown
                    | ServerErrorKind::ReadOnly
                    | ServerErrorKind::ClusterDown
            )
        );
    if down {
        StoreError::Unavailable(e.to_string())
    } else if matches!(e.kind(), ErrorKind::Parse | ErrorKind::UnexpectedReturnType) {
        StoreError::Decode(e.to_string())
    } else {
        StoreError::Backend(e.to_string())
    }
}

fn unanswered(after: Duration) -> StoreError {
    StoreError::Unavailable(format!(
        "Redis did not answer within {} ms",
        after.as_millis()
    ))
}

/// The stream id a cursor stands for.
fn stream_id(cursor: &Cursor) -> Result<String, StoreError> {
    layout::stream_id_of_cursor(cursor)
        .ok_or_else(|| StoreError::InvalidCursor(cursor.as_str().to_owned()))
}

/// The cursor of a stream id: zero-padded, so that text order is stream order.
fn cursor_of(id: &str) -> Result<Cursor, StoreError> {
    layout::cursor_of_stream_id(id).map_err(|e| StoreError::Decode(e.to_string()))
}

/// Unix seconds, rounded up (a key lives at least until `at`), at least 1.
fn ceil_secs(at: DateTime<Utc>) -> i64 {
    let secs = at.timestamp();
    let secs = if at.timestamp_subsec_nanos() > 0 {
        secs.saturating_add(1)
    } else {
        secs
    };
    secs.max(1)
}

/// Unix milliseconds, rounded up, at least 1.
fn ceil_millis(at: DateTime<Utc>) -> i64 {
    let millis = at.timestamp_millis();
    let millis = if !at.timestamp_subsec_nanos().is_multiple_of(1_000_000) {
        millis.saturating_add(1)
    } else {
        millis
    };
    millis.max(1)
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn encode<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Backend(format!("encoding a record: {e}")))
}

fn decode<T: DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Decode(e.to_string()))
}

/// The text of field `name` of a stream entry.
fn field(entry: &StreamId, name: &str) -> Result<String, StoreError> {
    entry.get::<String>(name).ok_or_else(|| {
        StoreError::Decode(format!("stream entry {} has no field {name:?}", entry.id))
    })
}

fn agent_from_hash(mut hash: HashMap<String, String>) -> Result<AgentRecord, StoreError> {
    let mut take = |name: &str| {
        hash.remove(name)
            .ok_or_else(|| StoreError::Decode(format!("agent hash has no field {name:?}")))
    };
    let time = |text: String| {
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| StoreError::Decode(format!("agent time {text:?}: {e}")))
    };
    let bad = |name: &'static str| {
        move |e: InvalidInput| StoreError::Decode(format!("agent hash field {name:?}: {e}"))
    };
    Ok(AgentRecord {
        id: AgentId::parse(&take("id")?).map_err(bad("id"))?,
        public_key: AgentKey::parse(&take("public_key")?).map_err(bad("public_key"))?,
        description: take("description")?,
        ceiling: decode::<Ceiling>(&take("ceiling")?)?,
        disabled: match take("disabled")?.as_str() {
            "1" => true,
            "0" => false,
            other => {
                return Err(StoreError::Decode(format!(
                    "agent hash field \"disabled\": {other:?} is neither 0 nor 1"
                )))
            }
        },
        created_at: time(take("created_at")?)?,
        updated_at: time(take("updated_at")?)?,
        notification_endpoint: hash.remove("notification_endpoint"),
        redirect_uris: match hash.remove("redirect_uris") {
            Some(text) => decode::<Vec<String>>(&text)?,
            None => Vec::new(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(fields: &[(&str, &str)]) -> HashMap<String, String> {
        fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn stored(changed: (&str, &str)) -> HashMap<String, String> {
        let key = format!("ed25519/{}", "ab".repeat(32));
        let mut h = hash(&[
            ("id", "agent://acme/bot"),
            ("public_key", &key),
            ("description", "d"),
            (
                "ceiling",
                r#"{"actions":["read"],"resources":["docs/*"],"audiences":[],"max_ttl_secs":60}"#,
            ),
            ("disabled", "0"),
            ("created_at", "2026-01-01T00:00:00Z"),
            ("updated_at", "2026-01-01T00:00:00Z"),
        ]);
        h.insert(changed.0.to_owned(), changed.1.to_owned());
        h
    }

    #[test]
    fn an_agent_hash_is_read_into_the_typed_record() {
        let agent = agent_from_hash(stored(("disabled", "1"))).unwrap();
        assert_eq!(agent.id.as_str(), "agent://acme/bot");
        assert!(agent.disabled);
        assert_eq!(agent.ceiling.max_ttl, std::time::Duration::from_secs(60));
        assert!(agent.ceiling.resources[0].matches("docs/x"));
    }

    #[test]
    fn an_agent_hash_that_no_longer_parses_is_a_decode_error() {
        for changed in [
            ("id", "not a uri"),
            ("public_key", "ed25519/zz"),
            ("disabled", "yes"),
            (
                "ceiling",
                r#"{"actions":["read"],"resources":["*"],"audiences":[],"max_ttl_secs":60}"#,
            ),
            (
                "ceiling",
                r#"{"actions":["re ad"],"resources":["docs/*"],"audiences":[],"max_ttl_secs":60}"#,
            ),
        ] {
            let err = agent_from_hash(stored(changed)).unwrap_err();
            assert!(matches!(err, StoreError::Decode(_)), "{changed:?}: {err:?}");
        }
    }
}
