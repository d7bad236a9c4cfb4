//! The I/O edge of the read API: scan the configured sources for one consumer, through the
//! read engine ([`crate::records`]: a [`Reader`] of the range, split across every core) and
//! the configured payload rules.
//!
//! Requests read together ([`Context::read_shared`]): the reads that wait for a turn join
//! one scan of the sources ([`Shared`]), which parses each line once for all of them. A
//! dashboard's first screen asks for about ten reads of the same day at once; each of them
//! alone parsed the whole day again.

use super::{Consumer, Readings};
use crate::calendar::Calendar;
use crate::config::{Config, EnergyConfig};
use crate::payload::Extractor;
use crate::records::{AnyRecords, Feed, Reader, Shared, scan};
use crate::syslog::source::Source;
use crate::time::{self, Window};
use crate::topic::Filters;
use chrono::{DateTime, Utc};
use std::sync::{Arc, Mutex};

/// What reads need: where the records are and how to read them. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Context(Arc<Inner>);

#[derive(Debug, Clone)]
struct Inner {
    sources: Vec<Source>,
    /// `syslog.sources` as configured, when it holds `auto`: decided again at each read, as
    /// the logger decides its target at each connection, so that a syslog daemon installed
    /// or removed is followed without a restart.
    auto: Option<Vec<String>>,
    identifier: String,
    extractor: Extractor,
    disorder: chrono::Duration,
    /// Threads a read of a large plain file may use.
    threads: usize,
    /// How energy statistics read a curve.
    energy: EnergyConfig,
    /// The configured calendars.
    calendars: Vec<Calendar>,
    /// Most series one answer may hold (`[http] max_series`).
    max_series: usize,
    /// Locations in private areas, withheld from every answer.
    locations: Arc<crate::privacy::Locations>,
    /// What each series measures (`[[homeassistant.unit]]`, else inferred from its name).
    units: Arc<crate::unit::Units>,
    /// Scans that may run at once: each holds what its reads return, and a few of them at a
    /// time bound what parallel requests hold together.
    heavy: Arc<tokio::sync::Semaphore>,
    /// Reads waiting for a scan ([`Context::read_shared`]).
    waiting: Arc<Mutex<Vec<Waiting>>>,
    /// When the latest read was asked for.
    latest: Arc<Mutex<Option<std::time::Instant>>>,
}

/// Scans of the history that run at once; more reads wait their turn, and join one scan.
pub const HEAVY_READS: usize = 2;

/// Most reads one scan serves: what they hold together is bounded.
pub const READS_PER_SCAN: usize = 12;

/// How long a read asked for while reads are being asked for (a page loading: its first
/// read's answer brings the next dozen) waits, once it has a turn, for the rest of them to
/// join its scan. A lone read never waits.
const GATHER: std::time::Duration = std::time::Duration::from_millis(5);

/// Reads asked for within this of each other are a page loading ([`GATHER`]).
const BUSY: std::time::Duration = std::time::Duration::from_secs(1);

/// How much longer than the shortest of its reads a scan may be: a read of the last hour
/// joins a scan of the day (reads that end now all wait for the end of the sources anyway),
/// not one of the week.
const LONGER: i32 = 24;

/// A read waiting for a scan: its window, what takes its records, and where its outcome goes.
struct Waiting {
    window: Window,
    records: Box<dyn AnyRecords>,
    /// Hands the records back (or the scan's error) to the request that asked.
    reply: Reply,
}

/// Where a waiting read's outcome goes: the scan's context (to read again when a split read
/// could not be joined exactly) and the read's records or the scan's error.
type Reply = Box<dyn FnOnce(&Context, Result<Box<dyn AnyRecords>, ReadError>) + Send>;

impl std::fmt::Debug for Waiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waiting")
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

/// A read that failed: a source could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ReadError(String);

/// The outcome of a read.
#[derive(Debug)]
pub struct Read<C> {
    /// The consumer, fed.
    pub consumer: C,
    /// Records of the selected topics that gave neither a number nor a state.
    pub rejected: u64,
    /// The read stopped because the consumer held more than `max_series` series.
    pub too_many: bool,
}

impl Context {
    /// A context reading `sources` for records tagged `identifier`; lines up to `disorder`
    /// after the range are still read (records that reached syslog out of order).
    pub fn new(
        sources: Vec<Source>,
        identifier: &str,
        extractor: Extractor,
        disorder: std::time::Duration,
    ) -> Self {
        Self::build(sources, None, identifier, extractor, disorder)
    }

