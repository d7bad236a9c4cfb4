//! `iotitan-stats` end to end: the real binary over files written by a real rsyslogd, a real
//! journald namespace, replayed weather data checked against an independent computation,
//! consecutive scheduled runs, and the awkward inputs (damaged archives, junk, empty windows,
//! a broker that is down).

mod common;
use common::*;

use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_iotitan-stats");
const ID: &str = "iotitan-logger";

/// Run the binary with `TZ=UTC` (unless `env` sets it) and return its output.
fn stats(config: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Program::new("iotitan-stats")
        .config_file(config)
        .args(args)
        .env("TZ", "UTC")
        .envs(env)
        .output()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("utf-8 output")
}

/// The JSON objects printed by `--format json`, one per line.
fn objects(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

/// A config for a test in `dir`: state in `dir`, records read from `sources`.
fn config(dir: &Path, mqtt: &str, sources: &[&str], stats: &str) -> PathBuf {
    let sources: Vec<String> = sources.iter().map(|s| format!("{s:?}")).collect();
    write_config(
        dir,
        &format!(
            "state_dir = {state:?}\n{mqtt}\n[syslog]\nidentifier = \"{ID}\"\nsources = [{src}]\n\n[stats]\n{stats}\n",
            state = dir.join("state").display().to_string(),
            src = sources.join(", "),
        ),
    )
}

/// A `[mqtt]` section for a broker that is not there.
fn no_broker() -> String {
    format!(
        "[mqtt]\nhost = \"127.0.0.1\"\nport = {}\nkeep_alive = \"5s\"\nreconnect_max = \"200ms\"\n",
        free_port()
    )
}

/// One record line as rsyslog's RSYSLOG_FileFormat writes it.
fn record(time: &str, topic: &str, payload: &str) -> String {
    format!("{time} testhost {ID}[4242]: {topic} {payload}\n")
}

// ---- independent statistics ---------------------------------------------------------------

/// Statistics computed the plain way: sums, a full sort, the R-8 quantile formula.
struct Expected {
    n: usize,
    mean: f64,
    min: f64,
    max: f64,
    stddev: f64,
    median: f64,
    p5: f64,
    p95: f64,
    first: f64,
    last: f64,
}

fn quantile_r8(sorted: &[f64], p: f64) -> f64 {
    let n = sorted.len() as f64;
    let h = (n + 1.0 / 3.0) * p + 1.0 / 3.0;
    let k = h.floor();
    if k < 1.0 {
        sorted[0]
    } else if k >= n {
        sorted[sorted.len() - 1]
    } else {
        let lo = sorted[k as usize - 1];
        lo + (h - k) * (sorted[k as usize] - lo)
    }
}

fn expected(values: &[f64]) -> Expected {
    let n = values.len();
    let mean = values.iter().sum::<f64>() / n as f64;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let mut s = values.to_vec();
    s.sort_by(f64::total_cmp);
    let median = if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    };
    Expected {
        n,
        mean,
        min: s[0],
        max: s[n - 1],
        stddev: var.sqrt(),
        median,
        p5: quantile_r8(&s, 0.05),
        p95: quantile_r8(&s, 0.95),
        first: values[0],
        last: values[n - 1],
    }
}

fn close(got: &Value, want: f64, what: &str) {
    let got = got
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: {got} is not a number"));
    assert!(
        (got - want).abs() <= 1e-9 * want.abs().max(1.0),
        "{what}: got {got}, want {want}"
    );
}

// ---- replayed weather ---------------------------------------------------------------------

/// (RFC 3339 time, temperature) rows of the Open-Meteo file.
fn weather() -> Vec<(String, f64)> {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/open-meteo-adelaide-2024.csv"),
    )
    .expect("weather data");
    text.lines()
        .skip_while(|l| !l.starts_with("time,"))
        .skip(1)
        .filter_map(|l| {
            let (t, v) = l.split_once(',')?;
            Some((format!("{t}:00+00:00"), v.parse().ok()?))
        })
        .collect()
}

