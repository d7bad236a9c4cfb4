//! `iotitan-logger`: every MQTT message into syslog as one record, nothing lost, nothing
//! forged.
//!
//! Shape: a poller task keeps the MQTT event loop moving ([`mqtt::spawn_poller`]); this task
//! turns each message into a record ([`record::encode`]) and writes it to a non-blocking
//! [`Sink`]. A QoS ≥ 1 message is acknowledged only after its record was handed to the syslog
//! socket (manual acks), so a crash loses nothing the broker still holds. While syslog is
//! unreachable, records wait in a queue bounded in records (`logger.queue`) and in bytes
//! (`logger.queue_bytes`, so the daemon stays small whatever the payload size); past either
//! bound, QoS 0 messages are dropped, counted and logged (at once, then once a second while
//! it lasts, and a total when syslog has caught up), while QoS ≥ 1 messages stay
//! unacknowledged at the broker, whose in-flight window bounds them. What a syslog restart
//! can cost depends on the transport: see [`crate::syslog::sink`].

use crate::config::Config;
use crate::linger::Linger;
use crate::mqtt::{self, Driver, REQUEST_CAPACITY};
use crate::shutdown::Shutdown;
use crate::syslog::sink::{Formatter, Outcome, Sink};
use crate::topic::Filters;
use crate::{notify, record};
use rumqttc::{AsyncClient, Publish, QoS, SubscribeFilter};
use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

/// How long a shutdown may spend writing what was received (SIGTERM must exit within 1 s).
const DRAIN_BUDGET: Duration = Duration::from_millis(500);
/// How long a shutdown waits for the disconnect to reach the broker.
const DISCONNECT_BUDGET: Duration = Duration::from_millis(200);
/// Messages buffered between the poller and the writer. The writer never waits for syslog
/// (it queues or drops), so this only fills when the CPU is short; it is kept small because
/// it is bounded in messages, not bytes (256 of the largest are 2 MiB).
const INBOX: usize = 256;
/// What a queued record costs besides its bytes: its queue slot and the allocator's header.
const RECORD_OVERHEAD: usize = std::mem::size_of::<Pending>() + 16;
/// How often drops are summarised while they go on.
const DROP_REPORT: Duration = Duration::from_secs(1);
/// Most messages taken from the poller and written at once.
const BATCH: usize = 256;
/// How long the runtime lingers before waiting for more after a busy round (see
/// [`crate::linger`]): the most a record is held back, and only while messages stream in
/// faster than one wake-up each.
/// 1 ms: at 80 000 messages/s, rounds of ~80 records instead of ~4 (BENCHMARKS.md).
pub const LINGER: Duration = Duration::from_millis(1);
/// While records wait for a full syslog socket, the runtime lingers only if the daemon has
/// at least this much unread: some 160 short records, which take rsyslogd about as long
/// as [`LINGER`] to read.
const LINGER_BACKLOG_BYTES: usize = 128 * 1024;
/// The runtime never lingers if the daemon's unix socket queues fewer datagrams than this:
/// the kernel's default is 11 (`net.unix.max_dgram_qlen` = 10), which the daemon reads in
/// well under [`LINGER`] and then idles (measured: QoS 0 drops at 200 000 messages/s bursts);
/// systemd raises it to 512 at boot.
const LINGER_MIN_SOCKET_QUEUE: usize = 128;

/// What the logger did, reported at exit.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    /// Messages received from the broker.
    pub received: u64,
    /// Records handed to syslog.
    pub written: u64,
    /// Messages skipped by `logger.exclude`.
    pub excluded: u64,
    /// QoS 0 messages dropped because syslog was unreachable and the queue full.
    pub dropped_queue_full: u64,
    /// Records the transport can never carry (bigger than a datagram).
    pub dropped_too_big: u64,
}

/// A record waiting for syslog, with the message to acknowledge once it is written.
struct Pending {
    message: Vec<u8>,
    ack: Option<Publish>,
}

impl Pending {
    /// Memory the record holds while queued, for `logger.queue_bytes`.
    fn cost(&self) -> usize {
        self.message.capacity() + RECORD_OVERHEAD
    }
}

