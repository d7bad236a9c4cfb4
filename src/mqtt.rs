//! The broker connection: rumqttc options from `[mqtt]`, and an event loop driver that
//! reconnects with capped backoff.
//!
//! rumqttc traps this module exists to avoid:
//! - the event loop must be polled continuously: requests (publish, ack) go through a bounded
//!   channel that only `poll()` drains, so a task that blocks on a request while nobody polls
//!   deadlocks (rumqttc #263, #910). Every program polls in one task and does its work in others;
//! - after an error, `poll()` must simply be called again to reconnect; we sleep with capped
//!   exponential backoff in between so a dead broker is not hammered;
//! - a reconnect with `session_present = false` has lost the subscriptions (rumqttc #250): the
//!   caller resubscribes on every such ConnAck ([`Driver::next`] reports it);
//! - the default max packet size (10 KiB) disconnects on bigger messages: we set it from config.

use crate::config::MqttConfig;
use anyhow::Context;
use rumqttc::{
    AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, Publish, SubscribeFilter,
    Transport,
};
use std::collections::VecDeque;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

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

/// Exponential backoff: 100 ms doubling up to a cap, reset on success.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    const START: Duration = Duration::from_millis(100);

    /// A backoff capped at `max`.
    pub fn new(max: Duration) -> Self {
        Backoff {
            next: Self::START,
            max: max.max(Self::START),
        }
    }

    /// The delay to wait now; the next one will be twice as long, up to the cap.
    pub fn delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }

    /// Start over after a success.
    pub fn reset(&mut self) {
        self.next = Self::START;
    }
}

/// What the driver saw.
#[derive(Debug)]
pub enum DriverEvent {
    /// Connected; `fresh` means the broker holds no session for us: subscribe again.
    Connected {
        /// No session was present.
        fresh: bool,
    },
    /// Any other packet or outgoing event.
    Event(Event),
    /// The connection failed; the driver waits before the next attempt.
    Disconnected(String),
    /// Every client handle was dropped: nothing more will be asked of this connection.
    Closed,
}

/// Polls an [`EventLoop`] forever, turning errors into backoff sleeps.
pub struct Driver {
    eventloop: EventLoop,
    backoff: Backoff,
    pending_delay: Option<Duration>,
    connected: bool,
    /// When rumqttc last sent a PINGREQ (or connected, which starts its keep-alive timer).
    last_ping: Option<tokio::time::Instant>,
    /// Whether any packet came in since then.
    heard_since_ping: bool,
}

impl Driver {
    /// A driver over `eventloop`, with reconnect delays capped at `max_backoff`.
    pub fn new(eventloop: EventLoop, max_backoff: Duration) -> Self {
        Driver {
            eventloop,
            backoff: Backoff::new(max_backoff),
            pending_delay: None,
            connected: false,
            last_ping: None,
            heard_since_ping: false,
        }
    }

    /// Whether the last event was a successful one.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// Forget every request not yet acknowledged: those in flight and those still waiting in
    /// the request channel. With a clean session (the default) rumqttc drops them at the next
    /// connect anyway; calling this after [`DriverEvent::Disconnected`] also catches requests that
    /// were queued between the connection's failure and the caller noticing it, so a caller
    /// that has told its clients "not published" never publishes them after all.
    pub fn drop_unsent(&mut self) {
        self.eventloop.clean();
        self.eventloop.pending.clear();
    }

    /// When rumqttc sends its next PINGREQ, while connected with a keep-alive.
    pub fn ping_due(&self) -> Option<tokio::time::Instant> {
        let keep_alive = self.eventloop.mqtt_options.keep_alive();
        if !self.connected || keep_alive.is_zero() {
            return None;
        }
        Some(self.last_ping? + keep_alive)
    }

