//! The HTTP read API end to end: `history::api::routes` served on a loopback port, queried
//! with reqwest, over syslog files written by a real rsyslogd.
//!
//! Records reach rsyslogd over TCP as BSD-style messages with RFC 3339 timestamps carrying the
//! readings' own times, and `RSYSLOG_FileFormat` writes the reported time: so 7 days of 2024
//! weather are replayed into a file in a second, each record at its own time.

mod common;
use common::*;

use chrono::{DateTime, Duration, Local, SecondsFormat, TimeZone, Timelike, Utc};
use iotitan::history::api::routes;
use iotitan::history::read::Context;
use iotitan::payload::Extractor;
use iotitan::syslog::source::Source;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write;

const ID: &str = "iotitan-logger";

/// Send `(time, topic, payload)` records to rsyslogd as `iotitan-logger` would log them (plus
/// `extra` lines from other programs), and wait until rsyslogd has written them all.
fn log_records(
    r: &Rsyslogd,
    records: &[(DateTime<Utc>, String, String)],
    extra: &[(DateTime<Utc>, &str, &str)],
) {
    let mut tcp =
        std::net::TcpStream::connect(("127.0.0.1", r.tcp_port)).expect("connect rsyslogd");
    let mut buf = Vec::new();
    let ts = |t: &DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Millis, true);
    // The others first: they are older than or as old as the first record.
    for (t, tag, msg) in extra {
        writeln!(buf, "<14>{} testhost {tag}[99]: {msg}", ts(t)).unwrap();
    }
    for (t, topic, payload) in records {
        writeln!(buf, "<14>{} testhost {ID}[4242]: {topic} {payload}", ts(t)).unwrap();
    }
    // Written last on the same connection: once it is in the file, everything before it is.
    writeln!(buf, "<14>{} testhost marker[1]: all sent", ts(&Utc::now())).unwrap();
    tcp.write_all(&buf).expect("send to rsyslogd");
    tcp.flush().unwrap();
    r.wait_lines("marker[1]: all sent", 1, TIMEOUT);
    let written = r
        .lines()
        .iter()
        .filter(|l| l.contains("iotitan-logger[4242]:"))
        .count();
    assert_eq!(written, records.len(), "rsyslogd wrote every record");
}

/// Serve the read routes over `file` on a loopback port; returns the base URL.
async fn serve(file: &std::path::Path) -> String {
    let ctx = Context::new(
        vec![Source::File(file.to_owned())],
        ID,
        Extractor::default(),
        std::time::Duration::from_secs(60),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, axum::Router::from(routes(ctx))).await });
    format!("http://{addr}")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap()
}

/// GET `path` and return the status and the JSON body.
async fn get(base: &str, path: &str) -> (u16, Value) {
    let resp = client()
        .get(format!("{base}{path}"))
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    let body = resp.text().await.expect("body");
    let json = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
    (status, json)
}

async fn ok(base: &str, path: &str) -> Value {
    let (status, v) = get(base, path).await;
    assert_eq!(status, 200, "{path}: {v}");
    v
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
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

// ---- aggregate over replayed weather ------------------------------------------------------

/// The first week of Adelaide's 2024 hourly temperatures, with readings every 10 minutes
/// between the hourly values (linear, two decimals), as a sensor reporting more often would.
fn week() -> Vec<(DateTime<Utc>, String)> {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/adelaide-2024-01-week1.csv"),
    )
    .expect("weather data");
    let hourly: Vec<(DateTime<Utc>, f64)> = text
        .lines()
        .skip_while(|l| !l.starts_with("time,"))
        .skip(1)
        .filter_map(|l| {
            let (t, v) = l.split_once(',')?;
            Some((utc(&format!("{t}:00Z")), v.parse().ok()?))
        })
        .collect();
    assert_eq!(hourly.len(), 168);
    let mut out = Vec::new();
    for w in hourly.windows(2) {
        let ((t0, v0), (_, v1)) = (w[0], w[1]);
        for k in 0..6 {
            let v = v0 + (v1 - v0) * f64::from(k) / 6.0;
            out.push((t0 + Duration::minutes(10 * i64::from(k)), format!("{v:.2}")));
        }
    }
    let (t, v) = hourly[167];
    out.push((t, format!("{v:.2}")));
    out
}

/// The start of the local hour (or day) holding `t`, computed the plain way.
fn local_start(t: DateTime<Utc>, daily: bool) -> DateTime<Utc> {
    let l = t.with_timezone(&Local).naive_local();
    let l = l
        .date()
        .and_hms_opt(if daily { 0 } else { l.hour() }, 0, 0)
        .unwrap();
    Local
        .from_local_datetime(&l)
        .earliest()
        .unwrap()
        .with_timezone(&Utc)
}

