//! The bodies of `POST /api/v1/readings` → MQTT messages (docs/HTTP.md "Reading forms"). Pure: no
//! I/O, the clock passed in.
//!
//! Three forms:
//! - `{"topic": "...", "value": 23.1}` or an array of them (device forms may be mixed in);
//! - a phone app's device form, `{"device_id", "device_timestamp", "properties": {...}}`: each
//!   finite number or boolean leaf becomes `<ingest_prefix>/<device_id>/<path>`, strings are
//!   published as they are, `null` means "no value" and is skipped, nested arrays are refused;
//! - `text/plain`: lines of `topic value`, as `mosquitto_sub -v` prints them.
//!
//! A body is checked whole before anything is published: one bad reading refuses the request,
//! so a client never has to find out which half went through. Numbers are published in the
//! shortest form that reads back as the same `f64` (`23.10` → `23.1`, `87` → `87`); serde_json
//! parses floats exactly (`float_roundtrip`), so that `f64` is the client's number.

use crate::privacy::PrivateAreas;
use crate::topic::{TopicError, check_publish_topic};
use serde_json::{Map, Value};
use std::time::Duration;

/// One message to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// A checked plain topic.
    pub topic: String,
    /// The payload text.
    pub payload: String,
}

/// What a body turned into.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    /// The messages, in body order.
    pub messages: Vec<Message>,
    /// Messages from device forms whose `device_timestamp` is older than the allowed disorder.
    pub late: usize,
    /// Numbers withheld because they place the device inside a private area (two per location).
    pub private: usize,
}

#[cfg(test)]
impl Batch {
    /// The messages as `(topic, payload)`: what the tests compare.
    pub fn pairs(&self) -> Vec<(&str, &str)> {
        self.messages
            .iter()
            .map(|m| (m.topic.as_str(), m.payload.as_str()))
            .collect()
    }
}

/// What parsing needs from the config and the clock.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    /// `http.ingest_prefix`.
    pub prefix: &'a str,
    /// `[[http.private_area]]`.
    pub areas: &'a PrivateAreas,
    /// Now, in seconds since the Unix epoch.
    pub now: f64,
    /// `stats.disorder`: a device timestamp older than this is late.
    pub disorder: Duration,
}

impl Rules<'_> {
    /// Whether a reading its device took at `seconds` (Unix) is older than the allowed
    /// disorder: it is still published, and counted in `late`.
    pub fn late(&self, seconds: f64) -> bool {
        self.now - seconds > self.disorder.as_secs_f64()
    }

    /// Whether a location — a latitude and a longitude, when both are there — lies in a
    /// private area; then its two numbers are withheld, and counted in `batch`.
    pub fn withholds(
        &self,
        latitude: Option<f64>,
        longitude: Option<f64>,
        batch: &mut Batch,
    ) -> bool {
        let private = matches!(
            (latitude, longitude),
            (Some(lat), Some(lon)) if self.areas.find(lon, lat).is_some()
        );
        if private {
            batch.private += 2;
        }
        private
    }
}

/// The names a flat form gives a latitude and a longitude (GPSLogger's parameters,
/// Telegraf's fields): the ones the read API's track pairs too.
pub(crate) use crate::privacy::{LATITUDE, LONGITUDE};

