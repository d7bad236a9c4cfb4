//! Read API benchmark: a 7-day hourly `aggregate` over 7 days of records at 10 readings a
//! second (6 048 000 lines, traditional `Nov 16 00:00:00` timestamps), goal < 1 s; side by side
//! with `iotitan-stats query`'s export of the same range (the same engine writing CSV to a
//! sink), which bounds what any read of the range can cost; and the energy statistics
//! (increase, integral) of the same read.
//!
//! The file is written to `$IOTITAN_BENCH_DIR` (default `/tmp/iotitan-bench`) once and reused.
//! See BENCHMARKS.md.

use chrono::{DateTime, Local, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use iotitan::history::aggregate::{Aggregate, Curves, Every};
use iotitan::history::query::{Export, QueryFormat, window};
use iotitan::history::read::Context;
use iotitan::payload::Extractor;
use iotitan::records::{Feed, Reader};
use iotitan::statistic::Statistic;
use iotitan::syslog::source::{self, Scan, Source};
use iotitan::topic::Filters;
use std::hint::black_box;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The end of the records (exclusive); they start 7 days earlier.
const END: &str = "2026-11-23T00:00:00Z";
const DAYS: i64 = 7;
const PER_SECOND: i64 = 10;
const DEVICES: i64 = 10;

fn end() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(END)
        .unwrap()
        .with_timezone(&Utc)
}

/// The syslog file: every second, one reading of each of ten devices, in the local zone's
/// traditional format. Its modification time is the last record's, as rsyslogd leaves it, so
/// the year of the timestamps is read right.
fn syslog_file(dir: &Path) -> PathBuf {
    let path = dir.join("read-7d/syslog");
    if path.exists() {
        return path;
    }
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let tmp = path.with_extension("partial");
    let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&tmp).unwrap());
    let start = end() - chrono::Duration::days(DAYS);
    let seconds = DAYS * 86_400;
    for s in 0..seconds {
        let t = start + chrono::Duration::seconds(s);
        let stamp = t.with_timezone(&Local).format("%b %e %H:%M:%S").to_string();
        for d in 0..PER_SECOND.min(DEVICES) {
            let v = 15 + (s / 60 + d * 7) % 20;
            writeln!(
                f,
                "{stamp} pi iotitan-logger[812]: iotitan/bench/dev{d}/temperature {v}.{}",
                (s + d) % 10
            )
            .unwrap();
        }
    }
    f.flush().unwrap();
    let file = f.into_inner().unwrap();
    file.set_modified((end() - chrono::Duration::seconds(1)).into())
        .unwrap();
    drop(file);
    std::fs::rename(&tmp, &path).unwrap();
    path
}

fn read_7d(c: &mut Criterion) {
    let dir = PathBuf::from(
        std::env::var("IOTITAN_BENCH_DIR").unwrap_or_else(|_| "/tmp/iotitan-bench".into()),
    );
    let path = syslog_file(&dir);
    let (since, until) = (end() - chrono::Duration::days(DAYS), end());
    let lines = (DAYS * 86_400 * PER_SECOND) as u64;
    let ctx = Context::new(
        vec![Source::File(path.clone())],
        "iotitan-logger",
        Extractor::default(),
        std::time::Duration::from_secs(60),
    );
    let stats = [
        Statistic::Min,
        Statistic::Mean,
        Statistic::Max,
        Statistic::Count,
    ];
    let mut g = c.benchmark_group("read_7d_10_per_s");
    g.sample_size(10);
    g.throughput(Throughput::Elements(lines));
    // As iotitan-http reads (one thread per core), and on one thread.
    let one = ctx.clone().with_threads(1);
    for (name, ctx) in [
        ("aggregate_hourly", &ctx),
        ("aggregate_hourly_1_thread", &one),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let agg = Aggregate::new(Every::from_secs(3600).unwrap(), Local, &stats);
                let r = ctx
                    .read(Filters::of(&["iotitan/bench/#"]), since, until, agg)
                    .unwrap();
                let a = r.consumer.finish();
                assert_eq!(a.series.len(), DEVICES as usize);
                let n: u64 = a.series.values().flatten().map(|b| b.count).sum();
                assert_eq!(n, lines);
                black_box(a)
            })
        });
    }
    // The energy statistics over the same read, hourly: each series followed as a curve,
    // next to the plain statistics above, as the read API serves them (split across the
    // cores, read again on one thread if a fork's curves could not be joined exactly).
    let energy = [Statistic::Increase, Statistic::Integral, Statistic::Count];
    let spans = vec![(since.timestamp_micros(), until.timestamp_micros())];
    let filters = Filters::of(&["iotitan/bench/#"]);
    // Whether the split read joins exactly, or the numbers below include a second read.
    let make = || {
        Aggregate::new(Every::from_secs(3600).unwrap(), Local, &energy).with_curves(Curves::new(
            spans.clone(),
            std::time::Duration::from_secs(900),
        ))
    };
    let joined = ctx.read(filters.clone(), since, until, make()).unwrap();
    eprintln!(
        "energy read joined exactly across threads: {}",
        iotitan::history::Consumer::exact(&joined.consumer)
    );
    g.bench_function("aggregate_hourly_increase_integral", |b| {
        b.iter(|| {
            let r = ctx.read_exact(&filters, since, until, make).unwrap();
            let a = r.consumer.finish();
            let n: u64 = a.series.values().flatten().map(|b| b.count).sum();
            assert_eq!(n, lines);
            black_box(a)
        })
    });
    g.bench_function("query_export_csv", |b| {
        b.iter(|| {
            let reader = Reader::new(
                window(since, until),
                chrono::Duration::seconds(60),
                "iotitan-logger",
                Local,
            );
            let export = Export::new(
                Filters::of(&["iotitan/bench/#"]),
                Extractor::default(),
                QueryFormat::Csv,
                std::io::sink(),
            );
            let mut e = Feed::new(reader, export);
            let (from, to) = e.range();
            let scan = Scan {
                from,
                until: to,
                identifier: "iotitan-logger",
            };
            source::scan(&Source::File(path.clone()), &scan, &mut e, &mut |_| {}).unwrap();
            assert_eq!(e.records.rows, lines);
            black_box(e.records.rows)
        })
    });
    g.finish();
}

criterion_group!(benches, read_7d);
criterion_main!(benches);
