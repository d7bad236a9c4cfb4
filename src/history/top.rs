//! `GET /top`: the best devices by one feature — distinct devices, not readings.
//!
//! A device is a series minus its last level and the feature is that last level, so
//! `iotitan/floor1/plug7/power` is feature `power` of device `iotitan/floor1/plug7` (and a
//! JSON field `zigbee2mqtt/bed/temperature` is feature `temperature` of `zigbee2mqtt/bed`).
//! Each device gets one value, the statistic of its readings over the range.

use super::{Consumer, Value};
use crate::energy::{Totals, inside};
use crate::statistic::{Series, Statistic};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::HashMap;

/// Which end of the ranking comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// Highest value first (the top).
    #[default]
    Desc,
    /// Lowest value first (the bottom: coldest rooms, emptiest batteries).
    Asc,
}

/// One device of the answer.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = TopEntry)]
pub struct Entry {
    /// The device: the series minus its last level.
    pub device: String,
    /// The statistic of its readings of the feature.
    pub value: f64,
    /// The series the value was computed from.
    pub topic: String,
}

/// Ranks devices by a statistic of one feature.
#[derive(Debug, Clone)]
pub struct Top {
    feature: String,
    stat: Statistic,
    n: usize,
    order: Order,
    /// The time counted (a calendar's hours, or the range for the energy statistics) and the
    /// longest interval integrated, µs; `None`: every reading fed counts.
    spans: Option<(Vec<(i64, i64)>, i64)>,
    devices: HashMap<String, (Series, Totals)>,
}

impl Top {
    /// The best `n` devices by `stat` of `feature`, in `order`.
    pub fn new(feature: &str, stat: Statistic, n: usize, order: Order) -> Self {
        Top {
            feature: feature.to_owned(),
            stat,
            n,
            order,
            spans: None,
            devices: HashMap::new(),
        }
    }

    /// The statistic ranked by.
    pub fn stat(&self) -> Statistic {
        self.stat
    }

    /// Count only `spans` (µs, sorted, disjoint), and follow each series' curve for the energy
    /// statistics, integrating intervals of at most `max_gap`. The readings fed then include
    /// those before and after the spans, which only move the curves.
    pub fn with_spans(mut self, spans: Vec<(i64, i64)>, max_gap: std::time::Duration) -> Self {
        let max_gap = i64::try_from(max_gap.as_micros()).unwrap_or(i64::MAX);
        self.spans = Some((spans, max_gap));
        self
    }

    /// The answer: best first, ties by device name.
    pub fn finish(self) -> Vec<Entry> {
        let counted: i64 = self
            .spans
            .as_ref()
            .map_or(0, |(spans, _)| spans.iter().map(|(a, b)| b - a).sum());
        let stat = self.stat;
        let mut all: Vec<Entry> = self
            .devices
            .into_iter()
            .filter_map(|(topic, (s, totals))| {
                let value = if stat.is_energy() {
                    totals.amounts.get(stat, counted)?
                } else {
                    s.get(stat)?
                };
                let device = topic.rsplit_once('/')?.0.to_owned();
                Some(Entry {
                    device,
                    value,
                    topic,
                })
            })
            .collect();
        all.sort_by(|a, b| {
            let by_value = match self.order {
                Order::Desc => b.value.total_cmp(&a.value),
                Order::Asc => a.value.total_cmp(&b.value),
            };
            by_value.then_with(|| a.device.cmp(&b.device))
        });
        all.truncate(self.n);
        all
    }
}

impl Consumer for Top {
    fn reading(&mut self, time: DateTime<Utc>, series: &str, value: Value<'_>) {
        let Value::Number(v) = value else {
            return;
        };
        match series.rsplit_once('/') {
            Some((device, feature)) if !device.is_empty() && feature == self.feature => {}
            _ => return,
        }
        let max_gap = self.spans.as_ref().map_or(0, |(_, g)| *g);
        let keep = self.stat.needs_values();
        let (s, totals) = match self.devices.get_mut(series) {
            Some(d) => d,
            None => self
                .devices
                .entry(series.to_owned())
                .or_insert((Series::new(keep), Totals::new(max_gap))),
        };
        if let Some((spans, _)) = &self.spans {
            let t = time.timestamp_micros();
            totals.push(spans, t, v);
            if !inside(spans, t) {
                return;
            }
        }
        s.push(time, v);
    }

    fn series(&self) -> usize {
        self.devices.len()
    }

    fn fork(&self) -> Option<Self> {
        // A curve is followed from its first reading, on one thread.
        if self.spans.is_some() {
            return None;
        }
        Some(Top::new(&self.feature, self.stat, self.n, self.order))
    }

    fn merge(&mut self, later: Self) {
        for (series, (s, totals)) in later.devices {
            match self.devices.get_mut(&series) {
                Some(mine) => mine.0.merge(s),
                None => {
                    self.devices.insert(series, (s, totals));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(s, 0).unwrap()
    }

    #[test]
    fn distinct_devices_best_first() {
        let mut top = Top::new("temperature", Statistic::Max, 2, Order::Desc);
        // Many readings of one hot device must not fill the list.
        for i in 0..10 {
            top.reading(
                t(i),
                "h/kitchen/temperature",
                Value::Number(30.0 + i as f64),
            );
        }
        top.reading(t(1), "h/bed/temperature", Value::Number(20.0));
        top.reading(t(1), "h/bath/temperature", Value::Number(25.0));
        top.reading(t(1), "h/bath/humidity", Value::Number(99.0));
        top.reading(t(1), "temperature", Value::Number(99.0));
        top.reading(t(1), "h/garage/temperature", Value::State("offline"));
        let got = top.finish();
        assert_eq!(
            serde_json::to_value(&got).unwrap(),
            serde_json::json!([
                {"device":"h/kitchen","value":39.0,"topic":"h/kitchen/temperature"},
                {"device":"h/bath","value":25.0,"topic":"h/bath/temperature"}
            ])
        );
        let mut low = Top::new("temperature", Statistic::Mean, 10, Order::Asc);
        low.reading(t(1), "a/temperature", Value::Number(2.0));
        low.reading(t(1), "b/temperature", Value::Number(1.0));
        low.reading(t(1), "c/temperature", Value::Number(1.0));
        let got: Vec<_> = low.finish().into_iter().map(|e| e.device).collect();
        assert_eq!(got, ["b", "c", "a"]);
    }

    proptest! {
        /// The answer is min(n, devices) distinct devices, sorted, and no device left out
        /// beats one that is in.
        #[test]
        fn ranking(readings in proptest::collection::vec((0u8..20, -50i32..50), 0..300), n in 0usize..25) {
            let mut top = Top::new("power", Statistic::Max, n, Order::Desc);
            let mut max: HashMap<u8, i32> = HashMap::new();
            for (i, &(d, v)) in readings.iter().enumerate() {
                top.reading(t(i as i64), &format!("site/dev{d:02}/power"), Value::Number(f64::from(v)));
                let m = max.entry(d).or_insert(v);
                *m = (*m).max(v);
            }
            let got = top.finish();
            prop_assert_eq!(got.len(), n.min(max.len()));
            let mut want: Vec<(i32, String)> = max.iter().map(|(d, v)| (-v, format!("site/dev{d:02}"))).collect();
            want.sort();
            want.truncate(n);
            let got: Vec<(i32, String)> = got.into_iter().map(|e| (-(e.value as i32), e.device)).collect();
            prop_assert_eq!(got, want);
        }
    }
}
