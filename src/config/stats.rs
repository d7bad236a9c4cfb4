//! `[stats]`: windows, topics and statistics of `iotitan-stats`.

use crate::topic::Filters;
use serde::{Deserialize, Serialize};

/// Stats settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatsConfig {
    /// 5-field cron expression; the same as the crontab line that starts stats.
    pub schedule: String,
    /// Topics to compute statistics for.
    pub topics: Filters,
    /// Statistics to publish: count, mean, min, max, stddev, median, pNN, first, last.
    pub statistics: Vec<String>,
    /// Aggregates across several topics.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub group: Vec<GroupConfig>,
}

/// `[[stats.group]]`: one aggregate over several topics (e.g. the house's mean temperature).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GroupConfig {
    /// The group's output topic prefix.
    pub name: String,
    /// Member topics.
    pub topics: Filters,
}

impl Default for StatsConfig {
    fn default() -> Self {
        StatsConfig {
            schedule: "*/5 * * * *".into(),
            topics: Filters::of(&["iotitan/#"]),
            statistics: vec!["mean".into(), "min".into(), "max".into(), "count".into()],
            group: Vec::new(),
        }
    }
}
