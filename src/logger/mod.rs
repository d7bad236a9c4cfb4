//! `iotitan-logger`: every MQTT message into syslog as one record, nothing lost, nothing
//! forged.
//!
//! Shape: a poller task keeps the MQTT event loop moving ([`mqtt::Pump`]); this task
//! turns each message into a record ([`record::encode`]) and writes it to a non-blocking
//! [`Sink`]. A QoS ≥ 1 message is acknowledged only after its record was handed to the syslog
//! socket, or over RELP only after the daemon answered it (manual acks), so a crash loses nothing the broker still holds. What waits for
//! syslog, what is owed to the broker and when to stop taking messages is the [`Outbox`]'s
//! business: records that syslog cannot take at once wait in a queue bounded in records
//! (`logger.queue`) and in bytes (`logger.queue_bytes`, so the daemon stays small whatever the
//! payload size); when it is full the logger stops taking messages, and the broker holds
//! them (backpressure, as in `mosquitto_sub | logger`), at any QoS. What a syslog restart can
//! cost depends on the transport: see [`crate::syslog::sink`].
//!
//! This task never waits for the poller: acknowledgements go into the request channel with
//! `try_ack`, and those that do not fit now wait in the outbox for the next round. The poller
//! waits for this task (the inbox is bounded: that is the backpressure), so a wait the other
//! way round closes a cycle. It did: under a backlog the event loop reads ten messages for
//! every acknowledgement it sends, the request channel filled with acknowledgements, this
//! task waited for room in it while the poller waited for room in the inbox, and the logger
//! stopped for good, deaf to SIGTERM.

pub mod leave;
mod outbox;

use leave::Marker;
pub use outbox::{Flow, Limits, Outbox};

use crate::config::Config;
use crate::exit::{self, ExitError};
use crate::homeassistant::{self, Announcer};
use crate::linger::Linger;
use crate::mqtt;
use crate::shutdown::Shutdown;
use crate::status::{Metric, Status};
use crate::syslog::header::Formatter;
use crate::syslog::sink::{Sink, Written};
use crate::topic::Filters;
use crate::{notify, record};
use rumqttc::{AsyncClient, Publish, QoS, SubscribeFilter};
use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

/// How long a shutdown may spend writing what was received (SIGTERM must exit within 1 s).
const DRAIN_BUDGET: Duration = Duration::from_millis(500);
/// How long a shutdown may spend handing the last acknowledgements to the event loop.
const ACK_BUDGET: Duration = Duration::from_millis(100);
/// How long a shutdown waits for a RELP daemon to answer `close`.
const CLOSE_BUDGET: Duration = Duration::from_millis(50);
/// How long a shutdown waits for the disconnect to reach the broker.
const DISCONNECT_BUDGET: Duration = Duration::from_millis(200);
/// Messages buffered between the poller and the writer: a full inbox stops the poller, which
/// is how a full outbox stops reading from the broker. Kept small because it is bounded in
/// messages, not bytes (256 of the largest are 2 MiB).
const INBOX: usize = 256;
/// Most messages taken from the poller and written at once.
const BATCH: usize = 256;
/// Most messages taken at once while records wait for syslog: they are queued, not written,
/// so a big batch gains nothing and would hold its records twice (batch and queue) at the
/// queue's fullest.
const QUEUE_BATCH: usize = 16;
/// How often acknowledgements that did not fit the request channel are tried again.
const ACK_RETRY: Duration = Duration::from_millis(10);
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
    /// Records the transport can never carry (bigger than a datagram).
    pub dropped_too_big: u64,
    /// Records a RELP daemon answered with an error status (not written).
    pub refused: u64,
    /// Records written without the location their message had: it lay in a private area.
    pub withheld: u64,
    /// Connections made to the broker (the first one included).
    pub connects: u64,
}

/// What acknowledging a message takes: no payload kept in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ack {
    pkid: u16,
    qos: QoS,
}

impl Ack {
    /// The acknowledgement `p` needs, if any (QoS ≥ 1).
    fn of(p: &Publish) -> Option<Ack> {
        (p.qos != QoS::AtMostOnce).then_some(Ack {
            pkid: p.pkid,
            qos: p.qos,
        })
    }

