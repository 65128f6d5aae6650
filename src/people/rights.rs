//! A person's rights, and the intersection with an agent's ceiling.
//!
//! A person holds the configured roles their IdP groups map to, plus the
//! roles given to them explicitly (the people store). A token on their
//! behalf is granted only when the request lies within **both** some role
//! the person holds and the agent's ceiling; otherwise the refusal names
//! the side that refused. Nothing is ever narrowed silently. Pure: the
//! roles, the ceiling and the request come in as arguments.

use std::time::Duration;

use crate::store::Ceiling;
use crate::token::{Action, Audience, Lifetime, ResourcePattern};

use super::roles::{Role, RoleName};

/// The roles a person holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rights {
    roles: Vec<Role>,
}

impl Rights {
    /// The roles of `configured` that `groups` map to or that `explicit`
    /// names (an explicit name with no configured role gives nothing).
    pub fn of(configured: &[Role], groups: &[String], explicit: &[RoleName]) -> Self {
        let roles = configured
            .iter()
            .filter(|r| explicit.contains(&r.name) || r.groups.iter().any(|g| groups.contains(g)))
            .cloned()
            .collect();
        Self { roles }
    }

    /// The names of the roles held.
    pub fn names(&self) -> Vec<&RoleName> {
        self.roles.iter().map(|r| &r.name).collect()
    }

    /// Whether the person holds no role (and so may get nothing).
    pub fn is_empty(&self) -> bool {
        self.roles.is_empty()
    }
}

/// What a token request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// The one action.
    pub action: Action,
    /// The resource or resource prefix.
    pub resource: ResourcePattern,
    /// The tool server, if named.
    pub audience: Option<Audience>,
    /// The lifetime asked for; `None`: the default, within the caps.
    pub lifetime: Option<Duration>,
}

/// The issuer's own lifetime settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The issuer's longest token (`max_ttl`).
    pub max_ttl: Duration,
    /// The lifetime given when none is asked (`default_ttl`), within the caps.
    pub default_ttl: Duration,
}

/// Which side refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The person's rights (their roles).
    Person,
    /// The agent's ceiling.
    Agent,
    /// The issuer's own limits.
    Issuer,
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Person => "the person's rights",
            Self::Agent => "this agent's ceiling",
            Self::Issuer => "the issuer's limits",
        })
    }
}

/// Why a request on behalf of a person was refused (an `invalid_scope`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RightsError {
    /// The person holds no role.
    #[error("the person holds no role, so no token can act for them")]
    NoRole,
    /// The request lies outside one side.
    #[error("{what} is outside {side}")]
    Outside {
        /// The side that refused.
        side: Side,
        /// What lies outside it.
        what: String,
    },
    /// The lifetime asked for is beyond one side's maximum.
    #[error("lifetime {asked}s is beyond {side}'s maximum of {max}s")]
    Lifetime {
        /// The side with the lowest maximum.
        side: Side,
        /// Seconds asked.
        asked: u64,
        /// That side's maximum, seconds.
        max: u64,
    },
    /// The lifetime is not a valid token lifetime.
    #[error("{0}")]
    Invalid(String),
}

impl RightsError {
    /// The side that refused, when one did.
    pub fn side(&self) -> Option<Side> {
        match self {
            Self::NoRole => Some(Side::Person),
            Self::Outside { side, .. } | Self::Lifetime { side, .. } => Some(*side),
            Self::Invalid(_) => None,
        }
    }
}

/// Whether `c` (a role or a ceiling) covers the action, resource and
/// audience of `w`; the first part it does not cover.
fn covers(c: &Ceiling, w: &Wanted) -> Result<(), String> {
    if !c.actions.contains(&w.action) {
        return Err(format!("action `{}`", w.action));
    }
    if !c.resources.iter().any(|p| p.covers(&w.resource)) {
        return Err(format!("resource `{}`", w.resource));
    }
    if !c.audiences.is_empty() {
        match &w.audience {
            None => return Err("a token naming no tool server (resource)".into()),
            Some(a) if !c.audiences.contains(a) => return Err(format!("audience `{a}`")),
            Some(_) => {}
        }
    }
    Ok(())
}

