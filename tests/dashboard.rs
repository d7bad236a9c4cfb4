//! The dashboard in a real browser: mosquitto, rsyslogd, the logger and iotitan-http, readings
//! fed over MQTT and HTTP, then the page loaded in headless Chromium and checked from its own
//! DOM (`--dump-dom`) against the read API. Screenshots go to `target/dashboard-*.png`.

mod common;
use common::*;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const HTTP: &str = env!("CARGO_BIN_EXE_iotitan-http");
const LOGGER: &str = env!("CARGO_BIN_EXE_iotitan-logger");

const INGEST: &str = "ingest-0123456789abcdef0123";
const READ: &str = "read-0123456789abcdef012345";

/// A child killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Setup {
    m: Mosquitto,
    _r: Rsyslogd,
    _logger: Proc,
    _http: Proc,
    base: String,
    log: PathBuf,
    dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let m = Mosquitto::start();
    let r = Rsyslogd::start();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = write_config(
        dir.path(),
        &format!(
            r#"{mqtt}
[syslog]
target = "unix:{socket}"
sources = ["{output}"]

[http]
listen = "127.0.0.1:{port}"

[[http.token]]
name = "phone"
scopes = ["ingest"]

[[http.token]]
name = "reader"
scopes = ["read"]

[[http.private_area]]
name = "home"
polygon = [[138.59, -34.93], [138.61, -34.93], [138.61, -34.91], [138.59, -34.91]]
"#,
            mqtt = m.mqtt_toml(&format!("d{port}")),
            socket = r.socket.display(),
            output = r.output.display(),
        ),
    );
    let logger = Proc(
        Command::new(LOGGER)
            .arg("--config")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start iotitan-logger"),
    );
    let ok = wait_until(TIMEOUT, || {
        m.publish(&["-t", "probe/up", "-m", "1", "-q", "1"]);
        r.lines().iter().any(|l| l.contains("probe/up 1"))
    });
    assert!(ok, "the logger never wrote a probe record");
    let log = dir.path().join("http.log");
    let http = Proc(
        Command::new(HTTP)
            .arg("--config")
            .arg(&cfg)
            .env("RUST_LOG", "info")
            .env_remove("JOURNAL_STREAM")
            .env("IOTITAN_HTTP_TOKEN_PHONE", INGEST)
            .env("IOTITAN_HTTP_TOKEN_READER", READ)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start iotitan-http"),
    );
    let ready = wait_until(TIMEOUT, || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("ready:")
    });
    assert!(ready, "iotitan-http never got ready");
    Setup {
        m,
        _r: r,
        _logger: logger,
        _http: http,
        base: format!("http://127.0.0.1:{port}"),
        log,
        dir,
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(TIMEOUT).build().unwrap()
}

/// GET `path` with the read token: status, headers and body.
fn get(s: &Setup, path: &str) -> (u16, reqwest::header::HeaderMap, String) {
    rt().block_on(async {
        let r = client()
            .get(format!("{}{path}", s.base))
            .bearer_auth(READ)
            .send()
            .await
            .expect("GET");
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        (status, headers, r.text().await.unwrap())
    })
}

fn get_json(s: &Setup, path: &str) -> Value {
    let (status, _, body) = get(s, path);
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// POST a device-form reading with the ingest token.
fn post_reading(s: &Setup, body: &str) -> Value {
    rt().block_on(async {
        let r = client()
            .post(format!("{}/api/v1/readings", s.base))
            .bearer_auth(INGEST)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .expect("POST");
        assert_eq!(r.status().as_u16(), 200);
        r.json().await.unwrap()
    })
}

/// Run headless Chromium on `url` (fragment included) and return the DOM once the page settled
/// (virtual time runs until the network and timers are idle or the budget is spent).
fn chromium(s: &Setup, url: &str, screenshot: Option<&str>) -> String {
    let bin = require("chromium", "chromium");
    let profile = tempfile::tempdir_in(s.dir.path()).unwrap();
    let mut cmd = Command::new(bin);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1200,1600",
        "--virtual-time-budget=15000",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()));
    match screenshot {
        Some(name) => {
            let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
            cmd.arg(format!("--screenshot={}", target.join(name).display()));
        }
        None => {
            cmd.arg("--dump-dom");
        }
    }
    let mut child = Proc(
        cmd.arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromium"),
    );
    let mut out = child.0.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut s);
        s
    });
    let st = wait_exit(&mut child.0, Duration::from_secs(60));
    assert!(st.is_some(), "chromium did not finish within 60 s");
    reader.join().unwrap()
}

/// The value of attribute `name` on the first element carrying `marker` in its start tag.
fn attr(dom: &str, marker: &str, name: &str) -> Option<String> {
    let at = dom.find(marker)?;
    let start = dom[..=at].rfind('<')?;
    let tag = &dom[start..start + dom[start..].find('>')?];
    let key = format!("{name}=\"");
    let v = &tag[tag.find(&key)? + key.len()..];
    Some(v[..v.find('"')?].replace("&quot;", "\""))
}

/// The text of the table row whose start tag carries `data-topic="topic"`.
fn row<'a>(dom: &'a str, topic: &str) -> &'a str {
    let at = dom
        .find(&format!("<tr data-topic=\"{topic}\""))
        .unwrap_or_else(|| panic!("no overview row for {topic}:\n{dom}"));
    &dom[at..at + dom[at..].find("</tr>").unwrap()]
}

