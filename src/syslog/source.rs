//! Reading records back: syslog files (with rotated and gzipped siblings), journald through
//! `journalctl`, and stdin.
//!
//! The cost of reading a window follows the window, not the history: in a plain file the
//! window's start is found by a binary search over byte offsets (probing the first timestamp
//! after each offset), then lines are streamed until the caller has seen enough. Rotated
//! siblings are opened only when the window reaches into them; a gzipped one is streamed from
//! its start (it cannot be searched). Memory stays bounded: one read buffer and one line.
//!
//! The line format is not this module's business: the caller's [`Lines`] gives the time of a
//! line for seeking and takes the lines of the window.
//!
//! A consumer that can be split ([`Split`], the statistics) reads a large plain file on
//! several threads ([`scan_split`]): after the binary search, the rest of the file is cut into
//! ranges at line boundaries, each read by a fork of the consumer, and the forks' results are
//! merged in file order. Compressed files and streams are read on one thread.

use chrono::{DateTime, Utc};
use flate2::read::MultiGzDecoder;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

/// Longest line handed to the caller; a longer one is passed as an empty line (and so counted
/// as unparseable) instead of growing memory without bound.
pub const MAX_LINE: usize = 1 << 20;

/// Below this span a binary search stops probing and streams.
const SEEK_GRANULE: u64 = 64 * 1024;

/// Read buffer size.
const BUFFER: usize = 256 * 1024;

/// Below this many bytes a file is read on one thread: starting a thread and merging costs
/// more than the time it saves.
const MIN_SPLIT: u64 = 4 << 20;

/// Where records are read from (`syslog.sources`, `--input`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A syslog file and its rotated siblings (`syslog.1`, `syslog.2.gz`, …).
    File(PathBuf),
    /// Standard input, read to its end or to the end of the window.
    Stdin,
    /// The journal, optionally a namespace of it, through `journalctl -o json`.
    Journal(Option<String>),
}

impl std::str::FromStr for Source {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "" => Err("empty source: expected a file, -, journal or journal:NAMESPACE".into()),
            "-" => Ok(Source::Stdin),
            "journal" => Ok(Source::Journal(None)),
            _ => match s.strip_prefix("journal:") {
                Some("") => Err("journal: needs a namespace after the colon".into()),
                Some(ns) => Ok(Source::Journal(Some(ns.to_owned()))),
                None => Ok(Source::File(PathBuf::from(s))),
            },
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::File(p) => write!(f, "{}", p.display()),
            Source::Stdin => f.write_str("-"),
            Source::Journal(None) => f.write_str("journal"),
            Source::Journal(Some(ns)) => write!(f, "journal:{ns}"),
        }
    }
}

/// What a scan needs from the line format.
pub trait Lines {
    /// The time of a line, for seeking; `reference` is the newest a line of this input can be
    /// (the file's modification time), for formats without a year.
    fn time_of(&mut self, line: &[u8], reference: DateTime<Utc>) -> Option<DateTime<Utc>>;
    /// A new input starts (a file, stdin, the journal).
    fn input(&mut self, reference: DateTime<Utc>);
    /// One line of the candidate region; `Break` ends the whole scan (the window is over).
    fn take(&mut self, line: &[u8]) -> ControlFlow<()>;
}

/// A consumer of lines whose work can be split into ranges of a file read on other threads.
pub trait Split: Lines + Send + Sized {
    /// An empty consumer with this one's settings, ready to read the lines of the current
    /// input (whose `reference` is given) from a line of time `start` on; `None` when
    /// starting there could read a line differently than reading on from here would.
    fn fork(&self, start: DateTime<Utc>, reference: DateTime<Utc>) -> Option<Self>;
    /// Add the results of `later`, which read the lines right after this one's. Called only
    /// when this one did not end the scan (its lines after a `Break` are never read).
    fn merge(&mut self, later: Self);
}

/// What to read: the time range to locate (already widened for disorder) and, for the
/// journal, the identifier to ask for.
#[derive(Debug, Clone)]
pub struct Scan<'a> {
    /// Lines before this need not be read.
    pub from: DateTime<Utc>,
    /// Lines after this need not be read (the caller stops the scan itself; this bounds
    /// `journalctl`).
    pub until: DateTime<Utc>,
    /// The syslog identifier (journal queries filter on it).
    pub identifier: &'a str,
}

