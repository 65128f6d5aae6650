//! Token core benchmarks: each Tessera operation beside the raw biscuit-auth
//! operation on an equivalent token, in the same criterion group, so the
//! ratio comes from one run. Results and the command: `docs/performance.md`.
//!
//! Token sizes are asserted during setup, so a size regression fails the
//! bench (as biscuit-rust's own benches do).

// Benches are test code: a failed setup should stop the run loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, SystemTime};

use biscuit_auth::builder::{self, Algorithm, Term};
use biscuit_auth::datalog::SymbolTable;
use biscuit_auth::{
    AuthorizerBuilder, AuthorizerLimits, Biscuit, BlockBuilder, KeyPair, PublicKey,
    UnverifiedBiscuit,
};
use chrono::{DateTime, Utc};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use tessera::token::{
    attenuate_with_rng, authorize, delegate_with_rng, mint_with_rng, Action, AgentId, Audience,
    Capability, KeySet, Lifetime, Limits, Narrowing, Request, Resource, ResourcePattern,
    RootKeyPair,
};

const ROOT_KEY_ID: u32 = 1;
const AGENT: &str = "agent://acme/planner";
const ACTION: &str = "docs:read";
const PREFIX: &str = "docs/team-a/";
const SERVICE: &str = "https://tool.example";
const RESOURCE: &str = "docs/team-a/report-1";
/// Chain lengths (blocks, authority included) for the authorize group.
const CHAINS: [usize; 4] = [1, 2, 4, 8];
/// Size ceilings, bytes after base64 decoding. Measured at the time of
/// writing: 1 block 722, 8 blocks 2,929 (see `docs/performance.md`).
const MAX_BYTES_1_BLOCK: usize = 800;
const MAX_BYTES_8_BLOCKS: usize = 3_200;

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-22T12:00:00Z")
        .unwrap()
        .to_utc()
}

fn rng() -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(7)
}

/// Default limits with a generous time bound, so a descheduled thread on a
/// noisy machine does not fail the run.
fn limits() -> Limits {
    Limits {
        max_time: Duration::from_secs(1),
        ..Limits::default()
    }
}

fn raw_limits() -> AuthorizerLimits {
    let l = limits();
    AuthorizerLimits {
        max_facts: l.max_facts,
        max_iterations: l.max_iterations,
        max_time: l.max_time,
    }
}

fn date(t: DateTime<Utc>) -> Term {
    let secs = u64::try_from(t.timestamp()).unwrap();
    builder::date(&(SystemTime::UNIX_EPOCH + Duration::from_secs(secs)))
}

fn params<const N: usize>(pairs: [(&str, Term); N]) -> HashMap<String, Term> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
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
    cap: Capability,
    limits: Limits,
}

fn fixture() -> Fixture {
    let mut rng = rng();
    let root = RootKeyPair::new(
        ROOT_KEY_ID,
        KeyPair::new_with_rng(Algorithm::Ed25519, &mut rng),
    );
    let keys = KeySet::single(ROOT_KEY_ID, root.keypair.public());
    let agent = KeyPair::new_with_rng(Algorithm::Ed25519, &mut rng);
    let cap = Capability {
        agent: AgentId::parse(AGENT).unwrap(),
        action: Action::parse(ACTION).unwrap(),
        resource: ResourcePattern::parse(&format!("{PREFIX}*")).unwrap(),
        audience: Some(Audience::parse(SERVICE).unwrap()),
        lifetime: Lifetime::parse("5m").unwrap(),
        holder_key: Some(agent.public()),
        on_behalf: None,
    };
    Fixture {
        root,
        keys,
        agent,
        cap,
        limits: limits(),
    }
}

/// The authority block Tessera writes, built directly with biscuit-auth in
/// one `code_with_params` call.
fn raw_mint<R: RngCore + rand::CryptoRng>(f: &Fixture, rng: &mut R) -> String {
    let issued_at = t0();
    let expires_at = issued_at + chrono::Duration::seconds(300);
    let mut id = [0u8; 16];
    rng.fill_bytes(&mut id);
    let block = BlockBuilder::new()
        .code_with_params(
            "tessera_schema({schema});
             token_id({token_id});
             agent({agent});
             issued_at({issued_at});
             expires_at({expires_at});
             check if time($t), $t <= {expires_at};
             right_prefix({action}, {prefix});
             check if operation($op), resource($r), $op == {action}, $r.starts_with({prefix});
             audience({audience});
             check if service($s), $s == {audience};
             agent_key({key});
             check if holder_proven(true);",
            params([
                ("schema", builder::int(1)),
                ("token_id", builder::string(&hex::encode(id))),
                ("agent", builder::string(AGENT)),
                ("issued_at", date(issued_at)),
                ("expires_at", date(expires_at)),
                ("action", builder::string(ACTION)),
                ("prefix", builder::string(PREFIX)),
                ("audience", builder::string(SERVICE)),
                ("key", builder::string(&f.agent.public().to_string())),
            ]),
            HashMap::new(),
        )
        .unwrap();
    Biscuit::builder()
        .merge(block)
        .root_key_id(ROOT_KEY_ID)
        .build_with_rng(&f.root.keypair, SymbolTable::new(), rng)
        .unwrap()
        .to_base64()
        .unwrap()
}

