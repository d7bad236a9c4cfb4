//! Requests whose answer someone waits for: publish at QoS 1 and learn when the broker
//! acknowledged each message; subscribe and learn when the broker confirmed; hand incoming
//! messages to whoever listens on a filter (the HTTP daemon's command acknowledgements).
//!
//! rumqttc tells us about a publish twice: `Outgoing::Publish(pkid)` when it is written (in
//! the order the requests were queued) and `Incoming::PubAck(pkid)` when the broker has it.
//! So every request is queued under one lock together with its waiter in a FIFO; the
//! `Outgoing` event moves the front waiter under its packet id, the PUBACK resolves it.
//! Subscriptions work the same way with SUBSCRIBE/SUBACK, the pump's own ones included, so
//! every SUBACK finds its owner, and so do UNSUBSCRIBE/UNSUBACK.
//!
//! Requests are queued with `try_*` from the callers' tasks, never awaited: the pump must
//! keep polling (see [`super`]). When the connection fails, every waiter learns it at once,
//! and a pump started with [`super::Pump::spawn_confirmed`] drops whatever was queued but not
//! acknowledged rather than sending it after the reconnect: the caller has been told it was
//! not published, so it must not be.

use rumqttc::{AsyncClient, Publish, QoS, SubscribeFilter};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// How long a batch waits for its acknowledgements before answering with what it has: the
/// keep-alive notices a dead broker, this catches a live one that stopped acknowledging.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(30);

/// Most messages of one [`Requests::publish_all`] waiting for their acknowledgement: as many
/// as the request channel holds, so the broker always has the next ones.
pub const IN_FLIGHT: usize = super::REQUEST_CAPACITY;

/// The acknowledgements counted by [`Requests::publish_all`].
#[derive(Debug, Default)]
struct Count {
    acked: usize,
    unconfirmed: usize,
}

/// What became of a message: acknowledged or not, or still waiting when time ran out.
type Ack = Result<Result<Confirmation, oneshot::error::RecvError>, tokio::time::error::Elapsed>;

impl Count {
    /// Count `ack`; whether it was acknowledged.
    fn add(&mut self, ack: Ack) -> bool {
        match ack {
            Ok(Ok(Confirmation::Acked)) => {
                self.acked += 1;
                return true;
            }
            Ok(Ok(Confirmation::Unconfirmed)) => self.unconfirmed += 1,
            // Never sent (the connection failed first).
            Ok(Err(_)) => {}
            // Still waiting: the broker may yet take it.
            Err(_) => self.unconfirmed += 1,
        }
        false
    }
}

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

/// Who asked for a SUBSCRIBE, so that its SUBACK reaches them.
pub(super) enum SubOwner {
    /// The pump's [`super::subscribe::Plan`].
    Plan,
    /// [`Requests::listen`] or [`Requests::subscribe`], waiting to learn whether the broker
    /// granted it.
    Listener(oneshot::Sender<bool>),
    /// A listened-on filter renewed on a fresh session: nobody waits.
    Renewal,
}

/// The bookkeeping shared by the pump and the request handles.
#[derive(Default)]
pub(super) struct Book {
    pub(super) connected: bool,
    /// Publishes queued, not yet written (FIFO: rumqttc writes them in order).
    queued: VecDeque<Waiter>,
    /// Publishes written, by packet id (a queue per id in case of a packet-id collision).
    written: HashMap<u16, VecDeque<Waiter>>,
    /// Subscriptions queued, not yet written.
    sub_queued: VecDeque<SubOwner>,
    sub_written: HashMap<u16, SubOwner>,
    /// Unsubscriptions queued, not yet written, each with whoever waits for its UNSUBACK.
    unsub_queued: VecDeque<Option<oneshot::Sender<()>>>,
    unsub_written: HashMap<u16, oneshot::Sender<()>>,
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

impl Book {
    /// Every waiter learns that the connection is gone.
    pub(super) fn fail_all(&mut self) {
        // Dropping a waiter's sender tells its receiver "not sent".
        self.queued.clear();
        for (_, waiters) in self.written.drain() {
            for w in waiters {
                let _ = w.send(Confirmation::Unconfirmed);
            }
        }
        self.sub_queued.clear();
        self.sub_written.clear();
        self.unsub_queued.clear();
        self.unsub_written.clear();
    }

