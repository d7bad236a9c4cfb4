//! `iotitan-alerts`: range, hysteresis, hold and stale-sensor alerts, with commands to devices.
//!
//! Two halves, as everywhere in iotitan:
//! - [`machine`]: the alert state machine. Pure: it takes readings and the time (an explicit
//!   clock) and returns transitions; no I/O, so every rule feature is unit-tested on virtual
//!   time;
//! - [`daemon`]: the thin I/O edge around it: config → connect → READY → run → drain. It feeds
//!   the machine from MQTT and publishes what comes out.
//!
//! Outputs follow the IoTitan convention: `<series>_alert_hi`, `_alert_lo` and `_alert_stale`
//! hold `on`/`off` (retained, QoS 1, published on transitions only), every transition is one
//! JSON [`event`] on `alerts.events_topic` and a warning in the log. Because the outputs are
//! retained, they are also the daemon's memory: on start it reads them back, so a restart
//! neither announces an active alert again nor forgets it.

pub(crate) mod daemon;
pub(crate) mod event;
pub(crate) mod machine;

pub use daemon::run;
pub use event::Event;
pub use machine::{Machine, Observed, Transition, owners};

use std::fmt;

/// The three alerts a series can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// Above `high`.
    Hi,
    /// Below `low`.
    Lo,
    /// No reading for `stale_after`.
    Stale,
}

impl Kind {
    /// Every kind, in a fixed order (also the index into per-series arrays).
    pub const ALL: [Kind; 3] = [Kind::Hi, Kind::Lo, Kind::Stale];

    /// The short name used in events and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Hi => "hi",
            Kind::Lo => "lo",
            Kind::Stale => "stale",
        }
    }

    /// The suffix appended to the series to name the output topic.
    pub fn suffix(self) -> &'static str {
        match self {
            Kind::Hi => "_alert_hi",
            Kind::Lo => "_alert_lo",
            Kind::Stale => "_alert_stale",
        }
    }

    /// Position in [`Kind::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The output topic of this alert for `series`.
    pub fn topic(self, series: &str) -> String {
        format!("{series}{}", self.suffix())
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Split an alert output topic into its series and kind: `a/t_alert_hi` → (`a/t`, Hi).
///
/// Anything ending in an alert suffix is ours (or pretends to be): it is never read as a
/// sensor, or a filter like `iotitan/#` would feed alerts back into themselves.
pub fn split_output(topic: &str) -> Option<(&str, Kind)> {
    Kind::ALL.into_iter().find_map(|k| {
        topic
            .strip_suffix(k.suffix())
            .filter(|s| !s.is_empty())
            .map(|s| (s, k))
    })
}

/// The payload of an alert output.
pub fn state_payload(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

/// Read an alert output payload back (`on`/`off`); anything else is not ours.
pub fn parse_state(payload: &[u8]) -> Option<bool> {
    match payload {
        b"on" => Some(true),
        b"off" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_topics_round_trip() {
        for k in Kind::ALL {
            let t = k.topic("iotitan/a/temperature");
            assert_eq!(split_output(&t), Some(("iotitan/a/temperature", k)));
        }
        assert_eq!(split_output("iotitan/a/temperature"), None);
        assert_eq!(split_output("_alert_hi"), None);
        assert_eq!(split_output("a/b_alert_high"), None);
    }

    #[test]
    fn state_payloads() {
        assert_eq!(parse_state(state_payload(true).as_bytes()), Some(true));
        assert_eq!(parse_state(state_payload(false).as_bytes()), Some(false));
        assert_eq!(parse_state(b"ON"), None);
        assert_eq!(parse_state(b"1"), None);
    }
}
