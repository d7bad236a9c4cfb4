//! The API document against the real server: Schemathesis (from PyPI, in the `.venv` that
//! `.ci/run` makes) generates requests for every operation of `/api/v1/openapi.json` — valid
//! ones and ones the schemas refuse — sends them to the real `iotitan-http` with a real
//! mosquitto behind it, and checks every answer: no 5xx but the ones an operation documents
//! for its situation, every status documented, every body and header as documented.
//!
//! And the document in docs/ is the one the server serves (`IOTITAN_BLESS=1` writes it).

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::Command;

/// One token with every scope and no topic limit: the fuzzer's requests are refused for
/// what they hold, not for whose they are (tests/http.rs covers the scopes).
const ALL: &str = "all-0123456789abcdef012345678";
const TOKENS: &[HttpToken] = &[HttpToken::new("all", ALL, &["ingest", "read", "command"])];

/// Schemathesis, from the virtual environment `.ci/run` makes (or `SCHEMATHESIS`).
fn schemathesis() -> PathBuf {
    let path = std::env::var_os("SCHEMATHESIS").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/schemathesis"),
        PathBuf::from,
    );
    assert!(
        path.exists(),
        "{} is missing: run .ci/run, which makes .venv with Schemathesis from PyPI \
         (.ci/requirements.txt), or set SCHEMATHESIS",
        path.display()
    );
    path
}

/// A records file with a few series (numbers, states, a meter) over the last hours, for the
/// read operations to have something to answer.
fn records(dir: &Path) -> PathBuf {
    use std::io::Write;
    let file = dir.join("records");
    let mut w = std::fs::File::create(&file).unwrap();
    let now = chrono::Utc::now();
    for i in 0..360i64 {
        let t = now - chrono::Duration::seconds(60 * i);
        let t = t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        for rec in [
            format!("iotitan/home/kitchen/dht22/temperature {}", 20 + i % 7),
            format!("office/floor1/room3/plug7/power {}", 100 + i % 13),
            format!("office/floor1/room3/plug7/energy {}", 1000 - i),
            format!(
                "iotitan/home/hall/status/LWT {}",
                ["online", "offline"][(i % 2) as usize]
            ),
        ] {
            writeln!(w, "{t} testhost iotitan-logger[4242]: {rec}").unwrap();
        }
    }
    file
}

/// A real mosquitto and `iotitan-http` on it with [`TOKENS`], `extra(dir)` added to its config
/// (commands nobody answers time out after 100 ms: the fuzzer's 504s come quickly).
fn daemon(extra: impl Fn(&Path) -> String) -> (Mosquitto, tempfile::TempDir, Http) {
    let m = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = write_config(
        dir.path(),
        &format!(
            "{}{}\n{}",
            m.mqtt_toml(&format!("o{port}")),
            http_toml(port, "command_timeout = \"100ms\"\n", TOKENS),
            extra(dir.path())
        ),
    );
    let http = Http::start(
        Program::new("iotitan-http")
            .config_file(&cfg)
            .http_tokens(TOKENS),
        port,
    );
    (m, dir, http)
}

#[test]
fn every_answer_of_the_real_server_is_the_documented_one() {
    let tool = schemathesis();
    let (m, dir, http) = daemon(|dir| {
        format!(
            "[syslog]\nsources = [\"{}\"]\n\
             [[calendar]]\nname = \"office\"\nhours = [\"Mon-Fri 07:00-20:00\"]\n",
            records(dir).display()
        )
    });
    let port = http.base.rsplit(':').next().unwrap_or_default().to_owned();
    // Readings for the live stream to pass on while the fuzzer listens.
    let readings = (0..100_000)
        .map(|i| {
            (
                "t/live/temperature".to_owned(),
                format!("{}", i % 30).into_bytes(),
            )
        })
        .collect();
    let _publisher = Publisher::start(m.port, &format!("p{port}"), readings, 200, 0);
    let report = std::env::var_os("SCHEMATHESIS_REPORT")
        .map_or_else(|| dir.path().join("report.xml"), PathBuf::from);
    let out = Command::new(&tool)
        .current_dir(dir.path())
        .arg("--no-color")
        .args([
            "--config-file",
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/schemathesis.toml"),
        ])
        .args(["run", &format!("{}/api/v1/openapi.json", http.base)])
        .args(["--header", &format!("Authorization: Bearer {ALL}")])
        .args(["--report", "junit", "--report-junit-path"])
        .arg(&report)
        .args(["--wait-for-schema", "10"])
        .output()
        .unwrap();
    // A failing case can be a megabyte of body: the log gets the start of each output.
    let cut = |b: &[u8]| String::from_utf8_lossy(&b[..b.len().min(64 * 1024)]).into_owned();
    let (stdout, stderr) = (cut(&out.stdout), cut(&out.stderr));
    println!("{stdout}");
    assert!(
        out.status.success(),
        "Schemathesis found answers that are not the documented ones:\n{stdout}\n{stderr}"
    );
    // Every operation was tried, with more than a handful of cases.
    let summary = stdout
        .lines()
        .skip_while(|l| !l.starts_with("Test cases:"))
        .find(|l| l.contains("generated"))
        .unwrap_or_default();
    let generated: u64 = summary
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(generated >= 500, "too few cases: {summary:?}");
    // Every operation of the document was selected and tested.
    let field = |name: &str| {
        stdout
            .lines()
            .skip_while(|l| !l.contains("API Operations"))
            .find_map(|l| l.trim().strip_prefix(name).map(str::trim))
            .unwrap_or_default()
            .to_owned()
    };
    let (selected, tested) = (field("Selected:"), field("Tested:"));
    let all = selected
        .split_once('/')
        .map(|(a, b)| (a.to_owned(), b.to_owned()));
    assert!(
        matches!(&all, Some((a, b)) if a == b && *a == tested && tested.parse::<u32>().is_ok_and(|n| n >= 15)),
        "selected {selected:?}, tested {tested:?}\n{stdout}"
    );
    drop(http);
}

/// docs/openapi.json is what the daemon serves: a change to a handler's description that
/// was not copied there fails here (`IOTITAN_BLESS=1 cargo test --test openapi` copies it).
#[test]
fn the_document_in_docs_is_the_served_one() {
    let (_m, _dir, http) = daemon(|_| String::new());
    let url = format!("{}/api/v1/openapi.json", http.base);
    let served = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async { reqwest::get(url).await?.text().await })
        .unwrap();
    let served: serde_json::Value = serde_json::from_str(&served).unwrap();
    assert_eq!(served["openapi"], "3.1.0");
    let pretty = serde_json::to_string_pretty(&served).unwrap() + "\n";
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.json");
    if std::env::var_os("IOTITAN_BLESS").is_some() {
        std::fs::write(&docs, &pretty).unwrap();
    }
    let kept = std::fs::read_to_string(&docs).unwrap_or_default();
    assert!(
        kept == pretty,
        "docs/openapi.json is not the document the daemon serves: run \
         IOTITAN_BLESS=1 cargo test --test openapi the_document_in_docs"
    );
}
