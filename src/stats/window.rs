//! Windows: which `[start, end)` intervals a run computes, from the crontab schedule.
//!
//! `stats.schedule` is the crontab line's 5-field expression, so cron starts stats exactly
//! at the end of each window. The `cron` crate speaks a different dialect, and this module
//! translates:
//! - it wants a seconds field (we prepend `0`);
//! - it numbers days of week 1–7 with Sunday = 1, crontab 0–7 with Sunday = 0 or 7: the
//!   day-of-week field is expanded here (numbers, names, ranges, steps) and written out as a
//!   list in the crate's numbering;
//! - crontab fires when the day of month *or* the day of week matches if both are restricted
//!   (neither starts with `*`); the crate requires both. Such schedules become two schedules
//!   whose fire times are merged;
//! - `@hourly`, `@daily`, … are expanded to their five fields.
//!
//! Fire times are computed in the local time zone, like cron does.

use chrono::{DateTime, Local, TimeZone, Utc};
use std::collections::BTreeSet;
use std::str::FromStr;

/// A half-open interval of time `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// First instant inside.
    pub start: DateTime<Utc>,
    /// First instant after.
    pub end: DateTime<Utc>,
}

/// A crontab schedule, translated for the `cron` crate.
#[derive(Debug, Clone)]
pub struct Schedule {
    source: String,
    parts: Vec<cron::Schedule>,
}

