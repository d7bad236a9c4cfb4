//! `iotitan-bridge`: readings from MQTT to ThingSpeak channels, within ThingSpeak's rate
//! limits and without losing anything to outages or restarts.
//!
//! The parts, from pure to I/O:
//! - [`route`]: which channel field a message fills;
//! - [`batch`]: readings → timestamped updates → bulk requests, and when to send them;
//! - [`spool`]: the per-channel file that makes every pending update durable;
//! - [`key`]: the write key, from a file, the environment or a systemd credential;
//! - [`thingspeak`]: the bulk-update request and what its answers mean;
//! - [`channel`]: one task per channel tying the above together.
//!
//! [`run`] is the daemon: the MQTT loop routes readings to the channel tasks and acknowledges
//! each message to the broker once the channels have spooled it; on shutdown it stops taking
//! messages, the channels finish the request under way, the last acknowledgements go out, and
//! everything still waiting is on disk.

pub mod batch;
pub mod channel;
pub mod key;
pub mod route;
pub mod spool;
pub mod thingspeak;

use crate::config::Config;
use crate::exit::{self, ExitError};
use crate::mqtt;
use crate::notify;
use crate::shutdown::Shutdown;
use crate::status::{self as health, Metric};
use channel::{Ack, Arrival, Channel};
use route::Routes;
use rumqttc::{AsyncClient, QoS, SubscribeFilter};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

/// Readings buffered between the MQTT task and a channel task.
const READING_QUEUE: usize = 1024;
/// Messages buffered between the MQTT poller and the routing loop.
const INBOX: usize = 256;

/// How the bridge runs, beyond the config.
#[derive(Debug, Default)]
pub struct Options {
    /// Print each request (key masked) instead of sending it; the spool is left alone, and so
    /// is the broker session of a bridge that may be running beside it.
    pub dry_run: bool,
    /// With `dry_run`, append the requests to this file instead of stdout (the demo's live
    /// view owns the terminal).
    pub dry_run_to: Option<std::path::PathBuf>,
    /// Where to publish each channel's [`Status`] as it changes (the demo's live view).
    pub status: Option<watch::Sender<Status>>,
}

/// What every channel is doing, in config order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// One entry per `[[bridge.channel]]`.
    pub channels: Vec<ChannelStatus>,
}

/// One channel's queue and counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelStatus {
    /// The channel id.
    pub id: u64,
    /// Updates waiting (spooled), including those in a request under way.
    pub waiting: usize,
    /// Updates in the request under way.
    pub in_flight: usize,
    /// Updates delivered since start.
    pub delivered: u64,
    /// Updates refused by ThingSpeak (and dropped) since start.
    pub refused: u64,
    /// Updates dropped because the spool was full, since start.
    pub dropped: u64,
    /// Failed attempts in a row.
    pub failures: u32,
    /// When the next request is due, if updates wait.
    pub next_send: Option<Instant>,
}

/// Run the bridge until `shutdown`.
pub async fn run(cfg: &Config, shutdown: Shutdown) -> anyhow::Result<()> {
    run_with(cfg, shutdown, Options::default()).await
}

