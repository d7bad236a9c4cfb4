//! `iotitan-alerts` end to end against a real mosquitto: each alert kind, read-back after a
//! restart, device commands, hostile input, and a broker restart.

mod common;
use common::*;

use std::process::{Command, Stdio};
use std::time::Duration;

/// Lines until `want` arrives; everything seen before it is returned too.
fn until(sub: &Subscriber, want: &str) -> Vec<String> {
    let deadline = std::time::Instant::now() + TIMEOUT;
    let mut before = Vec::new();
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match sub.next_line(left) {
            Some(l) if l == want => return before,
            Some(l) => before.push(l),
            None => break,
        }
    }
    panic!("no {want:?} within {TIMEOUT:?}; saw {before:#?}");
}

/// A broker, and a config for it in a temp dir with events on `ev/alerts` and `rules`.
struct Setup {
    m: Mosquitto,
    dir: tempfile::TempDir,
    cfg: std::path::PathBuf,
}

fn setup(rules: &str) -> Setup {
    let m = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        &format!(
            "{}\n[alerts]\nevents_topic = \"ev/alerts\"\n{rules}",
            m.mqtt_toml("test")
        ),
    );
    Setup { m, dir, cfg }
}

fn event(line: &str) -> serde_json::Value {
    let json = line.strip_prefix("ev/alerts ").expect("an event line");
    serde_json::from_str(json).expect("events are JSON")
}

fn pub_(m: &Mosquitto, topic: &str, payload: &str) {
    m.publish(&["-q", "1", "-t", topic, "-m", payload]);
}

#[test]
fn high_and_low_alerts_with_hysteresis_end_to_end() {
    let Setup { m, dir: _dir, cfg } = setup(
        "[[alerts.rule]]\nname = \"room\"\ntopics = \"iotitan/+/temperature\"\nlow = 10\nhigh = 30\nhysteresis = 1\n",
    );
    let mut alerts = Alerts::start(&cfg);
    let sub = subscriber(&m, &["iotitan/#", "ev/#"]);

    pub_(&m, "iotitan/bed/temperature", "31.5");
    until(&sub, "iotitan/bed/temperature_alert_hi on");
    let ev = event(&sub.wait_for(TIMEOUT, |l| l.starts_with("ev/alerts ")));
    assert_eq!(ev["topic"], "iotitan/bed/temperature");
    assert_eq!(ev["rule"], "room");
    assert_eq!(ev["kind"], "hi");
    assert_eq!(ev["state"], "on");
    assert_eq!(ev["value"], 31.5);
    assert_eq!(ev["threshold"], 30.0);
    assert!(ev["since"].as_str().unwrap().ends_with('Z'), "{ev}");
    assert!(ev["at"].is_string(), "{ev}");
    let warn = alerts.wait_log("alert hi on for iotitan/bed/temperature");
    assert!(warn.contains("WARN"), "{warn}");

    // Inside the hysteresis band: nothing; below it: off.
    pub_(&m, "iotitan/bed/temperature", "29.5");
    pub_(&m, "iotitan/bed/temperature", "28.5");
    let before = until(&sub, "iotitan/bed/temperature_alert_hi off");
    assert!(
        before.contains(&"iotitan/bed/temperature 29.5".to_owned()),
        "{before:?}"
    );
    // The value that cleared it is 28.5, below the band, not 29.5 inside it.
    let ev = event(&sub.wait_for(TIMEOUT, |l| l.starts_with("ev/alerts ")));
    assert_eq!(
        (
            ev["state"].as_str(),
            ev["threshold"].as_f64(),
            ev["value"].as_f64()
        ),
        (Some("off"), Some(29.0), Some(28.5))
    );

    pub_(&m, "iotitan/bed/temperature", "9");
    until(&sub, "iotitan/bed/temperature_alert_lo on");
    alerts.wait_log("alert lo on");

    // The outputs are retained: a newcomer sees the current states at once.
    let late = m.subscribe(
        &[
            "iotitan/bed/temperature_alert_hi",
            "iotitan/bed/temperature_alert_lo",
        ],
        &[],
    );
    let mut got = vec![
        late.next_line(TIMEOUT).expect("retained"),
        late.next_line(TIMEOUT).expect("retained"),
    ];
    got.sort();
    assert_eq!(
        got,
        [
            "iotitan/bed/temperature_alert_hi off",
            "iotitan/bed/temperature_alert_lo on"
        ]
    );
    alerts.stop();
}

