//! The store traits on Redis: every key comes from the layout.

use std::collections::HashMap;
use std::time::Duration;

use ::redis::streams::StreamId;
use ::redis::Value;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{
    agent_from_hash, ceil_millis, ceil_secs, cursor_of, decode, encode, field, rfc3339, RedisStore,
    AUDIT_BATCH, ISSUE_SCRIPT, REVOKE_SCRIPT,
};
use crate::records::redis::{self as layout, AUDIT_FIELD, REVOCATION_FIELD};
use crate::store::{
    AgentRecord, AgentStore, AuditEvent, AuditLog, AuditQuery, Cursor, Issuance, Issue,
    IssuedToken, OnceKey, ReplayCache, Revocation, RevocationStore, StoreError, StoreHealth,
    TokenLedger,
};

/// An agent's hash fields but `disabled` and `created_at`.
fn agent_fields(agent: &AgentRecord) -> Result<Vec<(&'static str, String)>, StoreError> {
    let mut fields = vec![
        ("id", agent.id.to_string()),
        ("public_key", agent.public_key.to_string()),
        ("description", agent.description.clone()),
        ("ceiling", encode(&agent.ceiling)?),
        ("updated_at", rfc3339(agent.updated_at)),
    ];
    if let Some(endpoint) = &agent.notification_endpoint {
        fields.push(("notification_endpoint", endpoint.clone()));
    }
    if !agent.redirect_uris.is_empty() {
        fields.push(("redirect_uris", encode(&agent.redirect_uris)?));
    }
    Ok(fields)
}

#[async_trait]
impl AgentStore for RedisStore {
    async fn put(&self, agent: &AgentRecord) -> Result<(), StoreError> {
        let key = self.layout.agent(agent.id.as_str());
        let mut fields = agent_fields(agent)?;
        fields.push((
            "disabled",
            if agent.disabled { "1" } else { "0" }.to_owned(),
        ));
        fields.push(("created_at", rfc3339(agent.created_at)));
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
            .arg(self.layout.agents())
            .arg(agent.id.as_str())
            .ignore();
        self.query_pipe::<()>(&pipe).await
    }

    async fn get(&self, id: &str) -> Result<Option<AgentRecord>, StoreError> {
        let mut cmd = ::redis::cmd("HGETALL");
        cmd.arg(self.layout.agent(id));
        let hash: HashMap<String, String> = self.query(&cmd).await?;
        if hash.is_empty() {
            return Ok(None);
        }
        agent_from_hash(hash).map(Some)
    }

