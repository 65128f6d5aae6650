//! `Verifier::check`: every denial reason, the caches, DPoP, key sets.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use biscuit_auth::KeyPair;
use chrono::{DateTime, Utc};
use ed25519_dalek::SigningKey;
use tessera::jose::{self, DpopClaims};
use tessera::token::{self, AgentId, KeySet, Limits, Narrowing, ResourcePattern};
use tessera::verify::{
    CheckRequest, KeySource, MemoryReplayGuard, Presentation, Reason, RevocationView, Revocations,
    Verifier,
};

use crate::token::raw::{append_first_party, append_third_party, block, delegated_to, s};
use crate::token::support::{cap, keypair, limits, t0, Issuer, OTHER_SERVICE, SERVICE};

/// A clock the test moves.
#[derive(Clone)]
pub struct TestClock(Arc<Mutex<DateTime<Utc>>>);

impl TestClock {
    pub fn new() -> Self {
        Self(Arc::new(Mutex::new(t0())))
    }
    pub fn set(&self, t: DateTime<Utc>) {
        *self.0.lock().unwrap() = t;
    }
    pub fn clock(&self) -> tessera::verify::Clock {
        let inner = Arc::clone(&self.0);
        Arc::new(move || *inner.lock().unwrap())
    }
}

pub async fn verifier_with(
    keys: KeySource,
    revocations: Revocations,
    clock: &TestClock,
) -> Verifier {
    Verifier::builder(SERVICE)
        .keys(keys)
        .revocations(revocations)
        .limits(limits())
        .clock(clock.clock())
        .build()
        .await
        .unwrap()
}

/// A verifier trusting `issuer`, following a view that is current.
async fn verifier(issuer: &Issuer, clock: &TestClock) -> (Verifier, Arc<RevocationView>) {
    let view = RevocationView::new();
    view.confirm_current();
    let v = verifier_with(
        KeySource::Keys(issuer.keys.clone()),
        Revocations::View(Arc::clone(&view)),
        clock,
    )
    .await;
    (v, view)
}

fn request(op: &str, resource: &str) -> CheckRequest {
    CheckRequest::new(op, resource).unwrap()
}

async fn reason(v: &Verifier, p: &Presentation<'_>, r: &CheckRequest) -> Reason {
    match v.check(p, r).await {
        Ok(g) => panic!("expected a denial, got {g:?}"),
        Err(rej) => rej.reason,
    }
}

pub fn signing_key(kp: &KeyPair) -> SigningKey {
    let bytes: [u8; 32] = kp.private().to_bytes().as_slice().try_into().unwrap();
    SigningKey::from_bytes(&bytes)
}

pub const URL: &str = "https://tool.example/orders";

/// A DPoP proof by `kp` for POST `URL`, for `token`, issued at `iat`.
pub fn proof(kp: &KeyPair, token: &str, iat: DateTime<Utc>, jti: &str) -> String {
    let claims = DpopClaims {
        jti: jti.into(),
        htm: "POST".into(),
        htu: URL.into(),
        iat: iat.timestamp(),
        ath: Some(jose::access_token_hash(token)),
    };
    jose::sign(&signing_key(kp), Some("dpop+jwt"), true, &claims).unwrap()
}

fn with_dpop<'a>(token: &'a str, proof: &'a str) -> Presentation<'a> {
    Presentation {
        token,
        dpop: Some(proof),
        method: "POST",
        url: URL,
    }
}

#[tokio::test]
async fn bearer_token_allows_its_one_right_and_names_the_agent() {
    let issuer = Issuer::new();
    let clock = TestClock::new();
    let (v, _) = verifier(&issuer, &clock).await;
    let t = issuer
        .mint(&cap("read", "orders/*", Some(SERVICE), None))
        .token;
    let g = v
        .check(&Presentation::bearer(&t), &request("read", "orders/7"))
        .await
        .unwrap();
    assert_eq!(g.agent.as_str(), "agent://acme/main");
    assert_eq!(g.chain.len(), 1);
    assert!(!g.holder_proven);
    assert_eq!(g.on_behalf(), None);
    let p = Presentation::bearer(&t);
    assert_eq!(
        reason(&v, &p, &request("write", "orders/7")).await,
        Reason::OutOfScope
    );
    assert_eq!(
        reason(&v, &p, &request("read", "users/7")).await,
        Reason::OutOfScope
    );
    assert_eq!(Reason::OutOfScope.status(), 403);
}

