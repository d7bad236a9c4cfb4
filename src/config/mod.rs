//! The one TOML config file shared by every program (schema: DESIGN.md, example:
//! config/iotitan.toml).
//!
//! This is the serde side of every component (Vector's split): plain data, validated while it
//! is deserialized so that every error carries `file:line:col`. Runtime parts take these
//! structs and never see raw TOML. Unknown keys are errors, because a typo that silently falls
//! back to a default is the worst kind of config bug.

mod alerts;
mod bridge;
mod duration;
mod energy;
mod homeassistant;
mod http;
mod logger;
mod mqtt;
mod stats;
mod status;
mod syslog;

pub use alerts::{ActionConfig, AlertsConfig, RuleConfig};
pub use bridge::{BridgeConfig, ChannelConfig};
pub use duration::Dur;
pub use energy::{CalendarConfig, EnergyConfig};
pub use homeassistant::HomeAssistantConfig;
pub use http::{
    AreaConfig, ByteSize, DEFAULT_MAX_SERIES, DeviceConfig, HttpConfig, LocationConfig,
    MAX_COMMAND_TIMEOUT, Rate, Scope, TokenConfig, tiles_origin, token_env_name,
};
pub use logger::LoggerConfig;
pub use mqtt::MqttConfig;
pub use stats::{GroupConfig, StatsConfig};
pub use status::{StatusConfig, instance as status_instance};
pub use syslog::{AUTO, SyslogConfig, SyslogFormat, SyslogTarget};

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Where programs look for the config when `--config` is not given.
pub const DEFAULT_PATH: &str = "/etc/iotitan/iotitan.toml";

/// The whole config file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Stats' window state and the bridge's spool (systemd `StateDirectory=iotitan`).
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// The broker every program talks to.
    #[serde(default)]
    pub mqtt: MqttConfig,
    /// `iotitan-logger`: what to subscribe to.
    #[serde(default)]
    pub logger: LoggerConfig,
    /// Where records are written to and read back from.
    #[serde(default)]
    pub syslog: SyslogConfig,
    /// How payloads are read as numbers (shared by stats and alerts).
    #[serde(default)]
    pub payload: PayloadConfig,
    /// `iotitan-stats`.
    #[serde(default)]
    pub stats: StatsConfig,
    /// `iotitan-alerts`.
    #[serde(default)]
    pub alerts: AlertsConfig,
    /// `iotitan-bridge`.
    #[serde(default)]
    pub bridge: BridgeConfig,
    /// `iotitan-http`.
    #[serde(default)]
    pub http: HttpConfig,
    /// Home Assistant MQTT discovery.
    #[serde(default)]
    pub homeassistant: HomeAssistantConfig,
    /// How energy statistics read a series' curve.
    #[serde(default)]
    pub energy: EnergyConfig,
    /// Named hours of the week, in local time.
    #[serde(
        default,
        deserialize_with = "energy::calendars",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub calendar: Vec<CalendarConfig>,
    /// Where no location is ever recorded or published, by any program. `[[http.private_area]]`
    /// means the same; see [`Config::private_areas`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub private_area: Vec<AreaConfig>,
    /// Which MQTT payloads carry a location (OwnTracks' form is built in).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub location: Vec<LocationConfig>,
    /// Where each program reports its health.
    #[serde(default)]
    pub status: StatusConfig,
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/iotitan")
}

impl Default for Config {
    fn default() -> Self {
        // An empty document is a valid config: every key has a default.
        toml::from_str("").expect("the empty config is valid")
    }
}

/// `[payload]`: JSON payloads and the fields read from them.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PayloadConfig {
    /// `[[payload.json]]` rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub json: Vec<crate::payload::JsonRule>,
}

impl PayloadConfig {
    /// The runtime extractor for these rules.
    pub fn extractor(&self) -> crate::payload::Extractor {
        crate::payload::Extractor::new(self.json.clone())
    }
}

/// A config that could not be loaded; the message is ready for the user.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not fit the schema.
    #[error("{origin}:{line}:{col}: {message}")]
    Invalid {
        /// The file (or `<string>`).
        origin: String,
        /// 1-based line.
        line: usize,
        /// 1-based column (in characters).
        col: usize,
        /// What is wrong, in a plain sentence.
        message: String,
    },
}

impl Config {
    /// Every private area: `[[private_area]]` and `[[http.private_area]]`, which mean the same.
    pub fn private_areas(&self) -> Vec<AreaConfig> {
        self.private_area
            .iter()
            .chain(&self.http.private_area)
            .cloned()
            .collect()
    }

