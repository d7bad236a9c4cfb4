//! Syslog lines as stats reads them back: a time, an identifier (tag) and the message.
//!
//! Formats, told apart by their first bytes:
//! - RFC 3339, rsyslog's `RSYSLOG_FileFormat` and Debian 12's default:
//!   `2026-11-22T05:00:14.123456+01:00 host tag[pid]: msg`;
//! - traditional (`RSYSLOG_TraditionalFileFormat`): `Nov 22 05:00:14 host tag[pid]: msg`, in
//!   local time without a year. The year comes from a reference time (the file's last
//!   modification: no line of a file is newer than that), so December lines read in January
//!   land in the right year; local times are resolved in the local zone, and the hour that
//!   repeats when DST ends is told apart by the order of lines;
//! - RFC 5424: `<PRI>1 2026-11-22T05:00:14Z host app procid msgid [sd] msg`, with or without
//!   `<PRI>`;
//! - `journalctl -o json`: one object per line with `__REALTIME_TIMESTAMP`,
//!   `SYSLOG_IDENTIFIER` and `MESSAGE` (a string, or an array of bytes when the message is not
//!   valid UTF-8).
//!
//! The timestamp parsers are written by hand: chrono's generic parsers cost several times
//! more per line, and parsing is most of the work of reading a window.
use super::clock::{Clock, Zone};
use chrono::{DateTime, Utc};
use std::borrow::Cow;

/// One parsed line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line<'a> {
    /// When the line was logged.
    pub time: DateTime<Utc>,
    /// The syslog identifier (tag, APP-NAME, `SYSLOG_IDENTIFIER`).
    pub ident: Cow<'a, [u8]>,
    /// The message (MSG, `MESSAGE`).
    pub msg: Cow<'a, [u8]>,
}

/// Why a line could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// No timestamp in a known format at the start of the line.
    #[error("no timestamp")]
    Timestamp,
    /// A timestamp, but no `host tag:` header after it.
    #[error("no syslog header")]
    Header,
    /// A line starting with `{` that is not a journal entry we can read.
    #[error("not a journal entry")]
    Journal,
}

/// Parse one line (without its newline).
pub fn parse<'a, Z: Zone>(line: &'a [u8], clock: &mut Clock<Z>) -> Result<Line<'a>, LineError> {
    match line.first() {
        Some(b'{') => journal(line),
        Some(b'<') => {
            let rest = after_priority(line).ok_or(LineError::Timestamp)?;
            if rest.starts_with(b"1 ") {
                rfc5424(&rest[2..])
            } else {
                after_pri(rest, clock)
            }
        }
        Some(b'1') if line.get(1) == Some(&b' ') => rfc5424(&line[2..]),
        _ => after_pri(line, clock),
    }
}

/// One parsed line with its time as an integer: what the fast path gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamped<'a> {
    /// When the line was logged, in microseconds since the epoch.
    pub micros: i64,
    /// The syslog identifier (tag, APP-NAME, `SYSLOG_IDENTIFIER`).
    pub ident: Cow<'a, [u8]>,
    /// The message (MSG, `MESSAGE`).
    pub msg: Cow<'a, [u8]>,
}

