//! Statistics of one window: per series, per group, and the line counts.
//!
//! Pure and streaming: mean and variance use Welford's update (one pass, numerically stable),
//! min/max/first/last are kept as they come, and values are stored only when an order
//! statistic (median, pNN) asks for them — the one buffer that grows with the window.
//! Order statistics come from statrs.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use statrs::statistics::{Data, OrderStatistics};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// One statistic stats can publish, as named in `stats.statistics` and in output topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Statistic {
    /// Number of values.
    Count,
    /// Arithmetic mean.
    Mean,
    /// Smallest value.
    Min,
    /// Largest value.
    Max,
    /// Sample standard deviation (n − 1); needs two values.
    Stddev,
    /// Median (mean of the two middle values for an even count).
    Median,
    /// Percentile 1–99, statrs' R-8 (median-unbiased) quantile.
    Percentile(u8),
    /// The value with the earliest timestamp.
    First,
    /// The value with the latest timestamp.
    Last,
}

impl Statistic {
    /// Whether computing it needs every value of the window in memory.
    pub fn needs_values(self) -> bool {
        matches!(self, Statistic::Median | Statistic::Percentile(_))
    }
}

impl fmt::Display for Statistic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Statistic::Count => f.write_str("count"),
            Statistic::Mean => f.write_str("mean"),
            Statistic::Min => f.write_str("min"),
            Statistic::Max => f.write_str("max"),
            Statistic::Stddev => f.write_str("stddev"),
            Statistic::Median => f.write_str("median"),
            Statistic::Percentile(p) => write!(f, "p{p}"),
            Statistic::First => f.write_str("first"),
            Statistic::Last => f.write_str("last"),
        }
    }
}

impl std::str::FromStr for Statistic {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "count" => Statistic::Count,
            "mean" => Statistic::Mean,
            "min" => Statistic::Min,
            "max" => Statistic::Max,
            "stddev" => Statistic::Stddev,
            "median" => Statistic::Median,
            "first" => Statistic::First,
            "last" => Statistic::Last,
            _ => match s.strip_prefix('p').and_then(|n| n.parse::<u8>().ok()) {
                Some(p) if (1..=99).contains(&p) && !s[1..].starts_with('0') => {
                    Statistic::Percentile(p)
                }
                _ => {
                    return Err(format!(
                        "unknown statistic {s:?}: expected count, mean, min, max, stddev, \
                         median, first, last or p1 … p99"
                    ));
                }
            },
        })
    }
}

impl Serialize for Statistic {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Statistic {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// The suffix stats appends for the number of distinct series of a group.
pub const DEVICES: &str = "devices";

/// Whether `topic` looks like one of stats' own outputs (`…_mean`, `…_p95`, `…_devices`):
/// the one definition, for stats and alerts alike.
///
/// The logger records everything on the broker, our outputs included, and a filter such as
/// `iotitan/#` matches them: reading them back would compute the mean of means. Every name
/// stats can publish is refused, not only the configured ones, so that outputs of an earlier
/// configuration are not picked up either. Alerts watch such a series only through a rule that
/// names it (see `alerts::machine`). A level that is nothing but the suffix (`…/_mean`) is
/// derived from nothing, so it is an input.
pub fn is_output(topic: &str) -> bool {
    let last = topic.rsplit('/').next().unwrap_or(topic);
    let Some((base, suffix)) = last.rsplit_once('_') else {
        return false;
    };
    !base.is_empty() && (suffix == DEVICES || suffix.parse::<Statistic>().is_ok())
}

/// The running statistics of one series (or one group).
///
/// Times are kept as microseconds since the epoch: they are only compared.
#[derive(Debug, Clone, Default)]
pub struct Series {
    count: u64,
    mean: f64,
    m2: f64,
    min: f64,
    max: f64,
    first: Option<(i64, f64)>,
    last: Option<(i64, f64)>,
    values: Option<Vec<f64>>,
}

impl Series {
    /// An empty series; `keep_values` when median or a percentile is wanted.
    pub fn new(keep_values: bool) -> Self {
        Series {
            values: keep_values.then(Vec::new),
            ..Series::default()
        }
    }

    /// Add one value observed at `time`.
    pub fn push(&mut self, time: DateTime<Utc>, value: f64) {
        self.push_micros(time.timestamp_micros(), value);
    }

