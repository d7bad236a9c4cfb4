//! `/metrics` end to end: the real logger reports its status over a real mosquitto,
//! `iotitan-http` renders every program's status, Debian's `promtool check metrics` accepts
//! it, and a real Prometheus started here scrapes it (with a bearer token, in the format it
//! negotiates: OpenMetrics) and answers a query for the logger's written count that is the
//! number of records in syslog.

mod common;
use common::*;

use serde_json::Value;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

const READ: &str = "read-0123456789abcdef012345";
const TOKENS: &[HttpToken] = &[HttpToken::new("reader", READ, &["read"])];

/// How many readings the test publishes.
const READINGS: usize = 500;

/// `GET url` (with `token` as a bearer): status, Content-Type and body; `None` if nothing
/// answered.
fn get(url: &str, token: Option<&str>) -> Option<(u16, String, String)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .ok()?;
        let mut req = client.get(url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.ok()?;
        let status = res.status().as_u16();
        let kind = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        Some((status, kind, res.text().await.ok()?))
    })
}

#[test]
fn prometheus_scrapes_the_logger_count_that_syslog_holds() {
    let m = Mosquitto::start();
    let r = Rsyslogd::start();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = write_config(
        dir.path(),
        &format!(
            "{mqtt}{syslog}[status]\ninterval = \"1s\"\n{http}",
            mqtt = m.mqtt_toml(&format!("m{port}")),
            syslog = r.syslog_toml(),
            http = http_toml(port, "", TOKENS),
        ),
    );
    let logger = Logger::start_recording(&cfg, &m, &r);
    let http = Http::start(
        Program::new("iotitan-http")
            .config_file(&cfg)
            .http_tokens(TOKENS),
        port,
    );
    let lines = dir.path().join("readings");
    let body: String = (0..READINGS).map(|i| format!("{}\n", i % 40)).collect();
    std::fs::write(&lines, body).unwrap();
    m.publish_lines(&["-t", "t/metrics/temperature", "-q", "1"], &lines);
    r.wait_lines("t/metrics/temperature", READINGS, Duration::from_secs(20));
    // Every record of this logger: the readings and the probes it was started with.
    let written = logger.lines_in(&r).len();

    // /metrics needs the token, and says what syslog holds once the next report came.
    let url = http.url("/metrics");
    assert_eq!(get(&url, None).map(|a| a.0), Some(401));
    let mut text = String::new();
    let line = format!("iotitan_logger_written_total{{instance=\"m{port}\"}} {written}");
    let seen = wait_until(Duration::from_secs(20), || {
        let (status, kind, body) = get(&url, Some(READ)).unwrap();
        assert_eq!(
            (status, kind.as_str()),
            (200, "text/plain; version=0.0.4; charset=utf-8")
        );
        text = body;
        text.lines().any(|l| l == line)
    });
    assert!(seen, "no {line:?} in:\n{text}");
    assert!(
        text.contains(&format!(
            "iotitan_up{{program=\"logger\",instance=\"m{port}\"}} 1"
        )),
        "{text}"
    );
    assert!(
        text.contains("iotitan_http_requests_total{instance="),
        "{text}"
    );

    // promtool, Prometheus' own checker, takes it without a complaint.
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is missing: apt-get install prometheus (.ci/run does)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {:?}\n{}{}\n{text}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // A real Prometheus scrapes it and answers the query with the same count.
    let prom_port = free_port();
    let prom_cfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &prom_cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
             scrape_configs:\n  - job_name: iotitan\n    honor_labels: true\n    authorization:\n      \
             credentials: {READ}\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
        ),
    )
    .unwrap();
    let mut prometheus = Command::new("prometheus")
        .arg(format!("--config.file={}", prom_cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("prometheus.log")).unwrap())
        .spawn()
        .expect("prometheus is missing: apt-get install prometheus (.ci/run does)");
    let query =
        format!("http://127.0.0.1:{prom_port}/api/v1/query?query=iotitan_logger_written_total");
    let mut answer = Value::Null;
    let scraped = wait_until(Duration::from_secs(30), || {
        let Some((_, _, body)) = get(&query, None) else {
            return false;
        };
        answer = serde_json::from_str(&body).unwrap_or(Value::Null);
        answer["data"]["result"][0]["value"][1] == written.to_string().as_str()
    });
    let _ = prometheus.kill();
    let _ = prometheus.wait();
    let log = std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();
    assert!(
        scraped,
        "Prometheus answered {answer} (want {written}); its log:\n{log}"
    );
    assert_eq!(
        answer["data"]["result"][0]["metric"]["program"],
        Value::Null
    );
    assert_eq!(
        answer["data"]["result"][0]["metric"]["instance"],
        format!("m{port}")
    );
}