/// Run the logger until `shutdown`, then write what was received and disconnect. `linger`
/// is the runtime's before-park hook, if the caller installed one: the logger arms it after
/// busy rounds.
pub async fn run(
    cfg: &Config,
    shutdown: Shutdown,
    linger: Option<Linger>,
) -> anyhow::Result<Counters> {
    let mut opts = mqtt::options(&cfg.mqtt, "logger")?;
    opts.set_manual_acks(true);
    opts.set_clean_session(cfg.logger.clean_session);
    let (client, eventloop) = AsyncClient::new(opts, REQUEST_CAPACITY);
    let driver = Driver::new(eventloop, cfg.mqtt.reconnect_max.get());
    let qos = mqtt::qos(cfg.logger.qos);
    let filters = cfg
        .logger
        .subscribe
        .iter()
        .map(|f| SubscribeFilter::new(f.to_string(), qos))
        .collect();
    let (inbox, poller) = mqtt::spawn_poller(client.clone(), driver, filters, INBOX);
    let sink = Sink::new(cfg.syslog.target.clone());
    let formatter = Formatter::new(&cfg.syslog, sink.is_network());
    let mut logger = Logger {
        client,
        sink,
        formatter,
        exclude: cfg.logger.exclude.clone(),
        max_payload: cfg.logger.max_payload_bytes,
        queue_cap: cfg.logger.queue.max(1),
        queue_bytes_cap: cfg.logger.queue_bytes,
        queue: VecDeque::new(),
        queued_bytes: 0,
        outage: None,
        record: Vec::with_capacity(512),
        batch: Batch::default(),
        counters: Counters::default(),
        linger,
    };
    tracing::info!(
        "logging {} from {}:{} to {}",
        cfg.logger
            .subscribe
            .iter()
            .map(|f| f.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        cfg.mqtt.host,
        cfg.mqtt.port,
        cfg.syslog.target
    );
    notify::ready();
    logger.run(inbox, shutdown).await;
    logger.disconnect(poller).await;
    let c = logger.counters;
    tracing::info!(
        "stopped: {} received, {} written, {} excluded, {} dropped (queue full), {} dropped (too big)",
        c.received,
        c.written,
        c.excluded,
        c.dropped_queue_full,
        c.dropped_too_big
    );
    Ok(c)
}

/// Drops since the queue last overflowed, for the log.
#[derive(Clone, Copy)]
struct Outage {
    dropped_before: u64,
    logged: u64,
}

struct Logger {
    client: AsyncClient,
    sink: Sink,
    formatter: Formatter,
    exclude: Filters,
    max_payload: usize,
    queue_cap: usize,
    queue_bytes_cap: usize,
    queue: VecDeque<Pending>,
    /// Sum of [`Pending::cost`] over `queue`.
    queued_bytes: usize,
    /// While QoS 0 messages are being dropped: the drop count when it began and when it was
    /// last logged.
    outage: Option<Outage>,
    /// Scratch: the record of the current message.
    record: Vec<u8>,
    /// Scratch: the syslog messages of the messages being handled.
    batch: Batch,
    counters: Counters,
    linger: Option<Linger>,
}

/// Syslog messages made from one batch of MQTT messages, back to back in one buffer.
#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    /// Where each message ends in `bytes`.
    ends: Vec<usize>,
    /// What to acknowledge once each message is written.
    acks: Vec<Option<Publish>>,
}

impl Batch {
    fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
        self.acks.clear();
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    /// Message `i`.
    fn get(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.bytes[start..self.ends[i]]
    }
}