    /// Add one value observed at `micros` (microseconds since the epoch).
    pub fn push_micros(&mut self, time: i64, value: f64) {
        self.count += 1;
        // Welford: stable for long windows of nearly equal values (temperatures).
        let delta = value - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (value - self.mean);
        if self.count == 1 {
            self.min = value;
            self.max = value;
        } else {
            self.min = self.min.min(value);
            self.max = self.max.max(value);
        }
        // Ties keep the first seen as first and the last seen as last: file order.
        if self.first.is_none_or(|(t, _)| time < t) {
            self.first = Some((time, value));
        }
        if self.last.is_none_or(|(t, _)| time >= t) {
            self.last = Some((time, value));
        }
        if let Some(v) = &mut self.values {
            v.push(value);
        }
    }

    /// Add the values of `later`, a series of the lines that follow this one's (a scan
    /// split into ranges): count, min, max, first, last and the kept values are exactly those
    /// of one series that saw every value; mean and variance are combined by Chan et al.'s
    /// formula, equal to Welford's up to rounding.
    pub fn merge(&mut self, later: Series) {
        if later.count == 0 {
            return;
        }
        if self.count == 0 {
            let values = self.values.take();
            *self = later;
            if let (Some(mut mine), Some(theirs)) = (values, self.values.take()) {
                mine.extend(theirs);
                self.values = Some(mine);
            }
            return;
        }
        let (n1, n2) = (self.count as f64, later.count as f64);
        let n = n1 + n2;
        let delta = later.mean - self.mean;
        self.mean += delta * (n2 / n);
        self.m2 += later.m2 + delta * delta * (n1 * n2 / n);
        self.count += later.count;
        self.min = self.min.min(later.min);
        self.max = self.max.max(later.max);
        if let Some((t, v)) = later.first
            && self.first.is_none_or(|(f, _)| t < f)
        {
            self.first = Some((t, v));
        }
        if let Some((t, v)) = later.last
            && self.last.is_none_or(|(l, _)| t >= l)
        {
            self.last = Some((t, v));
        }
        if let (Some(mine), Some(theirs)) = (&mut self.values, later.values) {
            mine.extend(theirs);
        }
    }

    /// Number of values.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The value of `stat`, or `None` when it is undefined (no values; stddev of one value).
    pub fn get(&self, stat: Statistic) -> Option<f64> {
        if self.count == 0 {
            return (stat == Statistic::Count).then_some(0.0);
        }
        match stat {
            Statistic::Count => Some(self.count as f64),
            Statistic::Mean => Some(self.mean),
            Statistic::Min => Some(self.min),
            Statistic::Max => Some(self.max),
            Statistic::Stddev if self.count > 1 => Some((self.m2 / (self.count - 1) as f64).sqrt()),
            Statistic::Stddev => None,
            Statistic::Median => Some(Data::new(self.values.clone()?).median()),
            Statistic::Percentile(p) => {
                Some(Data::new(self.values.clone()?).percentile(usize::from(p)))
            }
            Statistic::First => self.first.map(|(_, v)| v),
            Statistic::Last => self.last.map(|(_, v)| v),
        }
    }
}

/// A group: one series over all its members' values, and which members were seen.
#[derive(Debug, Clone, Default)]
pub struct Group {
    /// The values of every member.
    pub values: Series,
    /// Distinct member series seen in the window.
    pub members: BTreeSet<String>,
}

/// What happened to the lines of a window. `read = matched + skipped + rejected`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LineCounts {
    /// Lines of the window (by timestamp; a line without one belongs with the line before it).
    pub read: u64,
    /// Records whose payload gave at least one value.
    pub matched: u64,
    /// Lines that are not ours: other programs, junk, bad records, topics not asked for, and
    /// our own outputs.
    pub skipped: u64,
    /// Records of a wanted topic whose payload gave no number (or was cut by the logger).
    pub rejected: u64,
}

/// The statistics of one window, ready to print or publish.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Window start (inclusive).
    pub start: DateTime<Utc>,
    /// Window end (exclusive).
    pub end: DateTime<Utc>,
    /// Statistics asked for, in config order.
    pub statistics: Vec<Statistic>,
    /// Per series, sorted by name.
    pub series: BTreeMap<String, Series>,
    /// Per group, in config order.
    pub groups: Vec<(String, Group)>,
    /// Line counts.
    pub lines: LineCounts,
}

