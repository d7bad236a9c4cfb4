//! `iotitan-stats`: statistics of syslog windows, republished to MQTT.
//!
//! A batch job started by cron (or a systemd timer) at each fire of `stats.schedule`. One run:
//! 1. plan the windows ([`window`]): the latest `[previous fire, latest fire)`, plus any
//!    missed since the state file's last window ([`state`]), or `--since/--until`;
//! 2. read the lines of those windows from the sources in one pass, with the read engine
//!    ([`crate::records`]: binary search in files, rotated and `.gz` siblings, the journal,
//!    stdin), and sort them into values ([`collect`]);
//! 3. compute the statistics ([`aggregate`]) and print ([`report`]) or publish them
//!    ([`publish`]), then record the last window done.
//!
//! Nothing is kept between runs but the state file, so a run can be repeated: the same window
//! over the same files gives the same numbers. `query`, the raw history, is
//! [`crate::history::query`].

pub mod aggregate;
pub mod collect;
pub(crate) mod publish;
pub(crate) mod report;
pub(crate) mod state;
pub(crate) mod window;

use crate::config::Config;
use crate::exit::{self, ExitError};
use crate::records::Reader;
use crate::records::scan::{self, ProgressArgs, Threads, threads};
use crate::shutdown::Shutdown;
use crate::statistic::Statistic;
use crate::status::Metric;
use crate::syslog::source::Source;
use crate::time::{self, Window};
use aggregate::Summary;
use anyhow::Context;
use chrono::{DateTime, Utc};
use collect::{CatchUp, Collector, GroupRules, Selection};
use std::io::Write;

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
        max_series: st.max_series,
    };
    let disorder =
        chrono::Duration::from_std(st.disorder.get()).unwrap_or(chrono::Duration::zero());
    let lookback =
        chrono::Duration::from_std(cfg.energy.lookback.get()).unwrap_or(chrono::Duration::zero());
    let max_gap = max_gap(cfg);
    let curves = st.statistics.iter().any(|s| s.is_curve());
    let collectors = windows
        .iter()
        .map(|w| {
            let mut reader = Reader::new(*w, disorder, &cfg.syslog.identifier, time::local());
            if st.statistics.contains(&Statistic::Increase) {
                // A meter's last reading before the window is where its growth starts.
                reader = reader.with_lookback(lookback);
            }
            if curves {
                // The readings that open the window's first interval and close its last.
                reader = reader
                    .with_lookback(lookback.max(max_gap))
                    .with_after(max_gap);
            }
            let summary = Summary::new(
                w.start,
                w.end,
                &st.statistics,
                st.group.iter().map(|g| g.name.clone()),
            );
            Collector::new(reader, &selection, summary)
                .with_curves(max_gap)
                .with_groups(group_rules(cfg, w))
        })
        .collect();
    let mut batch = CatchUp::new(collectors);
    let Some((from, until)) = batch.range() else {
        return Ok(Vec::new());
    };
    scan::scan_all(
        sources,
        from,
        until,
        &cfg.syslog.identifier,
        Threads::Split(&mut batch, threads.max(1)),
        progress,
    )?;
    Ok(batch.into_summaries())
}

/// How the configured groups take their values in window `w`: `by`, and the time their
/// calendar counts.
fn group_rules(cfg: &Config, w: &Window) -> GroupRules {
    let zone = time::local();
    let (a, b) = (w.start.timestamp_micros(), w.end.timestamp_micros());
    GroupRules::new(cfg.stats.group.iter().map(|g| {
        let spans = g.calendar().map(|(name, within)| {
            // Config::parse checked that the calendar exists; a missing one counts nothing.
            match cfg.calendar.iter().find(|c| c.name == name) {
                Some(c) if within => c.calendar().spans(&zone, a, b),
                Some(c) => c.calendar().outside(&zone, a, b),
                None => Vec::new(),
            }
        });
        (g.by, spans)
    }))
}

/// `[energy] max_gap`: the longest interval of a curve that is integrated.
fn max_gap(cfg: &Config) -> chrono::Duration {
    chrono::Duration::from_std(cfg.energy.max_gap.get()).unwrap_or(chrono::Duration::zero())
}

