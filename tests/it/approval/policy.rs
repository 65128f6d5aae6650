//! The `[approval]` policy: rules, their checks, and the refusal text.

use tessera::server::approval_policy::ApprovalConfig;
use tessera::token::Action;

fn config(text: &str) -> Result<ApprovalConfig, String> {
    let c: ApprovalConfig = toml::from_str(text).map_err(|e| e.to_string())?;
    c.check()?;
    Ok(c)
}

#[test]
fn a_rule_names_always_or_an_amount_and_the_refusal_names_the_path() {
    let c = config(
        "[[rule]]\naction = \"db:drop\"\napproval = \"always\"\n\
         [[rule]]\naction = \"payments:create\"\napproval_above = \"100.00EUR\"\n",
    )
    .unwrap();
    let drop = Action::parse("db:drop").unwrap();
    let pay = Action::parse("payments:create").unwrap();
    let read = Action::parse("docs:read").unwrap();
    assert!(c
        .refusal(&drop)
        .unwrap()
        .contains("POST /oauth/bc-authorize"));
    assert!(c.refusal(&pay).unwrap().contains("above 100.00EUR"));
    assert_eq!(c.refusal(&read), None);
    assert!(!c.operators_may_decide);
}

#[test]
fn a_rule_with_neither_or_both_or_twice_or_a_bad_amount_is_refused() {
    for bad in [
        "[[rule]]\naction = \"a:b\"\n",
        "[[rule]]\naction = \"a:b\"\napproval = \"always\"\napproval_above = \"1EUR\"\n",
        "[[rule]]\naction = \"a:b\"\napproval = \"always\"\n[[rule]]\naction = \"a:b\"\napproval = \"always\"\n",
        "[[rule]]\naction = \"a:b\"\napproval_above = \"1.005EUR\"\n",
        "[[rule]]\naction = \"a:b\"\napproval = \"sometimes\"\n",
    ] {
        assert!(config(bad).is_err(), "{bad}");
    }
}
