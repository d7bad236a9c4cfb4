//! Home Assistant discovery end to end: iotitan-logger (announcing) and iotitan-alerts between
//! a real mosquitto and a simulated fleet (`iotitan-sim fleet`), with Tasmota and Shelly
//! payloads and a stats output published beside it. What Home Assistant would read is checked
//! the way Home Assistant reads it (the retained configs under the prefix), and then by Home
//! Assistant core itself (from PyPI, `.venv-ha`): it makes an entity of every config.

mod common;
use common::*;

use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

const ID: &str = "hatest";
const AVAILABILITY: &str = "iotitan/status/logger/hatest/availability";

/// Every message seen by a subscriber on `#`: the last payload of each topic, and the topics
/// that carried anything.
#[derive(Default)]
struct Seen {
    last: BTreeMap<String, String>,
    valued: HashSet<String>,
}

impl Seen {
    fn take(&mut self, line: &str) {
        // mosquitto_sub -v shows an empty payload (a removed config) as `(null)`.
        let (topic, payload) = line.split_once(' ').unwrap_or((line, ""));
        let payload = if payload == "(null)" { "" } else { payload };
        if !payload.is_empty() {
            self.valued.insert(topic.to_owned());
        }
        self.last.insert(topic.to_owned(), payload.to_owned());
    }

    /// Read lines until `done` holds for what was seen.
    fn until(&mut self, sub: &Subscriber, what: &str, done: impl Fn(&Seen) -> bool) {
        let deadline = Instant::now() + TIMEOUT;
        while !done(self) {
            let left = deadline
                .checked_duration_since(Instant::now())
                .unwrap_or_else(|| panic!("not within {TIMEOUT:?}: {what}"));
            if let Some(l) = sub.next_line(left) {
                self.take(&l);
            }
        }
    }

    /// The live configs under the prefix: config topic → JSON.
    fn configs(&self) -> BTreeMap<&str, Value> {
        self.last
            .iter()
            .filter(|(t, p)| {
                t.starts_with("homeassistant/") && t.ends_with("/config") && !p.is_empty()
            })
            .map(|(t, p)| {
                (
                    t.as_str(),
                    serde_json::from_str(p).expect("configs are JSON"),
                )
            })
            .collect()
    }

    fn config_of(&self, component: &str, state_topic: &str) -> Option<(String, Value)> {
        self.configs()
            .into_iter()
            .find(|(t, c)| {
                t.split('/').nth(1) == Some(component) && c["state_topic"] == state_topic
            })
            .map(|(t, c)| (t.to_owned(), c))
    }
}

/// Home Assistant's required keys per platform, its id alphabet, and the units and device
/// classes of its documented lists.
fn check_config(topic: &str, c: &Value) {
    let levels: Vec<&str> = topic.split('/').collect();
    assert_eq!(levels.len(), 5, "{topic}");
    assert_eq!(
        (levels[0], levels[2], levels[4]),
        ("homeassistant", ID, "config")
    );
    assert!(
        levels[3]
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-'),
        "{topic}"
    );
    let required: &[&str] = match levels[1] {
        "sensor" => &["state_topic"],
        "binary_sensor" => &["state_topic", "payload_on", "payload_off"],
        "switch" => &["command_topic", "state_topic", "payload_on", "payload_off"],
        other => panic!("unexpected component {other} in {topic}"),
    };
    for key in required
        .iter()
        .chain(&["unique_id", "name", "device", "availability_topic"])
    {
        assert!(c.get(*key).is_some(), "{key} missing in {topic}: {c}");
    }
    assert_eq!(c["availability_topic"], AVAILABILITY, "{c}");
    assert!(c["device"]["identifiers"][0].is_string(), "{c}");
    if levels[1] == "sensor" {
        iotitan::unit::check(
            c["unit_of_measurement"].as_str(),
            c["device_class"].as_str(),
            c["state_class"].as_str(),
        )
        .unwrap_or_else(|e| panic!("{topic}: {e}: {c}"));
    }
}

/// Home Assistant core (from PyPI, in the `.venv-ha` that `.ci/run` makes, or `HASS`).
fn hass() -> std::path::PathBuf {
    let path = std::env::var_os("HASS").map_or_else(
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-ha/bin/hass"),
        std::path::PathBuf::from,
    );
    assert!(
        path.exists(),
        "{} is missing: run .ci/run, which makes .venv-ha with Home Assistant core from PyPI \
         (.ci/requirements-ha.txt), or set HASS",
        path.display()
    );
    path
}

