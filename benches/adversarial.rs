//! Adversarial token shapes (issue 9): what it costs to verify or refuse
//! each one, beside a normal 1-block verify and raw biscuit-auth's verify of
//! the same normal token, in one criterion group so the ratios come from one
//! run. The times criterion reports here are the CPU time of the verifying
//! thread (`iter_custom` with `cpu_time::ThreadTime`), not wall time: the
//! target is CPU time, and on a shared machine wall time counts other
//! processes too. Peak heap per verification is measured with a counting
//! global allocator and printed before the timings. Target: every shape under 5 ms
//! of CPU and 16 MB of heap. Results and the command: `docs/performance.md`,
//! "Adversarial tokens".
//!
//! Token sizes are asserted during setup (every shape within the 16 KiB
//! limit, the large ones close to it), as are the outcomes (refused with
//! `limits_exceeded`, or allowed), so a change in either fails the bench.

// Benches are test code: a failed setup should stop the run loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, SystemTime};

use biscuit_auth::builder::{self, Algorithm, Term};
use biscuit_auth::{AuthorizerBuilder, AuthorizerLimits, Biscuit, BlockBuilder, KeyPair};
use chrono::{DateTime, Utc};
use cpu_time::ThreadTime;
use criterion::{criterion_group, criterion_main, Criterion};
use peak_alloc::PeakAlloc;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use tessera::token::{
    authorize, delegate_with_rng, encode, mint_with_rng, Action, AgentId, Audience, Capability,
    KeySet, Lifetime, Limits, Narrowing, Reason, Request, Resource, ResourcePattern, RootKeyPair,
};

#[global_allocator]
static HEAP: PeakAlloc = PeakAlloc;

const ROOT_KEY_ID: u32 = 1;
const AGENT: &str = "agent://acme/planner";
const ACTION: &str = "docs:read";
const PREFIX: &str = "docs/team-a/";
const SERVICE: &str = "https://tool.example";
const RESOURCE: &str = "docs/team-a/report-1";
/// The size limit every shape stays within, and how close the "maximum
/// size" shapes come to it.
const MAX_BYTES: usize = 16 * 1024;
const NEAR_MAX: usize = 15 * 1024;
/// The targets of issue 9.
const CPU_TARGET: Duration = Duration::from_millis(5);
const HEAP_TARGET: usize = 16 * 1024 * 1024;

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-22T12:00:00Z")
        .unwrap()
        .to_utc()
}

fn rng() -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(9)
}

fn date(t: DateTime<Utc>) -> Term {
    let secs = u64::try_from(t.timestamp()).unwrap();
    builder::date(&(SystemTime::UNIX_EPOCH + Duration::from_secs(secs)))
}

fn decoded_len(token: &str) -> usize {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE
        .decode(token)
        .unwrap()
        .len()
}

struct Fixture {
    root: RootKeyPair,
    keys: KeySet,
    agent: KeyPair,
    limits: Limits,
}

impl Fixture {
    fn new() -> Self {
        let mut rng = rng();
        let root = RootKeyPair::new(
            ROOT_KEY_ID,
            KeyPair::new_with_rng(Algorithm::Ed25519, &mut rng),
        );
        let keys = KeySet::single(ROOT_KEY_ID, root.keypair.public());
        let agent = KeyPair::new_with_rng(Algorithm::Ed25519, &mut rng);
        Self {
            root,
            keys,
            agent,
            // The defaults a verifier runs with.
            limits: Limits::default(),
        }
    }

    /// A 1-block token bound to the agent, as the issuer mints it.
    fn mint(&self) -> String {
        let cap = Capability {
            agent: AgentId::parse(AGENT).unwrap(),
            action: Action::parse(ACTION).unwrap(),
            resource: ResourcePattern::parse(&format!("{PREFIX}*")).unwrap(),
            audience: Some(Audience::parse(SERVICE).unwrap()),
            lifetime: Lifetime::parse("5m").unwrap(),
            holder_key: Some(self.agent.public()),
            on_behalf: None,
        };
        mint_with_rng(&cap, &self.root, t0(), &mut rng())
            .unwrap()
            .token
    }

