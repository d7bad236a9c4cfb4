//! Batching and scheduling for one channel: readings in, bulk requests out. Pure: no I/O, no
//! clock of its own (every call takes `now`), no randomness (jitter is passed in).
//!
//! Readings fill an *open* update; it is sealed into the queue when every mapped field has a
//! value, or when a field comes again (so no reading is ever overwritten), or when it has
//! waited `max_interval`. A request is started when
//! - a complete update is queued, or updates are left over from the last request (a backlog,
//!   also after a restart), or a failed request is being retried — and
//! - the oldest waiting reading is `max_interval` old, whatever is complete;
//!
//! but never sooner than `min_interval` after the previous request (whatever its fate) and,
//! after a failure, never before the backoff has passed.
//!
//! Every change of what is waiting is also written to the [`Batcher::take_changes`] outbox as
//! a [`Change`]; the spool makes those durable, and replaying them through
//! [`Batcher::restore`] rebuilds the same state after a restart.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// One ThingSpeak entry: a time and up to eight field values and a status.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// When the newest reading in it arrived; once queued, whole seconds and unique.
    pub created_at: DateTime<Utc>,
    /// `field1`..`field8`.
    pub fields: [Option<f64>; 8],
    /// The status text.
    pub status: Option<String>,
}

impl Entry {
    fn empty(at: DateTime<Utc>) -> Self {
        Entry {
            created_at: at,
            fields: [None; 8],
            status: None,
        }
    }

    /// Bit `n-1` set for every field `n` with a value.
    fn present(&self) -> u8 {
        self.fields
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_some())
            .fold(0, |m, (i, _)| m | 1 << i)
    }

    fn has(&self, value: &Value) -> bool {
        match value {
            Value::Field(n, _) => self.fields[usize::from(*n - 1)].is_some(),
            Value::Status(_) => self.status.is_some(),
        }
    }

    fn set(&mut self, value: Value) {
        match value {
            Value::Field(n, v) => self.fields[usize::from(n - 1)] = Some(v),
            Value::Status(s) => self.status = Some(s),
        }
    }
}

/// ThingSpeak's wire form: `{"created_at":"2026-11-22T07:00:00Z","field1":23.1,…}`. The spool
/// stores updates the same way, so what is on disk is what will be sent.
impl Serialize for Entry {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry(
            "created_at",
            &self
                .created_at
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        )?;
        const NAMES: [&str; 8] = [
            "field1", "field2", "field3", "field4", "field5", "field6", "field7", "field8",
        ];
        for (name, v) in NAMES.iter().zip(&self.fields) {
            if let Some(v) = v {
                m.serialize_entry(name, v)?;
            }
        }
        if let Some(status) = &self.status {
            m.serialize_entry("status", status)?;
        }
        m.end()
    }
}

/// The serde side of [`Entry`]'s wire form.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireUpdate {
    created_at: DateTime<Utc>,
    field1: Option<f64>,
    field2: Option<f64>,
    field3: Option<f64>,
    field4: Option<f64>,
    field5: Option<f64>,
    field6: Option<f64>,
    field7: Option<f64>,
    field8: Option<f64>,
    status: Option<String>,
}

impl<'de> Deserialize<'de> for Entry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = WireUpdate::deserialize(d)?;
        Ok(Entry {
            created_at: w.created_at,
            fields: [
                w.field1, w.field2, w.field3, w.field4, w.field5, w.field6, w.field7, w.field8,
            ],
            status: w.status,
        })
    }
}

/// One value for a channel.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A number for field 1..=8.
    Field(u8, f64),
    /// The status text.
    Status(String),
}

/// The open update as the spool keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    /// When its first reading arrived (for `max_interval` across restarts).
    pub since: DateTime<Utc>,
    /// The values so far.
    pub update: Entry,
}

/// A change to what is waiting, in the order it happened: the spool's record format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// The open update now holds this (or nothing).
    Open(Option<Pending>),
    /// The open update was sealed as this and appended to the queue.
    Queued(Entry),
    /// A request was started or answered at this time: the rate limit counts from here, also
    /// across restarts.
    Contact(DateTime<Utc>),
    /// The first `n` queued updates left: delivered, refused, or dropped for space.
    Removed(usize),
    /// What a compacted spool starts with: the last request and the last timestamp used.
    Mark {
        /// When the last request was started.
        attempted: Option<DateTime<Utc>>,
        /// The newest `created_at` handed out (they must be unique per channel).
        stamp: Option<DateTime<Utc>>,
    },
}

/// How a request ended, as far as scheduling cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Accepted: the updates are done.
    Delivered,
    /// Refused for good (bad key, bad data): the updates are dropped, nothing is retried.
    Refused,
    /// Try again later: the updates stay.
    Failed,
}

