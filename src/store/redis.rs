//! The Redis store, shared by several issuers.
//!
//! Keys, under a configurable prefix `P` (default `tessera:`):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `P agent:<id>` | hash | one agent's fields |
//! | `P agents` | set | every agent id |
//! | `P token:<token id>` | string, expires with the token | JSON `IssuedToken` |
//! | `P agent-tokens:<agent>` | sorted set by expiry (ms) | the agent's token ids |
//! | `P revoked:<hex>` | string, expires with the token | JSON `{cursor, revocation}` |
//! | `P revocations` | stream | field `revocation`: JSON `Revocation` |
//! | `P replay:<key>` | string, expires with the key | `1` |
//! | `P audit` | stream, capped (approximately) | field `event`: JSON `AuditEvent` |
//!
//! A revocation is written by one Lua script (the revoked key and the stream
//! entry together, or neither), and so are the writes of a mint (its
//! one-time keys, its ledger entry and its audit event: one round trip). Every call is bounded in time: when Redis is
//! down, calls fail with [`StoreError::Unavailable`] and the connection
//! manager reconnects by itself once Redis is back.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::streams::{StreamId, StreamRangeReply, StreamReadReply};
use ::redis::{
    AsyncConnectionConfig, Client, Cmd, ErrorKind, FromRedisValue, Pipeline, RedisError,
    RedisResult, Script, ScriptInvocation, ServerErrorKind, Value,
};
use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{
    AgentRecord, AgentStore, AuditEvent, AuditLog, AuditQuery, Ceiling, Cursor, Issuance, Issue,
    IssuedToken, OnceKey, ReplayCache, Revocation, RevocationStore, StoreError, StoreHealth,
    TokenLedger,
};

/// Records the revocation unless its id is already revoked.
///
/// KEYS: revoked key, revocations stream. ARGV: revocation JSON, expiry
/// (Unix seconds). Returns the stream id of the (first) feed entry.
const REVOKE_SCRIPT: &str = r#"
local existing = redis.call('GET', KEYS[1])
if existing then
  return cjson.decode(existing)['cursor']
end
local id = redis.call('XADD', KEYS[2], '*', 'revocation', ARGV[1])
redis.call('SET', KEYS[1], '{"cursor":"' .. id .. '","revocation":' .. ARGV[1] .. '}', 'EXAT', ARGV[2])
return id
"#;

/// The writes of one mint: takes the one-time keys, then records the token
/// and appends the audit event, or stops at the first key already taken.
///
/// KEYS: the `n` replay keys, then the token key, the agent's token index
/// and the audit stream. ARGV: `n`, the replay keys' expiries (Unix ms),
/// then the token JSON, its expiry in Unix seconds and in Unix ms, the token
/// id, the audit stream's approximate length and the event JSON. Returns
/// the index (from 0) of the key already taken, or the audit entry's id.
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

/// How many audit entries one round trip reads while filtering.
const AUDIT_BATCH: usize = 256;

/// Settings of the Redis store.
#[derive(Clone)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]`.
    pub url: String,
    /// Prefix of every key (default `tessera:`).
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

