//! `iotitan-stats query`: the history of some topics as CSV or JSON, read across rotated and
//! gzipped files like the window statistics are.

use crate::payload::{Extractor, Reading};
use crate::stats::collect::{Reader, Seen};
use crate::stats::line::Zone;
use crate::stats::window::Window;
use crate::syslog::source::Lines;
use crate::topic::Filters;
use chrono::{DateTime, SecondsFormat, Utc};
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
}

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
        }
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
        let ts = time.to_rfc3339_opts(SecondsFormat::AutoSi, true);
        match self.format {
            QueryFormat::Csv => writeln!(self.out, "{ts},{},{value}", csv_field(series)),
            QueryFormat::Json => {
                let sep = if self.rows == 0 { "\n" } else { ",\n" };
                let obj = serde_json::json!({"timestamp": ts, "topic": series, "value": value});
                write!(self.out, "{sep}{obj}")
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
            } if self.topics.matches(&topic) => (time, topic, payload),
            _ => return ControlFlow::Continue(()),
        };
        self.readings.clear();
        let ok = payload.and_then(|p| self.extractor.readings(&topic, &p, &mut self.readings));
        if ok.is_err() {
            self.rejected += 1;
            return ControlFlow::Continue(());
        }
        let readings = std::mem::take(&mut self.readings);
        for r in &readings {
            if let Err(e) = self.row(time, &r.series, r.value) {
                // stdout closed (`| head`): stop reading, report it at the end.
                self.error = Some(e);
                return ControlFlow::Break(());
            }
            self.rows += 1;
        }
        self.readings = readings;
        ControlFlow::Continue(())
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
