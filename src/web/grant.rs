//! What an authorization request may be granted (pure: roles, rights, the
//! client's allowance and the request come in as arguments).
//!
//! - **Scopes.** A scope is an action name at the audience named by
//!   `resource` (for the MCP example, a tool: `get_order`). No scope: every
//!   action the person's roles allow at that audience.
//! - **Resource pattern.** A token names one resource pattern. The
//!   candidates are the resource patterns of the person's roles that allow
//!   the audience, in configuration order; the one under which the most
//!   requested scopes pass [`intersect`] (person ∩ client) wins (the first
//!   on a tie). Scopes that do not pass under it are not offered.
//! - **The client's allowance.** A registered agent: its ceiling. A client
//!   known only by its metadata document: whatever the person may, limited
//!   to the document's `scope` when it has one.
//! - **Audiences served.** `resource` must be an audience some `[[role]]`
//!   names, or one the registered agent's ceiling names.

use std::time::Duration;

use crate::people::rights::Limits;
use crate::people::{intersect, Rights, Role, Wanted};
use crate::store::Ceiling;
use crate::token::{Action, Audience, ResourcePattern};

/// What a client may ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allowance {
    /// A registered agent: its ceiling.
    Agent(Ceiling),
    /// A metadata-document client: these actions (`None`: any).
    Document(Option<Vec<Action>>),
}

/// The scopes granted on one resource pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grantable {
    /// The pattern the token will name.
    pub pattern: ResourcePattern,
    /// The actions that may be granted, in request order.
    pub scopes: Vec<Action>,
}

/// Whether Tessera serves `audience`: a role or the agent's ceiling names it.
pub fn served(roles: &[Role], allowance: &Allowance, audience: &Audience) -> bool {
    roles.iter().any(|r| r.audiences.contains(audience))
        || matches!(allowance, Allowance::Agent(c) if c.audiences.contains(audience))
}

/// The roles of `configured` that `rights` holds.
pub fn held<'r>(configured: &'r [Role], rights: &Rights) -> Vec<&'r Role> {
    let names = rights.names();
    configured
        .iter()
        .filter(|r| names.contains(&&r.name))
        .collect()
}

fn allows_audience(role: &Role, audience: &Audience) -> bool {
    role.audiences.is_empty() || role.audiences.contains(audience)
}

/// Every action the held roles allow at `audience` (for a request without
/// `scope`), without repeats.
pub fn default_scopes(held: &[&Role], audience: &Audience) -> Vec<Action> {
    let mut out: Vec<Action> = Vec::new();
    for r in held.iter().filter(|r| allows_audience(r, audience)) {
        for a in &r.actions {
            if !out.contains(a) {
                out.push(a.clone());
            }
        }
    }
    out
}

