//! The alert state machine: readings and time in, transitions out. No I/O, no clock of its
//! own: every method takes `now`, so tests drive it on virtual time.
//!
//! Per series and [`Kind`] there are two states:
//! - the *condition*: what the rules say now, after `hold` (the value must stay out of range
//!   that long) and `hysteresis` (it clears only once back inside by that margin);
//! - the *published* state: what the broker holds. It follows the condition, but at most one
//!   transition per `min_interval` (flapping guard); when the interval is over, whatever the
//!   condition is then gets published, so the final state always reaches the broker.
//!
//! Which rule watches what: a series is matched against every rule in config order, and for
//! each kind the first matching rule that checks that kind owns it. So a broad `stale_after`
//! rule and a `high` rule for the same sensors work together, while two `high` rules on one
//! series cannot fight over its `_alert_hi` topic. Alert outputs are never inputs, and
//! statistics (`…_mean`) are watched only by rules whose filter names them explicitly.
//!
//! Timers (hold, stale, flapping) live in one min-heap with lazy deletion: each alert arms at
//! most one entry that matters, readings never touch the heap, and the daemon sleeps until
//! [`Machine::next_deadline`].

use super::{Kind, split_output};
use crate::config::{AlertsConfig, RuleConfig};
use crate::statistic::is_output as is_stats_output;
use crate::topic::TopicFilter;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

/// One change of a published alert state.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// The series (output topic = series + [`Kind::suffix`]).
    pub series: String,
    /// Index of the owning rule in `alerts.rule`.
    pub rule: usize,
    /// Which alert.
    pub kind: Kind,
    /// The new state.
    pub on: bool,
    /// The latest reading of the series, if any arrived.
    pub value: Option<f64>,
    /// The limit that was crossed: `high`/`low` going on, the clearing point (`high -
    /// hysteresis`, `low + hysteresis`) going off, `stale_after` in seconds for stale.
    pub threshold: f64,
    /// When the condition behind this transition began (the first reading out of range, the
    /// last reading before silence, the reading back in range).
    pub since: Instant,
    /// When the transition was made (later than `since` by `hold` or the flapping guard).
    pub at: Instant,
}

#[cfg(test)]
impl Transition {
    /// A hand-made transition for tests of what consumes them.
    pub(crate) fn example(series: &str, kind: Kind, value: Option<f64>, threshold: f64) -> Self {
        let now = Instant::now();
        Transition {
            series: series.to_owned(),
            rule: 0,
            kind,
            on: true,
            value,
            threshold,
            since: now,
            at: now,
        }
    }
}

/// What [`Machine::observe`] did with a reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    /// A rule watches the series; its alerts were updated.
    Watched,
    /// No rule watches this series (or it is one of our outputs).
    Unwatched,
    /// A new series, refused because `max_series` are tracked already.
    Refused,
}

/// The alerts of every watched series.
#[derive(Debug)]
pub struct Machine {
    rules: Vec<RuleConfig>,
    min_interval: Duration,
    max_series: usize,
    series: Vec<Series>,
    index: HashMap<String, usize>,
    timers: BinaryHeap<Reverse<(Instant, usize, Kind)>>,
}

#[derive(Debug)]
struct Series {
    name: String,
    last_value: Option<f64>,
    last_seen: Instant,
    alerts: [Option<Alert>; 3],
}

#[derive(Debug)]
struct Alert {
    rule: usize,
    /// What the rule says now.
    condition: bool,
    /// When `condition` last changed (or the alert was created).
    since: Instant,
    /// What the broker holds.
    published: bool,
    /// When we last published a transition: the flapping guard counts from here.
    last_publish: Option<Instant>,
    /// Out of range since, while waiting for `hold` (hi and lo only).
    pending: Option<Instant>,
    /// The heap entry that counts; others for this alert are stale and skipped.
    armed: Option<Instant>,
}

