//! The on-disk spool of one channel: every [`Change`] to what waits is appended as one JSON
//! line and fsynced before the bridge moves on, so a crash, a restart or a long outage loses
//! nothing that was accepted. Replaying the lines through [`Batcher::restore`] rebuilds the
//! state. The file is rewritten from a snapshot (temp file, fsync, rename, fsync of the
//! directory) at start and whenever most of its lines are history.
//!
//! [`Batcher::restore`]: super::batch::Batcher::restore

use super::batch::Change;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Rewrite once the file holds this many lines more than twice what is live.
const SLACK: usize = 1024;

/// An open spool file.
#[derive(Debug)]
pub struct Spool {
    path: PathBuf,
    file: File,
    /// Held (locked) while the spool is open: two bridges appending to one spool would
    /// corrupt it. A separate file, because compaction replaces the spool's inode.
    _lock: File,
    /// Lines in the file.
    lines: usize,
}

/// What was found in a spool file.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The changes, in order.
    pub changes: Vec<Change>,
    /// Lines that could not be read (a torn last line after a crash, or damage).
    pub skipped: usize,
}

impl Spool {
    /// The spool of channel `id` in `dir`.
    pub fn path(dir: &Path, id: u64) -> PathBuf {
        dir.join(format!("thingspeak-{id}.spool"))
    }

    /// Open (creating `dir` and the file if needed) and read what is in it. Fails if another
    /// process has the spool open.
    pub fn open(dir: &Path, id: u64) -> io::Result<(Spool, Loaded)> {
        std::fs::create_dir_all(dir)?;
        let path = Spool::path(dir, id);
        let lock_path = path.with_extension("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)?;
        if let Err(e) = lock.try_lock() {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!(
                    "{} is locked by another process (is another iotitan-bridge running?): {e}",
                    lock_path.display()
                ),
            ));
        }
        let loaded = match std::fs::read(&path) {
            Ok(bytes) => parse(&bytes),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Loaded::default(),
            Err(e) => return Err(e),
        };
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let lines = loaded.changes.len() + loaded.skipped;
        Ok((
            Spool {
                path,
                file,
                _lock: lock,
                lines,
            },
            loaded,
        ))
    }

    /// Where the file is.
    pub fn file_path(&self) -> &Path {
        &self.path
    }

    /// Append `changes` and make them durable.
    pub fn append(&mut self, changes: &[Change]) -> io::Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(128 * changes.len());
        for c in changes {
            serde_json::to_writer(&mut buf, c)?;
            buf.push(b'\n');
        }
        self.file.write_all(&buf)?;
        self.file.sync_data()?;
        self.lines += changes.len();
        Ok(())
    }

    /// Whether the file is mostly history, given `live` lines' worth of state.
    pub fn wants_compaction(&self, live: usize) -> bool {
        self.lines > 2 * live + SLACK
    }

    /// Replace the file's content with `snapshot`, atomically.
    pub fn compact(&mut self, snapshot: &[Change]) -> io::Result<()> {
        let tmp = self.path.with_extension("spool.tmp");
        {
            let mut f = File::create(&tmp)?;
            let mut w = io::BufWriter::new(&mut f);
            for c in snapshot {
                serde_json::to_writer(&mut w, c)?;
                w.write_all(b"\n")?;
            }
            w.flush()?;
            drop(w);
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        self.file = OpenOptions::new().append(true).open(&self.path)?;
        self.lines = snapshot.len();
        Ok(())
    }
}

/// Parse spool lines; unreadable ones are counted and skipped.
pub(crate) fn parse(bytes: &[u8]) -> Loaded {
    let mut out = Loaded::default();
    for line in bytes.split(|&b| b == b'\n') {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice(line) {
            Ok(c) => out.changes.push(c),
            Err(_) => out.skipped += 1,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bridge::batch::{Entry, Pending};
    use chrono::{DateTime, Utc};

    fn update(s: u32) -> Entry {
        Entry {
            created_at: DateTime::<Utc>::from_timestamp(1_700_000_000 + i64::from(s), 0).unwrap(),
            fields: [Some(f64::from(s)), None, None, None, None, None, None, None],
            status: None,
        }
    }

    #[test]
    fn appended_changes_come_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let changes = vec![
            Change::Queued(update(1)),
            Change::Open(Some(Pending {
                since: update(2).created_at,
                update: update(2),
            })),
            Change::Contact(update(3).created_at),
            Change::Removed(1),
            Change::Open(None),
        ];
        {
            let (mut s, loaded) = Spool::open(dir.path(), 7).unwrap();
            assert!(loaded.changes.is_empty());
            let e = Spool::open(dir.path(), 7).unwrap_err().to_string();
            assert!(e.contains("another iotitan-bridge"), "{e}");
            s.append(&changes[..2]).unwrap();
            s.append(&changes[2..]).unwrap();
        }
        let (_, loaded) = Spool::open(dir.path(), 7).unwrap();
        assert_eq!(loaded.changes, changes);
        assert_eq!(loaded.skipped, 0);
        // Other channels have their own file.
        let (_, other) = Spool::open(dir.path(), 8).unwrap();
        assert!(other.changes.is_empty());
    }

    #[test]
    fn a_torn_or_damaged_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = Spool::open(dir.path(), 7).unwrap();
        s.append(&[Change::Queued(update(1))]).unwrap();
        let mut f = OpenOptions::new().append(true).open(s.file_path()).unwrap();
        f.write_all(b"garbage\n{\"queued\":{\"created_at\":\"2026-")
            .unwrap();
        drop(s);
        let (_, loaded) = Spool::open(dir.path(), 7).unwrap();
        assert_eq!(loaded.changes, [Change::Queued(update(1))]);
        assert_eq!(loaded.skipped, 2);
    }

    #[test]
    fn compaction_replaces_the_content() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = Spool::open(dir.path(), 7).unwrap();
        for i in 0..10 {
            s.append(&[Change::Queued(update(i)), Change::Removed(1)])
                .unwrap();
        }
        assert!(!s.wants_compaction(0));
        assert!(Spool { lines: 2000, ..s }.wants_compaction(1));
        let (mut s, _) = Spool::open(dir.path(), 7).unwrap();
        s.compact(&[Change::Queued(update(42))]).unwrap();
        s.append(&[Change::Removed(1)]).unwrap();
        drop(s);
        let (_, loaded) = Spool::open(dir.path(), 7).unwrap();
        assert_eq!(
            loaded.changes,
            [Change::Queued(update(42)), Change::Removed(1)]
        );
        assert!(!dir.path().join("thingspeak-7.spool.tmp").exists());
    }
}