    /// Load and validate the config at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text, &path.display().to_string())
    }

    /// Load `path` if given; else the default path if it exists; else the defaults.
    pub fn load_or_default(path: Option<&Path>) -> Result<Config, ConfigError> {
        match path {
            Some(p) => Config::load(p),
            None if Path::new(DEFAULT_PATH).exists() => Config::load(Path::new(DEFAULT_PATH)),
            None => Ok(Config::default()),
        }
    }

    /// Parse config text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| {
            let (line, col) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
            ConfigError::Invalid {
                origin: origin.to_owned(),
                line,
                col,
                message: e.message().trim().to_owned(),
            }
        })?;
        cfg.check_references(text, origin)?;
        Ok(cfg)
    }

    /// What one section names in another: a stats group's calendar must be configured.
    fn check_references(&self, text: &str, origin: &str) -> Result<(), ConfigError> {
        for g in &self.stats.group {
            if g.within.is_some() && g.outside.is_some() {
                return Err(invalid_at(
                    text,
                    origin,
                    "outside",
                    format!("stats.group {:?}: within or outside, not both", g.name),
                ));
            }
            let Some((name, within)) = g.calendar() else {
                continue;
            };
            if !self.calendar.iter().any(|c| c.name == name) {
                let key = if within { "within" } else { "outside" };
                return Err(invalid_at(
                    text,
                    origin,
                    key,
                    format!(
                        "stats.group {:?}: {key} = {name:?}: no [[calendar]] of that name",
                        g.name
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The effective config as TOML, for `check-config`. Secrets never live inline in the
    /// config (only paths to them), so nothing needs masking beyond what the sections do.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot print config: {e}\n"))
    }
}

/// An error at the first line that sets `key` (where the value was read from).
fn invalid_at(text: &str, origin: &str, key: &str, message: String) -> ConfigError {
    let at = text
        .match_indices(key)
        .find(|&(i, _)| {
            let line = &text[text[..i].rfind('\n').map_or(0, |n| n + 1)..];
            line.trim_start().starts_with(key)
        })
        .map_or(0, |(i, _)| i);
    let (line, col) = line_col(text, at);
    ConfigError::Invalid {
        origin: origin.to_owned(),
        line,
        col,
        message,
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> (usize, usize, String) {
        match Config::parse(text, "t.toml") {
            Err(ConfigError::Invalid {
                line, col, message, ..
            }) => (line, col, message),
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn empty_config_has_defaults() {
        let c = Config::parse("", "t").unwrap();
        assert_eq!(c.mqtt.host, "localhost");
        assert_eq!(c.mqtt.port, 1883);
        assert_eq!(c.logger.subscribe.0[0].as_str(), "#");
        assert_eq!(c.syslog.identifier, "iotitan-logger");
        assert_eq!(c.stats.schedule, "*/5 * * * *");
        assert_eq!(c.state_dir, PathBuf::from("/var/lib/iotitan"));
    }

    #[test]
    fn unknown_keys_are_located() {
        let (line, col, msg) = err("[mqtt]\nhost = \"x\"\nhots = \"y\"\n");
        assert_eq!((line, col), (3, 1));
        assert!(msg.contains("hots"), "{msg}");
        let (line, _, msg) = err("state_dir = \"/x\"\n[nope]\n");
        assert_eq!(line, 2);
        assert!(msg.contains("nope"), "{msg}");
    }

    #[test]
    fn bad_values_are_located() {
        let (line, col, msg) = err("[mqtt]\nkeep_alive = \"soon\"\n");
        assert_eq!((line, col), (2, 14));
        assert!(msg.contains("duration"), "{msg}");
        let (line, _, _) = err("[logger]\nsubscribe = [\"a/#/b\"]\n");
        assert_eq!(line, 2);
        let (line, _, msg) = err("[syslog]\ntarget = \"smoke:signals\"\n");
        assert_eq!(line, 2);
        assert!(msg.contains("unix:"), "{msg}");
        let (line, _, _) = err("[mqtt]\nport = 70000\n");
        assert_eq!(line, 2);
        let (line, _, _) = err("[mqtt\n");
        assert_eq!(line, 1);
    }

    #[test]
    fn the_example_config_is_valid() {
        let text = include_str!("../../config/iotitan.toml");
        let c = Config::parse(text, "config/iotitan.toml").unwrap();
        // And check-config's output parses back to the same thing.
        let again = Config::parse(&c.to_toml(), "printed").unwrap();
        assert_eq!(c.to_toml(), again.to_toml());
    }

    /// The example is the reference of every key: with its commented-out examples switched
    /// on it is still valid, and every key the programs know (with those examples, defaults
    /// included) is written in it, set or commented.
    #[test]
    fn the_example_config_documents_every_key() {
        let text = include_str!("../../config/iotitan.toml");
        let example = regex::Regex::new(r"^# (\[\[?[a-z._]+\]\]?(\s|$)|[a-z_]+ = )").unwrap();
        let switched_on: String = text
            .lines()
            .map(|l| if example.is_match(l) { &l[2..] } else { l })
            .collect::<Vec<_>>()
            .join("\n");
        let c = Config::parse(&switched_on, "config/iotitan.toml, examples on")
            .unwrap_or_else(|e| panic!("{e}"));
        let printed: toml::Value = toml::from_str(&c.to_toml()).unwrap();
        let mut keys = Vec::new();
        fn walk(v: &toml::Value, path: &str, keys: &mut Vec<(String, String)>) {
            let table = match v {
                toml::Value::Table(t) => t,
                toml::Value::Array(a) => {
                    a.iter().for_each(|v| walk(v, path, keys));
                    return;
                }
                _ => return,
            };
            for (k, v) in table {
                // Maps keyed by topics (`fields`) hold data, not keys.
                if k.contains('/') {
                    continue;
                }
                keys.push((path.to_owned(), k.clone()));
                walk(v, &format!("{path}.{k}"), keys);
            }
        }
        walk(&printed, "", &mut keys);
        assert!(keys.len() > 50, "{keys:?}");
        for (path, key) in keys {
            let written = regex::Regex::new(&format!(
                r"(?m)(^#?\s*|[{{,]\s*|\[\[?[a-z.]*){key}(\s*=|\]|\.)"
            ))
            .unwrap();
            assert!(
                written.is_match(text),
                "{path}.{key} is not documented in config/iotitan.toml"
            );
        }
    }

    #[test]
    fn line_col_counts_characters() {
        assert_eq!(line_col("ab\ncé d", 7), (2, 4));
        assert_eq!(line_col("", 0), (1, 1));
    }
}