impl Logger {
    async fn run(
        &mut self,
        mut inbox: tokio::sync::mpsc::Receiver<Publish>,
        mut shutdown: Shutdown,
    ) {
        let mut watchdog = notify::Watchdog::new();
        let mut report = tokio::time::interval(Duration::from_secs(10));
        let mut drop_report = tokio::time::interval(DROP_REPORT);
        let mut received = Vec::with_capacity(BATCH);
        drop_report.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.recv() => {
                    notify::stopping();
                    break;
                }
                // Also returns when a stream connection was closed by the daemon, so that
                // the next record goes to a new connection rather than into a dead one.
                _ = self.sink.ready(!self.queue.is_empty()) => {
                    self.flush().await;
                    self.after_round(0);
                }
                _ = watchdog.tick() => {}
                _ = drop_report.tick(), if self.outage.is_some() => self.report_drops(),
                _ = report.tick() => self.report(),
                n = inbox.recv_many(&mut received, BATCH) => {
                    if n == 0 {
                        break;
                    }
                    self.handle(&mut received).await;
                    self.after_round(n);
                }
            }
        }
        // Take what the poller already handed over, then stop it from handing more: those
        // stay unacknowledged, and the broker redelivers QoS ≥ 1 ones next session.
        inbox.close();
        while inbox.recv_many(&mut received, BATCH).await > 0 {
            self.handle(&mut received).await;
        }
        self.drain().await;
    }

    /// Arm the linger after a round that handled `n` messages, if syslog can spare it.
    fn after_round(&self, n: usize) {
        if let Some(l) = &self.linger {
            // A pause is fine while the daemon has plenty to read meanwhile, and would
            // starve it otherwise: a socket that queues only a few datagrams is read empty
            // long before the pause ends, and so is a full one with little in it.
            let deep = self
                .sink
                .socket_queue()
                .is_none_or(|q| q >= LINGER_MIN_SOCKET_QUEUE);
            let can_wait = deep
                && (self.queue.is_empty()
                    || self
                        .sink
                        .unread_bytes()
                        .is_some_and(|b| b >= LINGER_BACKLOG_BYTES));
            l.after_round(n, can_wait);
        }
    }

    /// Write the records of `received` (emptied), queueing what syslog cannot take now.
    async fn handle(&mut self, received: &mut Vec<Publish>) {
        // One clock reading for the batch: its messages arrived together.
        let now = SystemTime::now();
        self.batch.clear();
        for p in received.drain(..) {
            self.counters.received += 1;
            if self.exclude.matches(&p.topic) {
                self.counters.excluded += 1;
                self.ack(p).await;
                continue;
            }
            self.record.clear();
            record::encode(
                p.topic.as_bytes(),
                &p.payload,
                self.max_payload,
                &mut self.record,
            );
            self.formatter
                .message(now, &self.record, &mut self.batch.bytes);
            self.batch.ends.push(self.batch.bytes.len());
            self.batch
                .acks
                .push((p.qos != QoS::AtMostOnce).then(|| ack_only(&p)));
        }
        let mut done = 0;
        while self.queue.is_empty() && done < self.batch.len() {
            let (n, outcome) = {
                let rest: Vec<&[u8]> = (done..self.batch.len())
                    .map(|i| self.batch.get(i))
                    .collect();
                self.sink.try_write_many(&rest)
            };
            self.requeue_replay();
            self.counters.written += n as u64;
            for i in done..done + n {
                let ack = self.batch.acks[i].take();
                self.ack_opt(ack).await;
            }
            done += n;
            match outcome {
                Outcome::Done | Outcome::Later => break,
                Outcome::Rejected(e) => {
                    let ack = self.batch.acks[done].take();
                    done += 1;
                    self.reject(e, ack).await;
                }
            }
        }
        for i in done..self.batch.len() {
            let ack = self.batch.acks[i].take();
            let len = self.batch.get(i).len();
            // A copy of the message is exactly as big as the message (see `Pending::cost`).
            if ack.is_none()
                && (self.queue.len() >= self.queue_cap
                    || self.queued_bytes + len + RECORD_OVERHEAD > self.queue_bytes_cap)
            {
                self.drop_qos0();
                continue;
            }
            let message = self.batch.get(i).to_vec();
            self.push_back(Pending { message, ack });
        }
    }

    fn push_back(&mut self, p: Pending) {
        self.queued_bytes += p.cost();
        self.queue.push_back(p);
    }

    fn push_front(&mut self, p: Pending) {
        self.queued_bytes += p.cost();
        self.queue.push_front(p);
    }

    fn pop_front(&mut self) -> Option<Publish> {
        let p = self.queue.pop_front()?;
        self.queued_bytes -= p.cost();
        p.ack
    }

    /// Count a QoS 0 message dropped for want of queue space; the first of an outage is
    /// logged at once, the rest by [`Logger::report_drops`].
    fn drop_qos0(&mut self) {
        let before = self.counters.dropped_queue_full;
        self.counters.dropped_queue_full += 1;
        if self.outage.is_some() {
            return;
        }
        self.outage = Some(Outage {
            dropped_before: before,
            logged: before + 1,
        });
        tracing::warn!(
            "dropping QoS 0 messages: syslog is {} and the queue is full ({} records, {} bytes; \
             logger.queue = {}, logger.queue_bytes = {}); QoS 1/2 messages wait at the broker",
            match self.sink.last_error() {
                Some(e) => format!("unavailable ({e})"),
                None if !self.sink.is_connected() => "not connected yet".into(),
                None => "too slow".into(),
            },
            self.queue.len(),
            self.queued_bytes,
            self.queue_cap,
            self.queue_bytes_cap,
        );
    }

    /// While drops go on: how many since the last report. Once the queue is empty again
    /// (syslog caught up): the outage's total.
    fn report_drops(&mut self) {
        let Some(o) = &mut self.outage else { return };
        let total = self.counters.dropped_queue_full;
        if total > o.logged {
            tracing::warn!(
                "dropped {} more QoS 0 messages ({} in this outage; {} records queued)",
                total - o.logged,
                total - o.dropped_before,
                self.queue.len()
            );
            o.logged = total;
        }
        if self.queue.is_empty() {
            tracing::info!(
                "syslog caught up: {} QoS 0 messages were dropped in this outage",
                total - o.dropped_before
            );
            self.outage = None;
        }
    }

    /// Write queued records until the socket is full or the queue empty.
    async fn flush(&mut self) {
        while !self.queue.is_empty() {
            let (n, outcome) = {
                let front: Vec<&[u8]> = self
                    .queue
                    .iter()
                    .take(BATCH)
                    .map(|p| p.message.as_slice())
                    .collect();
                self.sink.try_write_many(&front)
            };
            // Written records leave the queue before replayed ones are put back in front.
            for _ in 0..n {
                self.counters.written += 1;
                let p = self.pop_front();
                self.ack_opt(p).await;
            }
            match outcome {
                Outcome::Done => self.requeue_replay(),
                Outcome::Later => {
                    self.requeue_replay();
                    break;
                }
                Outcome::Rejected(e) => {
                    let p = self.pop_front();
                    self.requeue_replay();
                    self.reject(e, p).await;
                }
            }
        }
    }

    /// Put records the syslog daemon lost in a restart back at the head of the queue. Their
    /// messages were acknowledged already; only the records are owed.
    fn requeue_replay(&mut self) {
        let replay = self.sink.take_replay();
        if replay.is_empty() {
            return;
        }
        tracing::info!(
            "sending {} records again that syslog may not have read",
            replay.len()
        );
        self.counters.written -= replay.len() as u64;
        for message in replay.into_iter().rev() {
            self.push_front(Pending { message, ack: None });
        }
    }

    async fn reject(&mut self, e: std::io::Error, ack: Option<Publish>) {
        self.counters.dropped_too_big += 1;
        tracing::error!(
            "a record too big for {} was dropped ({e}); lower logger.max_payload_bytes",
            "the syslog transport"
        );
        // Acknowledged all the same: redelivery could never succeed.
        self.ack_opt(ack).await;
    }

    async fn ack(&mut self, p: Publish) {
        if p.qos != QoS::AtMostOnce {
            self.ack_opt(Some(ack_only(&p))).await;
        }
    }

    async fn ack_opt(&mut self, p: Option<Publish>) {
        if let Some(p) = p {
            // Safe to await: the poller task drains the request channel independently.
            if let Err(e) = self.client.ack(&p).await {
                tracing::warn!("cannot acknowledge message {}: {e}", p.pkid);
            }
        }
    }

    /// On shutdown: write what is queued, for at most [`DRAIN_BUDGET`].
    async fn drain(&mut self) {
        let deadline = Instant::now() + DRAIN_BUDGET;
        while !self.queue.is_empty() {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            if tokio::time::timeout(left, self.sink.ready(true))
                .await
                .is_err()
            {
                break;
            }
            self.flush().await;
        }
        if !self.queue.is_empty() {
            tracing::error!(
                "{} records could not be written before exit (syslog unavailable); the broker redelivers QoS 1/2 ones",
                self.queue.len()
            );
        }
    }

    async fn disconnect(&mut self, poller: tokio::task::JoinHandle<()>) {
        let _ = self.client.try_disconnect();
        let abort = poller.abort_handle();
        if tokio::time::timeout(DISCONNECT_BUDGET, poller)
            .await
            .is_err()
        {
            abort.abort();
        }
    }

    fn report(&mut self) {
        let c = self.counters;
        notify::status(&format!(
            "{} received, {} written, {} queued, {} dropped",
            c.received,
            c.written,
            self.queue.len(),
            c.dropped_queue_full + c.dropped_too_big
        ));
    }
}

/// A copy of `p` with only what an acknowledgement needs (no payload kept in memory).
fn ack_only(p: &Publish) -> Publish {
    Publish {
        dup: false,
        qos: p.qos,
        retain: false,
        topic: String::new(),
        pkid: p.pkid,
        payload: bytes::Bytes::new(),
    }
}