/// The channel's timing and size limits (from `[[bridge.channel]]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Never two requests closer than this.
    pub min_interval: Duration,
    /// Send whatever waits once the oldest of it is this old; also the backoff cap.
    pub max_interval: Duration,
    /// Most updates per request.
    pub max_batch: usize,
    /// Most updates queued; beyond it the oldest are dropped.
    pub max_spool: usize,
}

impl From<&crate::config::ChannelConfig> for Limits {
    fn from(c: &crate::config::ChannelConfig) -> Self {
        Limits {
            min_interval: c.min_interval.get(),
            max_interval: c.max_interval.get(),
            max_batch: c.max_batch,
            max_spool: c.max_spool,
        }
    }
}

#[derive(Debug, Clone)]
struct Queued {
    update: Entry,
    since: Instant,
    complete: bool,
}

#[derive(Debug, Clone)]
struct Open {
    pending: Pending,
    first: Instant,
}

/// The batching and scheduling state of one channel.
#[derive(Debug)]
pub struct Batcher {
    limits: Limits,
    /// Bit `n-1` for every mapped field `n`.
    mapped: u8,
    queue: VecDeque<Queued>,
    /// How many queued updates are complete.
    complete: usize,
    open: Option<Open>,
    last_stamp: Option<DateTime<Utc>>,
    last_attempt: Option<Instant>,
    last_attempt_wall: Option<DateTime<Utc>>,
    failures: u32,
    retry_at: Option<Instant>,
    /// Updates taken by the request under way (0: none under way).
    in_flight: usize,
    /// Whether the request under way left older updates behind.
    left_behind: bool,
    backlog: bool,
    dropped: u64,
    changes: Vec<Change>,
}

impl Batcher {
    /// A batcher for a channel mapping `fields` (numbers 1..=8).
    pub fn new(limits: Limits, fields: impl IntoIterator<Item = u8>) -> Self {
        let mapped = fields
            .into_iter()
            .filter(|n| (1..=8).contains(n))
            .fold(0, |m, n| m | 1 << (n - 1));
        Batcher {
            limits,
            mapped,
            queue: VecDeque::new(),
            complete: 0,
            open: None,
            last_stamp: None,
            last_attempt: None,
            last_attempt_wall: None,
            failures: 0,
            retry_at: None,
            in_flight: 0,
            left_behind: false,
            backlog: false,
            dropped: 0,
            changes: Vec::new(),
        }
    }

    /// Rebuild the state from spooled changes. What was queued is sent as soon as the rate
    /// limit allows; the rate limit itself carries over (the last request's wall-clock time
    /// is in the spool). Returns how many updates were dropped to respect `max_spool`.
    pub fn restore(
        &mut self,
        changes: impl IntoIterator<Item = Change>,
        now: Instant,
        wall: DateTime<Utc>,
    ) -> usize {
        for c in changes {
            self.apply(&c, now);
        }
        let ago = |t: DateTime<Utc>| (wall - t).to_std().unwrap_or(Duration::ZERO);
        if let Some(open) = &mut self.open {
            open.first = now.checked_sub(ago(open.pending.since)).unwrap_or(now);
        }
        self.backlog = !self.queue.is_empty();
        self.last_attempt = self
            .last_attempt_wall
            .map(ago)
            .filter(|a| *a < self.limits.min_interval)
            .and_then(|a| now.checked_sub(a));
        self.changes.clear();
        self.enforce_bound(now)
    }

    /// Everything waiting, as the changes that rebuild it: what a compacted spool holds.
    pub fn snapshot(&self) -> Vec<Change> {
        let mut v = vec![Change::Mark {
            attempted: self.last_attempt_wall,
            stamp: self.last_stamp,
        }];
        v.extend(self.queue.iter().map(|q| Change::Queued(q.update.clone())));
        if let Some(open) = &self.open {
            v.push(Change::Open(Some(open.pending.clone())));
        }
        v
    }

    /// The changes since the last call, for the spool.
    pub fn take_changes(&mut self) -> Vec<Change> {
        std::mem::take(&mut self.changes)
    }

    /// Add a value that arrived at `wall` (`now` on the monotonic clock). Returns how many
    /// old updates were dropped to respect `max_spool`.
    pub fn push(&mut self, value: Value, wall: DateTime<Utc>, now: Instant) -> usize {
        if let Value::Field(n, _) = value
            && !(1..=8).contains(&n)
        {
            return 0;
        }
        if self
            .open
            .as_ref()
            .is_some_and(|o| o.pending.update.has(&value))
        {
            self.seal();
        }
        let mut pending = match &self.open {
            Some(o) => o.pending.clone(),
            None => Pending {
                since: wall,
                update: Entry::empty(wall),
            },
        };
        pending.update.set(value);
        pending.update.created_at = wall;
        let complete = self.is_complete(&pending.update);
        self.record(Change::Open(Some(pending)), now);
        if complete {
            self.seal();
        }
        self.enforce_bound(now)
    }

