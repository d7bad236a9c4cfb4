//! `[alerts]` and `[[alerts.rule]]`: what `iotitan-alerts` watches.

use super::Dur;
use crate::topic::Filters;
use serde::{Deserialize, Serialize};

/// Alerts settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// One JSON event per transition is published here.
    pub events_topic: String,
    /// At most one transition per rule and topic per this interval (flapping guard).
    pub min_interval: Dur,
    /// The rules.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rule: Vec<RuleConfig>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            events_topic: "iotitan/alerts/events".into(),
            min_interval: Dur::secs(0),
            rule: Vec::new(),
        }
    }
}

/// One `[[alerts.rule]]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// A name for logs and events; defaults to the topics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Topics (series) the rule watches.
    pub topics: Filters,
    /// Alert when below.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low: Option<f64>,
    /// Alert when above.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high: Option<f64>,
    /// An alert clears only once the value is back inside by this margin.
    #[serde(default)]
    pub hysteresis: f64,
    /// The value must stay out of range this long before the alert goes on.
    #[serde(default)]
    pub hold: Dur,
    /// No reading for this long turns the stale alert on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale_after: Option<Dur>,
    /// A command published to a device on each transition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<ActionConfig>,
}

/// `action = { topic, on, off }`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ActionConfig {
    /// The device's command topic.
    pub topic: String,
    /// Payload sent when the alert goes on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on: Option<String>,
    /// Payload sent when the alert goes off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub off: Option<String>,
}