impl Schedule {
    /// Parse a 5-field crontab expression (or an `@daily`-style macro).
    pub fn parse(expr: &str) -> Result<Schedule, String> {
        let parts = translate(expr)?
            .into_iter()
            .map(|e| {
                cron::Schedule::from_str(&e)
                    .map_err(|err| format!("invalid schedule {expr:?}: {err}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Schedule {
            source: expr.trim().to_owned(),
            parts,
        })
    }

    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The latest fire time at or before `t`, in zone `z`.
    pub fn latest_at_or_before<Z: TimeZone>(
        &self,
        t: DateTime<Utc>,
        z: &Z,
    ) -> Option<DateTime<Utc>> {
        // Fire times are whole seconds; the crate's `prev_from` is strictly before.
        let whole = DateTime::from_timestamp(t.timestamp(), 0)?;
        self.before(whole + chrono::Duration::seconds(1), z)
    }

    /// The latest fire time strictly before `t`, in zone `z`.
    pub fn before<Z: TimeZone>(&self, t: DateTime<Utc>, z: &Z) -> Option<DateTime<Utc>> {
        let local = t.with_timezone(z);
        self.parts
            .iter()
            .filter_map(|p| p.after(&local).next_back())
            .map(|d| d.with_timezone(&Utc))
            .max()
    }

    /// The earliest fire time strictly after `t`, in zone `z`.
    pub fn after<Z: TimeZone>(&self, t: DateTime<Utc>, z: &Z) -> Option<DateTime<Utc>> {
        let local = t.with_timezone(z);
        self.parts
            .iter()
            .filter_map(|p| p.after(&local).next())
            .map(|d| d.with_timezone(&Utc))
            .min()
    }
}

/// The windows a scheduled run computes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Windows in time order; empty when the latest one is done already.
    pub windows: Vec<Window>,
    /// Whether missed windows older than the catch-up bound were dropped.
    pub dropped: bool,
}

/// Plan the windows due at `now`, given the end of the last window done.
///
/// The latest window is `[previous fire, latest fire ≤ now)`, so a run that starts late
/// computes the same window as one on time. With `done_until` known, every window between it
/// and the latest fire is due, at most `bound` of them (the newest); windows start exactly
/// where the previous one ended, so consecutive runs count every record once.
pub fn plan<Z: TimeZone>(
    schedule: &Schedule,
    now: DateTime<Utc>,
    done_until: Option<DateTime<Utc>>,
    bound: usize,
    zone: &Z,
) -> Plan {
    let none = Plan {
        windows: Vec::new(),
        dropped: false,
    };
    let Some(latest) = schedule.latest_at_or_before(now, zone) else {
        return none;
    };
    if done_until.is_some_and(|d| d >= latest) {
        return none;
    }
    // Walk back from the latest fire: never more than `bound` steps, however old the state.
    let mut ends = vec![latest];
    let mut dropped = false;
    let start = loop {
        let end = *ends.last().unwrap_or(&latest);
        let Some(prev) = schedule.before(end, zone) else {
            break None;
        };
        match done_until {
            None => break Some(prev),
            Some(d) if prev <= d => break Some(d),
            Some(_) if ends.len() >= bound.max(1) => {
                dropped = true;
                break Some(prev);
            }
            Some(_) => ends.push(prev),
        }
    };
    let Some(mut start) = start else { return none };
    let mut windows = Vec::with_capacity(ends.len());
    for end in ends.into_iter().rev() {
        windows.push(Window { start, end });
        start = end;
    }
    Plan { windows, dropped }
}

/// How long a scheduled run at `now` waits before reading a window that ends at `end`, so
/// that records of the window's last moments have reached syslog: until `end + settle`.
pub fn settle_wait(
    end: DateTime<Utc>,
    settle: std::time::Duration,
    now: DateTime<Utc>,
) -> Option<std::time::Duration> {
    let ready = end + chrono::Duration::from_std(settle).ok()?;
    (ready > now).then(|| (ready - now).to_std().ok()).flatten()
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

/// The cron crate's expressions for a crontab expression (two when day of month and day of
/// week are both restricted, because crontab ORs them).
pub fn translate(expr: &str) -> Result<Vec<String>, String> {
    let expanded = match expr.trim() {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        e if e.starts_with('@') => {
            return Err(format!(
                "unsupported schedule {e:?}: stats needs fire times (use 5 fields or @hourly, @daily, …)"
            ));
        }
        e => e,
    };
    let fields: Vec<&str> = expanded.split_whitespace().collect();
    let [min, hour, dom, month, dow] = fields[..] else {
        return Err(format!(
            "invalid schedule {expr:?}: expected 5 fields (minute hour day-of-month month day-of-week), got {}",
            fields.len()
        ));
    };
    let days = weekdays(dow).map_err(|e| format!("invalid schedule {expr:?}: {e}"))?;
    let dow_crate = if days.len() == 7 {
        "*".to_owned()
    } else {
        // Sunday 0 → 1, Monday 1 → 2, …, Saturday 6 → 7.
        days.iter()
            .map(|d| (d + 1).to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let one = |dom: &str, dow: &str| format!("0 {min} {hour} {dom} {month} {dow}");
    if !dom.starts_with('*') && !dow.starts_with('*') {
        Ok(vec![one(dom, "*"), one("*", &dow_crate)])
    } else {
        Ok(vec![one(dom, &dow_crate)])
    }
}

/// The days of a crontab day-of-week field, Sunday = 0.
fn weekdays(field: &str) -> Result<BTreeSet<u32>, String> {
    let mut days = BTreeSet::new();
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| format!("bad step {s:?} in day of week {field:?}"))?;
                (r, step)
            }
            None => (item, 1),
        };
        let (lo, hi) = match range {
            "*" => (0, 6),
            r => match r.split_once('-') {
                Some((a, b)) => (weekday(a)?, weekday(b)?),
                // `5/2` means 5 to the end, like vixie cron.
                None if item.contains('/') => (weekday(r)?, 7),
                None => (weekday(r)?, weekday(r)?),
            },
        };
        if lo > hi {
            return Err(format!("day-of-week range {range:?} runs backwards"));
        }
        days.extend((lo..=hi).step_by(step as usize).map(|d| d % 7));
    }
    Ok(days)
}

/// One crontab day of week: 0–7 (0 and 7 are Sunday) or a three-letter name.
fn weekday(s: &str) -> Result<u32, String> {
    const NAMES: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
    if let Some(i) = NAMES.iter().position(|n| s.eq_ignore_ascii_case(n)) {
        return Ok(i as u32);
    }
    match s.parse::<u32>() {
        Ok(n) if n <= 7 => Ok(n),
        _ => Err(format!("{s:?} is not a day of week (0–7 or sun … sat)")),
    }
}

