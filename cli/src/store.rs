//! What the client keeps between runs, in one directory (the user's config
//! dir by default): `session.json`, the token and who it belongs to, and
//! `cursors.json`, the last seq `tail` printed per chat, so the next run
//! resumes where this one stopped.
//!
//! Both files are written whole to a temporary file and renamed into place,
//! so a crash mid-write leaves the old version, never half a file; both are
//! readable by their owner only (the token is a credential).

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

const SESSION: &str = "session.json";
const CURSORS: &str = "cursors.json";

/// A logged-in user on one server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub server: String,
    pub user_id: String,
    pub username: String,
    pub email: String,
    pub token: String,
    /// Unix seconds, by this machine's clock, when the token was received.
    pub issued_at: i64,
    /// Unix seconds when the server stops accepting the token.
    pub expires_at: i64,
}

/// Last seq seen per chat, for each user who used this config dir.
type CursorFile = BTreeMap<String, BTreeMap<String, i64>>;

#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// The given directory, or `tidings` in the user's config dir.
    pub fn open(dir: Option<PathBuf>) -> anyhow::Result<Store> {
        let dir = match dir {
            Some(dir) => dir,
            None => dirs::config_dir()
                .context(
                    "no config directory for this user; set --config-dir or TIDINGS_CONFIG_DIR",
                )?
                .join("tidings"),
        };
        Ok(Store { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn session(&self) -> anyhow::Result<Option<Session>> {
        read_json(&self.dir.join(SESSION))
    }

    pub fn save_session(&self, session: &Session) -> anyhow::Result<()> {
        write_private(&self.dir, SESSION, &serde_json::to_vec_pretty(session)?)
    }

    /// Removes the saved session; false when there was none.
    pub fn forget_session(&self) -> anyhow::Result<bool> {
        let path = self.dir.join(SESSION);
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
        }
    }

    /// The saved cursors of one user: chat id to the last seq seen.
    pub fn cursors(&self, user_id: &str) -> anyhow::Result<BTreeMap<String, i64>> {
        let file: CursorFile = read_json(&self.dir.join(CURSORS))?.unwrap_or_default();
        Ok(file.get(user_id).cloned().unwrap_or_default())
    }

    /// Saves cursors of one user. Merged with what is on disk, keeping the
    /// higher seq of each chat, so another process's progress on other
    /// chats is kept.
    pub fn save_cursors(
        &self,
        user_id: &str,
        cursors: &BTreeMap<String, i64>,
    ) -> anyhow::Result<()> {
        let path = self.dir.join(CURSORS);
        let mut file: CursorFile = read_json(&path)?.unwrap_or_default();
        let mine = file.entry(user_id.to_owned()).or_default();
        for (chat_id, seq) in cursors {
            let saved = mine.entry(chat_id.clone()).or_insert(*seq);
            *saved = (*saved).max(*seq);
        }
        write_private(&self.dir, CURSORS, &serde_json::to_vec_pretty(&file)?)
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<Option<T>> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("{} is not valid; delete it to start over", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Writes `dir/name` atomically, readable and writable by the owner only.
fn write_private(dir: &Path, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
    create_private_dir(dir)?;
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, &path)
    };
    write().with_context(|| format!("writing {}", path.display()))
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Session {
        Session {
            server: "http://127.0.0.1:8080".into(),
            user_id: "u1".into(),
            username: "alice".into(),
            email: "alice@example.com".into(),
            token: "t".into(),
            issued_at: 1,
            expires_at: 2,
        }
    }

    #[test]
    fn the_session_round_trips_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(Some(dir.path().join("nested"))).unwrap();
        assert_eq!(store.session().unwrap(), None);
        store.save_session(&session()).unwrap();
        assert_eq!(store.session().unwrap(), Some(session()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(store.dir().join(SESSION))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(store.forget_session().unwrap());
        assert!(!store.forget_session().unwrap());
    }

    #[test]
    fn cursors_are_per_user_and_never_move_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(Some(dir.path().into())).unwrap();
        let map = |pairs: &[(&str, i64)]| -> BTreeMap<String, i64> {
            pairs.iter().map(|(k, v)| ((*k).into(), *v)).collect()
        };
        store
            .save_cursors("alice", &map(&[("c1", 5), ("c2", 1)]))
            .unwrap();
        store
            .save_cursors("alice", &map(&[("c1", 3), ("c3", 7)]))
            .unwrap();
        store.save_cursors("bob", &map(&[("c1", 1)])).unwrap();
        assert_eq!(
            store.cursors("alice").unwrap(),
            map(&[("c1", 5), ("c2", 1), ("c3", 7)])
        );
        assert_eq!(store.cursors("bob").unwrap(), map(&[("c1", 1)]));
        assert!(store.cursors("carol").unwrap().is_empty());
    }
}
