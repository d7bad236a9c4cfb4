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

/// Tell systemd the daemon is ready once `subscribed` turns `true` (the MQTT pump's
/// [`Pumped::subscribed`](crate::mqtt::Pumped)): only then does a message published after
/// `systemctl start` returns reach us. Without a broker (or with a refused subscription) the
/// start never completes, and systemd reports the failure.
pub fn ready_once(mut subscribed: tokio::sync::watch::Receiver<bool>) {
    tokio::spawn(async move {
        if subscribed.wait_for(|&s| s).await.is_ok() {
            ready();
        }
    });
}

/// Tell systemd we are stopping, so `systemctl stop` shows the right state. Said once per
/// process, however many paths lead to the exit (a daemon's drain and [`crate::cli::run_daemon`]).
pub fn stopping() {
    static SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !SAID.swap(true, std::sync::atomic::Ordering::SeqCst) {
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    }
}

/// Post a human-readable status line (`systemctl status` shows it).
pub fn status(text: &str) {
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Status(text)]);
}

/// The interval at which to send watchdog pings: half of `WATCHDOG_USEC`, or `None` when the
/// watchdog is off.
pub fn watchdog_interval() -> Option<Duration> {
    let var = |k| std::env::var(k).ok();
    watchdog_interval_from(
        var("WATCHDOG_USEC").as_deref(),
        var("WATCHDOG_PID").as_deref(),
        std::process::id(),
    )
}

/// The rule of sd_watchdog_enabled(3): the watchdog is on when `WATCHDOG_USEC` is a positive
/// number and `WATCHDOG_PID` is unset or names this process (so a child that inherited the
/// variables does not ping for its parent). The `sd-notify` crate's version also turns it off
/// when `WATCHDOG_PID` is unset, which systemd's documentation does not.
fn watchdog_interval_from(usec: Option<&str>, pid: Option<&str>, me: u32) -> Option<Duration> {
    let usec = usec?.trim().parse::<u64>().ok().filter(|&u| u > 0)?;
    match pid.map(|p| p.trim().parse::<u32>()) {
        None => {}
        Some(Ok(p)) if p == me => {}
        Some(_) => return None,
    }
    Some(Duration::from_micros(usec / 2))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_follows_sd_watchdog_enabled() {
        let ms = |m| Some(Duration::from_millis(m));
        assert_eq!(
            watchdog_interval_from(Some("200000"), Some("42"), 42),
            ms(100)
        );
        assert_eq!(watchdog_interval_from(Some("200000"), None, 42), ms(100));
        assert_eq!(watchdog_interval_from(Some("200000"), Some("43"), 42), None);
        assert_eq!(watchdog_interval_from(Some("200000"), Some("x"), 42), None);
        assert_eq!(watchdog_interval_from(Some("0"), None, 42), None);
        assert_eq!(watchdog_interval_from(Some("soon"), None, 42), None);
        assert_eq!(watchdog_interval_from(None, Some("42"), 42), None);
    }
}
