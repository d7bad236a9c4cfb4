//! `[homeassistant]`: Home Assistant MQTT discovery (docs/homeassistant.md), and `[status]`:
//! where the daemons say whether they are running.

use super::Dur;
use crate::topic::Filters;
use crate::unit::UnitRule;
use serde::{Deserialize, Deserializer, Serialize};

/// Discovery settings. Off by default: announcing entities into somebody's Home Assistant is
/// a choice the owner makes.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HomeAssistantConfig {
    /// Announce every series, alert and device as a Home Assistant entity.
    pub discovery: bool,
    /// Home Assistant's discovery prefix (its MQTT integration's setting).
    #[serde(deserialize_with = "prefix")]
    pub prefix: String,
    /// A series not seen for this long loses its entity (an empty retained config).
    pub expire_after: Dur,
    /// The series announced (those with numeric readings); our own outputs among them.
    pub topics: Filters,
    /// Units, device and state classes where the name does not tell (shown by the dashboard
    /// too).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unit: Vec<UnitRule>,
}

impl Default for HomeAssistantConfig {
    fn default() -> Self {
        HomeAssistantConfig {
            discovery: false,
            prefix: "homeassistant".into(),
            expire_after: Dur::secs(7 * 24 * 3600),
            topics: Filters::of(&["#"]),
            unit: Vec::new(),
        }
    }
}

fn prefix<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let p = String::deserialize(d)?;
    if p.is_empty() || p.contains(['+', '#', '\0']) || p.starts_with('/') || p.ends_with('/') {
        return Err(serde::de::Error::custom(format!(
            "prefix {p:?}: a topic prefix without wildcards or a leading or trailing /"
        )));
    }
    Ok(p)
}
