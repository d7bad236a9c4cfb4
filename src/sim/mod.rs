//! `iotitan-sim`: a simulated fleet of ESPEasy sensors, replay of real series, fault injection
//! and a load generator — the input side of every demo, test and benchmark.
//!
//! Generation is pure and separate from publishing, so it is deterministic and unit-tested:
//! a [`Generator`] is asked, with the time elapsed since the start, for the messages due by
//! then and for when to ask again. Every random choice comes from an RNG seeded by the user
//! (`--seed`), so a run can be reproduced message for message.
//!
//! - [`fleet`] — DHT22 / BME280 / PIR devices on daily curves with noise, ESPEasy last wills;
//! - [`office`] — Tasmota and Shelly smart plugs of an office: power and energy meters;
//! - [`replay`] — a CSV series (e.g. open-meteo) replayed with time compression;
//! - [`fault`] — spikes, dropouts' companions, junk and hostile payloads layered on any generator;
//! - [`load`] — a paced stream of numbered messages for benchmarks;
//! - [`publish`] — the one I/O edge: drives a generator against the broker and reports.

pub(crate) mod fault;
pub(crate) mod fleet;
pub(crate) mod load;
pub mod office;
pub(crate) mod publish;
pub(crate) mod replay;

pub use fault::{FaultOptions, Faulty, ScheduledSpike};
pub use fleet::{Fleet, FleetOptions};
pub use load::{Achieved, Load};
pub use office::{Office, OfficeOptions};
pub use publish::{Report, run};
pub use replay::{Replay, Series};

use std::time::Duration;

/// One MQTT message to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The topic.
    pub topic: String,
    /// The payload bytes (junk payloads need not be UTF-8).
    pub payload: Vec<u8>,
    /// Retained (the last wills are, like ESPEasy's).
    pub retain: bool,
}

impl Message {
    /// A non-retained message.
    pub fn new(topic: impl Into<String>, payload: impl Into<Vec<u8>>) -> Self {
        Message {
            topic: topic.into(),
            payload: payload.into(),
            retain: false,
        }
    }

    /// A retained message.
    pub fn retained(topic: impl Into<String>, payload: impl Into<Vec<u8>>) -> Self {
        Message {
            retain: true,
            ..Message::new(topic, payload)
        }
    }
}

/// When a generator wants to be polled again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// At this time since the start (possibly already past: poll again at once).
    At(Duration),
    /// Nothing more to send.
    Done,
}

impl Next {
    /// The earlier of two wake-ups.
    pub fn min(self, other: Next) -> Next {
        match (self, other) {
            (Next::At(a), Next::At(b)) => Next::At(a.min(b)),
            (Next::At(a), Next::Done) | (Next::Done, Next::At(a)) => Next::At(a),
            (Next::Done, Next::Done) => Next::Done,
        }
    }
}

/// A source of messages over time: pure, so the same inputs give the same messages.
pub trait Generator: Send {
    /// Append the messages due at `elapsed` (time since the start) to `out`, in publishing
    /// order, and say when to poll next. `elapsed` never goes backwards; a poll may come
    /// early (another generator of a [`Mix`] was due), and then simply yields nothing yet.
    fn poll(&mut self, elapsed: Duration, out: &mut Vec<Message>) -> Next;

    /// Messages to send on a clean stop (the devices' last wills).
    fn finish(&mut self, _out: &mut Vec<Message>) {}

    /// Topics this generator listens on (devices that take commands, like a smart plug).
    fn subscriptions(&self) -> Vec<String> {
        Vec::new()
    }

    /// A message arrived on one of [`Generator::subscriptions`]: append the answers to `out`.
    fn on_message(&mut self, _topic: &str, _payload: &[u8], _out: &mut Vec<Message>) {}
}

impl<G: Generator + ?Sized> Generator for Box<G> {
    fn poll(&mut self, elapsed: Duration, out: &mut Vec<Message>) -> Next {
        (**self).poll(elapsed, out)
    }
    fn finish(&mut self, out: &mut Vec<Message>) {
        (**self).finish(out)
    }
    fn subscriptions(&self) -> Vec<String> {
        (**self).subscriptions()
    }
    fn on_message(&mut self, topic: &str, payload: &[u8], out: &mut Vec<Message>) {
        (**self).on_message(topic, payload, out)
    }
}

/// Several generators at once (the demo's fleet and replayed series).
#[derive(Default)]
pub struct Mix {
    parts: Vec<(Box<dyn Generator>, Next)>,
}

impl Mix {
    /// An empty mix.
    pub fn new() -> Self {
        Mix::default()
    }

    /// Add a generator; it is first polled at time zero.
    pub fn with(mut self, g: impl Generator + 'static) -> Self {
        self.parts.push((Box::new(g), Next::At(Duration::ZERO)));
        self
    }
}

