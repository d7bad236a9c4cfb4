//! The state file: where the last window done ended, so missed windows are caught up and
//! none is counted twice.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What the state file holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The schedule the windows came from (for people reading the file).
    pub schedule: String,
    /// End of the last window done.
    pub done_until: DateTime<Utc>,
}

/// A state file that cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading, writing or renaming failed.
    #[error("state file {path}: {source}")]
    Io {
        /// The state file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file exists but does not hold a state.
    #[error(
        "state file {path} is damaged ({message}); delete it to start over from the latest window"
    )]
    Damaged {
        /// The state file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// Load the state; a missing file is no state (the first run).
pub fn load(path: &Path) -> Result<Option<State>, StateError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StateError::Damaged {
                path: path.to_owned(),
                message: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(StateError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Save the state atomically (write a sibling, then rename), creating the directory.
pub fn save(path: &Path, state: &State) -> Result<(), StateError> {
    let io = |source| StateError::Io {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("tmp");
    let mut text = serde_json::to_vec_pretty(state).map_err(|e| io(std::io::Error::other(e)))?;
    text.push(b'\n');
    std::fs::write(&tmp, text).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_first_run() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/state.json");
        assert_eq!(load(&p).unwrap(), None);
        let s = State {
            schedule: "*/5 * * * *".into(),
            done_until: DateTime::from_timestamp(1_795_000_000, 0).unwrap(),
        };
        save(&p, &s).unwrap();
        assert_eq!(load(&p).unwrap(), Some(s));
        std::fs::write(&p, "{").unwrap();
        let e = load(&p).unwrap_err().to_string();
        assert!(e.contains("damaged"), "{e}");
    }
}
