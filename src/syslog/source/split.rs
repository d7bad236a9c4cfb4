//! Reading a large plain file on several threads: after the binary search, the rest of the
//! file is cut into ranges at line boundaries, each read by a fork of the consumer
//! ([`Split`]), and the forks' results merged in file order; gzipped rotations are read side by
//! side, one per thread. [`One`] is the single-thread reader both share the interface of.

use super::files::{first_time, modified, read_archive};
use super::seek::{SEEK_GRANULE, timed_line_after};
use super::{BUFFER, Lines, ScanReport, SourceError, Split, read_capped, stream};
use chrono::{DateTime, Utc};
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Below this many bytes a file is read on one thread: starting a thread and merging costs
/// more than the time it saves.
pub(super) const MIN_SPLIT: u64 = 4 << 20;

/// How the lines of a plain file are read from an offset: on one thread or on several.
pub(super) trait Target {
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
pub(super) struct One<'a>(pub(super) &'a mut dyn Lines);

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
pub(super) struct Many<'a, L> {
    pub(super) lines: &'a mut L,
    pub(super) threads: usize,
    /// Smallest range worth splitting.
    pub(super) min: u64,
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
