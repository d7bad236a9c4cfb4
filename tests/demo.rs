//! `iotitan-demo` end to end: a short run with the embedded broker and the demo's syslog
//! receiver produces what the README promises (the dashboard's address included), and stops
//! cleanly.

mod common;
use common::*;
use std::process::Command;

/// The number printed right after `label` in the summary.
fn number_after(text: &str, label: &str) -> usize {
    text.split(label)
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number after {label:?} in {text}"))
}

/// GET `url` with `token`: status and body.
fn get(url: &str, token: &str) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let r = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .unwrap()
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        (r.status().as_u16(), r.text().await.unwrap_or_default())
    })
}

/// POST a command for `device` with `token`: status and JSON answer.
fn command(base: &str, token: &str, device: &str) -> (u16, serde_json::Value) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let r = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .unwrap()
            .post(format!("{base}/api/v1/commands"))
            .bearer_auth(token)
            .json(&serde_json::json!({"device": device, "payload": "ON"}))
            .send()
            .await
            .expect("POST /api/v1/commands");
        (r.status().as_u16(), r.json().await.unwrap_or_default())
    })
}

#[test]
fn short_demo_runs_the_pipeline_and_exits_cleanly() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let mut child = Killed(
        Command::new(env!("CARGO_BIN_EXE_iotitan-demo"))
            .current_dir(dir.path())
            .args(["--duration", "15s"])
            .env_remove("IOTITAN_CONFIG")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(dir.path().join("stderr")).unwrap())
            .spawn()
            .expect("run iotitan-demo"),
    );
    let (tx, lines) = std::sync::mpsc::channel();
    let out = child.0.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });

    // The dashboard's address comes first, with the token in its fragment.
    let mut seen = Vec::new();
    let url = loop {
        let line = lines
            .recv_timeout(TIMEOUT)
            .unwrap_or_else(|_| panic!("no dashboard URL in:\n{}", seen.join("\n")));
        seen.push(line.clone());
        if let Some(at) = line.find("http://127.0.0.1:") {
            break line[at..].trim().to_owned();
        }
    };
    let (base, token) = url
        .split_once("/#token=")
        .unwrap_or_else(|| panic!("no token in the fragment: {url}"));
    assert!(token.len() >= 32, "{url}");
    let file = std::fs::read_to_string(dir.path().join("demo/http-demo.token")).unwrap();
    assert_eq!(file, token);

    // While it runs: the page, the read API with that token (the replayed series shows up),
    // commands to the plugs (one answers, one never does), and nothing without the token.
    let (status, page) = get(&format!("{base}/"), "");
    assert_eq!(status, 200);
    assert!(page.contains("id=\"overview\""), "{page}");
    let replay = "iotitan/adelaide/outdoor/openmeteo/temperature";
    let listed = wait_until(TIMEOUT, || {
        let (status, body) = get(&format!("{base}/api/v1/topics?since=-1d"), token);
        assert_eq!(status, 200, "{body}");
        body.contains(replay)
    });
    assert!(listed, "{replay} never showed up in /api/v1/topics");
    // The office's plugs, by room through their JSON documents (the energy statistics).
    let energy = format!(
        "{base}/api/v1/aggregate?topics=office/%23&since=-1h&every=1h&by=3&stats=increase,integral"
    );
    let grouped = wait_until(TIMEOUT, || {
        let (status, body) = get(&energy, token);
        assert_eq!(status, 200, "{body}");
        body.contains("\"office/floor1/room1/Power\"") && body.contains("\"integral\"")
    });
    assert!(grouped, "the office's plugs never showed up by room");
    let (status, body) = get(&format!("{base}/api/v1/topics"), "not-the-demo-token-0000");
    assert_eq!(status, 401, "{body}");
    let (status, body) = get(&format!("{base}/api/v1/dashboard"), token);
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("\"plug1\"") && body.contains("\"plug2\""),
        "{body}"
    );
    let (status, answer) = command(base, token, "plug1");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["acked_by"]["payload"], "ON", "{answer}");
    let (status, answer) = command(base, token, "plug2");
    assert_eq!(status, 504, "{answer}");

    let status = wait_exit(&mut child.0, TIMEOUT * 2).expect("the demo did not stop");
    reader.join().unwrap();
    seen.extend(lines.try_iter());
    let stdout = seen.join("\n");
    let stderr = std::fs::read_to_string(dir.path().join("stderr")).unwrap_or_default();
    assert_eq!(
        status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    // Stopped means stopped: nothing listens on the dashboard's port any more.
    let addr = base.trim_start_matches("http://");
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "{addr} still answers after the demo"
    );

    // Not a terminal: periodic status lines, then the summary.
    assert!(stdout.contains("[00:00:05] messages "), "{stdout}");
    assert!(stdout.contains("iotitan demo stopped after"), "{stdout}");
    let published = number_after(&stdout, "simulator published ");
    assert!(published > 50, "{stdout}");
    assert!(stdout.contains("demo/syslog"), "{stdout}");

    // The spike tripped the alert, on and off again: two transitions.
    assert!(stdout.contains("alert events 2)"), "{stdout}");
    // The bridge ran dry: it wrote its bulk updates, key masked, to a file of the demo (the
    // terminal belongs to the view), and counted them.
    assert!(!stdout.contains("write_api_key"), "{stdout}");
    assert!(stdout.contains("demo/bridge-requests.json"), "{stdout}");
    assert!(stdout.contains("demo/http-demo.token"), "{stdout}");
    let sent = number_after(&stdout, "bridge sent ");
    assert!(sent > 0, "{stdout}");
    let requests = std::fs::read_to_string(dir.path().join("demo/bridge-requests.json")).unwrap();
    let docs: Vec<serde_json::Value> = serde_json::Deserializer::from_str(&requests)
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{e}: {requests}"));
    assert!(!docs.is_empty(), "{requests}");
    let mut updates = 0;
    for doc in &docs {
        assert_eq!(doc["write_api_key"], "********", "{doc}");
        for u in doc["updates"].as_array().unwrap() {
            updates += 1;
            assert!(u["created_at"].is_string(), "{u}");
            // Field 1 is the replayed Adelaide temperature (or the spike).
            if let Some(t) = u.get("field1") {
                let t = t.as_f64().unwrap();
                assert!((-10.0..=90.0).contains(&t), "{u}");
            }
        }
    }
    assert_eq!(updates, sent, "{requests}");
    assert!(
        stdout.contains("programs run: logger, alerts, stats, bridge, http"),
        "{stdout}"
    );
    // Stats windows ran on the records and published their outputs.
    assert!(!stdout.contains("stats outputs 0,"), "{stdout}");
    assert!(stdout.contains("grep "), "{stdout}");

    // The config it wrote is valid for every program, and the socket is gone.
    let demo = dir.path().join("demo");
    let text = std::fs::read_to_string(demo.join("iotitan.toml")).unwrap();
    iotitan::config::Config::parse(&text, "demo").expect("valid demo config");
    // The logger's records reached the demo's syslog file as RFC 3339 lines, spike included.
    let records = std::fs::read_to_string(demo.join("syslog")).unwrap();
    let spike = records
        .lines()
        .find(|l| l.ends_with(" iotitan/adelaide/outdoor/openmeteo/temperature 85.0"))
        .unwrap_or_else(|| panic!("no spike record in\n{records}"));
    let time = spike.split(' ').next().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(time).is_ok(),
        "{spike}"
    );
    assert!(spike.contains(" iotitan-logger["), "{spike}");
    // Stats outputs are published, and logged like any other message.
    assert!(
        records
            .lines()
            .any(|l| l.contains(" iotitan/home/living/dht22/temperature_mean ")),
        "{records}"
    );
    assert!(!demo.join("log.sock").exists());
}

