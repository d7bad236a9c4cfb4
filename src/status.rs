//! Each program's health, reported where people look (docs/status.md).
//!
//! Every daemon keeps two retained topics under `status.topic_prefix`:
//! - `<prefix>/<program>/<instance>/availability`: `online` on every connection (sent by the
//!   pump, [`crate::mqtt::Pump::online`]) and `offline` as the connection's MQTT will, so a
//!   daemon that dies or loses its network is seen offline within 1.5 keep-alives;
//! - `<prefix>/<program>/<instance>`: a [`Report`] every `status.interval` — its counters and
//!   gauges, each named, typed and explained, so that `iotitan-http` renders every program's
//!   report as Prometheus metrics (`/metrics`) and the dashboard's health panel without
//!   knowing any program's numbers.
//!
//! `<instance>` is `mqtt.client_id`, which scaled-out groups set apart. `iotitan-stats`,
//! which runs and exits, reports once per run and has no availability.

use crate::config::Config;
use chrono::{DateTime, SecondsFormat, Utc};
use rumqttc::{AsyncClient, LastWill, MqttOptions, QoS};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A daemon's availability while connected.
pub const ONLINE: &str = "online";
/// A daemon's availability once its connection is gone (its will) or it stopped.
pub const OFFLINE: &str = "offline";
/// The last level of an availability topic.
pub const AVAILABILITY: &str = "availability";

/// What a metric counts, as Prometheus types them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = MetricKind)]
pub enum Kind {
    /// Only grows (until the program restarts).
    Counter,
    /// Goes up and down.
    Gauge,
}

/// One number of a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Metric {
    /// Snake case, unique in the program (with its labels): `written`, `spool_depth`.
    pub name: String,
    /// Counter or gauge.
    pub kind: Kind,
    /// One sentence: what it counts, in which unit.
    pub help: String,
    /// The value.
    pub value: f64,
    /// More dimensions (`channel`, `status`), if any.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl Metric {
    /// A counter.
    pub fn counter(name: &str, help: &str, value: u64) -> Metric {
        Metric::new(name, Kind::Counter, help, value as f64)
    }

    /// A gauge.
    pub fn gauge(name: &str, help: &str, value: f64) -> Metric {
        Metric::new(name, Kind::Gauge, help, value)
    }

    fn new(name: &str, kind: Kind, help: &str, value: f64) -> Metric {
        Metric {
            name: name.to_owned(),
            kind,
            help: help.to_owned(),
            value,
            labels: BTreeMap::new(),
        }
    }

    /// With the label `key="value"`.
    pub fn label(mut self, key: &str, value: impl Into<String>) -> Metric {
        self.labels.insert(key.to_owned(), value.into());
        self
    }
}

/// A program's status report: the retained JSON of `<prefix>/<program>/<instance>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = StatusReport)]
pub struct Report {
    /// `logger`, `stats`, `alerts`, `bridge`, `http`.
    pub program: String,
    /// `mqtt.client_id`.
    pub instance: String,
    /// The program's version.
    pub version: String,
    /// When it started (RFC 3339).
    pub started: String,
    /// When this report was made (RFC 3339).
    pub at: String,
    /// One line for people: what it is doing, or what is wrong.
    pub summary: String,
    /// Its numbers.
    pub metrics: Vec<Metric>,
}

/// A program's status topics and start time.
#[derive(Debug, Clone)]
pub struct Status {
    program: &'static str,
    instance: String,
    topic: String,
    started: DateTime<Utc>,
}

impl Status {
    /// `program`'s status, or `None` when `status.enabled` is off.
    pub fn of(cfg: &Config, program: &'static str) -> Option<Status> {
        if !cfg.status.enabled {
            return None;
        }
        let instance = crate::config::status_instance(&cfg.mqtt.client_id);
        let topic = format!("{}/{program}/{instance}", cfg.status.topic_prefix);
        Some(Status {
            program,
            instance,
            topic,
            started: Utc::now(),
        })
    }

    /// The report's topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The availability topic.
    pub fn availability(&self) -> String {
        format!("{}/{AVAILABILITY}", self.topic)
    }

    /// Make `offline` the connection's will, retained: the broker publishes it when the
    /// connection ends without a DISCONNECT.
    pub fn set_will(&self, opts: &mut MqttOptions) {
        opts.set_last_will(will(&self.availability()));
    }