/// Problems that did not stop the scan (a damaged `.gz`), for the caller to report.
#[derive(Debug, Default, Clone)]
pub struct ScanReport {
    /// Files opened, oldest first.
    pub files: Vec<PathBuf>,
    /// Bytes read (compressed bytes for `.gz`).
    pub bytes: u64,
    /// Inputs that ended early, with why.
    pub damaged: Vec<String>,
}

impl ScanReport {
    /// Add the report of the files read right after this one's.
    fn absorb(&mut self, later: ScanReport) {
        self.files.extend(later.files);
        self.bytes += later.bytes;
        self.damaged.extend(later.damaged);
    }
}

/// Why a source could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Neither the file nor any rotated sibling exists.
    #[error("no syslog file {0} (nor rotated siblings)")]
    Missing(PathBuf),
    /// A file or stdin failed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// What was being read.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `journalctl` failed.
    #[error("journalctl: {0}")]
    Journal(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SourceError + '_ {
    move |source| SourceError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Read the lines of `source` that may lie in `scan`'s range into `lines`.
///
/// `progress` is called with the number of bytes read since its last call.
pub fn scan(
    source: &Source,
    scan: &Scan<'_>,
    lines: &mut dyn Lines,
    progress: &mut dyn FnMut(u64),
) -> Result<ScanReport, SourceError> {
    scan_with(source, scan, &mut One(lines), progress)
}

/// [`scan`] with plain files read on up to `threads` threads (one when a file is small, or
/// when `lines` cannot start at a cut).
pub fn scan_split<L: Split>(
    source: &Source,
    scan: &Scan<'_>,
    lines: &mut L,
    progress: &mut dyn FnMut(u64),
    threads: usize,
) -> Result<ScanReport, SourceError> {
    scan_split_min(source, scan, lines, progress, threads, MIN_SPLIT)
}

/// [`scan_split`] splitting files of at least `min` bytes (tests split small files).
pub(crate) fn scan_split_min<L: Split>(
    source: &Source,
    scan: &Scan<'_>,
    lines: &mut L,
    progress: &mut dyn FnMut(u64),
    threads: usize,
    min: u64,
) -> Result<ScanReport, SourceError> {
    let mut many = Many {
        lines,
        threads,
        min,
    };
    scan_with(source, scan, &mut many, progress)
}

/// How the lines of a plain file are read from an offset: on one thread or on several.
trait Target {
    fn lines(&mut self) -> &mut dyn Lines;
    /// Read `archives` (gzipped rotations, consecutive, oldest first) into the lines, in
    /// order; the flow after the last one read. A damaged archive is reported and its tail
    /// skipped.
    fn read_archives(
        &mut self,
        archives: &[PathBuf],
        progress: &mut dyn FnMut(u64),
        report: &mut ScanReport,
    ) -> Result<ControlFlow<()>, SourceError> {
        for f in archives {
            if read_archive(f, self.lines(), progress, report)?.is_break() {
                return Ok(ControlFlow::Break(()));
            }
        }
        Ok(ControlFlow::Continue(()))
    }
    /// Read `file` (at `path`) from `offset` to its end into the lines; an offset inside a
    /// line skips the rest of that line.
    fn read_from(
        &mut self,
        path: &Path,
        file: File,
        offset: u64,
        mtime: DateTime<Utc>,
        progress: &mut dyn FnMut(u64),
        total: &mut u64,
    ) -> std::io::Result<ControlFlow<()>>;
}

/// One thread.
struct One<'a>(&'a mut dyn Lines);

impl Target for One<'_> {
    fn lines(&mut self) -> &mut dyn Lines {
        self.0
    }
    fn read_from(
        &mut self,
        _: &Path,
        mut file: File,
        offset: u64,
        mtime: DateTime<Utc>,
        progress: &mut dyn FnMut(u64),
        total: &mut u64,
    ) -> std::io::Result<ControlFlow<()>> {
        file.seek(SeekFrom::Start(offset))?;
        self.0.input(mtime);
        let mut reader = BufReader::with_capacity(BUFFER, file);
        if offset > 0 {
            // The offset is inside a line that lies before the range.
            let n = read_capped(&mut reader, &mut Vec::new())?;
            *total += n as u64;
        }
        stream(reader, self.0, progress, total)
    }
}

/// Several threads for large plain files.
struct Many<'a, L> {
    lines: &'a mut L,
    threads: usize,
    /// Smallest range worth splitting.
    min: u64,
}