/// The local time zone, as cron uses it.
pub fn local() -> Local {
    Local
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, Timelike, Weekday};

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn fires(expr: &str, from: &str, n: usize) -> Vec<DateTime<Utc>> {
        let s = Schedule::parse(expr).unwrap();
        let mut t = utc(from);
        let mut out = Vec::new();
        for _ in 0..n {
            t = s.after(t, &Utc).unwrap();
            out.push(t);
        }
        out
    }

    #[test]
    fn translation_adds_seconds_and_renumbers_weekdays() {
        assert_eq!(translate("*/5 * * * *").unwrap(), vec!["0 */5 * * * *"]);
        assert_eq!(translate("0 3 * * 0").unwrap(), vec!["0 0 3 * * 1"]);
        assert_eq!(translate("0 3 * * 7").unwrap(), vec!["0 0 3 * * 1"]);
        assert_eq!(
            translate("0 3 * * 1-5").unwrap(),
            vec!["0 0 3 * * 2,3,4,5,6"]
        );
        assert_eq!(translate("0 3 * * 5-7").unwrap(), vec!["0 0 3 * * 1,6,7"]);
        assert_eq!(translate("0 3 * * 0-6").unwrap(), vec!["0 0 3 * * *"]);
        assert_eq!(translate("0 3 * * */2").unwrap(), vec!["0 0 3 * * 1,3,5,7"]);
        assert_eq!(
            translate("0 3 * * Mon-FRI").unwrap(),
            vec!["0 0 3 * * 2,3,4,5,6"]
        );
        assert_eq!(translate("0 3 * * sat,sun").unwrap(), vec!["0 0 3 * * 1,7"]);
        assert_eq!(translate("0 3 * * 1/2").unwrap(), vec!["0 0 3 * * 1,2,4,6"]);
        assert_eq!(translate("@hourly").unwrap(), vec!["0 0 * * * *"]);
        assert_eq!(translate("@weekly").unwrap(), vec!["0 0 0 * * 1"]);
        for bad in [
            "* * * *",
            "* * * * * *",
            "0 0 * * 8",
            "0 0 * * 5-2",
            "0 0 * * funday",
            "0 0 * * */0",
            "@reboot",
            "61 * * * *",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn weekday_fires_land_on_the_right_days() {
        // 2026-11-22 is a Sunday.
        let f = fires("30 6 * * 0", "2026-11-16T00:00:00Z", 2);
        assert!(f.iter().all(|d| d.weekday() == Weekday::Sun), "{f:?}");
        assert_eq!(f[0], utc("2026-11-22T06:30:00Z"));
        let f = fires("0 8 * * 1-5", "2026-11-21T00:00:00Z", 5);
        let days: Vec<_> = f.iter().map(|d| d.weekday()).collect();
        use Weekday::*;
        assert_eq!(days, vec![Mon, Tue, Wed, Thu, Fri]);
        let f = fires("0 8 * * sat", "2026-11-16T00:00:00Z", 1);
        assert_eq!(f[0].weekday(), Sat);
        let f = fires("0 8 * * 7", "2026-11-16T00:00:00Z", 1);
        assert_eq!(f[0].weekday(), Sun);
    }

    #[test]
    fn day_of_month_or_day_of_week_as_crontab_does() {
        // The 1st of the month or any Monday: 2026-12-01 is a Tuesday.
        let f = fires("0 0 1 * 1", "2026-11-25T00:00:00Z", 3);
        assert_eq!(
            f,
            vec![
                utc("2026-11-30T00:00:00Z"),
                utc("2026-12-01T00:00:00Z"),
                utc("2026-12-07T00:00:00Z")
            ]
        );
        // With `*` in day of week only the day of month counts.
        let f = fires("0 0 1 * *", "2026-11-25T00:00:00Z", 1);
        assert_eq!(f[0], utc("2026-12-01T00:00:00Z"));
    }

    #[test]
    fn latest_fire_includes_now() {
        let s = Schedule::parse("*/5 * * * *").unwrap();
        let t = utc("2026-11-22T05:05:00Z");
        assert_eq!(s.latest_at_or_before(t, &Utc), Some(t));
        assert_eq!(
            s.latest_at_or_before(utc("2026-11-22T05:09:59.9Z"), &Utc),
            Some(t)
        );
        assert_eq!(s.before(t, &Utc), Some(utc("2026-11-22T05:00:00Z")));
    }

    #[test]
    fn a_late_start_computes_the_same_window() {
        let s = Schedule::parse("*/5 * * * *").unwrap();
        let on_time = plan(&s, utc("2026-11-22T05:05:00Z"), None, 12, &Utc);
        let late = plan(&s, utc("2026-11-22T05:09:30Z"), None, 12, &Utc);
        assert_eq!(on_time, late);
        assert_eq!(
            on_time.windows,
            vec![Window {
                start: utc("2026-11-22T05:00:00Z"),
                end: utc("2026-11-22T05:05:00Z")
            }]
        );
    }

    #[test]
    fn missed_windows_are_caught_up_in_order_and_bounded() {
        let s = Schedule::parse("*/5 * * * *").unwrap();
        let now = utc("2026-11-22T05:21:00Z");
        let done = Some(utc("2026-11-22T05:00:00Z"));
        let p = plan(&s, now, done, 12, &Utc);
        let starts: Vec<_> = p.windows.iter().map(|w| w.start.minute()).collect();
        assert_eq!(starts, vec![0, 5, 10, 15]);
        assert!(p.windows.windows(2).all(|w| w[0].end == w[1].start));
        assert!(!p.dropped);
        let p = plan(&s, now, done, 2, &Utc);
        let starts: Vec<_> = p.windows.iter().map(|w| w.start.minute()).collect();
        assert_eq!(starts, vec![10, 15]);
        assert!(p.dropped);
        // Done already: nothing to do.
        let p = plan(&s, now, Some(utc("2026-11-22T05:20:00Z")), 12, &Utc);
        assert!(p.windows.is_empty());
        // A state that is not on the schedule (the schedule changed): start there.
        let p = plan(&s, now, Some(utc("2026-11-22T05:12:00Z")), 12, &Utc);
        assert_eq!(p.windows[0].start, utc("2026-11-22T05:12:00Z"));
        assert_eq!(p.windows[0].end.minute(), 15);
    }

    #[test]
    fn consecutive_plans_tile_the_day() {
        let s = Schedule::parse("*/7 * * * *").unwrap();
        let mut done = None;
        let mut covered = Vec::new();
        let mut now = utc("2026-11-22T00:00:00Z");
        while now < utc("2026-11-23T00:00:00Z") {
            for w in plan(&s, now, done, 100, &Utc).windows {
                covered.push(w);
                done = Some(w.end);
            }
            now += chrono::Duration::seconds(113);
        }
        assert!(covered.windows(2).all(|w| w[0].end == w[1].start));
        assert!(covered.iter().all(|w| w.start < w.end));
        // */7 fires at minute 0 of every hour too: windows never cross a fire.
        assert!(covered.iter().all(|w| w.end.second() == 0));
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
        let five = std::time::Duration::from_secs(5);
        let end = utc("2026-11-22T05:00:00Z");
        assert_eq!(
            settle_wait(end, five, utc("2026-11-22T05:00:01.5Z")),
            Some(std::time::Duration::from_millis(3500))
        );
        assert_eq!(settle_wait(end, five, utc("2026-11-22T05:00:05Z")), None);
        assert_eq!(settle_wait(end, five, utc("2026-11-22T05:03:00Z")), None);
        assert_eq!(settle_wait(end, std::time::Duration::ZERO, end), None);
        // Beyond what a date can hold: an error, not an overflow panic.
        let e = parse_time("-200000000y", now).unwrap_err();
        assert!(e.contains("too far"), "{e}");
        assert!(parse_time("+200000000y", now).is_err());
        let _ = now.hour();
    }
}