/// A JSON scalar as a payload: numbers as written, booleans `true`/`false`, strings as they
/// are; `None` for null, arrays and objects.
pub(crate) fn scalar(v: &Value) -> Option<String> {
    match v {
        // serde_json only makes finite numbers (1e400 fails to parse).
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::String(s) => Some(s.clone()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

pub(crate) use crate::topic::push_level;

/// The topic `path/level`, `level` written as one level ([`push_level`]), checked to be one
/// that can be published to; an error names `at`.
pub(crate) fn level_topic(path: &str, level: &str, at: &str) -> Result<String, ReadingError> {
    let mut topic = format!("{path}/");
    push_level(&mut topic, level);
    check_publish_topic(&topic).map_err(|err| ReadingError::Topic {
        at: at.to_owned(),
        err,
    })?;
    Ok(topic)
}

/// Why a body was refused (all 400).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReadingError {
    /// Not JSON at all.
    #[error("the body is not valid JSON: {0}")]
    Json(String),
    /// NaN, Infinity or a number out of range.
    #[error("{0} is not a finite number")]
    NonFinite(String),
    /// A topic that cannot be published to.
    #[error("{at}: {err}")]
    Topic {
        /// Which reading.
        at: String,
        /// What is wrong with its topic.
        err: TopicError,
    },
    /// Valid JSON (or text) of the wrong shape.
    #[error("{0}")]
    Shape(String),
}

/// A body that cannot be read as readings is a `400` with the error's own code.
impl From<ReadingError> for super::error::ApiError {
    fn from(e: ReadingError) -> Self {
        super::error::ApiError::bad_request(e.code(), e.to_string())
    }
}

impl ReadingError {
    /// The `error` code of the answer.
    pub fn code(&self) -> &'static str {
        match self {
            ReadingError::Json(_) => "bad_json",
            ReadingError::NonFinite(_) => "non_finite",
            ReadingError::Topic { .. } => "bad_topic",
            ReadingError::Shape(_) => "bad_reading",
        }
    }
}

/// Parse a JSON body.
pub fn parse_json(body: &[u8], rules: &Rules<'_>) -> Result<Batch, ReadingError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| json_error(body, &e))?;
    let mut batch = Batch::default();
    match &value {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                one(item, &format!("reading {}", i + 1), rules, &mut batch)?;
            }
        }
        other => one(other, "the reading", rules, &mut batch)?,
    }
    Ok(batch)
}

/// Parse a `text/plain` body: lines of `topic value` (the first space separates them; the
/// value may hold more spaces). Blank lines are skipped.
pub fn parse_text(body: &[u8]) -> Result<Batch, ReadingError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ReadingError::Shape("a text/plain body must be UTF-8".into()))?;
    // JSON sent as text (Telegraf's default Content-Type for its JSON batches): its first
    // space would split it into a topic such as `{"metrics":` and a value, garbage stored as
    // a reading while the client believes it was delivered. No topic of ours starts so.
    if text.trim_start().starts_with(['{', '[']) {
        return Err(ReadingError::Shape(
            "the text/plain body is JSON, not lines of `topic value`: send it with \
             Content-Type: application/json (Telegraf's JSON batches go to /api/v1/telegraf)"
                .into(),
        ));
    }
    let mut batch = Batch::default();
    for (i, line) in text.lines().enumerate() {
        let at = || format!("line {}", i + 1);
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            continue;
        }
        let (topic, value) = line
            .split_once(' ')
            .filter(|(_, v)| !v.trim().is_empty())
            .ok_or_else(|| ReadingError::Shape(format!("{}: expected `topic value`", at())))?;
        check_publish_topic(topic).map_err(|err| ReadingError::Topic { at: at(), err })?;
        check_text_value(value, &at)?;
        batch.messages.push(Message {
            topic: topic.to_owned(),
            payload: value.to_owned(),
        });
    }
    Ok(batch)
}

/// A text value that reads as a number must be a finite one (`NaN`, `inf`, `1e400` are not).
pub(crate) fn check_text_value(value: &str, at: &dyn Fn() -> String) -> Result<(), ReadingError> {
    match value.trim().parse::<f64>() {
        Ok(v) if !v.is_finite() => Err(ReadingError::NonFinite(format!(
            "{}: the value {:?}",
            at(),
            cut(value.trim())
        ))),
        _ => Ok(()),
    }
}

