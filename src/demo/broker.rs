//! The demo's embedded MQTT broker: rumqttd in-process, so the demo needs nothing but cargo.
//!
//! rumqttd's `start()` blocks forever and has no stop, so it runs on a thread of its own that
//! ends with the process. Its listener binds a free loopback port found by binding port 0 first.

use crate::sim::BrokerAddr;
use anyhow::Context;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// The broker's settings: one MQTT 3.1.1 listener on loopback, payloads up to 1 MiB (the
/// simulator's junk includes 20 kB payloads).
fn config(port: u16) -> anyhow::Result<rumqttd::Config> {
    let text = format!(
        r#"
id = 0
[router]
id = 0
max_connections = 64
max_outgoing_packet_count = 200
max_segment_size = 16777216
max_segment_count = 10

[v4.1]
name = "iotitan-demo"
listen = "127.0.0.1:{port}"
next_connection_delay_ms = 1
[v4.1.connections]
connection_timeout_ms = 60000
max_payload_size = 1048576
max_inflight_count = 100
dynamic_filters = true
"#
    );
    toml::from_str(&text).context("embedded broker config")
}

/// Start the embedded broker and wait until it accepts connections.
pub fn start() -> anyhow::Result<BrokerAddr> {
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .context("cannot find a free port for the embedded broker")?
        .port();
    let mut broker = rumqttd::Broker::new(config(port)?);
    std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            if let Err(e) = broker.start() {
                tracing::error!("embedded broker stopped: {e}");
            }
        })
        .context("cannot start the embedded broker's thread")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the embedded broker did not listen on 127.0.0.1:{port} within 10 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(BrokerAddr {
        host: "127.0.0.1".into(),
        port,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn config_is_accepted() {
        let c = super::config(1883).unwrap();
        let v4 = c.v4.unwrap();
        assert_eq!(v4["1"].listen.to_string(), "127.0.0.1:1883");
        assert_eq!(v4["1"].connections.max_payload_size, 1 << 20);
    }
}
