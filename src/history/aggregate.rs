//! `GET /aggregate`: statistics per series in buckets of `every`, aligned in local time like
//! the cron windows of `iotitan-stats` (an hourly bucket is a `0 * * * *` window, a daily one
//! starts at local midnight, weekly ones on Monday), empty buckets left out.
//!
//! A width below a day must divide the day, so every day starts a bucket; wider ones are whole
//! days, counted from a Monday. Around DST changes buckets follow the wall clock as cron does:
//! the repeated hour's two occurrences are one bucket two hours long, and the skipped hour has
//! no bucket.

use super::{Consumer, Value};
use crate::energy::{Amounts, Curve, Meter, inside, overlaps};
use crate::statistic::{Series, Statistic};
use crate::syslog::clock::Zone;
use crate::topic::group_of;
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

/// `{"start", "count", <statistic>: number…}`, as [`Bucket`]'s `Serialize` writes it.
impl utoipa::PartialSchema for Bucket {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Type};
        use utoipa::openapi::{KnownFormat, SchemaFormat};
        ObjectBuilder::new()
            .property(
                "start",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))),
            )
            .required("start")
            .property(
                "count",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(0)),
            )
            .required("count")
            .additional_properties(Some(AdditionalProperties::from(
                ObjectBuilder::new().schema_type(Type::Number),
            )))
            .description(Some(
                "A bucket: its first instant, its count, then each statistic asked for that is \
                 defined, by name",
            ))
            .into()
    }
}

impl utoipa::ToSchema for Bucket {}

/// The answer of `/aggregate`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = AggregateAnswer)]
pub struct Answer {
    /// The buckets of each series, oldest first.
    pub series: BTreeMap<String, Vec<Bucket>>,
    /// The bucket width used, in seconds (wider than asked when `max_points` required it).
    pub every: i64,
}

/// One bucket as a consumer keeps it.
#[derive(Debug, Clone)]
struct Held {
    /// Its local start (the key buckets are ordered by).
    key: NaiveDateTime,
    /// The instants it starts and ends at.
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    /// The statistics of its readings.
    series: Series,
    /// Its part of the curve.
    energy: Amounts,
}

/// The energy side of an aggregate: the curve of each series, read in time order with the
/// readings before the range and the first after it, and where its pieces count.
#[derive(Debug, Clone)]
pub struct Curves {
    /// The time counted: the range, or a calendar's hours in it (or the rest of it); sorted,
    /// disjoint. Readings outside only move the curves.
    spans: Vec<(i64, i64)>,
    max_gap: i64,
    /// Each series' meter and curve: by the index of its list when series are not grouped
    /// (so a reading costs one hash, not two), else by name (a group's members each have
    /// theirs).
    tracks: Vec<Track>,
    named: ahash::AHashMap<Box<str>, usize>,
    /// A fork's curves, which start where an earlier range ends: see [`Track`].
    forked: bool,
    /// Set by a merge that found a fork's guess wrong: the answer must be read again on one
    /// thread.
    inexact: bool,
}

/// How many of a series' first readings a fork holds back for the merge.
const HELD: usize = 32;

/// One series' meter and curve.
///
/// A fork reads a range whose series' state it cannot know: a meter's baseline after a dip of
/// under 10 % is an older reading, kept for as long as the meter stays below it, so a later
/// range's steps can depend on readings it never saw. So a fork holds back each series'
/// first [`HELD`] readings, uncounted, and counts the rest from the state those readings give
/// on their own (a guess). The merge replays the held readings after the earlier range's
/// state, exactly as one pass would, and checks that they lead to the state guessed; they
/// do unless the meter dipped and stayed in its jitter band, or readings came out of order
/// across the cut, both for all of the held readings: then the merge marks the answer inexact and
/// it is read again on one thread. Holding costs a replay of 32 readings per series and
/// range (nothing beside a read of millions) and 512 bytes per series while a fork reads.
#[derive(Debug, Clone, Default)]
struct Track {
    meter: Meter,
    curve: Option<Curve>,
    /// In a fork: the first readings (µs, value), held for the merge.
    held: Vec<(i64, f64)>,
    /// In a fork: the state the held readings gave on their own, once all were held.
    guess: Option<(Meter, Option<Curve>)>,
}

