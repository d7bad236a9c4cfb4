//! `GET /aggregate`: statistics per series in buckets of `every`, aligned in local time like
//! the cron windows of `iotitan-stats` (an hourly bucket is a `0 * * * *` window, a daily one
//! starts at local midnight, weekly ones on Monday), empty buckets left out.
//!
//! A width below a day must divide the day, so every day starts a bucket; wider ones are whole
//! days, counted from a Monday. Around DST changes buckets follow the wall clock as cron does:
//! the repeated hour's two occurrences are one bucket two hours long, and the skipped hour has
//! no bucket.

use super::{Consumer, Value};
use crate::statistic::{Series, Statistic};
use crate::syslog::clock::Zone;
use chrono::{DateTime, LocalResult, NaiveDate, NaiveDateTime, SecondsFormat, Timelike, Utc};
use serde::Serialize;
use serde::ser::SerializeMap;
use std::collections::BTreeMap;

const DAY: i64 = 86_400;

/// Most buckets an answer may hold per series: past it, `every` is too fine for the range and
/// the client is told to widen it or set `max_points`.
pub const MAX_BUCKETS: usize = 100_000;

/// The widest bucket one may ask for, in days.
const MAX_EVERY_DAYS: i64 = 36_500;

/// Bucket widths `max_points` chooses from: the usual chart steps, then doubling weeks.
const LADDER: [i64; 19] = [
    1,
    5,
    10,
    15,
    30,
    60,
    300,
    600,
    900,
    1800,
    3600,
    7200,
    10_800,
    21_600,
    43_200,
    DAY,
    2 * DAY,
    7 * DAY,
    14 * DAY,
];

/// A bucket width in whole seconds, one that aligns in local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Every(i64);

impl Every {
    /// A width of `secs` seconds: a divisor of a day, or whole days.
    pub fn from_secs(secs: i64) -> Result<Every, String> {
        if secs <= 0 {
            return Err("a bucket width must be at least 1s".into());
        }
        if secs < DAY && DAY % secs != 0 {
            return Err(format!(
                "a bucket width below a day must divide the day (1m, 5m, 15m, 1h, 2h, …), not {secs}s"
            ));
        }
        // Far wider buckets mean nothing, and their ends would overflow chrono's dates.
        if secs > MAX_EVERY_DAYS * DAY {
            return Err(format!(
                "a bucket width must be at most {MAX_EVERY_DAYS}d (100 years), not {secs}s"
            ));
        }
        if secs > DAY && secs % DAY != 0 {
            return Err(format!(
                "a bucket width over a day must be whole days (2d, 7d, …), not {secs}s"
            ));
        }
        Ok(Every(secs))
    }

    /// Parse `1h`, `15m`, `7d`.
    pub fn parse(s: &str) -> Result<Every, String> {
        let d = humantime::parse_duration(s.trim())
            .map_err(|e| format!("invalid bucket width {s:?} ({e}): use 1m, 1h, 1d, …"))?;
        if d.subsec_nanos() != 0 {
            return Err(format!("bucket width {s:?} is not whole seconds"));
        }
        let secs =
            i64::try_from(d.as_secs()).map_err(|_| format!("bucket width {s:?} is too long"))?;
        Every::from_secs(secs)
    }

    /// The width in seconds.
    pub fn secs(self) -> i64 {
        self.0
    }
}

/// The local wall-clock start of the bucket holding local time `local`.
fn key_of(every: Every, local: NaiveDateTime) -> NaiveDateTime {
    let w = every.0;
    if w <= DAY {
        let secs = i64::from(local.time().num_seconds_from_midnight());
        local.date().and_time(chrono::NaiveTime::MIN) + chrono::Duration::seconds(secs / w * w)
    } else {
        // Counted from Monday 1970-01-05, so 7-day buckets are Monday weeks.
        let monday = NaiveDate::from_ymd_opt(1970, 1, 5).unwrap_or_default();
        let days = w / DAY;
        let d = (local.date() - monday).num_days();
        (monday + chrono::Duration::days(d.div_euclid(days) * days))
            .and_time(chrono::NaiveTime::MIN)
    }
}

