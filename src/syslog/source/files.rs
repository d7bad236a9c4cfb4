//! A syslog file and its rotations: the siblings (`syslog.1`, `syslog.2.gz`, …) in the order
//! they were written, which of them a range reaches into, and reading a gzipped one, which
//! cannot be searched, from its start.

use super::seek::seek;
use super::split::Target;
use super::{
    BUFFER, Lines, MAX_LINE, Scan, ScanReport, SourceError, for_each_line, io_err, stream,
};
use chrono::{DateTime, Utc};
use flate2::read::MultiGzDecoder;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

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

pub(super) fn is_gz(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "gz")
}

/// A file's modification time: no line in it is newer.
pub(super) fn modified(file: &File) -> DateTime<Utc> {
    file.metadata()
        .and_then(|m| m.modified())
        .map(DateTime::<Utc>::from)
        .unwrap_or_else(|_| Utc::now())
}

pub(super) fn open(path: &Path) -> Result<(Box<dyn BufRead>, DateTime<Utc>), SourceError> {
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
pub(super) fn first_time(path: &Path, lines: &mut dyn Lines) -> Option<DateTime<Utc>> {
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

pub(super) fn scan_files(
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
pub(super) fn read_archive(
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
