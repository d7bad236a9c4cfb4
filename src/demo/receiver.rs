//! The demo's syslog receiver: a unix datagram socket whose records are written to a file in
//! the RFC 3339 format of rsyslog's `RSYSLOG_FileFormat`
//! (`2026-11-22T05:00:14.123456+00:00 host iotitan-logger[4242]: msg`), which stats reads.
//!
//! It stands in for the system's syslog daemon on a machine that has none (a container, a
//! fresh laptop), so the demo's records land in `./demo/syslog` and not in the system log.
//! Like rsyslog for local sockets, the time written is the time of receipt.

use crate::shutdown::Shutdown;
use crate::syslog::line;
use anyhow::Context;
use chrono::{DateTime, Local, SecondsFormat};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::net::UnixDatagram;

/// Largest datagram accepted (the logger keeps records well under this).
const MAX_DATAGRAM: usize = 256 * 1024;

/// A receiver bound to its socket.
pub struct Receiver {
    socket: UnixDatagram,
    path: PathBuf,
    output: PathBuf,
    hostname: String,
    /// Records written so far.
    pub records: Arc<AtomicU64>,
}

impl Receiver {
    /// Bind `socket` (replacing a stale one) and append records to `output`.
    pub fn bind(socket: &Path, output: &Path) -> anyhow::Result<Receiver> {
        let _ = std::fs::remove_file(socket);
        let sock = UnixDatagram::bind(socket)
            .with_context(|| format!("cannot bind the demo syslog socket {}", socket.display()))?;
        Ok(Receiver {
            socket: sock,
            path: socket.to_owned(),
            output: output.to_owned(),
            hostname: crate::syslog::header::local_hostname(),
            records: Arc::default(),
        })
    }

