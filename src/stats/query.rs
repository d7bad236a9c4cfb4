//! `iotitan-stats query`: the history of some topics as CSV or JSON, read across rotated and
//! gzipped files like the window statistics are.

use crate::payload::{self, Extractor, Reading};
use crate::stats::collect::{Reader, Seen};
use crate::stats::window::Window;
use crate::syslog::line::Zone;
use crate::syslog::source::Lines;
use crate::topic::Filters;
use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Utc};
use std::collections::HashMap;
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
pub struct Export<Z, W> {
    reader: Reader<Z>,
    topics: Filters,
    extractor: Extractor,
    format: QueryFormat,
    out: W,
    readings: Vec<Reading>,
    /// Rows written.
    pub rows: u64,
    /// Records of the selected topics whose payload was not a number.
    pub rejected: u64,
    error: Option<std::io::Error>,
    /// Per topic: whether it is selected, and whether its payload is one plain value.
    decisions: HashMap<Box<str>, (bool, bool), ahash::RandomState>,
    /// The formatted second of the last row, `YYYY-MM-DDTHH:MM:SS`.
    second: Option<(i64, [u8; 19])>,
}

/// Most topics whose decisions an export remembers.
const TOPIC_CACHE: usize = 1 << 16;

impl<Z: Zone + Clone, W: Write> Export<Z, W> {
    /// An export of `topics` in `window` to `out`.
    pub fn new(
        reader: Reader<Z>,
        topics: Filters,
        extractor: Extractor,
        format: QueryFormat,
        out: W,
    ) -> Self {
        Export {
            reader,
            topics,
            extractor,
            format,
            out,
            readings: Vec::new(),
            rows: 0,
            rejected: 0,
            error: None,
            decisions: HashMap::default(),
            second: None,
        }
    }

    /// Whether `topic` is selected, and whether its payload is one plain value.
    fn decide(&mut self, topic: &str) -> (bool, bool) {
        if let Some(&d) = self.decisions.get(topic) {
            return d;
        }
        let d = (self.topics.matches(topic), self.extractor.is_plain(topic));
        if self.decisions.len() < TOPIC_CACHE {
            self.decisions.insert(topic.into(), d);
        }
        d
    }

    /// The RFC 3339 text of `time` as chrono writes it (`SecondsFormat::AutoSi`, `Z`), into
    /// `buf` without allocating: the second is formatted once for all its rows.
    fn timestamp<'b>(&mut self, time: DateTime<Utc>, buf: &'b mut [u8; 32]) -> &'b [u8] {
        let secs = time.timestamp();
        let second = match self.second {
            Some((s, text)) if s == secs => text,
            _ => {
                if !(0..=9999).contains(&time.year()) {
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
        let nanos = time.timestamp_subsec_nanos();
        let (digits, value) = match nanos {
            0 => (0, 0),
            n if n % 1_000_000 == 0 => (3, n / 1_000_000),
            n if n % 1_000 == 0 => (6, n / 1_000),
            n => (9, n),
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

    /// The range a scan must cover.
    pub fn range(&self) -> (DateTime<Utc>, DateTime<Utc>) {
        self.reader.range()
    }

    /// Write the header (CSV) or the opening bracket (JSON).
    pub fn begin(&mut self) -> std::io::Result<()> {
        match self.format {
            QueryFormat::Csv => writeln!(self.out, "timestamp,topic,value"),
            QueryFormat::Json => write!(self.out, "["),
        }
    }

    /// Finish the document and flush; reports a write error met on the way.
    pub fn finish(mut self) -> std::io::Result<W> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        if self.format == QueryFormat::Json {
            writeln!(self.out, "{}]", if self.rows > 0 { "\n" } else { "" })?;
        }
        self.out.flush()?;
        Ok(self.out)
    }

    fn row(&mut self, time: DateTime<Utc>, series: &str, value: f64) -> std::io::Result<()> {
        let mut buf = [0u8; 32];
        let ts = self.timestamp(time, &mut buf);
        match self.format {
            QueryFormat::Csv => {
                self.out.write_all(ts)?;
                self.out.write_all(b",")?;
                self.out.write_all(csv_field(series).as_bytes())?;
                writeln!(self.out, ",{value}")
            }
            QueryFormat::Json => {
                let sep: &[u8] = if self.rows == 0 { b"\n" } else { b",\n" };
                self.out.write_all(sep)?;
                self.out.write_all(b"{\"timestamp\":\"")?;
                self.out.write_all(ts)?;
                self.out.write_all(b"\",\"topic\":")?;
                serde_json::to_writer(&mut self.out, series)?;
                self.out.write_all(b",\"value\":")?;
                serde_json::to_writer(&mut self.out, &value)?;
                self.out.write_all(b"}")
            }
        }
    }
}

/// A CSV field, quoted when it holds a comma, quote or line break (RFC 4180).
fn csv_field(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\"")).into()
    } else {
        s.into()
    }
}

