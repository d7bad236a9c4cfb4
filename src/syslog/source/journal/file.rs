//! One journal file, read from its bytes: the header, the entries that carry one field value
//! (`SYSLOG_IDENTIFIER=iotitan`) in the order journald wrote them, found from a time on by a
//! bisection of the value's own entry arrays, and each entry's time and `MESSAGE`.
//!
//! Written by hand because no maintained crate reads the format fast enough (measured on one
//! million of our records in 16 rotated files, one thread: the pure-Rust `sdjournal` 0.1
//! 160 000 entries/s, libsystemd's sd-journal through the `systemd` crate 460 000/s, this
//! several million/s; BENCHMARKS.md "Journal"). Both general readers decode every field of
//! every entry; we need two, and know where to look. The format is systemd's documented
//! `JOURNAL_FILE_FORMAT.md`: little-endian, 8-byte aligned objects behind a fixed header,
//! "regular" or "compact" (32-bit offsets) items.
//!
//! No I/O here: the bytes come from a map of the file (or a test's vector). Every offset read
//! from the file is checked before it is followed — a file cut short by a crash, or
//! overwritten with anything, gives an error naming the offset, never a panic, a read out of
//! bounds or an endless walk.

use std::borrow::Cow;
use std::io::Read;

/// Why a file, or an entry of it, cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    /// Not a journal file (no signature, or a header shorter than the format's first).
    #[error("not a journal file")]
    NotJournal,
    /// A feature this reader does not know (xz compression, a newer format).
    #[error("uses features this reader does not read (incompatible flags {0:#x})")]
    Unsupported(u32),
    /// An object that is not what the structure promises.
    #[error("damaged at offset {offset}: {what}")]
    Damaged {
        /// Where in the file.
        offset: u64,
        /// What was wrong there.
        what: &'static str,
    },
}

fn damaged(offset: u64, what: &'static str) -> FileError {
    FileError::Damaged { offset, what }
}

/// Header flags (`incompatible_flags`); xz (1) is not among them.
const COMPRESSED_LZ4: u32 = 2;
const KEYED_HASH: u32 = 4;
const COMPRESSED_ZSTD: u32 = 8;
const COMPACT: u32 = 16;
/// What this reader handles: xz (the default of systemd before 246) goes to `journalctl`.
const KNOWN: u32 = COMPRESSED_LZ4 | KEYED_HASH | COMPRESSED_ZSTD | COMPACT;

/// Object types.
const DATA: u8 = 1;
const FIELD: u8 = 2;
const ENTRY: u8 = 3;
const ENTRY_ARRAY: u8 = 6;

/// Object flags (compression of a DATA payload).
const OBJECT_XZ: u8 = 1;
const OBJECT_LZ4: u8 = 2;
const OBJECT_ZSTD: u8 = 4;

/// The object header: type, flags, six reserved bytes, size.
const OBJECT_HEADER: usize = 16;
/// The shortest header we read: up to `tail_entry_monotonic` (systemd 187 and later add
/// counters we do not need).
const MIN_HEADER: usize = 208;
/// Walks along hash chains and field lists end after this many steps: a loop in a damaged
/// file ends as an error, not a hang.
const MAX_CHAIN: usize = 1 << 20;

/// `state` in the header: the file is being written (journald holds it open).
const STATE_ONLINE: u8 = 1;

/// A value longer than this, once decompressed, is not ours (a record is a line of at most
/// 1 MiB, `MAX_LINE`); it reads as empty, as an over-long line does.
pub const MAX_VALUE: usize = super::super::MAX_LINE;

/// One journal file's bytes and what its header says about them.
#[derive(Debug, Clone, Copy)]
pub struct JournalFile<'a> {
    bytes: &'a [u8],
    compact: bool,
    /// Being written: a reference past what was mapped is the end of the file, not damage.
    pub online: bool,
    /// Entries' sequence numbers count in this space (a journald instance).
    pub seqnum_id: [u8; 16],
    /// The first entry's sequence number.
    pub head_seqnum: u64,
    /// The first and last entries' times (µs since the epoch); 0 in a file without entries.
    pub head_realtime: u64,
    /// See `head_realtime`.
    pub tail_realtime: u64,
    field_hash_table: (u64, u64),
}

/// An entry's place in the merge order and its items.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    /// Sequence number, in the file's `seqnum_id`.
    pub seqnum: u64,
    /// When journald received it (µs since the epoch): `__REALTIME_TIMESTAMP`.
    pub realtime: u64,
    /// Monotonic time of `boot_id`.
    pub monotonic: u64,
    /// The boot it was logged in.
    pub boot_id: [u8; 16],
    /// Tie-breaker of libsystemd's order.
    pub xor_hash: u64,
    items: &'a [u8],
}