impl<L: Split> Target for Many<'_, L> {
    fn lines(&mut self) -> &mut dyn Lines {
        &mut *self.lines
    }

    /// A deflate stream cannot be entered in the middle, but the archives of a rotation can
    /// be read side by side: in batches of one per thread, the first by the consumer itself,
    /// the others by forks starting at their first line, merged in file order.
    fn read_archives(
        &mut self,
        archives: &[PathBuf],
        progress: &mut dyn FnMut(u64),
        report: &mut ScanReport,
    ) -> Result<ControlFlow<()>, SourceError> {
        let mut next = 0;
        while next < archives.len() {
            let mut forks = Vec::new();
            let mut end = next + 1;
            while end < archives.len() && forks.len() + 1 < self.threads {
                let f = &archives[end];
                let fork = first_time(f, &mut *self.lines).and_then(|start| {
                    let mtime = modified(&File::open(f).ok()?);
                    self.lines.fork(start, mtime)
                });
                let Some(fork) = fork else { break };
                forks.push(fork);
                end += 1;
            }
            let others = AtomicU64::new(0);
            let lines = &mut *self.lines;
            let (first, rest) = std::thread::scope(|s| {
                let handles: Vec<_> = forks
                    .into_iter()
                    .zip(&archives[next + 1..end])
                    .map(|(mut fork, f)| {
                        let others = &others;
                        s.spawn(move || {
                            let mut mine = ScanReport::default();
                            let mut count = |n| {
                                others.fetch_add(n, Ordering::Relaxed);
                            };
                            let flow = read_archive(f, &mut fork, &mut count, &mut mine);
                            (flow, mine, fork)
                        })
                    })
                    .collect();
                let mut mine = ScanReport::default();
                let flow = read_archive(
                    &archives[next],
                    lines,
                    &mut |n| progress(n + others.swap(0, Ordering::Relaxed)),
                    &mut mine,
                );
                let rest: Vec<_> = handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                    .collect();
                ((flow, mine), rest)
            });
            progress(others.swap(0, Ordering::Relaxed));
            let (flow, mine) = first;
            report.absorb(mine);
            let mut flow = flow?;
            for (later_flow, mine, fork) in rest {
                // Archives after the one that ended the scan are not part of it.
                if flow.is_break() {
                    break;
                }
                report.absorb(mine);
                lines.merge(fork);
                flow = later_flow?;
            }
            if flow.is_break() {
                return Ok(flow);
            }
            next = end;
        }
        Ok(ControlFlow::Continue(()))
    }
    fn read_from(
        &mut self,
        path: &Path,
        mut file: File,
        offset: u64,
        mtime: DateTime<Utc>,
        progress: &mut dyn FnMut(u64),
        total: &mut u64,
    ) -> std::io::Result<ControlFlow<()>> {
        self.lines.input(mtime);
        let mut start = offset;
        if offset > 0 {
            file.seek(SeekFrom::Start(offset))?;
            let mut reader = BufReader::with_capacity(SEEK_GRANULE as usize, &mut file);
            let n = read_capped(&mut reader, &mut Vec::new())? as u64;
            *total += n;
            start += n;
        }
        let len = file.metadata()?.len();
        // Cut the rest into ranges of about equal size, each starting at a timed line.
        let mut cuts = vec![start];
        let mut forks = Vec::new();
        if self.threads > 1 && len.saturating_sub(start) >= self.min {
            for k in 1..self.threads as u64 {
                let pos = start + (len - start) / self.threads as u64 * k;
                let Some((at, time)) = timed_line_after(&mut file, pos, mtime, &mut *self.lines)?
                else {
                    continue;
                };
                if at <= cuts[cuts.len() - 1] || at >= len {
                    continue;
                }
                if let Some(fork) = self.lines.fork(time, mtime) {
                    cuts.push(at);
                    forks.push(fork);
                }
            }
        }
        file.seek(SeekFrom::Start(start))?;
        if forks.is_empty() {
            return stream(file, self.lines, progress, total);
        }
        let others = AtomicU64::new(0);
        let lines = &mut *self.lines;
        let (first, rest) = std::thread::scope(|s| {
            let handles: Vec<_> = forks
                .into_iter()
                .enumerate()
                .map(|(i, mut fork)| {
                    let (from, to) = (cuts[i + 1], cuts.get(i + 2).copied());
                    let others = &others;
                    s.spawn(move || -> std::io::Result<(ControlFlow<()>, u64, L)> {
                        let mut f = File::open(path)?;
                        f.seek(SeekFrom::Start(from))?;
                        fork.input(mtime);
                        let mut bytes = 0;
                        let mut count = |n| {
                            others.fetch_add(n, Ordering::Relaxed);
                        };
                        // The last range reads to the end, as one thread would: a live file
                        // may have grown.
                        let flow = match to {
                            Some(to) => {
                                stream(f.take(to - from), &mut fork, &mut count, &mut bytes)
                            }
                            None => stream(f, &mut fork, &mut count, &mut bytes),
                        }?;
                        Ok((flow, bytes, fork))
                    })
                })
                .collect();
            let first = stream(
                (&mut file).take(cuts[1] - start),
                lines,
                &mut |n| progress(n + others.swap(0, Ordering::Relaxed)),
                total,
            );
            let rest: Vec<_> = handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect();
            (first, rest)
        });
        progress(others.swap(0, Ordering::Relaxed));
        let mut flow = first?;
        for r in rest {
            let (later_flow, bytes, fork) = r?;
            *total += bytes;
            if flow.is_continue() {
                lines.merge(fork);
                flow = later_flow;
            }
        }
        Ok(flow)
    }
}