#[tokio::test]
async fn other_audience_expiry_and_garbage_are_refused() {
    let issuer = Issuer::new();
    let clock = TestClock::new();
    let (v, _) = verifier(&issuer, &clock).await;
    let other = issuer
        .mint(&cap(
            "read",
            "orders/*",
            Some("https://other.example"),
            None,
        ))
        .token;
    let r = request("read", "orders/7");
    assert_eq!(
        reason(&v, &Presentation::bearer(&other), &r).await,
        Reason::WrongAudience
    );
    let t = issuer
        .mint(&cap("read", "orders/*", Some(SERVICE), None))
        .token;
    // Warm the caches, then move past the expiry: still refused.
    v.check(&Presentation::bearer(&t), &r).await.unwrap();
    clock.set(t0() + chrono::Duration::minutes(5) + chrono::Duration::milliseconds(1));
    assert_eq!(
        reason(&v, &Presentation::bearer(&t), &r).await,
        Reason::Expired
    );
    assert_eq!(
        reason(&v, &Presentation::bearer("!!!"), &r).await,
        Reason::Malformed
    );
    assert_eq!(
        reason(&v, &Presentation::bearer(""), &r).await,
        Reason::MissingToken
    );
}

#[tokio::test]
async fn revocation_applies_to_a_cached_token_on_the_next_call() {
    let issuer = Issuer::new();
    let clock = TestClock::new();
    let (v, view) = verifier(&issuer, &clock).await;
    let minted = issuer.mint(&cap("read", "orders/*", Some(SERVICE), None));
    let r = request("read", "orders/7");
    let p = Presentation::bearer(&minted.token);
    v.check(&p, &r).await.unwrap();
    v.check(&p, &r).await.unwrap();
    let id = hex::decode(&minted.revocation_id).unwrap();
    view.apply([(&id[..], t0() + chrono::Duration::hours(1))], None)
        .unwrap();
    assert_eq!(reason(&v, &p, &r).await, Reason::Revoked);
}

#[tokio::test]
async fn a_revoked_branch_denies_only_that_branch() {
    let issuer = Issuer::new();
    let clock = TestClock::new();
    let (v, view) = verifier(&issuer, &clock).await;
    let parent = issuer
        .mint(&cap("read", "orders/*", Some(SERVICE), None))
        .token;
    let narrow = |res: &str| Narrowing {
        resource: Some(ResourcePattern::parse(res).unwrap()),
        ..Narrowing::default()
    };
    let a = token::attenuate(&parent, &narrow("orders/1"), &Limits::default()).unwrap();
    let b = token::attenuate(&parent, &narrow("orders/2"), &Limits::default()).unwrap();
    let ids = token::inspect(&a, None, &Limits::default()).unwrap();
    let branch = hex::decode(&ids.blocks[1].revocation_id).unwrap();
    view.apply([(&branch[..], t0() + chrono::Duration::hours(1))], None)
        .unwrap();
    assert_eq!(
        reason(&v, &Presentation::bearer(&a), &request("read", "orders/1")).await,
        Reason::Revoked
    );
    v.check(&Presentation::bearer(&b), &request("read", "orders/2"))
        .await
        .unwrap();
    v.check(&Presentation::bearer(&parent), &request("read", "orders/1"))
        .await
        .unwrap();
}

