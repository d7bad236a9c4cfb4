//! `iotitan-bridge` end to end: real mosquitto, the real binary, and a ThingSpeak stand-in
//! (tests/thingspeak) with intervals shortened to fractions of a second.

mod common;
mod thingspeak;

use common::*;
use std::path::Path;
use std::time::Duration;
use thingspeak::{Mode, ThingSpeak};

const CHANNEL: u64 = 7;
const KEY: &str = "K3YSECRET0123456";
const MIN: Duration = Duration::from_millis(300);

/// A broker, a ThingSpeak stand-in and a temp dir for one test.
struct Setup {
    m: Mosquitto,
    ts: ThingSpeak,
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        Setup {
            m: Mosquitto::start(),
            ts: ThingSpeak::start(CHANNEL, KEY, MIN),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// A config file for one channel on the stand-in, mapping `fields`, plus `extra` keys.
    fn config(&self, fields: &str, extra: &str) -> std::path::PathBuf {
        let dir = self.dir.path();
        write_config(
            dir,
            &format!(
                "state_dir = \"{state}\"\n{mqtt}\n[[bridge.channel]]\nid = {CHANNEL}\nurl = \"{url}\"\n\
                 fields = {{ {fields} }}\nmin_interval = \"300ms\"\nmax_interval = \"2s\"\ntimeout = \"1s\"\n{extra}",
                state = dir.join("state").display(),
                mqtt = self.m.mqtt_toml("bridge-test"),
                url = self.ts.url,
            ),
        )
    }

    /// Publish `value` on `topic` at QoS 1.
    fn publish(&self, topic: &str, value: &str) {
        self.m.publish(&["-q", "1", "-t", topic, "-m", value]);
    }
}

/// `iotitan-bridge --config <config> <args>`, with the key in the environment (or none).
fn bridge(config: &Path, key: Option<&str>, args: &[&str]) -> Program {
    let var = format!("IOTITAN_THINGSPEAK_KEY_{CHANNEL}");
    let program = Program::new("iotitan-bridge")
        .config_file(config)
        .args(args)
        .env("RUST_LOG", "debug")
        .env_remove("CREDENTIALS_DIRECTORY");
    match key {
        Some(k) => program.env(var, k),
        None => program.env_remove(var),
    }
}

/// A running `iotitan-bridge`: its stderr (the log) and stdout in files.
struct Bridge(Running);

impl std::ops::Deref for Bridge {
    type Target = Running;
    fn deref(&self) -> &Running {
        &self.0
    }
}

impl std::ops::DerefMut for Bridge {
    fn deref_mut(&mut self) -> &mut Running {
        &mut self.0
    }
}

impl Bridge {
    fn start(config: &Path, key: Option<&str>, args: &[&str]) -> Bridge {
        Bridge(bridge(config, key, args).start())
    }