    /// When a request should be started (possibly already past); `None` while one is under
    /// way or nothing waits.
    pub fn next_send(&self) -> Option<Instant> {
        if self.in_flight > 0 {
            return None;
        }
        let ready_now =
            !self.queue.is_empty() && (self.complete > 0 || self.backlog || self.failures > 0);
        let due = if ready_now {
            self.queue.front().map(|q| q.since)
        } else {
            let oldest = [
                self.queue.front().map(|q| q.since),
                self.open.as_ref().map(|o| o.first),
            ]
            .into_iter()
            .flatten()
            .min()?;
            Some(oldest + self.limits.max_interval)
        }?;
        let gate = [
            self.last_attempt.map(|t| t + self.limits.min_interval),
            self.retry_at,
        ]
        .into_iter()
        .flatten()
        .max();
        Some(gate.map_or(due, |g| g.max(due)))
    }

    /// Start a request if one is due at `now` (`wall`): the updates to send, oldest first.
    pub fn start(&mut self, now: Instant, wall: DateTime<Utc>) -> Option<Vec<Entry>> {
        if self.next_send().is_none_or(|t| t > now) {
            return None;
        }
        if self
            .open
            .as_ref()
            .is_some_and(|o| o.first + self.limits.max_interval <= now)
        {
            self.seal();
        }
        if self.queue.is_empty() {
            return None;
        }
        let n = self.queue.len().min(self.limits.max_batch);
        self.in_flight = n;
        self.left_behind = self.queue.len() > n;
        self.last_attempt = Some(now);
        self.record(Change::Contact(wall), now);
        Some(
            self.queue
                .iter()
                .take(n)
                .map(|q| q.update.clone())
                .collect(),
        )
    }

    /// The request under way ended with `outcome` at `now` (`wall`). `jitter` in `[0, 1)`
    /// spreads retries. Returns the backoff delay after a failure, and how many updates were
    /// dropped to respect `max_spool`.
    ///
    /// `min_interval` counts from the answer, not from the start of the request: the server
    /// sees a request some latency after it is started, and that latency varies, so spacing
    /// the starts alone can put two writes closer than the limit at the server.
    pub fn finish(
        &mut self,
        outcome: Delivery,
        now: Instant,
        wall: DateTime<Utc>,
        jitter: f64,
    ) -> (Option<Duration>, usize) {
        let n = std::mem::take(&mut self.in_flight);
        self.last_attempt = Some(now);
        self.record(Change::Contact(wall), now);
        let delay = match outcome {
            Delivery::Delivered | Delivery::Refused => {
                self.record(Change::Removed(n), now);
                self.failures = 0;
                self.retry_at = None;
                self.backlog = self.left_behind;
                None
            }
            Delivery::Failed => {
                self.failures = self.failures.saturating_add(1);
                let d = self.backoff(jitter);
                self.retry_at = Some(now + d);
                Some(d)
            }
        };
        (delay, self.enforce_bound(now))
    }

    /// Updates waiting (queued, plus the open one).
    pub fn waiting(&self) -> usize {
        self.queue.len() + usize::from(self.open.is_some())
    }

    /// Updates taken by the request under way.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Failed attempts in a row.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Updates dropped for space since start.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The wait after the `failures`-th failure in a row: `min_interval` doubling up to
    /// `max_interval`, with "equal jitter" (half fixed, half random) so that several
    /// bridges do not retry in step, and never below `min_interval`.
    fn backoff(&self, jitter: f64) -> Duration {
        let Limits {
            min_interval,
            max_interval,
            ..
        } = self.limits;
        let cap = max_interval.max(min_interval);
        let exp = self.failures.saturating_sub(1).min(30);
        let base = min_interval.saturating_mul(1 << exp).min(cap);
        let d = base / 2 + base.mul_f64(jitter.clamp(0.0, 1.0) / 2.0);
        d.max(min_interval)
    }

    fn is_complete(&self, u: &Entry) -> bool {
        let present = u.present();
        self.mapped & !present == 0 && (present != 0 || u.status.is_some())
    }

    /// Close the open update into the queue, giving it a unique whole-second timestamp:
    /// ThingSpeak stores entries by the second and refuses a timestamp already taken.
    fn seal(&mut self) {
        let Some(open) = &self.open else { return };
        let mut update = open.pending.update.clone();
        let secs =
            DateTime::from_timestamp(update.created_at.timestamp(), 0).unwrap_or(update.created_at);
        update.created_at = match self.last_stamp {
            Some(last) if secs <= last => last + TimeDelta::seconds(1),
            _ => secs,
        };
        let now = open.first;
        self.record(Change::Queued(update), now);
    }