/// A child process killed (and reaped) on drop.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start Home Assistant core on a fresh configuration whose MQTT integration uses `m` with
/// discovery on, and wait until its entity registry holds an entity for every config of
/// `configs`, with the unit and device class announced; none is refused in its log.
fn home_assistant_takes(
    m: &Mosquitto,
    configs: &BTreeMap<&str, Value>,
    keep: &[(&str, &str)],
    dir: &std::path::Path,
) {
    // `keep`'s messages, a few a second, while Home Assistant starts.
    let again = (0..2000)
        .map(|i| {
            let (t, p) = keep[i % keep.len()];
            (t.to_owned(), p.as_bytes().to_vec())
        })
        .collect();
    let _alive = Publisher::start(m.port, "hatest-keep", again, 4, 1);
    let conf = dir.join("homeassistant");
    std::fs::create_dir_all(conf.join(".storage")).unwrap();
    std::fs::write(
        conf.join("configuration.yaml"),
        "homeassistant:\n  name: iotitan\n  unit_system: metric\n  time_zone: UTC\n  \
         latitude: 0\n  longitude: 0\n  elevation: 0\n",
    )
    .unwrap();
    // The MQTT integration is set up in the UI (a config entry), not in YAML: written as the
    // UI would leave it.
    let entry = serde_json::json!({"version": 1, "minor_version": 1, "key": "core.config_entries",
        "data": {"entries": [{"entry_id": "0123456789abcdef0123456789abcdef", "version": 1,
            "minor_version": 1, "domain": "mqtt", "title": "mosquitto",
            "data": {"broker": "127.0.0.1", "port": m.port, "discovery": true},
            "options": {}, "pref_disable_new_entities": false, "pref_disable_polling": false,
            "source": "user", "unique_id": null, "disabled_by": null}]}});
    std::fs::write(conf.join(".storage/core.config_entries"), entry.to_string()).unwrap();
    let log = conf.join("hass.out");
    let _hass = Killed(
        std::process::Command::new(hass())
            .arg("-c")
            .arg(&conf)
            .arg("--skip-pip")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start Home Assistant"),
    );
    let wanted: HashMap<&str, &Value> = configs
        .values()
        .map(|c| (c["unique_id"].as_str().unwrap(), c))
        .collect();
    let registry = conf.join(".storage/core.entity_registry");
    let mut entities: HashMap<String, Value> = HashMap::new();
    // Home Assistant starts in some seconds and writes its registry some seconds after a
    // change: bounded, generously.
    let took = wait_until(Duration::from_secs(120), || {
        let Ok(text) = std::fs::read_to_string(&registry) else {
            return false;
        };
        let Ok(v) = serde_json::from_str::<Value>(&text) else {
            return false;
        };
        entities = v["data"]["entities"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["platform"] == "mqtt")
            .filter_map(|e| Some((e["unique_id"].as_str()?.to_owned(), e.clone())))
            .collect();
        wanted.keys().all(|id| entities.contains_key(*id))
    });
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let missing: Vec<&&Value> = wanted
        .iter()
        .filter(|(id, _)| !entities.contains_key(**id))
        .map(|(_, c)| c)
        .collect();
    // Its log, without the integrations a bare install cannot load (they are not ours).
    let mqtt: Vec<&str> = text
        .lines()
        .filter(|l| l.to_ascii_lowercase().contains("mqtt"))
        .collect();
    assert!(
        took,
        "Home Assistant made no entity of {missing:#?}; its log on MQTT:\n{}",
        mqtt.join("\n")
    );
    for (id, c) in &wanted {
        let e = &entities[*id];
        assert_eq!(
            e["unit_of_measurement"],
            c["unit_of_measurement"].clone(),
            "{e}\n{c}"
        );
        assert_eq!(
            e["original_device_class"],
            c["device_class"].clone(),
            "{e}\n{c}"
        );
    }
    assert!(
        !text.contains("when processing MQTT discovery message"),
        "Home Assistant refused a config:\n{text}"
    );
    println!("Home Assistant made {} entities", wanted.len());
}

fn publish(m: &Mosquitto, topic: &str, payload: &str) {
    m.publish(&["-q", "1", "-t", topic, "-m", payload]);
}

