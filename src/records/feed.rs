//! The one adapter between a scan and a reader of records: [`Feed`] owns the [`Reader`] of a
//! window and hands each record of ours in it to a [`Records`] (the read API's readings,
//! `query`'s export), so that every such reader parses lines the same way and none of them
//! writes the [`Lines`] plumbing again.

use super::reader::{RawSeen, Reader};
use crate::payload::Rejected;
use crate::syslog::clock::Zone;
use crate::syslog::line::Stamped;
use crate::syslog::source::{Lines, Split};
use chrono::{DateTime, Utc};
use std::borrow::Cow;
use std::ops::ControlFlow;

/// What takes the records of a window, one at a time, in the order of the lines.
///
/// A large file is read on every core: split into ranges of lines, each fed to a fork of its
/// own ([`Records::fork`]), whose results are then merged in line order ([`Records::merge`]).
/// One that cannot merge exactly keeps the default `fork`, and its reads stay on one thread.
pub trait Records: Send + Sized {
    /// A record of ours in the window: when it was logged (microseconds since the epoch),
    /// its topic's bytes as they stand in the line (not yet checked to be UTF-8), and its
    /// payload (`Err(Cut)` when the logger cut it). `Break` stops the scan.
    fn record(
        &mut self,
        micros: i64,
        topic: Cow<'_, [u8]>,
        payload: Result<Cow<'_, [u8]>, Rejected>,
    ) -> ControlFlow<()>;

    /// An empty one with this one's settings, for the lines after the ones this one takes;
    /// `None` when this one must see every line itself.
    fn fork(&self) -> Option<Self> {
        None
    }

    /// Add what `later`, a [`fork`](Records::fork) of this one, took: the records of the
    /// lines right after the ones this one took.
    fn merge(&mut self, later: Self) {
        let _ = later;
    }
}

/// The [`Lines`] side of a scan for a [`Records`]: classifies each line with its reader and
/// hands on the records of the window.
pub struct Feed<Z, R> {
    reader: Reader<Z>,
    /// What takes the records.
    pub records: R,
}

impl<Z: Zone + Clone, R: Records> Feed<Z, R> {
    /// A feed of the records `reader` finds in its window to `records`.
    pub fn new(reader: Reader<Z>, records: R) -> Self {
        Feed { reader, records }
    }

    /// The range a scan must cover.
    pub fn range(&self) -> (DateTime<Utc>, DateTime<Utc>) {
        self.reader.range()
    }

    /// What took the records.
    pub fn into_records(self) -> R {
        self.records
    }
}

impl<Z: Zone + Clone, R: Records> Lines for Feed<Z, R> {
    fn time_of(&mut self, line: &[u8], reference: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.reader.time_of(line, reference)
    }
    fn input(&mut self, reference: DateTime<Utc>) {
        self.reader.input(reference);
    }
    fn take(&mut self, line: &[u8]) -> ControlFlow<()> {
        let seen = self.reader.read_raw(line);
        self.seen(seen)
    }
    fn entry(&mut self, entry: Stamped<'_>) -> ControlFlow<()> {
        let seen = self.reader.read_entry(entry);
        self.seen(seen)
    }
}

impl<Z: Zone + Clone, R: Records> Feed<Z, R> {
    /// Hand a record of the window on.
    fn seen(&mut self, seen: RawSeen<'_>) -> ControlFlow<()> {
        match seen {
            RawSeen::Past => ControlFlow::Break(()),
            RawSeen::Record {
                micros,
                topic,
                payload,
            } => self.records.record(micros, topic, payload),
            RawSeen::Outside | RawSeen::Skipped => ControlFlow::Continue(()),
        }
    }
}

impl<Z: Zone + Clone + Send, R: Records> Split for Feed<Z, R> {
    fn fork(&self, start: DateTime<Utc>, reference: DateTime<Utc>) -> Option<Self> {
        if !self.reader.can_start_at(start) {
            return None;
        }
        Some(Feed {
            reader: self.reader.fork(reference),
            records: self.records.fork()?,
        })
    }
    fn merge(&mut self, later: Self) {
        self.records.merge(later.records);
    }
}
