//! Verifier benchmarks: `Verifier::check` beside raw biscuit-auth on the
//! same token, in one criterion group, so the ratios come from one run.
//! Results and the command: `docs/performance.md`.
//!
//! - `check/cold/N`: a verifier with its token cache disabled, so every
//!   call decodes, verifies the signatures and runs the Datalog.
//! - `check/raw/N`: `Biscuit::from_base64` + an authorizer with the same
//!   facts and `allow if true` (what a tool server would write by hand).
//! - `check/warm/N`: the same token and request again (default caches).
//! - `dpop/cold` and `dpop/ed25519_verify`: a bound token with a fresh DPoP
//!   proof on every call beside one bare Ed25519 signature check, and
//!   one with the key decoded from bytes and strict verification.
//! - `person/cold`: a bound token acting for a person (two earlier actors),
//!   delegated once, presented by the sub-agent with a fresh DPoP proof per
//!   call, cache off. `person/raw`: raw biscuit-auth on the same token with
//!   `holder_proven(true)` supplied (no proof checked).
//!   `person/raw_with_proof`: the same plus `jose::verify_dpop` of a fresh
//!   proof, the least a hand-written verifier of a bound token must do.
//!   `person/core_cold`: `token::authorize` on the same token with the
//!   sub-agent's key as proven (no JWS), beside `person/raw`.

// Benches are test code: a failed setup should stop the run loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use biscuit_auth::builder::{self, Algorithm, Term};
use biscuit_auth::{AuthorizerBuilder, AuthorizerLimits, Biscuit, KeyPair, PublicKey};
use chrono::{DateTime, Utc};
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion};
use ed25519_dalek::{Signer as _, SigningKey, Verifier as _};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use tessera::jose::{self, DpopClaims};
use tessera::token::{
    attenuate_with_rng, authorize, delegate_with_rng, mint_with_rng, Action, AgentId, Audience,
    Capability, KeySet, Lifetime, Limits, Narrowing, OnBehalf, Person, Request, Resource,
    ResourcePattern, RootKeyPair,
};
use tessera::verify::{
    CheckRequest, KeySource, MemoryReplayGuard, Presentation, RevocationView, Revocations, Verifier,
};

const SERVICE: &str = "https://tool.example";
const ACTION: &str = "docs:read";
const RESOURCE: &str = "docs/team-a/report-1";
const URL: &str = "https://tool.example/docs";

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-22T12:00:00Z")
        .unwrap()
        .to_utc()
}

fn limits() -> Limits {
    Limits {
        max_time: Duration::from_secs(1),
        ..Limits::default()
    }
}

fn date(t: DateTime<Utc>) -> Term {
    let secs = u64::try_from(t.timestamp()).unwrap();
    builder::date(&(SystemTime::UNIX_EPOCH + Duration::from_secs(secs)))
}

struct Fixture {
    root: RootKeyPair,
    keys: KeySet,
    holder: KeyPair,
}

fn fixture() -> Fixture {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let kp = KeyPair::new_with_rng(Algorithm::Ed25519, &mut rng);
    let holder = KeyPair::new_with_rng(Algorithm::Ed25519, &mut rng);
    Fixture {
        keys: KeySet::single(1, kp.public()),
        root: RootKeyPair::new(1, kp),
        holder,
    }
}

/// A token of `blocks` blocks: the authority block, then attenuations.
fn token(f: &Fixture, blocks: usize, bound: bool) -> String {
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let cap = Capability {
        agent: AgentId::parse("agent://acme/planner").unwrap(),
        action: Action::parse(ACTION).unwrap(),
        resource: ResourcePattern::parse("docs/team-a/*").unwrap(),
        audience: Some(Audience::parse(SERVICE).unwrap()),
        lifetime: Lifetime::parse("5m").unwrap(),
        holder_key: bound.then(|| f.holder.public()),
        on_behalf: None,
    };
    let mut t = mint_with_rng(&cap, &f.root, t0(), &mut rng).unwrap().token;
    for i in 1..blocks {
        let n = Narrowing {
            expires_at: Some(t0() + chrono::Duration::seconds(299 - i as i64)),
            ..Narrowing::default()
        };
        t = attenuate_with_rng(&t, &n, &limits(), &mut rng).unwrap();
    }
    t
}

