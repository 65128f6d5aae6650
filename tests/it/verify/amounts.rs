//! `Verifier::check` with an amount (issue 13, point 7): the tool server
//! passes the operation's amount in the `CheckRequest`.

use std::sync::Arc;

use tessera::token::{attenuate, Amount, Narrowing};
use tessera::verify::{CheckRequest, KeySource, Presentation, Reason, RevocationView, Revocations};

use super::check::{verifier_with, TestClock};
use crate::token::support::{cap, Issuer, SERVICE};

fn pay(amount: Option<&str>) -> CheckRequest {
    let r = CheckRequest::new("pay", "order:42").unwrap();
    match amount {
        Some(a) => r.with_amount(Amount::parse(a).unwrap()),
        None => r,
    }
}

#[tokio::test]
async fn the_verifier_passes_the_amount_to_the_tokens_cap() {
    let issuer = Issuer::new();
    let clock = TestClock::new();
    let view = RevocationView::new();
    view.confirm_current();
    let v = verifier_with(
        KeySource::Keys(issuer.keys.clone()),
        Revocations::View(Arc::clone(&view)),
        &clock,
    )
    .await;
    let m = issuer.mint(&cap("pay", "order:*", Some(SERVICE), None));
    let n = Narrowing {
        max_amount: Some(Amount::parse("40.00EUR").unwrap()),
        ..Narrowing::default()
    };
    let t = attenuate(&m.token, &n, &issuer.limits).unwrap();
    let p = Presentation::bearer(&t);
    // Asked twice each, in alternation: the per-token memo must keep
    // answers for different amounts apart.
    for _ in 0..2 {
        let g = v.check(&p, &pay(Some("40.00EUR"))).await.unwrap();
        assert_eq!(g.agent.as_str(), "agent://acme/main");
        for refused in [Some("40.01EUR"), Some("40USD"), None] {
            let rej = v.check(&p, &pay(refused)).await.unwrap_err();
            assert_eq!(rej.reason, Reason::OutOfScope, "{refused:?}");
        }
    }
    // The uncapped token is indifferent to the amount.
    let plain = Presentation::bearer(&m.token);
    assert!(v.check(&plain, &pay(None)).await.is_ok());
    assert!(v.check(&plain, &pay(Some("1000000.00EUR"))).await.is_ok());
}
