//! The clock that turns a line's local or offset timestamp into an instant: the year of a
//! traditional timestamp (which has none) from a reference time, the local zone with the hour
//! that repeats when DST ends told apart by the order of lines, and the caches that let a
//! run of lines with the same minute, hour or header skip most of the parsing
//! ([`super::line`] is the parser that keeps them).

use super::line::bsd_header;
use chrono::{DateTime, Datelike, LocalResult, NaiveDate, NaiveDateTime, Utc};

pub use crate::time::Zone;

/// How a repeated local time (the hour DST ends) is resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ambiguity {
    /// Follow the order of lines: the earlier instant unless it would go back in time.
    Stream,
    /// Take the later instant: a seek that lands too early only reads more, never misses.
    Seek,
}

/// State for turning traditional timestamps into instants: the zone, the year reference,
/// the last instant seen and a cache of the current hour's UTC offset.
#[derive(Debug, Clone)]
pub struct Clock<Z> {
    pub(super) zone: Z,
    pub(super) reference: NaiveDateTime,
    pub(super) ambiguity: Ambiguity,
    /// The last instant read, in seconds since the epoch.
    pub(super) last: Option<i64>,
    /// The last repeated local time was read as its second occurrence: the ones after it
    /// are too, until an unambiguous time ends the repeated hour.
    pub(super) second_pass: bool,
    /// (local hour as seconds since the epoch, offset seconds) when the whole hour has one
    /// unambiguous offset.
    pub(super) hour: Option<(i64, i64)>,
    /// The last traditional prefix `Mmm dd HH` whose whole hour falls in one year, with the
    /// local time of its start (seconds since the epoch, as if local were UTC).
    pub(super) traditional: Option<([u8; 9], i64)>,
    /// The last RFC 3339 prefix `YYYY-MM-DDTHH:MM`, with the start of that minute (seconds
    /// since the epoch, before the offset is applied).
    pub(super) rfc3339: Option<([u8; 16], i64)>,
    /// The last BSD header read whole (see [`Header`]): the lines of one program repeat it.
    pub(super) header: Option<Header>,
}

/// A BSD header ` host tag[pid]: ` as it appeared, up to and with the space before MSG, and
/// where its tag lies in it.
///
/// [`bsd_header`] decides everything from the header's own bytes (the host ends at its
/// first space, the tag at `[`, `:` or a space, the pid at the first `]`), so a line whose
/// rest starts with these bytes has this header: one comparison instead of three scans.
/// Only headers that end with the space before MSG are kept; with a header ending in `:`,
/// a later line's MSG could start with a space that the parser would drop.
#[derive(Debug, Clone)]
pub(super) struct Header {
    pub(super) bytes: Box<[u8]>,
    pub(super) tag: std::ops::Range<usize>,
}

/// How far back a repeated local time may step before it is read as the second occurrence.
const BACKSTEP: i64 = 600;

impl<Z: Zone> Clock<Z> {
    /// A clock for lines written no later than `reference`.
    pub fn new(zone: Z, reference: DateTime<Utc>, ambiguity: Ambiguity) -> Self {
        let reference = zone.local(reference);
        Clock {
            zone,
            reference,
            ambiguity,
            last: None,
            second_pass: false,
            hour: None,
            traditional: None,
            rfc3339: None,
            header: None,
        }
    }