    fn build(
        sources: Vec<Source>,
        auto: Option<Vec<String>>,
        identifier: &str,
        extractor: Extractor,
        disorder: std::time::Duration,
    ) -> Self {
        Context(Arc::new(Inner {
            sources,
            auto,
            identifier: identifier.to_owned(),
            extractor,
            disorder: chrono::Duration::from_std(disorder).unwrap_or(chrono::Duration::zero()),
            threads: scan::threads(None),
            energy: EnergyConfig::default(),
            calendars: Vec::new(),
            max_series: crate::config::DEFAULT_MAX_SERIES,
            locations: Arc::default(),
            units: Arc::new(crate::unit::Units::new(&[])),
            heavy: Arc::new(tokio::sync::Semaphore::new(HEAVY_READS)),
            waiting: Arc::default(),
            latest: Arc::default(),
        }))
    }

    /// The same context answering with at most `max` series.
    pub fn with_max_series(self, max: usize) -> Self {
        self.with(|inner| inner.max_series = max)
    }

    /// Most series one answer may hold.
    pub fn max_series(&self) -> usize {
        self.0.max_series
    }

    /// The same context reading on at most `threads` threads (default: one per core).
    pub fn with_threads(self, threads: usize) -> Self {
        self.with(|inner| inner.threads = threads.max(1))
    }

    /// The same context with the energy settings and calendars of a configuration.
    pub fn with_energy(self, energy: EnergyConfig, calendars: Vec<Calendar>) -> Self {
        self.with(|inner| {
            inner.energy = energy;
            inner.calendars = calendars;
        })
    }

    /// This context changed by `f` (a copy only where a clone shares it).
    fn with(self, f: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = Arc::unwrap_or_clone(self.0);
        f(&mut inner);
        Context(Arc::new(inner))
    }

    /// How energy statistics read a curve (`[energy]`).
    pub fn energy(&self) -> &EnergyConfig {
        &self.0.energy
    }

    /// The calendar named `name` (`[[calendar]]`).
    pub fn calendar(&self, name: &str) -> Option<&Calendar> {
        self.0.calendars.iter().find(|c| c.name == name)
    }

    /// The context of a configuration: `syslog.sources`, `syslog.identifier`, the payload
    /// rules and `stats.disorder`, as `iotitan-stats` reads them.
    pub fn from_config(cfg: &Config) -> Result<Self, String> {
        let configured = &cfg.syslog.sources;
        let sources = crate::syslog::system::resolve_sources(configured)
            .map_err(|e| format!("syslog.sources: {e}"))?;
        let auto = crate::syslog::system::names_auto(configured).then(|| configured.clone());
        Ok(Context::build(
            sources,
            auto,
            &cfg.syslog.identifier,
            cfg.payload.extractor(),
            cfg.stats.disorder.get(),
        )
        .with_energy(
            cfg.energy.clone(),
            cfg.calendar.iter().map(|c| c.calendar()).collect(),
        )
        .with_max_series(cfg.http.max_series)
        .with_locations(crate::privacy::Locations::of(cfg))
        .with_units(crate::unit::Units::new(&cfg.homeassistant.unit)))
    }

    /// The same context with `units` (what the dashboard shows beside a value).
    pub fn with_units(self, units: crate::unit::Units) -> Self {
        self.with(|inner| inner.units = Arc::new(units))
    }

    /// What each series measures.
    pub fn units(&self) -> &crate::unit::Units {
        &self.0.units
    }

    /// The same context withholding the locations `locations` finds in private areas from
    /// every answer (records written before an area was configured still hold them).
    pub fn with_locations(self, locations: crate::privacy::Locations) -> Self {
        self.with(|inner| inner.locations = Arc::new(locations))
    }

    /// The private areas and the payloads that carry a location.
    pub fn locations(&self) -> &crate::privacy::Locations {
        &self.0.locations
    }

    /// How payloads are read into numbers (`[[payload.json]]`).
    pub fn extractor(&self) -> &Extractor {
        &self.0.extractor
    }

    /// [`read`](Self::read) into a consumer `make` makes, read again on one thread in the rare
    /// case a split read could not be joined exactly ([`Consumer::exact`]: an energy curve
    /// whose state across a cut a fork could not know). Blocking.
    pub fn read_exact<C: Consumer>(
        &self,
        topics: &Filters,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        make: impl Fn() -> C,
    ) -> Result<Read<C>, ReadError> {
        let read = self.read(topics.clone(), since, until, make())?;
        self.exact_or_again(read, |one| one.read(topics.clone(), since, until, make()))
    }

