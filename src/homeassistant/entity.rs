//! One entity's discovery config: topic → JSON, pure.
//!
//! Full key names, not Home Assistant's abbreviations (`stat_t`): a config is published once
//! per entity, and people read them with `mosquitto_sub`.

use super::{Context, Message};
use crate::alerts::Kind;
use crate::config::DeviceConfig;
use serde_json::{Map, Value, json};

/// An entity iotitan announces.
#[derive(Debug, Clone, Copy)]
pub enum Entity<'a> {
    /// A series' values: the topic's payload, or a field of its JSON.
    Sensor {
        /// The series' name.
        series: &'a str,
        /// Where its values arrive.
        state_topic: &'a str,
        /// The JSON field path (`ENERGY/Total`) inside the payload, for `[[payload.json]]`
        /// topics.
        field: Option<&'a str>,
    },
    /// One alert of a series, as iotitan-alerts publishes it (`on`/`off`).
    Alert {
        /// The series watched.
        series: &'a str,
        /// Which alert.
        kind: Kind,
        /// The rule that decides it.
        rule: &'a str,
    },
    /// A `[[http.device]]`, switched with Tasmota's `ON`/`OFF`.
    Switch(&'a DeviceConfig),
}

/// `text` with every character outside `[a-zA-Z0-9_-]` (what Home Assistant allows in ids)
/// made `_`.
pub fn clean(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// FNV-1a, 64 bits: stable across runs and versions (unlike std's hasher), so an entity
/// keeps its id for as long as its topic does.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The object id of the entity named by `key`: readable (the key, cleaned) and unique (a
/// hash of the exact key, since cleaning maps `a/b` and `a_b` alike).
pub fn object_id(key: &str) -> String {
    format!("{}_{:016x}", clean(key), fnv1a(key))
}

/// `<prefix>/<component>/<node>/<object>/config`.
pub fn config_topic(ctx: &Context, component: &str, object: &str) -> String {
    format!("{}/{component}/{}/{object}/config", ctx.prefix, ctx.node)
}

/// The device a topic belongs to: the topic without its last level, and without a trailing
/// `tele`, `stat`, `status` or `cmnd` level (Tasmota's and Shelly's kinds of message, not
/// parts of the device's name), so that a plug's readings, state and commands share one
/// device.
pub fn device_of(topic: &str) -> &str {
    let mut d = topic.rsplit_once('/').map_or("", |(d, _)| d);
    while let Some((rest, last)) = d.rsplit_once('/') {
        if matches!(last, "tele" | "stat" | "status" | "cmnd") {
            d = rest;
        } else {
            break;
        }
    }
    if d.is_empty() { topic } else { d }
}

/// The device object of `device`: grouped in Home Assistant by its path, in the area named by
/// the level before the sensor's own (`iotitan/home/kitchen/dht22` → `kitchen`).
fn device_json(ctx: &Context, device: &str) -> Value {
    let mut d = json!({
        "identifiers": [format!("{}_{}", ctx.node, object_id(device))],
        "name": device,
        "manufacturer": "iotitan",
        "model": "MQTT topic",
        "sw_version": env!("CARGO_PKG_VERSION"),
    });
    let levels: Vec<&str> = device.split('/').collect();
    if levels.len() >= 3
        && let Some(area) = levels.get(levels.len() - 2)
    {
        d["suggested_area"] = json!(area);
    }
    d
}

/// A Jinja expression reading `field` (`ENERGY/Total`) from the JSON payload.
fn template(field: &str) -> String {
    let mut t = String::from("{{ value_json");
    for seg in field.split('/') {
        if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) {
            t.push_str(&format!("[{seg}]"));
        } else {
            t.push_str("['");
            t.push_str(&seg.replace('\\', "\\\\").replace('\'', "\\'"));
            t.push_str("']");
        }
    }
    t.push_str(" }}");
    t
}

/// A name for people: the part of `key` below `device`, levels and `_` as spaces.
fn name_below(key: &str, device: &str) -> String {
    let rest = key
        .strip_prefix(device)
        .and_then(|r| r.strip_prefix('/'))
        .unwrap_or(key);
    rest.replace(['/', '_'], " ")
}

impl Entity<'_> {
    /// The Home Assistant component.
    pub fn component(&self) -> &'static str {
        match self {
            Entity::Sensor { .. } => "sensor",
            Entity::Alert { .. } => "binary_sensor",
            Entity::Switch(_) => "switch",
        }
    }

    /// What the entity's object id is made from: the series, the alert's output topic, or
    /// `device/<name>`.
    pub fn key(&self) -> String {
        match self {
            Entity::Sensor { series, .. } => (*series).to_owned(),
            Entity::Alert { series, kind, .. } => kind.topic(series),
            Entity::Switch(d) => format!("device/{}", d.name),
        }
    }

    /// The config as Home Assistant reads it.
    pub fn config(&self, ctx: &Context) -> Value {
        let key = self.key();
        let object = object_id(&key);
        let mut c = Map::new();
        let mut put = |k: &str, v: Value| {
            c.insert(k.to_owned(), v);
        };
        put("unique_id", json!(format!("{}_{object}", ctx.node)));
        put("availability_topic", json!(ctx.availability));
        put(
            "origin",
            json!({"name": "iotitan", "sw_version": env!("CARGO_PKG_VERSION")}),
        );
        match *self {
            Entity::Sensor {
                series,
                state_topic,
                field,
            } => {
                let device = device_of(state_topic);
                put("name", json!(name_below(series, device)));
                put("state_topic", json!(state_topic));
                if let Some(f) = field {
                    put("value_template", json!(template(f)));
                }
                let u = ctx.units.of(series);
                if let Some(unit) = u.unit {
                    put("unit_of_measurement", json!(unit));
                }
                if let Some(dc) = u.device_class {
                    put("device_class", json!(dc));
                }
                if let Some(sc) = u.state_class {
                    put("state_class", json!(sc));
                }
                put("device", device_json(ctx, device));
            }
            Entity::Alert { series, kind, rule } => {
                let device = device_of(series);
                put(
                    "name",
                    json!(format!(
                        "{} alert {kind} ({rule})",
                        name_below(series, device)
                    )),
                );
                put("state_topic", json!(key));
                put("payload_on", json!(crate::alerts::state_payload(true)));
                put("payload_off", json!(crate::alerts::state_payload(false)));
                put("device_class", json!("problem"));
                put("device", device_json(ctx, device));
            }
            Entity::Switch(d) => {
                let device = device_of(&d.command_topic);
                put("name", json!(d.name));
                put("command_topic", json!(d.command_topic));
                put("state_topic", json!(d.state_topic));
                put("payload_on", json!("ON"));
                put("payload_off", json!("OFF"));
                put("device_class", json!("outlet"));
                put("device", device_json(ctx, device));
            }
        }
        Value::Object(c)
    }

    /// The retained message that announces it.
    pub fn message(&self, ctx: &Context) -> Message {
        Message {
            topic: config_topic(ctx, self.component(), &object_id(&self.key())),
            payload: self.config(ctx).to_string(),
        }
    }
}