#[tokio::test]
async fn stale_revocations_deny_unless_allowed() {
    let issuer = Issuer::new();
    let clock = TestClock::new();
    let view = RevocationView::new();
    let t = issuer
        .mint(&cap("read", "orders/*", Some(SERVICE), None))
        .token;
    let r = request("read", "orders/7");
    let strict = Verifier::builder(SERVICE)
        .keys(KeySource::Keys(issuer.keys.clone()))
        .revocations(Revocations::View(Arc::clone(&view)))
        .max_staleness(Duration::from_millis(200))
        .clock(clock.clock())
        .build()
        .await
        .unwrap();
    // Never loaded: stale.
    let rej = strict
        .check(&Presentation::bearer(&t), &r)
        .await
        .unwrap_err();
    assert_eq!(rej.reason, Reason::Stale);
    assert_eq!(rej.reason.status(), 503);
    view.confirm_current();
    strict.check(&Presentation::bearer(&t), &r).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        reason(&strict, &Presentation::bearer(&t), &r).await,
        Reason::Stale
    );
    let lenient = Verifier::builder(SERVICE)
        .keys(KeySource::Keys(issuer.keys.clone()))
        .revocations(Revocations::View(Arc::clone(&view)))
        .max_staleness(Duration::from_millis(200))
        .allow_stale(true)
        .clock(clock.clock())
        .build()
        .await
        .unwrap();
    lenient.check(&Presentation::bearer(&t), &r).await.unwrap();
}

#[tokio::test]
async fn building_without_a_revocation_source_is_an_error() {
    let issuer = Issuer::new();
    let err = Verifier::builder(SERVICE)
        .keys(KeySource::Keys(issuer.keys.clone()))
        .build()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("revocation"), "{err}");
    let err = Verifier::builder("not a uri")
        .keys(KeySource::Keys(issuer.keys.clone()))
        .revocations(Revocations::Unchecked)
        .build()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("service URI"), "{err}");
}

/// A token with `n` blocks: the authority block and `n - 1` empty blocks.
pub fn many_blocks(issuer: &Issuer, n: usize) -> String {
    let t = issuer
        .mint(&cap("read", "orders/*", Some(SERVICE), None))
        .token;
    let mut b = biscuit_auth::UnverifiedBiscuit::from_base64(&t).unwrap();
    for _ in 1..n {
        b = b
            .append(biscuit_auth::builder::BlockBuilder::new())
            .unwrap();
    }
    b.to_base64().unwrap()
}

#[tokio::test]
async fn a_thousand_block_token_is_refused_before_signature_work() {
    let issuer = Issuer::new();
    let t = many_blocks(&issuer, 1000);
    let clock = TestClock::new();
    // By size, with the default limits.
    let (v, _) = verifier(&issuer, &clock).await;
    let rej = v
        .check(&Presentation::bearer(&t), &request("read", "orders/7"))
        .await
        .unwrap_err();
    assert_eq!(rej.reason, Reason::TooLarge, "{rej}");
    // By block count, when the size limit would let it through.
    let v = Verifier::builder(SERVICE)
        .keys(KeySource::Keys(issuer.keys.clone()))
        .revocations(Revocations::Unchecked)
        .limits(Limits {
            max_token_bytes: 10 << 20,
            ..limits()
        })
        .clock(clock.clock())
        .build()
        .await
        .unwrap();
    let rej = v
        .check(&Presentation::bearer(&t), &request("read", "orders/7"))
        .await
        .unwrap_err();
    assert_eq!(rej.reason, Reason::TooLarge, "{rej}");
    assert!(rej.detail.contains("block"), "{rej}");
}

/// A token bound to `holder` (seed 10), delegated to `sub` (seed 11).
fn bound_chain(issuer: &Issuer) -> (String, String, KeyPair, KeyPair) {
    let holder = keypair(10);
    let sub = keypair(11);
    let parent = issuer
        .mint(&cap("read", "orders/*", Some(SERVICE), Some(&holder)))
        .token;
    let child = token::delegate(
        &parent,
        &holder,
        &AgentId::parse("agent://acme/sub").unwrap(),
        &sub.public(),
        &Narrowing::default(),
        &Limits::default(),
    )
    .unwrap();
    (parent, child, holder, sub)
}

