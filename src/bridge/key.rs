//! The channel's write API key: read from a file, the environment or a systemd credential at
//! start-up, never from the config and never from the command line (both are visible to other
//! users: `ps`, world-readable `/etc`). Once loaded it only ever leaves the process in the
//! body of a request: `Debug` masks it and [`WriteKey::scrub`] removes it from any text
//! before it is logged.

use crate::config::ChannelConfig;
use crate::secret::{self, LoadError, Places, Secret};
use std::ffi::OsString;
use std::fmt;

pub use crate::secret::{CREDENTIAL_PREFIX, MASK, Source as KeySource};

/// A ThingSpeak write API key.
#[derive(Clone, PartialEq, Eq)]
pub struct WriteKey(Secret);

impl WriteKey {
    /// A key from text (trimmed); refuses empty keys and keys with spaces or control bytes,
    /// which are always a copy-paste accident. The error never repeats the text.
    pub fn new(text: &str) -> Result<Self, &'static str> {
        Secret::new(text).map(WriteKey)
    }

    /// The key itself, for the request body only.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    /// `text` with every occurrence of the key masked: for anything that came from outside
    /// (an answer body, an error) before it is logged.
    pub fn scrub(&self, text: &str) -> String {
        self.0.scrub(text)
    }
}

impl fmt::Debug for WriteKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WriteKey({MASK})")
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
/// `$CREDENTIALS_DIRECTORY/iotitan_thingspeak-<ID>.key` (see [`secret::load_with`]).
pub fn load_with(
    ch: &ChannelConfig,
    env: impl Fn(&str) -> Option<OsString>,
) -> Result<(WriteKey, KeySource), KeyError> {
    let id = ch.id;
    let places = Places {
        file: ch.write_key_file.as_deref(),
        env: env_name(id),
        credential: format!("thingspeak-{id}.key"),
    };
    secret::load_with(&places, env)
        .map(|(s, source)| (WriteKey(s), source))
        .map_err(|e| match e {
            LoadError::Read { source_of, err } => KeyError::Read { id, source_of, err },
            LoadError::Invalid { source_of, why } => KeyError::Invalid { id, source_of, why },
            LoadError::Missing { env, .. } => KeyError::Missing { id, env },
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::path::PathBuf;

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
