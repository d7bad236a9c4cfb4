//! Turning MQTT payloads into numbers: shared by stats and alerts so both read a sensor the
//! same way.
//!
//! Accepted: plain numbers as ESPEasy sends them (`23.1`, ` 7 `, `-1e3`), the words
//! `on/off/true/false` (1/0, any case), and JSON documents from which configured fields are
//! taken (Tasmota `{"AM2301":{"Temperature":24.6}}`, zigbee2mqtt `{"temperature":27.3}`).
//! Anything else, and any non-finite number (`NaN`, `inf`, `1e400`), is rejected: callers
//! count it and go on.

use crate::topic::Filters;
use serde::{Deserialize, Serialize};

/// Why a payload gave no number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// Not a number, boolean word or configured JSON document.
    #[error("not numeric")]
    NotNumeric,
    /// A number that is NaN or infinite (including overflow like `1e400`).
    #[error("not finite")]
    NotFinite,
    /// JSON that lacks the configured field, or where it is not a finite number.
    #[error("JSON field missing or not numeric")]
    MissingField,
    /// The logger cut this payload: its value is unknown.
    #[error("payload was cut")]
    Cut,
}

/// Parse a plain payload: a number or a boolean word.
pub fn parse_plain(payload: &[u8]) -> Result<f64, Rejected> {
    if let Some(v) = short_decimal(payload) {
        return Ok(v);
    }
    let s = std::str::from_utf8(payload).map_err(|_| Rejected::NotNumeric)?;
    let s = s.trim();
    if s.len() > 64 {
        return Err(Rejected::NotNumeric);
    }
    if let Some(v) = parse_word(s) {
        return Ok(v);
    }
    // Rust's f64 parser accepts "inf", "NaN" and "infinity": those are rejected as non-finite.
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err(Rejected::NotFinite),
        Err(_) => Err(Rejected::NotNumeric),
    }
}

/// The value of a short plain decimal (`-?digits[.digits]`, at most 15 digits), the way
/// sensors write readings, without a UTF-8 pass, trimming or the general parser.
///
/// Hand-written because this is the hot spot of reading history: the digits form an integer
/// below 2^53 and the divisor a power of ten below 10^16, both exact in `f64`, so the one
/// division is correctly rounded and gives exactly what `str::parse::<f64>` gives (Clinger's
/// fast path). Anything else returns `None` and goes to the general parser.
pub fn short_decimal(b: &[u8]) -> Option<f64> {
    const POW10: [f64; 16] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
    ];
    let (negative, digits) = match b.first()? {
        b'-' => (true, &b[1..]),
        _ => (false, b),
    };
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    let mut mantissa = 0u64;
    let mut count = 0usize;
    let mut point = None;
    for (i, &c) in digits.iter().enumerate() {
        match c {
            b'0'..=b'9' => {
                mantissa = mantissa * 10 + u64::from(c - b'0');
                count += 1;
            }
            b'.' if point.is_none() && i > 0 && i + 1 < digits.len() => point = Some(i),
            _ => return None,
        }
    }
    if count > 15 {
        return None;
    }
    let scale = point.map_or(0, |p| digits.len() - p - 1);
    let v = mantissa as f64 / POW10[scale];
    Some(if negative { -v } else { v })
}

/// Whether `b` is a decimal exactly as `f64`'s `Display` writes the value it parses to:
/// `-?(0|[1-9][0-9]*)(.[0-9]*[1-9])?` with at most 15 digits (any such decimal survives the
/// round trip through `f64` digit for digit, and `Display` writes neither exponents nor
/// trailing zeros). `query` then copies the payload instead of formatting the number, which
/// was a fifth of an export's time.
pub fn is_canonical_decimal(b: &[u8]) -> bool {
    let digits = b.strip_prefix(b"-").unwrap_or(b);
    let (int, frac) = match memchr::memchr(b'.', digits) {
        Some(p) => (&digits[..p], Some(&digits[p + 1..])),
        None => (digits, None),
    };
    let int_ok = int == b"0" || (!int.is_empty() && int[0] != b'0');
    let frac_ok = frac.is_none_or(|f| f.last().is_some_and(|&c| c != b'0'));
    int_ok
        && frac_ok
        && int.len() + frac.map_or(0, <[u8]>::len) <= 15
        && int
            .iter()
            .chain(frac.unwrap_or_default())
            .all(u8::is_ascii_digit)
}

fn parse_word(s: &str) -> Option<f64> {
    const ONE: [&str; 2] = ["on", "true"];
    const ZERO: [&str; 2] = ["off", "false"];
    if ONE.iter().any(|w| s.eq_ignore_ascii_case(w)) {
        Some(1.0)
    } else if ZERO.iter().any(|w| s.eq_ignore_ascii_case(w)) {
        Some(0.0)
    } else {
        None
    }
}

/// Where in a JSON payload a value sits: a dot-separated path (`AM2301.Temperature`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath {
    text: String,
}

