//! One line → what it is for a window: [`Reader`] parses a line, keeps it if its time lies in
//! the window and it carries our identifier, and decodes the record. Every reader of history
//! (the window statistics, `query`, the read API) classifies lines with it.
//!
//! The per-line path is what reading history costs, so it avoids work that repeats: times
//! stay integers (microseconds), a timestamp's prefix is parsed once per minute or hour
//! ([`line::parse_fast`]), a plain number is parsed without a UTF-8 pass, and nothing is
//! allocated per line.

use crate::payload::Rejected;
use crate::record;
use crate::syslog::clock::{Ambiguity, Clock, Zone};
use crate::syslog::line::{self, LineError, Stamped};
use crate::time::Window;
use chrono::{DateTime, Utc};
use std::borrow::Cow;

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

/// What one line turned out to be, as [`Seen`] but with the record's time in microseconds
/// and its topic not yet checked to be UTF-8 ([`Reader::read_raw`]).
#[derive(Debug, PartialEq)]
pub enum RawSeen<'a> {
    /// See [`Seen::Outside`].
    Outside,
    /// See [`Seen::Past`].
    Past,
    /// See [`Seen::Skipped`].
    Skipped,
    /// A record of ours in the window.
    Record {
        /// When it was logged, in microseconds since the epoch.
        micros: i64,
        /// Its topic's bytes.
        topic: Cow<'a, [u8]>,
        /// Its payload; `Err(Cut)` when the logger cut it.
        payload: Result<Cow<'a, [u8]>, Rejected>,
    },
}

/// Where a time lies relative to a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    /// Before the window, in its lookback: it only sets where a meter stands.
    Before,
    /// After the window, within its follow-up ([`Reader::with_after`]): it only closes the
    /// curve's last interval.
    After,
    /// In `[start, end)`.
    Inside,
    /// Before the start, or after the end within the disorder allowance.
    Outside,
    /// After the end by more than the disorder allowance.
    Past,
}

/// How far a reader reads around its window, beyond the disorder allowance: lines that only
/// move meters and curves.
#[derive(Debug, Clone, Copy, Default)]
struct Margins {
    /// Before the start.
    lookback: chrono::Duration,
    /// After the end.
    after: chrono::Duration,
}

/// A window's bounds in microseconds, rounded up so that comparing whole microseconds gives
/// what comparing the exact instants would.
#[derive(Debug, Clone, Copy)]
struct Bounds {
    before: i64,
    start: i64,
    end: i64,
    after: i64,
    past: i64,
}

fn ceil_micros(t: DateTime<Utc>) -> i64 {
    let m = t.timestamp_micros();
    if !t.timestamp_subsec_nanos().is_multiple_of(1000) {
        m + 1
    } else {
        m
    }
}

impl Bounds {
    fn new(window: Window, disorder: chrono::Duration, margins: Margins) -> Self {
        Bounds {
            before: ceil_micros(window.start - margins.lookback),
            start: ceil_micros(window.start),
            end: ceil_micros(window.end),
            after: ceil_micros(window.end + margins.after),
            past: ceil_micros(window.end + disorder.max(margins.after)),
        }
    }

    fn place(&self, micros: i64) -> Place {
        if micros >= self.past {
            Place::Past
        } else if micros >= self.end && micros < self.after {
            Place::After
        } else if micros >= self.end || micros < self.before {
            Place::Outside
        } else if micros < self.start {
            Place::Before
        } else {
            Place::Inside
        }
    }
}

/// What a line of the window holds, once its time has placed it there.
#[derive(Debug)]
pub(crate) enum Body<'a> {
    /// Not a record of ours.
    Skipped,
    /// A record of ours: the topic's bytes (not yet checked to be UTF-8) and the payload.
    Record {
        topic: Cow<'a, [u8]>,
        payload: Result<Cow<'a, [u8]>, Rejected>,
    },
}

/// Turns the lines of a scan into the records of a window.
#[derive(Clone)]
pub struct Reader<Z> {
    window: Window,
    disorder: chrono::Duration,
    margins: Margins,
    bounds: Bounds,
    identifier: Vec<u8>,
    stream: Clock<Z>,
    seek: Clock<Z>,
    /// The time of the last timed line (microseconds): lines without one belong with it.
    last: Option<i64>,
}

impl<Z: Zone + Clone> Reader<Z> {
    /// A reader of `window` for records tagged `identifier`, in local zone `zone`.
    pub fn new(window: Window, disorder: chrono::Duration, identifier: &str, zone: Z) -> Self {
        let now = Utc::now();
        Reader {
            window,
            disorder,
            margins: Margins::default(),
            bounds: Bounds::new(window, disorder, Margins::default()),
            identifier: identifier.as_bytes().to_vec(),
            stream: Clock::new(zone.clone(), now, Ambiguity::Stream),
            seek: Clock::new(zone, now, Ambiguity::Seek),
            last: None,
        }
    }

    /// The range a scan must cover: the window widened by the disorder allowance, the
    /// lookback and the follow-up.
    pub fn range(&self) -> (DateTime<Utc>, DateTime<Utc>) {
        (
            self.window.start - self.disorder.max(self.margins.lookback),
            self.window.end + self.disorder.max(self.margins.after),
        )
    }

    /// The window it reads.
    pub fn window(&self) -> Window {
        self.window
    }

    /// Where a line's time (microseconds) lies relative to the window.
    pub(crate) fn place(&self, micros: i64) -> Place {
        self.bounds.place(micros)
    }

    /// The same reader for another window (its clocks and line state included).
    pub(crate) fn with_window(&self, window: Window) -> Self {
        Reader {
            window,
            bounds: Bounds::new(window, self.disorder, self.margins),
            ..self.clone()
        }
    }