impl Generator for Mix {
    fn poll(&mut self, elapsed: Duration, out: &mut Vec<Message>) -> Next {
        let mut next = Next::Done;
        for (g, due) in &mut self.parts {
            if matches!(*due, Next::At(t) if t <= elapsed) {
                *due = g.poll(elapsed, out);
            }
            next = next.min(*due);
        }
        next
    }

    fn finish(&mut self, out: &mut Vec<Message>) {
        for (g, _) in &mut self.parts {
            g.finish(out);
        }
    }

    fn subscriptions(&self) -> Vec<String> {
        self.parts
            .iter()
            .flat_map(|(g, _)| g.subscriptions())
            .collect()
    }

    fn on_message(&mut self, topic: &str, payload: &[u8], out: &mut Vec<Message>) {
        for (g, _) in &mut self.parts {
            g.on_message(topic, payload, out);
        }
    }
}

/// Stops a generator after a number of messages or a duration (`--count`, `--duration`).
pub struct Limited<G> {
    inner: G,
    count: Option<u64>,
    duration: Option<Duration>,
    sent: u64,
}

impl<G: Generator> Limited<G> {
    /// `inner`, stopped after `count` messages or at `duration`, whichever comes first.
    pub fn new(inner: G, count: Option<u64>, duration: Option<Duration>) -> Self {
        Limited {
            inner,
            count,
            duration,
            sent: 0,
        }
    }
}

impl<G: Generator> Generator for Limited<G> {
    fn poll(&mut self, elapsed: Duration, out: &mut Vec<Message>) -> Next {
        if self.duration.is_some_and(|d| elapsed >= d) {
            return Next::Done;
        }
        let before = out.len();
        let mut next = self.inner.poll(elapsed, out);
        if let Some(count) = self.count {
            let left = usize::try_from(count - self.sent).unwrap_or(usize::MAX);
            if out.len() - before >= left {
                out.truncate(before + left);
                next = Next::Done;
            }
        }
        self.sent += (out.len() - before) as u64;
        match (next, self.duration) {
            (Next::At(_), Some(d)) => next.min(Next::At(d)),
            _ => next,
        }
    }

    fn finish(&mut self, out: &mut Vec<Message>) {
        self.inner.finish(out);
    }

    fn subscriptions(&self) -> Vec<String> {
        self.inner.subscriptions()
    }

    fn on_message(&mut self, topic: &str, payload: &[u8], out: &mut Vec<Message>) {
        self.inner.on_message(topic, payload, out);
    }
}

/// How much simulated time passes per wall-clock second: `1s` is real time, `1h` replays an
/// hour of data every second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Speed(f64);

impl Speed {
    /// Real time.
    pub const REAL_TIME: Speed = Speed(1.0);

    /// The slowest speed: a second of data per 11.6 days.
    pub const MIN: f64 = 1e-6;
    /// The fastest: 11.6 days of data per second. Faster would leave the calendar (year
    /// 262 143, chrono's last) within weeks, and says nothing more about a sensor.
    pub const MAX: f64 = 1e6;

    /// Simulated seconds per wall-clock second, from [`Speed::MIN`] to [`Speed::MAX`].
    pub fn new(factor: f64) -> Option<Speed> {
        (Speed::MIN..=Speed::MAX)
            .contains(&factor)
            .then_some(Speed(factor))
    }

    /// The factor.
    pub fn factor(self) -> f64 {
        self.0
    }

    /// Wall-clock time for `simulated` time.
    pub fn wall(self, simulated: Duration) -> Duration {
        saturating_secs(simulated.as_secs_f64() / self.0)
    }

    /// Simulated time for `wall` time.
    pub fn simulated(self, wall: Duration) -> Duration {
        saturating_secs(wall.as_secs_f64() * self.0)
    }
}

/// `secs` as a duration, `Duration::MAX` beyond it (never a panic on overflow).
pub(crate) fn saturating_secs(secs: f64) -> Duration {
    Duration::try_from_secs_f64(secs.max(0.0)).unwrap_or(Duration::MAX)
}

impl std::str::FromStr for Speed {
    type Err = String;
    /// `"1h"` (an hour of data per second) or a bare factor like `"3600"`.
    fn from_str(s: &str) -> Result<Speed, String> {
        let factor = match s.trim().parse::<f64>() {
            Ok(f) => f,
            Err(_) => humantime::parse_duration(s.trim())
                .map_err(|e| format!("invalid speed {s:?} ({e}): write e.g. \"1h\" or \"3600\""))?
                .as_secs_f64(),
        };
        Speed::new(factor).ok_or_else(|| {
            format!(
                "invalid speed {s:?}: from {} to {} simulated seconds per second",
                Speed::MIN,
                Speed::MAX
            )
        })
    }
}

