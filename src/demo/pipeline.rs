//! The pipeline's programs, started in-process by the demo through their library `run`
//! functions, each with the demo config and a shutdown handle of its own.

use crate::config::Config;
use crate::shutdown::{Shutdown, Trigger};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A running program: its name and its task.
pub(super) type Part = (&'static str, JoinHandle<anyhow::Result<()>>);

/// How often the demo computes a stats window `[previous run, now)`, through stats' explicit
/// windows, instead of waiting for cron's next minute.
const STATS_EVERY: Duration = Duration::from_secs(5);

/// The running programs, and what the view shows of the bridge.
pub(super) struct Pipeline {
    /// The programs' tasks.
    pub parts: Vec<Part>,
    bridge: watch::Receiver<crate::bridge::Status>,
    dry_run: bool,
}

impl Pipeline {
    /// The bridge's queue, one line per channel, for the view.
    pub fn bridge_lines(&self) -> Vec<String> {
        let mode = if self.dry_run { " (dry run)" } else { "" };
        self.bridge
            .borrow()
            .channels
            .iter()
            .map(|c| {
                format!(
                    "bridge{mode} channel {}: waiting {} · in flight {} · sent {} · failures {}",
                    c.id, c.waiting, c.in_flight, c.delivered, c.failures
                )
            })
            .collect()
    }

    /// Updates the bridge delivered (printed, in a dry run).
    pub fn bridge_sent(&self) -> u64 {
        self.bridge
            .borrow()
            .channels
            .iter()
            .map(|c| c.delivered)
            .sum()
    }
}

/// The file, in the demo directory, where the dry-run bridge writes the requests it would send
/// (stdout belongs to the live view).
pub(super) const BRIDGE_REQUESTS: &str = "bridge-requests.json";

/// Start alerts, stats (on a fast schedule), the bridge (dry unless `thingspeak` names a
/// channel, writing its requests to [`BRIDGE_REQUESTS`] in `dir`) and iotitan-http on
/// `listener` with the read API over the demo's records (`read`), which serves the
/// dashboard. The logger is started first, so that records are written from the start.
pub(super) fn start(
    cfg: &Arc<Config>,
    stop: &Trigger,
    thingspeak: Option<u64>,
    dir: &std::path::Path,
    listener: tokio::net::TcpListener,
    read: crate::history::read::Context,
) -> Pipeline {
    let mut parts: Vec<Part> = Vec::new();

    let (c, s) = (cfg.clone(), stop.subscribe());
    parts.push((
        "logger",
        tokio::spawn(async move { crate::logger::run(&c, s, None).await.map(drop) }),
    ));

    let (c, s) = (cfg.clone(), stop.subscribe());
    parts.push((
        "alerts",
        tokio::spawn(async move { crate::alerts::run(&c, s).await }),
    ));

    let (c, s) = (cfg.clone(), stop.subscribe());
    parts.push(("stats", tokio::spawn(stats_windows(c, s))));

    let (status, bridge) = watch::channel(crate::bridge::Status::default());
    let dry_run = thingspeak.is_none();
    let opts = crate::bridge::Options {
        dry_run,
        dry_run_to: Some(dir.join(BRIDGE_REQUESTS)),
        status: Some(status),
    };
    let (c, s) = (cfg.clone(), stop.subscribe());
    parts.push((
        "bridge",
        tokio::spawn(async move { crate::bridge::run_with(&c, s, opts).await }),
    ));

    let (c, s) = (cfg.clone(), stop.subscribe());
    let routes = crate::history::api::routes(read);
    parts.push((
        "http",
        tokio::spawn(async move { crate::http::run_on(&c, Some(listener), s, Some(routes)).await }),
    ));

    Pipeline {
        parts,
        bridge,
        dry_run,
    }
}

/// Stats on a fast schedule: a window `[previous run, now)` every [`STATS_EVERY`].
async fn stats_windows(cfg: Arc<Config>, mut stop: Shutdown) -> anyhow::Result<()> {
    let mut since = chrono::Utc::now();
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + STATS_EVERY, STATS_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.recv() => return Ok(()),
        }
        let until = chrono::Utc::now();
        let opts = crate::stats::Options {
            since: Some(since.to_rfc3339()),
            until: Some(until.to_rfc3339()),
            progress: crate::records::scan::ProgressArgs {
                no_progress: true,
                ..Default::default()
            },
            ..crate::stats::Options::default()
        };
        if let Err(e) = crate::stats::run(&cfg, stop.clone(), &opts).await {
            tracing::warn!("stats window {since} .. {until}: {e:#}");
        }
        since = until;
    }
}