    /// `read` as it is when it is what one pass gives (it was joined exactly, stopped at too
    /// many series, or ran on one thread); else what `again` reads on one thread.
    fn exact_or_again<C: Consumer>(
        &self,
        read: Read<C>,
        again: impl FnOnce(Context) -> Result<Read<C>, ReadError>,
    ) -> Result<Read<C>, ReadError> {
        if read.too_many || read.consumer.exact() || self.0.threads == 1 {
            return Ok(read);
        }
        tracing::debug!("a read split across threads could not be joined exactly: read again");
        again(self.clone().with_threads(1))
    }

    /// [`read_exact`](Self::read_exact), in one scan with the other reads waiting then: the
    /// read joins the queue, and whoever gets a turn (at most [`HEAVY_READS`] at once) scans
    /// for the reads queued, [`READS_PER_SCAN`] at a time, until none is left.
    pub async fn read_shared<C: Consumer + 'static>(
        &self,
        topics: Filters,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        make: impl Fn() -> C + Send + 'static,
    ) -> Result<Read<C>, ReadError> {
        let extractor = self.0.extractor.clone();
        self.read_shared_by(extractor, topics, since, until, make)
            .await
    }

    /// [`read_shared`](Self::read_shared) with payloads read by `extractor` rather than the
    /// configured rules: a track reads the location fields of a device's documents, whatever
    /// `[[payload.json]]` says.
    pub async fn read_shared_by<C: Consumer + 'static>(
        &self,
        extractor: Extractor,
        topics: Filters,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        make: impl Fn() -> C + Send + 'static,
    ) -> Result<Read<C>, ReadError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let readings = self.readings(&extractor, topics.clone(), make());
        let reply = move |ctx: &Context, got: Result<Box<dyn AnyRecords>, ReadError>| {
            let read = got.and_then(|records| {
                let readings = records
                    .into_any()
                    .downcast::<Readings<C>>()
                    .map_err(|_| ReadError("a read got another read's answer".into()))?;
                ctx.exact_or_again(Read::from(*readings), |one| {
                    one.read_by(&extractor, topics, since, until, make())
                })
            });
            // The request may have gone (its client hung up): nobody to tell.
            let _ = tx.send(read);
        };
        let asked = std::time::Instant::now();
        let burst = {
            let mut latest = self.0.latest.lock().unwrap_or_else(|e| e.into_inner());
            let burst = latest.is_some_and(|l| asked.duration_since(l) < BUSY);
            *latest = Some(asked);
            burst
        };
        self.queue().push(Waiting {
            window: Window {
                start: since,
                end: until,
            },
            records: Box::new(readings),
            reply: Box::new(reply),
        });
        let turn = self.0.heavy.clone().acquire_owned().await.ok();
        if burst {
            tokio::time::sleep_until((asked + GATHER).into()).await;
        }
        if !self.queue().is_empty() {
            let ctx = self.clone();
            // Not awaited: the scan answers every read it took, also when this request is
            // dropped meanwhile.
            tokio::task::spawn_blocking(move || {
                let _turn = turn;
                while let Some(reads) = ctx.next_scan() {
                    ctx.scan(reads);
                }
            });
        }
        rx.await
            .map_err(|_| ReadError("the read stopped before it answered".into()))?
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Vec<Waiting>> {
        // A panic while the lock was held left a list of reads, still whole.
        self.0.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The reads of the next scan: the first waiting, and those waiting after it that keep
    /// the scan at most [`LONGER`] times as long as any of its reads.
    fn next_scan(&self) -> Option<Vec<Waiting>> {
        let mut queue = self.queue();
        if queue.is_empty() {
            return None;
        }
        let first = queue.remove(0);
        let (mut start, mut end) = (first.window.start, first.window.end);
        let mut shortest = end - start;
        let mut reads = vec![first];
        let mut i = 0;
        while i < queue.len() && reads.len() < READS_PER_SCAN {
            let w = queue[i].window;
            let (s, e) = (start.min(w.start), end.max(w.end));
            let short = shortest.min(w.end - w.start);
            if (e - s) <= short * LONGER {
                (start, end, shortest) = (s, e, short);
                reads.push(queue.remove(i));
            } else {
                i += 1;
            }
        }
        Some(reads)
    }

    /// One scan for `reads`, each answered.
    fn scan(&self, reads: Vec<Waiting>) {
        let inner = &self.0;
        let (members, replies): (Vec<_>, Vec<_>) = reads
            .into_iter()
            .map(|w| ((self.reader(w.window), w.records), w.reply))
            .unzip();
        let Some(mut shared) = Shared::new(members) else {
            return;
        };
        let (from, to) = shared.range();
        let scanned = self.sources().and_then(|sources| {
            scan::scan_split(
                &sources,
                from,
                to,
                &inner.identifier,
                &mut shared,
                inner.threads,
            )
            .map_err(|e| ReadError(format!("{e:#}")))
        });
        match scanned {
            Ok(()) => {
                for (reply, records) in replies.into_iter().zip(shared.into_records()) {
                    reply(self, Ok(records));
                }
            }
            Err(e) => {
                for reply in replies {
                    reply(self, Err(ReadError(e.0.clone())));
                }
            }
        }
    }

    /// The reader of a window.
    fn reader(&self, window: Window) -> Reader<chrono::Local> {
        Reader::new(window, self.0.disorder, &self.0.identifier, time::local())
    }

    /// The readings of `topics`, read by `extractor`, for `consumer`.
    fn readings<C: Consumer>(
        &self,
        extractor: &Extractor,
        topics: Filters,
        consumer: C,
    ) -> Readings<C> {
        Readings::new(topics, extractor.clone(), consumer)
            .with_max_series(self.0.max_series)
            .with_locations(self.0.locations.clone())
    }

    /// The sources to read now (`auto` decided again).
    fn sources(&self) -> Result<Vec<Source>, ReadError> {
        match &self.0.auto {
            Some(configured) => crate::syslog::system::resolve_sources(configured)
                .map_err(|e| ReadError(format!("syslog.sources: {e}"))),
            None => Ok(self.0.sources.clone()),
        }
    }

    /// Feed the readings of `topics` logged in `[since, until)` to `consumer`. Blocking: call
    /// it from a blocking thread.
    pub fn read<C: Consumer>(
        &self,
        topics: Filters,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        consumer: C,
    ) -> Result<Read<C>, ReadError> {
        self.read_by(&self.0.extractor, topics, since, until, consumer)
    }

    /// [`read`](Self::read) with payloads read by `extractor`.
    fn read_by<C: Consumer>(
        &self,
        extractor: &Extractor,
        topics: Filters,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        consumer: C,
    ) -> Result<Read<C>, ReadError> {
        let inner = &self.0;
        let reader = self.reader(Window {
            start: since,
            end: until,
        });
        let mut feed = Feed::new(reader, self.readings(extractor, topics, consumer));
        let (from, to) = feed.range();
        scan::scan_split(
            &self.sources()?,
            from,
            to,
            &inner.identifier,
            &mut feed,
            inner.threads,
        )
        .map_err(|e| ReadError(format!("{e:#}")))?;
        Ok(Read::from(feed.into_records()))
    }
}

