//! Home Assistant MQTT discovery: every series iotitan sees, every alert and every device,
//! announced as Home Assistant entities (docs/homeassistant.md).
//!
//! Who announces: the logger ([`crate::logger`] hosts an [`Announcer`]). It is the one daemon
//! every installation runs, and it already receives every message on the broker — raw
//! readings, stats' outputs (`…_mean`, `…_integral`) and alert states — live, at the moment
//! they arrive: nothing else sees a new series appear, or an old one fall silent, without a
//! subscription of its own to the whole broker. Alerts knows only its rules' inputs, the HTTP
//! daemon subscribes to `#` only while a browser watches, and stats runs as a batch job. The
//! rules and devices are in the one config file every program reads, so the logger knows
//! them too. The cost on the logger's hot path is one hash lookup per message; the rest
//! happens once per new series.
//!
//! Two halves, as everywhere:
//! - [`Discovery`]: pure. Messages and the time in, the discovery messages to publish out:
//!   topic → entity config, units from [`crate::unit`], and the expiry state machine (a
//!   series not seen for `expire_after` loses its entity);
//! - [`Announcer`]: the thin I/O edge: publishes those messages (retained, QoS 1) without
//!   ever waiting for the MQTT request channel.

mod entity;
pub mod publish;

pub use entity::{Entity, config_topic, device_of, object_id};
pub use publish::Announcer;

use crate::config::{Config, DeviceConfig, RuleConfig};
use crate::payload::{Extractor, Reading};
use crate::topic::Filters;
use crate::unit::Units;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Most series tracked at once: a topic with a counter in it makes a new series per message,
/// and each costs about a hundred bytes here and an entity in Home Assistant. Beyond it new
/// series are not announced (counted).
pub const MAX_SERIES: usize = 200_000;

/// One discovery message: a retained config, or an empty payload that removes the entity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// `<prefix>/<component>/<node>/<object>/config`.
    pub topic: String,
    /// The entity's JSON config; empty to remove it.
    pub payload: String,
}

/// What discovery knows of one series.
#[derive(Debug, Clone)]
struct Seen {
    /// The last reading.
    at: Instant,
    /// The config topics of its entities (the sensor, its alerts), for removal.
    configs: Vec<String>,
}

/// The fixed part of every config: where, for whom, and with which availability.
#[derive(Debug, Clone)]
pub struct Context {
    /// Home Assistant's discovery prefix.
    pub prefix: String,
    /// Our node id (`mqtt.client_id`, cleaned): second level of every config topic, and the
    /// start of every unique id, so that two iotitan installations never share an entity.
    pub node: String,
    /// The announcing program's availability topic (`online`/`offline`).
    pub availability: String,
    /// Units and classes of series.
    pub units: Units,
}

/// The pure part of discovery: which entities exist, and what to publish when.
pub struct Discovery {
    ctx: Context,
    topics: Filters,
    extractor: Extractor,
    rules: Vec<RuleConfig>,
    devices: Vec<DeviceConfig>,
    /// Topics that are ours but no sensor: alert events and device commands and states.
    not_sensors: std::collections::HashSet<String>,
    status_prefix: String,
    expire_after: Duration,
    series: HashMap<Box<str>, Seen>,
    /// Config topics of ours found retained at the broker (an earlier run's) that this run
    /// has not announced: removed once `expire_after` passes without their series.
    adopted: HashMap<String, Instant>,
    /// New series not announced because [`MAX_SERIES`] were tracked.
    pub refused: u64,
    readings: Vec<Reading>,
}

