//! The logger's outbox: the records on their way to syslog, the acknowledgements they owe the
//! broker, and when to stop taking messages. Pure: no I/O, no clock of its own (every call
//! that needs the time takes `now`), generic over the acknowledgement so that tests can count
//! them.
//!
//! The rules:
//! - Records leave in the order their messages came, except those syslog lost in a restart
//!   ([`Outbox::replay`]): they are older than anything queued, so they go first.
//! - A message's acknowledgement falls due only once its record was handed to syslog (or can
//!   never be: [`Outbox::reject_front`]), and acknowledgements fall due in the order the
//!   messages came (MQTT 3.1.1 §4.6: a receiver acknowledges in order).
//! - On a transport where the daemon confirms records (RELP), "handed to syslog" means
//!   confirmed: a record sent ([`Outbox::sent`]) stays in the queue, counted against the
//!   limits, until the daemon answers it ([`Outbox::confirmed`]); if the connection ends
//!   first, every record sent and not confirmed is sent again ([`Outbox::resend`]), so
//!   nothing is lost and a few records may be written twice.
//! - Nothing is dropped for want of room. When the queue is full, in records or in bytes,
//!   [`Outbox::room`] is 0 and the caller stops taking messages from the broker: the socket
//!   buffers fill and TCP flow control leaves the backlog at the broker, as a pipe into
//!   logger(1) does. Taking starts again once syslog has taken half of the queue, so that a
//!   slow syslog costs one pause per half queue rather than one wake-up per record.
//! - The bounds are checked before each batch is taken: a batch can pass the byte bound by
//!   its own size (the caller bounds batches), and records given back by
//!   [`Outbox::replay`] (a few, bounded by the syslog socket's queue) are always taken back.
//! - While taking is stopped the MQTT connection is read only as far as answering the
//!   keep-alive needs (see [`crate::mqtt::Pump::inbox`]), which has its limit; past the
//!   keep-alive [`Flow::PastKeepAlive`] says so once, as a long outage may cost the
//!   connection (QoS 1/2 messages wait in the session; QoS 0 messages the broker held for
//!   the connection are lost there).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How much the queue may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Records (`logger.queue`).
    pub records: usize,
    /// Bytes, each record counted with its bookkeeping (`logger.queue_bytes`).
    pub bytes: usize,
}

/// A change in the flow of messages, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// The queue filled up: messages stay at the broker until syslog catches up.
    Held {
        /// Records queued.
        records: usize,
        /// Bytes queued.
        bytes: usize,
    },
    /// Taking has been stopped for longer than the MQTT keep-alive.
    PastKeepAlive {
        /// How long taking has been stopped.
        stopped_for: Duration,
    },
    /// The queue is empty again.
    CaughtUp {
        /// Since the queue filled up.
        took: Duration,
        /// How long taking was stopped in that time, all pauses together.
        stopped: Duration,
    },
}

/// Records waiting for syslog and acknowledgements waiting for the broker; see the module
/// documentation for the rules.
#[derive(Debug)]
pub struct Outbox<A> {
    queue: VecDeque<Queued<A>>,
    /// How many records at the front of `queue` were sent to a confirming transport and
    /// wait for its answer.
    inflight: usize,
    /// Sum of [`Outbox::cost`] over `queue`.
    bytes: usize,
    limits: Limits,
    keep_alive: Duration,
    /// Acknowledgements due, oldest first.
    due: VecDeque<A>,
    /// Since when no messages are taken, while none are.
    stopped: Option<Instant>,
    /// From the queue filling up until it is empty again.
    episode: Option<Episode>,
}

#[derive(Debug)]
struct Queued<A> {
    record: Vec<u8>,
    ack: Option<A>,
    /// Acknowledgements of messages that came after this one and are not logged (excluded):
    /// due right after its own, so that acknowledgements go in the order the messages came
    /// (MQTT 3.1.1 §4.6).
    then: Vec<A>,
}

#[derive(Debug, Clone, Copy)]
struct Episode {
    since: Instant,
    stopped: Duration,
    warned: bool,
}

impl<A> Outbox<A> {
    /// An empty outbox within `limits` (each at least 1), for a connection with `keep_alive`.
    pub fn new(limits: Limits, keep_alive: Duration) -> Self {
        Outbox {
            queue: VecDeque::new(),
            inflight: 0,
            bytes: 0,
            limits: Limits {
                records: limits.records.max(1),
                bytes: limits.bytes.max(1),
            },
            keep_alive,
            due: VecDeque::new(),
            stopped: None,
            episode: None,
        }
    }

