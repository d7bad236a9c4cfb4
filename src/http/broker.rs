//! The daemon's broker connection: publish at QoS 1 and learn when the broker acknowledged
//! each message; subscribe and learn when the broker confirmed; hand incoming messages to
//! whoever waits for them (command acknowledgements).
//!
//! rumqttc tells us about a publish twice: `Outgoing::Publish(pkid)` when it is written (in
//! the order the requests were queued) and `Incoming::PubAck(pkid)` when the broker has it.
//! So every request is queued under one lock together with its waiter in a FIFO; the
//! `Outgoing` event moves the front waiter under its packet id, the PUBACK resolves it.
//! Subscriptions work the same way with SUBSCRIBE/SUBACK.
//!
//! One task polls the event loop and never awaits anything else (rumqttc deadlocks when the
//! poller waits on its own request channel, see [`crate::mqtt`]); requests are queued with
//! `try_*` from the request handlers. When the connection fails, every waiter learns it at
//! once, and whatever was queued but not acknowledged is dropped rather than sent after the
//! reconnect: the client has been told it was not published, so it must not be.

use crate::mqtt::{Driver, DriverEvent};
use rumqttc::{AsyncClient, Event, Outgoing, Packet, Publish, QoS};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// How long a batch waits for its acknowledgements before answering with what it has: the
/// keep-alive notices a dead broker, this catches a live one that stopped acknowledging.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a batch was not wholly published.
///
/// MQTT cannot say more than this: a message written to a connection that then broke may have
/// reached the broker without its acknowledgement coming back. Those are `unconfirmed`; the
/// rest of the batch was never sent, and none of it is sent later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partial {
    /// Messages the broker acknowledged.
    pub acked: usize,
    /// Messages written to the connection whose acknowledgement never came.
    pub unconfirmed: usize,
    /// Messages in the batch.
    pub total: usize,
}

/// What became of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Confirmation {
    Acked,
    /// Written, then the connection failed before the PUBACK.
    Unconfirmed,
}

/// The broker is not connected (or the connection failed while we waited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unavailable;

/// A publish's waiter learns its [`Confirmation`]; dropped unsent, it learns "not sent".
type Waiter = oneshot::Sender<Confirmation>;
/// A subscription's waiter learns whether the broker granted it.
type SubWaiter = oneshot::Sender<bool>;

#[derive(Default)]
struct Tracker {
    connected: bool,
    /// Publishes queued, not yet written (FIFO: rumqttc writes them in order).
    queued: VecDeque<Waiter>,
    /// Publishes written, by packet id (a queue per id in case of a packet-id collision).
    written: HashMap<u16, VecDeque<Waiter>>,
    /// Subscriptions queued; `None` for ones nobody waits for (resubscriptions).
    sub_queued: VecDeque<Option<SubWaiter>>,
    sub_written: HashMap<u16, Option<SubWaiter>>,
    /// Topic filters someone listens on, with how many listeners each has.
    listening: HashMap<String, usize>,
    listeners: Vec<Listener>,
    next_listener: u64,
}

struct Listener {
    id: u64,
    filter: String,
    tx: mpsc::UnboundedSender<Publish>,
}

impl Tracker {
    fn fail_all(&mut self) {
        // Dropping a waiter's sender tells its receiver "not sent".
        self.queued.clear();
        for (_, waiters) in self.written.drain() {
            for w in waiters {
                let _ = w.send(Confirmation::Unconfirmed);
            }
        }
        self.sub_queued.clear();
        self.sub_written.clear();
    }
}

struct Inner {
    client: AsyncClient,
    tracker: Mutex<Tracker>,
    connected: watch::Sender<bool>,
}

/// A handle on the connection; cheap to clone.
#[derive(Clone)]
pub struct Broker {
    inner: Arc<Inner>,
}

