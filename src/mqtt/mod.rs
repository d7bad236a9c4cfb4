//! The broker connection: rumqttc options from `[mqtt]`, and the one pump every program
//! drives its connection with.
//!
//! rumqttc traps this module exists to avoid:
//! - the event loop must be polled continuously: requests (publish, ack) go through a bounded
//!   channel that only `poll()` drains, so a task that blocks on a request while nobody polls
//!   deadlocks (rumqttc #263, #910). Only the [`pump`] polls, in a task of its own, and it
//!   never awaits that channel; programs do their work in other tasks;
//! - after an error, `poll()` must simply be called again to reconnect; the [`driver`] sleeps
//!   with capped exponential backoff in between so a dead broker is not hammered;
//! - a reconnect with `session_present = false` has lost the subscriptions (rumqttc #250), and
//!   one with `session_present = true` may lack some (see [`subscribe::Plan`]): the pump
//!   subscribes again on every ConnAck;
//! - a refused subscription is a SUBACK code, not an error: the pump checks every SUBACK
//!   ([`subscribe`]);
//! - the default max packet size (10 KiB) disconnects on bigger messages: we set it from config.
//!
//! Modules: [`driver`] polls and reconnects, [`subscribe`] plans subscriptions and judges
//! SUBACKs, [`requests`] tracks requests someone waits for, [`pump`] ties them together;
//! [`mosquitto`] reads a local broker's queue limits (would it keep a stopped logger's
//! backlog?).

pub mod driver;
pub mod mosquitto;
pub mod pump;
pub mod requests;
pub mod subscribe;

pub use driver::{Driver, DriverEvent};
pub use pump::{Inbound, Link, Pump, Pumped, Sent, Update};
pub use requests::{ACK_TIMEOUT, Listening, Partial, Requests, Unavailable};

use crate::config::MqttConfig;
use anyhow::Context;
use rumqttc::{AsyncClient, MqttOptions, Transport};
use std::time::Duration;

/// Capacity of the request channel between clients and the event loop.
pub const REQUEST_CAPACITY: usize = 4096;

/// rumqttc options for program `role` (appended to the client id) from `[mqtt]`.
///
/// Reads the password and CA files; errors name the file.
pub fn options(cfg: &MqttConfig, role: &str) -> anyhow::Result<MqttOptions> {
    let id = format!("{}-{}", cfg.client_id, role);
    let mut o = MqttOptions::new(id, cfg.host.clone(), cfg.port);
    o.set_keep_alive(cfg.keep_alive.get().max(Duration::from_secs(5)));
    o.set_max_packet_size(cfg.max_packet_size, cfg.max_packet_size);
    o.set_request_channel_capacity(REQUEST_CAPACITY);
    if let Some(user) = &cfg.username {
        let password = match &cfg.password_file {
            Some(p) => std::fs::read_to_string(p)
                .with_context(|| format!("cannot read mqtt.password_file {}", p.display()))?
                .trim_end_matches(['\n', '\r'])
                .to_owned(),
            None => String::new(),
        };
        o.set_credentials(user.clone(), password);
    }
    if cfg.tls {
        let ca_path = cfg
            .ca_file
            .as_ref()
            .context("mqtt.tls = true needs mqtt.ca_file")?;
        let ca = std::fs::read(ca_path)
            .with_context(|| format!("cannot read mqtt.ca_file {}", ca_path.display()))?;
        o.set_transport(Transport::tls(ca, None, None));
    }
    Ok(o)
}

/// The rumqttc QoS for a validated config number (0, 1, 2).
pub fn qos(n: u8) -> rumqttc::QoS {
    match n {
        0 => rumqttc::QoS::AtMostOnce,
        1 => rumqttc::QoS::AtLeastOnce,
        _ => rumqttc::QoS::ExactlyOnce,
    }
}

/// Client and driver for `role`.
pub fn connect(cfg: &MqttConfig, role: &str) -> anyhow::Result<(AsyncClient, Driver)> {
    Ok(client(options(cfg, role)?, cfg))
}

