//! Writes the fuzz seeds (with `TESSERA_WRITE_SEEDS=1`) and checks that each
//! one reaches the deep end of its target: the seed token is allowed, the
//! seed proof and assertion are accepted. Run from `fuzz/`:
//! `cargo test --test seeds` (add the variable to regenerate them).

use std::path::PathBuf;

use serde_json::json;
use tessera::jose::{self, AssertionClaims, Audiences, DpopClaims, Jws};
use tessera::token::{
    self, Action, AgentId, Audience, Capability, Lifetime, Narrowing, ResourcePattern, RootKeyPair,
};
use tessera_fuzz as fx;

fn seeds(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("seeds")
        .join(target)
}

fn writing() -> bool {
    std::env::var_os("TESSERA_WRITE_SEEDS").is_some()
}

fn put(target: &str, name: &str, bytes: &[u8]) {
    let dir = seeds(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

fn get(target: &str, name: &str) -> Vec<u8> {
    let path = seeds(target).join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn with_mode(mode: u8, rest: &[u8]) -> Vec<u8> {
    let mut v = vec![b'0' + mode];
    v.extend_from_slice(rest);
    v
}

#[test]
fn token_seeds_are_allowed() {
    if writing() {
        let root = RootKeyPair::new(fx::ROOT_KEY_ID, fx::root());
        let minted = token::mint(
            &Capability {
                agent: AgentId::parse("agent://acme/planner").unwrap(),
                action: Action::parse("docs:read").unwrap(),
                resource: ResourcePattern::parse("docs/team-a/*").unwrap(),
                audience: Some(Audience::parse(fx::SERVICE).unwrap()),
                lifetime: Lifetime::parse("1h").unwrap(),
                holder_key: Some(fx::agent().public()),
                on_behalf: None,
            },
            &root,
            fx::now() - chrono::Duration::minutes(1),
        )
        .unwrap();
        let narrower = Narrowing {
            resource: Some(ResourcePattern::parse("docs/team-a/reports/*").unwrap()),
            ..Narrowing::default()
        };
        let delegated = token::delegate(
            &minted.token,
            &fx::agent(),
            &AgentId::parse("agent://acme/summarizer").unwrap(),
            &fx::sub_agent().public(),
            &narrower,
            &fx::limits(),
        )
        .unwrap();
        for (name, text) in [("minted", &minted.token), ("delegated", &delegated)] {
            put("token_authorize", &format!("{name}.txt"), text.as_bytes());
            let bytes = token::decode(text, &fx::limits()).unwrap();
            put("token_authorize", &format!("{name}.bin"), &bytes);
        }
    }
    let keys = fx::key_set();
    let limits = fx::limits();
    for (name, holder) in [("minted", fx::agent()), ("delegated", fx::sub_agent())] {
        let text = String::from_utf8(get("token_authorize", &format!("{name}.txt"))).unwrap();
        let req = fx::request(Some(&holder));
        token::authorize(&text, &keys, &req, |_| false, &limits).unwrap();
        let bytes = get("token_authorize", &format!("{name}.bin"));
        token::authorize_bytes(&bytes, &keys, &req, |_| false, &limits).unwrap();
    }
}

fn dpop_claims(ath: bool) -> DpopClaims {
    DpopClaims {
        jti: "seed-proof-1".into(),
        htm: fx::METHOD.into(),
        htu: fx::URL.into(),
        iat: fx::now().timestamp(),
        ath: ath.then(|| jose::access_token_hash(fx::ACCESS_TOKEN)),
    }
}

#[test]
fn dpop_seeds_are_accepted() {
    if writing() {
        let p = jose::sign(&fx::holder(), Some("dpop+jwt"), true, &dpop_claims(false)).unwrap();
        put("dpop", "proof", &with_mode(0, p.as_bytes()));
        let p = jose::sign(&fx::holder(), Some("dpop+jwt"), true, &dpop_claims(true)).unwrap();
        put("dpop", "proof-ath", &with_mode(1, p.as_bytes()));
        let claims = serde_json::to_vec(&dpop_claims(true)).unwrap();
        put("dpop", "claims", &with_mode(2, &claims));
        let mut both = fx::dpop_header().into_bytes();
        both.push(b'\n');
        both.extend_from_slice(&claims);
        put("dpop", "header-claims", &with_mode(3, &both));
    }
    for (name, with_token) in [("proof", false), ("proof-ath", true)] {
        let seed = get("dpop", name);
        let p = std::str::from_utf8(&seed[1..]).unwrap();
        jose::verify_dpop(p, &fx::dpop_rules(with_token)).unwrap();
    }
    let seed = get("dpop", "claims");
    let p = fx::sign_raw(&fx::holder(), fx::dpop_header().as_bytes(), &seed[1..]);
    jose::verify_dpop(&p, &fx::dpop_rules(true)).unwrap();
    let seed = get("dpop", "header-claims");
    let (h, c) = fx::split_header(&seed[1..]);
    jose::verify_dpop(&fx::sign_raw(&fx::holder(), h, c), &fx::dpop_rules(true)).unwrap();
}

fn assertion() -> AssertionClaims {
    let t = fx::now().timestamp();
    AssertionClaims {
        iss: "agent://acme/planner".into(),
        sub: "agent://acme/planner".into(),
        aud: Audiences::One(fx::URL.into()),
        exp: t + 120,
        iat: Some(t),
        nbf: Some(t),
        jti: "seed-assertion-1".into(),
    }
}

#[test]
fn client_assertion_seeds_are_accepted() {
    if writing() {
        let a = jose::sign(&fx::client(), None, false, &assertion()).unwrap();
        put("client_assertion", "assertion", &with_mode(0, a.as_bytes()));
        let claims = serde_json::to_vec(&assertion()).unwrap();
        put("client_assertion", "claims", &with_mode(2, &claims));
        let mut both = br#"{"alg":"EdDSA","kid":"planner"}"#.to_vec();
        both.push(b'\n');
        both.extend_from_slice(&claims);
        put("client_assertion", "header-claims", &with_mode(3, &both));
    }
    let seed = get("client_assertion", "assertion");
    let jws = Jws::<AssertionClaims>::parse(std::str::from_utf8(&seed[1..]).unwrap()).unwrap();
    jws.verify(&fx::client().verifying_key()).unwrap();
    jws.claims.check(&fx::assertion_rules()).unwrap();
    for name in ["claims", "header-claims"] {
        let seed = get("client_assertion", name);
        let (h, c) = match name {
            "claims" => (&br#"{"alg":"EdDSA"}"#[..], &seed[1..]),
            _ => fx::split_header(&seed[1..]),
        };
        let jws = Jws::<AssertionClaims>::parse(&fx::sign_raw(&fx::client(), h, c)).unwrap();
        jws.verify(&fx::client().verifying_key()).unwrap();
        jws.claims.check(&fx::assertion_rules()).unwrap();
    }
}

#[test]
fn jwks_seeds_are_read() {
    if writing() {
        let one = serde_json::to_vec(&fx::key_set().to_jwks()).unwrap();
        put("jwks", "one-key.json", &one);
        let mut two = fx::key_set();
        two.insert(8, fx::agent().public()).unwrap();
        put(
            "jwks",
            "two-keys.json",
            &serde_json::to_vec(&two.to_jwks()).unwrap(),
        );
    }
    for (name, n) in [("one-key.json", 1), ("two-keys.json", 2)] {
        let text = String::from_utf8(get("jwks", name)).unwrap();
        let set = token::KeySet::from_jwks_json(&text).unwrap();
        assert_eq!(set.iter().count(), n);
    }
}

#[test]
fn form_and_feed_seeds_are_written() {
    if writing() {
        let a = jose::sign(&fx::client(), None, false, &assertion()).unwrap();
        let scope = serde_urlencoded(&[
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", &a),
            ("scope", "docs:read"),
            ("identifier", "docs/team-a/*"),
            ("resource", fx::SERVICE),
            ("lifetime", "5m"),
        ]);
        put("token_form", "scope", &with_mode(0, scope.as_bytes()));
        let details = json!([{
            "type": "tessera",
            "actions": ["docs:read"],
            "locations": [fx::SERVICE],
            "identifier": "docs/team-a/reports/*"
        }])
        .to_string();
        let details = serde_urlencoded(&[
            ("grant_type", "client_credentials"),
            ("client_assertion", &a),
            ("authorization_details", &details),
        ]);
        put("token_form", "details", &with_mode(1, details.as_bytes()));
        let page = json!({
            "entries": [
                {"cursor": "1700000000000-0", "revocation": {
                    "revocation_id": hex(&[0xab; 64]),
                    "token_id": "t-1",
                    "agent": "agent://acme/planner",
                    "reason": "compromised",
                    "revoked_at": "2027-01-15T07:59:00Z",
                    "expires_at": "2027-01-15T09:00:00Z"
                }},
                {"cursor": "1700000000001-0", "revocation": {
                    "revocation_id": "zz",
                    "reason": "",
                    "revoked_at": "2027-01-15T07:59:00Z",
                    "expires_at": "2027-01-15T09:00:00Z"
                }}
            ],
            "next": "1700000000001-0"
        });
        put("feed_page", "page.json", page.to_string().as_bytes());
        put("feed_page", "empty.json", br#"{"entries":[],"next":null}"#);
    }
    assert!(!get("token_form", "scope").is_empty());
    assert!(!get("feed_page", "page.json").is_empty());
}

/// `application/x-www-form-urlencoded`, without another dependency.
fn serde_urlencoded(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                    (b as char).to_string()
                }
                b' ' => "+".to_owned(),
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
