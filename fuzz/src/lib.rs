//! Fixed keys, clock and request shared by the fuzz targets and by the test
//! that writes and checks their seeds (`tests/seeds.rs`).
//!
//! Everything is derived from constant bytes, so a seed minted once keeps
//! passing every check the target makes at [`now`].

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use biscuit_auth::{KeyPair, PrivateKey};
use chrono::{DateTime, Utc};
use ed25519_dalek::{Signer as _, SigningKey};
use tessera::jose::{AssertionRules, DpopRules, OkpJwk};
use tessera::token::{Action, Audience, KeySet, Limits, Request, Resource};

/// The root key id of the fixed key set.
pub const ROOT_KEY_ID: u32 = 7;
/// The DPoP proof's request method.
pub const METHOD: &str = "POST";
/// The DPoP proof's request URL.
pub const URL: &str = "https://issuer.example/oauth/token";
/// The issuer's URL, an accepted client assertion audience.
pub const ISSUER: &str = "https://issuer.example";
/// The access token presented with a DPoP proof (for `ath`).
pub const ACCESS_TOKEN: &str = "an-access-token";
/// The tool server the fixed request is for.
pub const SERVICE: &str = "https://docs.acme.example";
/// Accepted client assertion audiences.
pub const AUDIENCES: &[&str] = &[ISSUER, URL];

/// The fixed clock: 2027-01-15T08:00:00Z.
pub fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default()
}

fn biscuit_keypair(seed: u8) -> KeyPair {
    match PrivateKey::from_bytes(&[seed; 32], biscuit_auth::Algorithm::Ed25519) {
        Ok(k) => KeyPair::from(&k),
        Err(e) => panic!("a fixed Ed25519 private key: {e}"),
    }
}

/// The root key pair that signs the seed tokens.
pub fn root() -> KeyPair {
    biscuit_keypair(1)
}

/// The agent the seed tokens are bound to.
pub fn agent() -> KeyPair {
    biscuit_keypair(2)
}

/// The sub-agent a seed token is delegated to.
pub fn sub_agent() -> KeyPair {
    biscuit_keypair(3)
}

/// The key set the token target verifies with: the fixed root key.
pub fn key_set() -> KeySet {
    KeySet::single(ROOT_KEY_ID, root().public())
}

/// Everything a target needs, derived once (key derivation would otherwise
/// dominate each execution).
pub struct Fixture {
    /// [`key_set`].
    pub keys: KeySet,
    /// [`limits`].
    pub limits: Limits,
    /// [`request`] with the agent's key proven.
    pub by_agent: Request,
    /// [`request`] with the sub-agent's key proven.
    pub by_sub_agent: Request,
    /// [`request`] without a proven key.
    pub unproven: Request,
    /// [`holder`].
    pub holder: SigningKey,
    /// [`client`].
    pub client: SigningKey,
    /// [`dpop_header`].
    pub dpop_header: String,
}

/// The fixture, built on first use.
pub fn fixture() -> &'static Fixture {
    static FIXTURE: std::sync::LazyLock<Fixture> = std::sync::LazyLock::new(|| Fixture {
        keys: key_set(),
        limits: limits(),
        by_agent: request(Some(&agent())),
        by_sub_agent: request(Some(&sub_agent())),
        unproven: request(None),
        holder: holder(),
        client: client(),
        dpop_header: dpop_header(),
    });
    &FIXTURE
}

/// The request the token target asks about.
pub fn request(proven: Option<&KeyPair>) -> Request {
    let parse = || -> Result<Request, String> {
        Ok(Request {
            operation: Action::parse("docs:read").map_err(|e| e.to_string())?,
            resource: Resource::parse("docs/team-a/reports/q3.pdf").map_err(|e| e.to_string())?,
            service: Some(Audience::parse(SERVICE).map_err(|e| e.to_string())?),
            now: now(),
            proven_key: proven.map(KeyPair::public),
            amount: None,
        })
    };
    match parse() {
        Ok(r) => r,
        Err(e) => panic!("the fixed request: {e}"),
    }
}

/// The verifier's limits.
pub fn limits() -> Limits {
    Limits::default()
}

/// The DPoP holder's key (Ed25519, for JWS).
pub fn holder() -> SigningKey {
    SigningKey::from_bytes(&[4; 32])
}

/// The client's key that signs client assertions.
pub fn client() -> SigningKey {
    SigningKey::from_bytes(&[5; 32])
}

/// DPoP rules at the fixed clock, with or without a presented token.
pub fn dpop_rules(with_token: bool) -> DpopRules<'static> {
    DpopRules {
        method: METHOD,
        url: URL,
        access_token: with_token.then_some(ACCESS_TOKEN),
        now: now(),
        window_secs: 60,
    }
}

/// Client assertion rules at the fixed clock.
pub fn assertion_rules() -> AssertionRules<'static> {
    AssertionRules {
        audiences: AUDIENCES,
        now: now(),
        max_lifetime_secs: 300,
        skew_secs: 30,
    }
}

/// Signs `header` and `claims` (raw bytes, any content) as a compact EdDSA
/// JWS with `key`: lets a target reach the checks behind the signature with
/// headers and claims the fuzzer wrote.
pub fn sign_raw(key: &SigningKey, header: &[u8], claims: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let sig = key.sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
}

/// The DPoP header with the holder's public JWK.
pub fn dpop_header() -> String {
    let jwk = OkpJwk::from_key(&holder().verifying_key());
    format!(
        r#"{{"alg":"EdDSA","typ":"dpop+jwt","jwk":{{"kty":"{}","crv":"{}","x":"{}"}}}}"#,
        jwk.kty, jwk.crv, jwk.x
    )
}

/// Splits a fuzz input into a mode byte and the rest.
pub fn mode(data: &[u8]) -> Option<(u8, &[u8])> {
    data.split_first().map(|(m, rest)| (m % 4, rest))
}

/// Splits `header \n claims`.
pub fn split_header(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}
