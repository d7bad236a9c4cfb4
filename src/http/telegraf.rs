//! The bodies of `POST /api/v1/telegraf` → MQTT messages (docs/HTTP.md "Telegraf"). Pure: no
//! I/O, the clock passed in.
//!
//! Telegraf's `outputs.http` with `data_format = "json"` sends a batch of up to
//! `metric_batch_size` (1 000) metrics as `{"metrics":[{"fields":{…},"name":"cpu","tags":
//! {"host":"pi4"},"timestamp":1458229140}]}` — as `text/plain` unless told otherwise. Each
//! field of a metric becomes one message on
//! `<ingest_prefix>/<host>/<name>[/<tag value>…]/<field>`:
//! - the `host` tag (`telegraf` without one) is the device level, as a sensor's device is, so
//!   `by=` groups and the dashboard's devices work on Telegraf's hosts too;
//! - the other tags' values follow in the order of their keys (`cpu=cpu-total` →
//!   `…/cpu/cpu-total/usage_idle`), so that each series keeps a topic of its own;
//! - a tag value or name that cannot be a topic level as it is (`path=/boot`, an empty value, a
//!   `+` or `#`) has those characters written as `_`: Telegraf's names are not ours to refuse,
//!   and a batch refused is a batch Telegraf sends again forever.
//!
//! A batch is checked whole before anything is published, as the readings' forms are: the
//! batch is acknowledged or none of it, which is what Telegraf's retry of a non-2xx batch
//! needs to neither lose nor duplicate a metric.

use super::reading::{
    Batch, LATITUDE, LONGITUDE, Message, ReadingError, Rules, level_topic, push_level, scalar,
};
use serde_json::{Map, Value};

/// The device level of a metric without a `host` tag.
const NO_HOST: &str = "telegraf";

/// Parse a Telegraf JSON batch.
pub fn parse(body: &[u8], rules: &Rules<'_>) -> Result<Batch, ReadingError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| ReadingError::Json(e.to_string()))?;
    let Some(Value::Array(metrics)) = value.get("metrics") else {
        return Err(ReadingError::Shape(
            "a Telegraf batch is {\"metrics\": [...]} (outputs.http with data_format = \"json\" \
             and the default json_transformation)"
                .into(),
        ));
    };
    let mut batch = Batch::default();
    for (i, m) in metrics.iter().enumerate() {
        metric(m, &format!("metric {}", i + 1), rules, &mut batch)?;
    }
    Ok(batch)
}

/// One metric's fields, appended to `batch`.
fn metric(v: &Value, at: &str, rules: &Rules<'_>, batch: &mut Batch) -> Result<(), ReadingError> {
    let shape = |what: &str| ReadingError::Shape(format!("{at}: {what}"));
    let Value::Object(m) = v else {
        return Err(shape("a metric must be an object"));
    };
    let name = match m.get("name") {
        Some(Value::String(s)) => s,
        _ => return Err(shape("\"name\" must be a string")),
    };
    let tags = match m.get("tags") {
        None | Some(Value::Null) => &Map::new(),
        Some(Value::Object(t)) => t,
        Some(_) => return Err(shape("\"tags\" must be an object")),
    };
    let Some(Value::Object(fields)) = m.get("fields") else {
        return Err(shape("\"fields\" must be an object"));
    };
    let late = match m.get("timestamp") {
        None | Some(Value::Null) => false,
        Some(t) => {
            let t = t
                .as_f64()
                .ok_or_else(|| shape("\"timestamp\" must be a number"))?;
            rules.late(seconds(t))
        }
    };
    let mut path = format!("{}/", rules.prefix);
    let host = match tags.get("host") {
        Some(Value::String(h)) => h.as_str(),
        _ => NO_HOST,
    };
    push_level(&mut path, host);
    path.push('/');
    push_level(&mut path, name);
    for (k, v) in tags {
        if k == "host" {
            continue;
        }
        let Value::String(v) = v else {
            return Err(shape(&format!("tag {k:?} must be a string")));
        };
        path.push('/');
        push_level(&mut path, v);
    }
    let before = batch.messages.len();
    // A location (Telegraf's gps or a phone's input): `lat`/`latitude` with
    // `lon`/`lng`/`longitude` fields, withheld inside a private area.
    let number = |names: &[&str]| names.iter().find_map(|n| fields.get(*n)?.as_f64());
    let private = rules.withholds(number(&LATITUDE), number(&LONGITUDE), batch);
    for (field, v) in fields {
        if private && (LATITUDE.contains(&field.as_str()) || LONGITUDE.contains(&field.as_str())) {
            continue;
        }
        let payload = match scalar(v) {
            Some(p) => p,
            None if v.is_null() => continue,
            None => {
                return Err(shape(&format!(
                    "field {field:?} must be a number, a boolean or a string"
                )));
            }
        };
        let topic = level_topic(&path, field, at)?;
        batch.messages.push(Message { topic, payload });
    }
    if late {
        batch.late += batch.messages.len() - before;
    }
    Ok(())
}

