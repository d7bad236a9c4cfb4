//! One scan for many reads: [`Shared`] parses each line once and hands its record to every
//! read whose window holds it.
//!
//! The dashboard's first screen asks for about ten reads of the same day at once (the
//! sparklines, the chart, the histogram, the alerts, the top devices). Read one after
//! another, each parsed every line again, and over a large file the parse is most of what a
//! read costs. Read together, a line is parsed once (time, identifier, record) and only what
//! differs per read repeats: whether its window holds the line, and what its [`Records`] make
//! of it.
//!
//! The reads must share the identifier and the clock's zone (one read API's context does):
//! the first reader parses for all of them, each one's own window only places the line.

use super::feed::Records;
use super::reader::{Body, Place, Reader};
use crate::payload::Rejected;
use crate::syslog::clock::Zone;
use crate::syslog::line::{LineError, Stamped};
use crate::syslog::source::{Lines, Split};
use chrono::{DateTime, Utc};
use std::any::Any;
use std::borrow::Cow;
use std::ops::ControlFlow;

/// [`Records`] of any type, behind a box: the reads of one scan each hold their own kind of
/// answer.
pub trait AnyRecords: Send + Any {
    /// [`Records::record`].
    fn record_dyn(
        &mut self,
        micros: i64,
        topic: Cow<'_, [u8]>,
        payload: Result<Cow<'_, [u8]>, Rejected>,
    ) -> ControlFlow<()>;
    /// [`Records::fork`].
    fn fork_dyn(&self) -> Option<Box<dyn AnyRecords>>;
    /// [`Records::merge`] of a fork of this one (anything else is ignored).
    fn merge_dyn(&mut self, later: Box<dyn AnyRecords>);
    /// The box, to be downcast back to what was put in.
    fn into_any(self: Box<Self>) -> Box<dyn Any>;
}

impl<R: Records + 'static> AnyRecords for R {
    fn record_dyn(
        &mut self,
        micros: i64,
        topic: Cow<'_, [u8]>,
        payload: Result<Cow<'_, [u8]>, Rejected>,
    ) -> ControlFlow<()> {
        self.record(micros, topic, payload)
    }
    fn fork_dyn(&self) -> Option<Box<dyn AnyRecords>> {
        Some(Box::new(self.fork()?))
    }
    fn merge_dyn(&mut self, later: Box<dyn AnyRecords>) {
        match later.into_any().downcast::<R>() {
            Ok(later) => self.merge(*later),
            Err(_) => debug_assert!(false, "merged a fork of another type"),
        }
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

/// One read of a shared scan.
struct Member<Z> {
    /// Places a line's time in this read's window (it parses nothing).
    window: Reader<Z>,
    records: Box<dyn AnyRecords>,
    /// Its window is over, or its records said `Break`: it takes no more lines, as a scan of
    /// its own would have stopped there.
    done: bool,
}

/// The [`Lines`] side of one scan for many reads: see the module comment.
pub struct Shared<Z> {
    /// Parses every line, for all of them.
    lead: Reader<Z>,
    members: Vec<Member<Z>>,
}

impl<Z: Zone + Clone> Shared<Z> {
    /// One scan for `reads`, each a reader of its window and what takes its records (at
    /// least one; all with the same identifier and zone).
    pub fn new(reads: Vec<(Reader<Z>, Box<dyn AnyRecords>)>) -> Option<Self> {
        let lead = reads.first()?.0.clone();
        Some(Shared {
            lead,
            members: reads
                .into_iter()
                .map(|(window, records)| Member {
                    window,
                    records,
                    done: false,
                })
                .collect(),
        })
    }

    /// The range the scan must cover: every read's.
    pub fn range(&self) -> (DateTime<Utc>, DateTime<Utc>) {
        let ranges = self.members.iter().map(|m| m.window.range());
        let from = ranges.clone().map(|r| r.0).min();
        let to = ranges.map(|r| r.1).max();
        from.zip(to).unwrap_or_else(|| self.lead.range())
    }

    /// What took each read's records, in the order given.
    pub fn into_records(self) -> Vec<Box<dyn AnyRecords>> {
        self.members.into_iter().map(|m| m.records).collect()
    }

    /// Hand a parsed line to every read whose window holds it; `Break` once none takes more.
    fn hand<'a>(
        &mut self,
        time: Option<i64>,
        parsed: Result<Stamped<'a>, LineError>,
    ) -> ControlFlow<()> {
        let Some(time) = time else {
            return ControlFlow::Continue(());
        };
        let mut parsed = Some(parsed);
        // Decoded once, for the first read that wants it.
        let mut body: Option<Body<'a>> = None;
        let mut open = false;
        for m in self.members.iter_mut().filter(|m| !m.done) {
            match m.window.place(time) {
                Place::Past => {
                    m.done = true;
                    continue;
                }
                Place::Inside => {}
                Place::Before | Place::After | Place::Outside => {
                    open = true;
                    continue;
                }
            }
            if body.is_none() {
                body = parsed.take().map(|p| self.lead.body(p));
            }
            if let Some(Body::Record { topic, payload }) = &body {
                let payload = match payload {
                    Ok(p) => Ok(Cow::Borrowed(&p[..])),
                    Err(e) => Err(*e),
                };
                if m.records
                    .record_dyn(time, Cow::Borrowed(&topic[..]), payload)
                    .is_break()
                {
                    m.done = true;
                    continue;
                }
            }
            open = true;
        }
        if open {
            ControlFlow::Continue(())
        } else {
            ControlFlow::Break(())
        }
    }
}

