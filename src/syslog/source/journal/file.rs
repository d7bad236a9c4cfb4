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
    Some(u64::from_le_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

fn le32(b: &[u8], at: usize) -> Option<u64> {
    Some(u32::from_le_bytes(b.get(at..at.checked_add(4)?)?.try_into().ok()?).into())
}

fn id128(b: &[u8], at: usize) -> Option<[u8; 16]> {
    b.get(at..at.checked_add(16)?)?.try_into().ok()
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
        let head = start
            .checked_add(OBJECT_HEADER)
            .and_then(|end| self.bytes.get(start..end))
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
        let mut seen = std::collections::HashSet::new();
        while next != 0 {
            if !seen.insert(next) {
                return Err(damaged(next, "a field's list of values loops"));
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
        Ok(None)
    }

    fn find_field(&self, field: &[u8]) -> Result<Option<u64>, FileError> {
        let (offset, size) = self.field_hash_table;
        let table = usize::try_from(offset)
            .ok()
            .zip(usize::try_from(size).ok())
            .and_then(|(o, s)| self.bytes.get(o..o.checked_add(s)?))
            .ok_or_else(|| damaged(offset, "field hash table beyond the end of the file"))?;
        let mut seen = std::collections::HashSet::new();
        for bucket in table.chunks_exact(16) {
            let mut next = le64(bucket, 0).unwrap_or(0);
            while next != 0 {
                if !seen.insert(next) {
                    return Err(damaged(next, "the field hash table loops"));
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
            // No more than the file has room for: a damaged count or a loop of arrays ends.
            left: n.saturating_sub(1).min(self.bytes.len() as u64 / 64),
            arrays_seen: std::collections::HashSet::new(),
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
    /// The arrays read: a chain that comes back to one is damaged. (journald makes each array
    /// larger than the last, so even a long chain holds few.)
    arrays_seen: std::collections::HashSet<u64>,
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
            if !self.arrays_seen.insert(self.next_array) {
                return Err(damaged(self.next_array, "the chain of entry arrays loops"));
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A journal file written by hand, as journald lays one out: the header, a one-bucket
    /// field hash table, FIELD and DATA objects, entries, and the identifier's entry arrays
    /// (two, the last with unused slots). Real files are read in tests/stats.rs; these are
    /// for what a damaged file may hold.
    struct Synth {
        b: Vec<u8>,
        compact: bool,
    }

    const HEADER: usize = 272;

    impl Synth {
        fn new(compact: bool) -> Synth {
            let mut b = vec![0; HEADER];
            b[..8].copy_from_slice(b"LPKSHHRH");
            let flags =
                KEYED_HASH | COMPRESSED_ZSTD | COMPRESSED_LZ4 | if compact { COMPACT } else { 0 };
            b[12..16].copy_from_slice(&flags.to_le_bytes());
            b[72..88].copy_from_slice(&[7; 16]);
            b[88..96].copy_from_slice(&(HEADER as u64).to_le_bytes());
            let mut s = Synth { b, compact };
            // The field hash table: one bucket, its items right after the object header.
            let table = s.object(5, 0, &[0; 16]);
            s.set(120, table + 16);
            s.set(128, 16);
            s
        }

        fn set(&mut self, at: u64, v: u64) {
            let at = at as usize;
            self.b[at..at + 8].copy_from_slice(&v.to_le_bytes());
        }

        fn get(&self, at: u64) -> u64 {
            le64(&self.b, at as usize).unwrap()
        }

        fn object(&mut self, kind: u8, flags: u8, body: &[u8]) -> u64 {
            let offset = self.b.len() as u64;
            self.b.extend_from_slice(&[kind, flags, 0, 0, 0, 0, 0, 0]);
            self.b
                .extend_from_slice(&((OBJECT_HEADER + body.len()) as u64).to_le_bytes());
            self.b.extend_from_slice(body);
            self.b.resize(self.b.len().div_ceil(8) * 8, 0);
            offset
        }

        /// A FIELD object, linked into the bucket's chain.
        fn field(&mut self, name: &[u8]) -> u64 {
            let mut body = vec![0; 24];
            body.extend_from_slice(name);
            let f = self.object(FIELD, 0, &body);
            let head = self.get(self.get(120));
            self.set(f + 24, head);
            let bucket = self.get(120);
            self.set(bucket, f);
            f
        }

        /// A DATA object of `field` (linked into its list of values), compressed by `flags`.
        fn data(&mut self, field: u64, payload: &[u8], flags: u8) -> u64 {
            let stored = match flags {
                OBJECT_ZSTD => ruzstd::encoding::compress_to_vec(
                    payload,
                    ruzstd::encoding::CompressionLevel::Fastest,
                ),
                OBJECT_LZ4 => {
                    let mut v = (payload.len() as u64).to_le_bytes().to_vec();
                    v.extend(lz4_flex::block::compress(payload));
                    v
                }
                _ => payload.to_vec(),
            };
            let mut body = vec![0; if self.compact { 56 } else { 48 }];
            body.extend_from_slice(&stored);
            let d = self.object(DATA, flags, &body);
            let head = self.get(field + 32);
            self.set(d + 32, head);
            self.set(field + 32, d);
            d
        }

        fn entry(&mut self, seqnum: u64, realtime: u64, items: &[u64]) -> u64 {
            let mut body = vec![0; 48];
            body[..8].copy_from_slice(&seqnum.to_le_bytes());
            body[8..16].copy_from_slice(&realtime.to_le_bytes());
            for &i in items {
                if self.compact {
                    body.extend_from_slice(&(i as u32).to_le_bytes());
                } else {
                    body.extend_from_slice(&i.to_le_bytes());
                    body.extend_from_slice(&[0; 8]);
                }
            }
            self.object(ENTRY, 0, &body)
        }

        fn array(&mut self, items: &[u64], capacity: usize) -> u64 {
            let mut body = vec![0; 8];
            for i in 0..capacity {
                let v = items.get(i).copied().unwrap_or(0);
                if self.compact {
                    body.extend_from_slice(&(v as u32).to_le_bytes());
                } else {
                    body.extend_from_slice(&v.to_le_bytes());
                }
            }
            self.object(ENTRY_ARRAY, 0, &body)
        }

        /// Make `entries` the entries of DATA object `d`: the first inline, the rest in two
        /// arrays.
        fn link(&mut self, d: u64, entries: &[u64]) {
            self.set(d + 56, entries.len() as u64);
            let Some((&first, rest)) = entries.split_first() else {
                return;
            };
            self.set(d + 40, first);
            if rest.is_empty() {
                return;
            }
            let cut = rest.len().min(4);
            let a = self.array(&rest[..cut], 4);
            self.set(d + 48, a);
            if rest.len() > cut {
                let b = self.array(&rest[cut..], rest.len() - cut + 3);
                self.set(a + 16, b);
            }
        }
    }

    /// A file with `n` entries of `iotitan` at times 1000, 2000, …, each with a message
    /// (every third compressed, by zstd or lz4), and entries of another program between.
    fn sample(compact: bool, n: u64) -> (Vec<u8>, Vec<(u64, Vec<u8>)>) {
        let mut s = Synth::new(compact);
        let ident = s.field(b"SYSLOG_IDENTIFIER");
        let message = s.field(b"MESSAGE");
        let pid = s.field(b"_PID");
        let ours = s.data(ident, b"SYSLOG_IDENTIFIER=iotitan", 0);
        let theirs = s.data(ident, b"SYSLOG_IDENTIFIER=other", 0);
        let p = s.data(pid, b"_PID=7", 0);
        let (mut entries, mut expected) = (Vec::new(), Vec::new());
        for i in 0..n {
            let text = format!(
                "iotitan/t/{i} {}{i}",
                "z".repeat(if i % 3 == 0 { 600 } else { 0 })
            );
            let flags = match i % 6 {
                0 => OBJECT_ZSTD,
                3 => OBJECT_LZ4,
                _ => 0,
            };
            let m = s.data(message, format!("MESSAGE={text}").as_bytes(), flags);
            entries.push(s.entry(2 * i + 1, 1000 * (i + 1), &[p, ours, m]));
            expected.push((1000 * (i + 1), text.into_bytes()));
            let other = s.data(message, b"MESSAGE=not ours", 0);
            s.entry(2 * i + 2, 1000 * (i + 1) + 500, &[theirs, other]);
        }
        s.link(ours, &entries);
        s.set(184, 1000);
        s.set(192, 1000 * n);
        (s.b, expected)
    }

    /// Every entry of `iotitan` from `from` on, with its message.
    fn read(bytes: &[u8], from: u64) -> Result<Vec<(u64, Vec<u8>)>, FileError> {
        let all = super::super::read_bytes(bytes, b"iotitan", from)?;
        Ok(all.into_iter().filter_map(|(t, m)| Some((t, m?))).collect())
    }

    /// Write the samples as the fuzz target's seeds (`IOTITAN_WRITE_SEEDS=DIR cargo test
    /// --lib write_fuzz_seeds`).
    #[test]
    fn write_fuzz_seeds() {
        let Some(dir) = std::env::var_os("IOTITAN_WRITE_SEEDS") else {
            return;
        };
        let dir = std::path::Path::new(&dir);
        for (name, compact, n) in [("compact-7", true, 7), ("regular-3", false, 3)] {
            std::fs::write(dir.join(name), sample(compact, n).0).unwrap();
        }
    }

    #[test]
    fn entries_and_messages_are_read_in_both_layouts() {
        for compact in [true, false] {
            let (bytes, expected) = sample(compact, 9);
            assert_eq!(read(&bytes, 0).unwrap(), expected, "compact {compact}");
        }
    }

    #[test]
    fn a_time_is_found_by_bisection_in_every_array() {
        let (bytes, expected) = sample(true, 9);
        for from in [0, 1000, 1001, 2000, 4500, 5000, 6000, 9000, 9001, 99_999] {
            let want: Vec<_> = expected
                .iter()
                .filter(|(t, _)| *t >= from)
                .cloned()
                .collect();
            assert_eq!(read(&bytes, from).unwrap(), want, "from {from}");
        }
    }

    #[test]
    fn another_identifier_has_none() {
        let (bytes, _) = sample(true, 3);
        let f = JournalFile::parse(&bytes).unwrap();
        assert_eq!(
            f.find_data(b"SYSLOG_IDENTIFIER", b"iotitan-x").unwrap(),
            None
        );
        assert_eq!(f.find_data(b"NO_SUCH_FIELD", b"iotitan").unwrap(), None);
    }

    #[test]
    fn a_file_cut_anywhere_reads_a_prefix_or_fails_without_panic() {
        let (bytes, expected) = sample(true, 7);
        for len in 0..bytes.len() {
            match read(&bytes[..len], 0) {
                Ok(got) => assert!(expected.starts_with(&got), "cut at {len}: {got:?}"),
                Err(FileError::Damaged { .. } | FileError::NotJournal) => {}
                Err(e) => panic!("cut at {len}: {e}"),
            }
        }
    }

    #[test]
    fn any_word_overwritten_fails_or_reads_without_panic() {
        let (bytes, _) = sample(true, 7);
        for at in (0..bytes.len()).step_by(4) {
            for junk in [0u32, 1, 0xffff_ffff, 0x100] {
                let mut b = bytes.clone();
                let end = (at + 4).min(b.len());
                b[at..end].copy_from_slice(&junk.to_le_bytes()[..end - at]);
                let _ = read(&b, 0);
                let _ = read(&b, 4000);
            }
        }
    }

    #[test]
    fn a_loop_in_the_chain_of_arrays_ends() {
        let mut s = Synth::new(false);
        let ident = s.field(b"SYSLOG_IDENTIFIER");
        let message = s.field(b"MESSAGE");
        let d = s.data(ident, b"SYSLOG_IDENTIFIER=iotitan", 0);
        let m = s.data(message, b"MESSAGE=iotitan/t 1", 0);
        let e = s.entry(1, 1000, &[d, m]);
        let a = s.array(&[e], 1);
        s.set(a + 16, a);
        s.set(d + 40, e);
        s.set(d + 48, a);
        s.set(d + 56, u64::MAX);
        let got = read(&s.b, 0);
        assert!(matches!(got, Err(FileError::Damaged { .. })), "{got:?}");
    }

    #[test]
    fn xz_and_unknown_features_are_not_read() {
        let (mut bytes, _) = sample(true, 1);
        bytes[12] |= 1;
        assert!(matches!(
            JournalFile::parse(&bytes),
            Err(FileError::Unsupported(_))
        ));
        bytes[12] &= !1;
        bytes[13] |= 1;
        assert!(matches!(
            JournalFile::parse(&bytes),
            Err(FileError::Unsupported(_))
        ));
    }

    #[test]
    fn an_over_long_value_reads_as_none() {
        let mut s = Synth::new(true);
        let ident = s.field(b"SYSLOG_IDENTIFIER");
        let message = s.field(b"MESSAGE");
        let d = s.data(ident, b"SYSLOG_IDENTIFIER=iotitan", 0);
        let long = [b"MESSAGE=".as_slice(), &vec![b'a'; MAX_VALUE + 1]].concat();
        let m = s.data(message, &long, OBJECT_ZSTD);
        let e = s.entry(1, 1000, &[d, m]);
        s.link(d, &[e]);
        assert_eq!(read(&s.b, 0).unwrap(), vec![]);
    }
}
