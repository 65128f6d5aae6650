//! [`ApprovalStore`] on the embedded store.
//!
//! Records are JSON by id. Two indexes keep the bounds cheap: the pending
//! requests of each agent and each person (`pending`, by owner, with their
//! expiry), and every kept request of a person (`person_approvals`, with
//! the time the record may be dropped). A write applies the pure
//! transition of [`Approval`] inside one write transaction, so decide-once
//! and collect-once hold (the writer applies operations one after another).
//! Each `create` drops a few records past [`Approval::drop_at`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

use super::{decode, encode, micros, DbResult, RedbStore, PURGE_BATCH};
use crate::records::redis::person_id;
use crate::store::approvals::{
    select, Approval, ApprovalStatus, ApprovalStore, Decided, Decider, Polled, Verdict,
    MAX_LIST_SCAN, MAX_PENDING_PER_AGENT, MAX_PENDING_PER_PERSON,
};
use crate::store::StoreError;
use crate::token::{AgentId, Person};

/// Approval id -> JSON [`Approval`].
pub(super) const APPROVALS: TableDefinition<&str, &[u8]> = TableDefinition::new("approvals");
/// (owner, approval id) -> expiry in microseconds, for pending requests
/// only. The owner is `agent:<id>` or `person:<person id>`.
pub(super) const PENDING: TableDefinition<(&str, &str), i64> =
    TableDefinition::new("approvals_pending");
/// (person id, approval id) -> drop time in microseconds.
pub(super) const BY_PERSON: TableDefinition<(&str, &str), i64> =
    TableDefinition::new("person_approvals");
/// (drop time in microseconds, approval id), to drop old records.
pub(super) const DROP: TableDefinition<(i64, &str), ()> = TableDefinition::new("approvals_drop");

/// Opens every table (at store start).
pub(super) fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(APPROVALS).db()?;
    txn.open_table(PENDING).db()?;
    txn.open_table(BY_PERSON).db()?;
    txn.open_table(DROP).db()?;
    Ok(())
}

fn agent_owner(agent: &AgentId) -> String {
    format!("agent:{}", agent.as_str())
}

fn person_owner(person: &Person) -> String {
    format!("person:{}", person_id(person))
}

/// Counts the owner's pending requests unexpired at `now`, dropping the
/// expired entries of the index.
fn pending_count(
    txn: &WriteTransaction,
    owner: &str,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let mut table = txn.open_table(PENDING).db()?;
    let mut live = 0;
    let mut stale = Vec::new();
    for entry in table.range((owner, "")..).db()? {
        let (k, v) = entry.db()?;
        let (o, id) = k.value();
        if o != owner {
            break;
        }
        if v.value() > micros(now) {
            live += 1;
        } else {
            stale.push(id.to_owned());
        }
    }
    for id in stale {
        table.remove((owner, id.as_str())).db()?;
    }
    Ok(live)
}

/// Drops up to [`PURGE_BATCH`] records past their drop time.
fn purge(txn: &WriteTransaction, now: DateTime<Utc>) -> Result<(), StoreError> {
    let mut drop = txn.open_table(DROP).db()?;
    let mut approvals = txn.open_table(APPROVALS).db()?;
    let mut by_person = txn.open_table(BY_PERSON).db()?;
    let mut pending = txn.open_table(PENDING).db()?;
    let mut done = Vec::new();
    for entry in drop.range(..(micros(now), "")).db()?.take(PURGE_BATCH) {
        let (k, _) = entry.db()?;
        let (at, id) = k.value();
        done.push((at, id.to_owned()));
    }
    for (at, id) in done {
        drop.remove((at, id.as_str())).db()?;
        let Some(old) = approvals.remove(id.as_str()).db()? else {
            continue;
        };
        let old: Approval = decode(old.value())?;
        by_person
            .remove((person_id(&old.person).as_str(), id.as_str()))
            .db()?;
        pending
            .remove((agent_owner(&old.agent).as_str(), id.as_str()))
            .db()?;
        pending
            .remove((person_owner(&old.person).as_str(), id.as_str()))
            .db()?;
    }
    Ok(())
}

fn create_in(
    txn: &WriteTransaction,
    approval: &Approval,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    purge(txn, now)?;
    let agent = agent_owner(&approval.agent);
    let person = person_owner(&approval.person);
    if pending_count(txn, &agent, now)? >= MAX_PENDING_PER_AGENT {
        return Err(StoreError::Limit(format!(
            "an agent has at most {MAX_PENDING_PER_AGENT} requests for approval pending"
        )));
    }
    if pending_count(txn, &person, now)? >= MAX_PENDING_PER_PERSON {
        return Err(StoreError::Limit(format!(
            "a person has at most {MAX_PENDING_PER_PERSON} requests for approval pending"
        )));
    }
    let id = approval.id.as_str();
    let mut approvals = txn.open_table(APPROVALS).db()?;
    if approvals.get(id).db()?.is_some() {
        return Err(StoreError::Backend(format!(
            "approval id {id} is taken already"
        )));
    }
    approvals.insert(id, encode(approval)?.as_slice()).db()?;
    let expires = micros(approval.expires_at);
    let drop_at = micros(approval.drop_at());
    let mut pending = txn.open_table(PENDING).db()?;
    pending.insert((agent.as_str(), id), expires).db()?;
    pending.insert((person.as_str(), id), expires).db()?;
    txn.open_table(BY_PERSON)
        .db()?
        .insert((person_id(&approval.person).as_str(), id), drop_at)
        .db()?;
    txn.open_table(DROP).db()?.insert((drop_at, id), ()).db()?;
    Ok(())
}

