//! `iotitan-logger`: subscribes to the broker and writes every message to syslog as one
//! `topic payload` record. See `iotitan::logger`.

use clap::{Parser, Subcommand};
use iotitan::linger::Linger;
use iotitan::mqtt::mosquitto;
use iotitan::{cli, exit, logger, logging};

/// Write every MQTT message to syslog as one `topic payload` record.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    config: cli::ConfigArg,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate the config and print the effective values
    CheckConfig,
    /// Write what the broker queued for this logger, then end its session (leave the group)
    ///
    /// Writes what the broker queued for this logger's session to syslog, unsubscribes, proves
    /// the queue drained (a marker on `$iotitan/leave/<client id>` comes back), then ends the
    /// session. Run it with the daemon stopped: `systemctl stop iotitan-logger &&
    /// iotitan-logger leave && systemctl disable iotitan-logger`. On failure (exit 69 or 75)
    /// the session is kept: run it again.
    Leave {
        /// Give up (keeping the session) if the queue is not drained by then
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
    },
}

fn main() -> std::process::ExitCode {
    exit::main_with(|| {
        let cli: Cli = cli::parse();
        logging::init("iotitan-logger");
        let timeout = match cli.command {
            Some(Command::CheckConfig) => {
                // The broker's side of "nothing lost": would it keep a stopped logger's backlog?
                return cli::check_config_with(&cli.config, |cfg| {
                    Ok(mosquitto::check_local(&cfg.mqtt.host)
                        .into_iter()
                        .map(|w| format!("warning: {w}"))
                        .collect())
                });
            }
            Some(Command::Leave { timeout }) => Some(timeout),
            None => None,
        };
        let cfg = cli.config.load()?;
        for w in mosquitto::check_local(&cfg.mqtt.host) {
            tracing::warn!("{w}");
        }
        if let Some(timeout) = timeout {
            return cli::run_job(|shutdown| async move {
                logger::leave::run(&cfg, shutdown, timeout).await.map(drop)
            });
        }
        let linger = Linger::new(logger::LINGER);
        cli::run_daemon(cfg, Some(linger.clone()), |cfg, shutdown| async move {
            logger::run(&cfg, shutdown, Some(linger)).await.map(drop)
        })
    })
}
