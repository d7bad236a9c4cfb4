//! Named calendars (`[[calendar]]`): hours of the week in local time, such as an office's
//! `"Mon-Fri 07:00-20:00"`, and the spans of any range that fall inside them, across DST
//! changes. Energy statistics restricted to a calendar (`within=office`) count only those
//! spans; the rest of the range (`outside=office`) is the complement.
//!
//! An entry is `DAYS HH:MM-HH:MM`: days as `Mon`, a range `Mon-Fri` (wrapping, `Sat-Mon`) or a
//! list `Mon,Wed,Fri-Sat`; the end after the start, `24:00` for midnight. Local times that a
//! DST change skips mean the instant the skip ends (02:30 on a spring-forward night is 03:00);
//! times it repeats mean their first instant.

use crate::time::Zone;
use chrono::{Datelike, Days, LocalResult, NaiveDate, NaiveDateTime, NaiveTime};

/// One entry: days of the week (bit 0 Monday) and minutes of the day `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hours {
    days: u8,
    start: u32,
    end: u32,
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn day(s: &str) -> Result<u32, String> {
    let lower = s.to_ascii_lowercase();
    DAYS.iter()
        .position(|d| *d == lower)
        .map(|i| i as u32)
        .ok_or_else(|| format!("{s:?} is not a day (Mon, Tue, Wed, Thu, Fri, Sat, Sun)"))
}

fn minutes(s: &str) -> Result<u32, String> {
    let bad = || format!("{s:?} is not a time of day (HH:MM, 00:00 to 24:00)");
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if m > 59 || h > 24 || (h == 24 && m > 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

impl std::str::FromStr for Hours {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (days_text, times) = s.trim().split_once(char::is_whitespace).ok_or_else(|| {
            format!("{s:?}: expected days and hours, like \"Mon-Fri 07:00-20:00\"")
        })?;
        let mut days = 0u8;
        for part in days_text.split(',') {
            match part.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (day(a)?, day(b)?);
                    let mut d = a;
                    loop {
                        days |= 1 << d;
                        if d == b {
                            break;
                        }
                        d = (d + 1) % 7;
                    }
                }
                None => days |= 1 << day(part)?,
            }
        }
        let (start, end) = times
            .trim()
            .split_once('-')
            .ok_or_else(|| format!("{s:?}: expected hours like 07:00-20:00"))?;
        let (start, end) = (minutes(start)?, minutes(end)?);
        if end <= start {
            return Err(format!(
                "{s:?}: the hours end before they start (split a night into two entries)"
            ));
        }
        Ok(Hours { days, start, end })
    }
}

/// A named calendar: the union of its entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calendar {
    /// Its name, as `within=` and `outside=` refer to it.
    pub name: String,
    hours: Vec<Hours>,
}

/// The first instant of a local time, or the end of the DST gap that skips it.
fn instant(zone: &impl Zone, local: NaiveDateTime) -> Option<i64> {
    for step in 0..=180 {
        let t = local + chrono::Duration::minutes(step);
        match zone.resolve(&t) {
            // In a gap, the first local minute after it: where the gap ends.
            LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => {
                return Some(t.timestamp_micros());
            }
            LocalResult::None => {}
        }
    }
    None
}

impl Calendar {
    /// A calendar of `hours`.
    pub fn new(name: impl Into<String>, hours: Vec<Hours>) -> Self {
        Calendar {
            name: name.into(),
            hours,
        }
    }

