//! Test harness: real mosquitto, rsyslogd and systemd-journald, started in a temp dir on
//! loopback ports or private sockets, stopped and cleaned up on drop; and our own programs,
//! started with [`Program`].
//!
//! A daemon that is missing makes the test fail loudly (with the package to install); nothing
//! is skipped.
//!
//! One file per service: [`mosquitto`], [`rsyslogd`], [`journald`], [`rabbitmq`] (the
//! daemons a test starts), [`mqtt`] (clients of any broker), [`notify`] (systemd's notify
//! socket), [`program`] (running our binaries) and [`programs`] (the logger, alerts and HTTP
//! daemons as tests drive them), [`config`] (config files and shared snippets), [`ports`],
//! [`wait`] and [`system`]. Everything is re-exported here: `use common::*;`.
#![allow(dead_code, unused_imports)]

pub mod config;
pub mod journald;
pub mod mosquitto;
pub mod mqtt;
pub mod notify;
pub mod ports;
pub mod program;
pub mod programs;
pub mod rabbitmq;
pub mod rsyslogd;
pub mod system;
pub mod wait;

pub use config::*;
pub use journald::*;
pub use mosquitto::*;
pub use mqtt::*;
pub use notify::*;
pub use ports::*;
pub use program::*;
pub use programs::*;
pub use rabbitmq::*;
pub use rsyslogd::*;
pub use system::*;
pub use wait::*;
