//! Test harness: real mosquitto, rsyslogd and systemd-journald, started in a temp dir on
//! loopback ports or private sockets, stopped and cleaned up on drop.
//!
//! A daemon that is missing makes the test fail loudly (with the package to install); nothing
//! is skipped.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long any wait in a test may take before it fails.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// A free TCP port on 127.0.0.1 (also free for UDP in practice: probed both), handed to no
/// other test in the last hour.
///
/// The kernel picks a port free *now*; once released, it may hand the same one to a test in
/// another process (the test binaries run side by side), whose daemon then fails to bind or,
/// worse, answers where a test expected nobody. Each port handed out is claimed with a file
/// created exclusively in a directory all test processes share; a claim older than an hour
/// is taken to be left over from an earlier run.
pub fn free_port() -> u16 {
    let claims = std::env::temp_dir().join("iotitan-test-ports");
    let registry = std::fs::create_dir_all(&claims).is_ok();
    for _ in 0..10_000 {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
        let port = l.local_addr().expect("local addr").port();
        if UdpSocket::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        if !registry {
            return port;
        }
        let claim = claims.join(port.to_string());
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&claim)
        {
            Ok(_) => return port,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let stale = std::fs::metadata(&claim)
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > Duration::from_secs(3600)));
                if stale {
                    // Whoever creates it next owns it: `create_new` lets only one win.
                    let _ = std::fs::remove_file(&claim);
                }
            }
            // A registry this user cannot write (another user's): the kernel's word alone.
            Err(_) => return port,
        }
    }
    panic!(
        "no unclaimed free port in 10 000 tries ({})",
        claims.display()
    );
}

/// Poll `cond` until it holds or `timeout` passes; returns whether it held. For conditions
/// that have no event to await (a file growing, a port opening).
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Path of a program, or a loud failure naming the package.
pub fn require(program: &str, package: &str) -> PathBuf {
    for dir in [
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
        "/lib/systemd",
        "/usr/lib/systemd",
    ] {
        let p = Path::new(dir).join(program);
        if p.exists() {
            return p;
        }
    }
    panic!("{program} is not installed: `apt-get install {package}` (.ci/run does this)");
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0"))
        .unwrap_or(false)
}

fn kill(child: &mut Child, signal: &str) {
    let _ = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status();
}