    /// rumqttc acknowledges a `Publish`; only the packet id and QoS are read.
    fn publish(self) -> Publish {
        Publish {
            dup: false,
            qos: self.qos,
            retain: false,
            topic: String::new(),
            pkid: self.pkid,
            payload: bytes::Bytes::new(),
        }
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
    let mut opts = session_options(cfg)?;
    let status = Status::of(cfg, PROGRAM);
    // Home Assistant's entities follow the logger's availability, reports on or off.
    let availability = status.as_ref().map(Status::availability).or_else(|| {
        cfg.homeassistant
            .discovery
            .then(|| cfg.status.availability_topic(PROGRAM, &cfg.mqtt.client_id))
    });
    if let Some(a) = &availability {
        opts.set_last_will(crate::status::will(a));
    }
    let marker = Marker::new(opts.client_id());
    let keep_alive = opts.keep_alive();
    let (client, driver) = mqtt::client(opts, &cfg.mqtt);
    let qos = mqtt::qos(cfg.logger.qos);
    let mut filters: Vec<SubscribeFilter> = cfg
        .logger
        .subscribe
        .iter()
        .map(|f| SubscribeFilter::new(f.to_string(), qos))
        .collect();
    let announcer = if cfg.homeassistant.discovery {
        filters.extend(
            discovery_filters(cfg)?
                .into_iter()
                .map(|f| SubscribeFilter::new(f, qos)),
        );
        Some(Announcer::new(cfg, PROGRAM, client.clone()))
    } else {
        None
    };
    let polled = mqtt::Pump::new(client.clone(), driver)
        .subscribe(filters)
        .online(availability.clone())
        .inbox(INBOX)
        .spawn::<mqtt::Update>();
    let mut logger = Logger::new(cfg, client, keep_alive, linger, marker);
    logger.status = status;
    logger.availability = availability;
    logger.status_every = cfg.status.interval.get();
    logger.announcer = announcer;
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
        logger.sink.target()
    );
    crate::notify::ready_once(polled.subscribed);
    logger.run(polled.inbox, shutdown).await;
    logger.disconnect(polled.task).await;
    let c = logger.counters;
    tracing::info!(
        "stopped: {} received, {} written, {} excluded, {} dropped (too big), {} refused, \
         {} with a private location withheld",
        c.received,
        c.written,
        c.excluded,
        c.dropped_too_big,
        c.refused,
        c.withheld
    );
    Ok(c)
}

/// The logger's MQTT options: its client id, manual acknowledgements (a message is
/// acknowledged once its record is written) and the configured session kind.
fn session_options(cfg: &Config) -> anyhow::Result<rumqttc::MqttOptions> {
    let mut opts = mqtt::options(&cfg.mqtt, PROGRAM)?;
    opts.set_manual_acks(true);
    opts.set_clean_session(cfg.logger.clean_session);
    Ok(opts)
}

/// The programs' status topics (`status.topic_prefix`, while reports are on): the pipeline's
/// own telemetry, kept retained at the broker and served by `/metrics`, not readings. They are
/// neither written nor counted: written, they would add a record per program every
/// `status.interval` to the history and its statistics.
fn internal(cfg: &Config) -> Option<crate::topic::TopicFilter> {
    if !cfg.status.enabled {
        return None;
    }
    crate::topic::TopicFilter::new(&format!("{}/#", cfg.status.topic_prefix)).ok()
}

/// The program's name in client ids and availability topics.
const PROGRAM: &str = "logger";

/// What discovery needs beyond the logger's subscriptions: Home Assistant's birth message,
/// and our own retained configs (an earlier run's entities, to expire). Nothing if
/// `logger.subscribe` covers them already (`#`).
///
/// Refused with a shared subscription: each logger of a group sees only its share of the
/// messages, so each would take the others' series for silent and remove their entities.
fn discovery_filters(cfg: &Config) -> anyhow::Result<Vec<String>> {
    let subscribe = &cfg.logger.subscribe;
    if subscribe.iter().any(|f| f.as_str().starts_with("$share/")) {
        return Err(ExitError::new(
            exit::CONFIG,
            "homeassistant.discovery needs a logger that sees every message; with a shared \
             subscription (logger.subscribe = [\"$share/...\"]) each logger sees only part \
             of them (docs/homeassistant.md)",
        )
        .into());
    }
    let prefix = &cfg.homeassistant.prefix;
    let node = homeassistant::entity_node(&cfg.mqtt.client_id);
    Ok([
        (format!("{prefix}/status"), format!("{prefix}/status")),
        (
            format!("{prefix}/+/{node}/+/config"),
            format!("{prefix}/sensor/{node}/x/config"),
        ),
    ]
    .into_iter()
    .filter(|(_, example)| !subscribe.matches(example))
    .map(|(filter, _)| filter)
    .collect())
}

