//! Shared helpers for the token tests: fixed keys, a fixed clock, builders
//! for capabilities and requests, and raw access to the wire format.

use biscuit_auth::format::schema;
use biscuit_auth::{Algorithm, KeyPair};
use chrono::{DateTime, Duration, Utc};
use prost::Message;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use tessera::token::*;

/// The fixed "now" every test starts from.
pub fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-22T12:00:00Z")
        .unwrap()
        .to_utc()
}

pub fn secs(n: i64) -> Duration {
    Duration::seconds(n)
}

/// A deterministic Ed25519 key pair.
pub fn keypair(seed: u64) -> KeyPair {
    KeyPair::new_with_rng(Algorithm::Ed25519, &mut ChaCha20Rng::seed_from_u64(seed))
}

pub const SERVICE: &str = "https://tool.example";
pub const OTHER_SERVICE: &str = "https://other.example";

/// The default limits with a generous Datalog time bound. The default
/// 20 ms bound is wall-clock time: on a loaded machine running a debug build
/// it sometimes denies a valid token with `LimitsExceeded`, which would make
/// these tests flaky (observed in the Unicode resource property).
pub fn limits() -> Limits {
    Limits {
        max_time: std::time::Duration::from_secs(5),
        ..Limits::default()
    }
}

/// An issuer with root key id 1 and a verifier key set that trusts it.
pub struct Issuer {
    pub root: RootKeyPair,
    pub keys: KeySet,
    pub limits: Limits,
}

impl Issuer {
    pub fn new() -> Self {
        let kp = keypair(1);
        let keys = KeySet::single(1, kp.public());
        Self {
            root: RootKeyPair::new(1, kp),
            keys,
            limits: limits(),
        }
    }

    pub fn mint(&self, cap: &Capability) -> Minted {
        mint(cap, &self.root, t0()).unwrap()
    }

    /// Authorizes with nothing revoked.
    pub fn check(&self, token: &str, req: &Request) -> Result<Authorized, Denial> {
        authorize(token, &self.keys, req, |_| false, &self.limits)
    }

    /// The reason `token` is denied for `req`; fails the test if allowed.
    pub fn denied(&self, token: &str, req: &Request) -> Reason {
        match self.check(token, req) {
            Ok(g) => panic!("expected a denial, got a grant: {g:?}"),
            Err(d) => d.reason,
        }
    }
}

pub fn cap(
    action: &str,
    resource: &str,
    audience: Option<&str>,
    holder: Option<&KeyPair>,
) -> Capability {
    Capability {
        agent: AgentId::parse("agent://acme/main").unwrap(),
        action: Action::parse(action).unwrap(),
        resource: ResourcePattern::parse(resource).unwrap(),
        audience: audience.map(|a| Audience::parse(a).unwrap()),
        lifetime: Lifetime::parse("5m").unwrap(),
        holder_key: holder.map(KeyPair::public),
        on_behalf: None,
    }
}

pub fn req(
    op: &str,
    resource: &str,
    service: Option<&str>,
    now: DateTime<Utc>,
    proven: Option<&KeyPair>,
) -> Request {
    Request {
        amount: None,
        operation: Action::parse(op).unwrap(),
        resource: Resource::parse(resource).unwrap(),
        service: service.map(|s| Audience::parse(s).unwrap()),
        now,
        proven_key: proven.map(KeyPair::public),
    }
}

pub fn bytes_of(token: &str) -> Vec<u8> {
    decode(token, &Limits::default()).unwrap()
}

/// The outer protobuf message of a token.
pub fn outer(token: &str) -> schema::Biscuit {
    schema::Biscuit::decode(bytes_of(token).as_slice()).unwrap()
}

pub fn reencode(msg: &schema::Biscuit) -> String {
    encode(&msg.encode_to_vec())
}

/// The facts of the authority block, read straight from the wire.
pub fn authority_facts(token: &str) -> Vec<wire::RawFact> {
    let bytes = bytes_of(token);
    let layout = wire::scan(&bytes, 32).unwrap();
    wire::block_facts(layout.payloads[0]).unwrap()
}

/// Proptest case count: `PROPTEST_CASES` when set, else `default`.
pub fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
