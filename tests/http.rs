//! `iotitan-http` end to end: the real binary between reqwest and a real mosquitto, with the
//! real logger writing to a real rsyslogd where the test needs to see what was recorded.
//! Every error of HTTP.md, the three reading forms, private areas (checked on the broker, with
//! a subscriber on `#`), a stalled client, the broker stopped mid-batch, and commands.

mod common;
use common::*;

use reqwest::StatusCode;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const HTTP: &str = env!("CARGO_BIN_EXE_iotitan-http");

const INGEST: &str = "ingest-0123456789abcdef0123";
const READ: &str = "read-0123456789abcdef012345";
const OPS: &str = "ops-0123456789abcdef01234567";
const SLOW: &str = "slow-0123456789abcdef0123456";
const COLLECT: &str = "collect-0123456789abcdef0123";

/// The tokens every test shares (values from the environment): one per scope, with the
/// private area of HTTP.md and the plugs in [`http_toml`].
const TOKENS: &[HttpToken] = &[
    HttpToken::new("phone", INGEST, &["ingest"]).topics(&["t/#", "iotitan/http/phone1/#"]),
    HttpToken::new("reader", READ, &["read"]),
    HttpToken::new("ops", OPS, &["command"]).topics(&["iotitan/#"]),
    HttpToken::new("slow", SLOW, &["ingest"]).rate("2/min"),
    HttpToken::new("collect", COLLECT, &["ingest"]).topics(&[
        "iotitan/http/pi4/#",
        "iotitan/http/owntracks/#",
        "iotitan/http/gpslogger/#",
        "t/#",
    ]),
];

/// The config of a daemon on `port` with the broker `m`, `extra` keys in `[http]`.
fn config(m: &Mosquitto, port: u16, extra: &str) -> String {
    let extra = format!("request_timeout = \"1s\"\n{extra}");
    format!(
        "{}{}",
        m.mqtt_toml(&format!("t{port}")),
        http_toml(port, &extra, TOKENS)
    )
}

/// `iotitan-http` with the tokens' values in its environment.
fn http() -> Program {
    Program::new("iotitan-http").http_tokens(TOKENS)
}

/// Broker, optionally rsyslogd + logger, and the daemon.
struct Setup {
    m: Mosquitto,
    r: Option<Rsyslogd>,
    _logger: Option<Logger>,
    d: Http,
    _dir: tempfile::TempDir,
}

fn setup(extra: &str, with_logger: bool) -> Setup {
    setup_with(Mosquitto::start(), extra, with_logger)
}

fn setup_with(m: Mosquitto, extra: &str, with_logger: bool) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let r = with_logger.then(Rsyslogd::start);
    let syslog = r.as_ref().map(Rsyslogd::syslog_toml).unwrap_or_default();
    let cfg = write_config(dir.path(), &format!("{syslog}{}", config(&m, port, extra)));
    let logger = r.as_ref().map(|r| Logger::start_recording(&cfg, &m, r));
    let d = Http::start(http().config_file(&cfg), port);
    Setup {
        m,
        r,
        _logger: logger,
        d,
        _dir: dir,
    }
}

/// A subscriber on `#` whose subscription is known to be active.
fn everything(m: &Mosquitto) -> Subscriber {
    let sub = m.subscribe(&["#"], &[]);
    assert!(
        wait_until(TIMEOUT, || {
            m.publish(&["-t", "probe/ready", "-m", "x"]);
            sub.next_line(Duration::from_millis(200))
                .is_some_and(|l| l == "probe/ready x")
        }),
        "subscriber did not come up"
    );
    sub
}

