//! `iotitan-stats`: statistics of syslog windows, republished to MQTT.
//!
//! A batch job started by cron (or a systemd timer) at each fire of `stats.schedule`. One run:
//! 1. plan the windows ([`window`]): the latest `[previous fire, latest fire)`, plus any
//!    missed since the state file's last window ([`state`]), or `--since/--until`;
//! 2. read the lines of those windows from the sources in one pass
//!    ([`crate::syslog::source`]: binary search in files, rotated and `.gz` siblings,
//!    `journalctl`, stdin), parse them ([`crate::syslog::line`]) and sort them into values ([`collect`]);
//! 3. compute the statistics ([`aggregate`]) and print ([`report`]) or publish them
//!    ([`publish`]), then record the last window done.
//!
//! Nothing is kept between runs but the state file, so a run can be repeated: the same window
//! over the same files gives the same numbers. [`query`] exports the raw history instead.

pub mod aggregate;
pub mod collect;
pub mod decisions;
pub mod publish;
pub mod query;
pub mod report;
pub mod state;
pub mod window;

use crate::config::Config;
use crate::exit::{self, ExitError};
use crate::shutdown::Shutdown;
use crate::syslog::source::{self, Lines, Scan, Source, SourceError, Split};
use aggregate::Summary;
use anyhow::Context;
use chrono::{DateTime, Utc};
use collect::{CatchUp, Collector, Reader, Selection};
use std::io::IsTerminal;
use window::Window;

/// How a run prints its statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A `# window …` line, then `topic value` per output (like `mosquitto_sub -v`).
    Text,
    /// One JSON object per window, one per line.
    Json,
}

/// Options of a run (the command line beyond `--config`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Options {
    /// Start of an explicit window: RFC 3339, or relative like -1h. Explicit windows leave the
    /// state file alone.
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub since: Option<String>,
    /// End of an explicit window (exclusive) [default: now].
    #[arg(
        long,
        value_name = "TIME",
        allow_hyphen_values = true,
        requires = "since"
    )]
    pub until: Option<String>,
    /// Read these sources instead of syslog.sources: a file, - for stdin, journal or
    /// journal:NAMESPACE (repeatable).
    #[arg(long = "input", value_name = "SOURCE", allow_hyphen_values = true)]
    pub inputs: Vec<String>,
    /// Print the statistics, publish nothing and leave the state file alone.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the statistics in this format (text by default with --dry-run).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Take this as the current time (replays of old files, tests).
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub now: Option<String>,
    /// Read large files on this many threads [default: the number of cores].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
    #[command(flatten)]
    pub progress: ProgressArgs,
}

/// `--progress` / `--no-progress`.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct ProgressArgs {
    /// Show a progress bar on stderr while reading (drawn on a terminal only) [default: when
    /// stderr is a terminal].
    #[arg(long, overrides_with = "no_progress")]
    pub progress: bool,
    /// Never show a progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

impl ProgressArgs {
    /// A progress bar of bytes read, or a hidden one.
    fn bar(self) -> indicatif::ProgressBar {
        let show = !self.no_progress && (self.progress || std::io::stderr().is_terminal());
        if !show {
            return indicatif::ProgressBar::hidden();
        }
        let bar = indicatif::ProgressBar::new_spinner();
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{spinner} {binary_bytes} read, {binary_bytes_per_sec}, {elapsed}",
        ) {
            bar.set_style(style);
        }
        bar
    }
}

/// The number of threads a run reads with: `--threads`, else the number of cores.
fn threads(requested: Option<u16>) -> usize {
    requested.map(usize::from).unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(std::num::NonZeroUsize::get)
            .unwrap_or(1)
    })
}

/// Options of `query`.
#[derive(Debug, Clone, clap::Args)]
pub struct QueryOptions {
    /// Topic filters to export (repeatable, MQTT wildcards allowed).
    #[arg(long, value_name = "FILTER", required = true)]
    pub topics: Vec<crate::topic::TopicFilter>,
    /// Start (RFC 3339, or relative like -1d).
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub since: String,
    /// End, exclusive [default: now].
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub until: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "csv")]
    pub format: query::QueryFormat,
    /// Read these sources instead of syslog.sources (repeatable).
    #[arg(long = "input", value_name = "SOURCE", allow_hyphen_values = true)]
    pub inputs: Vec<String>,
    #[command(flatten)]
    pub progress: ProgressArgs,
}

fn usage(msg: impl Into<String>) -> anyhow::Error {
    ExitError::new(exit::USAGE, msg).into()
}

/// The sources of a run: `--input`s, else `syslog.sources`.
fn sources(cfg: &Config, inputs: &[String]) -> anyhow::Result<Vec<Source>> {
    if inputs.is_empty() {
        crate::syslog::system::resolve_sources(&cfg.syslog.sources)
            .map_err(|e| ExitError::new(exit::CONFIG, format!("syslog.sources: {e}")).into())
    } else {
        inputs.iter().map(|s| s.parse().map_err(usage)).collect()
    }
}