    /// The spans of `[from, until)` (µs) inside the calendar's hours in `zone`: sorted,
    /// disjoint, merged where they touch.
    pub fn spans(&self, zone: &impl Zone, from: i64, until: i64) -> Vec<(i64, i64)> {
        let (Some(a), Some(b)) = (
            chrono::DateTime::from_timestamp_micros(from),
            chrono::DateTime::from_timestamp_micros(until),
        ) else {
            return Vec::new();
        };
        if from >= until {
            return Vec::new();
        }
        let first = zone.local(a).date() - Days::new(1);
        let last = zone.local(b).date() + Days::new(1);
        let mut spans: Vec<(i64, i64)> = Vec::new();
        let mut date: NaiveDate = first;
        while date <= last {
            let weekday = date.weekday().num_days_from_monday();
            for h in &self.hours {
                if h.days & (1 << weekday) == 0 {
                    continue;
                }
                let at = |m: u32| {
                    let local = if m == 24 * 60 {
                        (date + Days::new(1)).and_time(NaiveTime::MIN)
                    } else {
                        date.and_time(NaiveTime::from_hms_opt(m / 60, m % 60, 0)?)
                    };
                    instant(zone, local)
                };
                if let (Some(s), Some(e)) = (at(h.start), at(h.end)) {
                    let (s, e) = (s.max(from), e.min(until));
                    if s < e {
                        spans.push((s, e));
                    }
                }
            }
            date = date + Days::new(1);
        }
        spans.sort_unstable();
        let mut merged: Vec<(i64, i64)> = Vec::with_capacity(spans.len());
        for (s, e) in spans {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        merged
    }

    /// The spans of `[from, until)` outside the calendar's hours.
    pub fn outside(&self, zone: &impl Zone, from: i64, until: i64) -> Vec<(i64, i64)> {
        complement(&self.spans(zone, from, until), from, until)
    }
}

/// The parts of `[from, until)` not in `spans` (sorted, disjoint, inside it).
pub fn complement(spans: &[(i64, i64)], from: i64, until: i64) -> Vec<(i64, i64)> {
    let mut out = Vec::with_capacity(spans.len() + 1);
    let mut at = from;
    for &(s, e) in spans {
        if s > at {
            out.push((at, s));
        }
        at = at.max(e);
    }
    if at < until {
        out.push((at, until));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::tests::Cet;
    use chrono::{DateTime, Utc};
    use proptest::prelude::*;

    fn utc(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s)
            .unwrap()
            .with_timezone(&Utc)
            .timestamp_micros()
    }

    fn office() -> Calendar {
        Calendar::new("office", vec!["Mon-Fri 07:00-20:00".parse().unwrap()])
    }

    #[test]
    fn entries_parse_or_say_why() {
        let h: Hours = "Mon-Fri 07:00-20:00".parse().unwrap();
        assert_eq!((h.days, h.start, h.end), (0b1_1111, 420, 1200));
        let h: Hours = "sat-mon 00:00-24:00".parse().unwrap();
        assert_eq!(h.days, 0b110_0001);
        let h: Hours = "Mon,Wed,Fri-Sat 08:30-12:00".parse().unwrap();
        assert_eq!(h.days, 0b011_0101);
        for bad in [
            "",
            "Mon",
            "Mon-Fri",
            "Mo-Fr 07:00-20:00",
            "Mon 7:00-20:00",
            "Mon 20:00-07:00",
            "Mon 07:00-07:00",
            "Mon 07:00-24:01",
            "Mon 07:60-08:00",
            "Mon 07:00",
        ] {
            assert!(bad.parse::<Hours>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn a_week_has_five_office_days() {
        // Monday 2026-11-23 to Monday 2026-11-30, in UTC.
        let spans = office().spans(
            &Utc,
            utc("2026-11-23T00:00:00Z"),
            utc("2026-11-30T00:00:00Z"),
        );
        assert_eq!(spans.len(), 5);
        assert_eq!(
            spans[0],
            (utc("2026-11-23T07:00:00Z"), utc("2026-11-23T20:00:00Z"))
        );
        let total: i64 = spans.iter().map(|(a, b)| b - a).sum();
        assert_eq!(total, 5 * 13 * 3_600_000_000);
    }

    #[test]
    fn hours_follow_local_time_across_dst() {
        // CET: Friday 2026-10-23 07:00 is 05:00Z (CEST); Monday 2026-10-26 07:00 is 06:00Z.
        let spans = office().spans(
            &Cet,
            utc("2026-10-23T00:00:00Z"),
            utc("2026-10-27T00:00:00Z"),
        );
        assert_eq!(
            spans,
            vec![
                (utc("2026-10-23T05:00:00Z"), utc("2026-10-23T18:00:00Z")),
                (utc("2026-10-26T06:00:00Z"), utc("2026-10-26T19:00:00Z")),
            ]
        );
        // A night entry over the spring-forward gap: 01:00-03:00 local lasts one hour.
        let night = Calendar::new("night", vec!["Sun 01:00-03:00".parse().unwrap()]);
        let spans = night.spans(
            &Cet,
            utc("2026-03-28T00:00:00Z"),
            utc("2026-03-30T00:00:00Z"),
        );
        assert_eq!(
            spans,
            vec![(utc("2026-03-29T00:00:00Z"), utc("2026-03-29T01:00:00Z"))]
        );
    }

    #[test]
    fn a_range_is_clipped_and_the_outside_is_the_rest() {
        let (a, b) = (utc("2026-11-23T12:00:00Z"), utc("2026-11-24T08:00:00Z"));
        let inside = office().spans(&Utc, a, b);
        assert_eq!(
            inside,
            vec![
                (a, utc("2026-11-23T20:00:00Z")),
                (utc("2026-11-24T07:00:00Z"), b)
            ]
        );
        assert_eq!(
            office().outside(&Utc, a, b),
            vec![(utc("2026-11-23T20:00:00Z"), utc("2026-11-24T07:00:00Z"))]
        );
    }

    proptest! {
        /// Inside and outside partition any range.
        #[test]
        fn inside_and_outside_partition(from in 0i64..(400 * 86_400), len in 0i64..(20 * 86_400)) {
            let (from, until) = (
                utc("2026-01-01T00:00:00Z") + from * 1_000_000,
                utc("2026-01-01T00:00:00Z") + (from + len) * 1_000_000,
            );
            let cal = Calendar::new("c", vec![
                "Mon-Fri 07:00-20:00".parse().unwrap(),
                "Sat 09:00-13:00".parse().unwrap(),
                "Fri 19:00-24:00".parse().unwrap(),
            ]);
            let inside = cal.spans(&Cet, from, until);
            let outside = cal.outside(&Cet, from, until);
            let total: i64 = inside.iter().chain(&outside).map(|(a, b)| b - a).sum();
            prop_assert_eq!(total, until - from);
            for w in inside.windows(2) {
                prop_assert!(w[0].1 < w[1].0);
            }
        }
    }
}