#[test]
fn replayed_weather_statistics_match_an_independent_computation() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("syslog");
    let rows = weather();
    assert!(rows.len() > 8000, "{} rows", rows.len());
    let topic = "iotitan/adelaide/outside/bom/temperature";
    let mut f = std::io::BufWriter::new(std::fs::File::create(&log).unwrap());
    for (i, (t, v)) in rows.iter().enumerate() {
        f.write_all(record(t, topic, &v.to_string()).as_bytes())
            .unwrap();
        // Noise that must not count: other programs, junk, our own outputs, non-numbers.
        if i % 50 == 0 {
            writeln!(f, "{t} testhost sshd[9]: Accepted publickey for root").unwrap();
        }
        if i % 97 == 0 {
            writeln!(f, "@@@ not a syslog line \u{1}").unwrap();
        }
        if i % 101 == 0 {
            f.write_all(record(t, &format!("{topic}_mean"), "99").as_bytes())
                .unwrap();
            f.write_all(record(t, topic, "unavailable").as_bytes())
                .unwrap();
        }
    }
    drop(f);
    let cfg = config(
        dir.path(),
        &no_broker(),
        &[log.to_str().unwrap()],
        "statistics = [\"count\", \"mean\", \"min\", \"max\", \"stddev\", \"median\", \"p5\", \"p95\", \"first\", \"last\"]",
    );
    for month in 1..=12 {
        let since = format!("2024-{month:02}-01T00:00:00Z");
        let until = if month == 12 {
            "2025-01-01T00:00:00Z".to_owned()
        } else {
            format!("2024-{:02}-01T00:00:00Z", month + 1)
        };
        let values: Vec<f64> = rows
            .iter()
            .filter(|(t, _)| t[..19] >= since[..19] && t[..19] < until[..19])
            .map(|(_, v)| *v)
            .collect();
        let out = ok(&stats(
            &cfg,
            &[
                "--dry-run",
                "--format",
                "json",
                "--since",
                &since,
                "--until",
                &until,
            ],
            &[],
        ));
        let objs = objects(&out);
        assert_eq!(objs.len(), 1);
        let o = &objs[0];
        let e = expected(&values);
        let s = &o["topics"][topic];
        assert_eq!(s["count"], e.n, "{since}");
        close(&s["mean"], e.mean, "mean");
        close(&s["min"], e.min, "min");
        close(&s["max"], e.max, "max");
        close(&s["stddev"], e.stddev, "stddev");
        close(&s["median"], e.median, "median");
        close(&s["p5"], e.p5, "p5");
        close(&s["p95"], e.p95, "p95");
        close(&s["first"], e.first, "first");
        close(&s["last"], e.last, "last");
        assert_eq!(
            o["topics"].as_object().unwrap().len(),
            1,
            "own outputs are not inputs: {}",
            o["topics"]
        );
        let l = &o["lines"];
        let sum = |k: &str| l[k].as_u64().unwrap();
        assert_eq!(
            sum("read"),
            sum("matched") + sum("skipped") + sum("rejected")
        );
        assert_eq!(sum("matched"), e.n as u64);
        assert!(sum("rejected") > 0 && sum("skipped") > 0, "{l}");
        assert_eq!(o["window"]["start"], since);
    }
}

#[test]
fn a_year_read_on_two_threads_matches_one_thread_and_the_independent_computation() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("syslog");
    let rows = weather();
    // Eight sensors a year: about 6 MB, enough for the file to be cut into ranges.
    let topics: Vec<String> = (0..8).map(|i| format!("iotitan/home/room{i}/t")).collect();
    let mut f = std::io::BufWriter::new(std::fs::File::create(&log).unwrap());
    for (i, (t, v)) in rows.iter().enumerate() {
        for (k, topic) in topics.iter().enumerate() {
            f.write_all(record(t, topic, &(v + k as f64).to_string()).as_bytes())
                .unwrap();
        }
        if i % 97 == 0 {
            writeln!(f, "@@@ not a syslog line").unwrap();
        }
    }
    drop(f);
    assert!(std::fs::metadata(&log).unwrap().len() > 5 << 20);
    let cfg = config(
        dir.path(),
        &no_broker(),
        &[log.to_str().unwrap()],
        "statistics = [\"count\", \"mean\", \"min\", \"max\", \"stddev\", \"median\", \"p95\", \"first\", \"last\"]",
    );
    let run = |threads: &str| {
        let out = ok(&stats(
            &cfg,
            &[
                "--dry-run",
                "--format",
                "json",
                "--since",
                "2024-01-01T00:00:00Z",
                "--until",
                "2025-01-01T00:00:00Z",
                "--threads",
                threads,
            ],
            &[],
        ));
        objects(&out).remove(0)
    };
    let (one, two) = (run("1"), run("2"));
    assert_eq!(one["lines"], two["lines"]);
    for (k, topic) in topics.iter().enumerate() {
        let values: Vec<f64> = rows.iter().map(|(_, v)| v + k as f64).collect();
        let e = expected(&values);
        for o in [&one, &two] {
            let s = &o["topics"][topic.as_str()];
            assert_eq!(s["count"], e.n, "{topic}");
            close(&s["mean"], e.mean, "mean");
            close(&s["stddev"], e.stddev, "stddev");
            close(&s["median"], e.median, "median");
            close(&s["p95"], e.p95, "p95");
        }
        // Everything but mean and stddev is exactly the same on two threads.
        for stat in ["count", "min", "max", "median", "p95", "first", "last"] {
            assert_eq!(
                one["topics"][topic.as_str()][stat],
                two["topics"][topic.as_str()][stat],
                "{topic} {stat}"
            );
        }
    }
}

#[test]
fn rerunning_a_window_gives_identical_output() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("syslog");
    let mut text = String::new();
    for (t, v) in weather().iter().take(500) {
        text.push_str(&record(t, "iotitan/a/t", &v.to_string()));
    }
    std::fs::write(&log, text).unwrap();
    let cfg = config(dir.path(), &no_broker(), &[log.to_str().unwrap()], "");
    let args = [
        "--dry-run",
        "--since",
        "2024-01-03T00:00:00Z",
        "--until",
        "2024-01-04T00:00:00Z",
    ];
    let a = ok(&stats(&cfg, &args, &[]));
    let b = ok(&stats(&cfg, &args, &[]));
    assert_eq!(a, b);
    assert!(a.contains("iotitan/a/t_count 24\n"), "{a}");
}

// ---- scheduled runs -----------------------------------------------------------------------

