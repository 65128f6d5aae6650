//! Directories and files that only the issuer's user may read: the data
//! directory, the key ring's directory and the database.
//!
//! The policy (documented in docs/api.md):
//!
//! - a directory the issuer creates is mode 0700, a file 0600, whatever the
//!   umask;
//! - an existing directory or database file that its group or other users
//!   can access is tightened to 0700 / 0600 when the issuer may change its
//!   mode (it owns it); for a directory it may not change, the caller warns
//!   and goes on (the files inside are 0600 all the same), for the database
//!   file it fails ([`open_private_file`]).
//!
//! On other platforms than Unix, modes do not exist: these create the
//! directory or open the file and report [`Privacy::Private`].

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::Path;

/// What [`private_dir`] or [`open_private_file`] found or did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Privacy {
    /// Created now, private.
    Created,
    /// Existed and was already private.
    Private,
    /// Existed with this mode, open to its group or others; now private.
    Tightened(u32),
    /// Exists with this mode, open to its group or others, and its mode
    /// could not be changed (another user owns it).
    LeftOpen(u32),
}

/// Mode bits that give the group or other users any access.
#[cfg(unix)]
const OPEN_BITS: u32 = 0o077;

/// Creates `dir` (and missing parents) with mode 0700, or tightens an
/// existing `dir` that others can access to 0700 when it may.
pub fn private_dir(dir: &Path) -> io::Result<Privacy> {
    match fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a directory", dir.display()),
        )),
        Ok(meta) => tighten(dir, &meta, 0o700),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let mut builder = fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
                builder.mode(0o700);
                builder.create(dir)?;
                // The umask may have taken bits away; never adds any.
                fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
            }
            #[cfg(not(unix))]
            builder.create(dir)?;
            Ok(Privacy::Created)
        }
        Err(e) => Err(e),
    }
}

/// Opens `path` for reading and writing, creating it with mode 0600 if it
/// is missing (never truncating it), and tightens an existing file that
/// others can access to 0600. A file that others can access and whose mode
/// cannot be changed is an error: the caller must not keep data in it.
pub fn open_private_file(path: &Path) -> io::Result<(File, Privacy)> {
    let mut options = OpenOptions::new();
    options.read(true).write(true);
    match options.open(path) {
        Ok(file) => {
            let meta = file.metadata()?;
            match tighten(path, &meta, 0o600)? {
                Privacy::LeftOpen(mode) => Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!(
                        "{} has mode {mode:o}, open to other users, and its mode cannot be \
                         changed by this user: make it 0600 or move it away",
                        path.display()
                    ),
                )),
                privacy => Ok((file, privacy)),
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            options.create_new(true);
            Ok((create_private(&mut options, path)?, Privacy::Created))
        }
        Err(e) => Err(e),
    }
}

/// Says what was done about a path other users could access (the issuer
/// logs it; a store built without the server has no log).
#[allow(unused_variables)] // without the server's log
pub fn report(path: &Path, privacy: Privacy) {
    #[cfg(feature = "server")]
    match privacy {
        Privacy::Tightened(mode) => tracing::warn!(
            "{} had mode {mode:o}, open to other users: changed it to owner-only",
            path.display()
        ),
        Privacy::LeftOpen(mode) => tracing::warn!(
            "{} has mode {mode:o}, open to other users, and this user cannot change it: \
             the files in it are owner-only, but make it 0700",
            path.display()
        ),
        Privacy::Created | Privacy::Private => {}
    }
}

/// Creates the file with `options` and mode 0600.
#[cfg(unix)]
fn create_private(options: &mut OpenOptions, path: &Path) -> io::Result<File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = options.mode(0o600).open(path)?;
    // The umask may have taken bits away; never adds any.
    file.set_permissions(fs::Permissions::from_mode(0o600))?;
    Ok(file)
}

#[cfg(not(unix))]
fn create_private(options: &mut OpenOptions, path: &Path) -> io::Result<File> {
    options.open(path)
}

/// Sets `mode` on `path` if its current mode gives the group or others
/// any access.
#[cfg(unix)]
fn tighten(path: &Path, meta: &fs::Metadata, mode: u32) -> io::Result<Privacy> {
    use std::os::unix::fs::PermissionsExt;
    let current = meta.permissions().mode() & 0o7777;
    if current & OPEN_BITS == 0 {
        return Ok(Privacy::Private);
    }
    match fs::set_permissions(path, fs::Permissions::from_mode(mode)) {
        Ok(()) => Ok(Privacy::Tightened(current)),
        // Only the owner (or root) may change a mode.
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Ok(Privacy::LeftOpen(current)),
        Err(e) => Err(e),
    }
}

#[cfg(not(unix))]
fn tighten(_path: &Path, _meta: &fs::Metadata, _mode: u32) -> io::Result<Privacy> {
    Ok(Privacy::Private)
}

#[cfg(test)]
#[cfg(unix)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_created_directory_and_file_are_private_whatever_the_parents() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a").join("b");
        assert_eq!(private_dir(&nested).unwrap(), Privacy::Created);
        assert_eq!(mode(&nested), 0o700);
        assert_eq!(mode(&dir.path().join("a")), 0o700);
        assert_eq!(private_dir(&nested).unwrap(), Privacy::Private);
        let file = nested.join("f");
        let (_, privacy) = open_private_file(&file).unwrap();
        assert_eq!(privacy, Privacy::Created);
        assert_eq!(mode(&file), 0o600);
    }

    #[test]
    fn open_modes_are_tightened_and_the_old_mode_reported() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("d");
        fs::create_dir(&d).unwrap();
        fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(private_dir(&d).unwrap(), Privacy::Tightened(0o755));
        assert_eq!(mode(&d), 0o700);
        let f = d.join("f");
        fs::write(&f, b"kept").unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o644)).unwrap();
        let (_, privacy) = open_private_file(&f).unwrap();
        assert_eq!(privacy, Privacy::Tightened(0o644));
        assert_eq!(mode(&f), 0o600);
        assert_eq!(fs::read(&f).unwrap(), b"kept");
    }

    #[test]
    fn a_file_path_is_not_taken_for_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        fs::write(&f, b"").unwrap();
        assert!(private_dir(&f).is_err());
    }
}
