//! The history of the topics, read back from syslog for the HTTP read API: what was seen
//! ([`topics`]), the raw rows ([`rows`]), bucketed statistics ([`aggregate`]), the best
//! devices by a feature ([`top`]) and the distribution of a topic's values ([`histogram`]).
//!
//! Each answer is computed by a *consumer*: a pure state machine that is handed readings
//! `(time, series, value)` and produces the answer type (the JSON shapes of the HTTP
//! contract). Consumers do no I/O, so they are unit- and property-tested on their own.
//!
//! The readings come from the same engine as `iotitan-stats` and its `query`: the sources are
//! scanned by [`crate::syslog::source`], each line is classified by
//! [`crate::stats::collect::Reader`] and each payload turned into numbers by the configured
//! [`Extractor`] ([`Feed`] is the one adapter between the two). [`read`] runs a scan for a
//! consumer; [`api`] serves the consumers over HTTP.

pub mod aggregate;
pub mod api;
pub mod histogram;
pub mod read;
pub mod rows;
pub mod top;
pub mod topics;

use crate::payload::{Extractor, Reading, Rejected};
use crate::stats::collect::{Reader, Seen};
use crate::stats::line::Zone;
use crate::syslog::source::Lines;
use crate::topic::Filters;
use chrono::{DateTime, Utc};
use serde::Serialize;
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
#[derive(Debug, Clone, PartialEq, Serialize)]
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
pub trait Consumer {
    /// One reading of `series` (the topic, or `<topic>/<field>` for JSON fields) at `time`.
    fn reading(&mut self, time: DateTime<Utc>, series: &str, value: Value<'_>);
}

/// The state a non-numeric payload stands for, if it is one: short, UTF-8, not blank.
pub fn state_of(payload: &[u8]) -> Option<&str> {
    let s = std::str::from_utf8(payload).ok()?.trim();
    (!s.is_empty() && s.len() <= MAX_STATE && !s.contains(['\n', '\r'])).then_some(s)
}

/// Feeds the records of the selected topics in a window to a consumer: the [`Lines`] side of
/// a scan, like `query`'s export, so the same parser reads every line.
pub struct Feed<Z, C> {
    reader: Reader<Z>,
    topics: Filters,
    extractor: Extractor,
    readings: Vec<Reading>,
    /// Topic filter decisions: matching filters per line is a large part of the per-line cost,
    /// and topics repeat endlessly. aHash: SipHash was a tenth of a read's time, and aHash
    /// keeps a random key against crafted topics.
    matched: ahash::AHashMap<String, bool>,
    /// The consumer.
    pub consumer: C,
    /// Records of the selected topics that gave neither a number nor a state (documents
    /// without the configured fields, payloads the logger cut).
    pub rejected: u64,
}

/// Most topics whose filter decisions a feed remembers.
const MATCH_CACHE: usize = 4096;

impl<Z: Zone + Clone, C: Consumer> Feed<Z, C> {
    /// A feed of the records of `topics` that `reader` finds in its window.
    pub fn new(reader: Reader<Z>, topics: Filters, extractor: Extractor, consumer: C) -> Self {
        Feed {
            reader,
            topics,
            extractor,
            readings: Vec::new(),
            matched: ahash::AHashMap::new(),
            consumer,
            rejected: 0,
        }
    }

    /// The range a scan must cover.
    pub fn range(&self) -> (DateTime<Utc>, DateTime<Utc>) {
        self.reader.range()
    }

    fn wanted(&mut self, topic: &str) -> bool {
        if let Some(&m) = self.matched.get(topic) {
            return m;
        }
        let m = self.topics.matches(topic);
        if self.matched.len() < MATCH_CACHE {
            self.matched.insert(topic.to_owned(), m);
        }
        m
    }
}

impl<Z: Zone + Clone, C: Consumer> Lines for Feed<Z, C> {
    fn time_of(&mut self, line: &[u8], reference: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.reader.time_of(line, reference)
    }
    fn input(&mut self, reference: DateTime<Utc>) {
        self.reader.input(reference);
    }
    fn take(&mut self, line: &[u8]) -> ControlFlow<()> {
        let (time, topic, payload) = match self.reader.read(line) {
            Seen::Past => return ControlFlow::Break(()),
            Seen::Record {
                time,
                topic,
                payload,
            } => (time, topic, payload),
            _ => return ControlFlow::Continue(()),
        };
        if !self.wanted(&topic) {
            return ControlFlow::Continue(());
        }
        let payload = match payload {
            Ok(p) => p,
            Err(_) => {
                self.rejected += 1;
                return ControlFlow::Continue(());
            }
        };
        self.readings.clear();
        match self
            .extractor
            .readings(&topic, &payload, &mut self.readings)
        {
            Ok(()) => {
                for r in &self.readings {
                    self.consumer
                        .reading(time, &r.series, Value::Number(r.value));
                }
            }
            Err(Rejected::NotNumeric) => match state_of(&payload) {
                Some(s) => self.consumer.reading(time, &topic, Value::State(s)),
                None => self.rejected += 1,
            },
            Err(_) => self.rejected += 1,
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::window::Window;

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
            Filters::of(&["iotitan/#"]),
            Extractor::default(),
            Got::default(),
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
            f.consumer.0,
            vec![
                ("iotitan/a/t".into(), Owned::Number(20.5)),
                ("iotitan/a/LWT".into(), Owned::State("online".into())),
                ("iotitan/a/t".into(), Owned::Number(1.0)),
            ]
        );
        assert_eq!(f.rejected, 2);
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