#[test]
fn consecutive_scheduled_runs_count_every_record_once() {
    let m = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("syslog");
    let day = chrono::DateTime::parse_from_rfc3339("2026-11-22T00:00:00Z").unwrap();
    let mut text = String::new();
    let mut total = 0u64;
    for i in 0..(86_400 / 7) {
        let t = day + chrono::Duration::seconds(i * 7) + chrono::Duration::microseconds(i % 1000);
        let t = t.to_rfc3339_opts(chrono::SecondsFormat::Micros, false);
        text.push_str(&record(&t, "iotitan/sim/t", &(i % 40).to_string()));
        total += 1;
    }
    std::fs::write(&log, text).unwrap();
    let cfg = config(
        dir.path(),
        &m.mqtt_toml("sched"),
        &[log.to_str().unwrap()],
        "schedule = \"*/5 * * * *\"\ncatch_up = 1000\nstatistics = [\"count\", \"mean\"]",
    );
    // Runs at irregular times, some late, some missing several fires, one repeated.
    let steps = [3, 5, 5, 17, 61, 4, 0, 140, 9, 600, 23, 300, 240];
    let mut now = day + chrono::Duration::minutes(3);
    let mut counted = 0u64;
    let mut windows: Vec<(String, String)> = Vec::new();
    let end = day + chrono::Duration::hours(24) + chrono::Duration::minutes(10);
    let mut k = 0;
    loop {
        let n = now.to_rfc3339();
        let out = ok(&stats(&cfg, &["--now", &n, "--format", "json"], &[]));
        for o in objects(&out) {
            counted += o["topics"]["iotitan/sim/t"]["count"].as_u64().unwrap_or(0);
            windows.push((
                o["window"]["start"].as_str().unwrap().to_owned(),
                o["window"]["end"].as_str().unwrap().to_owned(),
            ));
        }
        if now >= end {
            break;
        }
        now = (now + chrono::Duration::minutes(steps[k % steps.len()])).min(end);
        k += 1;
    }
    assert_eq!(counted, total);
    assert!(windows.windows(2).all(|w| w[0].1 == w[1].0), "{windows:?}");
    assert_eq!(windows.len(), 24 * 12 + 3, "{windows:?}");
    let state = std::fs::read_to_string(dir.path().join("state/stats-window.json")).unwrap();
    assert!(state.contains("2026-11-23T00:10:00Z"), "{state}");
    // The last window was published, retained.
    let sub = m.subscribe(&["iotitan/sim/#"], &["-C", "2", "-W", "10"]);
    let lines = sub.drain(std::time::Duration::from_secs(5));
    assert!(
        lines.iter().any(|l| l.starts_with("iotitan/sim/t_count ")),
        "{lines:?}"
    );
}

#[test]
fn outputs_are_published_retained_with_a_summary() {
    let m = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("syslog");
    let mut text = String::new();
    for (i, v) in [20.0, 22.0, 24.0].iter().enumerate() {
        let t = format!("2026-11-22T05:0{i}:00Z");
        text.push_str(&record(
            &t,
            "iotitan/home/bed/dht/temperature",
            &v.to_string(),
        ));
        text.push_str(&record(
            &t,
            "iotitan/home/kitchen/dht/temperature",
            &(v + 1.0).to_string(),
        ));
    }
    std::fs::write(&log, text).unwrap();
    let cfg = config(
        dir.path(),
        &m.mqtt_toml("pub"),
        &[log.to_str().unwrap()],
        "statistics = [\"mean\", \"max\", \"count\"]\nsummary_topic = \"iotitan/stats/summary\"\n\
         [[stats.group]]\nname = \"iotitan/home/temperature\"\ntopics = \"iotitan/home/+/+/temperature\"",
    );
    let out = stats(
        &cfg,
        &[
            "--since",
            "2026-11-22T05:00:00Z",
            "--until",
            "2026-11-22T05:05:00Z",
        ],
        &[],
    );
    ok(&out);
    // Retained: a subscriber that comes later gets them all.
    let sub = m.subscribe(&["iotitan/#"], &["-C", "11", "-W", "10"]);
    let mut got = sub.drain(std::time::Duration::from_secs(5));
    got.sort();
    let summary = got
        .iter()
        .find_map(|l| l.strip_prefix("iotitan/stats/summary "))
        .unwrap_or_else(|| panic!("no summary in {got:#?}"))
        .to_owned();
    got.retain(|l| !l.starts_with("iotitan/stats/summary "));
    assert_eq!(
        got,
        [
            "iotitan/home/bed/dht/temperature_count 3",
            "iotitan/home/bed/dht/temperature_max 24",
            "iotitan/home/bed/dht/temperature_mean 22",
            "iotitan/home/kitchen/dht/temperature_count 3",
            "iotitan/home/kitchen/dht/temperature_max 25",
            "iotitan/home/kitchen/dht/temperature_mean 23",
            "iotitan/home/temperature_count 6",
            "iotitan/home/temperature_devices 2",
            "iotitan/home/temperature_max 25",
            "iotitan/home/temperature_mean 22.5",
        ]
    );
    let s: Value = serde_json::from_str(&summary).unwrap();
    assert_eq!(s["groups"]["iotitan/home/temperature"]["mean"], 22.5);
    // Explicit windows leave the state alone.
    assert!(!dir.path().join("state/stats-window.json").exists());
}

