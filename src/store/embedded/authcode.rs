//! [`AuthCodeStore`] on the embedded store.
//!
//! Codes and refresh families are JSON records keyed by the code's hash and
//! the family id; one expiry index (`(unix seconds, "c:<hash>" | "f:<id>")`)
//! lets each write that adds a record drop at most [`PURGE_BATCH`] expired
//! ones. Remembered consents are one record per person, bounded by
//! [`MAX_REMEMBERED_PER_PERSON`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{decode, encode, DbResult, RedbStore, PURGE_BATCH};
use crate::store::authcode::{
    AuthCode, AuthCodeStore, CodeTake, FamilyToken, RefreshFamily, RememberedConsent, Rotation,
    MAX_CONSENT_FAMILIES, MAX_FAMILY_TOKENS, MAX_REMEMBERED_PER_PERSON, SPENT_CODE_KEPT_SECS,
};
use crate::store::StoreError;
use crate::token::{Audience, Person};

/// Code hash -> JSON [`StoredCode`].
pub(super) const AUTH_CODES: TableDefinition<&str, &[u8]> = TableDefinition::new("auth_codes");
/// Family id -> JSON [`RefreshFamily`].
pub(super) const FAMILIES: TableDefinition<&str, &[u8]> = TableDefinition::new("refresh_families");
/// (drop time in unix seconds, `c:<hash>` or `f:<id>`).
pub(super) const AUTHCODE_EXPIRY: TableDefinition<(i64, &str), ()> =
    TableDefinition::new("authcode_expiry");
/// (IdP issuer, subject) -> JSON list of [`RememberedConsent`].
pub(super) const REMEMBERED: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("remembered_consents");

/// Opens (creates) the tables, at start.
pub(super) fn create(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(AUTH_CODES).db()?;
    txn.open_table(FAMILIES).db()?;
    txn.open_table(AUTHCODE_EXPIRY).db()?;
    txn.open_table(REMEMBERED).db()?;
    Ok(())
}

#[derive(Serialize, Deserialize)]
struct StoredCode {
    code: AuthCode,
    used: bool,
}

/// Drops up to [`PURGE_BATCH`] records whose drop time is before `now`.
fn purge(txn: &WriteTransaction, now: DateTime<Utc>) -> Result<(), StoreError> {
    let mut index = txn.open_table(AUTHCODE_EXPIRY).db()?;
    let mut due = Vec::new();
    for entry in index.range((i64::MIN, "")..(now.timestamp(), "")).db()? {
        let (k, _) = entry.db()?;
        let (t, name) = k.value();
        due.push((t, name.to_owned()));
        if due.len() >= PURGE_BATCH {
            break;
        }
    }
    let mut codes = txn.open_table(AUTH_CODES).db()?;
    let mut families = txn.open_table(FAMILIES).db()?;
    for (t, name) in due {
        index.remove((t, name.as_str())).db()?;
        if let Some(hash) = name.strip_prefix("c:") {
            codes.remove(hash).db()?;
        } else if let Some(id) = name.strip_prefix("f:") {
            families.remove(id).db()?;
        }
    }
    Ok(())
}

fn read_family(
    txn: &WriteTransaction,
    family_id: &str,
) -> Result<Option<RefreshFamily>, StoreError> {
    let table = txn.open_table(FAMILIES).db()?;
    let found = table.get(family_id).db()?;
    found.map(|v| decode(v.value())).transpose()
}

fn write_family(txn: &WriteTransaction, family: &RefreshFamily) -> Result<(), StoreError> {
    let mut table = txn.open_table(FAMILIES).db()?;
    table
        .insert(family.id.as_str(), encode(family)?.as_slice())
        .db()?;
    Ok(())
}