fn verifier(rt: &tokio::runtime::Runtime, f: &Fixture, cache: usize) -> Verifier {
    let view = RevocationView::new();
    view.confirm_current();
    rt.block_on(
        Verifier::builder(SERVICE)
            .keys(KeySource::Keys(f.keys.clone()))
            .revocations(Revocations::View(view))
            .max_staleness(Duration::from_secs(86_400))
            .limits(limits())
            .cache_capacity(cache)
            .replay_guard(Arc::new(MemoryReplayGuard::new(100_000_000)))
            .clock(Arc::new(t0))
            .build(),
    )
    .unwrap()
}

fn raw_check(token: &str, root: PublicKey, limits: &AuthorizerLimits) -> usize {
    raw_check_with(token, root, limits, false)
}

/// [`raw_check`], with `holder_proven(true)` when `proven`.
fn raw_check_with(token: &str, root: PublicKey, limits: &AuthorizerLimits, proven: bool) -> usize {
    let biscuit = Biscuit::from_base64(token, root).unwrap();
    let mut ab = AuthorizerBuilder::new();
    if proven {
        ab = ab
            .fact(builder::fact("holder_proven", &[builder::boolean(true)]))
            .unwrap();
    }
    let mut authorizer = ab
        .fact(builder::fact("time", &[date(t0())]))
        .unwrap()
        .fact(builder::fact("operation", &[builder::string(ACTION)]))
        .unwrap()
        .fact(builder::fact("resource", &[builder::string(RESOURCE)]))
        .unwrap()
        .fact(builder::fact("service", &[builder::string(SERVICE)]))
        .unwrap()
        .policy("allow if true")
        .unwrap()
        .set_limits(limits.clone())
        .build(&biscuit)
        .unwrap();
    authorizer.authorize().unwrap()
}

fn bench_check(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let f = fixture();
    let root = f.root.keypair.public();
    let l = limits();
    let raw_limits = AuthorizerLimits {
        max_facts: l.max_facts,
        max_iterations: l.max_iterations,
        max_time: l.max_time,
    };
    let cold = verifier(&rt, &f, 0);
    let warm = verifier(&rt, &f, 10_000);
    let req = CheckRequest::new(ACTION, RESOURCE).unwrap();
    let mut g = c.benchmark_group("check");
    for blocks in [1, 4] {
        let t = token(&f, blocks, false);
        // Setup: both sides allow.
        rt.block_on(cold.check(&Presentation::bearer(&t), &req))
            .unwrap();
        raw_check(&t, root, &raw_limits);
        g.bench_with_input(BenchmarkId::new("cold", blocks), &t, |b, t| {
            b.iter(|| {
                rt.block_on(cold.check(&Presentation::bearer(black_box(t)), &req))
                    .unwrap()
            })
        });
        g.bench_with_input(BenchmarkId::new("raw", blocks), &t, |b, t| {
            b.iter(|| raw_check(black_box(t), root, &raw_limits))
        });
        rt.block_on(warm.check(&Presentation::bearer(&t), &req))
            .unwrap();
        g.bench_with_input(BenchmarkId::new("warm", blocks), &t, |b, t| {
            b.iter(|| {
                rt.block_on(warm.check(&Presentation::bearer(black_box(t)), &req))
                    .unwrap()
            })
        });
    }
    g.finish();

    // DPoP: a fresh proof per call (made in the untimed setup).
    let bound = token(&f, 1, true);
    let holder: [u8; 32] = f.holder.private().to_bytes().as_slice().try_into().unwrap();
    let holder = SigningKey::from_bytes(&holder);
    let mut n = 0u64;
    let mut proof = || {
        n += 1;
        let claims = DpopClaims {
            jti: format!("jti-{n}"),
            htm: "POST".into(),
            htu: URL.into(),
            iat: t0().timestamp(),
            ath: Some(jose::access_token_hash(&bound)),
        };
        jose::sign(&holder, Some("dpop+jwt"), true, &claims).unwrap()
    };
    let present = |p: &str| {
        rt.block_on(cold.check(
            &Presentation {
                token: &bound,
                dpop: Some(p),
                method: "POST",
                url: URL,
            },
            &req,
        ))
        .unwrap()
    };
    present(&proof());
    let mut g = c.benchmark_group("dpop");
    g.bench_function("cold", |b| {
        b.iter_batched(&mut proof, |p| present(&p), BatchSize::SmallInput)
    });
    let bearer = token(&f, 1, false);
    g.bench_function("bearer_cold", |b| {
        b.iter(|| {
            rt.block_on(cold.check(&Presentation::bearer(black_box(&bearer)), &req))
                .unwrap()
        })
    });
    // The same bearer token with a proof: the proof's own cost, nothing else.
    let mut m = 0u64;
    let mut bearer_proof = || {
        m += 1;
        let claims = DpopClaims {
            jti: format!("b-{m}"),
            htm: "POST".into(),
            htu: URL.into(),
            iat: t0().timestamp(),
            ath: Some(jose::access_token_hash(&bearer)),
        };
        jose::sign(&holder, Some("dpop+jwt"), true, &claims).unwrap()
    };
    g.bench_function("bearer_with_proof_cold", |b| {
        b.iter_batched(
            &mut bearer_proof,
            |p| {
                rt.block_on(cold.check(
                    &Presentation {
                        token: &bearer,
                        dpop: Some(&p),
                        method: "POST",
                        url: URL,
                    },
                    &req,
                ))
                .unwrap()
            },
            BatchSize::SmallInput,
        )
    });
    let msg = [7u8; 200];
    let sig = holder.sign(&msg);
    let vk = holder.verifying_key();
    g.bench_function("ed25519_verify", |b| {
        b.iter(|| vk.verify(black_box(&msg), &sig).unwrap())
    });
    // What checking a JWS with an embedded key costs at least: decode the
    // key from its 32 bytes, then a strict verification.
    let vk_bytes = vk.to_bytes();
    g.bench_function("ed25519_decode_verify_strict", |b| {
        b.iter(|| {
            ed25519_dalek::VerifyingKey::from_bytes(black_box(&vk_bytes))
                .unwrap()
                .verify_strict(black_box(&msg), &sig)
                .unwrap()
        })
    });
    g.finish();
}

