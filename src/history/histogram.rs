//! `GET /histogram`: how the values of some series are distributed, and how often each state
//! (a non-numeric payload such as an LWT `online`/`offline`) was seen.
//!
//! Values are kept as distinct-value counts, not one by one: sensors repeat a few hundred
//! values (a temperature to one decimal), so memory follows the values' resolution, not the
//! range's length.

use super::{Consumer, SeriesSet, Value};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// Most bins an answer may have.
pub const MAX_BINS: usize = 1000;

/// One bin: `[lo, hi)`, the last one `[lo, hi]`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Bin {
    /// Lower edge (inclusive).
    pub lo: f64,
    /// Upper edge (exclusive, but inclusive for the last bin).
    pub hi: f64,
    /// Values in the bin.
    pub count: u64,
}

/// The answer of `/histogram`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = HistogramAnswer)]
pub struct Answer {
    /// Equal-width bins from the smallest value to the largest; empty without values, one
    /// bin when all values are equal. Their counts add up to the numeric readings.
    pub bins: Vec<Bin>,
    /// How often each state was seen.
    pub states: BTreeMap<String, u64>,
}

/// Collects a histogram.
#[derive(Debug)]
pub struct Histogram {
    bins: usize,
    values: HashMap<u64, u64>,
    states: BTreeMap<String, u64>,
    /// The series read (bounded by the read's `max_series`).
    names: SeriesSet,
}

impl Histogram {
    /// A histogram of `bins` bins (at least 1).
    pub fn new(bins: usize) -> Self {
        Histogram {
            bins: bins.max(1),
            values: HashMap::new(),
            states: BTreeMap::new(),
            names: SeriesSet::default(),
        }
    }

    /// The answer.
    pub fn finish(self) -> Answer {
        let mut distinct: Vec<(f64, u64)> = self
            .values
            .into_iter()
            .map(|(bits, n)| (f64::from_bits(bits), n))
            .collect();
        distinct.sort_by(|a, b| a.0.total_cmp(&b.0));
        let bins = match (distinct.first(), distinct.last()) {
            (Some(&(lo, _)), Some(&(hi, _))) if lo == hi => vec![Bin {
                lo,
                hi,
                count: distinct.iter().map(|d| d.1).sum(),
            }],
            (Some(&(lo, _)), Some(&(hi, _))) => {
                let n = self.bins;
                let edge = |i: usize| {
                    if i == n {
                        hi
                    } else {
                        lo + (hi - lo) * (i as f64 / n as f64)
                    }
                };
                let mut bins: Vec<Bin> = (0..n)
                    .map(|i| Bin {
                        lo: edge(i),
                        hi: edge(i + 1),
                        count: 0,
                    })
                    .collect();
                for (v, c) in distinct {
                    let mut i = (((v - lo) / (hi - lo)) * n as f64).floor() as usize;
                    i = i.min(n - 1);
                    // Rounding may put a value next to an edge in the neighbouring bin: the
                    // edges as printed decide.
                    while i > 0 && v < bins[i].lo {
                        i -= 1;
                    }
                    while i + 1 < n && v >= bins[i + 1].lo {
                        i += 1;
                    }
                    bins[i].count += c;
                }
                bins
            }
            _ => Vec::new(),
        };
        Answer {
            bins,
            states: self.states,
        }
    }
}

impl Consumer for Histogram {
    fn reading(&mut self, _: DateTime<Utc>, series: &str, value: Value<'_>) {
        self.names.note(series);
        match value {
            // -0.0 and 0.0 are one value.
            Value::Number(v) => *self.values.entry((v + 0.0).to_bits()).or_default() += 1,
            Value::State(s) => match self.states.get_mut(s) {
                Some(n) => *n += 1,
                None => {
                    self.states.insert(s.to_owned(), 1);
                }
            },
        }
    }

    fn series(&self) -> usize {
        self.names.len()
    }

    fn fork(&self) -> Option<Self> {
        Some(Histogram::new(self.bins))
    }

    fn merge(&mut self, later: Self) {
        self.names.extend(later.names);
        for (bits, n) in later.values {
            *self.values.entry(bits).or_default() += n;
        }
        for (state, n) in later.states {
            *self.states.entry(state).or_default() += n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t() -> DateTime<Utc> {
        DateTime::from_timestamp(0, 0).unwrap()
    }

    #[test]
    fn bins_and_states() {
        let mut h = Histogram::new(4);
        for v in [0.0, 1.0, 2.0, 2.5, 4.0, 4.0] {
            h.reading(t(), "x", Value::Number(v));
        }
        for s in ["online", "offline", "online"] {
            h.reading(t(), "x/LWT", Value::State(s));
        }
        assert_eq!(
            serde_json::to_value(h.finish()).unwrap(),
            serde_json::json!({
                "bins": [
                    {"lo":0.0,"hi":1.0,"count":1},
                    {"lo":1.0,"hi":2.0,"count":1},
                    {"lo":2.0,"hi":3.0,"count":2},
                    {"lo":3.0,"hi":4.0,"count":2}
                ],
                "states": {"offline":1,"online":2}
            })
        );
        let mut one = Histogram::new(20);
        one.reading(t(), "x", Value::Number(-0.0));
        one.reading(t(), "x", Value::Number(0.0));
        assert_eq!(
            one.finish().bins,
            vec![Bin {
                lo: 0.0,
                hi: 0.0,
                count: 2
            }]
        );
        assert!(Histogram::new(5).finish().bins.is_empty());
    }

    proptest! {
        /// Bin counts add up to the values; each value lies within its bin's edges; bins tile
        /// [min, max].
        #[test]
        fn counts_add_up(values in proptest::collection::vec(-1e6f64..1e6, 1..300), bins in 1usize..60) {
            let mut h = Histogram::new(bins);
            for &v in &values {
                h.reading(t(), "x", Value::Number(v));
            }
            let a = h.finish();
            prop_assert_eq!(a.bins.iter().map(|b| b.count).sum::<u64>(), values.len() as u64);
            let min = values.iter().copied().fold(f64::INFINITY, f64::min);
            let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            prop_assert_eq!(a.bins[0].lo, min);
            prop_assert_eq!(a.bins[a.bins.len() - 1].hi, max);
            for w in a.bins.windows(2) {
                prop_assert_eq!(w[0].hi, w[1].lo);
            }
            for b in &a.bins {
                let last = b.hi == max;
                let inside = values.iter().filter(|&&v| v >= b.lo && (v < b.hi || (last && v <= b.hi))).count();
                prop_assert_eq!(inside as u64, b.count, "{:?}", b);
            }
        }
    }
}
