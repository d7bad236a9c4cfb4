//! The pipeline's programs, started in-process by the demo through their library `run`
//! functions, each with the demo config and a shutdown handle of its own.
//!
//! A program joins the demo here once its module has a `run`: logger (records to the demo's
//! syslog socket), alerts, stats (a window every few seconds through its explicit-window
//! options) and the bridge (dry unless a ThingSpeak channel is given, its status feeding
//! [`Pipeline::bridge_lines`]).

use crate::config::Config;
use crate::shutdown::Trigger;
use std::sync::Arc;
use tokio::task::JoinHandle;

/// A running program: its name and its task.
pub(super) type Part = (&'static str, JoinHandle<anyhow::Result<()>>);

/// The running programs, and what the view shows of the bridge.
pub(super) struct Pipeline {
    /// The programs' tasks.
    pub parts: Vec<Part>,
}

impl Pipeline {
    /// The bridge's queue, one line per channel, for the view.
    pub fn bridge_lines(&self) -> Vec<String> {
        Vec::new()
    }

    /// Updates the bridge delivered (printed, in a dry run).
    pub fn bridge_sent(&self) -> u64 {
        0
    }
}

/// Start the programs that are available.
pub(super) fn start(cfg: &Arc<Config>, stop: &Trigger, thingspeak: Option<u64>) -> Pipeline {
    let _ = (cfg, stop, thingspeak);
    Pipeline { parts: Vec::new() }
}