impl FieldPath {
    /// A path from its dotted text; empty segments are refused.
    pub fn new(text: &str) -> Result<Self, String> {
        if text.is_empty() || text.split('.').any(str::is_empty) {
            return Err(format!("invalid JSON field path {text:?}: empty segment"));
        }
        Ok(FieldPath {
            text: text.to_owned(),
        })
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The series name suffix: the path with `/` between segments.
    pub fn suffix(&self) -> String {
        self.text.replace('.', "/")
    }

    /// The value at this path in `doc`, if it is a finite number or a boolean.
    pub fn get(&self, doc: &serde_json::Value) -> Option<f64> {
        let mut v = doc;
        for seg in self.text.split('.') {
            v = match v {
                serde_json::Value::Object(m) => m.get(seg)?,
                serde_json::Value::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        match v {
            serde_json::Value::Number(n) => n.as_f64().filter(|x| x.is_finite()),
            serde_json::Value::Bool(b) => Some(f64::from(u8::from(*b))),
            serde_json::Value::String(s) => parse_plain(s.as_bytes()).ok(),
            _ => None,
        }
    }
}

impl Serialize for FieldPath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for FieldPath {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        FieldPath::new(&s).map_err(serde::de::Error::custom)
    }
}

/// `[[payload.json]]`: topics whose payloads are JSON, and the fields to take from them.
///
/// Each field becomes its own series, named `<topic>/<field path with / for .>`, so
/// `zigbee2mqtt/bedroom` with `fields = ["temperature"]` gives the series
/// `zigbee2mqtt/bedroom/temperature` (and stats publishes `…/temperature_mean`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JsonRule {
    /// Topics carrying JSON.
    pub topics: Filters,
    /// Field paths to read.
    pub fields: Vec<FieldPath>,
}

/// One number read from a message.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// The series: the topic, or `<topic>/<field>` for JSON fields.
    pub series: String,
    /// The value.
    pub value: f64,
}

/// Reads numbers from payloads according to the `[[payload.json]]` rules.
#[derive(Debug, Clone, Default)]
pub struct Extractor {
    rules: Vec<JsonRule>,
}

impl Extractor {
    /// An extractor with `rules`; without rules every payload is parsed as plain.
    pub fn new(rules: Vec<JsonRule>) -> Self {
        Extractor { rules }
    }

    /// Whether no JSON rule applies to `topic`: its payload is one plain value, named after
    /// the topic.
    pub fn is_plain(&self, topic: &str) -> bool {
        !self.rules.iter().any(|r| r.topics.matches(topic))
    }

