//! The JSON event published on `alerts.events_topic` for every transition.
//!
//! One flat object per transition, so that a dashboard, a Node-RED flow or `jq` can act on it
//! without knowing our topic layout:
//! `{"topic":"iotitan/home/bed/dht11/temperature","rule":"hot","kind":"hi","state":"on",
//! "value":31.2,"threshold":30.0,"since":"2026-11-22T05:00:00.000Z","at":"…"}`.

use super::{Transition, state_payload};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

/// One alert transition, as published.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event<'a> {
    /// The series (the input topic, or `<topic>/<field>`).
    pub topic: &'a str,
    /// The rule's name.
    pub rule: &'a str,
    /// `hi`, `lo` or `stale`.
    pub kind: &'static str,
    /// `on` or `off`.
    pub state: &'static str,
    /// The latest reading; `null` for a sensor never heard from.
    pub value: Option<f64>,
    /// The limit crossed (see [`Transition::threshold`]).
    pub threshold: f64,
    /// When the condition began (RFC 3339, UTC).
    pub since: String,
    /// When the transition was made (RFC 3339, UTC).
    pub at: String,
}

impl<'a> Event<'a> {
    /// The event for `t`, made at wall-clock time `at` (the machine only knows monotonic
    /// time: `since` is placed the same distance before `at`).
    pub fn new(t: &'a Transition, rule: &'a str, at: DateTime<Utc>) -> Self {
        let before = t.at.saturating_duration_since(t.since);
        let since = at - chrono::Duration::from_std(before).unwrap_or_default();
        Event {
            topic: &t.series,
            rule,
            kind: t.kind.as_str(),
            state: state_payload(t.on),
            value: t.value,
            threshold: t.threshold,
            since: since.to_rfc3339_opts(SecondsFormat::Millis, true),
            at: at.to_rfc3339_opts(SecondsFormat::Millis, true),
        }
    }

    /// The JSON text.
    pub fn to_json(&self) -> String {
        // Serializing plain strings and finite numbers cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::Kind;
    use std::time::Duration;

    #[test]
    fn an_event_as_json() {
        let mut t = Transition::example("iotitan/a/temperature", Kind::Hi, Some(31.5), 30.0);
        t.at = t.since + Duration::from_millis(30_500);
        let at = DateTime::parse_from_rfc3339("2026-11-22T05:00:30.500Z")
            .unwrap()
            .with_timezone(&Utc);
        let json: serde_json::Value =
            serde_json::from_str(&Event::new(&t, "hot", at).to_json()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "topic": "iotitan/a/temperature", "rule": "hot", "kind": "hi", "state": "on",
                "value": 31.5, "threshold": 30.0,
                "since": "2026-11-22T05:00:00.000Z", "at": "2026-11-22T05:00:30.500Z"
            })
        );
    }

    #[test]
    fn a_sensor_never_heard_from_has_a_null_value() {
        let t = Transition::example("s", Kind::Stale, None, 600.0);
        let json = Event::new(&t, "r", Utc::now()).to_json();
        assert!(json.contains(r#""value":null"#), "{json}");
        assert!(json.contains(r#""kind":"stale""#), "{json}");
    }
}