/// The offset and time of the first line that starts after `pos` and has a time.
fn timed_line_after(
    file: &mut File,
    pos: u64,
    mtime: DateTime<Utc>,
    lines: &mut dyn Lines,
) -> std::io::Result<Option<(u64, DateTime<Utc>)>> {
    file.seek(SeekFrom::Start(pos))?;
    let mut reader = BufReader::with_capacity(SEEK_GRANULE as usize, &mut *file);
    let mut buf = Vec::new();
    let mut at = pos + read_capped(&mut reader, &mut buf)? as u64;
    for _ in 0..64 {
        buf.clear();
        let n = read_capped(&mut reader, &mut buf)?;
        if n == 0 || buf.last() != Some(&b'\n') {
            return Ok(None);
        }
        if let Some(t) = lines.time_of(&buf[..buf.len() - 1], mtime) {
            return Ok(Some((at, t)));
        }
        at += n as u64;
    }
    Ok(None)
}

fn scan_with(
    source: &Source,
    scan: &Scan<'_>,
    target: &mut dyn Target,
    progress: &mut dyn FnMut(u64),
) -> Result<ScanReport, SourceError> {
    match source {
        Source::File(path) => scan_files(path, scan, target, progress),
        Source::Stdin => {
            let lines = target.lines();
            lines.input(Utc::now());
            let stdin = std::io::stdin().lock();
            let mut report = ScanReport::default();
            // A break only means the window is over: the rest of stdin is not needed.
            let _ = stream(stdin, lines, progress, &mut report.bytes)
                .map_err(io_err(Path::new("-")))?;
            Ok(report)
        }
        Source::Journal(ns) => scan_journal(ns.as_deref(), scan, target.lines()),
    }
}

/// The file and its rotated siblings that exist, oldest first: `name.N.gz`/`name.N` by
/// falling N, then `name`.
pub fn rotations(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| std::io::Error::other("not a file name"))?;
    let mut numbered: Vec<(u64, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let file = entry.file_name();
        let Some(file) = file.to_str() else { continue };
        let Some(rest) = file.strip_prefix(name).and_then(|r| r.strip_prefix('.')) else {
            continue;
        };
        let num = rest.strip_suffix(".gz").unwrap_or(rest);
        if let Ok(n) = num.parse::<u64>()
            && num.bytes().all(|b| b.is_ascii_digit())
        {
            numbered.push((n, entry.path()));
        }
    }
    numbered.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut all: Vec<PathBuf> = numbered.into_iter().map(|(_, p)| p).collect();
    if path.exists() {
        all.push(path.to_owned());
    }
    Ok(all)
}

fn is_gz(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "gz")
}

/// A file's modification time: no line in it is newer.
fn modified(file: &File) -> DateTime<Utc> {
    file.metadata()
        .and_then(|m| m.modified())
        .map(DateTime::<Utc>::from)
        .unwrap_or_else(|_| Utc::now())
}

fn open(path: &Path) -> Result<(Box<dyn BufRead>, DateTime<Utc>), SourceError> {
    let file = File::open(path).map_err(io_err(path))?;
    let mtime = modified(&file);
    let reader: Box<dyn BufRead> = if is_gz(path) {
        Box::new(BufReader::with_capacity(BUFFER, MultiGzDecoder::new(file)))
    } else {
        Box::new(BufReader::with_capacity(BUFFER, file))
    };
    Ok((reader, mtime))
}

