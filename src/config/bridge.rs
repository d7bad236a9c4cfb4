//! `[[bridge.channel]]`: what `iotitan-bridge` forwards to ThingSpeak.

use super::Dur;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Bridge settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BridgeConfig {
    /// The channels.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub channel: Vec<ChannelConfig>,
}

/// One ThingSpeak channel.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelConfig {
    /// The channel id.
    pub id: u64,
    /// File holding the write API key. Without it the key comes from
    /// `IOTITAN_THINGSPEAK_KEY_<ID>` or `$CREDENTIALS_DIRECTORY/thingspeak-<ID>.key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_key_file: Option<PathBuf>,
    /// Topic → field number (1–8).
    pub fields: BTreeMap<String, u8>,
    /// Topic whose payload becomes the channel's status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_topic: Option<String>,
    /// API base URL.
    #[serde(default = "default_url")]
    pub url: String,
    /// Never two writes closer than this (free accounts: 15 s).
    #[serde(default = "default_min_interval")]
    pub min_interval: Dur,
    /// Send at least this often when there is anything to send.
    #[serde(default = "default_max_interval")]
    pub max_interval: Dur,
    /// Most updates in one bulk request (free accounts: 960).
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
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