fn le64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn le32(b: &[u8], at: usize) -> Option<u64> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?).into())
}

fn id128(b: &[u8], at: usize) -> Option<[u8; 16]> {
    b.get(at..at + 16)?.try_into().ok()
}

impl<'a> JournalFile<'a> {
    /// Read the header of a journal file's bytes.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, FileError> {
        if bytes.len() < MIN_HEADER || &bytes[..8] != b"LPKSHHRH" {
            return Err(FileError::NotJournal);
        }
        let h = |at| le64(bytes, at).ok_or(FileError::NotJournal);
        let incompatible = le32(bytes, 12).ok_or(FileError::NotJournal)? as u32;
        if incompatible & !KNOWN != 0 {
            return Err(FileError::Unsupported(incompatible));
        }
        let header_size = h(88)?;
        if header_size < MIN_HEADER as u64 {
            return Err(FileError::NotJournal);
        }
        Ok(JournalFile {
            bytes,
            compact: incompatible & COMPACT != 0,
            online: bytes[16] == STATE_ONLINE,
            seqnum_id: id128(bytes, 72).ok_or(FileError::NotJournal)?,
            head_seqnum: h(168)?,
            head_realtime: h(184)?,
            tail_realtime: h(192)?,
            field_hash_table: (h(120)?, h(128)?),
        })
    }

    /// The object of type `kind` at `offset`: its bytes, header included.
    fn object(&self, offset: u64, kind: u8) -> Result<&'a [u8], FileError> {
        let start = usize::try_from(offset).map_err(|_| damaged(offset, "offset too large"))?;
        if !offset.is_multiple_of(8) || start < MIN_HEADER {
            return Err(damaged(offset, "misaligned object offset"));
        }
        let head = self
            .bytes
            .get(start..start + OBJECT_HEADER)
            .ok_or_else(|| damaged(offset, "object beyond the end of the file"))?;
        if head[0] != kind {
            return Err(damaged(offset, "object of another type than expected"));
        }
        let size = le64(head, 8)
            .and_then(|s| usize::try_from(s).ok())
            .filter(|&s| s >= OBJECT_HEADER)
            .ok_or_else(|| damaged(offset, "object size impossible"))?;
        start
            .checked_add(size)
            .and_then(|end| self.bytes.get(start..end))
            .ok_or_else(|| damaged(offset, "object beyond the end of the file"))
    }

    /// Whether a failure at `offset` is only the part of an online file written after it was
    /// mapped: the end of what can be read now, not damage.
    fn beyond_map(&self, offset: u64) -> bool {
        self.online && offset >= self.bytes.len() as u64
    }

    /// A DATA object's payload (`FIELD=value`), decompressed.
    fn data_payload(&self, offset: u64) -> Result<Cow<'a, [u8]>, FileError> {
        let obj = self.object(offset, DATA)?;
        let start = if self.compact { 72 } else { 64 };
        let raw = obj
            .get(start..)
            .ok_or_else(|| damaged(offset, "data object too short"))?;
        decompress(obj[1], raw).map_err(|what| damaged(offset, what))
    }

    /// The DATA object holding `field=value`, if the file has one: found through the FIELD
    /// object (every field hash table bucket is walked; the table has a few hundred) and its
    /// list of values, which spares computing the file's hash function.
    pub fn find_data(&self, field: &[u8], value: &[u8]) -> Result<Option<u64>, FileError> {
        let Some(field_obj) = self.find_field(field)? else {
            return Ok(None);
        };
        let mut next = le64(self.object(field_obj, FIELD)?, 32).unwrap_or(0);
        for _ in 0..MAX_CHAIN {
            if next == 0 {
                return Ok(None);
            }
            let payload = self.data_payload(next)?;
            if payload.len() == field.len() + 1 + value.len()
                && payload.starts_with(field)
                && payload[field.len()] == b'='
                && payload.ends_with(value)
            {
                return Ok(Some(next));
            }
            next = le64(self.object(next, DATA)?, 32).unwrap_or(0);
        }
        Err(damaged(field_obj, "endless list of a field's values"))
    }

    fn find_field(&self, field: &[u8]) -> Result<Option<u64>, FileError> {
        let (offset, size) = self.field_hash_table;
        let table = usize::try_from(offset)
            .ok()
            .zip(usize::try_from(size).ok())
            .and_then(|(o, s)| self.bytes.get(o..o.checked_add(s)?))
            .ok_or_else(|| damaged(offset, "field hash table beyond the end of the file"))?;
        for bucket in table.chunks_exact(16) {
            let mut next = le64(bucket, 0).unwrap_or(0);
            let mut steps = 0;
            while next != 0 {
                steps += 1;
                if steps > MAX_CHAIN {
                    return Err(damaged(offset, "endless field hash chain"));
                }
                let obj = self.object(next, FIELD)?;
                if obj.get(40..) == Some(field) {
                    return Ok(Some(next));
                }
                next = le64(obj, 24).unwrap_or(0);
            }
        }
        Ok(None)
    }

    /// The entry at `offset`.
    pub fn entry(&self, offset: u64) -> Result<Entry<'a>, FileError> {
        let obj = self.object(offset, ENTRY)?;
        let field = |at| le64(obj, at).ok_or_else(|| damaged(offset, "entry object too short"));
        Ok(Entry {
            seqnum: field(16)?,
            realtime: field(24)?,
            monotonic: field(32)?,
            boot_id: id128(obj, 40).ok_or_else(|| damaged(offset, "entry object too short"))?,
            xor_hash: field(56)?,
            items: obj.get(64..).unwrap_or(&[]),
        })
    }

    /// The value of `MESSAGE` in `entry` (the first, should it have several), or `None`.
    /// `hint` is the item where the last entry had it: entries of one program list their
    /// fields in one order, so the first look usually finds it.
    pub fn message(
        &self,
        entry: &Entry<'a>,
        hint: &mut usize,
    ) -> Result<Option<Cow<'a, [u8]>>, FileError> {
        const KEY: &[u8] = b"MESSAGE=";
        let size = if self.compact { 4 } else { 16 };
        let n = entry.items.len() / size;
        let item = |i: usize| {
            let at = i * size;
            if self.compact {
                le32(entry.items, at)
            } else {
                le64(entry.items, at)
            }
            .unwrap_or(0)
        };
        let order = std::iter::once(*hint)
            .filter(|&h| h < n)
            .chain((0..n).filter(|&i| i != *hint));
        for i in order {
            let data = item(i);
            let obj = self.object(data, DATA)?;
            let start = if self.compact { 72 } else { 64 };
            let raw = obj
                .get(start..)
                .ok_or_else(|| damaged(data, "data object too short"))?;
            // An uncompressed payload is judged by its first bytes; a compressed one (over
            // 512 bytes: a long message, or another long field) must be opened.
            let payload = if obj[1] & (OBJECT_XZ | OBJECT_LZ4 | OBJECT_ZSTD) == 0 {
                if !raw.starts_with(KEY) {
                    continue;
                }
                Cow::Borrowed(raw)
            } else {
                decompress(obj[1], raw).map_err(|what| damaged(data, what))?
            };
            if payload.starts_with(KEY) {
                *hint = i;
                return Ok(Some(match payload {
                    Cow::Borrowed(p) => Cow::Borrowed(&p[KEY.len()..]),
                    Cow::Owned(mut p) => {
                        p.drain(..KEY.len());
                        Cow::Owned(p)
                    }
                }));
            }
        }
        Ok(None)
    }

    /// The entries that carry the DATA object at `data`, from the first whose time is at
    /// least `from` (by bisection: journald appends, so times rise but for clock steps).
    pub fn entries_from(&self, data: u64, from: u64) -> Result<Entries<'a>, FileError> {
        let obj = self.object(data, DATA)?;
        let (first, arrays, n) = (
            le64(obj, 40).unwrap_or(0),
            le64(obj, 48).unwrap_or(0),
            le64(obj, 56).unwrap_or(0),
        );
        let mut entries = Entries {
            file: *self,
            first: (n > 0 && first != 0).then_some(first),
            array: None,
            next_array: arrays,
            left: n.saturating_sub(1),
            steps: 0,
        };
        // The inline first entry, then whole arrays whose last entry is older than `from`.
        if let Some(first) = entries.first {
            if entries.time(first)? >= from {
                return Ok(entries);
            }
            entries.first = None;
        }
        while let Some((items, used)) = entries.load_array()? {
            let last = entries.item(items, used - 1);
            if entries.time(last)? < from {
                entries.left -= used as u64;
                continue;
            }
            // The first item of this array at or after `from`.
            let (mut lo, mut hi) = (0, used - 1);
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if entries.time(entries.item(items, mid))? < from {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            entries.left -= lo as u64;
            entries.array = Some((items, lo, used));
            return Ok(entries);
        }
        Ok(entries)
    }
}

