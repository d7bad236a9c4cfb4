//! Fewer, bigger rounds of work for a busy event loop: interrupt coalescing in user space.
//!
//! Why: under a high message rate the logger spends more CPU waking up than working. The
//! broker writes each message to our socket separately, and each write wakes the runtime out
//! of `epoll_wait` to read a few messages, write them, and sleep again: a context switch, an
//! `epoll_wait` and a `recv` for every three or four messages, each costing more than
//! writing the record (BENCHMARKS.md, "Logger").
//!
//! [`Linger`] is a hook run before the runtime parks ([`tokio::runtime::Builder::on_thread_park`]).
//! After a busy round (it handled more than one message, or came soon after the previous
//! one: messages arrive about as fast as we wake up), the thread sleeps briefly *without*
//! listening for events, so the next round finds everything that arrived meanwhile in the
//! socket buffer and handles it with one wake-up, one `recv` and one `sendmmsg`. The sleep
//! lasts at most [`Linger::new`]'s wait and adds at most that to a record's way into
//! syslog, only while the stream is busy; a lone message (the normal, idle case) never
//! lingers and is written at once.
//!
//! The caller says whether its output can take a pause: while records wait for a full
//! syslog socket, lingering would leave the daemon idle unless the socket holds enough to
//! keep it busy meanwhile.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A before-park hook that lingers after busy rounds; clones share the state.
#[derive(Clone, Debug)]
pub struct Linger {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    armed: AtomicBool,
    wait: Duration,
    /// When the last round that handled messages ended, in nanoseconds since `epoch`
    /// (`u64::MAX`: none yet).
    last_round: AtomicU64,
    epoch: Instant,
}

impl Linger {
    /// Rounds closer together than this many waits count as busy.
    const BUSY_GAP: u32 = 4;

    /// A hook that lingers for `wait` when armed.
    pub fn new(wait: Duration) -> Self {
        Linger {
            inner: Arc::new(Inner {
                armed: AtomicBool::new(false),
                wait,
                last_round: AtomicU64::new(u64::MAX),
                epoch: Instant::now(),
            }),
        }
    }

    /// After a round of work that handled `handled` messages: linger before the next park
    /// if the round was busy and the output can take a pause (`output_can_wait`).
    pub fn after_round(&self, handled: usize, output_can_wait: bool) {
        let now = self.now();
        self.after_round_at(now, handled, output_can_wait);
    }

    fn after_round_at(&self, now: u64, handled: usize, output_can_wait: bool) {
        let busy = handled > 0 && {
            let last = self.inner.last_round.swap(now, Ordering::Relaxed);
            let gap = (self.inner.wait * Self::BUSY_GAP).as_nanos();
            handled > 1 || (last != u64::MAX && u128::from(now.saturating_sub(last)) < gap)
        };
        self.inner
            .armed
            .store(busy && output_can_wait, Ordering::Relaxed);
    }

    fn now(&self) -> u64 {
        u64::try_from(self.inner.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Whether the next park lingers.
    pub fn is_armed(&self) -> bool {
        self.inner.armed.load(Ordering::Relaxed)
    }

    /// The hook: sleep if armed, once (the next round arms it again if still busy).
    pub fn before_park(&self) {
        if self.inner.armed.swap(false, Ordering::Relaxed) {
            std::thread::sleep(self.inner.wait);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn lingers_once_after_a_busy_round_with_idle_output() {
        let l = Linger::new(Duration::from_millis(20));
        l.after_round(5, true);
        assert!(l.is_armed());
        let t = Instant::now();
        l.before_park();
        assert!(t.elapsed() >= Duration::from_millis(20));
        // Disarmed by the sleep: the next park, without a new busy round, does not wait.
        assert!(!l.is_armed());
        let t = Instant::now();
        l.before_park();
        assert!(t.elapsed() < Duration::from_millis(20));
    }

    #[test]
    fn a_lone_message_never_lingers() {
        let l = Linger::new(Duration::from_millis(1));
        l.after_round_at(1_000 * MS, 1, true);
        assert!(!l.is_armed());
        // Rounds of one message each, far apart (a quiet sensor network).
        l.after_round_at(2_000 * MS, 1, true);
        assert!(!l.is_armed());
        l.after_round_at(2_005 * MS, 1, true);
        assert!(!l.is_armed(), "5 ms apart is more than 4 waits");
        // A round without messages (a timer) neither arms nor counts as a round.
        l.after_round_at(2_006 * MS, 0, true);
        assert!(!l.is_armed());
        l.after_round_at(2_008 * MS, 1, true);
        assert!(l.is_armed(), "3 ms after the last round with messages");
    }

    #[test]
    fn one_message_rounds_in_quick_succession_are_busy() {
        // Waking once per message is the costly case this is for.
        let l = Linger::new(Duration::from_millis(1));
        l.after_round_at(10 * MS, 1, true);
        l.after_round_at(10 * MS + 50_000, 1, true);
        assert!(l.is_armed());
    }

    #[test]
    fn never_lingers_when_the_output_cannot_wait() {
        let l = Linger::new(Duration::from_secs(60));
        l.after_round(200, false);
        assert!(!l.is_armed());
        // An earlier arming is cancelled by a round that must not linger.
        l.after_round(5, true);
        assert!(l.is_armed());
        l.after_round(5, false);
        assert!(!l.is_armed());
        l.before_park();
    }
}