impl Summary {
    /// An empty summary for the window `[start, end)` with the configured groups.
    pub fn new(
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        statistics: &[Statistic],
        groups: impl IntoIterator<Item = String>,
    ) -> Self {
        let keep = statistics.iter().any(|s| s.needs_values());
        Summary {
            start,
            end,
            statistics: statistics.to_vec(),
            series: BTreeMap::new(),
            groups: groups
                .into_iter()
                .map(|g| {
                    (
                        g,
                        Group {
                            values: Series::new(keep),
                            members: BTreeSet::new(),
                        },
                    )
                })
                .collect(),
            lines: LineCounts::default(),
        }
    }

    /// Add a value of `series` to the series itself (when `own` is true) and to the groups
    /// whose indices are in `groups`.
    pub fn push(
        &mut self,
        series: &str,
        own: bool,
        groups: impl IntoIterator<Item = usize>,
        time: DateTime<Utc>,
        value: f64,
    ) {
        if own {
            let keep = self.keeps_values();
            match self.series.get_mut(series) {
                Some(s) => s.push(time, value),
                None => {
                    let mut s = Series::new(keep);
                    s.push(time, value);
                    self.series.insert(series.to_owned(), s);
                }
            }
        }
        for g in groups {
            if let Some((_, group)) = self.groups.get_mut(g) {
                group.values.push(time, value);
                if !group.members.contains(series) {
                    group.members.insert(series.to_owned());
                }
            }
        }
    }

    /// Whether series keep their values (median or a percentile is asked for).
    pub fn keeps_values(&self) -> bool {
        self.statistics.iter().any(|s| s.needs_values())
    }

    /// An empty summary of the same window, statistics and groups.
    pub fn empty_like(&self) -> Summary {
        Summary::new(
            self.start,
            self.end,
            &self.statistics,
            self.groups.iter().map(|(name, _)| name.clone()),
        )
    }

    /// The statistics of one series, in config order, leaving out undefined ones.
    pub fn values_of(&self, s: &Series) -> Vec<(Statistic, f64)> {
        self.statistics
            .iter()
            .filter_map(|&st| s.get(st).map(|v| (st, v)))
            .collect()
    }

    /// Every output as `(topic, payload)`: `<series>_<stat>`, `<group>_<stat>` and
    /// `<group>_devices`.
    ///
    /// A series or group without values publishes nothing, except a group's `_count` (0, if
    /// count is configured) and `_devices` (0): groups are configured, so "no data" is news.
    pub fn outputs(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (name, s) in &self.series {
            for (st, v) in self.values_of(s) {
                out.push((format!("{name}_{st}"), format_value(st, v)));
            }
        }
        for (name, g) in &self.groups {
            for (st, v) in self.values_of(&g.values) {
                out.push((format!("{name}_{st}"), format_value(st, v)));
            }
            out.push((format!("{name}_{DEVICES}"), g.members.len().to_string()));
        }
        out
    }
}