/// The checks of an attenuation block narrowing resource and expiry.
fn attenuation(expires_at: DateTime<Utc>) -> Narrowing {
    Narrowing {
        resource: Some(ResourcePattern::parse(&format!("{PREFIX}report-*")).unwrap()),
        expires_at: Some(expires_at),
        ..Narrowing::default()
    }
}

fn raw_attenuation_block(expires_at: DateTime<Utc>) -> BlockBuilder {
    BlockBuilder::new()
        .code_with_params(
            "check if resource($r), $r.starts_with({prefix});
             check if time($t), $t <= {expires_at};",
            params([
                ("prefix", builder::string(&format!("{PREFIX}report-"))),
                ("expires_at", date(expires_at)),
            ]),
            HashMap::new(),
        )
        .unwrap()
}

/// A delegation narrows the resource prefix.
fn delegation() -> Narrowing {
    Narrowing {
        resource: Some(ResourcePattern::parse(&format!("{PREFIX}*")).unwrap()),
        ..Narrowing::default()
    }
}

fn raw_delegation_block(to: &str, to_key: &KeyPair) -> BlockBuilder {
    BlockBuilder::new()
        .code_with_params(
            "delegated_to({agent}, {key});
             check if resource($r), $r.starts_with({prefix});",
            params([
                ("agent", builder::string(to)),
                ("key", builder::string(&to_key.public().to_string())),
                ("prefix", builder::string(PREFIX)),
            ]),
            HashMap::new(),
        )
        .unwrap()
}

/// A bound token of `blocks` blocks: the authority block, then delegation
/// and attenuation blocks alternating, starting with a delegation, so the
/// final holder is the last sub-agent. Returns the token and the final
/// holder's key pair.
fn chain(f: &Fixture, blocks: usize) -> (String, KeyPair) {
    let mut rng = rng();
    let mut token = mint_with_rng(&f.cap, &f.root, t0(), &mut rng)
        .unwrap()
        .token;
    let mut holder = KeyPair::from(&f.agent.private());
    for i in 1..blocks {
        if i % 2 == 1 {
            let next = KeyPair::new_with_rng(Algorithm::Ed25519, &mut rng);
            let to = AgentId::parse(&format!("agent://acme/sub-{i}")).unwrap();
            token = delegate_with_rng(
                &token,
                &holder,
                &to,
                &next.public(),
                &delegation(),
                &f.limits,
                &mut rng,
            )
            .unwrap();
            holder = next;
        } else {
            let exp = t0() + chrono::Duration::seconds(300 - i64::try_from(i).unwrap());
            token = attenuate_with_rng(&token, &attenuation(exp), &f.limits, &mut rng).unwrap();
        }
    }
    (token, holder)
}

fn request(proven: &KeyPair) -> Request {
    Request {
        amount: None,
        operation: Action::parse(ACTION).unwrap(),
        resource: Resource::parse(RESOURCE).unwrap(),
        service: Some(Audience::parse(SERVICE).unwrap()),
        now: t0() + chrono::Duration::seconds(1),
        proven_key: Some(proven.public()),
    }
}

fn bench_mint(c: &mut Criterion) {
    let f = fixture();
    let tessera = mint_with_rng(&f.cap, &f.root, t0(), &mut rng())
        .unwrap()
        .token;
    let raw = raw_mint(&f, &mut rng());
    assert!(
        decoded_len(&tessera) < MAX_BYTES_1_BLOCK,
        "{}",
        decoded_len(&tessera)
    );
    assert_eq!(decoded_len(&tessera), decoded_len(&raw), "not equivalent");

    let mut g = c.benchmark_group("mint");
    let mut r = rng();
    g.bench_function("tessera", |b| {
        b.iter(|| mint_with_rng(black_box(&f.cap), &f.root, t0(), &mut r).unwrap())
    });
    let mut r = rng();
    g.bench_function("raw", |b| b.iter(|| raw_mint(black_box(&f), &mut r)));
    g.finish();
}

