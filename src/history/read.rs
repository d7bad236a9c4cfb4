//! The I/O edge of the read API: scan the configured sources for one consumer, through the
//! read engine ([`crate::records`]: a [`Reader`] of the range, split across every core) and
//! the configured payload rules.

use super::{Consumer, Readings};
use crate::calendar::Calendar;
use crate::config::{Config, EnergyConfig};
use crate::payload::Extractor;
use crate::records::{Feed, Reader, scan};
use crate::syslog::source::Source;
use crate::time::{self, Window};
use crate::topic::Filters;
use chrono::{DateTime, Utc};
use std::sync::Arc;

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
    /// Reads that may run at once: each holds what it returns, and a few of them at a time
    /// bound what parallel requests hold together.
    heavy: Arc<tokio::sync::Semaphore>,
}

/// Reads of the history that run at once; more wait their turn.
pub const HEAVY_READS: usize = 2;

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
            heavy: Arc::new(tokio::sync::Semaphore::new(HEAVY_READS)),
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

    /// A turn to read: at most [`HEAVY_READS`] reads run at once.
    pub async fn turn(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.0.heavy.clone().acquire_owned().await.ok()
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
        .with_max_series(cfg.http.max_series))
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
        if read.too_many || read.consumer.exact() || self.0.threads == 1 {
            return Ok(read);
        }
        tracing::debug!("a read split across threads could not be joined exactly: read again");
        self.clone()
            .with_threads(1)
            .read(topics.clone(), since, until, make())
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
        let inner = &self.0;
        let reader = Reader::new(
            Window {
                start: since,
                end: until,
            },
            inner.disorder,
            &inner.identifier,
            time::local(),
        );
        let readings = Readings::new(topics, inner.extractor.clone(), consumer)
            .with_max_series(inner.max_series);
        let mut feed = Feed::new(reader, readings);
        let (from, to) = feed.range();
        let decided;
        let sources = match &inner.auto {
            Some(configured) => {
                decided = crate::syslog::system::resolve_sources(configured)
                    .map_err(|e| ReadError(format!("syslog.sources: {e}")))?;
                &decided
            }
            None => &inner.sources,
        };
        scan::scan_split(
            sources,
            from,
            to,
            &inner.identifier,
            &mut feed,
            inner.threads,
        )
        .map_err(|e| ReadError(format!("{e:#}")))?;
        let readings = feed.into_records();
        Ok(Read {
            rejected: readings.rejected,
            too_many: readings.too_many,
            consumer: readings.consumer,
        })
    }
}
