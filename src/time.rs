//! Time helpers every part shares: the half-open [`Window`], times on the command line and in
//! queries ([`parse_time`]), the local zone as cron uses it ([`local`]) and what a zone must
//! answer ([`Zone`]), and sleeping until an optional deadline ([`sleep_until`]).

use chrono::{DateTime, Local, LocalResult, NaiveDateTime, TimeZone, Utc};
use std::time::Instant;

/// A half-open interval of time `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// First instant inside.
    pub start: DateTime<Utc>,
    /// First instant after.
    pub end: DateTime<Utc>,
}

/// A time on the command line: RFC 3339 (`2026-11-22T05:00:00Z`), `now`, or relative to
/// `now` with a sign and a unit (`-15m`, `-2h`, `+5m`).
pub fn parse_time(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let s = s.trim();
    if s == "now" {
        return Ok(now);
    }
    if let Some((sign, rest)) = s
        .strip_prefix('-')
        .map(|r| (-1, r))
        .or_else(|| s.strip_prefix('+').map(|r| (1, r)))
    {
        let d = humantime::parse_duration(rest)
            .map_err(|e| format!("invalid relative time {s:?}: {e}"))?;
        let t = chrono::Duration::from_std(d).ok().and_then(|d| {
            if sign < 0 {
                now.checked_sub_signed(d)
            } else {
                now.checked_add_signed(d)
            }
        });
        return t.ok_or_else(|| format!("invalid relative time {s:?}: too far from now"));
    }
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|e| {
            format!(
                "invalid time {s:?} ({e}): use RFC 3339 like 2026-11-22T05:00:00Z, or -15m, or now"
            )
        })
}
/// The local time zone, as cron uses it.
pub fn local() -> Local {
    Local
}

/// Sleep until `deadline`, or forever when there is none: the arm of a `select!` whose timer
/// may be unset (the next write, the next stale check, the next scheduled message).
pub async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
}

/// A time zone that maps local wall-clock times to instants: the local zone in production,
/// any zone in tests.
pub trait Zone {
    /// The instants a local time means (none in a DST gap, two in the repeated hour).
    fn resolve(&self, local: &NaiveDateTime) -> LocalResult<DateTime<Utc>>;
    /// The local wall-clock time of an instant.
    fn local(&self, t: DateTime<Utc>) -> NaiveDateTime;
}

impl<Tz: TimeZone> Zone for Tz {
    fn resolve(&self, local: &NaiveDateTime) -> LocalResult<DateTime<Utc>> {
        self.from_local_datetime(local)
            .map(|d| d.with_timezone(&Utc))
    }
    fn local(&self, t: DateTime<Utc>) -> NaiveDateTime {
        t.with_timezone(self).naive_local()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A zone with European DST rules in 2026 for UTC+1/+2 (CET/CEST); the DST tests of the
    /// read API's buckets use it too.
    #[derive(Clone, Copy, Debug)]
    pub(crate) struct Cet;
    impl Cet {
        fn start() -> i64 {
            1_774_746_000 // 2026-03-29T01:00:00Z
        }
        fn end() -> i64 {
            1_792_890_000 // 2026-10-25T01:00:00Z
        }
        fn offset(t: i64) -> i64 {
            if (Self::start()..Self::end()).contains(&t) {
                7200
            } else {
                3600
            }
        }
    }
    impl Zone for Cet {
        fn resolve(&self, l: &NaiveDateTime) -> LocalResult<DateTime<Utc>> {
            let s = l.and_utc().timestamp();
            let cands: Vec<_> = [s - 3600, s - 7200]
                .into_iter()
                .filter(|&t| s - Self::offset(t) == t)
                .filter_map(|t| DateTime::from_timestamp(t, 0))
                .collect();
            match cands[..] {
                [a] => LocalResult::Single(a),
                [a, b] => LocalResult::Ambiguous(a.min(b), a.max(b)),
                _ => LocalResult::None,
            }
        }
        fn local(&self, t: DateTime<Utc>) -> NaiveDateTime {
            (t + chrono::Duration::seconds(Self::offset(t.timestamp()))).naive_utc()
        }
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn command_line_times() {
        let now = utc("2026-11-22T05:00:00Z");
        assert_eq!(parse_time("now", now), Ok(now));
        assert_eq!(parse_time("-15m", now), Ok(utc("2026-11-22T04:45:00Z")));
        assert_eq!(parse_time("+1h", now), Ok(utc("2026-11-22T06:00:00Z")));
        assert_eq!(
            parse_time("2026-11-22T07:00:00+02:00", now),
            Ok(utc("2026-11-22T05:00:00Z"))
        );
        assert!(parse_time("yesterday", now).is_err());
        assert!(parse_time("-15", now).is_err());
        // Beyond what a date can hold: an error, not an overflow panic.
        let e = parse_time("-200000000y", now).unwrap_err();
        assert!(e.contains("too far"), "{e}");
        assert!(parse_time("+200000000y", now).is_err());
    }
}