    /// [`bsd_header`] of `rest`, through the last whole header read.
    pub(super) fn header<'a>(&mut self, rest: &'a [u8]) -> Option<(&'a [u8], &'a [u8])> {
        if let Some(h) = &self.header
            && rest.starts_with(&h.bytes)
        {
            return Some((&rest[h.tag.clone()], &rest[h.bytes.len()..]));
        }
        let (tag, msg) = bsd_header(rest)?;
        let len = rest.len() - msg.len();
        if len > 0 && rest[len - 1] == b' ' {
            // Offsets within `rest`: both slices borrow from it.
            let start = tag.as_ptr() as usize - rest.as_ptr() as usize;
            self.header = Some(Header {
                bytes: rest[..len].into(),
                tag: start..start + tag.len(),
            });
        }
        Some((tag, msg))
    }

    /// Change the reference (a new file) and forget the line order.
    pub fn set_reference(&mut self, reference: DateTime<Utc>) {
        self.reference = self.zone.local(reference);
        self.last = None;
        self.second_pass = false;
        // The year of a month and day depends on the reference.
        self.traditional = None;
    }

    /// Whether the zone keeps one UTC offset for three hours either side of `t`: a scan may
    /// then start reading at a line of that time with a fresh clock and read every later
    /// line as a reader that started earlier would (line order only matters in the hour
    /// that repeats when DST ends).
    pub fn steady_around(&self, t: DateTime<Utc>) -> bool {
        let offset = |t: DateTime<Utc>| self.zone.local(t).and_utc().timestamp() - t.timestamp();
        let span = chrono::Duration::hours(3);
        let (a, b) = (t - span, t + span);
        offset(a) == offset(b) && offset(t) == offset(a)
    }

    /// The year of a month and day, as seen from the reference: the latest such date not
    /// more than a day after the reference.
    pub(super) fn year_of(
        &self,
        month: u32,
        day: u32,
        time: (u32, u32, u32),
    ) -> Option<NaiveDateTime> {
        let year = self.reference.year();
        let limit = self.reference + chrono::Duration::days(1);
        for y in [year + 1, year, year - 1, year - 2, year - 3, year - 4] {
            if let Some(d) = NaiveDate::from_ymd_opt(y, month, day)
                .and_then(|d| d.and_hms_opt(time.0, time.1, time.2))
                .filter(|d| *d <= limit)
            {
                return Some(d);
            }
        }
        None
    }

    /// The instant of a local time.
    pub(super) fn instant(&mut self, local: NaiveDateTime) -> Option<DateTime<Utc>> {
        let secs = local.and_utc().timestamp();
        let hour = secs.div_euclid(3600);
        if let Some((h, off)) = self.hour
            && h == hour
        {
            return self.seen(DateTime::from_timestamp(secs - off, 0)?);
        }
        let t = match self.zone.resolve(&local) {
            LocalResult::Single(t) => {
                self.second_pass = false;
                self.cache_hour(hour, secs - t.timestamp());
                t
            }
            LocalResult::Ambiguous(a, b) => {
                let (early, late) = if a <= b { (a, b) } else { (b, a) };
                let back = |last: i64| early.timestamp() < last - BACKSTEP;
                match (self.ambiguity, self.last) {
                    (Ambiguity::Seek, _) => late,
                    (Ambiguity::Stream, _) if self.second_pass => late,
                    (Ambiguity::Stream, Some(last)) if back(last) => {
                        self.second_pass = true;
                        late
                    }
                    (Ambiguity::Stream, _) => early,
                }
            }
            // In the gap a DST start leaves: read with the offset from before the gap.
            LocalResult::None => {
                let hour = chrono::Duration::hours(1);
                self.zone.resolve(&(local - hour)).latest()? + hour
            }
        };
        self.seen(t)
    }

    /// Cache `offset` for local `hour` if both ends of the hour agree on it.
    pub(super) fn cache_hour(&mut self, hour: i64, offset: i64) {
        let at = |s: i64| DateTime::from_timestamp(s, 0).map(|d| d.naive_utc());
        let (Some(start), Some(end)) = (at(hour * 3600), at(hour * 3600 + 3599)) else {
            return;
        };
        let same = |l: NaiveDateTime| match self.zone.resolve(&l) {
            LocalResult::Single(t) => l.and_utc().timestamp() - t.timestamp() == offset,
            _ => false,
        };
        if same(start) && same(end) {
            self.hour = Some((hour, offset));
        }
    }

    pub(super) fn seen(&mut self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.ambiguity == Ambiguity::Stream {
            self.last = Some(t.timestamp());
        }
        Some(t)
    }

    /// [`Clock::instant`] of a local time given in seconds, as seconds since the epoch.
    pub(super) fn instant_secs(&mut self, local: i64) -> Option<i64> {
        if let Some((h, off)) = self.hour
            && h == local.div_euclid(3600)
        {
            let t = local - off;
            if self.ambiguity == Ambiguity::Stream {
                self.last = Some(t);
            }
            return Some(t);
        }
        let local = DateTime::from_timestamp(local, 0)?.naive_utc();
        self.instant(local).map(|t| t.timestamp())
    }

    /// Remember `prefix` (`Mmm dd HH`) if its whole hour lies in one year.
    pub(super) fn cache_traditional(&mut self, prefix: &[u8], month: u32, day: u32, h: u32) {
        let (Some(a), Some(b)) = (
            self.year_of(month, day, (h, 0, 0)),
            self.year_of(month, day, (h, 59, 59)),
        ) else {
            return;
        };
        if a.date() == b.date()
            && let Ok(p) = prefix.try_into()
        {
            self.traditional = Some((p, a.and_utc().timestamp()));
        }
    }
}