impl Alert {
    fn new(rule: usize, now: Instant) -> Self {
        Alert {
            rule,
            condition: false,
            since: now,
            published: false,
            last_publish: None,
            pending: None,
            armed: None,
        }
    }

    fn set_condition(&mut self, on: bool, since: Instant) {
        if self.condition != on {
            self.condition = on;
            self.since = since;
        }
    }
}

impl Machine {
    /// A machine for `cfg`'s rules, started at `now`.
    ///
    /// Series named exactly (no wildcard) are known before any reading arrives, so their stale
    /// timers start now: a sensor that never speaks after a restart is still reported.
    pub fn new(cfg: &AlertsConfig, now: Instant) -> Self {
        let mut m = Machine {
            rules: cfg.rule.clone(),
            min_interval: cfg.min_interval.get(),
            max_series: cfg.max_series,
            series: Vec::new(),
            index: HashMap::new(),
            timers: BinaryHeap::new(),
        };
        let exact: Vec<String> = m
            .rules
            .iter()
            .flat_map(|r| r.topics.iter())
            .filter(|f| !f.has_wildcards())
            .map(|f| f.as_str().to_owned())
            .collect();
        for name in exact {
            // A named series no rule can own (an alert output) is simply not tracked.
            let _ = m.series_index(&name, now);
        }
        m
    }

    /// The rules, as indexed by [`Transition::rule`].
    pub fn rules(&self) -> &[RuleConfig] {
        &self.rules
    }

    /// How many series are tracked.
    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    /// How many alerts the broker shows as on (as far as we published or restored).
    pub fn active(&self) -> usize {
        self.series
            .iter()
            .flat_map(|s| s.alerts.iter().flatten())
            .filter(|a| a.published)
            .count()
    }

    /// A reading of `series` at `now`; transitions it causes are appended to `out`.
    pub fn observe(
        &mut self,
        series: &str,
        value: f64,
        now: Instant,
        out: &mut Vec<Transition>,
    ) -> Observed {
        let idx = match self.series_index(series, now) {
            Ok(i) => i,
            Err(o) => return o,
        };
        let s = &mut self.series[idx];
        s.last_seen = now;
        s.last_value = Some(value);
        for kind in Kind::ALL {
            let Some(a) = s.alerts[kind.index()].as_mut() else {
                continue;
            };
            let rule = &self.rules[a.rule];
            match kind {
                Kind::Stale => a.set_condition(false, now),
                Kind::Hi | Kind::Lo => {
                    let (limit, clear) = limits(rule, kind);
                    let (out_of_range, back_inside) = if kind == Kind::Hi {
                        (value > limit, value <= clear)
                    } else {
                        (value < limit, value >= clear)
                    };
                    if a.condition {
                        if back_inside {
                            a.set_condition(false, now);
                        }
                    } else if out_of_range {
                        a.pending.get_or_insert(now);
                    } else {
                        a.pending = None;
                    }
                }
            }
        }
        for kind in Kind::ALL {
            self.update(idx, kind, now, out);
        }
        Observed::Watched
    }

    /// An alert state read back from the broker (a retained output) at startup or after a
    /// reconnect. It is taken as both condition and published state, unless the series has
    /// had a reading or we published this alert since: then our own state is newer. Returns
    /// whether it was taken.
    pub fn restore(&mut self, series: &str, kind: Kind, on: bool, now: Instant) -> bool {
        let Ok(idx) = self.series_index(series, now) else {
            return false;
        };
        let s = &mut self.series[idx];
        let fresh = s.last_value.is_none();
        let Some(a) = s.alerts[kind.index()].as_mut() else {
            return false;
        };
        if !fresh || a.last_publish.is_some() {
            return false;
        }
        a.condition = on;
        a.published = on;
        a.since = now;
        a.pending = None;
        true
    }

    /// Fire every timer due at `now`: hold periods that ended, sensors gone stale, transitions
    /// the flapping guard held back.
    pub fn tick(&mut self, now: Instant, out: &mut Vec<Transition>) {
        while let Some(&Reverse((at, idx, kind))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(a) = self.series[idx].alerts[kind.index()].as_mut() else {
                continue;
            };
            if a.armed != Some(at) {
                continue; // superseded by an earlier entry that already ran
            }
            a.armed = None;
            self.update(idx, kind, now, out);
        }
    }

