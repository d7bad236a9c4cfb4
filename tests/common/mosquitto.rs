//! A real mosquitto broker per test (its own port, config and persistence), and clients
//! of it through `mosquitto_pub` / `mosquitto_sub`.

use super::system::{is_root, kill};
use super::{Subscriber, TIMEOUT, free_port, require, wait_exit, wait_until};
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
