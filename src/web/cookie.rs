//! Signed, expiring cookie values (HMAC-SHA256) and the `Set-Cookie`
//! headers of the web pages.
//!
//! A value is `base64url(JSON {"v": <value>, "exp": <unix seconds>})`, a
//! dot, and the HMAC of the cookie's name and that text: a value signed for
//! one cookie (the login cookie) is refused as another (the session), an
//! altered or expired one is refused, and none is larger than
//! [`MAX_COOKIE_BYTES`]. Values are signed, not encrypted: put nothing in a
//! cookie that its holder may not read.

use std::path::Path;

use axum::http::{header, HeaderMap, HeaderValue};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// Largest cookie value written or read, bytes (browsers keep 4096 bytes
/// per cookie, name and attributes included).
pub const MAX_COOKIE_BYTES: usize = 3800;

/// Why a cookie value was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CookieError {
    /// Not of the form `payload.mac`, or the payload is not the expected JSON.
    #[error("the cookie is malformed")]
    Malformed,
    /// The MAC does not match: altered, or signed with another key or for
    /// another cookie.
    #[error("the cookie's signature does not verify")]
    Signature,
    /// Its time is over.
    #[error("the cookie has expired")]
    Expired,
    /// Larger than [`MAX_COOKIE_BYTES`].
    #[error("the cookie is larger than {MAX_COOKIE_BYTES} bytes")]
    TooLarge,
}

/// Why the cookie key could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum CookieKeyError {
    /// The file could not be read or written.
    #[error("cookie key {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file holds neither 32 bytes nor 64 hexadecimal digits.
    #[error("cookie key {0}: must hold 32 random bytes as 64 hexadecimal digits")]
    Format(String),
}

/// The key that signs cookies and CSRF tokens (32 random bytes). Several
/// issuers behind one name must share it.
#[derive(Clone)]
pub struct CookieKey([u8; 32]);

impl std::fmt::Debug for CookieKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CookieKey(..)")
    }
}

#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    v: T,
    exp: i64,
}

impl CookieKey {
    /// A key from its bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A fresh random key.
    pub fn random() -> Self {
        Self(rand::random())
    }

    /// Reads the key at `path`, or creates it there (mode 0600, 64 hex
    /// digits) when the file does not exist. Also returns whether it was created.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), CookieKeyError> {
        let io = |source| CookieKeyError::Io {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read(path) {
            Ok(bytes) => Self::parse(&bytes)
                .map(|k| (k, false))
                .ok_or_else(|| CookieKeyError::Format(path.display().to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(io)?;
                }
                let key = Self::random();
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    opts.mode(0o600);
                }
                let mut file = opts.open(path).map_err(io)?;
                std::io::Write::write_all(
                    &mut file,
                    format!("{}\n", hex::encode(key.0)).as_bytes(),
                )
                .map_err(io)?;
                Ok((key, true))
            }
            Err(e) => Err(io(e)),
        }
    }

    fn parse(bytes: &[u8]) -> Option<Self> {
        if let Ok(raw) = <[u8; 32]>::try_from(bytes) {
            return Some(Self(raw));
        }
        let text = std::str::from_utf8(bytes).ok()?.trim();
        let decoded = hex::decode(text).ok()?;
        <[u8; 32]>::try_from(decoded.as_slice()).ok().map(Self)
    }

    /// HMAC-SHA256 of `parts` (each length-prefixed) under this key and a
    /// `label` that keeps uses apart (cookies, CSRF tokens, ...).
    /// (`None` cannot happen: HMAC takes keys of any length.)
    pub(crate) fn mac(&self, label: &str, parts: &[&[u8]]) -> Option<Hmac<Sha256>> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).ok()?;
        for part in std::iter::once(label.as_bytes()).chain(parts.iter().copied()) {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        Some(mac)
    }

    /// Signs `value` as the value of the cookie `name`, valid until `expires`.
    pub fn seal<T: Serialize>(
        &self,
        name: &str,
        value: &T,
        expires: DateTime<Utc>,
    ) -> Result<String, CookieError> {
        let json = serde_json::to_vec(&Envelope {
            v: value,
            exp: expires.timestamp(),
        })
        .map_err(|_| CookieError::Malformed)?;
        let payload = URL_SAFE_NO_PAD.encode(json);
        let tag = self
            .mac("cookie", &[name.as_bytes(), payload.as_bytes()])
            .ok_or(CookieError::Malformed)?
            .finalize()
            .into_bytes();
        let sealed = format!("{payload}.{}", URL_SAFE_NO_PAD.encode(tag));
        if sealed.len() > MAX_COOKIE_BYTES {
            return Err(CookieError::TooLarge);
        }
        Ok(sealed)
    }

    /// The value of the cookie `name` if `text` is one this key signed for
    /// it and it has not expired at `now`.
    pub fn open<T: DeserializeOwned>(
        &self,
        name: &str,
        text: &str,
        now: DateTime<Utc>,
    ) -> Result<T, CookieError> {
        if text.len() > MAX_COOKIE_BYTES {
            return Err(CookieError::TooLarge);
        }
        let (payload, tag) = text.split_once('.').ok_or(CookieError::Malformed)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| CookieError::Malformed)?;
        self.mac("cookie", &[name.as_bytes(), payload.as_bytes()])
            .ok_or(CookieError::Signature)?
            .verify_slice(&tag)
            .map_err(|_| CookieError::Signature)?;
        let json = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| CookieError::Malformed)?;
        let envelope: Envelope<T> =
            serde_json::from_slice(&json).map_err(|_| CookieError::Malformed)?;
        if envelope.exp <= now.timestamp() {
            return Err(CookieError::Expired);
        }
        Ok(envelope.v)
    }
}