    /// SIGTERM and wait; the exit must be clean.
    fn stop(self) -> Vec<String> {
        let stopped = self.0.stop();
        let log: Vec<String> = stopped.log.lines().map(str::to_owned).collect();
        assert!(
            stopped.status.success(),
            "exit {:?}; log:\n{}",
            stopped.status,
            stopped.log
        );
        assert_key_never_logged(&log);
        log
    }
}

fn assert_key_never_logged(log: &[String]) {
    for line in log {
        assert!(!line.contains(KEY), "the key leaked into the log: {line}");
    }
}

fn field1_values(entries: &[serde_json::Value]) -> Vec<f64> {
    entries
        .iter()
        .map(|e| e["field1"].as_f64().unwrap())
        .collect()
}

/// created_at of each entry, which must strictly increase in the order stored.
fn assert_created_at_increasing(entries: &[serde_json::Value]) {
    let stamps: Vec<chrono::DateTime<chrono::Utc>> = entries
        .iter()
        .map(|e| e["created_at"].as_str().unwrap().parse().unwrap())
        .collect();
    for w in stamps.windows(2) {
        assert!(w[0] < w[1], "created_at not increasing: {w:?}");
    }
}

/// No two requests closer than min_interval (measured at the server, with a little slack
/// for the network), and none answered 429.
/// Nothing was refused as a duplicate or otherwise: the stand-in answers 400 to a
/// `created_at` it stored already, so a resent update would be dropped, not stored twice,
/// and counting entries alone could not see it.
fn assert_nothing_refused(ts: &ThingSpeak, log: &[String]) {
    let refused: Vec<_> = ts
        .requests()
        .into_iter()
        .filter(|r| r.status == 400)
        .map(|r| r.body)
        .collect();
    assert!(refused.is_empty(), "refused: {refused:#?}");
    assert!(
        !log.iter().any(|l| l.contains("refused")),
        "{}",
        log.join("\n")
    );
}

fn assert_never_too_fast(ts: &ThingSpeak) {
    let reqs = ts.requests();
    for w in reqs.windows(2) {
        let gap = w[1].at - w[0].at;
        assert!(gap >= MIN.mul_f64(0.9), "two requests {gap:?} apart");
    }
    assert!(reqs.iter().all(|r| !r.too_fast), "{reqs:#?}");
}

#[test]
fn sends_the_exact_json_with_created_at_and_user_agent() {
    let s = Setup::new();
    let ts = &s.ts;
    let cfg = s.config("\"t/a\" = 1, \"t/b\" = 2", "status_topic = \"t/s\"\n");
    // An old retained value is replayed on subscribing: not a new reading, not forwarded.
    s.m.publish(&["-q", "1", "-r", "-t", "t/a", "-m", "99"]);
    let bridge = Bridge::start(&cfg, Some(KEY), &[]);
    bridge.wait_log("subscribed: t/a, t/b, t/s");
    let before = chrono::Utc::now();
    s.publish("t/s", "all good");
    s.publish("t/a", "21.5");
    // Retained, as stats publishes: live messages are forwarded all the same.
    s.m.publish(&["-q", "1", "-r", "-t", "t/b", "-m", "40"]);
    let after = chrono::Utc::now();
    ts.wait_entries(1, TIMEOUT);
    let req = &ts.requests()[0];
    assert_eq!(req.path, format!("/channels/{CHANNEL}/bulk_update.json"));
    assert_eq!(
        req.user_agent.as_deref(),
        Some(concat!("iotitan/", env!("CARGO_PKG_VERSION")))
    );
    assert_eq!(req.content_type.as_deref(), Some("application/json"));
    let doc: serde_json::Value = serde_json::from_str(&req.body).unwrap();
    let created = doc["updates"][0]["created_at"].as_str().unwrap().to_owned();
    assert_eq!(
        req.body,
        format!(
            r#"{{"write_api_key":"{KEY}","updates":[{{"created_at":"{created}","field1":21.5,"field2":40.0,"status":"all good"}}]}}"#
        )
    );
    // The arrival time, in whole seconds, UTC.
    let t: chrono::DateTime<chrono::Utc> = created.parse().unwrap();
    assert!(
        created.ends_with('Z') && !created.contains('.'),
        "{created}"
    );
    assert!(
        // (The broker may hand the last message over a moment after mosquitto_pub returned.)
        t.timestamp() >= before.timestamp() && t <= after + chrono::TimeDelta::seconds(1),
        "{t} not in [{before}, {after}]"
    );
    let log = bridge.stop();
    assert_eq!(ts.requests().len(), 1, "{log:#?}");
}

#[test]
fn an_outage_of_several_intervals_delivers_every_update_exactly_once() {
    let s = Setup::new();
    let ts = &s.ts;
    let cfg = s.config("\"t/a\" = 1", "");
    let bridge = Bridge::start(&cfg, Some(KEY), &[]);
    bridge.wait_log("subscribed: t/a");
    // Every kind of failure in turn, with readings arriving throughout.
    let mut value: u32 = 0;
    for mode in [
        Mode::Fail(503),
        Mode::Zero,
        Mode::Hang,
        Mode::Drop,
        Mode::Fail(429),
        Mode::Fail(500),
    ] {
        ts.set_mode(mode);
        for _ in 0..3 {
            value += 1;
            s.publish("t/a", &value.to_string());
        }
        // Two attempts fail this way (the first may have started in the previous mode).
        let n = ts.requests().len();
        ts.wait_requests(n + 2, TIMEOUT);
    }
    assert!(ts.entries().is_empty());
    ts.set_mode(Mode::Normal);
    let entries = ts.wait_entries(value as usize, TIMEOUT);
    let expected: Vec<f64> = (1..=value).map(f64::from).collect();
    assert_eq!(field1_values(&entries), expected, "in order, each once");
    assert_created_at_increasing(&entries);
    assert_never_too_fast(ts);
    let log = bridge.stop();
    assert_eq!(
        ts.entries().len(),
        value as usize,
        "nothing twice after recovery"
    );
    assert!(log.iter().any(|l| l.contains("HTTP 503")), "{log:#?}");
    assert!(
        log.iter().any(|l| l.contains("no answer in time")),
        "{log:#?}"
    );
    assert!(
        log.iter()
            .any(|l| l.contains("delivered") && l.contains("after")),
        "{log:#?}"
    );
    assert_nothing_refused(ts, &log);
}

#[test]
fn a_restart_during_an_outage_loses_nothing_and_sends_nothing_twice() {
    let s = Setup::new();
    let ts = &s.ts;
    let cfg = s.config("\"t/a\" = 1", "");
    ts.set_mode(Mode::Fail(502));
    let bridge = Bridge::start(&cfg, Some(KEY), &[]);
    bridge.wait_log("subscribed: t/a");
    for v in 1..=5 {
        s.publish("t/a", &v.to_string());
    }
    ts.wait_requests(2, TIMEOUT);
    let mut log = bridge.stop();
    // Published while the bridge is down: the broker keeps them for its session.
    for v in 6..=8 {
        s.publish("t/a", &v.to_string());
    }
    let bridge = Bridge::start(&cfg, Some(KEY), &[]);
    bridge.wait_log("5 updates waiting from the spool");
    ts.set_mode(Mode::Normal);
    let entries = ts.wait_entries(8, TIMEOUT);
    assert_eq!(
        field1_values(&entries),
        (1..=8).map(f64::from).collect::<Vec<_>>()
    );
    assert_created_at_increasing(&entries);
    // And once more: a restart after recovery resends nothing.
    log.extend(bridge.stop());
    let bridge = Bridge::start(&cfg, Some(KEY), &[]);
    bridge.wait_log("connected to the MQTT broker");
    s.publish("t/a", "9");
    let entries = ts.wait_entries(9, TIMEOUT);
    assert_eq!(
        field1_values(&entries),
        (1..=9).map(f64::from).collect::<Vec<_>>()
    );
    log.extend(bridge.stop());
    assert_never_too_fast(ts);
    assert_nothing_refused(ts, &log);
}

#[test]
fn a_crash_during_an_outage_loses_nothing() {
    let s = Setup::new();
    let ts = &s.ts;
    let cfg = s.config("\"t/a\" = 1", "");
    ts.set_mode(Mode::Fail(500));
    let mut bridge = Bridge::start(&cfg, Some(KEY), &[]);
    bridge.wait_log("subscribed: t/a");
    for v in 1..=4 {
        s.publish("t/a", &v.to_string());
    }
    ts.wait_requests(2, TIMEOUT);
    bridge.child.kill().unwrap();
    bridge.child.wait().unwrap();
    s.publish("t/a", "5");
    let bridge = Bridge::start(&cfg, Some(KEY), &[]);
    bridge.wait_log("updates waiting from the spool");
    ts.set_mode(Mode::Normal);
    let entries = ts.wait_entries(5, TIMEOUT);
    assert_eq!(field1_values(&entries), [1.0, 2.0, 3.0, 4.0, 5.0]);
    assert_created_at_increasing(&entries);
    let log = bridge.stop();
    assert_nothing_refused(ts, &log);
}

#[test]
fn a_bad_key_gives_one_clear_error_per_batch_and_no_retry_storm() {
    let s = Setup::new();
    let ts = &s.ts;
    let cfg = s.config("\"t/a\" = 1", "");
    let wrong = "WR0NGKEY99999999";
    let bridge = Bridge::start(&cfg, Some(wrong), &[]);
    bridge.wait_log("subscribed: t/a");
    s.publish("t/a", "1");
    let line = bridge.wait_log("refused");
    assert!(
        line.contains("HTTP 401") && line.contains("write API key"),
        "{line}"
    );
    // Longer than max_interval and several backoff caps: nothing is retried.
    assert!(!ts.try_wait_requests(2, Duration::from_secs(5)));
    // A new reading is a new batch: one more request, one more line.
    s.publish("t/a", "2");
    ts.wait_requests(2, TIMEOUT);
    bridge.wait_log("HTTP 401");
    let log = bridge.stop();
    let errors: Vec<_> = log.iter().filter(|l| l.contains("refused")).collect();
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert_eq!(ts.requests().len(), 2);
    for l in &log {
        assert!(!l.contains(wrong), "the key leaked: {l}");
    }
    // The stand-in echoed the wrong key in its answer; the log shows it masked.
    assert!(
        errors[0].contains("key ******** is not valid"),
        "{}",
        errors[0]
    );
}

#[test]
fn dry_run_prints_the_json_with_the_key_masked_and_sends_nothing() {
    let s = Setup::new();
    let ts = &s.ts;
    let cfg = s.config("\"t/a\" = 1, \"t/b\" = 2", "");
    let bridge = Bridge::start(&cfg, Some(KEY), &["--dry-run"]);
    bridge.wait_log("subscribed: t/a, t/b");
    s.publish("t/a", "1.25");
    s.publish("t/b", "2");
    // The document is printed over several lines: wait for all of them, not just the field.
    let mut text = String::new();
    let ok = wait_until(TIMEOUT, || {
        text = bridge.stdout();
        text.contains("\"field2\": 2.0") && serde_json::from_str::<serde_json::Value>(&text).is_ok()
    });
    assert!(ok, "no complete JSON printed: {text}");
    assert!(text.contains("\"write_api_key\": \"********\""), "{text}");
    assert!(text.contains("\"field1\": 1.25"), "{text}");
    assert!(!text.contains(KEY));
    let doc: serde_json::Value = serde_json::from_str(&text).expect("one JSON document");
    assert_eq!(doc["updates"].as_array().unwrap().len(), 1);
    bridge.stop();
    assert!(ts.requests().is_empty());
    assert!(
        !s.dir.path().join("state/bridge").exists(),
        "a dry run leaves the spool alone"
    );
}

#[test]
fn a_dry_run_beside_a_running_bridge_takes_none_of_its_readings() {
    let s = Setup::new();
    let cfg = s.config("\"t/a\" = 1", "");
    let live = Bridge::start(&cfg, Some(KEY), &[]);
    live.wait_log("subscribed: t/a");
    let dry = Bridge::start(&cfg, None, &["--dry-run"]);
    dry.wait_log("subscribed: t/a");
    // Each reading closes an update (one field); the live bridge must deliver them all,
    // however the broker shares them out, and the dry run sees them too.
    let n = 6;
    for i in 0..n {
        s.publish("t/a", &format!("{i}.5"));
    }
    let entries = s.ts.wait_entries(n, TIMEOUT);
    let values: Vec<f64> = entries
        .iter()
        .map(|e| e["field1"].as_f64().unwrap())
        .collect();
    assert_eq!(values, (0..n).map(|i| i as f64 + 0.5).collect::<Vec<_>>());
    let printed = wait_until(TIMEOUT, || {
        dry.stdout()
            .lines()
            .filter(|l| l.contains("\"field1\""))
            .count()
            == n
    });
    assert!(printed, "{}", dry.stdout());
    // Neither took the other's session over.
    let dry_log = dry.stop();
    let live_log = live.stop();
    for log in [&dry_log, &live_log] {
        assert!(
            !log.iter().any(|l| l.contains("connection lost")),
            "{}",
            log.join("\n")
        );
    }
}

#[test]
fn check_config_names_the_key_source_never_the_key() {
    let s = Setup::new();
    let cfg = s.config("\"t/a\" = 1", "");
    let run = |key: Option<&str>, cfg: &Path| {
        let out = bridge(cfg, key, &["check-config"]).output();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!text.contains(KEY), "{text}");
        (out.status.code(), text)
    };
    let (code, text) = run(Some(KEY), &cfg);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("# channel 7: write key from environment variable IOTITAN_THINGSPEAK_KEY_7"),
        "{text}"
    );
    assert!(text.contains("min_interval = \"300ms\""), "{text}");
    let (code, text) = run(None, &cfg);
    assert_eq!(code, Some(78), "{text}");
    assert!(text.contains("no write key"), "{text}");
    // A key file works too, and a bad mapping is a located config error.
    let key_file = s.dir.path().join("key");
    std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
    let cfg = s.config(
        "\"t/a\" = 1",
        &format!("write_key_file = \"{}\"\n", key_file.display()),
    );
    let (code, text) = run(None, &cfg);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("write key from file"), "{text}");
    let cfg = s.config("\"t/a\" = 1, \"t/b\" = 1", "");
    let (code, text) = run(Some(KEY), &cfg);
    assert_eq!(code, Some(78), "{text}");
    assert!(
        text.contains("iotitan.toml:") && text.contains("field1 is mapped twice"),
        "{text}"
    );
}

