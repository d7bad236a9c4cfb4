//! A real rsyslogd per test (private socket, loopback ports, its own output file), and
//! reading back the lines it wrote.

use super::system::kill;
use super::{TIMEOUT, free_port, require, wait_exit, wait_until};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// An rsyslogd writing everything it receives to `DIR/syslog` in RSYSLOG_FileFormat
/// (RFC 3339 timestamps), listening on a private unix socket and loopback UDP/TCP ports.
pub struct Rsyslogd {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub udp_port: u16,
    pub tcp_port: u16,
    /// RELP (imrelp) port, listened on when started with [`Rsyslogd::start_relp`].
    pub relp_port: u16,
    relp: bool,
    pub output: PathBuf,
    child: Option<Child>,
}

impl Rsyslogd {
    /// Start rsyslogd and wait until all three inputs are up.
    pub fn start() -> Rsyslogd {
        Self::start_with_template("RSYSLOG_FileFormat")
    }

    /// Start with an imrelp input on `relp_port` as well (Debian package rsyslog-relp).
    pub fn start_relp() -> Rsyslogd {
        let mut r = Self::not_started("RSYSLOG_FileFormat", "");
        r.relp = true;
        r.write_conf("RSYSLOG_FileFormat", "");
        r.spawn();
        r
    }

    /// Start with another file template (`RSYSLOG_TraditionalFileFormat` for the old format).
    pub fn start_with_template(template: &str) -> Rsyslogd {
        let mut r = Self::not_started(template, "");
        r.spawn();
        r
    }

    /// Start with a file template defined here: `string` is an rsyslog template string in
    /// rsyslog's syntax (properties such as `%APP-NAME%`, `%PROCID%`, `%msg%`; end it with the
    /// two characters `\n`; no double quotes).
    pub fn start_with_template_string(string: &str) -> Rsyslogd {
        let def = format!("template(name=\"testTemplate\" type=\"string\" string=\"{string}\")\n");
        let mut r = Self::not_started("testTemplate", &def);
        r.spawn();
        r
    }

    /// Configured (ports, socket and output path chosen) but not running: the target of a
    /// syslog daemon that is down. [`Rsyslogd::restart`] starts it.
    pub fn stopped() -> Rsyslogd {
        Self::not_started("RSYSLOG_FileFormat", "")
    }

    fn not_started(template: &str, template_def: &str) -> Rsyslogd {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("log.sock");
        let output = dir.path().join("syslog");
        let r = Rsyslogd {
            socket,
            output,
            udp_port: free_port(),
            tcp_port: free_port(),
            relp_port: free_port(),
            relp: false,
            dir,
            child: None,
        };
        r.write_conf(template, template_def);
        r
    }

    fn write_conf(&self, template: &str, template_def: &str) {
        let d = self.dir.path().display();
        let conf = format!(
            r#"{template_def}global(workDirectory="{d}" maxMessageSize="1m")
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="{d}/log.sock" UseSpecialParser="off" CreatePath="on")
module(load="imudp")
input(type="imudp" address="127.0.0.1" port="{udp}" rcvbufSize="16m")
module(load="imtcp" MaxFrameSize="4000000")
input(type="imtcp" address="127.0.0.1" port="{tcp}")
{relp}action(type="omfile" file="{d}/syslog" template="{template}")
"#,
            udp = self.udp_port,
            tcp = self.tcp_port,
            relp = if self.relp {
                format!(
                    "module(load=\"imrelp\")\ninput(type=\"imrelp\" address=\"127.0.0.1\" port=\"{}\" \
                     maxDataSize=\"1m\")\n",
                    self.relp_port
                )
            } else {
                String::new()
            },
        );
        std::fs::write(self.dir.path().join("rsyslog.conf"), conf).expect("write rsyslog.conf");
    }

    fn spawn(&mut self) {
        let bin = require("rsyslogd", "rsyslog");
        if self.relp {
            let module = Path::new("/usr/lib/x86_64-linux-gnu/rsyslog/imrelp.so");
            assert!(
                module.exists() || Path::new("/usr/lib/rsyslog/imrelp.so").exists(),
                "rsyslog's imrelp module is missing: install the package rsyslog-relp"
            );
        }
        let d = self.dir.path();
        let _ = std::fs::remove_file(&self.socket);
        let child = Command::new(bin)
            .arg("-n")
            .arg("-f")
            .arg(d.join("rsyslog.conf"))
            .arg("-i")
            .arg(d.join("rsyslogd.pid"))
            // Its traditional and RFC 3339 timestamps are in local time: the same zone the
            // tests give the programs that read them back, whatever the machine's zone.
            .env("TZ", "UTC")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("rsyslogd.err")).expect("stderr file"))
            .spawn()
            .expect("start rsyslogd");
        self.child = Some(child);
        let (sock, tcp) = (self.socket.clone(), self.tcp_port);
        let relp = self.relp.then_some(self.relp_port);
        assert!(
            wait_until(TIMEOUT, || sock.exists()
                && TcpStream::connect(("127.0.0.1", tcp)).is_ok()
                && relp
                    .is_none_or(|p| TcpStream::connect(("127.0.0.1", p)).is_ok())),
            "rsyslogd did not come up; see {}",
            d.join("rsyslogd.err").display()
        );
    }

    /// Stop rsyslogd (SIGTERM) and wait for it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill(&mut c, "-TERM");
            wait_exit(&mut c, TIMEOUT).expect("rsyslogd stops");
        }
    }

    /// Stop (if running) and start again with the same sockets and output file.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// The output file's complete lines so far.
    pub fn lines(&self) -> Vec<String> {
        std::fs::read(&self.output)
            .map(|b| {
                // Complete lines only: rsyslogd may be halfway through writing the last one
                // (once read as `stream/…` with an empty payload).
                let end = b.iter().rposition(|&c| c == b'\n').map_or(0, |i| i + 1);
                String::from_utf8_lossy(&b[..end])
                    .lines()
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Wait until the output holds at least `n` lines containing `needle`; returns them all.
    pub fn wait_lines(&self, needle: &str, n: usize, timeout: Duration) -> Vec<String> {
        let mut got = Vec::new();
        let ok = wait_until(timeout, || {
            got = self
                .lines()
                .into_iter()
                .filter(|l| l.contains(needle))
                .collect();
            got.len() >= n
        });
        assert!(ok, "expected {n} lines with {needle:?}, got {}", got.len());
        got
    }
}

impl Drop for Rsyslogd {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The MSG part of an rsyslog file line written by `ident` (RSYSLOG_FileFormat or the
/// traditional format), or `None` for other lines.
pub fn syslog_msg<'a>(line: &'a str, ident: &str) -> Option<&'a str> {
    let start = line.find(&format!(" {ident}["))?;
    let rest = &line[start..];
    let end = rest.find("]: ")?;
    Some(&rest[end + 3..])
}
