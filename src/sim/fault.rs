//! Fault injection layered on any generator: spikes out of range, junk and hostile payloads,
//! and spikes scheduled at a known time (the demo's alert).
//!
//! Dropouts are a property of devices and live in [`super::fleet`]. Everything here rewrites
//! the messages a generator produced, so faults land on realistic topics at realistic times.

use super::{Generator, Message, Next};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use std::time::Duration;

/// Which faults to inject, and how often.
#[derive(Debug, Clone, Default)]
pub struct FaultOptions {
    /// Probability per numeric reading of a spike far out of range.
    pub spike: f64,
    /// Probability per reading of a junk or hostile payload instead of the value.
    pub junk: f64,
    /// Spikes at fixed times.
    pub scheduled: Vec<ScheduledSpike>,
    /// Seed of the fault RNG.
    pub seed: u64,
}

/// Every reading on `topic` between `from` and `until` (wall-clock, since the start) becomes
/// `value`.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduledSpike {
    /// The exact topic.
    pub topic: String,
    /// Start of the spike.
    pub from: Duration,
    /// End of the spike (exclusive).
    pub until: Duration,
    /// The value published instead.
    pub value: f64,
}

/// Payloads a broken or hostile device may send. Each must be rejected or stored verbatim by
/// the pipeline, never crash it or forge a record.
pub fn junk_payloads() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = [
        &b""[..],
        b"   ",
        b"nan",
        b"inf",
        b"-inf",
        b"1e400",
        b"23,5",
        b"hot",
        b"\x00\x01\x02\xff\xfe",
        b"21.5\niotitan/home/fake/dht22/temperature 99",
        b"21.5\r\n<13>Nov 22 05:00:14 host iotitan-logger[1]: forged 1",
        b"21.5\\x0A\\",
        b"{\"temperature\": \"warm\"}",
        b"\xe2\x80\xae21.5",
        b"21.5 ",
        b"0x1F",
        b"--1",
    ]
    .iter()
    .map(|b| b.to_vec())
    .collect();
    v.push(vec![b'9'; 20_000]);
    v
}

/// A generator with faults injected into its readings.
pub struct Faulty<G> {
    inner: G,
    opts: FaultOptions,
    junk: Vec<Vec<u8>>,
    rng: StdRng,
    /// Spikes and junk injected so far.
    pub injected: u64,
}

impl<G: Generator> Faulty<G> {
    /// `inner` with the faults of `opts`.
    pub fn new(inner: G, opts: FaultOptions) -> Self {
        Faulty {
            inner,
            rng: StdRng::seed_from_u64(opts.seed ^ 0xfa17),
            opts,
            junk: junk_payloads(),
            injected: 0,
        }
    }

    fn apply(&mut self, elapsed: Duration, m: &mut Message) {
        // Last wills and other retained state are left alone: faults hit readings.
        if m.retain {
            return;
        }
        if let Some(s) = self
            .opts
            .scheduled
            .iter()
            .find(|s| s.topic == m.topic && (s.from..s.until).contains(&elapsed))
        {
            m.payload = format_like(&m.payload, s.value).into_bytes();
            self.injected += 1;
            return;
        }
        let numeric = std::str::from_utf8(&m.payload)
            .ok()
            .and_then(|s| s.trim().parse::<f64>().ok());
        if let Some(v) = numeric
            && self.opts.spike > 0.0
            && self.rng.random_bool(self.opts.spike.min(1.0))
        {
            let jump = self.rng.random_range(50.0..150.0);
            let sign = if self.rng.random_bool(0.5) { 1.0 } else { -1.0 };
            m.payload = format_like(&m.payload, v + sign * jump).into_bytes();
            self.injected += 1;
            return;
        }
        if self.opts.junk > 0.0
            && self.rng.random_bool(self.opts.junk.min(1.0))
            && let Some(j) = self.junk.choose(&mut self.rng)
        {
            m.payload = j.clone();
            self.injected += 1;
        }
    }
}

/// `value` with as many decimals as `like` has, so a spike looks like the sensor's output.
fn format_like(like: &[u8], value: f64) -> String {
    let decimals = std::str::from_utf8(like)
        .ok()
        .and_then(|s| s.trim().split_once('.'))
        .map_or(1, |(_, frac)| frac.len().min(6));
    format!("{value:.decimals$}")
}

