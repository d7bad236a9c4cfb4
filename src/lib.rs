//! iotitan: a time-series pipeline for home and small-site IoT.
//!
//! Sensors publish to an MQTT broker; five programs turn that stream into history, numbers
//! and alarms, and serve them over HTTP. Each binary in `src/bin/` only parses arguments,
//! loads the config and wires together the parts below (sources → transforms → sinks).
//!
//! The modules stand in three layers; a module imports only from its own layer or the ones
//! below, and no two top-level modules import each other in a cycle (`.ci/layers` checks both).
//!
//! **Foundation** — pure types and rules, no I/O of their own:
//! [`config`] (the one TOML file, validated with `file:line:col` errors), [`topic`] (MQTT
//! topic filters), [`payload`] (payloads to numbers), [`record`] (the one-line `topic payload`
//! syslog record format), [`statistic`] (the statistics and the derived-topic rule),
//! [`energy`] (increase of meters, integrals of power), [`calendar`] (hours of the week),
//! [`schedule`] (crontab schedules), [`unit`] (what a series measures: its unit and Home
//! Assistant's classes), [`time`] (windows, command-line times, timers),
//! [`secret`] (keys and tokens from files, the environment or credentials), [`privacy`]
//! (private areas, and locations withheld from payloads), [`backoff`],
//! [`exit`] (sysexits codes).
//!
//! **Infrastructure** — the edges every program shares: [`mqtt`] (the one MQTT pump),
//! [`syslog`] (writing records, and reading lines back from files and the journal),
//! [`records`] (the read engine: a window's records from those lines, on every core),
//! [`status`] (each program's health, reported over MQTT),
//! [`cli`], [`shutdown`], [`notify`], [`logging`], [`linger`] (daemon plumbing).
//!
//! **Programs**: [`logger`] (MQTT → syslog), [`stats`] (syslog windows → statistics → MQTT),
//! [`alerts`] (ranges and staleness → alert topics), [`bridge`] (MQTT → ThingSpeak),
//! [`http`] (readings in and commands out over HTTP, with tokens, and the dashboard),
//! [`homeassistant`] (every series, alert and device announced to Home Assistant),
//! [`history`] (history, aggregates, top-N and histograms for the read API, and `query`'s
//! export), [`sim`] (a sensor fleet for demos and load), [`demo`] (all of it on one machine).

// Foundation.
pub mod backoff;
pub mod calendar;
pub mod config;
pub mod energy;
pub mod exit;
pub mod payload;
pub mod privacy;
pub mod record;
pub mod schedule;
pub mod secret;
pub mod statistic;
pub mod time;
pub mod topic;
pub mod unit;

// Infrastructure.
pub mod cli;
pub mod linger;
pub mod logging;
pub mod mqtt;
pub mod notify;
pub mod records;
pub mod shutdown;
pub mod status;
pub mod syslog;

// Programs.
pub mod alerts;
pub mod bridge;
pub mod demo;
#[doc(hidden)]
pub mod fuzz;
pub mod history;
pub mod homeassistant;
pub mod http;
pub mod logger;
pub mod sim;
pub mod stats;