/// The entries of one value, in the order journald appended them: the DATA object's inline
/// first entry, then its chain of ENTRY_ARRAY objects.
#[derive(Debug)]
pub struct Entries<'a> {
    file: JournalFile<'a>,
    first: Option<u64>,
    /// The items of the current array, the next index in it and how many are used.
    array: Option<(&'a [u8], usize, usize)>,
    next_array: u64,
    /// Entries not yet returned, by the DATA object's count.
    left: u64,
    steps: usize,
}

impl<'a> Entries<'a> {
    fn item(&self, items: &[u8], i: usize) -> u64 {
        if self.file.compact {
            le32(items, i * 4)
        } else {
            le64(items, i * 8)
        }
        .unwrap_or(0)
    }

    /// The time of the entry at `offset`; the latest possible for one written after an online
    /// file was mapped, so that a bisection stops before it.
    fn time(&self, offset: u64) -> Result<u64, FileError> {
        match self.file.entry(offset) {
            Ok(e) => Ok(e.realtime),
            Err(_) if self.file.beyond_map(offset) => Ok(u64::MAX),
            Err(e) => Err(e),
        }
    }

    /// Move to the next array of the chain: its items and how many of them are used (never
    /// more than `left`, nor 0).
    fn load_array(&mut self) -> Result<Option<(&'a [u8], usize)>, FileError> {
        loop {
            if self.next_array == 0 || self.left == 0 {
                return Ok(None);
            }
            self.steps += 1;
            if self.steps > MAX_CHAIN {
                return Err(damaged(self.next_array, "endless chain of entry arrays"));
            }
            let offset = self.next_array;
            let obj = match self.file.object(offset, ENTRY_ARRAY) {
                Ok(o) => o,
                Err(_) if self.file.beyond_map(offset) => return Ok(None),
                Err(e) => return Err(e),
            };
            self.next_array = le64(obj, 16).unwrap_or(0);
            let items = obj.get(24..).unwrap_or(&[]);
            let capacity = items.len() / if self.file.compact { 4 } else { 8 };
            // Unused slots at an array's end are zero.
            let used = (0..capacity)
                .take_while(|&i| self.item(items, i) != 0)
                .count()
                .min(usize::try_from(self.left).unwrap_or(usize::MAX));
            if used > 0 {
                return Ok(Some((items, used)));
            }
        }
    }