/// Wait for a child to exit, at most `timeout`; returns its status.
pub fn wait_exit(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Unacknowledged QoS 1/2 messages the test broker sends one client (`max_inflight_messages`).
pub const MOSQUITTO_INFLIGHT: usize = 100;

/// A mosquitto broker on 127.0.0.1 with persistence in its own temp dir.
pub struct Mosquitto {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    extra: String,
}

impl Mosquitto {
    /// Start a broker and wait until it accepts connections.
    pub fn start() -> Mosquitto {
        Self::start_with("")
    }

    /// Start a broker with `extra` lines appended to its config (e.g. `log_type subscribe`).
    pub fn start_with(extra: &str) -> Mosquitto {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut m = Mosquitto {
            port: free_port(),
            dir,
            child: None,
            extra: extra.to_owned(),
        };
        m.spawn();
        m
    }

    /// A broker that refuses (SUBACK return code 0x80) every subscription to a filter
    /// matching `pattern`, through mosquitto's dynamic-security plugin: its `acl_file` never
    /// refuses a subscription, it only filters what is delivered.
    pub fn start_refusing(pattern: &str) -> Mosquitto {
        let plugin = [
            "/usr/lib/x86_64-linux-gnu",
            "/usr/lib/aarch64-linux-gnu",
            "/usr/lib",
        ]
        .iter()
        .map(|d| Path::new(d).join("mosquitto_dynamic_security.so"))
        .find(|p| p.exists())
        .expect("mosquitto_dynamic_security.so (package mosquitto) is required");
        let dir = tempfile::tempdir().expect("tempdir");
        let json = dir.path().join("dynamic-security.json");
        let config = serde_json::json!({
            "defaultACLAccess": {
                "publishClientSend": true, "publishClientReceive": true,
                "subscribe": true, "unsubscribe": true,
            },
            "clients": [],
            "groups": [{"groupname": "anonymous", "roles": [{"rolename": "refuse"}]}],
            "anonymousGroup": "anonymous",
            "roles": [{"rolename": "refuse", "acls": [
                {"acltype": "subscribePattern", "topic": pattern, "allow": false},
            ]}],
        });
        std::fs::write(&json, config.to_string()).expect("write the dynamic-security config");
        let mut m = Mosquitto {
            port: free_port(),
            extra: format!(
                "plugin {}\nplugin_opt_config_file {}\n",
                plugin.display(),
                json.display()
            ),
            dir,
            child: None,
        };
        m.spawn();
        m
    }

    /// The broker's log so far.
    /// Its log (stderr) so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }

    /// Wait until the broker's log has a line containing `needle` (with
    /// `log_type subscribe`, `CLIENT-ID QOS FILTER` shows a subscription was processed).
    pub fn wait_log(&self, needle: &str) {
        assert!(
            wait_until(TIMEOUT, || self.log().lines().any(|l| l.contains(needle))),
            "no {needle:?} in the broker log:\n{}",
            self.log()
        );
    }

    fn spawn(&mut self) {
        let bin = require("mosquitto", "mosquitto");
        let conf = self.dir.path().join("mosquitto.conf");
        let mut text = format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n\
             persistence_location {dir}/\nmax_queued_messages 0\nmax_inflight_messages {MOSQUITTO_INFLIGHT}\n\
             log_dest file {dir}/mosquitto.log\n",
            port = self.port,
            dir = self.dir.path().display()
        );
        if is_root() {
            text.push_str("user root\n");
        }
        text.push_str(&self.extra);
        text.push('\n');
        std::fs::write(&conf, text).expect("write mosquitto.conf");
        let child = Command::new(bin)
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto");
        self.child = Some(child);
        let port = self.port;
        assert!(
            wait_until(TIMEOUT, || TcpStream::connect(("127.0.0.1", port)).is_ok()),
            "mosquitto did not listen on {port}"
        );
    }

    /// `host:port` for config files.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Stop (SIGTERM, so it saves its persistence file) and wait.
    ///
    /// SIGTERM is sent again every second until it exits: mosquitto 2.0's `main()` installs
    /// its signal handlers after opening its listeners and then sets its run flag to 1 before
    /// entering the main loop, so a SIGTERM that comes just after the port opened (a test
    /// stopping a broker it has just started) is forgotten. Seen once: still running after
    /// 30 s.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let deadline = Instant::now() + TIMEOUT;
            let stopped = loop {
                kill(&mut c, "-TERM");
                if let Some(s) = wait_exit(&mut c, Duration::from_secs(1)) {
                    break Some(s);
                }
                if Instant::now() >= deadline {
                    break None;
                }
            };
            stopped.expect("mosquitto stops");
        }
    }

    /// Stop and start again on the same port with the same persistence.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Stop and start again on the same port without its persistence file: every session
    /// is gone, as after a broker that lost its state.
    pub fn restart_forgetting(&mut self) {
        self.stop();
        let db = self.dir.path().join("mosquitto.db");
        std::fs::remove_file(&db).expect("mosquitto saved a persistence file");
        self.spawn();
    }

    /// A `[mqtt]` section for this broker.
    pub fn mqtt_toml(&self, client_id: &str) -> String {
        format!(
            "[mqtt]\nhost = \"127.0.0.1\"\nport = {}\nclient_id = \"{client_id}\"\nkeep_alive = \"5s\"\nreconnect_max = \"1s\"\n",
            self.port
        )
    }

    /// Run `mosquitto_pub` with `args` against this broker.
    pub fn publish(&self, args: &[&str]) {
        let pubbin = require("mosquitto_pub", "mosquitto-clients");
        let st = Command::new(pubbin)
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .status()
            .expect("run mosquitto_pub");
        assert!(st.success(), "mosquitto_pub {args:?} failed");
    }

    /// Run `mosquitto_pub -l` with `args`, one message per line of `lines`.
    pub fn publish_lines(&self, args: &[&str], lines: &Path) {
        let pubbin = require("mosquitto_pub", "mosquitto-clients");
        let st = Command::new(pubbin)
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-l"])
            .args(args)
            .stdin(std::fs::File::open(lines).expect("open lines file"))
            .status()
            .expect("run mosquitto_pub");
        assert!(st.success(), "mosquitto_pub -l {args:?} failed");
    }

    /// Start `mosquitto_sub -v` on `topics`; lines come out of the returned reader.
    pub fn subscribe(&self, topics: &[&str], extra: &[&str]) -> Subscriber {
        let subbin = require("mosquitto_sub", "mosquitto-clients");
        let mut cmd = Command::new(subbin);
        cmd.args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-v"]);
        for t in topics {
            cmd.args(["-t", t]);
        }
        cmd.args(extra);
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto_sub");
        let out = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // Lines are read as bytes: a binary payload must not end the subscription.
            let mut reader = BufReader::new(out);
            let mut buf = Vec::new();
            while matches!(reader.read_until(b'\n', &mut buf), Ok(n) if n > 0) {
                let line = String::from_utf8_lossy(&buf);
                if tx.send(line.trim_end_matches('\n').to_owned()).is_err() {
                    break;
                }
                buf.clear();
            }
        });
        Subscriber { child, rx }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A running `mosquitto_sub -v`.
