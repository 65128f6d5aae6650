//! Root keys: the issuer's signing key and the verifier's key set.

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use biscuit_auth::{error, KeyPair, PublicKey, RootKeyProvider};
use serde::{Deserialize, Serialize};

use super::types::parse_public_key;

/// Why a key or key set could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// A JWKS document that is not valid JSON or lacks `keys`.
    #[error("invalid JWKS document: {0}")]
    Jwks(String),
    /// A JWK that is not an Ed25519 signing key.
    #[error("unsupported key {kid}: {reason}")]
    Unsupported {
        /// The key id of the offending entry.
        kid: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Two keys with the same id.
    #[error("key id {0} appears twice")]
    DuplicateId(u32),
    /// A key written in an unreadable way.
    #[error("invalid key: {0}")]
    Invalid(String),
}

/// DER prefix of an Ed25519 private key in PKCS#8 v1 (RFC 8410 §7): the
/// 32-byte seed follows.
const ED25519_PKCS8_V1_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// An Ed25519 private key as PEM, PKCS#8 v1 (`BEGIN PRIVATE KEY`): the plain
/// form every TLS and JOSE library reads (OpenSSL, Python `cryptography`,
/// Go, Java). The caller should write it to a file readable by its owner only.
pub fn ed25519_private_key_pem(kp: &KeyPair) -> Result<String, KeyError> {
    if kp.algorithm() != biscuit_auth::format::schema::public_key::Algorithm::Ed25519 {
        return Err(KeyError::Invalid("only Ed25519 keys are written".into()));
    }
    let seed = kp.private().to_bytes();
    let mut der = Vec::with_capacity(48);
    der.extend_from_slice(&ED25519_PKCS8_V1_PREFIX);
    der.extend_from_slice(&seed);
    let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
    der.iter_mut().for_each(|b| *b = 0);
    Ok(format!(
        "-----BEGIN PRIVATE KEY-----\n{b64}\n-----END PRIVATE KEY-----\n"
    ))
}

/// The issuer's signing key with its numeric id (`root_key_id` in tokens).
pub struct RootKeyPair {
    /// The id written into every token signed by this key.
    pub id: u32,
    /// The key pair.
    pub keypair: KeyPair,
}

impl std::fmt::Debug for RootKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the private half.
        f.debug_struct("RootKeyPair")
            .field("id", &self.id)
            .field("public", &self.keypair.public().to_string())
            .finish()
    }
}

impl RootKeyPair {
    /// Pairs a key with its id.
    pub fn new(id: u32, keypair: KeyPair) -> Self {
        Self { id, keypair }
    }
}

/// Root public keys by id. Retired keys stay in the set until their last
/// token has expired; a token naming an id that is not here is refused, with
/// no fallback to another key, and each id fixes its key's algorithm.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeySet {
    keys: BTreeMap<u32, PublicKey>,
}

impl KeySet {
    /// An empty set (refuses every token).
    pub fn new() -> Self {
        Self::default()
    }

    /// A set holding one key under `id`.
    pub fn single(id: u32, key: PublicKey) -> Self {
        let mut s = Self::new();
        s.keys.insert(id, key);
        s
    }

    /// Adds a key; an id already present is an error.
    pub fn insert(&mut self, id: u32, key: PublicKey) -> Result<(), KeyError> {
        if self.keys.contains_key(&id) {
            return Err(KeyError::DuplicateId(id));
        }
        self.keys.insert(id, key);
        Ok(())
    }

    /// The key for `id`, if any.
    pub fn get(&self, id: u32) -> Option<&PublicKey> {
        self.keys.get(&id)
    }

    /// All `(id, key)` pairs in id order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &PublicKey)> {
        self.keys.iter().map(|(id, k)| (*id, k))
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Reads a key written `ed25519/<hex>` (id 0) or `<id>:ed25519/<hex>`.
    pub fn parse_inline(s: &str) -> Result<Self, KeyError> {
        let (id, key) = match s.split_once(':') {
            Some((id, key)) => (
                id.parse::<u32>()
                    .map_err(|_| KeyError::Invalid(format!("`{id}` is not a key id")))?,
                key,
            ),
            None => (0, s),
        };
        let key = parse_public_key(key).map_err(|e| KeyError::Invalid(e.to_string()))?;
        Ok(Self::single(id, key))
    }