#[test]
fn an_unreachable_broker_exits_69_and_keeps_the_state() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("syslog");
    std::fs::write(&log, record("2026-11-22T05:01:00Z", "iotitan/a/t", "1")).unwrap();
    let cfg = config(dir.path(), &no_broker(), &[log.to_str().unwrap()], "");
    let out = stats(&cfg, &["--now", "2026-11-22T05:05:10Z"], &[]);
    assert_eq!(
        out.status.code(),
        Some(69),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("unreachable"));
    assert!(!dir.path().join("state/stats-window.json").exists());
}

// ---- real syslog daemons ------------------------------------------------------------------

fn send(socket: &Path, tag: &str, msg: &str) {
    send_as(socket, &[], tag, msg);
}

/// Send with logger(1)'s extra `options` (`--rfc5424 -i`: as iotitan-logger sends with
/// `syslog.format = "rfc5424"`, with its pid).
fn send_as(socket: &Path, options: &[&str], tag: &str, msg: &str) {
    let st = Command::new("logger")
        .arg("--socket")
        .arg(socket)
        .args(options)
        .args(["-t", tag, "--", msg])
        .status()
        .expect("run logger");
    assert!(st.success());
}

fn window_args() -> [String; 6] {
    let now = chrono::Utc::now();
    [
        "--dry-run".into(),
        "--format=json".into(),
        "--since".into(),
        (now - chrono::Duration::hours(1)).to_rfc3339(),
        "--until".into(),
        (now + chrono::Duration::hours(1)).to_rfc3339(),
    ]
}

fn check_daemon_file(template: &str) {
    check_daemon_file_of(template, &[]);
}

/// Records sent with logger(1)'s `options`, as rsyslogd writes them with `template`, are read.
fn check_daemon_file_of(template: &str, options: &[&str]) {
    let r = Rsyslogd::start_with_template(template);
    for v in ["21.5", "22.5", "not-a-number"] {
        send_as(&r.socket, options, ID, &format!("iotitan/home/x/t {v}"));
    }
    send(&r.socket, "someone-else", "iotitan/home/x/t 1000");
    send(&r.socket, ID, "iotitan/home/x/t_mean 1000");
    r.wait_lines("iotitan/home/x/t", 5, TIMEOUT);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &no_broker(), &[r.output.to_str().unwrap()], "");
    let args = window_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = &objects(&ok(&stats(&cfg, &args, &[])))[0];
    assert_eq!(
        o["topics"]["iotitan/home/x/t"]["count"], 2,
        "{template}: {o}"
    );
    assert_eq!(o["topics"]["iotitan/home/x/t"]["mean"], 22.0);
    assert_eq!(o["lines"]["rejected"], 1);
    // Others: someone-else, our own output, and rsyslogd's own start message.
    assert!(o["lines"]["skipped"].as_u64().unwrap() >= 2, "{o}");
    let l = &o["lines"];
    assert_eq!(
        l["read"].as_u64(),
        Some(l["matched"].as_u64().unwrap() + l["skipped"].as_u64().unwrap() + 1)
    );
}

#[test]
fn reads_what_rsyslogd_wrote_in_rfc3339() {
    check_daemon_file("RSYSLOG_FileFormat");
}

#[test]
fn reads_what_rsyslogd_wrote_in_the_traditional_format() {
    check_daemon_file("RSYSLOG_TraditionalFileFormat");
}

#[test]
fn reads_what_rsyslogd_wrote_in_rfc5424() {
    check_daemon_file("RSYSLOG_SyslogProtocol23Format");
}

/// With `syslog.format = "rfc5424"`, rsyslogd's file formats write the tag as
/// `iotitan-logger[pid]` without a colon.
#[test]
fn reads_what_rsyslogd_wrote_of_rfc5424_messages() {
    for template in ["RSYSLOG_FileFormat", "RSYSLOG_TraditionalFileFormat"] {
        check_daemon_file_of(template, &["--rfc5424", "-i"]);
    }
}

#[test]
fn reads_a_journald_namespace() {
    let j = Journald::start("stats");
    for v in ["1", "2", "6"] {
        send(&j.socket(), ID, &format!("iotitan/j/t {v}"));
    }
    // Not UTF-8: journalctl hands MESSAGE out as an array of bytes.
    let mut bad = b"iotitan/j/t \xff\xfe".to_vec();
    bad.push(b'7');
    let st = Command::new("logger")
        .arg("--socket")
        .arg(j.socket())
        .args(["-t", ID, "--"])
        .arg(<std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(bad))
        .status()
        .unwrap();
    assert!(st.success());
    j.wait_messages(ID, 4, TIMEOUT);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &no_broker(), &[&j.source()], "");
    let args = window_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = &objects(&ok(&stats(&cfg, &args, &[])))[0];
    assert_eq!(o["topics"]["iotitan/j/t"]["count"], 3, "{o}");
    assert_eq!(o["topics"]["iotitan/j/t"]["mean"], 3.0);
    assert_eq!(o["lines"]["rejected"], 1, "{o}");
}