#[tokio::test]
async fn dpop_by_the_final_holder_is_accepted_once() {
    let issuer = Issuer::new();
    let clock = TestClock::new();
    let (v, _) = verifier(&issuer, &clock).await;
    let (_, child, _, sub) = bound_chain(&issuer);
    let r = request("read", "orders/7");
    let p1 = proof(&sub, &child, t0(), "jti-1");
    let g = v.check(&with_dpop(&child, &p1), &r).await.unwrap();
    assert!(g.holder_proven);
    let names: Vec<&str> = g.chain.iter().map(AgentId::as_str).collect();
    assert_eq!(names, ["agent://acme/main", "agent://acme/sub"]);
    assert_eq!(g.acting().as_str(), "agent://acme/sub");
    // The same proof again: replayed.
    assert_eq!(
        reason(&v, &with_dpop(&child, &p1), &r).await,
        Reason::ReplayedDpop
    );
    // A fresh proof works again.
    let p2 = proof(&sub, &child, t0(), "jti-2");
    v.check(&with_dpop(&child, &p2), &r).await.unwrap();
    // Without a proof, a bound token is refused.
    assert_eq!(
        reason(&v, &Presentation::bearer(&child), &r).await,
        Reason::HolderNotProven
    );
}

#[tokio::test]
async fn dpop_by_the_parent_instead_of_the_final_holder_is_refused() {
    let issuer = Issuer::new();
    let clock = TestClock::new();
    let (v, _) = verifier(&issuer, &clock).await;
    let (_, child, holder, _) = bound_chain(&issuer);
    let p = proof(&holder, &child, t0(), "by-parent");
    assert_eq!(
        reason(&v, &with_dpop(&child, &p), &request("read", "orders/7")).await,
        Reason::HolderNotProven
    );
}

#[tokio::test]
async fn dpop_mismatches_are_invalid_proofs() {
    let issuer = Issuer::new();
    let clock = TestClock::new();
    let (v, _) = verifier(&issuer, &clock).await;
    let (parent, child, holder, sub) = bound_chain(&issuer);
    let r = request("read", "orders/7");
    // ath of another token.
    let p = proof(&sub, &parent, t0(), "a");
    assert_eq!(
        reason(&v, &with_dpop(&child, &p), &r).await,
        Reason::InvalidDpop
    );
    // iat far outside the skew.
    let p = proof(&sub, &child, t0() - chrono::Duration::minutes(10), "b");
    assert_eq!(
        reason(&v, &with_dpop(&child, &p), &r).await,
        Reason::InvalidDpop
    );
    // Another method.
    let p = proof(&sub, &child, t0(), "c");
    let get = Presentation {
        method: "GET",
        ..with_dpop(&child, &p)
    };
    assert_eq!(reason(&v, &get, &r).await, Reason::InvalidDpop);
    // Not a JWS at all.
    assert_eq!(
        reason(&v, &with_dpop(&child, "x.y.z"), &r).await,
        Reason::InvalidDpop
    );
    // The parent's proof on the parent token works.
    let p = proof(&holder, &parent, t0(), "d");
    v.check(&with_dpop(&parent, &p), &r).await.unwrap();
}

#[tokio::test]
async fn a_delegation_signed_by_an_unrelated_key_is_refused() {
    let issuer = Issuer::new();
    let clock = TestClock::new();
    let (v, _) = verifier(&issuer, &clock).await;
    let holder = keypair(10);
    let stranger = keypair(12);
    let sub = keypair(11);
    let parent = issuer
        .mint(&cap("read", "orders/*", Some(SERVICE), Some(&holder)))
        .token;
    // token::delegate refuses a non-holder key; build the block the raw way.
    let forged = append_third_party(&parent, &stranger, delegated_to("agent://acme/sub", &sub));
    let p = proof(&sub, &forged, t0(), "forged");
    assert_eq!(
        reason(&v, &with_dpop(&forged, &p), &request_read()).await,
        Reason::InvalidDelegation
    );
}

