//! The small part of JOSE that Tessera needs: compact JWS signed with EdDSA
//! (Ed25519), OKP public JWKs and their thumbprints, client assertions
//! (RFC 7523, `private_key_jwt`) and DPoP proofs (RFC 9449).
//!
//! Pure: the time and the expected values come in as arguments; the replay
//! check of a `jti` is the caller's (it needs a store).
//!
//! Only `alg: EdDSA` is accepted. `none`, HMAC and every other algorithm are
//! refused before any key is looked at, so a key can never be used with an
//! algorithm it was not meant for.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, VerifyingKey};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Largest compact JWS accepted, in bytes.
pub const MAX_JWS_BYTES: usize = 8 * 1024;

/// Why a JWS, client assertion or DPoP proof was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoseError {
    /// Not three base64url parts of JSON, or too large.
    #[error("malformed JWS: {0}")]
    Malformed(&'static str),
    /// An algorithm other than EdDSA (including `none` and HMAC).
    #[error("algorithm `{0}` is not accepted (only EdDSA)")]
    Algorithm(String),
    /// The signature does not verify with the key.
    #[error("signature does not verify")]
    Signature,
    /// A key that is not an OKP Ed25519 public key.
    #[error("invalid key: {0}")]
    Key(&'static str),
    /// A claim is missing or has the wrong value.
    #[error("{0}")]
    Claim(String),
}

/// JWK members that hold private or symmetric key material (RFC 7518 §6.2.2,
/// §6.3.2, §6.4; RFC 8037 §2): a header `jwk` carrying any of them is refused.
const PRIVATE_JWK_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// The JOSE header members Tessera reads.
#[derive(Debug, Clone, Deserialize)]
pub struct Header {
    /// Algorithm.
    pub alg: String,
    /// Type (`dpop+jwt` for DPoP proofs).
    #[serde(default)]
    pub typ: Option<String>,
    /// Embedded public key (DPoP proofs).
    #[serde(default)]
    pub jwk: Option<OkpJwk>,
    /// Key id.
    #[serde(default)]
    pub kid: Option<String>,
}

/// A parsed, not yet verified, compact JWS.
#[derive(Debug, Clone)]
pub struct Jws<C> {
    /// The header.
    pub header: Header,
    /// The claims.
    pub claims: C,
    signing_input: String,
    signature: Signature,
}

/// One base64url part of a compact JWS, decoded.
pub(crate) fn b64(part: &str) -> Result<Vec<u8>, JoseError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| JoseError::Malformed("a part is not base64url"))
}

/// The header, payload and signature parts of a compact JWS of at most
/// [`MAX_JWS_BYTES`].
pub(crate) fn split_compact(compact: &str) -> Result<(&str, &str, &str), JoseError> {
    if compact.len() > MAX_JWS_BYTES {
        return Err(JoseError::Malformed("too large"));
    }
    let mut parts = compact.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(p), Some(s), None) => Ok((h, p, s)),
        _ => Err(JoseError::Malformed("expected three parts")),
    }
}

impl<C: DeserializeOwned> Jws<C> {
    /// Parses a compact JWS, refusing any algorithm but EdDSA.
    pub fn parse(compact: &str) -> Result<Self, JoseError> {
        let (h, p, s) = split_compact(compact)?;
        let header: serde_json::Value = serde_json::from_slice(&b64(h)?)
            .map_err(|_| JoseError::Malformed("header is not a JSON object"))?;
        // A key embedded in the header must be public (RFC 9449 §4.3 point
        // 7): serde would drop unknown members, so look before it does.
        if let Some(jwk) = header.get("jwk").and_then(serde_json::Value::as_object) {
            if PRIVATE_JWK_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
                return Err(JoseError::Key("the jwk holds private key material"));
            }
        }
        let header: Header = serde_json::from_value(header)
            .map_err(|_| JoseError::Malformed("header is not a JSON object"))?;
        if header.alg != "EdDSA" {
            return Err(JoseError::Algorithm(header.alg));
        }
        let claims: C = serde_json::from_slice(&b64(p)?)
            .map_err(|_| JoseError::Malformed("claims are missing or of the wrong type"))?;
        let sig: [u8; 64] = b64(s)?
            .try_into()
            .map_err(|_| JoseError::Malformed("an EdDSA signature is 64 bytes"))?;
        Ok(Self {
            header,
            claims,
            signing_input: format!("{h}.{p}"),
            signature: Signature::from_bytes(&sig),
        })
    }

    /// Verifies the signature with `key` (strict Ed25519 verification).
    pub fn verify(&self, key: &VerifyingKey) -> Result<(), JoseError> {
        key.verify_strict(self.signing_input.as_bytes(), &self.signature)
            .map_err(|_| JoseError::Signature)
    }
}