pub struct Subscriber {
    child: Child,
    rx: std::sync::mpsc::Receiver<String>,
}

impl Subscriber {
    /// The next line, or `None` after `timeout`.
    pub fn next_line(&self, timeout: Duration) -> Option<String> {
        self.rx.recv_timeout(timeout).ok()
    }

    /// Lines until one satisfies `pred` (returned) or the timeout passes (panics with what
    /// was seen).
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.rx.recv_timeout(left) {
                Ok(l) if pred(&l) => return l,
                Ok(l) => seen.push(l),
                Err(_) => break,
            }
        }
        panic!("no matching line within {timeout:?}; saw {seen:#?}");
    }

    /// Every line that arrives within `quiet` of the previous one.
    pub fn drain(&self, quiet: Duration) -> Vec<String> {
        let mut v = Vec::new();
        while let Ok(l) = self.rx.recv_timeout(quiet) {
            v.push(l);
        }
        v
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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

/// A systemd-journald in a journal namespace of its own (no rate limit, volatile storage).
pub struct Journald {
    pub namespace: String,
    child: Option<Child>,
}

impl Journald {
    /// Start journald for a fresh namespace named after `prefix`.
    pub fn start(prefix: &str) -> Journald {
        let bin = require("systemd-journald", "systemd");
        require("journalctl", "systemd");
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let namespace = format!(
            "{prefix}{}x{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        );
        std::fs::create_dir_all("/etc/systemd").expect("create /etc/systemd");
        std::fs::write(
            format!("/etc/systemd/journald@{namespace}.conf"),
            "[Journal]\nStorage=volatile\nRateLimitIntervalSec=0\nRateLimitBurst=0\nRuntimeMaxUse=256M\n",
        )
        .expect("write journald namespace config");
        let child = Command::new(bin)
            .arg(&namespace)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start systemd-journald");
        let j = Journald {
            namespace,
            child: Some(child),
        };
        let sock = j.socket();
        assert!(
            wait_until(TIMEOUT, || sock.exists()),
            "journald did not create {}",
            sock.display()
        );
        j
    }

    /// The syslog socket of the namespace.
    pub fn socket(&self) -> PathBuf {
        PathBuf::from(format!("/run/systemd/journal.{}/dev-log", self.namespace))
    }

    /// `journal:NS`, as a stats source.
    pub fn source(&self) -> String {
        format!("journal:{}", self.namespace)
    }

    /// MESSAGE fields of records with `identifier`, via `journalctl -o json`.
    pub fn messages(&self, identifier: &str) -> Vec<serde_json::Value> {
        let out = Command::new("journalctl")
            .args([
                "--namespace",
                &self.namespace,
                "-o",
                "json",
                "--no-pager",
                "-t",
            ])
            .arg(identifier)
            .output()
            .expect("run journalctl");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Wait until at least `n` records with `identifier` are there; returns them.
    pub fn wait_messages(
        &self,
        identifier: &str,
        n: usize,
        timeout: Duration,
    ) -> Vec<serde_json::Value> {
        let mut got = Vec::new();
        let ok = wait_until(timeout, || {
            got = self.messages(identifier);
            got.len() >= n
        });
        assert!(ok, "expected {n} journal records, got {}", got.len());
        got
    }
}

impl Drop for Journald {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let ns = &self.namespace;
        let _ = std::fs::remove_dir_all(format!("/run/systemd/journal.{ns}"));
        let _ = std::fs::remove_file(format!("/etc/systemd/journald@{ns}.conf"));
        if let Ok(id) = std::fs::read_to_string("/etc/machine-id") {
            let id = id.trim();
            let _ = std::fs::remove_dir_all(format!("/run/log/journal/{id}.{ns}"));
            let _ = std::fs::remove_dir_all(format!("/var/log/journal/{id}.{ns}"));
        }
    }
}

/// A config file in `dir` with `text`; returns its path.
pub fn write_config(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("iotitan.toml");
    std::fs::write(&p, text).expect("write config");
    p
}

/// A QoS 1 publisher with a persistent session (rumqttc), running on its own thread: it
/// survives broker restarts by retransmitting what was not acknowledged.
pub struct Publisher {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    sent: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Publisher {
    /// Publish `messages` (topic, payload) at about `rate` per second with `qos`, in order.
    pub fn start(
        port: u16,
        id: &str,
        messages: Vec<(String, Vec<u8>)>,
        rate: u32,
        qos: u8,
    ) -> Publisher {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (stop2, sent2, id) = (stop.clone(), sent.clone(), id.to_owned());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let mut o = rumqttc::MqttOptions::new(id, "127.0.0.1", port);
                o.set_clean_session(false);
                o.set_keep_alive(Duration::from_secs(5));
                o.set_max_packet_size(1 << 24, 1 << 24);
                let (client, mut el) = rumqttc::AsyncClient::new(o, 1000);
                let stop3 = stop2.clone();
                let poller = tokio::spawn(async move {
                    while !stop3.load(Ordering::SeqCst) {
                        if el.poll().await.is_err() {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                });
                let qos = match qos {
                    0 => rumqttc::QoS::AtMostOnce,
                    1 => rumqttc::QoS::AtLeastOnce,
                    _ => rumqttc::QoS::ExactlyOnce,
                };
                let batch = (rate / 100).max(1) as usize;
                let mut tick = tokio::time::interval(Duration::from_millis(10));
                for chunk in messages.chunks(batch) {
                    tick.tick().await;
                    for (t, p) in chunk {
                        if client
                            .publish(t.clone(), qos, false, p.clone())
                            .await
                            .is_err()
                        {
                            return;
                        }
                        sent2.fetch_add(1, Ordering::SeqCst);
                    }
                }
                // Keep polling (retransmissions after a restart) until told to stop.
                let _ = poller.await;
            });
        });
        Publisher {
            stop,
            sent,
            thread: Some(thread),
        }
    }

    /// How many messages were handed to the client so far.
    pub fn sent(&self) -> usize {
        self.sent.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        // The poll loop may sit in a read; the thread ends with the process otherwise.
        if let Some(t) = self.thread.take() {
            let deadline = Instant::now() + Duration::from_secs(2);
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
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

/// A systemd notification socket (`NOTIFY_SOCKET`): a unix datagram socket in a temp dir,
/// read by the test like systemd reads it.
pub struct NotifySocket {
    pub path: PathBuf,
    socket: std::os::unix::net::UnixDatagram,
    _dir: tempfile::TempDir,
    /// Every datagram received so far, in order.
    pub seen: std::cell::RefCell<Vec<String>>,
    /// The last error a receive ended in before its time was up, for the failure message.
    interrupted: std::cell::RefCell<Option<String>>,
}

impl NotifySocket {
    /// Bind a fresh socket.
    pub fn new() -> NotifySocket {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify.sock");
        let socket = std::os::unix::net::UnixDatagram::bind(&path).expect("bind notify socket");
        NotifySocket {
            path,
            socket,
            _dir: dir,
            seen: Default::default(),
            interrupted: Default::default(),
        }
    }

    /// The next datagram, or `None` after `timeout`.
    ///
    /// Only the time ends the wait, not an error: with a receive timeout set, a signal
    /// handled anywhere in the test process makes `recv` fail with EINTR even with
    /// SA_RESTART (signal(7)). Taken as the end of the wait, one once read as "no watchdog
    /// ping within 30 s" from a test binary that had run for 4 s.
    pub fn recv(&self, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 4096];
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            self.socket
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .expect("set timeout");
            match self.socket.recv(&mut buf) {
                Ok(n) => {
                    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                    self.seen.borrow_mut().push(msg.clone());
                    return Some(msg);
                }
                Err(e) if Instant::now() < deadline => {
                    *self.interrupted.borrow_mut() = Some(e.to_string());
                }
                Err(_) => return None,
            }
        }
    }

    /// Datagrams until one has a line equal to `line` (returned with when it arrived);
    /// panics with everything seen after `timeout`.
    pub fn wait_for(&self, line: &str, timeout: Duration) -> (String, Instant) {
        let deadline = Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.recv(left) {
                Some(m) if m.lines().any(|l| l == line) => return (m, Instant::now()),
                Some(_) => {}
                None => break,
            }
        }
        panic!(
            "no {line:?} from the notify socket within {timeout:?} (a receive ended early \
             with: {:?}); got {:#?}",
            self.interrupted.borrow(),
            self.seen.borrow()
        );
    }

    /// `READY=1`, then `WATCHDOG=1` pings at half of a 200 ms `WATCHDOG_USEC` (the one
    /// [`systemd_command`] was given): systemd arms the watchdog once start-up is complete.
    ///
    /// The pings' pace is judged by the median of ten intervals, not by their sum: a loaded
    /// machine can stall the daemon for a second once (seen in CI), which says nothing about
    /// its timer, while pinging at the whole `WATCHDOG_USEC` (200 ms) moves the median.
    pub fn expect_ready_then_pings(&self) {
        self.wait_for("READY=1", TIMEOUT);
        let (_, mut at) = self.wait_for("WATCHDOG=1", TIMEOUT);
        let mut gaps: Vec<Duration> = (0..10)
            .map(|_| {
                let (_, next) = self.wait_for("WATCHDOG=1", TIMEOUT);
                let gap = next - at;
                at = next;
                gap
            })
            .collect();
        gaps.sort();
        let median = gaps[gaps.len() / 2];
        assert!(
            median < Duration::from_millis(150),
            "pings {median:?} apart (median of {gaps:?}); half of WATCHDOG_USEC is 100 ms"
        );
    }

    /// How many datagrams seen so far have a line equal to `line`.
    pub fn count(&self, line: &str) -> usize {
        self.seen
            .borrow()
            .iter()
            .filter(|m| m.lines().any(|l| l == line))
            .count()
    }
}

/// A command that runs `program` as systemd runs a `Type=notify` unit with `WatchdogSec=`:
/// `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` set to the program's own pid (hence
/// the `exec` through `sh`, whose pid the program keeps). Add the program's arguments.
pub fn systemd_command(program: &str, notify: &NotifySocket, watchdog_usec: u64) -> Command {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "WATCHDOG_PID=$$ exec \"$0\" \"$@\"", program])
        .env("NOTIFY_SOCKET", &notify.path)
        .env("WATCHDOG_USEC", watchdog_usec.to_string())
        .env_remove("WATCHDOG_PID")
        .env_remove("JOURNAL_STREAM");
    cmd
}

