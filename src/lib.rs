//! iotitan: a time-series pipeline for home and small-site IoT.
//!
//! Sensors publish to an MQTT broker; four programs turn that stream into history, numbers
//! and alarms. Each binary in `src/bin/` only parses arguments, loads the config and wires
//! together the parts below (sources → transforms → sinks).
//!
//! Shared foundation:
//! - [`config`] — the one TOML file, validated with `file:line:col` errors;
//! - [`topic`] — MQTT topic filters; [`payload`] — payloads to numbers;
//! - [`record`] — the one-line `topic payload` syslog record format;
//! - [`mqtt`] — broker options and a reconnecting event loop driver;
//! - [`secret`] — write keys and access tokens from files, the environment or credentials;
//! - [`syslog`] — writing records to syslog ([`syslog::sink`]) and reading them back;
//! - [`shutdown`], [`notify`], [`logging`], [`cli`], [`exit`], [`linger`] — daemon plumbing.
//!
//! Programs: [`logger`] (MQTT → syslog), [`stats`] (syslog windows → statistics → MQTT),
//! [`alerts`] (ranges and staleness → alert topics), [`bridge`] (MQTT → ThingSpeak),
//! [`http`] (readings in and commands out over HTTP, with tokens), [`history`] (history,
//! aggregates, top-N and histograms for the HTTP read API), [`sim`] (a sensor fleet for demos
//! and load), [`demo`] (all of it on one machine).

pub mod alerts;
pub mod bridge;
pub mod cli;
pub mod config;
pub mod demo;
pub mod exit;
#[doc(hidden)]
pub mod fuzz;
pub mod history;
pub mod http;
pub mod linger;
pub mod logger;
pub mod logging;
pub mod mqtt;
pub mod notify;
pub mod payload;
pub mod record;
pub mod secret;
pub mod shutdown;
pub mod sim;
pub mod stats;
pub mod syslog;
pub mod topic;
