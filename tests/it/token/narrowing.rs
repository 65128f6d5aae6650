//! Property: over random chains of attenuations, delegations and raw
//! widening attempts, the set of requests a token allows never grows.
//!
//! Each case authorizes a few dozen requests (64 cases take about a second
//! with dependencies optimized in the dev profile); set `PROPTEST_CASES` to
//! run more.

use std::collections::BTreeSet;

use biscuit_auth::builder;
use biscuit_auth::KeyPair;
use proptest::prelude::*;
use tessera::token::*;

use super::raw::{append_first_party, append_third_party, block, s};
use super::support::*;

const ACTIONS: [&str; 2] = ["docs:read", "docs:write"];
const GRANTS: [&str; 3] = ["docs/*", "docs/a/*", "docs/a/1"];
const NARROW_RESOURCES: [&str; 6] = [
    "docs/*",
    "docs/a/*",
    "docs/a/1",
    "docs/a/b/*",
    "docs/b/*",
    "docs/a/b/2",
];
const NARROW_EXPIRY: [i64; 4] = [100, 250, 300, 350];
const AUDIENCES: [&str; 2] = [SERVICE, OTHER_SERVICE];

/// (operation, resource) pairs probed, including ones no token grants.
const PAIRS: [(&str, &str); 5] = [
    ("docs:read", "docs/a/1"),
    ("docs:read", "docs/a/b/2"),
    ("docs:read", "docs/b/1"),
    ("docs:write", "docs/a/1"),
    ("admin:all", "docs/a/1"),
];

/// (service, seconds after t0) each pair is probed at: in scope, at another
/// tool server, late in the lifetime, and past the minted expiry.
const CONTEXTS: [(&str, i64); 4] = [
    (SERVICE, 10),
    (OTHER_SERVICE, 10),
    (SERVICE, 200),
    (SERVICE, 400),
];

type Probe = (usize, usize);

#[derive(Debug, Clone)]
struct Spec {
    action: Option<usize>,
    resource: Option<usize>,
    expiry: Option<usize>,
    audience: Option<usize>,
}

impl Spec {
    fn narrowing(&self) -> Narrowing {
        Narrowing {
            max_amount: None,
            budget: None,
            action: self.action.map(|i| Action::parse(ACTIONS[i]).unwrap()),
            resource: self
                .resource
                .map(|i| ResourcePattern::parse(NARROW_RESOURCES[i]).unwrap()),
            expires_at: self.expiry.map(|i| t0() + secs(NARROW_EXPIRY[i])),
            audience: self
                .audience
                .map(|i| Audience::parse(AUDIENCES[i]).unwrap()),
        }
    }
}

/// Facts and rules a hostile holder might put in a block to widen a token.
#[derive(Debug, Clone, Copy)]
enum Widen {
    AdminRight,
    PrefixRight,
    HolderProven,
    FrozenTime,
    Service,
    RuleGrantingAnything,
}

impl Widen {
    fn block(self) -> biscuit_auth::BlockBuilder {
        match self {
            Widen::AdminRight => block(
                r#"right("admin:all", "docs/a/1"); right("admin:all", "x");"#,
                &[],
            ),
            Widen::PrefixRight => block(
                r#"right_prefix("docs:read", "d"); right_prefix("docs:write", "d");"#,
                &[],
            ),
            Widen::HolderProven => block("holder_proven(true);", &[]),
            Widen::FrozenTime => block(
                "time({t});",
                &[("t", builder::date(&std::time::SystemTime::from(t0())))],
            ),
            Widen::Service => block(
                "service({a}); service({b});",
                &[("a", s(SERVICE)), ("b", s(OTHER_SERVICE))],
            ),
            Widen::RuleGrantingAnything => block(
                "right($op, $r) <- operation($op), resource($r);
                 holder_proven(true) <- operation($op);",
                &[],
            ),
        }
    }
}

#[derive(Debug, Clone)]
enum Step {
    Attenuate(Spec),
    Delegate(Spec),
    RawFirstParty(Widen),
    /// A delegation signed by the current holder that also carries facts.
    RawThirdParty(Widen),
}

struct State {
    token: String,
    holder: Option<KeyPair>,
    /// A raw delegation block sits on a bearer token: Tessera refuses to
    /// read the chain from here on (and every request is denied).
    broken: bool,
}

fn allowed(issuer: &Issuer, st: &State) -> BTreeSet<Probe> {
    let mut set = BTreeSet::new();
    for (p, (op, res)) in PAIRS.iter().enumerate() {
        for (c, (svc, at)) in CONTEXTS.iter().enumerate() {
            let r = req(op, res, Some(svc), t0() + secs(*at), st.holder.as_ref());
            if issuer.check(&st.token, &r).is_ok() {
                set.insert((p, c));
            }
        }
    }
    set
}