/// The counters of a daemon's `stopped: 5 received, 5 written, …` log line, by label
/// (`"received"`, `"dropped (queue full)"`, …).
pub fn stopped_counters(log: &str) -> std::collections::HashMap<String, u64> {
    let line = log
        .lines()
        .rev()
        .find_map(|l| l.split_once("stopped: ").map(|(_, rest)| rest.to_owned()))
        .unwrap_or_else(|| panic!("no \"stopped:\" line in:\n{log}"));
    line.split(", ")
        .map(|part| {
            let (n, label) = part
                .trim()
                .split_once(' ')
                .unwrap_or_else(|| panic!("bad counter {part:?} in {line:?}"));
            let n = n
                .parse()
                .unwrap_or_else(|_| panic!("bad number {n:?} in {line:?}"));
            (label.to_owned(), n)
        })
        .collect()
}

/// `net.unix.max_dgram_qlen` set for as long as this lives, restored on drop. A unix datagram
/// socket keeps the queue length it was created with: create the syslog daemon's socket
/// while this is set. The tests run as root; anything else fails loudly.
pub struct DgramQlen {
    was: String,
}

impl DgramQlen {
    const PATH: &'static str = "/proc/sys/net/unix/max_dgram_qlen";

    /// Set the sysctl to `n`.
    pub fn set(n: u32) -> DgramQlen {
        let was = std::fs::read_to_string(Self::PATH).expect("read net.unix.max_dgram_qlen");
        std::fs::write(Self::PATH, n.to_string())
            .expect("set net.unix.max_dgram_qlen (the tests run as root)");
        DgramQlen {
            was: was.trim().to_owned(),
        }
    }
}

