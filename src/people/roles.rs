//! Roles: what the operator lets a person do, by name.
//!
//! A role lists actions, resource patterns, audiences and a longest token
//! lifetime, in the shape of an agent's [`Ceiling`]; a person holds it
//! through an IdP group named in `groups`, or explicitly (admin API, CLI).
//! A person with no role holds nothing.
//!
//! ```toml
//! [[role]]
//! name = "payer"
//! actions = ["payments:create"]
//! resources = ["invoices/*"]
//! audiences = ["https://pay.acme.example"]
//! max_ttl = "10m"
//! groups = ["finance"]
//! ```

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::store::Ceiling;
use crate::token::{Action, Audience, ResourcePattern};

/// Longest role name, in bytes.
const ROLE_NAME_MAX: usize = 64;
/// Most groups one role may be given by.
pub const MAX_ROLE_GROUPS: usize = 64;

/// A role's name: 1 to 64 of `a-z`, `0-9`, `-`, `_`, `.`, `:`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RoleName(String);

/// Why a role name or definition was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("role `{role}`: {problem}")]
pub struct RoleError {
    /// The role (shortened) the problem is about.
    pub role: String,
    /// What is wrong.
    pub problem: &'static str,
}

impl RoleName {
    /// Parses a role name.
    pub fn parse(s: &str) -> Result<Self, RoleError> {
        let bad = |problem| RoleError {
            role: s.chars().take(ROLE_NAME_MAX).collect(),
            problem,
        };
        if s.is_empty() || s.len() > ROLE_NAME_MAX {
            return Err(bad("a role name has 1 to 64 characters"));
        }
        if !s
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b':'))
        {
            return Err(bad("a role name uses only a-z, 0-9, -, _, . and :"));
        }
        Ok(Self(s.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for RoleName {
    type Error = RoleError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<RoleName> for String {
    fn from(v: RoleName) -> String {
        v.0
    }
}

/// One role, as the operator defines it (`[[role]]` in the configuration).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Role {
    /// Its name, unique in the configuration.
    pub name: RoleName,
    /// Actions it allows.
    pub actions: Vec<Action>,
    /// Resource patterns it allows them on.
    pub resources: Vec<ResourcePattern>,
    /// Tool servers its tokens may name; empty: any, or none.
    #[serde(default)]
    pub audiences: Vec<Audience>,
    /// Longest lifetime of a token this role contributes to.
    #[serde(with = "crate::token::duration_text")]
    pub max_ttl: Duration,
    /// IdP groups whose members hold the role.
    #[serde(default)]
    pub groups: Vec<String>,
}

impl Role {
    /// Checks what serde cannot: something granted, a sane lifetime, a
    /// bounded list of groups.
    pub fn check(&self) -> Result<(), RoleError> {
        let bad = |problem| {
            Err(RoleError {
                role: self.name.to_string(),
                problem,
            })
        };
        if self.actions.is_empty() || self.resources.is_empty() {
            return bad("a role names at least one action and one resource");
        }
        if self.max_ttl.is_zero() || self.max_ttl > crate::token::Lifetime::MAX {
            return bad("max_ttl must be between 1s and 24h");
        }
        if self.groups.len() > MAX_ROLE_GROUPS {
            return bad("a role is given by at most 64 groups");
        }
        if self.groups.iter().any(|g| g.is_empty() || g.len() > 255) {
            return bad("a group name has 1 to 255 bytes");
        }
        Ok(())
    }

    /// What the role allows, in the shape of an agent's ceiling.
    pub fn ceiling(&self) -> Ceiling {
        Ceiling {
            actions: self.actions.clone(),
            resources: self.resources.clone(),
            audiences: self.audiences.clone(),
            max_ttl: self.max_ttl,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_are_short_and_plain() {
        assert!(RoleName::parse("payer").is_ok());
        assert!(RoleName::parse("team-a:reader.v2").is_ok());
        for bad in ["", "Payer", "pay er", "p\u{0}", &"x".repeat(65)] {
            assert!(RoleName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_role_reads_from_toml_and_refuses_unknown_keys_and_empty_grants() {
        let role: Role = toml::from_str(
            "name = \"payer\"\nactions = [\"payments:create\"]\nresources = [\"invoices/*\"]\nmax_ttl = \"10m\"\ngroups = [\"finance\"]\n",
        )
        .unwrap();
        assert_eq!(role.max_ttl, Duration::from_secs(600));
        assert!(role.check().is_ok());
        assert_eq!(role.ceiling().actions, role.actions);
        assert!(toml::from_str::<Role>(
            "name = \"payer\"\nactions = []\nresources = [\"x\"]\nmax_ttl = 60\ncolour = 1\n"
        )
        .is_err());
        let empty: Role =
            toml::from_str("name = \"payer\"\nactions = []\nresources = [\"x\"]\nmax_ttl = 60\n")
                .unwrap();
        assert!(empty.check().is_err());
    }
}