/// [`parse`] for reading many lines: the same results, faster for the common line.
///
/// A timestamp's prefix (`2026-11-22T05:00` or `Nov 22 05`) repeats for thousands of lines
/// in a row; the clock remembers the last one and what it means, so a line that shares it
/// costs a comparison and a few digits, and its time stays an integer. Other lines (a new
/// minute or hour, `<PRI>`, RFC 5424, journal entries) go through [`parse`], which also
/// resolves DST and year changes.
pub fn parse_fast<'a, Z: Zone>(
    line: &'a [u8],
    clock: &mut Clock<Z>,
) -> Result<Stamped<'a>, LineError> {
    let first = line.first().copied();
    if first.is_some_and(|b| b.is_ascii_digit()) && line.get(1) != Some(&b' ') {
        // RFC 3339 without `<PRI>`: the slow path is this same code without the cache.
        let minute = match clock.rfc3339 {
            Some((p, minute)) if line.len() >= 20 && line[..16] == p => minute,
            _ => {
                let minute = rfc3339_minute(line).ok_or(LineError::Timestamp)?;
                if let Ok(p) = line[..16].try_into() {
                    clock.rfc3339 = Some((p, minute));
                }
                minute
            }
        };
        let (micros, rest) = rfc3339_tail(line, minute).ok_or(LineError::Timestamp)?;
        let (ident, msg) = clock.header(rest).ok_or(LineError::Header)?;
        return Ok(Stamped {
            micros,
            ident: Cow::Borrowed(ident),
            msg: Cow::Borrowed(msg),
        });
    }
    if first.is_some_and(|b| b.is_ascii_alphabetic())
        && let Some((p, hour)) = clock.traditional
        && line.len() >= 15
        && line[..9] == p
        && line[9] == b':'
        && line[12] == b':'
        && let (Some(mi), Some(s)) = (digits(&line[10..], 2), digits(&line[13..], 2))
        && mi <= 59
    {
        let local = hour + i64::from(mi * 60 + s.min(59));
        let secs = clock.instant_secs(local).ok_or(LineError::Timestamp)?;
        let (ident, msg) = clock.header(&line[15..]).ok_or(LineError::Header)?;
        return Ok(Stamped {
            micros: secs * 1_000_000,
            ident: Cow::Borrowed(ident),
            msg: Cow::Borrowed(msg),
        });
    }
    let l = parse(line, clock)?;
    if first.is_some_and(|b| b.is_ascii_alphabetic())
        && let Some((month, day, h, _, _)) = traditional_fields(line)
    {
        clock.cache_traditional(&line[..9], month, day, h);
    }
    Ok(Stamped {
        micros: l.time.timestamp_micros(),
        ident: l.ident,
        msg: l.msg,
    })
}

/// Only the time of a line: what a seek needs.
pub fn time_of<Z: Zone>(line: &[u8], clock: &mut Clock<Z>) -> Option<DateTime<Utc>> {
    parse(line, clock).ok().map(|l| l.time)
}

/// RFC 3339 or traditional timestamp, then the BSD header.
fn after_pri<'a, Z: Zone>(line: &'a [u8], clock: &mut Clock<Z>) -> Result<Line<'a>, LineError> {
    let (time, rest) = match line.first() {
        Some(b'0'..=b'9') => rfc3339(line).ok_or(LineError::Timestamp)?,
        Some(_) => traditional(line, clock).ok_or(LineError::Timestamp)?,
        None => return Err(LineError::Timestamp),
    };
    let (ident, msg) = bsd_header(rest).ok_or(LineError::Header)?;
    Ok(Line {
        time,
        ident: Cow::Borrowed(ident),
        msg: Cow::Borrowed(msg),
    })
}

/// ` host tag[pid]: msg` → (tag, msg). The tag ends at `[`, `:` or a space.
///
/// rsyslog writes the tag of a message it received in RFC 5424 (`syslog.format = "rfc5424"`)
/// as `APP-NAME[PROCID]` without the colon, so `tag[pid] msg` is read too.
pub(super) fn bsd_header(rest: &[u8]) -> Option<(&[u8], &[u8])> {
    let rest = rest.strip_prefix(b" ")?;
    let host_end = memchr::memchr(b' ', rest)?;
    let rest = &rest[host_end + 1..];
    let tag_end = rest.iter().position(|&b| matches!(b, b'[' | b':' | b' '))?;
    let tag = &rest[..tag_end];
    let mut after = &rest[tag_end..];
    let mut pid = false;
    if after.first() == Some(&b'[') {
        let close = memchr::memchr(b']', after)?;
        after = &after[close + 1..];
        pid = true;
    }
    let msg = match after.strip_prefix(b":") {
        Some(msg) => msg,
        None if pid && after.first() == Some(&b' ') => after,
        None => return None,
    };
    let msg = msg.strip_prefix(b" ").unwrap_or(msg);
    if tag.is_empty() {
        return None;
    }
    Some((tag, msg))
}

