//! Load mode: numbered messages at a steady rate, the load generator of every benchmark.
//!
//! Payloads are the message's sequence number, spread round-robin over `topics` topics, so a
//! subscriber can check that every message arrived exactly once. The pacing is pure: message
//! `i` is due at `i / rate`; a publisher that falls behind sends what is due at once, so the
//! achieved rate shows the real limit instead of hiding it.

use super::{Generator, Message, Next};
use std::time::Duration;

/// Most messages handed out per poll, so the publisher keeps reacting to shutdown.
const BATCH: u64 = 1024;

/// The load generator.
#[derive(Debug, Clone)]
pub struct Load {
    prefix: String,
    topics: u64,
    rate: Option<f64>,
    count: u64,
    sent: u64,
}

impl Load {
    /// `count` messages on `<prefix>/0` … `<prefix>/<topics-1>`, at `rate` per second
    /// (`None`: as fast as the broker takes them).
    pub fn new(prefix: impl Into<String>, topics: u64, rate: Option<f64>, count: u64) -> Self {
        Load {
            prefix: prefix.into(),
            topics: topics.max(1),
            rate: rate.filter(|r| r.is_finite() && *r > 0.0),
            count,
            sent: 0,
        }
    }

    fn due_at(&self, i: u64) -> Duration {
        match self.rate {
            Some(r) => super::saturating_secs(i as f64 / r),
            None => Duration::ZERO,
        }
    }

    /// How many messages are due by `elapsed`.
    fn due(&self, elapsed: Duration) -> u64 {
        match self.rate {
            // Message i is due at i / rate: those with i <= elapsed * rate.
            Some(r) => ((elapsed.as_secs_f64() * r).floor() as u64).saturating_add(1),
            None => u64::MAX,
        }
        .min(self.count)
    }
}

impl Generator for Load {
    fn poll(&mut self, elapsed: Duration, out: &mut Vec<Message>) -> Next {
        let until = self.due(elapsed).min(self.sent + BATCH);
        for i in self.sent..until {
            out.push(Message::new(
                format!("{}/{}", self.prefix, i % self.topics),
                i.to_string(),
            ));
        }
        self.sent = self.sent.max(until);
        if self.sent >= self.count {
            Next::Done
        } else {
            Next::At(self.due_at(self.sent))
        }
    }
}

/// What a load run achieved.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Achieved {
    /// Messages the broker took (acknowledged at QoS 1, written to the socket at QoS 0).
    pub messages: u64,
    /// From the first publish to the last completion.
    pub elapsed: Duration,
}

impl Achieved {
    /// Messages per second.
    pub fn rate(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            self.messages as f64 / s
        } else {
            0.0
        }
    }
}

impl std::fmt::Display for Achieved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} messages in {:.3} s: {:.0} msg/s",
            self.messages,
            self.elapsed.as_secs_f64(),
            self.rate()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paced_messages_come_due_on_time() {
        let mut l = Load::new("iotitan/load", 3, Some(100.0), 2000);
        let mut out = Vec::new();
        assert_eq!(
            l.poll(Duration::ZERO, &mut out),
            Next::At(Duration::from_millis(10))
        );
        assert_eq!(out.len(), 1);
        l.poll(Duration::from_millis(255), &mut out);
        assert_eq!(out.len(), 26);
        assert_eq!(out[25].topic, "iotitan/load/1");
        assert_eq!(out[25].payload, b"25");
        // Far behind: the backlog comes in batches, then the count ends it.
        assert_eq!(
            l.poll(Duration::from_secs(60), &mut out),
            Next::At(Duration::from_millis(10_500))
        );
        assert_eq!(out.len(), 1050);
        assert_eq!(l.poll(Duration::from_secs(60), &mut out), Next::Done);
        assert_eq!(out.len(), 2000);
    }

    #[test]
    fn unthrottled_sends_batches_until_the_count() {
        let mut l = Load::new("p", 1, None, 2500);
        let mut out = Vec::new();
        assert_eq!(l.poll(Duration::ZERO, &mut out), Next::At(Duration::ZERO));
        assert_eq!(l.poll(Duration::ZERO, &mut out), Next::At(Duration::ZERO));
        assert_eq!(l.poll(Duration::ZERO, &mut out), Next::Done);
        let seq: Vec<u64> = out
            .iter()
            .map(|m| std::str::from_utf8(&m.payload).unwrap().parse().unwrap())
            .collect();
        assert_eq!(seq, (0..2500).collect::<Vec<_>>());
    }

    #[test]
    fn zero_or_bad_rate_means_unthrottled() {
        let mut l = Load::new("p", 0, Some(0.0), 3);
        let mut out = Vec::new();
        assert_eq!(l.poll(Duration::ZERO, &mut out), Next::Done);
        assert_eq!(out.len(), 3);
        assert_eq!(out[2].topic, "p/0");
    }

    #[test]
    fn a_tiny_rate_waits_instead_of_overflowing() {
        let mut l = Load::new("p", 1, Some(1e-300), 3);
        let mut out = Vec::new();
        assert_eq!(l.poll(Duration::ZERO, &mut out), Next::At(Duration::MAX));
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn achieved_rate() {
        let a = Achieved {
            messages: 5000,
            elapsed: Duration::from_millis(2500),
        };
        assert_eq!(a.rate(), 2000.0);
        assert_eq!(a.to_string(), "5000 messages in 2.500 s: 2000 msg/s");
    }
}
