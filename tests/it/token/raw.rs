//! Raw biscuit-auth access for attacks and fail-closed checks: what a
//! careless verifier or a hostile holder could do without Tessera's API.

use std::collections::HashMap;
use std::time::{Duration as StdDuration, SystemTime};

use biscuit_auth::builder::{self, Term};
use biscuit_auth::{
    AuthorizerBuilder, AuthorizerLimits, Biscuit, BlockBuilder, KeyPair, UnverifiedBiscuit,
};
use chrono::{DateTime, Utc};
use tessera::token::*;

use super::support::*;

/// A block built from constant source and parameters.
pub fn block(source: &str, params: &[(&str, Term)]) -> BlockBuilder {
    let params: HashMap<String, Term> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    BlockBuilder::new()
        .code_with_params(source, params, HashMap::new())
        .unwrap()
}

pub fn s(v: &str) -> Term {
    builder::string(v)
}

/// Appends a first-party block with any content, as any holder could.
pub fn append_first_party(token: &str, b: BlockBuilder) -> String {
    let t = UnverifiedBiscuit::from(bytes_of(token)).unwrap();
    encode(&t.append(b).unwrap().to_vec().unwrap())
}

/// Appends a third-party block signed by `signer`, whoever that is.
pub fn append_third_party(token: &str, signer: &KeyPair, b: BlockBuilder) -> String {
    let t = UnverifiedBiscuit::from(bytes_of(token)).unwrap();
    let signed = t
        .third_party_request()
        .unwrap()
        .create_block(&signer.private(), b)
        .unwrap()
        .serialize()
        .unwrap();
    encode(&t.append_third_party(&signed).unwrap().to_vec().unwrap())
}

/// A delegation block naming `to` with `key`, as Tessera writes it.
pub fn delegated_to(to: &str, key: &KeyPair) -> BlockBuilder {
    block(
        "delegated_to({agent}, {key});",
        &[("agent", s(to)), ("key", s(&key.public().to_string()))],
    )
}

/// The facts a verifier may supply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifierFact {
    Time,
    Operation,
    Resource,
    Service,
    HolderProven,
}

pub const ALL_FACTS: [VerifierFact; 5] = [
    VerifierFact::Time,
    VerifierFact::Operation,
    VerifierFact::Resource,
    VerifierFact::Service,
    VerifierFact::HolderProven,
];

/// Runs a raw biscuit-auth authorizer with an `allow if true` policy and the
/// given verifier facts over a signature-checked token.
pub fn allow_if_true(
    token: &str,
    keys: &KeySet,
    facts: &[VerifierFact],
    op: &str,
    resource: &str,
    service: &str,
    now: DateTime<Utc>,
) -> Result<usize, biscuit_auth::error::Token> {
    let biscuit = Biscuit::from(bytes_of(token), keys).unwrap();
    let mut ab = AuthorizerBuilder::new();
    for f in facts {
        let fact = match f {
            VerifierFact::Time => builder::fact("time", &[builder::date(&SystemTime::from(now))]),
            VerifierFact::Operation => builder::fact("operation", &[s(op)]),
            VerifierFact::Resource => builder::fact("resource", &[s(resource)]),
            VerifierFact::Service => builder::fact("service", &[s(service)]),
            VerifierFact::HolderProven => builder::fact("holder_proven", &[builder::boolean(true)]),
        };
        ab = ab.fact(fact).unwrap();
    }
    let mut authorizer = ab
        .policy("allow if true")
        .unwrap()
        .set_limits(AuthorizerLimits {
            max_time: StdDuration::from_secs(2),
            ..AuthorizerLimits::default()
        })
        .build(&biscuit)
        .unwrap();
    authorizer.authorize()
}