impl<Z: Zone + Clone> Lines for Shared<Z> {
    fn time_of(&mut self, line: &[u8], reference: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.lead.time_of(line, reference)
    }
    fn input(&mut self, reference: DateTime<Utc>) {
        self.lead.input(reference);
    }
    fn take(&mut self, line: &[u8]) -> ControlFlow<()> {
        let (time, parsed) = self.lead.stamp(line);
        self.hand(time, parsed)
    }
    fn entry(&mut self, entry: Stamped<'_>) -> ControlFlow<()> {
        let (time, parsed) = self.lead.stamp_entry(entry);
        self.hand(time, parsed)
    }
}

impl<Z: Zone + Clone + Send> Split for Shared<Z> {
    fn fork(&self, start: DateTime<Utc>, reference: DateTime<Utc>) -> Option<Self> {
        if !self.lead.can_start_at(start) {
            return None;
        }
        let members = self
            .members
            .iter()
            .map(|m| {
                Some(Member {
                    window: m.window.clone(),
                    records: m.records.fork_dyn()?,
                    done: m.done,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Shared {
            lead: self.lead.fork(reference),
            members,
        })
    }
    fn merge(&mut self, later: Self) {
        for (m, l) in self.members.iter_mut().zip(later.members) {
            // A read that stopped in this range would not have read the later lines.
            if !m.done {
                m.records.merge_dyn(l.records);
                m.done = l.done;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::Feed;
    use crate::syslog::source::{Scan, Source, scan_split_min};
    use crate::time::Window;
    use chrono::TimeZone;
    use proptest::prelude::*;
    use std::io::Write;

    /// Every record taken, as `(micros, topic, payload)`; stops after `stop_after` of them.
    #[derive(Debug, Clone, Default, PartialEq)]
    struct Taken {
        got: Vec<(i64, String, Option<String>)>,
        stop_after: Option<usize>,
    }

    impl Records for Taken {
        fn record(
            &mut self,
            micros: i64,
            topic: Cow<'_, [u8]>,
            payload: Result<Cow<'_, [u8]>, Rejected>,
        ) -> ControlFlow<()> {
            self.got.push((
                micros,
                String::from_utf8_lossy(&topic).into_owned(),
                payload
                    .ok()
                    .map(|p| String::from_utf8_lossy(&p).into_owned()),
            ));
            match self.stop_after {
                Some(n) if self.got.len() >= n => ControlFlow::Break(()),
                _ => ControlFlow::Continue(()),
            }
        }
        fn fork(&self) -> Option<Self> {
            Some(Taken {
                got: Vec::new(),
                stop_after: self.stop_after,
            })
        }
        fn merge(&mut self, later: Self) {
            self.got.extend(later.got);
        }
    }

    fn at(s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 5, 0, 0).unwrap() + chrono::Duration::seconds(s.into())
    }

    fn reader(from: u32, to: u32) -> Reader<Utc> {
        Reader::new(
            Window {
                start: at(from),
                end: at(to),
            },
            chrono::Duration::seconds(2),
            "iotitan-logger",
            Utc,
        )
    }

    /// A file of one record a second for `n` seconds (some lines of others, some broken).
    fn file(n: u32) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        for s in 0..n {
            let t = at(s).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            writeln!(f, "{t} pi iotitan-logger[1]: a/{} {s}", s % 3).unwrap();
            if s % 7 == 0 {
                writeln!(f, "{t} pi cron[2]: (root) CMD (true)").unwrap();
                writeln!(f, "not a syslog line").unwrap();
            }
        }
        f.flush().unwrap();
        f
    }

    fn scan_of(
        f: &tempfile::NamedTempFile,
        lines: &mut impl Split,
        range: (DateTime<Utc>, DateTime<Utc>),
        threads: usize,
    ) {
        let scan = Scan {
            from: range.0,
            until: range.1,
            identifier: "iotitan-logger",
        };
        scan_split_min(
            &Source::File(f.path().to_owned()),
            &scan,
            lines,
            &mut |_| {},
            threads,
            64,
        )
        .unwrap();
    }

    /// What a read of its own gives.
    fn alone(
        f: &tempfile::NamedTempFile,
        (from, to): (u32, u32),
        stop_after: Option<usize>,
    ) -> Taken {
        let mut feed = Feed::new(
            reader(from, to),
            Taken {
                got: Vec::new(),
                stop_after,
            },
        );
        let range = feed.range();
        scan_of(f, &mut feed, range, 1);
        feed.into_records()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Reads that share a scan, on one thread or split, each get what a read of its own
        /// gets: the records of its window, none twice, and nothing after it stopped.
        #[test]
        fn each_read_gets_what_it_would_alone(
            windows in prop::collection::vec((0u32..400, 1u32..300, prop::option::of(1usize..120)), 1..5),
            threads in 1usize..4,
        ) {
            let f = file(400);
            let reads: Vec<_> = windows
                .iter()
                .map(|&(from, len, stop)| {
                    (
                        reader(from, from + len),
                        Box::new(Taken { got: Vec::new(), stop_after: stop }) as Box<dyn AnyRecords>,
                    )
                })
                .collect();
            let mut shared = Shared::new(reads).unwrap();
            let range = shared.range();
            scan_of(&f, &mut shared, range, threads);
            for (records, &(from, len, stop)) in shared.into_records().into_iter().zip(&windows) {
                let got = *records.into_any().downcast::<Taken>().unwrap();
                // What a read of its own takes, and what it takes without stopping: a split
                // read stops a range where its records say so and drops the later ranges,
                // so it takes at least as much, all of it in the order of the lines.
                let want = alone(&f, (from, from + len), stop);
                let all = alone(&f, (from, from + len), None);
                prop_assert!(got.got.len() >= want.got.len());
                prop_assert_eq!(&got.got[..], &all.got[..got.got.len()]);
                if threads == 1 {
                    prop_assert_eq!(&got, &want);
                }
            }
        }
    }

    #[test]
    fn the_scan_ends_when_every_read_is_done() {
        let f = file(400);
        let mut shared = Shared::new(vec![
            (
                reader(10, 20),
                Box::new(Taken::default()) as Box<dyn AnyRecords>,
            ),
            (reader(30, 40), Box::new(Taken::default())),
        ])
        .unwrap();
        let range = shared.range();
        assert_eq!(range, (at(8), at(42)));
        // Lines past both windows (and their disorder) end the scan.
        for s in 0..60 {
            let line = format!(
                "{} pi iotitan-logger[1]: a/b {s}",
                at(s).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            );
            let flow = shared.take(line.as_bytes());
            assert_eq!(flow.is_break(), s >= 42, "second {s}");
            if flow.is_break() {
                break;
            }
        }
        let got: Vec<usize> = shared
            .into_records()
            .into_iter()
            .map(|r| r.into_any().downcast::<Taken>().unwrap().got.len())
            .collect();
        assert_eq!(got, [10, 10]);
        drop(f);
    }
}
