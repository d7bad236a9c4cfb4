//! `iotitan-logger`: subscribes to the broker and writes every message to syslog as one
//! `topic payload` record. See `iotitan::logger`.

use clap::{Parser, Subcommand};
use iotitan::linger::Linger;
use iotitan::{cli, exit, logger, logging};

/// Write every MQTT message to syslog as one `topic payload` record.
#[derive(Parser)]
#[command(version, about)]
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
}

fn main() -> std::process::ExitCode {
    exit::main_with(|| {
        let cli: Cli = cli::parse();
        logging::init("iotitan-logger");
        if let Some(Command::CheckConfig) = cli.command {
            return cli::check_config(&cli.config);
        }
        let cfg = cli.config.load()?;
        let linger = Linger::new(logger::LINGER);
        cli::run_daemon(cfg, Some(linger.clone()), |cfg, shutdown| async move {
            logger::run(&cfg, shutdown, Some(linger)).await.map(drop)
        })
    })
}
