//! Which channel field a message fills: pure, built once from the config.
//!
//! Field keys are series names as [`payload::Extractor`] gives them: a plain topic, or
//! `<topic>/<field path>` for topics with `[[payload.json]]` rules. So a mapped
//! `zigbee2mqtt/bed/temperature` makes the bridge subscribe to `zigbee2mqtt/bed` and read the
//! field from its JSON, exactly as stats and alerts read it.
//!
//! [`payload::Extractor`]: crate::payload::Extractor

use super::batch::Value;
use crate::config::Config;
use crate::payload::{Extractor, Reading, Rejected};
use std::collections::{BTreeSet, HashMap};

/// Longest status text kept (ThingSpeak's status field is short).
pub const MAX_STATUS: usize = 255;

/// Where messages go: to channel indexes (in config order) and their fields.
#[derive(Debug, Clone)]
pub struct Routes {
    fields: HashMap<String, Vec<(usize, u8)>>,
    status: HashMap<String, Vec<usize>>,
    extractor: Extractor,
    subscriptions: Vec<String>,
}

impl Routes {
    /// The routes of every `[[bridge.channel]]`.
    pub fn new(cfg: &Config) -> Self {
        let mut fields: HashMap<String, Vec<(usize, u8)>> = HashMap::new();
        let mut status: HashMap<String, Vec<usize>> = HashMap::new();
        let mut subs = BTreeSet::new();
        for (i, ch) in cfg.bridge.channel.iter().enumerate() {
            for (series, n) in ch.fields.iter() {
                fields.entry(series.to_owned()).or_default().push((i, n));
                subs.insert(series.to_owned());
                for rule in &cfg.payload.json {
                    for path in &rule.fields {
                        let suffix = format!("/{}", path.suffix());
                        if let Some(topic) = series.strip_suffix(&suffix)
                            && rule.topics.matches(topic)
                        {
                            subs.insert(topic.to_owned());
                        }
                    }
                }
            }
            if let Some(t) = &ch.status_topic {
                status.entry(t.clone()).or_default().push(i);
                subs.insert(t.clone());
            }
        }
        Routes {
            fields,
            status,
            extractor: cfg.payload.extractor(),
            subscriptions: subs.into_iter().collect(),
        }
    }

    /// The topics to subscribe to.
    pub fn subscriptions(&self) -> &[String] {
        &self.subscriptions
    }

    /// Append the `(channel index, value)` pairs of one message to `out`. A payload mapped
    /// to a field that is not a number is rejected (the caller counts it); status topics take
    /// any text.
    pub fn route(
        &self,
        topic: &str,
        payload: &[u8],
        out: &mut Vec<(usize, Value)>,
    ) -> Result<(), Rejected> {
        if let Some(chans) = self.status.get(topic) {
            let text = status_text(payload);
            out.extend(chans.iter().map(|&i| (i, Value::Status(text.clone()))));
        }
        let mut readings = Vec::new();
        match self.extractor.readings(topic, payload, &mut readings) {
            Ok(()) => {}
            // Only an error if this topic was meant to feed a field.
            Err(e) if self.fields.contains_key(topic) => return Err(e),
            Err(_) => return Ok(()),
        }
        for Reading { series, value } in readings {
            if let Some(targets) = self.fields.get(&series) {
                out.extend(targets.iter().map(|&(i, n)| (i, Value::Field(n, value))));
            }
        }
        Ok(())
    }
}

/// A payload as status text: UTF-8 (invalid bytes replaced), one line, trimmed, cut.
fn status_text(payload: &[u8]) -> String {
    String::from_utf8_lossy(payload)
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_STATUS)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes() -> Routes {
        let cfg = Config::parse(
            r#"
[[payload.json]]
topics = "zigbee2mqtt/+"
fields = ["temperature", "a.b"]

[[bridge.channel]]
id = 1
fields = { "home/t" = 1, "zigbee2mqtt/bed/temperature" = 2, "zigbee2mqtt/bed/a/b" = 3 }
status_topic = "home/status"

[[bridge.channel]]
id = 2
fields = { "home/t" = 5 }
"#,
            "t",
        )
        .unwrap();
        Routes::new(&cfg)
    }

    #[test]
    fn subscribes_to_mapped_topics_and_json_sources() {
        assert_eq!(
            routes().subscriptions(),
            [
                "home/status",
                "home/t",
                "zigbee2mqtt/bed",
                "zigbee2mqtt/bed/a/b",
                "zigbee2mqtt/bed/temperature"
            ]
        );
    }

    #[test]
    fn a_topic_feeds_every_channel_that_maps_it() {
        let r = routes();
        let mut out = Vec::new();
        r.route("home/t", b"21.5", &mut out).unwrap();
        assert_eq!(
            out,
            [(0, Value::Field(1, 21.5)), (1, Value::Field(5, 21.5))]
        );
        out.clear();
        r.route(
            "zigbee2mqtt/bed",
            br#"{"temperature":19,"a":{"b":2}}"#,
            &mut out,
        )
        .unwrap();
        assert_eq!(out, [(0, Value::Field(2, 19.0)), (0, Value::Field(3, 2.0))]);
    }

    #[test]
    fn junk_is_rejected_and_unmapped_topics_ignored() {
        let r = routes();
        let mut out = Vec::new();
        assert_eq!(
            r.route("home/t", b"NaN", &mut out),
            Err(Rejected::NotFinite)
        );
        assert_eq!(r.route("other", b"junk", &mut out), Ok(()));
        assert!(out.is_empty());
    }

    #[test]
    fn status_is_one_short_line() {
        let r = routes();
        let mut out = Vec::new();
        let long = format!(" door\nopen\u{7} {}", "x".repeat(400));
        r.route("home/status", long.as_bytes(), &mut out).unwrap();
        let [(0, Value::Status(s))] = &out[..] else {
            panic!("{out:?}")
        };
        assert!(s.starts_with("door open  x"), "{s:?}");
        assert_eq!(s.chars().count(), MAX_STATUS);
    }
}
