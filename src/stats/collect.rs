//! From lines to values: which lines belong to a window, which are ours, which topics are
//! wanted, and what their payloads say.
//!
//! [`Reader`] is the part shared by the window statistics and `query`: it parses a line, keeps
//! it if its time lies in the window and it carries our identifier, and decodes the record.
//! [`Collector`] feeds the values into a [`Summary`].

use crate::payload::{Extractor, Reading, Rejected};
use crate::record;
use crate::stats::aggregate::{Summary, is_output};
use crate::stats::line::{self, Ambiguity, Clock, Zone};
use crate::stats::window::Window;
use crate::syslog::source::Lines;
use crate::topic::Filters;
use chrono::{DateTime, Utc};
use std::borrow::Cow;
use std::ops::ControlFlow;

/// What one line turned out to be.
#[derive(Debug, PartialEq)]
pub enum Seen<'a> {
    /// Before the window (or after it, within the disorder allowance): not counted.
    Outside,
    /// After the window by more than the disorder allowance: stop reading.
    Past,
    /// A line of the window that is not a record of ours (other program, junk, bad record).
    Skipped,
    /// A record of ours in the window.
    Record {
        /// When it was logged.
        time: DateTime<Utc>,
        /// Its topic.
        topic: Cow<'a, str>,
        /// Its payload; `Err(Cut)` when the logger cut it.
        payload: Result<Cow<'a, [u8]>, Rejected>,
    },
}

/// Turns the lines of a scan into the records of a window.
pub struct Reader<Z> {
    window: Window,
    disorder: chrono::Duration,
    identifier: Vec<u8>,
    stream: Clock<Z>,
    seek: Clock<Z>,
    /// The time of the last timed line: lines without one belong with it.
    last: Option<DateTime<Utc>>,
}

impl<Z: Zone + Clone> Reader<Z> {
    /// A reader of `window` for records tagged `identifier`, in local zone `zone`.
    pub fn new(window: Window, disorder: chrono::Duration, identifier: &str, zone: Z) -> Self {
        let now = Utc::now();
        Reader {
            window,
            disorder,
            identifier: identifier.as_bytes().to_vec(),
            stream: Clock::new(zone.clone(), now, Ambiguity::Stream),
            seek: Clock::new(zone, now, Ambiguity::Seek),
            last: None,
        }
    }

    /// The range a scan must cover: the window widened by the disorder allowance.
    pub fn range(&self) -> (DateTime<Utc>, DateTime<Utc>) {
        (
            self.window.start - self.disorder,
            self.window.end + self.disorder,
        )
    }

    /// The time of a line, for seeking.
    pub fn time_of(&mut self, line: &[u8], reference: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.seek.set_reference(reference);
        line::time_of(line, &mut self.seek)
    }

    /// A new input starts.
    pub fn input(&mut self, reference: DateTime<Utc>) {
        self.stream.set_reference(reference);
        self.last = None;
    }

    /// Classify one line.
    pub fn read<'a>(&mut self, raw: &'a [u8]) -> Seen<'a> {
        let parsed = line::parse(raw, &mut self.stream);
        let time = match &parsed {
            Ok(l) => {
                self.last = Some(l.time);
                l.time
            }
            Err(_) => match self.last {
                Some(t) => t,
                None => return Seen::Outside,
            },
        };
        if time >= self.window.end + self.disorder {
            return Seen::Past;
        }
        if time < self.window.start || time >= self.window.end {
            return Seen::Outside;
        }
        let Ok(l) = parsed else {
            return Seen::Skipped;
        };
        if l.ident[..] != self.identifier[..] {
            return Seen::Skipped;
        }
        match l.msg {
            // File lines: topic and payload borrow from the line, no copy.
            Cow::Borrowed(msg) => record(l.time, msg),
            // Journal entries with escapes in MESSAGE own their text.
            Cow::Owned(msg) => match record(l.time, &msg) {
                Seen::Record {
                    time,
                    topic,
                    payload,
                } => Seen::Record {
                    time,
                    topic: Cow::Owned(topic.into_owned()),
                    payload: payload.map(|p| Cow::Owned(p.into_owned())),
                },
                _ => Seen::Skipped,
            },
        }
    }
}

