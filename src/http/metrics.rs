//! `/metrics`: every program's status as Prometheus metrics, in the text exposition format
//! 0.0.4 or, when the scraper asks for it, OpenMetrics 1.0.
//!
//! Written here rather than with a client library: the metrics are not this process's own,
//! registered once, but whatever each program's last report names (a report is
//! self-describing: name, type, help, labels), and both formats are needed; the Rust client
//! (`prometheus-client`) writes OpenMetrics only and wants typed metrics registered ahead.
//! The format rules that matter are kept here and checked by `promtool check metrics`
//! (tests/metrics.rs): one block per family with its HELP and TYPE, names and label names
//! of `[a-zA-Z_][a-zA-Z0-9_]*`, label values and help escaped, counters `_total`.

use super::health::Program;
use crate::status::{Kind, Metric, OFFLINE, ONLINE};
use std::collections::BTreeMap;
use std::fmt::Write;

/// The text exposition format's Content-Type.
pub const TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
/// OpenMetrics' Content-Type.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Which format to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus' text format 0.0.4.
    Text,
    /// OpenMetrics 1.0.
    OpenMetrics,
}

impl Format {
    /// The format an `Accept` header asks for: OpenMetrics when it names it, else text.
    pub fn accepted(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Text,
        }
    }

    /// Its Content-Type.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => TEXT,
            Format::OpenMetrics => OPENMETRICS,
        }
    }
}

/// One family: its type, help and samples (labels, value).
struct Family {
    kind: Kind,
    help: String,
    samples: Vec<(Vec<(String, String)>, f64)>,
}

/// Render `programs` in `format`.
pub fn render(programs: &[Program], format: Format) -> String {
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    let mut add = |name: String, m: &Metric, labels: Vec<(String, String)>| {
        let f = families.entry(name).or_insert_with(|| Family {
            kind: m.kind,
            help: m.help.clone(),
            samples: Vec::new(),
        });
        // A report that types a name differently from the first one (another version)
        // cannot share its family.
        if f.kind == m.kind {
            f.samples.push((labels, m.value));
        }
    };
    for p in programs {
        let base = || {
            vec![
                ("program".to_owned(), p.program.clone()),
                ("instance".to_owned(), p.instance.clone()),
            ]
        };
        if let Some(a) = &p.availability {
            let up = Metric::gauge(
                "up",
                "1 while the program is connected to the broker (its availability is online)",
                if a == ONLINE { 1.0 } else { 0.0 },
            );
            if a == ONLINE || a == OFFLINE {
                add("iotitan_up".into(), &up, base());
            }
        }
        let Some(r) = &p.report else { continue };
        if let Ok(at) = chrono::DateTime::parse_from_rfc3339(&r.at) {
            let m = Metric::gauge(
                "report_timestamp_seconds",
                "When the program's last status report was made, Unix seconds",
                at.timestamp_millis() as f64 / 1000.0,
            );
            add("iotitan_report_timestamp_seconds".into(), &m, base());
        }
        let Some(program) = name(&p.program) else {
            continue;
        };
        for m in &r.metrics {
            let Some(metric) = name(&m.name) else {
                continue;
            };
            let mut labels = vec![("instance".to_owned(), p.instance.clone())];
            labels.extend(
                m.labels
                    .iter()
                    .filter(|(k, _)| name(k).is_some() && !k.starts_with("__") && *k != "instance")
                    .map(|(k, v)| (k.clone(), v.clone())),
            );
            add(format!("iotitan_{program}_{metric}"), m, labels);
        }
    }
    let mut out = String::new();
    for (name, f) in &families {
        if f.samples.is_empty() {
            continue;
        }
        // OpenMetrics names a counter's family without `_total` and its samples with it;
        // the text format names both with it.
        let (family, sample, kind) = match (f.kind, format) {
            (Kind::Counter, Format::Text) => {
                let n = format!("{name}_total");
                (n.clone(), n, "counter")
            }
            (Kind::Counter, Format::OpenMetrics) => {
                (name.clone(), format!("{name}_total"), "counter")
            }
            (Kind::Gauge, _) => (name.clone(), name.clone(), "gauge"),
        };
        let _ = writeln!(out, "# HELP {family} {}", escape(&f.help, false));
        let _ = writeln!(out, "# TYPE {family} {kind}");
        for (labels, value) in &f.samples {
            out.push_str(&sample);
            if !labels.is_empty() {
                out.push('{');
                for (i, (k, v)) in labels.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let _ = write!(out, "{k}=\"{}\"", escape(v, true));
                }
                out.push('}');
            }
            let _ = writeln!(out, " {}", number(*value));
        }
    }
    if format == Format::OpenMetrics {
        out.push_str("# EOF\n");
    }
    out
}

