//! The I/O edge of discovery: what [`Discovery`] decides, published retained at QoS 1 by the
//! program that hosts it. That program's availability (`online` on every connection, its
//! will `offline`) is its pump's and connection's, as every daemon's ([`crate::status`]).
//!
//! The host's task must never wait for the MQTT request channel (the logger's poller may be
//! waiting for that task, see [`crate::logger`]), so messages go out with `try_publish`; what
//! does not fit waits here, in order, for the host's next round.

use super::{Discovery, Message};
use crate::config::Config;
use rumqttc::{AsyncClient, QoS};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Discovery with its publishing.
pub struct Announcer {
    discovery: Discovery,
    client: AsyncClient,
    queue: VecDeque<(String, Vec<u8>)>,
    scratch: Vec<Message>,
}

impl Announcer {
    /// Discovery for `cfg`, published with `client` as `program`.
    pub fn new(cfg: &Config, program: &str, client: AsyncClient) -> Announcer {
        Announcer {
            discovery: Discovery::new(cfg, program),
            client,
            queue: VecDeque::new(),
            scratch: Vec::new(),
        }
    }

    /// The pure part.
    pub fn discovery(&self) -> &Discovery {
        &self.discovery
    }

    /// How often [`Announcer::sweep`] should run.
    pub fn sweep_every(&self) -> Duration {
        self.discovery.sweep_every()
    }

    /// Connected to the broker: on a fresh session (the broker may have lost its retained
    /// messages, or this is the start) every entity is announced again.
    pub fn connected(&mut self, fresh: bool) {
        if fresh {
            self.discovery.announce_all(&mut self.scratch);
        } else {
            self.discovery.announce_devices(&mut self.scratch);
        }
        self.take_scratch();
    }

    /// One message from the broker.
    pub fn observe(&mut self, topic: &str, payload: &[u8], retained: bool, now: Instant) {
        self.discovery
            .observe(topic, payload, retained, now, &mut self.scratch);
        if !self.scratch.is_empty() {
            self.take_scratch();
        }
    }

    /// Remove the entities of silent series.
    pub fn sweep(&mut self, now: Instant) {
        self.discovery.expire(now, &mut self.scratch);
        self.take_scratch();
    }

    fn take_scratch(&mut self) {
        self.queue.extend(
            self.scratch
                .drain(..)
                .map(|m| (m.topic, m.payload.into_bytes())),
        );
        self.flush();
    }

    /// Whether messages wait for room in the request channel.
    pub fn pending(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Hand what waits to the event loop, as far as its request channel has room.
    pub fn flush(&mut self) {
        while let Some((topic, payload)) = self.queue.front() {
            if self
                .client
                .try_publish(topic.clone(), QoS::AtLeastOnce, true, payload.clone())
                .is_err()
            {
                break;
            }
            self.queue.pop_front();
        }
    }
}
