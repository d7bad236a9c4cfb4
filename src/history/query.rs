//! `iotitan-stats query`: the history of some topics as CSV or JSON, read across rotated and
//! gzipped files by the same engine as the window statistics ([`crate::records`]).

use crate::config::Config;
use crate::exit;
use crate::payload::{self, Extractor, Reading, Rejected};
use crate::records::scan::{self, ProgressArgs, Threads};
use crate::records::{Decided, Decisions, Feed, Reader, Records};
use crate::time::{self, Window};
use crate::topic::Filters;
use anyhow::Context;
use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Utc};
use std::borrow::Cow;
use std::io::Write;
use std::ops::ControlFlow;

/// Output format of `query`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum QueryFormat {
    /// `timestamp,topic,value` with a header line.
    Csv,
    /// A JSON array of `{"timestamp","topic","value"}` objects.
    Json,
}

/// Writes one row per value of the selected topics.
pub struct Export<W> {
    topics: Filters,
    extractor: Extractor,
    format: QueryFormat,
    /// The writer thread and the rows not yet handed to it.
    pipe: Pipe<W>,
    pending: Queue,
    readings: Vec<Reading>,
    /// Rows written.
    pub rows: u64,
    /// Records of the selected topics whose payload was not a number.
    pub rejected: u64,
    error: Option<std::io::Error>,
    /// Each topic is checked for UTF-8, matched and escaped once, not on every line.
    decisions: Decisions<Decision>,
}

/// What an export decided about a topic, once.
struct Decision {
    /// Whether it is selected.
    selected: bool,
    /// Whether its payload is one plain value (no JSON rule applies).
    plain: bool,
    /// The topic.
    topic: Box<str>,
    /// The topic as written in a row: a CSV field or a JSON string.
    field: Box<str>,
}

impl Decision {
    fn of(topic: &[u8], topics: &Filters, extractor: &Extractor, format: QueryFormat) -> Self {
        let Ok(topic) = std::str::from_utf8(topic) else {
            return Decision {
                selected: false,
                plain: false,
                topic: "".into(),
                field: "".into(),
            };
        };
        Decision {
            selected: topics.matches(topic),
            plain: extractor.is_plain(topic),
            topic: topic.into(),
            field: field(format, topic).into(),
        }
    }
}

/// `series` as written in a row of `format`.
fn field(format: QueryFormat, series: &str) -> String {
    match format {
        QueryFormat::Csv => crate::records::csv::field(series).into_owned(),
        QueryFormat::Json => serde_json::to_string(series).unwrap_or_default(),
    }
}

/// A value as a row writes it.
enum Number<'a> {
    /// A value whose payload is already what `Display` writes of it
    /// ([`payload::is_canonical_decimal`]): the payload and the value.
    Text(&'a [u8], f64),
    /// A value to format.
    Float(f64),
}

/// Formats rows into the output.
struct RowWriter<W> {
    format: QueryFormat,
    out: W,
    /// The formatted second of the last row, `YYYY-MM-DDTHH:MM:SS`.
    second: Option<(i64, [u8; 19])>,
}

