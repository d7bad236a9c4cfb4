//! `journal-peers sdjournal|libsystemd NAMESPACE IDENTIFIER`: read every entry of
//! IDENTIFIER in a journal namespace with its time and MESSAGE, as iotitan's reader does,
//! and print the count, a checksum and the rate.
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, which, ns, ident] = &args[..] else {
        eprintln!("usage: journal-peers sdjournal|libsystemd NAMESPACE IDENTIFIER");
        std::process::exit(64);
    };
    let id = std::fs::read_to_string("/etc/machine-id").expect("machine id");
    let t = Instant::now();
    let (mut n, mut bytes, mut sum) = (0u64, 0u64, 0u64);
    match which.as_str() {
        "sdjournal" => {
            let mut dirs = Vec::new();
            for root in ["/run/log/journal", "/var/log/journal"] {
                let d = std::path::PathBuf::from(format!("{root}/{}.{ns}", id.trim()));
                if d.is_dir() {
                    dirs.push(d);
                }
            }
            let j = sdjournal::Journal::open_dirs(&dirs).expect("open");
            let mut q = j.query();
            q.match_exact("SYSLOG_IDENTIFIER", ident.as_bytes());
            for e in q.iter().expect("query") {
                let e = e.expect("entry");
                let m = e.get("MESSAGE").unwrap_or_default();
                n += 1;
                bytes += m.len() as u64;
                sum = sum.wrapping_add(e.realtime_usec());
            }
        }
        "libsystemd" => {
            let mut j = systemd::journal::OpenOptions::default()
                .open_namespace(ns.as_str())
                .expect("open");
            j.match_add("SYSLOG_IDENTIFIER", ident.as_str()).expect("match");
            j.seek_head().expect("seek");
            while j.next().expect("next") > 0 {
                let ts = j.timestamp_usec().expect("time");
                if let Some(f) = j.get_data("MESSAGE").expect("data") {
                    bytes += f.value().map_or(0, |v| v.len()) as u64;
                }
                n += 1;
                sum = sum.wrapping_add(ts);
            }
        }
        _ => panic!("unknown reader {which}"),
    }
    let s = t.elapsed().as_secs_f64();
    println!(
        "{which}: {n} entries, {bytes} message bytes, time sum {sum}, {s:.3} s, {:.0} entries/s",
        n as f64 / s
    );
}
