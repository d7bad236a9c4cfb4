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

impl StatusConfig {
    /// `program`'s availability topic when it runs with `mqtt.client_id` `client_id`.
    pub fn availability_topic(&self, program: &str, client_id: &str) -> String {
        format!(
            "{}/{program}/{}/availability",
            self.topic_prefix,
            instance(client_id)
        )
    }
}

/// The instance level of a program whose `mqtt.client_id` is `client_id`: one topic level,
/// `/`, `+`, `#` and what brokers refuse written `_`.
pub fn instance(client_id: &str) -> String {
    let mut level = String::new();
    crate::topic::push_level(&mut level, client_id);
    level
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