impl<Z: Zone + Clone, W: Write> Lines for Export<Z, W> {
    fn time_of(&mut self, line: &[u8], reference: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.reader.time_of(line, reference)
    }
    fn input(&mut self, reference: DateTime<Utc>) {
        self.reader.input(reference);
    }
    fn take(&mut self, line: &[u8]) -> ControlFlow<()> {
        let (time, topic, payload) = match self.reader.read(line) {
            Seen::Past => return ControlFlow::Break(()),
            Seen::Record {
                time,
                topic,
                payload,
            } => (time, topic, payload),
            _ => return ControlFlow::Continue(()),
        };
        let (selected, plain) = self.decide(&topic);
        if !selected {
            return ControlFlow::Continue(());
        }
        let written = if plain {
            // One value named after the topic: no reading to build.
            match payload.and_then(|p| payload::parse_plain(&p)) {
                Ok(value) => self.row(time, &topic, value).map(|()| 1),
                Err(_) => {
                    self.rejected += 1;
                    return ControlFlow::Continue(());
                }
            }
        } else {
            self.readings.clear();
            let ok = payload.and_then(|p| self.extractor.readings(&topic, &p, &mut self.readings));
            if ok.is_err() {
                self.rejected += 1;
                return ControlFlow::Continue(());
            }
            let readings = std::mem::take(&mut self.readings);
            let mut result = Ok(0);
            for r in &readings {
                // The JSON separator depends on the rows written so far.
                if let Err(e) = self.row(time, &r.series, r.value) {
                    result = Err(e);
                    break;
                }
                self.rows += 1;
            }
            self.readings = readings;
            result
        };
        match written {
            Ok(n) => {
                self.rows += n;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn export(format: QueryFormat, lines: &[&str]) -> String {
        let w = window(utc("2026-11-22T05:00:00Z"), utc("2026-11-22T06:00:00Z"));
        let reader = Reader::new(w, chrono::Duration::seconds(60), "iotitan-logger", Utc);
        let mut e = Export::new(
            reader,
            Filters::of(&["iotitan/#"]),
            Extractor::default(),
            format,
            Vec::new(),
        );
        e.begin().unwrap();
        for l in lines {
            let _ = e.take(l.as_bytes());
        }
        String::from_utf8(e.finish().unwrap()).unwrap()
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
        let w = window(utc("2026-11-22T05:00:00Z"), utc("2026-11-22T06:00:00Z"));
        let reader = Reader::new(w, chrono::Duration::seconds(60), "iotitan-logger", Utc);
        let mut e = Export::new(
            reader,
            Filters::of(&["#"]),
            Extractor::default(),
            QueryFormat::Csv,
            Vec::new(),
        );
        for s in [
            "2026-11-22T05:00:00Z",
            "2026-11-22T05:00:00.5Z",
            "2026-11-22T05:00:00.000001Z",
            "2026-11-22T05:00:00.123456789Z",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999Z",
            "1969-12-31T23:59:59.25Z",
        ] {
            let t = utc(s);
            let mut buf = [0u8; 32];
            let got = e.timestamp(t, &mut buf).to_vec();
            assert_eq!(
                String::from_utf8(got).unwrap(),
                t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
            );
        }
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
