//! Statistics of energy, which treat readings as a curve in time rather than as samples:
//! the increase of a cumulative [`Meter`] (kWh from Tasmota's `ENERGY.Total`, Wh from a
//! Shelly's `aenergy.total`), and the integral of a gauge's [`Curve`] (Wh from watts) with the
//! time-weighted mean that follows from it; [`Totals`] keeps both for one series.
//!
//! They read one series in time order and count only what falls in their spans: the window,
//! or the parts of it inside a calendar's hours ([`crate::calendar`]). They are given the
//! readings before the window too (a lookback), which only set where the curve stands when the
//! window opens, and the first reading after it, which closes the last interval: so windows
//! side by side add up exactly to the range they cover, and no step or slice of an interval is
//! lost or counted twice at a boundary.
//!
//! Defined answers for bad input (documented in docs/stats.md): a value that is not finite is
//! skipped; a reading older than the one before it (out-of-order syslog lines) is skipped, as
//! its interval would run backwards; two readings at the same instant make an interval of no
//! length.

/// Spans of time, `[start, end)` in microseconds since the epoch, sorted and disjoint.
pub type Spans = [(i64, i64)];

pub use crate::statistic::MICROS_PER_HOUR;

/// A cumulative meter's baseline: what each reading adds to its increase.
///
/// A baseline `m` follows the readings: a reading `v ≥ m` adds `v − m`; one under `0.9·m` is a
/// reset (the device restarted from zero, Home Assistant's rule for `total_increasing`) and
/// adds `v`; a dip of less than 10 % is jitter and adds nothing, keeping `m`. The first
/// reading only sets `m`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Meter {
    baseline: Option<f64>,
    last: Option<i64>,
}

impl Meter {
    /// What the reading `v` at `t` (µs) adds; `None` for the first, and for one skipped
    /// (not finite, or older than the one before).
    pub fn step(&mut self, t: i64, v: f64) -> Option<f64> {
        if !v.is_finite() || self.last.is_some_and(|l| t < l) {
            return None;
        }
        self.last = Some(t);
        let Some(m) = self.baseline else {
            self.baseline = Some(v);
            return None;
        };
        Some(if v >= m {
            self.baseline = Some(v);
            v - m
        } else if v < 0.9 * m {
            self.baseline = Some(v);
            v
        } else {
            0.0
        })
    }
}

/// A gauge's curve: the straight line from each reading to the next, unless they are more
/// than `max_gap` apart (a gap).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Curve {
    max_gap: i64,
    previous: Option<(i64, f64)>,
}

/// A piece of a curve: from `(t0, v0)` to `(t1, v1)`, `t0 < t1`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Piece {
    /// Where it starts: time (µs) and value.
    pub from: (i64, f64),
    /// Where it ends.
    pub to: (i64, f64),
}

impl Piece {
    /// The area under the piece between `s` and `e` (inside it), in value·µs.
    pub fn area(&self, s: i64, e: i64) -> f64 {
        let ((t0, v0), (t1, v1)) = (self.from, self.to);
        let slope = (v1 - v0) / (t1 - t0) as f64;
        let at = |t: i64| v0 + slope * (t - t0) as f64;
        (at(s) + at(e)) / 2.0 * (e - s) as f64
    }
}

impl Curve {
    /// A curve that does not bridge intervals over `max_gap` µs.
    pub fn new(max_gap: i64) -> Self {
        Curve {
            max_gap,
            previous: None,
        }
    }

    /// The piece the reading `v` at `t` (µs) closes, if any (none for the first reading, a
    /// gap, two readings at one instant, or one skipped: not finite, or older than the one
    /// before).
    pub fn piece(&mut self, t: i64, v: f64) -> Option<Piece> {
        if !v.is_finite() {
            return None;
        }
        let previous = self.previous;
        if previous.is_some_and(|(t0, _)| t < t0) {
            return None;
        }
        self.previous = Some((t, v));
        let (t0, v0) = previous?;
        (t > t0 && t - t0 <= self.max_gap).then_some(Piece {
            from: (t0, v0),
            to: (t, v),
        })
    }
}

/// Whether `t` lies in one of `spans`.
pub fn inside(spans: &Spans, t: i64) -> bool {
    let i = spans.partition_point(|&(_, e)| e <= t);
    spans.get(i).is_some_and(|&(s, _)| s <= t)
}

/// The parts of `[t0, t1)` inside `spans`, in order (found by a binary search, so a long
/// calendar costs nothing per piece).
pub fn overlaps(spans: &Spans, t0: i64, t1: i64) -> impl Iterator<Item = (i64, i64)> + '_ {
    let first = spans.partition_point(|&(_, e)| e <= t0);
    spans[first..]
        .iter()
        .take_while(move |&&(a, _)| a < t1)
        .map(move |&(a, b)| (a.max(t0), b.min(t1)))
        .filter(|(s, e)| s < e)
}