#[test]
fn stale_alert_starts_at_startup_and_clears_on_the_next_reading() {
    let Setup { m, dir: _dir, cfg } = setup(
        "[[alerts.rule]]\nname = \"quiet\"\ntopics = \"iotitan/garage/temperature\"\nstale_after = \"1s\"\n",
    );
    let sub = subscriber(&m, &["iotitan/#", "ev/#"]);
    let alerts = Alerts::start(&cfg);
    // Never heard from since the start: stale once stale_after has passed.
    until(&sub, "iotitan/garage/temperature_alert_stale on");
    let ev = event(&sub.wait_for(TIMEOUT, |l| l.starts_with("ev/alerts ")));
    assert_eq!(ev["kind"], "stale");
    assert_eq!(ev["value"], serde_json::Value::Null);
    assert_eq!(ev["threshold"], 1.0);

    pub_(&m, "iotitan/garage/temperature", "12");
    until(&sub, "iotitan/garage/temperature_alert_stale off");
    // And stale again after a silence.
    until(&sub, "iotitan/garage/temperature_alert_stale on");
    alerts.stop();
}

#[test]
fn hold_delays_the_alert_until_the_value_stayed_out() {
    let Setup { m, dir: _dir, cfg } =
        setup("[[alerts.rule]]\ntopics = \"iotitan/+/co2\"\nhigh = 1000\nhold = \"1s\"\n");
    let alerts = Alerts::start(&cfg);
    let sub = subscriber(&m, &["iotitan/#"]);
    let sent = std::time::Instant::now();
    pub_(&m, "iotitan/hall/co2", "1500");
    until(&sub, "iotitan/hall/co2_alert_hi on");
    assert!(
        sent.elapsed() >= Duration::from_secs(1),
        "on before the hold ended"
    );
    alerts.stop();
}

#[test]
fn a_restart_neither_repeats_nor_forgets_an_active_alert() {
    let Setup { m, dir: _dir, cfg } = setup(
        "[[alerts.rule]]\ntopics = \"iotitan/#\"\nhigh = 30\naction = { topic = \"dev/fan\", on = \"1\", off = \"0\" }\n",
    );
    let sub = subscriber(&m, &["iotitan/#", "ev/#", "dev/#"]);
    let alerts = Alerts::start(&cfg);
    // Retained, so that after the restart the reading and the alert state come back through
    // the same subscription, in whatever order the broker keeps them.
    m.publish(&["-r", "-q", "1", "-t", "iotitan/bed/temperature", "-m", "31"]);
    until(&sub, "dev/fan 1");
    alerts.stop();

    let alerts = Alerts::start(&cfg);
    assert!(
        alerts
            .seen
            .iter()
            .any(|l| l.contains("active alert read back")),
        "{:#?}",
        alerts.seen
    );
    // Still too warm after the restart: no second announcement. A second series is the
    // marker that the reading was processed.
    pub_(&m, "iotitan/bed/temperature", "32");
    pub_(&m, "iotitan/marker/temperature", "40");
    let before = until(&sub, "iotitan/marker/temperature_alert_hi on");
    let repeated: Vec<_> = before
        .iter()
        .filter(|l| l.contains("bed/temperature_alert") || l.contains("\"iotitan/bed"))
        .collect();
    assert!(repeated.is_empty(), "announced again: {repeated:?}");
    // Not forgotten either: it goes off, and the fan with it.
    pub_(&m, "iotitan/bed/temperature", "20");
    until(&sub, "iotitan/bed/temperature_alert_hi off");
    until(&sub, "dev/fan 0");
    alerts.stop();
}