impl Curves {
    /// Curves counted over `spans` (µs, sorted, disjoint), bridging at most `max_gap`.
    pub fn new(spans: Vec<(i64, i64)>, max_gap: std::time::Duration) -> Self {
        Curves {
            spans,
            max_gap: i64::try_from(max_gap.as_micros()).unwrap_or(i64::MAX),
            tracks: Vec::new(),
            named: ahash::AHashMap::new(),
            forked: false,
            inexact: false,
        }
    }

    /// The curves of a fork: the same spans, no series yet.
    fn fork(&self) -> Self {
        Curves {
            spans: self.spans.clone(),
            max_gap: self.max_gap,
            tracks: Vec::new(),
            named: ahash::AHashMap::new(),
            forked: true,
            inexact: false,
        }
    }

    /// The track of a series: `named` when series are grouped (its name), else the one of
    /// list `i` (the series').
    fn track(&mut self, named: Option<&str>, i: usize) -> &mut Track {
        let i = match named {
            None => i,
            Some(series) => match self.named.get(series) {
                Some(&j) => j,
                None => {
                    self.named.insert(series.into(), self.tracks.len());
                    self.tracks.len()
                }
            },
        };
        if self.tracks.len() <= i {
            self.tracks.resize_with(i + 1, Track::default);
        }
        &mut self.tracks[i]
    }

    /// Every series' track, by name (`names`: the lists' indices by series name).
    fn into_tracks(self, names: &ahash::AHashMap<Box<str>, usize>) -> Vec<(Box<str>, Track)> {
        let mut tracks: Vec<Option<Track>> = self.tracks.into_iter().map(Some).collect();
        let names = if self.named.is_empty() {
            names
        } else {
            &self.named
        };
        names
            .iter()
            .filter_map(|(name, &i)| Some((name.clone(), tracks.get_mut(i)?.take()?)))
            .collect()
    }

    /// µs of `[start, end)` that are counted.
    fn counted(&self, start: i64, end: i64) -> i64 {
        overlaps(&self.spans, start, end).map(|(s, e)| e - s).sum()
    }
}

/// Collects per-bucket statistics.
#[derive(Debug)]
pub struct Aggregate<Z> {
    buckets: Buckets<Z>,
    statistics: Vec<Statistic>,
    keep_values: bool,
    /// `by=N`: series are summed per prefix of their first N topic levels (and measure).
    by: Option<usize>,
    /// The current reading's group name, a buffer kept between readings.
    group: String,
    /// Set when energy statistics or a calendar are asked for.
    curves: Option<Curves>,
    /// Series (or group) name → index into `lists`: one hash of the name per reading.
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
            by: None,
            group: String::new(),
            curves: None,
            names: ahash::AHashMap::new(),
            lists: Vec::new(),
        }
    }

    /// Sum series per prefix of their first `n` topic levels.
    pub fn by(mut self, n: usize) -> Self {
        self.by = Some(n);
        self
    }

    /// Count only `curves`' spans, and follow each series' curve for the energy statistics.
    /// The readings fed then include those of the lookback before the range and of `max_gap`
    /// after it; only the spans' are counted.
    pub fn with_curves(mut self, curves: Curves) -> Self {
        self.curves = Some(curves);
        self
    }

    /// The answer.
    pub fn finish(self) -> Answer {
        let stats = self.statistics;
        let grouped = self.by.is_some();
        let curves = self.curves;
        let mut lists: Vec<Option<Vec<Held>>> = self.lists.into_iter().map(Some).collect();
        let value = |h: &Held, st: Statistic| -> Option<f64> {
            match st {
                // Of one series: a group's members overlap in time.
                Statistic::Twmean | Statistic::Coverage if grouped => None,
                Statistic::Coverage => {
                    let counted = curves.as_ref().map_or(0, |c| {
                        c.counted(h.start.timestamp_micros(), h.end.timestamp_micros())
                    });
                    h.energy.get(st, counted)
                }
                st if st.is_energy() => h.energy.get(st, 0),
                st => h.series.get(st),
            }
        };
        let series = self
            .names
            .into_iter()
            .map(|(name, i)| {
                let list = lists[i]
                    .take()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|h| Bucket {
                        start: h.start,
                        count: h.series.count(),
                        values: stats
                            .iter()
                            .filter(|&&st| st != Statistic::Count)
                            .filter_map(|&st| value(&h, st).map(|v| (st, v)))
                            .collect(),
                    })
                    .collect();
                (name.into(), list)
            })
            // A series only read around the time counted (its curve) has no bucket.
            .filter(|(_, list): &(String, Vec<Bucket>)| !list.is_empty())
            .collect();
        Answer {
            series,
            every: self.buckets.every.0,
        }
    }
}