/// A bound token acting for alice, exchanged twice before (two earlier
/// actors), delegated once to `sub`: the shape of a tool server's call
/// made for a person through a sub-agent.
/// A bearer token for alice with two earlier actors, no delegation: the
/// same shape as `check`'s 1-block token plus the person's facts.
fn person_bearer_token(f: &Fixture) -> String {
    let mut rng = ChaCha20Rng::seed_from_u64(14);
    let cap = Capability {
        agent: AgentId::parse("agent://acme/planner").unwrap(),
        action: Action::parse(ACTION).unwrap(),
        resource: ResourcePattern::parse("docs/team-a/*").unwrap(),
        audience: Some(Audience::parse(SERVICE).unwrap()),
        lifetime: Lifetime::parse("5m").unwrap(),
        holder_key: None,
        on_behalf: Some(OnBehalf {
            person: Person::parse("https://login.acme.example", "alice").unwrap(),
            prior_actors: vec![
                AgentId::parse("agent://acme/assistant").unwrap(),
                AgentId::parse("agent://acme/travel-desk").unwrap(),
            ],
        }),
    };
    mint_with_rng(&cap, &f.root, t0(), &mut rng).unwrap().token
}

fn person_token(f: &Fixture, sub: &KeyPair) -> String {
    let mut rng = ChaCha20Rng::seed_from_u64(13);
    let cap = Capability {
        agent: AgentId::parse("agent://acme/planner").unwrap(),
        action: Action::parse(ACTION).unwrap(),
        resource: ResourcePattern::parse("docs/team-a/*").unwrap(),
        audience: Some(Audience::parse(SERVICE).unwrap()),
        lifetime: Lifetime::parse("5m").unwrap(),
        holder_key: Some(f.holder.public()),
        on_behalf: Some(OnBehalf {
            person: Person::parse("https://login.acme.example", "alice").unwrap(),
            prior_actors: vec![
                AgentId::parse("agent://acme/assistant").unwrap(),
                AgentId::parse("agent://acme/travel-desk").unwrap(),
            ],
        }),
    };
    let t = mint_with_rng(&cap, &f.root, t0(), &mut rng).unwrap().token;
    delegate_with_rng(
        &t,
        &f.holder,
        &AgentId::parse("agent://acme/planner/sub").unwrap(),
        &sub.public(),
        &Narrowing::default(),
        &limits(),
        &mut rng,
    )
    .unwrap()
}

