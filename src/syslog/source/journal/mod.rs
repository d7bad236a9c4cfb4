//! The journal as a source: its files read directly ([`file`]), merged in journald's order,
//! and handed on as entries whose time, identifier and message are already apart.
//!
//! `journalctl -o json` ([`journalctl`]) remains the way in only where the files cannot be
//! read here — no journal directory where we look, a file we may not open, or one written
//! with a feature this reader does not know (xz, from systemd before 246) — and the log says
//! so. A file damaged mid-way (a crash, a disk error) is read up to the damage, which the
//! scan's report names; the other files are read on.
//!
//! Which files: those of the namespace's directories (`/run/log/journal/MACHINE[.NS]` and
//! `/var/log/journal/MACHINE[.NS]`), archived and active, that may hold entries of the range.
//! The entries of one journald (one `seqnum_id`) are read file after file by sequence number;
//! entries of several (say a journal copied from another machine) are merged as libsystemd
//! merges them, so rows come in `journalctl`'s order.

mod file;
mod journalctl;

#[cfg(test)]
pub(super) use journalctl::journal_time;
pub(super) use journalctl::scan_journal as scan_journalctl;

use super::{Lines, Scan, ScanReport, SourceError};
use crate::syslog::line::Stamped;
pub(crate) use file::FileError;
use file::{Entries, Entry, JournalFile};
use memmap2::Mmap;
use std::borrow::Cow;
use std::cmp::Ordering;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

/// Read the entries of `identifier` in the range into `lines`: directly, or through
/// `journalctl` where the files cannot be read here (logged).
pub(super) fn scan_journal(
    namespace: Option<&str>,
    scan: &Scan<'_>,
    lines: &mut dyn Lines,
) -> Result<ScanReport, SourceError> {
    match open(namespace) {
        Ok(files) => Ok(read(&files, scan, lines)),
        Err(why) => {
            tracing::warn!("reading the journal through journalctl: {why}");
            journalctl::scan_journal(namespace, scan, lines)
        }
    }
}

/// The journal's directories for `namespace`, those that exist.
fn directories(namespace: Option<&str>) -> Result<Vec<PathBuf>, String> {
    let id = std::fs::read_to_string("/etc/machine-id")
        .map_err(|e| format!("cannot read /etc/machine-id: {e}"))?;
    let name = match namespace {
        Some(ns) => format!("{}.{ns}", id.trim()),
        None => id.trim().to_owned(),
    };
    let dirs: Vec<PathBuf> = ["/run/log/journal", "/var/log/journal"]
        .iter()
        .map(|root| Path::new(root).join(&name))
        .filter(|d| d.is_dir())
        .collect();
    if dirs.is_empty() {
        return Err(format!(
            "no journal directory /run/log/journal/{name} or /var/log/journal/{name}"
        ));
    }
    Ok(dirs)
}

/// One journal file, mapped.
struct Mapped {
    path: PathBuf,
    map: Mmap,
}

impl Mapped {
    /// Give back the pages read: a file done with no longer counts in the process's memory
    /// (a large journal would otherwise be resident as a whole by the end of a read).
    fn release(&self) {
        // SAFETY: a shared, read-only map of a file: dropped pages are read from the file
        // again if touched, so nothing that borrows the map sees a change.
        let _ = unsafe {
            self.map
                .unchecked_advise(memmap2::UncheckedAdvice::DontNeed)
        };
    }

    /// Report `e`, the damage that ends the read of this file, and give its pages back.
    fn give_up(&self, e: FileError, report: &mut ScanReport) {
        report.damaged.push(format!("{}: {e}", self.path.display()));
        self.release();
    }
}