impl Discovery {
    /// Discovery for `cfg`, announcing as `program` (whose availability topic entities
    /// follow).
    pub fn new(cfg: &Config, program: &str) -> Discovery {
        let ha = &cfg.homeassistant;
        let mut not_sensors: std::collections::HashSet<String> = cfg
            .http
            .device
            .iter()
            .flat_map(|d| [d.command_topic.clone(), d.state_topic.clone()])
            .collect();
        not_sensors.insert(cfg.alerts.events_topic.clone());
        not_sensors.extend(
            cfg.alerts
                .rule
                .iter()
                .filter_map(|r| r.action.as_ref().map(|a| a.topic.clone())),
        );
        Discovery {
            ctx: Context {
                prefix: ha.prefix.clone(),
                node: entity::clean(&cfg.mqtt.client_id),
                availability: cfg.status.availability_topic(program, &cfg.mqtt.client_id),
                units: Units::new(&ha.unit),
            },
            topics: ha.topics.clone(),
            extractor: cfg.payload.extractor(),
            rules: cfg.alerts.rule.clone(),
            devices: cfg.http.device.clone(),
            not_sensors,
            status_prefix: format!("{}/", cfg.status.topic_prefix),
            expire_after: ha.expire_after.get(),
            series: HashMap::new(),
            adopted: HashMap::new(),
            refused: 0,
            readings: Vec::new(),
        }
    }

    /// The fixed part of every config.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// Home Assistant's birth and will topic.
    pub fn birth_topic(&self) -> String {
        format!("{}/status", self.ctx.prefix)
    }

    /// How many series have an entity.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    /// Whether no series has an entity.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// How often [`Discovery::expire`] should run: often enough that an entity goes at most
    /// a tenth of `expire_after` late, rarely enough that scanning every series stays cheap.
    pub fn sweep_every(&self) -> Duration {
        (self.expire_after / 10).clamp(Duration::from_millis(100), Duration::from_secs(600))
    }

    /// One message from the broker at `now`; what it makes us publish goes to `out`.
    ///
    /// `retained`: the broker's copy from before we subscribed. It is no reading (a sensor
    /// that died a month ago left it), but if it is one of our own configs it tells us an
    /// entity exists that this run must expire if its series never comes back.
    pub fn observe(
        &mut self,
        topic: &str,
        payload: &[u8],
        retained: bool,
        now: Instant,
        out: &mut Vec<Message>,
    ) {
        // The hot path: a known series, one lookup.
        if let Some(s) = self.series.get_mut(topic) {
            if !retained {
                s.at = now;
            }
            return;
        }
        if let Some(rest) = topic
            .strip_prefix(&self.ctx.prefix)
            .and_then(|r| r.strip_prefix('/'))
        {
            if rest == "status" && payload == b"online" {
                self.announce_all(out);
            } else if retained && !payload.is_empty() && self.is_our_config(rest) {
                self.adopted.entry(topic.to_owned()).or_insert(now);
            }
            return;
        }
        if retained || !self.may_be_sensor(topic) {
            return;
        }
        if self.extractor.is_plain(topic) {
            if is_number(payload) {
                self.add(topic, topic, None, now, out);
            }
            return;
        }
        let mut readings = std::mem::take(&mut self.readings);
        readings.clear();
        if self
            .extractor
            .readings(topic, payload, &mut readings)
            .is_ok()
        {
            for r in &readings {
                match self.series.get_mut(r.series.as_str()) {
                    Some(s) => s.at = now,
                    None => {
                        let field = &r.series[topic.len() + 1..];
                        self.add(&r.series, topic, Some(field), now, out);
                    }
                }
            }
        }
        self.readings = readings;
    }

    /// Whether `topic` may carry a series of its own: in `homeassistant.topics`, and none of
    /// our own outputs that are not sensors (alert states are binary sensors of their series).
    fn may_be_sensor(&self, topic: &str) -> bool {
        self.topics.matches(topic)
            && !topic.starts_with(&self.status_prefix)
            && crate::alerts::split_output(topic).is_none()
            && !self.not_sensors.contains(topic)
    }

    /// `rest` (the config topic after the prefix) names one of our entities.
    fn is_our_config(&self, rest: &str) -> bool {
        let mut levels = rest.split('/');
        matches!(
            (levels.next(), levels.next(), levels.next(), levels.next(), levels.next()),
            (Some("sensor" | "binary_sensor" | "switch"), Some(node), Some(_), Some("config"), None)
                if node == self.ctx.node
        )
    }

