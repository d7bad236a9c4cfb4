//! Waiting with a bound: the one timeout of the tests, polling a condition, and a child's exit.

use std::process::Child;
use std::time::{Duration, Instant};

/// How long any wait in a test may take before it fails.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// Poll `cond` until it holds or `timeout` passes; returns whether it held. For conditions
/// that have no event to await (a file growing, a port opening).
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Wait for a child to exit, at most `timeout`; returns its status.
pub fn wait_exit(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