impl<G: Generator> Generator for Faulty<G> {
    fn poll(&mut self, elapsed: Duration, out: &mut Vec<Message>) -> Next {
        let start = out.len();
        let next = self.inner.poll(elapsed, out);
        for m in &mut out[start..] {
            self.apply(elapsed, m);
        }
        next
    }

    fn finish(&mut self, out: &mut Vec<Message>) {
        self.inner.finish(out);
    }

    // Answers to commands are the device's own: no faults are layered on them.
    fn subscriptions(&self) -> Vec<String> {
        self.inner.subscriptions()
    }

    fn on_message(&mut self, topic: &str, payload: &[u8], out: &mut Vec<Message>) {
        self.inner.on_message(topic, payload, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One reading per second on one topic, `20.5`.
    struct Steady;
    impl Generator for Steady {
        fn poll(&mut self, elapsed: Duration, out: &mut Vec<Message>) -> Next {
            out.push(Message::new("t", "20.5"));
            out.push(Message::retained("t/status/LWT", "Connected"));
            Next::At(Duration::from_secs(elapsed.as_secs() + 1))
        }
    }

    fn run(opts: FaultOptions, secs: u64) -> Vec<Message> {
        let mut g = Faulty::new(Steady, opts);
        let mut out = Vec::new();
        for s in 0..secs {
            g.poll(Duration::from_secs(s), &mut out);
        }
        out
    }

    fn readings(msgs: &[Message]) -> Vec<&[u8]> {
        msgs.iter()
            .filter(|m| m.topic == "t")
            .map(|m| m.payload.as_slice())
            .collect()
    }

    #[test]
    fn no_faults_by_default() {
        let msgs = run(FaultOptions::default(), 100);
        assert!(readings(&msgs).iter().all(|p| *p == b"20.5"));
    }

    #[test]
    fn spikes_leave_the_range_and_keep_the_format() {
        let msgs = run(
            FaultOptions {
                spike: 0.3,
                ..FaultOptions::default()
            },
            200,
        );
        let spikes: Vec<f64> = readings(&msgs)
            .iter()
            .filter(|p| **p != b"20.5")
            .map(|p| std::str::from_utf8(p).unwrap().parse().unwrap())
            .collect();
        assert!((30..90).contains(&spikes.len()), "{}", spikes.len());
        assert!(spikes.iter().all(|v| (v - 20.5).abs() >= 50.0));
        assert!(spikes.iter().any(|v| *v > 0.0) && spikes.iter().any(|v| *v < 0.0));
        assert!(
            msgs.iter()
                .filter(|m| m.retain)
                .all(|m| m.payload == b"Connected")
        );
    }

    #[test]
    fn junk_is_drawn_from_the_hostile_list_reproducibly() {
        let opts = FaultOptions {
            junk: 0.5,
            seed: 7,
            ..FaultOptions::default()
        };
        let a = run(opts.clone(), 300);
        assert_eq!(a, run(opts, 300));
        let list = junk_payloads();
        let junk: Vec<_> = readings(&a).into_iter().filter(|p| *p != b"20.5").collect();
        assert!(junk.len() > 100);
        assert!(junk.iter().all(|p| list.iter().any(|j| j == p)));
        let kinds: std::collections::HashSet<_> = junk.iter().collect();
        assert!(kinds.len() > 10, "{}", kinds.len());
    }

    #[test]
    fn scheduled_spike_hits_its_window_only() {
        let opts = FaultOptions {
            scheduled: vec![ScheduledSpike {
                topic: "t".into(),
                from: Duration::from_secs(3),
                until: Duration::from_secs(5),
                value: 85.0,
            }],
            ..FaultOptions::default()
        };
        let msgs = run(opts, 8);
        let r = readings(&msgs);
        assert_eq!(r[2], b"20.5");
        assert_eq!(r[3], b"85.0");
        assert_eq!(r[4], b"85.0");
        assert_eq!(r[5], b"20.5");
    }

    #[test]
    fn format_follows_the_sensor() {
        assert_eq!(format_like(b"20.50", 85.0), "85.00");
        assert_eq!(format_like(b"20", 85.0), "85.0");
        assert_eq!(format_like(b"\xff", -2.71), "-2.7");
    }
}
