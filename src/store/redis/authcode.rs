//! [`AuthCodeStore`] on Redis.
//!
//! A code is `P{code:<hash>}:code` (JSON) and `P{code:<hash>}:used`; one
//! script takes it (exactly one caller sees it unused). A refresh family
//! is four keys under `{fam:<id>}`: the record, the hash of the current
//! refresh token, the revoked flag and the list of its access tokens; one
//! script rotates (or, on a stale token, revokes). Remembered consents are
//! one hash per person under the `people` tag, bounded by one script. Every
//! key expires with what it holds; writes wait for a replica when there is
//! one ([`RedisStore::durable`]).

use std::sync::LazyLock;

use ::redis::Script;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::RedisStore;
use crate::store::authcode::{
    AuthCode, AuthCodeStore, CodeTake, FamilyToken, RefreshFamily, RememberedConsent, Rotation,
    MAX_CONSENT_FAMILIES, MAX_FAMILY_TOKENS, MAX_REMEMBERED_PER_PERSON, SPENT_CODE_KEPT_SECS,
};
use crate::store::StoreError;
use crate::token::{Audience, Person};

/// KEYS: code, used. ARGV: drop time (ms). Returns {0} if unknown, {1, rec}
/// if it was unused (now used), {2, rec} if used before.
const TAKE_CODE: &str = r#"
local rec = redis.call('GET', KEYS[1])
if not rec then return {0, ''} end
if redis.call('SET', KEYS[2], '1', 'NX', 'PXAT', ARGV[1]) then return {1, rec} end
return {2, rec}
"#;

/// KEYS: current, revoked. ARGV: presented, next, drop time (ms). Returns
/// 0 unknown, 1 rotated, 2 revoked before, 3 reused (now revoked).
const ROTATE: &str = r#"
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
if redis.call('EXISTS', KEYS[2]) == 1 then return 2 end
if cur ~= ARGV[1] then
  redis.call('SET', KEYS[2], '1', 'PXAT', ARGV[3])
  return 3
end
redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
return 1
"#;

/// KEYS: family, tokens. ARGV: entry, most entries, drop time (ms).
const ADD_TOKEN: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[2]), -1)
redis.call('PEXPIREAT', KEYS[2], ARGV[3])
return 1
"#;

/// KEYS: family, revoked. ARGV: drop time (ms). Returns 1 if the family exists.
const REVOKE: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('SET', KEYS[2], '1', 'PXAT', ARGV[1])
return 1
"#;

/// KEYS: the person's hash. ARGV: field, value, most fields. Returns 1, or
/// -1 when full.
const REMEMBER: &str = r#"
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then
  return -1
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"#;

/// KEYS: the person's hash. ARGV: field, family id, most kept. Returns 1
/// if the consent was there (and now lists the family).
const ADD_FAMILY: &str = r#"
local rec = redis.call('HGET', KEYS[1], ARGV[1])
if not rec then return 0 end
local c = cjson.decode(rec)
local f = c['families']
if type(f) ~= 'table' then f = {} end
table.insert(f, ARGV[2])
while #f > tonumber(ARGV[3]) do table.remove(f, 1) end
c['families'] = f
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(c))
return 1
"#;

/// KEYS: the person's hash. ARGV: field. Returns 1 if it was there.
const FORGET: &str = r#"
return redis.call('HDEL', KEYS[1], ARGV[1])
"#;

static TAKE_CODE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(TAKE_CODE));
static ROTATE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(ROTATE));
static ADD_TOKEN_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(ADD_TOKEN));
static REVOKE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(REVOKE));
static REMEMBER_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(REMEMBER));
static FORGET_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(FORGET));
static ADD_FAMILY_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(ADD_FAMILY));

fn to_json<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Backend(format!("encoding a record: {e}")))
}

fn from_json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Decode(e.to_string()))
}

fn millis(t: DateTime<Utc>) -> String {
    t.timestamp_millis().max(1).to_string()
}

fn consent_field(client_id: &str, resource: &Audience) -> String {
    format!("{client_id}\n{resource}")
}