/// Checks `wanted` against the person's `rights`, the agent's `ceiling` and
/// the issuer's `limits`; the lifetime to grant, or which side refused.
///
/// The lifetime cap is the least of the longest `max_ttl` among the roles
/// that cover the request, the ceiling's and the issuer's.
pub fn intersect(
    rights: &Rights,
    ceiling: &Ceiling,
    wanted: &Wanted,
    limits: Limits,
) -> Result<Lifetime, RightsError> {
    if rights.is_empty() {
        return Err(RightsError::NoRole);
    }
    let mut first_miss = None;
    let mut role_max = None::<Duration>;
    for role in &rights.roles {
        match covers(&role.ceiling(), wanted) {
            Ok(()) => role_max = Some(role_max.map_or(role.max_ttl, |m| m.max(role.max_ttl))),
            Err(what) => {
                first_miss.get_or_insert(what);
            }
        }
    }
    let Some(role_max) = role_max else {
        return Err(RightsError::Outside {
            side: Side::Person,
            what: first_miss.unwrap_or_default(),
        });
    };
    covers(ceiling, wanted).map_err(|what| RightsError::Outside {
        side: Side::Agent,
        what,
    })?;
    let caps = [
        (Side::Person, role_max),
        (Side::Agent, ceiling.max_ttl),
        (Side::Issuer, limits.max_ttl),
    ];
    let cap = role_max.min(ceiling.max_ttl).min(limits.max_ttl);
    let asked = wanted
        .lifetime
        .unwrap_or_else(|| limits.default_ttl.min(cap));
    if let Some((side, max)) = caps.iter().find(|(_, max)| asked > *max) {
        return Err(RightsError::Lifetime {
            side: *side,
            asked: asked.as_secs(),
            max: max.as_secs(),
        });
    }
    Lifetime::new(asked).map_err(|e| RightsError::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn role(name: &str, actions: &[&str], resources: &[&str], ttl: u64, groups: &[&str]) -> Role {
        Role {
            name: RoleName::parse(name).unwrap(),
            actions: actions.iter().map(|a| Action::parse(a).unwrap()).collect(),
            resources: resources
                .iter()
                .map(|r| ResourcePattern::parse(r).unwrap())
                .collect(),
            audiences: vec![],
            max_ttl: Duration::from_secs(ttl),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        }
    }

    fn ceiling(actions: &[&str], resources: &[&str], ttl: u64) -> Ceiling {
        Ceiling {
            actions: actions.iter().map(|a| Action::parse(a).unwrap()).collect(),
            resources: resources
                .iter()
                .map(|r| ResourcePattern::parse(r).unwrap())
                .collect(),
            audiences: vec![],
            max_ttl: Duration::from_secs(ttl),
        }
    }

    fn wanted(action: &str, resource: &str, ttl: Option<u64>) -> Wanted {
        Wanted {
            action: Action::parse(action).unwrap(),
            resource: ResourcePattern::parse(resource).unwrap(),
            audience: None,
            lifetime: ttl.map(Duration::from_secs),
        }
    }

    const LIMITS: Limits = Limits {
        max_ttl: Duration::from_secs(3600),
        default_ttl: Duration::from_secs(300),
    };

    #[test]
    fn roles_come_from_groups_and_explicit_names() {
        let roles = [
            role("payer", &["pay"], &["inv/*"], 600, &["finance"]),
            role("reader", &["read"], &["docs/*"], 600, &[]),
        ];
        let by_group = Rights::of(&roles, &["finance".into()], &[]);
        assert_eq!(by_group.names(), [&roles[0].name]);
        let explicit = Rights::of(&roles, &[], &[roles[1].name.clone()]);
        assert_eq!(explicit.names(), [&roles[1].name]);
        assert!(Rights::of(&roles, &["staff".into()], &[]).is_empty());
    }

    #[test]
    fn each_side_refuses_by_name() {
        let rights = Rights::of(
            &[role("payer", &["pay"], &["inv/*"], 600, &["finance"])],
            &["finance".into()],
            &[],
        );
        let agent = ceiling(&["pay", "read"], &["inv/*", "docs/*"], 300);
        assert_eq!(
            intersect(&rights, &agent, &wanted("pay", "inv/1", None), LIMITS)
                .unwrap()
                .duration(),
            Duration::from_secs(300)
        );
        let e = intersect(&rights, &agent, &wanted("read", "docs/1", None), LIMITS).unwrap_err();
        assert_eq!(e.side(), Some(Side::Person), "{e}");
        let narrow = ceiling(&["pay"], &["inv/a*"], 300);
        let e = intersect(&rights, &narrow, &wanted("pay", "inv/b", None), LIMITS).unwrap_err();
        assert_eq!(e.side(), Some(Side::Agent), "{e}");
        let e = intersect(&rights, &agent, &wanted("pay", "inv/1", Some(400)), LIMITS).unwrap_err();
        assert_eq!(e.side(), Some(Side::Agent), "{e}");
        let e = intersect(
            &Rights::default(),
            &agent,
            &wanted("pay", "inv/1", None),
            LIMITS,
        )
        .unwrap_err();
        assert_eq!(e, RightsError::NoRole);
    }

    fn pattern() -> impl Strategy<Value = String> {
        prop::sample::select(vec!["a/*", "a/1", "a/2", "b/*", "b/1", "a*", "a/1*"])
            .prop_map(str::to_owned)
    }
    fn action() -> impl Strategy<Value = String> {
        prop::sample::select(vec!["read", "write", "pay"]).prop_map(str::to_owned)
    }
    fn audience() -> impl Strategy<Value = Option<Audience>> {
        prop::option::of(
            prop::sample::select(vec!["https://x.example", "https://y.example"])
                .prop_map(|a| Audience::parse(a).unwrap()),
        )
    }
    fn grant_shape() -> impl Strategy<Value = Ceiling> {
        (
            prop::collection::vec(action(), 1..3),
            prop::collection::vec(pattern(), 1..3),
            prop::collection::vec(audience(), 0..2),
            1u64..1000,
        )
            .prop_map(|(actions, resources, audiences, ttl)| Ceiling {
                actions: actions.iter().map(|a| Action::parse(a).unwrap()).collect(),
                resources: resources
                    .iter()
                    .map(|r| ResourcePattern::parse(r).unwrap())
                    .collect(),
                audiences: audiences.into_iter().flatten().collect(),
                max_ttl: Duration::from_secs(ttl),
            })
    }
    fn as_role(i: usize, c: Ceiling) -> Role {
        Role {
            name: RoleName::parse(&format!("r{i}")).unwrap(),
            actions: c.actions,
            resources: c.resources,
            audiences: c.audiences,
            max_ttl: c.max_ttl,
            groups: vec!["g".into()],
        }
    }
    /// Whether `c` covers `w` with `w`'s explicit lifetime.
    fn inside(c: &Ceiling, w: &Wanted, lifetime: Duration) -> bool {
        covers(c, w).is_ok() && lifetime <= c.max_ttl
    }

    proptest! {
        #[test]
        fn a_grant_lies_within_both_sides_and_a_request_within_both_is_granted(
            roles in prop::collection::vec(grant_shape(), 0..4),
            agent in grant_shape(),
            (act, res, aud) in (action(), pattern(), audience()),
            ttl in prop::option::of(1u64..1200),
        ) {
            let roles: Vec<Role> = roles.into_iter().enumerate().map(|(i, c)| as_role(i, c)).collect();
            let rights = Rights::of(&roles, &["g".into()], &[]);
            let w = Wanted {
                action: Action::parse(&act).unwrap(),
                resource: ResourcePattern::parse(&res).unwrap(),
                audience: aud,
                lifetime: ttl.map(Duration::from_secs),
            };
            match intersect(&rights, &agent, &w, LIMITS) {
                Ok(granted) => {
                    let d = granted.duration();
                    prop_assert!(inside(&agent, &w, d), "outside the ceiling");
                    prop_assert!(roles.iter().any(|r| inside(&r.ceiling(), &w, d)), "outside every role");
                    prop_assert!(d <= LIMITS.max_ttl);
                    if let Some(t) = w.lifetime {
                        prop_assert_eq!(d, t, "never narrowed silently");
                    }
                }
                Err(_) => {
                    if let Some(t) = w.lifetime {
                        let both = inside(&agent, &w, t)
                            && roles.iter().any(|r| inside(&r.ceiling(), &w, t))
                            && t <= LIMITS.max_ttl;
                        prop_assert!(!both, "a request inside both sides was refused");
                    }
                }
            }
        }
    }
}