/// All stores in one Redis database.
pub struct RedisStore {
    client: Client,
    conn: ConnectionManager,
    prefix: String,
    audit_max_len: usize,
    timeout: Duration,
    revoke_script: Script,
    disable_script: Script,
    issue_script: Script,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to Redis. Fails with [`StoreError::Unavailable`] if it does
    /// not answer; after that, the connection is re-established by itself.
    pub async fn connect(config: RedisConfig) -> Result<Self, StoreError> {
        let client = Client::open(config.url.as_str())
            .map_err(|e| StoreError::Backend(format!("invalid Redis URL: {e}")))?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.timeout))
            .set_response_timeout(Some(config.timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let connecting = ConnectionManager::new_with_config(client.clone(), manager_config);
        let conn = match tokio::time::timeout(config.timeout * 2, connecting).await {
            Ok(conn) => conn.map_err(redis_error)?,
            Err(_) => return Err(unanswered(config.timeout * 2)),
        };
        Ok(Self {
            client,
            conn,
            prefix: config.key_prefix,
            audit_max_len: config.audit_max_len,
            timeout: config.timeout,
            revoke_script: Script::new(REVOKE_SCRIPT),
            disable_script: Script::new(DISABLE_SCRIPT),
            issue_script: Script::new(ISSUE_SCRIPT),
        })
    }

    fn key(&self, kind: &str, id: &str) -> String {
        format!("{}{kind}:{id}", self.prefix)
    }

    fn name(&self, kind: &str) -> String {
        format!("{}{kind}", self.prefix)
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
        F: Fn(ConnectionManager) -> Fut,
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

    /// Blocks on a connection of its own (a blocking read would hold up
    /// every other command on the shared one) until an entry after `after`
    /// exists or `timeout` passes.
    async fn read_blocking(
        &self,
        stream: &str,
        after: Option<&Cursor>,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<StreamId>, StoreError> {
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
            let mut conn = self
                .client
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

/// Parses `ms-seq` (padded or not) into two numbers.
fn parse_stream_id(text: &str) -> Option<(u64, u64)> {
    let (ms, seq) = text.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(ms) || !digits(seq) {
        return None;
    }
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// The stream id a cursor stands for.
fn stream_id(cursor: &Cursor) -> Result<String, StoreError> {
    let (ms, seq) = parse_stream_id(cursor.as_str())
        .ok_or_else(|| StoreError::InvalidCursor(cursor.as_str().to_owned()))?;
    Ok(format!("{ms}-{seq}"))
}

/// The cursor of a stream id: zero-padded, so that text order is stream order.
fn cursor_of(id: &str) -> Result<Cursor, StoreError> {
    let (ms, seq) = parse_stream_id(id)
        .ok_or_else(|| StoreError::Decode(format!("unexpected stream id {id:?}")))?;
    Ok(Cursor::new(format!("{ms:020}-{seq:020}")))
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
    Ok(AgentRecord {
        id: take("id")?,
        public_key: take("public_key")?,
        description: take("description")?,
        ceiling: decode::<Ceiling>(&take("ceiling")?)?,
        disabled: take("disabled")? == "1",
        created_at: time(take("created_at")?)?,
        updated_at: time(take("updated_at")?)?,
    })
}

#[async_trait]
impl AgentStore for RedisStore {
    async fn put(&self, agent: &AgentRecord) -> Result<(), StoreError> {
        let key = self.key("agent", &agent.id);
        let fields = [
            ("id", agent.id.clone()),
            ("public_key", agent.public_key.clone()),
            ("description", agent.description.clone()),
            ("ceiling", encode(&agent.ceiling)?),
            (
                "disabled",
                if agent.disabled { "1" } else { "0" }.to_owned(),
            ),
            ("created_at", rfc3339(agent.created_at)),
            ("updated_at", rfc3339(agent.updated_at)),
        ];
        let mut pipe = ::redis::pipe();
        pipe.atomic()
            .cmd("DEL")
            .arg(&key)
            .ignore()
            .cmd("HSET")
            .arg(&key)
            .arg(&fields[..])
            .ignore()
            .cmd("SADD")
            .arg(self.name("agents"))
            .arg(&agent.id)
            .ignore();
        self.query_pipe::<()>(&pipe).await
    }

    async fn get(&self, id: &str) -> Result<Option<AgentRecord>, StoreError> {
        let mut cmd = ::redis::cmd("HGETALL");
        cmd.arg(self.key("agent", id));
        let hash: HashMap<String, String> = self.query(&cmd).await?;
        if hash.is_empty() {
            return Ok(None);
        }
        agent_from_hash(hash).map(Some)
    }

    async fn list(&self) -> Result<Vec<AgentRecord>, StoreError> {
        let mut cmd = ::redis::cmd("SMEMBERS");
        cmd.arg(self.name("agents"));
        let ids: Vec<String> = self.query(&cmd).await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = ::redis::pipe();
        for id in &ids {
            pipe.cmd("HGETALL").arg(self.key("agent", id));
        }
        let hashes: Vec<HashMap<String, String>> = self.query_pipe(&pipe).await?;
        let mut agents = hashes
            .into_iter()
            .filter(|hash| !hash.is_empty())
            .map(agent_from_hash)
            .collect::<Result<Vec<_>, _>>()?;
        agents.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(agents)
    }

    async fn disable(&self, id: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let mut invocation = self.disable_script.prepare_invoke();
        invocation.key(self.key("agent", id)).arg(rfc3339(now));
        let found: i64 = self.invoke(&invocation).await?;
        Ok(found == 1)
    }
}

#[async_trait]
impl TokenLedger for RedisStore {
    async fn record(&self, token: &IssuedToken) -> Result<(), StoreError> {
        let index = self.key("agent-tokens", &token.agent);
        let expires_secs = ceil_secs(token.expires_at);
        let mut pipe = ::redis::pipe();
        pipe.atomic()
            .cmd("SET")
            .arg(self.key("token", &token.token_id))
            .arg(encode(token)?)
            .arg("EXAT")
            .arg(expires_secs)
            .ignore()
            .cmd("ZADD")
            .arg(&index)
            .arg(ceil_millis(token.expires_at))
            .arg(&token.token_id)
            .ignore()
            // The index lives as long as its longest-lived token: NX sets
            // the first expiry, GT only ever extends it.
            .cmd("EXPIREAT")
            .arg(&index)
            .arg(expires_secs)
            .arg("NX")
            .ignore()
            .cmd("EXPIREAT")
            .arg(&index)
            .arg(expires_secs)
            .arg("GT")
            .ignore();
        self.query_pipe::<()>(&pipe).await
    }

    async fn get(&self, token_id: &str) -> Result<Option<IssuedToken>, StoreError> {
        let mut cmd = ::redis::cmd("GET");
        cmd.arg(self.key("token", token_id));
        let found: Option<String> = self.query(&cmd).await?;
        found.map(|text| decode(&text)).transpose()
    }

    async fn outstanding(
        &self,
        agent: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<IssuedToken>, StoreError> {
        let index = self.key("agent-tokens", agent);
        let now_ms = now.timestamp_millis();
        let mut pipe = ::redis::pipe();
        pipe.atomic()
            .cmd("ZREMRANGEBYSCORE")
            .arg(&index)
            .arg("-inf")
            .arg(now_ms)
            .ignore()
            .cmd("ZRANGE")
            .arg(&index)
            .arg(format!("({now_ms}"))
            .arg("+inf")
            .arg("BYSCORE");
        let (ids,): (Vec<String>,) = self.query_pipe(&pipe).await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = ::redis::cmd("MGET");
        for id in &ids {
            cmd.arg(self.key("token", id));
        }
        let records: Vec<Option<String>> = self.query(&cmd).await?;
        let mut tokens = Vec::new();
        for text in records.into_iter().flatten() {
            let token: IssuedToken = decode(&text)?;
            if token.agent == agent && token.expires_at > now {
                tokens.push(token);
            }
        }
        tokens.sort_by(|a, b| (a.issued_at, &a.token_id).cmp(&(b.issued_at, &b.token_id)));
        Ok(tokens)
    }
}

#[async_trait]
impl RevocationStore for RedisStore {
    async fn revoke(&self, revocation: &Revocation) -> Result<Cursor, StoreError> {
        let mut invocation = self.revoke_script.prepare_invoke();
        invocation
            .key(self.key("revoked", &revocation.revocation_id))
            .key(self.name("revocations"))
            .arg(encode(revocation)?)
            .arg(ceil_secs(revocation.expires_at));
        let id: String = self.invoke(&invocation).await?;
        cursor_of(&id)
    }

    async fn is_revoked(&self, revocation_id: &str) -> Result<bool, StoreError> {
        let mut cmd = ::redis::cmd("EXISTS");
        cmd.arg(self.key("revoked", revocation_id));
        let count: i64 = self.query(&cmd).await?;
        Ok(count > 0)
    }

    async fn feed(
        &self,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<Vec<(Cursor, Revocation)>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let entries = self
            .read_range(&self.name("revocations"), after, limit)
            .await?;
        revocations_of(entries)
    }

    async fn wait(
        &self,
        after: Option<&Cursor>,
        limit: usize,
        timeout: Duration,
    ) -> Result<Vec<(Cursor, Revocation)>, StoreError> {
        let ready = self.feed(after, limit).await?;
        if !ready.is_empty() || limit == 0 || timeout.is_zero() {
            return Ok(ready);
        }
        let entries = self
            .read_blocking(&self.name("revocations"), after, limit, timeout)
            .await?;
        revocations_of(entries)
    }
}

fn revocations_of(entries: Vec<StreamId>) -> Result<Vec<(Cursor, Revocation)>, StoreError> {
    entries
        .iter()
        .map(|entry| Ok((cursor_of(&entry.id)?, decode(&field(entry, "revocation")?)?)))
        .collect()
}

#[async_trait]
impl ReplayCache for RedisStore {
    async fn insert_once(
        &self,
        key: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        if expires_at <= now {
            return Ok(false);
        }
        let mut cmd = ::redis::cmd("SET");
        cmd.arg(self.key("replay", key))
            .arg(1)
            .arg("NX")
            .arg("PXAT")
            .arg(ceil_millis(expires_at));
        let reply: Value = self.query(&cmd).await?;
        Ok(!matches!(reply, Value::Nil))
    }
}

/// One script per mint: one round trip, applied as a whole.
#[async_trait]
impl Issuance for RedisStore {
    async fn record_issue(
        &self,
        keys: &[OnceKey],
        token: &IssuedToken,
        event: &AuditEvent,
        now: DateTime<Utc>,
    ) -> Result<Issue, StoreError> {
        // A key already expired is never accepted: take the keys before it
        // one by one, as separate calls would (never seen in practice).
        if let Some(dead) = keys.iter().position(|k| k.expires_at <= now) {
            for (index, key) in keys[..dead].iter().enumerate() {
                if !self.insert_once(&key.key, key.expires_at, now).await? {
                    return Ok(Issue::Replayed(index));
                }
            }
            return Ok(Issue::Replayed(dead));
        }
        let expires_secs = ceil_secs(token.expires_at);
        let mut invocation = self.issue_script.prepare_invoke();
        invocation.arg(keys.len());
        for key in keys {
            invocation
                .key(self.key("replay", &key.key))
                .arg(ceil_millis(key.expires_at));
        }
        invocation
            .key(self.key("token", &token.token_id))
            .key(self.key("agent-tokens", &token.agent))
            .key(self.name("audit"))
            .arg(encode(token)?)
            .arg(expires_secs)
            .arg(ceil_millis(token.expires_at))
            .arg(&token.token_id)
            .arg(self.audit_max_len)
            .arg(encode(event)?);
        match self.invoke::<Value>(&invocation).await? {
            Value::Int(index) => usize::try_from(index)
                .ok()
                .filter(|i| *i < keys.len())
                .map(Issue::Replayed)
                .ok_or_else(|| StoreError::Decode(format!("unexpected key index {index}"))),
            Value::BulkString(id) => {
                let id = String::from_utf8(id)
                    .map_err(|_| StoreError::Decode("a stream id that is not text".to_owned()))?;
                Ok(Issue::Recorded(cursor_of(&id)?))
            }
            Value::SimpleString(id) => Ok(Issue::Recorded(cursor_of(&id)?)),
            other => Err(StoreError::Decode(format!(
                "unexpected reply to the issue script: {other:?}"
            ))),
        }
    }
}

#[async_trait]
impl AuditLog for RedisStore {
    async fn append(&self, event: &AuditEvent) -> Result<Cursor, StoreError> {
        let mut cmd = ::redis::cmd("XADD");
        cmd.arg(self.name("audit"))
            .arg("MAXLEN")
            .arg("~")
            .arg(self.audit_max_len)
            .arg("*")
            .arg("event")
            .arg(encode(event)?);
        let id: String = self.query(&cmd).await?;
        cursor_of(&id)
    }

    async fn query(&self, query: &AuditQuery) -> Result<Vec<(Cursor, AuditEvent)>, StoreError> {
        let stream = self.name("audit");
        let mut events = Vec::new();
        let mut after = query.after.clone();
        while events.len() < query.limit {
            let batch = self
                .read_range(&stream, after.as_ref(), AUDIT_BATCH)
                .await?;
            let done = batch.len() < AUDIT_BATCH;
            for entry in &batch {
                let cursor = cursor_of(&entry.id)?;
                let event: AuditEvent = decode(&field(entry, "event")?)?;
                if query.matches(&event) && events.len() < query.limit {
                    events.push((cursor.clone(), event));
                }
                after = Some(cursor);
            }
            if done {
                break;
            }
        }
        Ok(events)
    }
}

#[async_trait]
impl StoreHealth for RedisStore {
    async fn ping(&self) -> Result<(), StoreError> {
        let reply: String = self.query(&::redis::cmd("PING")).await?;
        if reply == "PONG" {
            Ok(())
        } else {
            Err(StoreError::Backend(format!(
                "unexpected PING reply {reply:?}"
            )))
        }
    }
}