#[test]
fn in_process_callers_see_each_channel_queue() {
    use iotitan::bridge::{Options, Status};
    let s = Setup::new();
    let ts = &s.ts;
    let key_file = s.dir.path().join("key");
    std::fs::write(&key_file, KEY).unwrap();
    let extra = format!("write_key_file = \"{}\"\n", key_file.display());
    let cfg = iotitan::config::Config::load(&s.config("\"t/a\" = 1", &extra)).unwrap();
    ts.set_mode(Mode::Fail(503));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (trigger, shutdown) = iotitan::shutdown::channel();
    let (tx, mut rx) = tokio::sync::watch::channel(Status::default());
    let opts = Options {
        status: Some(tx),
        ..Options::default()
    };
    let daemon = rt.spawn(async move { iotitan::bridge::run_with(&cfg, shutdown, opts).await });
    let mut wait = |pred: &dyn Fn(&Status) -> bool, limit: Duration| {
        rt.block_on(async { tokio::time::timeout(limit, rx.wait_for(|s| pred(s))).await })
            .is_ok_and(|r| r.is_ok())
    };
    // Publish until the subscription is in place and the reading shows up as waiting.
    assert!(wait_until(TIMEOUT, || {
        s.publish("t/a", "1");
        wait(&|s| s.channels[0].waiting > 0, Duration::from_millis(200))
    }));
    assert!(wait(&|s| s.channels[0].failures >= 2, TIMEOUT));
    ts.set_mode(Mode::Normal);
    assert!(wait(
        &|s| s.channels[0].waiting == 0 && s.channels[0].delivered > 0,
        TIMEOUT
    ));
    let st = rx.borrow().channels[0].clone();
    assert_eq!(st.id, CHANNEL);
    assert_eq!(st.delivered as usize, ts.entries().len());
    assert_eq!(
        (st.failures, st.in_flight, st.dropped, st.refused),
        (0, 0, 0, 0)
    );
    trigger.trigger();
    rt.block_on(daemon).unwrap().unwrap();
}