/// The time of the first line of `path` that has one (looking at its first lines only).
fn first_time(path: &Path, lines: &mut dyn Lines) -> Option<DateTime<Utc>> {
    let (reader, mtime) = open(path).ok()?;
    let mut found = None;
    let mut budget = 1000;
    let _ = for_each_line(reader.take(4 * MAX_LINE as u64), &mut |line| {
        found = lines.time_of(line, mtime);
        budget -= 1;
        if found.is_some() || budget == 0 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    found
}

fn scan_files(
    path: &Path,
    scan: &Scan<'_>,
    target: &mut dyn Target,
    progress: &mut dyn FnMut(u64),
) -> Result<ScanReport, SourceError> {
    let files = rotations(path).map_err(io_err(path))?;
    if files.is_empty() {
        return Err(SourceError::Missing(path.to_owned()));
    }
    // Start in the newest file that begins at or before the range; files are in time order,
    // so nothing older can hold a line of the window.
    let mut first = 0;
    for (i, f) in files.iter().enumerate().rev() {
        if first_time(f, target.lines()).is_some_and(|t| t <= scan.from) {
            first = i;
            break;
        }
    }
    let mut report = ScanReport::default();
    let files = &files[first..];
    let mut i = 0;
    while i < files.len() {
        let f = &files[i];
        let flow = if !is_gz(f) {
            report.files.push(f.clone());
            let mut file = File::open(f).map_err(io_err(f))?;
            let mtime = modified(&file);
            let offset = if i == 0 {
                seek(&mut file, scan.from, mtime, target.lines()).map_err(io_err(f))?
            } else {
                0
            };
            i += 1;
            target
                .read_from(f, file, offset, mtime, progress, &mut report.bytes)
                .map_err(io_err(f))?
        } else {
            let end = files[i..]
                .iter()
                .position(|f| !is_gz(f))
                .map_or(files.len(), |n| i + n);
            let flow = target.read_archives(&files[i..end], progress, &mut report)?;
            i = end;
            flow
        };
        if flow.is_break() {
            break;
        }
    }
    Ok(report)
}

/// Read one gzipped archive into `lines`. A damaged archive loses its tail, not the run: what
/// was read counts, and the damage is reported.
fn read_archive(
    f: &Path,
    lines: &mut dyn Lines,
    progress: &mut dyn FnMut(u64),
    report: &mut ScanReport,
) -> Result<ControlFlow<()>, SourceError> {
    report.files.push(f.to_owned());
    let (reader, mtime) = open(f)?;
    lines.input(mtime);
    match stream(reader, lines, progress, &mut report.bytes) {
        Ok(flow) => Ok(flow),
        Err(e) => {
            tracing::warn!("{}: {e}; the rest of this file is skipped", f.display());
            report.damaged.push(format!("{}: {e}", f.display()));
            Ok(ControlFlow::Continue(()))
        }
    }
}

/// Binary search for an offset at or before the first line at `from` or later.
///
/// Probes read the first timed line after an offset. A probe that finds no time counts as
/// "not before", so the search can only end early (more reading), never late. Lines out of
/// order by less than the caller's widening of `from` cannot make it miss a line.
pub fn seek(
    file: &mut File,
    from: DateTime<Utc>,
    mtime: DateTime<Utc>,
    lines: &mut dyn Lines,
) -> std::io::Result<u64> {
    let len = file.metadata()?.len();
    let (mut lo, mut hi) = (0u64, len);
    let mut buf = Vec::new();
    while hi - lo > SEEK_GRANULE {
        let mid = lo + (hi - lo) / 2;
        match probe(file, mid, mtime, lines, &mut buf)? {
            Some(t) if t < from => lo = mid,
            _ => hi = mid,
        }
    }
    Ok(lo)
}

/// The time of the first line that starts after `offset` and has one.
fn probe(
    file: &mut File,
    offset: u64,
    mtime: DateTime<Utc>,
    lines: &mut dyn Lines,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<DateTime<Utc>>> {
    file.seek(SeekFrom::Start(offset))?;
    let mut reader = BufReader::with_capacity(SEEK_GRANULE as usize, &mut *file);
    read_capped(&mut reader, buf)?;
    for _ in 0..64 {
        buf.clear();
        if read_capped(&mut reader, buf)? == 0 {
            return Ok(None);
        }
        let line = buf.strip_suffix(b"\n").unwrap_or(buf);
        if let Some(t) = lines.time_of(line, mtime) {
            return Ok(Some(t));
        }
    }
    Ok(None)
}

/// Read one line (with its newline) into `buf`, keeping at most [`MAX_LINE`] bytes of it;
/// returns the bytes consumed.
fn read_capped(reader: &mut impl BufRead, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut consumed = 0;
    loop {
        let chunk = match reader.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            return Ok(consumed);
        }
        let (n, done) = match memchr::memchr(b'\n', chunk) {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        let room = (MAX_LINE + 1).saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..n.min(room)]);
        reader.consume(n);
        consumed += n;
        if done {
            return Ok(consumed);
        }
    }
}

/// Hand every complete line of `reader` to `f` (without the newline; a last line without one
/// counts too). Lines longer than [`MAX_LINE`] are passed as empty lines.
fn for_each_line(
    mut reader: impl BufRead,
    f: &mut dyn FnMut(&[u8]) -> ControlFlow<()>,
) -> std::io::Result<(ControlFlow<()>, u64)> {
    let mut long = Vec::new();
    let mut bytes = 0u64;
    loop {
        let chunk = match reader.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            if !long.is_empty() {
                let line = if long.len() > MAX_LINE {
                    &[][..]
                } else {
                    &long[..]
                };
                if f(line).is_break() {
                    return Ok((ControlFlow::Break(()), bytes));
                }
            }
            return Ok((ControlFlow::Continue(()), bytes));
        }
        let len = chunk.len();
        let mut start = 0;
        // Whole lines straight from the buffer: no copy in the common case.
        while let Some(i) = memchr::memchr(b'\n', &chunk[start..]) {
            let end = start + i;
            let flow = if long.is_empty() {
                f(&chunk[start..end])
            } else {
                let room = (MAX_LINE + 1).saturating_sub(long.len());
                long.extend_from_slice(&chunk[start..end.min(start + room)]);
                let line = if long.len() > MAX_LINE {
                    &[][..]
                } else {
                    &long[..]
                };
                let flow = f(line);
                long.clear();
                flow
            };
            start = end + 1;
            if flow.is_break() {
                reader.consume(start);
                return Ok((ControlFlow::Break(()), bytes + start as u64));
            }
        }
        let rest = &chunk[start..];
        let room = (MAX_LINE + 1).saturating_sub(long.len());
        long.extend_from_slice(&rest[..rest.len().min(room)]);
        bytes += len as u64;
        reader.consume(len);
    }
}

