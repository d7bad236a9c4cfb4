//! The pump: the one task that polls a program's MQTT connection.
//!
//! Every program (logger, bridge, alerts, http, stats, sim, demo) builds a [`Pump`] around its
//! client and [`Driver`] and takes what it needs from it:
//! - incoming publishes, in order, through a bounded inbox ([`Pump::inbox`]: a slow consumer
//!   stops the reading, TCP pushes back to the broker) or one that drops what does not fit
//!   ([`Pump::lossy_inbox`]: for a consumer that also waits on the request channel);
//! - subscriptions sent on every connection ([`Pump::subscribe`], [`Plan`]), whose SUBACKs are
//!   checked for refusals here and nowhere else; `subscribed` turns `true` once the broker
//!   granted them all, which is when a daemon is READY ([`crate::notify::ready_once`]);
//! - publishes, subscriptions and unsubscriptions with confirmation ([`Pump::spawn_confirmed`], [`Requests`]);
//! - the connection's state and counts of publishes written and acknowledged.
//!
//! The rule that makes this safe: the pump never awaits its own request channel. Its own
//! requests (subscriptions) use `try_*` and are retried on the next event when the channel
//! is full; other tasks may await the channel only when the pump never waits for them, which
//! is the case unless they consume a backpressure inbox (see [`Pump::inbox`]).

use super::driver::{Driver, DriverEvent};
use super::requests::{Requests, Shared, SubOwner};
use super::subscribe::{self, Outcome, Plan};
use rumqttc::{AsyncClient, Event, Outgoing, Packet, Publish, SubscribeFilter};
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};

/// What a consumer receives from the pump's inbox.
///
/// Plain [`Publish`] for most; [`Update`] for a consumer that needs to know, in order with the
/// messages, where a session starts and where its subscriptions were confirmed.
pub trait Inbound: Sized + Send + 'static {
    /// An incoming publish.
    fn message(p: Publish) -> Self;
    /// A connection was made (`fresh`: without a session at the broker).
    fn connected(_fresh: bool) -> Option<Self> {
        None
    }
    /// The last SUBACK of a fresh session came.
    fn subscribed(_outcome: Outcome) -> Option<Self> {
        None
    }
    /// Bytes held, for the bound on what the pump keeps while the consumer takes nothing.
    fn bytes(&self) -> usize;
}

impl Inbound for Publish {
    fn message(p: Publish) -> Self {
        p
    }
    fn bytes(&self) -> usize {
        self.payload.len() + self.topic.len()
    }
}

/// Messages together with the session events around them, in the order they happened.
#[derive(Debug)]
pub enum Update {
    /// Connected; `fresh`: the broker holds no session, so retained messages come again.
    Connected {
        /// No session was present.
        fresh: bool,
    },
    /// An incoming publish.
    Message(Publish),
    /// The broker answered the session's last SUBSCRIBE: whatever the earlier ones brought
    /// (retained messages) came before this.
    Subscribed(Outcome),
}

impl Inbound for Update {
    fn message(p: Publish) -> Self {
        Update::Message(p)
    }
    fn connected(fresh: bool) -> Option<Self> {
        Some(Update::Connected { fresh })
    }
    fn subscribed(outcome: Outcome) -> Option<Self> {
        Some(Update::Subscribed(outcome))
    }
    fn bytes(&self) -> usize {
        match self {
            Update::Message(p) => p.bytes(),
            _ => 0,
        }
    }
}

/// The state of the connection, changed on every connect and every failure.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Link {
    /// Connected now.
    pub connected: bool,
    /// Failed attempts (or lost connections) since the last successful connect.
    pub failures: u32,
    /// The last failure, cleared by a successful connect.
    pub error: Option<String>,
}

/// Publishes seen by the pump since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sent {
    /// Publishes written to the connection (at QoS 0 that is all the broker will say).
    pub written: u64,
    /// PUBACKs received (QoS 1).
    pub acked: u64,
}