#[test]
fn refuses_to_start_without_channels_or_beside_another_bridge() {
    let s = Setup::new();
    let empty = write_config(s.dir.path(), &s.m.mqtt_toml("bridge-test"));
    let out = bridge(&empty, Some(KEY), &[]).output();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert!(err.contains("no [[bridge.channel]]"), "{err}");
    let cfg = s.config("\"t/a\" = 1", "");
    let first = Bridge::start(&cfg, Some(KEY), &[]);
    first.wait_log("subscribed: t/a");
    let out = bridge(&cfg, Some(KEY), &[]).output();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(74), "{err}");
    assert!(err.contains("another iotitan-bridge"), "{err}");
    first.stop();
}

/// OwnTracks in MQTT mode, its fields mapped to a channel: a location in a private area never
/// reaches ThingSpeak; the rest of the message does.
#[test]
fn a_location_in_a_private_area_never_reaches_thingspeak() {
    let s = Setup::new();
    let ts = &s.ts;
    let cfg = s.config(
        "\"owntracks/jane/phone/lat\" = 1, \"owntracks/jane/phone/lon\" = 2, \
         \"owntracks/jane/phone/batt\" = 3",
        "[[payload.json]]\ntopics = [\"owntracks/#\"]\nfields = [\"lat\", \"lon\", \"batt\"]\n\
         [[private_area]]\nname = \"home\"\n\
         polygon = [[138.59, -34.93], [138.61, -34.93], [138.61, -34.91], [138.59, -34.91]]\n",
    );
    let bridge = Bridge::start(&cfg, Some(KEY), &[]);
    bridge.wait_log("subscribed: owntracks/jane/phone");
    s.publish(
        "owntracks/jane/phone",
        r#"{"_type":"location","lat":-34.92,"lon":138.6,"batt":87}"#,
    );
    ts.wait_entries(1, TIMEOUT);
    s.publish(
        "owntracks/jane/phone",
        r#"{"_type":"location","lat":-34.95,"lon":138.53,"batt":86}"#,
    );
    ts.wait_entries(2, TIMEOUT);
    let entries: Vec<serde_json::Value> = ts
        .requests()
        .iter()
        .flat_map(|r| {
            let doc: serde_json::Value = serde_json::from_str(&r.body).unwrap();
            doc["updates"].as_array().unwrap().clone()
        })
        .map(|mut u| {
            u.as_object_mut().unwrap().remove("created_at");
            u
        })
        .collect();
    assert_eq!(
        entries,
        [
            serde_json::json!({"field3": 87.0}),
            serde_json::json!({"field1": -34.95, "field2": 138.53, "field3": 86.0}),
        ]
    );
    bridge.stop();
}
