//! Crontab schedules: when `iotitan-stats` runs, and so where its windows end.
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
//! Fire times are computed in the local time zone, like cron does. Part of the foundation:
//! the config validates `stats.schedule` with it.

use chrono::{DateTime, TimeZone, Utc};
use std::collections::BTreeSet;
use std::str::FromStr;

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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, Weekday};

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
}