/// A journald namespace holding 4 000 records of ours in two files (rotated half way), one
/// record in fifty a long topic that journald stores compressed, and lines of another
/// program between them; and its rows as `journalctl -o json` gives them.
fn journal_with_history() -> (Journald, String) {
    let j = Journald::start("exact");
    let long = "x".repeat(700);
    let batch = |from: usize| -> Vec<String> {
        (from..from + 2000)
            .map(|i| match i % 50 {
                0 => format!("iotitan/j/{long}/{i} {i}"),
                _ => format!("iotitan/j/n{} {i}.5", i % 7),
            })
            .collect()
    };
    j.send_lines(ID, &batch(0));
    j.send_lines("other-program", &["iotitan/j/n1 999".to_owned()]);
    j.wait_messages(ID, 2000, TIMEOUT);
    j.rotate();
    j.send_lines(ID, &batch(2000));
    j.wait_messages(ID, 4000, TIMEOUT);
    let rows = query_journal(&j.namespace, "journalctl", &[]);
    (j, rows)
}

/// `query` of the namespace's history through `journal` or `journalctl`; its CSV, checked to
/// have exited well with `stderr` in its log (or, for `[]`, without a warning).
fn query_journal(namespace: &str, how: &str, stderr: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &no_broker(), &[], "");
    let out = stats(
        &cfg,
        &[
            "query",
            "--topics",
            "#",
            "--since",
            "-1h",
            "--input",
            &format!("{how}:{namespace}"),
        ],
        &[],
    );
    let csv = ok(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    for s in stderr {
        assert!(err.contains(s), "no {s:?} in stderr: {err}");
    }
    if stderr.is_empty() {
        assert!(!err.contains("WARN"), "{err}");
    }
    csv
}

#[test]
fn the_journal_read_from_its_files_gives_journalctls_rows() {
    let (j, rows) = journal_with_history();
    let files = std::fs::read_dir(j.directory()).unwrap().count();
    assert!(files >= 2, "{files} journal files: not rotated");
    // journald compressed the long records: their text is not in the files as it was sent.
    let long = format!("iotitan/j/{}/0 ", "x".repeat(700));
    for f in std::fs::read_dir(j.directory()).unwrap() {
        let bytes = std::fs::read(f.unwrap().path()).unwrap();
        assert!(memchr::memmem::find(&bytes, long.as_bytes()).is_none());
    }
    assert_eq!(
        rows.lines().count(),
        4001,
        "{}",
        &rows[..500.min(rows.len())]
    );
    assert!(rows.contains(&format!("{},0\n", long.trim_end())));
    let direct = query_journal(&j.namespace, "journal", &[]);
    assert!(
        direct == rows,
        "the direct reader's rows differ from journalctl's"
    );
}

#[test]
fn a_damaged_journal_file_gives_its_rows_up_to_the_damage_and_says_so() {
    let (j, rows) = journal_with_history();
    let copy = JournalCopy::of(&j, "cut");
    let files = copy.files();
    // The archived file cut in the middle of its objects, as a crash mid-write leaves it.
    let archived = &files[0];
    let bytes = std::fs::read(archived).unwrap();
    let tail_object = u64::from_le_bytes(bytes[136..144].try_into().unwrap()) as usize;
    std::fs::write(archived, &bytes[..tail_object / 2 / 8 * 8]).unwrap();
    let name = archived.file_name().unwrap().to_string_lossy().into_owned();
    let got = query_journal(&copy.namespace, "journal", &["damaged input", &name]);
    let (all, kept): (Vec<&str>, Vec<&str>) = (rows.lines().collect(), got.lines().collect());
    assert!(kept.len() < all.len(), "nothing was lost from a cut file?");
    // What is read is right: a prefix of the first file's rows, then all of the second's.
    let mut rest = all.iter();
    for row in &kept {
        assert!(rest.any(|r| r == row), "row {row} is not journalctl's");
    }
    let second: Vec<&str> = all
        .iter()
        .filter(|r| r.rsplit(',').next().and_then(|v| v.parse::<f64>().ok()) >= Some(2000.0))
        .copied()
        .collect();
    assert_eq!(second.len(), 2000);
    assert!(second.iter().all(|r| kept.contains(r)));
}

#[test]
fn a_journal_file_the_reader_cannot_read_goes_through_journalctl() {
    let (j, rows) = journal_with_history();
    let copy = JournalCopy::of(&j, "xz");
    // Flag one file as possibly holding xz-compressed entries (systemd before 246 wrote
    // them), which this reader leaves to journalctl.
    let file = &copy.files()[0];
    let mut bytes = std::fs::read(file).unwrap();
    bytes[12] |= 1;
    std::fs::write(file, &bytes).unwrap();
    let got = query_journal(&copy.namespace, "journal", &["through journalctl", "flags"]);
    assert!(got == rows, "the fallback's rows differ");
}

