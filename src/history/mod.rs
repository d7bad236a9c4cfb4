//! The history of the topics, read back from syslog for the HTTP read API: what was seen
//! ([`topics`]), the raw rows ([`rows`]), bucketed statistics ([`aggregate`]), the best
//! devices by a feature ([`top`]), the distribution of a topic's values ([`histogram`]) and
//! where a device has been ([`track`]).
//!
//! Each answer is computed by a *consumer*: a pure state machine that is handed readings
//! `(time, series, value)` and produces the answer type (the JSON shapes of the HTTP
//! contract). Consumers do no I/O, so they are unit- and property-tested on their own.
//!
//! The readings come from the read engine ([`crate::records`]) that `iotitan-stats` reads with
//! too: each line is classified by its [`Reader`](crate::records::Reader), and each record's
//! payload turned into numbers by the configured [`Extractor`] ([`Readings`]). [`read`] runs a
//! scan for a consumer; [`api`] serves the consumers over HTTP; [`query`] is `iotitan-stats
//! query`'s export of the raw history.

pub mod aggregate;
pub mod api;
pub(crate) mod histogram;
pub mod query;
pub mod read;
pub(crate) mod rows;
pub(crate) mod top;
pub(crate) mod topics;
pub mod track;

use crate::payload::{self, Extractor, Reading, Rejected};
use crate::privacy::Locations;
use crate::records::{Decisions, Records};
use crate::topic::{Filters, Matcher};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::borrow::Cow;
use std::ops::ControlFlow;

/// Longest payload kept as a state (`online`, `offline`, `OPEN`): longer non-numeric payloads
/// are documents, not states, and would make a histogram's `states` unreadable.
pub const MAX_STATE: usize = 64;

/// The value of one reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    /// A number the payload rules read (plain numbers, `on`/`off`, JSON fields).
    Number(f64),
    /// A short non-numeric payload, trimmed: an LWT `online`/`offline`, a door's `OPEN`.
    State(&'a str),
}

/// An owned [`Value`], as answers keep it: a JSON number or a JSON string.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = Value)]
#[serde(untagged)]
pub enum Owned {
    /// A number.
    Number(f64),
    /// A state.
    State(String),
}

impl From<Value<'_>> for Owned {
    fn from(v: Value<'_>) -> Owned {
        match v {
            Value::Number(n) => Owned::Number(n),
            Value::State(s) => Owned::State(s.to_owned()),
        }
    }
}

/// What a consumer is handed, one reading at a time, in the order of the sources (each
/// source in time order; several sources interleave).
///
/// A large file is read on every core: split into ranges of lines, each fed to a consumer of
/// its own ([`Consumer::fork`]), whose results are then merged in line order
/// ([`Consumer::merge`]). A consumer that cannot merge exactly keeps the default `fork`, and
/// its reads stay on one thread.
pub trait Consumer: Send + Sized {
    /// One reading of `series` (the topic, or `<topic>/<field>` for JSON fields) at `time`.
    fn reading(&mut self, time: DateTime<Utc>, series: &str, value: Value<'_>);

    /// An empty consumer with this one's settings, for the lines that follow the ones this
    /// one is fed; `None` when this consumer must see every line itself.
    fn fork(&self) -> Option<Self> {
        None
    }

    /// Add what `later`, a [`fork`](Consumer::fork) of this consumer, was fed: the readings
    /// of the lines right after the ones this one was fed.
    fn merge(&mut self, later: Self) {
        let _ = later;
    }

    /// Whether what was merged is what one pass would have given; when not, the read is
    /// done again on one thread ([`read::Context::read_exact`]).
    fn exact(&self) -> bool {
        true
    }

    /// How many distinct series it holds: what a read's `max_series` bounds, the memory that
    /// grows with the series read. 0 for a consumer whose memory does not grow with them.
    fn series(&self) -> usize {
        0
    }
}

/// Distinct series names seen, for a consumer that keeps no map of its own (its count is
/// bounded by the read's `max_series`: past it, the read stops).
#[derive(Debug, Default, Clone)]
pub struct SeriesSet(ahash::AHashSet<Box<str>>);

impl SeriesSet {
    /// Note `series` as seen.
    pub fn note(&mut self, series: &str) {
        if !self.0.contains(series) {
            self.0.insert(series.into());
        }
    }