fn request_read() -> CheckRequest {
    request("read", "orders/7")
}

/// A JWKS server on loopback that counts its requests and can be told to
/// fail.
struct JwksServer {
    url: String,
    hits: Arc<AtomicUsize>,
    keys: Arc<Mutex<Option<KeySet>>>,
    _task: tokio::task::JoinHandle<()>,
}

impl JwksServer {
    async fn start(keys: KeySet) -> Self {
        use axum::routing::get;
        let hits = Arc::new(AtomicUsize::new(0));
        let slot = Arc::new(Mutex::new(Some(keys)));
        let (h, s) = (Arc::clone(&hits), Arc::clone(&slot));
        let app = axum::Router::new().route(
            "/jwks.json",
            get(move || {
                let (h, s) = (Arc::clone(&h), Arc::clone(&s));
                async move {
                    h.fetch_add(1, Ordering::SeqCst);
                    match s.lock().unwrap().as_ref() {
                        Some(k) => (
                            axum::http::StatusCode::OK,
                            serde_json::to_string(&k.to_jwks()).unwrap(),
                        ),
                        None => (axum::http::StatusCode::SERVICE_UNAVAILABLE, String::new()),
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            url,
            hits,
            keys: slot,
            _task: task,
        }
    }
}

#[tokio::test]
async fn unknown_kid_fetches_once_then_denies_and_a_down_jwks_keeps_cached_keys() {
    let issuer = Issuer::new();
    let jwks = JwksServer::start(issuer.keys.clone()).await;
    let clock = TestClock::new();
    let v = Verifier::builder(SERVICE)
        .keys(KeySource::JwksUrl(jwks.url.clone()))
        .revocations(Revocations::Unchecked)
        .refetch_interval(Duration::from_secs(3600))
        .limits(limits())
        .clock(clock.clock())
        .build()
        .await
        .unwrap();
    assert_eq!(jwks.hits.load(Ordering::SeqCst), 1);
    let t = issuer
        .mint(&cap("read", "orders/*", Some(SERVICE), None))
        .token;
    v.check(&Presentation::bearer(&t), &request_read())
        .await
        .unwrap();

    // A token under root key id 2, which the JWKS does not hold.
    let other = tessera::token::RootKeyPair::new(2, keypair(2));
    let t2 = token::mint(&cap("read", "orders/*", Some(SERVICE), None), &other, t0())
        .unwrap()
        .token;
    for _ in 0..3 {
        assert_eq!(
            reason(&v, &Presentation::bearer(&t2), &request_read()).await,
            Reason::UnknownKeyId
        );
    }
    // Fetched once more for the unknown kid (the interval is long), not three times.
    assert_eq!(jwks.hits.load(Ordering::SeqCst), 2);

    // The JWKS endpoint goes down: the cached keys keep working.
    *jwks.keys.lock().unwrap() = None;
    v.check(&Presentation::bearer(&t), &request_read())
        .await
        .unwrap();
    let fresh = issuer
        .mint(&cap("read", "orders/*", Some(SERVICE), None))
        .token;
    v.check(&Presentation::bearer(&fresh), &request_read())
        .await
        .unwrap();
}

#[tokio::test]
async fn unknown_kid_is_found_after_the_key_set_rotates() {
    let issuer = Issuer::new();
    let jwks = JwksServer::start(issuer.keys.clone()).await;
    let clock = TestClock::new();
    let v = Verifier::builder(SERVICE)
        .keys(KeySource::JwksUrl(jwks.url.clone()))
        .revocations(Revocations::Unchecked)
        .refetch_interval(Duration::ZERO)
        .limits(limits())
        .clock(clock.clock())
        .build()
        .await
        .unwrap();
    let rotated = tessera::token::RootKeyPair::new(2, keypair(2));
    let mut both = issuer.keys.clone();
    both.insert(2, keypair(2).public()).unwrap();
    *jwks.keys.lock().unwrap() = Some(both);
    let t2 = token::mint(
        &cap("read", "orders/*", Some(SERVICE), None),
        &rotated,
        t0(),
    )
    .unwrap()
    .token;
    v.check(&Presentation::bearer(&t2), &request_read())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_jwks_file_is_read_and_a_missing_one_is_a_build_error() {
    let issuer = Issuer::new();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(
        &path,
        serde_json::to_string(&issuer.keys.to_jwks()).unwrap(),
    )
    .unwrap();
    let clock = TestClock::new();
    let v = verifier_with(
        KeySource::JwksFile(path.clone()),
        Revocations::Unchecked,
        &clock,
    )
    .await;
    let t = issuer
        .mint(&cap("read", "orders/*", Some(SERVICE), None))
        .token;
    v.check(&Presentation::bearer(&t), &request_read())
        .await
        .unwrap();
    let err = Verifier::builder(SERVICE)
        .keys(KeySource::JwksFile(dir.path().join("nope.json")))
        .revocations(Revocations::Unchecked)
        .build()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nope.json"), "{err}");
}

#[tokio::test]
async fn extra_facts_reach_the_token_checks() {
    // A block from elsewhere that checks a fact only the verifier supplies.
    let issuer = Issuer::new();
    let clock = TestClock::new();
    let (v, _) = verifier(&issuer, &clock).await;
    let t = issuer
        .mint(&cap("read", "orders/*", Some(SERVICE), None))
        .token;
    let narrowed = append_first_party(&t, block("check if method({m});", &[("m", s("GET"))]));
    let p = Presentation::bearer(&narrowed);
    v.check(&p, &request_read().with_fact("method", &["GET"]))
        .await
        .unwrap();
    assert_eq!(
        reason(&v, &p, &request_read().with_fact("method", &["POST"])).await,
        Reason::OutOfScope
    );
    assert_eq!(reason(&v, &p, &request_read()).await, Reason::OutOfScope);
}

/// A verifier trusting `issuer` whose replay cache holds `capacity` proofs.
async fn verifier_with_replay(
    issuer: &Issuer,
    clock: &TestClock,
    replay: MemoryReplayGuard,
) -> Verifier {
    let view = RevocationView::new();
    view.confirm_current();
    Verifier::builder(SERVICE)
        .keys(KeySource::Keys(issuer.keys.clone()))
        .revocations(Revocations::View(view))
        .limits(limits())
        .clock(clock.clock())
        .replay_guard(Arc::new(replay))
        .build()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_stranger_with_expired_or_foreign_tokens_cannot_make_a_dpop_caller_get_503() {
    let issuer = Issuer::new();
    let clock = TestClock::new();
    let v = verifier_with_replay(&issuer, &clock, MemoryReplayGuard::new(64)).await;
    let stranger = keypair(30);
    let ten_minutes_ago = t0() - chrono::Duration::minutes(10);
    let expired_bearer = token::mint(
        &cap("read", "orders/*", Some(SERVICE), None),
        &issuer.root,
        ten_minutes_ago,
    )
    .unwrap()
    .token;
    let expired_bound = token::mint(
        &cap("read", "orders/*", Some(SERVICE), Some(&stranger)),
        &issuer.root,
        ten_minutes_ago,
    )
    .unwrap()
    .token;
    let foreign_bearer = issuer
        .mint(&cap("read", "orders/*", Some(OTHER_SERVICE), None))
        .token;
    let foreign_bound = issuer
        .mint(&cap(
            "read",
            "orders/*",
            Some(OTHER_SERVICE),
            Some(&stranger),
        ))
        .token;
    let r = request_read();
    // Ten times the cache's capacity of otherwise well-formed proofs, from
    // one key and from many.
    for i in 0..160 {
        let sprayed = keypair(1000 + i);
        let cases = [
            (&expired_bearer, &sprayed, Reason::Expired),
            (&expired_bound, &stranger, Reason::Expired),
            (&foreign_bearer, &sprayed, Reason::WrongAudience),
            (&foreign_bound, &stranger, Reason::WrongAudience),
        ];
        for (n, (token, key, expected)) in cases.into_iter().enumerate() {
            let p = proof(key, token, t0(), &format!("stranger-{i}-{n}"));
            assert_eq!(reason(&v, &with_dpop(token, &p), &r).await, expected);
        }
    }
    // The legitimate caller is still served.
    let holder = keypair(10);
    let t = issuer
        .mint(&cap("read", "orders/*", Some(SERVICE), Some(&holder)))
        .token;
    for i in 0..3 {
        let p = proof(&holder, &t, t0(), &format!("legit-{i}"));
        let g = v.check(&with_dpop(&t, &p), &r).await.unwrap();
        assert!(g.holder_proven);
    }
}

#[tokio::test]
async fn a_refused_request_does_not_spend_its_dpop_proof() {
    let issuer = Issuer::new();
    let clock = TestClock::new();
    let (v, _) = verifier(&issuer, &clock).await;
    let holder = keypair(10);
    let t = issuer
        .mint(&cap("read", "orders/*", Some(SERVICE), Some(&holder)))
        .token;
    let p = proof(&holder, &t, t0(), "kept");
    // Out of scope: refused, and the proof's jti is not remembered...
    assert_eq!(
        reason(&v, &with_dpop(&t, &p), &request("write", "orders/7")).await,
        Reason::OutOfScope
    );
    // ...so the same proof still serves an allowed request, once.
    v.check(&with_dpop(&t, &p), &request_read()).await.unwrap();
    assert_eq!(
        reason(&v, &with_dpop(&t, &p), &request_read()).await,
        Reason::ReplayedDpop
    );
}

#[tokio::test]
async fn one_holder_cannot_crowd_other_holders_out_of_the_replay_cache() {
    let issuer = Issuer::new();
    let clock = TestClock::new();
    let v = verifier_with_replay(&issuer, &clock, MemoryReplayGuard::new(64).per_key(8)).await;
    let r = request_read();
    // A holder with a valid token of its own sends proof after proof: it
    // fills its own share and is then told to slow down (503)...
    let greedy = keypair(31);
    let own = issuer
        .mint(&cap("read", "orders/*", Some(SERVICE), Some(&greedy)))
        .token;
    let mut overloaded = 0;
    for i in 0..200 {
        let p = proof(&greedy, &own, t0(), &format!("greedy-{i}"));
        match v.check(&with_dpop(&own, &p), &r).await {
            Ok(_) => {}
            Err(rej) => {
                assert_eq!(rej.reason, Reason::Overloaded, "{rej}");
                overloaded += 1;
            }
        }
    }
    assert_eq!(overloaded, 200 - 8);
    // ...as does a bearer token's holder spraying proofs from fresh keys.
    let bearer = issuer
        .mint(&cap("read", "orders/*", Some(SERVICE), None))
        .token;
    let mut accepted = 0;
    for i in 0..200 {
        let p = proof(&keypair(2000 + i), &bearer, t0(), &format!("spray-{i}"));
        if v.check(&with_dpop(&bearer, &p), &r).await.is_ok() {
            accepted += 1;
        }
    }
    assert_eq!(accepted, 8);
    // Everyone else is served.
    for seed in [10, 11, 12] {
        let holder = keypair(seed);
        let t = issuer
            .mint(&cap("read", "orders/*", Some(SERVICE), Some(&holder)))
            .token;
        let p = proof(&holder, &t, t0(), "mine");
        v.check(&with_dpop(&t, &p), &r).await.unwrap();
    }
    // Once the greedy holder's proofs are past their window, it is served again.
    clock.set(t0() + chrono::Duration::minutes(3));
    let p = proof(&greedy, &own, t0() + chrono::Duration::minutes(3), "later");
    v.check(&with_dpop(&own, &p), &r).await.unwrap();
}