/// Records of topics under `prefix` in rsyslog's file, as `topic payload`.
fn records(r: &Rsyslogd, prefix: &str) -> Vec<String> {
    r.lines()
        .iter()
        .filter_map(|l| syslog_msg(l, "iotitan-logger"))
        .filter(|m| m.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

/// Send one request's bytes on a new connection and read its answer: a client's request
/// replayed as it sends it, keep-alive and `Accept-Encoding: gzip` included, so the answer is
/// read by its length or its chunks, and inflated.
fn replay(d: &Http, request: &[u8]) -> (u16, String) {
    let addr = d.base.trim_start_matches("http://");
    let mut c = std::net::TcpStream::connect(addr).expect("connect");
    c.set_read_timeout(Some(TIMEOUT)).unwrap();
    c.write_all(request).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        if let Some(answer) = whole_answer(&got) {
            return answer;
        }
        match c.read(&mut buf) {
            Ok(0) | Err(_) => panic!("the answer ended early: {}", String::from_utf8_lossy(&got)),
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// The status and body of an HTTP/1.1 answer once `got` holds all of it.
fn whole_answer(got: &[u8]) -> Option<(u16, String)> {
    let end = got.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
    let header = |name: &str| {
        head.lines().find_map(|l| {
            l.strip_prefix(&format!("{name}:"))
                .map(|v| v.trim().to_owned())
        })
    };
    let mut rest = &got[end + 4..];
    let body = if header("transfer-encoding").as_deref() == Some("chunked") {
        let mut body = Vec::new();
        loop {
            let line = rest.windows(2).position(|w| w == b"\r\n")?;
            let size =
                usize::from_str_radix(std::str::from_utf8(&rest[..line]).ok()?.trim(), 16).ok()?;
            if rest.len() < line + 2 + size + 2 {
                return None;
            }
            body.extend_from_slice(&rest[line + 2..line + 2 + size]);
            rest = &rest[line + 2 + size + 2..];
            if size == 0 {
                break body;
            }
        }
    } else {
        let length: usize = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        rest.get(..length)?.to_vec()
    };
    let body = if header("content-encoding").as_deref() == Some("gzip") {
        let mut text = String::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_string(&mut text)
            .unwrap();
        text
    } else {
        String::from_utf8_lossy(&body).into_owned()
    };
    Some((head[9..12].parse().unwrap(), body))
}

/// A request as Telegraf's `outputs.http` sends it (Go's net/http: these headers, this order),
/// with a bearer token from `[outputs.http.headers]`.
fn telegraf_request(d: &Http, path: &str, body: &[u8], gzip: bool) -> Vec<u8> {
    let host = d.base.trim_start_matches("http://");
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: Telegraf/1.30.0 Go/1.22.1\r\n\
         Content-Length: {}\r\nAuthorization: Bearer {COLLECT}\r\n\
         Content-Type: text/plain; charset=utf-8\r\n",
        body.len()
    );
    if gzip {
        head.push_str("Content-Encoding: gzip\r\n");
    }
    head.push_str("Accept-Encoding: gzip\r\n\r\n");
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegraf_batches_are_published_whole_and_never_as_text() {
    let s = setup("", false);
    let d = &s.d;
    let sub = everything(&s.m);
    let now = now() as u64;
    // Telegraf's JSON batch, as its serializer writes it, sent as text/plain.
    let batch = format!(
        r#"{{"metrics":[{{"fields":{{"usage_idle":98.5,"usage_user":1.25}},"name":"cpu","tags":{{"cpu":"cpu-total","host":"pi4"}},"timestamp":{now}}},{{"fields":{{"used_percent":41.5}},"name":"disk","tags":{{"host":"pi4","path":"/"}},"timestamp":1458229140}}]}}"#
    );
    // Pointed at the readings' text form by mistake: refused, nothing published (before,
    // it was stored as a reading of the topic `{"metrics":`).
    let (status, body) = replay(
        d,
        &telegraf_request(d, "/api/v1/readings", batch.as_bytes(), false),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("/api/v1/telegraf"), "{body}");
    let (status, body) = replay(
        d,
        &telegraf_request(d, "/api/v1/telegraf", batch.as_bytes(), false),
    );
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v, json!({"published": 3, "late": 1, "private": 0}));
    // gzip-encoded (`content_encoding = "gzip"`).
    let gz = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(br#"{"metrics":[{"fields":{"temp":51.2},"name":"cpu_temperature","tags":{"host":"pi4"},"timestamp":1}]}"#).unwrap();
        e.finish().unwrap()
    };
    let (status, body) = replay(d, &telegraf_request(d, "/api/v1/telegraf", &gz, true));
    assert_eq!(status, 200, "{body}");
    // Not gzip after all, or an encoding we do not inflate: refused, said why.
    let (status, body) = replay(d, &telegraf_request(d, "/api/v1/telegraf", b"{}", true));
    assert_eq!((status, body.contains("bad_body")), (400, true), "{body}");
    let br = String::from_utf8(telegraf_request(d, "/api/v1/telegraf", b"{}", false))
        .unwrap()
        .replace("Accept-Encoding: gzip\r\n", "Content-Encoding: br\r\n");
    let (status, body) = replay(d, br.as_bytes());
    assert_eq!(
        (status, body.contains("unsupported_encoding")),
        (415, true),
        "{body}"
    );
    // A metric outside the token's topics refuses the whole batch: Telegraf keeps it.
    let mixed = r#"{"metrics":[{"fields":{"v":1},"name":"t","tags":{"host":"pi4"}},{"fields":{"v":2},"name":"t","tags":{"host":"nas"}}]}"#;
    let (status, body) = replay(
        d,
        &telegraf_request(d, "/api/v1/telegraf", mixed.as_bytes(), false),
    );
    assert_eq!(status, 403, "{body}");
    let seen = published_until_end(d, COLLECT, &sub).await;
    assert_eq!(
        seen,
        [
            "iotitan/http/pi4/cpu/cpu-total/usage_idle 98.5",
            "iotitan/http/pi4/cpu/cpu-total/usage_user 1.25",
            "iotitan/http/pi4/disk/_/used_percent 41.5",
            "iotitan/http/pi4/cpu_temperature/temp 51.2",
        ]
    );
}

/// `Authorization: Basic` of `user` and the collectors' token as the password.
fn basic(user: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{COLLECT}"))
}

/// A request as OwnTracks for Android sends it in HTTP mode (OkHttp: these headers, this
/// order).
fn owntracks_request(d: &Http, body: &str) -> Vec<u8> {
    let host = d.base.trim_start_matches("http://");
    format!(
        "POST /api/v1/owntracks HTTP/1.1\r\nAuthorization: Basic {}\r\nX-Limit-U: jane\r\n\
         X-Limit-D: Pixel\r\nContent-Type: application/json; charset=utf-8\r\n\
         Content-Length: {}\r\nHost: {host}\r\nConnection: Keep-Alive\r\n\
         Accept-Encoding: gzip\r\nUser-Agent: Owntracks-Android/2.4.12\r\n\r\n{body}",
        basic("jane"),
        body.len()
    )
    .into_bytes()
}

/// A request as GPSLogger for Android sends it to a custom URL (OkHttp); a POST body goes
/// without a Content-Type.
fn gpslogger_request(d: &Http, method: &str, query: &str, body: &str) -> Vec<u8> {
    let host = d.base.trim_start_matches("http://");
    let length = if method == "POST" {
        format!("Content-Length: {}\r\n", body.len())
    } else {
        String::new()
    };
    format!(
        "{method} /api/v1/gpslogger?{query} HTTP/1.1\r\nAuthorization: Basic {}\r\n{length}\
         Host: {host}\r\nConnection: Keep-Alive\r\nAccept-Encoding: gzip\r\n\
         User-Agent: okhttp/4.12.0\r\n\r\n{body}",
        basic("gpslogger"),
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owntracks_and_gpslogger_as_they_send_and_no_private_point_recorded() {
    let s = setup("", false);
    let d = &s.d;
    let sub = everything(&s.m);
    let tst = now() as u64;
    let location = |lat: f64, lon: f64| {
        format!(
            r#"{{"_type":"location","acc":13,"batt":87,"bs":1,"conn":"w","lat":{lat},"lon":{lon},"tid":"jn","tst":{tst},"vel":0.0,"topic":"owntracks/jane/pixel"}}"#
        )
    };
    // Outside the private area: every field. Inside: all but the location.
    for body in [location(-34.95, 138.53), location(-34.92, 138.6)] {
        let (status, answer) = replay(d, &owntracks_request(d, &body));
        assert_eq!((status, answer.as_str()), (200, "[]"));
    }
    // A friend deleted (zero length), a transition: answered, nothing recorded.
    for body in [
        "",
        r#"{"_type":"transition","event":"enter","desc":"home","tst":1}"#,
    ] {
        let (status, answer) = replay(d, &owntracks_request(d, body));
        assert_eq!((status, answer.as_str()), (200, "[]"), "{body:?}");
    }
    // A wrong password: 401, and the app keeps the point.
    let wrong = String::from_utf8(owntracks_request(d, &location(1.0, 2.0)))
        .unwrap()
        .replace(&basic("jane"), &{
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode("jane:not-the-token-0123456789")
        });
    assert_eq!(replay(d, wrong.as_bytes()).0, 401);
    // GPSLogger: a GET with the placeholders filled in, outside; a POST body inside.
    let q =
        "lat=-34.95&lon=138.53&time=2026-01-01T00%3A00%3A00.000Z&batt=91.0&spd=1.5&device=pixel";
    let (status, answer) = replay(d, &gpslogger_request(d, "GET", q, ""));
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = replay(
        d,
        &gpslogger_request(d, "POST", "device=pixel", "lat=-34.92&lon=138.6&batt=90.0"),
    );
    assert_eq!(status, 200, "{answer}");
    let v: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(v, json!({"published": 1, "late": 0, "private": 2}));
    let seen = published_until_end(d, COLLECT, &sub).await;
    let o = "iotitan/http/owntracks/jane/pixel";
    let g = "iotitan/http/gpslogger/pixel";
    let want: Vec<String> = [
        format!("{o}/acc 13"),
        format!("{o}/batt 87"),
        format!("{o}/bs 1"),
        format!("{o}/conn w"),
        format!("{o}/lat -34.95"),
        format!("{o}/lon 138.53"),
        format!("{o}/tid jn"),
        format!("{o}/tst {tst}"),
        format!("{o}/vel 0.0"),
        format!("{o}/acc 13"),
        format!("{o}/batt 87"),
        format!("{o}/bs 1"),
        format!("{o}/conn w"),
        format!("{o}/tid jn"),
        format!("{o}/tst {tst}"),
        format!("{o}/vel 0.0"),
        format!("{g}/lat -34.95"),
        format!("{g}/lon 138.53"),
        format!("{g}/time 2026-01-01T00:00:00.000Z"),
        format!("{g}/batt 91.0"),
        format!("{g}/spd 1.5"),
        format!("{g}/batt 90.0"),
    ]
    .into();
    assert_eq!(seen, want);
}

/// Send `head` and `parts` on a new connection (ignoring write errors: the server may have
/// answered and closed already) and read the answer until the server closes or `TIMEOUT`.
fn exchange(d: &Http, head: &str, parts: &[&[u8]]) -> String {
    let addr = d.base.trim_start_matches("http://");
    let mut c = std::net::TcpStream::connect(addr).expect("connect");
    c.set_read_timeout(Some(TIMEOUT)).unwrap();
    if c.write_all(head.as_bytes()).is_ok() {
        for p in parts {
            if c.write_all(p).is_err() {
                break;
            }
        }
    }
    read_all(&mut c)
}

/// Everything the peer sends until it closes (or resets) the connection.
fn read_all(c: &mut std::net::TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match c.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(TIMEOUT).build().unwrap()
}

/// POST `body` as JSON with `token`; returns the status and the JSON answer.
async fn post(d: &Http, path: &str, token: Option<&str>, body: &str) -> (StatusCode, Value) {
    let mut req = client()
        .post(d.url(path))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.expect("request");
    let status = res.status();
    let text = res.text().await.expect("body");
    let v = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status}: not JSON: {text}"));
    (status, v)
}

/// GET `path` with `token`; returns the status and the JSON answer.
async fn get(d: &Http, path: &str, token: &str) -> (StatusCode, Value) {
    let res = client().get(d.url(path)).bearer_auth(token).send().await;
    let res = res.expect("request");
    let status = res.status();
    let text = res.text().await.expect("body");
    let v = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status}: not JSON: {text}"));
    (status, v)
}

/// The error code of an answer that must have the error shape.
fn code(v: &Value) -> &str {
    assert!(
        v["message"].as_str().is_some_and(|m| !m.is_empty()),
        "no message: {v}"
    );
    v["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code: {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_of_the_contract_has_its_status_and_shape_and_publishes_nothing() {
    let s = setup("", false);
    let d = &s.d;
    let sub = everything(&s.m);
    let good = r#"{"topic": "t/kitchen/temperature", "value": 23.1}"#;

    // No token, an unknown one, Basic instead of Bearer: 401 with WWW-Authenticate.
    for token in [None, Some("not-a-token-0123456789"), Some(&INGEST[1..])] {
        let (st, v) = post(d, "/api/v1/readings", token, good).await;
        assert_eq!(
            (st, code(&v)),
            (StatusCode::UNAUTHORIZED, "unauthorized"),
            "{token:?}"
        );
    }
    let res = client()
        .post(d.url("/api/v1/readings"))
        .basic_auth("phone", Some(INGEST))
        .body(good)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.headers().contains_key("www-authenticate"));
    // `Token <value>` is accepted too.
    let res = client()
        .post(d.url("/api/v1/readings"))
        .header("authorization", format!("Token {INGEST}"))
        .body(good)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    // Wrong scope, topic outside the token's filters: 403.
    let (st, v) = post(d, "/api/v1/readings", Some(READ), good).await;
    assert_eq!((st, code(&v)), (StatusCode::FORBIDDEN, "forbidden"));
    let (st, v) = post(
        d,
        "/api/v1/commands",
        Some(INGEST),
        r#"{"device": "plug1", "payload": "ON"}"#,
    )
    .await;
    assert_eq!((st, code(&v)), (StatusCode::FORBIDDEN, "forbidden"));
    let (st, v) = post(
        d,
        "/api/v1/readings",
        Some(INGEST),
        r#"{"topic": "u/x", "value": 1}"#,
    )
    .await;
    assert_eq!((st, code(&v)), (StatusCode::FORBIDDEN, "forbidden"));
    // One reading outside the filters refuses the whole batch.
    let (st, _) = post(
        d,
        "/api/v1/readings",
        Some(INGEST),
        r#"[{"topic": "t/ok", "value": 1}, {"topic": "u/x", "value": 1}]"#,
    )
    .await;
    assert_eq!(st, StatusCode::FORBIDDEN);

    // Over its rate (2/min): 429 with Retry-After; other tokens are not affected.
    for _ in 0..2 {
        let (st, v) = post(
            d,
            "/api/v1/readings",
            Some(SLOW),
            r#"{"topic": "s/a", "value": 1}"#,
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{v}");
    }
    let res = client()
        .post(d.url("/api/v1/readings"))
        .bearer_auth(SLOW)
        .body(r#"{"topic": "s/a", "value": 1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&retry), "Retry-After {retry}");
    assert_eq!(code(&res.json::<Value>().await.unwrap()), "rate_limited");

    // Bad bodies: 400 with a code per kind.
    let cases = [
        ("{\"topic\": ", "bad_json"),
        ("{\"topic\": \"t/a\", \"value\": NaN}", "non_finite"),
        ("{\"topic\": \"t/a\", \"value\": Infinity}", "non_finite"),
        ("{\"topic\": \"t/a\", \"value\": -Infinity}", "non_finite"),
        ("{\"topic\": \"t/a\", \"value\": 1e400}", "non_finite"),
        ("{\"topic\": \"t/+/a\", \"value\": 1}", "bad_topic"),
        ("{\"topic\": \"t/#\", \"value\": 1}", "bad_topic"),
        ("{\"topic\": \"t//a\", \"value\": 1}", "bad_topic"),
        ("{\"topic\": \"$SYS/a\", \"value\": 1}", "bad_topic"),
        // What mosquitto closes the connection for (all other requests' with it).
        ("{\"topic\": \"t/a\\bb\", \"value\": 1}", "bad_topic"),
        ("{\"topic\": \"t/a\\u0096\", \"value\": 1}", "bad_topic"),
        ("{\"topic\": \"t/\\ufffe\", \"value\": 1}", "bad_topic"),
        ("{\"topic\": \"t/a\", \"value\": [1]}", "bad_reading"),
    ];
    for (body, want) in cases {
        let (st, v) = post(d, "/api/v1/readings", Some(INGEST), body).await;
        assert_eq!((st, code(&v)), (StatusCode::BAD_REQUEST, want), "{body}");
    }
    let long = format!(r#"{{"topic": "t/{}", "value": 1}}"#, "a".repeat(65_536));
    let (st, v) = post(d, "/api/v1/readings", Some(INGEST), &long).await;
    assert_eq!((st, code(&v)), (StatusCode::BAD_REQUEST, "bad_topic"));

    // Over max_body (1 MiB): 413 in the same shape, announced by Content-Length or not. The
    // server may answer before it has read everything and close: raw sockets see the answer
    // either way (a client library may only see the reset).
    let big = format!(r#"{{"topic": "t/a", "value": "{}"}}"#, "x".repeat(1 << 20));
    let head = format!(
        "POST /api/v1/readings HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {INGEST}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        big.len()
    );
    let answer = exchange(d, &head, &[big.as_bytes()]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"error\":\"body_too_large\""), "{answer}");
    let head = format!(
        "POST /api/v1/readings HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {INGEST}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    let chunk = format!("{:x}\r\n{}\r\n", 100_000, " ".repeat(100_000));
    let chunks = vec![chunk.as_bytes(); 12];
    let answer = exchange(d, &head, &chunks);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"error\":\"body_too_large\""), "{answer}");

    // Unknown paths and methods answer in the same shape.
    let res = client().get(d.url("/api/v1/nothing")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(code(&res.json::<Value>().await.unwrap()), "not_found");
    let res = client()
        .get(d.url("/api/v1/readings"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        code(&res.json::<Value>().await.unwrap()),
        "method_not_allowed"
    );

    // /healthz needs no token and tells the broker state.
    let v: Value = client()
        .get(d.url("/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v, json!({"status": "ok", "broker": "connected"}));

    // Only the one good request (the `Token` scheme) reached the broker.
    let seen = published_until_end(d, INGEST, &sub).await;
    assert_eq!(seen, ["t/kitchen/temperature 23.1", "s/a 1", "s/a 1"]);
    // The token values never reach the log.
    let log = d.log();
    for t in [INGEST, READ, OPS, SLOW] {
        assert!(!log.contains(t), "a token in the log:\n{log}");
    }
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// What the broker got until an end marker, `t/end 0`, published now with `token`.
async fn published_until_end(d: &Http, token: &str, sub: &Subscriber) -> Vec<String> {
    let (status, v) = post(
        d,
        "/api/v1/readings",
        Some(token),
        r#"{"topic": "t/end", "value": 0}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    lines_until(sub, "t/end 0")
}

/// Lines of `sub` until `last` (excluded), leaving out the subscriber's own probes.
fn lines_until(sub: &Subscriber, last: &str) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        let l = sub
            .next_line(TIMEOUT)
            .unwrap_or_else(|| panic!("no {last:?}; saw {seen:#?}"));
        if l == last {
            return seen;
        }
        if !l.starts_with("probe/") {
            seen.push(l);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_forms_reach_the_broker_and_private_locations_never_do() {
    let s = setup("", false);
    let d = &s.d;
    let sub = everything(&s.m);
    let device = |lat: f64, lon: f64, ts: f64| {
        json!({
            "device_id": "phone1",
            "device_timestamp": ts,
            "properties": {
                "battery": {"level": 87, "temperature": 31.5},
                "location": {"latitude": lat, "longitude": lon},
            }
        })
        .to_string()
    };
    // Inside the home area: the location is withheld and counted.
    let (st, v) = post(
        d,
        "/api/v1/readings",
        Some(INGEST),
        &device(-34.92, 138.6, now()),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v, json!({"published": 2, "late": 0, "private": 2}));
    // On its boundary: private too.
    let (_, v) = post(
        d,
        "/api/v1/readings",
        Some(INGEST),
        &device(-34.91, 138.61, now()),
    )
    .await;
    assert_eq!(v, json!({"published": 2, "late": 0, "private": 2}));
    // Just outside (11 m east): published. An hour old: late, still published.
    let (_, v) = post(
        d,
        "/api/v1/readings",
        Some(INGEST),
        &device(-34.92, 138.6101, now() - 3600.0),
    )
    .await;
    assert_eq!(v, json!({"published": 4, "late": 4, "private": 0}));
    // text/plain, as mosquitto_sub -v prints.
    let res = client()
        .post(d.url("/api/v1/readings"))
        .bearer_auth(INGEST)
        .header("content-type", "text/plain; charset=utf-8")
        .body("t/kitchen/temperature 23.1\nt/hall/lwt Connection Lost\n")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap()["published"], 2);
    // The array form, mixing both object forms.
    let body = json!([
        {"topic": "t/a", "value": 1},
        {"topic": "t/b", "value": true},
        {"device_id": "phone1", "properties": {"steps": 1200}},
    ]);
    let (_, v) = post(d, "/api/v1/readings", Some(INGEST), &body.to_string()).await;
    assert_eq!(v["published"], 3);
    let seen = published_until_end(d, INGEST, &sub).await;
    let p = "iotitan/http/phone1";
    let want: Vec<String> = [
        format!("{p}/battery/level 87"),
        format!("{p}/battery/temperature 31.5"),
        format!("{p}/battery/level 87"),
        format!("{p}/battery/temperature 31.5"),
        format!("{p}/battery/level 87"),
        format!("{p}/battery/temperature 31.5"),
        format!("{p}/location/latitude -34.92"),
        format!("{p}/location/longitude 138.6101"),
        "t/kitchen/temperature 23.1".into(),
        "t/hall/lwt Connection Lost".into(),
        "t/a 1".into(),
        "t/b true".into(),
        format!("{p}/steps 1200"),
    ]
    .into();
    assert_eq!(seen, want);
    // The private coordinates never reached the broker in any form.
    for l in &seen {
        assert!(
            !l.contains("-34.91 ") && !l.ends_with(" 138.6") && !l.ends_with(" 138.61"),
            "{l}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_readings_in_one_request_are_all_recorded() {
    let s = setup("", true);
    let r = s.r.as_ref().unwrap();
    let body: Vec<Value> = (0..10_000)
        .map(|i| json!({"topic": format!("t/bulk/s{}", i % 10), "value": i}))
        .collect();
    let (st, v) = post(
        &s.d,
        "/api/v1/readings",
        Some(INGEST),
        &Value::from(body).to_string(),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v, json!({"published": 10_000, "late": 0, "private": 0}));
    // Answered as published means at the broker: the logger records every one.
    let ok = wait_until(TIMEOUT, || records(r, "t/bulk/").len() >= 10_000);
    let got = records(r, "t/bulk/");
    assert!(ok, "{} of 10000 records", got.len());
    let mut values: Vec<u32> = got
        .iter()
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    values.sort_unstable();
    values.dedup();
    assert_eq!(values, (0..10_000).collect::<Vec<_>>());
    for l in &got {
        let (topic, value) = l.split_once(' ').unwrap();
        let i: u32 = value.parse().unwrap();
        assert_eq!(topic, format!("t/bulk/s{}", i % 10));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_endpoint_describes_the_plugs_to_a_read_token_only() {
    let (m, port) = (Mosquitto::start(), free_port());
    let tiles = "map_tiles = \"https://tiles.example.org/osm/{z}/{x}/{y}.png\"\n\
                 map_attribution = \"© OpenStreetMap contributors\"\n";
    let d = Http::start(http().config(&config(&m, port, tiles)), port);
    let (st, v) = get(&d, "/api/v1/dashboard", READ).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["devices"].as_array().map(Vec::len), Some(2), "{v}");
    let plug2 = &v["devices"][1];
    assert_eq!(plug2["state_topic"], "iotitan/home/living/plug2/stat/POWER");
    assert_eq!(v["alerts_topic"], "iotitan/alerts/events");
    // The location view's map tiles, and the page's policy letting images come from their
    // server's origin, and from nowhere else.
    assert_eq!(
        v["map_tiles"],
        "https://tiles.example.org/osm/{z}/{x}/{y}.png"
    );
    assert_eq!(v["map_attribution"], "© OpenStreetMap contributors");
    let page = reqwest::get(format!("{}/", d.base)).await.unwrap();
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert_eq!(
        csp,
        iotitan::http::ui::CSP.replace(
            "img-src 'self' data:",
            "img-src 'self' data: https://tiles.example.org"
        )
    );
    let (st, v) = get(&d, "/api/v1/dashboard", INGEST).await;
    assert_eq!((st, code(&v)), (StatusCode::FORBIDDEN, "forbidden"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stalls_is_answered_408_and_let_go() {
    let s = setup("", false);
    let d = &s.d;
    // Headers complete, body stalled: 408 in the usual shape once request_timeout (1 s)
    // passed, and the connection closed.
    let head = format!(
        "POST /api/v1/readings HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {INGEST}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"topic\""
    );
    let t0 = Instant::now();
    let answer = exchange(d, &head, &[]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"error\":\"request_timeout\""), "{answer}");
    assert!(
        t0.elapsed() < TIMEOUT,
        "closed by the server, not by our read timeout"
    );
    // Headers stalled half way: the connection is closed too.
    let addr = d.base.trim_start_matches("http://");
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(TIMEOUT)).unwrap();
    c.write_all(b"POST /api/v1/readings HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let t0 = Instant::now();
    let _ = read_all(&mut c);
    assert!(
        t0.elapsed() < TIMEOUT,
        "the server kept a half-sent request open"
    );
    // And the daemon serves others all along.
    let (st, _) = post(
        d,
        "/api/v1/readings",
        Some(INGEST),
        r#"{"topic": "t/a", "value": 1}"#,
    )
    .await;
    assert_eq!(st, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_stopped_during_a_batch_answers_503_with_what_was_acknowledged() {
    let mut s = setup("max_body = \"16MiB\"", true);
    let n = 200_000u32;
    let body: Vec<Value> = (0..n)
        .map(|i| json!({"topic": format!("t/mid/s{}", i % 10), "value": i}))
        .collect();
    let body = Value::from(body).to_string();
    let url = s.d.url("/api/v1/readings");
    let request = tokio::spawn(async move {
        let res = client()
            .post(url)
            .bearer_auth(INGEST)
            .body(body)
            .send()
            .await
            .expect("request");
        (res.status(), res.json::<Value>().await.expect("JSON"))
    });
    // Stop the broker once the batch is under way.
    let r = s.r.take().unwrap();
    assert!(
        wait_until(TIMEOUT, || records(&r, "t/mid/").len() >= 1000),
        "the batch did not start"
    );
    s.m.stop();
    let (st, v) = request.await.unwrap();
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(code(&v), "broker_unavailable");
    let acked = v["published"].as_u64().expect("published") as u32;
    let unconfirmed = v["unconfirmed"].as_u64().expect("unconfirmed") as u32;
    assert!(acked >= 1000 && acked < n, "{acked}");
    assert!(
        v["message"].as_str().unwrap().contains(&acked.to_string()),
        "{v}"
    );

    // With the broker back, the logger gets what the broker kept for it, and a reading sent
    // after the restart (once the daemon is connected again) is recorded too.
    s.m.restart();
    let mut v = Value::Null;
    let ok = wait_until(TIMEOUT, || {
        let rt = tokio::runtime::Handle::current();
        let d = &s.d;
        v = tokio::task::block_in_place(|| {
            rt.block_on(post(
                d,
                "/api/v1/readings",
                Some(INGEST),
                r#"{"topic": "t/mid/end", "value": 1}"#,
            ))
        })
        .1;
        v["published"] == 1
    });
    assert!(ok, "the daemon did not reconnect: {v}");
    assert!(
        wait_until(TIMEOUT, || !records(&r, "t/mid/end").is_empty()),
        "the reading after the restart was not recorded"
    );
    // MQTT orders messages per topic only: what the broker redelivers from before its restart
    // may come after the reading on t/mid/end, so wait for the acknowledged ones themselves.
    let distinct = || {
        let mut values: Vec<u32> = records(&r, "t/mid/s")
            .iter()
            .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
            .collect();
        values.sort_unstable();
        values.dedup();
        values
    };
    wait_until(TIMEOUT, || distinct().len() as u32 >= acked);
    let values = distinct();
    // Every acknowledged one, and nothing beyond those that were on the wire when the broker
    // went (MQTT cannot tell whether those arrived; the answer says how many there were).
    // Readings are published and acknowledged in order, so the records are the first ones.
    // (QoS 1: a record may be written twice, never lost.)
    let n = values.len() as u32;
    assert!(
        n >= acked && n <= acked + unconfirmed,
        "{n} records, {acked} acknowledged, {unconfirmed} unconfirmed"
    );
    assert_eq!(values, (0..n).collect::<Vec<_>>());
    s.r = Some(r);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_are_acknowledged_by_the_plug_or_time_out() {
    // plug1 answers within milliseconds; 3 s leaves room for a loaded machine, and plug2's
    // answer never comes however long the wait.
    let s = setup("command_timeout = \"3s\"", false);
    let d = &s.d;
    let sub = everything(&s.m);
    // Two simulated plugs: plug1 answers its commands, plug2 never does.
    let sim = Program::new("iotitan-sim")
        .args([
            "--broker",
            &s.m.addr(),
            "fleet",
            "--devices",
            "0",
            "--rooms",
            "1",
        ])
        .args(["--plugs", "2", "--mute-plugs", "1"])
        .start();
    // Each plug announces its state once it listens.
    sub.wait_for(TIMEOUT, |l| l == "iotitan/home/living/plug1/stat/POWER OFF");

    let (st, v) = post(
        d,
        "/api/v1/commands",
        Some(OPS),
        r#"{"device": "plug1", "payload": "ON"}"#,
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["topic"], "iotitan/home/living/plug1/cmnd/POWER");
    assert_eq!(v["payload"], "ON");
    assert_eq!(
        v["acked_by"]["topic"],
        "iotitan/home/living/plug1/stat/POWER"
    );
    assert_eq!(v["acked_by"]["payload"], "ON");
    assert!(v["acked_by"]["after_ms"].as_u64().is_some(), "{v}");

    let body = json!({
        "topic": "iotitan/home/living/plug1/cmnd/POWER",
        "payload": "OFF",
        "await": {"topic": "iotitan/home/living/plug1/stat/POWER", "payload": "OFF", "timeout": "5s"},
    });
    let (st, v) = post(d, "/api/v1/commands", Some(OPS), &body.to_string()).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["acked_by"]["payload"], "OFF");

    let (st, v) = post(
        d,
        "/api/v1/commands",
        Some(OPS),
        r#"{"device": "plug2", "payload": "ON"}"#,
    )
    .await;
    assert_eq!(
        (st, code(&v)),
        (StatusCode::GATEWAY_TIMEOUT, "no_acknowledgement"),
        "{v}"
    );

    let (st, v) = post(
        d,
        "/api/v1/commands",
        Some(OPS),
        r#"{"device": "plug9", "payload": "ON"}"#,
    )
    .await;
    assert_eq!((st, code(&v)), (StatusCode::NOT_FOUND, "unknown_device"));
    let (st, v) = post(
        d,
        "/api/v1/commands",
        Some(OPS),
        r#"{"topic": "t/x", "payload": "1"}"#,
    )
    .await;
    assert_eq!((st, code(&v)), (StatusCode::FORBIDDEN, "forbidden"));
    // Without "await": answered once the broker has it.
    let (st, v) = post(
        d,
        "/api/v1/commands",
        Some(OPS),
        r#"{"topic": "iotitan/x/cmd", "payload": 1}"#,
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["acked_by"], Value::Null);
    sub.wait_for(TIMEOUT, |l| l == "iotitan/x/cmd 1");
    drop(sim);
}

/// A command whose answer topic the broker refuses to subscribe to is not sent: its answer
/// could never be seen, and the client is told the command was not published.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_answer_subscription_answers_503_and_sends_nothing() {
    let s = setup_with(Mosquitto::start_refusing("iotitan/refused/#"), "", false);
    let d = &s.d;
    let sub = everything(&s.m);
    let body = json!({
        "topic": "iotitan/x/cmd",
        "payload": "refused",
        "await": {"topic": "iotitan/refused/answer", "timeout": "5s"},
    });
    let (st, v) = post(d, "/api/v1/commands", Some(OPS), &body.to_string()).await;
    assert_eq!(
        (st, code(&v)),
        (StatusCode::SERVICE_UNAVAILABLE, "broker_unavailable"),
        "{v}"
    );
    d.wait_log("the broker refused a subscription");
    // The connection is still good: a command without "await" goes out, and only it.
    let (st, v) = post(
        d,
        "/api/v1/commands",
        Some(OPS),
        r#"{"topic": "iotitan/x/cmd", "payload": "sent"}"#,
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let before = lines_until(&sub, "iotitan/x/cmd sent");
    assert!(before.is_empty(), "{before:#?}");
}

#[test]
fn tokens_come_from_outside_the_config_and_are_never_shown() {
    let m = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = write_config(
        dir.path(),
        &format!(
            "{}{}",
            m.mqtt_toml("cc"),
            http_toml(port, "request_timeout = \"1s\"\n", TOKENS)
        ),
    );
    let file = dir.path().join("ops.token");
    std::fs::write(&file, format!("{OPS}\n")).unwrap();
    let run = |env: &[(&str, &str)]| {
        Command::new(HTTP)
            .arg("--config")
            .arg(&cfg)
            .arg("check-config")
            .env_remove("IOTITAN_HTTP_TOKEN_PHONE")
            .env_remove("IOTITAN_HTTP_TOKEN_READER")
            .env_remove("IOTITAN_HTTP_TOKEN_OPS")
            .env_remove("IOTITAN_HTTP_TOKEN_SLOW")
            .env_remove("IOTITAN_HTTP_TOKEN_COLLECT")
            .env_remove("CREDENTIALS_DIRECTORY")
            .envs(env.iter().copied())
            .output()
            .unwrap()
    };
    let creds = dir.path().join("creds");
    std::fs::create_dir(&creds).unwrap();
    std::fs::write(creds.join("iotitan_http-reader.token"), READ).unwrap();
    std::fs::write(&file, OPS).unwrap();
    std::fs::write(
        &cfg,
        std::fs::read_to_string(&cfg).unwrap().replace(
            "name = \"ops\"\n",
            &format!("name = \"ops\"\ntoken_file = \"{}\"\n", file.display()),
        ),
    )
    .unwrap();
    let out = run(&[
        ("IOTITAN_HTTP_TOKEN_PHONE", INGEST),
        ("IOTITAN_HTTP_TOKEN_SLOW", SLOW),
        ("IOTITAN_HTTP_TOKEN_COLLECT", COLLECT),
        ("CREDENTIALS_DIRECTORY", creds.to_str().unwrap()),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout
            .contains("http token phone: value from environment variable IOTITAN_HTTP_TOKEN_PHONE"),
        "{stdout}"
    );
    assert!(
        stdout.contains("http token reader: value from systemd credential"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "http token ops: value from file {}",
            file.display()
        )),
        "{stdout}"
    );
    for t in [INGEST, READ, OPS, SLOW] {
        assert!(!stdout.contains(t), "{stdout}");
    }
    // A token without a value: exit 78, naming where it was looked for.
    let out = run(&[("IOTITAN_HTTP_TOKEN_PHONE", INGEST)]);
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("IOTITAN_HTTP_TOKEN_READER") && err.contains("http-reader.token"),
        "{err}"
    );
    // The daemon refuses to start the same way.
    let out = Command::new(HTTP)
        .arg("--config")
        .arg(&cfg)
        .env_remove("IOTITAN_HTTP_TOKEN_READER")
        .env_remove("CREDENTIALS_DIRECTORY")
        .env("IOTITAN_HTTP_TOKEN_PHONE", INGEST)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(78),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tls_cert_and_key_it_serves_https() {
    let m = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    // A self-signed server certificate (not a CA: rustls refuses a CA as the server's).
    let conf = dir.path().join("req.conf");
    std::fs::write(
        &conf,
        "[req]\ndistinguished_name = dn\nx509_extensions = leaf\nprompt = no\n\
         [dn]\nCN = localhost\n\
         [leaf]\nbasicConstraints = critical, CA:FALSE\nsubjectAltName = IP:127.0.0.1\n\
         keyUsage = digitalSignature, keyEncipherment\nextendedKeyUsage = serverAuth\n",
    )
    .unwrap();
    let st = Command::new(require("openssl", "openssl"))
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-config",
        ])
        .arg(&conf)
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "openssl req failed");
    let port = free_port();
    let cfg = write_config(
        dir.path(),
        &format!(
            "{}{}",
            m.mqtt_toml("tls"),
            http_toml(
                port,
                &format!(
                    "request_timeout = \"1s\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
                    cert.display(),
                    key.display()
                ),
                TOKENS
            )
        ),
    );
    let d = Http::start(http().config_file(&cfg), port);
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&cert).unwrap()).unwrap();
    let https = reqwest::Client::builder()
        .add_root_certificate(ca)
        .timeout(TIMEOUT)
        .build()
        .unwrap();
    let res = https
        .post(format!("https://127.0.0.1:{port}/api/v1/readings"))
        .bearer_auth(INGEST)
        .body(r#"{"topic": "t/tls", "value": 1}"#)
        .send()
        .await
        .expect("an HTTPS request");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap()["published"], 1);
    // Plain HTTP on the TLS port gets no answer.
    let plain = client().get(d.url("/healthz")).send().await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
}

/// SIGTERM ends the live streams of the dashboard at once: a browser that would listen forever
/// does not hold the daemon for its grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_live_streams_instead_of_waiting_for_them() {
    let mut s = setup("", false);
    let mut live = client()
        .get(s.d.url("/api/v1/live"))
        .bearer_auth(READ)
        .send()
        .await
        .expect("GET /api/v1/live");
    assert_eq!(live.status(), StatusCode::OK);
    s.d.wait_log("live readings: subscribed");
    s.d.signal("-TERM");
    // The stream ends (a keep-alive comment may come first)...
    let ended = tokio::time::timeout(TIMEOUT, async {
        while let Ok(Some(_)) = live.chunk().await {}
    })
    .await;
    assert!(ended.is_ok(), "the live stream outlived SIGTERM");
    // ...and the daemon exits cleanly, without waiting out its grace period.
    let child = &mut s.d.child;
    let status = tokio::task::block_in_place(|| wait_exit(child, TIMEOUT)).expect("still running");
    assert!(status.success(), "{status:?}");
    let log = s.d.log();
    assert!(!log.contains("still under way"), "{log}");
    assert!(log.contains("iotitan-http stopped"), "{log}");
}

/// OwnTracks in MQTT mode publishes its JSON to the broker: the dashboard's live stream never
/// shows a location inside a private area (the rest of the message, yes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_stream_withholds_a_private_location() {
    let s = setup("", false);
    let mut live = client()
        .get(s.d.url("/api/v1/live"))
        .bearer_auth(READ)
        .send()
        .await
        .expect("GET /api/v1/live");
    assert_eq!(live.status(), StatusCode::OK);
    s.d.wait_log("live readings: subscribed");
    let msgs: Vec<(String, Vec<u8>)> = vec![
        (
            "owntracks/jane/phone".into(),
            br#"{"_type":"location","lat":-34.92,"lon":138.6,"batt":87,"tid":"jn"}"#.to_vec(),
        ),
        ("t/end".into(), b"0".to_vec()),
    ];
    let _p = Publisher::start(s.m.port, &format!("live{}", free_port()), msgs, 1000, 1);
    let mut text = String::new();
    let got = tokio::time::timeout(TIMEOUT, async {
        while !text.contains("t/end") {
            match live.chunk().await {
                Ok(Some(c)) => text.push_str(&String::from_utf8_lossy(&c)),
                _ => break,
            }
        }
    })
    .await;
    assert!(got.is_ok() && text.contains("t/end"), "{text}");
    let event = text
        .lines()
        .find(|l| l.contains("owntracks/jane/phone"))
        .unwrap_or_else(|| panic!("no OwnTracks event: {text}"));
    assert!(
        event.contains("_withheld") && event.contains("batt"),
        "{event}"
    );
    assert!(
        !event.contains("-34.92") && !event.contains("138.6,"),
        "{event}"
    );
}
