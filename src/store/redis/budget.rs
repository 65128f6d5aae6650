//! [`BudgetLedger`] on Redis: one Lua script per operation, under the
//! `budget` tag (one hash slot, so a script may touch every budget of a
//! chain atomically, on a cluster too).
//!
//! Keys (see [`RedisLayout::budget`](crate::records::redis::RedisLayout::budget)):
//! a hash per budget with its committed total and one field per pending
//! reservation (`r:<id>` = `<amount>:<expiry ms>`), a hash per reservation,
//! and a string per idempotency key holding the request's fingerprint and
//! its outcome. Expired reservations are dropped from a budget by the next
//! reservation on it and never count toward it once expired.
//!
//! A script that runs twice (a connection dropped after Redis ran it, and
//! the call retried) is harmless: the retry carries the same idempotency
//! key and reservation id, and commit and release are idempotent.

use std::sync::LazyLock;

use ::redis::Script;
use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};

use super::RedisStore;
use crate::store::budget::{
    expiry, ms, new_reservation_id, BudgetLedger, BudgetState, Reservation, ReserveRequest,
    Reserved, Settled, IDEMPOTENCY_RETENTION, MAX_PENDING_PER_BUDGET,
};
use crate::store::StoreError;

/// KEYS: idempotency key, reservation key, then each budget's hash.
/// ARGV: fingerprint, reservation id, amount, currency, now ms, expiry ms,
/// retention ms, keep-until ms, max pending, budget keys (space separated),
/// then each budget's limit.
/// Returns `{"ok", id, exp}`, `{"replay", outcome}`, `{"conflict"}`, or
/// `{"exceeded"|"currency"|"busy", index}`.
pub(super) const RESERVE_SCRIPT: &str = r#"
local seen = redis.call('GET', KEYS[1])
if seen then
  local nl = string.find(seen, '\n', 1, true)
  if string.sub(seen, 1, nl - 1) ~= ARGV[1] then return {'conflict'} end
  return {'replay', string.sub(seen, nl + 1)}
end
local amount = tonumber(ARGV[3])
local now = tonumber(ARGV[5])
local maxp = tonumber(ARGV[9])
local n = #KEYS - 2
local refusal = nil
for i = 1, n do
  local k = KEYS[i + 2]
  local limit = tonumber(ARGV[10 + i])
  local all = redis.call('HGETALL', k)
  local committed, reserved, pending, cur = 0, 0, 0, nil
  for j = 1, #all, 2 do
    local f, v = all[j], all[j + 1]
    if f == 'committed' then committed = tonumber(v)
    elseif f == 'currency' then cur = v
    elseif f == 'limit' then limit = math.min(limit, tonumber(v))
    elseif string.sub(f, 1, 2) == 'r:' then
      local c = string.find(v, ':', 1, true)
      if tonumber(string.sub(v, c + 1)) <= now then
        redis.call('HDEL', k, f)
      else
        reserved = reserved + tonumber(string.sub(v, 1, c - 1))
        pending = pending + 1
      end
    end
  end
  if cur and cur ~= ARGV[4] then refusal = 'currency'
  elseif pending >= maxp then refusal = 'busy'
  elseif committed + reserved + amount > limit then refusal = 'exceeded' end
  if refusal then
    redis.call('SET', KEYS[1], ARGV[1] .. '\n' .. refusal .. ':' .. i, 'PX', ARGV[7])
    return {refusal, tostring(i)}
  end
end
for i = 1, n do
  local k = KEYS[i + 2]
  local limit = tonumber(ARGV[10 + i])
  local old = redis.call('HGET', k, 'limit')
  if old then limit = math.min(limit, tonumber(old)) end
  redis.call('HSET', k, 'currency', ARGV[4], 'limit', limit, 'r:' .. ARGV[2], ARGV[3] .. ':' .. ARGV[6])
  redis.call('HSETNX', k, 'committed', 0)
  local ttl = redis.call('PTTL', k)
  local keep = tonumber(ARGV[8]) - now
  if ttl < keep then redis.call('PEXPIRE', k, keep) end
end
redis.call('HSET', KEYS[2], 'state', 'pending', 'amount', ARGV[3], 'exp', ARGV[6], 'keys', ARGV[10])
redis.call('PEXPIRE', KEYS[2], ARGV[7])
redis.call('SET', KEYS[1], ARGV[1] .. '\n' .. 'ok:' .. ARGV[2] .. ':' .. ARGV[6], 'PX', ARGV[7])
return {'ok', ARGV[2], ARGV[6]}
"#;

/// KEYS: the reservation. ARGV: reservation id, now ms, 1 to commit or 0
/// to release, the budget key prefix. Returns the state after.
pub(super) const SETTLE_SCRIPT: &str = r#"
local r = redis.call('HMGET', KEYS[1], 'state', 'amount', 'exp', 'keys')
if not r[1] then return 'unknown' end
if r[1] ~= 'pending' then return r[1] end
local state = 'released'
if tonumber(r[3]) <= tonumber(ARGV[2]) then state = 'expired'
elseif ARGV[3] == '1' then state = 'committed' end
for k in string.gmatch(r[4], '%S+') do
  local key = ARGV[4] .. k
  local held = redis.call('HDEL', key, 'r:' .. ARGV[1])
  if held == 1 and state == 'committed' then
    redis.call('HINCRBY', key, 'committed', r[2])
  end
end
redis.call('HSET', KEYS[1], 'state', state)
return state
"#;

static RESERVE: LazyLock<Script> = LazyLock::new(|| Script::new(RESERVE_SCRIPT));
static SETTLE: LazyLock<Script> = LazyLock::new(|| Script::new(SETTLE_SCRIPT));

