//! `[status]`: where each program reports its health (docs/status.md).

use crate::config::Dur;
use serde::{Deserialize, Deserializer, Serialize};

/// How the programs report their health over MQTT.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatusConfig {
    /// Off: no status topics and no will.
    pub enabled: bool,
    /// Each program's status is `<prefix>/<program>/<instance>` (JSON) and its availability
    /// `<prefix>/<program>/<instance>/availability` (`online`/`offline`).
    #[serde(deserialize_with = "prefix")]
    pub topic_prefix: String,
    /// How often a daemon publishes its status: from 1 s to 1 h. Prometheus scrapes see
    /// numbers this old at most; each one is a record in syslog when the logger logs them.
    #[serde(deserialize_with = "interval")]
    pub interval: Dur,
}

impl Default for StatusConfig {
    fn default() -> Self {
        StatusConfig {
            enabled: true,
            topic_prefix: "iotitan/status".into(),
            interval: Dur::secs(30),
        }
    }
}

fn prefix<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    crate::topic::check_publish_topic(&s)
        .map_err(|e| serde::de::Error::custom(format!("status.topic_prefix: {e}")))?;
    Ok(s)
}

fn interval<'de, D: Deserializer<'de>>(d: D) -> Result<Dur, D::Error> {
    let v = Dur::deserialize(d)?;
    if v < Dur::secs(1) || v > Dur::secs(3600) {
        return Err(serde::de::Error::custom(format!(
            "status.interval {v} must be from 1s to 1h"
        )));
    }
    Ok(v)
}
