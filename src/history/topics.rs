//! `GET /topics`: what was seen — each series with its last value, when, and how often (the
//! device registry view), a page at a time.
//!
//! A page is the `limit` smallest series after `after`, and only it is kept while reading:
//! once `limit` are held, a new series gets in only if it is smaller than the largest held,
//! which it pushes out. The page's counts are exact: a series in the final page had fewer
//! than `limit` smaller ones anywhere in the read, so from its first reading on it was never
//! pushed out, nor left out; and the largest held only ever shrinks, so a series pushed out
//! never comes back with a partial count. The same holds for each thread's range, so merging
//! their pages and keeping the `limit` smallest is the page of one pass.

use super::{Consumer, Owned, Value};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

/// One series seen in the range.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Seen {
    /// The series (the topic, or `<topic>/<field>` for JSON fields).
    pub topic: String,
    /// Its latest value: a number, or a state such as `offline`.
    pub last: Owned,
    /// When the latest value was logged (RFC 3339, UTC).
    pub at: String,
    /// When its earliest reading in the range was logged: the span a chart of it needs.
    pub first: String,
    /// Readings in the range.
    pub count: u64,
    /// The unit of its values (`°C`), when its name or `[[homeassistant.unit]]` says one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<&'static str>,
}

/// What a page holds of a series: its latest reading's time and value, the count, and its
/// earliest reading's time.
#[derive(Debug, Clone)]
struct Held {
    at: DateTime<Utc>,
    last: Owned,
    count: u64,
    first: DateTime<Utc>,
}

/// Collects a page of the [`Seen`] list.
#[derive(Debug, Clone)]
pub struct Topics {
    seen: BTreeMap<String, Held>,
    /// Only series after this one (the last of the previous page).
    after: Option<String>,
    /// At most this many.
    limit: usize,
    /// Whether a series after the page was seen: there is a next page.
    more: bool,
    /// Only series whose name holds this, in any ASCII case (the dashboard's search).
    holding: Option<String>,
}

/// Whether `name` holds `text` in any ASCII case (no allocation: it runs on every line of a
/// series not on the page).
fn holds(name: &str, text: &str) -> bool {
    let (name, text) = (name.as_bytes(), text.as_bytes());
    text.len() <= name.len()
        && name
            .windows(text.len())
            .any(|w| w.eq_ignore_ascii_case(text))
}

/// A page of `/topics`.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The series, sorted.
    pub topics: Vec<Seen>,
    /// The last series of the page when more follow (the next page's `after`).
    pub next: Option<String>,
}

impl Topics {
    /// The first `limit` series (at least one) after `after`.
    pub fn new(limit: usize, after: Option<String>) -> Self {
        Topics {
            seen: BTreeMap::new(),
            after,
            limit: limit.max(1),
            more: false,
            holding: None,
        }
    }

    /// Only series whose name holds `text`, in any ASCII case.
    pub fn holding(mut self, text: Option<String>) -> Self {
        self.holding = text.filter(|t| !t.is_empty());
        self
    }

    /// The page, sorted by series.
    pub fn finish(self) -> Page {
        let next = if self.more {
            self.seen.keys().next_back().cloned()
        } else {
            None
        };
        let topics = self
            .seen
            .into_iter()
            .map(|(topic, h)| Seen {
                topic,
                last: h.last,
                at: h.at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
                first: h.first.to_rfc3339_opts(SecondsFormat::AutoSi, true),
                count: h.count,
                unit: None,
            })
            .collect();
        Page { topics, next }
    }

    /// Keep the `limit` smallest.
    fn trim(&mut self) {
        while self.seen.len() > self.limit {
            self.seen.pop_last();
            self.more = true;
        }
    }
}

impl Consumer for Topics {
    fn reading(&mut self, time: DateTime<Utc>, series: &str, value: Value<'_>) {
        // Off the page either way, and so not held: with a million series, most lines stop
        // at one comparison, before a look into the page.
        if self.after.as_deref().is_some_and(|a| series <= a) {
            return;
        }
        if self.seen.len() >= self.limit
            && self
                .seen
                .keys()
                .next_back()
                .is_some_and(|largest| series > largest.as_str())
        {
            // A next page, if this one is on it.
            self.more |= self.holding.as_deref().is_none_or(|t| holds(series, t));
            return;
        }
        if let Some(h) = self.seen.get_mut(series) {
            h.count += 1;
            // Several sources interleave: the latest by time wins, a tie goes to the later line.
            if time >= h.at {
                h.at = time;
                h.last = value.into();
            }
            h.first = h.first.min(time);
            return;
        }
        if let Some(text) = &self.holding
            && !holds(series, text)
        {
            return;
        }
        self.seen.insert(
            series.to_owned(),
            Held {
                at: time,
                last: value.into(),
                count: 1,
                first: time,
            },
        );
        self.trim();
    }

