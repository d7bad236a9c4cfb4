//! One way to run any of our binaries in a test: [`Program`] builds the command (config,
//! environment, arguments), [`Running`] is the started process with its log captured in a
//! file, stopped cleanly by [`Running::stop`] or killed when dropped.
//!
//! ```ignore
//! let http = Program::new("iotitan-http")
//!     .config(&format!("{}{}", m.mqtt_toml("t"), http_toml(port, "", TOKENS)))
//!     .http_tokens(TOKENS)
//!     .start();
//! http.wait_log("ready:");
//! let stopped = http.stop(); // SIGTERM, at most TIMEOUT: (status, log)
//! ```

use super::{TIMEOUT, wait_exit, wait_until};
use std::cell::Cell;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};

/// The path of one of our binaries, as cargo built it for these tests.
pub fn binary(name: &str) -> &'static str {
    match name {
        "iotitan-alerts" => env!("CARGO_BIN_EXE_iotitan-alerts"),
        "iotitan-bridge" => env!("CARGO_BIN_EXE_iotitan-bridge"),
        "iotitan-demo" => env!("CARGO_BIN_EXE_iotitan-demo"),
        "iotitan-http" => env!("CARGO_BIN_EXE_iotitan-http"),
        "iotitan-logger" => env!("CARGO_BIN_EXE_iotitan-logger"),
        "iotitan-sim" => env!("CARGO_BIN_EXE_iotitan-sim"),
        "iotitan-stats" => env!("CARGO_BIN_EXE_iotitan-stats"),
        _ => panic!("{name} is not one of our binaries"),
    }
}

/// A command for one of our programs, not started yet. It runs with `RUST_LOG=info` (an
/// [`Program::env`] overrides it), without `JOURNAL_STREAM` (its log goes to stderr, where
/// the test reads it) and with stdin from /dev/null.
pub struct Program {
    name: String,
    cmd: Command,
    /// Where the config and the captured output go: a temp dir of its own unless
    /// [`Program::dir`] names one.
    dir: Option<PathBuf>,
    /// Config text for [`Program::config`], written at start.
    config: Option<String>,
}

impl Program {
    /// `name` is a binary of this package (`"iotitan-http"`, …).
    pub fn new(name: &str) -> Program {
        Program::with_command(name, Command::new(binary(name)))
    }

    /// `cmd` runs the program `name` (a name or a path; through a wrapper that execs it, say
    /// [`super::systemd_command`]); the builder adds to it.
    pub fn with_command(name: &str, mut cmd: Command) -> Program {
        cmd.env("RUST_LOG", "info")
            .env_remove("JOURNAL_STREAM")
            .stdin(Stdio::null());
        // A name for its files: the program's, also when given as a path.
        let name = Path::new(name)
            .file_name()
            .map_or(name.into(), |n| n.to_string_lossy());
        Program {
            name: name.into_owned(),
            cmd,
            dir: None,
            config: None,
        }
    }

    /// Run with a config file holding `text` (`--config DIR/iotitan.toml`).
    pub fn config(mut self, text: &str) -> Program {
        self.config = Some(text.to_owned());
        self
    }

    /// Run with the config file `path` (`--config path`), shared with other programs.
    pub fn config_file(mut self, path: &Path) -> Program {
        self.cmd.arg("--config").arg(path);
        self
    }

    /// Keep the config and the captured output in `dir` (the test's) rather than in a temp
    /// dir of the process's own.
    pub fn dir(mut self, dir: &Path) -> Program {
        self.dir = Some(dir.to_owned());
        self
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Program {
        self.cmd.arg(arg);
        self
    }

    pub fn args<S: AsRef<OsStr>>(mut self, args: impl IntoIterator<Item = S>) -> Program {
        self.cmd.args(args);
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Program {
        self.cmd.env(key, value);
        self
    }

    pub fn envs<'a>(mut self, vars: impl IntoIterator<Item = &'a (&'a str, &'a str)>) -> Program {
        self.cmd.envs(vars.into_iter().map(|(k, v)| (*k, *v)));
        self
    }

    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Program {
        self.cmd.env_remove(key);
        self
    }

    /// Write the config (if given as text) into `dir`, and add `--config`.
    fn prepare(&mut self, dir: &Path) {
        if let Some(text) = self.config.take() {
            let path = super::write_config(dir, text.as_str());
            self.cmd.arg("--config").arg(path);
        }
    }

    /// Start it: stdout and stderr each go to a file, read by [`Running::log`] and
    /// [`Running::stdout`].
    pub fn start(mut self) -> Running {
        let own = match &self.dir {
            Some(_) => None,
            None => Some(tempfile::tempdir().expect("tempdir")),
        };
        let dir = match (&self.dir, &own) {
            (Some(d), _) => d.clone(),
            (None, Some(t)) => t.path().to_owned(),
            (None, None) => unreachable!(),
        };
        self.prepare(&dir);
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let log = dir.join(format!("{}-{n}.log", self.name));
        let out = dir.join(format!("{}-{n}.out", self.name));
        let child = self
            .cmd
            .stdout(std::fs::File::create(&out).expect("stdout file"))
            .stderr(std::fs::File::create(&log).expect("stderr file"))
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", self.name));
        Running {
            child,
            name: self.name,
            log,
            out,
            waited: Cell::new(0),
            _dir: own,
        }
    }

    /// Run it to the end and return what it printed (a one-shot command such as
    /// `check-config`).
    pub fn output(mut self) -> Output {
        let own = tempfile::tempdir().expect("tempdir");
        let dir = self.dir.clone().unwrap_or_else(|| own.path().to_owned());
        self.prepare(&dir);
        self.cmd
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", self.name))
    }
}

/// A running program, killed (and reaped) when dropped so that a failing test leaves no
/// daemon behind.
pub struct Running {
    pub child: Child,
    name: String,
    log: PathBuf,
    out: PathBuf,
    /// How many log lines [`Running::wait_next_log`] went through.
    waited: Cell<usize>,
    _dir: Option<tempfile::TempDir>,
}

/// How a program ended: [`Running::stop`].
#[derive(Debug)]
pub struct Stopped {
    pub status: ExitStatus,
    /// Its whole log (stderr).
    pub log: String,
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its log (stderr) so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its log (stderr) so far, as lines.
    pub fn log_lines(&self) -> Vec<String> {
        self.log().lines().map(str::to_owned).collect()
    }

