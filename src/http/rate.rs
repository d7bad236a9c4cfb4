//! A token's request rate (`rate = "10/s"`): a token bucket with time passed in.
//!
//! The bucket holds up to `count` requests (the burst) and refills at `count` per `per`. A
//! request takes one; an empty bucket says how long until the next one is available, which
//! becomes the 429's `Retry-After`. Pure, so it is tested with made-up clocks; a crate
//! (`governor`) would do the same with more machinery than one counter per token needs.

use crate::config::Rate;
use std::time::{Duration, Instant};

/// One token's bucket.
#[derive(Debug, Clone)]
pub struct Bucket {
    capacity: f64,
    /// Seconds for one request to come back.
    refill: f64,
    available: f64,
    last: Option<Instant>,
}

impl Bucket {
    /// A full bucket for `rate`.
    pub fn new(rate: Rate) -> Self {
        let capacity = f64::from(rate.count);
        Bucket {
            capacity,
            refill: rate.per.as_secs_f64() / capacity,
            available: capacity,
            last: None,
        }
    }

    /// Take one request at `now`; `Err(wait)` when the bucket is empty, `wait` being the time
    /// until one is available again. A `now` earlier than the last call counts as no time.
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        if let Some(last) = self.last {
            let passed = now.saturating_duration_since(last).as_secs_f64();
            self.available = (self.available + passed / self.refill).min(self.capacity);
        }
        self.last = Some(self.last.map_or(now, |l| l.max(now)));
        if self.available >= 1.0 {
            self.available -= 1.0;
            Ok(())
        } else {
            // At least a nanosecond: "wait 0" would be a busy loop for a client that obeys.
            Err(
                Duration::from_secs_f64((1.0 - self.available) * self.refill)
                    .max(Duration::from_nanos(1)),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rate(count: u32, per_ms: u64) -> Rate {
        Rate {
            count,
            per: Duration::from_millis(per_ms),
        }
    }

    #[test]
    fn burst_then_refill() {
        let t0 = Instant::now();
        let mut b = Bucket::new(rate(3, 1000));
        for _ in 0..3 {
            assert!(b.take(t0).is_ok());
        }
        let wait = b.take(t0).unwrap_err();
        assert!((wait.as_secs_f64() - 1.0 / 3.0).abs() < 1e-6, "{wait:?}");
        // A third of a second later one more is there, and only one.
        let t1 = t0 + Duration::from_millis(334);
        assert!(b.take(t1).is_ok());
        assert!(b.take(t1).is_err());
        // A long pause refills to the burst, not beyond.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..3 {
            assert!(b.take(t2).is_ok());
        }
        assert!(b.take(t2).is_err());
    }

    #[test]
    fn time_going_backwards_is_no_time() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let mut b = Bucket::new(rate(1, 1000));
        assert!(b.take(t0).is_ok());
        assert!(b.take(t0 - Duration::from_secs(5)).is_err());
        assert!(b.take(t0 + Duration::from_millis(1001)).is_ok());
    }

    proptest! {
        /// Over any run of requests, no more are let through than the burst plus what the
        /// rate refills in the time the run spans; and a request refused was told to wait.
        #[test]
        fn never_more_than_the_rate(
            count in 1u32..50,
            per_ms in 1u64..5000,
            gaps in prop::collection::vec(0u64..200, 1..400),
        ) {
            let r = rate(count, per_ms);
            let mut b = Bucket::new(r);
            let t0 = Instant::now();
            let mut t = t0;
            let mut ok = 0u64;
            for g in gaps {
                t += Duration::from_millis(g);
                match b.take(t) {
                    Ok(()) => ok += 1,
                    Err(wait) => prop_assert!(wait > Duration::ZERO),
                }
            }
            let span = (t - t0).as_secs_f64();
            let allowed = f64::from(count) + span * f64::from(count) / (per_ms as f64 / 1000.0);
            prop_assert!(ok as f64 <= allowed + 1e-6, "{ok} > {allowed}");
        }

        /// Requests spaced at the rate are never refused.
        #[test]
        fn spaced_requests_pass(count in 1u32..20, per_ms in 10u64..2000, n in 1usize..100) {
            let r = rate(count, per_ms);
            let mut b = Bucket::new(r);
            let step = Duration::from_nanos(per_ms * 1_000_000 / u64::from(count) + 1);
            let mut t = Instant::now();
            for _ in 0..n {
                prop_assert!(b.take(t).is_ok());
                t += step;
            }
        }
    }
}
