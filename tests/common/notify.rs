//! systemd's side of `Type=notify`: a notification socket read like systemd reads it, and
//! a command started the way systemd starts a unit with a watchdog.

use super::TIMEOUT;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// A systemd notification socket (`NOTIFY_SOCKET`): a unix datagram socket in a temp dir,
/// read by the test like systemd reads it.
pub struct NotifySocket {
    pub path: PathBuf,
    socket: std::os::unix::net::UnixDatagram,
    _dir: tempfile::TempDir,
    /// Every datagram received so far, in order.
    pub seen: std::cell::RefCell<Vec<String>>,
    /// The last error a receive ended in before its time was up, for the failure message.
    interrupted: std::cell::RefCell<Option<String>>,
}

impl NotifySocket {
    /// Bind a fresh socket.
    pub fn new() -> NotifySocket {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify.sock");
        let socket = std::os::unix::net::UnixDatagram::bind(&path).expect("bind notify socket");
        NotifySocket {
            path,
            socket,
            _dir: dir,
            seen: Default::default(),
            interrupted: Default::default(),
        }
    }

    /// The next datagram, or `None` after `timeout`.
    ///
    /// Only the time ends the wait, not an error: with a receive timeout set, a signal
    /// handled anywhere in the test process makes `recv` fail with EINTR even with
    /// SA_RESTART (signal(7)). Taken as the end of the wait, one once read as "no watchdog
    /// ping within 30 s" from a test binary that had run for 4 s.
    pub fn recv(&self, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 4096];
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            self.socket
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .expect("set timeout");
            match self.socket.recv(&mut buf) {
                Ok(n) => {
                    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                    self.seen.borrow_mut().push(msg.clone());
                    return Some(msg);
                }
                Err(e) if Instant::now() < deadline => {
                    *self.interrupted.borrow_mut() = Some(e.to_string());
                }
                Err(_) => return None,
            }
        }
    }

    /// Datagrams until one has a line equal to `line` (returned with when it arrived);
    /// panics with everything seen after `timeout`.
    pub fn wait_for(&self, line: &str, timeout: Duration) -> (String, Instant) {
        let deadline = Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.recv(left) {
                Some(m) if m.lines().any(|l| l == line) => return (m, Instant::now()),
                Some(_) => {}
                None => break,
            }
        }
        panic!(
            "no {line:?} from the notify socket within {timeout:?} (a receive ended early \
             with: {:?}); got {:#?}",
            self.interrupted.borrow(),
            self.seen.borrow()
        );
    }

    /// `READY=1`, then `WATCHDOG=1` pings at half of a 200 ms `WATCHDOG_USEC` (the one
    /// [`systemd_command`] was given): systemd arms the watchdog once start-up is complete.
    ///
    /// The pings' pace is judged by the median of ten intervals, not by their sum: a loaded
    /// machine can stall the daemon for a second once (seen in CI), which says nothing about
    /// its timer, while pinging at the whole `WATCHDOG_USEC` (200 ms) moves the median.
    pub fn expect_ready_then_pings(&self) {
        self.wait_for("READY=1", TIMEOUT);
        let (_, mut at) = self.wait_for("WATCHDOG=1", TIMEOUT);
        let mut gaps: Vec<Duration> = (0..10)
            .map(|_| {
                let (_, next) = self.wait_for("WATCHDOG=1", TIMEOUT);
                let gap = next - at;
                at = next;
                gap
            })
            .collect();
        gaps.sort();
        let median = gaps[gaps.len() / 2];
        assert!(
            median < Duration::from_millis(150),
            "pings {median:?} apart (median of {gaps:?}); half of WATCHDOG_USEC is 100 ms"
        );
    }

    /// How many datagrams seen so far have a line equal to `line`.
    pub fn count(&self, line: &str) -> usize {
        self.seen
            .borrow()
            .iter()
            .filter(|m| m.lines().any(|l| l == line))
            .count()
    }
}

/// A command that runs `program` as systemd runs a `Type=notify` unit with `WatchdogSec=`:
/// `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` set to the program's own pid (hence
/// the `exec` through `sh`, whose pid the program keeps). Add the program's arguments.
pub fn systemd_command(program: &str, notify: &NotifySocket, watchdog_usec: u64) -> Command {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "WATCHDOG_PID=$$ exec \"$0\" \"$@\"", program])
        .env("NOTIFY_SOCKET", &notify.path)
        .env("WATCHDOG_USEC", watchdog_usec.to_string())
        .env_remove("WATCHDOG_PID")
        .env_remove("JOURNAL_STREAM");
    cmd
}