/// Map a serde error to ours, recognising the non-finite numbers JSON cannot carry: `1e400`
/// (serde: "number out of range") and the `NaN`/`Infinity` literals some encoders write.
fn json_error(body: &[u8], e: &serde_json::Error) -> ReadingError {
    let msg = e.to_string();
    if msg.contains("number out of range") {
        return ReadingError::NonFinite(format!(
            "a number at line {} column {} (out of range)",
            e.line(),
            e.column()
        ));
    }
    if e.is_syntax() {
        // The error position is on the offending token.
        let text = String::from_utf8_lossy(body);
        if let Some(line) = text.lines().nth(e.line().saturating_sub(1)) {
            let col = e.column().saturating_sub(1);
            let start = col.saturating_sub(1).min(line.len());
            let start = (0..=start)
                .rev()
                .find(|&i| line.is_char_boundary(i))
                .unwrap_or(0);
            let rest = &line[start..];
            for lit in ["NaN", "-Infinity", "Infinity", "-inf", "inf"] {
                if rest
                    .trim_start_matches([':', ' ', ',', '['])
                    .starts_with(lit)
                {
                    return ReadingError::NonFinite(format!(
                        "{lit} at line {} column {}",
                        e.line(),
                        e.column()
                    ));
                }
            }
        }
    }
    ReadingError::Json(msg)
}

/// One reading object: the topic form or the device form.
fn one(v: &Value, at: &str, rules: &Rules<'_>, batch: &mut Batch) -> Result<(), ReadingError> {
    let Value::Object(obj) = v else {
        return Err(ReadingError::Shape(format!(
            "{at} must be an object like {{\"topic\": \"a/b\", \"value\": 1}} or a device form"
        )));
    };
    if obj.contains_key("device_id") {
        return device(obj, at, rules, batch);
    }
    for k in obj.keys() {
        if k != "topic" && k != "value" {
            return Err(ReadingError::Shape(format!(
                "{at}: unknown key {:?} (a reading has \"topic\" and \"value\")",
                cut(k)
            )));
        }
    }
    let topic = match obj.get("topic") {
        Some(Value::String(t)) => t,
        _ => {
            return Err(ReadingError::Shape(format!(
                "{at} needs \"topic\" as a string"
            )));
        }
    };
    check_publish_topic(topic).map_err(|err| ReadingError::Topic {
        at: at.to_owned(),
        err,
    })?;
    let payload = match obj.get("value") {
        None | Some(Value::Null) => {
            return Err(ReadingError::Shape(format!("{at} needs a \"value\"")));
        }
        Some(v) => leaf(v, at)?.ok_or_else(|| {
            ReadingError::Shape(format!(
                "{at}: \"value\" must be a number, a boolean or a string"
            ))
        })?,
    };
    batch.messages.push(Message {
        topic: topic.clone(),
        payload,
    });
    Ok(())
}

/// A leaf's payload: numbers as written, booleans as `true`/`false`, strings as they are;
/// `None` for objects and arrays (and null).
fn leaf(v: &Value, at: &str) -> Result<Option<String>, ReadingError> {
    if let Value::String(s) = v {
        check_text_value(s, &|| at.to_owned())?;
    }
    Ok(scalar(v))
}

/// The device form.
fn device(
    obj: &Map<String, Value>,
    at: &str,
    rules: &Rules<'_>,
    batch: &mut Batch,
) -> Result<(), ReadingError> {
    for k in obj.keys() {
        if !matches!(k.as_str(), "device_id" | "device_timestamp" | "properties") {
            return Err(ReadingError::Shape(format!(
                "{at}: unknown key {:?} (a device form has \"device_id\", \"device_timestamp\" \
                 and \"properties\")",
                cut(k)
            )));
        }
    }
    let id = match obj.get("device_id") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => {
            return Err(ReadingError::Shape(format!(
                "{at}: \"device_id\" must be a string"
            )));
        }
    };
    check_level(&id, &format!("{at}: device_id"))?;
    let late = match obj.get("device_timestamp") {
        None | Some(Value::Null) => false,
        Some(v) => {
            let ts = timestamp(v).ok_or_else(|| {
                ReadingError::Shape(format!(
                    "{at}: \"device_timestamp\" must be Unix seconds (or milliseconds) or an \
                     RFC 3339 time"
                ))
            })?;
            rules.late(ts)
        }
    };
    let Some(Value::Object(props)) = obj.get("properties") else {
        return Err(ReadingError::Shape(format!(
            "{at}: \"properties\" must be an object"
        )));
    };
    let before = batch.messages.len();
    let prefix = format!("{}/{id}", rules.prefix);
    walk(props, &prefix, at, rules, batch)?;
    if late {
        batch.late += batch.messages.len() - before;
    }
    Ok(())
}