/// The index of the list of series `name`, created empty on first use.
fn index(
    names: &mut ahash::AHashMap<Box<str>, usize>,
    lists: &mut Vec<Vec<Held>>,
    name: &str,
) -> usize {
    match names.get(name) {
        Some(&i) => i,
        None => {
            names.insert(name.into(), lists.len());
            lists.push(Vec::new());
            lists.len() - 1
        }
    }
}

/// The bucket of `t` in `list`, created empty on first use.
fn bucket<'l, Z: Zone>(
    list: &'l mut Vec<Held>,
    buckets: &mut Buckets<Z>,
    keep_values: bool,
    t: DateTime<Utc>,
) -> &'l mut Held {
    let (key, start, end) = buckets.of(t);
    let at = match list.last() {
        Some(b) if b.key == key => list.len() - 1,
        _ => match list.binary_search_by(|b| b.key.cmp(&key)) {
            Ok(i) => i,
            // A new bucket: at the end in time order, in the middle for another source.
            Err(i) => {
                list.insert(
                    i,
                    Held {
                        key,
                        start,
                        end,
                        series: Series::new(keep_values),
                        energy: Amounts::default(),
                    },
                );
                i
            }
        },
    };
    &mut list[at]
}

/// Add `h` to the bucket of its key in `list` (kept in key order), creating it if needed.
fn add(list: &mut Vec<Held>, h: Held) {
    let merge = |b: &mut Held, h: Held| {
        b.series.merge(h.series);
        b.energy.add(h.energy);
    };
    match list.last_mut() {
        Some(b) if b.key == h.key => merge(b, h),
        Some(b) if b.key < h.key => list.push(h),
        _ => match list.binary_search_by(|b| b.key.cmp(&h.key)) {
            Ok(i) => merge(&mut list[i], h),
            Err(i) => list.insert(i, h),
        },
    }
}

