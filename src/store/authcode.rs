//! What the authorization-code flow keeps between requests: authorization
//! codes, refresh-token families and remembered consents
//! ([`AuthCodeStore`]).
//!
//! Secrets (codes, refresh tokens) are never stored: only their SHA-256, in
//! hex ([`secret_hash`]). Every record carries its own expiry; stores drop
//! expired records by themselves (Redis by key expiry, the embedded store a
//! bounded batch per write), and never read the clock: `now` is an argument.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::StoreError;
use crate::token::{Action, Audience, Person, ResourcePattern};

/// Most remembered consents one person may hold; [`AuthCodeStore::remember`]
/// refuses one more with [`StoreError::Limit`].
pub const MAX_REMEMBERED_PER_PERSON: usize = 256;
/// Most access tokens a refresh family keeps a record of (to revoke them
/// with the family); older entries are dropped first.
pub const MAX_FAMILY_TOKENS: usize = 32;
/// Most refresh family ids a remembered consent keeps (the oldest go
/// first; a family lives at most a day, far fewer start meanwhile).
pub const MAX_CONSENT_FAMILIES: usize = 64;
/// How long a redeemed code's record is kept after its expiry, so that a
/// second use still finds it (and revokes what the first one produced).
pub const SPENT_CODE_KEPT_SECS: i64 = 600;

/// The hex SHA-256 of a secret (a code or a refresh token): what the store
/// keeps instead of the secret.
pub fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// An authorization code, as issued at the consent page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthCode {
    /// [`secret_hash`] of the code.
    pub code_hash: String,
    /// The client it was issued to (an agent id or a metadata document URL).
    pub client_id: String,
    /// The redirect URI of the authorization request, exactly as sent.
    pub redirect_uri: String,
    /// The tool server (RFC 8707 `resource`) the token will be for.
    pub resource: Audience,
    /// The resource pattern the token will allow the actions on.
    pub pattern: ResourcePattern,
    /// The granted actions (scopes), at least one.
    pub scopes: Vec<Action>,
    /// The PKCE S256 challenge (base64url of SHA-256 of the verifier).
    pub code_challenge: String,
    /// The person who consented.
    pub person: Person,
    /// The refresh family the code's tokens will belong to; fixed when the
    /// code is issued, so a second use can revoke the family.
    pub family_id: String,
    /// When the code stops being redeemable.
    pub expires_at: DateTime<Utc>,
    /// Whether the client must authenticate to redeem it (a registered
    /// agent, or a metadata document that declares `private_key_jwt`).
    /// Absent in records written before the field: public, as every
    /// document client then was.
    #[serde(default)]
    pub confidential: bool,
}

/// What [`AuthCodeStore::take_code`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CodeTake {
    /// The code was unused; it is now used.
    Fresh(AuthCode),
    /// The code was used before: the caller revokes what it produced.
    Spent(AuthCode),
    /// No such code (never issued, or forgotten after
    /// [`SPENT_CODE_KEPT_SECS`]).
    Unknown,
}

/// An access token minted in a refresh family.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FamilyToken {
    /// Its token id.
    pub token_id: String,
    /// The revocation id of its authority block (hex).
    pub revocation_id: String,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
}

/// A refresh-token family: one consent's chain of rotated refresh tokens
/// and the access tokens minted with them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshFamily {
    /// The family id (random, hex); the refresh token starts with it.
    pub id: String,
    /// The client the family belongs to.
    pub client_id: String,
    /// The person it acts for.
    pub person: Person,
    /// The tool server.
    pub resource: Audience,
    /// The resource pattern.
    pub pattern: ResourcePattern,
    /// The granted actions.
    pub scopes: Vec<Action>,
    /// [`secret_hash`] of the one refresh token that is valid now.
    pub refresh_hash: String,
    /// The DPoP key thumbprint the family is bound to, if any.
    pub jkt: Option<String>,
    /// Whether the family is revoked (reuse, revocation or a code's second use).
    pub revoked: bool,
    /// Access tokens minted in the family, oldest first, at most
    /// [`MAX_FAMILY_TOKENS`].
    pub tokens: Vec<FamilyToken>,
    /// When the family ends, whatever the rotations (its bounded life).
    pub expires_at: DateTime<Utc>,
    /// Whether its client must authenticate to refresh or revoke it (from
    /// the code, [`AuthCode::confidential`]).
    #[serde(default)]
    pub confidential: bool,
}

