//! Statistics of one window: per series, per group, and the line counts. Each series is a
//! [`Series`] of [`crate::statistic`].

use crate::statistic::{DEVICES, Series, Statistic, format_value};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeSet;

/// A group: one series over all its members' values, and which members were seen.
#[derive(Debug, Clone, Default)]
pub struct Group {
    /// The values of every member.
    pub values: Series,
    /// Distinct member series seen in the window.
    pub members: BTreeSet<String>,
    /// A `by` group's own entry: its members' values are in its sub-groups, and it
    /// publishes nothing itself.
    pub split: bool,
}

impl Group {
    /// An empty group; `keep_values` when median or a percentile is wanted.
    pub fn new(keep_values: bool) -> Self {
        Group {
            values: Series::new(keep_values),
            ..Group::default()
        }
    }
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

/// What a window left out past `stats.max_series`: its readings, and how many series they
/// were.
///
/// The series are counted by a HyperLogLog++ sketch (Cloudflare's `cardinality-estimator`):
/// exact up to about a hundred, within about 2 % beyond, in at most 3 KB however many there
/// are, and sketches of two ranges merge. An exact count would hold every name left out,
/// which is the memory the limit is there to save.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LeftOut {
    /// Readings of the series left out, in the window.
    pub readings: u64,
    series: cardinality_estimator::CardinalityEstimator<str>,
}

impl LeftOut {
    /// `n` readings of `series` were left out.
    pub fn note(&mut self, series: &str, n: u64) {
        self.readings += n;
        self.series.insert(series);
    }

    /// How many series were left out (estimated past about a hundred).
    pub fn series(&self) -> u64 {
        self.series.estimate() as u64
    }

    /// Whether nothing was left out.
    pub fn is_empty(&self) -> bool {
        self.readings == 0
    }

    /// Add what another range left out.
    pub fn add(&mut self, other: &LeftOut) {
        self.readings += other.readings;
        self.series.merge(&other.series);
    }
}

impl Serialize for LeftOut {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("series", &self.series())?;
        m.serialize_entry("readings", &self.readings)?;
        m.end()
    }
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
    /// Per series, sorted by name (a sorted list, not a map: a window may hold a million).
    pub series: Vec<(Box<str>, Series)>,
    /// Per group, in config order.
    pub groups: Vec<(String, Group)>,
    /// Line counts.
    pub lines: LineCounts,
    /// Series left out past `stats.max_series`.
    pub left_out: LeftOut,
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
            series: Vec::new(),
            groups: groups.into_iter().map(|g| (g, Group::new(keep))).collect(),
            lines: LineCounts::default(),
            left_out: LeftOut::default(),
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
            match self.series.binary_search_by(|(n, _)| (**n).cmp(series)) {
                Ok(i) => self.series[i].1.push(time, value),
                Err(i) => {
                    let mut s = Series::new(keep);
                    s.push(time, value);
                    self.series.insert(i, (series.into(), s));
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

    /// The statistics of series `name`.
    pub fn series_of(&self, name: &str) -> Option<&Series> {
        let i = self
            .series
            .binary_search_by(|(n, _)| (**n).cmp(name))
            .ok()?;
        Some(&self.series[i].1)
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
        let window = (self.end - self.start).num_microseconds().unwrap_or(0);
        self.statistics
            .iter()
            .filter_map(|&st| s.get_over(st, window).map(|v| (st, v)))
            .collect()
    }

    /// The statistics of a group: as of a series, but for `twmean` and `coverage`, which
    /// are of one curve in time (a group's members overlap).
    pub fn values_of_group(&self, g: &Group) -> Vec<(Statistic, f64)> {
        let mut values = self.values_of(&g.values);
        values.retain(|(st, _)| !matches!(st, Statistic::Twmean | Statistic::Coverage));
        values
    }

    /// Every output as `(topic, payload)`: `<series>_<stat>`, `<group>_<stat>` and
    /// `<group>_devices`.
    ///
    /// A series or group without values publishes nothing, except a group's `_count` (0, if
    /// count is configured) and `_devices` (0): groups are configured, so "no data" is news.
    ///
    /// Made one at a time as they are taken: a window of a million series has millions.
    pub fn outputs(&self) -> impl Iterator<Item = (String, String)> + '_ {
        let series = self.series.iter().flat_map(move |(name, s)| {
            self.values_of(s)
                .into_iter()
                .map(move |(st, v)| (format!("{name}_{st}"), format_value(st, v)))
        });
        let groups = self
            .groups
            .iter()
            .filter(|(_, g)| !g.split)
            .flat_map(move |(name, g)| {
                self.values_of_group(g)
                    .into_iter()
                    .map(move |(st, v)| (format!("{name}_{st}"), format_value(st, v)))
                    .chain(std::iter::once((
                        format!("{name}_{DEVICES}"),
                        g.members.len().to_string(),
                    )))
            });
        series.chain(groups)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(s, 0).unwrap()
    }

    #[test]
    fn outputs_of_series_and_groups() {
        let stats = [Statistic::Count, Statistic::Mean];
        let mut sum = Summary::new(t(0), t(300), &stats, ["house/t".to_owned()]);
        sum.push("a/t", true, [0], t(1), 20.0);
        sum.push("b/t", true, [0], t(2), 22.0);
        sum.push("b/t", false, [], t(3), 99.0);
        let out: Vec<_> = sum.outputs().collect();
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
            empty.outputs().collect::<Vec<_>>(),
            vec![
                ("house/t_count".into(), "0".into()),
                ("house/t_devices".into(), "0".into())
            ]
        );
    }
}