impl<W: Write> RowWriter<W> {
    /// The RFC 3339 text of `micros` as chrono writes it (`SecondsFormat::AutoSi`, `Z`), into
    /// `buf` without allocating: the second is formatted once for all its rows.
    fn timestamp<'b>(&mut self, micros: i64, buf: &'b mut [u8; 32]) -> &'b [u8] {
        let secs = micros.div_euclid(1_000_000);
        let sub = micros.rem_euclid(1_000_000) as u32;
        let second = match self.second {
            Some((s, text)) if s == secs => text,
            _ => {
                let time = DateTime::from_timestamp(secs, 0).unwrap_or_default();
                if !(0..=9999).contains(&time.year()) {
                    let time = DateTime::from_timestamp_micros(micros).unwrap_or_default();
                    let text = time.to_rfc3339_opts(SecondsFormat::AutoSi, true);
                    let n = text.len().min(buf.len());
                    buf[..n].copy_from_slice(&text.as_bytes()[..n]);
                    return &buf[..n];
                }
                let mut text = *b"0000-00-00T00:00:00";
                let mut put = |at: usize, width: usize, mut v: u32| {
                    for i in (at..at + width).rev() {
                        text[i] = b'0' + (v % 10) as u8;
                        v /= 10;
                    }
                };
                put(0, 4, time.year() as u32);
                put(5, 2, time.month());
                put(8, 2, time.day());
                put(11, 2, time.hour());
                put(14, 2, time.minute());
                put(17, 2, time.second());
                self.second = Some((secs, text));
                text
            }
        };
        buf[..19].copy_from_slice(&second);
        let (digits, value) = match sub {
            0 => (0, 0),
            n if n % 1_000 == 0 => (3, n / 1_000),
            n => (6, n),
        };
        let mut len = 19;
        if digits > 0 {
            buf[len] = b'.';
            let mut v = value;
            for i in (len + 1..len + 1 + digits).rev() {
                buf[i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
            len += 1 + digits;
        }
        buf[len] = b'Z';
        &buf[..len + 1]
    }

    /// Write one row; `first` says whether it is the first of the document.
    fn row(
        &mut self,
        micros: i64,
        field: &str,
        value: Number<'_>,
        first: bool,
    ) -> std::io::Result<()> {
        let mut buf = [0u8; 32];
        let ts = self.timestamp(micros, &mut buf);
        let out = &mut self.out;
        match self.format {
            QueryFormat::Csv => {
                out.write_all(ts)?;
                out.write_all(b",")?;
                out.write_all(field.as_bytes())?;
                out.write_all(b",")?;
                match value {
                    Number::Text(t, _) => out.write_all(t)?,
                    Number::Float(v) => write!(out, "{v}")?,
                }
                out.write_all(b"\n")
            }
            QueryFormat::Json => {
                out.write_all(if first { b"\n" } else { b",\n" })?;
                out.write_all(b"{\"timestamp\":\"")?;
                out.write_all(ts)?;
                out.write_all(b"\",\"topic\":")?;
                out.write_all(field.as_bytes())?;
                out.write_all(b",\"value\":")?;
                let v = match value {
                    Number::Text(_, v) | Number::Float(v) => v,
                };
                serde_json::to_writer(&mut *out, &v)?;
                out.write_all(b"}")
            }
        }
    }
}

/// Rows on their way to the writer thread. Formatting and writing rows is about half of an
/// export's work, so it runs beside the scan, on the second core, a batch at a time.
#[derive(Default)]
struct Queue {
    rows: Vec<Queued>,
    /// Payload text of values written as they are, and fields of JSON-rule series.
    text: Vec<u8>,
    /// Fields of topics decided since the last batch, in decision order.
    fields: Vec<Box<str>>,
}

/// One row in a [`Queue`].
struct Queued {
    micros: i64,
    field: Field,
    value: f64,
    /// The value's text in `text`, when it is written as it came.
    text: Option<std::ops::Range<usize>>,
}

/// The field of a queued row.
enum Field {
    /// Of decision `n`.
    Decided(usize),
    /// In the queue's `text`.
    Inline(std::ops::Range<usize>),
}

/// Rows per batch handed to the writer thread.
const QUEUE_ROWS: usize = 8192;

/// The writer thread's end of an export, or the writer itself before the first batch.
enum Pipe<W> {
    Idle(RowWriter<W>),
    Running {
        tx: std::sync::mpsc::SyncSender<Queue>,
        thread: std::thread::JoinHandle<std::io::Result<RowWriter<W>>>,
    },
    Gone,
}

impl<W: Write + Send + 'static> RowWriter<W> {
    /// Write every queued batch, in order, until the sender is dropped.
    fn drain(mut self, rx: std::sync::mpsc::Receiver<Queue>) -> std::io::Result<Self> {
        let mut fields: Vec<Box<str>> = Vec::new();
        let mut written = 0u64;
        for q in rx {
            fields.extend(q.fields);
            for r in &q.rows {
                let field = match &r.field {
                    Field::Decided(n) => fields.get(*n).map_or("", |f| &**f),
                    Field::Inline(range) => {
                        std::str::from_utf8(&q.text[range.clone()]).unwrap_or("")
                    }
                };
                let value = match &r.text {
                    Some(range) => Number::Text(&q.text[range.clone()], r.value),
                    None => Number::Float(r.value),
                };
                self.row(r.micros, field, value, written == 0)?;
                written += 1;
            }
        }
        Ok(self)
    }
}