/// The best pattern and the requested scopes grantable under it, or `None`
/// when nothing can be granted.
pub fn grantable(
    held: &[&Role],
    rights: &Rights,
    allowance: &Allowance,
    requested: &[Action],
    audience: &Audience,
    limits: Limits,
) -> Option<Grantable> {
    let mut best: Option<Grantable> = None;
    let candidates = held
        .iter()
        .filter(|r| allows_audience(r, audience))
        .flat_map(|r| r.resources.iter());
    for pattern in candidates {
        let ceiling = match allowance {
            Allowance::Agent(c) => c.clone(),
            Allowance::Document(allowed) => Ceiling {
                actions: allowed.clone().unwrap_or_else(|| requested.to_vec()),
                resources: vec![pattern.clone()],
                audiences: Vec::new(),
                max_ttl: limits.max_ttl,
            },
        };
        let scopes: Vec<Action> = requested
            .iter()
            .filter(|a| {
                let wanted = Wanted {
                    action: (*a).clone(),
                    resource: pattern.clone(),
                    audience: Some(audience.clone()),
                    lifetime: Some(Duration::from_secs(1)),
                };
                intersect(rights, &ceiling, &wanted, limits).is_ok()
            })
            .cloned()
            .collect();
        if !scopes.is_empty() && best.as_ref().is_none_or(|b| scopes.len() > b.scopes.len()) {
            best = Some(Grantable {
                pattern: pattern.clone(),
                scopes,
            });
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::people::RoleName;

    fn role(name: &str, actions: &[&str], resources: &[&str], audience: &str) -> Role {
        Role {
            name: RoleName::parse(name).unwrap(),
            actions: actions.iter().map(|a| Action::parse(a).unwrap()).collect(),
            resources: resources
                .iter()
                .map(|r| ResourcePattern::parse(r).unwrap())
                .collect(),
            audiences: vec![Audience::parse(audience).unwrap()],
            max_ttl: Duration::from_secs(300),
            groups: vec!["finance".into()],
        }
    }

    fn acts(a: &[&str]) -> Vec<Action> {
        a.iter().map(|a| Action::parse(a).unwrap()).collect()
    }

    const MCP: &str = "https://mcp.example/mcp";
    const LIMITS: Limits = Limits {
        max_ttl: Duration::from_secs(3600),
        default_ttl: Duration::from_secs(300),
    };

    #[test]
    fn granted_is_what_the_person_and_the_client_both_allow() {
        let roles = vec![
            role("orders", &["get_order", "list_orders"], &["orders*"], MCP),
            role("docs", &["read"], &["docs/*"], "https://other.example/"),
        ];
        let rights = Rights::of(&roles, &["finance".into()], &[]);
        let held = held(&roles, &rights);
        let aud = Audience::parse(MCP).unwrap();
        let asked = acts(&["get_order", "delete_order", "list_orders"]);
        let any = Allowance::Document(None);
        let g = grantable(&held, &rights, &any, &asked, &aud, LIMITS).unwrap();
        assert_eq!(g.pattern.to_string(), "orders*");
        assert_eq!(g.scopes, acts(&["get_order", "list_orders"]));
        let doc = Allowance::Document(Some(acts(&["list_orders"])));
        let g = grantable(&held, &rights, &doc, &asked, &aud, LIMITS).unwrap();
        assert_eq!(g.scopes, acts(&["list_orders"]));
        assert!(grantable(&held, &rights, &any, &acts(&["delete_order"]), &aud, LIMITS).is_none());
        let other = Audience::parse("https://nobody.example/").unwrap();
        assert!(grantable(&held, &rights, &any, &asked, &other, LIMITS).is_none());
        assert!(served(&roles, &any, &aud));
        assert!(!served(&roles, &any, &other));
        assert_eq!(
            default_scopes(&held, &aud),
            acts(&["get_order", "list_orders"])
        );
        let nobody = Rights::of(&roles, &["sales".into()], &[]);
        assert!(grantable(
            &super::held(&roles, &nobody),
            &nobody,
            &any,
            &asked,
            &aud,
            LIMITS
        )
        .is_none());
    }

    #[test]
    fn a_registered_agent_gets_no_more_than_its_ceiling() {
        let roles = vec![role(
            "orders",
            &["get_order", "list_orders"],
            &["orders*"],
            MCP,
        )];
        let rights = Rights::of(&roles, &["finance".into()], &[]);
        let aud = Audience::parse(MCP).unwrap();
        let ceiling = Ceiling {
            actions: acts(&["get_order"]),
            resources: vec![ResourcePattern::parse("orders*").unwrap()],
            audiences: vec![],
            max_ttl: Duration::from_secs(300),
        };
        let agent = Allowance::Agent(ceiling);
        let g = grantable(
            &held(&roles, &rights),
            &rights,
            &agent,
            &acts(&["get_order", "list_orders"]),
            &aud,
            LIMITS,
        )
        .unwrap();
        assert_eq!(g.scopes, acts(&["get_order"]));
    }
}