#[test]
fn an_action_sends_a_command_the_device_receives() {
    let Setup { m, dir: _dir, cfg } = setup(
        "[[alerts.rule]]\nname = \"motion\"\ntopics = \"home/hall/motion\"\nhigh = 0.5\n\
         action = { topic = \"home/hall/camera/cmd\", on = \"snapshot\" }\n",
    );
    // The "device": subscribed to its command topic only.
    let camera = subscriber(&m, &["home/hall/camera/cmd"]);
    let alerts = Alerts::start(&cfg);
    pub_(&m, "home/hall/motion", "1");
    assert_eq!(
        camera.next_line(TIMEOUT).as_deref(),
        Some("home/hall/camera/cmd snapshot")
    );
    // Off sends nothing (no `off` payload); the next motion snaps again.
    pub_(&m, "home/hall/motion", "0");
    pub_(&m, "home/hall/motion", "ON");
    assert_eq!(
        camera.next_line(TIMEOUT).as_deref(),
        Some("home/hall/camera/cmd snapshot")
    );
    alerts.stop();
}

#[test]
fn junk_hostile_payloads_and_our_own_outputs_are_not_readings() {
    let m = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    // A rule on everything under t/, where our own outputs, events and commands also live.
    let cfg = write_config(
        dir.path(),
        &format!(
            "{}\n[alerts]\nevents_topic = \"t/events\"\n\
             [[alerts.rule]]\ntopics = \"t/#\"\nhigh = 0.5\naction = {{ topic = \"t/fan\", on = \"1\" }}\n\
             [[payload.json]]\ntopics = \"t/json\"\nfields = [\"v\"]\n",
            m.mqtt_toml("test")
        ),
    );
    let alerts = Alerts::start(&cfg);
    // Alert outputs only, including the ones a feedback loop would produce (binary junk
    // would also end mosquitto_sub's line reader).
    let sub = subscriber(
        &m,
        &[
            "t/x_alert_hi",
            "t/json/v_alert_hi",
            "t/marker_alert_hi",
            "t/x_alert_hi_alert_hi",
            "t/fan_alert_hi",
            "t/events_alert_hi",
            "t/y_alert_hi_alert_hi",
            "t/y_alert_stale_alert_hi",
        ],
    );
    for junk in [
        "NaN",
        "inf",
        "1e400",
        "",
        "12abc",
        "{\"v\":",
        "\u{1}\u{2}",
        "-",
        "0x10",
    ] {
        pub_(&m, "t/x", junk);
    }
    pub_(&m, "t/json", "{\"v\": \"nope\", \"w\": 3}");
    pub_(&m, "t/json", "[1,2,3]");
    let big = dir.path().join("big");
    std::fs::write(&big, vec![b'9'; 300_000]).unwrap();
    m.publish(&["-t", "t/x", "-f", big.to_str().unwrap()]);
    let binary = dir.path().join("bin");
    std::fs::write(&binary, [0xff, 0xfe, 0x00, b'1', b'\n', 0x80]).unwrap();
    m.publish(&["-t", "t/x", "-f", binary.to_str().unwrap()]);
    // Someone else publishing what looks like our outputs is not a reading either.
    pub_(&m, "t/y_alert_hi", "on");
    pub_(&m, "t/y_alert_stale", "1e9");

    // Still alive and judging: a real value goes through.
    pub_(&m, "t/x", "0.1");
    pub_(&m, "t/json", "{\"v\": 7}");
    until(&sub, "t/json/v_alert_hi on");
    pub_(&m, "t/x", "3");
    let before = until(&sub, "t/x_alert_hi on");
    // No feedback loops: our outputs, events and commands never became series.
    pub_(&m, "t/marker", "2");
    let mut all = before;
    all.extend(until(&sub, "t/marker_alert_hi on"));
    assert!(all.is_empty(), "feedback loops: {all:?}");
    // Every junk payload was counted (13), none of our own or look-alike outputs was.
    let log = alerts.stop();
    let summary = log
        .iter()
        .find(|l| l.contains("iotitan-alerts stopped"))
        .unwrap();
    assert!(summary.contains("junk=13"), "{summary}");
}

