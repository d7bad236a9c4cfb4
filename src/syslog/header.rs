//! Syslog message headers: RFC 3164 (`<PRI>Mmm dd hh:mm:ss host ident[pid]: `) or RFC 5424
//! (`<PRI>1 timestamp host ident pid - - `), with the time formatted once per second.
//!
//! Why not the `syslog` crate's formatters: its RFC 3164 one stamps UTC (receivers read 3164
//! times as local time) and re-parses a time format for every message. We keep its
//! `Facility` and `Severity` types and priority encoding.

use crate::config::{SyslogConfig, SyslogFormat};
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// Formats syslog messages (header + record) for one program.
pub struct Formatter {
    format: SyslogFormat,
    /// `<PRI>` for facility and severity info.
    pri: String,
    /// `host ` (with trailing space) or empty.
    host: String,
    /// `ident[pid]: ` (3164) or `ident pid - - ` (5424).
    tag: String,
    cache_sec: u64,
    /// The header up to the end of the seconds of `cache_sec` (3164: whole timestamp + space).
    cache: String,
    /// 5424: the UTC offset suffix (`+00:00`).
    offset: String,
}

impl Formatter {
    /// A formatter for `cfg`; `with_host` puts the host name in 3164 headers (network
    /// targets; local sockets, like glibc's syslog(), leave it to the daemon).
    pub fn new(cfg: &SyslogConfig, with_host: bool) -> Self {
        let pri = format!(
            "<{}>",
            cfg.facility() as u8 | ::syslog::Severity::LOG_INFO as u8
        );
        let pid = std::process::id();
        let hostname = cfg.hostname.clone().unwrap_or_else(local_hostname);
        let (host, tag) = match cfg.format {
            SyslogFormat::Rfc3164 => (
                if with_host {
                    format!("{hostname} ")
                } else {
                    String::new()
                },
                format!("{}[{pid}]: ", cfg.identifier),
            ),
            SyslogFormat::Rfc5424 => (
                format!("{hostname} "),
                format!("{} {pid} - - ", cfg.identifier),
            ),
        };
        Formatter {
            format: cfg.format,
            pri,
            host,
            tag,
            cache_sec: u64::MAX,
            cache: String::new(),
            offset: String::new(),
        }
    }

    /// Append the syslog message for `msg`, stamped `now`, to `out`.
    pub fn message(&mut self, now: SystemTime, msg: &[u8], out: &mut Vec<u8>) {
        let d = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let sec = d.as_secs();
        if sec != self.cache_sec {
            self.refresh(sec);
        }
        out.extend_from_slice(self.pri.as_bytes());
        out.extend_from_slice(self.cache.as_bytes());
        if self.format == SyslogFormat::Rfc5424 {
            // Microseconds, as RFC 5424 allows at most six digits.
            let _ = write!(out, ".{:06}{} ", d.subsec_micros(), self.offset);
        }
        out.extend_from_slice(self.host.as_bytes());
        out.extend_from_slice(self.tag.as_bytes());
        out.extend_from_slice(msg);
    }

    fn refresh(&mut self, sec: u64) {
        use chrono::{Local, TimeZone};
        let t = Local
            .timestamp_opt(i64::try_from(sec).unwrap_or(0), 0)
            .single()
            .unwrap_or_else(Local::now);
        self.cache_sec = sec;
        match self.format {
            // RFC 3164: "Mmm dd hh:mm:ss", day padded with a space, local time.
            SyslogFormat::Rfc3164 => self.cache = t.format("%b %e %H:%M:%S ").to_string(),
            SyslogFormat::Rfc5424 => {
                self.cache = format!("1 {}", t.format("%Y-%m-%dT%H:%M:%S"));
                self.offset = t.format("%:z").to_string();
            }
        }
    }
}

/// This machine's host name as syslog headers carry it: one word, `localhost` when unknown.
pub fn local_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty() && !s.contains(char::is_whitespace))
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn cfg(format: SyslogFormat) -> SyslogConfig {
        SyslogConfig {
            format,
            hostname: Some("pi".into()),
            ..SyslogConfig::default()
        }
    }

    fn text(f: &mut Formatter, t: SystemTime, msg: &str) -> String {
        let mut out = Vec::new();
        f.message(t, msg.as_bytes(), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn rfc3164_header() {
        let mut f = Formatter::new(&cfg(SyslogFormat::Rfc3164), false);
        let t = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let s = text(&mut f, t, "a/b 1");
        // local0.info = 16*8 + 6 = 134
        let re = regex::Regex::new(
            r"^<134>[A-Z][a-z]{2} [ 1-3][0-9] \d\d:\d\d:\d\d iotitan-logger\[\d+\]: a/b 1$",
        )
        .unwrap();
        assert!(re.is_match(&s), "{s}");
        let mut f = Formatter::new(&cfg(SyslogFormat::Rfc3164), true);
        assert!(text(&mut f, t, "x").contains(" pi iotitan-logger["));
    }

    #[test]
    fn rfc5424_header() {
        let mut f = Formatter::new(&cfg(SyslogFormat::Rfc5424), true);
        let t = UNIX_EPOCH + Duration::from_micros(1_795_000_000_123_456);
        let s = text(&mut f, t, "a/b 1");
        let re = regex::Regex::new(
            r"^<134>1 \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.123456[+-]\d\d:\d\d pi iotitan-logger \d+ - - a/b 1$",
        )
        .unwrap();
        assert!(re.is_match(&s), "{s}");
    }

    #[test]
    fn header_cache_follows_the_clock() {
        let mut f = Formatter::new(&cfg(SyslogFormat::Rfc5424), true);
        let t = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let a = text(&mut f, t, "m");
        let b = text(&mut f, t + Duration::from_secs(1), "m");
        assert_ne!(a, b);
    }
}