    /// What a record of `len` bytes costs while queued: its bytes, its queue slot and the
    /// allocator's header.
    pub fn cost(len: usize) -> usize {
        len + std::mem::size_of::<Queued<A>>() + 16
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Whether no record is held: a new record may go to syslog directly, ahead of nothing.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Whether records wait to be sent (not counting those sent and unconfirmed).
    pub fn has_unsent(&self) -> bool {
        self.queue.len() > self.inflight
    }

    /// Records held: waiting to be sent, or sent and not confirmed yet.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Records sent to a confirming transport and not confirmed yet.
    pub fn unconfirmed(&self) -> usize {
        self.inflight
    }

    /// Bytes waiting, bookkeeping included.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether taking messages is stopped (backpressure).
    pub fn is_stopped(&self) -> bool {
        self.stopped.is_some() || self.is_full()
    }

    fn is_full(&self) -> bool {
        self.queue.len() >= self.limits.records || self.bytes >= self.limits.bytes
    }

    fn is_half_empty(&self) -> bool {
        self.queue.len() <= self.limits.records / 2 && self.bytes <= self.limits.bytes / 2
    }

    /// How many messages may be taken from the broker now, at most `max`: 0 while taking is
    /// stopped. Call [`Outbox::update`] first.
    pub fn room(&self, max: usize) -> usize {
        if self.is_stopped() {
            0
        } else {
            max.min(self.limits.records - self.queue.len())
        }
    }

    /// Queue a record that syslog cannot take now, behind the others, with what to
    /// acknowledge once it is written.
    pub fn push(&mut self, record: Vec<u8>, ack: Option<A>) {
        self.bytes += Self::cost(record.capacity());
        self.queue.push_back(Queued {
            record,
            ack,
            then: Vec::new(),
        });
    }

    /// The first `max` records not sent yet, oldest first: what to write next.
    pub fn front(&self, max: usize) -> impl Iterator<Item = &[u8]> {
        self.queue
            .iter()
            .skip(self.inflight)
            .take(max)
            .map(|q| q.record.as_slice())
    }

    /// The first `n` records were handed to syslog: they leave, and their acknowledgements
    /// fall due. Only for transports that do not confirm (nothing is sent and unconfirmed).
    pub fn written(&mut self, n: usize) {
        debug_assert_eq!(self.inflight, 0, "written() on a confirming transport");
        self.pop(n);
    }

    /// The first `n` records from [`Outbox::front`] were sent to a transport that confirms
    /// them: they stay, and owe their acknowledgements, until [`Outbox::confirmed`].
    pub fn sent(&mut self, n: usize) {
        self.inflight = (self.inflight + n).min(self.queue.len());
    }

    /// The daemon answered the `n` oldest records sent: they leave, and their
    /// acknowledgements fall due (a refused record too, as sending it again would meet the
    /// same answer; the caller counts and reports it).
    pub fn confirmed(&mut self, n: usize) {
        let n = n.min(self.inflight);
        self.inflight -= n;
        self.pop(n);
    }

    /// The connection ended before the daemon answered the records sent: they all wait to be
    /// sent again, first. Returns how many.
    pub fn resend(&mut self) -> usize {
        std::mem::take(&mut self.inflight)
    }

    fn pop(&mut self, n: usize) {
        for _ in 0..n {
            let Some(q) = self.queue.pop_front() else {
                return;
            };
            self.bytes -= Self::cost(q.record.capacity());
            self.due.extend(q.ack);
            self.due.extend(q.then);
        }
    }

    /// The first record can never be written (too big for the transport): it leaves, and its
    /// acknowledgement falls due all the same, as a redelivery could never succeed. Returns
    /// whether there was one.
    pub fn reject_front(&mut self) -> bool {
        debug_assert_eq!(self.inflight, 0, "a confirming transport rejects nothing");
        let before = self.queue.len();
        self.written(1);
        self.queue.len() < before
    }

    /// Records syslog lost (it restarted before reading them) go back first, in the order
    /// given; their messages were acknowledged already.
    pub fn replay(&mut self, records: Vec<Vec<u8>>) {
        debug_assert_eq!(self.inflight, 0, "a confirming transport replays nothing");
        for record in records.into_iter().rev() {
            self.bytes += Self::cost(record.capacity());
            self.queue.push_front(Queued {
                record,
                ack: None,
                then: Vec::new(),
            });
        }
    }

    /// The acknowledgement of a message whose record was written without waiting, or that is
    /// not logged at all: due now, or, while records of earlier messages are queued, once
    /// they are written (acknowledgements go in the order the messages came).
    pub fn ack(&mut self, ack: A) {
        match self.queue.back_mut() {
            Some(last) => last.then.push(ack),
            None => self.due.push_back(ack),
        }
    }

    /// Drop every acknowledgement owed, due or waiting behind a record: they belong to a
    /// session the broker no longer has. The records stay. Returns how many were dropped.
    pub fn forget_acks(&mut self) -> usize {
        let mut n = self.due.len();
        self.due.clear();
        for q in &mut self.queue {
            n += usize::from(q.ack.take().is_some()) + q.then.len();
            q.then.clear();
        }
        n
    }

    /// The oldest acknowledgement due, to send; [`Outbox::ack_sent`] once it went.
    pub fn next_ack(&self) -> Option<&A> {
        self.due.front()
    }

    /// The acknowledgement from [`Outbox::next_ack`] was sent.
    pub fn ack_sent(&mut self) {
        self.due.pop_front();
    }

    /// Acknowledgements due and not sent yet.
    pub fn acks_due(&self) -> usize {
        self.due.len()
    }

    /// Move the flow on to `now`: stop taking messages when the queue is full, start again
    /// when it is half empty. Returns what changed, for the log: at most one change a call.
    pub fn update(&mut self, now: Instant) -> Option<Flow> {
        match self.stopped {
            Some(since) if self.is_half_empty() => {
                self.stopped = None;
                if let Some(e) = &mut self.episode {
                    e.stopped += now.saturating_duration_since(since);
                }
            }
            Some(since) => {
                let stopped_for = now.saturating_duration_since(since);
                if let Some(e) = &mut self.episode
                    && !e.warned
                    && stopped_for >= self.keep_alive
                {
                    e.warned = true;
                    return Some(Flow::PastKeepAlive { stopped_for });
                }
            }
            None if self.is_full() => {
                self.stopped = Some(now);
                if self.episode.is_none() {
                    self.episode = Some(Episode {
                        since: now,
                        stopped: Duration::ZERO,
                        warned: false,
                    });
                    return Some(Flow::Held {
                        records: self.queue.len(),
                        bytes: self.bytes,
                    });
                }
            }
            None => {}
        }
        if self.queue.is_empty()
            && self.stopped.is_none()
            && let Some(e) = self.episode.take()
        {
            return Some(Flow::CaughtUp {
                took: now.saturating_duration_since(e.since),
                stopped: e.stopped,
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEEP_ALIVE: Duration = Duration::from_secs(60);

    fn outbox(records: usize, bytes: usize) -> Outbox<u32> {
        Outbox::new(Limits { records, bytes }, KEEP_ALIVE)
    }

    fn rec(i: u32) -> Vec<u8> {
        i.to_string().into_bytes()
    }

    fn acks(o: &mut Outbox<u32>) -> Vec<u32> {
        let mut out = Vec::new();
        while let Some(&a) = o.next_ack() {
            out.push(a);
            o.ack_sent();
        }
        out
    }

    #[test]
    fn acknowledgements_fall_due_only_once_written_and_in_order() {
        let mut o = outbox(100, 1 << 20);
        o.ack(1);
        o.push(rec(2), Some(2));
        o.push(rec(3), None);
        o.push(rec(4), Some(4));
        assert_eq!(acks(&mut o), vec![1], "queued records owe their acks");
        o.written(2);
        assert_eq!(acks(&mut o), vec![2]);
        assert_eq!(o.front(10).collect::<Vec<_>>(), vec![b"4"]);
        assert!(o.reject_front(), "a record too big leaves");
        assert_eq!(acks(&mut o), vec![4], "and is acknowledged all the same");
        assert!(o.is_empty() && !o.reject_front());
        assert_eq!(o.bytes(), 0);
    }

    #[test]
    fn a_fresh_session_drops_the_acks_owed_and_keeps_the_records() {
        let mut o = outbox(100, 1 << 20);
        o.ack(1);
        o.push(rec(2), Some(2));
        o.ack(3); // excluded, behind record 2
        o.push(rec(4), Some(4));
        o.sent(1); // record 2 waits for a confirming daemon
        assert_eq!(o.forget_acks(), 4);
        assert_eq!(o.acks_due(), 0);
        o.push(rec(5), Some(5)); // of the new session
        o.confirmed(1);
        o.resend();
        o.written(2);
        assert_eq!(acks(&mut o), vec![5], "only the new session's");
        assert!(o.is_empty());
        assert_eq!(o.forget_acks(), 0);
    }

    #[test]
    fn replayed_records_go_first_and_owe_nothing() {
        let mut o = outbox(100, 1 << 20);
        o.push(rec(5), Some(5));
        o.replay(vec![rec(3), rec(4)]);
        assert_eq!(o.front(10).collect::<Vec<_>>(), vec![&b"3"[..], b"4", b"5"]);
        o.written(2);
        assert_eq!(o.acks_due(), 0);
        o.written(1);
        assert_eq!(acks(&mut o), vec![5]);
    }

    #[test]
    fn a_full_queue_stops_taking_until_half_empty() {
        let t0 = Instant::now();
        let mut o = outbox(10, 1 << 20);
        assert_eq!(o.room(256), 10);
        for i in 0..10 {
            o.push(rec(i), Some(i));
        }
        assert_eq!(o.room(256), 0);
        assert_eq!(
            o.update(t0),
            Some(Flow::Held {
                records: 10,
                bytes: o.bytes()
            })
        );
        o.written(1);
        assert_eq!(o.update(t0), None);
        assert_eq!(o.room(256), 0, "one free slot does not start taking again");
        o.written(4);
        assert_eq!(o.update(t0 + Duration::from_secs(2)), None);
        assert_eq!(
            o.room(256),
            5,
            "half empty: taking again, as far as there is room"
        );
        // Full again, and empty: one episode.
        for i in 10..15 {
            o.push(rec(i), None);
        }
        assert_eq!(
            o.update(t0 + Duration::from_secs(3)),
            None,
            "not logged twice"
        );
        o.written(10);
        assert_eq!(
            o.update(t0 + Duration::from_secs(4)),
            Some(Flow::CaughtUp {
                took: Duration::from_secs(4),
                stopped: Duration::from_secs(3),
            })
        );
        assert_eq!(o.update(t0 + Duration::from_secs(5)), None);
        assert_eq!(o.room(256), 10);
    }

    #[test]
    fn the_byte_bound_stops_taking_too() {
        let t0 = Instant::now();
        let cost = Outbox::<u32>::cost(1000);
        let mut o = outbox(1000, 3 * cost);
        o.push(vec![0; 1000], None);
        o.push(vec![0; 1000], None);
        assert!(o.room(256) > 0);
        o.push(vec![0; 1000], None);
        assert_eq!(o.room(256), 0);
        assert!(matches!(o.update(t0), Some(Flow::Held { records: 3, .. })));
        o.written(1);
        o.update(t0);
        assert_eq!(o.room(256), 0, "two thirds full");
        o.written(1);
        o.update(t0);
        assert!(o.room(256) > 0);
    }

    #[test]
    fn a_long_stop_is_reported_once_past_the_keep_alive() {
        let t0 = Instant::now();
        let mut o = outbox(2, 1 << 20);
        o.push(rec(1), Some(1));
        o.push(rec(2), Some(2));
        assert!(matches!(o.update(t0), Some(Flow::Held { .. })));
        assert_eq!(o.update(t0 + KEEP_ALIVE / 2), None);
        assert_eq!(
            o.update(t0 + KEEP_ALIVE),
            Some(Flow::PastKeepAlive {
                stopped_for: KEEP_ALIVE
            })
        );
        assert_eq!(o.update(t0 + KEEP_ALIVE * 3), None);
        o.written(2);
        assert!(matches!(
            o.update(t0 + KEEP_ALIVE * 4),
            Some(Flow::CaughtUp { .. })
        ));
    }

    #[test]
    fn zero_limits_still_let_messages_through() {
        let t0 = Instant::now();
        let mut o = outbox(0, 0);
        assert_eq!(o.room(256), 1);
        o.push(rec(1), Some(1));
        o.update(t0);
        assert_eq!(o.room(256), 0);
        o.written(1);
        o.update(t0);
        assert_eq!(o.room(256), 1);
    }

    /// What the syslog side and the broker side do to the outbox.
    #[derive(Debug, Clone)]
    enum Op {
        /// Take up to this many messages (sizes; QoS ≥ 1 when true), as `room` allows.
        Take(Vec<(usize, bool, bool)>),
        /// Syslog takes up to this many records.
        Write(usize),
        /// The front record is too big.
        Reject,
        /// Syslog lost the last this many records written (a restart).
        Replay(usize),
        /// Send up to this many acknowledgements.
        Ack(usize),
        /// Time passes (ms).
        Tick(u64),
    }

    /// What happens on a confirming transport: messages taken, records sent, the daemon's
    /// answers to the oldest sent, the connection lost.
    #[derive(Debug, Clone)]
    enum Conf {
        Take(usize),
        Send(usize),
        Answer(usize),
        Lose,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => proptest::collection::vec((1usize..300, any::<bool>(), proptest::bool::weighted(0.15)), 1..20)
                .prop_map(Op::Take),
            4 => (0usize..20).prop_map(Op::Write),
            1 => Just(Op::Reject),
            1 => (0usize..4).prop_map(Op::Replay),
            2 => (0usize..20).prop_map(Op::Ack),
            2 => (0u64..90_000).prop_map(Op::Tick),
        ]
    }

    /// A record: its message number, then padding to its size.
    fn record(id: u32, size: usize) -> Vec<u8> {
        let mut r = id.to_be_bytes().to_vec();
        r.resize(size.max(4), b'.');
        r
    }

    fn id_of(r: &[u8]) -> u32 {
        u32::from_be_bytes([r[0], r[1], r[2], r[3]])
    }

    proptest! {
        /// Whatever the order of events: nothing is lost or reordered, every QoS ≥ 1 message
        /// is acknowledged exactly once, in order, and only after its record was written; the
        /// queue keeps its bounds (a batch over the byte bound, replays over both); taking
        /// stops only while the queue is not empty, and the log hears of each fill-up once
        /// and of its end.
        #[test]
        fn nothing_lost_acked_in_order_after_writing_bounded(
            ops in proptest::collection::vec(op(), 1..200),
            records in 1usize..40,
            bytes in 1usize..6000,
        ) {
            const BATCH: usize = 8;
            let t0 = Instant::now();
            let mut now = t0;
            let mut o: Outbox<u32> = Outbox::new(Limits { records, bytes }, KEEP_ALIVE);
            let mut next = 0u32;
            let mut qos1 = std::collections::HashSet::new();
            let mut excluded = std::collections::HashSet::new();
            let mut done: Vec<u32> = Vec::new(); // written or rejected, first time
            let mut written: Vec<u32> = Vec::new(); // every write, replays included
            let mut acked: Vec<u32> = Vec::new();
            let mut replayed = 0usize;
            let mut in_episode = false;
            let max_cost = Outbox::<u32>::cost(300);
            let finish = [Op::Write(usize::MAX), Op::Ack(usize::MAX), Op::Tick(0)];
            for op in ops.iter().chain(&finish) {
                match op.clone() {
                    Op::Take(msgs) => {
                        let room = o.room(BATCH);
                        for &(size, q1, skip) in msgs.iter().take(room) {
                            let id = next;
                            next += 1;
                            if q1 {
                                qos1.insert(id);
                            }
                            if skip {
                                // Excluded: never logged, acknowledged in its turn.
                                excluded.insert(id);
                                if q1 {
                                    o.ack(id);
                                }
                            } else {
                                o.push(record(id, size), q1.then_some(id));
                            }
                        }
                    }
                    Op::Write(n) => {
                        let front: Vec<u32> = o.front(n).map(id_of).collect();
                        o.written(front.len());
                        for id in front {
                            if replayed > 0 {
                                replayed -= 1;
                            } else {
                                done.push(id);
                            }
                            written.push(id);
                        }
                    }
                    Op::Reject => {
                        let front = o.front(1).next().map(id_of);
                        if let Some(id) = front {
                            prop_assert!(o.reject_front());
                            if replayed > 0 {
                                replayed -= 1;
                            } else {
                                done.push(id);
                            }
                        }
                    }
                    Op::Replay(k) => {
                        // Only what was written last, and only once nothing is half-sent.
                        let k = k.min(written.len());
                        let lost: Vec<Vec<u8>> = written[written.len() - k..]
                            .iter()
                            .map(|&id| record(id, 4))
                            .collect();
                        written.truncate(written.len() - k);
                        replayed += k;
                        o.replay(lost);
                    }
                    Op::Ack(n) => {
                        for _ in 0..n {
                            let Some(&a) = o.next_ack() else { break };
                            prop_assert!(done.contains(&a) || excluded.contains(&a), "{} acknowledged before it was written", a);
                            acked.push(a);
                            o.ack_sent();
                        }
                    }
                    Op::Tick(ms) => now += Duration::from_millis(ms),
                }
                prop_assert!(o.len() <= records.max(1) + replayed + 3);
                prop_assert!(o.bytes() < bytes.max(1) + BATCH * max_cost + (replayed + 3) * Outbox::<u32>::cost(4));
                match o.update(now) {
                    Some(Flow::Held { .. }) => {
                        prop_assert!(!in_episode, "a fill-up logged twice");
                        in_episode = true;
                    }
                    Some(Flow::CaughtUp { .. }) => {
                        prop_assert!(in_episode && o.is_empty());
                        in_episode = false;
                    }
                    Some(Flow::PastKeepAlive { .. }) => prop_assert!(in_episode),
                    None => {}
                }
                if o.is_empty() {
                    prop_assert!(o.room(BATCH) > 0, "taking stopped with nothing queued");
                    prop_assert!(!in_episode);
                }
            }
            // Written in the order taken, each once (replays aside), and all of them.
            prop_assert_eq!(done, (0..next).filter(|i| !excluded.contains(i)).collect::<Vec<_>>());
            let expected: Vec<u32> = (0..next).filter(|i| qos1.contains(i)).collect();
            prop_assert_eq!(acked, expected);
        }

        /// On a confirming transport (RELP), whatever the order of sends, answers and lost
        /// connections: acknowledgements fall due only for records the daemon answered,
        /// exactly once each and in order; a lost connection sends again exactly what was
        /// unanswered; records sent and unanswered count against the limit.
        #[test]
        fn confirmed_before_acked_and_resent_after_a_loss(
            ops in proptest::collection::vec(
                prop_oneof![
                    (1usize..6).prop_map(Conf::Take),
                    (0usize..6).prop_map(Conf::Send),
                    (0usize..6).prop_map(Conf::Answer),
                    Just(Conf::Lose),
                ],
                1..200,
            ),
            records in 1usize..30,
        ) {
            let mut o: Outbox<u32> = Outbox::new(Limits { records, bytes: 1 << 20 }, KEEP_ALIVE);
            let id = |r: &[u8]| -> u32 { std::str::from_utf8(r).unwrap().parse().unwrap() };
            let mut next = 0u32;
            // What the daemon received on the current connection and did not answer yet.
            let mut wire: VecDeque<u32> = VecDeque::new();
            let mut answered = std::collections::HashSet::new();
            let mut acked = Vec::new();
            let finish = [Conf::Lose, Conf::Send(usize::MAX), Conf::Answer(usize::MAX)];
            for op in ops.iter().chain(&finish) {
                match *op {
                    Conf::Take(k) => {
                        for _ in 0..o.room(k) {
                            o.push(rec(next), Some(next));
                            next += 1;
                        }
                    }
                    Conf::Send(k) => {
                        let f: Vec<u32> = o.front(k).map(id).collect();
                        prop_assert!(f.iter().all(|i| !wire.contains(i)), "sent twice on one connection");
                        o.sent(f.len());
                        wire.extend(f);
                    }
                    Conf::Answer(k) => {
                        let k = k.min(wire.len());
                        answered.extend(wire.drain(..k));
                        o.confirmed(k);
                    }
                    Conf::Lose => {
                        prop_assert_eq!(o.resend(), wire.len());
                        wire.clear();
                    }
                }
                prop_assert_eq!(o.unconfirmed(), wire.len());
                prop_assert!(o.len() <= records);
                prop_assert_eq!(o.has_unsent(), o.len() > wire.len());
                while let Some(&a) = o.next_ack() {
                    prop_assert!(answered.contains(&a), "{} acknowledged unanswered", a);
                    acked.push(a);
                    o.ack_sent();
                }
            }
            prop_assert_eq!(o.len(), 0);
            prop_assert_eq!(acked, (0..next).collect::<Vec<_>>());
        }
    }
}