struct Logger {
    client: AsyncClient,
    sink: Sink,
    formatter: Formatter,
    exclude: Filters,
    /// The status topics ([`internal`]).
    internal: Option<crate::topic::TopicFilter>,
    max_payload: usize,
    outbox: Outbox<Ack>,
    /// Scratch: the record of the current message.
    record: Vec<u8>,
    /// Scratch: the syslog messages of the messages being handled.
    batch: Records,
    counters: Counters,
    linger: Option<Linger>,
    /// Messages on the logger's marker topic are never written (see [`leave`]).
    marker: Marker,
    /// Locations in private areas, withheld from the records.
    locations: crate::privacy::Locations,
    /// Where the logger reports its health, if it does.
    status: Option<Status>,
    /// Its availability topic: with reports, or for Home Assistant's entities.
    availability: Option<String>,
    /// How often.
    status_every: Duration,
    /// Since when records have been waiting for syslog (none waits: `None`).
    behind_since: Option<Instant>,
    /// Home Assistant discovery, when on: it sees every message the logger takes.
    announcer: Option<Announcer>,
}

/// Syslog messages made from one batch of MQTT messages, back to back in one buffer.
#[derive(Default)]
struct Records {
    bytes: Vec<u8>,
    /// Where each message ends in `bytes`.
    ends: Vec<usize>,
    /// What to acknowledge once each message is written.
    acks: Vec<Option<Ack>>,
    /// Acknowledgements of excluded messages, each with the index of the logged message
    /// before it: due right after that one's (acknowledgements go in the order the messages
    /// came, MQTT 3.1.1 §4.6). In index order.
    then: VecDeque<(usize, Ack)>,
}