/// Map every journal file of the namespace. Fails (for `journalctl` to try) when a file
/// cannot be opened or uses a feature the reader lacks.
fn open(namespace: Option<&str>) -> Result<Vec<Mapped>, String> {
    let mut files = Vec::new();
    for dir in directories(namespace)? {
        let list = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for item in list {
            let path = item.map_err(|e| format!("{}: {e}", dir.display()))?.path();
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            // `.journal~`: a file journald found dirty and set aside; journalctl reads it too.
            if !(name.ends_with(".journal") || name.ends_with(".journal~")) {
                continue;
            }
            let f = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            // SAFETY: the map is only read, through bounds-checked slices. journald appends to
            // its files and never shortens them (a vacuumed file is unlinked, and its map stays
            // valid); a file cut short by someone else under a running read would fault, as it
            // would in libsystemd, which maps the same files the same way.
            let map = unsafe { Mmap::map(&f) }.map_err(|e| format!("{}: {e}", path.display()))?;
            if let Err(e @ FileError::Unsupported(_)) = JournalFile::parse(&map) {
                return Err(format!("{}: {e}", path.display()));
            }
            files.push(Mapped { path, map });
        }
    }
    Ok(files)
}

/// The files of one journald instance (one `seqnum_id`), read one after the other.
struct Stream<'a> {
    /// Files still to read, the next last.
    files: Vec<(&'a Mapped, JournalFile<'a>)>,
    /// The file being read, its entries and the entry at its head.
    current: Option<(&'a Mapped, Entries<'a>, Entry<'a>)>,
    /// Where `MESSAGE` was in the last entry.
    hint: usize,
}

/// Read the identifier's entries of the range from `files` into `lines`.
fn read(files: &[Mapped], scan: &Scan<'_>, lines: &mut dyn Lines) -> ScanReport {
    let mut report = ScanReport::default();
    let from = u64::try_from(scan.from.timestamp_micros()).unwrap_or(0);
    let until = u64::try_from(scan.until.timestamp_micros()).unwrap_or(0);
    let mut parsed: Vec<(&Mapped, JournalFile<'_>)> = Vec::new();
    for m in files {
        match JournalFile::parse(&m.map) {
            // A file without entries (head 0) or wholly outside the range is not read.
            Ok(f) if f.head_realtime == 0 || f.tail_realtime < from || f.head_realtime > until => {}
            Ok(f) => parsed.push((m, f)),
            Err(e) => report.damaged.push(format!("{}: {e}", m.path.display())),
        }
    }
    // Grouped by journald instance, each group's files newest first (to be popped oldest
    // first).
    parsed.sort_by(|a, b| {
        (a.1.seqnum_id, b.1.head_seqnum, &b.0.path).cmp(&(
            b.1.seqnum_id,
            a.1.head_seqnum,
            &a.0.path,
        ))
    });
    let mut streams: Vec<Stream<'_>> = Vec::new();
    for (m, f) in parsed {
        match streams.last_mut() {
            Some(s) if s.files[0].1.seqnum_id == f.seqnum_id => s.files.push((m, f)),
            _ => streams.push(Stream {
                files: vec![(m, f)],
                current: None,
                hint: 0,
            }),
        }
    }
    lines.input(chrono::Utc::now());
    let ident = scan.identifier.as_bytes();
    for s in &mut streams {
        advance(s, ident, from, &mut report);
    }
    loop {
        // The stream whose head comes first; usually there is one.
        let mut best: Option<usize> = None;
        for (i, s) in streams.iter().enumerate() {
            let Some((_, entries, e)) = &s.current else {
                continue;
            };
            let better = match best.and_then(|b| streams[b].current.as_ref()) {
                None => true,
                Some((_, bf, b)) => order(bf.file(), b, entries.file(), e) == Ordering::Greater,
            };
            if better {
                best = Some(i);
            }
        }
        let Some(i) = best else {
            return report;
        };
        let s = &mut streams[i];
        let Some((m, entries, entry)) = &s.current else {
            return report;
        };
        let (m, file, entry) = (*m, *entries.file(), *entry);
        let flow = match file.message(&entry, &mut s.hint) {
            Ok(Some(msg)) => {
                report.bytes += msg.len() as u64;
                lines.entry(Stamped {
                    micros: i64::try_from(entry.realtime).unwrap_or(i64::MAX),
                    ident: Cow::Borrowed(ident),
                    msg,
                })
            }
            // An entry of ours without a message (never written by the logger): skipped, as
            // `journalctl -o json` gives no line of ours for it.
            Ok(None) => ControlFlow::Continue(()),
            Err(e) => {
                s.current = None;
                m.give_up(e, &mut report);
                ControlFlow::Continue(())
            }
        };
        if flow.is_break() {
            return report;
        }
        next(s, &mut report);
        if s.current.is_none() {
            advance(s, ident, from, &mut report);
        }
    }
}

/// Move `s` to its current file's next entry (none at the end of the file).
fn next(s: &mut Stream<'_>, report: &mut ScanReport) {
    if let Some((m, entries, _)) = s.current.take() {
        step(s, m, entries, report);
    }
}

/// Make the next of `entries` (of file `m`) the head of `s`; at the end of the file, or at its
/// damage, give the file back.
fn step<'a>(s: &mut Stream<'a>, m: &'a Mapped, mut entries: Entries<'a>, report: &mut ScanReport) {
    match entries.next() {
        Ok(Some(e)) => s.current = Some((m, entries, e)),
        Ok(None) => m.release(),
        Err(e) => m.give_up(e, report),
    }
}

