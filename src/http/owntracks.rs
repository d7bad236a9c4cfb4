//! The bodies of `POST /api/v1/owntracks` → MQTT messages (docs/HTTP.md "OwnTracks"). Pure:
//! no I/O, the clock passed in.
//!
//! OwnTracks (Android, iOS) in HTTP mode posts the JSON it would publish over MQTT:
//! `{"_type":"location","lat":…,"lon":…,"tst":…,"batt":…,"acc":…,"tid":"aa",…}`. A location
//! becomes one message per field on `<ingest_prefix>/owntracks/<user>/<device>/<field>`
//! (`…/owntracks/jane/phone/batt 87`), the user and device named as the Recorder names them.
//! The app retries anything but a 2xx (Android up to 100 000 times; iOS drops a message on a
//! 4xx), so what is not ours to record is answered 200 and left out: other `_type`s
//! (transitions, waypoints, cards), and a body of length zero ("a friend was deleted").

use super::reading::{Batch, Message, ReadingError, Rules, level_topic, push_level, scalar};
use serde_json::Value;

/// The Recorder's names for a user and a device that did not say theirs.
pub const DEFAULT_USER: &str = "owntracks";
/// See [`DEFAULT_USER`].
pub const DEFAULT_DEVICE: &str = "phone";

/// Fields that are not readings: the message's type, the MQTT topic HTTP mode adds, and the
/// lists of regions (arrays: no one value).
const NOT_READINGS: [&str; 4] = ["_type", "topic", "inregions", "inrids"];

/// Fields OwnTracks always sends as numbers.
const NUMBERS: [&str; 3] = ["lat", "lon", "tst"];

/// Parse an OwnTracks body posted for `user`'s `device` (already topic levels).
pub fn parse(
    body: &[u8],
    user: &str,
    device: &str,
    rules: &Rules<'_>,
) -> Result<Batch, ReadingError> {
    let mut batch = Batch::default();
    if body.is_empty() {
        return Ok(batch);
    }
    let value: Value =
        serde_json::from_slice(body).map_err(|e| ReadingError::Json(e.to_string()))?;
    let Value::Object(obj) = value else {
        return Err(ReadingError::Shape(
            "an OwnTracks message is a JSON object with \"_type\"".into(),
        ));
    };
    // OwnTracks' JSON format gives these as numbers in every message that has them: a text
    // latitude would be recorded as a reading no chart or private area could read.
    if obj.get("_type").is_some_and(|v| !v.is_string()) {
        return Err(ReadingError::Shape("\"_type\" must be a string".into()));
    }
    for k in NUMBERS {
        if obj.get(k).is_some_and(|v| !v.is_number()) {
            return Err(ReadingError::Shape(format!(
                "{k:?} must be a number, as OwnTracks sends it"
            )));
        }
    }
    if obj.get("_type").and_then(Value::as_str) != Some("location") {
        return Ok(batch);
    }
    let (lat, lon) = (
        obj.get("lat").and_then(Value::as_f64),
        obj.get("lon").and_then(Value::as_f64),
    );
    let private = rules.withholds(lat, lon, &mut batch);
    let late = obj
        .get("tst")
        .and_then(Value::as_f64)
        .is_some_and(|tst| rules.late(tst));
    let path = format!("{}/owntracks/{user}/{device}", rules.prefix);
    for (k, v) in &obj {
        if NOT_READINGS.contains(&k.as_str()) || (private && (k == "lat" || k == "lon")) {
            continue;
        }
        // Integer fields may arrive as `0.0`: published as the number they are.
        let Some(payload) = scalar(v) else {
            continue;
        };
        let topic = level_topic(&path, k, &format!("field {k:?}"))?;
        batch.messages.push(Message { topic, payload });
    }
    if late {
        batch.late = batch.messages.len();
    }
    Ok(batch)
}