impl<W: Write + Send + 'static> Export<W> {
    /// An export of the records of `topics` to `out`.
    pub fn new(topics: Filters, extractor: Extractor, format: QueryFormat, out: W) -> Self {
        Export {
            topics,
            extractor,
            format,
            pipe: Pipe::Idle(RowWriter {
                format,
                out,
                second: None,
            }),
            pending: Queue::default(),
            readings: Vec::new(),
            rows: 0,
            rejected: 0,
            error: None,
            decisions: Decisions::default(),
        }
    }

    /// Write the header (CSV) or the opening bracket (JSON).
    pub fn begin(&mut self) -> std::io::Result<()> {
        match &mut self.pipe {
            Pipe::Idle(w) => match w.format {
                QueryFormat::Csv => writeln!(w.out, "timestamp,topic,value"),
                QueryFormat::Json => write!(w.out, "["),
            },
            _ => Err(std::io::Error::other(
                "query: rows were written before the header",
            )),
        }
    }

    /// Start the writer thread, unless it runs already.
    fn start(&mut self) -> std::io::Result<()> {
        if !matches!(self.pipe, Pipe::Idle(_)) {
            return Ok(());
        }
        let Pipe::Idle(w) = std::mem::replace(&mut self.pipe, Pipe::Gone) else {
            return Ok(());
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(2);
        let thread = std::thread::Builder::new()
            .name("query-writer".into())
            .spawn(move || w.drain(rx))?;
        self.pipe = Pipe::Running { tx, thread };
        Ok(())
    }

    /// Hand the pending rows to the writer thread; on failure, its error.
    fn send(&mut self) -> std::io::Result<()> {
        self.start()?;
        let queue = std::mem::take(&mut self.pending);
        let Pipe::Running { tx, .. } = &self.pipe else {
            return Err(std::io::Error::other("query: the writer thread ended"));
        };
        if tx.send(queue).is_ok() {
            return Ok(());
        }
        // The writer stopped: its error says why.
        match std::mem::replace(&mut self.pipe, Pipe::Gone) {
            Pipe::Running { thread, .. } => match thread.join() {
                Ok(Err(e)) => Err(e),
                _ => Err(std::io::Error::other("query: the writer thread ended")),
            },
            _ => Err(std::io::Error::other("query: the writer thread ended")),
        }
    }

    /// Finish the document and flush; reports a write error met on the way.
    pub fn finish(mut self) -> std::io::Result<W> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.send()?;
        let mut w = match std::mem::replace(&mut self.pipe, Pipe::Gone) {
            Pipe::Running { tx, thread } => {
                drop(tx);
                thread
                    .join()
                    .map_err(|_| std::io::Error::other("query: the writer thread panicked"))??
            }
            _ => return Err(std::io::Error::other("query: the writer thread ended")),
        };
        if w.format == QueryFormat::Json {
            writeln!(w.out, "{}]", if self.rows > 0 { "\n" } else { "" })?;
        }
        w.out.flush()?;
        Ok(w.out)
    }

    /// Queue a row; hands a full batch to the writer.
    fn queue(
        &mut self,
        micros: i64,
        field: Field,
        value: f64,
        text: Option<&[u8]>,
    ) -> std::io::Result<()> {
        let text = text.map(|t| {
            let start = self.pending.text.len();
            self.pending.text.extend_from_slice(t);
            start..self.pending.text.len()
        });
        self.pending.rows.push(Queued {
            micros,
            field,
            value,
            text,
        });
        if self.pending.rows.len() >= QUEUE_ROWS {
            self.send()?;
        }
        Ok(())
    }

    /// A field written inline into the pending batch.
    fn inline(&mut self, field: &str) -> Field {
        let start = self.pending.text.len();
        self.pending.text.extend_from_slice(field.as_bytes());
        Field::Inline(start..self.pending.text.len())
    }

    /// Queue the rows of one record of a selected topic; the number queued, `None` when its
    /// payload gave no number.
    fn write_record(
        &mut self,
        micros: i64,
        decision: usize,
        payload: &[u8],
        spare: Option<&Decision>,
    ) -> std::io::Result<Option<u64>> {
        let d = spare.unwrap_or(&self.decisions[decision]);
        if d.plain {
            // One value named after the topic: no reading to build.
            let Ok(v) = payload::parse_plain(payload) else {
                return Ok(None);
            };
            let field = match spare {
                Some(d) => {
                    let f = d.field.clone();
                    self.inline(&f)
                }
                None => Field::Decided(decision),
            };
            let text = payload::is_canonical_decimal(payload).then_some(payload);
            self.queue(micros, field, v, text)?;
            return Ok(Some(1));
        }
        self.readings.clear();
        if self
            .extractor
            .readings(&d.topic, payload, &mut self.readings)
            .is_err()
        {
            return Ok(None);
        }
        let readings = std::mem::take(&mut self.readings);
        let mut result = Ok(Some(readings.len() as u64));
        for r in &readings {
            let f = field(self.format, &r.series);
            let f = self.inline(&f);
            if let Err(e) = self.queue(micros, f, r.value, None) {
                result = Err(e);
                break;
            }
        }
        self.readings = readings;
        result
    }
}