/// [`run`] with [`Options`].
pub async fn run_with(cfg: &Config, mut shutdown: Shutdown, opts: Options) -> anyhow::Result<()> {
    if cfg.bridge.channel.is_empty() {
        return Err(ExitError::new(
            exit::CONFIG,
            "no [[bridge.channel]] in the config: nothing to forward",
        )
        .into());
    }
    let routes = Routes::new(cfg);
    let locations = crate::privacy::Locations::of(cfg);
    let status = Arc::new(
        opts.status
            .unwrap_or_else(|| watch::channel(Status::default()).0),
    );
    status.send_replace(Status {
        channels: cfg
            .bridge
            .channel
            .iter()
            .map(|c| ChannelStatus {
                id: c.id,
                ..ChannelStatus::default()
            })
            .collect(),
    });
    // Keys and spools before the broker: a config problem exits 78 at once.
    let printer = match (opts.dry_run, &opts.dry_run_to) {
        (false, _) => None,
        (true, None) => Some(channel::Printer::Stdout),
        (true, Some(path)) => Some(channel::Printer::file(path)?),
    };
    let mut senders = Vec::new();
    let mut tasks = JoinSet::new();
    for (i, ch) in cfg.bridge.channel.iter().enumerate() {
        let channel = Channel::prepare(ch, i, &cfg.state_dir, printer.clone(), status.clone())?;
        let (tx, rx) = mpsc::channel(READING_QUEUE);
        senders.push(tx);
        tasks.spawn(channel.run(rx));
    }

    // A persistent session: while the bridge restarts, the broker keeps its messages; and
    // acknowledgements only once a reading is spooled (see `channel::Ack`). A dry run has a
    // client id and a clean session of its own: taking over the real bridge's session would
    // disconnect it, and acknowledge readings that then never reach ThingSpeak.
    let role = if opts.dry_run {
        "bridge-dry-run"
    } else {
        "bridge"
    };
    let mut mqtt_opts = mqtt::options(&cfg.mqtt, role)?;
    mqtt_opts
        .set_clean_session(opts.dry_run)
        .set_manual_acks(true);
    // A dry run is not the bridge: it reports nothing.
    let health = (!opts.dry_run)
        .then(|| health::Status::of(cfg, "bridge"))
        .flatten();
    if let Some(h) = &health {
        h.set_will(&mut mqtt_opts);
    }
    let (client, driver) = mqtt::client(mqtt_opts, &cfg.mqtt);
    // The event loop runs in a task of its own (the pump), never inside the `select!`
    // below: a poll cancelled by the watchdog's tick in the middle of connecting made the
    // client connect twice, and the second connection found the session the first had just
    // made (without our subscriptions), so the bridge never subscribed at all.
    let filters = routes
        .subscriptions()
        .iter()
        .map(|t| SubscribeFilter::new(t.clone(), QoS::AtLeastOnce))
        .collect();
    let mqtt::Pumped {
        mut inbox,
        task: poller,
        subscribed,
        ..
    } = mqtt::Pump::new(client.clone(), driver)
        .subscribe(filters)
        .online(health.as_ref().map(health::Status::availability))
        .inbox(INBOX)
        .spawn::<rumqttc::Publish>();
    crate::notify::ready_once(subscribed);
    let mut watchdog = notify::Watchdog::new();
    let mut report = tokio::time::interval(cfg.status.interval.get());
    let mut out = Vec::new();
    let mut rejected: u64 = 0;
    loop {
        tokio::select! {
            _ = shutdown.recv() => break,
            _ = watchdog.tick() => {}
            _ = report.tick(), if health.is_some() => {
                publish_health(health.as_ref(), &client, &status.borrow(), rejected, false);
            }
            Some(done) = tasks.join_next() => {
                // Channel tasks only end once their readings are closed.
                done.map_err(|e| anyhow::anyhow!("a channel task failed: {e}"))?;
            }
            p = inbox.recv() => {
                // The poller ends only when every client handle is gone.
                let Some(p) = p else { break };
                let ack = Ack::new(client.clone(), p.clone());
                // A retained message is an old value replayed on subscribing, not a new
                // reading: forwarding it would add a stale entry on every restart.
                if p.retain {
                    continue;
                }
                let (wall, at) = (chrono::Utc::now(), Instant::now());
                out.clear();
                // A location in a private area never goes to ThingSpeak.
                let payload = locations.withhold(&p.topic, &p.payload);
                if let Err(e) = routes.route(&p.topic, &payload, &mut out) {
                    rejected += 1;
                    tracing::debug!("{}: payload rejected ({e}); {rejected} so far", p.topic);
                }
                for (i, value) in out.drain(..) {
                    let reading = Arrival { value, wall, at, ack: ack.clone() };
                    if senders[i].send(reading).await.is_err() {
                        anyhow::bail!("channel {} stopped unexpectedly", cfg.bridge.channel[i].id);
                    }
                }
            }
        }
    }
    notify::stopping();
    // A DISCONNECT does not fire the will: say `offline` (and the last numbers) first.
    publish_health(health.as_ref(), &client, &status.borrow(), rejected, true);
    // Messages arriving from now on are not acknowledged: the broker keeps them for the next
    // start.
    inbox.close();
    drop(senders);
    drain(tasks, client, poller).await
}