/// Applies one step; returns false when the step was (rightly) refused.
fn apply(issuer: &Issuer, st: &mut State, step: &Step, n: usize) -> bool {
    let next_key = keypair(1000 + n as u64);
    let next_agent = format!("agent://acme/hop-{n}");
    match step {
        Step::Attenuate(spec) => match attenuate(&st.token, &spec.narrowing(), &issuer.limits) {
            Ok(t) => st.token = t,
            Err(TokenError::NotNarrower(_)) => return false,
            Err(TokenError::Chain(_)) if st.broken => return false,
            Err(e) => panic!("attenuate {spec:?}: {e}"),
        },
        Step::Delegate(spec) => {
            let Some(holder) = st.holder.as_ref().filter(|_| !st.broken) else {
                let r = delegate(
                    &st.token,
                    &next_key,
                    &AgentId::parse(&next_agent).unwrap(),
                    &next_key.public(),
                    &spec.narrowing(),
                    &issuer.limits,
                );
                assert!(
                    matches!(r, Err(TokenError::NotBound | TokenError::Chain(_))),
                    "{r:?}"
                );
                return false;
            };
            match delegate(
                &st.token,
                holder,
                &AgentId::parse(&next_agent).unwrap(),
                &next_key.public(),
                &spec.narrowing(),
                &issuer.limits,
            ) {
                Ok(t) => {
                    st.token = t;
                    st.holder = Some(next_key);
                }
                Err(TokenError::NotNarrower(_)) => return false,
                Err(e) => panic!("delegate {spec:?}: {e}"),
            }
        }
        Step::RawFirstParty(w) => st.token = append_first_party(&st.token, w.block()),
        Step::RawThirdParty(w) => {
            // On a bearer token any key may sign; the result must not widen either.
            let stranger = keypair(999);
            let signer = st.holder.as_ref().unwrap_or(&stranger);
            st.broken |= st.holder.is_none();
            let b = w
                .block()
                .merge(super::raw::delegated_to(&next_agent, &next_key));
            st.token = append_third_party(&st.token, signer, b);
            st.holder = Some(next_key);
        }
    }
    true
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        // Mostly absent, so more narrowings land inside the token.
        proptest::option::weighted(0.35, 0..ACTIONS.len()),
        proptest::option::weighted(0.6, 0..NARROW_RESOURCES.len()),
        proptest::option::weighted(0.5, 0..NARROW_EXPIRY.len()),
        proptest::option::weighted(0.35, 0..AUDIENCES.len()),
    )
        .prop_map(|(action, resource, expiry, audience)| Spec {
            action,
            resource,
            expiry,
            audience,
        })
}

fn widen() -> impl Strategy<Value = Widen> {
    prop_oneof![
        Just(Widen::AdminRight),
        Just(Widen::PrefixRight),
        Just(Widen::HolderProven),
        Just(Widen::FrozenTime),
        Just(Widen::Service),
        Just(Widen::RuleGrantingAnything),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => spec().prop_map(Step::Attenuate),
        3 => spec().prop_map(Step::Delegate),
        1 => widen().prop_map(Step::RawFirstParty),
        1 => widen().prop_map(Step::RawThirdParty),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(64)))]

    #[test]
    fn allowed_requests_never_grow_along_a_chain_of_narrowings(
        action in 0..ACTIONS.len(),
        grant in 0..GRANTS.len(),
        audience in any::<bool>(),
        bound in any::<bool>(),
        steps in proptest::collection::vec(step(), 1..=4),
    ) {
        let issuer = Issuer::new();
        let agent = keypair(10);
        let m = issuer.mint(&cap(
            ACTIONS[action],
            GRANTS[grant],
            audience.then_some(SERVICE),
            bound.then_some(&agent),
        ));
        prop_assert_eq!(m.expires_at, t0() + secs(300));
        let mut st = State { token: m.token, holder: bound.then_some(agent), broken: false };
        let mut before = allowed(&issuer, &st);
        // Every grant covers docs/a/1, so the minted token allows its own
        // action there (pair 0 or 3, context 0): the property is not vacuous.
        let own = PAIRS.iter().position(|p| *p == (ACTIONS[action], "docs/a/1")).unwrap();
        prop_assert!(before.contains(&(own, 0)), "{:?}", before);
        let mut applied = 0;
        for (n, s) in steps.iter().enumerate() {
            if !apply(&issuer, &mut st, s, n) {
                continue;
            }
            applied += 1;
            let after = allowed(&issuer, &st);
            prop_assert!(
                after.is_subset(&before),
                "step {} {:?} widened: {:?} -> {:?}", n, s, before, after
            );
            before = after;
        }
        if std::env::var_os("TESSERA_PROP_STATS").is_some() {
            eprintln!("applied {applied}/{} steps, final {} allowed", steps.len(), before.len());
        }
    }
}
