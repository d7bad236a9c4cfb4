//! `iotitan-alerts`: range, hysteresis, hold and stale-sensor alerts, with commands to devices.
//!
//! Everything lives in [`iotitan::alerts`]; this only parses arguments, loads the config and
//! runs the daemon until SIGTERM or SIGINT.

use clap::{Parser, Subcommand};
use iotitan::{cli, exit, logging};

/// Watch MQTT series and publish <series>_alert_hi|_alert_lo|_alert_stale on transitions.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    config: cli::ConfigArg,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate the config and print the effective values.
    CheckConfig,
}

fn main() -> std::process::ExitCode {
    let args: Cli = cli::parse();
    exit::main_with(|| match args.command {
        Some(Command::CheckConfig) => cli::check_config(&args.config),
        None => run(&args.config),
    })
}

fn run(config: &cli::ConfigArg) -> anyhow::Result<()> {
    logging::init("iotitan-alerts");
    let cfg = config.load()?;
    cli::run_daemon(cfg, None, |cfg, shutdown| async move {
        iotitan::alerts::run(&cfg, shutdown).await
    })
}