/// A meter's `increase` in consecutive windows: each starts from the meter's last reading
/// before the window (`[energy] lookback`), so the windows add up to the whole, a reboot's
/// reset counts its new value, and the group of two meters is their sum.
#[test]
fn meter_increases_of_consecutive_windows_add_up() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("syslog");
    let start = chrono::DateTime::parse_from_rfc3339("2026-11-22T04:50:00Z").unwrap();
    let mut text = String::new();
    let (mut a, mut b) = (1000.0f64, 20.0f64);
    for i in 0..40 {
        let t = start + chrono::Duration::seconds(30 * i);
        a = if i == 24 { 0.25 } else { a + 0.5 }; // plug a reboots at 05:02
        b += 0.125;
        text.push_str(&record(
            &t.to_rfc3339(),
            "iotitan/office/a/energy",
            &a.to_string(),
        ));
        text.push_str(&record(
            &t.to_rfc3339(),
            "iotitan/office/b/energy",
            &b.to_string(),
        ));
    }
    std::fs::write(&log, text).unwrap();
    let cfg = config(
        dir.path(),
        &no_broker(),
        &[log.to_str().unwrap()],
        "statistics = [\"increase\", \"count\"]\n\n[[stats.group]]\nname = \"iotitan/office/energy\"\ntopics = [\"iotitan/office/+/energy\"]",
    );
    let run = |since: &str, until: &str| {
        let out = ok(&stats(
            &cfg,
            &["--dry-run", "--since", since, "--until", until],
            &[],
        ));
        let get = |name: &str| -> f64 {
            out.lines()
                .find_map(|l| l.strip_prefix(&format!("{name}_increase ")))
                .unwrap_or_else(|| panic!("no {name}_increase in {out}"))
                .parse()
                .unwrap()
        };
        (
            get("iotitan/office/a/energy"),
            get("iotitan/office/b/energy"),
            get("iotitan/office/energy"),
        )
    };
    let first = run("2026-11-22T05:00:00Z", "2026-11-22T05:05:00Z");
    let second = run("2026-11-22T05:05:00Z", "2026-11-22T05:10:00Z");
    let whole = run("2026-11-22T05:00:00Z", "2026-11-22T05:10:00Z");
    // By hand: a grows 0.5 every 30 s but for the reset at 05:02, which counts its 0.25; b
    // grows 0.125 every 30 s. Each window has 10 steps ending in it (the first, at 05:00:00,
    // from the reading at 04:59:30 in the lookback): in the first, 4 before the reset and 5
    // after it.
    assert_eq!(first.0, 4.0 * 0.5 + 0.25 + 5.0 * 0.5, "a, first window");
    assert_eq!(second.0, 5.0, "a, second window");
    assert_eq!((first.1, second.1), (1.25, 1.25), "b");
    assert_eq!(first.2, first.0 + first.1, "the group is the sum");
    for (w, (x, y)) in [
        (whole.0, (first.0, second.0)),
        (whole.1, (first.1, second.1)),
    ] {
        assert_eq!(w, x + y, "windows add up");
    }
}

// ---- traditional timestamps: New Year and DST, with TZ set ---------------------------------

fn set_mtime(path: &Path, rfc3339: &str) {
    let t: std::time::SystemTime = chrono::DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .into();
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

fn trad(local: &str, payload: &str) -> String {
    format!("{local} testhost {ID}[7]: iotitan/t {payload}\n")
}

#[test]
fn traditional_timestamps_across_new_year_in_the_local_zone() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("syslog");
    let text = [
        trad("Dec 31 23:49:00", "1"),
        trad("Dec 31 23:55:00", "2"),
        trad("Jan  1 00:05:00", "3"),
        trad("Jan  1 00:11:00", "4"),
    ]
    .concat();
    std::fs::write(&log, text).unwrap();
    set_mtime(&log, "2027-01-01T00:30:00+01:00");
    let cfg = config(
        dir.path(),
        &no_broker(),
        &[log.to_str().unwrap()],
        "statistics = [\"count\", \"first\", \"last\"]",
    );
    // Berlin is UTC+1 in winter: the window is 23:50 to 00:10 local.
    let out = ok(&stats(
        &cfg,
        &[
            "--dry-run",
            "--since",
            "2026-12-31T22:50:00Z",
            "--until",
            "2026-12-31T23:10:00Z",
        ],
        &[("TZ", "Europe/Berlin")],
    ));
    assert!(out.contains("iotitan/t_count 2\n"), "{out}");
    assert!(
        out.contains("iotitan/t_first 2\n") && out.contains("iotitan/t_last 3\n"),
        "{out}"
    );
}

#[test]
fn traditional_timestamps_across_the_end_of_dst() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("syslog");
    // 2026-10-25: 03:00 CEST becomes 02:00 CET, so 02:xx happens twice.
    let text = [
        trad("Oct 25 01:50:00", "1"), // 23:50Z
        trad("Oct 25 02:10:00", "2"), // 00:10Z
        trad("Oct 25 02:50:00", "3"), // 00:50Z
        trad("Oct 25 02:10:00", "4"), // 01:10Z
        trad("Oct 25 02:50:00", "5"), // 01:50Z
        trad("Oct 25 03:10:00", "6"), // 02:10Z
    ]
    .concat();
    std::fs::write(&log, text).unwrap();
    set_mtime(&log, "2026-10-25T12:00:00Z");
    let cfg = config(
        dir.path(),
        &no_broker(),
        &[log.to_str().unwrap()],
        "statistics = [\"count\", \"mean\"]",
    );
    let tz = [("TZ", "Europe/Berlin")];
    let run = |since: &str, until: &str| {
        ok(&stats(
            &cfg,
            &["--dry-run", "--since", since, "--until", until],
            &tz,
        ))
    };
    let first = run("2026-10-25T00:00:00Z", "2026-10-25T01:00:00Z");
    assert!(
        first.contains("iotitan/t_count 2\n") && first.contains("iotitan/t_mean 2.5\n"),
        "{first}"
    );
    let second = run("2026-10-25T01:00:00Z", "2026-10-25T02:00:00Z");
    assert!(
        second.contains("iotitan/t_count 2\n") && second.contains("iotitan/t_mean 4.5\n"),
        "{second}"
    );
}

