//! The bodies of the fuzz targets (`fuzz/`, cargo-fuzz on nightly), one function per target
//! taking the fuzzer's bytes. They live here, in the library, so that the fuzz targets and
//! the stable test that replays the committed corpus (`tests/fuzz_corpus.rs`) run the same
//! code: what fuzzing found stays guarded by `cargo test`. See FUZZING.md.
//!
//! Each function feeds its input where outside bytes enter the programs and checks what must
//! hold whatever the input: no panic (the harness reports one), and where two paths must agree
//! or a result must read back, that they do (an `assert!`, which the harness reports too).

use crate::bridge::batch::{Batcher, Delivery, Limits, Value};
use crate::config::Config;
use crate::http::reading::{self, Rules};
use crate::payload::{Extractor, FieldPath, JsonRule};
use crate::privacy::PrivateAreas;
use crate::record;
use crate::syslog::clock::{Ambiguity, Clock};
use crate::syslog::line;
use crate::topic::Filters;
use chrono::{DateTime, Utc};
use std::time::{Duration, Instant};

/// A fixed "now" for the targets that need a clock, so that a replay does what the run did.
fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_795_330_800, 0).unwrap_or_default() // 2026-11-22T07:00:00Z
}

/// `record::decode` on any line, and `record::encode` → `decode` on any topic and payload.
///
/// The first byte picks the payload size limit, the second how many of the rest are the
/// topic: the rest is the payload. The whole input is also decoded as a line.
pub fn record(data: &[u8]) {
    if let Ok(r) = record::decode(data) {
        // What decodes encodes back to a line that decodes to the same bytes.
        let mut line = Vec::new();
        record::encode(&r.topic, &r.payload, usize::MAX, &mut line);
        let again = record::decode(&line).expect("a re-encoded record decodes");
        assert_eq!(again.topic, r.topic);
        assert_eq!(again.payload, r.payload);
        assert_eq!(again.cut_from, None);
    }
    let [max, topic_len, rest @ ..] = data else {
        return;
    };
    let max = match *max {
        255 => usize::MAX,
        m => usize::from(m) * 4,
    };
    let (topic, payload) = rest.split_at(usize::from(*topic_len).min(rest.len()));
    let mut line = Vec::new();
    record::encode(topic, payload, max, &mut line);
    assert!(
        !line.iter().any(|&b| b == b'\n' || b == b'\r' || b == 0),
        "a record is one line"
    );
    assert!(std::str::from_utf8(&line).is_ok(), "a record is UTF-8");
    let r = record::decode(&line).expect("an encoded record decodes");
    assert_eq!(r.topic.as_ref(), topic);
    assert!(payload.starts_with(&r.payload));
    match r.cut_from {
        None => assert_eq!(r.payload.as_ref(), payload),
        Some(n) => assert_eq!(n, payload.len() as u64),
    }
}

/// References the syslog target reads lines against: an ordinary day, just after DST ends
/// and starts (in the zone of `TZ`), and just after New Year (December lines are last year's).
const REFERENCES: [i64; 4] = [
    1_795_330_800, // 2026-11-22T07:00:00Z
    1_792_972_800, // 2026-10-26T00:00:00Z
    1_774_828_800, // 2026-03-30T00:00:00Z
    1_798_763_400, // 2027-01-01T00:30:00Z
];

/// The syslog line parser: every line of the input (traditional, RFC 3339, RFC 5424,
/// `journalctl -o json`) through [`line::parse`] and [`line::parse_fast`] with clocks in the
/// local zone (`TZ`), which must agree line by line. The reference time is picked by the
/// input's length, so seeds stay plain log lines.
pub fn syslog_line(data: &[u8]) {
    let reference =
        DateTime::from_timestamp(REFERENCES[data.len() % REFERENCES.len()], 0).unwrap_or_default();
    let zone = crate::time::local();
    let mut slow = Clock::new(zone, reference, Ambiguity::Stream);
    let mut fast = Clock::new(zone, reference, Ambiguity::Stream);
    let mut seek = Clock::new(zone, reference, Ambiguity::Seek);
    for l in data.split(|&b| b == b'\n') {
        let a = line::parse(l, &mut slow);
        let b = line::parse_fast(l, &mut fast);
        match (&a, &b) {
            (Ok(a), Ok(b)) => {
                assert_eq!(a.time.timestamp_micros(), b.micros, "time of {l:?}");
                assert_eq!(a.ident, b.ident);
                assert_eq!(a.msg, b.msg);
            }
            (Err(a), Err(b)) => assert_eq!(a, b),
            _ => panic!("parse and parse_fast disagree on {l:?}: {a:?} vs {b:?}"),
        }
        let _ = line::time_of(l, &mut seek);
        let _ = line::rfc3339(l);
    }
}

/// The extractor the payload target uses: Tasmota and zigbee2mqtt rules as in the example
/// config, plus an array index and a deeper path.
fn extractor() -> Extractor {
    let rule = |topics: &[&str], fields: &[&str]| JsonRule {
        topics: Filters::of(topics),
        fields: fields
            .iter()
            .filter_map(|f| FieldPath::new(f).ok())
            .collect(),
    };
    Extractor::new(vec![
        rule(
            &["tele/+/SENSOR"],
            &["AM2301.Temperature", "AM2301.Humidity"],
        ),
        rule(&["zigbee2mqtt/+"], &["temperature", "humidity", "state"]),
        rule(&["zigbee2mqtt/#"], &["a.0.b", "linkquality"]),
    ])
}

