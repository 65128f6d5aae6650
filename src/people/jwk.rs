//! Public signing keys of an identity provider (a JWKS document) and
//! signature verification for the algorithms Tessera accepts from IdPs:
//! EdDSA (Ed25519), ES256 (ECDSA P-256, SHA-256) and RS256 (RSASSA-PKCS1-v1_5,
//! SHA-256).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// Most keys kept from one JWKS document.
pub const MAX_KEYS: usize = 32;
/// Largest RSA modulus accepted, in bits (bounds the cost of a verification).
pub const MAX_RSA_BITS: usize = 4096;
/// Smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;

/// A signing algorithm Tessera accepts from an identity provider. `none`,
/// HMAC (`HS256`, ...) and every other name have no variant, so they can
/// never be allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SigningAlgorithm {
    /// Ed25519 (RFC 8037).
    #[serde(rename = "EdDSA")]
    EdDsa,
    /// ECDSA on P-256 with SHA-256.
    #[serde(rename = "ES256")]
    Es256,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    #[serde(rename = "RS256")]
    Rs256,
}

impl SigningAlgorithm {
    /// All of them, the default allow-list.
    pub const ALL: [SigningAlgorithm; 3] = [Self::EdDsa, Self::Es256, Self::Rs256];

    /// The JOSE name (`EdDSA`, `ES256`, `RS256`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EdDsa => "EdDSA",
            Self::Es256 => "ES256",
            Self::Rs256 => "RS256",
        }
    }

    /// The algorithm with this JOSE name, if it is one Tessera knows.
    pub fn from_jose(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == name)
    }
}

/// One public key's material.
#[derive(Clone)]
enum Material {
    Ed25519(ed25519_dalek::VerifyingKey),
    P256(p256::ecdsa::VerifyingKey),
    Rsa(rsa::pkcs1v15::VerifyingKey<rsa::sha2::Sha256>),
}

/// One public signing key of an IdP.
#[derive(Clone)]
pub struct IdpKey {
    /// The key id (`kid`), if the JWK has one.
    pub kid: Option<String>,
    /// The JWK's `alg`, when it names one Tessera knows; a key with another
    /// `alg` is not kept.
    pub alg: Option<SigningAlgorithm>,
    material: Material,
}

impl std::fmt::Debug for IdpKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdpKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm().as_str())
            .finish()
    }
}

impl IdpKey {
    /// The one algorithm this key verifies.
    pub fn algorithm(&self) -> SigningAlgorithm {
        match self.material {
            Material::Ed25519(_) => SigningAlgorithm::EdDsa,
            Material::P256(_) => SigningAlgorithm::Es256,
            Material::Rsa(_) => SigningAlgorithm::Rs256,
        }
    }

    /// Whether `signature` is this key's signature of `input` under `alg`;
    /// false when `alg` is not this key's algorithm.
    pub fn verifies(&self, alg: SigningAlgorithm, input: &[u8], signature: &[u8]) -> bool {
        if alg != self.algorithm() {
            return false;
        }
        match &self.material {
            Material::Ed25519(key) => ed25519_dalek::Signature::from_slice(signature)
                .is_ok_and(|s| key.verify_strict(input, &s).is_ok()),
            Material::P256(key) => {
                use p256::ecdsa::signature::Verifier as _;
                p256::ecdsa::Signature::from_slice(signature)
                    .is_ok_and(|s| key.verify(input, &s).is_ok())
            }
            Material::Rsa(key) => {
                use rsa::signature::Verifier as _;
                rsa::pkcs1v15::Signature::try_from(signature)
                    .is_ok_and(|s| key.verify(input, &s).is_ok())
            }
        }
    }
}

/// The public keys of one IdP.
#[derive(Debug, Clone, Default)]
pub struct IdpKeys {
    keys: Vec<IdpKey>,
}

#[derive(Deserialize)]
struct RawJwks {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default, rename = "use")]
    use_: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
}

fn b64(s: Option<&String>) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s?).ok()
}

fn material(jwk: &RawJwk) -> Option<Material> {
    match (jwk.kty.as_str(), jwk.crv.as_deref()) {
        ("OKP", Some("Ed25519")) => {
            let x: [u8; 32] = b64(jwk.x.as_ref())?.try_into().ok()?;
            ed25519_dalek::VerifyingKey::from_bytes(&x)
                .ok()
                .map(Material::Ed25519)
        }
        ("EC", Some("P-256")) => {
            let x: [u8; 32] = b64(jwk.x.as_ref())?.try_into().ok()?;
            let y: [u8; 32] = b64(jwk.y.as_ref())?.try_into().ok()?;
            let point = p256::EncodedPoint::from_affine_coordinates(&x.into(), &y.into(), false);
            p256::ecdsa::VerifyingKey::from_encoded_point(&point)
                .ok()
                .map(Material::P256)
        }
        ("RSA", _) => {
            let n = rsa::BigUint::from_bytes_be(&b64(jwk.n.as_ref())?);
            let e = rsa::BigUint::from_bytes_be(&b64(jwk.e.as_ref())?);
            if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&n.bits()) {
                return None;
            }
            let key = rsa::RsaPublicKey::new_with_max_size(n, e, MAX_RSA_BITS).ok()?;
            Some(Material::Rsa(rsa::pkcs1v15::VerifyingKey::new(key)))
        }
        _ => None,
    }
}

impl IdpKeys {
    /// Parses a JWKS document. Keys Tessera cannot use (encryption keys,
    /// other key types or curves, an `alg` it does not accept, RSA moduli
    /// outside 2048..=4096 bits, bad material) are skipped; at most
    /// [`MAX_KEYS`] are kept. Not a JSON object with a `keys` array: `Err`.
    pub fn from_jwks_json(text: &str) -> Result<Self, &'static str> {
        let raw: RawJwks =
            serde_json::from_str(text).map_err(|_| "not a JWKS document (a `keys` array)")?;
        let mut keys = Vec::new();
        for value in raw.keys {
            if keys.len() == MAX_KEYS {
                break;
            }
            let Ok(jwk) = serde_json::from_value::<RawJwk>(value) else {
                continue;
            };
            if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
                continue;
            }
            let alg = match jwk.alg.as_deref() {
                None => None,
                Some(name) => match SigningAlgorithm::from_jose(name) {
                    Some(a) => Some(a),
                    None => continue,
                },
            };
            let Some(material) = material(&jwk) else {
                continue;
            };
            let key = IdpKey {
                kid: jwk.kid,
                alg,
                material,
            };
            if alg.is_some_and(|a| a != key.algorithm()) {
                continue;
            }
            keys.push(key);
        }
        Ok(Self { keys })
    }

    /// The keys.
    pub fn keys(&self) -> &[IdpKey] {
        &self.keys
    }

    /// The key a token header names: the one with that `kid`; without a
    /// `kid`, the only key for that algorithm (none when there are several).
    pub fn find(&self, kid: Option<&str>, alg: SigningAlgorithm) -> Option<&IdpKey> {
        match kid {
            Some(kid) => self.keys.iter().find(|k| k.kid.as_deref() == Some(kid)),
            None => {
                let mut candidates = self.keys.iter().filter(|k| k.algorithm() == alg);
                match (candidates.next(), candidates.next()) {
                    (Some(only), None) => Some(only),
                    _ => None,
                }
            }
        }
    }
}
