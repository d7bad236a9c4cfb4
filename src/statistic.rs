//! The statistics iotitan computes, and the names it publishes them under.
//!
//! [`Statistic`] is what `stats.statistics` and the read API's `stats=` name; [`Series`]
//! computes them over a stream of values, pure and streaming: mean and variance use Welford's
//! update (one pass, numerically stable), min/max/first/last are kept as they come, and values
//! are stored only when an order statistic (median, pNN) asks for them — the one buffer that
//! grows with the window. Order statistics come from statrs. [`is_output`] is the one rule
//! that tells a derived topic (`…_mean`) from an input, for stats and alerts alike.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use statrs::statistics::{Data, OrderStatistics};
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
    /// The increase of a cumulative meter, with meter resets ([`crate::energy::Meter`]).
    Increase,
    /// The time integral of a gauge in value·hours (W → Wh, [`crate::energy::Curve`]).
    Integral,
    /// The time-weighted mean: the integral over the hours it covers.
    Twmean,
    /// The fraction of the time the integral covers (gaps are not integrated).
    Coverage,
}

impl Statistic {
    /// Whether computing it needs every value of the window in memory.
    pub fn needs_values(self) -> bool {
        matches!(self, Statistic::Median | Statistic::Percentile(_))
    }

    /// Whether it is a statistic of the curve (`integral`, `twmean`, `coverage`): read with
    /// the readings around the time counted, which close its first and last intervals.
    pub fn is_curve(self) -> bool {
        matches!(
            self,
            Statistic::Integral | Statistic::Twmean | Statistic::Coverage
        )
    }