/// Client and driver for `role`, with `status`'s `offline` as the connection's will.
pub fn connect_reporting(
    cfg: &MqttConfig,
    role: &str,
    status: Option<&crate::status::Status>,
) -> anyhow::Result<(AsyncClient, Driver)> {
    let mut opts = options(cfg, role)?;
    if let Some(s) = status {
        s.set_will(&mut opts);
    }
    Ok(client(opts, cfg))
}

/// Client and driver with `opts` (from [`options`], adjusted by the caller): the one place a
/// client is built.
pub fn client(opts: MqttOptions, cfg: &MqttConfig) -> (AsyncClient, Driver) {
    let (client, mut eventloop) = AsyncClient::new(opts, REQUEST_CAPACITY);
    // MQTT messages are small and should leave at once: with Nagle's algorithm a publish can
    // wait behind unacknowledged PUBACKs for a delayed-ACK period (tens of milliseconds).
    let mut net = eventloop.network_options();
    net.set_tcp_nodelay(true);
    eventloop.set_network_options(net);
    (client, Driver::new(eventloop, cfg.reconnect_max.get()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_carry_role_and_limits() {
        let cfg = MqttConfig::default();
        let o = options(&cfg, "logger").unwrap();
        assert_eq!(o.client_id(), "iotitan-logger");
        assert_eq!(o.max_packet_size(), cfg.max_packet_size);
    }

    #[test]
    fn tls_without_ca_is_an_error() {
        let cfg = MqttConfig {
            tls: true,
            ..MqttConfig::default()
        };
        assert!(options(&cfg, "x").is_err());
    }

    /// A self-signed CA (P-256), only parsed: nothing is signed with it.
    const TEST_CA: &str = "-----BEGIN CERTIFICATE-----
MIIBizCCATGgAwIBAgIUMlCq5h9gkpd1dbW54iodxUb92o4wCgYIKoZIzj0EAwIw
GjEYMBYGA1UEAwwPaW90aXRhbi10ZXN0LWNhMCAXDTI2MTIwMTA0NDM1NloYDzIx
MjYxMTA3MDQ0MzU2WjAaMRgwFgYDVQQDDA9pb3RpdGFuLXRlc3QtY2EwWTATBgcq
hkjOPQIBBggqhkjOPQMBBwNCAATYlrokLpShpj1c2MwPe8GUcqmA9a4xP+WGK3Cp
iZoqULKiZsUvYdAmMwu2cIvIiqrRu4JUukKYN61FVG56oDmUo1MwUTAdBgNVHQ4E
FgQUg2kALAXaHNHW/JxmN3X9qGVrzX4wHwYDVR0jBBgwFoAUg2kALAXaHNHW/Jxm
N3X9qGVrzX4wDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNIADBFAiB2k2M3
qL3uoSOO3j3kWRw7XczPZhcsaIZyCVLEU1Mx+wIhALDLQGO+r3qysrpB2Xn0REr/
LCjhTki8r55v3EXeXI3t
-----END CERTIFICATE-----\n";

    /// rustls needs one crypto provider: with two compiled in (ring for reqwest, aws-lc-rs
    /// from rumqttc's default features) and none installed, building a TLS client config
    /// panics. A TLS connection attempt must end in an error that the driver retries.
    #[tokio::test]
    async fn a_failed_tls_connection_is_an_error_not_a_panic() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        // Accept and hang up: the TLS handshake fails.
        std::thread::spawn(move || {
            for s in listener.incoming() {
                drop(s);
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, TEST_CA).unwrap();
        let cfg = MqttConfig {
            host: "127.0.0.1".into(),
            port,
            tls: true,
            ca_file: Some(ca),
            ..MqttConfig::default()
        };
        let (_client, mut eventloop) = AsyncClient::new(options(&cfg, "t").unwrap(), 10);
        let r = tokio::time::timeout(Duration::from_secs(10), eventloop.poll())
            .await
            .expect("the attempt ends");
        assert!(r.is_err(), "{r:?}");
    }

    #[test]
    fn missing_password_file_is_named() {
        let cfg = MqttConfig {
            username: Some("u".into()),
            password_file: Some("/nonexistent/pw".into()),
            ..MqttConfig::default()
        };
        let e = format!("{:#}", options(&cfg, "x").unwrap_err());
        assert!(e.contains("/nonexistent/pw"), "{e}");
    }
}
