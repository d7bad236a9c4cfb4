//! `iotitan-sim` against a real mosquitto: replay order and values, load counts, the fleet's
//! last wills, and its exit codes.

mod common;
use common::*;
use std::process::Output;
use std::time::Duration;

const CSV: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/adelaide-2024-01-week1.csv"
);

fn sim(m: Option<&Mosquitto>, args: &[&str]) -> Output {
    let broker = m.map(|m| vec!["--broker".to_owned(), m.addr()]);
    Program::new("iotitan-sim")
        .args(broker.unwrap_or_default())
        .env_remove("IOTITAN_CONFIG")
        .env("RUST_LOG", "warn")
        .args(["--config", "/dev/null"])
        .args(args)
        .output()
}

/// A subscriber whose subscription is known to be active (a probe message came through).
fn ready_subscriber(m: &Mosquitto, filter: &str, probe_topic: &str) -> Subscriber {
    let sub = m.subscribe(&[filter], &["-q", "1"]);
    assert!(wait_until(TIMEOUT, || {
        m.publish(&["-t", probe_topic, "-m", "probe"]);
        sub.next_line(Duration::from_millis(200)).is_some()
    }));
    sub.drain(Duration::from_millis(200));
    sub
}

/// The value column of the CSV, read independently of the simulator's parser.
fn csv_values() -> Vec<String> {
    let text = std::fs::read_to_string(CSV).unwrap();
    text.lines()
        .skip_while(|l| !l.starts_with("time,"))
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap().to_owned())
        .collect()
}

#[test]
fn replay_publishes_the_csv_values_in_order() {
    let m = Mosquitto::start();
    let topic = "iotitan/adelaide/outdoor/openmeteo/temperature";
    let sub = ready_subscriber(&m, topic, topic);
    // A week of hourly data at ten days per second: well under a second.
    let out = sim(
        Some(&m),
        &["replay", "--csv", CSV, "--topic", topic, "--speed", "10d"],
    );
    assert!(out.status.success(), "{out:?}");
    let expected = csv_values();
    assert_eq!(expected.len(), 168);
    let mut got = Vec::new();
    while got.len() < expected.len() {
        let line = sub
            .next_line(TIMEOUT)
            .unwrap_or_else(|| panic!("only {} of 168 values arrived", got.len()));
        got.push(line.strip_prefix(&format!("{topic} ")).unwrap().to_owned());
    }
    assert_eq!(got, expected);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("published 168 messages"), "{stdout}");
}

#[test]
fn replay_takes_its_time() {
    let m = Mosquitto::start();
    let start = std::time::Instant::now();
    // 24 rows = 23 hours of data at 12 h per second: about two seconds.
    let out = sim(
        Some(&m),
        &["replay", "--csv", CSV, "--limit", "24", "--speed", "12h"],
    );
    assert!(out.status.success(), "{out:?}");
    assert!(
        start.elapsed() >= Duration::from_millis(1900),
        "{:?}",
        start.elapsed()
    );
}

fn load_arrives(qos: &str, count: u64) {
    let m = Mosquitto::start();
    let sub = ready_subscriber(&m, "iotitan/load/#", "iotitan/load/probe");
    let n = count.to_string();
    let out = sim(
        Some(&m),
        &[
            "load", "--rate", "5000", "--count", &n, "--qos", qos, "--topics", "4",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("the broker took {count} messages")),
        "{stdout}"
    );
    assert!(stdout.contains("msg/s"), "{stdout}");
    let mut seen = vec![false; count as usize];
    for received in 0..count {
        let line = sub
            .next_line(TIMEOUT)
            .unwrap_or_else(|| panic!("only {received} of {count} arrived"));
        let (topic, payload) = line.split_once(' ').unwrap();
        let i: usize = payload.parse().unwrap();
        assert_eq!(topic, format!("iotitan/load/{}", i % 4));
        assert!(!seen[i], "{i} twice");
        seen[i] = true;
    }
    assert!(sub.drain(Duration::from_millis(300)).is_empty());
}

#[test]
fn load_count_arrives_at_qos1() {
    load_arrives("1", 5000);
}

#[test]
fn load_count_arrives_at_qos0() {
    load_arrives("0", 2000);
}

#[test]
fn fleet_announces_reads_and_says_goodbye() {
    let m = Mosquitto::start();
    let sub = ready_subscriber(&m, "iotitan/home/#", "iotitan/home/probe");
    let out = sim(
        Some(&m),
        &[
            "fleet",
            "--devices",
            "3",
            "--rooms",
            "3",
            "--interval",
            "200ms",
            "--duration",
            "1s",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let lines = sub.drain(Duration::from_millis(500));
    let lwt = "iotitan/home/kitchen/dht22/status/LWT";
    let wills: Vec<_> = lines.iter().filter(|l| l.starts_with(lwt)).collect();
    assert_eq!(
        wills,
        [
            &format!("{lwt} Connected"),
            &format!("{lwt} Connection Lost")
        ]
    );
    let temps: Vec<f64> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("iotitan/home/bed1/dht22/temperature "))
        .map(|v| v.parse().unwrap())
        .collect();
    assert!((4..=6).contains(&temps.len()), "{lines:#?}");
    // The last will is retained: a late subscriber learns the device is gone.
    let late = m.subscribe(&[lwt], &[]);
    assert_eq!(
        late.next_line(TIMEOUT).unwrap(),
        format!("{lwt} Connection Lost")
    );
}

#[test]
fn hostile_payloads_reach_the_broker() {
    let m = Mosquitto::start();
    // Topic and payload length per message: payloads with newlines stay on one line.
    let sub = m.subscribe(&["iotitan/home/#"], &["-q", "1", "-F", "%t %l"]);
    assert!(wait_until(TIMEOUT, || {
        m.publish(&["-t", "iotitan/home/probe", "-m", "probe"]);
        sub.next_line(Duration::from_millis(200)).is_some()
    }));
    sub.drain(Duration::from_millis(200));
    let out = sim(
        Some(&m),
        &[
            "fleet",
            "--devices",
            "2",
            "--interval",
            "50ms",
            "--junk",
            "1",
            "--count",
            "100",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("published 102 messages"));
    let lines = sub.drain(Duration::from_millis(500));
    let lengths: Vec<usize> = lines
        .iter()
        .filter(|l| !l.contains("/status/LWT"))
        .map(|l| l.rsplit_once(' ').unwrap().1.parse().unwrap())
        .collect();
    assert_eq!(
        lengths.len(),
        98,
        "--count includes the two opening last wills"
    );
    // Every reading was replaced by junk: none has a sensor's length, some are huge or empty.
    assert!(
        lengths.contains(&20_000) && lengths.contains(&0),
        "{lengths:?}"
    );
}

#[test]
fn exit_codes() {
    let missing = sim(None, &["replay", "--csv", "/nonexistent.csv"]);
    assert_eq!(missing.status.code(), Some(74), "{missing:?}");
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "a,b\n1,2\n").unwrap();
    let out = sim(None, &["replay", "--csv", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(65), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no header line"));
    let out = sim(None, &["load", "--qos", "2"]);
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    let out = sim(
        None,
        &[
            "load",
            "--broker",
            &format!("127.0.0.1:{}", free_port()),
            "--count",
            "1",
        ],
    );
    assert_eq!(out.status.code(), Some(69), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach the MQTT broker"));
}