/// The instant a local bucket start stands for: the earlier one in a repeated hour, the end
/// of the gap when DST skips it.
fn instant<Z: Zone>(zone: &Z, key: NaiveDateTime) -> DateTime<Utc> {
    let mut k = key;
    // Gaps are at most a few hours anywhere.
    for _ in 0..24 * 4 {
        match zone.resolve(&k) {
            LocalResult::Single(t) => return t,
            LocalResult::Ambiguous(a, b) => return a.min(b),
            LocalResult::None => k += chrono::Duration::minutes(15),
        }
    }
    key.and_utc()
}

/// Buckets of one width in one zone, with the current bucket cached: readings come in time
/// order, so almost every one falls in the bucket of the one before.
#[derive(Debug, Clone)]
pub struct Buckets<Z> {
    zone: Z,
    every: Every,
    current: Option<(NaiveDateTime, DateTime<Utc>, DateTime<Utc>)>,
}

impl<Z: Zone> Buckets<Z> {
    /// Buckets of `every` in `zone`.
    pub fn new(every: Every, zone: Z) -> Self {
        Buckets {
            zone,
            every,
            current: None,
        }
    }

    /// The bucket of `t`: its local start, and the instants it starts and ends at.
    pub fn of(&mut self, t: DateTime<Utc>) -> (NaiveDateTime, DateTime<Utc>, DateTime<Utc>) {
        if let Some(c) = self.current
            && c.1 <= t
            && t < c.2
        {
            return c;
        }
        let key = key_of(self.every, self.zone.local(t));
        // Keys are aligned, so the next one is a width later (midnight for the last of a day).
        let next = key + chrono::Duration::seconds(self.every.0);
        // In a repeated hour the later occurrence maps to the same key: the bucket starts at
        // its first instant, and `t` may lie before the earliest instant of the key (never in
        // practice for readings in order); the cache is only used when `t` is inside.
        let b = (key, instant(&self.zone, key), instant(&self.zone, next));
        self.current = Some(b);
        b
    }

    /// How many buckets `[since, until)` touches, counting at most `cap + 1`.
    pub fn count(&mut self, since: DateTime<Utc>, until: DateTime<Utc>, cap: usize) -> usize {
        let mut n = 0;
        let mut t = since;
        while t < until && n <= cap {
            let (_, _, end) = self.of(t);
            n += 1;
            // A bucket whose end does not move forward (a zone that cannot resolve) ends the count.
            if end <= t {
                break;
            }
            t = end;
        }
        n
    }
}

/// The width for a range: `every`, widened along the chart steps until `[since, until)` needs
/// at most `max_points` buckets. Without `max_points`, `every` if it needs at most
/// [`MAX_BUCKETS`].
pub fn width<Z: Zone + Clone>(
    every: Every,
    max_points: Option<usize>,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    zone: &Z,
) -> Result<Every, String> {
    let span = (until - since).num_seconds().max(1);
    let fits = |w: Every, cap: usize| {
        // Cheap estimate first: counting steps through every bucket.
        span / w.0 <= cap as i64 + 2
            && Buckets::new(w, zone.clone()).count(since, until, cap) <= cap
    };
    let Some(cap) = max_points else {
        if fits(every, MAX_BUCKETS) {
            return Ok(every);
        }
        return Err(format!(
            "every={}s gives more than {MAX_BUCKETS} buckets over this range: widen it or set max_points",
            every.0
        ));
    };
    if cap < 2 {
        return Err("max_points must be at least 2 (a range can touch two aligned buckets)".into());
    }
    let cap = cap.min(MAX_BUCKETS);
    if fits(every, cap) {
        return Ok(every);
    }
    let mut candidates: Vec<i64> = LADDER.iter().copied().filter(|&w| w > every.0).collect();
    // Past the ladder, doubling weeks: some width ≥ the span touches at most two buckets.
    let mut w = 28 * DAY;
    while w < 2 * span + 28 * DAY {
        candidates.push(w);
        w *= 2;
    }
    candidates.push(w);
    for w in candidates {
        let w = Every(w);
        if w.0 > every.0 && fits(w, cap) {
            return Ok(w);
        }
    }
    Err("no bucket width fits max_points over this range".into())
}

/// One bucket of a series.
#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    /// Its first instant.
    pub start: DateTime<Utc>,
    /// Readings in it.
    pub count: u64,
    /// The statistics asked for, in the order asked, leaving out undefined ones (stddev of one
    /// value) and `count`, which is always there.
    pub values: Vec<(Statistic, f64)>,
}