enum Mode {
    /// Incoming publishes go to listeners only ([`Requests::listen`]).
    None,
    Backpressure(usize),
    Lossy(usize),
}

/// A pump being set up; [`Pump::spawn`] starts it.
pub struct Pump {
    client: AsyncClient,
    driver: Driver,
    batches: Vec<Vec<SubscribeFilter>>,
    mode: Mode,
    confirmed: bool,
    online: Option<String>,
}

impl Pump {
    /// A pump over `driver`; `client` must belong to it.
    pub fn new(client: AsyncClient, driver: Driver) -> Pump {
        Pump {
            client,
            driver,
            batches: Vec::new(),
            mode: Mode::None,
            confirmed: false,
            online: None,
        }
    }

    /// Publish a retained `online` to `topic` on every connection: the program's
    /// availability, whose `offline` is its will ([`crate::status`]).
    pub fn online(mut self, topic: Option<String>) -> Pump {
        self.online = topic;
        self
    }

    /// Subscribe to `filters` on every connection, in one SUBSCRIBE sent after those of
    /// earlier calls (on a session found present too: see [`Plan`]).
    pub fn subscribe(mut self, filters: Vec<SubscribeFilter>) -> Pump {
        self.batches.push(filters);
        self
    }

    /// Deliver incoming publishes through a bounded inbox of `capacity`, with backpressure.
    ///
    /// When the consumer is slower, the pump waits for room, which stops reading from the
    /// broker: TCP backpressure instead of unbounded memory. While it waits nothing is
    /// polled, so the request channel is not drained: the consumer must never wait for room
    /// in it (`ack().await`, `publish().await`) while the pump may be waiting for the
    /// consumer, or both wait for good. Under a backlog the event loop reads up to ten
    /// messages for each request it sends, so the channel does fill; use `try_*` and keep
    /// what does not fit. When the consumer closes the inbox (shutting down), publishes are
    /// dropped unacknowledged (the broker keeps QoS ≥ 1 messages for a persistent session)
    /// and polling goes on so that the consumer's last requests and its `disconnect()` still
    /// reach the broker.
    pub fn inbox(mut self, capacity: usize) -> Pump {
        self.mode = Mode::Backpressure(capacity.max(1));
        self
    }

    /// Deliver incoming publishes through an inbox of `capacity` that drops what does not
    /// fit: the pump never waits for this consumer, so it may await the request channel.
    pub fn lossy_inbox(mut self, capacity: usize) -> Pump {
        self.mode = Mode::Lossy(capacity.max(1));
        self
    }

    /// Start polling in a task of its own, offering [`Requests`]: on a failed connection
    /// every request not yet acknowledged is dropped, so that what a caller was told "not
    /// published" is never sent after the reconnect. Not for a persistent session whose
    /// acknowledgements must survive a reconnect.
    pub fn spawn_confirmed<T: Inbound>(mut self) -> (Pumped<T>, Requests) {
        self.confirmed = true;
        let pumped = self.spawn_inner();
        let requests = Requests { shared: pumped.1 };
        (pumped.0, requests)
    }

    /// Start polling in a task of its own.
    pub fn spawn<T: Inbound>(self) -> Pumped<T> {
        self.spawn_inner().0
    }

    fn spawn_inner<T: Inbound>(self) -> (Pumped<T>, Arc<Shared>) {
        let capacity = match self.mode {
            Mode::None => 1,
            Mode::Backpressure(n) | Mode::Lossy(n) => n,
        };
        let (tx, inbox) = mpsc::channel(capacity);
        let shared = Arc::new(Shared::new(self.client.clone()));
        let (subscribed_tx, subscribed) = watch::channel(false);
        let (link_tx, link) = watch::channel(Link::default());
        let (sent_tx, sent) = watch::channel(Sent::default());
        let connected = shared.connected.subscribe();
        let poller = Poller {
            plan: Plan::new(self.batches),
            tx: match self.mode {
                Mode::None => None,
                _ => Some(tx),
            },
            lossy: matches!(self.mode, Mode::Lossy(_)),
            capacity,
            waiting: VecDeque::new(),
            disconnecting: false,
            confirmed: self.confirmed,
            manual_acks: self.driver.manual_acks(),
            online: self.online,
            shared: shared.clone(),
            subscribed: subscribed_tx,
            link: link_tx,
            sent: sent_tx,
        };
        let task = tokio::spawn(poller.run(self.driver));
        let pumped = Pumped {
            inbox,
            task,
            subscribed,
            connected,
            link,
            sent,
        };
        (pumped, shared)
    }
}