/// `s` if it is a valid metric or label name part (`[a-zA-Z_][a-zA-Z0-9_]*`).
fn name(s: &str) -> Option<&str> {
    let mut chars = s.chars();
    let first = chars.next()?;
    let ok = (first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    ok.then_some(s)
}

/// `s` escaped for a help text (`\` and newlines) or a label value (and `"`).
fn escape(s: &str, quote: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quote => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out
}

/// A sample value as both formats write it.
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::Report;

    fn program(name: &str, instance: &str, metrics: Vec<Metric>) -> Program {
        Program {
            program: name.into(),
            instance: instance.into(),
            availability: Some(ONLINE.into()),
            report: Some(Report {
                program: name.into(),
                instance: instance.into(),
                version: "0".into(),
                started: "2026-12-08T00:00:00Z".into(),
                at: "2026-12-08T00:00:30.5Z".into(),
                summary: "ok".into(),
                metrics,
            }),
        }
    }

    #[test]
    fn families_are_grouped_typed_and_escaped() {
        let programs = [
            program(
                "logger",
                "a",
                vec![
                    Metric::counter("written", "Records \\ handed\nto syslog", 5),
                    Metric::gauge("queued", "Waiting", 1.5),
                ],
            ),
            program(
                "logger",
                "b\"x",
                vec![Metric::counter("written", "Records", 7)],
            ),
            program(
                "bridge",
                "a",
                vec![
                    Metric::gauge("spool_depth", "Spooled", 3.0).label("channel", "1"),
                    Metric::gauge("bad-name", "x", 1.0),
                    Metric::gauge("x", "x", 1.0).label("bad label", "v"),
                ],
            ),
        ];
        let text = render(&programs, Format::Text);
        assert!(
            text.contains(
                "# HELP iotitan_logger_written_total Records \\\\ handed\\nto syslog\n\
             # TYPE iotitan_logger_written_total counter\n\
             iotitan_logger_written_total{instance=\"a\"} 5\n\
             iotitan_logger_written_total{instance=\"b\\\"x\"} 7\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("iotitan_logger_queued{instance=\"a\"} 1.5\n"),
            "{text}"
        );
        assert!(
            text.contains("iotitan_bridge_spool_depth{instance=\"a\",channel=\"1\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("iotitan_up{program=\"bridge\",instance=\"a\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "iotitan_report_timestamp_seconds{program=\"logger\",instance=\"a\"} 1796688030.5\n"
            ),
            "{text}"
        );
        assert!(!text.contains("bad"), "{text}");
        assert!(
            text.contains("iotitan_bridge_x{instance=\"a\"} 1\n"),
            "{text}"
        );
        let om = render(&programs, Format::OpenMetrics);
        assert!(
            om.contains("# TYPE iotitan_logger_written counter\n"),
            "{om}"
        );
        assert!(
            om.contains("iotitan_logger_written_total{instance=\"a\"} 5\n"),
            "{om}"
        );
        assert!(om.ends_with("# EOF\n"), "{om}");
    }

    #[test]
    fn accept_chooses_the_format() {
        assert_eq!(Format::accepted(None), Format::Text);
        assert_eq!(Format::accepted(Some("text/plain")), Format::Text);
        assert_eq!(
            Format::accepted(Some(
                "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
            )),
            Format::OpenMetrics
        );
    }
}
