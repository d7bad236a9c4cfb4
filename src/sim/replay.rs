//! Replay of a real series from a CSV file, with time compression.
//!
//! The input is what open-meteo and most loggers export: an optional block of metadata lines,
//! then a header `time,<column>,…` and one row per timestamp. Rows are replayed in file order,
//! each at its offset from the first timestamp divided by the [`Speed`]; the payload is the
//! cell's text exactly as written, so what a subscriber receives can be compared with the file.
//!
//! The parser is hand-written: the format is plain comma-separated numbers (no quoting rules
//! to honour beyond stripping quotes around names), and it has to find the header after a
//! metadata block, which generic CSV readers leave to the caller anyway.

use super::{Generator, Message, Next, Speed};
use chrono::NaiveDateTime;
use std::time::Duration;

/// One row of a series.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// The row's timestamp.
    pub time: NaiveDateTime,
    /// The value.
    pub value: f64,
    /// The value as written in the file.
    pub text: String,
}

/// A series read from CSV.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The column's name from the header.
    pub column: String,
    /// Rows with a valid time and value, in file order.
    pub points: Vec<Point>,
    /// Rows left out: missing or non-numeric value, or unreadable time.
    pub skipped: usize,
}

/// Why a CSV file gave no series.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// No line starts with `time,`.
    #[error("no header line starting with \"time,\" found")]
    NoHeader,
    /// The requested column is not in the header.
    #[error("no column {wanted:?} in the header (columns: {available})")]
    NoColumn {
        /// The column asked for.
        wanted: String,
        /// The header's value columns.
        available: String,
    },
    /// Not a single row had a usable value.
    #[error("no rows with a numeric value in column {0:?}")]
    Empty(String),
}

impl Series {
    /// Parse `text`; `column` picks a value column by name, else the first one after `time`.
    pub fn parse(text: &str, column: Option<&str>) -> Result<Series, ReplayError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut lines = text.lines();
        let header = lines
            .by_ref()
            .map(split_row)
            .find(|cells| {
                cells
                    .first()
                    .is_some_and(|c| c.eq_ignore_ascii_case("time"))
            })
            .ok_or(ReplayError::NoHeader)?;
        let available = || header[1..].join(", ");
        let index = match column {
            Some(name) => header
                .iter()
                .skip(1)
                .position(|c| c == name)
                .map(|i| i + 1)
                .ok_or_else(|| ReplayError::NoColumn {
                    wanted: name.to_owned(),
                    available: available(),
                })?,
            None if header.len() > 1 => 1,
            None => {
                return Err(ReplayError::NoColumn {
                    wanted: "(the first value column)".into(),
                    available: available(),
                });
            }
        };
        let mut series = Series {
            column: header[index].clone(),
            points: Vec::new(),
            skipped: 0,
        };
        for line in lines.filter(|l| !l.trim().is_empty()) {
            let cells = split_row(line);
            let point = cells.first().and_then(|t| parse_time(t)).and_then(|time| {
                let text = cells.get(index)?;
                let value = text.parse::<f64>().ok().filter(|v| v.is_finite())?;
                Some(Point {
                    time,
                    value,
                    text: text.clone(),
                })
            });
            match point {
                Some(p) => series.points.push(p),
                None => series.skipped += 1,
            }
        }
        if series.points.is_empty() {
            return Err(ReplayError::Empty(series.column));
        }
        Ok(series)
    }

    /// Keep `limit` rows starting at row `skip`.
    pub fn slice(mut self, skip: usize, limit: Option<usize>) -> Series {
        self.points.drain(..skip.min(self.points.len()));
        if let Some(n) = limit {
            self.points.truncate(n);
        }
        self
    }
}

fn split_row(line: &str) -> Vec<String> {
    line.split(',')
        .map(|c| c.trim().trim_matches('"').to_owned())
        .collect()
}

/// `2024-01-01T00:00` as open-meteo writes it, with seconds, or with an offset (RFC 3339).
fn parse_time(s: &str) -> Option<NaiveDateTime> {
    [
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
    .or_else(|| {
        chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.naive_utc())
    })
}

/// The replay generator: one topic, one row at a time.
pub struct Replay {
    topic: String,
    /// Wall-clock offset and payload of each row.
    rows: Vec<(Duration, String)>,
    next: usize,
}

impl Replay {
    /// Replay `series` on `topic` at `speed`. Rows whose time goes backwards are sent right
    /// after their predecessor, keeping the file's order.
    pub fn new(series: &Series, topic: impl Into<String>, speed: Speed) -> Self {
        let first = series.points.first().map(|p| p.time);
        let mut last = Duration::ZERO;
        let rows = series
            .points
            .iter()
            .map(|p| {
                let offset = first
                    .and_then(|f| (p.time - f).to_std().ok())
                    .map(|d| speed.wall(d))
                    .unwrap_or(last)
                    .max(last);
                last = offset;
                (offset, p.text.clone())
            })
            .collect();
        Replay {
            topic: topic.into(),
            rows,
            next: 0,
        }
    }