/// What [`Pump::spawn`] hands back.
pub struct Pumped<T = Publish> {
    /// The incoming publishes, in order. Closed at once for a pump without an inbox.
    pub inbox: mpsc::Receiver<T>,
    /// The polling task: it ends once the broker closed the connection after our DISCONNECT,
    /// or when every client handle is gone.
    pub task: tokio::task::JoinHandle<()>,
    /// `true` once the broker holds our subscriptions: the SUBACKs of this connection refused
    /// none (see [`Plan`]).
    pub subscribed: watch::Receiver<bool>,
    /// Whether the broker is connected now.
    pub connected: watch::Receiver<bool>,
    /// The connection's state, with the last failure.
    pub link: watch::Receiver<Link>,
    /// Publishes written and acknowledged.
    pub sent: watch::Receiver<Sent>,
}

/// Most payload bytes the pump keeps while answering the keep-alive for a consumer that
/// takes nothing.
const WAITING_BYTES: usize = 1 << 20;

/// The state of the pump's task.
struct Poller<T> {
    plan: Plan,
    /// `None` without an inbox.
    tx: Option<mpsc::Sender<T>>,
    lossy: bool,
    capacity: usize,
    /// Messages read and not handed to the consumer yet, oldest first (backpressure only).
    waiting: VecDeque<T>,
    disconnecting: bool,
    /// Started with [`Pump::spawn_confirmed`]: requests are tracked and dropped on failure.
    confirmed: bool,
    /// The consumer acknowledges publishes itself (the logger, once written).
    manual_acks: bool,
    /// Where `online` goes on every connection ([`Pump::online`]).
    online: Option<String>,
    shared: Arc<Shared>,
    subscribed: watch::Sender<bool>,
    link: watch::Sender<Link>,
    sent: watch::Sender<Sent>,
}

impl<T: Inbound> Poller<T> {
    /// Poll until the task is done.
    ///
    /// Once our DISCONNECT went out it reads on until the broker closes the connection.
    /// Closing first is what loses acknowledgements: with the broker's publishes still
    /// arriving, closing a socket with unread data makes the kernel reset the connection,
    /// and a broker that hits the reset while writing (mosquitto: "disconnected: Broken
    /// pipe") drops the connection without reading what we sent last — the final
    /// acknowledgements and the DISCONNECT. Those messages would then be delivered again.
    /// The broker closing the connection proves it read everything before the DISCONNECT.
    async fn run(mut self, mut driver: Driver) {
        loop {
            // Hand over what was read, in order, before reading more. While the consumer
            // takes nothing, read only as far as answering the keep-alive needs: a PINGREQ
            // goes out only from `poll()`, which also reads, so each one costs some messages
            // (tens), kept here, at most `capacity` of them and 1 MiB; past that the broker
            // may close the connection after 1.5 keep-alives (see `crate::logger`).
            while let Some(p) = self.waiting.pop_front() {
                let Some(tx) = self.tx.as_ref().filter(|tx| !tx.is_closed()) else {
                    self.waiting.clear();
                    break;
                };
                let ping = driver.ping_due().filter(|_| self.may_read_more());
                // The message back when the keep-alive is due first.
                let unsent = tokio::select! {
                    permit = tx.reserve() => {
                        if let Ok(permit) = permit {
                            permit.send(p);
                        }
                        None
                    }
                    _ = tokio::time::sleep_until(ping.unwrap_or_else(tokio::time::Instant::now)),
                        if ping.is_some() => Some(p),
                };
                let Some(p) = unsent else { continue };
                self.waiting.push_front(p);
                // Until the PINGREQ went out and a packet came in after it (see
                // `Driver::next`), so that the next PINGREQ finds the connection proven alive.
                let mut pinged = false;
                loop {
                    let update = driver.next().await;
                    pinged |= matches!(
                        update,
                        DriverEvent::Event(Event::Outgoing(Outgoing::PingReq))
                    );
                    if !self.handle(&mut driver, update) {
                        return;
                    }
                    if (pinged && driver.heard_since_ping)
                        || !driver.is_connected()
                        || !self.may_read_more()
                    {
                        break;
                    }
                }
            }
            let update = driver.next().await;
            if !self.handle(&mut driver, update) {
                return;
            }
        }
    }

