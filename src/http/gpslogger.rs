//! GPSLogger for Android's "custom URL" → MQTT messages (docs/HTTP.md "GPSLogger"). Pure: no
//! I/O, the clock passed in.
//!
//! GPSLogger fills placeholders into a URL the user writes (`?lat=%LAT&lon=%LON&time=%TIME
//! &batt=%BATT&spd=%SPD`) and sends it as a `GET`, or the same `name=value` pairs (or a JSON
//! object) as a `POST` body without a Content-Type. Each pair becomes one message on
//! `<ingest_prefix>/gpslogger/<device>/<name>`; the device is the `device` parameter, else
//! the phone's serial (`ser`, `%SER`) or Android id (`aid`, `%AID`), else `gpslogger`. The
//! app retries anything but a 2xx.

use super::reading::{
    Batch, LATITUDE, LONGITUDE, Message, ReadingError, Rules, check_text_value, level_topic,
    push_level, scalar,
};
use serde_json::Value;

/// The device of a request that names none.
pub const DEFAULT_DEVICE: &str = "gpslogger";

/// Parameters that name the device, in the order they are looked for.
const DEVICE: [&str; 3] = ["device", "ser", "aid"];

/// The `name=value` pairs of a request: the query string's, then the body's (a form, or a
/// flat JSON object). The app sends its body without a Content-Type unless the user adds one,
/// so a body that starts with `{` is JSON whatever it is labelled; one labelled JSON (`json`)
/// must be a JSON object, not a form made of whatever it holds.
pub fn pairs(
    query: Option<&str>,
    body: &[u8],
    json: bool,
) -> Result<Vec<(String, String)>, ReadingError> {
    let mut out: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    let text = std::str::from_utf8(body)
        .map_err(|_| ReadingError::Shape("the body must be UTF-8".into()))?;
    if json || text.trim_start().starts_with('{') {
        let Value::Object(obj) =
            serde_json::from_str(text).map_err(|e| ReadingError::Json(e.to_string()))?
        else {
            return Err(ReadingError::Shape("the body must be a JSON object".into()));
        };
        for (k, v) in obj {
            let v = match scalar(&v) {
                Some(v) => v,
                None if v.is_null() => continue,
                None => {
                    return Err(ReadingError::Shape(format!(
                        "{k:?} must be a number, a boolean or a string"
                    )));
                }
            };
            out.push((k, v));
        }
    } else {
        out.extend(form_urlencoded::parse(text.trim().as_bytes()).into_owned());
    }
    Ok(out)
}