    /// The report of `metrics` now, as its topic's JSON payload.
    pub fn report(&self, summary: &str, metrics: Vec<Metric>) -> Vec<u8> {
        // A report of plain strings and numbers always serializes.
        serde_json::to_vec(&self.make(summary, metrics)).unwrap_or_default()
    }

    /// Publish the report of `metrics` now (retained, QoS 1) without waiting: for a client
    /// whose pump tracks no requests (a confirmed pump takes `Requests::fire`). A full request
    /// channel skips this report; the next one replaces it anyway.
    pub fn publish(&self, client: &AsyncClient, summary: &str, metrics: Vec<Metric>) {
        let payload = self.report(summary, metrics);
        if let Err(e) = client.try_publish(self.topic(), QoS::AtLeastOnce, true, payload) {
            tracing::debug!("status not published: {e}");
        }
    }

    /// The report of `metrics` now.
    pub fn make(&self, summary: &str, metrics: Vec<Metric>) -> Report {
        Report {
            program: self.program.to_owned(),
            instance: self.instance.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started: self.started.to_rfc3339_opts(SecondsFormat::Secs, true),
            at: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
            summary: summary.to_owned(),
            metrics,
        }
    }
}

/// The will of a program whose availability topic is `availability`: `offline`, retained.
pub fn will(availability: &str) -> LastWill {
    LastWill::new(availability, OFFLINE, QoS::AtLeastOnce, true)
}

/// Say `offline` on `availability` before a clean DISCONNECT, which does not fire the will.
pub fn offline(client: &AsyncClient, availability: &str) {
    if let Err(e) = client.try_publish(availability, QoS::AtLeastOnce, true, OFFLINE) {
        tracing::debug!("offline not published: {e}");
    }
}

/// Where a status message came from: `(program, instance, is availability)` of a topic
/// under `prefix`, if it is one.
pub fn parse_topic<'a>(prefix: &str, topic: &'a str) -> Option<(&'a str, &'a str, bool)> {
    let rest = topic.strip_prefix(prefix)?.strip_prefix('/')?;
    let mut levels = rest.split('/');
    let (program, instance) = (levels.next()?, levels.next()?);
    match (levels.next(), levels.next()) {
        (None, _) => Some((program, instance, false)),
        (Some(AVAILABILITY), None) => Some((program, instance, true)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> Config {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn topics_will_and_report() {
        let s = Status::of(&cfg("[mqtt]\nclient_id = \"pi/kitchen\"\n"), "logger").unwrap();
        assert_eq!(s.topic(), "iotitan/status/logger/pi_kitchen");
        assert_eq!(
            s.availability(),
            "iotitan/status/logger/pi_kitchen/availability"
        );
        let mut opts = MqttOptions::new("x", "localhost", 1883);
        s.set_will(&mut opts);
        let will = opts.last_will().unwrap();
        assert_eq!(
            (will.topic.as_str(), &will.message[..], will.retain),
            (
                "iotitan/status/logger/pi_kitchen/availability",
                &b"offline"[..],
                true
            )
        );
        let payload = s.report(
            "ok",
            vec![
                Metric::counter("written", "Records handed to syslog", 7),
                Metric::gauge("queued", "Records waiting", 2.0).label("why", "slow"),
            ],
        );
        let r: Report = serde_json::from_slice(&payload).unwrap();
        assert_eq!(
            (r.program.as_str(), r.instance.as_str()),
            ("logger", "pi_kitchen")
        );
        assert_eq!(r.metrics[0].value, 7.0);
        assert_eq!(r.metrics[1].labels["why"], "slow");
        assert!(Status::of(&cfg("[status]\nenabled = false\n"), "logger").is_none());
    }

    #[test]
    fn topics_are_parsed_back() {
        let p = "iotitan/status";
        assert_eq!(
            parse_topic(p, "iotitan/status/logger/a"),
            Some(("logger", "a", false))
        );
        assert_eq!(
            parse_topic(p, "iotitan/status/bridge/a/availability"),
            Some(("bridge", "a", true))
        );
        for other in [
            "iotitan/statusx/logger/a",
            "iotitan/status/logger",
            "iotitan/status/logger/a/b",
            "iotitan/status/logger/a/availability/x",
        ] {
            assert_eq!(parse_topic(p, other), None, "{other}");
        }
    }
}