fn digits(b: &[u8], n: usize) -> Option<u32> {
    if b.len() < n {
        return None;
    }
    let mut v = 0u32;
    for &c in &b[..n] {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(c - b'0');
    }
    Some(v)
}

/// Days from 1970-01-01 to a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` → instant and the rest of the line.
pub fn rfc3339(b: &[u8]) -> Option<(DateTime<Utc>, &[u8])> {
    let (micros, rest) = rfc3339_tail(b, rfc3339_minute(b)?)?;
    Some((DateTime::from_timestamp_micros(micros)?, rest))
}

/// The start of the minute `YYYY-MM-DDTHH:MM` of an RFC 3339 timestamp, in seconds since
/// the epoch before the offset is applied (what [`rfc3339_tail`] completes).
fn rfc3339_minute(b: &[u8]) -> Option<i64> {
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' {
        return None;
    }
    let y = i64::from(digits(b, 4)?);
    let mo = digits(&b[5..], 2)?;
    let d = digits(&b[8..], 2)?;
    let h = digits(&b[11..], 2)?;
    let mi = digits(&b[14..], 2)?;
    if !(1..=12).contains(&mo) || d == 0 || d > days_in_month(y, mo) || h > 23 || mi > 59 {
        return None;
    }
    Some(days_from_civil(y, mo, d) * 86_400 + i64::from(h * 3600 + mi * 60))
}

/// `:SS[.frac](Z|±HH:MM)` after a minute → microseconds since the epoch and the rest.
fn rfc3339_tail(b: &[u8], minute: i64) -> Option<(i64, &[u8])> {
    if b.len() < 20 || b[16] != b':' {
        return None;
    }
    let s = digits(&b[17..], 2)?;
    if s > 60 {
        return None;
    }
    let mut i = 19;
    let mut micros = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 6 {
                micros = micros * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        for _ in (i - start)..6 {
            micros *= 10;
        }
    }
    let offset = match b.get(i)? {
        b'Z' | b'z' => {
            i += 1;
            0
        }
        &sign @ (b'+' | b'-') => {
            let oh = digits(&b[i + 1..], 2)?;
            if b.get(i + 3) != Some(&b':') {
                return None;
            }
            let om = digits(&b[i + 4..], 2)?;
            i += 6;
            let o = i64::from(oh * 3600 + om * 60);
            if sign == b'-' { -o } else { o }
        }
        _ => return None,
    };
    // A leap second is read as the last ordinary second of its minute.
    let secs = minute + i64::from(s.min(59)) - offset;
    Some((secs * 1_000_000 + micros, &b[i..]))
}

/// `Mmm dd HH:MM:SS` (day padded with a space) → instant and the rest of the line.
fn traditional<'a, Z: Zone>(
    b: &'a [u8],
    clock: &mut Clock<Z>,
) -> Option<(DateTime<Utc>, &'a [u8])> {
    let (month, day, h, mi, s) = traditional_fields(b)?;
    let local = clock.year_of(month, day, (h, mi, s.min(59)))?;
    Some((clock.instant(local)?, &b[15..]))
}

/// The month, day, hour, minute and second of `Mmm dd HH:MM:SS`.
fn traditional_fields(b: &[u8]) -> Option<(u32, u32, u32, u32, u32)> {
    if b.len() < 15 || b[3] != b' ' || b[6] != b' ' || b[9] != b':' || b[12] != b':' {
        return None;
    }
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let month = MONTHS.iter().position(|m| m[..] == b[..3])? as u32 + 1;
    let day = match b[4] {
        b' ' => digits(&b[5..], 1)?,
        _ => digits(&b[4..], 2)?,
    };
    let h = digits(&b[7..], 2)?;
    let mi = digits(&b[10..], 2)?;
    let s = digits(&b[13..], 2)?;
    Some((month, day, h, mi, s))
}