impl<Z: Zone> Aggregate<Z> {
    /// Add the reading `v` of `series` at `time` to the buckets of `name` (the series or its
    /// group), and to the series' curve.
    fn add_reading(&mut self, time: DateTime<Utc>, series: &str, name: &str, v: f64) {
        let (keep, buckets) = (self.keep_values, &mut self.buckets);
        let i = index(&mut self.names, &mut self.lists, name);
        let list = &mut self.lists[i];
        let Some(curves) = &mut self.curves else {
            bucket(list, buckets, keep, time).series.push(time, v);
            return;
        };
        let t = time.timestamp_micros();
        let max_gap = curves.max_gap;
        let forked = curves.forked;
        let track = curves.track(self.by.map(|_| series), i);
        let step = track.meter.step(t, v);
        let piece = track
            .curve
            .get_or_insert_with(|| Curve::new(max_gap))
            .piece(t, v);
        if forked && track.held.len() < HELD {
            track.held.push((t, v));
            if track.held.len() == HELD {
                track.guess = Some((track.meter, track.curve));
            }
            return;
        }
        let counted = inside(&curves.spans, t);
        if counted {
            let b = bucket(list, buckets, keep, time);
            b.series.push(time, v);
            b.energy.increase += step.unwrap_or(0.0);
        }
        let Some(piece) = piece else {
            return;
        };
        // The piece's parts in the counted spans, bucket by bucket.
        for (mut s, e) in overlaps(&curves.spans, piece.from.0, piece.to.0) {
            while s < e {
                let Some(at) = DateTime::from_timestamp_micros(s) else {
                    break;
                };
                let held = bucket(list, buckets, keep, at);
                let end = held.end.timestamp_micros().min(e);
                if end <= s {
                    break;
                }
                held.energy.area += piece.area(s, end);
                held.energy.covered += end - s;
                s = end;
            }
        }
    }
}

impl<Z: Zone> Aggregate<Z> {
    /// Feed a later range's held readings after this one's, series by series, and check
    /// that they lead to the state the later range went on from.
    fn replay(&mut self, later: Curves, names: &ahash::AHashMap<Box<str>, usize>) {
        let mut buffer = String::new();
        let inexact = later.inexact;
        for (series, track) in later.into_tracks(names) {
            for &(t, v) in &track.held {
                let Some(time) = DateTime::from_timestamp_micros(t) else {
                    continue;
                };
                let name = match self.by {
                    Some(n) => group_of(&series, n, &mut buffer),
                    None => &series,
                };
                let name = name.to_owned();
                self.add_reading(time, &series, &name, v);
            }
            // Ungrouped, a series' track goes with its list; grouped, with its name.
            let i = match self.by {
                None => index(&mut self.names, &mut self.lists, &series),
                Some(_) => 0,
            };
            let Some(curves) = &mut self.curves else {
                return;
            };
            let mine = curves.track(self.by.map(|_| &*series), i);
            // Past its held readings, the later range went on from its guess: its state at
            // the end is the one to go on from, if the guess was right.
            let Some(guess) = track.guess else {
                continue;
            };
            let wrong = (mine.meter, mine.curve) != guess;
            mine.meter = track.meter;
            mine.curve = track.curve;
            curves.inexact |= wrong;
        }
        if let Some(curves) = &mut self.curves {
            curves.inexact |= inexact;
        }
    }
}

impl<Z: Zone + Clone + Send> Consumer for Aggregate<Z> {
    fn reading(&mut self, time: DateTime<Utc>, series: &str, value: Value<'_>) {
        let Value::Number(v) = value else {
            return;
        };
        let mut buffer = std::mem::take(&mut self.group);
        let name = match self.by {
            Some(n) => group_of(series, n, &mut buffer),
            None => series,
        };
        self.add_reading(time, series, name, v);
        self.group = buffer;
    }

    fn series(&self) -> usize {
        let tracked = self.curves.as_ref().map_or(0, |c| c.tracks.len());
        self.names.len().max(tracked)
    }

    /// False when a fork's curves could not be joined exactly to the range before them
    /// ([`Track`]).
    fn exact(&self) -> bool {
        self.curves.as_ref().is_none_or(|c| !c.inexact)
    }

    fn fork(&self) -> Option<Self> {
        Some(Aggregate {
            buckets: self.buckets.clone(),
            statistics: self.statistics.clone(),
            keep_values: self.keep_values,
            by: self.by,
            group: String::new(),
            curves: self.curves.as_ref().map(Curves::fork),
            names: ahash::AHashMap::new(),
            lists: Vec::new(),
        })
    }

