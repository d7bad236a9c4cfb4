//! `[stats]`: windows, topics and statistics of `iotitan-stats`.

use crate::config::Dur;
use crate::statistic::Statistic;
use crate::topic::Filters;
use serde::{Deserialize, Deserializer, Serialize};
use std::path::PathBuf;

/// Stats settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatsConfig {
    /// 5-field cron expression; the same as the crontab line that starts stats. Validated at
    /// load, so a typo is reported with its line instead of at the first scheduled run.
    #[serde(deserialize_with = "schedule")]
    pub schedule: String,
    /// Topics to compute statistics for.
    pub topics: Filters,
    /// Statistics to publish: count, mean, min, max, stddev, median, pNN, first, last, and
    /// energy's increase, integral, twmean, coverage (a window with a curve statistic is
    /// computed `[energy] max_gap` after its end).
    pub statistics: Vec<Statistic>,
    /// Where the end of the last window done is kept; default `<state_dir>/stats-window.json`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_file: Option<PathBuf>,
    /// Most windows computed by one run after missed runs (the oldest are dropped beyond it),
    /// so a machine that was off for a month does not replay a month of windows at boot.
    pub catch_up: usize,
    /// How far out of order syslog timestamps may be (several writers, network sources) and
    /// still be found by the binary search that locates a window in a file. At most a day.
    #[serde(deserialize_with = "disorder")]
    pub disorder: Dur,
    /// How long a scheduled run waits after its window's end before reading it: records of
    /// the window's last moments may still be on their way into the syslog files (rsyslog
    /// writes asynchronously). At most ten minutes.
    #[serde(deserialize_with = "settle")]
    pub settle: Dur,
    /// Topic of a retained JSON summary of each window (the `--format json` object).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary_topic: Option<String>,
    /// Most series a window computes: a topic with a counter or a timestamp in it makes a
    /// new series per message, and each costs memory. Later series are left out; the run
    /// says how many.
    #[serde(deserialize_with = "max_series")]
    pub max_series: usize,
    /// Aggregates across several topics.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub group: Vec<GroupConfig>,
}

/// `stats.max_series` by default.
pub const DEFAULT_MAX_SERIES: usize = 100_000;

fn max_series<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let n = usize::deserialize(d)?;
    if !(1..=100_000_000).contains(&n) {
        return Err(serde::de::Error::custom(format!(
            "max_series = {n}: from 1 to 100000000"
        )));
    }
    Ok(n)
}

fn schedule<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    crate::schedule::Schedule::parse(&s).map_err(serde::de::Error::custom)?;
    Ok(s)
}

/// The most `disorder` accepted: syslog is nearly ordered, and a window widened by more
/// than this would no longer be a window of it.
pub const MAX_DISORDER: Dur = Dur::secs(24 * 3600);

fn disorder<'de, D: Deserializer<'de>>(d: D) -> Result<Dur, D::Error> {
    at_most(
        d,
        "disorder",
        MAX_DISORDER,
        "syslog timestamps are nearly in order",
    )
}

/// A duration of at most `max`; beyond it an error naming `key` and saying `why`.
fn at_most<'de, D: Deserializer<'de>>(
    d: D,
    key: &str,
    max: Dur,
    why: &str,
) -> Result<Dur, D::Error> {
    let v = Dur::deserialize(d)?;
    if v > max {
        return Err(serde::de::Error::custom(format!(
            "{key} {v} is more than {max}: {why}"
        )));
    }
    Ok(v)
}

/// The most `settle` accepted: a scheduled run must end long before the next one starts.
pub const MAX_SETTLE: Dur = Dur::secs(600);

fn settle<'de, D: Deserializer<'de>>(d: D) -> Result<Dur, D::Error> {
    at_most(
        d,
        "settle",
        MAX_SETTLE,
        "a few seconds let the last records arrive",
    )
}

