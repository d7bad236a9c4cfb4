//! A window's statistics as text (the MQTT outputs, `mosquitto_sub -v` style) or as the one
//! JSON object of `--format json`, which is also the summary topic's payload.

use crate::statistic::{DEVICES, Statistic};
use crate::stats::aggregate::Summary;
use chrono::SecondsFormat;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value, json};
use std::io::Write;

/// The statistics of one series or group as a JSON object (keys sorted, as a map is).
fn stats(values: Vec<(Statistic, f64)>) -> Map<String, Value> {
    values
        .into_iter()
        .map(|(st, v)| {
            let v = match st {
                Statistic::Count => json!(v as u64),
                _ => json!(v),
            };
            (st.to_string(), v)
        })
        .collect()
}

/// The JSON object of a window:
/// `{"window":{"start","end"},"topics":{…},"groups":{…},"lines":{read,matched,skipped,rejected}}`,
/// and `"left_out":{"series","readings"}` when `stats.max_series` left some out. The tests'
/// view of [`write_json`]'s text.
#[cfg(test)]
pub fn json(s: &Summary) -> Value {
    serde_json::to_value(Report(s)).unwrap_or(Value::Null)
}

/// The JSON object of a window (see `json`), written to `out` as it is made: the object of a
/// window of a million series is never held whole.
pub fn write_json(s: &Summary, out: &mut impl Write) -> std::io::Result<()> {
    serde_json::to_writer(out, &Report(s)).map_err(std::io::Error::other)
}

/// A window, serialized as its JSON object, keys in order.
struct Report<'a>(&'a Summary);

/// Its topics, one object made at a time.
struct Topics<'a>(&'a Summary);

impl Serialize for Topics<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let s = self.0;
        let mut m = ser.serialize_map(Some(s.series.len()))?;
        for (name, series) in &s.series {
            m.serialize_entry(&**name, &stats(s.values_of(series)))?;
        }
        m.end()
    }
}

impl Serialize for Report<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let s = self.0;
        let groups: Map<String, Value> = s
            .groups
            .iter()
            .filter(|(_, g)| !g.split)
            .map(|(name, g)| {
                let mut m = stats(s.values_of_group(g));
                m.insert(DEVICES.into(), json!(g.members.len()));
                (name.clone(), Value::Object(m))
            })
            .collect();
        let lines = serde_json::to_value(s.lines).map_err(serde::ser::Error::custom)?;
        let mut m = ser.serialize_map(None)?;
        // In key order, as the object's map would print them.
        m.serialize_entry("groups", &groups)?;
        // Only when something was left out: the object stays what it was for everyone else.
        if !s.left_out.is_empty() {
            m.serialize_entry("left_out", &s.left_out)?;
        }
        m.serialize_entry("lines", &lines)?;
        m.serialize_entry("topics", &Topics(s))?;
        m.serialize_entry(
            "window",
            &json!({
                "start": s.start.to_rfc3339_opts(SecondsFormat::AutoSi, true),
                "end": s.end.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            }),
        )?;
        m.end()
    }
}

/// Text, written to `out` as it is made: a header line with the window and the line counts,
/// then `topic value` per output.
pub fn write_text(s: &Summary, out: &mut impl Write) -> std::io::Result<()> {
    let l = &s.lines;
    writeln!(
        out,
        "# window {} .. {}: {} lines read, {} matched, {} skipped, {} rejected",
        s.start.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        s.end.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        l.read,
        l.matched,
        l.skipped,
        l.rejected
    )?;
    let left = &s.left_out;
    if !left.is_empty() {
        writeln!(
            out,
            "# left out past stats.max_series: {} series, {} readings",
            left.series(),
            left.readings
        )?;
    }
    for (topic, value) in s.outputs() {
        writeln!(out, "{topic} {value}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &Summary) -> String {
        let mut out = Vec::new();
        write_text(s, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }
    use chrono::{DateTime, Utc};

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(s, 0).unwrap()
    }

    #[test]
    fn json_shape() {
        let mut s = Summary::new(
            t(0),
            t(300),
            &[Statistic::Count, Statistic::Mean, Statistic::Stddev],
            ["house/t".to_owned()],
        );
        s.push("a/t", true, [0], t(1), 20.5);
        s.lines.read = 3;
        s.lines.matched = 1;
        s.lines.skipped = 2;
        let v = json(&s);
        assert_eq!(
            v.to_string(),
            r#"{"groups":{"house/t":{"count":1,"devices":1,"mean":20.5}},"lines":{"matched":1,"read":3,"rejected":0,"skipped":2},"topics":{"a/t":{"count":1,"mean":20.5}},"window":{"end":"1970-01-01T00:05:00Z","start":"1970-01-01T00:00:00Z"}}"#
        );
    }

    #[test]
    fn text_lists_outputs() {
        let mut s = Summary::new(t(0), t(300), &[Statistic::Max], []);
        s.push("a/t", true, [], t(1), 1.5);
        assert_eq!(
            text(&s),
            "# window 1970-01-01T00:00:00Z .. 1970-01-01T00:05:00Z: 0 lines read, 0 matched, 0 skipped, 0 rejected\na/t_max 1.5\n"
        );
    }
}