    /// Exact where it must be: counts, min, max and kept values (median, percentiles) of a
    /// bucket split between two ranges are those of one pass; mean and stddev agree up to
    /// rounding ([`Series::merge`]).
    ///
    /// A fork's held readings are replayed first, after this one's state ([`Track`]).
    fn merge(&mut self, mut later: Self) {
        if let Some(theirs) = later.curves.take() {
            self.replay(theirs, &later.names);
        }
        let mut lists: Vec<Option<Vec<Held>>> = later.lists.into_iter().map(Some).collect();
        for (name, i) in later.names {
            let theirs = lists[i].take().unwrap_or_default();
            let mine = match self.names.get(&name) {
                Some(&j) => j,
                None => {
                    self.names.insert(name, self.lists.len());
                    self.lists.push(Vec::new());
                    self.lists.len() - 1
                }
            };
            for h in theirs {
                add(&mut self.lists[mine], h);
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

    /// A week of an office (TZ CET, DST ends inside it): power and meters of three plugs in
    /// two rooms, readings at irregular times, gaps, meter resets and jitter, readings before
    /// and after the range. Daily buckets by room, within and outside office hours, against
    /// a computation of the definitions second by second.
    #[test]
    fn energy_by_room_within_and_outside_office_hours_is_exact() {
        use crate::calendar::Calendar;
        const S: i64 = 1_000_000;
        let (since, until) = (utc("2026-10-22T00:00:00Z"), utc("2026-10-29T00:00:00Z"));
        let (a, b) = (since.timestamp_micros(), until.timestamp_micros());
        let office = Calendar::new("office", vec!["Mon-Fri 07:00-20:00".parse().unwrap()]);
        let max_gap = 15 * 60 * S;
        // Readings: (series, t in whole seconds, value), from an hour before to 20 min after.
        let mut readings: Vec<(String, i64, f64)> = Vec::new();
        let mut seed = 7u64;
        let mut rnd = move |n: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        for (room, plug) in [("room1", "plugA"), ("room1", "plugB"), ("room2", "plugC")] {
            let (mut t, mut meter) = (a / S - 3600, 100.0 * rnd(10) as f64);
            while t < b / S + 1200 {
                // Mostly 10 s apart, sometimes a gap of up to an hour.
                t += if rnd(500) == 0 {
                    900 + rnd(2700) as i64
                } else {
                    1 + rnd(20) as i64
                };
                let w = 10.0 + rnd(2000) as f64 / 10.0;
                readings.push((format!("office/floor1/{room}/{plug}/power"), t, w));
                meter += w * 0.001;
                let shown = match rnd(1000) {
                    0 => {
                        meter = rnd(5) as f64; // a reboot: the counter starts again
                        meter
                    }
                    1 => meter * 0.95, // jitter
                    _ => meter,
                };
                readings.push((format!("office/floor1/{room}/{plug}/energy"), t, shown));
            }
        }
        readings.sort_by_key(|r| r.1);
        for within in [None, Some(true), Some(false)] {
            let spans = match within {
                None => vec![(a, b)],
                Some(true) => office.spans(&Cet, a, b),
                Some(false) => office.outside(&Cet, a, b),
            };
            let inside = |t: i64| spans.iter().any(|&(s, e)| s <= t && t < e);
            for every in [Every(DAY), Every(3600)] {
                // As one asks: meters for their increase, power for its integral.
                let run = |kind: &str, st: Statistic| {
                    let mut agg = Aggregate::new(every, Cet, &[st, Statistic::Count])
                        .by(3)
                        .with_curves(Curves::new(
                            spans.clone(),
                            std::time::Duration::from_secs(900),
                        ));
                    for (series, t, v) in readings.iter().filter(|r| r.0.ends_with(kind)) {
                        agg.reading(
                            DateTime::from_timestamp(*t, 0).unwrap(),
                            series,
                            Value::Number(*v),
                        );
                    }
                    agg.finish()
                };
                let meters = run("/energy", Statistic::Increase);
                let power = run("/power", Statistic::Integral);
                // The definitions, one series at a time, second by second for the integral.
                let mut want: BTreeMap<(String, i64), (f64, f64)> = BTreeMap::new();
                let mut buckets = Buckets::new(every, Cet);
                let mut key = |t: i64| {
                    buckets
                        .of(DateTime::from_timestamp(t, 0).unwrap())
                        .1
                        .timestamp()
                };
                let names: std::collections::BTreeSet<&String> =
                    readings.iter().map(|r| &r.0).collect();
                for name in names {
                    let levels: Vec<&str> = name.split('/').collect();
                    let room = format!("{}/{}", levels[..3].join("/"), levels[levels.len() - 1]);
                    let rs: Vec<(i64, f64)> = readings
                        .iter()
                        .filter(|r| &r.0 == name)
                        .map(|r| (r.1, r.2))
                        .collect();
                    if name.ends_with("/energy") {
                        let mut m = rs[0].1;
                        for &(t, v) in &rs[1..] {
                            let step = if v >= m {
                                let d = v - m;
                                m = v;
                                d
                            } else if v < 0.9 * m {
                                m = v;
                                v
                            } else {
                                0.0
                            };
                            if inside(t * S) {
                                want.entry((room.clone(), key(t))).or_default().0 += step;
                            }
                        }
                    } else {
                        for w in rs.windows(2) {
                            let ((t0, v0), (t1, v1)) = (w[0], w[1]);
                            if t1 == t0 || (t1 - t0) * S > max_gap {
                                continue;
                            }
                            for sec in t0..t1 {
                                if inside(sec * S) {
                                    let f = |x: i64| {
                                        v0 + (v1 - v0) * (x - t0) as f64 / (t1 - t0) as f64
                                    };
                                    want.entry((room.clone(), key(sec))).or_default().1 +=
                                        (f(sec) + f(sec + 1)) / 2.0 / 3600.0;
                                }
                            }
                        }
                    }
                }
                let close = |x: f64, y: f64| (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1e-6);
                let value = |a: &Answer, room: &str, start: i64, st: Statistic| {
                    a.series
                        .get(room)
                        .and_then(|l| l.iter().find(|b| b.start.timestamp() == start))
                        .and_then(|b| b.values.iter().find(|(s, _)| *s == st))
                        .map_or(0.0, |(_, v)| *v)
                };
                for ((room, start), (inc, int)) in &want {
                    let got = value(&meters, room, *start, Statistic::Increase);
                    assert!(
                        close(got, *inc),
                        "{room} {start} {within:?}: increase {got} want {inc}"
                    );
                    let got = value(&power, room, *start, Statistic::Integral);
                    assert!(
                        close(got, *int),
                        "{room} {start} {within:?}: integral {got} want {int}"
                    );
                }
                assert!(want.len() >= if every == Every(DAY) { 10 } else { 100 });
            }
        }
    }

    /// An energy aggregate of `readings` (series index, µs, value) read in one pass, or cut
    /// at `cut` into two ranges read apart (the second by a fork) and merged.
    fn energy_pass(readings: &[(usize, i64, f64)], cut: Option<usize>) -> Aggregate<Utc> {
        let stats = [
            Statistic::Increase,
            Statistic::Integral,
            Statistic::Count,
            Statistic::Mean,
            Statistic::Max,
        ];
        let new = || {
            Aggregate::new(Every(3600), Utc, &stats)
                .by(1)
                .with_curves(Curves::new(
                    vec![(0, 6 * 3_600_000_000)],
                    std::time::Duration::from_secs(900),
                ))
        };
        let feed = |agg: &mut Aggregate<Utc>, part: &[(usize, i64, f64)]| {
            for &(i, t, v) in part {
                let time = DateTime::from_timestamp_micros(t).unwrap();
                agg.reading(time, &format!("plugs/p{i}/energy"), Value::Number(v));
            }
        };
        let mut agg = new();
        let Some(cut) = cut else {
            feed(&mut agg, readings);
            return agg;
        };
        let mut later = agg.fork().unwrap();
        feed(&mut agg, &readings[..cut]);
        feed(&mut later, &readings[cut..]);
        agg.merge(later);
        agg
    }

    fn same_answers(a: &Answer, b: &Answer) -> Result<(), String> {
        let close = |x: f64, y: f64| (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0);
        let flat = |a: &Answer| -> Vec<(String, Bucket)> {
            a.series
                .iter()
                .flat_map(|(n, l)| l.iter().map(|b| (n.clone(), b.clone())))
                .collect()
        };
        let (x, y) = (flat(a), flat(b));
        if x.len() != y.len() {
            return Err(format!("{} buckets, {} in one pass", x.len(), y.len()));
        }
        for (p, q) in x.iter().zip(&y) {
            let (u, v) = (&p.1.values, &q.1.values);
            let values =
                u.len() == v.len() && u.iter().zip(v).all(|(u, v)| u.0 == v.0 && close(u.1, v.1));
            if (&p.0, p.1.start, p.1.count) != (&q.0, q.1.start, q.1.count) || !values {
                return Err(format!("{p:?} against one pass's {q:?}"));
            }
        }
        Ok(())
    }

    fn plug_readings() -> impl Strategy<Value = Vec<(usize, i64, f64)>> {
        // Three plugs over six hours, each reading 1–120 s after the one before (sometimes at
        // the same instant, sometimes after a gap), meters that grow, reboot and jitter.
        prop::collection::vec((0..3usize, 0..120i64, 0..100u8, 0.0f64..50.0), 1..400).prop_map(
            |steps| {
                let mut t = 0;
                let mut meters = [1000.0f64; 3];
                steps
                    .into_iter()
                    .map(|(i, dt, kind, grow)| {
                        t += if kind == 99 { 1800 } else { dt } * 1_000_000;
                        meters[i] += grow;
                        let v = match kind {
                            0..=2 => {
                                meters[i] = grow;
                                grow
                            }
                            3..=9 => meters[i] * 0.95,
                            _ => meters[i],
                        };
                        (i, t, v)
                    })
                    .collect()
            },
        )
    }

    proptest! {
        /// A range cut between two threads gives one pass's answer, or says that it cannot
        /// (and is read again on one thread).
        #[test]
        fn energy_read_on_two_threads_is_one_pass(r in plug_readings(), cut in 0.0f64..1.0) {
            let cut = ((r.len() as f64) * cut) as usize;
            let one = energy_pass(&r, None);
            prop_assert!(one.exact());
            let two = energy_pass(&r, Some(cut));
            if two.exact() {
                let (a, b) = (two.finish(), one.finish());
                prop_assert!(same_answers(&a, &b).is_ok(), "{:?}", same_answers(&a, &b));
            }
        }

        /// Meters that only grow are always joined exactly.
        #[test]
        fn growing_meters_join_exactly(r in plug_readings(), cut in 0.0f64..1.0) {
            let mut totals = [0.0f64; 3];
            let r: Vec<_> = r.into_iter().map(|(i, t, v)| { totals[i] += v; (i, t, totals[i]) }).collect();
            let cut = ((r.len() as f64) * cut) as usize;
            let two = energy_pass(&r, Some(cut));
            prop_assert!(two.exact());
            prop_assert!(same_answers(&two.finish(), &energy_pass(&r, None).finish()).is_ok());
        }
    }

    /// A meter that dips just under its baseline and stays there across the cut for more
    /// readings than a fork holds back: the merge cannot know, and says so.
    #[test]
    fn a_meter_stuck_in_its_jitter_band_across_a_cut_is_read_again() {
        let mut r: Vec<(usize, i64, f64)> = vec![(0, 0, 100.0)];
        let stuck = HELD as i64 + 4;
        for k in 1..=stuck {
            r.push((0, k * 60_000_000, 95.0));
        }
        r.push((0, (stuck + 1) * 60_000_000, 101.0));
        assert!(!energy_pass(&r, Some(1)).exact());
        // Stuck for fewer readings than are held back, the dip is replayed and joined exactly.
        r.drain(5..=stuck as usize);
        let two = energy_pass(&r, Some(1));
        assert!(two.exact());
        let inc = |a: Answer| a.series["plugs/energy"][0].values[0];
        assert_eq!(inc(two.finish()), (Statistic::Increase, 1.0));
    }

    #[test]
    fn coverage_and_twmean_leave_gaps_out() {
        let t0 = utc("2026-11-23T10:00:00Z");
        let spans = vec![(
            t0.timestamp_micros(),
            (t0 + chrono::Duration::hours(2)).timestamp_micros(),
        )];
        let stats = [Statistic::Twmean, Statistic::Coverage, Statistic::Integral];
        let mut agg = Aggregate::new(Every(3600), Utc, &stats)
            .with_curves(Curves::new(spans, std::time::Duration::from_secs(900)));
        for m in (0..=120).filter(|m| !(71..100).contains(m)) {
            let w = if m < 60 { 100.0 } else { 200.0 };
            agg.reading(
                t0 + chrono::Duration::minutes(m),
                "p/power",
                Value::Number(w),
            );
        }
        let a = agg.finish();
        let get = |i: usize, st: Statistic| {
            a.series["p/power"][i]
                .values
                .iter()
                .find(|(s, _)| *s == st)
                .map(|(_, v)| *v)
        };
        // The first hour: covered whole (the ramp to 200 W in its last minute); the second:
        // 30 minutes between 11:10 and 11:40 are a gap.
        assert_eq!(get(0, Statistic::Coverage), Some(1.0));
        assert_eq!(get(1, Statistic::Coverage), Some(0.5));
        assert_eq!(get(1, Statistic::Twmean), Some(200.0));
        let first = get(0, Statistic::Integral).unwrap();
        assert!(
            (first - (100.0 * 59.0 / 60.0 + 150.0 / 60.0)).abs() < 1e-9,
            "{first}"
        );
        assert!((get(0, Statistic::Twmean).unwrap() - first).abs() < 1e-9);
    }

    #[test]
    fn hourly_increases_add_up_to_the_daily_one() {
        // Three local days, Sunday 25 October with 25 hours.
        let spans = vec![(
            utc("2026-10-23T22:00:00Z").timestamp_micros(),
            utc("2026-10-26T23:00:00Z").timestamp_micros(),
        )];
        let run = |every: Every| {
            let mut agg = Aggregate::new(every, Cet, &[Statistic::Increase, Statistic::Integral])
                .with_curves(Curves::new(
                    spans.clone(),
                    std::time::Duration::from_secs(900),
                ));
            let mut v = 0.0;
            for i in 0..(4 * 24 * 60) {
                let t = utc("2026-10-23T21:00:00Z") + chrono::Duration::seconds(i * 60 + (i % 7));
                v += (i % 13) as f64;
                agg.reading(
                    t,
                    "p/energy",
                    Value::Number(if i % 500 == 0 { 1.0 } else { v }),
                );
                agg.reading(t, "p/power", Value::Number((i % 17) as f64));
            }
            agg.finish()
        };
        let sum = |a: &Answer, series: &str, st: Statistic| -> f64 {
            a.series[series]
                .iter()
                .flat_map(|b| b.values.iter())
                .filter(|(s, _)| *s == st)
                .map(|(_, v)| v)
                .sum()
        };
        let (hourly, daily) = (run(Every(3600)), run(Every(DAY)));
        assert_eq!(daily.series["p/energy"].len(), 3);
        for (series, st) in [
            ("p/energy", Statistic::Increase),
            ("p/power", Statistic::Integral),
        ] {
            let (h, d) = (sum(&hourly, series, st), sum(&daily, series, st));
            assert!(
                (h - d).abs() <= 1e-9 * d.abs(),
                "{series}: hourly {h}, daily {d}"
            );
        }
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
