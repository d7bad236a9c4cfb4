//! `[[bridge.channel]]`: what `iotitan-bridge` forwards to ThingSpeak.
//!
//! Validation happens while deserializing, so a bad channel is reported with `file:line:col`
//! before the daemon starts: field numbers 1–8, no field twice, plain topics (no wildcards),
//! intervals that make sense, batch sizes ThingSpeak accepts, unique channel ids (the spool
//! is kept per channel id). The write key is deliberately *not* a key of this section: it is
//! read at start-up from a file, the environment or a systemd credential (see
//! `bridge::key`), so the config can be world-readable and `check-config` has nothing to mask.

use super::Dur;
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// Bridge settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default, try_from = "RawBridge")]
pub struct BridgeConfig {
    /// The channels.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub channel: Vec<ChannelConfig>,
}

/// The unvalidated form of [`BridgeConfig`]: serde reads this, then `try_from` checks the
/// rules that span several keys.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawBridge {
    channel: Vec<ChannelConfig>,
}

impl TryFrom<RawBridge> for BridgeConfig {
    type Error = String;

    fn try_from(raw: RawBridge) -> Result<Self, String> {
        let mut ids = BTreeSet::new();
        for ch in &raw.channel {
            ch.validate()?;
            if !ids.insert(ch.id) {
                return Err(format!(
                    "channel {} is configured twice; each channel needs its own [[bridge.channel]] (its spool is kept per id)",
                    ch.id
                ));
            }
        }
        Ok(BridgeConfig {
            channel: raw.channel,
        })
    }
}

/// The most updates ThingSpeak takes in one bulk request (paid accounts; free ones: 960).
pub const MAX_BULK: usize = 14_400;

/// One ThingSpeak channel.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelConfig {
    /// The channel id (shown on the channel page as "Channel ID").
    pub id: u64,
    /// File holding the write API key. Without it the key comes from
    /// `IOTITAN_THINGSPEAK_KEY_<ID>` or `$CREDENTIALS_DIRECTORY/thingspeak-<ID>.key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_key_file: Option<PathBuf>,
    /// Topic (or series, for `[[payload.json]]` fields) → field number (1–8).
    #[serde(default)]
    pub fields: FieldMap,
    /// Topic whose payload becomes the entry's status text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_topic: Option<String>,
    /// API base URL.
    #[serde(default = "default_url")]
    pub url: String,
    /// Never two writes closer than this (free accounts: 15 s).
    #[serde(default = "default_min_interval")]
    pub min_interval: Dur,
    /// Send at least this often when there is anything to send, even if some fields are
    /// missing; also the longest wait between retries.
    #[serde(default = "default_max_interval")]
    pub max_interval: Dur,
    /// Most updates in one bulk request (free accounts: 960).
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
    /// Give up on a request after this long (it is retried later).
    #[serde(default = "default_timeout")]
    pub timeout: Dur,
    /// Most updates kept waiting on disk; beyond it the oldest are dropped (and logged).
    #[serde(default = "default_max_spool")]
    pub max_spool: usize,
}

fn default_url() -> String {
    "https://api.thingspeak.com".into()
}
fn default_min_interval() -> Dur {
    Dur::secs(15)
}
fn default_max_interval() -> Dur {
    Dur::secs(600)
}
fn default_max_batch() -> usize {
    960
}
fn default_timeout() -> Dur {
    Dur::secs(30)
}
fn default_max_spool() -> usize {
    100_000
}

impl ChannelConfig {
    /// Why `url` would send the write key unencrypted: `http://` to anything but this machine
    /// (a local proxy or a test server is fine).
    pub fn cleartext_url(&self) -> Option<String> {
        let rest = self.url.strip_prefix("http://")?;
        let host = rest.split(['/', '?']).next().unwrap_or("");
        let host = match host.rsplit_once(':') {
            Some((h, port)) if !h.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => host,
        };
        let local = matches!(host, "localhost" | "[::1]")
            || host
                .parse::<std::net::Ipv4Addr>()
                .is_ok_and(|a| a.is_loopback());
        (!local).then(|| {
            format!(
                "url {} is http://: the write key goes over the network unencrypted (use https://)",
                self.url
            )
        })
    }

