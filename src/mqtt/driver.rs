//! The event loop driver: polls a rumqttc [`EventLoop`], turns errors into capped backoff
//! sleeps and reports what happened. Only the pump ([`super::pump`]) calls it.
//!
//! After an error `poll()` must simply be called again to reconnect; the backoff in between
//! keeps a dead broker from being hammered. A reconnect without the session
//! (`session_present = false`) has lost the subscriptions (rumqttc #250): [`Driver::next`]
//! reports it as a fresh connection so that the pump subscribes again.

use crate::backoff::Backoff;
use rumqttc::{Event, EventLoop, Outgoing, Packet};
use std::time::Duration;

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
    pub(super) heard_since_ping: bool,
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

    /// Whether publishes are acknowledged by the program rather than by rumqttc.
    pub fn manual_acks(&self) -> bool {
        self.eventloop.mqtt_options.manual_acks()
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