/// `[[stats.group]]`: one aggregate over several topics (e.g. the house's mean temperature).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GroupConfig {
    /// The group's output topic prefix: statistics go to `<name>_<stat>`, the number of
    /// distinct series seen to `<name>_devices`.
    #[serde(deserialize_with = "plain_topic")]
    pub name: String,
    /// Member topics.
    pub topics: Filters,
    /// `by = N`: one group per prefix of the members' first N topic levels and their measure
    /// (the last level), as the read API's `by=N`: plugs `office/floor1/room1/<plug>/power`
    /// with `by = 3` publish `office/floor1/room1/power_<stat>`; `name` is then only a label.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "by_levels"
    )]
    pub by: Option<usize>,
    /// Count only the hours of this `[[calendar]]` in each window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within: Option<String>,
    /// Count only the time outside this `[[calendar]]`'s hours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outside: Option<String>,
}

impl GroupConfig {
    /// The calendar it counts in: its name, and whether within its hours (else outside).
    pub fn calendar(&self) -> Option<(&str, bool)> {
        match (&self.within, &self.outside) {
            (Some(c), _) => Some((c, true)),
            (None, Some(c)) => Some((c, false)),
            (None, None) => None,
        }
    }
}

/// The most topic levels `by` may keep.
const MAX_BY: usize = 64;

fn by_levels<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    let n = usize::deserialize(d)?;
    if !(1..=MAX_BY).contains(&n) {
        return Err(serde::de::Error::custom(format!(
            "by = {n}: the topic levels a group keeps, 1 to {MAX_BY}"
        )));
    }
    Ok(Some(n))
}

fn plain_topic<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    if s.is_empty() || s.contains(['+', '#', '\0']) {
        return Err(serde::de::Error::custom(format!(
            "{s:?} is not a topic to publish to (empty, or holds a wildcard)"
        )));
    }
    Ok(s)
}

impl Default for StatsConfig {
    fn default() -> Self {
        StatsConfig {
            schedule: "*/5 * * * *".into(),
            topics: Filters::of(&["iotitan/#"]),
            statistics: vec![
                Statistic::Mean,
                Statistic::Min,
                Statistic::Max,
                Statistic::Count,
            ],
            state_file: None,
            catch_up: 12,
            disorder: Dur::secs(120),
            settle: Dur::secs(5),
            summary_topic: None,
            max_series: DEFAULT_MAX_SERIES,
            group: Vec::new(),
        }
    }
}

impl StatsConfig {
    /// The state file: `state_file`, or `stats-window.json` in `state_dir`.
    pub fn state_path(&self, state_dir: &std::path::Path) -> PathBuf {
        self.state_file
            .clone()
            .unwrap_or_else(|| state_dir.join("stats-window.json"))
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn statistics_and_schedule_are_validated_at_load() {
        let c = Config::parse(
            "[stats]\nstatistics = [\"mean\", \"p95\", \"stddev\"]\nschedule = \"0 * * * 1-5\"\n",
            "t",
        )
        .unwrap();
        assert_eq!(c.stats.statistics.len(), 3);
        let day = Config::parse("[stats]\ndisorder = \"1day\"\n", "t").unwrap();
        assert_eq!(day.stats.disorder, super::MAX_DISORDER);
        for bad in [
            "[stats]\nstatistics = [\"average\"]\n",
            "[stats]\nstatistics = [\"p100\"]\n",
            "[stats]\nschedule = \"*/5 * * *\"\n",
            "[stats]\nschedule = \"0 0 * * 8\"\n",
            "[[stats.group]]\nname = \"a/+\"\ntopics = \"a/#\"\n",
            "[stats]\ndisorder = \"2d\"\n",
            "[stats]\ndisorder = \"100000000y\"\n",
            "[stats]\nsettle = \"11m\"\n",
        ] {
            assert!(Config::parse(bad, "t").is_err(), "{bad}");
        }
    }

    #[test]
    fn state_path_defaults_into_state_dir() {
        let c = Config::default();
        assert_eq!(
            c.stats.state_path(&c.state_dir),
            std::path::PathBuf::from("/var/lib/iotitan/stats-window.json")
        );
    }
}
