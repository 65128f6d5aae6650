//! Resource names: any Unicode becomes exactly one right that matches only
//! itself, and no name changes what the token says or why it denies.

use proptest::prelude::*;
use tessera::token::*;

use super::support::*;

fn exact(name: &str) -> Capability {
    let mut c = cap("docs:read", "placeholder", None, None);
    c.resource = ResourcePattern::Exact(Resource::parse(name).unwrap());
    c
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(64)))]

    #[test]
    fn any_unicode_resource_name_is_one_right_that_matches_only_itself(
        name in any::<String>().prop_filter("1..=1024 bytes", |s| !s.is_empty() && s.len() <= 1024)
    ) {
        let issuer = Issuer::new();
        let m = issuer.mint(&exact(&name));
        let i = inspect(&m.token, None, &issuer.limits).unwrap();
        prop_assert_eq!(
            i.rights,
            vec![RightView { action: "docs:read".into(), resource: name.clone(), prefix: false }]
        );
        let rights: Vec<_> = authority_facts(&m.token)
            .into_iter()
            .filter(|f| f.name.starts_with("right"))
            .collect();
        prop_assert_eq!(rights.len(), 1);
        prop_assert_eq!(rights[0].name.as_str(), "right");
        prop_assert_eq!(
            &rights[0].terms,
            &vec![wire::Value::Str("docs:read".into()), wire::Value::Str(name.clone())]
        );

        let at = |res: &str| req("docs:read", res, None, t0(), None);
        prop_assert!(issuer.check(&m.token, &at(&name)).is_ok());

        let mut others = vec![format!("{name}x")];
        let mut shorter = name.clone();
        shorter.pop();
        others.push(shorter);
        others.push(if name == "docs/a/1" { "docs/a/2".into() } else { "docs/a/1".into() });
        for other in others {
            // A longer name may exceed the resource limit: then no request
            // can even name it.
            let Ok(r) = Resource::parse(&other) else { continue };
            let d = issuer.check(&m.token, &at(r.as_str())).unwrap_err();
            prop_assert_eq!(d.reason, Reason::OutOfScope, "{:?} vs {:?}: {}", name, other, d);
        }
    }
}

#[test]
fn resource_names_at_the_byte_limit_are_exact_rights() {
    let issuer = Issuer::new();
    for name in ["é".repeat(512), "a".repeat(1024), "🦀".repeat(256)] {
        let m = issuer.mint(&exact(&name));
        assert!(issuer
            .check(&m.token, &req("docs:read", &name, None, t0(), None))
            .is_ok());
        let mut shorter = name.clone();
        shorter.pop();
        assert_eq!(
            issuer.denied(&m.token, &req("docs:read", &shorter, None, t0(), None)),
            Reason::OutOfScope
        );
    }
}

#[test]
fn an_exact_resource_named_star_is_allowed_for_itself() {
    let issuer = Issuer::new();
    let m = issuer.mint(&exact("*"));
    let g = issuer.check(&m.token, &req("docs:read", "*", None, t0(), None));
    assert!(g.is_ok(), "{g:?}");
    assert_eq!(
        issuer.denied(&m.token, &req("docs:read", "anything", None, t0(), None)),
        Reason::OutOfScope
    );
}

#[test]
fn an_exact_resource_ending_in_a_star_matches_only_itself() {
    let issuer = Issuer::new();
    let m = issuer.mint(&exact("reports/*"));
    assert!(issuer
        .check(&m.token, &req("docs:read", "reports/*", None, t0(), None))
        .is_ok());
    assert_eq!(
        issuer.denied(
            &m.token,
            &req("docs:read", "reports/2024", None, t0(), None)
        ),
        Reason::OutOfScope
    );
}

#[test]
fn narrowing_an_exact_resource_ending_in_a_star_to_another_name_is_not_narrower() {
    let issuer = Issuer::new();
    let m = issuer.mint(&exact("reports/*"));
    let n = Narrowing {
        resource: Some(ResourcePattern::parse("reports/2024").unwrap()),
        ..Default::default()
    };
    let r = attenuate(&m.token, &n, &issuer.limits);
    assert!(matches!(r, Err(TokenError::NotNarrower(_))), "{r:?}");
}

#[test]
fn out_of_scope_reason_is_not_changed_by_a_quote_in_the_resource_name() {
    let issuer = Issuer::new();
    let m = issuer.mint(&exact("a\" time("));
    let d = issuer
        .check(&m.token, &req("docs:read", "b", None, t0(), None))
        .unwrap_err();
    assert_eq!(d.reason, Reason::OutOfScope, "{d}");
}
