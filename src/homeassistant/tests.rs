use super::*;
use proptest::prelude::*;
use serde_json::Value;

const CONFIG: &str = r#"
[mqtt]
client_id = "home"

[homeassistant]
discovery = true
expire_after = "1h"

[[homeassistant.unit]]
topics = ["office/+/+/plug7/power"]
unit = "kW"
device_class = "power"
state_class = "measurement"

[[payload.json]]
topics = "tele/+/SENSOR"
fields = ["ENERGY.Total", "ENERGY.Power"]

[[alerts.rule]]
name = "too warm"
topics = "iotitan/+/+/+/temperature"
high = 30.0
stale_after = "10m"

[[http.token]]
name = "t"
scopes = ["read"]

[[http.device]]
name = "plug1"
command_topic = "iotitan/home/living/plug1/cmnd/POWER"
state_topic = "iotitan/home/living/plug1/stat/POWER"
"#;

fn discovery() -> Discovery {
    let cfg = Config::parse(CONFIG, "t").unwrap();
    Discovery::new(&cfg, "logger")
}

fn json(m: &Message) -> Value {
    serde_json::from_str(&m.payload).unwrap()
}

fn seen(d: &mut Discovery, topic: &str, payload: &str, now: Instant) -> Vec<Message> {
    let mut out = Vec::new();
    d.observe(topic, payload.as_bytes(), false, now, &mut out);
    out
}

#[test]
fn a_sensor_with_its_unit_device_and_availability() {
    let mut d = discovery();
    let t0 = Instant::now();
    let out = seen(&mut d, "iotitan/home/kitchen/dht22/humidity", "41.5", t0);
    assert_eq!(out.len(), 1);
    let c = json(&out[0]);
    assert!(
        out[0]
            .topic
            .starts_with("homeassistant/sensor/home/iotitan_home_kitchen_dht22_humidity_"),
        "{}",
        out[0].topic
    );
    assert!(out[0].topic.ends_with("/config"));
    assert_eq!(c["state_topic"], "iotitan/home/kitchen/dht22/humidity");
    assert_eq!(c["unit_of_measurement"], "%");
    assert_eq!(c["device_class"], "humidity");
    assert_eq!(c["state_class"], "measurement");
    assert_eq!(c["device"]["name"], "iotitan/home/kitchen/dht22");
    assert_eq!(c["device"]["suggested_area"], "kitchen");
    assert_eq!(
        c["availability_topic"],
        "iotitan/status/logger/home/availability"
    );
    assert!(c["unique_id"].as_str().unwrap().starts_with("home_"));
    // Seen again: nothing new to say.
    assert!(seen(&mut d, "iotitan/home/kitchen/dht22/humidity", "41.6", t0).is_empty());
}

#[test]
fn alerts_are_binary_sensors_beside_their_series() {
    let mut d = discovery();
    let out = seen(
        &mut d,
        "iotitan/home/kitchen/dht22/temperature",
        "21",
        Instant::now(),
    );
    let comps: Vec<&str> = out
        .iter()
        .map(|m| m.topic.split('/').nth(1).unwrap())
        .collect();
    assert_eq!(comps, ["sensor", "binary_sensor", "binary_sensor"]);
    let hi = json(&out[1]);
    assert_eq!(
        hi["state_topic"],
        "iotitan/home/kitchen/dht22/temperature_alert_hi"
    );
    assert_eq!(
        (hi["payload_on"].as_str(), hi["payload_off"].as_str()),
        (Some("on"), Some("off"))
    );
    assert_eq!(hi["device_class"], "problem");
    assert_eq!(hi["device"], json(&out[0])["device"]);
    assert_eq!(
        json(&out[2])["state_topic"],
        "iotitan/home/kitchen/dht22/temperature_alert_stale"
    );
    // The alert outputs themselves are no sensors.
    assert!(
        seen(
            &mut d,
            "iotitan/home/kitchen/dht22/temperature_alert_hi",
            "on",
            Instant::now()
        )
        .is_empty()
    );
}