impl Drop for DgramQlen {
    fn drop(&mut self) {
        let _ = std::fs::write(Self::PATH, &self.was);
    }
}

/// A child process killed (and reaped) on drop, so a failing test leaves no daemon behind.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The logger binary built for these tests.
pub const LOGGER: &str = env!("CARGO_BIN_EXE_iotitan-logger");

/// A running iotitan-logger with its stderr captured in a file.
pub struct Logger {
    pub child: Child,
    pub stderr: std::path::PathBuf,
}

impl Logger {
    /// Start the logger with `--config config`.
    pub fn start(config: &Path) -> Logger {
        Logger::start_with(Command::new(LOGGER), config)
    }

    /// Start `cmd` (the logger, or a wrapper that execs it) with `--config config`.
    pub fn start_with(mut cmd: Command, config: &Path) -> Logger {
        let stderr = config.with_file_name(format!(
            "logger-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let child = cmd
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("start iotitan-logger");
        Logger { child, stderr }
    }

    /// Its log (stderr) so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Records this process wrote, as rsyslog's file shows them (its pid is in the tag).
    pub fn lines_in(&self, r: &Rsyslogd) -> Vec<String> {
        let tag = format!(" iotitan-logger[{}]: ", self.child.id());
        r.lines().into_iter().filter(|l| l.contains(&tag)).collect()
    }

    /// SIGTERM; waits for the exit and returns the status and how long it took.
    pub fn terminate(&mut self) -> (std::process::ExitStatus, Duration) {
        let t0 = Instant::now();
        self.signal("-TERM");
        let status = wait_exit(&mut self.child, Duration::from_secs(5)).expect("logger exits");
        (status, t0.elapsed())
    }

    /// Send `sig` (`-KILL`, `-TERM`, …).
    pub fn signal(&self, sig: &str) {
        Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
    }
}

impl Drop for Logger {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `iotitan-alerts` with its log lines (stderr) readable by the test.
pub struct Alerts {
    pub child: Child,
    log: std::sync::mpsc::Receiver<String>,
    /// The log lines waited through so far.
    pub seen: Vec<String>,
}

impl Alerts {
    /// Start with `config` and wait until it has subscribed and read back its alert states.
    pub fn start(config: &Path) -> Alerts {
        let mut a = Alerts::spawn(config);
        a.wait_log("subscribed;");
        a
    }

    /// Start with `config` without waiting for anything.
    pub fn spawn(config: &Path) -> Alerts {
        let mut child = Command::new(env!("CARGO_BIN_EXE_iotitan-alerts"))
            .arg("--config")
            .arg(config)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            .env_remove("JOURNAL_STREAM")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start iotitan-alerts");
        let err = child.stderr.take().expect("stderr");
        let (tx, log) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Alerts {
            child,
            log,
            seen: Vec::new(),
        }
    }

    /// Wait for a log line containing `needle` (after the ones already waited for).
    pub fn wait_log(&mut self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + TIMEOUT;
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match self.log.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l.contains(needle) {
                        return l;
                    }
                }
                Err(_) => break,
            }
        }
        panic!("no log line with {needle:?}; saw {:#?}", self.seen);
    }