    /// The next update. Cancel-safe enough for `select!`: a cancelled backoff sleep is simply
    /// started again.
    pub async fn next(&mut self) -> DriverEvent {
        if let Some(d) = self.pending_delay {
            tokio::time::sleep(d).await;
            self.pending_delay = None;
        }
        // rumqttc closes the connection when a PINGRESP has not come by the next PINGREQ. A
        // consumer that reads slowly (backpressure) has not read up to it yet: the broker
        // queues the PINGRESP behind the messages it sent before. Any packet that came in
        // after the PINGREQ shows the connection alive just as well.
        if self.heard_since_ping {
            self.eventloop.state.await_pingresp = false;
        }
        match self.eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                self.backoff.reset();
                self.connected = true;
                self.last_ping = Some(tokio::time::Instant::now());
                self.heard_since_ping = false;
                DriverEvent::Connected {
                    fresh: !ack.session_present,
                }
            }
            Ok(ev) => {
                match &ev {
                    Event::Outgoing(Outgoing::PingReq) => {
                        self.last_ping = Some(tokio::time::Instant::now());
                        self.heard_since_ping = false;
                    }
                    Event::Incoming(_) => self.heard_since_ping = true,
                    Event::Outgoing(_) => {}
                }
                DriverEvent::Event(ev)
            }
            Err(rumqttc::ConnectionError::RequestsDone) => DriverEvent::Closed,
            Err(e) => {
                self.connected = false;
                self.pending_delay = Some(self.backoff.delay());
                DriverEvent::Disconnected(e.to_string())
            }
        }
    }
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

/// Poll `driver` in a task of its own until the client disconnects, subscribing to `filters`
/// on every fresh session and forwarding incoming publishes into the returned channel.
///
/// This is the one place that polls: the event loop keeps moving (pings, acks, reconnects)
/// as long as the consumer keeps taking messages. When the consumer is slower, `send` waits,
/// which stops reading from the broker: TCP backpressure instead of unbounded memory. While
/// it waits nothing is polled, so the request channel is not drained: a consumer must never
/// wait for room in it (`ack().await`, `publish().await`) while this task may be waiting for
/// the consumer, or both wait for good. Under a backlog the event loop reads up to ten
/// messages for each request it sends, so the channel does fill; the logger acknowledges
/// with `try_ack` and keeps what does not fit. When the consumer closes
/// the receiver (shutting down), publishes are dropped unacknowledged — the broker keeps QoS
/// ≥ 1 messages for the persistent session — and polling goes on so that the consumer's
/// last acks and its `disconnect()` still reach the broker.
///
/// Once our DISCONNECT went out it reads on until the broker closes the connection. Closing
/// first is what loses acknowledgements: with the broker's publishes still arriving, closing
/// a socket with unread data makes the kernel reset the connection, and a broker that hits the
/// reset while writing (mosquitto: "disconnected: Broken pipe") drops the connection without
/// reading what we sent last — the final acknowledgements and the DISCONNECT. Those messages
/// would then be delivered again. The broker closing the connection proves it read everything
/// before the DISCONNECT. The task also ends when every client handle is gone.
pub fn spawn_poller(
    client: AsyncClient,
    mut driver: Driver,
    filters: Vec<SubscribeFilter>,
    capacity: usize,
) -> Polled {
    let capacity = capacity.max(1);
    let (tx, rx) = mpsc::channel(capacity);
    let (subscribed_tx, subscribed) = watch::channel(false);
    let task = tokio::spawn(async move {
        let mut poller = Poller {
            client,
            filters,
            tx,
            waiting: VecDeque::new(),
            disconnecting: false,
            subscribed: subscribed_tx,
        };
        loop {
            // Hand over what was read, in order, before reading more. While the consumer
            // takes nothing, read only as far as answering the keep-alive needs: a PINGREQ
            // goes out only from `poll()`, which also reads, so each one costs some messages
            // (tens), kept here, at most `capacity` of them and 1 MiB; past that the broker
            // may close the connection after 1.5 keep-alives (see `crate::logger`).
            while let Some(p) = poller.waiting.pop_front() {
                if poller.tx.is_closed() {
                    poller.waiting.clear();
                    break;
                }
                let ping = driver.ping_due().filter(|_| poller.may_read_more(capacity));
                // The message back when the keep-alive is due first.
                let unsent = tokio::select! {
                    permit = poller.tx.reserve() => {
                        if let Ok(permit) = permit {
                            permit.send(p);
                        }
                        None
                    }
                    _ = tokio::time::sleep_until(ping.unwrap_or_else(tokio::time::Instant::now)),
                        if ping.is_some() => Some(p),
                };
                let Some(p) = unsent else { continue };
                poller.waiting.push_front(p);
                // Until the PINGREQ went out and a packet came in after it (see
                // `Driver::next`), so that the next PINGREQ finds the connection proven alive.
                let mut pinged = false;
                loop {
                    let update = driver.next().await;
                    pinged |= matches!(
                        update,
                        DriverEvent::Event(Event::Outgoing(Outgoing::PingReq))
                    );
                    if !poller.handle(update) {
                        return;
                    }
                    if (pinged && driver.heard_since_ping)
                        || !driver.is_connected()
                        || !poller.may_read_more(capacity)
                    {
                        break;
                    }
                }
            }
            if !poller.handle(driver.next().await) {
                return;
            }
        }
    });
    Polled {
        inbox: rx,
        task,
        subscribed,
    }
}