/// Reads the record, applies `change`, and writes it back when `change`
/// says it changed; leaving `pending` also leaves the pending index.
fn change_in<T>(
    txn: &WriteTransaction,
    id: &str,
    change: impl Fn(&mut Approval) -> (T, bool),
) -> Result<Option<T>, StoreError> {
    let mut approvals = txn.open_table(APPROVALS).db()?;
    let Some(mut record) = approvals
        .get(id)
        .db()?
        .map(|v| decode::<Approval>(v.value()))
        .transpose()?
    else {
        return Ok(None);
    };
    let was = record.status;
    let (outcome, changed) = change(&mut record);
    if changed {
        approvals.insert(id, encode(&record)?.as_slice()).db()?;
        if was == ApprovalStatus::Pending && record.status != ApprovalStatus::Pending {
            let mut pending = txn.open_table(PENDING).db()?;
            pending
                .remove((agent_owner(&record.agent).as_str(), id))
                .db()?;
            pending
                .remove((person_owner(&record.person).as_str(), id))
                .db()?;
        }
    }
    Ok(Some(outcome))
}

#[async_trait]
impl ApprovalStore for RedbStore {
    async fn create(&self, approval: &Approval, now: DateTime<Utc>) -> Result<(), StoreError> {
        let approval = approval.clone();
        self.write(move |txn, _| create_in(txn, &approval, now))
            .await
    }

    async fn get(&self, id: &str) -> Result<Option<Approval>, StoreError> {
        self.lookup(|db| {
            let txn = db.begin_read().db()?;
            let table = txn.open_table(APPROVALS).db()?;
            let found = table.get(id).db()?;
            found.map(|v| decode::<Approval>(v.value())).transpose()
        })
    }

    async fn decide(
        &self,
        id: &str,
        by: &Decider,
        verdict: Verdict,
        now: DateTime<Utc>,
    ) -> Result<Decided, StoreError> {
        let (id, by) = (id.to_owned(), by.clone());
        self.write(move |txn, _| {
            let outcome = change_in(txn, &id, |a| {
                let outcome = a.decide(&by, verdict, now);
                let changed = matches!(outcome, Decided::Decided(_));
                (outcome, changed)
            })?;
            Ok(outcome.unwrap_or(Decided::Unknown))
        })
        .await
    }

    async fn poll(
        &self,
        id: &str,
        agent: &AgentId,
        now: DateTime<Utc>,
    ) -> Result<Polled, StoreError> {
        let (id, agent) = (id.to_owned(), agent.clone());
        self.write(move |txn, _| {
            let outcome = change_in(txn, &id, |a| a.poll(&agent, now))?;
            Ok(outcome.unwrap_or(Polled::Unknown))
        })
        .await
    }

    async fn for_person(&self, person: &Person, limit: usize) -> Result<Vec<Approval>, StoreError> {
        let pid = person_id(person);
        self.run(move |db| {
            let txn = db.begin_read().db()?;
            let index = txn.open_table(BY_PERSON).db()?;
            let approvals = txn.open_table(APPROVALS).db()?;
            let mut found = Vec::new();
            for entry in index.range((pid.as_str(), "")..).db()? {
                let (k, _) = entry.db()?;
                let (p, id) = k.value();
                if p != pid {
                    break;
                }
                if let Some(v) = approvals.get(id).db()? {
                    found.push(decode::<Approval>(v.value())?);
                }
            }
            found.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
            found.truncate(limit);
            Ok(found)
        })
        .await
    }

    async fn list(
        &self,
        status: Option<ApprovalStatus>,
        limit: usize,
    ) -> Result<Vec<Approval>, StoreError> {
        self.run(move |db| {
            let txn = db.begin_read().db()?;
            let index = txn.open_table(DROP).db()?;
            let approvals = txn.open_table(APPROVALS).db()?;
            let mut found = Vec::new();
            for entry in index.iter().db()?.rev().take(MAX_LIST_SCAN) {
                let (k, _) = entry.db()?;
                let (_, id) = k.value();
                if let Some(v) = approvals.get(id).db()? {
                    found.push(decode::<Approval>(v.value())?);
                }
            }
            Ok(select(found, status, limit))
        })
        .await
    }
}
