//! Record encoding and syslog framing: the logger's per-message CPU work.
//!
//! `cargo bench --bench record`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use iotitan::config::{SyslogConfig, SyslogFormat};
use iotitan::record;
use iotitan::syslog::header::Formatter;
use std::hint::black_box;
use std::time::SystemTime;

fn encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("record");
    g.throughput(Throughput::Elements(1));
    let topic = b"iotitan/home/up_bed1/dht11/temperature";
    let mut out = Vec::with_capacity(1024);
    g.bench_function("encode_plain", |b| {
        b.iter(|| {
            out.clear();
            record::encode(black_box(topic), black_box(b"23.1"), 7680, &mut out);
        })
    });
    let json = br#"{"Time":"2024-01-01T00:00:00","AM2301":{"Temperature":24.6,"Humidity":50.1},"TempUnit":"C"}"#;
    g.bench_function("encode_json", |b| {
        b.iter(|| {
            out.clear();
            record::encode(
                black_box(b"tele/kitchen/SENSOR"),
                black_box(json),
                7680,
                &mut out,
            );
        })
    });
    let hostile: Vec<u8> = (0..=255u8).cycle().take(256).collect();
    g.bench_function("encode_binary_256", |b| {
        b.iter(|| {
            out.clear();
            record::encode(black_box(topic), black_box(&hostile), 7680, &mut out);
        })
    });
    let line = b"iotitan/home/up_bed1/dht11/temperature 23.1";
    g.bench_function("decode_plain", |b| {
        b.iter(|| record::decode(black_box(line)).map(|r| r.payload.len()))
    });
    for format in [SyslogFormat::Rfc3164, SyslogFormat::Rfc5424] {
        let cfg = SyslogConfig {
            format,
            ..SyslogConfig::default()
        };
        let mut f = Formatter::new(&cfg, false);
        let mut msg = Vec::with_capacity(1024);
        g.bench_function(format!("frame_{format:?}").to_lowercase(), |b| {
            b.iter(|| {
                msg.clear();
                f.message(SystemTime::now(), black_box(line), &mut msg);
            })
        });
    }
    g.finish();
}

criterion_group!(benches, encode);
criterion_main!(benches);