/// What [`spawn_poller`] hands back.
pub struct Polled {
    /// The incoming publishes, in order.
    pub inbox: mpsc::Receiver<Publish>,
    /// The polling task: it ends once the broker closed the connection after our DISCONNECT.
    pub task: tokio::task::JoinHandle<()>,
    /// `true` once the broker holds our subscriptions: a SUBACK that refused none, or a
    /// connection that found our persistent session (and its subscriptions) present.
    pub subscribed: watch::Receiver<bool>,
}

/// Tell systemd the daemon is ready once `subscribed` turns `true`: only then does a
/// message published after `systemctl start` returns reach us. Without a broker (or with a
/// refused subscription) the start never completes, and systemd reports the failure.
pub fn ready_once_subscribed(mut subscribed: watch::Receiver<bool>) {
    tokio::spawn(async move {
        if subscribed.wait_for(|&s| s).await.is_ok() {
            crate::notify::ready();
        }
    });
}

/// The state of [`spawn_poller`]'s task.
struct Poller {
    client: AsyncClient,
    filters: Vec<SubscribeFilter>,
    tx: mpsc::Sender<Publish>,
    /// Messages read and not handed to the consumer yet, oldest first.
    waiting: VecDeque<Publish>,
    disconnecting: bool,
    subscribed: watch::Sender<bool>,
}

/// Most payload bytes [`spawn_poller`] keeps while answering the keep-alive for a consumer
/// that takes nothing.
const WAITING_BYTES: usize = 1 << 20;

impl Poller {
    /// Whether reading more for the keep-alive stays within `capacity` messages and
    /// [`WAITING_BYTES`].
    fn may_read_more(&self, capacity: usize) -> bool {
        self.waiting.len() < capacity
            && self
                .waiting
                .iter()
                .map(|p| p.payload.len() + p.topic.len())
                .sum::<usize>()
                < WAITING_BYTES
    }

    /// Act on `update`; `false` once the task is done.
    fn handle(&mut self, update: DriverEvent) -> bool {
        match update {
            DriverEvent::Connected { fresh } => {
                tracing::info!("connected to the MQTT broker (session present: {})", !fresh);
                if !fresh || self.filters.is_empty() {
                    self.subscribed.send_replace(true);
                } else {
                    // Subscribing goes through the request channel that only this task
                    // drains: ask from another task so this one keeps polling.
                    let (c, f) = (self.client.clone(), self.filters.clone());
                    tokio::spawn(async move {
                        if let Err(e) = c.subscribe_many(f).await {
                            tracing::error!("cannot subscribe: {e}");
                        }
                    });
                }
            }
            DriverEvent::Event(Event::Incoming(Packet::Publish(p))) => {
                // After `close()` (shutting down), publishes stay unacknowledged: the
                // broker keeps QoS ≥ 1 ones for the persistent session.
                if !self.tx.is_closed() {
                    self.waiting.push_back(p);
                }
            }
            DriverEvent::Event(Event::Incoming(Packet::SubAck(ack))) => {
                use rumqttc::SubscribeReasonCode as R;
                if ack.return_codes.iter().any(|c| matches!(c, R::Failure)) {
                    tracing::error!("the broker refused a subscription: {:?}", ack.return_codes);
                } else {
                    let names: Vec<&str> = self.filters.iter().map(|f| f.path.as_str()).collect();
                    tracing::info!("subscribed: {}", names.join(", "));
                    self.subscribed.send_replace(true);
                }
            }
            DriverEvent::Event(Event::Outgoing(Outgoing::Disconnect)) => self.disconnecting = true,
            DriverEvent::Event(_) => {}
            DriverEvent::Closed => return false,
            // The broker closed the connection after our DISCONNECT: done.
            DriverEvent::Disconnected(_) if self.disconnecting => return false,
            DriverEvent::Disconnected(e) => {
                tracing::warn!("MQTT connection lost: {e}; reconnecting");
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(500));
        let got: Vec<_> = (0..5).map(|_| b.delay().as_millis()).collect();
        assert_eq!(got, vec![100, 200, 400, 500, 500]);
        b.reset();
        assert_eq!(b.delay().as_millis(), 100);
    }

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