#[tokio::test]
async fn aggregate_of_a_replayed_week_matches_an_independent_computation() {
    let r = Rsyslogd::start();
    let topic = "iotitan/adelaide/outside/bom/temperature";
    let readings = week();
    let mut records: Vec<_> = readings
        .iter()
        .map(|(t, v)| (*t, topic.to_owned(), v.clone()))
        .collect();
    // Noise that must not count: a state, our own outputs, another topic, another program.
    let t0 = readings[0].0;
    for i in 0..20 {
        let t = t0 + Duration::hours(i * 7);
        records.push((t, topic.to_owned(), "unavailable".into()));
        records.push((t, format!("{topic}_mean"), "99".into()));
        records.push((t, "iotitan/adelaide/inside/t".into(), "1000".into()));
    }
    records.sort_by_key(|r| r.0);
    let extra = [(t0, "sshd", "iotitan/adelaide/outside/bom/temperature 5000")];
    log_records(&r, &records, &extra);
    let base = serve(&r.output).await;

    let (since, until) = ("2024-01-01T00:00:00Z", "2024-01-08T00:00:00Z");
    for daily in [false, true] {
        let every = if daily { "1d" } else { "1h" };
        let v = ok(
            &base,
            &format!("/aggregate?topics={topic}&since={since}&until={until}&every={every}&stats=min,mean,max,count"),
        )
        .await;
        let mut want: BTreeMap<DateTime<Utc>, Vec<f64>> = BTreeMap::new();
        for (t, val) in &readings {
            if *t >= utc(since) && *t < utc(until) {
                want.entry(local_start(*t, daily))
                    .or_default()
                    .push(val.parse().unwrap());
            }
        }
        let series = v["series"].as_object().unwrap();
        assert_eq!(series.len(), 1, "only the asked topic: {}", v["series"]);
        let got = series[topic].as_array().unwrap();
        assert_eq!(
            got.len(),
            want.len(),
            "{every}: one bucket per local {every}"
        );
        assert!(want.len() >= if daily { 7 } else { 160 });
        for (b, (start, values)) in got.iter().zip(&want) {
            let what = format!("{every} bucket {start}");
            assert_eq!(utc(b["start"].as_str().unwrap()), *start, "{what}");
            assert_eq!(b["count"].as_u64().unwrap(), values.len() as u64, "{what}");
            let n = values.len() as f64;
            close(&b["mean"], values.iter().sum::<f64>() / n, &what);
            close(
                &b["min"],
                values.iter().copied().fold(f64::INFINITY, f64::min),
                &what,
            );
            close(
                &b["max"],
                values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                &what,
            );
        }
    }

    // max_points widens the buckets: never more than asked, every reading still counted.
    let v = ok(
        &base,
        &format!("/aggregate?topics={topic}&since={since}&until={until}&every=1h&max_points=50"),
    )
    .await;
    let got = v["series"][topic].as_array().unwrap();
    assert!(got.len() <= 50 && got.len() > 20, "{} buckets", got.len());
    assert!(v["every"].as_i64().unwrap() > 3600);
    let total: u64 = got.iter().map(|b| b["count"].as_u64().unwrap()).sum();
    assert_eq!(total, readings.len() as u64);
    // Empty buckets are absent: a range with no readings has no buckets at all.
    let v = ok(
        &base,
        &format!("/aggregate?topics={topic}&since=2024-02-01T00:00:00Z&until=2024-02-02T00:00:00Z"),
    )
    .await;
    assert_eq!(v["series"], serde_json::json!({}));
}

// ---- a simulated fleet: top, histogram, history, topics -----------------------------------

/// The max power of device `d` (distinct for every device).
fn peak(d: u32) -> f64 {
    f64::from((d * 7) % 15) * 10.0 + 5.0
}

/// Readings of `devices` plugs under `prefix` over the last 50 minutes, LWT states, and old
/// readings (2 hours ago) far above every peak.
fn fleet(prefix: &str, devices: u32, now: DateTime<Utc>) -> Vec<(DateTime<Utc>, String, String)> {
    let mut out = Vec::new();
    for d in 0..devices {
        let dev = format!("{prefix}/plug{d:02}");
        // Device 0 reports far more often than the others: still one device.
        let n = if d == 0 { 40 } else { 4 };
        for j in 0..n {
            let t = now - Duration::minutes(50) + Duration::seconds(i64::from(j * 60 + d));
            out.push((
                t,
                format!("{dev}/power"),
                format!("{}", peak(d) - f64::from(j % 4)),
            ));
            out.push((t, format!("{dev}/energy"), "100000".into()));
        }
        out.push((
            now - Duration::hours(2),
            format!("{dev}/power"),
            "99999".into(),
        ));
        out.push((
            now - Duration::minutes(45),
            format!("{dev}/LWT"),
            "online".into(),
        ));
        if d % 3 == 0 {
            out.push((
                now - Duration::minutes(5),
                format!("{dev}/LWT"),
                "offline".into(),
            ));
        }
    }
    out.sort_by_key(|r| r.0);
    out
}

