//! Ingest throughput and latency of `iotitan-http`: single-reading POSTs over keep-alive
//! connections, each answered only after the broker's PUBACK, and proof that every reading
//! answered as published became a syslog record.
//!
//! `cargo bench --bench http_ingest [-- --secs 10 --conns 16]`
//!
//! Starts a private mosquitto (`set_tcp_nodelay true`), rsyslogd, the release
//! `iotitan-logger` and the release `iotitan-http`, then runs `--conns` clients (tokio tasks,
//! one keep-alive connection each) that POST `{"topic": "bench/s<k>", "value": <n>}` back to
//! back for `--secs`. Latency is from sending a request to having its answer. At the end it
//! waits for the logger to record every published reading and prints requests/s, p50/p99/max,
//! readings lost (answered 200 but not in syslog), and the daemon's RSS (VmRSS, VmHWM) and CPU.
//!
//! Not a criterion bench: what is measured is a separate process behind a broker.

#[path = "../tests/common/mod.rs"]
mod common;

use common::*;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const TOKEN: &str = "bench-token-0123456789abcdef";

struct Args {
    secs: u64,
    conns: usize,
}

fn args() -> Args {
    let mut a = Args {
        secs: 10,
        conns: 16,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut num = |what: &str| -> u64 {
            it.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{what} needs a number"))
        };
        match k.as_str() {
            "--secs" => a.secs = num("--secs"),
            "--conns" => a.conns = num("--conns") as usize,
            _ => {} // cargo passes --bench
        }
    }
    a
}

/// A child process stopped (SIGTERM) on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

fn proc_status(pid: u32, name: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// CPU time (user + system) a process used so far.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let f: Vec<u64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let ticks = f.get(11).unwrap_or(&0) + f.get(12).unwrap_or(&0);
    Duration::from_secs_f64(ticks as f64 / 100.0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let a = args();
    let m = Mosquitto::start_with("set_tcp_nodelay true");
    let r = Rsyslogd::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let cfg = write_config(
        dir.path(),
        &format!(
            "{}[syslog]\ntarget = \"unix:{}\"\n[http]\nlisten = \"127.0.0.1:{port}\"\n\
             [[http.token]]\nname = \"bench\"\nscopes = [\"ingest\"]\n",
            m.mqtt_toml("bench"),
            r.socket.display()
        ),
    );
    let _logger = Proc(
        Command::new(env!("CARGO_BIN_EXE_iotitan-logger"))
            .arg("--config")
            .arg(&cfg)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start iotitan-logger"),
    );
    assert!(
        wait_until(TIMEOUT, || {
            m.publish(&["-t", "probe/up", "-m", "1", "-q", "1"]);
            r.lines().iter().any(|l| l.contains("probe/up 1"))
        }),
        "the logger never wrote a probe record"
    );
    let log = dir.path().join("http.log");
    let http = Proc(
        Command::new(env!("CARGO_BIN_EXE_iotitan-http"))
            .arg("--config")
            .arg(&cfg)
            .env("RUST_LOG", "info")
            .env("IOTITAN_HTTP_TOKEN_BENCH", TOKEN)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start iotitan-http"),
    );
    let pid = http.0.id();
    assert!(
        wait_until(TIMEOUT, || std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("ready:")),
        "iotitan-http did not become ready"
    );
    let url = format!("http://127.0.0.1:{port}/api/v1/readings");
    let stop = Arc::new(AtomicBool::new(false));
    let cpu0 = cpu_time(pid);
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..a.conns {
        let (url, stop) = (url.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            // One client per task: one keep-alive connection each.
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .tcp_nodelay(true)
                .build()
                .expect("client");
            let mut lat = Vec::new();
            let mut failed = 0u64;
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let body = format!(
                    "{{\"topic\": \"bench/s{}\", \"value\": {}}}",
                    c % 10,
                    (c as u64) << 32 | n
                );
                n += 1;
                let t = Instant::now();
                let res = client
                    .post(&url)
                    .bearer_auth(TOKEN)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                match res {
                    Ok(r) if r.status() == 200 => {
                        let _ = r.bytes().await;
                        lat.push(t.elapsed());
                    }
                    _ => failed += 1,
                }
            }
            (lat, failed)
        }));
    }
    tokio::time::sleep(Duration::from_secs(a.secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut lat = Vec::new();
    let mut failed = 0;
    for t in tasks {
        let (l, f) = t.await.expect("client task");
        lat.extend(l);
        failed += f;
    }
    let elapsed = t0.elapsed();
    let cpu = cpu_time(pid) - cpu0;
    let (rss, hwm) = (proc_status(pid, "VmRSS:"), proc_status(pid, "VmHWM:"));
    lat.sort_unstable();
    let ok = lat.len();
    // Every reading answered as published must become a record.
    let count = || {
        let mut v: Vec<String> = r
            .lines()
            .into_iter()
            .filter_map(|l| syslog_msg(&l, "iotitan-logger").map(str::to_owned))
            .filter(|m| m.starts_with("bench/s"))
            .collect();
        v.sort_unstable();
        v.dedup();
        v.len()
    };
    wait_until(Duration::from_secs(60), || count() >= ok);
    let recorded = count();
    println!(
        "iotitan-http ingest, {} keep-alive connections, {:.1} s: {ok} readings answered 200 \
         ({:.0} req/s), {failed} failed",
        a.conns,
        elapsed.as_secs_f64(),
        ok as f64 / elapsed.as_secs_f64()
    );
    println!(
        "latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(&lat, 0.5).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
        lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    println!(
        "recorded in syslog: {recorded} of {ok} (lost {})",
        ok.saturating_sub(recorded)
    );
    println!(
        "iotitan-http: RSS {:.1} MiB (peak {:.1} MiB), CPU {:.0} % of a core ({:.1} µs/request)",
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0,
        100.0 * cpu.as_secs_f64() / elapsed.as_secs_f64(),
        cpu.as_secs_f64() * 1e6 / ok.max(1) as f64
    );
    drop(http);
}
