//! The default [`Issuance::record_issue`] (the separate calls, in order),
//! run through the same contract as the stores' own versions: an embedded
//! store whose `issuance` is a wrapper that keeps the default.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tempfile::TempDir;
use tessera::store::{
    AuditEvent, AuditLog, AuditQuery, Cursor, Issuance, IssuedToken, RedbStore, ReplayCache,
    StoreError, Stores, TokenLedger,
};

/// Delegates to the embedded store, except `record_issue`.
struct Composed(Arc<RedbStore>);

#[async_trait]
impl ReplayCache for Composed {
    async fn insert_once(
        &self,
        key: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.0.insert_once(key, expires_at, now).await
    }
}

#[async_trait]
impl TokenLedger for Composed {
    async fn record(&self, token: &IssuedToken) -> Result<(), StoreError> {
        self.0.record(token).await
    }

    async fn get(&self, token_id: &str) -> Result<Option<IssuedToken>, StoreError> {
        TokenLedger::get(&*self.0, token_id).await
    }

    async fn outstanding(
        &self,
        agent: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<IssuedToken>, StoreError> {
        self.0.outstanding(agent, now).await
    }
}

#[async_trait]
impl AuditLog for Composed {
    async fn append(&self, event: &AuditEvent) -> Result<Cursor, StoreError> {
        self.0.append(event).await
    }

    async fn query(&self, query: &AuditQuery) -> Result<Vec<(Cursor, AuditEvent)>, StoreError> {
        self.0.query(query).await
    }
}

impl Issuance for Composed {}

/// An embedded store in a temporary data directory, with the default
/// `record_issue`.
pub struct Backend {
    pub stores: Stores,
    _dir: TempDir,
}

impl Backend {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(RedbStore::open(dir.path()).unwrap());
        let stores = Stores {
            issuance: Arc::new(Composed(Arc::clone(&store))),
            ..Stores::from_backend(store)
        };
        Self { stores, _dir: dir }
    }
}