    /// Add the series of another set.
    pub fn extend(&mut self, other: SeriesSet) {
        self.0.extend(other.0);
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The state a non-numeric payload stands for, if it is one: short, UTF-8, not blank.
pub fn state_of(payload: &[u8]) -> Option<&str> {
    let s = std::str::from_utf8(payload).ok()?.trim();
    (!s.is_empty() && s.len() <= MAX_STATE && !s.contains(['\n', '\r'])).then_some(s)
}

/// What [`Readings`] decided about a topic, once.
#[derive(Debug, Clone)]
enum Route {
    /// Not selected (or not UTF-8).
    Unwanted,
    /// Selected, and no JSON rule applies: the payload is one plain value of the topic.
    Plain(Box<str>),
    /// Selected, and a JSON rule applies: the extractor names the series.
    Rules(Box<str>),
}

/// Most topics whose routes a read remembers, on each thread. A scan serves up to a dozen
/// reads at once ([`read::READS_PER_SCAN`]), each with a cache of its own on every core: at
/// about 100 bytes a topic, this many keep them all within a few tens of MB over a flood of
/// distinct topics, and an installation's real topics (hundreds, a few thousand) all fit.
const ROUTES: usize = 1 << 14;

/// Turns the records of the selected topics into readings for a consumer: the [`Records`]
/// side of a read, like `query`'s export.
pub struct Readings<C> {
    topics: Matcher,
    extractor: Extractor,
    readings: Vec<Reading>,
    /// Whether each topic is selected, and how its payload is read.
    routes: Decisions<Route>,
    /// The consumer.
    pub consumer: C,
    /// Records of the selected topics that gave neither a number nor a state (documents
    /// without the configured fields, payloads the logger cut).
    pub rejected: u64,
    /// Most series the consumer may hold ([`Consumer::series`]).
    max_series: usize,
    /// Set once the consumer held more: the read stopped there.
    pub too_many: bool,
    /// Locations in private areas, withheld from what is read (records written before the
    /// area was configured still hold them).
    locations: std::sync::Arc<Locations>,
}

impl<C: Consumer> Readings<C> {
    /// The readings of the records of `topics`, read by `extractor`, for `consumer`.
    pub fn new(topics: Filters, extractor: Extractor, consumer: C) -> Self {
        Readings {
            topics: Matcher::new(&topics),
            extractor,
            readings: Vec::new(),
            routes: Decisions::with_capacity(ROUTES),
            consumer,
            rejected: 0,
            max_series: usize::MAX,
            too_many: false,
            locations: std::sync::Arc::default(),
        }
    }

    /// Withhold the locations `locations` finds in private areas.
    pub fn with_locations(mut self, locations: std::sync::Arc<Locations>) -> Self {
        self.locations = locations;
        self
    }

    /// Stop reading once the consumer holds more than `max` series.
    pub fn with_max_series(mut self, max: usize) -> Self {
        self.max_series = max;
        self
    }
}

/// The route of a topic.
fn route(topics: &Matcher, extractor: &Extractor, topic: &[u8]) -> Route {
    match std::str::from_utf8(topic) {
        Ok(t) if topics.matches(t) && extractor.is_plain(t) => Route::Plain(t.into()),
        Ok(t) if topics.matches(t) => Route::Rules(t.into()),
        _ => Route::Unwanted,
    }
}

impl<C: Consumer> Records for Readings<C> {
    fn record(
        &mut self,
        micros: i64,
        topic: Cow<'_, [u8]>,
        payload: Result<Cow<'_, [u8]>, Rejected>,
    ) -> ControlFlow<()> {
        let (topics, extractor) = (&self.topics, &self.extractor);
        // A list of series (the dashboard's): a topic off the list is passed over with one
        // lookup, and without taking a place in the cache.
        if topics.surely_not(&topic) {
            return ControlFlow::Continue(());
        }
        let decided = self.routes.decide(&topic, |t| route(topics, extractor, t));
        let (topic, plain) = match decided.get() {
            Route::Unwanted => return ControlFlow::Continue(()),
            Route::Plain(t) => (&**t, true),
            Route::Rules(t) => (&**t, false),
        };
        let Some(time) = DateTime::from_timestamp_micros(micros) else {
            return ControlFlow::Continue(());
        };
        let Ok(payload) = payload else {
            self.rejected += 1;
            return ControlFlow::Continue(());
        };
        let payload = self.locations.withhold(topic, &payload);
        let got = if plain {
            // One value named after the topic: no reading to build.
            payload::parse_plain(&payload)
                .map(|v| self.consumer.reading(time, topic, Value::Number(v)))
        } else {
            self.readings.clear();
            self.extractor
                .readings(topic, &payload, &mut self.readings)
                .map(|()| {
                    for r in &self.readings {
                        self.consumer
                            .reading(time, &r.series, Value::Number(r.value));
                    }
                })
        };
        match got {
            Ok(()) => {}
            Err(Rejected::NotNumeric) => match state_of(&payload) {
                Some(s) => self.consumer.reading(time, topic, Value::State(s)),
                None => self.rejected += 1,
            },
            Err(_) => self.rejected += 1,
        }
        if self.consumer.series() > self.max_series {
            // The answer would be refused: nothing after this line can change that.
            self.too_many = true;
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }

    fn fork(&self) -> Option<Self> {
        Some(Readings {
            topics: self.topics.clone(),
            extractor: self.extractor.clone(),
            readings: Vec::new(),
            routes: self.routes.clone(),
            consumer: self.consumer.fork()?,
            rejected: 0,
            max_series: self.max_series,
            too_many: false,
            locations: self.locations.clone(),
        })
    }
    fn merge(&mut self, later: Self) {
        self.consumer.merge(later.consumer);
        self.rejected += later.rejected;
        self.too_many |= later.too_many || self.consumer.series() > self.max_series;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{Feed, Reader};
    use crate::syslog::source::Lines;
    use crate::time::Window;

    #[derive(Default)]
    struct Got(Vec<(String, Owned)>);

    impl Consumer for Got {
        fn reading(&mut self, _: DateTime<Utc>, series: &str, value: Value<'_>) {
            self.0.push((series.to_owned(), value.into()));
        }
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn numbers_states_and_rejects() {
        let w = Window {
            start: utc("2026-11-22T05:00:00Z"),
            end: utc("2026-11-22T06:00:00Z"),
        };
        let reader = Reader::new(w, chrono::Duration::seconds(60), "iotitan-logger", Utc);
        let mut f = Feed::new(
            reader,
            Readings::new(
                Filters::of(&["iotitan/#"]),
                Extractor::default(),
                Got::default(),
            ),
        );
        let lines = [
            "2026-11-22T04:59:59Z h iotitan-logger[1]: iotitan/a/t 1",
            "2026-11-22T05:00:00Z h iotitan-logger[1]: iotitan/a/t 20.5",
            "2026-11-22T05:00:01Z h iotitan-logger[1]: iotitan/a/LWT online",
            "2026-11-22T05:00:02Z h iotitan-logger[1]: iotitan/a/t NaN",
            "2026-11-22T05:00:03Z h iotitan-logger[1]: iotitan/a/t 12\\[cut 99]",
            "2026-11-22T05:00:04Z h iotitan-logger[1]: other/t 3",
            "2026-11-22T05:00:05Z h sshd[1]: iotitan/a/t 3",
            "2026-11-22T05:00:06Z h iotitan-logger[1]: iotitan/a/t on",
            "2026-11-22T06:05:00Z h iotitan-logger[1]: iotitan/a/t 4",
        ];
        let flows: Vec<_> = lines.iter().map(|l| f.take(l.as_bytes())).collect();
        assert!(flows[..8].iter().all(|c| c.is_continue()));
        assert!(flows[8].is_break());
        assert_eq!(
            f.records.consumer.0,
            vec![
                ("iotitan/a/t".into(), Owned::Number(20.5)),
                ("iotitan/a/LWT".into(), Owned::State("online".into())),
                ("iotitan/a/t".into(), Owned::Number(1.0)),
            ]
        );
        assert_eq!(f.records.rejected, 2);
    }

    /// Records written before a private area was configured still hold its locations: a
    /// read leaves them out, and reads the rest of the record.
    #[test]
    fn a_read_withholds_a_location_in_a_private_area() {
        use crate::payload::{FieldPath, JsonRule};
        let w = Window {
            start: utc("2026-11-22T05:00:00Z"),
            end: utc("2026-11-22T06:00:00Z"),
        };
        let reader = Reader::new(w, chrono::Duration::seconds(60), "iotitan-logger", Utc);
        let extractor = Extractor::new(vec![JsonRule {
            topics: Filters::of(&["owntracks/#"]),
            fields: ["lat", "lon", "batt"]
                .iter()
                .map(|f| FieldPath::new(f).unwrap())
                .collect(),
        }]);
        let locations =
            crate::privacy::Locations::new(crate::privacy::PrivateAreas::example_home(), &[]);
        let mut f = Feed::new(
            reader,
            Readings::new(Filters::of(&["#"]), extractor, Got::default())
                .with_locations(std::sync::Arc::new(locations)),
        );
        for l in [
            r#"2026-11-22T05:00:00Z h iotitan-logger[1]: owntracks/jane/phone {"_type":"location","lat":-34.92,"lon":138.6,"batt":87}"#,
            r#"2026-11-22T05:00:01Z h iotitan-logger[1]: owntracks/jane/phone {"_type":"location","lat":-34.95,"lon":138.53,"batt":86}"#,
        ] {
            assert!(f.take(l.as_bytes()).is_continue());
        }
        let t = "owntracks/jane/phone";
        assert_eq!(
            f.records.consumer.0,
            vec![
                (format!("{t}/batt"), Owned::Number(87.0)),
                (format!("{t}/lat"), Owned::Number(-34.95)),
                (format!("{t}/lon"), Owned::Number(138.53)),
                (format!("{t}/batt"), Owned::Number(86.0)),
            ]
        );
    }

    /// A read split across threads answers what one thread answers, for every consumer.
    #[test]
    fn a_split_read_answers_what_one_thread_answers() {
        use crate::payload::{FieldPath, JsonRule};
        use crate::statistic::Statistic;
        use crate::syslog::source::{Scan, Source, scan_split_min};
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("syslog");
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let base = 1_795_000_000i64;
        // 20 000 lines over 4000 s: plain values, JSON documents, LWT states, cut payloads,
        // other programs, lines out of order by up to 3 s and timeless lines between.
        for i in 0..20_000i64 {
            let jitter = if i % 7 == 0 { -3_000_000 } else { 0 };
            let t = DateTime::from_timestamp_micros(base * 1_000_000 + i * 200_000 + jitter)
                .unwrap()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
            let (tag, topic, payload) = match i % 6 {
                0 => (
                    "iotitan-logger",
                    "zigbee2mqtt/bed",
                    format!("{{\"temperature\":{}}}", i % 30),
                ),
                1 => (
                    "iotitan-logger",
                    "iotitan/a/LWT",
                    ["online", "offline"][(i / 6 % 2) as usize].into(),
                ),
                2 => (
                    "iotitan-logger",
                    "iotitan/b/t",
                    format!("{}\\[cut 9]", i % 5),
                ),
                3 => ("sshd", "iotitan/a/t", "1".into()),
                _ => (
                    "iotitan-logger",
                    ["iotitan/a/t", "iotitan/b/t"][(i % 2) as usize],
                    format!("{}.{}", i % 41, i % 10),
                ),
            };
            writeln!(f, "{t} pi {tag}[1]: {topic} {payload}").unwrap();
            if i % 1000 == 0 {
                writeln!(f, "  continuation without a time").unwrap();
            }
        }
        drop(f);
        let extractor = Extractor::new(vec![JsonRule {
            topics: Filters::of(&["zigbee2mqtt/+"]),
            fields: vec![FieldPath::new("temperature").unwrap()],
        }]);
        let t = |s: i64| DateTime::from_timestamp(base + s, 0).unwrap();
        fn run<C: Consumer>(
            path: &std::path::Path,
            extractor: &Extractor,
            window: Window,
            consumer: C,
            threads: usize,
        ) -> (C, u64) {
            let reader = Reader::new(window, chrono::Duration::seconds(5), "iotitan-logger", Utc);
            let topics = Filters::of(&["iotitan/#", "zigbee2mqtt/#"]);
            let mut feed = Feed::new(reader, Readings::new(topics, extractor.clone(), consumer));
            let (from, until) = feed.range();
            let scan = Scan {
                from,
                until,
                identifier: "iotitan-logger",
            };
            let source = Source::File(path.to_owned());
            scan_split_min(&source, &scan, &mut feed, &mut |_| {}, threads, 0).unwrap();
            let readings = feed.into_records();
            (readings.consumer, readings.rejected)
        }
        let stats = [
            Statistic::Count,
            Statistic::Mean,
            Statistic::Min,
            Statistic::Max,
            Statistic::Median,
            Statistic::Percentile(90),
            Statistic::First,
            Statistic::Last,
        ];
        let every = aggregate::Every::parse("10m").unwrap();
        for (from, to) in [(0, 4000), (100, 3100), (500, 600)] {
            let w = Window {
                start: t(from),
                end: t(to),
            };
            macro_rules! read {
                ($consumer:expr, $threads:expr) => {
                    run(&path, &extractor, w, $consumer, $threads)
                };
            }
            // Every consumer, on 2, 3 and 7 threads, against one thread.
            for threads in [2, 3, 7] {
                let one = read!(topics::Topics::new(1000, None), 1);
                let many = read!(topics::Topics::new(1000, None), threads);
                assert!(one.1 > 0, "cut payloads are rejected");
                assert_eq!(many.1, one.1);
                let one = one.0.finish();
                assert!(!one.topics.is_empty());
                assert_eq!(many.0.finish(), one);
                let page = || topics::Topics::new(2, Some("a".into()));
                assert_eq!(
                    read!(page(), threads).0.finish(),
                    read!(page(), 1).0.finish()
                );
                for limit in [50, 100_000] {
                    let one = read!(rows::Rows::new(limit), 1).0.finish();
                    assert_eq!(read!(rows::Rows::new(limit), threads).0.finish(), one);
                }
                let top = || top::Top::new("t", Statistic::Max, 3, top::Order::Desc);
                assert_eq!(read!(top(), threads).0.finish(), read!(top(), 1).0.finish());
                let hist = || histogram::Histogram::new(7);
                assert_eq!(
                    read!(hist(), threads).0.finish(),
                    read!(hist(), 1).0.finish()
                );
                let agg = || aggregate::Aggregate::new(every, Utc, &stats);
                let (many, one) = (read!(agg(), threads).0.finish(), read!(agg(), 1).0.finish());
                assert_eq!(
                    many.series.keys().collect::<Vec<_>>(),
                    one.series.keys().collect::<Vec<_>>()
                );
                for (name, buckets) in &many.series {
                    let ones = &one.series[name];
                    assert_eq!(buckets.len(), ones.len(), "{name}");
                    for (a, b) in buckets.iter().zip(ones) {
                        assert_eq!((a.start, a.count), (b.start, b.count), "{name}");
                        for ((sa, va), (sb, vb)) in a.values.iter().zip(&b.values) {
                            assert_eq!(sa, sb);
                            // Mean and stddev merge up to rounding; the rest exactly.
                            let close = (va - vb).abs() <= 1e-9 * vb.abs().max(1.0);
                            assert!(close, "{name} {sa}: {va} vs {vb}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn states_are_short_single_lines() {
        assert_eq!(state_of(b" offline \n"), Some("offline"));
        assert_eq!(state_of(b""), None);
        assert_eq!(state_of(b"   "), None);
        assert_eq!(state_of(&[b'x'; 65]), None);
        assert_eq!(state_of(b"\xff\xfe"), None);
        assert_eq!(state_of(b"a\nb"), None);
    }
}