/// A timestamp in Telegraf's `json_timestamp_units` (1 s by default; 1ms, 1us and 1ns are
/// set by users) → seconds, told apart by size: now is about 1.8·10^9 s.
fn seconds(t: f64) -> f64 {
    match t.abs() {
        x if x > 1e17 => t / 1e9,
        x if x > 1e14 => t / 1e6,
        x if x > 1e11 => t / 1e3,
        _ => t,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::privacy::PrivateAreas;
    use std::time::Duration;

    fn parse_at(body: &str, now: f64) -> Result<Batch, ReadingError> {
        let areas = PrivateAreas::default();
        let rules = Rules {
            prefix: "iotitan/http",
            areas: &areas,
            now,
            disorder: Duration::from_secs(60),
        };
        parse(body.as_bytes(), &rules)
    }

    #[test]
    fn a_batch_of_metrics_becomes_one_message_per_field() {
        // As Telegraf's JSON serializer writes a batch (its README's example).
        let body = r#"{"metrics":[{"fields":{"usage_idle":98.5,"usage_user":1},"name":"cpu","tags":{"cpu":"cpu-total","host":"pi4"},"timestamp":1458229140},{"fields":{"free":1234567,"used_percent":41.25},"name":"disk","tags":{"device":"mmcblk0p2","fstype":"ext4","host":"pi4","mode":"rw","path":"/"},"timestamp":1458229140},{"fields":{"up":true,"state":"running","gone":null},"name":"svc","timestamp":1458229140}]}"#;
        let b = parse_at(body, 1458229150.0).unwrap();
        assert_eq!(
            Batch::pairs(&b),
            [
                ("iotitan/http/pi4/cpu/cpu-total/usage_idle", "98.5"),
                ("iotitan/http/pi4/cpu/cpu-total/usage_user", "1"),
                ("iotitan/http/pi4/disk/mmcblk0p2/ext4/rw/_/free", "1234567"),
                (
                    "iotitan/http/pi4/disk/mmcblk0p2/ext4/rw/_/used_percent",
                    "41.25"
                ),
                ("iotitan/http/telegraf/svc/state", "running"),
                ("iotitan/http/telegraf/svc/up", "true"),
            ]
        );
        assert_eq!(b.late, 0);
    }

    #[test]
    fn a_location_in_a_private_area_is_withheld() {
        let areas = PrivateAreas::example_home();
        let rules = Rules {
            prefix: "p",
            areas: &areas,
            now: 0.0,
            disorder: Duration::from_secs(60),
        };
        let body = br#"{"metrics":[{"fields":{"lat":-34.92,"lon":138.6,"speed":0},"name":"gps","tags":{"host":"ute"}},{"fields":{"latitude":-34.95,"longitude":138.53},"name":"gps","tags":{"host":"ute"}}]}"#;
        let b = parse(body, &rules).unwrap();
        assert_eq!(
            b.pairs(),
            [
                ("p/ute/gps/speed", "0"),
                ("p/ute/gps/latitude", "-34.95"),
                ("p/ute/gps/longitude", "138.53")
            ]
        );
        assert_eq!(b.private, 2);
    }

    #[test]
    fn timestamps_in_any_unit_tell_late_metrics() {
        let now = 1_800_000_000.0;
        for (ts, late) in [
            ("1800000000", 0),
            ("1799999000", 1),
            ("1800000000000", 0),
            ("1799999000000", 1),
            ("1800000000000000", 0),
            ("1800000000000000000", 0),
            ("1799999000000000000", 1),
        ] {
            let body = format!(
                r#"{{"metrics":[{{"fields":{{"v":1}},"name":"m","tags":{{}},"timestamp":{ts}}}]}}"#
            );
            assert_eq!(parse_at(&body, now).unwrap().late, late, "{ts}");
        }
    }

    #[test]
    fn names_that_are_not_levels_are_written_as_levels() {
        let body =
            r#"{"metrics":[{"fields":{"a/b":1,"c+#":2},"name":"","tags":{"host":"x/y","t":""}}]}"#;
        let b = parse_at(body, 0.0).unwrap();
        assert_eq!(
            Batch::pairs(&b),
            [
                ("iotitan/http/x_y/_/_/a_b", "1"),
                ("iotitan/http/x_y/_/_/c__", "2")
            ]
        );
    }

    #[test]
    fn what_is_not_a_batch_is_refused_whole() {
        for (body, code) in [
            ("", "bad_json"),
            ("cpu,host=pi4 usage_idle=98.5 1458229140", "bad_json"),
            ("[]", "bad_reading"),
            (r#"{"metrics":{}}"#, "bad_reading"),
            (r#"{"metrics":[1]}"#, "bad_reading"),
            (r#"{"metrics":[{"fields":{"v":1}}]}"#, "bad_reading"),
            (r#"{"metrics":[{"name":"m"}]}"#, "bad_reading"),
            (
                r#"{"metrics":[{"name":"m","fields":{"v":[1]}}]}"#,
                "bad_reading",
            ),
            (
                r#"{"metrics":[{"name":"m","fields":{"v":1},"tags":{"t":1}}]}"#,
                "bad_reading",
            ),
            (
                r#"{"metrics":[{"name":"m","fields":{"v":1},"timestamp":"x"}]}"#,
                "bad_reading",
            ),
            (
                r#"{"metrics":[{"name":"m","fields":{"v":1e400}}]}"#,
                "bad_json",
            ),
        ] {
            let e = parse_at(body, 0.0).unwrap_err();
            assert_eq!(e.code(), code, "{body}: {e}");
        }
        // One bad metric refuses the batch: nothing of it is published.
        let body = r#"{"metrics":[{"name":"m","fields":{"v":1}},{"name":"m","fields":[]}]}"#;
        assert!(parse_at(body, 0.0).is_err());
        assert_eq!(
            Batch::pairs(&parse_at(r#"{"metrics":[]}"#, 0.0).unwrap()),
            []
        );
    }

    proptest::proptest! {
        /// Whatever the bytes, parsing answers, and every message it makes has a
        /// publishable topic.
        #[test]
        fn any_body_is_answered(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let areas = PrivateAreas::default();
            let rules = Rules { prefix: "p", areas: &areas, now: 0.0, disorder: Duration::ZERO };
            if let Ok(b) = parse(&body, &rules) {
                for m in b.messages {
                    proptest::prop_assert!(crate::topic::check_publish_topic(&m.topic).is_ok());
                }
            }
        }
    }
}