    /// Queue a subscription of the pump's own.
    pub(super) fn subscribe_plan(
        &mut self,
        client: &AsyncClient,
        filters: &[SubscribeFilter],
    ) -> Result<(), rumqttc::ClientError> {
        client.try_subscribe_many(filters.to_vec())?;
        self.sub_queued.push_back(SubOwner::Plan);
        Ok(())
    }

    /// Publish at QoS 1 without waiting for the acknowledgement, keeping the FIFO of waiters
    /// in step (`tracked`: a confirmed pump, where every publish must have its place in it).
    /// `false` when the request channel is full.
    pub(super) fn fire(
        &mut self,
        client: &AsyncClient,
        topic: &str,
        payload: Vec<u8>,
        retain: bool,
        tracked: bool,
    ) -> bool {
        if client
            .try_publish(topic, QoS::AtLeastOnce, retain, payload)
            .is_err()
        {
            return false;
        }
        if tracked {
            // Nobody waits: the receiver is dropped, the acknowledgement goes nowhere.
            self.queued.push_back(oneshot::channel().0);
        }
        true
    }

    /// A fresh session has no subscriptions: renew those someone listens on.
    pub(super) fn renew(&mut self, client: &AsyncClient) {
        let filters: Vec<String> = self.listening.keys().cloned().collect();
        for f in filters {
            if client.try_subscribe(f, QoS::AtLeastOnce).is_ok() {
                self.sub_queued.push_back(SubOwner::Renewal);
            }
        }
    }

    pub(super) fn on_publish_written(&mut self, pkid: u16) {
        if let Some(w) = self.queued.pop_front() {
            self.written.entry(pkid).or_default().push_back(w);
        }
    }

    pub(super) fn on_puback(&mut self, pkid: u16) {
        if let Some(q) = self.written.get_mut(&pkid) {
            if let Some(w) = q.pop_front() {
                let _ = w.send(Confirmation::Acked);
            }
            if q.is_empty() {
                self.written.remove(&pkid);
            }
        }
    }

    pub(super) fn on_subscribe_written(&mut self, pkid: u16) {
        if let Some(o) = self.sub_queued.pop_front() {
            self.sub_written.insert(pkid, o);
        }
    }

    pub(super) fn on_unsubscribe_written(&mut self, pkid: u16) {
        if let Some(Some(w)) = self.unsub_queued.pop_front() {
            self.unsub_written.insert(pkid, w);
        }
    }

    /// The broker answered an UNSUBSCRIBE: whoever waits for it learns so.
    pub(super) fn on_unsuback(&mut self, pkid: u16) {
        if let Some(w) = self.unsub_written.remove(&pkid) {
            let _ = w.send(());
        }
    }

    /// Whose SUBACK this is; a listener learns `granted` here.
    pub(super) fn on_suback(&mut self, pkid: u16, granted: bool) -> Option<SubOwner> {
        match self.sub_written.remove(&pkid)? {
            SubOwner::Listener(w) => {
                let _ = w.send(granted);
                None
            }
            o => Some(o),
        }
    }

