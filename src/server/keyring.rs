//! The issuer's root key ring: numeric ids, one active signer, retired keys
//! published until a date. Stored as `ring.json` plus one PEM file per key.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use biscuit_auth::KeyPair;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::store::files;
use crate::token::{KeySet, RootKeyPair};

/// Why the key ring could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyRingError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The ring is inconsistent (the message says how).
    #[error("key ring {0}")]
    Invalid(String),
}

/// A key's place in the ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyStatus {
    /// Signs new tokens.
    Active,
    /// Still verifies (and is published) until `publish_until`.
    Retired,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    id: u32,
    file: String,
    status: KeyStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    publish_until: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RingFile {
    keys: Vec<Entry>,
}

/// The loaded ring.
pub struct KeyRing {
    active: RootKeyPair,
    published: Vec<(u32, biscuit_auth::PublicKey, Option<DateTime<Utc>>)>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("active", &self.active.id)
            .field("published", &self.published.len())
            .finish()
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyRingError + '_ {
    move |source| KeyRingError::Io {
        path: path.to_owned(),
        source,
    }
}

fn write_private(path: &Path, kp: &KeyPair) -> Result<(), KeyRingError> {
    let pem = crate::token::ed25519_private_key_pem(kp)
        .map_err(|e| KeyRingError::Invalid(e.to_string()))?;
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(io(path))?;
    f.write_all(pem.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(io(path))
}

fn write_ring(dir: &Path, ring: &RingFile) -> Result<(), KeyRingError> {
    let path = dir.join("ring.json");
    let tmp = dir.join("ring.json.tmp");
    let text =
        serde_json::to_string_pretty(ring).map_err(|e| KeyRingError::Invalid(e.to_string()))?;
    let mut f = fs::File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(io(&tmp))?;
    fs::rename(&tmp, &path).map_err(io(&path))
}

fn read_ring(dir: &Path) -> Result<Option<RingFile>, KeyRingError> {
    let path = dir.join("ring.json");
    match fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| KeyRingError::Invalid(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(&path)(e)),
    }
}

/// Creates `dir` (and missing parents, such as the data directory) with
/// mode 0700, or tightens an existing one that other users can access; see
/// [`files`](crate::store::files) for the policy.
fn private_dir(dir: &Path) -> Result<(), KeyRingError> {
    files::report(dir, files::private_dir(dir).map_err(io(dir))?);
    Ok(())
}

impl KeyRing {
    /// Loads the ring in `dir`; when there is none, creates one with a fresh
    /// key (id 0). Returns the ring and whether a key was generated.
    ///
    /// `dir` (and any parent it creates) is made mode 0700, or tightened to
    /// it if other users can access it.
    pub fn load_or_create(dir: &Path) -> Result<(Self, bool), KeyRingError> {
        private_dir(dir)?;
        if read_ring(dir)?.is_none() {
            let kp = KeyPair::new();
            write_private(&dir.join("root-0.pem"), &kp)?;
            write_ring(
                dir,
                &RingFile {
                    keys: vec![Entry {
                        id: 0,
                        file: "root-0.pem".into(),
                        status: KeyStatus::Active,
                        publish_until: None,
                    }],
                },
            )?;
            return Ok((Self::load(dir)?, true));
        }
        Ok((Self::load(dir)?, false))
    }

    /// Loads the ring in `dir`.
    pub fn load(dir: &Path) -> Result<Self, KeyRingError> {
        let ring = read_ring(dir)?
            .ok_or_else(|| KeyRingError::Invalid(format!("{}: no ring.json", dir.display())))?;
        let mut active = None;
        let mut published = Vec::new();
        for e in &ring.keys {
            if e.file.contains('/') || e.file.contains("..") {
                return Err(KeyRingError::Invalid(format!(
                    "key {}: bad file name",
                    e.id
                )));
            }
            let path = dir.join(&e.file);
            let pem = fs::read_to_string(&path).map_err(io(&path))?;
            let kp = KeyPair::from_private_key_pem(&pem)
                .map_err(|err| KeyRingError::Invalid(format!("{}: {err}", path.display())))?;
            if published.iter().any(|(id, _, _)| *id == e.id) {
                return Err(KeyRingError::Invalid(format!(
                    "key id {} appears twice",
                    e.id
                )));
            }
            published.push((e.id, kp.public(), e.publish_until));
            if e.status == KeyStatus::Active {
                if active.is_some() {
                    return Err(KeyRingError::Invalid("has more than one active key".into()));
                }
                active = Some(RootKeyPair::new(e.id, kp));
            }
        }
        let active = active.ok_or_else(|| KeyRingError::Invalid("has no active key".into()))?;
        Ok(Self { active, published })
    }

    /// Adds a new active key; the previous active key is retired and stays
    /// published until `retire_until`. Returns the new key id.
    pub fn rotate(dir: &Path, retire_until: DateTime<Utc>) -> Result<u32, KeyRingError> {
        let mut ring = read_ring(dir)?
            .ok_or_else(|| KeyRingError::Invalid(format!("{}: no ring.json", dir.display())))?;
        let id = ring
            .keys
            .iter()
            .map(|e| e.id)
            .max()
            .map_or(Some(0), |m| m.checked_add(1))
            .ok_or_else(|| KeyRingError::Invalid("key ids exhausted".into()))?;
        let file = format!("root-{id}.pem");
        write_private(&dir.join(&file), &KeyPair::new())?;
        for e in &mut ring.keys {
            if e.status == KeyStatus::Active {
                e.status = KeyStatus::Retired;
                e.publish_until = Some(retire_until);
            }
        }
        ring.keys.push(Entry {
            id,
            file,
            status: KeyStatus::Active,
            publish_until: None,
        });
        write_ring(dir, &ring)?;
        Ok(id)
    }

    /// The signing key.
    pub fn active(&self) -> &RootKeyPair {
        &self.active
    }

    /// Keys that verify (and are published) at `now`: the active key and
    /// retired keys whose `publish_until` has not passed.
    pub fn key_set(&self, now: DateTime<Utc>) -> KeySet {
        let mut set = KeySet::new();
        for (id, key, until) in &self.published {
            if until.is_none_or(|u| u > now) {
                // Ids are unique (checked on load).
                let _ = set.insert(*id, *key);
            }
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_ring_has_one_active_key_and_rotation_keeps_the_old_one_published() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        let (ring, created) = KeyRing::load_or_create(&keys).unwrap();
        assert!(created);
        assert_eq!(ring.active().id, 0);
        let first = ring.active().keypair.public();
        let (again, created) = KeyRing::load_or_create(&keys).unwrap();
        assert!(!created);
        assert_eq!(again.active().keypair.public(), first);

        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let until = now + chrono::Duration::hours(1);
        assert_eq!(KeyRing::rotate(&keys, until).unwrap(), 1);
        let rotated = KeyRing::load(&keys).unwrap();
        assert_eq!(rotated.active().id, 1);
        let set = rotated.key_set(now);
        assert_eq!(set.get(0), Some(&first));
        assert!(set.get(1).is_some());
        let later = rotated.key_set(until + chrono::Duration::seconds(1));
        assert!(later.get(0).is_none() && later.get(1).is_some());
    }

    #[cfg(unix)]
    #[test]
    fn generated_keys_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        KeyRing::load_or_create(&keys).unwrap();
        let mode = fs::metadata(keys.join("root-0.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