    /// The same reader, also reading `lookback` before the window: lines there are
    /// [`Place::Before`], which only set where a meter stands when the window opens.
    pub fn with_lookback(mut self, lookback: chrono::Duration) -> Self {
        self.margins.lookback = lookback;
        self.bounds = Bounds::new(self.window, self.disorder, self.margins);
        self
    }

    /// The same reader, also reading `after` past the window: lines there are
    /// [`Place::After`], which only close the interval of a curve that spans the window's end.
    pub fn with_after(mut self, after: chrono::Duration) -> Self {
        self.margins.after = after;
        self.bounds = Bounds::new(self.window, self.disorder, self.margins);
        self
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

    /// Whether a reader could start at a line of time `t` with a fresh clock and read the
    /// lines after it as this one would (see [`Clock::steady_around`]).
    pub(crate) fn can_start_at(&self, t: DateTime<Utc>) -> bool {
        self.stream.steady_around(t)
    }

    /// A fresh reader with this one's settings (window, identifier, zone, the reference of
    /// the current input), for the lines of a later range.
    pub(crate) fn fork(&self, reference: DateTime<Utc>) -> Self {
        let mut r = self.clone();
        r.input(reference);
        r
    }

    /// The time of a line (or of the last timed line before it) and the parsed line.
    pub(crate) fn stamp<'a>(
        &mut self,
        raw: &'a [u8],
    ) -> (Option<i64>, Result<Stamped<'a>, LineError>) {
        let parsed = line::parse_fast(raw, &mut self.stream);
        if let Ok(l) = &parsed {
            self.last = Some(l.micros);
        }
        (self.last, parsed)
    }

    /// [`stamp`](Reader::stamp) for a journal entry read directly: already apart.
    pub(crate) fn stamp_entry<'a>(
        &mut self,
        entry: Stamped<'a>,
    ) -> (Option<i64>, Result<Stamped<'a>, LineError>) {
        self.last = Some(entry.micros);
        (self.last, Ok(entry))
    }

    /// The record in a parsed line of the window, if it is one of ours.
    pub(crate) fn body<'a>(&self, parsed: Result<Stamped<'a>, LineError>) -> Body<'a> {
        let Ok(l) = parsed else {
            return Body::Skipped;
        };
        if l.ident[..] != self.identifier[..] {
            return Body::Skipped;
        }
        match l.msg {
            // File lines: topic and payload borrow from the line, no copy.
            Cow::Borrowed(msg) => record(msg),
            // Journal entries with escapes in MESSAGE own their text.
            Cow::Owned(msg) => match record(&msg) {
                Body::Record { topic, payload } => Body::Record {
                    topic: Cow::Owned(topic.into_owned()),
                    payload: payload.map(|p| Cow::Owned(p.into_owned())),
                },
                Body::Skipped => Body::Skipped,
            },
        }
    }

    /// Classify one line, leaving its time in microseconds and its topic as the bytes of the
    /// line: readers that cache a decision per topic look it up by those bytes, and validate
    /// a topic's UTF-8 once, not on every line.
    pub fn read_raw<'a>(&mut self, raw: &'a [u8]) -> RawSeen<'a> {
        let stamped = self.stamp(raw);
        self.classify(stamped)
    }

    /// [`read_raw`](Reader::read_raw) for a journal entry read directly.
    pub fn read_entry<'a>(&mut self, entry: Stamped<'a>) -> RawSeen<'a> {
        let stamped = self.stamp_entry(entry);
        self.classify(stamped)
    }

    /// Classify a stamped line.
    fn classify<'a>(
        &mut self,
        (time, parsed): (Option<i64>, Result<Stamped<'a>, LineError>),
    ) -> RawSeen<'a> {
        let Some(time) = time else {
            return RawSeen::Outside;
        };
        match self.bounds.place(time) {
            Place::Past => return RawSeen::Past,
            Place::Outside | Place::Before | Place::After => return RawSeen::Outside,
            Place::Inside => {}
        }
        match self.body(parsed) {
            Body::Record { topic, payload } => RawSeen::Record {
                micros: time,
                topic,
                payload,
            },
            Body::Skipped => RawSeen::Skipped,
        }
    }

    /// Classify one line.
    pub fn read<'a>(&mut self, raw: &'a [u8]) -> Seen<'a> {
        let (time, topic, payload) = match self.read_raw(raw) {
            RawSeen::Outside => return Seen::Outside,
            RawSeen::Past => return Seen::Past,
            RawSeen::Skipped => return Seen::Skipped,
            RawSeen::Record {
                micros,
                topic,
                payload,
            } => (micros, topic, payload),
        };
        let topic = match topic {
            Cow::Borrowed(t) => std::str::from_utf8(t).map(Cow::Borrowed),
            Cow::Owned(t) => String::from_utf8(t)
                .map(Cow::Owned)
                .map_err(|e| e.utf8_error()),
        };
        let (Ok(topic), Some(time)) = (topic, DateTime::from_timestamp_micros(time)) else {
            return Seen::Skipped;
        };
        Seen::Record {
            time,
            topic,
            payload,
        }
    }
}

/// The record in a message of ours.
fn record(msg: &[u8]) -> Body<'_> {
    // Some templates put a space before MSG; our records never start with one (a topic's
    // spaces are escaped), so leading spaces are dropped losslessly.
    let start = msg.iter().take_while(|&&b| b == b' ').count();
    let Ok(rec) = record::decode(&msg[start..]) else {
        return Body::Skipped;
    };
    let payload = if rec.cut_from.is_some() {
        Err(Rejected::Cut)
    } else {
        Ok(rec.payload)
    };
    Body::Record {
        topic: rec.topic,
        payload,
    }
}
