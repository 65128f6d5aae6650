//! People: acting on behalf of a person (DESIGN.md, "People").
//!
//! Tessera keeps no passwords: people log in at identity providers the
//! operator trusts. This module holds the first part of that: the trusted
//! IdP configuration ([`idp::IdpConfig`]), fetching and caching their keys
//! ([`idp::TrustedIdps`]), and the pure validation of their ID tokens
//! ([`id_token::validate_id_token`]) into a [`id_token::PersonIdentity`].

#[cfg(feature = "server")]
pub mod id_token;
#[cfg(feature = "server")]
pub mod idp;
#[cfg(feature = "server")]
pub mod jwk;
pub mod rights;
pub mod roles;
#[cfg(feature = "server")]
#[cfg(feature = "server")]
pub use id_token::{validate_id_token, IdTokenError, PersonIdentity};
#[cfg(feature = "server")]
pub use idp::{Endpoints, FetchOptions, IdpConfig, TrustedIdps};
#[cfg(feature = "server")]
pub use jwk::{IdpKeys, SigningAlgorithm};
pub use rights::{intersect, Rights, RightsError, Side, Wanted};
pub use roles::{Role, RoleError, RoleName};
