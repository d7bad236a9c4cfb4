//! A window's statistics as text (the MQTT outputs, `mosquitto_sub -v` style) or as the one
//! JSON object of `--format json`, which is also the summary topic's payload.

use crate::statistic::{DEVICES, Statistic};
use crate::stats::aggregate::Summary;
use chrono::SecondsFormat;
use serde_json::{Map, Value, json};

/// The JSON object of a window:
/// `{"window":{"start","end"},"topics":{…},"groups":{…},"lines":{read,matched,skipped,rejected}}`.
pub fn json(s: &Summary) -> Value {
    let stats = |values: Vec<(Statistic, f64)>| -> Map<String, Value> {
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
    };
    let topics: Map<String, Value> = s
        .series
        .iter()
        .map(|(name, series)| (name.clone(), Value::Object(stats(s.values_of(series)))))
        .collect();
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
    let mut object = json!({
        "window": {
            "start": s.start.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            "end": s.end.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        },
        "topics": topics,
        "groups": groups,
        "lines": s.lines,
    });
    // Only when something was left out: the object stays what it was for everyone else.
    if !s.left_out.is_empty()
        && let Some(m) = object.as_object_mut()
    {
        m.insert("left_out".into(), json!(s.left_out));
    }
    object
}

/// Text: a header line with the window and the line counts, then `topic value` per output.
pub fn text(s: &Summary) -> String {
    let l = &s.lines;
    let mut out = format!(
        "# window {} .. {}: {} lines read, {} matched, {} skipped, {} rejected\n",
        s.start.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        s.end.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        l.read,
        l.matched,
        l.skipped,
        l.rejected
    );
    let left = &s.left_out;
    if !left.is_empty() {
        out.push_str(&format!(
            "# left out past stats.max_series: {} series, {} readings\n",
            left.series(),
            left.readings
        ));
    }
    for (topic, value) in s.outputs() {
        out.push_str(&topic);
        out.push(' ');
        out.push_str(&value);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
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