/// How a scan reads: on one thread into any [`Lines`], or split across threads.
enum Threads<'a, L> {
    One(&'a mut dyn Lines),
    Split(&'a mut L, usize),
}

/// Scan every source into `lines`, covering `[from, until)`.
fn scan_all<L: Split>(
    sources: &[Source],
    from: DateTime<Utc>,
    until: DateTime<Utc>,
    identifier: &str,
    mut lines: Threads<'_, L>,
    progress: &mut dyn FnMut(u64),
) -> anyhow::Result<()> {
    let scan = Scan {
        from,
        until,
        identifier,
    };
    for src in sources {
        let report = match &mut lines {
            Threads::One(l) => source::scan(src, &scan, &mut **l, progress),
            Threads::Split(l, threads) => {
                source::scan_split(src, &scan, &mut **l, progress, *threads)
            }
        };
        let report = report.map_err(|e| {
            let code = match e {
                SourceError::Journal(_) => exit::UNAVAILABLE,
                _ => exit::IOERR,
            };
            anyhow::Error::new(ExitError::new(code, e.to_string()))
        })?;
        for d in report.damaged {
            tracing::warn!("damaged input, read up to the damage: {d}");
        }
    }
    Ok(())
}

/// Scan every source into `lines` on up to `threads` threads (large plain files are split
/// into ranges, one per thread, merged in order), covering `[from, until)`: the HTTP read
/// API ([`crate::history`]) reads through this.
pub(crate) fn scan_split_one<L: Split>(
    sources: &[Source],
    from: DateTime<Utc>,
    until: DateTime<Utc>,
    identifier: &str,
    lines: &mut L,
    threads: usize,
) -> anyhow::Result<()> {
    scan_all(
        sources,
        from,
        until,
        identifier,
        Threads::Split(lines, threads),
        &mut |_| {},
    )
}

/// The threads a read of history may use: every core.
pub(crate) fn all_threads() -> usize {
    threads(None)
}

/// Compute the statistics of consecutive `windows` in one pass over `sources`, reading large
/// files on every core.
pub fn compute(
    cfg: &Config,
    sources: &[Source],
    windows: &[Window],
) -> anyhow::Result<Vec<Summary>> {
    compute_with(cfg, sources, windows, threads(None), &mut |_| {})
}

/// [`compute`] on up to `threads` threads, calling `progress` with the bytes read.
pub fn compute_with(
    cfg: &Config,
    sources: &[Source],
    windows: &[Window],
    threads: usize,
    progress: &mut dyn FnMut(u64),
) -> anyhow::Result<Vec<Summary>> {
    let st = &cfg.stats;
    let selection = Selection {
        topics: st.topics.clone(),
        groups: st.group.iter().map(|g| g.topics.clone()).collect(),
        extractor: cfg.payload.extractor(),
        summary_topic: st.summary_topic.clone(),
    };
    let disorder =
        chrono::Duration::from_std(st.disorder.get()).unwrap_or(chrono::Duration::zero());
    let collectors = windows
        .iter()
        .map(|w| {
            let reader = Reader::new(*w, disorder, &cfg.syslog.identifier, window::local());
            let summary = Summary::new(
                w.start,
                w.end,
                &st.statistics,
                st.group.iter().map(|g| g.name.clone()),
            );
            Collector::new(reader, &selection, summary)
        })
        .collect();
    let mut batch = CatchUp::new(collectors);
    let Some((from, until)) = batch.range() else {
        return Ok(Vec::new());
    };
    scan_all(
        sources,
        from,
        until,
        &cfg.syslog.identifier,
        Threads::Split(&mut batch, threads.max(1)),
        progress,
    )?;
    Ok(batch.into_summaries())
}

/// The windows of this run, and whether they advance the state file.
fn windows(
    cfg: &Config,
    opts: &Options,
    now: DateTime<Utc>,
) -> anyhow::Result<(Vec<Window>, bool)> {
    if let Some(since) = &opts.since {
        let start = window::parse_time(since, now).map_err(usage)?;
        let end = match &opts.until {
            Some(u) => window::parse_time(u, now).map_err(usage)?,
            None => now,
        };
        if end <= start {
            return Err(usage(format!(
                "--until ({end}) is not after --since ({start})"
            )));
        }
        return Ok((vec![Window { start, end }], false));
    }
    let schedule = window::Schedule::parse(&cfg.stats.schedule)
        .map_err(|e| ExitError::new(exit::CONFIG, format!("stats.schedule: {e}")))?;
    let path = cfg.stats.state_path(&cfg.state_dir);
    let done = state::load(&path)
        .map_err(|e| ExitError::new(exit::IOERR, e.to_string()))?
        .map(|s| s.done_until);
    let zone = window::local();
    let mut plan = window::plan(&schedule, now, done, cfg.stats.catch_up, &zone);
    if plan.dropped {
        tracing::warn!(
            "more than {} windows were missed; computing only the latest {}",
            cfg.stats.catch_up,
            plan.windows.len()
        );
    }
    if plan.windows.is_empty() && opts.dry_run {
        // Nothing is due, but a dry run is for looking: show the latest window.
        plan = window::plan(&schedule, now, None, 1, &zone);
    }
    Ok((plan.windows, !opts.dry_run))
}

/// One run of `iotitan-stats`: plan, read, compute, print and/or publish, record the state.
pub async fn run(cfg: &Config, shutdown: Shutdown, opts: &Options) -> anyhow::Result<()> {
    let now = match &opts.now {
        Some(t) => window::parse_time(t, Utc::now()).map_err(usage)?,
        None => Utc::now(),
    };
    let sources = sources(cfg, &opts.inputs)?;
    let (windows, scheduled) = windows(cfg, opts, now)?;
    let Some(last) = windows.last() else {
        tracing::info!("nothing to do: the latest window is done already");
        return Ok(());
    };
    // Cron and the timer start us right at the window's end, when its last records may still
    // be on their way into syslog; they would be in no window. (Replays with --now read old
    // files: nothing to wait for.)
    if scheduled
        && opts.now.is_none()
        && let Some(wait) = window::settle_wait(last.end, cfg.stats.settle.get(), now)
    {
        tracing::debug!("waiting {wait:?} for the window's last records");
        let mut shutdown = shutdown.clone();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.recv() => return Ok(()),
        }
    }
    let summaries = {
        let (cfg, sources, windows) = (cfg.clone(), sources.clone(), windows.clone());
        let (threads, bar) = (threads(opts.threads), opts.progress.bar());
        tokio::task::spawn_blocking(move || {
            let s = compute_with(&cfg, &sources, &windows, threads, &mut |n| bar.inc(n));
            bar.finish_and_clear();
            s
        })
        .await
        .context("the statistics task failed")??
    };
    let format = opts.format.or(opts.dry_run.then_some(Format::Text));
    if let Some(format) = format {
        let mut out = String::new();
        for s in &summaries {
            match format {
                Format::Text => out.push_str(&report::text(s)),
                Format::Json => {
                    out.push_str(&report::json(s).to_string());
                    out.push('\n');
                }
            }
        }
        print!("{out}");
    }
    for s in &summaries {
        let l = s.lines;
        tracing::info!(
            "window {} .. {}: {} lines, {} matched, {} skipped, {} rejected, {} series",
            s.start,
            s.end,
            l.read,
            l.matched,
            l.skipped,
            l.rejected,
            s.series.len()
        );
    }
    if opts.dry_run {
        return Ok(());
    }
    let mut messages = Vec::new();
    for s in &summaries {
        messages.extend(s.outputs().into_iter().map(|(t, v)| (t, v.into_bytes())));
        if let Some(topic) = &cfg.stats.summary_topic {
            messages.push((topic.clone(), report::json(s).to_string().into_bytes()));
        }
    }
    publish::publish(&cfg.mqtt, messages, shutdown).await?;
    if scheduled && let Some(last) = windows.last() {
        let st = state::State {
            schedule: cfg.stats.schedule.clone(),
            done_until: last.end,
        };
        state::save(&cfg.stats.state_path(&cfg.state_dir), &st)
            .map_err(|e| ExitError::new(exit::IOERR, e.to_string()))?;
    }
    Ok(())
}