    /// A series seen for the first time: its sensor, and a binary sensor for each alert a
    /// rule checks on it.
    fn add(
        &mut self,
        series: &str,
        state_topic: &str,
        field: Option<&str>,
        now: Instant,
        out: &mut Vec<Message>,
    ) {
        if self.series.len() >= MAX_SERIES {
            self.refused += 1;
            return;
        }
        let before = out.len();
        self.configs_of(series, state_topic, field, out);
        let configs: Vec<String> = out[before..].iter().map(|m| m.topic.clone()).collect();
        for c in &configs {
            self.adopted.remove(c);
        }
        self.series.insert(series.into(), Seen { at: now, configs });
    }

    /// The entities of one series.
    fn entities_of<'a>(
        &'a self,
        series: &'a str,
        state_topic: &'a str,
        field: Option<&'a str>,
    ) -> impl Iterator<Item = Entity<'a>> {
        let sensor = Entity::Sensor {
            series,
            state_topic,
            field,
        };
        let owners = crate::alerts::owners(&self.rules, series);
        let alerts = crate::alerts::Kind::ALL.into_iter().filter_map(move |k| {
            owners[k.index()].map(|rule| Entity::Alert {
                series,
                kind: k,
                rule: &self.rules[rule].name,
            })
        });
        std::iter::once(sensor).chain(alerts)
    }

    fn configs_of(
        &self,
        series: &str,
        state_topic: &str,
        field: Option<&str>,
        out: &mut Vec<Message>,
    ) {
        for e in self.entities_of(series, state_topic, field) {
            out.push(e.message(&self.ctx));
        }
    }

    /// Every entity again (Home Assistant came back, or the broker lost its retained
    /// messages): the devices, and each series' entities.
    pub fn announce_all(&mut self, out: &mut Vec<Message>) {
        for d in &self.devices {
            out.push(Entity::Switch(d).message(&self.ctx));
        }
        for (series, _) in self.series.iter() {
            let (state_topic, field) = self.state_of(series);
            self.configs_of(series, state_topic, field, out);
        }
    }

    /// The devices' switches: announced at start, whatever the readings.
    pub fn announce_devices(&self, out: &mut Vec<Message>) {
        for d in &self.devices {
            out.push(Entity::Switch(d).message(&self.ctx));
        }
    }

    /// The topic a series' values arrive on, and its JSON field: a series that is not a
    /// topic of its own is `<topic>/<field>` of a JSON rule's topic.
    fn state_of<'a>(&self, series: &'a str) -> (&'a str, Option<&'a str>) {
        if self.extractor.is_plain(series) {
            let mut cut = series.len();
            // The longest prefix that a JSON rule reads is the state topic.
            while let Some(i) = series[..cut].rfind('/') {
                if !self.extractor.is_plain(&series[..i]) {
                    return (&series[..i], Some(&series[i + 1..]));
                }
                cut = i;
            }
        }
        (series, None)
    }

    /// Remove the entities of series not seen for `expire_after` (and configs of an earlier
    /// run whose series never came back): an empty retained config each.
    pub fn expire(&mut self, now: Instant, out: &mut Vec<Message>) {
        let limit = self.expire_after;
        let old = |at: Instant| now.saturating_duration_since(at) >= limit;
        self.series.retain(|_, s| {
            if !old(s.at) {
                return true;
            }
            out.extend(s.configs.drain(..).map(|topic| Message {
                topic,
                payload: String::new(),
            }));
            false
        });
        self.adopted.retain(|topic, at| {
            if !old(*at) {
                return true;
            }
            out.push(Message {
                topic: topic.clone(),
                payload: String::new(),
            });
            false
        });
    }
}

/// Our node id for `client_id`: the second level of our config topics.
pub fn entity_node(client_id: &str) -> String {
    entity::clean(client_id)
}

/// Whether a plain payload is a number Home Assistant reads as one (not `on`/`true`, which
/// stats and alerts count as 1 but a numeric sensor would refuse).
fn is_number(payload: &[u8]) -> bool {
    if crate::payload::short_decimal(payload).is_some() {
        return true;
    }
    std::str::from_utf8(payload)
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .is_some_and(f64::is_finite)
}

#[cfg(test)]
mod tests;