/// What [`AuthCodeStore::rotate`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rotation {
    /// The presented token was the current one; the next one is current now.
    Rotated(RefreshFamily),
    /// The presented token was an earlier one: the family is revoked now
    /// (the caller revokes its access tokens).
    Reused(RefreshFamily),
    /// The family was revoked before.
    Revoked(RefreshFamily),
    /// No such family (or it expired).
    Unknown,
}

/// A consent a person asked to remember for one client at one tool server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RememberedConsent {
    /// Who consented.
    pub person: Person,
    /// The client.
    pub client_id: String,
    /// The tool server.
    pub resource: Audience,
    /// The approved actions.
    pub scopes: Vec<Action>,
    /// When.
    pub granted_at: DateTime<Utc>,
    /// The refresh families started under this consent (their ids), newest
    /// last, at most [`MAX_CONSENT_FAMILIES`]: withdrawing the consent
    /// revokes them.
    #[serde(default)]
    pub families: Vec<String>,
}

/// Authorization codes, refresh families and remembered consents.
#[async_trait]
pub trait AuthCodeStore: Send + Sync {
    /// Stores a new code (its hash is unique: 256 random bits).
    async fn put_code(&self, code: &AuthCode, now: DateTime<Utc>) -> Result<(), StoreError>;
    /// Marks the code used and returns it. Concurrent calls with one hash:
    /// exactly one gets [`CodeTake::Fresh`]. An expired code that was never
    /// used is still returned as `Fresh` until it is dropped: the caller
    /// checks `expires_at`.
    async fn take_code(&self, code_hash: &str, now: DateTime<Utc>) -> Result<CodeTake, StoreError>;
    /// Creates a family (replacing nothing: ids are random).
    async fn start_family(
        &self,
        family: &RefreshFamily,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Replaces the family's current refresh token `presented` (a hash) by
    /// `next` (a hash). A `presented` that is not the current one revokes
    /// the family. Concurrent calls with one `presented`: one rotates, the
    /// others revoke.
    async fn rotate(
        &self,
        family_id: &str,
        presented: &str,
        next: &str,
        now: DateTime<Utc>,
    ) -> Result<Rotation, StoreError>;
    /// Records an access token minted in the family (keeping the newest
    /// [`MAX_FAMILY_TOKENS`]). Nothing happens if the family is unknown.
    async fn add_family_token(
        &self,
        family_id: &str,
        token: &FamilyToken,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Revokes the family; returns it (with its tokens), or `None` if unknown.
    async fn revoke_family(
        &self,
        family_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<RefreshFamily>, StoreError>;
    /// The family, if known and not expired at `now`.
    async fn family(
        &self,
        family_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<RefreshFamily>, StoreError>;
    /// Remembers a consent, replacing the person's earlier one for the same
    /// (client, resource).
    async fn remember(&self, consent: &RememberedConsent) -> Result<(), StoreError>;
    /// Adds `family_id` to the person's remembered consent for (client,
    /// resource), keeping the newest [`MAX_CONSENT_FAMILIES`]; false (and
    /// nothing changes) when there is no such consent.
    async fn add_consent_family(
        &self,
        person: &Person,
        client_id: &str,
        resource: &Audience,
        family_id: &str,
    ) -> Result<bool, StoreError>;
    /// The person's remembered consents, ordered by (client, resource).
    async fn remembered(&self, person: &Person) -> Result<Vec<RememberedConsent>, StoreError>;
    /// Withdraws the person's consent for (client, resource); false if none.
    async fn forget(
        &self,
        person: &Person,
        client_id: &str,
        resource: &Audience,
    ) -> Result<bool, StoreError>;
}