    /// What it printed on stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// Wait (at most [`TIMEOUT`]) for a log line containing `needle`; returns the first.
    pub fn wait_log(&self, needle: &str) -> String {
        let mut found = None;
        let ok = wait_until(TIMEOUT, || {
            found = self
                .log()
                .lines()
                .find(|l| l.contains(needle))
                .map(str::to_owned);
            found.is_some()
        });
        assert!(
            ok,
            "no {needle:?} in the log of {}:\n{}",
            self.name,
            self.log()
        );
        found.unwrap()
    }

    /// Wait (at most [`TIMEOUT`]) for a log line containing `needle` after the lines this
    /// went through before; returns the lines gone through now, the one found last.
    pub fn wait_next_log(&self, needle: &str) -> Vec<String> {
        let mut through = Vec::new();
        let ok = wait_until(TIMEOUT, || {
            let log = self.log();
            // Complete lines only: the program may be halfway through writing the last one.
            let complete = &log[..log.rfind('\n').map_or(0, |i| i + 1)];
            let new: Vec<&str> = complete.lines().skip(self.waited.get()).collect();
            match new.iter().position(|l| l.contains(needle)) {
                Some(i) => {
                    through = new[..=i].iter().map(|l| (*l).to_owned()).collect();
                    self.waited.set(self.waited.get() + i + 1);
                    true
                }
                None => false,
            }
        });
        assert!(
            ok,
            "no {needle:?} in the log of {} after line {}:\n{}",
            self.name,
            self.waited.get(),
            self.log()
        );
        through
    }

    /// How many log lines [`Running::wait_next_log`] went through.
    pub fn lines_waited(&self) -> usize {
        self.waited.get()
    }

    /// Send `sig` (`-TERM`, `-KILL`, `-HUP`, …) with kill(1).
    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(
            st.success(),
            "kill {sig} {} ({})",
            self.child.id(),
            self.name
        );
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM and wait for the exit, at most [`TIMEOUT`] (a panic with its log after that;
    /// it is killed on drop). Whether the exit status is a success is for the test to say.
    pub fn stop(mut self) -> Stopped {
        self.signal("-TERM");
        let status = wait_exit(&mut self.child, TIMEOUT).unwrap_or_else(|| {
            panic!(
                "{} still running {TIMEOUT:?} after SIGTERM; log:\n{}",
                self.name,
                self.log()
            )
        });
        Stopped {
            status,
            log: self.log(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A child process killed (and reaped) on drop, so a failing test leaves no daemon behind.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The counters of a daemon's `stopped: 5 received, 5 written, …` log line, by label
/// (`"received"`, `"dropped (queue full)"`, …).
pub fn stopped_counters(log: &str) -> std::collections::HashMap<String, u64> {
    let line = log
        .lines()
        .rev()
        .find_map(|l| l.split_once("stopped: ").map(|(_, rest)| rest.to_owned()))
        .unwrap_or_else(|| panic!("no \"stopped:\" line in:\n{log}"));
    line.split(", ")
        .map(|part| {
            let (n, label) = part
                .trim()
                .split_once(' ')
                .unwrap_or_else(|| panic!("bad counter {part:?} in {line:?}"));
            let n = n
                .parse()
                .unwrap_or_else(|_| panic!("bad number {n:?} in {line:?}"));
            (label.to_owned(), n)
        })
        .collect()
}
