//! Stats benchmarks: line parsing (goal ≥ 3 M lines/s on one core), the whole per-line path
//! (parse, decode, payload, aggregate), a catch-up of 12 windows next to one window over the
//! same lines, and the cost of a 5-minute window at the end of a small and a large file (goal:
//! the large file costs ≤ 2× the small one).
//!
//! The window benchmark writes its files to `$IOTITAN_BENCH_DIR` (default
//! `/tmp/iotitan-bench`) once and reuses them; `IOTITAN_BENCH_BIG_MB` sets the large file's
//! size (default 2048). See BENCHMARKS.md.

use chrono::{DateTime, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use iotitan::config::Config;
use iotitan::records::Reader;
use iotitan::statistic::Statistic;
use iotitan::stats::aggregate::Summary;
use iotitan::stats::collect::{CatchUp, Collector, Selection};
use iotitan::syslog::clock::{Ambiguity, Clock};
use iotitan::syslog::line;
use iotitan::syslog::source::Lines;
use iotitan::syslog::source::Source;
use iotitan::time::Window;
use iotitan::topic::Filters;
use std::hint::black_box;
use std::io::Write;
use std::path::{Path, PathBuf};

const N: usize = 100_000;
const START: i64 = 1_795_000_000;

fn rfc3339_lines() -> Vec<String> {
    (0..N)
        .map(|i| {
            let t = DateTime::from_timestamp(START + i as i64, (i % 1000) as u32 * 1000).unwrap();
            format!(
                "{} pi iotitan-logger[812]: iotitan/home/room{}/dht22/temperature {}.{}",
                t.to_rfc3339_opts(chrono::SecondsFormat::Micros, false),
                i % 12,
                15 + i % 15,
                i % 10
            )
        })
        .collect()
}

fn traditional_lines() -> Vec<String> {
    (0..N)
        .map(|i| {
            let t = DateTime::from_timestamp(START + i as i64, 0).unwrap();
            format!(
                "{} pi iotitan-logger[812]: iotitan/home/room{}/dht22/temperature 21.{}",
                t.format("%b %e %H:%M:%S"),
                i % 12,
                i % 10
            )
        })
        .collect()
}

fn parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(N as u64));
    let reference = DateTime::from_timestamp(START + N as i64, 0).unwrap();
    for (name, lines) in [
        ("rfc3339", rfc3339_lines()),
        ("traditional", traditional_lines()),
    ] {
        g.bench_function(name, |b| {
            let mut clock = Clock::new(Utc, reference, Ambiguity::Stream);
            b.iter(|| {
                for l in &lines {
                    black_box(line::parse(l.as_bytes(), &mut clock).ok());
                }
            })
        });
    }
    let lines = rfc3339_lines();
    let window = Window {
        start: DateTime::from_timestamp(START, 0).unwrap(),
        end: DateTime::from_timestamp(START + N as i64, 0).unwrap(),
    };
    let selection = Selection {
        topics: Filters::of(&["iotitan/#"]),
        groups: vec![Filters::of(&["iotitan/home/+/+/temperature"])],
        extractor: Default::default(),
        summary_topic: None,
        max_series: usize::MAX,
    };
    let stats = [
        Statistic::Count,
        Statistic::Mean,
        Statistic::Min,
        Statistic::Max,
    ];
    g.bench_function("line_to_statistics", |b| {
        b.iter(|| {
            let reader = Reader::new(
                window,
                chrono::Duration::seconds(120),
                "iotitan-logger",
                Utc,
            );
            let summary = Summary::new(window.start, window.end, &stats, ["g".to_owned()]);
            let mut c = Collector::new(reader, &selection, summary);
            for l in &lines {
                let _ = black_box(c.line(l.as_bytes()));
            }
            black_box(c.lines().matched)
        })
    });
    // A catch-up: the same lines as twelve consecutive windows, and as one window.
    for n in [1i64, 12] {
        g.bench_function(format!("catch_up_{n}_windows"), |b| {
            b.iter(|| {
                let step = N as i64 / n;
                let collectors = (0..n)
                    .map(|k| {
                        let w = Window {
                            start: DateTime::from_timestamp(START + k * step, 0).unwrap(),
                            end: DateTime::from_timestamp(START + (k + 1) * step, 0).unwrap(),
                        };
                        let reader =
                            Reader::new(w, chrono::Duration::seconds(120), "iotitan-logger", Utc);
                        let summary = Summary::new(w.start, w.end, &stats, ["g".to_owned()]);
                        Collector::new(reader, &selection, summary)
                    })
                    .collect();
                let mut batch = CatchUp::new(collectors);
                for l in &lines {
                    let _ = black_box(batch.take(l.as_bytes()));
                }
                black_box(batch.into_summaries().len())
            })
        });
    }
    g.finish();
}

/// A syslog file of about `mb` MiB, one record a second from `START`, ending at `end`.
fn syslog_file(dir: &Path, mb: u64) -> (PathBuf, DateTime<Utc>) {
    let path = dir.join(format!("{mb}mb/syslog"));
    let per_line = 96u64;
    let lines = mb * 1024 * 1024 / per_line;
    let end = DateTime::from_timestamp(START + lines as i64, 0).unwrap();
    if !path.exists() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let tmp = path.with_extension("partial");
        let mut f =
            std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&tmp).unwrap());
        for i in 0..lines {
            let t = DateTime::from_timestamp(START + i as i64, 0).unwrap();
            writeln!(
                f,
                "{} pi iotitan-logger[812]: iotitan/home/room{}/dht22/temperature {}.{}",
                t.to_rfc3339_opts(chrono::SecondsFormat::Micros, false),
                i % 12,
                15 + i % 15,
                i % 10
            )
            .unwrap();
        }
        f.flush().unwrap();
        drop(f);
        std::fs::rename(&tmp, &path).unwrap();
    }
    (path, end)
}

fn window_cost(c: &mut Criterion) {
    let dir = PathBuf::from(
        std::env::var("IOTITAN_BENCH_DIR").unwrap_or_else(|_| "/tmp/iotitan-bench".into()),
    );
    let big: u64 = std::env::var("IOTITAN_BENCH_BIG_MB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2048);
    let mut cfg = Config::default();
    cfg.stats.statistics = vec![Statistic::Count, Statistic::Mean, Statistic::Median];
    let mut g = c.benchmark_group("window_5min_at_end");
    g.sample_size(20);
    for mb in [20, big] {
        let (path, end) = syslog_file(&dir, mb);
        let window = Window {
            start: end - chrono::Duration::minutes(5),
            end,
        };
        let sources = [Source::File(path)];
        g.bench_function(format!("{mb}MiB"), |b| {
            b.iter(|| {
                let s = iotitan::stats::compute(&cfg, &sources, &[window]).unwrap();
                assert_eq!(s[0].lines.matched, 300);
                black_box(s)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, parse, window_cost);
criterion_main!(benches);