impl<C> From<Readings<C>> for Read<C> {
    fn from(readings: Readings<C>) -> Self {
        Read {
            rejected: readings.rejected,
            too_many: readings.too_many,
            consumer: readings.consumer,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::Rejected;
    use std::borrow::Cow;
    use std::ops::ControlFlow;

    struct Nothing;

    impl crate::records::Records for Nothing {
        fn record(
            &mut self,
            _: i64,
            _: Cow<'_, [u8]>,
            _: Result<Cow<'_, [u8]>, Rejected>,
        ) -> ControlFlow<()> {
            ControlFlow::Continue(())
        }
    }

    fn hours(from: i64, to: i64) -> Window {
        let h = |n| DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::hours(n);
        Window {
            start: h(from),
            end: h(to),
        }
    }

    #[test]
    fn a_scan_takes_the_reads_of_similar_ranges_in_turn() {
        let ctx = Context::new(
            Vec::new(),
            "iotitan-logger",
            Extractor::default(),
            std::time::Duration::ZERO,
        );
        let windows = [
            hours(0, 24),    // the first: the scan's
            hours(23, 24),   // the last hour: joins the day
            hours(-144, 24), // the week: 168 times the hour, another scan
            hours(22, 24),   // joins the day
            hours(-24, 24),  // two days: 48 times the hour, joins the week's scan
        ];
        for w in windows {
            ctx.queue().push(Waiting {
                window: w,
                records: Box::new(Nothing),
                reply: Box::new(|_, _| {}),
            });
        }
        let scans: Vec<Vec<Window>> = std::iter::from_fn(|| ctx.next_scan())
            .map(|reads| reads.iter().map(|r| r.window).collect())
            .collect();
        assert_eq!(
            scans,
            [
                vec![hours(0, 24), hours(23, 24), hours(22, 24)],
                vec![hours(-144, 24), hours(-24, 24)],
            ]
        );
        for _ in 0..READS_PER_SCAN + 3 {
            ctx.queue().push(Waiting {
                window: hours(0, 1),
                records: Box::new(Nothing),
                reply: Box::new(|_, _| {}),
            });
        }
        assert_eq!(ctx.next_scan().map(|r| r.len()), Some(READS_PER_SCAN));
        assert_eq!(ctx.next_scan().map(|r| r.len()), Some(3));
        assert!(ctx.next_scan().is_none());
    }
}