    /// Write every datagram received until `shutdown`, then the ones still queued.
    pub async fn run(self, mut shutdown: Shutdown) -> anyhow::Result<()> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.output)
            .with_context(|| format!("cannot open {}", self.output.display()))?;
        let mut out = std::io::BufWriter::new(file);
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let mut line = Vec::new();
        loop {
            let n = tokio::select! {
                r = self.socket.recv(&mut buf) => r.context("demo syslog socket")?,
                _ = shutdown.recv() => break,
            };
            self.write(&buf[..n], &mut line, &mut out)?;
            // Flush when the socket is idle, so the file is current for stats and `tail -f`.
            while let Ok(n) = self.socket.try_recv(&mut buf) {
                self.write(&buf[..n], &mut line, &mut out)?;
            }
            out.flush().context("demo syslog file")?;
        }
        while let Ok(n) = self.socket.try_recv(&mut buf) {
            self.write(&buf[..n], &mut line, &mut out)?;
        }
        out.flush().context("demo syslog file")?;
        let _ = std::fs::remove_file(&self.path);
        Ok(())
    }

    fn write(
        &self,
        datagram: &[u8],
        line: &mut Vec<u8>,
        out: &mut impl Write,
    ) -> anyhow::Result<()> {
        line.clear();
        file_line(datagram, Local::now(), &self.hostname, line);
        out.write_all(line).context("demo syslog file")?;
        self.records.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Turn one syslog datagram (RFC 3164 as glibc writes it, with or without a host; or
/// RFC 5424) into one file line `TIME HOST TAG[PID]: MSG\n`. Control bytes are escaped as
/// `#ooo` (rsyslog's escaping), so one datagram is always one line.
pub fn file_line(datagram: &[u8], now: DateTime<Local>, hostname: &str, out: &mut Vec<u8>) {
    let mut rest = line::after_priority(datagram).unwrap_or(datagram);
    let mut host = hostname.as_bytes();
    let mut tag_and_msg: Vec<u8> = Vec::new();
    if let Some(r) = rest.strip_prefix(b"1 ") {
        // RFC 5424: TIMESTAMP HOST APP PROCID MSGID SD MSG
        let mut f = r.splitn(6, |b| *b == b' ');
        let (_ts, h, app, pid, _msgid, tail) =
            (f.next(), f.next(), f.next(), f.next(), f.next(), f.next());
        if let (Some(h), Some(app), Some(pid)) = (h, app, pid) {
            if h != b"-" {
                host = h;
            }
            let msg = line::skip_structured_data(tail.unwrap_or_default()).unwrap_or_default();
            let msg = msg.strip_prefix(b" ").unwrap_or(msg);
            let msg = msg.strip_prefix("\u{feff}".as_bytes()).unwrap_or(msg);
            tag_and_msg.extend_from_slice(app);
            if pid != b"-" {
                tag_and_msg.extend_from_slice(b"[");
                tag_and_msg.extend_from_slice(pid);
                tag_and_msg.extend_from_slice(b"]");
            }
            tag_and_msg.extend_from_slice(b": ");
            tag_and_msg.extend_from_slice(msg);
        } else {
            tag_and_msg.extend_from_slice(r);
        }
    } else {
        rest = skip_rfc3164_time(rest);
        // A host is there when the first word is not a tag (`tag:` or `tag[pid]:`) but the
        // second one is.
        let mut words = rest.splitn(3, |b| *b == b' ');
        if let (Some(first), Some(second)) = (words.next(), words.next())
            && !first.ends_with(b":")
            && second.ends_with(b":")
            && !first.is_empty()
        {
            host = first;
            rest = &rest[first.len() + 1..];
        }
        tag_and_msg.extend_from_slice(rest);
    }
    while tag_and_msg.last().is_some_and(|b| *b == b'\n' || *b == 0) {
        tag_and_msg.pop();
    }
    out.extend_from_slice(now.to_rfc3339_opts(SecondsFormat::Micros, false).as_bytes());
    out.push(b' ');
    out.extend_from_slice(host);
    out.push(b' ');
    for &b in &tag_and_msg {
        if b < 0x20 || b == 0x7f {
            out.extend_from_slice(format!("#{b:03o}").as_bytes());
        } else {
            out.push(b);
        }
    }
    out.push(b'\n');
}

/// Skip `Mmm dd hh:mm:ss ` if present.
fn skip_rfc3164_time(d: &[u8]) -> &[u8] {
    let looks_like_time = d.len() > 16
        && d[..3].iter().all(u8::is_ascii_alphabetic)
        && d[3] == b' '
        && d[6] == b' '
        && d[9] == b':'
        && d[12] == b':'
        && d[15] == b' ';
    if looks_like_time { &d[16..] } else { d }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn line(d: &[u8]) -> String {
        let now = Local.timestamp_opt(1_795_323_614, 123_456_000).unwrap();
        let mut out = Vec::new();
        file_line(d, now, "box", &mut out);
        let s = String::from_utf8(out).unwrap();
        let (ts, rest) = s.split_once(' ').unwrap();
        assert!(DateTime::parse_from_rfc3339(ts).is_ok(), "{ts}");
        assert!(ts.contains(".123456"), "{ts}");
        rest.to_owned()
    }

    #[test]
    fn glibc_style_without_host() {
        assert_eq!(
            line(b"<134>Nov 22 05:00:14 iotitan-logger[42]: iotitan/a/b 21.5"),
            "box iotitan-logger[42]: iotitan/a/b 21.5\n"
        );
    }

    #[test]
    fn rfc3164_with_host() {
        assert_eq!(
            line(b"<134>Nov  2 05:00:14 pi iotitan-logger[42]: t 1"),
            "pi iotitan-logger[42]: t 1\n"
        );
    }

    #[test]
    fn rfc5424() {
        assert_eq!(
            line(b"<134>1 2026-11-22T05:00:14.1Z pi iotitan-logger 42 - - t 1"),
            "pi iotitan-logger[42]: t 1\n"
        );
        assert_eq!(
            line(b"<134>1 - - app - ID [x a=\"] b\"][y] \xef\xbb\xbfmsg"),
            "box app: msg\n"
        );
    }

    #[test]
    fn hostile_datagrams_stay_one_line() {
        assert_eq!(line(b"tag: a\nb\x00c\n"), "box tag: a#012b#000c\n");
        assert_eq!(line(b""), "box \n");
        assert_eq!(line(b"<9999999>x"), "box <9999999>x\n");
        assert_eq!(line(b"<1>1 short"), "box short\n");
        let mut out = Vec::new();
        file_line(b"tag: \xff\xfe", Local::now(), "box", &mut out);
        assert!(out.ends_with(b" box tag: \xff\xfe\n"));
    }
}