/// Applies `change` to a live family and writes it back; `None` if the
/// family is unknown or expired.
fn change_family<T>(
    txn: &WriteTransaction,
    family_id: &str,
    now: DateTime<Utc>,
    change: impl FnOnce(&mut RefreshFamily) -> T,
) -> Result<Option<T>, StoreError> {
    let Some(mut family) = read_family(txn, family_id)? else {
        return Ok(None);
    };
    if family.expires_at <= now {
        return Ok(None);
    }
    let out = change(&mut family);
    write_family(txn, &family)?;
    Ok(Some(out))
}

fn read_remembered(
    txn: &WriteTransaction,
    person: &Person,
) -> Result<Vec<RememberedConsent>, StoreError> {
    let table = txn.open_table(REMEMBERED).db()?;
    let found = table.get((person.issuer(), person.subject())).db()?;
    Ok(found
        .map(|v| decode::<Vec<RememberedConsent>>(v.value()))
        .transpose()?
        .unwrap_or_default())
}

fn write_remembered(
    txn: &WriteTransaction,
    person: &Person,
    list: &[RememberedConsent],
) -> Result<(), StoreError> {
    let mut table = txn.open_table(REMEMBERED).db()?;
    let key = (person.issuer(), person.subject());
    if list.is_empty() {
        table.remove(key).db()?;
    } else {
        table.insert(key, encode(&list)?.as_slice()).db()?;
    }
    Ok(())
}

#[async_trait]
impl AuthCodeStore for RedbStore {
    async fn put_code(&self, code: &AuthCode, now: DateTime<Utc>) -> Result<(), StoreError> {
        let code = code.clone();
        self.write(move |txn, _| {
            purge(txn, now)?;
            let stored = StoredCode {
                code: code.clone(),
                used: false,
            };
            txn.open_table(AUTH_CODES)
                .db()?
                .insert(code.code_hash.as_str(), encode(&stored)?.as_slice())
                .db()?;
            let drop_at = code
                .expires_at
                .timestamp()
                .saturating_add(SPENT_CODE_KEPT_SECS);
            let name = format!("c:{}", code.code_hash);
            txn.open_table(AUTHCODE_EXPIRY)
                .db()?
                .insert((drop_at, name.as_str()), ())
                .db()?;
            Ok(())
        })
        .await
    }

    async fn take_code(
        &self,
        code_hash: &str,
        _now: DateTime<Utc>,
    ) -> Result<CodeTake, StoreError> {
        let hash = code_hash.to_owned();
        self.write(move |txn, _| {
            let mut table = txn.open_table(AUTH_CODES).db()?;
            let found = table
                .get(hash.as_str())
                .db()?
                .map(|v| decode::<StoredCode>(v.value()))
                .transpose()?;
            let Some(mut stored) = found else {
                return Ok(CodeTake::Unknown);
            };
            if stored.used {
                return Ok(CodeTake::Spent(stored.code));
            }
            stored.used = true;
            table
                .insert(hash.as_str(), encode(&stored)?.as_slice())
                .db()?;
            Ok(CodeTake::Fresh(stored.code))
        })
        .await
    }

    async fn start_family(
        &self,
        family: &RefreshFamily,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let family = family.clone();
        self.write(move |txn, _| {
            purge(txn, now)?;
            write_family(txn, &family)?;
            let name = format!("f:{}", family.id);
            txn.open_table(AUTHCODE_EXPIRY)
                .db()?
                .insert((family.expires_at.timestamp(), name.as_str()), ())
                .db()?;
            Ok(())
        })
        .await
    }

    async fn rotate(
        &self,
        family_id: &str,
        presented: &str,
        next: &str,
        now: DateTime<Utc>,
    ) -> Result<Rotation, StoreError> {
        let (id, presented, next) = (family_id.to_owned(), presented.to_owned(), next.to_owned());
        self.write(move |txn, _| {
            let done = change_family(txn, &id, now, |f| {
                if f.revoked {
                    Rotation::Revoked(f.clone())
                } else if f.refresh_hash != presented {
                    f.revoked = true;
                    Rotation::Reused(f.clone())
                } else {
                    f.refresh_hash.clone_from(&next);
                    Rotation::Rotated(f.clone())
                }
            })?;
            Ok(done.unwrap_or(Rotation::Unknown))
        })
        .await
    }

