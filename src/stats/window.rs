//! Windows: which `[start, end)` intervals a run computes, from the crontab schedule
//! ([`crate::schedule`]): the latest one, the missed ones to catch up, and how long a run
//! waits for the last records of a window to arrive.

use crate::schedule::Schedule;
use crate::time::Window;
use chrono::{DateTime, TimeZone, Utc};

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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Timelike;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
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
    fn a_run_settles_until_the_window_end_plus_settle() {
        let five = std::time::Duration::from_secs(5);
        let end = utc("2026-11-22T05:00:00Z");
        assert_eq!(
            settle_wait(end, five, utc("2026-11-22T05:00:01.5Z")),
            Some(std::time::Duration::from_millis(3500))
        );
        assert_eq!(settle_wait(end, five, utc("2026-11-22T05:00:05Z")), None);
        assert_eq!(settle_wait(end, five, utc("2026-11-22T05:03:00Z")), None);
        assert_eq!(settle_wait(end, std::time::Duration::ZERO, end), None);
    }
}