impl Records {
    fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
        self.acks.clear();
        self.then.clear();
    }

    /// Drop every acknowledgement the batch holds (see [`Logger::forget_acks`]); returns how
    /// many.
    fn forget_acks(&mut self) -> usize {
        let held = self.acks.iter_mut().filter_map(Option::take).count();
        let excluded = self.then.len();
        self.then.clear();
        held + excluded
    }

    /// The acknowledgements of excluded messages that follow message `i`.
    fn then_acks(&mut self, i: usize) -> impl Iterator<Item = Ack> + '_ {
        std::iter::from_fn(move || {
            let &(j, a) = self.then.front()?;
            (j <= i).then(|| {
                self.then.pop_front();
                a
            })
        })
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
    fn new(
        cfg: &Config,
        client: AsyncClient,
        keep_alive: Duration,
        linger: Option<Linger>,
        marker: Marker,
    ) -> Logger {
        let sink = Sink::new(cfg.syslog.target.clone());
        let formatter = Formatter::new(&cfg.syslog, sink.is_network());
        let limits = Limits {
            records: cfg.logger.queue,
            bytes: cfg.logger.queue_bytes,
        };
        Logger {
            client,
            sink,
            formatter,
            exclude: cfg.logger.exclude.clone(),
            internal: internal(cfg),
            max_payload: cfg.logger.max_payload_bytes,
            outbox: Outbox::new(limits, keep_alive),
            record: Vec::with_capacity(512),
            batch: Records::default(),
            counters: Counters::default(),
            linger,
            marker,
            locations: crate::privacy::Locations::of(cfg),
            status: None,
            availability: None,
            status_every: Duration::from_secs(30),
            behind_since: None,
            announcer: None,
        }
    }

    /// Whether the awaited marker came and every record before it is written (confirmed,
    /// over RELP): what [`leave`] waits for. Never for the daemon, which awaits no marker.
    fn drained(&self) -> bool {
        self.marker.seen() && self.outbox.is_empty()
    }

    /// Write what comes until `shutdown`, or until [`Logger::drained`].
    async fn run(
        &mut self,
        mut inbox: tokio::sync::mpsc::Receiver<mqtt::Update>,
        mut shutdown: Shutdown,
    ) {
        let mut watchdog = notify::Watchdog::new();
        let mut report = tokio::time::interval(Duration::from_secs(10));
        let mut status = tokio::time::interval(self.status_every);
        let mut ack_retry = tokio::time::interval(ACK_RETRY);
        ack_retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut received = Vec::with_capacity(BATCH);
        let mut sweep = tokio::time::interval(
            self.announcer
                .as_ref()
                .map_or(Duration::from_secs(3600), Announcer::sweep_every),
        );
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let announcing = self.announcer.is_some();
        loop {
            if self.drained() {
                break;
            }
            self.update_flow();
            // 0 while the outbox is full: the inbox then fills, the poller stops reading,
            // and the broker holds the messages.
            let room = self.outbox.room(if !self.outbox.has_unsent() {
                BATCH
            } else {
                QUEUE_BATCH
            });
            tokio::select! {
                biased;
                _ = shutdown.recv() => {
                    notify::stopping();
                    break;
                }
                // Also returns when a stream connection was closed by the daemon, so that
                // the next record goes to a new connection rather than into a dead one.
                _ = self.sink.ready(self.outbox.has_unsent()) => {
                    self.flush();
                    self.send_acks();
                    self.after_round(0);
                }
                _ = ack_retry.tick(), if self.outbox.acks_due() > 0 || self.announcement_due() => {
                    self.send_acks();
                    if let Some(a) = &mut self.announcer {
                        a.flush();
                    }
                }
                _ = sweep.tick(), if announcing => {
                    if let Some(a) = &mut self.announcer {
                        a.sweep(Instant::now());
                    }
                }
                _ = watchdog.tick() => {}
                _ = report.tick() => self.report(),
                _ = status.tick(), if self.status.is_some() => self.publish_status(),
                n = inbox.recv_many(&mut received, room), if room > 0 => {
                    if n == 0 {
                        break;
                    }
                    self.handle(&mut received);
                    self.send_acks();
                    self.after_round(n);
                }
            }
        }
        // Take what the poller already handed over, then stop it from handing more: those
        // stay unacknowledged, and the broker redelivers QoS ≥ 1 ones next session. From
        // here on the poller never waits for this task, so waiting for it is safe.
        inbox.close();
        while inbox.recv_many(&mut received, BATCH).await > 0 {
            self.handle(&mut received);
        }
        let deadline = tokio::time::Instant::now() + DRAIN_BUDGET;
        self.drain(deadline).await;
        self.last_acks(deadline + ACK_BUDGET).await;
        self.sink.close(CLOSE_BUDGET).await;
    }

    /// Whether discovery messages wait for room in the request channel.
    fn announcement_due(&self) -> bool {
        self.announcer.as_ref().is_some_and(Announcer::pending)
    }

    /// Log changes in the flow of messages (see [`Outbox::update`]).
    fn update_flow(&mut self) {
        if self.outbox.is_empty() {
            self.behind_since = None;
        } else if self.behind_since.is_none() {
            self.behind_since = Some(Instant::now());
        }
        let limits = self.outbox.limits();
        match self.outbox.update(Instant::now()) {
            Some(Flow::Held { records, bytes }) => tracing::warn!(
                "syslog is {}: {records} records ({bytes} bytes) wait for it and the queue is \
                 full (logger.queue = {}, logger.queue_bytes = {}); taking messages only as \
                 syslog takes records, the broker holds the rest",
                self.sink_state(),
                limits.records,
                limits.bytes,
            ),
            Some(Flow::PastKeepAlive { stopped_for }) => tracing::warn!(
                "syslog is {}; no message taken for {:.0?}, longer than the MQTT keep-alive: \
                 the logger answers it by reading a few messages each time, {INBOX} at most; \
                 past that the broker may close the connection, and QoS 0 messages it held \
                 for it are lost (QoS 1/2 ones wait in the session)",
                self.sink_state(),
                stopped_for
            ),
            Some(Flow::CaughtUp { took, stopped }) => tracing::info!(
                "syslog caught up after {:.1} s; messages were left at the broker for {:.1} s \
                 of that",
                took.as_secs_f64(),
                stopped.as_secs_f64()
            ),
            None => {}
        }
    }

    fn sink_state(&self) -> String {
        match self.sink.last_error() {
            Some(e) => format!("unavailable ({e})"),
            None if !self.sink.is_connected() => "not connected yet".into(),
            None => "slower than the broker".into(),
        }
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
                && (self.outbox.is_empty()
                    || self
                        .sink
                        .unread_bytes()
                        .is_some_and(|b| b >= LINGER_BACKLOG_BYTES));
            l.after_round(n, can_wait);
        }
    }

    /// Write the records of `received` (emptied), queueing what syslog cannot take now.
    fn handle(&mut self, received: &mut Vec<mqtt::Update>) {
        // One clock reading for the batch: its messages arrived together.
        let now = SystemTime::now();
        let instant = Instant::now();
        self.batch.clear();
        for update in received.drain(..) {
            let p = match update {
                mqtt::Update::Message(p) => p,
                mqtt::Update::Connected { fresh } => {
                    self.counters.connects += 1;
                    if fresh {
                        self.forget_acks();
                    }
                    if fresh {
                        self.forget_acks();
                    }
                    if let Some(a) = &mut self.announcer {
                        a.connected(fresh);
                    }
                    continue;
                }
                _ => continue,
            };
            let ack = Ack::of(&p);
            // A leave's marker and the programs' status reports are not part of the stream:
            // not written, not counted.
            let marker = self.marker.check(&p.topic, &p.payload)
                || self.internal.as_ref().is_some_and(|f| f.matches(&p.topic));
            if !marker {
                self.counters.received += 1;
            }
            if marker || self.exclude.matches(&p.topic) {
                if !marker {
                    self.counters.excluded += 1;
                }
                if let Some(a) = ack {
                    match self.batch.len().checked_sub(1) {
                        Some(before) => self.batch.then.push_back((before, a)),
                        None => self.outbox.ack(a),
                    }
                }
                continue;
            }
            if let Some(a) = &mut self.announcer {
                a.observe(&p.topic, &p.payload, p.retain, instant);
            }
            self.record.clear();
            // A location in a private area never reaches syslog (OwnTracks in MQTT mode).
            let payload = self.locations.withhold(&p.topic, &p.payload);
            if let std::borrow::Cow::Owned(_) = payload {
                self.counters.withheld += 1;
            }
            record::encode(
                p.topic.as_bytes(),
                &payload,
                self.max_payload,
                &mut self.record,
            );
            self.formatter
                .message(now, &self.record, &mut self.batch.bytes);
            self.batch.ends.push(self.batch.bytes.len());
            self.batch.acks.push(ack);
        }
        // Straight to syslog while nothing waits ahead (the usual case: no copy). A record
        // for a daemon that confirms (RELP) is kept until confirmed, so it goes through the
        // outbox.
        let mut done = 0;
        let direct = !self.sink.confirms();
        while direct && self.outbox.is_empty() && done < self.batch.len() {
            let (n, outcome) = {
                let rest: Vec<&[u8]> = (done..self.batch.len())
                    .map(|i| self.batch.get(i))
                    .collect();
                self.sink.try_write_many(&rest)
            };
            self.counters.written += n as u64;
            for i in done..done + n {
                if let Some(a) = self.batch.acks[i].take() {
                    self.outbox.ack(a);
                }
                for a in self.batch.then_acks(i) {
                    self.outbox.ack(a);
                }
            }
            done += n;
            self.requeue_replay();
            match outcome {
                Written::Done | Written::Later => break,
                Written::Rejected(e) => {
                    if let Some(a) = self.batch.acks[done].take() {
                        self.outbox.ack(a);
                    }
                    for a in self.batch.then_acks(done) {
                        self.outbox.ack(a);
                    }
                    done += 1;
                    self.reject(e);
                }
            }
        }
        for i in done..self.batch.len() {
            let ack = self.batch.acks[i].take();
            self.outbox.push(self.batch.get(i).to_vec(), ack);
            // Behind the record just queued.
            for a in self.batch.then_acks(i) {
                self.outbox.ack(a);
            }
        }
        if !direct {
            self.flush();
        }
    }

    /// A fresh session began at the broker (it lost ours, or `clean_session`): the
    /// acknowledgements still owed name packet ids of the old session, which the broker may
    /// already use for new messages — acknowledging one of those before its record is
    /// written could lose it. They are dropped (the broker forgot those messages); the
    /// records stay.
    fn forget_acks(&mut self) {
        let n = self.outbox.forget_acks() + self.batch.forget_acks();
        if n > 0 {
            tracing::info!(
                "the broker has no session for us any more: {n} acknowledgements owed to the \
                 old one dropped (their records are kept)"
            );
        }
    }

    /// Write queued records until the socket is full or the queue empty.
    fn flush(&mut self) {
        let confirms = self.sink.confirms();
        self.settle();
        while self.outbox.has_unsent() {
            let (n, outcome) = {
                let front: Vec<&[u8]> = self.outbox.front(BATCH).collect();
                self.sink.try_write_many(&front)
            };
            if confirms {
                // Sent, written once the daemon answers (`settle`).
                self.outbox.sent(n);
                if matches!(outcome, Written::Later) {
                    break;
                }
                continue;
            }
            // Written records leave the queue before replayed ones are put back in front.
            self.outbox.written(n);
            self.counters.written += n as u64;
            match outcome {
                Written::Done => self.requeue_replay(),
                Written::Later => {
                    self.requeue_replay();
                    break;
                }
                Written::Rejected(e) => {
                    self.outbox.reject_front();
                    self.requeue_replay();
                    self.reject(e);
                }
            }
        }
    }

    /// On a daemon that confirms records (RELP): those it answered are written (or refused),
    /// and their acknowledgements fall due; after a lost connection, those it did not answer
    /// are sent again. Called before anything is sent, so that records sent on a new
    /// connection are never mistaken for ones of the old.
    fn settle(&mut self) {
        let s = self.sink.take_settled();
        if s.answered > 0 {
            self.outbox.confirmed(s.answered);
            self.counters.written += (s.answered - s.refused) as u64;
        }
        if s.refused > 0 {
            self.counters.refused += s.refused as u64;
            tracing::error!(
                "syslog at {} refused {} records (last answer: {}); they are not written, and \
                 their messages are acknowledged as sending them again would meet the same \
                 answer",
                self.sink.target(),
                s.refused,
                s.last_refusal.as_deref().unwrap_or("?")
            );
        }
        if s.lost {
            let n = self.outbox.resend();
            if n > 0 {
                tracing::info!("sending {n} records again that syslog did not confirm");
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
        self.outbox.replay(replay);
    }

    fn reject(&mut self, e: std::io::Error) {
        self.counters.dropped_too_big += 1;
        tracing::error!(
            "a record too big for {} was dropped ({e}); lower logger.max_payload_bytes",
            "the syslog transport"
        );
    }

    /// Hand the acknowledgements due to the event loop, as far as its request channel has
    /// room. Never waits: the poller may be waiting for this task (see the module doc); what
    /// does not fit is tried again after the next round or [`ACK_RETRY`].
    fn send_acks(&mut self) {
        while let Some(a) = self.outbox.next_ack() {
            if self.client.try_ack(&a.publish()).is_err() {
                break;
            }
            self.outbox.ack_sent();
        }
    }

    /// On shutdown, once the poller no longer waits for this task: the acknowledgements
    /// still due, waiting for room until `deadline`.
    async fn last_acks(&mut self, deadline: tokio::time::Instant) {
        while let Some(a) = self.outbox.next_ack() {
            match tokio::time::timeout_at(deadline, self.client.ack(&a.publish())).await {
                Ok(Ok(())) => self.outbox.ack_sent(),
                _ => break,
            }
        }
        if self.outbox.acks_due() > 0 {
            tracing::warn!(
                "{} acknowledgements could not be sent before exit; the broker delivers those \
                 messages again, so their records will be written twice",
                self.outbox.acks_due()
            );
        }
    }

    /// On shutdown: write what is queued, and wait for what a confirming daemon has not
    /// answered yet, until `deadline`.
    async fn drain(&mut self, deadline: tokio::time::Instant) {
        self.settle();
        while !self.outbox.is_empty() {
            let want_write = self.outbox.has_unsent();
            if tokio::time::timeout_at(deadline, self.sink.ready(want_write))
                .await
                .is_err()
            {
                break;
            }
            self.flush();
        }
        if !self.outbox.is_empty() {
            tracing::error!(
                "{} records could not be written (or were not confirmed) before exit (syslog \
                 unavailable); the broker redelivers QoS 1/2 ones",
                self.outbox.len()
            );
        }
    }

    async fn disconnect(&mut self, poller: tokio::task::JoinHandle<()>) {
        // A DISCONNECT does not fire the will: say `offline` (and the last numbers) first.
        self.publish_status();
        if let Some(a) = &self.availability {
            crate::status::offline(&self.client, a);
        }
        let _ = self.client.try_disconnect();
        let abort = poller.abort_handle();
        if tokio::time::timeout(DISCONNECT_BUDGET, poller)
            .await
            .is_err()
        {
            abort.abort();
        }
    }

    /// Publish the status report (retained): what `/metrics` and the health panel show.
    fn publish_status(&self) {
        let Some(s) = &self.status else { return };
        let c = self.counters;
        let (records, bytes) = (self.outbox.len(), self.outbox.bytes());
        let summary = match self.sink.last_error() {
            Some(e) => format!("syslog unavailable ({e}): {records} records wait"),
            None if self.outbox.is_stopped() => {
                format!(
                    "syslog is slower than the broker: {records} records wait, the queue is full"
                )
            }
            None => format!("{} written, {records} waiting", c.written),
        };
        let metrics = vec![
            Metric::counter("received", "Messages received from the broker", c.received),
            Metric::counter("written", "Records handed to syslog", c.written),
            Metric::counter("excluded", "Messages skipped by logger.exclude", c.excluded),
            Metric::counter(
                "dropped_too_big",
                "Records bigger than syslog can carry, not written",
                c.dropped_too_big,
            ),
            Metric::counter("refused", "Records a RELP daemon refused", c.refused),
            Metric::counter(
                "withheld",
                "Records written without a location in a private area",
                c.withheld,
            ),
            Metric::counter("connects", "Connections made to the broker", c.connects),
            Metric::gauge("queued", "Records waiting for syslog", records as f64),
            Metric::gauge(
                "behind_seconds",
                "How long records have been waiting for syslog: the lag (0: none waits)",
                self.behind_since.map_or(0.0, |t| t.elapsed().as_secs_f64()),
            ),
            Metric::gauge(
                "queued_bytes",
                "Bytes of the records waiting for syslog",
                bytes as f64,
            ),
            Metric::gauge(
                "held",
                "1 while the queue is full and messages wait at the broker",
                f64::from(u8::from(self.outbox.is_stopped())),
            ),
            Metric::gauge(
                "syslog_up",
                "1 while syslog takes records, 0 while it fails",
                f64::from(u8::from(self.sink.last_error().is_none())),
            ),
        ];
        s.publish(&self.client, &summary, metrics);
    }

    fn report(&mut self) {
        let c = self.counters;
        notify::status(&format!(
            "{} received, {} written, {} queued{}, {} dropped (too big), {} refused",
            c.received,
            c.written,
            self.outbox.len(),
            if self.outbox.is_stopped() {
                " (queue full: messages wait at the broker)"
            } else {
                ""
            },
            c.dropped_too_big,
            c.refused
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(pkid: u16) -> Ack {
        Ack {
            pkid,
            qos: QoS::AtLeastOnce,
        }
    }

    #[test]
    fn excluded_acks_follow_the_message_before_them() {
        let mut r = Records::default();
        // Messages 0 and 1 logged; two excluded after 0, one after 1.
        r.then.extend([(0, ack(10)), (0, ack(11)), (1, ack(12))]);
        assert_eq!(r.then_acks(0).collect::<Vec<_>>(), [ack(10), ack(11)]);
        assert_eq!(r.then_acks(0).count(), 0);
        assert_eq!(r.then_acks(1).collect::<Vec<_>>(), [ack(12)]);
        assert!(r.then.is_empty());
    }
}