    fn request(&self, proven: &KeyPair) -> Request {
        Request {
            amount: None,
            operation: Action::parse(ACTION).unwrap(),
            resource: Resource::parse(RESOURCE).unwrap(),
            service: Some(Audience::parse(SERVICE).unwrap()),
            now: t0() + chrono::Duration::seconds(1),
            proven_key: Some(proven.public()),
        }
    }
}

/// Appends a first-party block, as any holder can.
fn append(token: &str, b: BlockBuilder) -> String {
    let u = biscuit_auth::UnverifiedBiscuit::from_base64(token).unwrap();
    encode(&u.append(b).unwrap().to_vec().unwrap())
}

/// Appends a delegation block signed by `holder` naming `to`, plus `b`.
fn append_delegation(token: &str, holder: &KeyPair, to: &KeyPair, b: BlockBuilder) -> String {
    let u = biscuit_auth::UnverifiedBiscuit::from_base64(token).unwrap();
    let b = b
        .code_with_params(
            "delegated_to({a}, {k});",
            HashMap::from([
                ("a".to_owned(), builder::string("agent://acme/sub")),
                ("k".to_owned(), builder::string(&to.public().to_string())),
            ]),
            HashMap::new(),
        )
        .unwrap();
    let signed = u
        .third_party_request()
        .unwrap()
        .create_block(&holder.private(), b)
        .unwrap()
        .serialize()
        .unwrap();
    encode(&u.append_third_party(&signed).unwrap().to_vec().unwrap())
}

fn code(src: &str) -> BlockBuilder {
    BlockBuilder::new().code(src).unwrap()
}

fn array(n: usize) -> String {
    let items: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    format!("[{}]", items.join(", "))
}

/// The review's check: closures over 40-element arrays nested five deep.
fn nested_closures() -> BlockBuilder {
    let a = array(40);
    code(&format!(
        "check if {a}.all($a -> {a}.all($b -> {a}.all($c -> {a}.all($d -> {a}.all($e -> \
         $a + $b + $c + $d + $e >= 0)))));"
    ))
}

/// The review's join: facts joined four ways by a rule.
fn join_rule(k: usize) -> BlockBuilder {
    let facts: String = (0..k).map(|i| format!("n({i});")).collect();
    code(&format!(
        "{facts} j($a, $b, $c, $d) <- n($a), n($b), n($c), n($d);"
    ))
}

/// The same join in a check.
fn join_check(k: usize) -> BlockBuilder {
    let facts: String = (0..k).map(|i| format!("n({i});")).collect();
    code(&format!(
        "{facts} check if n($a), n($b), n($c), n($d), $a + $b + $c + $d < 0;"
    ))
}

/// `n` plain checks that all hold for the bench's request.
fn checks(n: usize) -> BlockBuilder {
    let src: String = (0..n)
        .map(|i| format!("check if resource($r), $r.starts_with(\"docs/\"), {i} >= 0;"))
        .collect();
    code(&src)
}

/// `n` checks of four alternatives each, of which only the last matches,
/// so every alternative is evaluated.
fn alternatives(n: usize) -> BlockBuilder {
    let src: String = (0..n)
        .map(|_| "check if resource(\"x\") or resource(\"y\") or resource(\"z\") or resource($r);")
        .collect();
    code(&src)
}

/// A token of `blocks` blocks, every one after the authority block a
/// delegation as Tessera writes it (two signatures per block: the most
/// signature work a token can ask for); the final holder.
fn many_blocks(f: &Fixture, blocks: usize) -> (String, KeyPair) {
    let mut rng = rng();
    let mut token = f.mint();
    let mut holder = KeyPair::from(&f.agent.private());
    for i in 1..blocks {
        let narrowing = Narrowing {
            resource: Some(ResourcePattern::parse(&format!("{PREFIX}*")).unwrap()),
            expires_at: Some(t0() + chrono::Duration::seconds(300 - i64::try_from(i).unwrap())),
            ..Narrowing::default()
        };
        let next = KeyPair::new_with_rng(Algorithm::Ed25519, &mut rng);
        let to = AgentId::parse(&format!("agent://acme/sub-{i}")).unwrap();
        token = delegate_with_rng(
            &token,
            &holder,
            &to,
            &next.public(),
            &narrowing,
            &f.limits,
            &mut rng,
        )
        .unwrap();
        holder = next;
    }
    (token, holder)
}