impl<W: Write + Send + 'static> Records for Export<W> {
    fn record(
        &mut self,
        micros: i64,
        topic: Cow<'_, [u8]>,
        payload: Result<Cow<'_, [u8]>, Rejected>,
    ) -> ControlFlow<()> {
        let (topics, extractor, format) = (&self.topics, &self.extractor, self.format);
        let decided = self
            .decisions
            .decide(&topic, |t| Decision::of(t, topics, extractor, format));
        let (decision, spare) = match decided {
            Decided::Known(i, _) => (i, None),
            Decided::New(i, d) => {
                // The writer learns each field once, before the first row that uses it.
                self.pending.fields.push(d.field.clone());
                (i, None)
            }
            Decided::Once(d) => (0, Some(d)),
        };
        if !spare
            .as_ref()
            .unwrap_or_else(|| &self.decisions[decision])
            .selected
        {
            return ControlFlow::Continue(());
        }
        let written = match payload {
            Ok(p) => self.write_record(micros, decision, &p, spare.as_ref()),
            Err(_) => Ok(None),
        };
        match written {
            Ok(Some(n)) => {
                self.rows += n;
                ControlFlow::Continue(())
            }
            Ok(None) => {
                self.rejected += 1;
                ControlFlow::Continue(())
            }
            Err(e) => {
                // stdout closed (`| head`): stop reading, report it at the end.
                self.error = Some(e);
                ControlFlow::Break(())
            }
        }
    }
}

/// The window of a query.
pub fn window(since: DateTime<Utc>, until: DateTime<Utc>) -> Window {
    Window {
        start: since,
        end: until,
    }
}

/// Options of `query`.
#[derive(Debug, Clone, clap::Args)]
pub struct QueryOptions {
    /// Topic filters to export (repeatable, MQTT wildcards allowed).
    #[arg(long, value_name = "FILTER", required = true)]
    pub topics: Vec<crate::topic::TopicFilter>,
    /// Start (RFC 3339, or relative like -1d).
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub since: String,
    /// End, exclusive [default: now].
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub until: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "csv")]
    pub format: QueryFormat,
    /// Read these sources instead of syslog.sources (repeatable).
    #[arg(long = "input", value_name = "SOURCE", allow_hyphen_values = true)]
    pub inputs: Vec<String>,
    #[command(flatten)]
    pub progress: ProgressArgs,
}

