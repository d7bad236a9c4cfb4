//! A two-node RabbitMQ cluster with its MQTT plugin: the clustered broker of the scale tests.

use super::{Subscriber, TIMEOUT, free_port, require, wait_until};
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

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
