//! Pure validation of an identity provider's ID token (a compact JWS):
//! the token, the IdP's configuration, its keys and the current time in; a
//! [`PersonIdentity`] or an [`IdTokenError`] out. No I/O, no clock reads.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;

use super::idp::IdpConfig;
use super::jwk::{IdpKeys, SigningAlgorithm};

/// The `typ` of an identity assertion (ID-JAG), never accepted as an ID token.
pub const ID_JAG_TYP: &str = "oauth-id-jag+jwt";
/// Largest ID token accepted, in bytes.
pub const MAX_ID_TOKEN_BYTES: usize = 16 * 1024;
/// Most groups read from the groups claim.
pub const MAX_GROUPS: usize = 256;
/// Longest subject, group name or `may_act` subject accepted, in bytes.
pub const MAX_NAME_BYTES: usize = 255;

/// A person, as a trusted IdP's validated ID token describes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonIdentity {
    /// The IdP's issuer URL (with `subject`, the person's identity).
    pub issuer: String,
    /// The subject (`sub`) at that IdP.
    pub subject: String,
    /// The groups from the configured groups claim (empty when absent).
    pub groups: Vec<String>,
    /// `may_act.sub` (RFC 8693 §4.4): the one actor the person allows, if any.
    pub may_act: Option<String>,
    /// When the ID token expires (`exp`).
    pub expires_at: DateTime<Utc>,
}

/// Why an ID token was refused. Each Display is one line, fit for an
/// `invalid_grant` error description; values taken from the token are
/// shortened and stripped of control characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdTokenError {
    /// Longer than [`MAX_ID_TOKEN_BYTES`].
    #[error("the ID token is larger than {max} bytes")]
    Oversized {
        /// The limit.
        max: usize,
    },
    /// Not a compact JWS of JSON header and claims.
    #[error("the ID token is malformed: {0}")]
    Malformed(&'static str),
    /// `iss` names no trusted identity provider.
    #[error("the ID token's issuer `{0}` is not a trusted identity provider")]
    UnknownIssuer(String),
    /// `alg` is not among the IdP's allowed algorithms (`none` and HMAC never are).
    #[error("the ID token's algorithm `{0}` is not allowed for this identity provider")]
    Algorithm(String),
    /// No key of the IdP has the token's `kid` (or, without `kid`, no single
    /// key for its algorithm).
    #[error("the ID token names a key the identity provider does not publish ({0})")]
    UnknownKey(String),
    /// The signature does not verify with the IdP's key.
    #[error("the ID token's signature does not verify")]
    Signature,
    /// `aud` does not contain the audience Tessera requires.
    #[error("the ID token is not for this service (audience `{expected}` required)")]
    Audience {
        /// The audience the configuration requires.
        expected: String,
    },
    /// `exp` is past (beyond the clock skew).
    #[error("the ID token has expired")]
    Expired,
    /// `nbf` or `iat` is in the future (beyond the clock skew).
    #[error("the ID token is not valid yet")]
    NotYetValid,
    /// A required claim is missing or has the wrong shape.
    #[error("the ID token's claims are invalid: {0}")]
    Claim(&'static str),
    /// The JWT's `typ` header is not the one this kind of token must carry.
    #[error("the token's type must be `{0}`")]
    Type(&'static str),
    /// The IdP's keys could not be fetched and none are cached.
    #[error("the identity provider `{0}` is unavailable and its keys are not cached")]
    IdpUnavailable(String),
}

/// A value from the token, fit for a one-line message.
pub(crate) fn shown(value: &str) -> String {
    let mut out: String = value
        .chars()
        .filter(|c| !c.is_control())
        .take(100)
        .collect();
    if value.chars().count() > 100 {
        out.push('…');
    }
    out
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<serde_json::Value>,
    #[serde(default)]
    typ: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Aud {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct Claims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<Aud>,
    exp: Option<i64>,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    iat: Option<i64>,
    #[serde(flatten)]
    rest: serde_json::Map<String, serde_json::Value>,
}

/// A token split and decoded, not yet verified.
struct Parts<'t> {
    header: Header,
    claims: Claims,
    signing_input: &'t str,
    signature: Vec<u8>,
}

fn decode_json<T: serde::de::DeserializeOwned>(
    part: &str,
    what: &'static str,
) -> Result<T, IdTokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| IdTokenError::Malformed("a part is not base64url"))?;
    serde_json::from_slice(&bytes).map_err(|_| IdTokenError::Malformed(what))
}