/// A broker address from `--broker HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerAddr {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl BrokerAddr {
    /// Point `[mqtt]` at this broker.
    pub fn apply(&self, mqtt: &mut crate::config::MqttConfig) {
        mqtt.host = self.host.clone();
        mqtt.port = self.port;
    }
}

impl std::str::FromStr for BrokerAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<BrokerAddr, String> {
        let bad = || format!("invalid broker {s:?}: expected HOST:PORT");
        let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = port.parse().map_err(|_| bad())?;
        if host.is_empty() {
            return Err(bad());
        }
        Ok(BrokerAddr {
            host: host.to_owned(),
            port,
        })
    }
}

/// A standard normal sample (Box–Muller). Hand-written because the crates offering normal
/// distributions here (`statrs`) are built on another major version of `rand`.
pub(crate) fn gaussian(rng: &mut impl rand::Rng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Emits `n` messages every second, forever.
    struct Ticker(u32);
    impl Generator for Ticker {
        fn poll(&mut self, elapsed: Duration, out: &mut Vec<Message>) -> Next {
            for i in 0..self.0 {
                out.push(Message::new(
                    format!("t/{i}"),
                    elapsed.as_secs().to_string(),
                ));
            }
            Next::At(Duration::from_secs(elapsed.as_secs() + 1))
        }
        fn finish(&mut self, out: &mut Vec<Message>) {
            out.push(Message::retained("t/lwt", "bye"));
        }
    }

    #[test]
    fn limited_by_count_truncates_the_last_batch() {
        let mut g = Limited::new(Ticker(3), Some(7), None);
        let mut out = Vec::new();
        assert!(matches!(g.poll(Duration::ZERO, &mut out), Next::At(_)));
        assert!(matches!(
            g.poll(Duration::from_secs(1), &mut out),
            Next::At(_)
        ));
        assert_eq!(g.poll(Duration::from_secs(2), &mut out), Next::Done);
        assert_eq!(out.len(), 7);
        g.finish(&mut out);
        assert_eq!(out.last().unwrap().topic, "t/lwt");
    }

    #[test]
    fn limited_by_duration_wakes_at_the_end() {
        let mut g = Limited::new(Ticker(1), None, Some(Duration::from_millis(1500)));
        let mut out = Vec::new();
        assert_eq!(
            g.poll(Duration::from_secs(1), &mut out),
            Next::At(Duration::from_millis(1500))
        );
        assert_eq!(g.poll(Duration::from_millis(1500), &mut out), Next::Done);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn mix_polls_only_what_is_due() {
        let mut m = Mix::new().with(Ticker(1)).with(Ticker(2));
        let mut out = Vec::new();
        assert_eq!(
            m.poll(Duration::ZERO, &mut out),
            Next::At(Duration::from_secs(1))
        );
        assert_eq!(out.len(), 3);
        out.clear();
        m.poll(Duration::from_millis(500), &mut out);
        assert!(out.is_empty());
        m.finish(&mut out);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn speed_parses_durations_and_factors() {
        assert_eq!("1h".parse::<Speed>().unwrap().factor(), 3600.0);
        assert_eq!("2.5".parse::<Speed>().unwrap().factor(), 2.5);
        assert!("0".parse::<Speed>().is_err());
        assert!("-1".parse::<Speed>().is_err());
        assert!("fast".parse::<Speed>().is_err());
        // Past the bounds: refused with them named, never an overflow later.
        for absurd in ["1e300", "1e-300", "inf", "NaN", "1000000000y"] {
            let e = absurd.parse::<Speed>().unwrap_err();
            assert!(e.contains("from 0.000001 to 1000000"), "{absurd}: {e}");
        }
        let fastest = Speed::new(Speed::MAX).unwrap();
        assert_eq!(
            fastest.simulated(Duration::MAX),
            Duration::MAX,
            "saturates instead of panicking"
        );
        let s = Speed::new(3600.0).unwrap();
        assert_eq!(s.wall(Duration::from_secs(7200)), Duration::from_secs(2));
        assert_eq!(
            s.simulated(Duration::from_secs(2)),
            Duration::from_secs(7200)
        );
    }

    #[test]
    fn broker_addresses() {
        let b: BrokerAddr = "localhost:1883".parse().unwrap();
        assert_eq!((b.host.as_str(), b.port), ("localhost", 1883));
        let b: BrokerAddr = "[::1]:1884".parse().unwrap();
        assert_eq!((b.host.as_str(), b.port), ("::1", 1884));
        for bad in ["localhost", ":1883", "h:99999", "h:x"] {
            assert!(bad.parse::<BrokerAddr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn gaussian_has_unit_spread() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let xs: Vec<f64> = (0..20_000).map(|_| gaussian(&mut rng)).collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        assert!(mean.abs() < 0.03, "{mean}");
        assert!((var - 1.0).abs() < 0.05, "{var}");
    }
}