/// The value of cookie `name` in the request's `Cookie` headers. A name
/// sent more than once (a cookie planted by a sibling host next to ours)
/// counts as absent: fail closed.
pub fn read<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    let mut found = None;
    for value in headers.get_all(header::COOKIE) {
        let Ok(text) = value.to_str() else { continue };
        for pair in text.split(';') {
            let Some((k, v)) = pair.trim().split_once('=') else {
                continue;
            };
            if k == name {
                if found.is_some() {
                    return None;
                }
                found = Some(v);
            }
        }
    }
    found
}

/// The attributes of the web pages' cookies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CookiePolicy {
    /// `Secure` and the `__Host-` prefix: the issuer URL is https.
    pub secure: bool,
}

impl CookiePolicy {
    /// The full name of cookie `base` (`__Host-<base>` when secure).
    pub fn name(&self, base: &str) -> String {
        if self.secure {
            format!("__Host-{base}")
        } else {
            base.to_owned()
        }
    }

    /// `Set-Cookie` for `name=value`, kept `max_age_secs`: `Path=/`,
    /// `HttpOnly`, `SameSite=Lax`, and `Secure` when secure.
    pub fn set(&self, name: &str, value: &str, max_age_secs: i64) -> Option<HeaderValue> {
        let secure = if self.secure { "; Secure" } else { "" };
        HeaderValue::from_str(&format!(
            "{name}={value}; Path=/; Max-Age={max_age_secs}; HttpOnly; SameSite=Lax{secure}"
        ))
        .ok()
    }

    /// `Set-Cookie` that removes cookie `name`.
    pub fn clear(&self, name: &str) -> Option<HeaderValue> {
        self.set(name, "", 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn a_sealed_value_opens_only_unaltered_unexpired_and_for_its_own_cookie() {
        let key = CookieKey::random();
        let sealed = key.seal("session", &"alice", t(60)).unwrap();
        assert_eq!(
            key.open::<String>("session", &sealed, t(0)).unwrap(),
            "alice"
        );
        assert_eq!(
            key.open::<String>("session", &sealed, t(60)),
            Err(CookieError::Expired)
        );
        assert_eq!(
            key.open::<String>("login", &sealed, t(0)),
            Err(CookieError::Signature)
        );
        assert_eq!(
            CookieKey::random().open::<String>("session", &sealed, t(0)),
            Err(CookieError::Signature)
        );
        let forged = key.seal("session", &"mallory", t(60)).unwrap();
        let (payload, _) = forged.split_once('.').unwrap();
        let (_, tag) = sealed.split_once('.').unwrap();
        assert_eq!(
            key.open::<String>("session", &format!("{payload}.{tag}"), t(0)),
            Err(CookieError::Signature)
        );
        assert_eq!(
            key.open::<String>("session", "nodot", t(0)),
            Err(CookieError::Malformed)
        );
        let huge = "x".repeat(MAX_COOKIE_BYTES);
        assert_eq!(
            key.seal("session", &huge, t(60)),
            Err(CookieError::TooLarge)
        );
        assert!(key.open::<String>("session", &huge, t(0)).is_err());
        assert_eq!(
            key.open::<String>("session", &format!("{huge}.x"), t(0)),
            Err(CookieError::TooLarge)
        );
    }

    #[test]
    fn the_key_file_is_created_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web/cookie.key");
        let (a, created) = CookieKey::load_or_create(&path).unwrap();
        assert!(created);
        let (b, created) = CookieKey::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(a.0, b.0);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "short").unwrap();
        assert!(CookieKey::load_or_create(&path).is_err());
    }

    #[test]
    fn a_cookie_sent_twice_counts_as_absent() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1; s=2"));
        assert_eq!(read(&h, "s"), Some("2"));
        assert_eq!(read(&h, "t"), None);
        h.append(header::COOKIE, HeaderValue::from_static("s=3"));
        assert_eq!(read(&h, "s"), None);
        let p = CookiePolicy { secure: true };
        assert_eq!(p.name("s"), "__Host-s");
        let v = p.set("__Host-s", "v", 60).unwrap();
        assert_eq!(
            v,
            "__Host-s=v; Path=/; Max-Age=60; HttpOnly; SameSite=Lax; Secure"
        );
    }
}