/// Open `s`'s next files until one has an entry of `ident` at or after `from`.
fn advance(s: &mut Stream<'_>, ident: &[u8], from: u64, report: &mut ScanReport) {
    while s.current.is_none() {
        let Some((m, f)) = s.files.pop() else {
            return;
        };
        let entries = f
            .find_data(b"SYSLOG_IDENTIFIER", ident)
            .and_then(|data| data.map(|d| f.entries_from(d, from)).transpose());
        match entries {
            Ok(Some(entries)) => {
                report.files.push(m.path.clone());
                step(s, m, entries, report);
            }
            Ok(None) => {}
            Err(e) => m.give_up(e, report),
        }
    }
}

/// Entries as [`read_bytes`] gives them: time, and message if any.
pub(crate) type Timed = Vec<(u64, Option<Vec<u8>>)>;

/// The entries of `identifier` in one journal file's bytes, from time `from` on: each one's
/// time and message (`None` for an entry without one), up to the first damage (the error).
/// The fuzz target's way in.
pub(crate) fn read_bytes(bytes: &[u8], identifier: &[u8], from: u64) -> Result<Timed, FileError> {
    let f = JournalFile::parse(bytes)?;
    let Some(data) = f.find_data(b"SYSLOG_IDENTIFIER", identifier)? else {
        return Ok(Vec::new());
    };
    let mut entries = f.entries_from(data, from)?;
    let (mut out, mut hint) = (Vec::new(), 0);
    while let Some(e) = entries.next()? {
        let message = f.message(&e, &mut hint)?;
        out.push((e.realtime, message.map(std::borrow::Cow::into_owned)));
    }
    Ok(out)
}

/// libsystemd's order of entries of two files: by sequence number within one journald, by
/// monotonic time within one boot, else by wall-clock time.
fn order(fa: &JournalFile<'_>, a: &Entry<'_>, fb: &JournalFile<'_>, b: &Entry<'_>) -> Ordering {
    if fa.seqnum_id == fb.seqnum_id {
        let o = a.seqnum.cmp(&b.seqnum);
        if o != Ordering::Equal {
            return o;
        }
    }
    if a.boot_id == b.boot_id {
        let o = a.monotonic.cmp(&b.monotonic);
        if o != Ordering::Equal {
            return o;
        }
    }
    a.realtime
        .cmp(&b.realtime)
        .then(a.xor_hash.cmp(&b.xor_hash))
}
