//! `GET /topics`: what was seen — each series with its last value, when, and how often (the
//! device registry view).

use super::{Consumer, Owned, Value};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

/// One series seen in the range.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Seen {
    /// The series (the topic, or `<topic>/<field>` for JSON fields).
    pub topic: String,
    /// Its latest value: a number, or a state such as `offline`.
    pub last: Owned,
    /// When the latest value was logged (RFC 3339, UTC).
    pub at: String,
    /// Readings in the range.
    pub count: u64,
}

/// Collects the [`Seen`] list.
#[derive(Debug, Default)]
pub struct Topics {
    seen: BTreeMap<String, (DateTime<Utc>, Owned, u64)>,
}

impl Topics {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The answer, sorted by topic.
    pub fn finish(self) -> Vec<Seen> {
        self.seen
            .into_iter()
            .map(|(topic, (at, last, count))| Seen {
                topic,
                last,
                at: at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
                count,
            })
            .collect()
    }
}

impl Consumer for Topics {
    fn reading(&mut self, time: DateTime<Utc>, series: &str, value: Value<'_>) {
        match self.seen.get_mut(series) {
            Some((at, last, count)) => {
                *count += 1;
                // Several sources interleave: the latest by time wins, a tie goes to the later line.
                if time >= *at {
                    *at = time;
                    *last = value.into();
                }
            }
            None => {
                self.seen.insert(series.to_owned(), (time, value.into(), 1));
            }
        }
    }

    fn fork(&self) -> Option<Self> {
        Some(Topics::new())
    }

    fn merge(&mut self, later: Self) {
        for (topic, (at, last, count)) in later.seen {
            match self.seen.get_mut(&topic) {
                Some(mine) => {
                    mine.2 += count;
                    // The later lines win a tie, as in one pass.
                    if at >= mine.0 {
                        mine.0 = at;
                        mine.1 = last;
                    }
                }
                None => {
                    self.seen.insert(topic, (at, last, count));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(s, 0).unwrap()
    }

    #[test]
    fn last_by_time_and_counts() {
        let mut c = Topics::new();
        c.reading(t(10), "b/t", Value::Number(1.0));
        c.reading(t(20), "b/t", Value::Number(2.0));
        c.reading(t(15), "b/t", Value::Number(3.0));
        c.reading(t(5), "a/LWT", Value::State("online"));
        c.reading(t(6), "a/LWT", Value::State("offline"));
        let got = c.finish();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].topic, "a/LWT");
        assert_eq!(got[0].last, Owned::State("offline".into()));
        assert_eq!(got[0].count, 2);
        assert_eq!(got[1].last, Owned::Number(2.0));
        assert_eq!(got[1].at, "1970-01-01T00:00:20Z");
        assert_eq!(got[1].count, 3);
        let json = serde_json::to_value(&got[0]).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"topic":"a/LWT","last":"offline","at":"1970-01-01T00:00:06Z","count":2})
        );
    }
}