    async fn add_family_token(
        &self,
        family_id: &str,
        token: &FamilyToken,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let (id, token) = (family_id.to_owned(), token.clone());
        self.write(move |txn, _| {
            change_family(txn, &id, now, |f| {
                f.tokens.push(token.clone());
                let extra = f.tokens.len().saturating_sub(MAX_FAMILY_TOKENS);
                f.tokens.drain(..extra);
            })?;
            Ok(())
        })
        .await
    }

    async fn revoke_family(
        &self,
        family_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<RefreshFamily>, StoreError> {
        let id = family_id.to_owned();
        self.write(move |txn, _| {
            change_family(txn, &id, now, |f| {
                f.revoked = true;
                f.clone()
            })
        })
        .await
    }

    async fn family(
        &self,
        family_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<RefreshFamily>, StoreError> {
        self.lookup(|db| {
            let txn = db.begin_read().db()?;
            let table = txn.open_table(FAMILIES).db()?;
            let found = table.get(family_id).db()?;
            let family: Option<RefreshFamily> = found.map(|v| decode(v.value())).transpose()?;
            Ok(family.filter(|f| f.expires_at > now))
        })
    }

    async fn remember(&self, consent: &RememberedConsent) -> Result<(), StoreError> {
        let consent = consent.clone();
        self.write(move |txn, _| {
            let mut list = read_remembered(txn, &consent.person)?;
            list.retain(|c| !(c.client_id == consent.client_id && c.resource == consent.resource));
            if list.len() >= MAX_REMEMBERED_PER_PERSON {
                return Err(StoreError::Limit(format!(
                    "a person remembers at most {MAX_REMEMBERED_PER_PERSON} consents"
                )));
            }
            list.push(consent.clone());
            list.sort_by(|a, b| (&a.client_id, &a.resource).cmp(&(&b.client_id, &b.resource)));
            write_remembered(txn, &consent.person, &list)
        })
        .await
    }

    async fn add_consent_family(
        &self,
        person: &Person,
        client_id: &str,
        resource: &Audience,
        family_id: &str,
    ) -> Result<bool, StoreError> {
        let (person, client_id, resource, family_id) = (
            person.clone(),
            client_id.to_owned(),
            resource.clone(),
            family_id.to_owned(),
        );
        self.write(move |txn, _| {
            let mut list = read_remembered(txn, &person)?;
            let Some(c) = list
                .iter_mut()
                .find(|c| c.client_id == client_id && c.resource == resource)
            else {
                return Ok(false);
            };
            c.families.push(family_id.clone());
            let extra = c.families.len().saturating_sub(MAX_CONSENT_FAMILIES);
            c.families.drain(..extra);
            write_remembered(txn, &person, &list)?;
            Ok(true)
        })
        .await
    }

    async fn remembered(&self, person: &Person) -> Result<Vec<RememberedConsent>, StoreError> {
        self.lookup(|db| {
            let txn = db.begin_read().db()?;
            let table = txn.open_table(REMEMBERED).db()?;
            let found = table.get((person.issuer(), person.subject())).db()?;
            Ok(found
                .map(|v| decode::<Vec<RememberedConsent>>(v.value()))
                .transpose()?
                .unwrap_or_default())
        })
    }

    async fn forget(
        &self,
        person: &Person,
        client_id: &str,
        resource: &Audience,
    ) -> Result<bool, StoreError> {
        let (person, client_id, resource) =
            (person.clone(), client_id.to_owned(), resource.clone());
        self.write(move |txn, _| {
            let mut list = read_remembered(txn, &person)?;
            let before = list.len();
            list.retain(|c| !(c.client_id == client_id && c.resource == resource));
            if list.len() == before {
                return Ok(false);
            }
            write_remembered(txn, &person, &list)?;
            Ok(true)
        })
        .await
    }
}