    /// The next entry; `None` at the end, which in an online file is the last entry written
    /// when it was mapped.
    pub fn next(&mut self) -> Result<Option<Entry<'a>>, FileError> {
        let Some(offset) = self.next_offset()? else {
            return Ok(None);
        };
        match self.file.entry(offset) {
            Ok(e) => Ok(Some(e)),
            Err(_) if self.file.beyond_map(offset) => {
                self.left = 0;
                self.array = None;
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// The next entry's offset.
    fn next_offset(&mut self) -> Result<Option<u64>, FileError> {
        if let Some(first) = self.first.take() {
            return Ok(Some(first));
        }
        loop {
            if let Some((items, i, used)) = self.array
                && i < used
            {
                self.array = Some((items, i + 1, used));
                self.left -= 1;
                return Ok(Some(self.item(items, i)));
            }
            match self.load_array()? {
                Some((items, used)) => self.array = Some((items, 0, used)),
                None => return Ok(None),
            }
        }
    }

    /// The file the entries are in.
    pub fn file(&self) -> &JournalFile<'a> {
        &self.file
    }
}

/// A DATA payload as stored: raw, or compressed as `flags` say.
fn decompress(flags: u8, raw: &[u8]) -> Result<Cow<'_, [u8]>, &'static str> {
    if flags & OBJECT_ZSTD != 0 {
        let mut out = Vec::new();
        ruzstd::decoding::StreamingDecoder::new(raw)
            .map_err(|_| "zstd payload unreadable")?
            .take(MAX_VALUE as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|_| "zstd payload unreadable")?;
        return Ok(Cow::Owned(cap(out)));
    }
    if flags & OBJECT_LZ4 != 0 {
        // journald writes the decompressed size (le64) before the LZ4 block.
        let size = le64(raw, 0).ok_or("lz4 payload too short")?;
        if size > MAX_VALUE as u64 {
            return Ok(Cow::Owned(Vec::new()));
        }
        let out = lz4_flex::block::decompress(&raw[8..], size as usize)
            .map_err(|_| "lz4 payload unreadable")?;
        return Ok(Cow::Owned(out));
    }
    if flags & OBJECT_XZ != 0 {
        return Err("xz payload in a file not flagged for it");
    }
    Ok(Cow::Borrowed(raw))
}

/// Over-long values read as empty (see [`MAX_VALUE`]).
fn cap(out: Vec<u8>) -> Vec<u8> {
    if out.len() > MAX_VALUE {
        Vec::new()
    } else {
        out
    }
}