    /// When [`Machine::tick`] next has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, _, _))| *at)
    }

    /// The index of `name`, creating the series if a rule watches it.
    fn series_index(&mut self, name: &str, now: Instant) -> Result<usize, Observed> {
        if let Some(&i) = self.index.get(name) {
            return Ok(i);
        }
        let owners = self.owners(name);
        if owners.iter().all(Option::is_none) {
            return Err(Observed::Unwatched);
        }
        if self.series.len() >= self.max_series {
            return Err(Observed::Refused);
        }
        let idx = self.series.len();
        self.series.push(Series {
            name: name.to_owned(),
            last_value: None,
            last_seen: now,
            alerts: owners.map(|o| o.map(|rule| Alert::new(rule, now))),
        });
        self.index.insert(name.to_owned(), idx);
        self.update(idx, Kind::Stale, now, &mut Vec::new());
        Ok(idx)
    }

    /// For each kind, the first rule that watches `series` for it.
    fn owners(&self, series: &str) -> [Option<usize>; 3] {
        owners(&self.rules, series)
    }

    /// Apply the passing of time to one alert, publish if the guard allows, and arm the next
    /// timer it needs.
    fn update(&mut self, idx: usize, kind: Kind, now: Instant, out: &mut Vec<Transition>) {
        let s = &mut self.series[idx];
        let Some(a) = s.alerts[kind.index()].as_mut() else {
            return;
        };
        let rule = &self.rules[a.rule];
        let mut next: Option<Instant> = None;
        let mut arm = |at: Instant| next = Some(next.map_or(at, |n| n.min(at)));

        // Conditions that become true by time alone.
        match kind {
            Kind::Stale => {
                if let Some(after) = rule.stale_after {
                    let due = s.last_seen + after.get();
                    if a.condition {
                        // Already on: only a reading clears it.
                    } else if now >= due {
                        a.set_condition(true, s.last_seen);
                    } else {
                        arm(due);
                    }
                }
            }
            Kind::Hi | Kind::Lo => {
                if let (false, Some(p)) = (a.condition, a.pending) {
                    let due = p + rule.hold.get();
                    if now >= due {
                        a.set_condition(true, p);
                        a.pending = None;
                    } else {
                        arm(due);
                    }
                }
            }
        }

        // The flapping guard between the condition and the broker.
        if a.condition != a.published {
            let allowed = a.last_publish.map_or(now, |t| t + self.min_interval);
            if now >= allowed {
                a.published = a.condition;
                a.last_publish = Some(now);
                let threshold = threshold(rule, kind, a.condition);
                out.push(Transition {
                    series: s.name.clone(),
                    rule: a.rule,
                    kind,
                    on: a.condition,
                    value: s.last_value,
                    threshold,
                    since: a.since,
                    at: now,
                });
            } else {
                arm(allowed);
            }
        }

        if let Some(at) = next
            && a.armed.is_none_or(|armed| at < armed)
        {
            a.armed = Some(at);
            self.timers.push(Reverse((at, idx, kind)));
        }
    }
}

/// For each kind (in [`Kind::ALL`] order), the index of the first of `rules` that watches
/// `series` for it: the one rule that decides that alert. Public so that whoever announces
/// the alerts (Home Assistant discovery) names exactly the ones this machine publishes.
pub fn owners(rules: &[RuleConfig], series: &str) -> [Option<usize>; 3] {
    let mut owners = [None; 3];
    if split_output(series).is_some() {
        return owners;
    }
    let stats = is_stats_output(series);
    let matches = |f: &TopicFilter| f.matches(series) && (!stats || names_last_level(f));
    for (i, rule) in rules.iter().enumerate() {
        if !rule.topics.iter().any(matches) {
            continue;
        }
        for kind in Kind::ALL {
            if owners[kind.index()].is_none() && checks(rule, kind) {
                owners[kind.index()] = Some(i);
            }
        }
    }
    owners
}

