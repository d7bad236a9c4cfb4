//! Publish → alert latency of `iotitan-alerts` under load, and its memory.
//!
//! `cargo bench --bench alerts_latency [-- --rate 10000 --secs 20 --series 1000 --qos 0]`
//!
//! The private broker runs with `set_tcp_nodelay true` (set `BENCH_NAGLE=1` to leave
//! mosquitto's default, Nagle's algorithm on, and see what it costs).
//!
//! Starts a private mosquitto on a loopback port (or uses `--broker HOST:PORT`) and the
//! release `iotitan-alerts` with one rule over every series, then publishes `--rate`
//! readings per second (QoS 0, in range) spread over `--series` sensors. One message in 100
//! is a probe that moves one of 64 probe sensors across the limit, alternately up and down,
//! so each probe causes exactly one transition; the time from publishing the probe to
//! receiving its `_alert_hi` output is the latency (both hops through the broker included,
//! as a user sees it). At the end it prints p50/p99/max, the rate achieved, and the
//! daemon's RSS from /proc (VmRSS now, VmHWM peak).
//!
//! Not a criterion bench: what is measured is a separate process behind a broker.

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PROBES: usize = 64;
const PROBE_EVERY: u64 = 100;

struct Args {
    rate: u64,
    secs: u64,
    series: u64,
    qos: QoS,
    broker: Option<String>,
}

fn args() -> Args {
    let mut a = Args {
        rate: 10_000,
        secs: 20,
        series: 1_000,
        qos: QoS::AtMostOnce,
        broker: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut num = |what: &str| -> u64 {
            it.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{what} needs a number"))
        };
        match k.as_str() {
            "--rate" => a.rate = num("--rate"),
            "--secs" => a.secs = num("--secs"),
            "--series" => a.series = num("--series"),
            "--broker" => a.broker = it.next(),
            "--qos" => {
                a.qos = match num("--qos") {
                    0 => QoS::AtMostOnce,
                    1 => QoS::AtLeastOnce,
                    _ => panic!("--qos 0 or 1"),
                }
            }
            _ => {} // cargo passes --bench
        }
    }
    a
}

/// A child process killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn start_mosquitto(dir: &std::path::Path) -> (Proc, String, u16) {
    let port = free_port();
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n{}",
            if std::env::var_os("BENCH_NAGLE").is_some() {
                ""
            } else {
                "set_tcp_nodelay true\n"
            }
        ),
    )
    .expect("write mosquitto.conf");
    let child = Command::new("mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto is not installed (apt-get install mosquitto)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "mosquitto did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    (Proc(child), "127.0.0.1".into(), port)
}

fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// CPU time (user + system) a process used so far.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let f: Vec<u64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let ticks = f.get(11).unwrap_or(&0) + f.get(12).unwrap_or(&0);
    let hz: u64 = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100);
    Duration::from_secs_f64(ticks as f64 / hz as f64)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn probe_topic(k: usize) -> String {
    format!("bench/p{k}/t")
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let a = args();
    let dir = tempfile::tempdir().expect("tempdir");
    let (_broker, host, port) = match &a.broker {
        Some(b) => {
            let (h, p) = b.rsplit_once(':').expect("--broker HOST:PORT");
            (None, h.to_owned(), p.parse().expect("port"))
        }
        None => {
            let (p, h, port) = start_mosquitto(dir.path());
            (Some(p), h, port)
        }
    };
    let config = dir.path().join("iotitan.toml");
    std::fs::write(
        &config,
        format!(
            "[mqtt]\nhost = \"{host}\"\nport = {port}\nclient_id = \"bench\"\n\
             [alerts]\nevents_topic = \"bench/events\"\n\
             [[alerts.rule]]\nname = \"bench\"\ntopics = \"bench/+/t\"\nhigh = 50\n"
        ),
    )
    .expect("write config");
    let alerts = Proc(
        Command::new(env!("CARGO_BIN_EXE_iotitan-alerts"))
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start iotitan-alerts"),
    );
    let pid = alerts.0.id();

    let mut opts = MqttOptions::new("bench-load", host, port);
    opts.set_request_channel_capacity(100_000);
    opts.set_inflight(1000);
    opts.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = AsyncClient::new(opts, 100_000);
    let mut net = rumqttc::NetworkOptions::new();
    net.set_tcp_nodelay(true);
    eventloop.set_network_options(net);
    client
        .subscribe("bench/+/t_alert_hi", QoS::AtMostOnce)
        .await
        .expect("subscribe");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, bool, Instant)>();
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let now = Instant::now();
                    let k = p
                        .topic
                        .strip_prefix("bench/p")
                        .and_then(|t| t.strip_suffix("/t_alert_hi"))
                        .and_then(|k| k.parse().ok());
                    if let Some(k) = k {
                        let _ = tx.send((k, &p.payload[..] == b"on", now));
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    eprintln!("load client: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });

    // Warm-up: wait until the daemon answers a probe (it is connected and subscribed).
    let mut state = [false; PROBES];
    let warm = Instant::now();
    'warm: loop {
        assert!(
            warm.elapsed() < Duration::from_secs(30),
            "iotitan-alerts does not answer"
        );
        state[0] = !state[0];
        let v = if state[0] { "60" } else { "40" };
        client
            .publish(probe_topic(0), QoS::AtMostOnce, false, v)
            .await
            .expect("publish");
        let wait = tokio::time::sleep(Duration::from_millis(200));
        tokio::pin!(wait);
        loop {
            tokio::select! {
                _ = &mut wait => break,
                Some((0, on, _)) = rx.recv() => if on == state[0] { break 'warm },
            }
        }
    }
    // Leave probe 0 where the daemon has it, and start every probe off.
    for (k, s) in state.iter_mut().enumerate().skip(1) {
        *s = false;
        client
            .publish(probe_topic(k), QoS::AtMostOnce, false, "40")
            .await
            .expect("publish");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    while rx.try_recv().is_ok() {}

    println!(
        "load: {} msg/s (QoS {}) for {} s over {} series, 1 probe per {} messages",
        a.rate, a.qos as u8, a.secs, a.series, PROBE_EVERY
    );
    // One tick per millisecond, or per message below 1000 msg/s.
    let period = Duration::from_secs_f64((1.0 / a.rate.max(1) as f64).max(0.001));
    let per_tick = ((a.rate as f64 * period.as_secs_f64()).round() as u64).max(1);
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sent: HashMap<(usize, bool), Instant> = HashMap::new();
    let mut latencies = Vec::new();
    let mut n: u64 = 0;
    let mut probes = 0usize;
    let cpu_before = cpu_time(pid);
    let start = Instant::now();
    let end = start + Duration::from_secs(a.secs);
    while Instant::now() < end {
        tokio::select! {
            _ = tick.tick() => {
                for _ in 0..per_tick {
                    n += 1;
                    if n.is_multiple_of(PROBE_EVERY) {
                        let k = probes % PROBES;
                        probes += 1;
                        state[k] = !state[k];
                        let v = if state[k] { "60" } else { "40" };
                        sent.insert((k, state[k]), Instant::now());
                        client.publish(probe_topic(k), a.qos, false, v).await.expect("publish");
                    } else {
                        let topic = format!("bench/s{}/t", n % a.series);
                        client.publish(topic, a.qos, false, "20.5").await.expect("publish");
                    }
                }
            }
            Some((k, on, at)) = rx.recv() => {
                if let Some(t0) = sent.remove(&(k, on)) {
                    latencies.push(at - t0);
                }
            }
        }
    }
    let elapsed = start.elapsed();
    let cpu = cpu_time(pid) - cpu_before;
    let (rss_load, _) = rss_kib(pid);
    let drain = Instant::now() + Duration::from_secs(2);
    while let Ok(Some((k, on, at))) = tokio::time::timeout_at(drain.into(), rx.recv()).await {
        if let Some(t0) = sent.remove(&(k, on)) {
            latencies.push(at - t0);
        }
    }
    let (rss, hwm) = rss_kib(pid);
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "sent {n} messages in {:.1} s = {:.0} msg/s; probes {probes}, answered {}",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        latencies.len()
    );
    println!(
        "publish -> alert latency: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99)),
        ms(latencies.last().copied().unwrap_or_default())
    );
    println!(
        "iotitan-alerts CPU: {:.2} s for {n} messages = {:.1} us/message ({:.0}% of one core)",
        cpu.as_secs_f64(),
        cpu.as_secs_f64() * 1e6 / n.max(1) as f64,
        100.0 * cpu.as_secs_f64() / elapsed.as_secs_f64()
    );
    println!(
        "iotitan-alerts RSS: {:.1} MiB under load, {:.1} MiB at the end, peak (VmHWM) {:.1} MiB",
        rss_load as f64 / 1024.0,
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    drop(alerts);
}