/// Unix seconds, milliseconds (a number above 10^11 is taken as milliseconds: phone apps send
/// both) or RFC 3339 text → seconds.
fn timestamp(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => {
            let x = n.as_f64()?;
            Some(if x.abs() > 1e11 { x / 1000.0 } else { x })
        }
        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.timestamp_micros() as f64 / 1e6),
        _ => None,
    }
}

/// A key that becomes one topic level.
fn check_level(level: &str, what: &str) -> Result<(), ReadingError> {
    if level.is_empty() || level.contains(['/', '+', '#', '\0']) {
        return Err(ReadingError::Shape(format!(
            "{what} {:?} must be one topic level: not empty, no '/', '+' or '#'",
            cut(level)
        )));
    }
    Ok(())
}

fn walk(
    obj: &Map<String, Value>,
    path: &str,
    at: &str,
    rules: &Rules<'_>,
    batch: &mut Batch,
) -> Result<(), ReadingError> {
    // A location: a latitude/longitude pair of numbers in one object.
    let private = rules.withholds(
        obj.get("latitude").and_then(Value::as_f64),
        obj.get("longitude").and_then(Value::as_f64),
        batch,
    );
    for (k, v) in obj {
        if private && (k == "latitude" || k == "longitude") {
            continue;
        }
        check_level(k, &format!("{at}: property"))?;
        let topic = format!("{path}/{k}");
        match v {
            Value::Object(inner) => walk(inner, &topic, at, rules, batch)?,
            Value::Array(_) => {
                return Err(ReadingError::Shape(format!(
                    "{at}: property {:?} is an array; arrays are refused (give each value a name)",
                    cut(&topic)
                )));
            }
            Value::Null => {}
            leaf_value => {
                let what = format!("{at}: {}", cut(&topic));
                check_publish_topic(&topic).map_err(|err| ReadingError::Topic {
                    at: at.to_owned(),
                    err,
                })?;
                let payload = leaf(leaf_value, &what)?.unwrap_or_default();
                batch.messages.push(Message { topic, payload });
            }
        }
    }
    Ok(())
}

