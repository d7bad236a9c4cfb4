//! `[mqtt]`: the broker connection shared by every program.

use super::Dur;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Connection settings; each program appends its role to `client_id`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    /// Broker host name or address.
    pub host: String,
    /// Broker port (1883, or 8883 with TLS).
    pub port: u16,
    /// Connect with TLS.
    pub tls: bool,
    /// CA certificate (PEM) to verify the broker with; required with `tls`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// User name, if the broker wants one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// File holding the password (never inline in the config).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// MQTT keep-alive.
    pub keep_alive: Dur,
    /// Client id prefix: `<client_id>-logger`, `<client_id>-stats`, …
    pub client_id: String,
    /// Largest packet accepted or sent. rumqttc's own default (10 KiB) disconnects on bigger
    /// messages, and with a persistent session the broker would redeliver the same message
    /// forever, so the default is MQTT's own maximum: the broker's limit is the real guard.
    pub max_packet_size: usize,
    /// Longest wait between reconnect attempts (the backoff starts at 100 ms and doubles).
    pub reconnect_max: Dur,
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            host: "localhost".into(),
            port: 1883,
            tls: false,
            ca_file: None,
            username: None,
            password_file: None,
            keep_alive: Dur::secs(30),
            client_id: "iotitan".into(),
            max_packet_size: 268_435_455,
            reconnect_max: Dur::secs(30),
        }
    }
}
