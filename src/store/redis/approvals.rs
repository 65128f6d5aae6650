//! [`ApprovalStore`] on Redis, every key under the `approvals` tag (see
//! [`RedisLayout::approval`](crate::records::redis::RedisLayout::approval)).
//!
//! A request is one string (its JSON), expiring when it may be dropped.
//! `create` is one script: it drops expired entries of the agent's and the
//! person's pending sets, refuses past the bounds, then writes the record
//! and the indexes. A change (decide, poll) reads the record, applies the
//! pure transition of [`Approval`] and writes it back with a
//! compare-and-set script that also leaves the pending sets when the
//! request stops pending; a lost race reads again. So a request is decided
//! once and collected once, however many issuers share the store.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{ceil_millis, decode, encode, RedisStore};
use crate::store::approvals::{
    select, Approval, ApprovalStatus, ApprovalStore, Decided, Decider, Polled, Verdict,
    MAX_LIST_SCAN, MAX_PENDING_PER_AGENT, MAX_PENDING_PER_PERSON,
};
use crate::store::StoreError;
use crate::token::{AgentId, Person};

/// How many times a change reads again after losing a race.
const MAX_ATTEMPTS: usize = 16;

/// KEYS: the record, the agent's pending set, the person's pending set,
/// the person's kept set, every kept request's set. ARGV: JSON, expiry ms, drop ms, now ms, id, most
/// pending per agent, most per person. Returns 1, or -1 / -2 when the
/// agent / person has too many pending, -3 when the id is taken.
pub(super) const CREATE_SCRIPT: &str = r#"
local now = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now)
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[6]) then return -1 end
if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[7]) then return -2 end
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PXAT', ARGV[3]) then return -3 end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[5])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[5])
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[5])
redis.call('ZADD', KEYS[5], ARGV[3], ARGV[5])
local drop = tonumber(ARGV[3])
for i = 2, 5 do
  local ttl = redis.call('PTTL', KEYS[i])
  if ttl < 0 or now + ttl < drop then
    redis.call('PEXPIREAT', KEYS[i], drop)
  end
end
return 1
"#;

/// KEYS: the record, the agent's pending set, the person's pending set.
/// ARGV: the JSON expected, the new JSON, the id, `1` if the request
/// leaves pending. Returns 1 if written, 0 if the record changed (or went).
pub(super) const CAS_SCRIPT: &str = r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
if ARGV[4] == '1' then
  redis.call('ZREM', KEYS[2], ARGV[3])
  redis.call('ZREM', KEYS[3], ARGV[3])
end
return 1
"#;

impl RedisStore {
    /// Reads the record, applies `change`, and writes it back if `change`
    /// says it changed and nobody wrote it in between (else reads again).
    async fn change_approval<T>(
        &self,
        id: &str,
        change: impl Fn(&mut Approval) -> (T, bool),
    ) -> Result<Option<T>, StoreError> {
        let key = self.layout.approval(id);
        for _ in 0..MAX_ATTEMPTS {
            let mut get = ::redis::cmd("GET");
            get.arg(&key);
            let Some(raw): Option<String> = self.query(&get).await? else {
                return Ok(None);
            };
            let mut record: Approval = decode(&raw)?;
            let was = record.status;
            let (outcome, changed) = change(&mut record);
            if !changed {
                return Ok(Some(outcome));
            }
            let leaves = was == ApprovalStatus::Pending && record.status != ApprovalStatus::Pending;
            let keys = [
                key.clone(),
                self.layout.approvals_pending_agent(record.agent.as_str()),
                self.layout.approvals_pending_person(&record.person),
            ];
            let args = [
                raw,
                encode(&record)?,
                id.to_owned(),
                if leaves { "1" } else { "0" }.to_owned(),
            ];
            let written: i64 = self
                .durable(&self.approval_cas_script, CAS_SCRIPT, &keys, &args)
                .await?;
            if written == 1 {
                return Ok(Some(outcome));
            }
        }
        Err(StoreError::Unavailable(format!(
            "approval {id} changed {MAX_ATTEMPTS} times while being updated"
        )))
    }
}