/// A statistic's value as published: counts as integers, everything else as the shortest
/// decimal that reads back to the same `f64`.
pub fn format_value(stat: Statistic, v: f64) -> String {
    if stat == Statistic::Count {
        format!("{}", v as u64)
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(s, 0).unwrap()
    }

    #[test]
    fn statistic_names_round_trip() {
        for s in [
            "count", "mean", "min", "max", "stddev", "median", "p1", "p95", "p99", "first", "last",
        ] {
            assert_eq!(s.parse::<Statistic>().unwrap().to_string(), s);
        }
        for bad in ["p0", "p100", "p05", "p", "avg", "Mean", "p-1", "p1.5"] {
            assert!(bad.parse::<Statistic>().is_err(), "{bad}");
        }
    }

    #[test]
    fn own_outputs_are_recognised() {
        for out in [
            "iotitan/a/t_mean",
            "iotitan/a/t_p95",
            "house/temperature_devices",
            "z/bed/temperature_count",
            "x_last",
            "t_stddev",
            "a/b/c_last",
        ] {
            assert!(is_output(out), "{out}");
        }
        for input in [
            "iotitan/a/t",
            "iotitan/a_mean/t",
            "iotitan/a/t_average",
            "iotitan/a/t_alert_hi",
            "iotitan/a/t_p100",
            "iotitan/a/t_p0",
            "iotitan/a/t_sum",
            "a/t_p",
            "a/t_px",
            "a/_mean",
            "a/t_mean/x",
            "a/t_meanie",
            "mean",
        ] {
            assert!(!is_output(input), "{input}");
        }
    }

    #[test]
    fn series_statistics() {
        let mut s = Series::new(true);
        for (i, v) in [4.0, 1.0, 3.0, 2.0].into_iter().enumerate() {
            s.push(t(i as i64), v);
        }
        assert_eq!(s.get(Statistic::Count), Some(4.0));
        assert_eq!(s.get(Statistic::Mean), Some(2.5));
        assert_eq!(s.get(Statistic::Min), Some(1.0));
        assert_eq!(s.get(Statistic::Max), Some(4.0));
        assert_eq!(s.get(Statistic::Median), Some(2.5));
        let sd = s.get(Statistic::Stddev).unwrap();
        assert!((sd - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!(s.get(Statistic::First), Some(4.0));
        assert_eq!(s.get(Statistic::Last), Some(2.0));
        // R-8 on [1,2,3,4] at 0.5 is 2.5; at 0.95: h = (4+1/3)*0.95+1/3 = 4.4499… → max.
        assert_eq!(s.get(Statistic::Percentile(50)), Some(2.5));
        assert_eq!(s.get(Statistic::Percentile(95)), Some(4.0));
    }

    #[test]
    fn first_and_last_follow_timestamps_not_arrival() {
        let mut s = Series::new(false);
        s.push(t(10), 1.0);
        s.push(t(5), 2.0);
        s.push(t(20), 3.0);
        s.push(t(20), 4.0);
        assert_eq!(s.get(Statistic::First), Some(2.0));
        assert_eq!(s.get(Statistic::Last), Some(4.0));
        // Without stored values, order statistics are undefined rather than wrong.
        assert_eq!(s.get(Statistic::Median), None);
    }

    #[test]
    fn undefined_statistics_are_left_out() {
        let s = Series::new(true);
        assert_eq!(s.get(Statistic::Count), Some(0.0));
        assert_eq!(s.get(Statistic::Mean), None);
        let mut one = Series::new(true);
        one.push(t(0), 7.0);
        assert_eq!(one.get(Statistic::Stddev), None);
        assert_eq!(one.get(Statistic::Median), Some(7.0));
    }

    #[test]
    fn welford_is_stable_for_large_offsets() {
        let mut s = Series::new(false);
        for i in 0..1000 {
            s.push(t(i), 1e9 + (i % 2) as f64);
        }
        let sd = s.get(Statistic::Stddev).unwrap();
        let exact = (250.0f64 * 1000.0 / 999.0 / 1000.0).sqrt();
        assert!((sd - exact).abs() < 1e-9, "{sd} vs {exact}");
    }

    #[test]
    fn outputs_of_series_and_groups() {
        let stats = [Statistic::Count, Statistic::Mean];
        let mut sum = Summary::new(t(0), t(300), &stats, ["house/t".to_owned()]);
        sum.push("a/t", true, [0], t(1), 20.0);
        sum.push("b/t", true, [0], t(2), 22.0);
        sum.push("b/t", false, [], t(3), 99.0);
        let out = sum.outputs();
        assert_eq!(
            out,
            vec![
                ("a/t_count".into(), "1".into()),
                ("a/t_mean".into(), "20".into()),
                ("b/t_count".into(), "1".into()),
                ("b/t_mean".into(), "22".into()),
                ("house/t_count".into(), "2".into()),
                ("house/t_mean".into(), "21".into()),
                ("house/t_devices".into(), "2".into()),
            ]
        );
        let empty = Summary::new(t(0), t(300), &stats, ["house/t".to_owned()]);
        assert_eq!(
            empty.outputs(),
            vec![
                ("house/t_count".into(), "0".into()),
                ("house/t_devices".into(), "0".into())
            ]
        );
    }

    #[test]
    fn values_print_exactly() {
        assert_eq!(format_value(Statistic::Mean, 23.1), "23.1");
        assert_eq!(format_value(Statistic::Count, 12.0), "12");
        assert_eq!(format_value(Statistic::Min, -0.5), "-0.5");
    }
}