/// Signs claims as a compact EdDSA JWS (for the command-line client and tests).
pub fn sign<C: Serialize>(
    key: &ed25519_dalek::SigningKey,
    typ: Option<&str>,
    embed_jwk: bool,
    claims: &C,
) -> Result<String, JoseError> {
    let mut header = serde_json::json!({ "alg": "EdDSA" });
    if let Some(t) = typ {
        header["typ"] = t.into();
    }
    if embed_jwk {
        header["jwk"] = serde_json::to_value(OkpJwk::from_key(&key.verifying_key()))
            .map_err(|_| JoseError::Malformed("jwk"))?;
    }
    let enc = |v: &serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let claims = serde_json::to_value(claims).map_err(|_| JoseError::Malformed("claims"))?;
    let input = format!("{}.{}", enc(&header), enc(&claims));
    use ed25519_dalek::Signer;
    let sig = key.sign(input.as_bytes());
    Ok(format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(sig.to_bytes())
    ))
}

/// An OKP (Ed25519) public JWK.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OkpJwk {
    /// `OKP`.
    pub kty: String,
    /// `Ed25519`.
    pub crv: String,
    /// The public key, base64url.
    pub x: String,
}

impl OkpJwk {
    /// The JWK of a key.
    pub fn from_key(key: &VerifyingKey) -> Self {
        Self {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            x: URL_SAFE_NO_PAD.encode(key.as_bytes()),
        }
    }

    /// The key, if this is a valid Ed25519 public key.
    pub fn key(&self) -> Result<VerifyingKey, JoseError> {
        if self.kty != "OKP" || self.crv != "Ed25519" {
            return Err(JoseError::Key("only kty OKP with crv Ed25519"));
        }
        let bytes: [u8; 32] = b64(&self.x)?
            .try_into()
            .map_err(|_| JoseError::Key("x must be 32 bytes"))?;
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| JoseError::Key("not a point"))?;
        if key.is_weak() {
            return Err(JoseError::Key("weak key"));
        }
        Ok(key)
    }

    /// RFC 7638 thumbprint (SHA-256, base64url): the DPoP `jkt`.
    pub fn thumbprint(&self) -> String {
        // Members in lexicographic order, no white space (RFC 7638 §3.2).
        let canonical = format!(
            r#"{{"crv":"{}","kty":"{}","x":"{}"}}"#,
            self.crv, self.kty, self.x
        );
        URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
    }
}

/// Converts an Ed25519 key to biscuit-auth's type (for binding tokens).
pub fn to_biscuit_key(key: &VerifyingKey) -> Result<biscuit_auth::PublicKey, JoseError> {
    biscuit_auth::PublicKey::from_bytes(key.as_bytes(), biscuit_auth::Algorithm::Ed25519)
        .map_err(|_| JoseError::Key("not an Ed25519 key"))
}

/// Converts biscuit-auth's Ed25519 key to a JWS verification key.
pub fn from_biscuit_key(key: &biscuit_auth::PublicKey) -> Result<VerifyingKey, JoseError> {
    let bytes: [u8; 32] = key
        .to_bytes()
        .try_into()
        .map_err(|_| JoseError::Key("not an Ed25519 key"))?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| JoseError::Key("not an Ed25519 key"))
}

/// `aud` may be one string or an array of strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audiences {
    /// One audience.
    One(String),
    /// Several audiences.
    Many(Vec<String>),
}

impl Audiences {
    /// Whether any audience equals one of `accepted`.
    pub fn contains_any(&self, accepted: &[&str]) -> bool {
        match self {
            Self::One(a) => accepted.contains(&a.as_str()),
            Self::Many(v) => v.iter().any(|a| accepted.contains(&a.as_str())),
        }
    }
}

