//! systemd readiness and watchdog notifications.
//!
//! Units are `Type=notify` with `WatchdogSec=`: we send `READY=1` once connected and
//! `WATCHDOG=1` from the main loop, so a wedged daemon is restarted. Outside systemd
//! (`NOTIFY_SOCKET` unset) every call is a no-op.

use std::time::Duration;

/// Tell systemd the daemon is ready. No-op without `NOTIFY_SOCKET`.
pub fn ready() {
    if let Err(e) = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]) {
        tracing::warn!("could not notify systemd of readiness: {e}");
    }
}

/// Tell systemd we are stopping, so `systemctl stop` shows the right state.
pub fn stopping() {
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
}

/// Post a human-readable status line (`systemctl status` shows it).
pub fn status(text: &str) {
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Status(text)]);
}

/// The interval at which to send watchdog pings: half of `WATCHDOG_USEC`, or `None` when the
/// watchdog is off.
pub fn watchdog_interval() -> Option<Duration> {
    let mut usec = 0;
    if sd_notify::watchdog_enabled(false, &mut usec) && usec > 0 {
        Some(Duration::from_micros(usec / 2))
    } else {
        None
    }
}

/// Send one watchdog ping.
pub fn watchdog() {
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
}

/// A ticker for the watchdog that never fires when the watchdog is off, for use in `select!`.
pub struct Watchdog {
    interval: Option<tokio::time::Interval>,
}

impl Watchdog {
    /// Ticks at [`watchdog_interval`], or never.
    pub fn new() -> Self {
        Watchdog {
            interval: watchdog_interval().map(tokio::time::interval),
        }
    }

    /// Resolves at the next ping time; pends forever when the watchdog is off.
    pub async fn tick(&mut self) {
        match &mut self.interval {
            Some(i) => {
                i.tick().await;
                watchdog();
            }
            None => std::future::pending().await,
        }
    }
}

impl Default for Watchdog {
    fn default() -> Self {
        Self::new()
    }
}