/// Publish the bridge's status report (retained), and `offline` when `stopping`: what
/// `/metrics` and the dashboard's health panel show.
fn publish_health(
    health: Option<&health::Status>,
    client: &AsyncClient,
    status: &Status,
    rejected: u64,
    stopping: bool,
) {
    let Some(h) = health else { return };
    let mut metrics = vec![Metric::counter(
        "rejected",
        "Messages whose payload no field mapping could read",
        rejected,
    )];
    let mut waiting = 0;
    for c in &status.channels {
        let id = c.id.to_string();
        waiting += c.waiting;
        metrics.extend(
            [
                Metric::gauge(
                    "spool_depth",
                    "Updates spooled, waiting for ThingSpeak",
                    c.waiting as f64,
                ),
                Metric::gauge(
                    "in_flight",
                    "Updates in the request under way",
                    c.in_flight as f64,
                ),
                Metric::counter("delivered", "Updates ThingSpeak accepted", c.delivered),
                Metric::counter("refused", "Updates ThingSpeak refused (dropped)", c.refused),
                Metric::counter("dropped", "Updates dropped: the spool was full", c.dropped),
                Metric::gauge(
                    "failures",
                    "Failed attempts in a row",
                    f64::from(c.failures),
                ),
            ]
            .map(|m| m.label("channel", id.clone())),
        );
        if let Some(due) = c.next_send {
            let wall = std::time::SystemTime::now() + due.saturating_duration_since(Instant::now());
            let secs = wall
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64();
            metrics.push(
                Metric::gauge(
                    "next_write_seconds",
                    "When the next write to ThingSpeak is due, Unix seconds",
                    secs,
                )
                .label("channel", id),
            );
        }
    }
    let failing = status.channels.iter().filter(|c| c.failures > 0).count();
    let summary = if failing > 0 {
        format!("{failing} channel(s) failing; {waiting} updates spooled")
    } else {
        format!("{waiting} updates spooled")
    };
    h.publish(client, &summary, metrics);
    if stopping {
        health::offline(client, &h.availability());
    }
}

/// Let the channel tasks finish while the poller keeps the event loop running, so that their
/// last acknowledgements reach the broker before we disconnect.
async fn drain(
    mut tasks: JoinSet<()>,
    client: AsyncClient,
    poller: tokio::task::JoinHandle<()>,
) -> anyhow::Result<()> {
    /// How long the acknowledgements and the DISCONNECT may take once the channels are done.
    const GOODBYE: std::time::Duration = std::time::Duration::from_secs(2);
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| anyhow::anyhow!("a channel task failed: {e}"))?;
    }
    // Queued behind every acknowledgement; the poller ends when the broker closes.
    let _ = client.try_disconnect();
    let _ = tokio::time::timeout(GOODBYE, poller).await;
    Ok(())
}

/// For `check-config`: where each channel's write key comes from (never the key). Fails like
/// the daemon would when a key is missing or unreadable.
pub fn describe_keys(cfg: &Config) -> anyhow::Result<Vec<String>> {
    cfg.bridge
        .channel
        .iter()
        .map(|ch| {
            let (_, source) =
                key::load(ch).map_err(|e| ExitError::new(exit::CONFIG, e.to_string()))?;
            Ok(format!("channel {}: write key from {source}", ch.id))
        })
        .collect()
}