/// Claims of a client assertion (RFC 7523 §3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssertionClaims {
    /// Issuer: the client (agent URI).
    pub iss: String,
    /// Subject: the client (agent URI).
    pub sub: String,
    /// The authorization server (issuer URL or token endpoint URL).
    pub aud: Audiences,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issued at.
    #[serde(default)]
    pub iat: Option<i64>,
    /// Not before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Unique id, accepted once.
    pub jti: String,
}

/// What a client assertion must satisfy, besides its signature.
#[derive(Debug, Clone)]
pub struct AssertionRules<'a> {
    /// Accepted `aud` values: the issuer URL and the token endpoint URL.
    pub audiences: &'a [&'a str],
    /// The current time.
    pub now: DateTime<Utc>,
    /// Longest accepted distance from `now` to `exp`, in seconds (300).
    pub max_lifetime_secs: i64,
    /// Allowed clock skew, in seconds.
    pub skew_secs: i64,
}

impl AssertionClaims {
    /// Checks everything but the signature and the replay of `jti`.
    pub fn check(&self, rules: &AssertionRules<'_>) -> Result<(), JoseError> {
        let now = rules.now.timestamp();
        let bad = |m: &str| Err(JoseError::Claim(m.to_owned()));
        if self.iss != self.sub {
            return bad("iss and sub must both be the client id");
        }
        if !self.aud.contains_any(rules.audiences) {
            return bad("aud is neither the issuer nor the token endpoint");
        }
        // Every sum is checked: `exp`, `iat` and `nbf` are the caller's
        // numbers, and a time that does not fit is refused, never wrapped.
        let out_of_range = || JoseError::Claim("a time claim is out of range".to_owned());
        let latest_now = now.checked_add(rules.skew_secs).ok_or_else(out_of_range)?;
        let earliest_now = now.checked_sub(rules.skew_secs).ok_or_else(out_of_range)?;
        if self.exp < earliest_now {
            return bad("the assertion has expired");
        }
        let latest_exp = latest_now
            .checked_add(rules.max_lifetime_secs)
            .ok_or_else(out_of_range)?;
        if self.exp > latest_exp {
            return bad("exp is too far in the future (at most 5 minutes)");
        }
        if self.iat.is_some_and(|iat| iat > latest_now) {
            return bad("iat is in the future");
        }
        // An `iat` (or `nbf`) from before the assertion could have been
        // made is as wrong as one in the future.
        let earliest_iat = earliest_now
            .checked_sub(rules.max_lifetime_secs)
            .ok_or_else(out_of_range)?;
        if self.iat.is_some_and(|iat| iat < earliest_iat) {
            return bad("iat is too far in the past");
        }
        if self.nbf.is_some_and(|nbf| nbf > latest_now) {
            return bad("the assertion is not valid yet (nbf)");
        }
        if self.nbf.is_some_and(|nbf| nbf < earliest_iat) {
            return bad("nbf is too far in the past");
        }
        if self.jti.is_empty() || self.jti.len() > 256 {
            return bad("jti must be 1 to 256 characters");
        }
        Ok(())
    }
}

/// Claims of a DPoP proof (RFC 9449 §4.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DpopClaims {
    /// Unique id, accepted once within the window.
    pub jti: String,
    /// HTTP method.
    pub htm: String,
    /// HTTP URL, without query and fragment.
    pub htu: String,
    /// Issued at.
    pub iat: i64,
    /// Hash of the access token (required when presenting a token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ath: Option<String>,
}

/// What a DPoP proof must match.
#[derive(Debug, Clone)]
pub struct DpopRules<'a> {
    /// The request method.
    pub method: &'a str,
    /// The request URL.
    pub url: &'a str,
    /// The access token presented with the proof, if any.
    pub access_token: Option<&'a str>,
    /// The current time.
    pub now: DateTime<Utc>,
    /// Accepted distance between `iat` and `now`, in seconds.
    pub window_secs: i64,
}

/// A verified DPoP proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpopProof {
    /// The holder's key.
    pub key: VerifyingKey,
    /// Its JWK thumbprint.
    pub jkt: String,
    /// The proof's `jti` (the caller must accept it only once).
    pub jti: String,
    /// The proof's `iat`.
    pub iat: i64,
}