/// What a meter and a curve amount to over some time: the meter's growth, the area under the
/// curve and how long it ran.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Amounts {
    /// The meter's growth ([`Meter`]).
    pub increase: f64,
    /// The area under the curve, value·µs.
    pub area: f64,
    /// µs under the curve.
    pub covered: i64,
}

impl Amounts {
    /// An energy statistic of these amounts over time `counted` µs long; `None` for any other
    /// statistic, and for `twmean` and `coverage` without a curve or time.
    pub fn get(&self, stat: crate::statistic::Statistic, counted: i64) -> Option<f64> {
        use crate::statistic::Statistic;
        match stat {
            Statistic::Increase => Some(self.increase),
            Statistic::Integral => Some(self.area / MICROS_PER_HOUR),
            Statistic::Twmean => (self.covered > 0).then(|| self.area / self.covered as f64),
            Statistic::Coverage => (counted > 0).then(|| self.covered as f64 / counted as f64),
            _ => None,
        }
    }

    /// Add the amounts of another time (or another series).
    pub fn add(&mut self, other: Amounts) {
        self.increase += other.increase;
        self.area += other.area;
        self.covered += other.covered;
    }
}

/// One series' energy over spans, read in time order (readings outside the spans included:
/// they only move the meter and the curve): what it amounts to inside the spans.
#[derive(Debug, Clone, Copy)]
pub struct Totals {
    meter: Meter,
    curve: Curve,
    /// Inside the spans.
    pub amounts: Amounts,
}

impl Totals {
    /// Nothing yet, with intervals over `max_gap` µs left out.
    pub fn new(max_gap: i64) -> Self {
        Totals {
            meter: Meter::default(),
            curve: Curve::new(max_gap),
            amounts: Amounts::default(),
        }
    }