#[tokio::test]
async fn top_histogram_history_and_topics_of_a_fleet() {
    let r = Rsyslogd::start();
    let now = Utc::now();
    let mut records = fleet("site/floor1", 15, now);
    records.extend(fleet("small", 5, now));
    records.sort_by_key(|r| r.0);
    log_records(&r, &records, &[]);
    let base = serve(&r.output).await;

    // top: ten distinct devices, highest max first, the old spike outside the hour left out.
    let v = ok(
        &base,
        "/top?feature=power&stat=max&since=-1h&n=10&topics=site/%23",
    )
    .await;
    let got: Vec<(String, f64)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["device"].as_str().unwrap().to_owned(),
                e["value"].as_f64().unwrap(),
            )
        })
        .collect();
    let mut want: Vec<(String, f64)> = (0..15)
        .map(|d| (format!("site/floor1/plug{d:02}"), peak(d)))
        .collect();
    want.sort_by(|a, b| b.1.total_cmp(&a.1));
    want.truncate(10);
    assert_eq!(got, want);
    assert_eq!(v[0]["topic"], format!("{}/power", want[0].0));
    // Five devices: five answers, even with n=10; and the bottom of them with order=asc.
    let v = ok(&base, "/top?feature=power&n=10&topics=small/%23").await;
    assert_eq!(v.as_array().unwrap().len(), 5, "{v}");
    let v = ok(
        &base,
        "/top?feature=power&stat=min&order=asc&n=1&topics=small/%23",
    )
    .await;
    let lowest = (0..5).map(|d| peak(d) - 3.0).fold(f64::INFINITY, f64::min);
    assert_eq!(v[0]["value"], lowest);

    // histogram: the bins hold every power reading of the range, the LWTs are states.
    let v = ok(
        &base,
        "/histogram?topics=site/%2B/%2B/power&topics=site/%2B/%2B/LWT&since=-1h&bins=7",
    )
    .await;
    let bins = v["bins"].as_array().unwrap();
    assert_eq!(bins.len(), 7);
    let in_range = records
        .iter()
        .filter(|(t, topic, _)| {
            topic.starts_with("site/") && topic.ends_with("/power") && *t > now - Duration::hours(1)
        })
        .count() as u64;
    assert_eq!(
        bins.iter()
            .map(|b| b["count"].as_u64().unwrap())
            .sum::<u64>(),
        in_range
    );
    let lowest = (0..15).map(|d| peak(d) - 3.0).fold(f64::INFINITY, f64::min);
    assert_eq!(bins[0]["lo"], lowest);
    assert_eq!(
        bins[6]["hi"],
        (0..15).map(peak).fold(f64::NEG_INFINITY, f64::max)
    );
    assert_eq!(v["states"], serde_json::json!({"online": 15, "offline": 5}));

    // history: the oldest rows first, limit and truncated; CSV on request.
    let path = "/history?topics=site/floor1/plug03/power&since=-3h&limit=3";
    let v = ok(&base, path).await;
    assert_eq!(v["truncated"], true);
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0][1], "site/floor1/plug03/power");
    assert_eq!(rows[0][2], 99999.0, "the oldest row comes first");
    assert_eq!(rows[1][2], peak(3));
    let times: Vec<_> = rows.iter().map(|r| utc(r[0].as_str().unwrap())).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
    let all = ok(&base, "/history?topics=site/floor1/plug03/power&since=-3h").await;
    assert_eq!(all["truncated"], false);
    assert_eq!(all["rows"].as_array().unwrap().len(), 5);
    let resp = client()
        .get(format!("{base}{path}"))
        .header("Accept", "text/csv")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = resp.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 4, "{csv}");
    assert_eq!(lines[0], "timestamp,topic,value");
    assert!(
        lines[1].ends_with(",site/floor1/plug03/power,99999"),
        "{csv}"
    );
    // States are rows too.
    let v = ok(&base, "/history?topics=site/floor1/plug03/LWT&since=-1h").await;
    let states: Vec<&Value> = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r[2])
        .collect();
    assert_eq!(states, ["online", "offline"]);

    // topics: every series seen, its last value and count.
    let v = ok(&base, "/topics?since=-1h&topics=site/floor1/plug00/%23").await;
    let list = v.as_array().unwrap();
    let names: Vec<&str> = list.iter().map(|t| t["topic"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "site/floor1/plug00/LWT",
            "site/floor1/plug00/energy",
            "site/floor1/plug00/power"
        ]
    );
    assert_eq!(list[0]["last"], "offline");
    assert_eq!(list[0]["count"], 2);
    assert_eq!(list[2]["count"], 40);
    assert_eq!(list[2]["last"], peak(0) - 3.0);
    let all = ok(&base, "/topics").await;
    assert_eq!(all.as_array().unwrap().len(), 20 * 3);
}

