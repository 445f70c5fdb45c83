//! The saved login session, so a restart does not log in (and mint a token) again. Written
//! atomically, because an appliance loses power mid-write: temp file, fsync, rename, fsync dir.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

const FILE_NAME: &str = "session.json";

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedSession {
    pub homeserver: String,
    pub user_id: String,
    pub device_id: String,
    pub access_token: String,
}

impl std::fmt::Debug for SavedSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SavedSession")
            .field("homeserver", &self.homeserver)
            .field("user_id", &self.user_id)
            .field("device_id", &self.device_id)
            .finish_non_exhaustive()
    }
}

fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE_NAME)
}

/// Makes the state directory if needed, private to us.
pub fn ensure_state_dir(state_dir: &Path) -> std::io::Result<()> {
    fs::create_dir_all(state_dir)?;
    fs::set_permissions(state_dir, fs::Permissions::from_mode(0o700))
}

/// The saved session, if there is a readable one. A damaged file is logged and ignored (the
/// device logs in again), never fatal.
pub fn load(state_dir: &Path) -> Option<SavedSession> {
    let path = path(state_dir);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            log::warn!("cannot read {}: {e}; logging in afresh", path.display());
            return None;
        }
    };
    match serde_json::from_str(&text) {
        Ok(session) => Some(session),
        Err(e) => {
            log::warn!("{} is damaged ({e}); logging in afresh", path.display());
            None
        }
    }
}

pub fn save(state_dir: &Path, session: &SavedSession) -> std::io::Result<()> {
    let path = path(state_dir);
    let tmp = state_dir.join(format!(".{FILE_NAME}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        // An old temp file keeps its mode; make sure.
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
        file.write_all(serde_json::to_string_pretty(session)?.as_bytes())?;
        file.sync_all()?;
        fs::rename(&tmp, &path)?;
        fs::File::open(state_dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

pub fn discard(state_dir: &Path) {
    match fs::remove_file(path(state_dir)) {
        Ok(()) => log::info!("discarded the saved session"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => log::warn!("cannot remove the saved session: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> SavedSession {
        SavedSession {
            homeserver: "https://hs.example/".to_owned(),
            user_id: "@room:hs.example".to_owned(),
            device_id: "ROOMD".to_owned(),
            access_token: "syt_secret".to_owned(),
        }
    }

    #[test]
    fn saves_private_and_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), &session()).unwrap();
        let meta = fs::metadata(dir.path().join(FILE_NAME)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(load(dir.path()), Some(session()));
        let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temp file left behind");
        assert!(!format!("{:?}", session()).contains("syt_secret"));
    }

    #[test]
    fn a_damaged_or_missing_file_means_log_in_again() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()), None);
        fs::write(dir.path().join(FILE_NAME), "{\"homeserver\": ").unwrap();
        assert_eq!(load(dir.path()), None);
        discard(dir.path());
        assert!(!dir.path().join(FILE_NAME).exists());
    }

    #[test]
    fn an_interrupted_write_leaves_the_old_session() {
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), &session()).unwrap();
        // A crash between writing the temp file and the rename leaves only a stray temp file.
        fs::write(dir.path().join(".session.json.1.tmp"), "{garbage").unwrap();
        assert_eq!(load(dir.path()), Some(session()));
    }
}
