//! Diagnostics of our own programs (not the records we store): `tracing` to journald when
//! started by systemd, to stderr otherwise.
//!
//! Under systemd we write to journald's native socket so that `journalctl -t iotitan-alerts
//! -p warning` works: the identifier is the program name and levels map to priorities.

use std::io::IsTerminal;
use tracing_subscriber::{EnvFilter, layer::SubscriberExt, util::SubscriberInitExt};

/// Install the global subscriber for program `name`. `RUST_LOG` overrides the default `info`.
pub fn init(name: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    // JOURNAL_STREAM is set by systemd when stderr goes to the journal.
    if std::env::var_os("JOURNAL_STREAM").is_some()
        && let Ok(journald) = tracing_journald::layer()
    {
        let _ = registry
            .with(journald.with_syslog_identifier(name.to_owned()))
            .try_init();
        return;
    }
    let _ = registry
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                // Colours only for a person at a terminal: cron pipes stderr to logger(1), and
                // escape codes in syslog break every grep.
                .with_ansi(std::io::stderr().is_terminal())
                .with_target(false),
        )
        .try_init();
}