#[tokio::test]
async fn bad_parameters_are_400_with_a_json_error() {
    let r = Rsyslogd::start();
    log_records(&r, &[(Utc::now(), "a/b/t".into(), "1".into())], &[]);
    let base = serve(&r.output).await;
    for (path, needle) in [
        ("/history", "topics is required"),
        ("/history?topics=a/%23&sinse=-1h", "unknown parameter"),
        ("/history?topics=a/%23&since=yesterday", "since"),
        ("/history?topics=a/%23&since=-1h&until=-2h", "not after"),
        ("/history?topics=a/%23&limit=-1", "limit"),
        ("/history?topics=a/%23&limit=1&limit=2", "more than once"),
        ("/history?topics=a/%23/b", "MQTT filter"),
        ("/aggregate?topics=a/%23&every=7m", "divide the day"),
        ("/aggregate?topics=a/%23&stats=avg", "unknown statistic"),
        ("/aggregate?topics=a/%23&every=1s&since=-30d", "max_points"),
        ("/aggregate?topics=a/%23&max_points=1", "max_points"),
        ("/top", "feature is required"),
        ("/top?feature=a/b", "one topic level"),
        ("/top?feature=t&n=0", "n="),
        ("/top?feature=t&order=up", "order"),
        ("/histogram?topics=a/%23&bins=0", "bins"),
        ("/histogram?topics=a/%23&bins=1001", "bins"),
    ] {
        let (status, v) = get(&base, path).await;
        assert_eq!(status, 400, "{path}: {v}");
        assert_eq!(v["error"], "bad_parameter", "{path}");
        let msg = v["message"].as_str().unwrap();
        assert!(msg.contains(needle), "{path}: {msg}");
    }
    // A source that cannot be read is a 500 saying so, and the server keeps answering.
    let ctx = Context::new(
        vec![Source::File(r.dir.path().join("missing"))],
        ID,
        Extractor::default(),
        std::time::Duration::ZERO,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, axum::Router::from(routes(ctx))).await });
    let (status, v) = get(&format!("http://{addr}"), "/topics").await;
    assert_eq!(status, 500, "{v}");
    assert_eq!(v["error"], "read_failed");
    assert!(v["message"].as_str().unwrap().contains("missing"), "{v}");
    let (status, _) = get(&base, "/topics").await;
    assert_eq!(status, 200);
}

// ---- energy: Tasmota and Shelly plugs by room, within and outside office hours ------------

/// The rules that read the simulated office's plugs (Tasmota and Shelly Gen2).
const PLUG_RULES: &str = iotitan::sim::office::PAYLOAD_RULES;

/// `config` with stats of every office series and a group per room (`by = 3`), `extra` in
/// the group (a calendar).
fn rooms_config(config: &str, extra: &str) -> String {
    format!(
        "{config}\n[stats]\ntopics = [\"office/#\"]\nstatistics = [\"increase\", \"integral\", \"count\"]\n\n\
         [[stats.group]]\nname = \"office/rooms\"\ntopics = [\"office/#\"]\nby = 3\n{extra}\n"
    )
}