#[async_trait]
impl ApprovalStore for RedisStore {
    async fn create(&self, approval: &Approval, now: DateTime<Utc>) -> Result<(), StoreError> {
        let keys = [
            self.layout.approval(&approval.id),
            self.layout.approvals_pending_agent(approval.agent.as_str()),
            self.layout.approvals_pending_person(&approval.person),
            self.layout.person_approvals(&approval.person),
            self.layout.all_approvals(),
        ];
        let args = [
            encode(approval)?,
            ceil_millis(approval.expires_at).to_string(),
            ceil_millis(approval.drop_at()).to_string(),
            now.timestamp_millis().to_string(),
            approval.id.clone(),
            MAX_PENDING_PER_AGENT.to_string(),
            MAX_PENDING_PER_PERSON.to_string(),
        ];
        let created: i64 = self
            .durable(&self.approval_create_script, CREATE_SCRIPT, &keys, &args)
            .await?;
        match created {
            1 => Ok(()),
            -1 => Err(StoreError::Limit(format!(
                "an agent has at most {MAX_PENDING_PER_AGENT} requests for approval pending"
            ))),
            -2 => Err(StoreError::Limit(format!(
                "a person has at most {MAX_PENDING_PER_PERSON} requests for approval pending"
            ))),
            _ => Err(StoreError::Backend(format!(
                "approval id {} is taken already",
                approval.id
            ))),
        }
    }

    async fn get(&self, id: &str) -> Result<Option<Approval>, StoreError> {
        let mut get = ::redis::cmd("GET");
        get.arg(self.layout.approval(id));
        let raw: Option<String> = self.query(&get).await?;
        raw.map(|r| decode(&r)).transpose()
    }

    async fn decide(
        &self,
        id: &str,
        by: &Decider,
        verdict: Verdict,
        now: DateTime<Utc>,
    ) -> Result<Decided, StoreError> {
        let outcome = self
            .change_approval(id, |a| {
                let outcome = a.decide(by, verdict, now);
                let changed = matches!(outcome, Decided::Decided(_));
                (outcome, changed)
            })
            .await?;
        Ok(outcome.unwrap_or(Decided::Unknown))
    }

    async fn poll(
        &self,
        id: &str,
        agent: &AgentId,
        now: DateTime<Utc>,
    ) -> Result<Polled, StoreError> {
        let outcome = self.change_approval(id, |a| a.poll(agent, now)).await?;
        Ok(outcome.unwrap_or(Polled::Unknown))
    }

    async fn for_person(&self, person: &Person, limit: usize) -> Result<Vec<Approval>, StoreError> {
        let mut range = ::redis::cmd("ZRANGE");
        range
            .arg(self.layout.person_approvals(person))
            .arg(0)
            .arg(-1);
        let ids: Vec<String> = self.query(&range).await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut get = ::redis::cmd("MGET");
        for id in &ids {
            get.arg(self.layout.approval(id));
        }
        let raws: Vec<Option<String>> = self.query(&get).await?;
        let mut found = raws
            .into_iter()
            .flatten()
            .map(|r| decode::<Approval>(&r))
            .collect::<Result<Vec<_>, _>>()?;
        found.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
        found.truncate(limit);
        Ok(found)
    }

    async fn list(
        &self,
        status: Option<ApprovalStatus>,
        limit: usize,
    ) -> Result<Vec<Approval>, StoreError> {
        let mut range = ::redis::cmd("ZRANGE");
        range
            .arg(self.layout.all_approvals())
            .arg(0)
            .arg(MAX_LIST_SCAN - 1)
            .arg("REV");
        let ids: Vec<String> = self.query(&range).await?;
        let mut found = Vec::new();
        for chunk in ids.chunks(100) {
            let mut get = ::redis::cmd("MGET");
            for id in chunk {
                get.arg(self.layout.approval(id));
            }
            let raws: Vec<Option<String>> = self.query(&get).await?;
            for raw in raws.into_iter().flatten() {
                found.push(decode::<Approval>(&raw)?);
            }
        }
        Ok(select(found, status, limit))
    }
}
