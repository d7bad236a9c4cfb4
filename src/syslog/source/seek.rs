//! Finding where a range starts in a plain file without reading what lies before it: a
//! binary search over byte offsets, probing the first timestamp after each.

use super::{Lines, read_capped};
use chrono::{DateTime, Utc};
use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};

/// Below this span a binary search stops probing and streams.
pub(super) const SEEK_GRANULE: u64 = 64 * 1024;

/// The offset and time of the first line that starts after `pos` and has a time.
pub(super) fn timed_line_after(
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
pub(super) fn probe(
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
