//! Process exit codes, following sysexits(3).
//!
//! systemd units use `RestartPreventExitStatus=78` so that a broken config does not restart-loop;
//! scripts (cron, tests) tell "nothing to do" from "broker down" by these numbers.

/// Successful termination.
pub const OK: u8 = 0;
/// The command was used incorrectly (bad arguments).
pub const USAGE: u8 = 64;
/// The input data was incorrect in some way.
pub const DATAERR: u8 = 65;
/// A service (broker, syslog daemon, HTTP endpoint) is unavailable.
pub const UNAVAILABLE: u8 = 69;
/// An internal software error.
pub const SOFTWARE: u8 = 70;
/// A temporary failure: nothing was changed or lost, and trying again may succeed
/// (`iotitan-logger leave` after its timeout or a signal).
pub const TEMPFAIL: u8 = 75;
/// An I/O error on a file we had to read or write.
pub const IOERR: u8 = 74;
/// Something was found in an unconfigured or misconfigured state.
pub const CONFIG: u8 = 78;

/// An error that knows which exit code it deserves.
///
/// Binaries return `Result<(), anyhow::Error>` from their `run()`; `main` looks for an
/// `ExitError` in the chain to choose the code, so library code never calls `exit` itself.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ExitError {
    /// The sysexits code.
    pub code: u8,
    /// What went wrong, in a plain sentence.
    pub message: String,
}

impl ExitError {
    /// An error with `code` and `message`.
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        ExitError {
            code,
            message: message.into(),
        }
    }
}

/// A command-line error (exit 64): a bad `--since`, `--input` and the like.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    ExitError::new(USAGE, message).into()
}

/// The exit code for an error chain: the first [`ExitError`] or
/// [`crate::config::ConfigError`] found decides, anything else is [`SOFTWARE`].
pub fn code_for(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<ExitError>() {
            return e.code;
        }
        if cause.downcast_ref::<crate::config::ConfigError>().is_some() {
            return CONFIG;
        }
    }
    SOFTWARE
}

/// Runs `body`, prints its error chain once to stderr and turns the outcome into an exit code.
///
/// This is the whole of every binary's `main`, as in ripgrep: errors are reported in one place,
/// with their context, and never twice.
pub fn main_with(body: impl FnOnce() -> anyhow::Result<()>) -> std::process::ExitCode {
    match body() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            let code = code_for(&err);
            eprintln!("error: {err:#}");
            std::process::ExitCode::from(code)
        }
    }
}