#[test]
fn external_broker() {
    let m = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let sub = m.subscribe(&["iotitan/adelaide/#"], &[]);
    let out = Command::new(env!("CARGO_BIN_EXE_iotitan-demo"))
        .current_dir(dir.path())
        .args(["--broker", &m.addr(), "--duration", "9s"])
        .output()
        .expect("run iotitan-demo");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    // The replayed series and its spike went through the given broker.
    sub.wait_for(TIMEOUT, |l| {
        l == "iotitan/adelaide/outdoor/openmeteo/temperature 85.0"
    });
}

/// The demo's syslog receiver writes what a real client (util-linux `logger`) sends as RFC 3339
/// lines, in both wire formats, and drains on shutdown.
#[tokio::test(flavor = "multi_thread")]
async fn receiver_writes_rfc3339_lines() {
    let dir = tempfile::tempdir().unwrap();
    let (sock, file) = (dir.path().join("log.sock"), dir.path().join("syslog"));
    let r = iotitan::demo::receiver::Receiver::bind(&sock, &file).unwrap();
    let records = r.records.clone();
    let (stop, shutdown) = iotitan::shutdown::channel();
    let task = tokio::spawn(r.run(shutdown));
    let logger = require("logger", "bsdutils");
    for format in ["--rfc3164", "--rfc5424"] {
        let st = Command::new(&logger)
            .arg("--socket")
            .arg(&sock)
            .args([
                format,
                "--id=4242",
                "-t",
                "iotitan-logger",
                "iotitan/a/b 21.5",
            ])
            .status()
            .unwrap();
        assert!(st.success());
    }
    let counted = tokio::task::spawn_blocking(move || {
        wait_until(TIMEOUT, || {
            records.load(std::sync::atomic::Ordering::Relaxed) == 2
        })
    });
    assert!(counted.await.unwrap());
    stop.trigger();
    task.await.unwrap().unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    let re = regex::Regex::new(
        r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}[+-]\d\d:\d\d \S+ iotitan-logger\[4242\]: iotitan/a/b 21\.5$",
    )
    .unwrap();
    let lines: Vec<_> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines.iter().all(|l| re.is_match(l)), "{text}");
    assert!(!sock.exists());
}

#[test]
fn an_unreachable_broker_stops_the_demo_early_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    // Port 1 on loopback: nothing listens there.
    let out = Command::new(env!("CARGO_BIN_EXE_iotitan-demo"))
        .current_dir(dir.path())
        .args(["--broker", "127.0.0.1:1", "--duration", "10m"])
        .env_remove("IOTITAN_CONFIG")
        .output()
        .expect("run iotitan-demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_ne!(out.status.code(), Some(0), "{stdout}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(120),
        "it waited for --duration instead of stopping: {stdout}"
    );
    assert!(
        stdout.contains("FAILED: simulator: cannot reach the MQTT broker at 127.0.0.1:1"),
        "{stdout}"
    );
    assert!(stdout.contains("iotitan demo stopped after"), "{stdout}");
}