    /// Hand a live message to the listeners whose filter matches; retained messages are
    /// old news to them.
    pub(super) fn dispatch(&self, p: &Publish) {
        if p.retain {
            return;
        }
        for l in &self.listeners {
            if crate::topic::matches(&l.filter, &p.topic) {
                let _ = l.tx.send(p.clone());
            }
        }
    }
}

/// What the pump and the request handles share.
pub(super) struct Shared {
    pub(super) client: AsyncClient,
    book: Mutex<Book>,
    pub(super) connected: watch::Sender<bool>,
}

impl Shared {
    pub(super) fn new(client: AsyncClient) -> Shared {
        Shared {
            client,
            book: Mutex::new(Book::default()),
            connected: watch::channel(false).0,
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Book> {
        // A panic while holding the lock leaves plain bookkeeping behind: keep going with it.
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Publish and subscribe with confirmation through a pump started with
/// [`super::Pump::spawn_confirmed`]; cheap to clone.
///
/// Every publish of such a pump should go through [`Requests::publish_all`]: a message
/// published around it would take its place in the FIFO of waiters.
#[derive(Clone)]
pub struct Requests {
    pub(super) shared: Arc<Shared>,
}

impl Requests {
    /// Publish one message at QoS 1 without waiting for the broker (a status report, which
    /// the next one replaces): `false` if it could not be queued now.
    pub fn fire(&self, topic: &str, payload: Vec<u8>, retain: bool) -> bool {
        let mut book = self.shared.lock();
        book.connected && book.fire(&self.shared.client, topic, payload, retain, true)
    }

    /// Whether the broker is connected now.
    pub fn is_connected(&self) -> bool {
        *self.shared.connected.borrow()
    }

    /// Changes of the connection state.
    pub fn watch(&self) -> watch::Receiver<bool> {
        self.shared.connected.subscribe()
    }

    /// Publish every `(topic, payload)` at QoS 1 and wait for the broker's acknowledgements.
    /// `Err` says how many were acknowledged when the connection failed (or is down).
    ///
    /// At most [`IN_FLIGHT`] wait for their acknowledgement at a time, and `messages` is
    /// taken one at a time as they go: a stats window of a million series publishes millions,
    /// made as they are sent, never all held at once.
    pub async fn publish_all<T, P>(
        &self,
        messages: impl ExactSizeIterator<Item = (T, P)>,
        retain: bool,
    ) -> Result<usize, Partial>
    where
        T: Into<String>,
        P: Into<Vec<u8>>,
    {
        let total = messages.len();
        let mut waiting = VecDeque::with_capacity(total.min(IN_FLIGHT));
        let mut count = Count::default();
        'messages: for (topic, payload) in messages {
            let (topic, payload) = (topic.into(), payload.into());
            loop {
                {
                    let mut t = self.shared.lock();
                    if !t.connected {
                        break 'messages;
                    }
                    match self.shared.client.try_publish(
                        topic.clone(),
                        QoS::AtLeastOnce,
                        retain,
                        payload.clone(),
                    ) {
                        Ok(()) => {
                            let (tx, rx) = oneshot::channel();
                            t.queued.push_back(tx);
                            waiting.push_back(rx);
                            break;
                        }
                        // The request channel is full (a big batch, a slow broker): wait for
                        // the pump to take some.
                        Err(rumqttc::ClientError::TryRequest(_)) => {}
                        Err(_) => break 'messages,
                    }
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            if waiting.len() >= IN_FLIGHT
                && let Some(rx) = waiting.pop_front()
            {
                // A broker that stopped acknowledging gets no more.
                if !count.add(tokio::time::timeout(ACK_TIMEOUT, rx).await) {
                    break;
                }
            }
        }
        let deadline = tokio::time::Instant::now() + ACK_TIMEOUT;
        for rx in waiting {
            count.add(tokio::time::timeout_at(deadline, rx).await);
        }
        if count.acked == total {
            Ok(count.acked)
        } else {
            Err(Partial {
                acked: count.acked,
                unconfirmed: count.unconfirmed,
                total,
            })
        }
    }

    /// Subscribe to `filters` and wait for the broker's answer: `Ok(true)` if it granted every
    /// one, `Ok(false)` if it refused any ([`super::subscribe::refused`]). Messages on them go
    /// to the pump's inbox, if it has one; the filters are not renewed on a fresh session.
    pub async fn subscribe(&self, filters: Vec<SubscribeFilter>) -> Result<bool, Unavailable> {
        let (tx, rx) = oneshot::channel();
        let mut tx = Some(tx);
        self.hand_over(|t, client| {
            client.try_subscribe_many(filters.clone())?;
            if let Some(tx) = tx.take() {
                t.sub_queued.push_back(SubOwner::Listener(tx));
            }
            Ok(())
        })
        .await?;
        match tokio::time::timeout(ACK_TIMEOUT, rx).await {
            Ok(Ok(granted)) => Ok(granted),
            _ => Err(Unavailable),
        }
    }

    /// Unsubscribe from `filter` and wait for the broker's UNSUBACK: from then on it sends
    /// nothing new for that filter (what it queued before still comes).
    pub async fn unsubscribe(&self, filter: &str) -> Result<(), Unavailable> {
        let (tx, rx) = oneshot::channel();
        let mut tx = Some(tx);
        self.hand_over(|t, client| {
            client.try_unsubscribe(filter)?;
            t.unsub_queued.push_back(tx.take());
            Ok(())
        })
        .await?;
        match tokio::time::timeout(ACK_TIMEOUT, rx).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(Unavailable),
        }
    }

    /// Run `request` — a `try_*` call of the client and the bookkeeping of its answer, both
    /// under the lock so that the bookkeeping keeps the order of the packets — until the
    /// client takes it. While the client's request channel is full (the pump writing the
    /// acknowledgements of a flood, say), wait for the pump to take some, for
    /// [`ACK_TIMEOUT`] at most: a full channel is a busy connection, not a lost one (a
    /// `leave` under a backlog of 50 000 once took it for one).
    async fn hand_over(
        &self,
        mut request: impl FnMut(&mut Book, &AsyncClient) -> Result<(), rumqttc::ClientError>,
    ) -> Result<(), Unavailable> {
        let deadline = tokio::time::Instant::now() + ACK_TIMEOUT;
        loop {
            {
                let mut t = self.shared.lock();
                if !t.connected {
                    return Err(Unavailable);
                }
                match request(&mut t, &self.shared.client) {
                    Ok(()) => return Ok(()),
                    Err(rumqttc::ClientError::TryRequest(_)) => {}
                    Err(_) => return Err(Unavailable),
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Unavailable);
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Listen for messages on `filter` until the returned [`Listening`] is dropped: subscribes
    /// (QoS 1) and waits for the broker's SUBACK, so nothing published after this returns is
    /// missed. Retained messages are not passed on: they are old news. A refused
    /// subscription is [`Unavailable`].
    pub async fn listen(&self, filter: &str) -> Result<Listening, Unavailable> {
        let (tx, rx) = mpsc::unbounded_channel();
        let (ack_tx, ack_rx) = oneshot::channel();
        let mut handed = Some((tx, ack_tx));
        let mut id = 0;
        self.hand_over(|t, client| {
            client.try_subscribe(filter, QoS::AtLeastOnce)?;
            if let Some((tx, ack_tx)) = handed.take() {
                t.sub_queued.push_back(SubOwner::Listener(ack_tx));
                t.next_listener += 1;
                id = t.next_listener;
                t.listeners.push(Listener {
                    id,
                    filter: filter.to_owned(),
                    tx,
                });
                *t.listening.entry(filter.to_owned()).or_default() += 1;
            }
            Ok(())
        })
        .await?;
        let listening = Listening {
            requests: self.clone(),
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
    requests: Requests,
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
        let mut t = self.requests.shared.lock();
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
            if t.connected
                && self
                    .requests
                    .shared
                    .client
                    .try_unsubscribe(self.filter.clone())
                    .is_ok()
            {
                // Nobody waits for its UNSUBACK; the entry keeps the others' in order.
                t.unsub_queued.push_back(None);
            }
        }
    }
}