/// `iotitan-stats query`: write the history of `opts.topics` to stdout.
pub fn run(cfg: &Config, opts: &QueryOptions) -> anyhow::Result<()> {
    let now = Utc::now();
    let since = time::parse_time(&opts.since, now).map_err(exit::usage)?;
    let until = match &opts.until {
        Some(u) => time::parse_time(u, now).map_err(exit::usage)?,
        None => now,
    };
    if until <= since {
        return Err(exit::usage("--until is not after --since"));
    }
    let sources = scan::sources(&cfg.syslog.sources, &opts.inputs)?;
    let disorder =
        chrono::Duration::from_std(cfg.stats.disorder.get()).unwrap_or(chrono::Duration::zero());
    let reader = Reader::new(
        window(since, until),
        disorder,
        &cfg.syslog.identifier,
        time::local(),
    );
    // Not locked: the export writes from a thread of its own.
    let stdout = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout());
    let export = Export::new(
        Filters(opts.topics.clone()),
        cfg.payload.extractor(),
        opts.format,
        stdout,
    );
    let mut export = Feed::new(reader, export);
    export.records.begin().context("cannot write to stdout")?;
    let bar = opts.progress.bar();
    let (from, to) = export.range();
    // Rows are read on one thread, in file order, and written by the export's own thread.
    scan::scan_all::<Feed<chrono::Local, Export<std::io::BufWriter<std::io::Stdout>>>>(
        &sources,
        from,
        to,
        &cfg.syslog.identifier,
        Threads::One(&mut export),
        &mut |n| bar.inc(n),
    )?;
    let export = export.into_records();
    let (rows, rejected) = (export.rows, export.rejected);
    bar.finish_and_clear();
    export.finish().context("cannot write to stdout")?;
    tracing::info!("{rows} values exported, {rejected} records were not numeric");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syslog::source::Lines;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// An export of `iotitan/#` over 05:00–06:00 UTC on 2026-11-22, into memory.
    fn hour_export(format: QueryFormat) -> Feed<Utc, Export<Vec<u8>>> {
        let w = window(utc("2026-11-22T05:00:00Z"), utc("2026-11-22T06:00:00Z"));
        let reader = Reader::new(w, chrono::Duration::seconds(60), "iotitan-logger", Utc);
        Feed::new(
            reader,
            Export::new(
                Filters::of(&["iotitan/#"]),
                Extractor::default(),
                format,
                Vec::new(),
            ),
        )
    }

    fn export(format: QueryFormat, lines: &[&str]) -> String {
        let mut e = hour_export(format);
        e.records.begin().unwrap();
        for l in lines {
            let _ = e.take(l.as_bytes());
        }
        String::from_utf8(e.into_records().finish().unwrap()).unwrap()
    }

    const LINES: [&str; 4] = [
        "2026-11-22T05:00:00.25Z h iotitan-logger[1]: iotitan/a,b/t 20.5",
        "2026-11-22T05:00:01Z h iotitan-logger[1]: iotitan/a/t junk",
        "2026-11-22T05:00:02Z h iotitan-logger[1]: other/t 1",
        "2026-11-22T05:00:03Z h iotitan-logger[1]: iotitan/a/t on",
    ];

    #[test]
    fn csv_rows() {
        assert_eq!(
            export(QueryFormat::Csv, &LINES),
            "timestamp,topic,value\n2026-11-22T05:00:00.250Z,\"iotitan/a,b/t\",20.5\n\
             2026-11-22T05:00:03Z,iotitan/a/t,1\n"
        );
    }

    #[test]
    fn timestamps_are_written_as_chrono_writes_them() {
        let mut w = RowWriter {
            format: QueryFormat::Csv,
            out: Vec::new(),
            second: None,
        };
        for s in [
            "2026-11-22T05:00:00Z",
            "2026-11-22T05:00:00.5Z",
            "2026-11-22T05:00:00.000001Z",
            "2026-11-22T05:00:00.123456Z",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999Z",
            "1969-12-31T23:59:59.25Z",
            "1969-12-31T23:59:59.999999Z",
        ] {
            let t = utc(s);
            let mut buf = [0u8; 32];
            let got = w.timestamp(t.timestamp_micros(), &mut buf).to_vec();
            assert_eq!(
                String::from_utf8(got).unwrap(),
                t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
            );
        }
    }

    /// Without `begin`, rows come without a header, however many batches they fill.
    #[test]
    fn rows_without_a_header_fill_several_batches() {
        let mut e = hour_export(QueryFormat::Csv);
        let n = QUEUE_ROWS * 2 + 5;
        for i in 0..n {
            let line = format!("2026-11-22T05:00:00Z h iotitan-logger[1]: iotitan/a/t {i}");
            assert!(e.take(line.as_bytes()).is_continue(), "{i}");
        }
        assert_eq!(e.records.rows, n as u64);
        let text = String::from_utf8(e.into_records().finish().unwrap()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), n);
        assert_eq!(lines[0], "2026-11-22T05:00:00Z,iotitan/a/t,0");
        assert_eq!(
            lines[n - 1],
            format!("2026-11-22T05:00:00Z,iotitan/a/t,{}", n - 1)
        );
    }

    #[test]
    fn values_are_written_as_display_writes_them() {
        let lines = [
            "2026-11-22T05:00:00Z h iotitan-logger[1]: iotitan/a/t 20.50",
            "2026-11-22T05:00:01Z h iotitan-logger[1]: iotitan/a/t 007",
            "2026-11-22T05:00:02Z h iotitan-logger[1]: iotitan/a/t -0",
            "2026-11-22T05:00:03Z h iotitan-logger[1]: iotitan/a/t 1e3",
            "2026-11-22T05:00:04Z h iotitan-logger[1]: iotitan/a/t 12.25",
        ];
        let csv = export(QueryFormat::Csv, &lines);
        let values: Vec<&str> = csv
            .lines()
            .skip(1)
            .map(|l| l.rsplit(',').next().unwrap())
            .collect();
        assert_eq!(values, ["20.5", "7", "-0", "1000", "12.25"]);
    }

    #[test]
    fn json_rows_parse_back() {
        let text = export(QueryFormat::Json, &LINES);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 2);
        assert_eq!(v[1]["value"], 1.0);
        let empty: serde_json::Value =
            serde_json::from_str(&export(QueryFormat::Json, &[])).unwrap();
        assert_eq!(empty, serde_json::json!([]));
    }
}
