//! `GET /history`: the raw readings of some topics, oldest first, at most `limit` of them.

use super::{Consumer, Owned, SeriesSet, Value};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde::ser::SerializeTuple;

/// One row: when, which series, what value.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// When it was logged.
    pub time: DateTime<Utc>,
    /// The series.
    pub topic: String,
    /// The value.
    pub value: Owned,
}

impl Serialize for Row {
    /// `[rfc3339, topic, value]`: compact for long histories, and what charting libraries take.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(3)?;
        t.serialize_element(&self.time.to_rfc3339_opts(SecondsFormat::AutoSi, true))?;
        t.serialize_element(&self.topic)?;
        t.serialize_element(&self.value)?;
        t.end()
    }
}

/// The answer of `/history`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct History {
    /// The oldest `limit` rows, in time order (ties in the order they were read).
    pub rows: Vec<Row>,
    /// Whether more rows were in the range than `limit`.
    pub truncated: bool,
}

impl History {
    /// The rows as CSV (`timestamp,topic,value` with a header, like `iotitan-stats query`).
    pub fn csv(&self) -> String {
        let mut out = String::from("timestamp,topic,value\n");
        for r in &self.rows {
            out.push_str(&r.time.to_rfc3339_opts(SecondsFormat::AutoSi, true));
            out.push(',');
            out.push_str(&crate::records::csv::field(&r.topic));
            out.push(',');
            match &r.value {
                Owned::Number(n) => out.push_str(&n.to_string()),
                Owned::State(s) => out.push_str(&crate::records::csv::field(s)),
            }
            out.push('\n');
        }
        out
    }
}

/// `[time, series, value]`, as [`Row`]'s `Serialize` writes it.
impl utoipa::PartialSchema for Row {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
        let text = || ObjectBuilder::new().schema_type(Type::String);
        ArrayBuilder::new()
            .prefix_items([
                text().format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                    utoipa::openapi::KnownFormat::DateTime,
                ))),
                text(),
            ])
            .prefix_items([<Owned as utoipa::PartialSchema>::schema()])
            .min_items(Some(3))
            .max_items(Some(3))
            .into()
    }
}

impl utoipa::ToSchema for Row {}

/// Keeps the oldest `limit` rows in bounded memory, whatever order the sources give them in.
#[derive(Debug)]
pub struct Rows {
    limit: usize,
    rows: Vec<(DateTime<Utc>, u64, String, Owned)>,
    seen: u64,
    /// Once `limit` rows are kept: the time of the newest kept one. A later reading cannot
    /// displace any of them (a tie comes later in reading order).
    cutoff: Option<DateTime<Utc>>,
    /// The series read (bounded by the read's `max_series`).
    names: SeriesSet,
}

impl Rows {
    /// At most `limit` rows.
    pub fn new(limit: usize) -> Self {
        Rows {
            limit,
            rows: Vec::new(),
            seen: 0,
            cutoff: None,
            names: SeriesSet::default(),
        }
    }

    /// Sort by (time, reading order) and keep the first `limit`.
    fn prune(&mut self) {
        self.rows.sort_by_key(|r| (r.0, r.1));
        self.rows.truncate(self.limit);
        if self.limit > 0 && self.rows.len() == self.limit {
            self.cutoff = self.rows.last().map(|r| r.0);
        }
    }

    /// The answer.
    pub fn finish(mut self) -> History {
        self.prune();
        History {
            truncated: self.seen > self.rows.len() as u64,
            rows: self
                .rows
                .into_iter()
                .map(|(time, _, topic, value)| Row { time, topic, value })
                .collect(),
        }
    }
}

impl Consumer for Rows {
    fn reading(&mut self, time: DateTime<Utc>, series: &str, value: Value<'_>) {
        self.seen += 1;
        self.names.note(series);
        // A single source is in time order: once `limit` rows are kept, later ones cannot
        // displace them; only an earlier one (another source) can.
        if self.limit == 0 || self.cutoff.is_some_and(|c| time >= c) {
            return;
        }
        self.rows
            .push((time, self.seen, series.to_owned(), value.into()));
        // Amortised: prune when twice the limit is held.
        if self.rows.len() >= self.limit.saturating_mul(2) {
            self.prune();
        }
    }

    fn series(&self) -> usize {
        self.names.len()
    }

    fn fork(&self) -> Option<Self> {
        Some(Rows::new(self.limit))
    }

    fn merge(&mut self, later: Self) {
        // The later rows were read after all of this one's: their reading order follows on.
        let offset = self.seen;
        self.rows.extend(
            later
                .rows
                .into_iter()
                .map(|(time, n, topic, value)| (time, offset + n, topic, value)),
        );
        self.seen += later.seen;
        self.names.extend(later.names);
        self.prune();
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
    fn json_and_csv_shapes() {
        let mut r = Rows::new(2);
        r.reading(t(1), "a/t", Value::Number(20.5));
        r.reading(t(2), "a,b/LWT", Value::State("off\"line"));
        r.reading(t(3), "a/t", Value::Number(21.0));
        let h = r.finish();
        assert!(h.truncated);
        assert_eq!(
            serde_json::to_value(&h).unwrap(),
            serde_json::json!({"rows":[["1970-01-01T00:00:01Z","a/t",20.5],
                ["1970-01-01T00:00:02Z","a,b/LWT","off\"line"]],"truncated":true})
        );
        assert_eq!(
            h.csv(),
            "timestamp,topic,value\n1970-01-01T00:00:01Z,a/t,20.5\n\
             1970-01-01T00:00:02Z,\"a,b/LWT\",\"off\"\"line\"\n"
        );
        let all = Rows::new(5).finish();
        assert!(!all.truncated && all.rows.is_empty());
    }

    proptest! {
        /// Whatever the order readings arrive in, the answer is the `limit` oldest in time
        /// order, and `truncated` says whether any were left out.
        #[test]
        fn oldest_limit_rows(times in proptest::collection::vec(0i64..50, 0..200), limit in 0usize..30) {
            let mut r = Rows::new(limit);
            for (i, &s) in times.iter().enumerate() {
                r.reading(t(s), "x", Value::Number(i as f64));
            }
            let h = r.finish();
            let mut want: Vec<(i64, usize)> = times.iter().copied().zip(0..).collect();
            want.sort();
            want.truncate(limit);
            let got: Vec<(i64, usize)> = h.rows.iter().map(|r| match r.value {
                Owned::Number(n) => (r.time.timestamp(), n as usize),
                Owned::State(_) => unreachable!(),
            }).collect();
            prop_assert_eq!(got, want);
            prop_assert_eq!(h.truncated, times.len() > limit);
        }
    }
}
