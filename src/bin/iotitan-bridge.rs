//! `iotitan-bridge`: forward MQTT readings to ThingSpeak channels (see `iotitan::bridge`).

use clap::{Parser, Subcommand};
use iotitan::{bridge, cli, exit, logging, shutdown};

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
            let cfg = args.config.load()?;
            for line in bridge::describe_keys(&cfg)? {
                println!("# {line}");
            }
            return cli::check_config(&args.config);
        }
        let cfg = args.config.load()?;
        let opts = bridge::Options {
            dry_run: args.dry_run,
            ..Default::default()
        };
        tokio::runtime::Runtime::new()?.block_on(async {
            let (trigger, shutdown) = shutdown::channel();
            shutdown::on_signals(trigger)?;
            bridge::run_with(&cfg, shutdown, opts).await
        })
    })
}
