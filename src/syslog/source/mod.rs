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
mod files;
pub(crate) mod journal;
mod seek;
mod split;

pub use files::rotations;
pub use seek::seek;

use files::scan_files;
use journal::{scan_journal, scan_journalctl};
use split::{MIN_SPLIT, Many, One, Target};

use crate::syslog::line::Stamped;
use chrono::{DateTime, Utc};
use std::io::{BufRead, BufReader, Read};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

/// Longest line handed to the caller; a longer one is passed as an empty line (and so counted
/// as unparseable) instead of growing memory without bound.
pub const MAX_LINE: usize = 1 << 20;

/// Read buffer size.
const BUFFER: usize = 256 * 1024;

/// Where records are read from (`syslog.sources`, `--input`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A syslog file and its rotated siblings (`syslog.1`, `syslog.2.gz`, …).
    File(PathBuf),
    /// Standard input, read to its end or to the end of the window.
    Stdin,
    /// The journal, optionally a namespace of it, its files read directly.
    Journal(Option<String>),
    /// The same through `journalctl -o json`: the way it was read before, 30 to 60 times
    /// slower, kept for a host where the direct reader would misread (and as the benchmarks'
    /// peer).
    Journalctl(Option<String>),
}

impl std::str::FromStr for Source {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "" => Err(
                "empty source: expected a file, -, journal, journal:NAMESPACE or journalctl[:NAMESPACE]"
                    .into(),
            ),
            "-" => Ok(Source::Stdin),
            "journal" => Ok(Source::Journal(None)),
            "journalctl" => Ok(Source::Journalctl(None)),
            _ => {
                let namespace = |ns: &str, how: &str| match ns {
                    "" => Err(format!("{how}: needs a namespace after the colon")),
                    ns => Ok(Some(ns.to_owned())),
                };
                if let Some(ns) = s.strip_prefix("journal:") {
                    namespace(ns, "journal").map(Source::Journal)
                } else if let Some(ns) = s.strip_prefix("journalctl:") {
                    namespace(ns, "journalctl").map(Source::Journalctl)
                } else {
                    Ok(Source::File(PathBuf::from(s)))
                }
            }
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
            Source::Journalctl(None) => f.write_str("journalctl"),
            Source::Journalctl(Some(ns)) => write!(f, "journalctl:{ns}"),
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
    /// One journal entry of the candidate region, read from the journal's files: its time,
    /// identifier and message come apart, with nothing to parse. `Break` as for [`take`].
    ///
    /// [`take`]: Lines::take
    fn entry(&mut self, entry: Stamped<'_>) -> ControlFlow<()>;
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
        Source::Journalctl(ns) => scan_journalctl(ns.as_deref(), scan, target.lines()),
    }
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

#[cfg(test)]
mod tests {
    use super::journal::journal_time;
    use super::*;
    use std::fs::File;
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
        fn entry(&mut self, entry: Stamped<'_>) -> ControlFlow<()> {
            let line = [
                format!("{} ", entry.micros / 1_000_000).as_bytes(),
                &entry.msg,
            ]
            .concat();
            self.take(&line)
        }
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
        assert_eq!("journalctl".parse(), Ok(Source::Journalctl(None)));
        assert_eq!(
            "journalctl:ns".parse(),
            Ok(Source::Journalctl(Some("ns".into())))
        );
        assert!("journalctl:".parse::<Source>().is_err());
        for s in [
            "journal",
            "journal:a",
            "journalctl",
            "journalctl:b",
            "-",
            "/x",
        ] {
            assert_eq!(s.parse::<Source>().unwrap().to_string(), s);
        }
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