/// Client text repeated in an error, cut to a readable length.
fn cut(s: &str) -> String {
    if s.len() <= 120 {
        return s.to_owned();
    }
    let mut end = 120;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: f64 = 1_764_550_000.0;

    fn json(body: &str) -> Result<Batch, ReadingError> {
        let a = PrivateAreas::example_home();
        let rules = Rules {
            prefix: "iotitan/http",
            areas: &a,
            now: NOW,
            disorder: Duration::from_secs(120),
        };
        parse_json(body.as_bytes(), &rules)
    }

    /// Device-form messages come in key order; compare them as sets.
    fn sorted(b: &Batch) -> Vec<(&str, &str)> {
        let mut v = b.pairs();
        v.sort();
        v
    }

    #[test]
    fn topic_form_single_and_array() {
        let b = json(r#"{"topic": "a/b/t", "value": 23.10}"#).unwrap();
        assert_eq!(Batch::pairs(&b), [("a/b/t", "23.1")]);
        let b = json(r#"[{"topic": "a/t", "value": 1}, {"topic": "a/s", "value": "on"}, {"topic": "a/m", "value": true}]"#).unwrap();
        assert_eq!(
            Batch::pairs(&b),
            [("a/t", "1"), ("a/s", "on"), ("a/m", "true")]
        );
        assert_eq!(json("[]").unwrap(), Batch::default());
    }

    #[test]
    fn numbers_in_their_shortest_form() {
        let b = json(r#"{"topic": "a", "value": 23.1}"#).unwrap();
        assert_eq!(b.messages[0].payload, "23.1");
        let b = json(r#"{"topic": "a", "value": -7}"#).unwrap();
        assert_eq!(b.messages[0].payload, "-7");
    }

    #[test]
    fn device_form() {
        let body = r#"{"device_id": "phone1", "device_timestamp": 1764550000,
            "properties": {"battery": {"level": 87, "temperature": 31.5, "charging": false},
                           "location": {"latitude": -34.80, "longitude": 138.6},
                           "name": "pixel", "gone": null}}"#;
        let b = json(body).unwrap();
        assert_eq!(
            sorted(&b),
            [
                ("iotitan/http/phone1/battery/charging", "false"),
                ("iotitan/http/phone1/battery/level", "87"),
                ("iotitan/http/phone1/battery/temperature", "31.5"),
                ("iotitan/http/phone1/location/latitude", "-34.8"),
                ("iotitan/http/phone1/location/longitude", "138.6"),
                ("iotitan/http/phone1/name", "pixel"),
            ]
        );
        assert_eq!((b.late, b.private), (0, 0));
    }

    #[test]
    fn private_location_is_withheld_and_counted() {
        let body = r#"{"device_id": "p", "properties": {"location": {"latitude": -34.92,
            "longitude": 138.60, "accuracy": 5}, "battery": {"level": 50}}}"#;
        let b = json(body).unwrap();
        assert_eq!(
            sorted(&b),
            [
                ("iotitan/http/p/battery/level", "50"),
                ("iotitan/http/p/location/accuracy", "5"),
            ]
        );
        assert_eq!(b.private, 2);
        // On the boundary: private too.
        let b =
            json(r#"{"device_id": "p", "properties": {"latitude": -34.91, "longitude": 138.61}}"#)
                .unwrap();
        assert_eq!((b.messages.len(), b.private), (0, 2));
    }

    #[test]
    fn late_device_timestamps_are_counted_not_refused() {
        let old = NOW - 121.0;
        let b = json(&format!(
            r#"{{"device_id": "p", "device_timestamp": {old}, "properties": {{"a": 1, "b": 2}}}}"#
        ))
        .unwrap();
        assert_eq!((b.messages.len(), b.late), (2, 2));
        let ms = (NOW - 60.0) * 1000.0;
        let b = json(&format!(
            r#"{{"device_id": "p", "device_timestamp": {ms}, "properties": {{"a": 1}}}}"#
        ))
        .unwrap();
        assert_eq!(b.late, 0);
        let b = json(
            r#"{"device_id": "p", "device_timestamp": "2020-01-01T00:00:00Z", "properties": {"a": 1}}"#,
        )
        .unwrap();
        assert_eq!(b.late, 1);
    }

    #[test]
    fn refusals() {
        let cases = [
            ("{", "bad_json"),
            (r#"{"topic": "a", "value": NaN}"#, "non_finite"),
            (r#"{"topic": "a", "value": Infinity}"#, "non_finite"),
            (r#"{"topic": "a", "value": -Infinity}"#, "non_finite"),
            (r#"{"topic": "a", "value": 1e400}"#, "non_finite"),
            (r#"{"topic": "a", "value": "NaN"}"#, "non_finite"),
            (r#"{"topic": "a/+/b", "value": 1}"#, "bad_topic"),
            (r#"{"topic": "a/#", "value": 1}"#, "bad_topic"),
            (r#"{"topic": "a//b", "value": 1}"#, "bad_topic"),
            (r#"{"topic": "$SYS/x", "value": 1}"#, "bad_topic"),
            (r#"{"topic": "", "value": 1}"#, "bad_topic"),
            (r#"{"topic": "a", "value": [1]}"#, "bad_reading"),
            (r#"{"topic": "a"}"#, "bad_reading"),
            (r#"{"topic": "a", "value": 1, "qos": 2}"#, "bad_reading"),
            (r#"3"#, "bad_reading"),
            (r#"{"device_id": "a/b", "properties": {}}"#, "bad_reading"),
            (
                r#"{"device_id": "p", "properties": {"x": [1, 2]}}"#,
                "bad_reading",
            ),
            (
                r#"{"device_id": "p", "properties": {"a+": 1}}"#,
                "bad_reading",
            ),
            (r#"{"device_id": "p", "properties": 3}"#, "bad_reading"),
            (
                r#"{"device_id": "p", "device_timestamp": "soon", "properties": {}}"#,
                "bad_reading",
            ),
            (
                r##"[{"topic": "a", "value": 1}, {"topic": "#", "value": 1}]"##,
                "bad_topic",
            ),
        ];
        for (body, code) in cases {
            let e = json(body).unwrap_err();
            assert_eq!(e.code(), code, "{body}: {e}");
        }
        let long = format!(r#"{{"topic": "{}", "value": 1}}"#, "a".repeat(70_000));
        assert_eq!(json(&long).unwrap_err().code(), "bad_topic");
        // The second reading names its place.
        let e = json(r##"[{"topic": "a", "value": 1}, {"topic": "#", "value": 1}]"##).unwrap_err();
        assert!(e.to_string().starts_with("reading 2"), "{e}");
    }

    #[test]
    fn text_form() {
        let b = parse_text(b"a/t 23.1\r\n\nb/s {\"x\": 1}\nc/lwt Connection Lost\n").unwrap();
        assert_eq!(
            Batch::pairs(&b),
            [
                ("a/t", "23.1"),
                ("b/s", "{\"x\": 1}"),
                ("c/lwt", "Connection Lost")
            ]
        );
        for (body, code) in [
            (&b"a/t"[..], "bad_reading"),
            (b"a/t ", "bad_reading"),
            (b"a/+ 1", "bad_topic"),
            (b"a/t nan", "non_finite"),
            (b"a/t inf", "non_finite"),
            (b"a/t 1e400", "non_finite"),
            (b"a/t \xff", "bad_reading"),
            (
                br#"{"metrics":[{"fields":{"v":1},"name":"m","tags":{},"timestamp":1}]}"#,
                "bad_reading",
            ),
            (b"  [1, 2]", "bad_reading"),
        ] {
            let e = parse_text(body).unwrap_err();
            assert_eq!(e.code(), code, "{body:?}: {e}");
        }
    }

    proptest! {
        /// Whatever the bytes, parsing answers (never panics), and every message it makes has
        /// a publishable topic and a payload that is not a non-finite number.
        #[test]
        fn any_body_is_answered(body in prop::collection::vec(any::<u8>(), 0..300)) {
            for batch in [json(&String::from_utf8_lossy(&body)), parse_text(&body)]
                .into_iter()
                .flatten()
            {
                for m in batch.messages {
                    prop_assert!(check_publish_topic(&m.topic).is_ok());
                    prop_assert!(m.payload.trim().parse::<f64>().map_or(true, f64::is_finite));
                }
            }
        }

        /// Readings of the topic form come out as they went in, in order.
        #[test]
        fn topic_form_round_trip(
            readings in prop::collection::vec(("[a-z]{1,8}(/[a-z0-9_]{1,8}){0,4}", -1e9f64..1e9), 0..50)
        ) {
            let body = serde_json::to_string(&readings.iter().map(|(t, v)| {
                serde_json::json!({"topic": t, "value": v})
            }).collect::<Vec<_>>()).unwrap();
            let b = json(&body).unwrap();
            prop_assert_eq!(b.messages.len(), readings.len());
            for (m, (t, v)) in b.messages.iter().zip(&readings) {
                prop_assert_eq!(&m.topic, t);
                prop_assert_eq!(m.payload.parse::<f64>().unwrap(), *v);
            }
        }
    }
}