fn bench_attenuate(c: &mut Criterion) {
    let f = fixture();
    let (token, _) = chain(&f, 1);
    let exp = t0() + chrono::Duration::seconds(60);
    let n = attenuation(exp);
    let tessera = attenuate_with_rng(&token, &n, &f.limits, &mut rng()).unwrap();
    let raw = UnverifiedBiscuit::from_base64(&token)
        .unwrap()
        .append(raw_attenuation_block(exp))
        .unwrap()
        .to_base64()
        .unwrap();
    assert_eq!(decoded_len(&tessera), decoded_len(&raw), "not equivalent");

    let mut g = c.benchmark_group("attenuate");
    let mut r = rng();
    g.bench_function("tessera", |b| {
        b.iter(|| attenuate_with_rng(black_box(&token), &n, &f.limits, &mut r).unwrap())
    });
    // Same as `append`, but with the bench's generator for the block key
    // rather than the operating system's, as on the Tessera side.
    let mut r = rng();
    g.bench_function("raw", |b| {
        b.iter(|| {
            let next = KeyPair::new_with_rng(Algorithm::Ed25519, &mut r);
            UnverifiedBiscuit::from_base64(black_box(&token))
                .unwrap()
                .append_with_keypair(&next, raw_attenuation_block(exp))
                .unwrap()
                .to_base64()
                .unwrap()
        })
    });
    g.finish();
}

fn bench_delegate(c: &mut Criterion) {
    let f = fixture();
    let (token, holder) = chain(&f, 1);
    let to = "agent://acme/sub-1";
    let to_id = AgentId::parse(to).unwrap();
    let sub = KeyPair::new_with_rng(Algorithm::Ed25519, &mut rng());
    let n = delegation();
    let raw_delegate = |r: &mut ChaCha20Rng| {
        let unverified = UnverifiedBiscuit::from_base64(&token).unwrap();
        let signed = unverified
            .third_party_request()
            .unwrap()
            .create_block(&holder.private(), raw_delegation_block(to, &sub))
            .unwrap()
            .serialize()
            .unwrap();
        let next = KeyPair::new_with_rng(Algorithm::Ed25519, r);
        unverified
            .append_third_party_with_keypair(&signed, next)
            .unwrap()
            .to_base64()
            .unwrap()
    };
    let tessera = delegate_with_rng(
        &token,
        &holder,
        &to_id,
        &sub.public(),
        &n,
        &f.limits,
        &mut rng(),
    )
    .unwrap();
    let raw = raw_delegate(&mut rng());
    assert_eq!(decoded_len(&tessera), decoded_len(&raw), "not equivalent");

    let mut g = c.benchmark_group("delegate");
    let mut r = rng();
    g.bench_function("tessera", |b| {
        b.iter(|| {
            delegate_with_rng(
                black_box(&token),
                &holder,
                &to_id,
                &sub.public(),
                &n,
                &f.limits,
                &mut r,
            )
            .unwrap()
        })
    });
    let mut r = rng();
    g.bench_function("raw", |b| b.iter(|| raw_delegate(&mut r)));
    g.finish();
}

/// Raw biscuit-auth: parse and verify against the root key, then authorize
/// with the same facts Tessera adds and an `allow if true` policy.
fn raw_authorize(token: &str, root: PublicKey, req: &Request, limits: &AuthorizerLimits) -> usize {
    let biscuit = Biscuit::from_base64(token, root).unwrap();
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
        .set_limits(limits.clone())
        .build(&biscuit)
        .unwrap();
    authorizer.authorize().unwrap()
}

fn bench_authorize(c: &mut Criterion) {
    let f = fixture();
    let raw_limits = raw_limits();
    let root = f.root.keypair.public();
    let mut g = c.benchmark_group("authorize");
    for blocks in CHAINS {
        let (token, holder) = chain(&f, blocks);
        let size = decoded_len(&token);
        match blocks {
            1 => assert!(size < MAX_BYTES_1_BLOCK, "1 block: {size} bytes"),
            8 => assert!(size < MAX_BYTES_8_BLOCKS, "8 blocks: {size} bytes"),
            _ => {}
        }
        let req = request(&holder);
        let grant = authorize(&token, &f.keys, &req, |_| false, &f.limits).unwrap();
        assert_eq!(grant.chain.len(), 1 + blocks / 2);
        raw_authorize(&token, root, &req, &raw_limits);

        g.bench_with_input(BenchmarkId::new("tessera", blocks), &token, |b, t| {
            b.iter(|| authorize(black_box(t), &f.keys, &req, |_| false, &f.limits).unwrap())
        });
        g.bench_with_input(BenchmarkId::new("raw", blocks), &token, |b, t| {
            b.iter(|| raw_authorize(black_box(t), root, &req, &raw_limits))
        });
    }
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
        targets = bench_mint, bench_attenuate, bench_delegate, bench_authorize
    }
}
criterion_main!(group::benches);