#[test]
fn after_a_broker_restart_subscriptions_come_back_and_alerts_keep_working() {
    let Setup {
        mut m,
        dir: _dir,
        cfg,
    } = setup("[[alerts.rule]]\ntopics = \"iotitan/+/temperature\"\nhigh = 30\n");
    let mut alerts = Alerts::start(&cfg);
    let sub = subscriber(&m, &["iotitan/#"]);
    pub_(&m, "iotitan/bed/temperature", "31");
    until(&sub, "iotitan/bed/temperature_alert_hi on");
    drop(sub);

    m.restart();
    alerts.wait_log("broker connection lost");
    alerts.wait_log("subscribed;");
    let sub = subscriber(&m, &["iotitan/#"]);
    // The retained state survived in the broker's persistence.
    pub_(&m, "iotitan/bed/temperature", "20");
    until(&sub, "iotitan/bed/temperature_alert_hi off");
    pub_(&m, "iotitan/kitchen/temperature", "35");
    until(&sub, "iotitan/kitchen/temperature_alert_hi on");
    alerts.stop();
}

#[test]
fn a_dead_sensor_stays_stale_when_the_broker_replays_its_retained_value() {
    let Setup {
        mut m,
        dir: _dir,
        cfg,
    } = setup("[[alerts.rule]]\ntopics = \"iotitan/+/t\"\nstale_after = \"1s\"\nhigh = 50\n");
    let mut alerts = Alerts::start(&cfg);
    let sub = subscriber(&m, &["iotitan/#"]);
    m.publish(&["-r", "-q", "1", "-t", "iotitan/dead/t", "-m", "5"]);
    until(&sub, "iotitan/dead/t_alert_stale on");
    drop(sub);

    m.restart();
    alerts.wait_log("broker connection lost");
    alerts.wait_log("subscribed;");
    let sub = subscriber(&m, &["iotitan/+/t_alert_stale", "iotitan/+/t_alert_hi"]);
    // The retained reading came back with the subscription: old news, not a sign of life.
    pub_(&m, "iotitan/marker/t", "99");
    let before = until(&sub, "iotitan/marker/t_alert_hi on");
    assert!(
        !before.contains(&"iotitan/dead/t_alert_stale off".to_owned()),
        "{before:?}"
    );
    // The broker's retained state is the final word.
    let state = m.subscribe(&["iotitan/dead/t_alert_stale"], &[]);
    assert_eq!(
        state.next_line(TIMEOUT).as_deref(),
        Some("iotitan/dead/t_alert_stale on")
    );
    alerts.stop();
}

#[test]
fn an_invalid_rule_exits_78_with_its_location() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "[alerts]\nevents_topic = \"ev\"\n\n[[alerts.rule]]\ntopics = \"a/b\"\nlow = 30\nhigh = 10\n",
    );
    let out = Program::new("iotitan-alerts").config_file(&cfg).output();
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("iotitan.toml:4:"), "{err}");
    assert!(err.contains("low (30) must be below high (10)"), "{err}");

    // No rules at all: nothing to do is a config error too.
    let cfg = write_config(dir.path(), "[alerts]\n");
    let out = Program::new("iotitan-alerts").config_file(&cfg).output();
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no [[alerts.rule]]"));
}

#[test]
fn check_config_prints_the_rules() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "[[alerts.rule]]\ntopics = \"a/+\"\nhigh = 10\nhold = \"30s\"\n",
    );
    let out = Program::new("iotitan-alerts")
        .arg("check-config")
        .config_file(&cfg)
        .output();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("[[alerts.rule]]"), "{text}");
    assert!(text.contains("name = \"a/+\""), "{text}");
    assert!(text.contains("hold = \"30s\""), "{text}");
}