/// `iotitan-stats query`: write the history of `opts.topics` to stdout.
pub fn run_query(cfg: &Config, opts: &QueryOptions) -> anyhow::Result<()> {
    let now = Utc::now();
    let since = window::parse_time(&opts.since, now).map_err(usage)?;
    let until = match &opts.until {
        Some(u) => window::parse_time(u, now).map_err(usage)?,
        None => now,
    };
    if until <= since {
        return Err(usage("--until is not after --since"));
    }
    let sources = sources(cfg, &opts.inputs)?;
    let disorder =
        chrono::Duration::from_std(cfg.stats.disorder.get()).unwrap_or(chrono::Duration::zero());
    let reader = Reader::new(
        query::window(since, until),
        disorder,
        &cfg.syslog.identifier,
        window::local(),
    );
    // Not locked: the export writes from a thread of its own.
    let stdout = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout());
    let mut export = query::Export::new(
        reader,
        crate::topic::Filters(opts.topics.clone()),
        cfg.payload.extractor(),
        opts.format,
        stdout,
    );
    export.begin().context("cannot write to stdout")?;
    let bar = opts.progress.bar();
    let (from, to) = export.range();
    // Rows are read on one thread, in file order, and written by the export's own thread.
    scan_all::<CatchUp<'_, chrono::Local>>(
        &sources,
        from,
        to,
        &cfg.syslog.identifier,
        Threads::One(&mut export),
        &mut |n| bar.inc(n),
    )?;
    let (rows, rejected) = (export.rows, export.rejected);
    bar.finish_and_clear();
    export.finish().context("cannot write to stdout")?;
    tracing::info!("{rows} values exported, {rejected} records were not numeric");
    Ok(())
}