    /// A reading `v` at `t` (µs), counted in `spans`.
    pub fn push(&mut self, spans: &Spans, t: i64, v: f64) {
        if let Some(step) = self.meter.step(t, v)
            && inside(spans, t)
        {
            self.amounts.increase += step;
        }
        let Some(piece) = self.curve.piece(t, v) else {
            return;
        };
        for (s, e) in overlaps(spans, piece.from.0, piece.to.0) {
            self.amounts.area += piece.area(s, e);
            self.amounts.covered += e - s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::statistic::Statistic;
    use proptest::prelude::*;

    const H: i64 = 3_600_000_000;
    const MIN: i64 = 60_000_000;

    fn totals(spans: &Spans, readings: &[(i64, f64)], max_gap: i64) -> Totals {
        let mut t = Totals::new(max_gap);
        for &(time, v) in readings {
            t.push(spans, time, v);
        }
        t
    }

    fn increase(spans: &Spans, readings: &[(i64, f64)]) -> f64 {
        totals(spans, readings, H).amounts.increase
    }

    /// What the tests read of an integral: the totals, and the length of their spans.
    struct Integrated {
        t: Totals,
        counted: i64,
    }

    impl Integrated {
        fn value(&self) -> f64 {
            self.t.amounts.area / MICROS_PER_HOUR
        }
        fn covered_hours(&self) -> f64 {
            self.t.amounts.covered as f64 / MICROS_PER_HOUR
        }
        fn coverage(&self) -> f64 {
            self.t
                .amounts
                .get(Statistic::Coverage, self.counted)
                .unwrap_or(0.0)
        }
        fn twmean(&self) -> Option<f64> {
            self.t.amounts.get(Statistic::Twmean, self.counted)
        }
    }

    fn integral(spans: &Spans, readings: &[(i64, f64)], max_gap: i64) -> Integrated {
        Integrated {
            t: totals(spans, readings, max_gap),
            counted: spans.iter().map(|(a, b)| b - a).sum(),
        }
    }

    #[test]
    fn increase_follows_growth_resets_and_jitter() {
        let r = [
            (0, 100.0),
            (MIN, 110.0),     // +10
            (2 * MIN, 105.0), // jitter: 0, baseline stays 110
            (3 * MIN, 112.0), // +2
            (4 * MIN, 3.0),   // reset: +3
            (5 * MIN, 8.0),   // +5
        ];
        assert_eq!(increase(&[(0, H)], &r), 20.0);
        // The first reading inside the window sets nothing without a lookback: the step to it
        // is counted where it falls.
        assert_eq!(increase(&[(MIN, H)], &r), 20.0);
        assert_eq!(increase(&[(MIN + 1, H)], &r), 10.0);
    }

    #[test]
    fn bad_readings_are_skipped() {
        let r = [
            (0, 1.0),
            (MIN, f64::NAN),
            (2 * MIN, 2.0),
            (MIN, 50.0), // older than the one before
            (3 * MIN, 3.0),
        ];
        assert_eq!(increase(&[(0, H)], &r), 2.0);
        let i = integral(&[(0, H)], &r, H);
        // (1 + 2) / 2 for 2 minutes, then (2 + 3) / 2 for one: 5.5 W·min.
        assert!((i.value() - 5.5 / 60.0).abs() < 1e-12, "{}", i.value());
    }

    #[test]
    fn integral_is_the_trapezoid_clipped_to_the_window() {
        // 0 W at 0, 120 W at 60 min: a ramp; the window holds its second half.
        let r = [(0, 0.0), (60 * MIN, 120.0)];
        let i = integral(&[(30 * MIN, 90 * MIN)], &r, 2 * H);
        // (60 + 120) / 2 W for half an hour.
        assert!((i.value() - 45.0).abs() < 1e-12, "{}", i.value());
        assert!((i.coverage() - 0.5).abs() < 1e-12);
        assert_eq!(i.twmean(), Some(90.0));
    }

    #[test]
    fn a_gap_is_not_integrated() {
        let r = [
            (0, 100.0),
            (10 * MIN, 100.0),
            (40 * MIN, 100.0),
            (50 * MIN, 100.0),
        ];
        let i = integral(&[(0, H)], &r, 15 * MIN);
        assert!((i.value() - 100.0 * 20.0 / 60.0).abs() < 1e-9);
        assert!((i.covered_hours() - 20.0 / 60.0).abs() < 1e-12);
        assert_eq!(i.twmean(), Some(100.0));
        assert_eq!(integral(&[(0, H)], &[], 15 * MIN).twmean(), None);
    }

    fn readings() -> impl Strategy<Value = Vec<(i64, f64)>> {
        // Irregular times (0–20 min apart, some equal), values with resets and dips.
        prop::collection::vec((0..20 * MIN, 0.0f64..1000.0), 1..60).prop_map(|steps| {
            let mut t = 0;
            steps
                .into_iter()
                .map(|(dt, v)| {
                    t += dt;
                    (t, v)
                })
                .collect()
        })
    }

    proptest! {
        /// Windows side by side add up to the range they cover, whatever the cut.
        #[test]
        fn windows_add_up(r in readings(), cut in 0..(20 * 60 * MIN), gap in (1..30i64)) {
            let end = 20 * 60 * MIN;
            let whole = increase(&[(0, end)], &r);
            let parts = increase(&[(0, cut)], &r) + increase(&[(cut, end)], &r);
            prop_assert!((whole - parts).abs() <= 1e-9 * whole.abs().max(1.0));
            let gap = gap * MIN;
            let whole = integral(&[(0, end)], &r, gap);
            let (a, b) = (integral(&[(0, cut)], &r, gap), integral(&[(cut, end)], &r, gap));
            prop_assert!((whole.value() - a.value() - b.value()).abs() <= 1e-9 * whole.value().abs().max(1.0));
            prop_assert_eq!(whole.t.amounts.covered, a.t.amounts.covered + b.t.amounts.covered);
        }

        /// Spans cut from a window add up to the window (a calendar's hours and the rest).
        #[test]
        fn inside_and_outside_add_up(r in readings(), cuts in prop::collection::btree_set(1..(20 * 60 * MIN), 0..8)) {
            let end = 20 * 60 * MIN;
            let mut edges = vec![0];
            edges.extend(cuts);
            edges.push(end);
            let spans: Vec<(i64, i64)> = edges.windows(2).map(|w| (w[0], w[1])).collect();
            let inside: Vec<_> = spans.iter().copied().step_by(2).collect();
            let outside: Vec<_> = spans.iter().copied().skip(1).step_by(2).collect();
            let whole = increase(&[(0, end)], &r);
            let parts = increase(&inside, &r) + increase(&outside, &r);
            prop_assert!((whole - parts).abs() <= 1e-9 * whole.abs().max(1.0));
            let gap = 15 * MIN;
            let whole = integral(&[(0, end)], &r, gap).value();
            let parts = integral(&inside, &r, gap).value() + integral(&outside, &r, gap).value();
            prop_assert!((whole - parts).abs() <= 1e-9 * whole.abs().max(1.0));
        }

        /// A meter that only grows increases by its last reading less its first.
        #[test]
        fn a_growing_meter_increases_by_its_span(mut r in readings()) {
            let mut total = 0.0;
            for (_, v) in &mut r {
                total += *v;
                *v = total;
            }
            let end = 20 * 60 * MIN;
            let want = r.last().unwrap().1 - r[0].1;
            let got = increase(&[(-1, end + 1)], &r);
            prop_assert!((got - want).abs() <= 1e-9 * want.max(1.0));
        }

        /// A constant gauge integrates to its value times the hours covered.
        #[test]
        fn a_constant_integrates_to_value_times_hours(r in readings(), v in 0.0f64..5000.0) {
            let r: Vec<_> = r.into_iter().map(|(t, _)| (t, v)).collect();
            let i = integral(&[(0, 20 * 60 * MIN)], &r, 20 * MIN);
            prop_assert!((i.value() - v * i.covered_hours()).abs() <= 1e-9 * i.value().max(1.0));
        }
    }
}
