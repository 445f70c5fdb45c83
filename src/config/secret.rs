//! The login secret: found in a file or a systemd credential, refused when others can read it,
//! and never printed.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use roomd_core::Secret;

use super::SecretSource;

/// Where systemd looks for `LoadCredential=NAME` when no path is given; roomd looks in the same
/// places when it runs outside the unit.
pub const CREDSTORE_DIRS: [&str; 3] = ["/etc/credstore", "/run/credstore", "/usr/lib/credstore"];

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("{what} {} cannot be read: {source}", path.display())]
    Unreadable {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what} {} is not a regular file", path.display())]
    NotAFile { what: &'static str, path: PathBuf },
    #[error(
        "{what} {} is mode {mode:04o}: it must not be readable or writable by group or others \
         (chmod 600 {})",
        path.display(),
        path.display()
    )]
    TooOpen {
        what: &'static str,
        path: PathBuf,
        mode: u32,
    },
    #[error("{what} {} is empty", path.display())]
    Empty { what: &'static str, path: PathBuf },
    #[error(
        "systemd credential `{name}` not found: it is not in $CREDENTIALS_DIRECTORY and not in \
         /etc/credstore, /run/credstore or /usr/lib/credstore (install -m 600 /dev/stdin \
         /etc/credstore/{name})"
    )]
    CredentialNotFound { name: String },
}

impl SecretSource {
    /// The file this secret is read from, as things stand now.
    pub fn locate(&self) -> Result<PathBuf, SecretError> {
        match self {
            SecretSource::File(path) => Ok(path.clone()),
            SecretSource::Credential(name) => {
                let dirs: Vec<PathBuf> = match std::env::var_os("CREDENTIALS_DIRECTORY") {
                    Some(dir) => vec![PathBuf::from(dir)],
                    None => CREDSTORE_DIRS.iter().map(PathBuf::from).collect(),
                };
                dirs.into_iter()
                    .map(|d| d.join(name))
                    .find(|p| p.exists())
                    .ok_or_else(|| SecretError::CredentialNotFound { name: name.clone() })
            }
        }
    }

    /// Reads the secret, refusing a file that group or others may read. One trailing newline
    /// (as `echo` leaves) is not part of the secret.
    pub fn read(&self, what: &'static str) -> Result<Secret, SecretError> {
        let path = self.locate()?;
        check_permissions(what, &path)?;
        let text = std::fs::read_to_string(&path).map_err(|source| SecretError::Unreadable {
            what,
            path: path.clone(),
            source,
        })?;
        let value = text
            .strip_suffix('\n')
            .map(|t| t.strip_suffix('\r').unwrap_or(t))
            .unwrap_or(&text);
        if value.is_empty() {
            return Err(SecretError::Empty { what, path });
        }
        Ok(Secret::new(value.to_owned()))
    }
}

/// A secret file must be a regular file with no group or other permission bits.
pub fn check_permissions(what: &'static str, path: &Path) -> Result<(), SecretError> {
    let meta = std::fs::metadata(path).map_err(|source| SecretError::Unreadable {
        what,
        path: path.to_owned(),
        source,
    })?;
    if !meta.is_file() {
        return Err(SecretError::NotAFile {
            what,
            path: path.to_owned(),
        });
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(SecretError::TooOpen {
            what,
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn write(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
        let p = dir.join(name);
        fs::write(&p, text).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn reads_a_private_file_without_its_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "pw", "hunter2 \n", 0o600);
        let s = SecretSource::File(p).read("password file").unwrap();
        assert_eq!(s.expose(), "hunter2 ");
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn refuses_a_file_others_can_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "pw", "hunter2", 0o644);
        let e = SecretSource::File(p).read("password file").unwrap_err();
        assert!(matches!(e, SecretError::TooOpen { mode: 0o644, .. }), "{e}");
        assert!(e.to_string().contains("mode 0644"), "{e}");
    }

    #[test]
    fn refuses_an_empty_or_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "pw", "\n", 0o600);
        assert!(matches!(
            SecretSource::File(p).read("password file"),
            Err(SecretError::Empty { .. })
        ));
        let missing = SecretSource::File(dir.path().join("nope"));
        assert!(matches!(
            missing.read("password file"),
            Err(SecretError::Unreadable { .. })
        ));
    }
}