/// The record in a message of ours.
fn record(time: DateTime<Utc>, msg: &[u8]) -> Seen<'_> {
    // Some templates put a space before MSG; our records never start with one (a topic's
    // spaces are escaped), so leading spaces are dropped losslessly.
    let start = msg.iter().take_while(|&&b| b == b' ').count();
    let Ok(rec) = record::decode(&msg[start..]) else {
        return Seen::Skipped;
    };
    let topic = match rec.topic {
        Cow::Borrowed(t) => std::str::from_utf8(t).map(Cow::Borrowed),
        Cow::Owned(t) => String::from_utf8(t)
            .map(Cow::Owned)
            .map_err(|e| e.utf8_error()),
    };
    let Ok(topic) = topic else {
        return Seen::Skipped;
    };
    let payload = if rec.cut_from.is_some() {
        Err(Rejected::Cut)
    } else {
        Ok(rec.payload)
    };
    Seen::Record {
        time,
        topic,
        payload,
    }
}

/// What the statistics take: topics, groups and the payload rules.
pub struct Selection {
    /// `stats.topics`.
    pub topics: Filters,
    /// `[[stats.group]]` topics, by group index.
    pub groups: Vec<Filters>,
    /// Payloads to numbers.
    pub extractor: Extractor,
    /// `stats.summary_topic`: our own JSON summary, never an input even where a filter
    /// (`iotitan/#`) matches it.
    pub summary_topic: Option<String>,
}

/// Where a topic's values go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// Into a series of its own (`stats.topics` matches).
    pub own: bool,
    /// Into these groups.
    pub groups: std::rc::Rc<[usize]>,
}

impl Selection {
    /// Where values of `topic` go; `None` when nowhere (not asked for, or one of our outputs).
    pub fn wanted(&self, topic: &str) -> Option<Wanted> {
        let own = self.topics.matches(topic);
        let groups: Vec<usize> = self
            .groups
            .iter()
            .enumerate()
            .filter(|(_, g)| g.matches(topic))
            .map(|(i, _)| i)
            .collect();
        if (!own && groups.is_empty())
            || is_output(topic)
            || self.summary_topic.as_deref() == Some(topic)
        {
            return None;
        }
        Some(Wanted {
            own,
            groups: groups.into(),
        })
    }
}

/// Most topics whose filter decisions a collector remembers.
const WANTED_CACHE: usize = 4096;

/// Collects one window's statistics from a scan.
pub struct Collector<'s, Z> {
    reader: Reader<Z>,
    selection: &'s Selection,
    /// The statistics so far.
    pub summary: Summary,
    readings: Vec<Reading>,
    /// Filter decisions by topic: matching filters per line was most of the per-line cost.
    wanted: std::collections::HashMap<String, Option<Wanted>>,
}

impl<'s, Z: Zone + Clone> Collector<'s, Z> {
    /// A collector for `summary`'s window.
    pub fn new(reader: Reader<Z>, selection: &'s Selection, summary: Summary) -> Self {
        Collector {
            reader,
            selection,
            summary,
            readings: Vec::new(),
            wanted: std::collections::HashMap::new(),
        }
    }

    /// The reader (for the scan range).
    pub fn reader(&self) -> &Reader<Z> {
        &self.reader
    }

