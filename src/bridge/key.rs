//! The channel's write API key: read from a file, the environment or a systemd credential at
//! start-up, never from the config and never from the command line (both are visible to other
//! users: `ps`, world-readable `/etc`). Once loaded it only ever leaves the process in the
//! body of a request: `Debug` masks it and [`WriteKey::scrub`] removes it from any text
//! before it is logged.

use crate::config::ChannelConfig;
use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

/// How a masked key looks in output.
pub const MASK: &str = "********";

/// A ThingSpeak write API key.
#[derive(Clone, PartialEq, Eq)]
pub struct WriteKey(String);

impl WriteKey {
    /// A key from text (trimmed); refuses empty keys and keys with spaces or control bytes,
    /// which are always a copy-paste accident. The error never repeats the text.
    pub fn new(text: &str) -> Result<Self, &'static str> {
        let k = text.trim();
        if k.is_empty() {
            return Err("is empty");
        }
        if !k.chars().all(|c| c.is_ascii_graphic()) {
            return Err("contains spaces, control or non-ASCII characters");
        }
        Ok(WriteKey(k.to_owned()))
    }

    /// The key itself, for the request body only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `text` with every occurrence of the key masked: for anything that came from outside
    /// (an answer body, an error) before it is logged.
    pub fn scrub(&self, text: &str) -> String {
        text.replace(&self.0, MASK)
    }
}

impl fmt::Debug for WriteKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WriteKey({MASK})")
    }
}

/// Where a key was found, for `check-config` and start-up logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `write_key_file`.
    File(PathBuf),
    /// `IOTITAN_THINGSPEAK_KEY_<ID>`.
    Env(String),
    /// `$CREDENTIALS_DIRECTORY/thingspeak-<ID>.key` (systemd `LoadCredential=`).
    Credential(PathBuf),
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::File(p) => write!(f, "file {}", p.display()),
            KeySource::Env(name) => write!(f, "environment variable {name}"),
            KeySource::Credential(p) => write!(f, "systemd credential {}", p.display()),
        }
    }
}

/// A key that could not be loaded. Messages name the place, never the content.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read.
    #[error("channel {id}: cannot read the write key from {source_of}: {err}")]
    Read {
        /// The channel.
        id: u64,
        /// Where.
        source_of: KeySource,
        /// Why.
        err: std::io::Error,
    },
    /// The content is not a usable key.
    #[error("channel {id}: the write key in {source_of} {why}")]
    Invalid {
        /// The channel.
        id: u64,
        /// Where.
        source_of: KeySource,
        /// What is wrong.
        why: &'static str,
    },
    /// No place holds a key.
    #[error(
        "channel {id}: no write key: set write_key_file, or the environment variable {env}, \
         or put it in /etc/iotitan/credentials/thingspeak-{id}.key (a systemd credential)"
    )]
    Missing {
        /// The channel.
        id: u64,
        /// The environment variable that was looked at.
        env: String,
    },
}

/// How systemd names the files of the credential directory the shipped unit loads
/// (`LoadCredential=iotitan:/etc/iotitan/credentials`): the ID, `_`, the file name.
pub const CREDENTIAL_PREFIX: &str = "iotitan_";

/// The environment variable holding channel `id`'s key.
pub fn env_name(id: u64) -> String {
    format!("IOTITAN_THINGSPEAK_KEY_{id}")
}

/// Load the key of `ch` from the process environment and files.
pub fn load(ch: &ChannelConfig) -> Result<(WriteKey, KeySource), KeyError> {
    load_with(ch, |name| std::env::var_os(name))
}