impl RedisStore {
    /// Reads a family's four keys in one round trip.
    async fn read_family(&self, id: &str) -> Result<Option<RefreshFamily>, StoreError> {
        let k = |part: &str| self.layout.refresh_family(id, part);
        let mut pipe = ::redis::pipe();
        pipe.cmd("GET")
            .arg(k("family"))
            .cmd("GET")
            .arg(k("current"))
            .cmd("EXISTS")
            .arg(k("revoked"))
            .cmd("LRANGE")
            .arg(k("tokens"))
            .arg(0)
            .arg(-1);
        let (record, current, revoked, tokens): (
            Option<String>,
            Option<String>,
            bool,
            Vec<String>,
        ) = self.query_pipe(&pipe).await?;
        let (Some(record), Some(current)) = (record, current) else {
            return Ok(None);
        };
        let mut family: RefreshFamily = from_json(&record)?;
        family.refresh_hash = current;
        family.revoked = revoked;
        family.tokens = tokens
            .iter()
            .map(|t| from_json(t))
            .collect::<Result<_, _>>()?;
        Ok(Some(family))
    }
}

#[async_trait]
impl AuthCodeStore for RedisStore {
    async fn put_code(&self, code: &AuthCode, _now: DateTime<Utc>) -> Result<(), StoreError> {
        let drop_at = code.expires_at + chrono::Duration::seconds(SPENT_CODE_KEPT_SECS);
        let mut cmd = ::redis::cmd("SET");
        cmd.arg(self.layout.auth_code(&code.code_hash))
            .arg(to_json(code)?)
            .arg("PXAT")
            .arg(millis(drop_at));
        let _: () = self.query(&cmd).await?;
        Ok(())
    }

    async fn take_code(&self, code_hash: &str, now: DateTime<Utc>) -> Result<CodeTake, StoreError> {
        // The used flag lives as long as the record could: a code's drop
        // time is its expiry plus SPENT_CODE_KEPT_SECS, and codes live
        // minutes, so an hour covers it.
        let until = now + chrono::Duration::hours(1);
        let (status, rec): (i64, String) = self
            .durable(
                &TAKE_CODE_SCRIPT,
                TAKE_CODE,
                &[
                    self.layout.auth_code(code_hash),
                    self.layout.auth_code_used(code_hash),
                ],
                &[millis(until)],
            )
            .await?;
        Ok(match status {
            1 => CodeTake::Fresh(from_json(&rec)?),
            2 => CodeTake::Spent(from_json(&rec)?),
            _ => CodeTake::Unknown,
        })
    }

    async fn start_family(
        &self,
        family: &RefreshFamily,
        _now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let k = |part: &str| self.layout.refresh_family(&family.id, part);
        let at = millis(family.expires_at);
        let mut pipe = ::redis::pipe();
        pipe.atomic()
            .cmd("SET")
            .arg(k("family"))
            .arg(to_json(family)?)
            .arg("PXAT")
            .arg(&at)
            .ignore()
            .cmd("SET")
            .arg(k("current"))
            .arg(&family.refresh_hash)
            .arg("PXAT")
            .arg(&at)
            .ignore();
        if family.revoked {
            pipe.cmd("SET")
                .arg(k("revoked"))
                .arg("1")
                .arg("PXAT")
                .arg(&at)
                .ignore();
        }
        for t in &family.tokens {
            pipe.cmd("RPUSH").arg(k("tokens")).arg(to_json(t)?).ignore();
        }
        if !family.tokens.is_empty() {
            pipe.cmd("PEXPIREAT").arg(k("tokens")).arg(&at).ignore();
        }
        let _: () = self.query_pipe(&pipe).await?;
        Ok(())
    }