/// `iotitan-stats --dry-run --format json` of the window `[from, to)` of `file`.
fn stats_window(
    config: &str,
    file: &std::path::Path,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Value {
    let ts = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    let out = Program::new("iotitan-stats")
        .config(config)
        .args(["--dry-run", "--format", "json", "--input"])
        .arg(file)
        .args(["--since", &ts(from), "--until", &ts(to)])
        .output();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Two days of three plugs in two rooms, one reading a minute from an hour before the range
/// to twenty minutes after it: Tasmota `SENSOR` documents (`ENERGY.Total` kWh, `ENERGY.Power`
/// W) at 100 W and 50 W in room1, a Shelly Gen2 `status/switch:0` (`aenergy.total` Wh,
/// `apower` W) at 200 W in room2 that reboots at noon (its counter starts again from zero).
/// Constant power makes the answers a matter of hours: 13 office hours a weekday, 11 outside.
#[tokio::test]
async fn energy_by_room_within_and_outside_office_hours() {
    let local_midnight = |d: u32| {
        Local
            .with_ymd_and_hms(2026, 11, d, 0, 0, 0)
            .earliest()
            .unwrap()
            .with_timezone(&Utc)
    };
    // Thursday 26 and Friday 27 November 2026, local days.
    let (since, until) = (local_midnight(26), local_midnight(28));
    let reboot = Local
        .with_ymd_and_hms(2026, 11, 26, 12, 0, 0)
        .earliest()
        .unwrap()
        .with_timezone(&Utc);
    let mut records = Vec::new();
    let (mut a, mut b, mut shelly) = (1000.0, 20.0, 5000.0);
    let mut t = since - Duration::hours(1);
    while t < until + Duration::minutes(20) {
        a += 0.1 / 60.0;
        b += 0.05 / 60.0;
        shelly = if t == reboot {
            200.0 / 60.0
        } else {
            shelly + 200.0 / 60.0
        };
        let tasmota = |total: f64, power: f64| {
            format!(r#"{{"Time":"x","ENERGY":{{"Total":{total},"Power":{power},"Voltage":230}}}}"#)
        };
        records.push((
            t,
            "office/floor1/room1/plugA/tele/SENSOR".to_owned(),
            tasmota(a, 100.0),
        ));
        records.push((
            t,
            "office/floor1/room1/plugB/tele/SENSOR".to_owned(),
            tasmota(b, 50.0),
        ));
        records.push((
            t,
            "office/floor1/room2/shelly1/status/switch:0".to_owned(),
            format!(
                r#"{{"id":0,"apower":200,"aenergy":{{"total":{shelly},"by_minute":[0,0,0]}}}}"#
            ),
        ));
        t += Duration::minutes(1);
    }
    let r = Rsyslogd::start();
    log_records(&r, &records, &[]);
    let energy_config = format!(
        "{PLUG_RULES}\n[[calendar]]\nname = \"office\"\nhours = [\"Mon-Fri 07:00-20:00\"]\n"
    );
    let cfg = iotitan::config::Config::parse(&energy_config, "test").unwrap();
    let ctx = Context::new(
        vec![Source::File(r.output.clone())],
        ID,
        cfg.payload.extractor(),
        std::time::Duration::from_secs(60),
    )
    .with_energy(
        cfg.energy.clone(),
        cfg.calendar.iter().map(|c| c.calendar()).collect(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, axum::Router::from(routes(ctx))).await });

    let ts = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    let ask = |calendar: &str| {
        format!(
            "/aggregate?topics=office/%23&since={}&until={}&every=1d&by=3&stats=increase,integral,count{calendar}",
            ts(since),
            ts(until)
        )
    };
    let whole = ok(&base, &ask("")).await;
    let within = ok(&base, &ask("&within=office")).await;
    let outside = ok(&base, &ask("&outside=office")).await;
    // (group, statistic, per hour): meters' increase and power's integral, per room.
    let expect = [
        ("office/floor1/room1/Total", "increase", 0.15),
        ("office/floor1/room1/Power", "integral", 150.0),
        ("office/floor1/room2/total", "increase", 200.0),
        ("office/floor1/room2/apower", "integral", 200.0),
    ];
    for (group, stat, per_hour) in expect {
        for (answer, hours) in [(&whole, 24.0), (&within, 13.0), (&outside, 11.0)] {
            let days = answer["series"][group]
                .as_array()
                .unwrap_or_else(|| panic!("no {group} in {}", answer["series"]));
            assert_eq!(days.len(), 2, "{group}: {days:?}");
            for d in days {
                close(
                    &d[stat],
                    per_hour * hours,
                    &format!("{group} {stat} {hours} h {d}"),
                );
            }
        }
    }
    // Counts are of the readings in the time counted: two plugs, a reading a minute.
    let day = &within["series"]["office/floor1/room1/Power"][0];
    assert_eq!(day["count"], 2 * 13 * 60, "{day}");
    // The worst wasters out of hours: energy over the two days' 22 hours outside the office's.
    let v = ok(
        &base,
        &format!(
            "/top?feature=Power&stat=integral&outside=office&since={}&until={}",
            ts(since),
            ts(until)
        ),
    )
    .await;
    let top = v.as_array().unwrap();
    assert_eq!(top.len(), 2, "{v}");
    assert_eq!(
        top[0]["device"],
        "office/floor1/room1/plugA/tele/SENSOR/ENERGY"
    );
    close(&top[0]["value"], 100.0 * 22.0, "plugA out of hours");
    close(&top[1]["value"], 50.0 * 22.0, "plugB out of hours");
    let v = ok(
        &base,
        &format!(
            "/top?feature=total&stat=increase&within=office&since={}&until={}",
            ts(since),
            ts(until)
        ),
    )
    .await;
    close(
        &v[0]["value"],
        200.0 * 26.0,
        "the Shelly in office hours, through its reboot",
    );
    // An unknown calendar, and both at once, are refused.
    let (status, v) = get(&base, &ask("&within=night")).await;
    assert_eq!(
        (status, v["error"].as_str()),
        (400, Some("bad_parameter")),
        "{v}"
    );
    let (status, _) = get(&base, &ask("&within=office&outside=office")).await;
    assert_eq!(status, 400);

    // Stats windows over the same file agree with the API: hourly windows across the
    // office's opening (06:00-09:00 local) and closing (19:00-21:00) on Thursday, each room a
    // group (`by = 3`) counted within office hours, meters and power alike.
    let stats_config = rooms_config(&energy_config, "within = \"office\"");
    let hour = |h: u32| {
        Local
            .with_ymd_and_hms(2026, 11, 26, h, 0, 0)
            .earliest()
            .unwrap()
            .with_timezone(&Utc)
    };
    let api = ok(
        &base,
        &format!(
            "/aggregate?topics=office/%23&since={}&until={}&every=1h&by=3&stats=increase,integral,count&within=office",
            ts(hour(6)),
            ts(hour(21))
        ),
    )
    .await;
    let mut compared = 0;
    for h in [6, 7, 8, 19, 20] {
        let window = stats_window(&stats_config, &r.output, hour(h), hour(h + 1));
        let groups = window["groups"].as_object().unwrap();
        assert!(
            !groups.contains_key("office/rooms"),
            "a split group publishes only its rooms: {groups:?}"
        );
        for group in [
            "office/floor1/room1/Total",
            "office/floor1/room1/Power",
            "office/floor1/room2/total",
            "office/floor1/room2/apower",
        ] {
            let mine = &window["groups"][group];
            let theirs = api["series"][group]
                .as_array()
                .and_then(|l| l.iter().find(|b| b["start"] == ts(hour(h)).as_str()));
            let Some(theirs) = theirs else {
                // Outside office hours: nothing counted.
                assert_eq!(mine["count"], 0, "{group} at {h}:00: {mine}");
                continue;
            };
            assert_eq!(mine["count"], theirs["count"], "{group} at {h}:00");
            for stat in ["increase", "integral"] {
                let (a, b) = (&mine[stat], &theirs[stat]);
                if b.is_null() {
                    continue;
                }
                close(a, b.as_f64().unwrap(), &format!("{group} {stat} at {h}:00"));
                compared += 1;
            }
        }
    }
    // 07, 08 and 19 are office hours: two rooms, a meter and a power series each, both
    // statistics of each.
    assert_eq!(compared, 3 * 4 * 2, "{api}");
}

// ---- energy through the real pipeline ------------------------------------------------------

/// The office through the real pipeline: `iotitan-sim office` (Tasmota and Shelly plugs, at
/// ten simulated minutes a second) → mosquitto → iotitan-logger → rsyslogd. Over rsyslogd's
/// file, `iotitan-stats` windows and the read API agree room by room (`by = 3`), and the
/// windows' increases add up to the whole range's.
#[tokio::test(flavor = "multi_thread")]
async fn a_simulated_office_through_the_pipeline_stats_and_api_agree() {
    const MESSAGES: usize = 2000;
    let m = Mosquitto::start();
    let r = Rsyslogd::start();
    let dir = tempfile::tempdir().unwrap();
    let rules = PLUG_RULES;
    let cfg = write_config(
        dir.path(),
        &format!(
            "{}\n[syslog]\ntarget = \"unix:{}\"\n{rules}",
            m.mqtt_toml("t-office"),
            r.socket.display()
        ),
    );
    let logger = Logger::start_recording(&cfg, &m, &r);
    let first = Utc::now();
    let sim = Program::new("iotitan-sim")
        .args(["--broker", &m.addr(), "--count", &MESSAGES.to_string()])
        .args([
            "office",
            "--floors",
            "2",
            "--workplaces",
            "2",
            "--speed",
            "10m",
        ])
        .output();
    assert!(
        sim.status.success(),
        "{}",
        String::from_utf8_lossy(&sim.stderr)
    );
    let office = || {
        logger
            .lines_in(&r)
            .iter()
            .filter(|l| l.contains(": office/"))
            .count()
    };
    assert!(
        wait_until(TIMEOUT, || office() >= MESSAGES),
        "{} of {MESSAGES} records",
        office()
    );
    let last = Utc::now();

    // Windows of two seconds over the whole run, aligned as the API's buckets are.
    let step = 2;
    let since = DateTime::from_timestamp(first.timestamp() / step * step, 0).unwrap();
    let until = DateTime::from_timestamp((last.timestamp() / step + 1) * step, 0).unwrap();
    let ts = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    let stats_config = rooms_config(rules, "");
    let window = |from, to| stats_window(&stats_config, &r.output, from, to);
    let cfg = iotitan::config::Config::parse(rules, "test").unwrap();
    let ctx = Context::new(
        vec![Source::File(r.output.clone())],
        ID,
        cfg.payload.extractor(),
        std::time::Duration::from_secs(60),
    )
    .with_energy(cfg.energy.clone(), Vec::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, axum::Router::from(routes(ctx))).await });
    let api = ok(
        &base,
        &format!(
            "/aggregate?topics=office/%23&since={}&until={}&every={step}s&by=3&stats=increase,integral,count",
            ts(since),
            ts(until)
        ),
    )
    .await;
    let rooms = api["series"].as_object().unwrap();
    assert!(
        rooms.contains_key("office/floor2/room2/total")
            && rooms.contains_key("office/floor1/room1/Power"),
        "{rooms:?}"
    );
    let mut compared = 0;
    let mut sums: BTreeMap<String, f64> = BTreeMap::new();
    let mut t = since;
    while t < until {
        let next = t + Duration::seconds(step);
        let mine = window(t, next);
        for (room, buckets) in rooms {
            let Some(theirs) = buckets
                .as_array()
                .unwrap()
                .iter()
                .find(|b| b["start"] == ts(t).as_str())
            else {
                continue;
            };
            let group = &mine["groups"][room];
            assert_eq!(group["count"], theirs["count"], "{room} at {t}: {group}");
            for stat in ["increase", "integral"] {
                close(
                    &group[stat],
                    theirs[stat].as_f64().unwrap(),
                    &format!("{room} {stat} at {t}"),
                );
                compared += 1;
            }
            *sums.entry(room.clone()).or_default() += group["increase"].as_f64().unwrap();
        }
        t = next;
    }
    assert!(compared >= 4 * 2 * 2, "{compared} values compared");
    // The windows side by side add up to one window over them all.
    let whole = window(since, until);
    for (room, sum) in sums {
        close(&whole["groups"][&room]["increase"], sum, &room);
    }
}