fn split(token: &str) -> Result<Parts<'_>, IdTokenError> {
    if token.len() > MAX_ID_TOKEN_BYTES {
        return Err(IdTokenError::Oversized {
            max: MAX_ID_TOKEN_BYTES,
        });
    }
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(IdTokenError::Malformed("not three dot-separated parts"));
    };
    let header: Header = decode_json(h, "the header is not a JSON object with `alg`")?;
    let claims: Claims = decode_json(c, "the claims are not a JSON object")?;
    let signature = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| IdTokenError::Malformed("the signature is not base64url"))?;
    Ok(Parts {
        header,
        claims,
        signing_input: &token[..h.len() + 1 + c.len()],
        signature,
    })
}

/// The `iss` of a token, read without verifying anything: to pick the IdP
/// whose keys will verify it.
pub fn unverified_issuer(token: &str) -> Result<String, IdTokenError> {
    split(token)?
        .claims
        .iss
        .ok_or(IdTokenError::Claim("`iss` is missing"))
}

fn name(value: &serde_json::Value, what: &'static str) -> Result<String, IdTokenError> {
    match value.as_str() {
        Some(s) if !s.is_empty() && s.len() <= MAX_NAME_BYTES => Ok(s.to_owned()),
        _ => Err(IdTokenError::Claim(what)),
    }
}

fn groups(claims: &Claims, claim: &str) -> Result<Vec<String>, IdTokenError> {
    const BAD: &str = "the groups claim is not a list of names";
    match claims.rest.get(claim) {
        None | Some(serde_json::Value::Null) => Ok(Vec::new()),
        Some(serde_json::Value::Array(items)) if items.len() <= MAX_GROUPS => {
            items.iter().map(|g| name(g, BAD)).collect()
        }
        Some(_) => Err(IdTokenError::Claim(BAD)),
    }
}

fn may_act(claims: &Claims) -> Result<Option<String>, IdTokenError> {
    const BAD: &str = "`may_act` is not an object with a `sub`";
    match claims.rest.get("may_act") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Object(o)) => match o.get("sub") {
            Some(sub) => name(sub, BAD).map(Some),
            None => Err(IdTokenError::Claim(BAD)),
        },
        Some(_) => Err(IdTokenError::Claim(BAD)),
    }
}

fn time(secs: i64) -> Result<DateTime<Utc>, IdTokenError> {
    DateTime::from_timestamp(secs, 0).ok_or(IdTokenError::Claim("a time claim is out of range"))
}

/// Validates an ID token from the IdP `config` describes, with its `keys`,
/// at `now`. Checks, in order: size and shape; `alg` among the allowed ones;
/// `iss` equal to the IdP's issuer; the key named by `kid`; the signature;
/// `aud`; `exp`, `nbf` and `iat` with the configured skew; `sub`, the groups
/// claim and `may_act`.
pub fn validate_id_token(
    token: &str,
    config: &IdpConfig,
    keys: &IdpKeys,
    now: DateTime<Utc>,
) -> Result<PersonIdentity, IdTokenError> {
    validate_jwt(token, config, keys, now, &Expect::id_token(config)).map(|(p, _)| p)
}

/// What a kind of IdP-signed JWT must carry beyond the common checks.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    /// The audience `aud` must contain.
    pub audience: &'a str,
    /// The `typ` header it must have, if any.
    pub typ: Option<&'static str>,
}

impl<'a> Expect<'a> {
    /// An ID token (or JWT access token) for Tessera: the IdP's configured audience.
    pub fn id_token(config: &'a IdpConfig) -> Self {
        Self {
            audience: &config.audience,
            typ: None,
        }
    }
}

/// The claims of a validated JWT that are not read into the person.
pub type OtherClaims = serde_json::Map<String, serde_json::Value>;