/// Stream `reader` into `lines`, reporting progress about every MiB.
fn stream(
    reader: impl Read,
    lines: &mut dyn Lines,
    progress: &mut dyn FnMut(u64),
    total: &mut u64,
) -> std::io::Result<ControlFlow<()>> {
    /// Counts bytes as they are read, for the progress bar.
    struct Counting<'p, R> {
        inner: R,
        pending: u64,
        total: &'p mut u64,
        progress: &'p mut dyn FnMut(u64),
    }
    impl<R: Read> Read for Counting<'_, R> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.inner.read(buf)?;
            *self.total += n as u64;
            self.pending += n as u64;
            if self.pending >= 1 << 20 || n == 0 {
                (self.progress)(self.pending);
                self.pending = 0;
            }
            Ok(n)
        }
    }
    let counting = Counting {
        inner: reader,
        pending: 0,
        total,
        progress,
    };
    let reader = BufReader::with_capacity(BUFFER, counting);
    for_each_line(reader, &mut |line| lines.take(line)).map(|(flow, _)| flow)
}

/// `journalctl` time arguments: whole seconds in UTC, widened to cover the range.
fn journal_time(t: DateTime<Utc>, round_up: bool) -> String {
    let secs = t.timestamp() + i64::from(round_up && t.timestamp_subsec_nanos() > 0);
    DateTime::from_timestamp(secs, 0)
        .unwrap_or(t)
        .format("%Y-%m-%d %H:%M:%S UTC")
        .to_string()
}

