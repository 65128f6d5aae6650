//! People: acting on behalf of a person (DESIGN.md, "People").
//!
//! Tessera keeps no passwords: people log in at identity providers the
//! operator trusts. This module holds the first part of that: the trusted
//! IdP configuration ([`idp::IdpConfig`]), fetching and caching their keys
//! ([`idp::TrustedIdps`]), and the pure validation of their ID tokens
//! ([`id_token::validate_id_token`]) into a [`id_token::PersonIdentity`].

pub mod id_token;
pub mod idp;
pub mod jwk;

pub use id_token::{validate_id_token, IdTokenError, PersonIdentity};
pub use idp::{FetchOptions, IdpConfig, TrustedIdps};
pub use jwk::{IdpKeys, SigningAlgorithm};
