//! [`PeopleStore`] on Redis: two sets per person, under the `people` tag.
//!
//! `P{people}:roles:<person>` and `P{people}:consents:<person>` (see
//! [`RedisLayout::person_roles`](crate::records::redis::RedisLayout::person_roles)).
//! A write is one script on one key, bounded by [`MAX_ROLES_PER_PERSON`] /
//! [`MAX_CONSENTS_PER_PERSON`], and returns once a replica has it when the
//! node has replicas (a withdrawn consent or revoked role must not come
//! back after a failover). `standing` reads both keys in one pipeline: one
//! round trip, on one node of a cluster, since both share a hash tag.

use async_trait::async_trait;

use super::RedisStore;
use crate::people::RoleName;
use crate::store::{
    PeopleStore, Standing, StoreError, MAX_CONSENTS_PER_PERSON, MAX_ROLES_PER_PERSON,
};
use crate::token::{AgentId, Person};

/// Adds a member to a set unless it holds it already or is full.
///
/// KEYS: the set. ARGV: the member, the most members. Returns 1 if added,
/// 0 if it was there already, -1 if the set is full.
pub(super) const ADD_BOUNDED_SCRIPT: &str = r#"
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then
  return 0
end
if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return -1
end
return redis.call('SADD', KEYS[1], ARGV[1])
"#;

/// Removes a member from a set. KEYS: the set. ARGV: the member. Returns 1
/// if it was there, else 0.
pub(super) const REMOVE_SCRIPT: &str = r#"
return redis.call('SREM', KEYS[1], ARGV[1])
"#;

impl RedisStore {
    async fn add_bounded(
        &self,
        key: String,
        member: &str,
        max: usize,
        what: &str,
    ) -> Result<bool, StoreError> {
        let added: i64 = self
            .durable(
                &self.add_bounded_script,
                ADD_BOUNDED_SCRIPT,
                &[key],
                &[member.to_owned(), max.to_string()],
            )
            .await?;
        match added {
            1 => Ok(true),
            0 => Ok(false),
            _ => Err(StoreError::Limit(format!(
                "a person holds at most {max} {what}"
            ))),
        }
    }

    async fn remove(&self, key: String, member: &str) -> Result<bool, StoreError> {
        let removed: i64 = self
            .durable(
                &self.remove_script,
                REMOVE_SCRIPT,
                &[key],
                &[member.to_owned()],
            )
            .await?;
        Ok(removed == 1)
    }

    async fn members(&self, key: String) -> Result<Vec<String>, StoreError> {
        let mut cmd = ::redis::cmd("SMEMBERS");
        cmd.arg(key);
        let mut members: Vec<String> = self.query(&cmd).await?;
        members.sort();
        Ok(members)
    }
}

fn role_names(names: Vec<String>) -> Result<Vec<RoleName>, StoreError> {
    let mut roles = names
        .iter()
        .map(|n| RoleName::parse(n).map_err(|e| StoreError::Decode(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    roles.sort();
    Ok(roles)
}

#[async_trait]
impl PeopleStore for RedisStore {
    async fn grant_role(&self, person: &Person, role: &RoleName) -> Result<bool, StoreError> {
        let key = self.layout.person_roles(person);
        self.add_bounded(key, role.as_str(), MAX_ROLES_PER_PERSON, "roles")
            .await
    }

    async fn revoke_role(&self, person: &Person, role: &RoleName) -> Result<bool, StoreError> {
        self.remove(self.layout.person_roles(person), role.as_str())
            .await
    }

    async fn roles(&self, person: &Person) -> Result<Vec<RoleName>, StoreError> {
        role_names(self.members(self.layout.person_roles(person)).await?)
    }

    async fn consent(&self, person: &Person, agent: &AgentId) -> Result<bool, StoreError> {
        let key = self.layout.person_consents(person);
        self.add_bounded(key, agent.as_str(), MAX_CONSENTS_PER_PERSON, "consents")
            .await
    }

    async fn withdraw_consent(&self, person: &Person, agent: &AgentId) -> Result<bool, StoreError> {
        self.remove(self.layout.person_consents(person), agent.as_str())
            .await
    }

    async fn consents(&self, person: &Person) -> Result<Vec<AgentId>, StoreError> {
        let mut agents = self
            .members(self.layout.person_consents(person))
            .await?
            .iter()
            .map(|a| AgentId::parse(a).map_err(|e| StoreError::Decode(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        agents.sort();
        Ok(agents)
    }

    async fn standing(&self, person: &Person, agent: &AgentId) -> Result<Standing, StoreError> {
        let mut pipe = ::redis::pipe();
        pipe.cmd("SMEMBERS")
            .arg(self.layout.person_roles(person))
            .cmd("SISMEMBER")
            .arg(self.layout.person_consents(person))
            .arg(agent.as_str());
        let (roles, consents): (Vec<String>, bool) = self.query_pipe(&pipe).await?;
        Ok(Standing {
            roles: role_names(roles)?,
            consents,
        })
    }
}