/// `htu` comparison per RFC 9449 §4.3: no query or fragment, scheme and host
/// case-insensitive, the scheme's default port the same as none (RFC 3986
/// §6.2.2 and §6.2.3).
fn normalize_url(url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or(url);
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let scheme = scheme.to_ascii_lowercase();
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let authority = authority.to_ascii_lowercase();
            let default_port = match scheme.as_str() {
                "https" => Some(":443"),
                "http" => Some(":80"),
                _ => None,
            };
            let authority = default_port
                .and_then(|p| authority.strip_suffix(p))
                .unwrap_or(&authority);
            let path = if path.is_empty() { "/" } else { path };
            format!("{scheme}://{authority}{path}")
        }
        None => url.to_owned(),
    }
}

/// SHA-256 of an access token, base64url: the DPoP `ath`.
pub fn access_token_hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

/// Verifies a DPoP proof: header, signature with its embedded key, method,
/// URL, time window and, when a token is presented, `ath`.
pub fn verify_dpop(proof: &str, rules: &DpopRules<'_>) -> Result<DpopProof, JoseError> {
    let jws: Jws<DpopClaims> = Jws::parse(proof)?;
    if jws.header.typ.as_deref() != Some("dpop+jwt") {
        return Err(JoseError::Claim("typ must be dpop+jwt".into()));
    }
    let jwk = jws
        .header
        .jwk
        .as_ref()
        .ok_or_else(|| JoseError::Claim("the header must carry the public jwk".into()))?;
    let key = jwk.key()?;
    jws.verify(&key)?;
    let c = &jws.claims;
    // RFC 9449 §4.3 point 8: methods are case-sensitive (RFC 9110 §9.1).
    if c.htm != rules.method {
        return Err(JoseError::Claim(
            "htm does not match the request method".into(),
        ));
    }
    if normalize_url(&c.htu) != normalize_url(rules.url) {
        return Err(JoseError::Claim(
            "htu does not match the request URL".into(),
        ));
    }
    // `iat` is the caller's number: a distance that does not fit in an
    // i64 is outside any window, never wrapped into it.
    let distance = c
        .iat
        .checked_sub(rules.now.timestamp())
        .and_then(i64::checked_abs);
    if distance.is_none_or(|d| d > rules.window_secs) {
        return Err(JoseError::Claim(
            "iat is outside the accepted window".into(),
        ));
    }
    if c.jti.is_empty() || c.jti.len() > 256 {
        return Err(JoseError::Claim("jti must be 1 to 256 characters".into()));
    }
    match (rules.access_token, &c.ath) {
        (Some(t), Some(ath)) if *ath == access_token_hash(t) => {}
        (Some(_), _) => return Err(JoseError::Claim("ath does not match the token".into())),
        (None, _) => {}
    }
    Ok(DpopProof {
        key,
        jkt: jwk.thumbprint(),
        jti: c.jti.clone(),
        iat: c.iat,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn rules(now: DateTime<Utc>) -> DpopRules<'static> {
        DpopRules {
            method: "POST",
            url: "https://issuer.example/oauth/token",
            access_token: None,
            now,
            window_secs: 60,
        }
    }

    /// Claims of a fresh proof for the token endpoint.
    fn post_claims() -> DpopClaims {
        DpopClaims {
            jti: "j1".into(),
            htm: "POST".into(),
            htu: "https://issuer.example/oauth/token".into(),
            iat: now().timestamp(),
            ath: None,
        }
    }

    /// A compact JWS of `claims` under a header written by the test, for
    /// headers [`sign`] would never produce.
    fn signed_with_header(
        k: &SigningKey,
        header: &serde_json::Value,
        claims: &DpopClaims,
    ) -> String {
        use ed25519_dalek::Signer;
        let enc = |v: &serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
        let input = format!(
            "{}.{}",
            enc(header),
            enc(&serde_json::to_value(claims).unwrap())
        );
        let signature = URL_SAFE_NO_PAD.encode(k.sign(input.as_bytes()).to_bytes());
        format!("{input}.{signature}")
    }

    fn proof(k: &SigningKey, htm: &str, htu: &str, iat: i64, ath: Option<String>) -> String {
        let claims = DpopClaims {
            jti: "j1".into(),
            htm: htm.into(),
            htu: htu.into(),
            iat,
            ath,
        };
        sign(k, Some("dpop+jwt"), true, &claims).unwrap()
    }

    #[test]
    fn a_dpop_proof_binds_to_its_embedded_key() {
        let k = key(1);
        let p = proof(
            &k,
            "POST",
            "https://ISSUER.example/oauth/token?x=1",
            now().timestamp(),
            None,
        );
        let v = verify_dpop(&p, &rules(now())).unwrap();
        assert_eq!(v.key, k.verifying_key());
        assert_eq!(v.jkt, OkpJwk::from_key(&k.verifying_key()).thumbprint());
    }

    #[test]
    fn dpop_proofs_with_wrong_method_url_time_or_ath_are_refused() {
        let k = key(2);
        let t = now().timestamp();
        for p in [
            proof(&k, "GET", "https://issuer.example/oauth/token", t, None),
            proof(&k, "POST", "https://issuer.example/oauth/revoke", t, None),
            proof(
                &k,
                "POST",
                "https://issuer.example/oauth/token",
                t - 61,
                None,
            ),
            proof(
                &k,
                "POST",
                "https://issuer.example/oauth/token",
                t + 61,
                None,
            ),
        ] {
            assert!(matches!(
                verify_dpop(&p, &rules(now())),
                Err(JoseError::Claim(_))
            ));
        }
        let with_token = DpopRules {
            access_token: Some("tok"),
            ..rules(now())
        };
        let wrong_ath = proof(
            &k,
            "POST",
            "https://issuer.example/oauth/token",
            t,
            Some(access_token_hash("other")),
        );
        assert!(verify_dpop(&wrong_ath, &with_token).is_err());
        let no_ath = proof(&k, "POST", "https://issuer.example/oauth/token", t, None);
        assert!(verify_dpop(&no_ath, &with_token).is_err());
        let right = proof(
            &k,
            "POST",
            "https://issuer.example/oauth/token",
            t,
            Some(access_token_hash("tok")),
        );
        assert!(verify_dpop(&right, &with_token).is_ok());
    }

    #[test]
    fn a_dpop_proof_signed_by_another_key_than_its_jwk_is_refused() {
        let p = proof(
            &key(3),
            "POST",
            "https://issuer.example/oauth/token",
            now().timestamp(),
            None,
        );
        // Swap in another key's JWK in the header, keep the signature.
        let (_, rest) = p.split_once('.').unwrap();
        let header = serde_json::json!({"alg": "EdDSA", "typ": "dpop+jwt", "jwk": OkpJwk::from_key(&key(4).verifying_key())});
        let forged = format!("{}.{rest}", URL_SAFE_NO_PAD.encode(header.to_string()));
        assert_eq!(
            verify_dpop(&forged, &rules(now())),
            Err(JoseError::Signature)
        );
    }

    #[test]
    fn none_and_hmac_algorithms_are_refused_before_any_key_is_used() {
        for alg in ["none", "HS256", "RS256", "ES256"] {
            let h = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}"}}"#));
            let p = URL_SAFE_NO_PAD.encode(r#"{"jti":"x"}"#);
            let r = Jws::<serde_json::Value>::parse(&format!("{h}.{p}."));
            assert_eq!(r.err(), Some(JoseError::Algorithm(alg.into())));
        }
    }

    /// Claims of an assertion that `agent://a` signed for the issuer now.
    fn good_assertion() -> AssertionClaims {
        let t = now().timestamp();
        AssertionClaims {
            iss: "agent://a".into(),
            sub: "agent://a".into(),
            aud: Audiences::One("https://issuer.example".into()),
            exp: t + 60,
            iat: Some(t),
            nbf: None,
            jti: "1".into(),
        }
    }

    #[test]
    fn client_assertion_claims_are_checked() {
        let t = now().timestamp();
        let good = good_assertion();
        let r = AssertionRules {
            audiences: &[
                "https://issuer.example",
                "https://issuer.example/oauth/token",
            ],
            now: now(),
            max_lifetime_secs: 300,
            skew_secs: 30,
        };
        assert!(good.check(&r).is_ok());
        let cases = [
            AssertionClaims {
                sub: "agent://b".into(),
                ..good.clone()
            },
            AssertionClaims {
                aud: Audiences::Many(vec!["https://other".into()]),
                ..good.clone()
            },
            AssertionClaims {
                exp: t - 31,
                ..good.clone()
            },
            AssertionClaims {
                exp: t + 400,
                ..good.clone()
            },
            AssertionClaims {
                iat: Some(t + 100),
                ..good.clone()
            },
            AssertionClaims {
                jti: String::new(),
                ..good.clone()
            },
        ];
        for c in cases {
            assert!(c.check(&r).is_err(), "{c:?}");
        }
    }

    #[test]
    fn jwk_thumbprint_matches_rfc_8037_example() {
        // RFC 8037 appendix A.3: the thumbprint of its example Ed25519 key.
        let jwk = OkpJwk {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            x: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo".into(),
        };
        assert_eq!(
            jwk.thumbprint(),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
        assert!(jwk.key().is_ok());
    }

    /// Times an attacker may write into a proof or an assertion: the ends of
    /// `i64`, their neighbours, and the values that put `iat - now` at them.
    fn extreme_times() -> Vec<i64> {
        let t = now().timestamp();
        vec![
            i64::MIN,
            i64::MIN + 1,
            i64::MIN + 2,
            i64::MAX,
            i64::MAX - 1,
            i64::MAX - 2,
            t.wrapping_add(i64::MIN),
            t.wrapping_add(i64::MIN) + 1,
            t.wrapping_add(i64::MAX),
            t.wrapping_sub(i64::MIN),
            -t,
        ]
    }

    #[test]
    fn dpop_proofs_with_iat_at_the_ends_of_i64_are_refused_without_panicking() {
        let k = key(5);
        for iat in extreme_times() {
            let p = proof(&k, "POST", "https://issuer.example/oauth/token", iat, None);
            let r = std::panic::catch_unwind(|| verify_dpop(&p, &rules(now())));
            assert!(
                matches!(r, Ok(Err(JoseError::Claim(_)))),
                "iat {iat}: {r:?}"
            );
        }
    }

    #[test]
    fn client_assertions_with_times_at_the_ends_of_i64_are_refused_without_panicking() {
        let good = good_assertion();
        let r = AssertionRules {
            audiences: &["https://issuer.example"],
            now: now(),
            max_lifetime_secs: 300,
            skew_secs: 30,
        };
        assert!(good.check(&r).is_ok());
        for x in extreme_times() {
            for c in [
                AssertionClaims {
                    exp: x,
                    ..good.clone()
                },
                AssertionClaims {
                    iat: Some(x),
                    ..good.clone()
                },
                AssertionClaims {
                    nbf: Some(x),
                    ..good.clone()
                },
            ] {
                let got = std::panic::catch_unwind(|| c.check(&r));
                assert!(
                    matches!(got, Ok(Err(JoseError::Claim(_)))),
                    "{c:?}: {got:?}"
                );
            }
        }
        // The same through the parser, as the token endpoint receives them.
        let k = key(6);
        for x in extreme_times() {
            let c = AssertionClaims {
                exp: x,
                iat: Some(x),
                nbf: Some(x),
                ..good.clone()
            };
            let jws = sign(&k, None, false, &c).unwrap();
            let parsed: Jws<AssertionClaims> = Jws::parse(&jws).unwrap();
            parsed.verify(&k.verifying_key()).unwrap();
            let got = std::panic::catch_unwind(|| parsed.claims.check(&r));
            assert!(matches!(got, Ok(Err(JoseError::Claim(_)))), "{x}: {got:?}");
        }
    }

    #[test]
    fn assertion_rules_at_the_ends_of_i64_fail_closed_without_panicking() {
        let t = now().timestamp();
        let good = AssertionClaims {
            iss: "agent://a".into(),
            sub: "agent://a".into(),
            aud: Audiences::One("https://issuer.example".into()),
            exp: t + 60,
            iat: Some(t),
            nbf: Some(t),
            jti: "1".into(),
        };
        for (max_lifetime_secs, skew_secs) in
            [(i64::MAX, 30), (300, i64::MAX), (i64::MAX, i64::MAX)]
        {
            let r = AssertionRules {
                audiences: &["https://issuer.example"],
                now: now(),
                max_lifetime_secs,
                skew_secs,
            };
            let got = std::panic::catch_unwind(|| good.check(&r));
            assert!(got.is_ok(), "{max_lifetime_secs} {skew_secs}: {got:?}");
        }
        let wide = DpopRules {
            window_secs: i64::MAX,
            ..rules(now())
        };
        let p = proof(
            &key(7),
            "POST",
            "https://issuer.example/oauth/token",
            i64::MIN,
            None,
        );
        let got = std::panic::catch_unwind(|| verify_dpop(&p, &wide));
        assert!(matches!(got, Ok(Err(JoseError::Claim(_)))), "{got:?}");
    }

    #[test]
    fn a_dpop_proof_whose_jwk_holds_a_private_key_is_refused() {
        let k = key(8);
        let claims = post_claims();
        for private in ["d", "p", "q", "dp", "dq", "qi", "k", "oth"] {
            let mut jwk = serde_json::to_value(OkpJwk::from_key(&k.verifying_key())).unwrap();
            jwk[private] = URL_SAFE_NO_PAD.encode(k.to_bytes()).into();
            let header = serde_json::json!({"alg": "EdDSA", "typ": "dpop+jwt", "jwk": jwk});
            let p = signed_with_header(&k, &header, &claims);
            assert!(
                matches!(verify_dpop(&p, &rules(now())), Err(JoseError::Key(_))),
                "a jwk with `{private}` was accepted"
            );
        }
    }

    #[test]
    fn a_dpop_proof_whose_htm_differs_only_in_case_is_refused() {
        let k = key(9);
        let t = now().timestamp();
        for htm in ["post", "Post", "pOST", "POST "] {
            let p = proof(&k, htm, "https://issuer.example/oauth/token", t, None);
            assert!(
                matches!(verify_dpop(&p, &rules(now())), Err(JoseError::Claim(_))),
                "htm {htm:?} was accepted for POST"
            );
        }
        let exact = proof(&k, "POST", "https://issuer.example/oauth/token", t, None);
        assert!(verify_dpop(&exact, &rules(now())).is_ok());
    }

    #[test]
    fn a_dpop_proof_with_a_typ_other_than_exactly_dpop_jwt_is_refused() {
        let k = key(10);
        let claims = post_claims();
        for typ in [
            None,
            Some("JWT"),
            Some("dpop"),
            Some("dpop+jwt "),
            Some("at+jwt"),
        ] {
            let p = sign(&k, typ, true, &claims).unwrap();
            assert!(
                matches!(verify_dpop(&p, &rules(now())), Err(JoseError::Claim(_))),
                "typ {typ:?} was accepted"
            );
        }
    }

    #[test]
    fn a_dpop_proof_without_an_embedded_jwk_or_with_a_non_okp_jwk_is_refused() {
        let k = key(11);
        let claims = post_claims();
        let no_jwk = sign(&k, Some("dpop+jwt"), false, &claims).unwrap();
        assert!(matches!(
            verify_dpop(&no_jwk, &rules(now())),
            Err(JoseError::Claim(_))
        ));
        let x = URL_SAFE_NO_PAD.encode(k.verifying_key().as_bytes());
        for jwk in [
            serde_json::json!({"kty": "oct", "crv": "Ed25519", "x": x}),
            serde_json::json!({"kty": "OKP", "crv": "X25519", "x": x}),
            serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}),
        ] {
            let header = serde_json::json!({"alg": "EdDSA", "typ": "dpop+jwt", "jwk": jwk});
            let p = signed_with_header(&k, &header, &claims);
            assert!(
                matches!(verify_dpop(&p, &rules(now())), Err(JoseError::Key(_))),
                "{jwk}"
            );
        }
    }

    #[test]
    fn htu_is_compared_without_query_fragment_or_default_port() {
        let k = key(12);
        let t = now().timestamp();
        for htu in [
            "https://issuer.example/oauth/token",
            "https://issuer.example/oauth/token?a=b",
            "https://issuer.example/oauth/token#frag",
            "HTTPS://Issuer.Example/oauth/token",
            "https://issuer.example:443/oauth/token",
        ] {
            let p = proof(&k, "POST", htu, t, None);
            assert!(verify_dpop(&p, &rules(now())).is_ok(), "{htu}");
        }
        for htu in [
            "https://issuer.example/oauth/Token",
            "http://issuer.example/oauth/token",
            "https://issuer.example:8443/oauth/token",
            "https://issuer.example.evil/oauth/token",
            "https://issuer.example/oauth/token/",
        ] {
            let p = proof(&k, "POST", htu, t, None);
            assert!(
                matches!(verify_dpop(&p, &rules(now())), Err(JoseError::Claim(_))),
                "{htu} was accepted"
            );
        }
    }
}