/// Validates any JWT a trusted IdP signs for Tessera (ID token, JWT access
/// token, identity assertion): the checks of [`validate_id_token`], with
/// the audience and `typ` of `expect`. Returns the person and the claims
/// not read into it.
pub fn validate_jwt(
    token: &str,
    config: &IdpConfig,
    keys: &IdpKeys,
    now: DateTime<Utc>,
    expect: &Expect<'_>,
) -> Result<(PersonIdentity, OtherClaims), IdTokenError> {
    let parts = split(token)?;
    let alg = SigningAlgorithm::from_jose(&parts.header.alg)
        .filter(|a| config.algorithms.contains(a))
        .ok_or_else(|| IdTokenError::Algorithm(shown(&parts.header.alg)))?;
    if parts.header.crit.is_some() {
        return Err(IdTokenError::Malformed(
            "critical header extensions are not supported",
        ));
    }
    // RFC 8725 §3.11: explicit types keep one kind of JWT from passing for
    // another (compared case-insensitively, `application/` optional).
    let given = parts.header.typ.as_deref().unwrap_or("");
    let given = given.strip_prefix("application/").unwrap_or(given);
    match expect.typ {
        Some(typ) if !given.eq_ignore_ascii_case(typ) => return Err(IdTokenError::Type(typ)),
        None if given.eq_ignore_ascii_case(ID_JAG_TYP) => {
            return Err(IdTokenError::Malformed(
                "an identity assertion (ID-JAG) is not an ID token",
            ))
        }
        _ => {}
    }
    let claims = &parts.claims;
    let issuer = claims
        .iss
        .as_deref()
        .ok_or(IdTokenError::Claim("`iss` is missing"))?;
    if issuer != config.issuer {
        return Err(IdTokenError::UnknownIssuer(shown(issuer)));
    }
    let kid = parts.header.kid.as_deref();
    let key = keys.find(kid, alg).ok_or_else(|| {
        IdTokenError::UnknownKey(
            kid.map_or_else(|| "no `kid`".to_owned(), |k| format!("kid `{}`", shown(k))),
        )
    })?;
    if !key.verifies(alg, parts.signing_input.as_bytes(), &parts.signature) {
        return Err(IdTokenError::Signature);
    }
    let for_us = match &claims.aud {
        Some(Aud::One(a)) => a == expect.audience,
        Some(Aud::Many(all)) => all.iter().any(|a| a == expect.audience),
        None => false,
    };
    if !for_us {
        return Err(IdTokenError::Audience {
            expected: expect.audience.to_owned(),
        });
    }
    let skew = Duration::seconds(i64::from(config.clock_skew_secs));
    let expires_at = time(claims.exp.ok_or(IdTokenError::Claim("`exp` is missing"))?)?;
    // Past the end of time plus the skew is never expired (and never overflows).
    if expires_at
        .checked_add_signed(skew)
        .is_some_and(|end| now > end)
    {
        return Err(IdTokenError::Expired);
    }
    for not_before in [claims.nbf, claims.iat].into_iter().flatten() {
        if time(not_before)? > now + skew {
            return Err(IdTokenError::NotYetValid);
        }
    }
    let subject = match claims.sub.as_deref() {
        Some(sub) if !sub.is_empty() && sub.len() <= MAX_NAME_BYTES => sub.to_owned(),
        _ => return Err(IdTokenError::Claim("`sub` is missing, empty or too long")),
    };
    let person = PersonIdentity {
        issuer: issuer.to_owned(),
        subject,
        groups: groups(claims, &config.groups_claim)?,
        may_act: may_act(claims)?,
        expires_at,
    };
    let mut rest = parts.claims.rest;
    rest.remove(&config.groups_claim);
    rest.remove("may_act");
    Ok((person, rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer as _, SigningKey};

    fn b64json(v: &serde_json::Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap_or_default())
    }

    fn setup() -> (SigningKey, IdpKeys, IdpConfig) {
        let key = SigningKey::from_bytes(&[9; 32]);
        let x = URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes());
        let jwks = serde_json::json!({ "keys": [
            { "kty": "OKP", "crv": "Ed25519", "x": x, "kid": "k1", "alg": "EdDSA" },
            { "kty": "oct", "k": "c2VjcmV0", "kid": "hmac" },
        ]});
        let keys = IdpKeys::from_jwks_json(&jwks.to_string()).unwrap();
        let config: IdpConfig =
            toml::from_str("issuer = \"https://idp.example\"\naudience = \"tessera\"").unwrap();
        (key, keys, config)
    }

    fn token(key: &SigningKey, alg: &str, claims: &serde_json::Value) -> String {
        let input = format!(
            "{}.{}",
            b64json(&serde_json::json!({ "alg": alg, "kid": "k1" })),
            b64json(claims)
        );
        let sig = key.sign(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
    }

    fn claims() -> serde_json::Value {
        serde_json::json!({
            "iss": "https://idp.example", "sub": "alice", "aud": ["tessera", "other"],
            "exp": 2_000_000_000, "iat": 1_999_999_000, "groups": ["staff"],
        })
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    #[test]
    fn a_valid_token_yields_the_person() {
        let (key, keys, config) = setup();
        assert_eq!(keys.keys().len(), 1, "the symmetric key is skipped");
        let person = validate_id_token(
            &token(&key, "EdDSA", &claims()),
            &config,
            &keys,
            at(1_999_999_500),
        )
        .unwrap();
        assert_eq!(
            (person.subject.as_str(), person.groups),
            ("alice", vec!["staff".to_owned()])
        );
        assert_eq!(person.expires_at, at(2_000_000_000));
    }

    #[test]
    fn time_audience_and_claims_are_checked() {
        let (key, keys, config) = setup();
        let check = |c: &serde_json::Value, now| {
            validate_id_token(&token(&key, "EdDSA", c), &config, &keys, at(now))
        };
        assert_eq!(check(&claims(), 2_000_000_061), Err(IdTokenError::Expired));
        assert!(
            check(&claims(), 2_000_000_060).is_ok(),
            "within the default skew"
        );
        assert_eq!(
            check(&claims(), 1_999_998_900),
            Err(IdTokenError::NotYetValid)
        );
        let mut c = claims();
        c["aud"] = serde_json::json!("other");
        assert!(matches!(
            check(&c, 1_999_999_500),
            Err(IdTokenError::Audience { .. })
        ));
        let mut c = claims();
        c["groups"] = serde_json::json!("staff");
        assert!(matches!(
            check(&c, 1_999_999_500),
            Err(IdTokenError::Claim(_))
        ));
        let mut c = claims();
        c["may_act"] = serde_json::json!({ "sub": "agent://acme/planner" });
        assert_eq!(
            check(&c, 1_999_999_500).unwrap().may_act.as_deref(),
            Some("agent://acme/planner")
        );
        let mut c = claims();
        c["sub"] = serde_json::json!("");
        assert!(matches!(
            check(&c, 1_999_999_500),
            Err(IdTokenError::Claim(_))
        ));
    }

    #[test]
    fn hmac_and_none_are_refused_before_any_key_is_used() {
        let (key, keys, config) = setup();
        for alg in ["HS256", "none", "ES512"] {
            let t = token(&key, alg, &claims());
            assert_eq!(
                validate_id_token(&t, &config, &keys, at(1_999_999_500)),
                Err(IdTokenError::Algorithm(alg.into()))
            );
        }
    }

    #[test]
    fn an_assertion_type_is_required_for_assertions_and_refused_for_id_tokens() {
        let (key, keys, config) = setup();
        let typed = |typ: &str| {
            let input = format!(
                "{}.{}",
                b64json(&serde_json::json!({ "alg": "EdDSA", "kid": "k1", "typ": typ })),
                b64json(&claims())
            );
            let sig = key.sign(input.as_bytes());
            format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
        };
        let now = at(1_999_999_500);
        let jag = Expect {
            audience: "tessera",
            typ: Some(ID_JAG_TYP),
        };
        assert!(validate_jwt(&typed("oauth-id-jag+jwt"), &config, &keys, now, &jag).is_ok());
        assert!(validate_jwt(
            &typed("application/OAUTH-ID-JAG+JWT"),
            &config,
            &keys,
            now,
            &jag
        )
        .is_ok());
        assert_eq!(
            validate_jwt(&typed("JWT"), &config, &keys, now, &jag).map(|_| ()),
            Err(IdTokenError::Type(ID_JAG_TYP))
        );
        assert!(matches!(
            validate_id_token(&typed("oauth-id-jag+jwt"), &config, &keys, now),
            Err(IdTokenError::Malformed(_))
        ));
        assert!(validate_id_token(&typed("JWT"), &config, &keys, now).is_ok());
    }

    #[test]
    fn messages_are_one_line_and_short() {
        let shown = shown(&format!("evil\nissuer{}", "x".repeat(500)));
        let msg = IdTokenError::UnknownIssuer(shown).to_string();
        assert!(!msg.contains('\n') && msg.len() < 200, "{msg}");
    }
}
