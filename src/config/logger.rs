//! `[logger]`: what `iotitan-logger` subscribes to and how it bounds records.

use crate::topic::Filters;
use serde::{Deserialize, Deserializer, Serialize};

/// Logger settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoggerConfig {
    /// Filters to subscribe to.
    pub subscribe: Filters,
    /// Subscription QoS (0, 1 or 2). With 1 or 2 a message is acknowledged only once its record
    /// was handed to syslog.
    #[serde(deserialize_with = "qos")]
    pub qos: u8,
    /// `false` keeps a persistent session, so the broker holds messages while we are away.
    pub clean_session: bool,
    /// Topics never logged.
    pub exclude: Filters,
    /// Longest escaped payload in a record; longer ones are cut and marked `\[cut N]`. The
    /// default keeps a record under rsyslog's default 8 KiB message size.
    pub max_payload_bytes: usize,
    /// Records held in memory while the syslog daemon is unreachable or slow; when they are
    /// this many, the logger stops taking messages and the broker holds them (backpressure)
    /// until syslog has taken half.
    pub queue: usize,
    /// The same bound in bytes (record bytes plus about 100 bytes of bookkeeping each), so
    /// that an outage cannot grow the daemon past its memory budget whatever the payload
    /// size: the default holds 4 MiB, 500 maximal records or some 20 000 typical ones.
    pub queue_bytes: usize,
}

fn qos<'de, D: Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
    let q = u8::deserialize(d)?;
    if q > 2 {
        return Err(serde::de::Error::custom("qos must be 0, 1 or 2"));
    }
    Ok(q)
}

impl Default for LoggerConfig {
    fn default() -> Self {
        LoggerConfig {
            subscribe: Filters::of(&["#"]),
            qos: 1,
            clean_session: false,
            exclude: Filters::of(&["$SYS/#"]),
            max_payload_bytes: 7680,
            queue: 65_536,
            queue_bytes: 4 << 20,
        }
    }
}