    /// SIGTERM, wait for a clean exit; returns the log lines not yet waited for.
    pub fn stop(mut self) -> Vec<String> {
        let st = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(st.success());
        let status = wait_exit(&mut self.child, TIMEOUT).expect("iotitan-alerts stops");
        assert!(status.success(), "exit status {status:?}");
        // Up to the end of its stderr: the reader thread may not have passed on the last
        // lines (the summary) when the exit is seen. The channel closes at the end.
        let deadline = std::time::Instant::now() + TIMEOUT;
        let mut lines = Vec::new();
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match self.log.recv_timeout(left) {
                Ok(l) => lines.push(l),
                Err(_) => break,
            }
        }
        lines
    }
}

impl Drop for Alerts {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A subscriber on `topics` (plus a probe topic) whose subscription is known to be active.
pub fn subscriber(m: &Mosquitto, topics: &[&str]) -> Subscriber {
    let mut all = topics.to_vec();
    all.push("probe/ready");
    let sub = m.subscribe(&all, &[]);
    assert!(
        wait_until(TIMEOUT, || {
            m.publish(&["-t", "probe/ready", "-m", "x"]);
            sub.next_line(Duration::from_millis(200))
                .is_some_and(|l| l == "probe/ready x")
        }),
        "subscriber did not come up"
    );
    sub
}

/// Unacknowledged messages RabbitMQ's MQTT plugin sends one subscriber (`mqtt.prefetch`).
pub const RABBIT_PREFETCH: usize = 100;

/// A two-node RabbitMQ cluster with the MQTT plugin, on loopback ports and in a temp dir of
/// its own (its own Erlang port mapper and cookie), stopped on drop. Node 1 starts first;
/// node 2 then joins it through `classic_config` peer discovery, so the cluster is formed
/// before the MQTT listener of node 2 opens.
pub struct RabbitCluster {
    pub dir: tempfile::TempDir,
    /// The MQTT port of each node.
    pub mqtt_ports: [u16; 2],
    epmd_port: u16,
    epmd: Option<Child>,
    nodes: Vec<Child>,
}

impl RabbitCluster {
    /// Start both nodes and wait until a message published on node 1 reaches a subscriber on
    /// node 2.
    pub fn start() -> RabbitCluster {
        let server = Path::new("/usr/lib/rabbitmq/bin/rabbitmq-server");
        assert!(
            server.exists(),
            "rabbitmq-server is not installed: `apt-get install rabbitmq-server` (.ci/run does this)"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let cookie = dir.path().join(".erlang.cookie");
        std::fs::write(&cookie, format!("iotitan{}", free_port())).expect("write cookie");
        std::fs::set_permissions(&cookie, std::os::unix::fs::PermissionsExt::from_mode(0o400))
            .expect("cookie mode");
        let mut c = RabbitCluster {
            mqtt_ports: [free_port(), free_port()],
            epmd_port: free_port(),
            epmd: None,
            nodes: Vec::new(),
            dir,
        };
        // The port mapper, ours to stop: the nodes find it running and do not start one of
        // their own (which would outlive the test as a daemon).
        let epmd = Command::new("epmd")
            .args(["-port", &c.epmd_port.to_string(), "-address", "127.0.0.1"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start epmd (erlang-base)");
        c.epmd = Some(epmd);
        let port = c.epmd_port;
        assert!(
            wait_until(TIMEOUT, || TcpStream::connect(("127.0.0.1", port)).is_ok()),
            "epmd did not listen on {port}"
        );
        for i in 0..2 {
            c.spawn(i);
            let port = c.mqtt_ports[i];
            assert!(
                wait_until(Duration::from_secs(90), || TcpStream::connect((
                    "127.0.0.1",
                    port
                ))
                .is_ok()),
                "RabbitMQ node {} did not listen on {port}; see {}",
                i + 1,
                c.dir.path().display()
            );
        }
        c.wait_clustered();
        c
    }

    fn node_name(i: usize) -> String {
        format!("iotitan{}@localhost", i + 1)
    }

    fn spawn(&mut self, i: usize) {
        let d = self.dir.path().join(format!("n{}", i + 1));
        std::fs::create_dir_all(&d).expect("node dir");
        let peers = format!(
            "cluster_formation.peer_discovery_backend = classic_config\n\
             cluster_formation.classic_config.nodes.1 = {}\n\
             cluster_formation.classic_config.nodes.2 = {}\n",
            Self::node_name(0),
            Self::node_name(1)
        );
        std::fs::write(
            d.join("rabbit.conf"),
            format!(
                "listeners.tcp.default = 127.0.0.1:{}\nmqtt.listeners.tcp.default = 127.0.0.1:{}\n\
                 loopback_users = none\nmqtt.prefetch = {RABBIT_PREFETCH}\n{peers}",
                free_port(),
                self.mqtt_ports[i]
            ),
        )
        .expect("write rabbit.conf");
        std::fs::write(d.join("enabled_plugins"), "[rabbitmq_mqtt].\n").expect("plugins");
        let child = Command::new("/usr/lib/rabbitmq/bin/rabbitmq-server")
            .env("HOME", self.dir.path())
            .env("ERL_EPMD_PORT", self.epmd_port.to_string())
            .env("RABBITMQ_NODENAME", Self::node_name(i))
            .env("RABBITMQ_DIST_PORT", free_port().to_string())
            .env("RABBITMQ_MNESIA_BASE", d.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", d.join("log"))
            .env("RABBITMQ_CONFIG_FILE", d.join("rabbit.conf"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d.join("enabled_plugins"))
            .env("RABBITMQ_PID_FILE", d.join("pid"))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(d.join("out.log")).expect("log file"))
            .stderr(Stdio::null())
            // Its own process group: the script's Erlang VM is stopped with it.
            .process_group(0)
            .spawn()
            .expect("start rabbitmq-server");
        self.nodes.push(child);
    }

    /// A message published on node 1 reaches a subscriber on node 2.
    fn wait_clustered(&self) {
        let sub = self.subscribe(1, "probe/cluster");
        let ok = wait_until(TIMEOUT, || {
            self.publish(0, "probe/cluster", "x");
            sub.next_line(Duration::from_millis(300))
                .is_some_and(|l| l == "probe/cluster x")
        });
        assert!(ok, "node 2 never got a message published on node 1");
    }

    /// `mosquitto_sub -v` on node `i` (0 or 1).
    pub fn subscribe(&self, i: usize, topic: &str) -> Subscriber {
        let subbin = require("mosquitto_sub", "mosquitto-clients");
        let mut child = Command::new(subbin)
            .args(["-h", "127.0.0.1", "-p", &self.mqtt_ports[i].to_string()])
            .args(["-v", "-q", "1", "-t", topic])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto_sub");
        let out = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Subscriber { child, rx }
    }

    /// `mosquitto_pub` one QoS 1 message on node `i`.
    pub fn publish(&self, i: usize, topic: &str, payload: &str) {
        let pubbin = require("mosquitto_pub", "mosquitto-clients");
        let _ = Command::new(pubbin)
            .args(["-h", "127.0.0.1", "-p", &self.mqtt_ports[i].to_string()])
            .args(["-q", "1", "-t", topic, "-m", payload])
            .status();
    }

    /// A `[mqtt]` section for node `i`.
    pub fn mqtt_toml(&self, i: usize, client_id: &str) -> String {
        format!(
            "[mqtt]\nhost = \"127.0.0.1\"\nport = {}\nclient_id = \"{client_id}\"\nkeep_alive = \"5s\"\nreconnect_max = \"1s\"\n",
            self.mqtt_ports[i]
        )
    }
}

impl Drop for RabbitCluster {
    fn drop(&mut self) {
        for c in &mut self.nodes {
            // The whole group: the script and the Erlang VM it started.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", c.id())])
                .status();
            let _ = c.wait();
        }
        if let Some(mut e) = self.epmd.take() {
            let _ = e.kill();
            let _ = e.wait();
        }
    }
}