/// The shell side of [`transitions_are_warnings_in_the_journal`]: in a mount namespace of its
/// own (so the system's journal is not touched), a real systemd-journald on fresh tmpfs
/// mounts at the default paths, iotitan-alerts logging to it as under systemd
/// (`JOURNAL_STREAM` set), and, once the test creates `$DIR/go`, the warnings read back with
/// journalctl, again until the transition is written (CI once read them before journald had
/// written it). Every wait is bounded.
const JOURNAL_SCRIPT: &str = r#"set -eu
trap 'kill $A $J 2>/dev/null || true' EXIT
A=""; J=""
for d in /run/systemd/journal /run/log /var/log/journal; do
  mkdir -p "$d"; mount -t tmpfs tmpfs "$d"
done
"$JOURNALD" & J=$!
n=0; until [ -S /run/systemd/journal/socket ]; do n=$((n+1)); [ $n -lt 200 ] || exit 3; sleep 0.05; done
JOURNAL_STREAM=0:0 RUST_LOG=info "$ALERTS" --config "$CFG" & A=$!
n=0; until [ -e "$DIR/go" ]; do n=$((n+1)); [ $n -lt 1200 ] || exit 4; sleep 0.05; done
kill -TERM $A; wait $A
# journald writes what it was sent in its own time: read until the transition is there
# (bounded; the test says what was read if it never is).
n=0
until journalctl -t iotitan-alerts -p warning -o json --no-pager > "$DIR/journal.json" \
  && grep -q 'alert hi on' "$DIR/journal.json"; do
  n=$((n+1)); [ $n -lt 200 ] || break; sleep 0.05
done
"#;

#[test]
fn transitions_are_warnings_in_the_journal() {
    let journald = require("systemd-journald", "systemd");
    require("unshare", "util-linux");
    let Setup { m, dir, cfg } =
        setup("[[alerts.rule]]\nname = \"room\"\ntopics = \"iotitan/+/temperature\"\nhigh = 30\n");
    let script = dir.path().join("journal.sh");
    std::fs::write(&script, JOURNAL_SCRIPT).unwrap();
    let mut sh = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh"])
        .arg(&script)
        .env("JOURNALD", &journald)
        .env("ALERTS", env!("CARGO_BIN_EXE_iotitan-alerts"))
        .env("CFG", &cfg)
        .env("DIR", dir.path())
        .stdin(Stdio::null())
        .spawn()
        .expect("run unshare (needs root)");
    // The daemon's log goes to the journal, so readiness is seen on MQTT: a reading that
    // arrives once it has subscribed turns the alert on.
    let sub = subscriber(&m, &["iotitan/#"]);
    let on = wait_until(TIMEOUT, || {
        pub_(&m, "iotitan/bed/temperature", "31.5");
        sub.next_line(Duration::from_millis(300))
            .is_some_and(|l| l == "iotitan/bed/temperature_alert_hi on")
    });
    std::fs::write(dir.path().join("go"), "").unwrap();
    let status = wait_exit(&mut sh, TIMEOUT);
    let _ = sh.kill();
    assert!(on, "the alert never went on");
    assert_eq!(
        status.map(|s| s.code()),
        Some(Some(0)),
        "the journal script failed"
    );
    let text = std::fs::read_to_string(dir.path().join("journal.json")).unwrap();
    let warnings: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("journalctl -o json lines"))
        .collect();
    let hit = warnings.iter().find(|e| {
        e["MESSAGE"]
            .as_str()
            .is_some_and(|m| m.contains("alert hi on for iotitan/bed/temperature"))
    });
    let hit = hit.unwrap_or_else(|| panic!("no transition among the warnings: {text}"));
    assert_eq!(hit["PRIORITY"], "4", "{hit}");
    assert_eq!(hit["SYSLOG_IDENTIFIER"], "iotitan-alerts", "{hit}");
}
