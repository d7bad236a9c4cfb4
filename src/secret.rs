//! Secrets (ThingSpeak write keys, HTTP access tokens): read from a file, the environment or a
//! systemd credential at start-up, never from the config and never from the command line (both
//! are visible to other users: `ps`, world-readable `/etc`). Once loaded a secret only leaves
//! the process where it is needed: `Debug` masks it and [`Secret::scrub`] removes it from any
//! text before it is logged.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

/// How a masked secret looks in output.
pub const MASK: &str = "********";

/// How systemd names the files of the credential directory the shipped units load
/// (`LoadCredential=iotitan:/etc/iotitan/credentials`): the ID, `_`, the file name.
pub const CREDENTIAL_PREFIX: &str = "iotitan_";

/// A secret value: printable ASCII, no spaces.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// A secret from text (trimmed); refuses empty ones and ones with spaces or control bytes,
    /// which are always a copy-paste accident. The error never repeats the text.
    pub fn new(text: &str) -> Result<Self, &'static str> {
        let k = text.trim();
        if k.is_empty() {
            return Err("is empty");
        }
        if !k.chars().all(|c| c.is_ascii_graphic()) {
            return Err("contains spaces, control or non-ASCII characters");
        }
        Ok(Secret(k.to_owned()))
    }

    /// The value itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `text` with every occurrence of the secret masked: for anything that came from outside
    /// (an answer body, an error) before it is logged.
    pub fn scrub(&self, text: &str) -> String {
        text.replace(&self.0, MASK)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({MASK})")
    }
}

/// Where a secret was found, for `check-config` and start-up logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A file named in the config.
    File(PathBuf),
    /// An environment variable.
    Env(String),
    /// `$CREDENTIALS_DIRECTORY/<name>` (systemd `LoadCredential=`).
    Credential(PathBuf),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::File(p) => write!(f, "file {}", p.display()),
            Source::Env(name) => write!(f, "environment variable {name}"),
            Source::Credential(p) => write!(f, "systemd credential {}", p.display()),
        }
    }
}

/// The places one secret may come from, in the order they are tried.
#[derive(Debug, Clone)]
pub struct Places<'a> {
    /// The file named in the config, if any: when set, the only place looked at.
    pub file: Option<&'a Path>,
    /// The environment variable.
    pub env: String,
    /// The credential's file name (`thingspeak-42.key`); also found with the
    /// [`CREDENTIAL_PREFIX`] of the shipped units' credential directory.
    pub credential: String,
}

/// A secret that could not be loaded. Messages name the place, never the content.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read it from {source_of}: {err}")]
    Read {
        /// Where.
        source_of: Source,
        /// Why.
        err: std::io::Error,
    },
    /// The content is not usable.
    #[error("the value in {source_of} {why}")]
    Invalid {
        /// Where.
        source_of: Source,
        /// What is wrong.
        why: &'static str,
    },
    /// No place holds one.
    #[error(
        "none found: set the file in the config, or the environment variable {env}, or put it \
         in /etc/iotitan/credentials/{credential} (a systemd credential)"
    )]
    Missing {
        /// The environment variable that was looked at.
        env: String,
        /// The credential file name that was looked for.
        credential: String,
    },
}

/// Load a secret from `places`, looking variables up with `env`.
pub fn load_with(
    places: &Places<'_>,
    env: impl Fn(&str) -> Option<OsString>,
) -> Result<(Secret, Source), LoadError> {
    let from_file = |source_of: Source, path: &Path| {
        let text = std::fs::read_to_string(path).map_err(|err| LoadError::Read {
            source_of: source_of.clone(),
            err,
        })?;
        let secret = Secret::new(&text).map_err(|why| LoadError::Invalid {
            source_of: source_of.clone(),
            why,
        })?;
        Ok((secret, source_of))
    };
    if let Some(path) = places.file {
        return from_file(Source::File(path.to_owned()), path);
    }
    if let Some(value) = env(&places.env) {
        let source_of = Source::Env(places.env.clone());
        let secret = value
            .to_str()
            .ok_or("is not valid UTF-8")
            .and_then(Secret::new)
            .map_err(|why| LoadError::Invalid {
                source_of: source_of.clone(),
                why,
            })?;
        return Ok((secret, source_of));
    }
    if let Some(dir) = env("CREDENTIALS_DIRECTORY") {
        let dir = PathBuf::from(dir);
        // A credential named on its own (`LoadCredential=thingspeak-<ID>.key:…`), or one of the
        // directory the shipped units load (`LoadCredential=iotitan:/etc/iotitan/credentials`),
        // which systemd names `iotitan_<file name>`.
        for name in [
            places.credential.clone(),
            format!("{CREDENTIAL_PREFIX}{}", places.credential),
        ] {
            let path = dir.join(name);
            if path.exists() {
                return from_file(Source::Credential(path.clone()), &path);
            }
        }
    }
    Err(LoadError::Missing {
        env: places.env.clone(),
        credential: places.credential.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_in_debug_and_scrubbed_from_text() {
        let s = Secret::new(" abc123XYZ \n").unwrap();
        assert_eq!(s.expose(), "abc123XYZ");
        assert_eq!(format!("{s:?}"), "Secret(********)");
        assert_eq!(s.scrub("x abc123XYZ y"), "x ******** y");
        assert!(Secret::new("a b").is_err());
        assert!(Secret::new("  ").is_err());
    }
}