impl Broker {
    /// Start polling `driver` in a task of its own; `client` must belong to it.
    pub fn start(client: AsyncClient, driver: Driver) -> (Broker, tokio::task::JoinHandle<()>) {
        let inner = Arc::new(Inner {
            client,
            tracker: Mutex::new(Tracker::default()),
            connected: watch::channel(false).0,
        });
        let task = tokio::spawn(poll(driver, inner.clone()));
        (Broker { inner }, task)
    }

    fn lock(&self) -> MutexGuard<'_, Tracker> {
        lock(&self.inner)
    }

    /// Whether the broker is connected now.
    pub fn is_connected(&self) -> bool {
        *self.inner.connected.borrow()
    }

    /// Changes of the connection state.
    pub fn watch(&self) -> watch::Receiver<bool> {
        self.inner.connected.subscribe()
    }

    /// Publish every `(topic, payload)` at QoS 1 and wait for the broker's acknowledgements.
    /// `Err` says how many were acknowledged when the connection failed (or is down).
    pub async fn publish_all<'a>(
        &self,
        messages: impl ExactSizeIterator<Item = (&'a str, &'a str)>,
    ) -> Result<usize, Partial> {
        let total = messages.len();
        let mut acks = Vec::with_capacity(total);
        'messages: for (topic, payload) in messages {
            loop {
                {
                    let mut t = self.lock();
                    if !t.connected {
                        break 'messages;
                    }
                    match self.inner.client.try_publish(
                        topic,
                        QoS::AtLeastOnce,
                        false,
                        payload.as_bytes().to_vec(),
                    ) {
                        Ok(()) => {
                            let (tx, rx) = oneshot::channel();
                            t.queued.push_back(tx);
                            acks.push(rx);
                            continue 'messages;
                        }
                        // The request channel is full (a big batch, a slow broker): wait for
                        // the poller to take some.
                        Err(rumqttc::ClientError::TryRequest(_)) => {}
                        Err(_) => break 'messages,
                    }
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        let mut acked = 0;
        let mut unconfirmed = 0;
        let deadline = tokio::time::Instant::now() + ACK_TIMEOUT;
        for rx in acks {
            match tokio::time::timeout_at(deadline, rx).await {
                Ok(Ok(Confirmation::Acked)) => acked += 1,
                Ok(Ok(Confirmation::Unconfirmed)) => unconfirmed += 1,
                // Never sent (the connection failed first).
                Ok(Err(_)) => {}
                // Still waiting: the broker may yet take it.
                Err(_) => unconfirmed += 1,
            }
        }
        if acked == total {
            Ok(acked)
        } else {
            Err(Partial {
                acked,
                unconfirmed,
                total,
            })
        }
    }

    /// Listen for messages on `filter` until the returned [`Listening`] is dropped: subscribes
    /// (QoS 1) and waits for the broker's SUBACK, so nothing published after this returns is
    /// missed. Retained messages are not passed on: they are old news.
    pub async fn listen(&self, filter: &str) -> Result<Listening, Unavailable> {
        let (tx, rx) = mpsc::unbounded_channel();
        let (ack_tx, ack_rx) = oneshot::channel();
        let id = {
            let mut t = self.lock();
            if !t.connected {
                return Err(Unavailable);
            }
            self.inner
                .client
                .try_subscribe(filter, QoS::AtLeastOnce)
                .map_err(|_| Unavailable)?;
            t.sub_queued.push_back(Some(ack_tx));
            t.next_listener += 1;
            let id = t.next_listener;
            t.listeners.push(Listener {
                id,
                filter: filter.to_owned(),
                tx,
            });
            *t.listening.entry(filter.to_owned()).or_default() += 1;
            id
        };
        let listening = Listening {
            broker: self.clone(),
            id,
            filter: filter.to_owned(),
            rx,
        };
        match tokio::time::timeout(ACK_TIMEOUT, ack_rx).await {
            Ok(Ok(true)) => Ok(listening),
            _ => Err(Unavailable),
        }
    }
}

/// Messages arriving on a filter; unsubscribes (if nobody else listens) when dropped.
pub struct Listening {
    broker: Broker,
    id: u64,
    filter: String,
    rx: mpsc::UnboundedReceiver<Publish>,
}

impl Listening {
    /// The next live message; `None` if the connection is gone.
    pub async fn next(&mut self) -> Option<Publish> {
        self.rx.recv().await
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        let mut t = self.broker.lock();
        t.listeners.retain(|l| l.id != self.id);
        let last = match t.listening.get_mut(&self.filter) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            _ => true,
        };
        if last {
            t.listening.remove(&self.filter);
            if t.connected {
                let _ = self
                    .broker
                    .inner
                    .client
                    .try_unsubscribe(self.filter.clone());
            }
        }
    }
}