    /// Whether it is a statistic of the curve through the readings (energy), which reads them
    /// in time order with the readings before the range (a lookback) and the one after it.
    pub fn is_energy(self) -> bool {
        matches!(
            self,
            Statistic::Increase | Statistic::Integral | Statistic::Twmean | Statistic::Coverage
        )
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
            Statistic::Increase => f.write_str("increase"),
            Statistic::Integral => f.write_str("integral"),
            Statistic::Twmean => f.write_str("twmean"),
            Statistic::Coverage => f.write_str("coverage"),
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
            "increase" => Statistic::Increase,
            "integral" => Statistic::Integral,
            "twmean" => Statistic::Twmean,
            "coverage" => Statistic::Coverage,
            _ => match s.strip_prefix('p').and_then(|n| n.parse::<u8>().ok()) {
                Some(p) if (1..=99).contains(&p) && !s[1..].starts_with('0') => {
                    Statistic::Percentile(p)
                }
                _ => {
                    return Err(format!(
                        "unknown statistic {s:?}: expected count, mean, min, max, stddev, \
                         median, first, last, p1 … p99, increase, integral, twmean or coverage"
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
/// Times are kept as microseconds since the epoch: they are only compared. A window may hold
/// a million series, so the common case is kept small (88 bytes): what only some statistics
/// need (the values for median and percentiles, a meter's and a curve's amounts) is boxed
/// and absent until used.
#[derive(Debug, Clone, Default)]
pub struct Series {
    count: u64,
    mean: f64,
    m2: f64,
    min: f64,
    max: f64,
    /// The first and last values by time, with their times: meaningful once `count > 0`.
    first: (i64, f64),
    last: (i64, f64),
    // Boxed: 8 bytes where most series keep no values, not a Vec's 24.
    #[allow(clippy::box_collection)]
    values: Option<Box<Vec<f64>>>,
    /// A meter's and a curve's amounts, for whoever follows them
    /// ([`crate::energy::Meter`], [`crate::energy::Curve`]).
    energy: Option<Box<Energy>>,
}

/// The energy amounts of a series.
#[derive(Debug, Clone, Copy, Default)]
struct Energy {
    /// A meter's growth.
    increase: f64,
    /// The area under the curve (value·µs) and the µs it covers.
    area: f64,
    covered: i64,
}

/// Microseconds per hour: integrals are in value·hours (W → Wh).
pub const MICROS_PER_HOUR: f64 = 3_600_000_000.0;

impl Series {
    /// An empty series; `keep_values` when median or a percentile is wanted.
    pub fn new(keep_values: bool) -> Self {
        Series {
            values: keep_values.then(Box::default),
            ..Series::default()
        }
    }

    /// Add one value observed at `time`.
    pub fn push(&mut self, time: DateTime<Utc>, value: f64) {
        self.push_micros(time.timestamp_micros(), value);
    }

    fn energy_mut(&mut self) -> &mut Energy {
        self.energy.get_or_insert_with(Box::default)
    }

    fn amounts(&self) -> Energy {
        self.energy.as_deref().copied().unwrap_or_default()
    }

    /// Add a meter's step to its increase (the step whose later reading was pushed).
    pub fn add_increase(&mut self, step: f64) {
        self.energy_mut().increase += step;
    }

    /// Add a piece of the curve: its area (value·µs) over `covered` µs.
    pub fn add_curve(&mut self, area: f64, covered: i64) {
        if covered == 0 && area == 0.0 {
            return;
        }
        let e = self.energy_mut();
        e.area += area;
        e.covered += covered;
    }

    /// Add the energy amounts of another series.
    fn add_energy(&mut self, other: Energy) {
        let e = self.energy_mut();
        e.increase += other.increase;
        e.area += other.area;
        e.covered += other.covered;
    }

    /// Whether the series has anything to say: values, or a piece of its curve.
    pub fn is_empty(&self) -> bool {
        self.count == 0 && self.amounts().covered == 0
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
            self.first = (time, value);
            self.last = (time, value);
        } else {
            self.min = self.min.min(value);
            self.max = self.max.max(value);
            // Ties keep the first seen as first and the last seen as last: file order.
            if time < self.first.0 {
                self.first = (time, value);
            }
            if time >= self.last.0 {
                self.last = (time, value);
            }
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
        if let Some(e) = later.energy.as_deref() {
            self.add_energy(*e);
        }
        if later.count == 0 {
            return;
        }
        if self.count == 0 {
            let values = self.values.take();
            let energy = self.energy.take();
            *self = later;
            self.energy = energy;
            if let (Some(mut mine), Some(theirs)) = (values, self.values.take()) {
                mine.extend(theirs.iter());
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
        if later.first.0 < self.first.0 {
            self.first = later.first;
        }
        if later.last.0 >= self.last.0 {
            self.last = later.last;
        }
        if let (Some(mine), Some(theirs)) = (&mut self.values, later.values) {
            mine.extend(theirs.iter());
        }
    }

    /// Number of values.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The value of `stat`, or `None` when it is undefined (no values; stddev of one value;
    /// `coverage`, which needs the time counted: [`get_over`](Series::get_over)).
    pub fn get(&self, stat: Statistic) -> Option<f64> {
        self.get_over(stat, 0)
    }

    /// [`get`](Series::get) of a series counted over `counted` µs: `coverage` is the part of
    /// them under the curve. The curve's statistics are defined where the series has values
    /// or a piece of curve (a window between two readings has no value but has its slice);
    /// `twmean` only where some time was covered.
    pub fn get_over(&self, stat: Statistic, counted: i64) -> Option<f64> {
        let seen = !self.is_empty();
        let e = self.amounts();
        match stat {
            Statistic::Integral => return seen.then(|| e.area / MICROS_PER_HOUR),
            Statistic::Twmean => {
                return (e.covered > 0).then(|| e.area / e.covered as f64);
            }
            Statistic::Coverage => {
                return (seen && counted > 0).then(|| e.covered as f64 / counted as f64);
            }
            _ => {}
        }
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
            Statistic::Median => Some(Data::new(self.values.as_deref()?.clone()).median()),
            Statistic::Percentile(p) => {
                Some(Data::new(self.values.as_deref()?.clone()).percentile(usize::from(p)))
            }
            Statistic::First => Some(self.first.1),
            Statistic::Last => Some(self.last.1),
            Statistic::Increase => Some(e.increase),
            Statistic::Integral | Statistic::Twmean | Statistic::Coverage => None,
        }
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

    /// A window may hold a million series: what each costs is part of the contract
    /// (issue: at most ~200 bytes per series in a window).
    #[test]
    fn a_series_is_small() {
        assert!(
            std::mem::size_of::<Series>() <= 88,
            "{}",
            std::mem::size_of::<Series>()
        );
    }

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
    fn values_print_exactly() {
        assert_eq!(format_value(Statistic::Mean, 23.1), "23.1");
        assert_eq!(format_value(Statistic::Count, 12.0), "12");
        assert_eq!(format_value(Statistic::Min, -0.5), "-0.5");
    }
}