    /// Append the readings of one message to `out`.
    ///
    /// A plain payload gives one reading named after the topic. A topic matched by a JSON rule
    /// gives one reading per field found; if none is found the payload is rejected.
    pub fn readings(
        &self,
        topic: &str,
        payload: &[u8],
        out: &mut Vec<Reading>,
    ) -> Result<(), Rejected> {
        let mut rules = self
            .rules
            .iter()
            .filter(|r| r.topics.matches(topic))
            .peekable();
        if rules.peek().is_none() {
            let value = parse_plain(payload)?;
            out.push(Reading {
                series: topic.to_owned(),
                value,
            });
            return Ok(());
        }
        let doc: serde_json::Value =
            serde_json::from_slice(payload).map_err(|_| Rejected::NotNumeric)?;
        let before = out.len();
        for rule in rules {
            for field in &rule.fields {
                if let Some(value) = field.get(&doc) {
                    out.push(Reading {
                        series: format!("{topic}/{}", field.suffix()),
                        value,
                    });
                }
            }
        }
        if out.len() == before {
            Err(Rejected::MissingField)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_numbers_and_words() {
        assert_eq!(parse_plain(b"23.1"), Ok(23.1));
        assert_eq!(parse_plain(b" -7 \n"), Ok(-7.0));
        assert_eq!(parse_plain(b"1e3"), Ok(1000.0));
        assert_eq!(parse_plain(b"ON"), Ok(1.0));
        assert_eq!(parse_plain(b"off"), Ok(0.0));
        assert_eq!(parse_plain(b"True"), Ok(1.0));
        assert_eq!(parse_plain(b"false"), Ok(0.0));
    }

    #[test]
    fn short_decimals_are_exact() {
        for s in [
            "0",
            "-0",
            "23.1",
            "-7",
            "0.1",
            "1.05",
            "999999999999999",
            "0.00000000000001",
            "-12345.6789",
            "007",
        ] {
            let want: f64 = s.parse().unwrap();
            let got = short_decimal(s.as_bytes()).unwrap();
            assert_eq!(got.to_bits(), want.to_bits(), "{s}");
        }
        for s in [
            "",
            "-",
            ".5",
            "5.",
            "1.2.3",
            "1e3",
            "+1",
            " 1",
            "1 ",
            "9999999999999999",
            "--1",
        ] {
            assert_eq!(short_decimal(s.as_bytes()), None, "{s}");
        }
    }

    proptest::proptest! {
        #[test]
        fn short_decimals_agree_with_the_general_parser(s in "-?[0-9]{1,9}(\\.[0-9]{1,8})?") {
            let want: f64 = s.parse().unwrap();
            if let Some(got) = short_decimal(s.as_bytes()) {
                proptest::prop_assert_eq!(got.to_bits(), want.to_bits());
            }
            proptest::prop_assert_eq!(parse_plain(s.as_bytes()).map(f64::to_bits), Ok(want.to_bits()));
        }

        /// A canonical decimal is what `Display` writes of its value; and what `Display`
        /// writes of a short decimal's value is canonical.
        #[test]
        fn canonical_decimals_are_what_display_writes(s in "-?[0-9]{1,8}(\\.[0-9]{0,7})?") {
            let v: f64 = s.parse().unwrap();
            let shown = v.to_string();
            if is_canonical_decimal(s.as_bytes()) {
                proptest::prop_assert_eq!(&shown, &s);
            }
            proptest::prop_assert!(is_canonical_decimal(shown.as_bytes()), "{}", shown);
        }
    }

    #[test]
    fn canonical_decimals() {
        for s in [
            "0",
            "-0",
            "7",
            "-12.5",
            "0.25",
            "123456789012345",
            "99.000000000001",
        ] {
            assert!(is_canonical_decimal(s.as_bytes()), "{s}");
        }
        for s in [
            "",
            "-",
            "00",
            "01",
            "1.",
            ".5",
            "1.50",
            "1.0",
            "+1",
            "1e3",
            " 1",
            "1 ",
            "1234567890123456",
            "1.2.3",
            "0x1",
            "--1",
        ] {
            assert!(!is_canonical_decimal(s.as_bytes()), "{s}");
        }
    }

    #[test]
    fn junk_and_non_finite_are_rejected() {
        assert_eq!(parse_plain(b"NaN"), Err(Rejected::NotFinite));
        assert_eq!(parse_plain(b"inf"), Err(Rejected::NotFinite));
        assert_eq!(parse_plain(b"-infinity"), Err(Rejected::NotFinite));
        assert_eq!(parse_plain(b"1e400"), Err(Rejected::NotFinite));
        assert_eq!(parse_plain(b""), Err(Rejected::NotNumeric));
        assert_eq!(parse_plain(b"12abc"), Err(Rejected::NotNumeric));
        assert_eq!(parse_plain(b"\xff"), Err(Rejected::NotNumeric));
        assert_eq!(parse_plain(b"Connected"), Err(Rejected::NotNumeric));
        assert_eq!(parse_plain(&[b'1'; 100]), Err(Rejected::NotNumeric));
    }

    fn extractor() -> Extractor {
        Extractor::new(vec![
            JsonRule {
                topics: Filters::of(&["tele/+/SENSOR"]),
                fields: vec![FieldPath::new("AM2301.Temperature").unwrap()],
            },
            JsonRule {
                topics: Filters::of(&["zigbee2mqtt/+"]),
                fields: vec![
                    FieldPath::new("temperature").unwrap(),
                    FieldPath::new("humidity").unwrap(),
                ],
            },
        ])
    }

    #[test]
    fn json_fields_become_series() {
        let x = extractor();
        let mut out = Vec::new();
        x.readings(
            "tele/kitchen/SENSOR",
            br#"{"Time":"2024-01-01T00:00:00","AM2301":{"Temperature":24.6,"Humidity":50}}"#,
            &mut out,
        )
        .unwrap();
        assert_eq!(
            out,
            vec![Reading {
                series: "tele/kitchen/SENSOR/AM2301/Temperature".into(),
                value: 24.6
            }]
        );
        out.clear();
        x.readings(
            "zigbee2mqtt/bed",
            br#"{"temperature":27.3,"humidity":"55"}"#,
            &mut out,
        )
        .unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].value, 55.0);
    }

    #[test]
    fn json_without_fields_is_rejected() {
        let x = extractor();
        let mut out = Vec::new();
        assert_eq!(
            x.readings("zigbee2mqtt/bed", br#"{"battery":3}"#, &mut out),
            Err(Rejected::MissingField)
        );
        assert_eq!(
            x.readings("zigbee2mqtt/bed", b"not json", &mut out),
            Err(Rejected::NotNumeric)
        );
        assert_eq!(
            x.readings("zigbee2mqtt/bed", br#"{"temperature":null}"#, &mut out),
            Err(Rejected::MissingField)
        );
        assert!(out.is_empty());
    }

    #[test]
    fn plain_topics_use_the_topic_as_series() {
        let mut out = Vec::new();
        extractor().readings("iotitan/a/t", b"5", &mut out).unwrap();
        assert_eq!(out[0].series, "iotitan/a/t");
    }

    #[test]
    fn field_paths() {
        assert!(FieldPath::new("").is_err());
        assert!(FieldPath::new("a..b").is_err());
        let p = FieldPath::new("a.1.b").unwrap();
        let doc: serde_json::Value = serde_json::from_str(r#"{"a":[0,{"b":2.5}]}"#).unwrap();
        assert_eq!(p.get(&doc), Some(2.5));
        assert_eq!(p.suffix(), "a/1/b");
    }
}