fn scan_journal(
    namespace: Option<&str>,
    scan: &Scan<'_>,
    lines: &mut dyn Lines,
) -> Result<ScanReport, SourceError> {
    let mut cmd = Command::new("journalctl");
    cmd.args(["-o", "json", "--no-pager", "-q", "--output-fields"])
        .arg("MESSAGE,SYSLOG_IDENTIFIER")
        .arg("--since")
        .arg(journal_time(scan.from, false))
        .arg("--until")
        .arg(journal_time(scan.until, true))
        .arg("-t")
        .arg(scan.identifier);
    if let Some(ns) = namespace {
        cmd.arg("--namespace").arg(ns);
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| SourceError::Journal(format!("cannot run journalctl: {e}")))?;
    let out = child
        .stdout
        .take()
        .ok_or_else(|| SourceError::Journal("no stdout".into()))?;
    let mut stderr = child.stderr.take();
    lines.input(Utc::now());
    let mut report = ScanReport::default();
    let flow = stream(out, lines, &mut |_| {}, &mut report.bytes);
    if matches!(flow, Ok(ControlFlow::Break(()))) {
        let _ = child.kill();
    }
    let status = child
        .wait()
        .map_err(|e| SourceError::Journal(e.to_string()))?;
    let flow = flow.map_err(|e| SourceError::Journal(e.to_string()))?;
    if flow.is_continue() && !status.success() {
        let mut msg = String::new();
        if let Some(e) = stderr.as_mut() {
            let _ = e.read_to_string(&mut msg);
        }
        return Err(SourceError::Journal(format!(
            "{status}: {}",
            msg.trim().lines().next().unwrap_or("no message")
        )));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Lines `<seconds> text`: the time is the leading number.
    #[derive(Default)]
    struct Numbered {
        seen: Vec<String>,
        stop_after: Option<i64>,
        probes: usize,
    }

    fn secs(line: &[u8]) -> Option<i64> {
        let s = std::str::from_utf8(line).ok()?;
        s.split(' ').next()?.parse().ok()
    }

    impl Lines for Numbered {
        fn time_of(&mut self, line: &[u8], _: DateTime<Utc>) -> Option<DateTime<Utc>> {
            self.probes += 1;
            DateTime::from_timestamp(secs(line)?, 0)
        }
        fn input(&mut self, _: DateTime<Utc>) {}
        fn take(&mut self, line: &[u8]) -> ControlFlow<()> {
            self.seen.push(String::from_utf8_lossy(line).into_owned());
            match (secs(line), self.stop_after) {
                (Some(t), Some(stop)) if t > stop => ControlFlow::Break(()),
                _ => ControlFlow::Continue(()),
            }
        }
    }

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(s, 0).unwrap()
    }

    fn range(from: i64, until: i64) -> Scan<'static> {
        Scan {
            from: t(from),
            until: t(until),
            identifier: "x",
        }
    }

    fn write_lines(path: &Path, from: i64, to: i64) {
        let mut f = std::io::BufWriter::new(File::create(path).unwrap());
        for i in from..to {
            writeln!(f, "{i} some padding to make lines longer than a few bytes").unwrap();
        }
    }

    #[test]
    fn sources_parse() {
        assert_eq!("-".parse(), Ok(Source::Stdin));
        assert_eq!("journal".parse(), Ok(Source::Journal(None)));
        assert_eq!("journal:ns".parse(), Ok(Source::Journal(Some("ns".into()))));
        assert_eq!(
            "/var/log/syslog".parse(),
            Ok(Source::File("/var/log/syslog".into()))
        );
        assert!("journal:".parse::<Source>().is_err());
        assert!("".parse::<Source>().is_err());
    }

    #[test]
    fn the_window_is_found_without_reading_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("syslog");
        write_lines(&p, 0, 200_000);
        let mut n = Numbered {
            stop_after: Some(150_010),
            ..Numbered::default()
        };
        let report = scan(
            &Source::File(p),
            &range(150_000, 150_010),
            &mut n,
            &mut |_| {},
        )
        .unwrap();
        let first = secs(n.seen[0].as_bytes()).unwrap();
        assert!((149_000..=150_000).contains(&first), "started at {first}");
        assert!(n.seen.iter().any(|l| l.starts_with("150000 ")));
        // One read buffer of a 12 MB file.
        assert!(
            report.bytes <= BUFFER as u64 * 2,
            "read {} bytes",
            report.bytes
        );
        assert!(n.probes < 1000, "{} probes", n.probes);
    }

    #[test]
    fn slight_disorder_is_tolerated() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("syslog");
        let mut f = std::io::BufWriter::new(File::create(&p).unwrap());
        // Pairs swapped: each line is at most one second out of order.
        for i in (0..100_000).step_by(2) {
            writeln!(f, "{} x", i + 1).unwrap();
            writeln!(f, "{i} x").unwrap();
        }
        drop(f);
        for target in [0, 1, 777, 50_000, 99_998, 99_999] {
            let mut n = Numbered {
                stop_after: Some(target + 2),
                ..Numbered::default()
            };
            scan(
                &Source::File(p.clone()),
                &range(target - 1, target + 2),
                &mut n,
                &mut |_| {},
            )
            .unwrap();
            assert!(
                n.seen.iter().any(|l| secs(l.as_bytes()) == Some(target)),
                "missed {target}"
            );
        }
    }

    #[test]
    fn rotated_and_gzipped_siblings_are_read_when_the_window_reaches_them() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("syslog");
        let gz = |name: &str, from: i64, to: i64| {
            let f = File::create(dir.path().join(name)).unwrap();
            let mut e = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
            for i in from..to {
                writeln!(e, "{i} x").unwrap();
            }
            e.finish().unwrap();
        };
        gz("syslog.3.gz", 0, 1000);
        gz("syslog.2.gz", 1000, 2000);
        write_lines(&dir.path().join("syslog.1"), 2000, 3000);
        write_lines(&base, 3000, 4000);
        std::fs::write(dir.path().join("syslog.old"), "junk").unwrap();
        let names: Vec<_> = rotations(&base)
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["syslog.3.gz", "syslog.2.gz", "syslog.1", "syslog"]);

        // A window across syslog.2.gz and syslog.1.
        let mut n = Numbered {
            stop_after: Some(2100),
            ..Numbered::default()
        };
        let report = scan(
            &Source::File(base.clone()),
            &range(1900, 2100),
            &mut n,
            &mut |_| {},
        )
        .unwrap();
        let files: Vec<_> = report
            .files
            .iter()
            .map(|p| p.file_name().unwrap().to_owned())
            .collect();
        assert_eq!(files, ["syslog.2.gz", "syslog.1"]);
        let times: Vec<_> = n.seen.iter().filter_map(|l| secs(l.as_bytes())).collect();
        assert!(times.contains(&1900) && times.contains(&2100));
        assert!(!times.contains(&999));

        // A window in the current file does not open the archives.
        let mut n = Numbered {
            stop_after: Some(3500),
            ..Numbered::default()
        };
        let report = scan(&Source::File(base), &range(3400, 3500), &mut n, &mut |_| {}).unwrap();
        assert_eq!(report.files.len(), 1);
    }

    #[test]
    fn a_truncated_archive_keeps_what_it_had() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("syslog");
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        for i in 0..10_000 {
            writeln!(e, "{i} x").unwrap();
        }
        let data = e.finish().unwrap();
        std::fs::write(dir.path().join("syslog.1.gz"), &data[..data.len() / 2]).unwrap();
        write_lines(&base, 20_000, 20_010);
        let mut n = Numbered::default();
        let report = scan(&Source::File(base), &range(0, 30_000), &mut n, &mut |_| {}).unwrap();
        assert_eq!(report.damaged.len(), 1, "{report:?}");
        assert!(n.seen.len() > 100, "{}", n.seen.len());
        assert!(n.seen.iter().any(|l| l.starts_with("20009 ")));
    }

    #[test]
    fn missing_files_are_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = scan(
            &Source::File(dir.path().join("nope")),
            &range(0, 1),
            &mut Numbered::default(),
            &mut |_| {},
        )
        .unwrap_err();
        assert!(matches!(err, SourceError::Missing(_)), "{err}");
    }

    #[test]
    fn long_lines_become_empty_and_the_rest_survives() {
        let mut data = b"1 a\n".to_vec();
        data.extend(std::iter::repeat_n(b'x', MAX_LINE + 10));
        data.extend_from_slice(b"\n2 b\n3 c");
        let mut seen = Vec::new();
        let reader = BufReader::with_capacity(4096, &data[..]);
        let (flow, _) = for_each_line(reader, &mut |l| {
            seen.push(l.to_vec());
            ControlFlow::Continue(())
        })
        .unwrap();
        assert!(flow.is_continue());
        assert_eq!(
            seen,
            vec![b"1 a".to_vec(), vec![], b"2 b".to_vec(), b"3 c".to_vec()]
        );
    }

    #[test]
    fn journal_times_cover_the_range() {
        let from = DateTime::parse_from_rfc3339("2026-11-22T05:00:00.5Z")
            .unwrap()
            .to_utc();
        assert_eq!(journal_time(from, false), "2026-11-22 05:00:00 UTC");
        assert_eq!(journal_time(from, true), "2026-11-22 05:00:01 UTC");
    }
}