/// RFC 5424 after `1 `: `TIMESTAMP HOST APP PROCID MSGID SD [MSG]`.
fn rfc5424(b: &[u8]) -> Result<Line<'_>, LineError> {
    let (time, rest) = rfc3339(b).ok_or(LineError::Timestamp)?;
    let mut fields = rest;
    let mut next = || -> Option<&[u8]> {
        let r = fields.strip_prefix(b" ")?;
        let end = memchr::memchr(b' ', r).unwrap_or(r.len());
        fields = &r[end..];
        Some(&r[..end])
    };
    let _host = next().ok_or(LineError::Header)?;
    let app = next().ok_or(LineError::Header)?;
    let _procid = next().ok_or(LineError::Header)?;
    let _msgid = next().ok_or(LineError::Header)?;
    let rest = fields.strip_prefix(b" ").ok_or(LineError::Header)?;
    let rest = skip_structured_data(rest).ok_or(LineError::Header)?;
    let msg = rest.strip_prefix(b" ").unwrap_or(rest);
    let msg = msg.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(msg);
    if app == b"-" {
        return Err(LineError::Header);
    }
    Ok(Line {
        time,
        ident: Cow::Borrowed(app),
        msg: Cow::Borrowed(msg),
    })
}

/// What follows a `<PRI>` (one to three digits) at the start of `line`.
pub(crate) fn after_priority(line: &[u8]) -> Option<&[u8]> {
    let rest = line.strip_prefix(b"<")?;
    let close = rest.iter().take(4).position(|&b| b == b'>')?;
    (close > 0 && rest[..close].iter().all(u8::is_ascii_digit)).then(|| &rest[close + 1..])
}

/// Skip `-` or `[id k="v"]…` (values may hold `\]` and `\"`).
pub(crate) fn skip_structured_data(b: &[u8]) -> Option<&[u8]> {
    if let Some(rest) = b.strip_prefix(b"-") {
        return Some(rest);
    }
    let mut i = 0;
    while b.get(i) == Some(&b'[') {
        let mut quoted = false;
        i += 1;
        loop {
            match *b.get(i)? {
                b'\\' if quoted => i += 1,
                b'"' => quoted = !quoted,
                b']' if !quoted => break,
                _ => {}
            }
            i += 1;
        }
        i += 1;
    }
    (i > 0).then(|| &b[i..])
}