    /// Account for one line.
    pub fn line(&mut self, raw: &[u8]) -> ControlFlow<()> {
        let counts = &mut self.summary.lines;
        let (time, topic, payload) = match self.reader.read(raw) {
            Seen::Past => return ControlFlow::Break(()),
            Seen::Outside => return ControlFlow::Continue(()),
            Seen::Skipped => {
                counts.read += 1;
                counts.skipped += 1;
                return ControlFlow::Continue(());
            }
            Seen::Record {
                time,
                topic,
                payload,
            } => (time, topic, payload),
        };
        counts.read += 1;
        let wanted = match self.wanted.get(&*topic) {
            Some(w) => w.clone(),
            None => {
                let w = self.selection.wanted(&topic);
                // Topics repeat endlessly; a flood of distinct ones only stops the caching.
                if self.wanted.len() < WANTED_CACHE {
                    self.wanted.insert(topic.to_string(), w.clone());
                }
                w
            }
        };
        let Some(Wanted { own, groups }) = wanted else {
            counts.skipped += 1;
            return ControlFlow::Continue(());
        };

        self.readings.clear();
        let got = payload.and_then(|p| {
            self.selection
                .extractor
                .readings(&topic, &p, &mut self.readings)
        });
        if got.is_err() {
            counts.rejected += 1;
            return ControlFlow::Continue(());
        }
        counts.matched += 1;
        for r in &self.readings {
            self.summary
                .push(&r.series, own, groups.iter().copied(), time, r.value);
        }
        ControlFlow::Continue(())
    }
}

impl<Z: Zone + Clone> Lines for Collector<'_, Z> {
    fn time_of(&mut self, line: &[u8], reference: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.reader.time_of(line, reference)
    }
    fn input(&mut self, reference: DateTime<Utc>) {
        self.reader.input(reference);
    }
    fn take(&mut self, line: &[u8]) -> ControlFlow<()> {
        self.line(line)
    }
}

/// Several consecutive windows read in one pass (catch-up after missed runs, and the only
/// way to read stdin for more than one window).
pub struct Batch<'s, Z> {
    collectors: Vec<(Collector<'s, Z>, bool)>,
}

impl<'s, Z: Zone + Clone> Batch<'s, Z> {
    /// A batch of collectors, in window order.
    pub fn new(collectors: Vec<Collector<'s, Z>>) -> Self {
        Batch {
            collectors: collectors.into_iter().map(|c| (c, false)).collect(),
        }
    }

    /// The range to scan: from the first window's widened start to the last one's end.
    pub fn range(&self) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let first = self.collectors.first()?.0.reader().range();
        let last = self.collectors.last()?.0.reader().range();
        Some((first.0, last.1))
    }

    /// The summaries, in window order.
    pub fn into_summaries(self) -> Vec<Summary> {
        self.collectors
            .into_iter()
            .map(|(c, _)| c.summary)
            .collect()
    }
}