    async fn list(&self) -> Result<Vec<AgentRecord>, StoreError> {
        let mut cmd = ::redis::cmd("SMEMBERS");
        cmd.arg(self.layout.agents());
        let ids: Vec<String> = self.query(&cmd).await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = ::redis::pipe();
        for id in &ids {
            pipe.cmd("HGETALL").arg(self.layout.agent(id));
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

    /// Reads the registry's ids (short strings; the registry is written by
    /// operators only), then at most `limit` records.
    async fn list_page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AgentRecord>, StoreError> {
        let mut cmd = ::redis::cmd("SMEMBERS");
        cmd.arg(self.layout.agents());
        let mut ids: Vec<String> = self.query(&cmd).await?;
        ids.retain(|id| after.is_none_or(|a| id.as_str() > a));
        ids.sort();
        ids.truncate(limit);
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = ::redis::pipe();
        for id in &ids {
            pipe.cmd("HGETALL").arg(self.layout.agent(id));
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

    async fn update(&self, agent: &AgentRecord) -> Result<Option<AgentRecord>, StoreError> {
        let mut invocation = self.update_agent_script.prepare_invoke();
        invocation.key(self.layout.agent(agent.id.as_str()));
        for (name, value) in agent_fields(agent)? {
            invocation.arg(name).arg(value);
        }
        let found: i64 = self.invoke(&invocation).await?;
        if found == 0 {
            return Ok(None);
        }
        AgentStore::get(self, agent.id.as_str()).await
    }

    async fn disable(&self, id: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let mut invocation = self.disable_script.prepare_invoke();
        invocation.key(self.layout.agent(id)).arg(rfc3339(now));
        let found: i64 = self.invoke(&invocation).await?;
        Ok(found == 1)
    }
}

#[async_trait]
impl TokenLedger for RedisStore {
    async fn record(&self, token: &IssuedToken) -> Result<(), StoreError> {
        let index = self.layout.agent_tokens(token.agent.as_str());
        let expires_secs = ceil_secs(token.expires_at);
        let mut pipe = ::redis::pipe();
        pipe.atomic()
            .cmd("SET")
            .arg(self.layout.token(&token.token_id))
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
        cmd.arg(self.layout.token(token_id));
        let found: Option<String> = self.query(&cmd).await?;
        found.map(|text| decode(&text)).transpose()
    }

    async fn outstanding(
        &self,
        agent: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<IssuedToken>, StoreError> {
        let index = self.layout.agent_tokens(agent);
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
            cmd.arg(self.layout.token(id));
        }
        let records: Vec<Option<String>> = self.query(&cmd).await?;
        let mut tokens = Vec::new();
        for text in records.into_iter().flatten() {
            let token: IssuedToken = decode(&text)?;
            if token.agent.as_str() == agent && token.expires_at > now {
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
        let json = layout::encode_revocation(revocation)
            .map_err(|e| StoreError::Backend(format!("encoding a record: {e}")))?;
        let (before, after) = layout::revoked_value_parts(&json);
        let keys = [
            self.layout.revoked(&revocation.revocation_id),
            self.layout.revocations(),
        ];
        let args = [
            json,
            ceil_secs(revocation.expires_at).to_string(),
            before,
            after,
        ];
        let id: String = self
            .durable(&self.revoke_script, REVOKE_SCRIPT, &keys, &args)
            .await?;
        cursor_of(&id)
    }

    async fn is_revoked(&self, revocation_id: &str) -> Result<bool, StoreError> {
        let mut cmd = ::redis::cmd("EXISTS");
        cmd.arg(self.layout.revoked(revocation_id));
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
            .read_range(&self.layout.revocations(), after, limit)
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
            .read_blocking(&self.layout.revocations(), after, limit, timeout)
            .await?;
        revocations_of(entries)
    }
}

fn revocations_of(entries: Vec<StreamId>) -> Result<Vec<(Cursor, Revocation)>, StoreError> {
    entries
        .iter()
        .map(|entry| {
            Ok((
                cursor_of(&entry.id)?,
                decode(&field(entry, REVOCATION_FIELD)?)?,
            ))
        })
        .collect()
}

/// The leaf bytes of `event` in the audit tree.
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
        cmd.arg(self.layout.replay(key))
            .arg(1)
            .arg("NX")
            .arg("PXAT")
            .arg(ceil_millis(expires_at));
        let reply: Value = self.query(&cmd).await?;
        Ok(!matches!(reply, Value::Nil))
    }
}

/// One script per mint (on a cluster, one script and one audit append).
#[async_trait]
impl Issuance for RedisStore {
    async fn record_issue(
        &self,
        once_keys: &[OnceKey],
        token: &IssuedToken,
        event: &AuditEvent,
        now: DateTime<Utc>,
    ) -> Result<Issue, StoreError> {
        // A key already expired is never accepted: take the keys before it
        // one by one, as separate calls would (never seen in practice).
        if let Some(dead) = once_keys.iter().position(|k| k.expires_at <= now) {
            for key in &once_keys[..dead] {
                if !self.insert_once(&key.key, key.expires_at, now).await? {
                    return Ok(Issue::Replayed(key.kind));
                }
            }
            return Ok(Issue::Replayed(once_keys[dead].kind));
        }
        let expires_secs = ceil_secs(token.expires_at);
        let mut keys = Vec::with_capacity(once_keys.len() + 3);
        let mut args = vec![once_keys.len().to_string()];
        for key in once_keys {
            keys.push(self.layout.replay(&key.key));
            args.push(ceil_millis(key.expires_at).to_string());
        }
        keys.push(self.layout.token(&token.token_id));
        keys.push(self.layout.agent_tokens(token.agent.as_str()));
        // On a cluster the audit stream is on another slot: appended below.
        if !self.is_cluster() {
            keys.push(self.layout.audit());
        }
        let event_json = encode(event)?;
        args.extend([
            encode(token)?,
            expires_secs.to_string(),
            ceil_millis(token.expires_at).to_string(),
            token.token_id.clone(),
            self.audit_max_len.to_string(),
            event_json,
        ]);
        let reply: Value = self
            .durable(&self.issue_script, ISSUE_SCRIPT, &keys, &args)
            .await?;
        let id = match reply {
            Value::Int(index) => {
                // The script answers with the position of the used key;
                // name it here, so no caller decodes positions.
                return usize::try_from(index)
                    .ok()
                    .and_then(|i| once_keys.get(i))
                    .map(|key| Issue::Replayed(key.kind))
                    .ok_or_else(|| StoreError::Decode(format!("unexpected key index {index}")));
            }
            Value::BulkString(id) => String::from_utf8(id)
                .map_err(|_| StoreError::Decode("a stream id that is not text".to_owned()))?,
            Value::SimpleString(id) => id,
            other => {
                return Err(StoreError::Decode(format!(
                    "unexpected reply to the issue script: {other:?}"
                )))
            }
        };
        if id.is_empty() {
            return Ok(Issue::Recorded(self.append(event).await?));
        }
        let cursor = cursor_of(&id)?;
        self.wake_follower();
        Ok(Issue::Recorded(cursor))
    }
}

#[async_trait]
impl AuditLog for RedisStore {
    async fn append(&self, event: &AuditEvent) -> Result<Cursor, StoreError> {
        let json = encode(event)?;
        let mut cmd = ::redis::cmd("XADD");
        cmd.arg(self.layout.audit())
            .arg(&layout::max_len_args(self.audit_max_len)[..])
            .arg("*")
            .arg(AUDIT_FIELD)
            .arg(json);
        let id: String = self.query(&cmd).await?;
        let cursor = cursor_of(&id)?;
        self.wake_follower();
        Ok(cursor)
    }

    async fn query(&self, query: &AuditQuery) -> Result<Vec<(Cursor, AuditEvent)>, StoreError> {
        let stream = self.layout.audit();
        let mut events = Vec::new();
        let mut after = query.after.clone();
        while events.len() < query.limit {
            let batch = self
                .read_range(&stream, after.as_ref(), AUDIT_BATCH)
                .await?;
            let done = batch.len() < AUDIT_BATCH;
            for entry in &batch {
                let cursor = cursor_of(&entry.id)?;
                let event: AuditEvent = decode(&field(entry, AUDIT_FIELD)?)?;
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
        if self.is_cluster() {
            // Asks every node; any failure is an error.
            return self.query::<Value>(&::redis::cmd("PING")).await.map(|_| ());
        }
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