// ---- cardinality ---------------------------------------------------------------------------

/// 20 000 distinct series in five minutes (a device that puts a counter in its topic): the
/// read API pages `/topics` with a working `rel="next"` link, refuses `/aggregate` over all of
/// them with `too_many_series` (default `http.max_series`, 1000), and answers one series.
#[tokio::test(flavor = "multi_thread")]
async fn many_series_are_paged_or_refused() {
    const N: usize = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("syslog");
    let mut text = String::new();
    for i in 0..N {
        let t = utc("2026-11-22T05:00:00Z") + Duration::milliseconds(i as i64 * 10);
        text.push_str(&format!(
            "{} testhost {ID}[4242]: iotitan/card/dev{i:07}/temperature {}\n",
            t.to_rfc3339_opts(SecondsFormat::Millis, true),
            i % 30
        ));
    }
    std::fs::write(&file, text).unwrap();
    let base = serve(&file).await;
    let range = "since=2026-11-22T04:00:00Z&until=2026-11-22T06:00:00Z";

    // Pages of 7 000 in topic order, each linking the next; the last links none.
    let mut url = format!("{base}/topics?{range}&topics=iotitan/%23&limit=7000");
    let mut seen = Vec::new();
    loop {
        let r = client().get(&url).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let next = r
            .headers()
            .get("link")
            .map(|v| v.to_str().unwrap().to_owned());
        let page: Vec<Value> = r.json().await.unwrap();
        assert!(page.len() <= 7000);
        seen.extend(page.iter().map(|s| {
            assert_eq!(s["count"], 1);
            s["topic"].as_str().unwrap().to_owned()
        }));
        let Some(link) = next else { break };
        let target = link
            .strip_prefix('<')
            .and_then(|l| l.strip_suffix(">; rel=\"next\""))
            .unwrap_or_else(|| panic!("{link}"));
        url = format!("{base}{target}");
    }
    assert_eq!(seen.len(), N, "every series once");
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "in topic order");

    // Every series: refused, naming the count reached and the setting.
    let (status, v) = get(
        &base,
        &format!("/aggregate?topics=iotitan/%23&{range}&every=1h"),
    )
    .await;
    assert_eq!(
        (status, v["error"].as_str()),
        (400, Some("too_many_series"))
    );
    let message = v["message"].as_str().unwrap();
    assert!(
        message.contains("http.max_series") && message.contains("1000"),
        "{message}"
    );
    for path in ["/history", "/histogram", "/top?feature=temperature&"] {
        let sep = if path.ends_with('&') { "" } else { "?" };
        let (status, v) = get(&base, &format!("{path}{sep}topics=iotitan/%23&{range}")).await;
        assert_eq!(
            (status, v["error"].as_str()),
            (400, Some("too_many_series")),
            "{path}"
        );
    }
    // One series: its numbers.
    let v = ok(
        &base,
        &format!("/aggregate?topics=iotitan/card/dev0012345/temperature&{range}&every=1h"),
    )
    .await;
    assert_eq!(
        v["series"]["iotitan/card/dev0012345/temperature"][0]["count"],
        1
    );
}