/// Load the key of `ch`, looking variables up with `env`. In order: `write_key_file`, then
/// `IOTITAN_THINGSPEAK_KEY_<ID>`, then `$CREDENTIALS_DIRECTORY/thingspeak-<ID>.key` or
/// `$CREDENTIALS_DIRECTORY/iotitan_thingspeak-<ID>.key`.
pub fn load_with(
    ch: &ChannelConfig,
    env: impl Fn(&str) -> Option<OsString>,
) -> Result<(WriteKey, KeySource), KeyError> {
    let id = ch.id;
    let from_file = |source_of: KeySource, path: &PathBuf| {
        let text = std::fs::read_to_string(path).map_err(|err| KeyError::Read {
            id,
            source_of: source_of.clone(),
            err,
        })?;
        let key = WriteKey::new(&text).map_err(|why| KeyError::Invalid {
            id,
            source_of: source_of.clone(),
            why,
        })?;
        Ok((key, source_of))
    };
    if let Some(path) = &ch.write_key_file {
        return from_file(KeySource::File(path.clone()), path);
    }
    let name = env_name(id);
    if let Some(value) = env(&name) {
        let source_of = KeySource::Env(name);
        let key = value
            .to_str()
            .ok_or("is not valid UTF-8")
            .and_then(WriteKey::new)
            .map_err(|why| KeyError::Invalid {
                id,
                source_of: source_of.clone(),
                why,
            })?;
        return Ok((key, source_of));
    }
    if let Some(dir) = env("CREDENTIALS_DIRECTORY") {
        let dir = PathBuf::from(dir);
        // A credential named on its own (`LoadCredential=thingspeak-<ID>.key:…`), or one of the
        // directory the shipped unit loads (`LoadCredential=iotitan:/etc/iotitan/credentials`),
        // which systemd names `iotitan_<file name>`.
        for name in [
            format!("thingspeak-{id}.key"),
            format!("{CREDENTIAL_PREFIX}thingspeak-{id}.key"),
        ] {
            let path = dir.join(name);
            if path.exists() {
                return from_file(KeySource::Credential(path.clone()), &path);
            }
        }
    }
    Err(KeyError::Missing { id, env: name })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn channel(file: Option<PathBuf>) -> ChannelConfig {
        let mut c = crate::config::Config::parse(
            "[[bridge.channel]]\nid = 42\nfields = { \"a\" = 1 }\n",
            "t",
        )
        .unwrap()
        .bridge
        .channel
        .remove(0);
        c.write_key_file = file;
        c
    }

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> + use<> {
        let m: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        move |k| m.get(k).cloned()
    }

    const SECRET: &str = "ABCDEF0123456789";

    #[test]
    fn file_then_environment_then_credential() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("k");
        std::fs::write(&file, format!("{SECRET}\n")).unwrap();
        let cred = dir.path().join("thingspeak-42.key");
        std::fs::write(&cred, "CRED").unwrap();
        let d = dir.path().to_str().unwrap();
        let all = env(&[
            ("IOTITAN_THINGSPEAK_KEY_42", "ENV"),
            ("CREDENTIALS_DIRECTORY", d),
        ]);
        let (k, s) = load_with(&channel(Some(file.clone())), &all).unwrap();
        assert_eq!((k.expose(), s), (SECRET, KeySource::File(file)));
        let (k, s) = load_with(&channel(None), &all).unwrap();
        assert_eq!(k.expose(), "ENV");
        assert_eq!(
            s.to_string(),
            "environment variable IOTITAN_THINGSPEAK_KEY_42"
        );
        let (k, s) = load_with(&channel(None), env(&[("CREDENTIALS_DIRECTORY", d)])).unwrap();
        assert_eq!((k.expose(), s), ("CRED", KeySource::Credential(cred)));
    }

    #[test]
    fn credential_from_the_units_credential_directory() {
        // systemd names the files of `LoadCredential=iotitan:/etc/iotitan/credentials`
        // `iotitan_<file name>`.
        let dir = tempfile::tempdir().unwrap();
        let cred = dir.path().join("iotitan_thingspeak-42.key");
        std::fs::write(&cred, format!("{SECRET}\n")).unwrap();
        std::fs::write(dir.path().join("iotitan_thingspeak-43.key"), "OTHER").unwrap();
        let d = dir.path().to_str().unwrap();
        let (k, s) = load_with(&channel(None), env(&[("CREDENTIALS_DIRECTORY", d)])).unwrap();
        assert_eq!((k.expose(), s), (SECRET, KeySource::Credential(cred)));
    }

    #[test]
    fn errors_name_the_place_not_the_key() {
        let e = load_with(&channel(None), env(&[])).unwrap_err().to_string();
        assert!(
            e.contains("IOTITAN_THINGSPEAK_KEY_42") && e.contains("thingspeak-42.key"),
            "{e}"
        );
        let e = load_with(&channel(Some("/nonexistent/k".into())), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/k"), "{e}");
        let bad = format!("{SECRET} {SECRET}");
        let e = load_with(&channel(None), env(&[("IOTITAN_THINGSPEAK_KEY_42", &bad)]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("spaces") && !e.contains(SECRET), "{e}");
        let e = load_with(&channel(None), env(&[("IOTITAN_THINGSPEAK_KEY_42", " \n")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("empty"), "{e}");
    }

    #[test]
    fn the_key_is_masked_in_debug_and_scrubbed_from_text() {
        let k = WriteKey::new(SECRET).unwrap();
        assert_eq!(format!("{k:?}"), "WriteKey(********)");
        assert_eq!(k.scrub(&format!("bad key {SECRET}!")), "bad key ********!");
    }
}
