//! Our daemons as the tests drive them, each a thin layer over [`Running`]: the logger, the
//! alerts daemon and the HTTP daemon, with what each test of them needs beyond a process
//! (the logger's records in rsyslog's file, the alerts' log read line after line, the HTTP
//! daemon's address).

use super::{Mosquitto, Program, Rsyslogd, Running, TIMEOUT, wait_exit, wait_until};
use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

/// The logger binary built for these tests.
pub const LOGGER: &str = env!("CARGO_BIN_EXE_iotitan-logger");

/// A running iotitan-logger with its stderr captured in a file.
pub struct Logger(pub Running);

impl Deref for Logger {
    type Target = Running;
    fn deref(&self) -> &Running {
        &self.0
    }
}

impl DerefMut for Logger {
    fn deref_mut(&mut self) -> &mut Running {
        &mut self.0
    }
}

impl Logger {
    /// Start the logger with `--config config`.
    pub fn start(config: &Path) -> Logger {
        Logger(Program::new("iotitan-logger").config_file(config).start())
    }

    /// Start `cmd` (the logger, or a wrapper that execs it) with `--config config`.
    pub fn start_with(cmd: Command, config: &Path) -> Logger {
        Logger(
            Program::with_command("iotitan-logger", cmd)
                .config_file(config)
                .start(),
        )
    }

    /// Start the logger with `config`, recording the broker `m` into `r`, and wait until its
    /// subscription is active: a probe published on `m` shows up in `r`'s output.
    pub fn start_recording(config: &Path, m: &Mosquitto, r: &Rsyslogd) -> Logger {
        let logger = Logger::start(config);
        let ok = wait_until(TIMEOUT, || {
            m.publish(&["-t", "probe/up", "-m", "1", "-q", "1"]);
            r.lines().iter().any(|l| l.contains("probe/up 1"))
        });
        assert!(ok, "the logger never wrote a probe record");
        logger
    }

    /// Records this process wrote, as rsyslog's file shows them (its pid is in the tag).
    pub fn lines_in(&self, r: &Rsyslogd) -> Vec<String> {
        let tag = format!(" iotitan-logger[{}]: ", self.child.id());
        r.lines().into_iter().filter(|l| l.contains(&tag)).collect()
    }

    /// SIGTERM; waits for the exit and returns the status and how long it took.
    pub fn terminate(&mut self) -> (ExitStatus, Duration) {
        let t0 = Instant::now();
        self.signal("-TERM");
        let status = wait_exit(&mut self.child, Duration::from_secs(5)).expect("logger exits");
        (status, t0.elapsed())
    }
}

/// A running `iotitan-alerts` with its log lines (stderr) read one after the other.
pub struct Alerts {
    pub run: Running,
    /// The log lines waited through so far.
    pub seen: Vec<String>,
}

impl Alerts {
    /// Start with `config` and wait until it has subscribed and read back its alert states.
    pub fn start(config: &Path) -> Alerts {
        let mut a = Alerts::spawn(config);
        a.wait_log("subscribed;");
        a
    }

    /// Start with `config` without waiting for anything.
    pub fn spawn(config: &Path) -> Alerts {
        Alerts {
            run: Program::new("iotitan-alerts")
                .config_file(config)
                .env("NO_COLOR", "1")
                .start(),
            seen: Vec::new(),
        }
    }

    /// Wait for a log line containing `needle` (after the ones already waited for).
    pub fn wait_log(&mut self, needle: &str) -> String {
        let through = self.run.wait_next_log(needle);
        self.seen.extend(through);
        self.seen.last().cloned().expect("the line found")
    }

    /// SIGTERM, wait for a clean exit; returns the log lines not yet waited for.
    pub fn stop(self) -> Vec<String> {
        let waited = self.run.lines_waited();
        let stopped = self.run.stop();
        assert!(stopped.status.success(), "exit status {:?}", stopped.status);
        stopped
            .log
            .lines()
            .skip(waited)
            .map(str::to_owned)
            .collect()
    }
}

/// A running `iotitan-http`, ready (listening and connected to its broker).
pub struct Http {
    pub run: Running,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

impl Deref for Http {
    type Target = Running;
    fn deref(&self) -> &Running {
        &self.run
    }
}

impl DerefMut for Http {
    fn deref_mut(&mut self) -> &mut Running {
        &mut self.run
    }
}

impl Http {
    /// Start `program` (an `iotitan-http` listening on `port`) and wait until it said it is
    /// ready.
    pub fn start(program: Program, port: u16) -> Http {
        let run = program.start();
        run.wait_log("ready:");
        Http {
            run,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    /// The URL of `path` (`/api/v1/readings`) on this daemon.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}