// ---- awkward inputs -----------------------------------------------------------------------

#[test]
fn a_truncated_archive_is_reported_and_the_rest_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("syslog");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for i in 0..5000 {
        let t = format!(
            "2026-11-21T{:02}:{:02}:{:02}Z",
            i / 3600,
            i / 60 % 60,
            i % 60
        );
        gz.write_all(record(&t, "iotitan/a/t", "1").as_bytes())
            .unwrap();
    }
    let data = gz.finish().unwrap();
    std::fs::write(dir.path().join("syslog.2.gz"), &data[..data.len() / 2]).unwrap();
    // Not gzip at all.
    std::fs::write(dir.path().join("syslog.1.gz"), b"this is not gzip\n").unwrap();
    std::fs::write(&log, record("2026-11-22T01:00:00Z", "iotitan/a/t", "1")).unwrap();
    let cfg = config(dir.path(), &no_broker(), &[log.to_str().unwrap()], "");
    let out = stats(
        &cfg,
        &[
            "--dry-run",
            "--format",
            "json",
            "--since",
            "2026-11-21T00:00:00Z",
            "--until",
            "2026-11-23T00:00:00Z",
        ],
        &[],
    );
    let o = &objects(&ok(&out))[0];
    let n = o["topics"]["iotitan/a/t"]["count"].as_u64().unwrap();
    assert!(n > 100 && n < 5001, "{n}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("syslog.2.gz") && err.contains("syslog.1.gz"),
        "{err}"
    );
}

#[test]
fn an_empty_window_prints_empty_topics_and_group_zeros() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("syslog");
    std::fs::write(
        &log,
        format!(
            "junk\n{}",
            record("2026-11-22T01:00:00Z", "iotitan/a/t", "1")
        ),
    )
    .unwrap();
    let cfg = config(
        dir.path(),
        &no_broker(),
        &[log.to_str().unwrap()],
        "[[stats.group]]\nname = \"house/t\"\ntopics = \"iotitan/+/t\"",
    );
    let args = [
        "--dry-run",
        "--since",
        "2026-11-22T02:00:00Z",
        "--until",
        "2026-11-22T02:05:00Z",
    ];
    let text = ok(&stats(&cfg, &args, &[]));
    assert_eq!(
        text,
        "# window 2026-11-22T02:00:00Z .. 2026-11-22T02:05:00Z: 0 lines read, 0 matched, 0 skipped, 0 rejected\nhouse/t_count 0\nhouse/t_devices 0\n"
    );
    let json = ok(&stats(
        &cfg,
        &[&args[..], &["--format", "json"]].concat(),
        &[],
    ));
    let o = &objects(&json)[0];
    assert_eq!(o["topics"], serde_json::json!({}));
    assert_eq!(
        o["groups"]["house/t"],
        serde_json::json!({"count": 0, "devices": 0})
    );
}

#[test]
fn stdin_is_a_source() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &no_broker(), &["/nonexistent"], "");
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&cfg)
        .args([
            "--input",
            "-",
            "--dry-run",
            "--since",
            "2026-11-22T00:00:00Z",
            "--until",
            "2026-11-23T00:00:00Z",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(
            [
                record("2026-11-22T01:00:00Z", "iotitan/a/t", "4"),
                "\u{0}\u{0}garbage\n".into(),
                record("2026-11-22T02:00:00Z", "iotitan/a/t", "8"),
            ]
            .concat()
            .as_bytes(),
        )
        .unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let text = ok(&out);
    assert!(text.contains("iotitan/a/t_mean 6\n"), "{text}");
    assert!(
        text.contains("3 lines read, 2 matched, 1 skipped"),
        "{text}"
    );
}

#[test]
fn bad_arguments_and_config_have_their_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &no_broker(), &["/nonexistent"], "");
    let usage = stats(&cfg, &["--since", "tomorrow"], &[]);
    assert_eq!(usage.status.code(), Some(64));
    let missing = stats(&cfg, &["--dry-run", "--since", "-1h"], &[]);
    assert_eq!(
        missing.status.code(),
        Some(74),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
    let bad = write_config(dir.path(), "[stats]\nschedule = \"*/5 * * * 9\"\n");
    let out = stats(&bad, &["--dry-run"], &[]);
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains(":2:"));
    // A calendar's hours that end before they start: where, and why.
    let bad = write_config(
        dir.path(),
        "[[calendar]]\nname = \"office\"\nhours = [\"Mon-Fri 07:00-20:00\", \"Sat 20:00-07:00\"]\n",
    );
    let out = stats(&bad, &["--dry-run"], &[]);
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("iotitan.toml:3:") && err.contains("end before they start"),
        "{err}"
    );
    // A group counted in a calendar that is not configured: where, and which.
    let bad = write_config(
        dir.path(),
        "[[calendar]]\nname = \"office\"\nhours = [\"Mon-Fri 07:00-20:00\"]\n\n[[stats.group]]\nname = \"rooms\"\ntopics = \"office/#\"\nby = 3\nwithin = \"ofice\"\n",
    );
    let out = stats(&bad, &["--dry-run"], &[]);
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("iotitan.toml:9:") && err.contains("\"ofice\": no [[calendar]]"),
        "{err}"
    );
}