    /// Whether reading more for the keep-alive stays within `capacity` messages and
    /// [`WAITING_BYTES`].
    fn may_read_more(&self) -> bool {
        self.waiting.len() < self.capacity
            && self.waiting.iter().map(Inbound::bytes).sum::<usize>() < WAITING_BYTES
    }

    /// Pass `item` on to the consumer, if there is one and it still listens.
    fn deliver(&mut self, item: Option<T>) {
        let (Some(item), Some(tx)) = (item, &self.tx) else {
            return;
        };
        if self.lossy {
            // A full inbox drops the message: this consumer chose not to hold the pump up.
            let _ = tx.try_send(item);
        } else if !tx.is_closed() {
            // After `close()` (shutting down), publishes stay unacknowledged: the broker
            // keeps QoS ≥ 1 ones for the persistent session.
            self.waiting.push_back(item);
        }
    }

    /// Hand the client the subscriptions owed in this session. `try_*`: this task must
    /// never wait on the request channel it alone drains; when the channel is full, the
    /// next event tries again.
    fn send_owed(&mut self) {
        let mut book = self.shared.lock();
        while let Some(batch) = self.plan.owed() {
            match book.subscribe_plan(&self.shared.client, batch) {
                Ok(()) => self.plan.sent(),
                Err(rumqttc::ClientError::TryRequest(_)) => return,
                Err(e) => {
                    tracing::error!("cannot subscribe: {e}");
                    self.plan.stop();
                    return;
                }
            }
        }
    }

    /// The connection is gone, for good (`last`) or until the next attempt.
    fn lost(&mut self, driver: &mut Driver, error: String, last: bool) {
        let was = {
            let mut book = self.shared.lock();
            let was = std::mem::replace(&mut book.connected, false);
            if self.confirmed && !last {
                driver.drop_unsent();
            }
            book.fail_all();
            was
        };
        self.plan.stop();
        self.shared
            .connected
            .send_if_modified(|c| std::mem::replace(c, false));
        if last {
            tracing::debug!("disconnected: {error}");
            return;
        }
        let failures = self.link.borrow().failures;
        if was {
            tracing::warn!("MQTT broker connection lost: {error}; reconnecting");
        } else if failures == 0 {
            tracing::warn!("cannot connect to the MQTT broker: {error}; retrying");
        } else {
            tracing::debug!("cannot connect to the MQTT broker: {error}");
        }
        self.link.send_modify(|l| {
            l.connected = false;
            l.failures += 1;
            l.error = Some(error);
        });
    }