fn lock(inner: &Inner) -> MutexGuard<'_, Tracker> {
    // A panic while holding the lock leaves plain bookkeeping behind: keep going with it.
    inner.tracker.lock().unwrap_or_else(|p| p.into_inner())
}

/// The one task that polls the event loop.
async fn poll(mut driver: Driver, inner: Arc<Inner>) {
    let mut disconnecting = false;
    loop {
        let update = driver.next().await;
        let mut t = lock(&inner);
        match update {
            DriverEvent::Connected { .. } => {
                tracing::info!("connected to the MQTT broker");
                t.connected = true;
                // A clean session has no subscriptions: renew those someone waits on.
                let filters: Vec<String> = t.listening.keys().cloned().collect();
                for f in filters {
                    if inner.client.try_subscribe(f, QoS::AtLeastOnce).is_ok() {
                        t.sub_queued.push_back(None);
                    }
                }
                inner.connected.send_replace(true);
            }
            DriverEvent::Event(Event::Outgoing(Outgoing::Publish(pkid))) => {
                if let Some(w) = t.queued.pop_front() {
                    t.written.entry(pkid).or_default().push_back(w);
                }
            }
            DriverEvent::Event(Event::Incoming(Packet::PubAck(ack))) => {
                if let Some(q) = t.written.get_mut(&ack.pkid) {
                    if let Some(w) = q.pop_front() {
                        let _ = w.send(Confirmation::Acked);
                    }
                    if q.is_empty() {
                        t.written.remove(&ack.pkid);
                    }
                }
            }
            DriverEvent::Event(Event::Outgoing(Outgoing::Subscribe(pkid))) => {
                if let Some(w) = t.sub_queued.pop_front() {
                    t.sub_written.insert(pkid, w);
                }
            }
            DriverEvent::Event(Event::Incoming(Packet::SubAck(ack))) => {
                let ok = !ack
                    .return_codes
                    .iter()
                    .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure));
                if !ok {
                    tracing::error!(codes = ?ack.return_codes, "the broker refused a subscription");
                }
                if let Some(Some(w)) = t.sub_written.remove(&ack.pkid) {
                    let _ = w.send(ok);
                }
            }
            DriverEvent::Event(Event::Incoming(Packet::Publish(p))) => {
                if !p.retain {
                    for l in &t.listeners {
                        if crate::topic::matches(&l.filter, &p.topic) {
                            let _ = l.tx.send(p.clone());
                        }
                    }
                }
            }
            DriverEvent::Event(Event::Outgoing(Outgoing::Disconnect)) => disconnecting = true,
            DriverEvent::Event(_) => {}
            // The broker closed the connection after our DISCONNECT: done.
            DriverEvent::Disconnected(_) if disconnecting => {
                t.connected = false;
                t.fail_all();
                inner.connected.send_replace(false);
                return;
            }
            DriverEvent::Disconnected(e) => {
                if t.connected {
                    tracing::warn!("MQTT connection lost: {e}; reconnecting");
                } else {
                    tracing::debug!("cannot connect to the MQTT broker: {e}");
                }
                t.connected = false;
                driver.drop_unsent();
                t.fail_all();
                inner.connected.send_replace(false);
            }
            DriverEvent::Closed => return,
        }
    }
}