impl Serialize for Bucket {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2 + self.values.len()))?;
        m.serialize_entry(
            "start",
            &self.start.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        )?;
        m.serialize_entry("count", &self.count)?;
        for (st, v) in &self.values {
            m.serialize_entry(&st.to_string(), v)?;
        }
        m.end()
    }
}

/// The answer of `/aggregate`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Answer {
    /// The buckets of each series, oldest first.
    pub series: BTreeMap<String, Vec<Bucket>>,
    /// The bucket width used, in seconds (wider than asked when `max_points` required it).
    pub every: i64,
}

/// One bucket as a consumer keeps it: its local start, its first instant, its statistics.
type Held = (NaiveDateTime, DateTime<Utc>, Series);

/// Collects per-bucket statistics.
#[derive(Debug)]
pub struct Aggregate<Z> {
    buckets: Buckets<Z>,
    statistics: Vec<Statistic>,
    keep_values: bool,
    /// Series name → index into `lists`: one hash of the name per reading.
    names: ahash::AHashMap<Box<str>, usize>,
    /// Per series, its buckets in time order. Readings come in time order, so the last bucket
    /// is almost always the one to add to.
    lists: Vec<Vec<Held>>,
}

impl<Z: Zone> Aggregate<Z> {
    /// Buckets of `every` in `zone`, computing `statistics`.
    pub fn new(every: Every, zone: Z, statistics: &[Statistic]) -> Self {
        Aggregate {
            buckets: Buckets::new(every, zone),
            statistics: statistics.to_vec(),
            keep_values: statistics.iter().any(|s| s.needs_values()),
            names: ahash::AHashMap::new(),
            lists: Vec::new(),
        }
    }

    /// The answer.
    pub fn finish(self) -> Answer {
        let stats = self.statistics;
        let mut lists: Vec<Option<Vec<Held>>> = self.lists.into_iter().map(Some).collect();
        let series = self
            .names
            .into_iter()
            .map(|(name, i)| {
                let list = lists[i]
                    .take()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(_, start, s)| Bucket {
                        start,
                        count: s.count(),
                        values: stats
                            .iter()
                            .filter(|&&st| st != Statistic::Count)
                            .filter_map(|&st| s.get(st).map(|v| (st, v)))
                            .collect(),
                    })
                    .collect();
                (name.into(), list)
            })
            .collect();
        Answer {
            series,
            every: self.buckets.every.0,
        }
    }

    /// The bucket list of `series`, created empty on first use.
    fn list(&mut self, series: &str) -> &mut Vec<Held> {
        let i = match self.names.get(series) {
            Some(&i) => i,
            None => {
                self.names.insert(series.into(), self.lists.len());
                self.lists.push(Vec::new());
                self.lists.len() - 1
            }
        };
        &mut self.lists[i]
    }
}

/// Add `s` to the bucket of `key` in `list` (kept in key order), creating it if needed.
fn add(list: &mut Vec<Held>, key: NaiveDateTime, start: DateTime<Utc>, s: Series) {
    match list.last_mut() {
        Some(b) if b.0 == key => b.2.merge(s),
        Some(b) if b.0 < key => list.push((key, start, s)),
        _ => match list.binary_search_by(|b| b.0.cmp(&key)) {
            Ok(i) => list[i].2.merge(s),
            Err(i) => list.insert(i, (key, start, s)),
        },
    }
}

impl<Z: Zone + Clone + Send> Consumer for Aggregate<Z> {
    fn reading(&mut self, time: DateTime<Utc>, series: &str, value: Value<'_>) {
        let Value::Number(v) = value else {
            return;
        };
        let (key, start, _) = self.buckets.of(time);
        let keep_values = self.keep_values;
        let list = self.list(series);
        match list.last_mut() {
            Some(b) if b.0 == key => b.2.push(time, v),
            _ => match list.binary_search_by(|b| b.0.cmp(&key)) {
                Ok(i) => list[i].2.push(time, v),
                // A new bucket: at the end in time order, in the middle for another source.
                Err(i) => {
                    let mut s = Series::new(keep_values);
                    s.push(time, v);
                    list.insert(i, (key, start, s));
                }
            },
        }
    }