/// Whether `rule` checks `kind`.
pub(super) fn checks(rule: &RuleConfig, kind: Kind) -> bool {
    match kind {
        Kind::Hi => rule.high.is_some(),
        Kind::Lo => rule.low.is_some(),
        Kind::Stale => rule.stale_after.is_some(),
    }
}

/// The limit that sets a range alert and the point where it clears again.
fn limits(rule: &RuleConfig, kind: Kind) -> (f64, f64) {
    match kind {
        Kind::Hi => {
            let high = rule.high.unwrap_or(f64::INFINITY);
            (high, high - rule.hysteresis)
        }
        _ => {
            let low = rule.low.unwrap_or(f64::NEG_INFINITY);
            (low, low + rule.hysteresis)
        }
    }
}

fn threshold(rule: &RuleConfig, kind: Kind, on: bool) -> f64 {
    match kind {
        Kind::Stale => rule.stale_after.map_or(0.0, |d| d.get().as_secs_f64()),
        _ => {
            let (limit, clear) = limits(rule, kind);
            if on { limit } else { clear }
        }
    }
}

/// Whether the filter spells out its last level (so a statistic it matches was meant).
fn names_last_level(f: &TopicFilter) -> bool {
    !matches!(f.as_str().rsplit('/').next(), Some("+" | "#"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    /// A machine for `rules` (TOML of `[[alerts.rule]]` tables) and a virtual clock.
    struct T {
        m: Machine,
        t0: Instant,
        now: Instant,
    }

    fn machine(toml: &str) -> T {
        let cfg = Config::parse(toml, "test").unwrap();
        let t0 = Instant::now();
        T {
            m: Machine::new(&cfg.alerts, t0),
            t0,
            now: t0,
        }
    }

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    impl T {
        /// Move to `t` seconds after start, firing timers on the way; returns transitions
        /// as `(series, kind, on)`.
        fn at(&mut self, t: f64) -> Vec<(String, Kind, bool)> {
            self.now = self.t0 + secs(t);
            let mut out = Vec::new();
            self.m.tick(self.now, &mut out);
            short(out)
        }

        /// A reading at `t` seconds (timers due before it fire first).
        fn read(&mut self, t: f64, series: &str, v: f64) -> Vec<(String, Kind, bool)> {
            let mut all = self.at(t);
            let mut out = Vec::new();
            self.m.observe(series, v, self.now, &mut out);
            all.extend(short(out));
            all
        }

        fn full(&mut self, t: f64, series: &str, v: f64) -> Vec<Transition> {
            self.now = self.t0 + secs(t);
            let mut out = Vec::new();
            self.m.observe(series, v, self.now, &mut out);
            out
        }
    }

    fn short(out: Vec<Transition>) -> Vec<(String, Kind, bool)> {
        out.into_iter().map(|t| (t.series, t.kind, t.on)).collect()
    }

    fn tr(series: &str, kind: Kind, on: bool) -> Vec<(String, Kind, bool)> {
        vec![(series.to_owned(), kind, on)]
    }

    const NONE: Vec<(String, Kind, bool)> = Vec::new();

    #[test]
    fn high_and_low_thresholds() {
        let mut t = machine("[[alerts.rule]]\ntopics = \"s/#\"\nlow = 10\nhigh = 30\n");
        assert_eq!(t.read(0.0, "s/a", 20.0), NONE);
        assert_eq!(t.read(1.0, "s/a", 30.0), NONE, "at the limit is inside");
        assert_eq!(t.read(2.0, "s/a", 30.1), tr("s/a", Kind::Hi, true));
        assert_eq!(t.read(3.0, "s/a", 35.0), NONE, "transitions only");
        assert_eq!(t.read(4.0, "s/a", 30.0), tr("s/a", Kind::Hi, false));
        assert_eq!(t.read(5.0, "s/a", 9.0), tr("s/a", Kind::Lo, true));
        assert_eq!(t.read(6.0, "s/a", 10.0), tr("s/a", Kind::Lo, false));
        // Straight from low to high: both change on one reading.
        t.read(7.0, "s/a", 0.0);
        assert_eq!(
            t.read(8.0, "s/a", 99.0),
            vec![
                ("s/a".into(), Kind::Hi, true),
                ("s/a".into(), Kind::Lo, false)
            ]
        );
        // Series are independent.
        assert_eq!(t.read(9.0, "s/b", 99.0), tr("s/b", Kind::Hi, true));
        assert_eq!(t.m.active(), 2);
    }

    #[test]
    fn transitions_carry_value_threshold_and_times() {
        let mut t = machine(
            "[[alerts.rule]]\nname = \"r\"\ntopics = \"s\"\nhigh = 30\nhysteresis = 2\nhold = \"10s\"\n",
        );
        assert!(t.full(0.0, "s", 31.0).is_empty());
        assert!(t.full(5.0, "s", 32.0).is_empty());
        let on = t.full(10.0, "s", 33.0);
        assert_eq!(on.len(), 1);
        assert_eq!(on[0].value, Some(33.0));
        assert_eq!(on[0].threshold, 30.0);
        assert_eq!(on[0].since, t.t0, "since the first reading out of range");
        assert_eq!(on[0].at, t.t0 + secs(10.0));
        assert_eq!(on[0].rule, 0);
        let off = t.full(20.0, "s", 27.5);
        assert_eq!((off[0].on, off[0].threshold), (false, 28.0));
        assert_eq!(off[0].since, t.t0 + secs(20.0));
    }

    #[test]
    fn hysteresis_band() {
        let mut t =
            machine("[[alerts.rule]]\ntopics = \"s\"\nlow = 10\nhigh = 30\nhysteresis = 2\n");
        assert_eq!(t.read(0.0, "s", 31.0), tr("s", Kind::Hi, true));
        // Inside the band: still on.
        assert_eq!(t.read(1.0, "s", 29.0), NONE);
        assert_eq!(t.read(2.0, "s", 28.01), NONE);
        assert_eq!(t.read(3.0, "s", 30.5), NONE, "no second on");
        assert_eq!(t.read(4.0, "s", 28.0), tr("s", Kind::Hi, false));
        // Back into the band from inside does not set it again: the limit does.
        assert_eq!(t.read(5.0, "s", 29.5), NONE);
        assert_eq!(t.read(6.0, "s", 30.01), tr("s", Kind::Hi, true));
        // The same for low.
        t.read(7.0, "s", 20.0);
        assert_eq!(t.read(8.0, "s", 9.0), tr("s", Kind::Lo, true));
        assert_eq!(t.read(9.0, "s", 11.9), NONE);
        assert_eq!(t.read(10.0, "s", 12.0), tr("s", Kind::Lo, false));
    }

    #[test]
    fn hold_needs_the_value_out_of_range_for_that_long() {
        let mut t = machine("[[alerts.rule]]\ntopics = \"s\"\nhigh = 30\nhold = \"30s\"\n");
        assert_eq!(t.read(0.0, "s", 31.0), NONE);
        assert_eq!(
            t.read(20.0, "s", 29.0),
            NONE,
            "back inside: the hold restarts"
        );
        assert_eq!(t.at(40.0), NONE);
        assert_eq!(t.read(50.0, "s", 35.0), NONE);
        assert_eq!(t.read(60.0, "s", 36.0), NONE);
        assert_eq!(t.m.next_deadline(), Some(t.t0 + secs(80.0)));
        // No reading needed: the last value is still out of range when the hold ends.
        assert_eq!(t.at(79.9), NONE);
        assert_eq!(t.at(80.0), tr("s", Kind::Hi, true));
        // Going off is immediate.
        assert_eq!(t.read(81.0, "s", 20.0), tr("s", Kind::Hi, false));
        // A reading that ends the hold is on time too.
        t.read(100.0, "s", 31.0);
        assert_eq!(t.read(130.0, "s", 31.0), tr("s", Kind::Hi, true));
    }

    #[test]
    fn stale_after_silence_and_cleared_by_the_next_reading() {
        let mut t = machine("[[alerts.rule]]\ntopics = \"s/+\"\nstale_after = \"1m\"\n");
        assert_eq!(t.read(0.0, "s/a", 1.0), NONE);
        assert_eq!(t.read(50.0, "s/a", 1.0), NONE);
        assert_eq!(t.at(109.0), NONE, "the timer moved with the reading");
        assert_eq!(t.at(110.0), tr("s/a", Kind::Stale, true));
        assert_eq!(t.at(500.0), NONE, "announced once");
        assert_eq!(t.read(600.0, "s/a", 1.0), tr("s/a", Kind::Stale, false));
        assert_eq!(t.at(660.0), tr("s/a", Kind::Stale, true));
    }

    #[test]
    fn stale_timers_of_named_series_start_at_startup() {
        let mut t = machine(
            "[[alerts.rule]]\ntopics = [\"s/a\", \"w/+\"]\nstale_after = \"10s\"\nhigh = 5\n",
        );
        assert_eq!(t.m.series_count(), 1, "only the named series is known");
        assert_eq!(t.m.next_deadline(), Some(t.t0 + secs(10.0)));
        let mut out = Vec::new();
        t.m.tick(t.t0 + secs(10.0), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(
            (out[0].kind, out[0].on, out[0].value),
            (Kind::Stale, true, None)
        );
        assert_eq!(out[0].since, t.t0);
        assert_eq!(out[0].threshold, 10.0);
    }

    #[test]
    fn flapping_guard_limits_transitions_and_publishes_the_final_state() {
        let mut t = machine(
            "[alerts]\nmin_interval = \"1m\"\n[[alerts.rule]]\ntopics = \"s\"\nhigh = 30\n",
        );
        assert_eq!(t.read(0.0, "s", 31.0), tr("s", Kind::Hi, true));
        assert_eq!(t.read(1.0, "s", 20.0), NONE, "held back");
        assert_eq!(t.read(2.0, "s", 31.0), NONE);
        assert_eq!(t.read(3.0, "s", 20.0), NONE);
        assert_eq!(t.m.next_deadline(), Some(t.t0 + secs(60.0)));
        assert_eq!(t.at(60.0), tr("s", Kind::Hi, false), "the final state");
        // Flapping that ends where it started publishes nothing.
        assert_eq!(t.read(130.0, "s", 31.0), tr("s", Kind::Hi, true));
        assert_eq!(t.read(131.0, "s", 20.0), NONE);
        assert_eq!(t.read(132.0, "s", 31.0), NONE);
        assert_eq!(t.at(190.0), NONE);
        assert_eq!(t.m.active(), 1);
        // After a quiet interval, a change goes out at once.
        assert_eq!(t.read(300.0, "s", 20.0), tr("s", Kind::Hi, false));
    }

    #[test]
    fn restored_alerts_are_neither_repeated_nor_forgotten() {
        let mut t = machine("[[alerts.rule]]\ntopics = \"s/+\"\nhigh = 30\nstale_after = \"1m\"\n");
        assert!(t.m.restore("s/a", Kind::Hi, true, t.now));
        assert!(t.m.restore("s/b", Kind::Stale, true, t.now));
        assert!(
            !t.m.restore("s/a", Kind::Lo, true, t.now),
            "no rule checks lo"
        );
        assert!(!t.m.restore("x/a", Kind::Hi, true, t.now), "unwatched");
        assert_eq!(t.m.active(), 2);
        // Still high after the restart: no second on.
        assert_eq!(t.read(1.0, "s/a", 35.0), NONE);
        // A later read-back (broker reconnect) does not override newer knowledge.
        assert!(!t.m.restore("s/a", Kind::Hi, false, t.now));
        assert_eq!(t.read(2.0, "s/a", 20.0), tr("s/a", Kind::Hi, false));
        // The stale sensor stays stale without a new announcement, and clears on a reading.
        assert_eq!(t.at(200.0), tr("s/a", Kind::Stale, true));
        assert_eq!(t.read(201.0, "s/b", 1.0), tr("s/b", Kind::Stale, false));
    }

    #[test]
    fn a_restored_alert_that_is_over_goes_off() {
        let mut t = machine("[[alerts.rule]]\ntopics = \"s\"\nlow = 5\n");
        assert!(t.m.restore("s", Kind::Lo, true, t.now));
        assert_eq!(t.read(1.0, "s", 6.0), tr("s", Kind::Lo, false));
    }

    #[test]
    fn restored_stale_series_do_not_restart_their_timer() {
        let mut t = machine("[[alerts.rule]]\ntopics = \"s\"\nstale_after = \"1m\"\n");
        assert!(t.m.restore("s", Kind::Stale, true, t.now));
        assert_eq!(t.at(120.0), NONE);
        assert_eq!(t.read(121.0, "s", 1.0), tr("s", Kind::Stale, false));
    }

    #[test]
    fn a_stale_alert_read_back_as_off_still_starts_its_timer() {
        let mut t = machine("[[alerts.rule]]\ntopics = \"s/+\"\nstale_after = \"1m\"\n");
        assert!(t.m.restore("s/a", Kind::Stale, false, t.now));
        assert_eq!(t.at(60.0), tr("s/a", Kind::Stale, true));
    }

    #[test]
    fn first_rule_per_kind_owns_a_series() {
        let mut t = machine(
            "[[alerts.rule]]\nname = \"all\"\ntopics = \"s/#\"\nstale_after = \"1m\"\n\
             [[alerts.rule]]\nname = \"hot\"\ntopics = \"s/t\"\nhigh = 30\n\
             [[alerts.rule]]\nname = \"hotter\"\ntopics = \"s/#\"\nhigh = 40\n",
        );
        let on = t.full(0.0, "s/t", 35.0);
        assert_eq!((on[0].kind, on[0].rule), (Kind::Hi, 1));
        assert!(t.full(1.0, "s/u", 35.0).is_empty());
        assert_eq!(t.full(2.0, "s/u", 45.0)[0].rule, 2);
        let mut out = Vec::new();
        t.m.tick(t.t0 + secs(100.0), &mut out);
        assert!(out.iter().all(|o| o.kind == Kind::Stale && o.rule == 0));
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn outputs_are_never_inputs_and_stats_only_when_named() {
        let mut t = machine(
            "[[alerts.rule]]\ntopics = \"s/#\"\nhigh = 1\n\
             [[alerts.rule]]\ntopics = \"m/+/t_mean\"\nhigh = 1\n",
        );
        let mut out = Vec::new();
        for s in ["s/a_alert_hi", "s/a_alert_stale", "s/a_mean", "s/a_p95"] {
            assert_eq!(
                t.m.observe(s, 5.0, t.now, &mut out),
                Observed::Unwatched,
                "{s}"
            );
        }
        assert_eq!(
            t.m.observe("m/a/t_mean", 5.0, t.now, &mut out),
            Observed::Watched
        );
        assert_eq!(t.m.observe("s/a", 5.0, t.now, &mut out), Observed::Watched);
        assert_eq!(out.len(), 2);
        assert_eq!(t.m.observe("x", 5.0, t.now, &mut out), Observed::Unwatched);
    }

    #[test]
    fn series_beyond_the_limit_are_refused() {
        let mut t =
            machine("[alerts]\nmax_series = 2\n[[alerts.rule]]\ntopics = \"s/+\"\nhigh = 1\n");
        let mut out = Vec::new();
        assert_eq!(t.m.observe("s/a", 0.0, t.now, &mut out), Observed::Watched);
        assert_eq!(t.m.observe("s/b", 0.0, t.now, &mut out), Observed::Watched);
        assert_eq!(t.m.observe("s/c", 0.0, t.now, &mut out), Observed::Refused);
        assert_eq!(t.m.observe("s/a", 2.0, t.now, &mut out), Observed::Watched);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn timers_stay_bounded_under_a_stream_of_readings() {
        let mut t = machine(
            "[alerts]\nmin_interval = \"10s\"\n[[alerts.rule]]\ntopics = \"s\"\nhigh = 30\nhold = \"5s\"\nstale_after = \"1m\"\n",
        );
        for i in 0..10_000 {
            let v = if i % 3 == 0 { 40.0 } else { 20.0 };
            t.read(f64::from(i) * 0.1, "s", v);
        }
        assert!(t.m.timers.len() < 10, "{} timers", t.m.timers.len());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// A step of a random scenario: a reading (series 0..3, value) or a pause, in ms.
        fn steps() -> impl Strategy<Value = Vec<(u64, Option<(usize, f64)>)>> {
            prop::collection::vec(
                (
                    0u64..3_000,
                    prop::option::weighted(0.8, (0usize..3, -10.0f64..60.0)),
                ),
                0..200,
            )
        }

        proptest! {
            /// Whatever happens: transitions of one alert alternate on/off starting with on,
            /// are at least `min_interval` apart, and once things are quiet the published
            /// state is the rule's verdict on the last value.
            #[test]
            fn transitions_alternate_are_spaced_and_end_right(steps in steps()) {
                let mut t = machine(
                    "[alerts]\nmin_interval = \"2s\"\n[[alerts.rule]]\ntopics = \"s/+\"\n\
                     low = 0\nhigh = 40\nhysteresis = 5\nhold = \"1s\"\nstale_after = \"4s\"\n",
                );
                let mut now = 0u64;
                let mut all = Vec::new();
                let mut last = HashMap::new();
                for (pause, reading) in steps {
                    now += pause;
                    let at = t.t0 + Duration::from_millis(now);
                    t.m.tick(at, &mut all);
                    if let Some((s, v)) = reading {
                        t.m.observe(&format!("s/{s}"), v, at, &mut all);
                        last.insert(s, v);
                    }
                }
                // Quiet for long enough that every timer has run, readings included.
                let end = t.t0 + Duration::from_millis(now + 60_000);
                t.m.tick(end, &mut all);
                let mut per: HashMap<(String, Kind), Vec<&Transition>> = HashMap::new();
                for tr in &all {
                    per.entry((tr.series.clone(), tr.kind)).or_default().push(tr);
                }
                for ((series, kind), trs) in &per {
                    for (i, tr) in trs.iter().enumerate() {
                        prop_assert_eq!(tr.on, i % 2 == 0, "{} {:?} alternates", series, kind);
                        if i > 0 {
                            prop_assert!(tr.at - trs[i - 1].at >= Duration::from_secs(2));
                        }
                        prop_assert!(tr.since <= tr.at);
                    }
                }
                // After a minute of silence every series read is stale, and its range alerts
                // show the verdict on its last value (inside the hysteresis band either is
                // right, depending on where it came from).
                for (s, v) in &last {
                    for kind in Kind::ALL {
                        let on = per
                            .get(&(format!("s/{s}"), kind))
                            .and_then(|trs| trs.last())
                            .is_some_and(|tr| tr.on);
                        let want = match kind {
                            Kind::Stale => Some(true),
                            Kind::Hi if *v > 40.0 => Some(true),
                            Kind::Hi if *v <= 35.0 => Some(false),
                            Kind::Lo if *v < 0.0 => Some(true),
                            Kind::Lo if *v >= 5.0 => Some(false),
                            _ => None,
                        };
                        if let Some(want) = want {
                            prop_assert_eq!(on, want, "s/{} {:?} last value {}", s, kind, v);
                        }
                    }
                }
            }
        }
    }
}
