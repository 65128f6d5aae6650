//! The client assertion (RFC 7523, `private_key_jwt`) of a client described
//! by a metadata document: signed by one of the keys in the document's
//! `jwks` or at its `jwks_uri`, with EdDSA, ES256 or RS256 (the algorithms
//! [`SigningAlgorithm`] knows; `none` and HMAC have no variant).
//!
//! Pure: the keys, the time and the expected values come in as arguments;
//! taking the `jti` once is the caller's (it needs a store).

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::jose::{b64, split_compact, AssertionClaims, AssertionRules, JoseError};
use crate::people::{IdpKeys, SigningAlgorithm};

/// The header members read here. `crit` is refused whatever it names.
#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

/// `typ` values a client assertion may carry (compared case-insensitively,
/// `application/` optional): none, `JWT`, or the explicit type of
/// draft-ietf-oauth-rfc7523bis. Any other (a DPoP proof, an ID token, an
/// identity assertion) is another kind of JWT and is refused.
const TYPES: [&str; 2] = ["jwt", "client-authentication+jwt"];

fn part<T: DeserializeOwned>(encoded: &str, what: &'static str) -> Result<T, JoseError> {
    serde_json::from_slice(&b64(encoded)?).map_err(|_| JoseError::Malformed(what))
}

/// Verifies `compact` as the client assertion of the client `client_id`
/// whose keys are `keys`, and checks its claims against `rules`: `iss` and
/// `sub` are `client_id`. Returns the claims (the caller takes the `jti`).
pub fn verify_assertion(
    compact: &str,
    client_id: &str,
    keys: &IdpKeys,
    rules: &AssertionRules<'_>,
) -> Result<AssertionClaims, JoseError> {
    let (h, c, s) = split_compact(compact)?;
    let header: Header = part(h, "header is not a JSON object with `alg`")?;
    let alg = SigningAlgorithm::from_jose(&header.alg)
        .ok_or_else(|| JoseError::Algorithm(shown(&header.alg)))?;
    if header.crit.is_some() {
        return Err(JoseError::Malformed(
            "critical header extensions are not supported",
        ));
    }
    if let Some(typ) = &header.typ {
        let typ = typ.strip_prefix("application/").unwrap_or(typ);
        if !TYPES.iter().any(|t| typ.eq_ignore_ascii_case(t)) {
            return Err(JoseError::Claim(
                "typ must be absent, JWT or client-authentication+jwt".to_owned(),
            ));
        }
    }
    let key = keys.find(header.kid.as_deref(), alg).ok_or(JoseError::Key(
        "no key of the client's metadata document matches kid and alg",
    ))?;
    let signature = b64(s)?;
    let input = &compact[..h.len() + 1 + c.len()];
    if !key.verifies(alg, input.as_bytes(), &signature) {
        return Err(JoseError::Signature);
    }
    let claims: AssertionClaims = part(c, "claims are missing or of the wrong type")?;
    if claims.iss != client_id {
        return Err(JoseError::Claim("iss must be the client_id".to_owned()));
    }
    claims.check(rules)?;
    Ok(claims)
}

/// At most 32 characters of a caller's string, for an error message.
fn shown(s: &str) -> String {
    s.chars().take(32).filter(|c| !c.is_control()).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::jose::MAX_JWS_BYTES;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use chrono::{TimeZone, Utc};
    use ed25519_dalek::SigningKey;
    use serde_json::json;

    const CLIENT: &str = "https://app.example/client.json";
    const AUD: &str = "https://issuer.example";

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[7; 32])
    }

    fn keys_of(key: &SigningKey) -> IdpKeys {
        let x = URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes());
        let jwks = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "k1"}]});
        IdpKeys::from_jwks_json(&jwks.to_string()).unwrap()
    }

    fn signed(header: serde_json::Value, claims: serde_json::Value, key: &SigningKey) -> String {
        use ed25519_dalek::Signer as _;
        let h = URL_SAFE_NO_PAD.encode(header.to_string());
        let c = URL_SAFE_NO_PAD.encode(claims.to_string());
        let sig = key.sign(format!("{h}.{c}").as_bytes());
        format!("{h}.{c}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
    }

    fn claims() -> serde_json::Value {
        json!({"iss": CLIENT, "sub": CLIENT, "aud": AUD, "exp": 1_000_060, "iat": 1_000_000, "jti": "j1"})
    }

    fn check(jwt: &str) -> Result<AssertionClaims, JoseError> {
        let audiences = [AUD];
        let rules = AssertionRules {
            audiences: &audiences,
            now: Utc.timestamp_opt(1_000_000, 0).unwrap(),
            max_lifetime_secs: 300,
            skew_secs: 0,
        };
        verify_assertion(jwt, CLIENT, &keys_of(&key()), &rules)
    }

    #[test]
    fn a_well_signed_assertion_passes_and_every_change_fails() {
        let head = json!({"alg": "EdDSA", "kid": "k1"});
        assert_eq!(
            check(&signed(head.clone(), claims(), &key())).unwrap().jti,
            "j1"
        );
        let typed = json!({"alg": "EdDSA", "kid": "k1", "typ": "client-authentication+jwt"});
        assert!(check(&signed(typed, claims(), &key())).is_ok());

        let other = SigningKey::from_bytes(&[8; 32]);
        assert_eq!(
            check(&signed(head.clone(), claims(), &other)),
            Err(JoseError::Signature)
        );
        let mut c = claims();
        c["iss"] = json!("https://evil.example/client.json");
        c["sub"] = c["iss"].clone();
        assert!(matches!(
            check(&signed(head.clone(), c, &key())),
            Err(JoseError::Claim(_))
        ));
        let mut c = claims();
        c["aud"] = json!("https://other.example");
        assert!(matches!(
            check(&signed(head.clone(), c, &key())),
            Err(JoseError::Claim(_))
        ));
        let mut c = claims();
        c["exp"] = json!(999_000);
        assert!(matches!(
            check(&signed(head, c, &key())),
            Err(JoseError::Claim(_))
        ));
    }

    #[test]
    fn none_hmac_other_types_crit_and_unknown_keys_are_refused() {
        for alg in ["none", "HS256", "PS256"] {
            let jwt = signed(json!({"alg": alg, "kid": "k1"}), claims(), &key());
            assert!(matches!(check(&jwt), Err(JoseError::Algorithm(_))), "{alg}");
        }
        let dpop = signed(
            json!({"alg": "EdDSA", "kid": "k1", "typ": "dpop+jwt"}),
            claims(),
            &key(),
        );
        assert!(matches!(check(&dpop), Err(JoseError::Claim(_))));
        let crit = signed(
            json!({"alg": "EdDSA", "kid": "k1", "crit": ["x"]}),
            claims(),
            &key(),
        );
        assert!(matches!(check(&crit), Err(JoseError::Malformed(_))));
        let kid = signed(json!({"alg": "EdDSA", "kid": "k2"}), claims(), &key());
        assert!(matches!(check(&kid), Err(JoseError::Key(_))));
        let es = signed(json!({"alg": "ES256", "kid": "k1"}), claims(), &key());
        assert_eq!(
            check(&es),
            Err(JoseError::Signature),
            "the key verifies EdDSA only"
        );
        assert!(matches!(check("a.b"), Err(JoseError::Malformed(_))));
        assert!(matches!(
            check(&"a".repeat(MAX_JWS_BYTES + 1)),
            Err(JoseError::Malformed(_))
        ));
    }
}