    fn fork(&self) -> Option<Self> {
        Some(Aggregate {
            buckets: self.buckets.clone(),
            statistics: self.statistics.clone(),
            keep_values: self.keep_values,
            names: ahash::AHashMap::new(),
            lists: Vec::new(),
        })
    }

    /// Exact where it must be: counts, min, max and kept values (median, percentiles) of a
    /// bucket split between two ranges are those of one pass; mean and stddev agree up to
    /// rounding ([`Series::merge`]).
    fn merge(&mut self, later: Self) {
        let mut lists: Vec<Option<Vec<Held>>> = later.lists.into_iter().map(Some).collect();
        for (name, i) in later.names {
            let theirs = lists[i].take().unwrap_or_default();
            let mine = self.list(&name);
            for (key, start, s) in theirs {
                add(mine, key, start, s);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::FixedOffset;
    use proptest::prelude::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    use crate::time::tests::Cet;

    #[test]
    fn widths() {
        assert_eq!(Every::parse("1h").unwrap().secs(), 3600);
        assert_eq!(Every::parse("7d").unwrap().secs(), 7 * DAY);
        assert!(Every::parse("7m").is_err());
        assert!(Every::parse("36h").is_err());
        assert!(Every::parse("0s").is_err());
        assert!(Every::parse("1500ms").is_err());
        assert!(Every::parse("hourly").is_err());
        // Found by fuzzing the read API: the end of such a bucket overflowed (a panic).
        assert!(Every::parse("100000000000d").is_err());
        assert!(Every::parse("36501d").is_err());
        assert_eq!(Every::parse("36500d").unwrap().secs(), 36_500 * DAY);
    }

    #[test]
    fn hourly_buckets_follow_the_local_half_hour_offset() {
        // Adelaide in summer: UTC+10:30, so local hours start at half past in UTC.
        let z = FixedOffset::east_opt(37_800).unwrap();
        let mut b = Buckets::new(Every(3600), z);
        let (_, s, e) = b.of(utc("2024-01-01T00:10:00Z"));
        assert_eq!(
            (s, e),
            (utc("2023-12-31T23:30:00Z"), utc("2024-01-01T00:30:00Z"))
        );
        let mut d = Buckets::new(Every(DAY), z);
        assert_eq!(
            d.of(utc("2024-01-01T00:10:00Z")).1,
            utc("2023-12-31T13:30:00Z")
        );
        let mut w = Buckets::new(Every(7 * DAY), Utc);
        // 2024-01-03 is a Wednesday: its week started Monday 1 January.
        assert_eq!(
            w.of(utc("2024-01-03T12:00:00Z")).1,
            utc("2024-01-01T00:00:00Z")
        );
    }

    #[test]
    fn dst_buckets_are_wall_clock_hours() {
        let mut b = Buckets::new(Every(3600), Cet);
        // End of DST: local 02:00–03:00 happens twice, one bucket of two hours.
        let first = b.of(utc("2026-10-25T00:30:00Z"));
        let second = b.of(utc("2026-10-25T01:30:00Z"));
        assert_eq!(first, second);
        assert_eq!(first.1, utc("2026-10-25T00:00:00Z"));
        assert_eq!(first.2, utc("2026-10-25T02:00:00Z"));
        // Start of DST: 02:00 local does not exist; 01:00 local ends at 03:00 local.
        let before = b.of(utc("2026-03-29T00:30:00Z"));
        assert_eq!(
            (before.1, before.2),
            (utc("2026-03-29T00:00:00Z"), utc("2026-03-29T01:00:00Z"))
        );
        let after = b.of(utc("2026-03-29T01:00:00Z"));
        assert_eq!(after.1, utc("2026-03-29T01:00:00Z"));
        // A day with 23 hours.
        let mut d = Buckets::new(Every(DAY), Cet);
        let day = d.of(utc("2026-03-29T12:00:00Z"));
        assert_eq!(day.2 - day.1, chrono::Duration::hours(23));
    }

    #[test]
    fn statistics_per_bucket_and_shape() {
        let mut a = Aggregate::new(
            Every(3600),
            Utc,
            &[
                Statistic::Min,
                Statistic::Mean,
                Statistic::Max,
                Statistic::Count,
                Statistic::Stddev,
            ],
        );
        a.reading(utc("2026-11-22T05:00:00Z"), "a/t", Value::Number(1.0));
        a.reading(utc("2026-11-22T05:59:59Z"), "a/t", Value::Number(3.0));
        a.reading(utc("2026-11-22T07:00:00Z"), "a/t", Value::Number(10.0));
        a.reading(utc("2026-11-22T07:00:00Z"), "a/LWT", Value::State("online"));
        let got = serde_json::to_value(a.finish()).unwrap();
        assert_eq!(
            got,
            serde_json::json!({"every": 3600, "series": {"a/t": [
                {"start":"2026-11-22T05:00:00Z","count":2,"min":1.0,"mean":2.0,"max":3.0,"stddev":2f64.sqrt()},
                {"start":"2026-11-22T07:00:00Z","count":1,"min":10.0,"mean":10.0,"max":10.0}
            ]}})
        );
    }

    #[test]
    fn max_points_widens_along_chart_steps() {
        let (s, u) = (utc("2026-11-15T00:00:00Z"), utc("2026-11-22T00:00:00Z"));
        let h = Every(3600);
        assert_eq!(width(h, None, s, u, &Utc), Ok(h));
        assert_eq!(width(h, Some(168), s, u, &Utc), Ok(h));
        assert_eq!(width(h, Some(100), s, u, &Utc), Ok(Every(7200)));
        assert_eq!(width(h, Some(7), s, u, &Utc), Ok(Every(DAY)));
        assert!(width(h, Some(1), s, u, &Utc).is_err());
        assert!(width(Every(1), None, s, u, &Utc).is_err());
        assert_eq!(width(Every(1), Some(1000), s, u, &Utc), Ok(Every(900)));
    }

    proptest! {
        /// Every instant lies in its bucket, and buckets of one width tile time without gaps.
        #[test]
        fn buckets_contain_their_instants(
            t in 1_700_000_000i64..1_900_000_000,
            w in prop::sample::select(vec![60i64, 900, 3600, 7200, DAY, 7 * DAY]),
            off in -12i32..14,
        ) {
            let t = DateTime::from_timestamp(t, 0).unwrap();
            for zone_cet in [false, true] {
                let (k, s, e) = if zone_cet {
                    Buckets::new(Every(w), Cet).of(t)
                } else {
                    Buckets::new(Every(w), FixedOffset::east_opt(off * 1800).unwrap()).of(t)
                };
                prop_assert!(s <= t && t < e, "{t} not in [{s}, {e}) key {k}");
                let next = if zone_cet {
                    Buckets::new(Every(w), Cet).of(e)
                } else {
                    Buckets::new(Every(w), FixedOffset::east_opt(off * 1800).unwrap()).of(e)
                };
                prop_assert_eq!(next.1, e);
            }
        }

        /// Several sources interleave: readings in any order give the buckets of the sorted
        /// readings.
        #[test]
        fn order_does_not_matter(mut readings in proptest::collection::vec((0i64..40_000, -100i32..100), 1..200)) {
            let run = |rs: &[(i64, i32)]| {
                let mut a = Aggregate::new(Every(3600), Utc, &[Statistic::Min, Statistic::Max]);
                for &(t, v) in rs {
                    a.reading(DateTime::from_timestamp(t, 0).unwrap(), "x", Value::Number(f64::from(v)));
                }
                a.finish()
            };
            let shuffled = run(&readings);
            readings.sort();
            let sorted = run(&readings);
            prop_assert_eq!(&shuffled, &sorted);
            let want: std::collections::BTreeSet<i64> = readings.iter().map(|r| r.0 / 3600).collect();
            prop_assert_eq!(sorted.series["x"].len(), want.len());
        }

        /// With max_points, the range never touches more buckets than asked.
        #[test]
        fn max_points_is_respected(
            since in 1_700_000_000i64..1_800_000_000,
            span in 1i64..(60 * DAY),
            cap in 2usize..500,
        ) {
            let s = DateTime::from_timestamp(since, 0).unwrap();
            let u = s + chrono::Duration::seconds(span);
            let w = width(Every(60), Some(cap), s, u, &Cet).unwrap();
            prop_assert!(Buckets::new(w, Cet).count(s, u, cap) <= cap);
        }
    }
}
