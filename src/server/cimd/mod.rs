//! Client ID Metadata Documents: a client whose `client_id` is an https URL
//! is described by the JSON document at that URL
//! (draft-ietf-oauth-client-id-metadata-document; the MCP authorization
//! specification's preferred way for clients to identify themselves).
//!
//! The authorization and token endpoints call
//! [`ClientMetadataFetcher::get`] (held in `AppState::client_metadata`) for
//! a `client_id` that [`ClientMetadataFetcher::is_metadata_url`] accepts,
//! and use the returned [`ClientMetadata`]: `redirect_uris` (exact match),
//! `client_name` (already cleaned for display), and
//! `token_endpoint_auth_method` with `jwks`/`jwks_uri` (a client assertion
//! of such a client is checked by [`verify_assertion`]). A [`CimdError`]
//! becomes an OAuth error with [`CimdError::oauth_error`] and its one-line
//! `Display`.
//!
//! Settings: the `[clients]` table ([`ClientsConfig`]). Reference:
//! docs/api.md, "Client ID Metadata Documents".

mod addr;
mod assertion;
mod client_id;
mod config;
mod document;
mod error;
mod fetch;

pub use addr::is_public;
pub use assertion::verify_assertion;
pub use client_id::check_client_id_url;
pub use config::ClientsConfig;
pub use document::{
    display_name, AuthMethod, ClientMetadata, MAX_NAME_CHARS, MAX_REDIRECT_URIS, MAX_URL_BYTES,
};
pub use error::CimdError;
pub use fetch::{CimdStats, ClientMetadataFetcher};