#[test]
fn the_fleet_alerts_and_plugs_appear_in_home_assistant_and_silent_series_go() {
    let m = Mosquitto::start();
    // Records go to a UDP socket nobody reads: this test is about what the logger announces.
    let syslog = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        &format!(
            r#"{mqtt}
[syslog]
target = "udp:{syslog}"

[homeassistant]
discovery = true
expire_after = "5s"

[[payload.json]]
topics = "office/+/+/+/tele/SENSOR"
fields = ["ENERGY.Total", "ENERGY.Power"]

[[payload.json]]
topics = "office/+/+/+/status/switch:0"
fields = ["aenergy.total", "apower"]

[alerts]
events_topic = "ev/alerts"

[[alerts.rule]]
name = "too warm"
topics = "iotitan/+/+/+/temperature"
high = 30

[[http.device]]
name = "plug1"
command_topic = "iotitan/home/living/plug1/cmnd/POWER"
state_topic = "iotitan/home/living/plug1/stat/POWER"
"#,
            mqtt = m.mqtt_toml(ID),
            syslog = syslog.local_addr().unwrap(),
        ),
    );
    let sub = subscriber(&m, &["#"]);
    let mut seen = Seen::default();
    let logger = Logger::start(&cfg);
    seen.until(&sub, "the logger online", |s| {
        s.last.get(AVAILABILITY).map(String::as_str) == Some("online")
    });
    let alerts = Alerts::start(&cfg);
    let fleet = Program::new("iotitan-sim")
        .env_remove("IOTITAN_CONFIG")
        .env("RUST_LOG", "warn")
        .args(["--broker", &m.addr(), "--config", "/dev/null"])
        .args(["fleet", "--devices", "6", "--rooms", "3", "--plugs", "1"])
        .args(["--interval", "300ms"])
        .start();
    let tasmota = "office/floor1/room1/desk1/tele/SENSOR";
    let shelly = "office/floor1/room1/desk2/status/switch:0";
    let mean = "iotitan/home/living/dht22/temperature_mean";
    publish(
        &m,
        tasmota,
        r#"{"Time":"2026-01-01T00:00:00","ENERGY":{"Total":12.345,"Power":45}}"#,
    );
    publish(
        &m,
        shelly,
        r#"{"id":0,"apower":12.3,"aenergy":{"total":1234.5}}"#,
    );

    // Every series of 6 devices (3 to 4 readings each), the plug, the JSON fields, a
    // statistic and the alerts of each temperature.
    seen.until(&sub, "the entities of the fleet", |s| {
        let c = s.configs();
        let of = |comp: &str| {
            c.keys()
                .filter(|t| t.split('/').nth(1) == Some(comp))
                .count()
        };
        of("sensor") >= 17 && of("binary_sensor") >= 3 && of("switch") == 1
    });
    // Whatever comes within a second more (the last sensors of the fleet; it never pauses,
    // so this is a bound, not a quiet spell).
    let until = Instant::now() + Duration::from_secs(1);
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        if let Some(l) = sub.next_line(left) {
            seen.take(&l);
        }
    }
    let configs = seen.configs();
    let mut ids = HashSet::new();
    for (topic, c) in &configs {
        check_config(topic, c);
        assert!(
            ids.insert(c["unique_id"].as_str().unwrap().to_owned()),
            "{c}"
        );
        // Every sensor's state topic carries values.
        if topic.starts_with("homeassistant/sensor/") {
            let st = c["state_topic"].as_str().unwrap();
            assert!(seen.valued.contains(st), "nothing on {st} ({topic})");
        }
    }
    // Home Assistant itself takes every one of them (the plugs' payloads sent again while it
    // starts: published once, they would be silent past expire_after by then).
    let plugs = [
        (
            tasmota,
            r#"{"Time":"2026-01-01T00:00:00","ENERGY":{"Total":12.345,"Power":45}}"#,
        ),
        (
            shelly,
            r#"{"id":0,"apower":12.3,"aenergy":{"total":1234.5}}"#,
        ),
    ];
    home_assistant_takes(&m, &configs, &plugs, dir.path());

    // Units, classes and templates: the Energy dashboard takes both meters without YAML.
    let energy = |field: &str, unit: &str, st: &str| {
        let (_, c) = seen
            .configs()
            .into_iter()
            .find(|(_, c)| {
                c["value_template"]
                    .as_str()
                    .is_some_and(|t| t.contains(field))
            })
            .unwrap_or_else(|| panic!("no sensor reads {field}"));
        assert_eq!(c["state_topic"], st);
        assert_eq!(c["unit_of_measurement"], unit);
        assert_eq!(c["device_class"], "energy");
        assert_eq!(c["state_class"], "total_increasing");
    };
    energy("['ENERGY']['Total']", "kWh", tasmota);
    energy("['aenergy']['total']", "Wh", shelly);
    let (_, temp) = seen
        .config_of("sensor", "iotitan/home/living/dht22/temperature")
        .expect("the living room's temperature");
    assert_eq!(temp["unit_of_measurement"], "°C");
    assert_eq!(temp["device"]["name"], "iotitan/home/living/dht22");

    // Availability is online, and retained (Home Assistant may come later).
    let late = m.subscribe(&[AVAILABILITY], &[]);
    assert_eq!(
        late.next_line(TIMEOUT).unwrap(),
        format!("{AVAILABILITY} online")
    );

    // An alert's binary sensor gets the state iotitan-alerts publishes.
    let (_, hi) = seen
        .config_of(
            "binary_sensor",
            "iotitan/home/living/dht22/temperature_alert_hi",
        )
        .expect("the living room's high-temperature alert");
    publish(&m, "iotitan/home/living/dht22/temperature", "35");
    let on = format!(
        "{} {}",
        hi["state_topic"].as_str().unwrap(),
        hi["payload_on"].as_str().unwrap()
    );
    sub.wait_for(TIMEOUT, |l| l == on);

    // The switch commands the plug, and the plug's answer is its state.
    let (_, switch) = seen
        .configs()
        .into_iter()
        .find(|(t, _)| t.starts_with("homeassistant/switch/"))
        .map(|(t, c)| (t.to_owned(), c))
        .unwrap();
    publish(
        &m,
        switch["command_topic"].as_str().unwrap(),
        switch["payload_on"].as_str().unwrap(),
    );
    let state = format!("{} ON", switch["state_topic"].as_str().unwrap());
    sub.wait_for(TIMEOUT, |l| l == state);

    // A statistic beside its sensor, published once: 5 s later its entity is removed (an
    // empty retained config), while the fleet's, read every 300 ms, stay.
    publish(&m, mean, "21.5");
    let t0 = Instant::now();
    seen.until(&sub, "the mean's entity", |s| {
        s.config_of("sensor", mean).is_some()
    });
    let (mean_config, mean_c) = seen.config_of("sensor", mean).unwrap();
    assert_eq!(mean_c["unit_of_measurement"], "°C");
    assert_eq!(mean_c["device"], temp["device"]);
    check_config(&mean_config, &mean_c);
    let removed = format!("{mean_config} (null)");
    sub.wait_for(TIMEOUT, |l| l == removed);
    let took = t0.elapsed();
    assert!(
        took > Duration::from_secs(4) && took < Duration::from_secs(8),
        "{took:?}"
    );
    let retained: HashMap<String, String> = m
        .subscribe(&["homeassistant/#"], &["--retained-only"])
        .drain(Duration::from_millis(500))
        .iter()
        .filter_map(|l| l.split_once(' ').map(|(t, p)| (t.to_owned(), p.to_owned())))
        .collect();
    assert!(
        !retained.contains_key(&mean_config),
        "{mean_config} still retained"
    );
    let temp_config = seen
        .config_of("sensor", "iotitan/home/living/dht22/temperature")
        .unwrap()
        .0;
    assert!(
        retained.contains_key(&temp_config),
        "{temp_config} gone: {retained:#?}"
    );

    // Home Assistant's birth message: everything announced again.
    publish(&m, "homeassistant/status", "online");
    let again: HashSet<String> = {
        let mut got = HashSet::new();
        let want = [
            temp_config.clone(),
            seen.config_of("binary_sensor", hi["state_topic"].as_str().unwrap())
                .unwrap()
                .0,
        ];
        let deadline = Instant::now() + TIMEOUT;
        while !want.iter().all(|w| got.contains(w)) && Instant::now() < deadline {
            if let Some(l) = sub.next_line(Duration::from_secs(1))
                && let Some((t, p)) = l.split_once(' ')
                && p != "(null)"
            {
                got.insert(t.to_owned());
            }
        }
        got
    };
    assert!(
        again.contains(&temp_config),
        "no re-announcement after the birth message"
    );

    drop(fleet);
    alerts.stop();
    // The logger's will: entities become unavailable when it is gone.
    logger.signal("-KILL");
    let offline = format!("{AVAILABILITY} offline");
    sub.wait_for(TIMEOUT, |l| l == offline);
}