// ---- the track: a device's locations, paired, none in a private area ----------------------

/// Serve the read routes over `file` with the home area private and a `[[location]]` for
/// `car/+/gps` (`position.latitude`, `position.longitude`); returns the base URL.
async fn serve_private(file: &std::path::Path) -> String {
    use iotitan::config::{AreaConfig, LocationConfig};
    use iotitan::privacy::{Locations, PrivateAreas};
    let home = AreaConfig {
        name: "home".into(),
        polygon: vec![
            [138.59, -34.93],
            [138.61, -34.93],
            [138.61, -34.91],
            [138.59, -34.91],
        ],
    };
    let car = LocationConfig {
        topics: iotitan::topic::Filters::of(&["car/+/gps"]),
        latitude: "position.latitude".into(),
        longitude: "position.longitude".into(),
    };
    let ctx = Context::new(
        vec![Source::File(file.to_owned())],
        ID,
        Extractor::default(),
        std::time::Duration::from_secs(60),
    )
    .with_locations(Locations::new(PrivateAreas::new(&[home]), &[car]));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, axum::Router::from(routes(ctx))).await });
    format!("http://{addr}")
}

/// Records written before the home area was configured, in every shape a location comes in:
/// the ingest forms' series (OwnTracks over HTTP: `lat`/`lon` a few ms apart, with other
/// fields between; the device form: `location/latitude`/`longitude`; GPSLogger: `latitude`
/// and `lng`), OwnTracks' documents over MQTT and a configured `[[location]]` document. Some
/// of each are at home; none of those may come out of `/track`.
#[tokio::test]
async fn the_track_pairs_both_shapes_and_never_answers_a_private_point() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("syslog");
    let t0 = utc("2026-11-22T05:00:00Z");
    let mut lines: Vec<(DateTime<Utc>, String)> = Vec::new();
    let mut at = |t: DateTime<Utc>, record: String| lines.push((t, record));
    // (minute, latitude, longitude): away, at home, away on the boundary's far side.
    let route = [
        (0, -34.95, 138.53),
        (1, -34.92, 138.60), // home
        (2, -34.94, 138.55),
        (3, -34.91, 138.61), // home, on the boundary
        (4, -34.93, 138.5899),
        (5, -34.96, 138.52),
    ];
    let private =
        |lat: f64, lon: f64| (-34.93..=-34.91).contains(&lat) && (138.59..=138.61).contains(&lon);
    for (m, lat, lon) in route {
        let t = t0 + Duration::minutes(m);
        let ms = Duration::milliseconds;
        // OwnTracks over HTTP: one message per field, in the body's order.
        let phone = "iotitan/http/owntracks/jane/phone";
        at(t, format!("{phone}/batt 87"));
        at(t + ms(1), format!("{phone}/lat {lat}"));
        at(t + ms(2), format!("{phone}/lon {lon}"));
        at(t + ms(3), format!("{phone}/acc 5"));
        // The device form: `location.latitude` first, 20 s later than the phone.
        let form = "iotitan/http/phone1/location";
        at(t + Duration::seconds(20), format!("{form}/latitude {lat}"));
        at(
            t + Duration::seconds(20) + ms(4),
            format!("{form}/longitude {lon}"),
        );
        // GPSLogger: the longitude first, as `lng`.
        let gps = "iotitan/http/gpslogger/pixel";
        at(t + Duration::seconds(30), format!("{gps}/lng {lon}"));
        at(
            t + Duration::seconds(30) + ms(1),
            format!("{gps}/latitude {lat}"),
        );
        // OwnTracks over MQTT and a car's tracker: one document each.
        at(
            t + Duration::seconds(40),
            format!(
                r#"owntracks/jane/tablet {{"_type":"location","lat":{lat},"lon":{lon},"batt":50}}"#
            ),
        );
        at(
            t + Duration::seconds(50),
            format!(
                r#"car/van/gps {{"position":{{"latitude":{lat},"longitude":{lon}}},"speed":3}}"#
            ),
        );
    }
    // A latitude whose longitude was lost, and one outside the range asked for.
    at(
        t0 + Duration::minutes(7),
        "iotitan/http/owntracks/jane/phone/lat -34.8".into(),
    );
    at(
        t0 - Duration::hours(2),
        "iotitan/http/owntracks/jane/phone/lat -34.7".into(),
    );
    at(
        t0 - Duration::hours(2),
        "iotitan/http/owntracks/jane/phone/lon 138.7".into(),
    );
    lines.sort_by_key(|l| l.0);
    let text: String = lines
        .iter()
        .map(|(t, r)| {
            format!(
                "{} testhost {ID}[4242]: {r}\n",
                t.to_rfc3339_opts(SecondsFormat::Millis, true)
            )
        })
        .collect();
    std::fs::write(&file, text).unwrap();
    let base = serve_private(&file).await;
    let range = "since=2026-11-22T04:00:00Z&until=2026-11-22T06:00:00Z";
    let away: Vec<(i64, f64, f64)> = route
        .iter()
        .copied()
        .filter(|(_, lat, lon)| !private(*lat, *lon))
        .collect();
    assert_eq!(away.len(), 4);

    for (device, offset_ms) in [
        ("iotitan/http/owntracks/jane/phone", 1),
        ("iotitan/http/phone1/location", 20_000),
        ("iotitan/http/gpslogger/pixel", 30_000),
        ("owntracks/jane/tablet", 40_000),
        ("car/van/gps", 50_000),
    ] {
        let path = format!("/track?device={}&{range}", device.replace('/', "%2F"));
        let (status, body) = get(&base, &path).await;
        assert_eq!(status, 200, "{path}: {body}");
        let want: Vec<Value> = away
            .iter()
            .map(|(m, lat, lon)| {
                let t = t0 + Duration::minutes(*m) + Duration::milliseconds(offset_ms);
                serde_json::json!([t.to_rfc3339_opts(SecondsFormat::AutoSi, true), lat, lon])
            })
            .collect();
        assert_eq!(
            body,
            serde_json::json!({"points": want, "truncated": false}),
            "{device}"
        );
        let text = body.to_string();
        for (_, lat, lon) in route.iter().filter(|(_, a, o)| private(*a, *o)) {
            assert!(
                !text.contains(&lat.to_string()) && !text.contains(&lon.to_string()),
                "{device}: a private coordinate in {text}"
            );
        }
    }

    // The newest points only, when there are more than `limit`.
    let v = ok(&base, &format!("/track?device=car/van/gps&{range}&limit=2")).await;
    assert_eq!(v["truncated"], true, "{v}");
    let lats: Vec<f64> = v["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[1].as_f64().unwrap())
        .collect();
    assert_eq!(lats, [-34.93, -34.96], "{v}");
    // `since` defaults to a day ago: these records are older.
    let v = ok(&base, "/track?device=car/van/gps").await;
    assert_eq!(v, serde_json::json!({"points": [], "truncated": false}));

    for (path, needle) in [
        ("/track", "device is required"),
        ("/track?device=car/%2B/gps", "without wildcards"),
        ("/track?device=car/van/gps&device=b", "more than once"),
        ("/track?device=car/van/gps&limit=0", "limit"),
        ("/track?device=car/van/gps&limit=100001", "limit"),
        ("/track?device=car/van/gps&topics=a", "unknown parameter"),
        ("/track?device=car/van/gps&since=-1h&until=-2h", "not after"),
    ] {
        let (status, v) = get(&base, path).await;
        assert_eq!(status, 400, "{path}: {v}");
        assert_eq!(v["error"], "bad_parameter", "{path}");
        let msg = v["message"].as_str().unwrap();
        assert!(msg.contains(needle), "{path}: {msg}");
    }
}