#[test]
fn json_fields_are_read_from_the_real_topic() {
    let mut d = discovery();
    let out = seen(
        &mut d,
        "tele/plug3/SENSOR",
        r#"{"Time":"x","ENERGY":{"Total":12.345,"Power":45}}"#,
        Instant::now(),
    );
    assert_eq!(out.len(), 2);
    let total = json(&out[0]);
    assert_eq!(total["state_topic"], "tele/plug3/SENSOR");
    assert_eq!(
        total["value_template"],
        "{{ value_json['ENERGY']['Total'] }}"
    );
    assert_eq!(total["unit_of_measurement"], "kWh");
    assert_eq!(total["device_class"], "energy");
    assert_eq!(total["state_class"], "total_increasing");
    assert_eq!(total["device"]["name"], "tele/plug3");
    assert_eq!(json(&out[1])["unit_of_measurement"], "W");
}

#[test]
fn statistics_and_configured_units() {
    let mut d = discovery();
    let t = Instant::now();
    let mean = json(&seen(&mut d, "office/f1/r1/plug7/power_mean", "0.2", t)[0]);
    assert_eq!(mean["unit_of_measurement"], "kW");
    assert_eq!(mean["name"], "power mean");
    assert_eq!(mean["device"]["name"], "office/f1/r1/plug7");
    let count = json(&seen(&mut d, "iotitan/home/kitchen/dht22/humidity_count", "12", t)[0]);
    assert!(count.get("unit_of_measurement").is_none(), "{count}");
}

#[test]
fn what_is_not_a_numeric_series_is_not_announced() {
    let mut d = discovery();
    let t = Instant::now();
    for (topic, payload) in [
        ("iotitan/home/x/pir/status/LWT", "Connected"),
        ("iotitan/home/living/plug1/stat/POWER", "ON"),
        ("iotitan/home/living/plug1/cmnd/POWER", "OFF"),
        ("iotitan/alerts/events", "{}"),
        ("iotitan/status/alerts/home/availability", "online"),
        ("a/b/switch", "on"),
        ("a/b/temperature", "NaN"),
        ("homeassistant/sensor/x/y/config", "{}"),
    ] {
        assert!(seen(&mut d, topic, payload, t).is_empty(), "{topic}");
    }
    // A retained value is no reading (it may be a month old).
    let mut out = Vec::new();
    d.observe("a/b/temperature", b"20", true, t, &mut out);
    assert!(out.is_empty());
}

#[test]
fn silent_series_expire_and_birth_announces_again() {
    let mut d = discovery();
    let t0 = Instant::now();
    let hour = Duration::from_secs(3600);
    let first = seen(&mut d, "iotitan/home/kitchen/dht22/temperature", "21", t0);
    seen(&mut d, "iotitan/home/kitchen/dht22/humidity", "40", t0);
    seen(
        &mut d,
        "iotitan/home/kitchen/dht22/humidity",
        "40",
        t0 + hour / 2,
    );
    let mut out = Vec::new();
    d.expire(t0 + hour - Duration::from_secs(1), &mut out);
    assert!(out.is_empty());
    d.expire(t0 + hour, &mut out);
    // The temperature's sensor and its two alerts go; the humidity stays.
    let gone: Vec<&str> = out.iter().map(|m| m.topic.as_str()).collect();
    let want: Vec<&str> = first.iter().map(|m| m.topic.as_str()).collect();
    assert_eq!(gone, want);
    assert!(out.iter().all(|m| m.payload.is_empty()));
    assert_eq!(d.len(), 1);

    let mut out = Vec::new();
    d.observe(
        "homeassistant/status",
        b"offline",
        false,
        t0 + hour,
        &mut out,
    );
    assert!(out.is_empty());
    d.observe(
        "homeassistant/status",
        b"online",
        false,
        t0 + hour,
        &mut out,
    );
    let comps: Vec<&str> = out
        .iter()
        .map(|m| m.topic.split('/').nth(1).unwrap())
        .collect();
    assert_eq!(comps, ["switch", "sensor"]);
    let sw = json(&out[0]);
    assert_eq!(sw["command_topic"], "iotitan/home/living/plug1/cmnd/POWER");
    assert_eq!(sw["state_topic"], "iotitan/home/living/plug1/stat/POWER");
    assert_eq!(
        (sw["payload_on"].as_str(), sw["payload_off"].as_str()),
        (Some("ON"), Some("OFF"))
    );
    assert_eq!(sw["device"]["name"], "iotitan/home/living/plug1");
}

