//! One channel at run time: a task owning the channel's [`Batcher`], [`Spool`] and
//! [`Client`]. It takes readings from the MQTT task, persists every change before going on,
//! starts requests when the batcher says so and keeps taking readings while one is under way.
//!
//! Spool writes are small appends done in the task itself: a few per second at most, each a
//! single `write` + `fdatasync`, so moving them to a blocking pool would cost more than it
//! saves.

use super::batch::{Batcher, Delivery, Limits, Value};
use super::key;
use super::spool::Spool;
use super::thingspeak::{self, Answer, Client};
use super::{ChannelStatus, Status};
use crate::config::ChannelConfig;
use crate::exit::{self, ExitError};
use crate::time::sleep_until;
use anyhow::Context;
use chrono::{DateTime, Utc};
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, watch};

/// A value as it arrived from the broker.
#[derive(Debug, Clone)]
pub struct Arrival {
    /// What it sets.
    pub value: Value,
    /// Arrival, wall clock (becomes `created_at`).
    pub wall: DateTime<Utc>,
    /// Arrival, monotonic clock (for intervals).
    pub at: Instant,
    /// Dropped once the reading is in the spool.
    pub ack: Ack,
}

/// Acknowledges one message to the broker when its last copy is dropped.
///
/// The bridge subscribes with QoS 1 and acknowledges by hand: channel tasks drop their copy
/// only once the reading is in the spool, so whatever the bridge had not made durable when it
/// died is delivered again by the broker (at least once, never lost).
#[derive(Clone)]
pub struct Ack {
    _last_one_acknowledges: Arc<AckOnDrop>,
}

struct AckOnDrop {
    client: rumqttc::AsyncClient,
    publish: rumqttc::Publish,
}

impl Ack {
    /// Acknowledge `publish` through `client` once every copy is dropped.
    pub fn new(client: rumqttc::AsyncClient, publish: rumqttc::Publish) -> Self {
        Ack {
            _last_one_acknowledges: Arc::new(AckOnDrop { client, publish }),
        }
    }
}

impl std::fmt::Debug for Ack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ack")
    }
}

impl Drop for AckOnDrop {
    fn drop(&mut self) {
        // Never blocks; if the request queue is full the broker simply redelivers later.
        if let Err(e) = self.client.try_ack(&self.publish) {
            tracing::debug!(
                "could not acknowledge a message on {}: {e}",
                self.publish.topic
            );
        }
    }
}

/// Where batches go.
enum Destination {
    Http(Client),
    /// `--dry-run`: print the request (key masked) and count it as delivered.
    Print(Printer),
}

/// Where a dry run prints its requests.
#[derive(Debug, Clone)]
pub enum Printer {
    /// Standard output (`iotitan-bridge --dry-run`).
    Stdout,
    /// Appended to a file shared by every channel (the demo).
    File(Arc<std::sync::Mutex<std::fs::File>>),
}

impl Printer {
    /// A printer appending to `path`, created if need be.
    pub fn file(path: &Path) -> anyhow::Result<Printer> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        Ok(Printer::File(Arc::new(std::sync::Mutex::new(f))))
    }

    fn print(&self, text: &str) {
        match self {
            Printer::Stdout => println!("{text}"),
            Printer::File(f) => {
                use std::io::Write;
                // A poisoned lock only means another channel panicked mid-write.
                let mut f = f.lock().unwrap_or_else(|p| p.into_inner());
                if let Err(e) = writeln!(f, "{text}") {
                    tracing::warn!("dry run: cannot write the request: {e}");
                }
            }
        }
    }
}

type Request = Pin<Box<dyn Future<Output = Answer> + Send>>;

/// A channel ready to run.
pub struct Channel {
    id: u64,
    index: usize,
    batcher: Batcher,
    spool: Option<Spool>,
    spool_broken: bool,
    sink: Destination,
    status: Arc<watch::Sender<Status>>,
    delivered: u64,
    refused: u64,
}