#[test]
fn dashboard_shows_the_series_the_api_has_and_nothing_without_a_token() {
    let s = setup();

    // The page itself: no data, served with a CSP that allows only 'self'.
    let (status, headers, body) = get(&s, "/");
    assert_eq!(status, 200);
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'self'") && csp.contains("script-src 'self'"));
    assert!(!csp.contains("unsafe-inline"));
    assert!(body.contains("id=\"overview\""));
    let (status, _, js) = get(&s, "/ui/vendor/uPlot.iife.min.js");
    assert_eq!(status, 200);
    assert!(js.contains("uPlot"));

    // Readings: over MQTT, an alert state, and a phone's form with a location inside the
    // private area (withheld) next to its battery level.
    for v in ["20.5", "21.5", "22.25"] {
        s.m.publish(&["-t", "iotitan/home/kitchen/temperature", "-m", v, "-q", "1"]);
    }
    s.m.publish(&["-t", "iotitan/home/hall/humidity", "-m", "55", "-q", "1"]);
    s.m.publish(&[
        "-t",
        "iotitan/home/kitchen/temperature_alert_hi",
        "-m",
        "on",
        "-q",
        "1",
    ]);
    let answer = post_reading(
        &s,
        r#"{"device_id":"phone1","properties":{"battery":{"level":87},
            "location":{"latitude":-34.9212,"longitude":138.6007}}}"#,
    );
    assert_eq!(answer["private"], 2, "{answer}");
    let want = [
        "iotitan/home/kitchen/temperature",
        "iotitan/home/hall/humidity",
        "iotitan/http/phone1/battery/level",
    ];
    let recorded = wait_until(TIMEOUT, || {
        let v = get_json(&s, "/api/v1/topics?since=-1d");
        let seen: Vec<&str> = v
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|t| t["topic"].as_str())
            .collect();
        want.iter().all(|w| seen.contains(w))
            && seen.contains(&"iotitan/home/kitchen/temperature_alert_hi")
            && v.as_array().unwrap().iter().any(|t| {
                t["topic"] == "iotitan/home/kitchen/temperature"
                    && t["last"].as_f64() == Some(22.25)
            })
    });
    assert!(recorded, "the readings never showed up in /api/v1/topics");

    // The page with the read token in its fragment.
    let url = format!("{}/#token={READ}", s.base);
    let dom = chromium(&s, &url, None);
    assert_eq!(
        attr(&dom, "<body", "data-ready").as_deref(),
        Some("1"),
        "the page never got ready:\n{dom}"
    );
    for w in want {
        row(&dom, w);
    }
    let kitchen = row(&dom, "iotitan/home/kitchen/temperature");
    assert!(kitchen.contains(">22.25<"), "{kitchen}");
    assert!(kitchen.contains("hi on"), "alert state missing: {kitchen}");
    assert!(row(&dom, "iotitan/home/hall/humidity").contains(">55<"));
    assert!(row(&dom, "iotitan/http/phone1/battery/level").contains(">87<"));
    assert!(
        !dom.contains("data-topic=\"iotitan/home/kitchen/temperature_alert_hi\""),
        "an alert state is shown as a series"
    );
    for private in ["-34.92", "138.60", "latitude", "longitude"] {
        assert!(!dom.contains(private), "{private} in the page");
    }

    // The chart: its buckets are the API's for the same query.
    let topic = attr(&dom, "id=\"chart\"", "data-topic").expect("chart data-topic");
    assert!(want.contains(&topic.as_str()), "chart of {topic}");
    let max_points = attr(&dom, "id=\"chart\"", "data-max-points").unwrap();
    let means: Vec<f64> =
        serde_json::from_str(&attr(&dom, "id=\"chart\"", "data-mean").unwrap()).unwrap();
    let api = get_json(
        &s,
        &format!(
            "/api/v1/aggregate?topics={}&since=-24h&every=1s&stats=min,mean,max,count&max_points={max_points}",
            topic.replace('/', "%2F")
        ),
    );
    let api_means: Vec<f64> = api["series"][&topic]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["mean"].as_f64().unwrap())
        .collect();
    assert!(!api_means.is_empty());
    assert_eq!(means, api_means, "chart data differ from the API");
    assert!(dom.contains("class=\"uplot"), "no uPlot chart drawn");

    chromium(&s, &url, Some("dashboard-overview.png"));

    // A wrong token: the message, no data.
    let dom = chromium(
        &s,
        &format!("{}/#token=wrong-token-000000000000", s.base),
        None,
    );
    assert!(dom.contains("The token was refused"), "{dom}");
    assert!(!dom.contains("data-topic=\"iotitan/"), "data shown: {dom}");
    assert!(!dom.contains("22.25"));
    assert_eq!(attr(&dom, "<body", "data-ready"), None);
    chromium(
        &s,
        &format!("{}/#token=wrong-token-000000000000", s.base),
        Some("dashboard-wrong-token.png"),
    );
    let log = std::fs::read_to_string(&s.log).unwrap();
    assert!(!log.contains(READ), "the token reached the log");
}