/// The windows of this run, and whether they advance the state file.
fn windows(
    cfg: &Config,
    opts: &Options,
    now: DateTime<Utc>,
) -> anyhow::Result<(Vec<Window>, bool)> {
    if let Some(since) = &opts.since {
        let start = time::parse_time(since, now).map_err(exit::usage)?;
        let end = match &opts.until {
            Some(u) => time::parse_time(u, now).map_err(exit::usage)?,
            None => now,
        };
        if end <= start {
            return Err(exit::usage(format!(
                "--until ({end}) is not after --since ({start})"
            )));
        }
        return Ok((vec![Window { start, end }], false));
    }
    let schedule = crate::schedule::Schedule::parse(&cfg.stats.schedule)
        .map_err(|e| ExitError::new(exit::CONFIG, format!("stats.schedule: {e}")))?;
    let path = cfg.stats.state_path(&cfg.state_dir);
    let done = state::load(&path)
        .map_err(|e| ExitError::new(exit::IOERR, e.to_string()))?
        .map(|s| s.done_until);
    let zone = time::local();
    // A curve's last interval in a window is closed by a reading up to max_gap after its end:
    // with a curve statistic, a window is due max_gap after it ends, and its integral is
    // final then.
    let now = if cfg.stats.statistics.iter().any(|s| s.is_curve()) {
        now - max_gap(cfg)
    } else {
        now
    };
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
/// The run's status report (`status.topic_prefix`), if reports are on: stats runs and exits,
/// so it reports once per run what it did, with no availability.
fn health_report(
    cfg: &Config,
    summaries: &[Summary],
    took: std::time::Duration,
    outputs: usize,
) -> Option<(String, Vec<u8>)> {
    let status = crate::status::Status::of(cfg, "stats")?;
    let last = summaries.last()?;
    let (mut read, mut matched, mut skipped, mut rejected) = (0, 0, 0, 0);
    for s in summaries {
        read += s.lines.read;
        matched += s.lines.matched;
        skipped += s.lines.skipped;
        rejected += s.lines.rejected;
    }
    let gauge = |name: &str, help: &str, v: f64| Metric::gauge(name, help, v);
    let metrics = vec![
        gauge(
            "windows",
            "Windows the last run computed",
            summaries.len() as f64,
        ),
        gauge(
            "last_window_end_seconds",
            "End of the last window computed, Unix seconds",
            last.end.timestamp() as f64,
        ),
        gauge(
            "duration_seconds",
            "How long the last run read and computed",
            took.as_secs_f64(),
        ),
        gauge("lines_read", "Lines the last run read", read as f64),
        gauge(
            "lines_matched",
            "Of them, records of the watched topics",
            matched as f64,
        ),
        gauge(
            "lines_skipped",
            "Of them, lines that were not records",
            skipped as f64,
        ),
        gauge(
            "lines_rejected",
            "Of them, payloads that were not readings",
            rejected as f64,
        ),
        gauge(
            "series",
            "Series in the last window",
            last.series.len() as f64,
        ),
        gauge(
            "outputs",
            "Statistics the last run published",
            outputs as f64,
        ),
    ];
    let summary = format!(
        "window {} .. {}: {} series from {read} lines in {:.1} s",
        last.start
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        last.end.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        last.series.len(),
        took.as_secs_f64()
    );
    Some((status.topic().to_owned(), status.report(&summary, metrics)))
}

pub async fn run(cfg: &Config, shutdown: Shutdown, opts: &Options) -> anyhow::Result<()> {
    let now = match &opts.now {
        Some(t) => time::parse_time(t, Utc::now()).map_err(exit::usage)?,
        None => Utc::now(),
    };
    let sources = scan::sources(&cfg.syslog.sources, &opts.inputs)?;
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
    let started = std::time::Instant::now();
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
    for s in &summaries {
        if !s.left_out.is_empty() {
            tracing::warn!(
                "window {} .. {}: {} series ({} readings) past stats.max_series ({}) were left \
                 out; raise stats.max_series to compute them",
                s.start,
                s.end,
                s.left_out.series(),
                s.left_out.readings,
                cfg.stats.max_series
            );
        }
    }
    let format = opts.format.or(opts.dry_run.then_some(Format::Text));
    if let Some(format) = format {
        // Written as made, not gathered first: a window of a million series prints millions
        // of lines.
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        let written: std::io::Result<()> = summaries.iter().try_for_each(|s| match format {
            Format::Text => report::write_text(s, &mut out),
            Format::Json => {
                report::write_json(s, &mut out)?;
                out.write_all(b"\n")
            }
        });
        written
            .and_then(|()| out.flush())
            .map_err(|e| ExitError::new(exit::IOERR, format!("cannot write to stdout: {e}")))?;
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
    // Made as they are published: a window of a million series has millions of outputs.
    let summary_topic = cfg.stats.summary_topic.as_ref();
    let outputs: usize = summaries
        .iter()
        .map(|s| s.outputs().count() + usize::from(summary_topic.is_some()))
        .sum();
    // The run's report goes last, acknowledged like the statistics.
    let health = health_report(cfg, &summaries, started.elapsed(), outputs);
    let total = outputs + usize::from(health.is_some());
    let messages = summaries.iter().flat_map(|s| {
        let summary = summary_topic.map(|topic| {
            let mut json = Vec::new();
            // Writing into memory cannot fail.
            let _ = report::write_json(s, &mut json);
            (topic.clone(), json)
        });
        s.outputs().map(|(t, v)| (t, v.into_bytes())).chain(summary)
    });
    let messages = messages.chain(health);
    publish::publish(&cfg.mqtt, publish::Counted::new(messages, total), shutdown).await?;
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