/// A user or device name as OwnTracks and the Recorder take it: lower-cased, one topic level.
pub fn level(name: &str) -> String {
    let mut out = String::new();
    push_level(&mut out, &name.trim().to_lowercase());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::privacy::PrivateAreas;
    use std::time::Duration;

    fn parse_with(body: &str, areas: &PrivateAreas) -> Result<Batch, ReadingError> {
        let rules = Rules {
            prefix: "iotitan/http",
            areas,
            now: 1_764_550_100.0,
            disorder: Duration::from_secs(300),
        };
        parse(body.as_bytes(), "jane", "phone", &rules)
    }

    /// A location as the booklet's JSON format documents it.
    const LOCATION: &str = r#"{"_type":"location","acc":13,"alt":42,"batt":87,"bs":1,"conn":"w","created_at":1764550060,"lat":-34.95,"lon":138.53,"m":1,"t":"u","tid":"jn","tst":1764550050,"vac":3,"vel":0.0,"inregions":["home"],"topic":"owntracks/jane/phone"}"#;

    #[test]
    fn a_location_is_one_message_per_field() {
        let b = parse_with(LOCATION, &PrivateAreas::default()).unwrap();
        let p = "iotitan/http/owntracks/jane/phone";
        let want: Vec<(String, &str)> = [
            ("acc", "13"),
            ("alt", "42"),
            ("batt", "87"),
            ("bs", "1"),
            ("conn", "w"),
            ("created_at", "1764550060"),
            ("lat", "-34.95"),
            ("lon", "138.53"),
            ("m", "1"),
            ("t", "u"),
            ("tid", "jn"),
            ("tst", "1764550050"),
            ("vac", "3"),
            ("vel", "0.0"),
        ]
        .into_iter()
        .map(|(k, v)| (format!("{p}/{k}"), v))
        .collect();
        let got: Vec<(String, &str)> = Batch::pairs(&b)
            .into_iter()
            .map(|(t, v)| (t.to_owned(), v))
            .collect();
        assert_eq!(got, want);
        assert_eq!((b.late, b.private), (0, 0));
    }

    #[test]
    fn a_location_inside_a_private_area_is_withheld_the_rest_kept() {
        // Outside: kept.
        assert_eq!(
            parse_with(LOCATION, &PrivateAreas::example_home())
                .unwrap()
                .private,
            0
        );
        let areas = PrivateAreas::example_home();
        let home = LOCATION
            .replace("-34.95", "-34.92")
            .replace("138.53", "138.6");
        let b = parse_with(&home, &areas).unwrap();
        assert!(
            b.messages
                .iter()
                .all(|m| !m.topic.ends_with("/lat") && !m.topic.ends_with("/lon"))
        );
        assert_eq!(b.messages.len(), 12);
        assert_eq!(b.private, 2);
    }

    #[test]
    fn what_is_not_a_location_is_answered_and_left_out() {
        for body in [
            "",
            r#"{"_type":"transition","event":"enter","desc":"home","tst":1}"#,
            r#"{"_type":"card","name":"Jane"}"#,
            r#"{"lat":1,"lon":2}"#,
        ] {
            assert_eq!(
                parse_with(body, &PrivateAreas::default()).unwrap(),
                Batch::default(),
                "{body}"
            );
        }
        for body in [
            "{",
            "[]",
            "1",
            r#"{"_type":"location","lat":"-34.9","lon":138.6}"#,
            r#"{"_type":"transition","tst":"1"}"#,
            r#"{"_type":{},"lat":0}"#,
        ] {
            assert!(
                parse_with(body, &PrivateAreas::default()).is_err(),
                "{body}"
            );
        }
    }

    #[test]
    fn an_old_fix_is_late() {
        let b = parse_with(
            r#"{"_type":"location","lat":1,"lon":2,"tst":1764540000,"tid":"jn"}"#,
            &PrivateAreas::default(),
        )
        .unwrap();
        assert_eq!(b.late, 4);
    }

    #[test]
    fn names_are_lower_cased_levels() {
        assert_eq!(level(" Jane "), "jane");
        assert_eq!(level("a/b+#"), "a_b__");
        assert_eq!(level(""), "_");
    }
}