/// With a statistic of the curve, a scheduled run computes the window that ended
/// `[energy] max_gap` ago: the reading that closes its last interval is in by then.
#[test]
fn a_window_with_an_integral_waits_for_its_last_interval() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("syslog");
    std::fs::write(&log, "").unwrap();
    let cfg = config(
        dir.path(),
        &no_broker(),
        &[log.to_str().unwrap()],
        "statistics = [\"integral\", \"count\"]",
    );
    let out = ok(&stats(
        &cfg,
        &["--dry-run", "--now", "2026-11-22T10:07:00Z"],
        &[],
    ));
    assert!(
        out.starts_with("# window 2026-11-22T09:45:00Z .. 2026-11-22T09:50:00Z"),
        "{out}"
    );
}

// ---- query --------------------------------------------------------------------------------

#[test]
fn query_exports_history_across_rotated_files() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("syslog");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(record("2026-11-20T10:00:00Z", "iotitan/a/t", "1").as_bytes())
        .unwrap();
    gz.write_all(record("2026-11-20T11:00:00Z", "other/x", "1").as_bytes())
        .unwrap();
    std::fs::write(dir.path().join("syslog.2.gz"), gz.finish().unwrap()).unwrap();
    std::fs::write(
        dir.path().join("syslog.1"),
        record("2026-11-21T10:00:00.5Z", "iotitan/a/t", "2"),
    )
    .unwrap();
    std::fs::write(&log, record("2026-11-22T10:00:00Z", "iotitan/b/t", "on")).unwrap();
    let cfg = config(dir.path(), &no_broker(), &[log.to_str().unwrap()], "");
    let out = ok(&stats(
        &cfg,
        &[
            "query",
            "--topics",
            "iotitan/#",
            "--since",
            "2026-11-19T00:00:00Z",
            "--until",
            "2026-11-23T00:00:00Z",
        ],
        &[],
    ));
    assert_eq!(
        out,
        "timestamp,topic,value\n2026-11-20T10:00:00Z,iotitan/a/t,1\n\
         2026-11-21T10:00:00.500Z,iotitan/a/t,2\n2026-11-22T10:00:00Z,iotitan/b/t,1\n"
    );
    let json = ok(&stats(
        &cfg,
        &[
            "query",
            "--topics",
            "iotitan/a/+",
            "--since",
            "2026-11-21T00:00:00Z",
            "--format",
            "json",
        ],
        &[],
    ));
    let v: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        v,
        serde_json::json!([{"timestamp": "2026-11-21T10:00:00.500Z", "topic": "iotitan/a/t", "value": 2.0}])
    );
}

// ---- cardinality ---------------------------------------------------------------------------

/// A syslog file of one five-minute window holding `n` distinct series, one reading each (a
/// device that puts a counter in its topic).
fn distinct_series(path: &Path, n: usize) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for i in 0..n {
        // Spread over the window, in time order: 05:00:00 + i·(300 s / n).
        let micros = 300_000_000u64 * i as u64 / n as u64;
        writeln!(
            f,
            "2026-11-22T05:{:02}:{:02}.{:06}Z testhost {ID}[4242]: iotitan/card/dev{i:07}/temperature {}.5",
            micros / 60_000_000,
            micros / 1_000_000 % 60,
            micros % 1_000_000,
            i % 30
        )
        .unwrap();
    }
    f.flush().unwrap();
}

/// A window of a million series: with the default `stats.max_series` the run computes the
/// first 100 000, leaves the rest out, says so and names the setting, and exits 0.
#[test]
fn a_million_series_in_a_window_are_bounded_by_max_series() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("syslog");
    distinct_series(&log, 1_000_000);
    let cfg = config(
        dir.path(),
        &no_broker(),
        &[log.to_str().unwrap()],
        "topics = [\"iotitan/#\"]\nstatistics = [\"count\", \"mean\"]",
    );
    let window = [
        "--dry-run",
        "--since",
        "2026-11-22T05:00:00Z",
        "--until",
        "2026-11-22T05:05:00Z",
    ];
    let out = stats(&cfg, &window, &[]);
    let text = ok(&out);
    let counts = text.lines().filter(|l| l.contains("_count ")).count();
    assert_eq!(counts, 100_000, "series computed");
    // The readings exactly; the series as estimated (within a few per cent).
    let left: Vec<u64> = text
        .lines()
        .find_map(|l| l.strip_prefix("# left out past stats.max_series: "))
        .unwrap_or_else(|| panic!("{}", &text[..text.len().min(400)]))
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left[0].abs_diff(900_000) < 27_000, "{} series", left[0]);
    assert_eq!(left[1], 900_000, "readings");
    let log_text = String::from_utf8_lossy(&out.stderr);
    assert!(
        log_text.contains("past stats.max_series (100000) were left out"),
        "{log_text}"
    );
    // The JSON summary says it too.
    let out = stats(&cfg, &[&window[..], &["--format", "json"]].concat(), &[]);
    let v: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(v["left_out"]["readings"], 900_000);
    assert!(v["left_out"]["series"].as_u64().unwrap().abs_diff(900_000) < 27_000);
    assert_eq!(v["topics"].as_object().unwrap().len(), 100_000);
}
