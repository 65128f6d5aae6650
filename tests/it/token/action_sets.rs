//! Tokens that grant a set of actions on one resource pattern at one
//! audience (an authorization-code token for several tools of one MCP
//! server): each action is allowed, any other refused; one action encodes
//! exactly as before; attenuation can only drop actions.

use super::support::*;
use tessera::token::*;

fn actions(names: &[&str]) -> Vec<Action> {
    names.iter().map(|a| Action::parse(a).unwrap()).collect()
}

fn mint_set(issuer: &Issuer, first: &str, more: &[&str], resource: &str) -> Minted {
    mint_actions(
        &cap(first, resource, Some(SERVICE), None),
        &actions(more),
        &issuer.root,
        t0(),
    )
    .unwrap()
}

#[test]
fn a_token_for_two_tools_allows_each_and_refuses_a_third() {
    let issuer = Issuer::new();
    let t = mint_set(&issuer, "get_order", &["list_orders"], "orders/*");
    let now = t0() + secs(1);
    for op in ["get_order", "list_orders"] {
        let g = issuer
            .check(&t.token, &req(op, "orders/42", Some(SERVICE), now, None))
            .unwrap_or_else(|d| panic!("{op} denied: {d:?}"));
        assert_eq!(g.actions, vec!["get_order", "list_orders"]);
    }
    assert_eq!(
        issuer.denied(
            &t.token,
            &req("create_order", "orders/42", Some(SERVICE), now, None)
        ),
        Reason::OutOfScope
    );
    // The pattern and the audience still hold for every action.
    assert_eq!(
        issuer.denied(
            &t.token,
            &req("list_orders", "invoices/1", Some(SERVICE), now, None)
        ),
        Reason::OutOfScope
    );
    assert!(issuer
        .check(
            &t.token,
            &req("list_orders", "orders/42", Some(OTHER_SERVICE), now, None)
        )
        .is_err());
}

#[test]
fn an_exact_resource_set_token_allows_only_that_resource() {
    let issuer = Issuer::new();
    let t = mint_set(&issuer, "get_order", &["cancel_order"], "order:7");
    let now = t0() + secs(1);
    assert!(issuer
        .check(
            &t.token,
            &req("cancel_order", "order:7", Some(SERVICE), now, None)
        )
        .is_ok());
    assert_eq!(
        issuer.denied(
            &t.token,
            &req("cancel_order", "order:70", Some(SERVICE), now, None)
        ),
        Reason::OutOfScope
    );
}

#[test]
fn one_action_through_mint_actions_is_byte_identical_to_mint() {
    use rand::SeedableRng;
    let issuer = Issuer::new();
    let c = cap("docs:read", "docs/*", Some(SERVICE), None);
    let seeded = || rand_chacha::ChaCha20Rng::seed_from_u64(7);
    let plain = mint_with_rng(&c, &issuer.root, t0(), &mut seeded()).unwrap();
    let same = mint_actions_with_rng(&c, &[], &issuer.root, t0(), &mut seeded()).unwrap();
    let dup = mint_actions_with_rng(
        &c,
        &actions(&["docs:read"]),
        &issuer.root,
        t0(),
        &mut seeded(),
    )
    .unwrap();
    assert_eq!(plain, same);
    assert_eq!(plain, dup);
    // And its grant reports the one action.
    let g = issuer
        .check(
            &plain.token,
            &req("docs:read", "docs/a", Some(SERVICE), t0(), None),
        )
        .unwrap();
    assert_eq!(g.actions, vec!["docs:read"]);
    assert!(!serde_json::to_string(&g).unwrap().contains("\"actions\""));
}

#[test]
fn inspect_lists_one_right_per_action() {
    let issuer = Issuer::new();
    let t = mint_set(
        &issuer,
        "get_order",
        &["list_orders", "get_order"],
        "orders/*",
    );
    let seen = inspect(&t.token, Some(&issuer.keys), &issuer.limits).unwrap();
    let listed: Vec<(&str, &str, bool)> = seen
        .rights
        .iter()
        .map(|r| (r.action.as_str(), r.resource.as_str(), r.prefix))
        .collect();
    assert_eq!(
        listed,
        vec![
            ("get_order", "orders/", true),
            ("list_orders", "orders/", true)
        ]
    );
}

#[test]
fn attenuation_drops_actions_and_cannot_add_one() {
    let issuer = Issuer::new();
    let t = mint_set(&issuer, "get_order", &["list_orders"], "orders/*");
    let now = t0() + secs(1);
    let only_get = attenuate(
        &t.token,
        &Narrowing {
            action: Some(Action::parse("get_order").unwrap()),
            ..Narrowing::default()
        },
        &issuer.limits,
    )
    .unwrap();
    assert!(issuer
        .check(
            &only_get,
            &req("get_order", "orders/1", Some(SERVICE), now, None)
        )
        .is_ok());
    assert_eq!(
        issuer.denied(
            &only_get,
            &req("list_orders", "orders/1", Some(SERVICE), now, None)
        ),
        Reason::OutOfScope
    );
    let widen = attenuate(
        &t.token,
        &Narrowing {
            action: Some(Action::parse("create_order").unwrap()),
            ..Narrowing::default()
        },
        &issuer.limits,
    );
    assert!(
        matches!(widen, Err(TokenError::NotNarrower(_))),
        "{widen:?}"
    );
}

#[test]
fn too_many_actions_are_refused() {
    let issuer = Issuer::new();
    let many: Vec<String> = (0..=MAX_ACTIONS).map(|i| format!("tool_{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let r = mint_actions(
        &cap("get_order", "orders/", Some(SERVICE), None),
        &actions(&many),
        &issuer.root,
        t0(),
    );
    assert!(matches!(r, Err(TokenError::TooLarge(_))), "{r:?}");
}