    /// The checks that involve more than one key of the channel.
    fn validate(&self) -> Result<(), String> {
        let id = self.id;
        if id == 0 {
            return Err("bridge channel id must be a positive number".into());
        }
        if self.fields.0.is_empty() && self.status_topic.is_none() {
            return Err(format!(
                "channel {id} maps nothing: give it `fields` (topic = 1..8) or a `status_topic`"
            ));
        }
        if let Some(t) = &self.status_topic {
            check_topic(t).map_err(|e| format!("channel {id}: status_topic {e}"))?;
        }
        if !(self.url.starts_with("https://") || self.url.starts_with("http://")) {
            return Err(format!(
                "channel {id}: url {:?} must start with https:// (or http://)",
                self.url
            ));
        }
        if self.min_interval.get().is_zero() {
            return Err(format!("channel {id}: min_interval must be above zero"));
        }
        if self.max_interval < self.min_interval {
            return Err(format!(
                "channel {id}: max_interval ({}) must not be shorter than min_interval ({})",
                self.max_interval, self.min_interval
            ));
        }
        if self.timeout.get().is_zero() {
            return Err(format!("channel {id}: timeout must be above zero"));
        }
        if !(1..=MAX_BULK).contains(&self.max_batch) {
            return Err(format!(
                "channel {id}: max_batch must be 1..={MAX_BULK} (free accounts take 960)"
            ));
        }
        if self.max_spool < self.max_batch {
            return Err(format!(
                "channel {id}: max_spool ({}) must hold at least one batch (max_batch = {})",
                self.max_spool, self.max_batch
            ));
        }
        Ok(())
    }
}

/// `fields = { "topic" = 1, … }`: topic → ThingSpeak field number, checked to be 1–8 with no
/// field used twice.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct FieldMap(pub BTreeMap<String, u8>);

impl FieldMap {
    /// Iterate `(topic, field number)`.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u8)> {
        self.0.iter().map(|(t, f)| (t.as_str(), *f))
    }
}

impl<'de> Deserialize<'de> for FieldMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = BTreeMap::<String, u8>::deserialize(d)?;
        FieldMap::new(map).map_err(serde::de::Error::custom)
    }
}

impl FieldMap {
    /// Validate a topic → field map.
    pub fn new(map: BTreeMap<String, u8>) -> Result<Self, String> {
        let mut used: BTreeMap<u8, &str> = BTreeMap::new();
        for (topic, &field) in &map {
            check_topic(topic).map_err(|e| format!("fields: topic {e}"))?;
            if !(1..=8).contains(&field) {
                return Err(format!(
                    "fields: {topic:?} = {field}: ThingSpeak fields are numbered 1 to 8"
                ));
            }
            if let Some(other) = used.insert(field, topic) {
                return Err(format!(
                    "fields: field{field} is mapped twice ({other:?} and {topic:?}); each field takes one topic"
                ));
            }
        }
        Ok(FieldMap(map))
    }
}