    fn fork(&self) -> Option<Self> {
        Some(Topics::new(self.limit, self.after.clone()).holding(self.holding.clone()))
    }

    fn merge(&mut self, later: Self) {
        self.more |= later.more;
        for (topic, h) in later.seen {
            match self.seen.get_mut(&topic) {
                Some(mine) => {
                    mine.count += h.count;
                    // The later lines win a tie, as in one pass.
                    if h.at >= mine.at {
                        mine.at = h.at;
                        mine.last = h.last;
                    }
                    mine.first = mine.first.min(h.first);
                }
                None => {
                    self.seen.insert(topic, h);
                }
            }
        }
        self.trim();
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
        let mut c = Topics::new(10, None);
        c.reading(t(10), "b/t", Value::Number(1.0));
        c.reading(t(20), "b/t", Value::Number(2.0));
        c.reading(t(15), "b/t", Value::Number(3.0));
        c.reading(t(5), "a/LWT", Value::State("online"));
        c.reading(t(6), "a/LWT", Value::State("offline"));
        let page = c.finish();
        assert_eq!(page.next, None);
        let got = page.topics;
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].topic, "a/LWT");
        assert_eq!(got[0].last, Owned::State("offline".into()));
        assert_eq!(got[0].count, 2);
        assert_eq!(got[1].last, Owned::Number(2.0));
        assert_eq!(got[1].at, "1970-01-01T00:00:20Z");
        assert_eq!(got[1].first, "1970-01-01T00:00:10Z");
        assert_eq!(got[1].count, 3);
        let json = serde_json::to_value(&got[0]).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"topic":"a/LWT","last":"offline","at":"1970-01-01T00:00:06Z","first":"1970-01-01T00:00:05Z","count":2})
        );
    }

    #[test]
    fn a_search_keeps_the_series_that_hold_the_text() {
        let mut c = Topics::new(10, None).holding(Some("HALL".into()));
        for name in ["home/hall/t", "home/kitchen/t", "hallway/t", "h"] {
            c.reading(t(1), name, Value::Number(1.0));
        }
        let names: Vec<String> = c.finish().topics.into_iter().map(|s| s.topic).collect();
        assert_eq!(names, ["hallway/t", "home/hall/t"]);
    }

    proptest::proptest! {
        /// Page after page, each read on two threads (a fork for the later lines), gives
        /// the whole list, counts and last values included.
        #[test]
        fn pages_read_on_two_threads_are_the_whole_list(
            readings in proptest::collection::vec((0..40u8, 0..100i64), 0..300),
            limit in 1..12usize,
            cut in 0.0..1.0f64,
            q in proptest::option::of("[0-9]"),
        ) {
            let cut = (readings.len() as f64 * cut) as usize;
            let feed = |c: &mut Topics, part: &[(u8, i64)]| {
                for &(n, s) in part {
                    c.reading(t(s), &format!("s/{n:02}"), Value::Number(s as f64));
                }
            };
            let mut whole = Topics::new(usize::MAX, None).holding(q.clone());
            feed(&mut whole, &readings);
            let whole = whole.finish();
            proptest::prop_assert_eq!(&whole.next, &None);
            let mut paged = Vec::new();
            let mut after = None;
            loop {
                let mut first = Topics::new(limit, after.clone()).holding(q.clone());
                let mut later = first.fork().unwrap();
                feed(&mut first, &readings[..cut]);
                feed(&mut later, &readings[cut..]);
                first.merge(later);
                let page = first.finish();
                proptest::prop_assert!(page.topics.len() <= limit);
                // A next page is linked only when a series follows: none is ever empty.
                proptest::prop_assert!(!page.topics.is_empty() || (after.is_none() && page.next.is_none()));
                paged.extend(page.topics);
                match page.next {
                    Some(n) => after = Some(n),
                    None => break,
                }
            }
            proptest::prop_assert_eq!(paged, whole.topics);
        }
    }
}