/// A `journalctl -o json` entry.
fn journal(line: &[u8]) -> Result<Line<'_>, LineError> {
    #[derive(serde::Deserialize)]
    struct Entry<'a> {
        #[serde(rename = "__REALTIME_TIMESTAMP", borrow)]
        realtime: Cow<'a, str>,
        #[serde(rename = "SYSLOG_IDENTIFIER", borrow, default)]
        ident: Option<Text<'a>>,
        #[serde(rename = "MESSAGE", borrow, default)]
        message: Option<Text<'a>>,
    }
    /// journald gives a field as a string when it is valid UTF-8, as an array of bytes
    /// otherwise (and null when it is too large to show).
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Text<'a> {
        Str(#[serde(borrow)] Cow<'a, str>),
        Bytes(Vec<u8>),
        Null(()),
    }
    fn bytes(t: Option<Text<'_>>) -> Option<Cow<'_, [u8]>> {
        match t? {
            Text::Str(Cow::Borrowed(s)) => Some(Cow::Borrowed(s.as_bytes())),
            Text::Str(Cow::Owned(s)) => Some(Cow::Owned(s.into_bytes())),
            Text::Bytes(b) => Some(Cow::Owned(b)),
            Text::Null(()) => None,
        }
    }
    let e: Entry<'_> = serde_json::from_slice(line).map_err(|_| LineError::Journal)?;
    let micros: i64 = e.realtime.parse().map_err(|_| LineError::Journal)?;
    let time = DateTime::from_timestamp_micros(micros).ok_or(LineError::Journal)?;
    Ok(Line {
        time,
        ident: bytes(e.ident).ok_or(LineError::Journal)?,
        msg: bytes(e.message).ok_or(LineError::Journal)?,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::syslog::clock::Ambiguity;
    use crate::time::tests::Cet;
    use chrono::Datelike;
    use chrono::{FixedOffset, NaiveDate};

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn clock_at(reference: &str) -> Clock<Utc> {
        Clock::new(Utc, utc(reference), Ambiguity::Stream)
    }

    fn p<'a>(line: &'a str, clock: &mut Clock<impl Zone>) -> Line<'a> {
        parse(line.as_bytes(), clock).unwrap()
    }

    /// What rsyslog's `RSYSLOG_FileFormat` makes of a record the logger sent in RFC 5424.
    #[test]
    fn rsyslog_file_lines_of_rfc5424_messages() {
        let mut c = clock_at("2026-12-01T11:00:00Z");
        let l = p(
            "2026-12-01T10:35:36.980471+00:00 pi iotitan-logger[4242] iotitan/a/t 21.5",
            &mut c,
        );
        assert_eq!(&l.ident[..], b"iotitan-logger");
        assert_eq!(&l.msg[..], b"iotitan/a/t 21.5");
        let fast = parse_fast(
            b"2026-12-01T10:35:36.980471+00:00 pi iotitan-logger[4242] iotitan/a/t 21.5",
            &mut c,
        )
        .unwrap();
        assert_eq!(&fast.msg[..], b"iotitan/a/t 21.5");
        // Without a `[pid]`, a tag still needs its colon.
        assert!(
            parse(
                b"2026-12-01T10:35:36Z pi iotitan-logger iotitan/a/t 1",
                &mut c
            )
            .is_err()
        );
    }

    #[test]
    fn rfc3339_lines() {
        let mut c = clock_at("2026-11-22T06:00:00Z");
        let l = p(
            "2026-11-22T05:00:14.123456+01:00 host iotitan-logger[42]: a/b 23.1",
            &mut c,
        );
        assert_eq!(l.time, utc("2026-11-22T04:00:14.123456Z"));
        assert_eq!(&l.ident[..], b"iotitan-logger");
        assert_eq!(&l.msg[..], b"a/b 23.1");
        let l = p("2026-11-22T05:00:14Z h tag: x", &mut c);
        assert_eq!(l.time, utc("2026-11-22T05:00:14Z"));
        assert_eq!(&l.ident[..], b"tag");
        assert_eq!(&l.msg[..], b"x");
        let l = p("2026-11-22T05:00:14.5-03:30 h t[1]:", &mut c);
        assert_eq!(l.time, utc("2026-11-22T08:30:14.5Z"));
        assert_eq!(&l.msg[..], b"");
        // Nanoseconds are cut to microseconds.
        let l = p("2026-11-22T05:00:14.123456789Z h t: m", &mut c);
        assert_eq!(l.time, utc("2026-11-22T05:00:14.123456Z"));
    }

    #[test]
    fn rfc3339_agrees_with_chrono() {
        for s in [
            "1970-01-01T00:00:00Z",
            "2000-02-29T23:59:59.999999+14:00",
            "2024-12-31T23:59:59-12:00",
            "2100-03-01T00:00:00.000001Z",
            "1999-12-31T23:59:59.1+05:45",
        ] {
            let (t, rest) = rfc3339(s.as_bytes()).unwrap();
            assert_eq!(t, utc(s), "{s}");
            assert!(rest.is_empty());
        }
        for bad in [
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-11-22T24:00:00Z",
            "2026-11-22T05:00:00",
            "2026-11-22T05:00:00.Z",
            "2026-11-22T05:00:00+0100",
            "2026-1-22T05:00:00Z",
        ] {
            assert!(rfc3339(bad.as_bytes()).is_none(), "{bad}");
        }
    }

    #[test]
    fn traditional_lines_take_the_year_from_the_reference() {
        let mut c = clock_at("2026-11-22T06:00:00Z");
        let l = p("Nov 22 05:00:14 host iotitan-logger[7]: a/b 1", &mut c);
        assert_eq!(l.time, utc("2026-11-22T05:00:14Z"));
        let l = p("Nov  2 05:00:14 host t: x", &mut c);
        assert_eq!(l.time, utc("2026-11-02T05:00:14Z"));
        // Across New Year: read on Jan 1st, December is last year.
        let mut c = clock_at("2027-01-01T00:10:00Z");
        assert_eq!(
            p("Dec 31 23:59:59 h t: x", &mut c).time,
            utc("2026-12-31T23:59:59Z")
        );
        assert_eq!(
            p("Jan  1 00:00:01 h t: x", &mut c).time,
            utc("2027-01-01T00:00:01Z")
        );
        // A clock a little ahead of the reference is still this year.
        assert_eq!(
            p("Jan  1 12:00:00 h t: x", &mut c).time,
            utc("2027-01-01T12:00:00Z")
        );
        // Feb 29 goes back to the last leap year.
        let mut c = clock_at("2027-03-01T00:00:00Z");
        assert_eq!(
            p("Feb 29 10:00:00 h t: x", &mut c).time,
            utc("2024-02-29T10:00:00Z")
        );
    }

    #[test]
    fn traditional_lines_use_the_zone() {
        let zone = FixedOffset::east_opt(10 * 3600 + 1800).unwrap();
        let mut c = Clock::new(zone, utc("2026-11-22T06:00:00Z"), Ambiguity::Stream);
        assert_eq!(
            p("Nov 22 15:30:00 h t: x", &mut c).time,
            utc("2026-11-22T05:00:00Z")
        );
    }

    #[test]
    fn the_repeated_hour_follows_line_order() {
        let mut c = Clock::new(Cet, utc("2026-10-26T00:00:00Z"), Ambiguity::Stream);
        let lines = [
            ("Oct 25 01:59:00 h t: x", "2026-10-24T23:59:00Z"),
            ("Oct 25 02:10:00 h t: x", "2026-10-25T00:10:00Z"),
            ("Oct 25 02:50:00 h t: x", "2026-10-25T00:50:00Z"),
            ("Oct 25 02:05:00 h t: x", "2026-10-25T01:05:00Z"),
            ("Oct 25 02:55:00 h t: x", "2026-10-25T01:55:00Z"),
            ("Oct 25 03:00:00 h t: x", "2026-10-25T02:00:00Z"),
        ];
        for (line, want) in lines {
            assert_eq!(p(line, &mut c).time, utc(want), "{line}");
        }
        // A seek, without line order, takes the later reading.
        let mut s = Clock::new(Cet, utc("2026-10-26T00:00:00Z"), Ambiguity::Seek);
        assert_eq!(
            p("Oct 25 02:10:00 h t: x", &mut s).time,
            utc("2026-10-25T01:10:00Z")
        );
        // DST start: 02:30 does not exist; it is read with the winter offset.
        let mut c = Clock::new(Cet, utc("2026-03-30T00:00:00Z"), Ambiguity::Stream);
        assert_eq!(
            p("Mar 29 01:59:59 h t: x", &mut c).time,
            utc("2026-03-29T00:59:59Z")
        );
        assert_eq!(
            p("Mar 29 03:00:00 h t: x", &mut c).time,
            utc("2026-03-29T01:00:00Z")
        );
        assert_eq!(
            p("Mar 29 02:30:00 h t: x", &mut c).time,
            utc("2026-03-29T01:30:00Z")
        );
    }

    #[test]
    fn rfc5424_lines() {
        let mut c = clock_at("2026-11-22T06:00:00Z");
        let l = p(
            "<134>1 2026-11-22T05:00:14.5Z host iotitan-logger 42 - - a/b 23.1",
            &mut c,
        );
        assert_eq!(l.time, utc("2026-11-22T05:00:14.5Z"));
        assert_eq!(&l.ident[..], b"iotitan-logger");
        assert_eq!(&l.msg[..], b"a/b 23.1");
        let l = p(
            "1 2026-11-22T05:00:14Z h app - id [x@1 a=\"q\\]\" b=\"2\"][y@2] \u{feff}m 1",
            &mut c,
        );
        assert_eq!(&l.ident[..], b"app");
        assert_eq!(&l.msg[..], b"m 1");
        let l = p("<13>1 2026-11-22T05:00:14Z h app - - -", &mut c);
        assert_eq!(&l.msg[..], b"");
        assert!(parse(b"<13>1 2026-11-22T05:00:14Z h - - - - m", &mut c).is_err());
        // <PRI> before a BSD line.
        let l = p("<13>Nov 22 05:00:14 h t[1]: m", &mut c);
        assert_eq!(&l.msg[..], b"m");
    }

    #[test]
    fn journal_entries() {
        let mut c = clock_at("2026-11-22T06:00:00Z");
        let l = p(
            r#"{"__REALTIME_TIMESTAMP":"1795323614123456","SYSLOG_IDENTIFIER":"iotitan-logger","MESSAGE":"a/b 23.1","_PID":"1"}"#,
            &mut c,
        );
        assert_eq!(
            l.time,
            DateTime::from_timestamp_micros(1795323614123456).unwrap()
        );
        assert_eq!(&l.msg[..], b"a/b 23.1");
        let l = p(
            r#"{"MESSAGE":[97,32,255],"SYSLOG_IDENTIFIER":"t","__REALTIME_TIMESTAMP":"1"}"#,
            &mut c,
        );
        assert_eq!(&l.msg[..], b"a \xff");
        let l = p(
            r#"{"MESSAGE":"q\"\\","SYSLOG_IDENTIFIER":"t","__REALTIME_TIMESTAMP":"1"}"#,
            &mut c,
        );
        assert_eq!(&l.msg[..], b"q\"\\");
        for bad in [
            r#"{"MESSAGE":"x","__REALTIME_TIMESTAMP":"1"}"#,
            r#"{"MESSAGE":null,"SYSLOG_IDENTIFIER":"t","__REALTIME_TIMESTAMP":"1"}"#,
            r#"{"MESSAGE":"x","SYSLOG_IDENTIFIER":"t","__REALTIME_TIMESTAMP":"soon"}"#,
            r#"{"MESSAGE":"x""#,
        ] {
            assert_eq!(
                parse(bad.as_bytes(), &mut c),
                Err(LineError::Journal),
                "{bad}"
            );
        }
    }

    #[test]
    fn junk_is_an_error_not_a_panic() {
        let mut c = clock_at("2026-11-22T06:00:00Z");
        for junk in [
            "",
            "hello",
            "Nov 22 05:00:14",
            "Nov 22 05:00:14 hostonly",
            "Nov 22 05:00:14 host tag no colon",
            "Foo 22 05:00:14 h t: x",
            "Nov 32 05:00:14 h t: x",
            "2026-11-22T05:00:14Z",
            "2026-11-22T05:00:14Z h [1]: x",
            "<999999",
            "<13>",
            "1 ",
            "{",
            "\u{0}\u{1}",
        ] {
            assert!(parse(junk.as_bytes(), &mut c).is_err(), "{junk:?}");
        }
    }

    #[test]
    fn days_from_civil_matches_chrono() {
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
        let mut d = NaiveDate::from_ymd_opt(1899, 12, 25).unwrap();
        while d.year() < 2401 {
            let want = (d - epoch).num_days();
            assert_eq!(days_from_civil(d.year().into(), d.month(), d.day()), want);
            d += chrono::Duration::days(13);
        }
    }

    /// Lines whose stamps share prefixes (so the fast path's caches are hit and missed), with
    /// odd stamps (leap and impossible seconds, DST and year edges), every format, escapes,
    /// cut markers and junk.
    fn generated_line() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let msg = prop_oneof![
            Just("iotitan/a/t 21.5".to_owned()),
            Just("iotitan/a\\x20b/t 1\\n2".to_owned()),
            Just("iotitan/a/t 1234\\[cut 9999]".to_owned()),
            Just("iotitan/a/t".to_owned()),
            Just(" iotitan/a/t 2".to_owned()),
            Just("".to_owned()),
            "[ -~]{0,12}",
        ];
        let header = prop_oneof![
            Just(" pi iotitan-logger[1]: ".to_owned()),
            Just(" pi iotitan-logger: ".to_owned()),
            Just(" pi sshd[9]:".to_owned()),
            // Headers that share a prefix with another, or end where a cached one would not.
            Just(" pi iotitan-logger[1] ".to_owned()),
            Just(" pi iotitan-logger[1]:".to_owned()),
            Just(" pi iotitan-logger[1]:  ".to_owned()),
            Just(" pi iotitan-logger[1]: x".to_owned()),
            Just(" pi2 iotitan-logger[1]: ".to_owned()),
            Just(" pi iotitan-logger[12]: ".to_owned()),
            Just(" pi".to_owned()),
            Just("".to_owned()),
        ];
        let rfc = (
            prop_oneof![
                Just("2026-10-25"),
                Just("2026-12-31"),
                Just("2024-02-29"),
                Just("2026-02-29")
            ],
            prop_oneof![Just('T'), Just(' ')],
            0u32..3,
            prop_oneof![0u32..2, Just(59), Just(60)],
            prop_oneof![0u32..3, Just(59), Just(60), Just(61), Just(99)],
            prop_oneof![
                Just(""),
                Just(".5"),
                Just(".123456"),
                Just(".123456789"),
                Just(".")
            ],
            prop_oneof![
                Just("Z"),
                Just("+01:00"),
                Just("-03:30"),
                Just("+0100"),
                Just("")
            ],
        )
            .prop_map(|(d, sep, h, mi, s, frac, off)| {
                format!("{d}{sep}{:02}:{mi:02}:{s:02}{frac}{off}", h + 1)
            });
        let trad = (
            prop_oneof![
                Just("Oct 25"),
                Just("Mar 29"),
                Just("Dec 31"),
                Just("Jan  1"),
                Just("Feb 29"),
                Just("Nov 32")
            ],
            prop_oneof![0u32..4, Just(23), Just(24)],
            prop_oneof![0u32..2, Just(59), Just(60)],
            prop_oneof![0u32..2, Just(59), Just(60), Just(99)],
        )
            .prop_map(|(d, h, mi, s)| format!("{d} {h:02}:{mi:02}:{s:02}"));
        let stamp = prop_oneof![
            4 => rfc,
            4 => trad.clone(),
            1 => trad.prop_map(|t| format!("<13>{t}")),
            1 => Just("<134>1 2026-10-25T01:00:00Z pi iotitan-logger 1 - -".to_owned()),
        ];
        prop_oneof![
            12 => (stamp, header, msg).prop_map(|(s, h, m)| format!("{s}{h}{m}")),
            1 => Just(r#"{"__REALTIME_TIMESTAMP":"1795323614123456","SYSLOG_IDENTIFIER":"iotitan-logger","MESSAGE":"a/b 1"}"#.to_owned()),
            1 => "[ -~]{0,30}",
        ]
    }

    proptest::proptest! {
        #[test]
        fn the_fast_path_reads_every_line_as_the_slow_path(
            lines in proptest::collection::vec(generated_line(), 1..60),
            reference in proptest::prop_oneof![
                proptest::strategy::Just("2026-10-26T00:00:00Z"),
                proptest::strategy::Just("2026-03-29T01:30:00Z"),
                proptest::strategy::Just("2027-01-01T00:10:00Z"),
                proptest::strategy::Just("2026-10-25T01:20:00Z"),
            ],
            new_input in 0usize..80,
        ) {
            let mut slow = Clock::new(Cet, utc(reference), Ambiguity::Stream);
            let mut fast = Clock::new(Cet, utc(reference), Ambiguity::Stream);
            for (i, l) in lines.iter().enumerate() {
                if i == new_input {
                    slow.set_reference(utc("2027-01-01T00:00:30Z"));
                    fast.set_reference(utc("2027-01-01T00:00:30Z"));
                }
                let want = parse(l.as_bytes(), &mut slow)
                    .map(|l| (l.time.timestamp_micros(), l.ident, l.msg));
                let got = parse_fast(l.as_bytes(), &mut fast).map(|s| (s.micros, s.ident, s.msg));
                proptest::prop_assert_eq!(got, want, "line {}: {:?}", i, l);
            }
        }
        #[test]
        fn never_panics(line in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80)) {
            let mut c = clock_at("2026-11-22T06:00:00Z");
            let _ = parse(&line, &mut c);
            let _ = parse_fast(&line, &mut c);
        }
    }
}