    /// Act on `update`; `false` once the task is done.
    fn handle(&mut self, driver: &mut Driver, update: DriverEvent) -> bool {
        match update {
            DriverEvent::Connected { fresh } => {
                tracing::info!("connected to the MQTT broker (session present: {})", !fresh);
                {
                    let mut book = self.shared.lock();
                    book.connected = true;
                    if fresh {
                        book.renew(&self.shared.client);
                    }
                    if let Some(topic) = &self.online {
                        let payload = crate::status::ONLINE.as_bytes().to_vec();
                        let client = &self.shared.client;
                        if !book.fire(client, topic, payload, true, self.confirmed) {
                            tracing::warn!("could not publish {topic} online: request queue full");
                        }
                    }
                }
                if fresh {
                    self.plan.start();
                } else {
                    self.plan.resume();
                }
                if self.plan.is_empty() {
                    self.subscribed.send_replace(true);
                }
                self.shared
                    .connected
                    .send_if_modified(|c| !std::mem::replace(c, true));
                self.link.send_replace(Link {
                    connected: true,
                    failures: 0,
                    error: None,
                });
                self.deliver(T::connected(fresh));
            }
            DriverEvent::Event(Event::Incoming(Packet::Publish(p)))
                if self.plan.is_resent(&p.topic, p.retain) =>
            {
                tracing::debug!(topic = %p.topic, "a retained message sent again skipped");
                // Acknowledged here, as nobody else sees it. `try_`: this task never waits
                // on its own request channel; an acknowledgement lost to a full channel
                // only means the broker sends the message again on the next connection.
                if self.manual_acks
                    && p.qos != rumqttc::QoS::AtMostOnce
                    && let Err(e) = self.shared.client.try_ack(&p)
                {
                    tracing::debug!("cannot acknowledge a skipped retained message: {e}");
                }
            }
            DriverEvent::Event(Event::Incoming(Packet::Publish(p))) => {
                // Only a confirmed pump has listeners or waiters: the others skip the lock
                // on the paths every message takes.
                if self.confirmed {
                    self.shared.lock().dispatch(&p);
                }
                if self.tx.is_some() {
                    self.deliver(Some(T::message(p)));
                }
            }
            DriverEvent::Event(Event::Outgoing(Outgoing::Publish(pkid))) => {
                if self.confirmed {
                    self.shared.lock().on_publish_written(pkid);
                }
                self.sent.send_modify(|s| s.written += 1);
            }
            DriverEvent::Event(Event::Incoming(Packet::PubAck(ack))) => {
                if self.confirmed {
                    self.shared.lock().on_puback(ack.pkid);
                }
                self.sent.send_modify(|s| s.acked += 1);
            }
            DriverEvent::Event(Event::Outgoing(Outgoing::Subscribe(pkid))) => {
                self.shared.lock().on_subscribe_written(pkid);
            }
            DriverEvent::Event(Event::Outgoing(Outgoing::Unsubscribe(pkid))) => {
                self.shared.lock().on_unsubscribe_written(pkid);
            }
            DriverEvent::Event(Event::Incoming(Packet::UnsubAck(ack))) => {
                self.shared.lock().on_unsuback(ack.pkid);
            }
            DriverEvent::Event(Event::Incoming(Packet::SubAck(ack))) => {
                // The one place a refusal is noticed.
                let refused = subscribe::refused(&ack);
                if refused {
                    tracing::error!("the broker refused a subscription: {:?}", ack.return_codes);
                }
                let owner = self.shared.lock().on_suback(ack.pkid, !refused);
                if let Some(SubOwner::Plan) = owner
                    && let Some(outcome) = self.plan.on_suback(refused)
                {
                    if outcome == Outcome::Granted {
                        let names: Vec<&str> = self.plan.filters().collect();
                        tracing::info!("subscribed: {}", names.join(", "));
                        self.subscribed.send_replace(true);
                    }
                    self.deliver(T::subscribed(outcome));
                }
            }
            DriverEvent::Event(Event::Outgoing(Outgoing::Disconnect)) => self.disconnecting = true,
            DriverEvent::Event(_) => {}
            DriverEvent::Closed => {
                self.lost(driver, "every client handle was dropped".into(), true);
                return false;
            }
            // The broker closed the connection after our DISCONNECT: done.
            DriverEvent::Disconnected(e) if self.disconnecting => {
                self.lost(driver, e, true);
                return false;
            }
            DriverEvent::Disconnected(e) => self.lost(driver, e, false),
        }
        if self.plan.owed().is_some() {
            self.send_owed();
        }
        true
    }
}