impl<Z: Zone + Clone> Lines for Batch<'_, Z> {
    fn time_of(&mut self, line: &[u8], reference: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.collectors.first_mut()?.0.time_of(line, reference)
    }
    fn input(&mut self, reference: DateTime<Utc>) {
        // Each input (file, source) is in time order on its own: every window reads it.
        for (c, done) in &mut self.collectors {
            c.input(reference);
            *done = false;
        }
    }
    fn take(&mut self, line: &[u8]) -> ControlFlow<()> {
        let mut open = false;
        for (c, done) in self.collectors.iter_mut().filter(|(_, d)| !*d) {
            *done = c.line(line).is_break();
            open |= !*done;
        }
        if open {
            ControlFlow::Continue(())
        } else {
            ControlFlow::Break(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::{FieldPath, JsonRule};
    use crate::stats::aggregate::Statistic;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn collector(selection: &Selection) -> Collector<'_, Utc> {
        let w = Window {
            start: utc("2026-11-22T05:00:00Z"),
            end: utc("2026-11-22T05:05:00Z"),
        };
        let reader = Reader::new(w, chrono::Duration::seconds(60), "iotitan-logger", Utc);
        let summary = Summary::new(
            w.start,
            w.end,
            &[Statistic::Count, Statistic::Mean],
            ["house/t".to_owned()],
        );
        Collector::new(reader, selection, summary)
    }

    fn selection() -> Selection {
        Selection {
            topics: Filters::of(&["iotitan/#", "zigbee2mqtt/+"]),
            groups: vec![Filters::of(&["iotitan/+/t"])],
            extractor: Extractor::new(vec![JsonRule {
                topics: Filters::of(&["zigbee2mqtt/+"]),
                fields: vec![FieldPath::new("temperature").unwrap()],
            }]),
            summary_topic: Some("iotitan/stats/summary".into()),
        }
    }

    fn feed(c: &mut Collector<'_, Utc>, lines: &[&str]) -> Vec<ControlFlow<()>> {
        lines.iter().map(|l| c.line(l.as_bytes())).collect()
    }

    #[test]
    fn lines_are_sorted_into_matched_skipped_rejected() {
        let sel = selection();
        let mut c = collector(&sel);
        let flows = feed(
            &mut c,
            &[
                "2026-11-22T04:59:59Z h iotitan-logger[1]: iotitan/a/t 100",
                "2026-11-22T05:00:00Z h iotitan-logger[1]: iotitan/a/t 20",
                "2026-11-22T05:00:01Z h iotitan-logger[1]: iotitan/b/t 22",
                "2026-11-22T05:00:02Z h iotitan-logger[1]: iotitan/b/t junk",
                "2026-11-22T05:00:03Z h iotitan-logger[1]: iotitan/b/t_mean 21",
                "2026-11-22T05:00:03Z h iotitan-logger[1]: iotitan/stats/summary 3",
                "2026-11-22T05:00:04Z h iotitan-logger[1]: other/topic 1",
                "2026-11-22T05:00:05Z h sshd[9]: iotitan/a/t 1000",
                "garbage without a time",
                "2026-11-22T05:00:06Z h iotitan-logger[1]: iotitan/a/t 5\\q",
                "2026-11-22T05:00:07Z h iotitan-logger[1]: iotitan/a/t 1234\\[cut 9999]",
                "2026-11-22T05:00:08Z h iotitan-logger[1]: zigbee2mqtt/bed {\"temperature\":27.5}",
                "2026-11-22T05:00:09Z h iotitan-logger[1]: zigbee2mqtt/bed {\"battery\":3}",
                "2026-11-22T05:04:59.999Z h iotitan-logger[1]: iotitan/a/t 30",
                "2026-11-22T05:05:00Z h iotitan-logger[1]: iotitan/a/t 1000",
                "2026-11-22T05:06:00Z h iotitan-logger[1]: iotitan/a/t 1000",
            ],
        );
        assert!(flows[..15].iter().all(|f| f.is_continue()));
        assert!(flows[15].is_break());
        let l = c.summary.lines;
        assert_eq!(
            (l.read, l.matched, l.skipped, l.rejected),
            (13, 4, 6, 3),
            "{l:?}"
        );
        let s = &c.summary;
        assert_eq!(s.series["iotitan/a/t"].get(Statistic::Mean), Some(25.0));
        assert_eq!(s.series["iotitan/b/t"].count(), 1);
        assert_eq!(
            s.series["zigbee2mqtt/bed/temperature"].get(Statistic::Mean),
            Some(27.5)
        );
        assert!(!s.series.contains_key("iotitan/b/t_mean"));
        assert!(!s.series.keys().any(|k| k.starts_with("iotitan/stats")));
        let (_, g) = &s.groups[0];
        assert_eq!(g.values.count(), 3);
        assert_eq!(g.members.len(), 2);
    }

    #[test]
    fn group_only_topics_do_not_get_series_of_their_own() {
        let sel = Selection {
            topics: Filters::of(&["none/#"]),
            ..selection()
        };
        let mut c = collector(&sel);
        feed(
            &mut c,
            &["2026-11-22T05:00:00Z h iotitan-logger[1]: iotitan/a/t 20"],
        );
        assert!(c.summary.series.is_empty());
        assert_eq!(c.summary.groups[0].1.values.count(), 1);
    }
}
