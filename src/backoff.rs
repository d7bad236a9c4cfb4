//! Exponential backoff between reconnection attempts, for every connection that retries: the
//! MQTT driver and the syslog sink alike.

use std::time::Duration;

/// Exponential backoff: 100 ms doubling up to a cap, reset on success.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    const START: Duration = Duration::from_millis(100);

    /// A backoff capped at `max`.
    pub fn new(max: Duration) -> Self {
        Backoff {
            next: Self::START,
            max: max.max(Self::START),
        }
    }

    /// The delay to wait now; the next one will be twice as long, up to the cap.
    pub fn delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }

    /// Start over after a success.
    pub fn reset(&mut self) {
        self.next = Self::START;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(500));
        let got: Vec<_> = (0..5).map(|_| b.delay().as_millis()).collect();
        assert_eq!(got, vec![100, 200, 400, 500, 500]);
        b.reset();
        assert_eq!(b.delay().as_millis(), 100);
    }
}
