//! [`PeopleStore`] on the embedded store: one record per person.
//!
//! The table is keyed by (IdP issuer, subject), so two people with the same
//! subject at different IdPs never share a record. The record holds the
//! person's explicit roles and the agents they consent to, both bounded
//! ([`MAX_ROLES_PER_PERSON`], [`MAX_CONSENTS_PER_PERSON`]): `standing` is
//! one key lookup, and a person with nothing stored costs that one lookup.

use std::collections::BTreeSet;

use async_trait::async_trait;
use redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{decode, encode, DbResult, RedbStore};
use crate::people::RoleName;
use crate::store::{
    PeopleStore, Standing, StoreError, MAX_CONSENTS_PER_PERSON, MAX_ROLES_PER_PERSON,
};
use crate::token::{AgentId, Person};

/// (IdP issuer, subject) -> JSON [`PersonRecord`].
pub(super) const PEOPLE: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("people");

/// What one person holds explicitly.
#[derive(Debug, Default, Serialize, Deserialize)]
struct PersonRecord {
    /// Roles given through the admin API.
    roles: BTreeSet<RoleName>,
    /// Agents with a standing consent to act for the person.
    consents: BTreeSet<AgentId>,
}

fn read(db: &redb::Database, person: &Person) -> Result<PersonRecord, StoreError> {
    let txn = db.begin_read().db()?;
    let table = txn.open_table(PEOPLE).db()?;
    let found = table.get((person.issuer(), person.subject())).db()?;
    Ok(found
        .map(|v| decode::<PersonRecord>(v.value()))
        .transpose()?
        .unwrap_or_default())
}

/// Reads the person's record, lets `change` edit it, and writes it back
/// (or deletes it once empty) if `change` says it changed something.
fn update(
    txn: &WriteTransaction,
    person: &Person,
    change: impl Fn(&mut PersonRecord) -> Result<bool, StoreError>,
) -> Result<bool, StoreError> {
    let key = (person.issuer(), person.subject());
    let mut table = txn.open_table(PEOPLE).db()?;
    let mut record = table
        .get(key)
        .db()?
        .map(|v| decode::<PersonRecord>(v.value()))
        .transpose()?
        .unwrap_or_default();
    if !change(&mut record)? {
        return Ok(false);
    }
    if record.roles.is_empty() && record.consents.is_empty() {
        table.remove(key).db()?;
    } else {
        table.insert(key, encode(&record)?.as_slice()).db()?;
    }
    Ok(true)
}

impl RedbStore {
    /// Applies `change` to the person's record in one write transaction.
    async fn change_person<F>(&self, person: &Person, change: F) -> Result<bool, StoreError>
    where
        F: Fn(&mut PersonRecord) -> Result<bool, StoreError> + Send + 'static,
    {
        let person = person.clone();
        self.write(move |txn, _| update(txn, &person, &change))
            .await
    }
}

/// Inserts or removes `item`, refusing to grow `set` beyond `max`.
fn edit<T: Ord + Clone>(
    set: &mut BTreeSet<T>,
    item: &T,
    add: bool,
    max: usize,
    what: &str,
) -> Result<bool, StoreError> {
    if !add {
        return Ok(set.remove(item));
    }
    if set.contains(item) {
        return Ok(false);
    }
    if set.len() >= max {
        return Err(StoreError::Limit(format!(
            "a person holds at most {max} {what}"
        )));
    }
    Ok(set.insert(item.clone()))
}

#[async_trait]
impl PeopleStore for RedbStore {
    async fn grant_role(&self, person: &Person, role: &RoleName) -> Result<bool, StoreError> {
        let role = role.clone();
        self.change_person(person, move |r| {
            edit(&mut r.roles, &role, true, MAX_ROLES_PER_PERSON, "roles")
        })
        .await
    }

    async fn revoke_role(&self, person: &Person, role: &RoleName) -> Result<bool, StoreError> {
        let role = role.clone();
        self.change_person(person, move |r| {
            edit(&mut r.roles, &role, false, MAX_ROLES_PER_PERSON, "roles")
        })
        .await
    }

    async fn roles(&self, person: &Person) -> Result<Vec<RoleName>, StoreError> {
        self.lookup(|db| Ok(read(db, person)?.roles.into_iter().collect()))
    }

    async fn consent(&self, person: &Person, agent: &AgentId) -> Result<bool, StoreError> {
        let agent = agent.clone();
        self.change_person(person, move |r| {
            edit(
                &mut r.consents,
                &agent,
                true,
                MAX_CONSENTS_PER_PERSON,
                "consents",
            )
        })
        .await
    }

    async fn withdraw_consent(&self, person: &Person, agent: &AgentId) -> Result<bool, StoreError> {
        let agent = agent.clone();
        self.change_person(person, move |r| {
            edit(
                &mut r.consents,
                &agent,
                false,
                MAX_CONSENTS_PER_PERSON,
                "consents",
            )
        })
        .await
    }

    async fn consents(&self, person: &Person) -> Result<Vec<AgentId>, StoreError> {
        self.lookup(|db| Ok(read(db, person)?.consents.into_iter().collect()))
    }

    async fn standing(&self, person: &Person, agent: &AgentId) -> Result<Standing, StoreError> {
        self.lookup(|db| {
            let record = read(db, person)?;
            Ok(Standing {
                consents: record.consents.contains(agent),
                roles: record.roles.into_iter().collect(),
            })
        })
    }
}