impl Channel {
    /// Load the key and the spool of `ch`, the `index`-th channel. Without a `dry_run`
    /// printer a missing key is a config error; with one nothing is read from or written to
    /// the spool, so a dry run never disturbs a running bridge.
    pub fn prepare(
        ch: &ChannelConfig,
        index: usize,
        state_dir: &Path,
        dry_run: Option<Printer>,
        status: Arc<watch::Sender<Status>>,
    ) -> anyhow::Result<Channel> {
        let id = ch.id;
        let mut batcher = Batcher::new(Limits::from(ch), ch.fields.iter().map(|(_, n)| n));
        let (sink, spool) = if let Some(printer) = dry_run {
            (Destination::Print(printer), None)
        } else {
            let (key, source) =
                key::load(ch).map_err(|e| ExitError::new(exit::CONFIG, e.to_string()))?;
            tracing::info!("channel {id}: write key from {source}");
            if let Some(why) = ch.cleartext_url() {
                tracing::warn!("channel {id}: {why}");
            }
            let client = Client::new(ch, key).context("cannot set up the HTTP client")?;
            let dir = spool_dir(state_dir);
            let (mut spool, loaded) = Spool::open(&dir, id).map_err(|e| {
                ExitError::new(
                    exit::IOERR,
                    format!(
                        "channel {id}: cannot open the spool in {}: {e}",
                        dir.display()
                    ),
                )
            })?;
            if loaded.skipped > 0 {
                tracing::warn!(
                    "channel {id}: skipped {} unreadable lines in {}",
                    loaded.skipped,
                    spool.file_path().display()
                );
            }
            let dropped = batcher.restore(loaded.changes, Instant::now(), Utc::now());
            log_dropped(id, dropped);
            if batcher.waiting() > 0 {
                tracing::info!(
                    "channel {id}: {} updates waiting from the spool",
                    batcher.waiting()
                );
            }
            spool.compact(&batcher.snapshot()).map_err(|e| {
                ExitError::new(
                    exit::IOERR,
                    format!(
                        "channel {id}: cannot write {}: {e}",
                        spool.file_path().display()
                    ),
                )
            })?;
            (Destination::Http(client), Some(spool))
        };
        Ok(Channel {
            id,
            index,
            batcher,
            spool,
            spool_broken: false,
            sink,
            status,
            delivered: 0,
            refused: 0,
        })
    }

    /// Run until `readings` is closed (the MQTT task stopped), then finish the request under
    /// way (bounded by the request timeout) so that its answer is recorded.
    pub async fn run(mut self, mut readings: mpsc::Receiver<Arrival>) {
        self.publish_status();
        let mut request: Option<Request> = None;
        let mut unacked: Vec<Ack> = Vec::new();
        loop {
            let wake = self.batcher.next_send();
            tokio::select! {
                r = readings.recv() => match r {
                    Some(r) => {
                        let dropped = self.batcher.push(r.value, r.wall, r.at);
                        log_dropped(self.id, dropped);
                        unacked.push(r.ack);
                    }
                    None => break,
                },
                answer = answer_to(&mut request) => {
                    request = None;
                    self.finish(answer);
                }
                _ = sleep_until(wake), if wake.is_some() && request.is_none() => {
                    if let Some(batch) = self.batcher.start(Instant::now(), Utc::now()) {
                        // The attempt is on disk before the request leaves: the rate limit
                        // holds across a crash.
                        self.persist();
                        request = Some(self.send(batch));
                    }
                }
            }
            self.persist();
            // On disk (or the spool is broken and logged): the broker may forget them.
            unacked.clear();
            self.publish_status();
        }
        if let Some(r) = request {
            let answer = r.await;
            self.finish(answer);
            self.persist();
            self.publish_status();
        }
    }

    fn send(&self, batch: Vec<super::batch::Entry>) -> Request {
        match &self.sink {
            Destination::Http(client) => {
                let client = client.clone();
                Box::pin(async move { client.send(&batch).await })
            }
            Destination::Print(printer) => {
                printer.print(&thingspeak::masked_body(&batch));
                Box::pin(std::future::ready(Answer::Delivered))
            }
        }
    }