    async fn rotate(
        &self,
        family_id: &str,
        presented: &str,
        next: &str,
        now: DateTime<Utc>,
    ) -> Result<Rotation, StoreError> {
        let Some(before) = self.read_family(family_id).await? else {
            return Ok(Rotation::Unknown);
        };
        if before.expires_at <= now {
            return Ok(Rotation::Unknown);
        }
        let status: i64 = self
            .durable(
                &ROTATE_SCRIPT,
                ROTATE,
                &[
                    self.layout.refresh_family(family_id, "current"),
                    self.layout.refresh_family(family_id, "revoked"),
                ],
                &[
                    presented.to_owned(),
                    next.to_owned(),
                    millis(before.expires_at),
                ],
            )
            .await?;
        let Some(after) = self.read_family(family_id).await? else {
            return Ok(Rotation::Unknown);
        };
        Ok(match status {
            1 => Rotation::Rotated(after),
            2 => Rotation::Revoked(after),
            3 => Rotation::Reused(after),
            _ => Rotation::Unknown,
        })
    }

    async fn add_family_token(
        &self,
        family_id: &str,
        token: &FamilyToken,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let Some(family) = self.family(family_id, now).await? else {
            return Ok(());
        };
        let _: i64 = self
            .durable(
                &ADD_TOKEN_SCRIPT,
                ADD_TOKEN,
                &[
                    self.layout.refresh_family(family_id, "family"),
                    self.layout.refresh_family(family_id, "tokens"),
                ],
                &[
                    to_json(token)?,
                    MAX_FAMILY_TOKENS.to_string(),
                    millis(family.expires_at),
                ],
            )
            .await?;
        Ok(())
    }

    async fn revoke_family(
        &self,
        family_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<RefreshFamily>, StoreError> {
        let Some(family) = self.family(family_id, now).await? else {
            return Ok(None);
        };
        let _: i64 = self
            .durable(
                &REVOKE_SCRIPT,
                REVOKE,
                &[
                    self.layout.refresh_family(family_id, "family"),
                    self.layout.refresh_family(family_id, "revoked"),
                ],
                &[millis(family.expires_at)],
            )
            .await?;
        self.read_family(family_id).await
    }

    async fn family(
        &self,
        family_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<RefreshFamily>, StoreError> {
        Ok(self
            .read_family(family_id)
            .await?
            .filter(|f| f.expires_at > now))
    }

    async fn remember(&self, consent: &RememberedConsent) -> Result<(), StoreError> {
        let added: i64 = self
            .durable(
                &REMEMBER_SCRIPT,
                REMEMBER,
                &[self.layout.remembered_consents(&consent.person)],
                &[
                    consent_field(&consent.client_id, &consent.resource),
                    to_json(consent)?,
                    MAX_REMEMBERED_PER_PERSON.to_string(),
                ],
            )
            .await?;
        if added < 0 {
            return Err(StoreError::Limit(format!(
                "a person remembers at most {MAX_REMEMBERED_PER_PERSON} consents"
            )));
        }
        Ok(())
    }

    async fn add_consent_family(
        &self,
        person: &Person,
        client_id: &str,
        resource: &Audience,
        family_id: &str,
    ) -> Result<bool, StoreError> {
        let added: i64 = self
            .durable(
                &ADD_FAMILY_SCRIPT,
                ADD_FAMILY,
                &[self.layout.remembered_consents(person)],
                &[
                    consent_field(client_id, resource),
                    family_id.to_owned(),
                    MAX_CONSENT_FAMILIES.to_string(),
                ],
            )
            .await?;
        Ok(added == 1)
    }

    async fn remembered(&self, person: &Person) -> Result<Vec<RememberedConsent>, StoreError> {
        let mut cmd = ::redis::cmd("HVALS");
        cmd.arg(self.layout.remembered_consents(person));
        let values: Vec<String> = self.query(&cmd).await?;
        let mut list = values
            .iter()
            .map(|v| from_json::<RememberedConsent>(v))
            .collect::<Result<Vec<_>, _>>()?;
        list.sort_by(|a, b| (&a.client_id, &a.resource).cmp(&(&b.client_id, &b.resource)));
        Ok(list)
    }

    async fn forget(
        &self,
        person: &Person,
        client_id: &str,
        resource: &Audience,
    ) -> Result<bool, StoreError> {
        let removed: i64 = self
            .durable(
                &FORGET_SCRIPT,
                FORGET,
                &[self.layout.remembered_consents(person)],
                &[consent_field(client_id, resource)],
            )
            .await?;
        Ok(removed == 1)
    }
}