    /// Wall-clock length of the whole replay.
    pub fn duration(&self) -> Duration {
        self.rows.last().map_or(Duration::ZERO, |r| r.0)
    }
}

impl Generator for Replay {
    fn poll(&mut self, elapsed: Duration, out: &mut Vec<Message>) -> Next {
        while let Some((at, text)) = self.rows.get(self.next) {
            if *at > elapsed {
                return Next::At(*at);
            }
            out.push(Message::new(self.topic.clone(), text.clone()));
            self.next += 1;
        }
        Next::Done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPEN_METEO: &str = "latitude,longitude,elevation,utc_offset_seconds,timezone,timezone_abbreviation\n\
        -34.90334,138.64482,101.0,0,GMT,GMT\n\
        \n\
        time,temperature_2m,relative_humidity_2m\n\
        2024-01-01T00:00,25.3,40\n\
        2024-01-01T01:00,27.4,38\n\
        2024-01-01T02:00,,37\n\
        garbage\n\
        2024-01-01T03:00,28.0,35\n";

    #[test]
    fn finds_the_header_after_metadata() {
        let s = Series::parse(OPEN_METEO, None).unwrap();
        assert_eq!(s.column, "temperature_2m");
        let texts: Vec<_> = s.points.iter().map(|p| p.text.as_str()).collect();
        assert_eq!(texts, ["25.3", "27.4", "28.0"]);
        assert_eq!(s.skipped, 2);
        let h = Series::parse(OPEN_METEO, Some("relative_humidity_2m")).unwrap();
        assert_eq!(h.points.len(), 4);
        assert_eq!(h.points[2].value, 37.0);
    }

    #[test]
    fn clear_errors() {
        assert_eq!(
            Series::parse("a,b\n1,2\n", None),
            Err(ReplayError::NoHeader)
        );
        let e = Series::parse(OPEN_METEO, Some("rain")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no column \"rain\" in the header (columns: temperature_2m, relative_humidity_2m)"
        );
        assert!(matches!(
            Series::parse("time,x\n2024-01-01T00:00,nan\n", None),
            Err(ReplayError::Empty(_))
        ));
    }

    #[test]
    fn accepts_bom_crlf_quotes_and_other_time_formats() {
        let s = Series::parse(
            "\u{feff}\"time\",\"v\"\r\n2024-01-01 00:00:00,1\r\n2024-01-01T00:00:30+00:00,2\r\n",
            None,
        )
        .unwrap();
        assert_eq!(s.points.len(), 2);
        assert_eq!((s.points[1].time - s.points[0].time).num_seconds(), 30);
    }

    #[test]
    fn replays_in_order_with_time_compression() {
        let s = Series::parse(OPEN_METEO, None).unwrap();
        let mut r = Replay::new(
            &s,
            "iotitan/adelaide/out/om/temperature",
            "1h".parse().unwrap(),
        );
        assert_eq!(r.duration(), Duration::from_secs(3));
        let mut out = Vec::new();
        assert_eq!(
            r.poll(Duration::ZERO, &mut out),
            Next::At(Duration::from_secs(1))
        );
        assert_eq!(
            r.poll(Duration::from_millis(999), &mut out),
            Next::At(Duration::from_secs(1))
        );
        assert_eq!(r.poll(Duration::from_secs(5), &mut out), Next::Done);
        let payloads: Vec<_> = out.iter().map(|m| m.payload.as_slice()).collect();
        assert_eq!(payloads, [b"25.3".as_slice(), b"27.4", b"28.0"]);
    }

    #[test]
    fn backwards_time_keeps_file_order() {
        let s = Series::parse(
            "time,v\n2024-01-01T02:00,1\n2024-01-01T01:00,2\n2024-01-01T03:00,3\n",
            None,
        )
        .unwrap();
        let r = Replay::new(&s, "t", Speed::new(3600.0).unwrap());
        let at: Vec<_> = r.rows.iter().map(|r| r.0.as_secs()).collect();
        assert_eq!(at, [0, 0, 1]);
    }

    #[test]
    fn slicing() {
        let s = Series::parse(OPEN_METEO, None).unwrap().slice(1, Some(1));
        assert_eq!(s.points.len(), 1);
        assert_eq!(s.points[0].text, "27.4");
        assert!(
            Series::parse(OPEN_METEO, None)
                .unwrap()
                .slice(9, None)
                .points
                .is_empty()
        );
    }
}