    /// Reads a JWKS document (RFC 7517) of OKP/Ed25519 keys whose `kid` is the
    /// numeric root key id. Any other kind of key is an error, not skipped.
    pub fn from_jwks_json(json: &str) -> Result<Self, KeyError> {
        let doc: Jwks = serde_json::from_str(json).map_err(|e| KeyError::Jwks(e.to_string()))?;
        let mut set = Self::new();
        for jwk in doc.keys {
            let unsupported = |reason: &str| KeyError::Unsupported {
                kid: jwk.kid.clone(),
                reason: reason.to_owned(),
            };
            let id: u32 = jwk
                .kid
                .parse()
                .map_err(|_| unsupported("kid must be a numeric root key id"))?;
            if jwk.kty != "OKP" || jwk.crv.as_deref() != Some("Ed25519") {
                return Err(unsupported("only kty OKP with crv Ed25519 is accepted"));
            }
            if jwk.alg.as_deref().is_some_and(|a| a != "EdDSA") {
                return Err(unsupported("alg must be EdDSA"));
            }
            if jwk.key_use.as_deref().is_some_and(|u| u != "sig") {
                return Err(unsupported("use must be sig"));
            }
            let x = jwk
                .x
                .as_deref()
                .ok_or_else(|| unsupported("missing x"))
                .and_then(|x| {
                    URL_SAFE_NO_PAD
                        .decode(x)
                        .map_err(|_| unsupported("x is not base64url"))
                })?;
            if x.len() != 32 {
                return Err(unsupported("x must be 32 bytes"));
            }
            let key = PublicKey::from_bytes(&x, biscuit_auth::Algorithm::Ed25519)
                .map_err(|e| unsupported(&e.to_string()))?;
            set.insert(id, key)?;
        }
        Ok(set)
    }

    /// Writes the set as a JWKS document. Keys other than Ed25519 are left out.
    pub fn to_jwks(&self) -> Jwks {
        Jwks {
            keys: self
                .keys
                .iter()
                .filter(|(_, k)| {
                    k.algorithm() == biscuit_auth::format::schema::public_key::Algorithm::Ed25519
                })
                .map(|(id, k)| Jwk::ed25519(*id, k))
                .collect(),
        }
    }
}

impl RootKeyProvider for &KeySet {
    fn choose(&self, key_id: Option<u32>) -> Result<PublicKey, error::Format> {
        key_id
            .and_then(|id| self.keys.get(&id))
            .copied()
            .ok_or(error::Format::UnknownPublicKey)
    }
}

/// A JWKS document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    /// The keys.
    pub keys: Vec<Jwk>,
}

/// One JSON Web Key (only the members Tessera reads or writes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// Key type: `OKP`.
    pub kty: String,
    /// Curve: `Ed25519`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// Public key bytes, base64url without padding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// Key id: the root key id in decimal.
    #[serde(default)]
    pub kid: String,
    /// Algorithm: `EdDSA`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// Use: `sig`.
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub key_use: Option<String>,
}

impl Jwk {
    /// The JWK of an Ed25519 root key.
    pub fn ed25519(id: u32, key: &PublicKey) -> Self {
        Self {
            kty: "OKP".into(),
            crv: Some("Ed25519".into()),
            x: Some(URL_SAFE_NO_PAD.encode(key.to_bytes())),
            kid: id.to_string(),
            alg: Some("EdDSA".into()),
            key_use: Some("sig".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwks_round_trips_and_rejects_other_kinds() {
        let a = KeyPair::new().public();
        let b = KeyPair::new().public();
        let mut set = KeySet::single(0, a);
        set.insert(7, b).unwrap();
        let json = serde_json::to_string(&set.to_jwks()).unwrap();
        assert_eq!(KeySet::from_jwks_json(&json).unwrap(), set);

        let rsa = r#"{"keys":[{"kty":"RSA","kid":"1","n":"x","e":"AQAB"}]}"#;
        assert!(matches!(
            KeySet::from_jwks_json(rsa),
            Err(KeyError::Unsupported { .. })
        ));
        let named = json.replace("\"kid\":\"7\"", "\"kid\":\"seven\"");
        assert!(KeySet::from_jwks_json(&named).is_err());
        let dup = json.replace("\"kid\":\"7\"", "\"kid\":\"0\"");
        assert_eq!(KeySet::from_jwks_json(&dup), Err(KeyError::DuplicateId(0)));
    }

    #[test]
    fn private_keys_are_written_as_pkcs8_v1_and_read_back() {
        let kp = KeyPair::new();
        let pem = ed25519_private_key_pem(&kp).unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEI"));
        let back = KeyPair::from_private_key_pem(&pem).unwrap();
        assert_eq!(back.public(), kp.public());
        let p256 = KeyPair::new_with_algorithm(biscuit_auth::Algorithm::Secp256r1);
        assert!(ed25519_private_key_pem(&p256).is_err());
    }

    #[test]
    fn unknown_or_missing_key_id_never_falls_back() {
        let set = KeySet::single(3, KeyPair::new().public());
        assert!((&set).choose(Some(3)).is_ok());
        assert_eq!((&set).choose(Some(4)), Err(error::Format::UnknownPublicKey));
        assert_eq!((&set).choose(None), Err(error::Format::UnknownPublicKey));
    }

    #[test]
    fn inline_keys_take_an_optional_id() {
        let k = KeyPair::new().public();
        assert_eq!(
            KeySet::parse_inline(&k.to_string()).unwrap(),
            KeySet::single(0, k)
        );
        assert_eq!(
            KeySet::parse_inline(&format!("5:{k}")).unwrap(),
            KeySet::single(5, k)
        );
        assert!(KeySet::parse_inline("x:ed25519/00").is_err());
    }
}