/// As many blocks of `block()` as fit under the size and block limits.
fn to_the_limit(f: &Fixture, block: impl Fn() -> BlockBuilder) -> String {
    let mut token = f.mint();
    loop {
        let next = append(&token, block());
        if decoded_len(&next) > MAX_BYTES {
            break;
        }
        let blocks = biscuit_auth::UnverifiedBiscuit::from_base64(&next)
            .unwrap()
            .block_count();
        if blocks > f.limits.max_blocks {
            break;
        }
        token = next;
    }
    token
}

/// One block holding a set literal that takes the token close to the size
/// limit, read by one check.
fn max_size_set(f: &Fixture) -> String {
    let token = f.mint();
    let mut n = 1000;
    loop {
        let items: Vec<String> = (0..n).map(|i| format!("\"docs/team-a/x{i}\"")).collect();
        let b = code(&format!(
            "check if resource($r), {{{}}}.contains($r) || $r.starts_with(\"docs/\");",
            items.join(", ")
        ));
        let t = append(&token, b);
        if decoded_len(&t) > MAX_BYTES {
            n -= 20;
            continue;
        }
        if decoded_len(&t) < NEAR_MAX {
            n += 20;
            continue;
        }
        return t;
    }
}

/// A 16 KiB token whose one appended block is refused: 600 checks.
fn max_size_refused(f: &Fixture) -> String {
    let token = f.mint();
    let mut n = 600;
    loop {
        let t = append(&token, checks(n));
        if decoded_len(&t) > MAX_BYTES {
            n -= 10;
        } else if decoded_len(&t) < NEAR_MAX {
            n += 10;
        } else {
            return t;
        }
    }
}

/// Raw biscuit-auth: parse and verify against the root key, then authorize
/// with the facts Tessera adds and `allow if true`.
fn raw_verify(token: &str, f: &Fixture, req: &Request) -> usize {
    let biscuit = Biscuit::from_base64(token, f.root.keypair.public()).unwrap();
    let l = &f.limits;
    let mut authorizer = AuthorizerBuilder::new()
        .fact(builder::fact("time", &[date(req.now)]))
        .unwrap()
        .fact(builder::fact("operation", &[builder::string(ACTION)]))
        .unwrap()
        .fact(builder::fact("resource", &[builder::string(RESOURCE)]))
        .unwrap()
        .fact(builder::fact("service", &[builder::string(SERVICE)]))
        .unwrap()
        .fact(builder::fact("holder_proven", &[builder::boolean(true)]))
        .unwrap()
        .policy("allow if true")
        .unwrap()
        .set_limits(AuthorizerLimits {
            max_facts: l.max_facts,
            max_iterations: l.max_iterations,
            max_time: l.max_time,
        })
        .build(&biscuit)
        .unwrap();
    authorizer.authorize().unwrap()
}

/// One shape: its name, the token, the request, and whether it is allowed.
struct Case {
    name: &'static str,
    token: String,
    req: Request,
    allowed: bool,
}

fn cases(f: &Fixture) -> Vec<Case> {
    let normal = f.mint();
    let agent_req = f.request(&f.agent);
    let sub = KeyPair::new_with_rng(Algorithm::Ed25519, &mut rng());
    let (blocks_max, last) = many_blocks(f, f.limits.max_blocks);
    let case = |name, token: String, req: &Request, allowed| Case {
        name,
        token,
        req: req.clone(),
        allowed,
    };
    vec![
        case("normal_1_block", normal.clone(), &agent_req, true),
        case(
            "nested_closures",
            append(&normal, nested_closures()),
            &agent_req,
            false,
        ),
        case(
            "join_rule",
            append(&normal, join_rule(40)),
            &agent_req,
            false,
        ),
        case(
            "join_check",
            append(&normal, join_check(40)),
            &agent_req,
            false,
        ),
        case(
            "delegation_with_closures",
            append_delegation(&normal, &f.agent, &sub, nested_closures()),
            &f.request(&sub),
            false,
        ),
        case(
            "checks_16_in_1_block",
            append(&normal, checks(16)),
            &agent_req,
            true,
        ),
        case(
            "checks_16_per_block_to_the_limit",
            to_the_limit(f, || checks(16)),
            &agent_req,
            true,
        ),
        case(
            "alternatives_4x16_per_block_to_the_limit",
            to_the_limit(f, || alternatives(16)),
            &agent_req,
            true,
        ),
        case("blocks_16_delegations", blocks_max, &f.request(&last), true),
        case("max_size_set", max_size_set(f), &agent_req, true),
        case("max_size_refused", max_size_refused(f), &agent_req, false),
    ]
}