fn bench_person(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let f = fixture();
    let sub = KeyPair::new_with_rng(Algorithm::Ed25519, &mut ChaCha20Rng::seed_from_u64(17));
    let root = f.root.keypair.public();
    let l = limits();
    let raw_limits = AuthorizerLimits {
        max_facts: l.max_facts,
        max_iterations: l.max_iterations,
        max_time: l.max_time,
    };
    let cold = verifier(&rt, &f, 0);
    let req = CheckRequest::new(ACTION, RESOURCE).unwrap();
    let t = person_token(&f, &sub);
    let signer: [u8; 32] = sub.private().to_bytes().as_slice().try_into().unwrap();
    let signer = SigningKey::from_bytes(&signer);
    let mut n = 0u64;
    let mut proof = || {
        n += 1;
        let claims = DpopClaims {
            jti: format!("p-{n}"),
            htm: "POST".into(),
            htu: URL.into(),
            iat: t0().timestamp(),
            ath: Some(jose::access_token_hash(&t)),
        };
        jose::sign(&signer, Some("dpop+jwt"), true, &claims).unwrap()
    };
    let present = |p: &str| {
        rt.block_on(cold.check(
            &Presentation {
                token: &t,
                dpop: Some(p),
                method: "POST",
                url: URL,
            },
            &req,
        ))
        .unwrap()
    };
    // Setup: every side allows, and the grant names alice and the chain.
    let grant = present(&proof());
    assert_eq!(
        grant.custody().to_string(),
        "for alice at https://login.acme.example via agent://acme/assistant -> \
         agent://acme/travel-desk -> agent://acme/planner -> agent://acme/planner/sub"
    );
    raw_check_with(&t, root, &raw_limits, true);
    let core_req = Request {
        amount: None,
        operation: Action::parse(ACTION).unwrap(),
        resource: Resource::parse(RESOURCE).unwrap(),
        service: Some(Audience::parse(SERVICE).unwrap()),
        now: t0(),
        proven_key: Some(sub.public()),
    };
    let core = |t: &str| authorize(t, &f.keys, &core_req, |_| false, &l).unwrap();
    assert!(core(&t).on_behalf.is_some());
    let rules = jose::DpopRules {
        method: "POST",
        url: URL,
        access_token: Some(&t),
        now: t0(),
        window_secs: 60,
    };
    let mut g = c.benchmark_group("person");
    g.bench_function("cold", |b| {
        b.iter_batched(&mut proof, |p| present(&p), BatchSize::SmallInput)
    });
    g.bench_function("raw", |b| {
        b.iter(|| raw_check_with(black_box(&t), root, &raw_limits, true))
    });
    let mut m = 0u64;
    let mut raw_proof = || {
        m += 1;
        let claims = DpopClaims {
            jti: format!("r-{m}"),
            htm: "POST".into(),
            htu: URL.into(),
            iat: t0().timestamp(),
            ath: Some(jose::access_token_hash(&t)),
        };
        jose::sign(&signer, Some("dpop+jwt"), true, &claims).unwrap()
    };
    g.bench_function("raw_with_proof", |b| {
        b.iter_batched(
            &mut raw_proof,
            |p| {
                jose::verify_dpop(&p, &rules).unwrap();
                raw_check_with(black_box(&t), root, &raw_limits, true)
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("core_cold", |b| b.iter(|| core(black_box(&t))));
    // The same comparison as `check/cold/1` against `check/raw/1`: a bearer
    // token, here acting for alice, through the Verifier and through raw
    // biscuit-auth.
    let bearer = person_bearer_token(&f);
    let granted = rt
        .block_on(cold.check(&Presentation::bearer(&bearer), &req))
        .unwrap();
    assert!(granted.person().is_some());
    raw_check_with(&bearer, root, &raw_limits, false);
    g.bench_function("bearer_cold", |b| {
        b.iter(|| {
            rt.block_on(cold.check(&Presentation::bearer(black_box(&bearer)), &req))
                .unwrap()
        })
    });
    g.bench_function("bearer_raw", |b| {
        b.iter(|| raw_check_with(black_box(&bearer), root, &raw_limits, false))
    });
    g.finish();
}

/// Private, so the `pub fn` that `criterion_group!` generates needs no doc.
mod group {
    use super::*;

    criterion_group! {
        name = benches;
        config = Criterion::default()
            .sample_size(30)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3));
        targets = bench_check, bench_person
    }
}
criterion_main!(group::benches);