    /// Drop the oldest queued updates beyond `max_spool` (never those under way).
    fn enforce_bound(&mut self, now: Instant) -> usize {
        if self.in_flight > 0 || self.queue.len() <= self.limits.max_spool {
            return 0;
        }
        let n = self.queue.len() - self.limits.max_spool;
        self.dropped += n as u64;
        self.record(Change::Removed(n), now);
        n
    }

    /// Apply a change and put it in the outbox.
    fn record(&mut self, c: Change, now: Instant) {
        self.apply(&c, now);
        self.changes.push(c);
    }

    /// The one place state changes, shared by live operation and replay.
    fn apply(&mut self, c: &Change, now: Instant) {
        match c {
            Change::Open(p) => {
                self.open = p.clone().map(|pending| Open {
                    first: self.open.as_ref().map_or(now, |o| o.first),
                    pending,
                });
            }
            Change::Queued(u) => {
                let since = self.open.take().map_or(now, |o| o.first);
                let complete = self.is_complete(u);
                self.complete += usize::from(complete);
                self.last_stamp = self.last_stamp.max(Some(u.created_at));
                self.queue.push_back(Queued {
                    update: u.clone(),
                    since,
                    complete,
                });
            }
            Change::Contact(at) => self.last_attempt_wall = Some(*at),
            Change::Removed(n) => {
                for q in self.queue.drain(..(*n).min(self.queue.len())) {
                    self.complete -= usize::from(q.complete);
                }
            }
            // The newest stamp never goes back, whatever a damaged spool says: a stamp that
            // did would let a new update take the time of one already queued (or sent), and
            // ThingSpeak refuses a timestamp it has.
            Change::Mark { attempted, stamp } => {
                self.last_attempt_wall = *attempted;
                self.last_stamp = self.last_stamp.max(*stamp);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MIN: Duration = Duration::from_secs(15);
    const MAX: Duration = Duration::from_secs(600);

    fn limits() -> Limits {
        Limits {
            min_interval: MIN,
            max_interval: MAX,
            max_batch: 960,
            max_spool: 100_000,
        }
    }

    /// A fixed wall clock and a monotonic clock moving together.
    struct Clock {
        t0: Instant,
        w0: DateTime<Utc>,
    }

    impl Clock {
        fn new() -> Self {
            Clock {
                t0: Instant::now(),
                w0: DateTime::parse_from_rfc3339("2026-11-22T07:00:00.250Z")
                    .unwrap()
                    .to_utc(),
            }
        }
        fn at(&self, ms: u64) -> (DateTime<Utc>, Instant) {
            let d = Duration::from_millis(ms);
            (self.w0 + d, self.t0 + d)
        }
        fn mono(&self, ms: u64) -> Instant {
            self.at(ms).1
        }
    }

    impl Batcher {
        /// `finish` with the wall clock that goes with `t`.
        fn finish_at(
            &mut self,
            c: &Clock,
            o: Delivery,
            t: Instant,
            jitter: f64,
        ) -> (Option<Duration>, usize) {
            self.finish(o, t, c.w0 + (t - c.t0), jitter)
        }

        /// `start` with the wall clock that goes with `t`.
        fn go(&mut self, c: &Clock, t: Instant) -> Option<Vec<Entry>> {
            self.start(t, c.w0 + (t - c.t0))
        }
    }

    fn f(n: u8, v: f64) -> Value {
        Value::Field(n, v)
    }

    fn stamp(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    #[test]
    fn wire_form_is_exact_and_round_trips() {
        let mut u = Entry::empty(stamp("2026-11-22T07:00:01Z"));
        u.fields[0] = Some(23.1);
        u.fields[2] = Some(-4.0);
        u.status = Some("ok \"quoted\"".into());
        let json = serde_json::to_string(&u).unwrap();
        assert_eq!(
            json,
            r#"{"created_at":"2026-11-22T07:00:01Z","field1":23.1,"field3":-4.0,"status":"ok \"quoted\""}"#
        );
        assert_eq!(serde_json::from_str::<Entry>(&json).unwrap(), u);
        assert!(serde_json::from_str::<Entry>(r#"{"created_at":"x"}"#).is_err());
        assert!(
            serde_json::from_str::<Entry>(r#"{"created_at":"2026-11-22T07:00:01Z","field9":1}"#)
                .is_err()
        );
    }

    #[test]
    fn a_complete_update_goes_out_at_once_with_the_arrival_time() {
        let c = Clock::new();
        let mut b = Batcher::new(limits(), [1, 2]);
        let (w, t) = c.at(0);
        b.push(f(1, 1.0), w, t);
        assert_eq!(
            b.next_send(),
            Some(t + MAX),
            "partial: waits for max_interval"
        );
        let (w, t) = c.at(900);
        b.push(f(2, 2.0), w, t);
        assert!(b.next_send().unwrap() <= t, "complete: due now");
        let batch = b.go(&c, t).unwrap();
        assert_eq!(batch.len(), 1);
        // The newest reading's arrival, in whole seconds.
        assert_eq!(batch[0].created_at, stamp("2026-11-22T07:00:01Z"));
        assert_eq!(batch[0].fields[..2], [Some(1.0), Some(2.0)]);
        assert_eq!(b.next_send(), None, "nothing while in flight");
        b.finish_at(&c, Delivery::Delivered, c.mono(1000), 0.5);
        assert_eq!(b.waiting(), 0);
        assert_eq!(b.next_send(), None);
    }

    #[test]
    fn a_partial_update_goes_out_after_max_interval() {
        let c = Clock::new();
        let mut b = Batcher::new(limits(), [1, 2]);
        let (w, t) = c.at(0);
        b.push(f(1, 1.0), w, t);
        assert!(b.go(&c, c.mono(599_999)).is_none());
        let batch = b.go(&c, c.mono(600_000)).unwrap();
        assert_eq!(batch[0].fields[..2], [Some(1.0), None]);
    }

    #[test]
    fn a_repeated_field_seals_the_update_so_nothing_is_overwritten() {
        let c = Clock::new();
        let mut b = Batcher::new(limits(), [1, 2]);
        for (i, ms) in [0, 5_000, 10_000].into_iter().enumerate() {
            let (w, t) = c.at(ms);
            b.push(f(1, i as f64), w, t);
        }
        assert_eq!(b.waiting(), 3);
        // Sealed but partial: still waits for max_interval of the oldest.
        assert_eq!(b.next_send(), Some(c.mono(600_000)));
        let (w, t) = c.at(11_000);
        b.push(f(2, 9.0), w, t);
        let batch = b.go(&c, t).unwrap();
        let got: Vec<_> = batch.iter().map(|u| (u.fields[0], u.fields[1])).collect();
        assert_eq!(
            got,
            [(Some(0.0), None), (Some(1.0), None), (Some(2.0), Some(9.0))]
        );
    }

    #[test]
    fn never_two_requests_within_min_interval() {
        let c = Clock::new();
        let mut b = Batcher::new(limits(), [1]);
        let (w, t) = c.at(0);
        b.push(f(1, 1.0), w, t);
        assert!(b.go(&c, t).is_some());
        // Counted from the answer, so the server never sees two writes too close.
        b.finish_at(&c, Delivery::Delivered, c.mono(100), 0.0);
        let (w, t) = c.at(2_000);
        b.push(f(1, 2.0), w, t);
        assert_eq!(b.next_send(), Some(c.mono(15_100)));
        assert!(b.go(&c, c.mono(15_099)).is_none());
        assert!(b.go(&c, c.mono(15_100)).is_some());
    }

    #[test]
    fn timestamps_are_whole_seconds_unique_and_increasing() {
        let c = Clock::new();
        let mut b = Batcher::new(limits(), [1]);
        // Three readings within one second, then one from a clock that jumped back.
        for ms in [0, 100, 200] {
            let (w, t) = c.at(ms);
            b.push(f(1, 0.0), w, t);
        }
        let (_, t) = c.at(300);
        b.push(f(1, 0.0), stamp("2026-11-22T06:00:00Z"), t);
        let batch = b.go(&c, t).unwrap();
        let got: Vec<_> = batch.iter().map(|u| u.created_at.to_rfc3339()).collect();
        assert_eq!(
            got,
            [
                "2026-11-22T07:00:00+00:00",
                "2026-11-22T07:00:01+00:00",
                "2026-11-22T07:00:02+00:00",
                "2026-11-22T07:00:03+00:00",
            ]
        );
    }

    #[test]
    fn failures_back_off_exponentially_capped_with_jitter() {
        let c = Clock::new();
        let lim = Limits {
            max_interval: Duration::from_secs(100),
            ..limits()
        };
        let mut b = Batcher::new(lim, [1]);
        let (w, t) = c.at(0);
        b.push(f(1, 1.0), w, t);
        let mut now = t;
        let mut delays = Vec::new();
        for _ in 0..6 {
            let batch = b.go(&c, now).expect("due after the backoff");
            assert_eq!(batch.len(), 1, "the same update is retried");
            let (d, _) = b.finish_at(&c, Delivery::Failed, now, 1.0);
            let d = d.unwrap();
            assert!(b.go(&c, now + d - Duration::from_millis(1)).is_none());
            delays.push(d.as_secs());
            now += d;
        }
        assert_eq!(delays, [15, 30, 60, 100, 100, 100]);
        assert_eq!(b.failures(), 6);
        // No jitter: half of each step, but never under min_interval.
        let mut b = Batcher::new(lim, [1]);
        b.push(f(1, 1.0), w, t);
        let mut got = Vec::new();
        let mut now = t;
        for _ in 0..4 {
            b.go(&c, now).unwrap();
            let d = b.finish_at(&c, Delivery::Failed, now, 0.0).0.unwrap();
            got.push(d.as_secs());
            now += d;
        }
        assert_eq!(got, [15, 15, 30, 50]);
        // Success resets.
        b.go(&c, now).unwrap();
        b.finish_at(&c, Delivery::Delivered, now, 0.0);
        assert_eq!(b.failures(), 0);
        assert_eq!(b.waiting(), 0);
    }

    #[test]
    fn a_thirty_minute_outage_is_caught_up_in_one_request() {
        let c = Clock::new();
        let mut b = Batcher::new(limits(), [1, 2]);
        let mut under_way = None;
        let mut attempts = 0;
        let mut updates = 0;
        // Two fields every 5 s for 30 minutes, ThingSpeak failing all along.
        for s in (0..30 * 60).step_by(5) {
            let (w, t) = c.at(s * 1000);
            b.push(f(1, s as f64), w, t);
            b.push(f(2, s as f64), w, t);
            updates += 1;
            if under_way.take().is_some() {
                b.finish_at(&c, Delivery::Failed, t, 0.5);
            }
            if let Some(batch) = b.go(&c, t) {
                attempts += 1;
                under_way = Some(batch);
            }
        }
        // 15 s doubling to the 10 min cap: a handful of attempts, not a storm.
        assert!((5..=10).contains(&attempts), "{attempts} attempts");
        let t = c.mono(30 * 60 * 1000);
        b.finish_at(&c, Delivery::Failed, t, 0.5);
        let at = b.next_send().unwrap();
        assert!(at <= t + MAX, "the next try is at most max_interval away");
        let batch = b.go(&c, at).unwrap();
        assert_eq!(batch.len(), updates, "everything, once, in one request");
        b.finish_at(&c, Delivery::Delivered, at, 0.5);
        assert_eq!(b.waiting(), 0);
    }

    #[test]
    fn a_refused_batch_is_dropped_and_not_retried() {
        let c = Clock::new();
        let mut b = Batcher::new(limits(), [1]);
        let (w, t) = c.at(0);
        b.push(f(1, 1.0), w, t);
        b.go(&c, t).unwrap();
        let (d, _) = b.finish_at(&c, Delivery::Refused, t, 0.0);
        assert_eq!(d, None);
        assert_eq!(b.waiting(), 0);
        assert_eq!(b.next_send(), None);
        // The next one still respects the interval.
        let (w, t) = c.at(1_000);
        b.push(f(1, 2.0), w, t);
        assert_eq!(b.next_send(), Some(c.mono(15_000)));
    }

    #[test]
    fn big_queues_go_out_in_batches_at_the_allowed_pace() {
        let c = Clock::new();
        let lim = Limits {
            max_batch: 2,
            ..limits()
        };
        let mut b = Batcher::new(lim, [1]);
        // Five complete updates arrive during a failing request.
        let (w, t) = c.at(0);
        b.push(f(1, 0.0), w, t);
        b.go(&c, t).unwrap();
        for i in 1..5 {
            let (w, t) = c.at(i * 1000);
            b.push(f(1, i as f64), w, t);
        }
        b.finish_at(&c, Delivery::Failed, c.mono(5_000), 0.0);
        let mut sizes = Vec::new();
        let mut now = c.mono(5_000);
        while let Some(at) = b.next_send() {
            now = now.max(at);
            let batch = b.go(&c, now).unwrap();
            sizes.push((batch.len(), (now - c.t0).as_secs()));
            b.finish_at(&c, Delivery::Delivered, now, 0.0);
        }
        assert_eq!(sizes, [(2, 20), (2, 35), (1, 50)]);
    }

    #[test]
    fn the_spool_bound_drops_the_oldest_but_never_what_is_under_way() {
        let c = Clock::new();
        let lim = Limits {
            max_batch: 2,
            max_spool: 3,
            ..limits()
        };
        let mut b = Batcher::new(lim, [1]);
        let mut dropped = 0;
        for i in 0..3 {
            let (w, t) = c.at(i * 1000);
            dropped += b.push(f(1, i as f64), w, t);
        }
        assert_eq!(dropped, 0);
        let batch = b.go(&c, c.mono(3_000)).unwrap();
        assert_eq!(batch.len(), 2);
        for i in 3..6 {
            let (w, t) = c.at(i * 1000);
            assert_eq!(b.push(f(1, i as f64), w, t), 0, "not while in flight");
        }
        let (_, dropped) = b.finish_at(&c, Delivery::Failed, c.mono(6_000), 0.0);
        assert_eq!(dropped, 3);
        assert_eq!(b.dropped(), 3);
        let batch = b.go(&c, c.mono(60_000)).unwrap();
        let values: Vec<_> = batch.iter().map(|u| u.fields[0].unwrap()).collect();
        assert_eq!(values, [3.0, 4.0]);
    }

    #[test]
    fn status_only_channels_and_status_with_fields() {
        let c = Clock::new();
        let mut b = Batcher::new(limits(), []);
        let (w, t) = c.at(0);
        b.push(Value::Status("up".into()), w, t);
        assert_eq!(b.go(&c, t).unwrap()[0].status.as_deref(), Some("up"));
        let mut b = Batcher::new(limits(), [1]);
        b.push(Value::Status("a".into()), w, t);
        b.push(Value::Status("b".into()), w, t);
        b.push(f(1, 1.0), w, t);
        let batch = b.go(&c, t).unwrap();
        let got: Vec<_> = batch
            .iter()
            .map(|u| (u.status.clone(), u.fields[0]))
            .collect();
        assert_eq!(
            got,
            [(Some("a".into()), None), (Some("b".into()), Some(1.0))]
        );
        // Out-of-range fields are ignored.
        assert_eq!(b.push(f(9, 1.0), w, t), 0);
        assert_eq!(b.push(f(0, 1.0), w, t), 0);
    }

    #[test]
    fn restore_rebuilds_the_state_and_the_rate_limit() {
        let c = Clock::new();
        let mut b = Batcher::new(limits(), [1, 2]);
        let mut log = Vec::new();
        let (w, t) = c.at(0);
        b.push(f(1, 1.0), w, t);
        b.push(f(2, 2.0), w, t);
        b.go(&c, t).unwrap();
        b.finish_at(&c, Delivery::Delivered, t, 0.0);
        for i in 0..3 {
            let (w, t) = c.at(1_000 + i * 1000);
            b.push(f(1, 10.0 + i as f64), w, t);
        }
        log.extend(b.take_changes());
        // Replaying the outbox and replaying the snapshot give the same state.
        let (w, t) = c.at(5_000);
        let mut from_log = Batcher::new(limits(), [1, 2]);
        from_log.restore(log, t, w);
        let mut from_snap = Batcher::new(limits(), [1, 2]);
        from_snap.restore(b.snapshot(), t, w);
        assert_eq!(from_log.snapshot(), b.snapshot());
        assert_eq!(from_snap.snapshot(), b.snapshot());
        assert_eq!(from_log.waiting(), 3);
        // The rate limit carries over: the last request was at 0 s, so not before 15 s.
        assert_eq!(from_log.next_send(), Some(c.mono(15_000)));
        // Restored updates are a backlog: sent whole at once, even though partial.
        let batch = from_log.go(&c, c.mono(15_000)).unwrap();
        assert_eq!(batch.len(), 2, "the sealed two; the open one is young");
        // Timestamps continue after the restored ones.
        from_log.finish_at(&c, Delivery::Delivered, c.mono(15_000), 0.0);
        from_log.push(f(2, 5.0), c.at(15_000).0, c.mono(15_000));
        let batch = from_log.go(&c, c.mono(30_000)).unwrap();
        assert_eq!(batch[0].created_at, stamp("2026-11-22T07:00:15Z"));
        // A restore long after the last request is not held back.
        let mut late = Batcher::new(limits(), [1, 2]);
        late.restore(b.snapshot(), c.mono(100_000), c.at(100_000).0);
        assert!(late.next_send().unwrap() <= c.mono(100_000));
    }

    /// Found by fuzzing the spool: a damaged line that reads as a `Mark` without a stamp,
    /// after a queued update, made the newest stamp go back, so a new update could take the
    /// queued one's time (and a snapshot did not rebuild the same state).
    #[test]
    fn a_damaged_mark_does_not_move_the_stamp_back() {
        let c = Clock::new();
        let queued = Entry::empty(stamp("2026-11-22T07:00:00Z"));
        let spool = vec![
            Change::Queued(queued.clone()),
            serde_json::from_str::<Change>(r#"{"mark":{"atmark":0}}"#).unwrap(),
            Change::Queued(Entry::empty(stamp("2026-11-22T06:00:00Z"))),
        ];
        let (w, t) = c.at(0);
        let mut b = Batcher::new(limits(), [1]);
        b.restore(spool, t, w);
        let snapshot = b.snapshot();
        assert_eq!(
            snapshot[0],
            Change::Mark {
                attempted: None,
                stamp: Some(queued.created_at)
            }
        );
        let mut again = Batcher::new(limits(), [1]);
        again.restore(snapshot.clone(), t, w);
        assert_eq!(again.snapshot(), snapshot);
        // A new update in the same second as the queued one is stamped after it.
        b.push(f(1, 1.0), stamp("2026-11-22T07:00:00.500Z"), t);
        let sent = b.go(&c, t).unwrap();
        assert_eq!(sent[2].created_at, stamp("2026-11-22T07:00:01Z"));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Push(u8, u64),
        Tick(u64),
        Answer(u8),
        Restart,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (1u8..=3, 0u64..20_000).prop_map(|(n, ms)| Op::Push(n, ms)),
            3 => (0u64..40_000).prop_map(Op::Tick),
            3 => (0u8..3).prop_map(Op::Answer),
            1 => Just(Op::Restart),
        ]
    }

    proptest! {
        /// Whatever happens: every value is delivered at most once, values delivered or
        /// still waiting or refused or dropped account for every value pushed, requests are
        /// never closer than min_interval, and timestamps only go up.
        #[test]
        fn nothing_lost_nothing_twice_never_too_fast(ops in proptest::collection::vec(op(), 1..120)) {
            let c = Clock::new();
            let lim = Limits { max_batch: 3, max_spool: 8, ..limits() };
            let mut b = Batcher::new(lim, [1, 2, 3]);
            let mut spool: Vec<Change> = Vec::new();
            let mut ms = 0u64;
            let mut counter = 0.0;
            let mut pushed = 0usize;
            let mut delivered: Vec<f64> = Vec::new();
            let mut refused = 0usize;
            let mut attempts: Vec<u64> = Vec::new();
            let mut last_answer: Option<u64> = None;
            let mut stamps: Vec<DateTime<Utc>> = Vec::new();
            let mut under_way: Option<Vec<Entry>> = None;
            for op in ops {
                match op {
                    Op::Push(n, gap) => {
                        ms += gap;
                        let (w, t) = c.at(ms);
                        counter += 1.0;
                        pushed += 1;
                        b.push(Value::Field(n, counter), w, t);
                    }
                    Op::Tick(gap) => {
                        ms += gap;
                        if under_way.is_none() && let Some(batch) = b.go(&c, c.mono(ms)) {
                            if let Some(prev) = last_answer {
                                prop_assert!(ms >= prev + 15_000, "started {ms}, answered {prev}");
                            }
                            attempts.push(ms);
                            under_way = Some(batch);
                        }
                    }
                    Op::Answer(kind) => {
                        if let Some(batch) = under_way.take() {
                            let t = c.mono(ms);
                            last_answer = Some(ms);
                            let outcome = [Delivery::Delivered, Delivery::Refused, Delivery::Failed][kind as usize];
                            b.finish_at(&c, outcome, t, 0.3);
                            for u in &batch {
                                let n = u.fields.iter().flatten().count();
                                match outcome {
                                    Delivery::Delivered => {
                                        delivered.extend(u.fields.iter().flatten());
                                        stamps.push(u.created_at);
                                    }
                                    Delivery::Refused => {
                                        refused += n;
                                        stamps.push(u.created_at);
                                    }
                                    Delivery::Failed => {}
                                }
                            }
                        }
                    }
                    Op::Restart => {
                        // Only between requests: one under way at a crash may be sent twice.
                        if under_way.is_none() {
                            spool.extend(b.take_changes());
                            let mut again = Batcher::new(lim, [1, 2, 3]);
                            let (w, t) = c.at(ms);
                            again.restore(spool.clone(), t, w);
                            spool = again.snapshot();
                            prop_assert_eq!(again.waiting(), b.waiting());
                            let dropped = b.dropped();
                            b = again;
                            b.dropped += dropped;
                        }
                    }
                }
                spool.extend(b.take_changes());
            }
            let mut sorted = delivered.clone();
            sorted.sort_by(f64::total_cmp);
            sorted.dedup();
            prop_assert_eq!(sorted.len(), delivered.len(), "a value was delivered twice");
            for w in attempts.windows(2) {
                prop_assert!(w[1] - w[0] >= 15_000, "requests {:?} too close", w);
            }
            for w in stamps.windows(2) {
                prop_assert!(w[0] < w[1], "timestamps not increasing: {:?}", w);
            }
            // Count values still waiting (queued + open).
            let waiting: usize = b
                .snapshot()
                .iter()
                .map(|ch| match ch {
                    Change::Queued(u) => u.fields.iter().flatten().count(),
                    Change::Open(Some(p)) => p.update.fields.iter().flatten().count(),
                    _ => 0,
                })
                .sum();
            prop_assert!(delivered.len() + refused + waiting <= pushed);
            if b.dropped() == 0 {
                prop_assert_eq!(delivered.len() + refused + waiting, pushed);
            }
        }
    }
}