/// The messages of a request's pairs.
pub fn parse(pairs: &[(String, String)], rules: &Rules<'_>) -> Result<Batch, ReadingError> {
    let get = |names: &[&str]| {
        names.iter().find_map(|n| {
            pairs
                .iter()
                .find(|(k, v)| k.eq_ignore_ascii_case(n) && !v.trim().is_empty())
                .map(|(_, v)| v.trim())
        })
    };
    let mut device = String::new();
    push_level(&mut device, get(&DEVICE).unwrap_or(DEFAULT_DEVICE));
    let number = |names: &[&str]| get(names).and_then(|v| v.parse::<f64>().ok());
    let mut batch = Batch::default();
    let private = rules.withholds(number(&LATITUDE), number(&LONGITUDE), &mut batch);
    let fix = get(&["timestamp"])
        .and_then(|t| t.parse::<f64>().ok())
        .or_else(|| {
            get(&["time"]).and_then(|t| {
                chrono::DateTime::parse_from_rfc3339(t)
                    .ok()
                    .map(|t| t.timestamp_micros() as f64 / 1e6)
            })
        });
    let late = fix.is_some_and(|t| rules.late(t));
    let path = format!("{}/gpslogger/{device}", rules.prefix);
    for (k, v) in pairs {
        let v = v.trim();
        let location = LATITUDE
            .iter()
            .chain(&LONGITUDE)
            .any(|n| k.eq_ignore_ascii_case(n));
        if v.is_empty() || DEVICE.iter().any(|n| k.eq_ignore_ascii_case(n)) || (private && location)
        {
            continue;
        }
        let topic = level_topic(&path, k, &format!("parameter {k:?}"))?;
        check_text_value(v, &|| format!("parameter {k:?}"))?;
        batch.messages.push(Message {
            topic,
            payload: v.to_owned(),
        });
    }
    if late {
        batch.late = batch.messages.len();
    }
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::privacy::PrivateAreas;
    use std::time::Duration;

    fn run(query: Option<&str>, body: &str, areas: &PrivateAreas) -> Result<Batch, ReadingError> {
        let rules = Rules {
            prefix: "iotitan/http",
            areas,
            now: 1_764_550_100.0,
            disorder: Duration::from_secs(300),
        };
        parse(&pairs(query, body.as_bytes(), false)?, &rules)
    }

    #[test]
    fn a_get_with_placeholders_filled_in() {
        // GPSLogger's default URL, as the user edited it, with the placeholders filled in.
        let q = "lat=-34.95&longitude=138.53&time=2025-12-01T00%3A47%3A30.000Z&s=1.5&batt=91.0&ser=R58M";
        let b = run(Some(q), "", &PrivateAreas::default()).unwrap();
        let p = "iotitan/http/gpslogger/R58M";
        assert_eq!(
            Batch::pairs(&b),
            [
                (&*format!("{p}/lat"), "-34.95"),
                (&format!("{p}/longitude"), "138.53"),
                (&format!("{p}/time"), "2025-12-01T00:47:30.000Z"),
                (&format!("{p}/s"), "1.5"),
                (&format!("{p}/batt"), "91.0"),
            ]
        );
        assert_eq!((b.late, b.private), (0, 0));
    }

    #[test]
    fn a_post_body_without_content_type_a_form_or_json() {
        let home = PrivateAreas::example_home();
        let b = run(None, "lat=-34.92&lon=138.6&acc=5&device=Pixel", &home).unwrap();
        assert_eq!(
            Batch::pairs(&b),
            [("iotitan/http/gpslogger/Pixel/acc", "5")]
        );
        assert_eq!(b.private, 2);
        let b = run(
            Some("device=p"),
            r#"{"lat": -34.95, "lon": 138.53, "alt": null}"#,
            &home,
        )
        .unwrap();
        assert_eq!(
            Batch::pairs(&b),
            [
                ("iotitan/http/gpslogger/p/lat", "-34.95"),
                ("iotitan/http/gpslogger/p/lon", "138.53")
            ]
        );
        assert_eq!(b.private, 0);
    }

    #[test]
    fn refusals_and_late_fixes() {
        let none = PrivateAreas::default();
        assert_eq!(
            run(Some("lat=nan"), "", &none).unwrap_err().code(),
            "non_finite"
        );
        assert_eq!(run(None, "{", &none).unwrap_err().code(), "bad_json");
        // Labelled JSON, it must be a JSON object (unlabelled, it is a form).
        let labelled = |body: &str| pairs(None, body.as_bytes(), true).map_err(|e| e.code());
        assert_eq!(labelled("[null, null]"), Err("bad_reading"));
        assert_eq!(labelled("lat=1"), Err("bad_json"));
        assert_eq!(labelled(" {\"lat\": 1}").unwrap().len(), 1);
        assert_eq!(
            run(None, r#"{"a": [1]}"#, &none).unwrap_err().code(),
            "bad_reading"
        );
        // Empty placeholders (no altitude from the network provider) are left out.
        assert_eq!(
            run(Some("alt=&lat=1"), "", &none).unwrap().messages.len(),
            1
        );
        assert_eq!(
            run(Some("timestamp=1764540000&lat=1"), "", &none)
                .unwrap()
                .late,
            2
        );
        assert_eq!(run(None, "", &none).unwrap(), Batch::default());
    }
}
