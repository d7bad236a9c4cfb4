//! The demo's live view: what the pipeline publishes, folded into one compact table.
//!
//! [`View`] is pure: it takes MQTT messages as they come (readings, stats outputs, alert
//! states, alert events, last wills) and renders a frame of text. The demo feeds it from a
//! subscription to `#` and redraws it in place on a terminal, or prints a one-line status
//! periodically when stdout is a file or a pipe.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

/// Alert kinds by topic suffix, as published by `iotitan-alerts`.
const ALERT_SUFFIXES: [(&str, &str); 3] = [
    ("_alert_hi", "hi"),
    ("_alert_lo", "lo"),
    ("_alert_stale", "stale"),
];

/// The stats output shown as "window mean".
const MEAN_SUFFIX: &str = "_mean";

/// Statistics suffixes that mark a stats output (never shown as a reading).
const STAT_SUFFIXES: [&str; 9] = [
    "_count", "_mean", "_min", "_max", "_stddev", "_median", "_first", "_last", "_sum",
];

#[derive(Debug, Default, Clone)]
struct Row {
    last: Option<String>,
    readings: u64,
    mean: Option<String>,
    alerts: BTreeMap<&'static str, bool>,
}

/// Everything the view knows.
#[derive(Debug, Default, Clone)]
pub struct View {
    rows: BTreeMap<String, Row>,
    devices: BTreeMap<String, bool>,
    /// Messages seen.
    pub messages: u64,
    /// Stats outputs seen.
    pub stats_outputs: u64,
    /// Alert transitions seen on the events topic.
    pub alert_events: u64,
    /// The last alert event's payload.
    pub last_event: Option<String>,
    events_topic: String,
}

impl View {
    /// A view that reads alert events from `events_topic`.
    pub fn new(events_topic: &str) -> Self {
        View {
            events_topic: events_topic.to_owned(),
            ..View::default()
        }
    }

    /// Take one message into account.
    pub fn observe(&mut self, topic: &str, payload: &[u8]) {
        self.messages += 1;
        let text = printable(payload);
        if topic == self.events_topic {
            self.alert_events += 1;
            self.last_event = Some(text);
            return;
        }
        if let Some(device) = topic.strip_suffix("/status/LWT") {
            self.devices
                .insert(device.to_owned(), payload == b"Connected");
            return;
        }
        for (suffix, kind) in ALERT_SUFFIXES {
            if let Some(series) = topic.strip_suffix(suffix) {
                let on = payload.eq_ignore_ascii_case(b"on");
                self.row(series).alerts.insert(kind, on);
                return;
            }
        }
        if let Some(stat) = STAT_SUFFIXES.iter().find(|s| topic.ends_with(*s)) {
            self.stats_outputs += 1;
            if *stat == MEAN_SUFFIX {
                let series = &topic[..topic.len() - MEAN_SUFFIX.len()];
                // Means carry full float precision; two decimals are what fits the table.
                let mean = text
                    .trim()
                    .parse::<f64>()
                    .map_or(text, |v| format!("{v:.2}"));
                self.row(series).mean = Some(mean);
            }
            return;
        }
        let row = self.row(topic);
        row.last = Some(text);
        row.readings += 1;
    }

    fn row(&mut self, series: &str) -> &mut Row {
        self.rows.entry(series.to_owned()).or_default()
    }

    /// Alerts currently on, as `series:kind`.
    pub fn alerts_on(&self) -> Vec<String> {
        self.rows
            .iter()
            .flat_map(|(s, r)| {
                r.alerts
                    .iter()
                    .filter(|(_, on)| **on)
                    .map(move |(k, _)| format!("{s}:{k}"))
            })
            .collect()
    }

    /// Whether any alert went on at some point (an event was seen or a state is on).
    pub fn saw_alert(&self) -> bool {
        self.alert_events > 0 || !self.alerts_on().is_empty()
    }