#[test]
fn configs_of_an_earlier_run_expire_unless_their_series_returns() {
    let mut d = discovery();
    let t0 = Instant::now();
    let hour = Duration::from_secs(3600);
    let mut earlier = seen(&mut discovery(), "a/b/humidity", "1", t0);
    earlier.extend(seen(&mut discovery(), "a/c/humidity", "1", t0));
    let mut out = Vec::new();
    for m in &earlier {
        d.observe(&m.topic, m.payload.as_bytes(), true, t0, &mut out);
    }
    // Someone else's entity is none of ours.
    d.observe(
        "homeassistant/sensor/other/x/config",
        b"{}",
        true,
        t0,
        &mut out,
    );
    assert!(out.is_empty());
    seen(&mut d, "a/b/humidity", "2", t0 + hour / 2);
    d.expire(t0 + hour, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].topic, earlier[1].topic);
    assert!(out[0].payload.is_empty());
}

#[test]
fn templates_quote_field_names() {
    assert_eq!(
        entity_template("a/0/it's"),
        r"{{ value_json['a'][0]['it\'s'] }}"
    );
}

fn entity_template(f: &str) -> String {
    let mut d = Discovery::new(
        &Config::parse(
            "[[payload.json]]\ntopics = \"j\"\nfields = [\"a.0.it's\"]\n",
            "t",
        )
        .unwrap(),
        "logger",
    );
    let out = seen(&mut d, "j", r#"{"a":[{"it's":1}]}"#, Instant::now());
    assert_eq!(out.len(), 1, "{f}");
    json(&out[0])["value_template"].as_str().unwrap().to_owned()
}

/// What every config must hold for Home Assistant to take it.
fn valid(m: &Message) -> Result<(), String> {
    let c = json(m);
    let levels: Vec<&str> = m.topic.split('/').collect();
    if levels.len() != 5 || levels[4] != "config" {
        return Err(format!("config topic {}", m.topic));
    }
    for id in &levels[2..4] {
        if id.is_empty()
            || !id
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-')
        {
            return Err(format!("id {id:?} in {}", m.topic));
        }
    }
    for key in [
        "unique_id",
        "state_topic",
        "availability_topic",
        "device",
        "name",
    ] {
        if c.get(key).is_none() {
            return Err(format!("{key} missing in {c}"));
        }
    }
    crate::unit::check(
        c["unit_of_measurement"].as_str(),
        if levels[1] == "sensor" {
            c["device_class"].as_str()
        } else {
            None
        },
        c["state_class"].as_str(),
    )
}

proptest! {
    /// Any topic gives valid configs, one unique id per distinct series, and a config topic
    /// made of allowed characters.
    #[test]
    fn any_topics_give_valid_unique_entities(topics in proptest::collection::btree_set(
        "[a-zA-Z0-9 _/:.+é-]{1,30}(/temperature|/humidity|/power_mean|/ENERGY/Total|_count)?", 1..30))
    {
        let mut d = discovery();
        let mut ids = std::collections::HashSet::new();
        let now = Instant::now();
        for t in &topics {
            for m in seen(&mut d, t, "1.5", now) {
                prop_assert!(valid(&m).is_ok(), "{:?}: {:?}", m, valid(&m));
                prop_assert!(ids.insert(json(&m)["unique_id"].as_str().unwrap().to_owned()));
            }
        }
    }

    /// Expiry: after any sequence of readings, exactly the series silent for expire_after
    /// lose their entities, each removed once.
    #[test]
    fn expiry_removes_exactly_the_silent(steps in proptest::collection::vec((0usize..6, 0u64..7200), 1..40)) {
        let mut d = discovery();
        let t0 = Instant::now();
        let mut last: std::collections::HashMap<usize, u64> = Default::default();
        let mut configs: std::collections::HashMap<usize, Vec<String>> = Default::default();
        let mut at = 0;
        for (i, dt) in steps {
            at += dt / 8;
            let out = seen(&mut d, &format!("s/{i}/humidity"), "1", t0 + Duration::from_secs(at));
            if !out.is_empty() {
                configs.insert(i, out.into_iter().map(|m| m.topic).collect());
            }
            last.insert(i, at);
        }
        let end = at + 1800;
        let mut out = Vec::new();
        d.expire(t0 + Duration::from_secs(end), &mut out);
        let mut want: Vec<String> = last.iter()
            .filter(|(_, l)| end - **l >= 3600)
            .flat_map(|(i, _)| configs[i].clone())
            .collect();
        let mut got: Vec<String> = out.iter().map(|m| m.topic.clone()).collect();
        want.sort();
        got.sort();
        prop_assert_eq!(got, want);
        let mut again = Vec::new();
        d.expire(t0 + Duration::from_secs(end), &mut again);
        prop_assert!(again.is_empty());
    }
}
