//! [`PeopleStore`] for the two backends.
//!
//! PLACEHOLDER (issue 11, in progress): writes are refused as unavailable
//! and reads find nothing (no explicit role, no consent), so a token
//! exchange fails closed until the real implementations land.

use async_trait::async_trait;

use super::{PeopleStore, RedbStore, RedisStore, Standing, StoreError};
use crate::people::RoleName;
use crate::token::{AgentId, Person};

fn not_yet() -> StoreError {
    StoreError::Unavailable("the people store is not implemented yet".into())
}

macro_rules! refusing {
    ($backend:ty) => {
        #[async_trait]
        impl PeopleStore for $backend {
            async fn grant_role(&self, _: &Person, _: &RoleName) -> Result<bool, StoreError> {
                Err(not_yet())
            }
            async fn revoke_role(&self, _: &Person, _: &RoleName) -> Result<bool, StoreError> {
                Err(not_yet())
            }
            async fn roles(&self, _: &Person) -> Result<Vec<RoleName>, StoreError> {
                Ok(Vec::new())
            }
            async fn consent(&self, _: &Person, _: &AgentId) -> Result<bool, StoreError> {
                Err(not_yet())
            }
            async fn withdraw_consent(&self, _: &Person, _: &AgentId) -> Result<bool, StoreError> {
                Err(not_yet())
            }
            async fn consents(&self, _: &Person) -> Result<Vec<AgentId>, StoreError> {
                Ok(Vec::new())
            }
            async fn standing(&self, _: &Person, _: &AgentId) -> Result<Standing, StoreError> {
                Ok(Standing::default())
            }
        }
    };
}

refusing!(RedbStore);
refusing!(RedisStore);