fn settled(s: &str) -> Result<Settled, StoreError> {
    Ok(match s {
        "committed" => Settled::Committed,
        "released" => Settled::Released,
        "expired" => Settled::Expired,
        "unknown" => Settled::Unknown,
        other => {
            return Err(StoreError::Decode(format!(
                "unexpected settle reply {other:?}"
            )))
        }
    })
}

fn time(ms: i64) -> Result<DateTime<Utc>, StoreError> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .ok_or_else(|| StoreError::Decode("expiry out of range".into()))
}

impl RedisStore {
    async fn settle(
        &self,
        id: &str,
        now: DateTime<Utc>,
        commit: bool,
    ) -> Result<Settled, StoreError> {
        if !crate::store::budget::valid_token(id, 64) {
            return Ok(Settled::Unknown);
        }
        let prefix = self.layout.budget("");
        let state: String = self
            .durable(
                &SETTLE,
                SETTLE_SCRIPT,
                &[self.layout.budget_reservation(id)],
                &[
                    id.to_owned(),
                    ms(now).to_string(),
                    if commit { "1" } else { "0" }.to_owned(),
                    prefix,
                ],
            )
            .await?;
        settled(&state)
    }
}

#[async_trait]
impl BudgetLedger for RedisStore {
    async fn reserve(
        &self,
        req: &ReserveRequest,
        now: DateTime<Utc>,
    ) -> Result<Reserved, StoreError> {
        req.validate()?;
        let id = new_reservation_id();
        let exp = ms(expiry(now, req.ttl));
        let mut keys = vec![
            self.layout
                .budget_idempotency(&req.charges[0].key, &req.idempotency_key),
            self.layout.budget_reservation(&id),
        ];
        keys.extend(req.charges.iter().map(|c| self.layout.budget(&c.key)));
        let names: Vec<&str> = req.charges.iter().map(|c| c.key.as_str()).collect();
        let mut args = vec![
            req.fingerprint(),
            id.clone(),
            req.amount.to_string(),
            req.currency.clone(),
            ms(now).to_string(),
            exp.to_string(),
            IDEMPOTENCY_RETENTION.as_millis().to_string(),
            ms(req.keep_until).to_string(),
            MAX_PENDING_PER_BUDGET.to_string(),
            names.join(" "),
        ];
        args.extend(req.charges.iter().map(|c| c.limit.to_string()));
        let reply: Vec<String> = self.durable(&RESERVE, RESERVE_SCRIPT, &keys, &args).await?;
        let outcome = match reply.as_slice() {
            [kind, rest] if kind == "replay" => {
                // `ok:<id>:<exp>` or `<refusal>:<index>`.
                let parts: Vec<&str> = rest.split(':').collect();
                match parts.as_slice() {
                    ["ok", id, exp] => vec!["ok".to_owned(), (*id).to_owned(), (*exp).to_owned()],
                    [kind, i] => vec![(*kind).to_owned(), (*i).to_owned()],
                    _ => return Err(StoreError::Decode("unexpected idempotency record".into())),
                }
            }
            _ => reply,
        };
        let which = |i: &str| -> Result<String, StoreError> {
            i.parse::<usize>()
                .ok()
                .and_then(|i| req.charges.get(i.wrapping_sub(1)))
                .map(|c| c.key.clone())
                .ok_or_else(|| StoreError::Decode("unexpected budget index".into()))
        };
        Ok(match outcome.as_slice() {
            [k, id, exp] if k == "ok" => Reserved::Reserved(Reservation {
                id: id.clone(),
                keys: req.charges.iter().map(|c| c.key.clone()).collect(),
                amount: req.amount,
                currency: req.currency.clone(),
                expires_at: time(
                    exp.parse()
                        .map_err(|_| StoreError::Decode("expiry".into()))?,
                )?,
            }),
            [k] if k == "conflict" => Reserved::IdempotencyConflict,
            [k, i] if k == "exceeded" => Reserved::Exceeded { which: which(i)? },
            [k, i] if k == "currency" => Reserved::CurrencyMismatch { which: which(i)? },
            [k, i] if k == "busy" => Reserved::Busy { which: which(i)? },
            _ => return Err(StoreError::Decode("unexpected reserve reply".into())),
        })
    }

    async fn commit(&self, id: &str, now: DateTime<Utc>) -> Result<Settled, StoreError> {
        self.settle(id, now, true).await
    }

    async fn release(&self, id: &str, now: DateTime<Utc>) -> Result<Settled, StoreError> {
        self.settle(id, now, false).await
    }

    async fn show(&self, key: &str, now: DateTime<Utc>) -> Result<Option<BudgetState>, StoreError> {
        if !crate::store::budget::valid_token(key, 64) {
            return Ok(None);
        }
        let mut cmd = ::redis::cmd("HGETALL");
        cmd.arg(self.layout.budget(key));
        let all: Vec<(String, String)> = self.query(&cmd).await?;
        if all.is_empty() {
            return Ok(None);
        }
        let now = ms(now);
        let mut state = BudgetState {
            key: key.to_owned(),
            currency: String::new(),
            limit: 0,
            committed: 0,
            reserved: 0,
        };
        let int = |v: &str| {
            v.parse::<i64>()
                .map_err(|_| StoreError::Decode("budget field".into()))
        };
        for (f, v) in &all {
            match f.as_str() {
                "currency" => state.currency = v.clone(),
                "limit" => state.limit = int(v)?,
                "committed" => state.committed = int(v)?,
                _ if f.starts_with("r:") => {
                    let (amount, exp) = v
                        .split_once(':')
                        .ok_or_else(|| StoreError::Decode("reservation field".into()))?;
                    if int(exp)? > now {
                        state.reserved = state.reserved.saturating_add(int(amount)?);
                    }
                }
                _ => {}
            }
        }
        Ok(Some(state))
    }
}