    /// The full table, at most `max_rows` series; `extra` lines go below it.
    pub fn render(&self, elapsed: Duration, max_rows: usize, extra: &[String]) -> String {
        let mut s = String::new();
        let online = self.devices.values().filter(|v| **v).count();
        let _ = writeln!(
            s,
            "iotitan demo · {} · {} messages · devices online {}/{} · Ctrl+C stops",
            clock(elapsed),
            self.messages,
            online,
            self.devices.len()
        );
        let _ = writeln!(
            s,
            "{:<48} {:>10} {:>12}  alerts",
            "series", "last", "window mean"
        );
        let shown: Vec<_> = self.rows.iter().filter(|(_, r)| r.readings > 0).collect();
        for (series, row) in shown.iter().take(max_rows) {
            let alerts: Vec<_> = row
                .alerts
                .iter()
                .map(|(k, on)| format!("{k}:{}", if *on { "ON" } else { "off" }))
                .collect();
            let _ = writeln!(
                s,
                "{:<48} {:>10} {:>12}  {}",
                clip(series, 48),
                clip(row.last.as_deref().unwrap_or("-"), 10),
                clip(row.mean.as_deref().unwrap_or("-"), 12),
                alerts.join(" ")
            );
        }
        if shown.len() > max_rows {
            let _ = writeln!(s, "… and {} more series", shown.len() - max_rows);
        }
        let _ = writeln!(
            s,
            "stats outputs {} · alert events {}{}",
            self.stats_outputs,
            self.alert_events,
            self.last_event
                .as_deref()
                .map(|e| format!(" · last: {}", clip(e, 80)))
                .unwrap_or_default()
        );
        for line in extra {
            let _ = writeln!(s, "{line}");
        }
        s
    }

    /// One status line for logs and pipes.
    pub fn status_line(&self, elapsed: Duration, extra: &str) -> String {
        let on = self.alerts_on();
        format!(
            "[{}] messages {} · series {} · stats outputs {} · alert events {} · alerts on: {}{}",
            clock(elapsed),
            self.messages,
            self.rows.values().filter(|r| r.readings > 0).count(),
            self.stats_outputs,
            self.alert_events,
            if on.is_empty() {
                "none".into()
            } else {
                on.join(", ")
            },
            extra
        )
    }
}

fn clock(d: Duration) -> String {
    let s = d.as_secs();
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// A payload as one short printable string.
fn printable(payload: &[u8]) -> String {
    String::from_utf8_lossy(&payload[..payload.len().min(200)])
        .chars()
        .map(|c| if c.is_control() { '·' } else { c })
        .collect()
}

fn clip(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(width.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "iotitan/adelaide/outdoor/openmeteo/temperature";

    fn view() -> View {
        let mut v = View::new("iotitan/alerts/events");
        v.observe("iotitan/home/living/dht22/status/LWT", b"Connected");
        v.observe("iotitan/home/kitchen/dht22/status/LWT", b"Connection Lost");
        v.observe(T, b"25.3");
        v.observe(T, b"85.0");
        v.observe(&format!("{T}_mean"), b"26.119999999999997");
        v.observe(&format!("{T}_count"), b"60");
        v.observe(&format!("{T}_alert_hi"), b"on");
        v.observe(&format!("{T}_alert_stale"), b"off");
        v.observe("iotitan/alerts/events", br#"{"alert":"hi","state":"on"}"#);
        v.observe("iotitan/home/living/dht22/humidity", b"\x00junk\nline");
        v
    }

    #[test]
    fn folds_readings_stats_and_alerts_per_series() {
        let v = view();
        assert_eq!(v.messages, 10);
        assert_eq!(v.stats_outputs, 2);
        assert_eq!(v.alert_events, 1);
        assert_eq!(v.alerts_on(), [format!("{T}:hi")]);
        assert!(v.saw_alert());
        let row = &v.rows[T];
        assert_eq!(row.last.as_deref(), Some("85.0"));
        assert_eq!(row.mean.as_deref(), Some("26.12"));
        assert_eq!(row.readings, 2);
        // Stats outputs are not series of their own.
        assert!(!v.rows.contains_key(&format!("{T}_count")));
    }

    #[test]
    fn renders_a_compact_table() {
        let frame = view().render(Duration::from_secs(75), 10, &["bridge: dry-run".into()]);
        assert!(frame.starts_with("iotitan demo · 00:01:15 · 10 messages · devices online 1/2"));
        let row = frame.lines().find(|l| l.starts_with(T)).unwrap();
        assert!(
            row.contains("85.0") && row.contains("26.12") && row.contains("hi:ON"),
            "{row}"
        );
        assert!(row.contains("stale:off"), "{row}");
        assert!(frame.lines().all(|l| !l.contains('\0')));
        assert!(frame.contains("·junk·line"), "{frame}");
        assert!(frame.ends_with("bridge: dry-run\n"));
        let short = view().render(Duration::ZERO, 1, &[]);
        assert!(short.contains("… and 1 more series"), "{short}");
    }

    #[test]
    fn status_line() {
        let l = view().status_line(Duration::from_secs(5), " · records 7");
        assert_eq!(
            l,
            format!(
                "[00:00:05] messages 10 · series 2 · stats outputs 2 · alert events 1 · alerts on: {T}:hi · records 7"
            )
        );
    }

    #[test]
    fn clipping_counts_characters() {
        assert_eq!(clip("ééééé", 3), "éé…");
        assert_eq!(clip("abc", 3), "abc");
    }
}