/// A mapped topic must be a plain topic name: the bridge needs to know which field a message
/// fills, which a wildcard cannot say.
fn check_topic(t: &str) -> Result<(), String> {
    if t.is_empty() {
        return Err("must not be empty".into());
    }
    if t.contains(['+', '#']) || t.contains('\0') {
        return Err(format!("{t:?} must be a plain topic (no + or # wildcards)"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigError};

    const BASE: &str = "[[bridge.channel]]\nid = 7\nfields = { \"a/t\" = 1, \"a/h\" = 2 }\n";

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, "t.toml").map_err(|e| match e {
            ConfigError::Invalid { line, message, .. } => format!("{line}: {message}"),
            other => other.to_string(),
        })
    }

    #[test]
    fn plain_http_is_flagged_unless_it_stays_on_this_machine() {
        let with = |url: &str| {
            let mut c = parse(BASE).unwrap().bridge.channel.remove(0);
            c.url = url.into();
            c.cleartext_url()
        };
        assert_eq!(with("https://api.thingspeak.com"), None);
        for local in [
            "http://127.0.0.1:8080",
            "http://localhost/",
            "http://[::1]:3000",
            "http://127.0.0.2",
        ] {
            assert_eq!(with(local), None, "{local}");
        }
        for remote in [
            "http://api.thingspeak.com",
            "http://192.168.1.5:80/x",
            "http://localhost.example.com",
        ] {
            let why = with(remote).unwrap_or_else(|| panic!("{remote}"));
            assert!(why.contains("unencrypted"), "{why}");
        }
    }

    #[test]
    fn defaults() {
        let c = parse(BASE).unwrap();
        let ch = &c.bridge.channel[0];
        assert_eq!(ch.url, "https://api.thingspeak.com");
        assert_eq!(ch.min_interval.get().as_secs(), 15);
        assert_eq!(ch.max_interval.get().as_secs(), 600);
        assert_eq!(ch.max_batch, 960);
        assert_eq!(
            ch.fields.iter().collect::<Vec<_>>(),
            [("a/h", 2), ("a/t", 1)]
        );
    }

    #[test]
    fn field_numbers_are_1_to_8() {
        for bad in ["0", "9", "-1", "300"] {
            let e = parse(&format!(
                "[[bridge.channel]]\nid = 7\nfields = {{ \"a\" = {bad} }}\n"
            ))
            .unwrap_err();
            assert!(e.starts_with("3: "), "{e}");
        }
        let e = parse("[[bridge.channel]]\nid = 7\nfields = { \"a\" = 9 }\n").unwrap_err();
        assert!(e.contains("1 to 8"), "{e}");
        assert!(parse("[[bridge.channel]]\nid = 7\nfields = { \"a\" = 8 }\n").is_ok());
    }

    #[test]
    fn no_field_twice() {
        let e =
            parse("[[bridge.channel]]\nid = 7\nfields = { \"a\" = 1, \"b\" = 1 }\n").unwrap_err();
        assert!(e.contains("field1 is mapped twice"), "{e}");
        assert!(e.starts_with("3: "), "{e}");
    }

    #[test]
    fn topics_are_plain() {
        let e = parse("[[bridge.channel]]\nid = 7\nfields = { \"a/+\" = 1 }\n").unwrap_err();
        assert!(e.contains("wildcards"), "{e}");
        let e = parse("[[bridge.channel]]\nid = 7\nstatus_topic = \"#\"\n").unwrap_err();
        assert!(e.contains("status_topic"), "{e}");
    }

    #[test]
    fn no_inline_key() {
        let e = parse(&format!("{BASE}write_key = \"ABC\"\n")).unwrap_err();
        assert!(e.contains("write_key"), "{e}");
        assert!(e.starts_with("4: "), "{e}");
    }

    #[test]
    fn cross_key_rules() {
        let cases = [
            ("min_interval = \"0s\"\n", "above zero"),
            (
                "min_interval = \"20s\"\nmax_interval = \"10s\"\n",
                "max_interval",
            ),
            ("max_batch = 0\n", "max_batch"),
            ("max_batch = 20000\n", "max_batch"),
            ("max_spool = 10\n", "max_spool"),
            ("url = \"ftp://x\"\n", "https://"),
            ("timeout = \"0s\"\n", "timeout"),
        ];
        for (extra, needle) in cases {
            let e = parse(&format!("{BASE}{extra}")).unwrap_err();
            assert!(
                e.contains(needle) && e.contains("channel 7"),
                "{extra}: {e}"
            );
        }
        let e = parse("[[bridge.channel]]\nid = 7\n").unwrap_err();
        assert!(e.contains("maps nothing"), "{e}");
        assert!(parse("[[bridge.channel]]\nid = 7\nstatus_topic = \"s\"\n").is_ok());
        let e = parse("[[bridge.channel]]\nid = 0\nstatus_topic = \"s\"\n").unwrap_err();
        assert!(e.contains("positive"), "{e}");
    }

    #[test]
    fn ids_are_unique() {
        let e = parse(&format!("{BASE}{BASE}")).unwrap_err();
        assert!(e.contains("channel 7 is configured twice"), "{e}");
    }

    #[test]
    fn the_commented_example_is_valid_once_uncommented() {
        let text = include_str!("../../config/iotitan.toml");
        let start = text
            .find("# [[bridge.channel]]")
            .expect("the example is there");
        let example: String = text[start..]
            .lines()
            .take_while(|l| l.starts_with('#'))
            .map(|l| format!("{}\n", &l[1..]))
            .collect();
        let c = parse(&example).unwrap();
        let ch = &c.bridge.channel[0];
        assert_eq!(ch.id, 752701);
        assert_eq!(ch.fields.0.len(), 2);
        assert_eq!(ch.max_spool, 100_000);
    }

    #[test]
    fn printed_config_parses_back() {
        let c = parse(&format!(
            "{BASE}status_topic = \"a/s\"\nmin_interval = \"1s\"\n"
        ))
        .unwrap();
        let again = parse(&c.to_toml()).unwrap();
        assert_eq!(c.to_toml(), again.to_toml());
    }
}