    fn finish(&mut self, answer: Answer) {
        let id = self.id;
        let n = self.batcher.in_flight();
        let failures = self.batcher.failures();
        let outcome = match &answer {
            Answer::Delivered => Delivery::Delivered,
            Answer::Refused { .. } => Delivery::Refused,
            Answer::Retry { .. } => Delivery::Failed,
        };
        let (delay, dropped) =
            self.batcher
                .finish(outcome, Instant::now(), Utc::now(), rand::random::<f64>());
        match answer {
            Answer::Delivered => {
                self.delivered += n as u64;
                if failures > 0 {
                    tracing::info!(
                        "channel {id}: delivered {n} updates after {failures} failed attempts"
                    );
                } else {
                    tracing::debug!("channel {id}: delivered {n} updates");
                }
            }
            Answer::Refused { status, detail } => {
                self.refused += n as u64;
                tracing::error!(
                    "channel {id}: ThingSpeak refused {n} updates with HTTP {status} ({detail}); \
                     they are dropped, not retried: {}",
                    refusal_hint(status)
                );
            }
            Answer::Retry { reason } => {
                let delay = delay.map(|d| humantime::format_duration(round_ms(d)).to_string());
                tracing::warn!(
                    "channel {id}: {n} updates not delivered ({reason}); they stay spooled, \
                     attempt {} in {}",
                    failures + 2,
                    delay.unwrap_or_default()
                );
            }
        }
        log_dropped(id, dropped);
    }

    /// Make the batcher's changes durable. After a write error the next attempt rewrites the
    /// whole file from a snapshot, so the spool is consistent again as soon as the disk is.
    fn persist(&mut self) {
        let changes = self.batcher.take_changes();
        let Some(spool) = &mut self.spool else { return };
        if changes.is_empty() && !self.spool_broken {
            return;
        }
        let result = if self.spool_broken || spool.wants_compaction(self.batcher.waiting() + 1) {
            spool.compact(&self.batcher.snapshot())
        } else {
            spool.append(&changes)
        };
        match result {
            Ok(()) if self.spool_broken => {
                self.spool_broken = false;
                tracing::info!("channel {}: spool writable again", self.id);
            }
            Ok(()) => {}
            Err(e) if !self.spool_broken => {
                self.spool_broken = true;
                tracing::error!(
                    "channel {}: cannot write the spool {} ({e}); going on in memory, a restart now would lose updates",
                    self.id,
                    spool.file_path().display()
                );
            }
            Err(_) => {}
        }
    }

    fn publish_status(&self) {
        let s = ChannelStatus {
            id: self.id,
            waiting: self.batcher.waiting(),
            in_flight: self.batcher.in_flight(),
            delivered: self.delivered,
            refused: self.refused,
            dropped: self.batcher.dropped(),
            failures: self.batcher.failures(),
            next_send: self.batcher.next_send(),
        };
        self.status
            .send_if_modified(|st| match st.channels.get_mut(self.index) {
                Some(c) if *c != s => {
                    *c = s;
                    true
                }
                _ => false,
            });
    }
}

/// Where spools live under `state_dir`.
pub fn spool_dir(state_dir: &Path) -> std::path::PathBuf {
    state_dir.join("bridge")
}

/// The answer to the request under way; pends forever when there is none.
async fn answer_to(request: &mut Option<Request>) -> Answer {
    match request {
        Some(r) => r.await,
        None => std::future::pending().await,
    }
}

fn round_ms(d: std::time::Duration) -> std::time::Duration {
    std::time::Duration::from_millis(d.as_millis().try_into().unwrap_or(u64::MAX))
}

fn log_dropped(id: u64, n: usize) {
    if n > 0 {
        tracing::warn!("channel {id}: spool full (max_spool), dropped the {n} oldest updates");
    }
}

/// What to check after a refusal, by status.
fn refusal_hint(status: u16) -> &'static str {
    match status {
        401 => "check the channel id and its write API key",
        402 => "the account's message allowance is used up",
        413 => "the request is too large; lower max_batch",
        _ => "the data was not accepted; check the field mapping",
    }
}
