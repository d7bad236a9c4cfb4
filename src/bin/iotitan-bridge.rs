//! `iotitan-bridge`: forward MQTT readings to ThingSpeak channels (see `iotitan::bridge`).

use clap::{Parser, Subcommand};
use iotitan::{bridge, cli, exit, logging};

/// Forward MQTT readings to ThingSpeak channels, within the rate limits and without losing
/// anything to outages or restarts.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    config: cli::ConfigArg,
    /// Print each request that would be sent (write key masked) instead of sending it.
    #[arg(long)]
    dry_run: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate the config, say where each write key comes from, print the effective config.
    CheckConfig,
}

fn main() -> std::process::ExitCode {
    exit::main_with(|| {
        let args: Cli = cli::parse();
        logging::init("iotitan-bridge");
        if let Some(Command::CheckConfig) = args.command {
            return cli::check_config_with(&args.config, bridge::describe_keys);
        }
        let cfg = args.config.load()?;
        let opts = bridge::Options {
            dry_run: args.dry_run,
            ..Default::default()
        };
        cli::run_daemon(cfg, None, |cfg, shutdown| async move {
            bridge::run_with(&cfg, shutdown, opts).await
        })
    })
}