/// Payload extraction with a fixed set of `[[payload.json]]` rules: the payload on a JSON
/// topic and on a plain one. [`payload::short_decimal`](crate::payload::short_decimal), the
/// fast path, must give exactly what the standard parser gives.
pub fn payload(data: &[u8]) {
    let x = extractor();
    let mut out = Vec::new();
    for topic in [
        "tele/kitchen/SENSOR",
        "zigbee2mqtt/bedroom",
        "home/plain/temperature",
    ] {
        out.clear();
        match x.readings(topic, data, &mut out) {
            Ok(()) => {
                assert!(!out.is_empty());
                assert!(out.iter().all(|r| r.value.is_finite()));
            }
            Err(_) => assert!(out.is_empty()),
        }
    }
    if let Some(v) = crate::payload::short_decimal(data) {
        let text = std::str::from_utf8(data).expect("a short decimal is ASCII");
        let std: f64 = text.parse().expect("a short decimal parses");
        assert_eq!(v.to_bits(), std.to_bits(), "short_decimal({text:?})");
    }
}

/// Loading a bridge spool file as it may be after a power loss (torn, damaged, or any
/// bytes): parse it, rebuild the channel's state, and carry on (push, send, fail, deliver).
/// A snapshot of the rebuilt state must rebuild the same state, and every line the spool
/// accepted must write back as a line it accepts.
pub fn spool(data: &[u8]) {
    let loaded = crate::bridge::spool::parse(data);
    for c in &loaded.changes {
        let line = serde_json::to_vec(c).expect("a change serializes");
        let back: crate::bridge::batch::Change =
            serde_json::from_slice(&line).expect("a written change reads back");
        assert_eq!(&back, c);
    }
    let limits = Limits {
        min_interval: Duration::from_secs(15),
        max_interval: Duration::from_secs(600),
        max_batch: 4,
        max_spool: 16,
    };
    let (t, wall) = (Instant::now(), now());
    let mut b = Batcher::new(limits, [1, 2, 3]);
    b.restore(loaded.changes, t, wall);
    let snapshot = b.snapshot();
    let mut again = Batcher::new(limits, [1, 2, 3]);
    again.restore(snapshot.clone(), t, wall);
    assert_eq!(again.snapshot(), snapshot);
    // Carry on from what was loaded.
    let later = |s: u64| (t + Duration::from_secs(s), wall + Duration::from_secs(s));
    let (t1, w1) = later(1);
    b.push(Value::Field(1, 1.5), w1, t1);
    b.push(Value::Status("ok".into()), w1, t1);
    let (t2, w2) = later(700);
    if b.start(t2, w2).is_some() {
        b.finish(Delivery::Failed, t2, w2, 0.5);
    }
    let (t3, w3) = later(2000);
    if b.start(t3, w3).is_some() {
        b.finish(Delivery::Delivered, t3, w3, 0.5);
    }
    let _ = b.take_changes();
}

/// A journal file as a crash, a disk error or anyone may leave it: its header, the
/// identifier's DATA object, entry arrays (bisected by a time the first bytes pick) and each
/// entry's message. An error or the entries, never a panic, a hang or a read out of bounds;
/// the entries from a time on are the whole list's from that time on when the entries' times
/// rise (the bisection's premise; in a file not flagged online, where the end of what was
/// written may look different).
pub fn journal_file(data: &[u8]) {
    use crate::syslog::source::journal::read_bytes;
    let Ok(all) = read_bytes(data, b"iotitan", 0) else {
        return;
    };
    let from = data.get(200..208).map_or(0, |b| {
        u64::from_le_bytes(b.try_into().unwrap_or_default()) % 16_000
    });
    let later = read_bytes(data, b"iotitan", from);
    if data.get(16) != Some(&1)
        && all.windows(2).all(|w| w[0].0 <= w[1].0)
        && let Ok(later) = later
    {
        let want: Vec<_> = all.iter().filter(|(t, _)| *t >= from).cloned().collect();
        assert_eq!(later, want, "entries from {from}");
    }
}

/// Config parsing: any text gives a config or an error with a place, never a panic; a config
/// that parses prints (`check-config`) as TOML that parses again.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse(text, "fuzz.toml") {
        Ok(cfg) => {
            let printed = cfg.to_toml();
            if let Err(e) = Config::parse(&printed, "printed") {
                panic!("the printed config does not parse: {e}\n{printed}");
            }
            let _ = cfg.payload.extractor();
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// `POST /api/v1/readings` bodies (JSON and `text/plain`), the Telegraf, OwnTracks and
/// GPSLogger forms (the data as a body, and as GPSLogger's query string) and the read API's
/// query strings
/// (every endpoint's parameters, in the local zone `TZ`). Every message a body gives has a
/// topic one can publish to.
pub fn http(data: &[u8]) {
    // The private area device forms are checked against.
    let areas = PrivateAreas::example_home();
    let rules = Rules {
        prefix: "phone",
        areas: &areas,
        now: now().timestamp() as f64,
        disorder: Duration::from_secs(60),
    };
    let gpslogger = crate::http::gpslogger::pairs(std::str::from_utf8(data).ok(), data, false)
        .and_then(|pairs| crate::http::gpslogger::parse(&pairs, &rules));
    for batch in [
        reading::parse_json(data, &rules),
        reading::parse_text(data),
        crate::http::telegraf::parse(data, &rules),
        crate::http::owntracks::parse(data, "user", "device", &rules),
        gpslogger,
    ]
    .into_iter()
    .flatten()
    {
        for m in &batch.messages {
            assert!(crate::topic::check_publish_topic(&m.topic).is_ok(), "{m:?}");
        }
    }
    if let Ok(query) = std::str::from_utf8(data) {
        let _ = crate::history::api::check_params(query, now(), &crate::time::local());
    }
}
