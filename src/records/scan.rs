//! Reading the sources for a reader of records: every configured source (or the command
//! line's), on one thread into any [`Lines`], or split across every core where a plain file is
//! large ([`Split`]), with the errors mapped to the exit codes a program ends with.

use crate::exit::{self, ExitError};
use crate::syslog::source::{self, Lines, Scan, Source, SourceError, Split};
use chrono::{DateTime, Utc};
use std::io::IsTerminal;

/// The sources a read takes: the command line's `--input`s, else `syslog.sources` (`auto`
/// decided now).
pub fn sources(configured: &[String], inputs: &[String]) -> anyhow::Result<Vec<Source>> {
    if inputs.is_empty() {
        crate::syslog::system::resolve_sources(configured)
            .map_err(|e| ExitError::new(exit::CONFIG, format!("syslog.sources: {e}")).into())
    } else {
        inputs
            .iter()
            .map(|s| s.parse().map_err(exit::usage))
            .collect()
    }
}

/// How a scan reads: on one thread into any [`Lines`], or split across threads.
pub enum Threads<'a, L> {
    /// One thread, in the order of the lines.
    One(&'a mut dyn Lines),
    /// Large plain files cut into ranges, up to this many read side by side.
    Split(&'a mut L, usize),
}

/// Scan every source into `lines`, covering `[from, until)`, calling `progress` with the
/// bytes read.
pub fn scan_all<L: Split>(
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
/// into ranges, one per thread, merged in order), covering `[from, until)`.
pub fn scan_split<L: Split>(
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

/// The number of threads a read uses: `requested`, else the number of cores.
pub fn threads(requested: Option<u16>) -> usize {
    requested.map(usize::from).unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(std::num::NonZeroUsize::get)
            .unwrap_or(1)
    })
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
    pub fn bar(self) -> indicatif::ProgressBar {
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