/// Checks each case's size and outcome, and prints its size, blocks and
/// peak heap during one verification.
fn setup(f: &Fixture, cases: &[Case]) {
    println!("shape | bytes | blocks | peak heap (KiB)");
    for c in cases {
        let bytes = decoded_len(&c.token);
        assert!(bytes <= MAX_BYTES, "{}: {bytes} bytes", c.name);
        let blocks = biscuit_auth::UnverifiedBiscuit::from_base64(&c.token)
            .unwrap()
            .block_count();
        let base = HEAP.current_usage();
        HEAP.reset_peak_usage();
        let outcome = authorize(&c.token, &f.keys, &c.req, |_| false, &f.limits);
        let peak = HEAP.peak_usage().saturating_sub(base);
        match (&outcome, c.allowed) {
            (Ok(_), true) => {}
            (Err(d), false) => assert_eq!(d.reason, Reason::LimitsExceeded, "{}: {d}", c.name),
            _ => panic!("{}: unexpected outcome {outcome:?}", c.name),
        }
        drop(outcome);
        println!("{} | {bytes} | {blocks} | {}", c.name, peak / 1024);
        assert!(peak < HEAP_TARGET, "{}: peak heap {peak} bytes", c.name);
    }
    let base = HEAP.current_usage();
    HEAP.reset_peak_usage();
    raw_verify(&cases[0].token, f, &cases[0].req);
    let peak = HEAP.peak_usage().saturating_sub(base);
    println!(
        "raw_normal_1_block | {} | 1 | {}",
        decoded_len(&cases[0].token),
        peak / 1024
    );
    // One pass against the CPU target, so a run that misses it says so
    // even without reading criterion's output.
    for c in cases {
        let each = cpu(10, || {
            let _ = authorize(black_box(&c.token), &f.keys, &c.req, |_| false, &f.limits);
        }) / 10;
        if each > CPU_TARGET {
            println!("warning: {} took {each:?} of CPU per verification", c.name);
        }
    }
}

/// The CPU time this thread spends running `f` `iters` times.
fn cpu(iters: u64, mut f: impl FnMut()) -> Duration {
    let start = ThreadTime::now();
    for _ in 0..iters {
        f();
    }
    start.elapsed()
}

fn bench_adversarial(c: &mut Criterion) {
    let f = Fixture::new();
    let cases = cases(&f);
    setup(&f, &cases);
    let mut g = c.benchmark_group("adversarial");
    for case in &cases {
        g.bench_function(case.name, |b| {
            b.iter_custom(|iters| {
                cpu(iters, || {
                    let _ = authorize(
                        black_box(&case.token),
                        &f.keys,
                        &case.req,
                        |_| false,
                        &f.limits,
                    );
                })
            })
        });
    }
    // Raw biscuit-auth on the normal token, and on the longest accepted
    // chain (whose cost is its signatures, whoever verifies it).
    for (raw, name) in [
        ("raw_normal_1_block", "normal_1_block"),
        ("raw_blocks_16_delegations", "blocks_16_delegations"),
    ] {
        let case = cases.iter().find(|c| c.name == name).unwrap();
        g.bench_function(raw, |b| {
            b.iter_custom(|iters| {
                cpu(iters, || {
                    black_box(raw_verify(black_box(&case.token), &f, &case.req));
                })
            })
        });
    }
    // One Ed25519 signature verification (key decoded once), the unit of
    // a chain's cost: a 16-block chain of delegations needs 31 of them.
    let signer = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let message = [0u8; 300];
    let signature = ed25519_dalek::Signer::sign(&signer, &message);
    let key = signer.verifying_key();
    g.bench_function("ed25519_verify", |b| {
        b.iter_custom(|iters| {
            cpu(iters, || {
                black_box(key.verify_strict(black_box(&message), &signature)).unwrap();
            })
        })
    });
    g.finish();
}

/// Private, so the `pub fn` that `criterion_group!` generates needs no doc.
mod group {
    use super::*;

    criterion_group! {
        name = benches;
        config = Criterion::default().sample_size(20);
        targets = bench_adversarial
    }
}
criterion_main!(group::benches);
