//! `iotitan-bridge`: forward MQTT readings to ThingSpeak channels (see `iotitan::bridge`).

use clap::Parser;
use iotitan::{bridge, cli, exit};

/// Forward MQTT readings to ThingSpeak channels, within the rate limits and without losing
/// anything to outages or restarts.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    daemon: cli::DaemonArgs,
    /// Print each request that would be sent (write key masked) instead of sending it.
    #[arg(long)]
    dry_run: bool,
}

fn main() -> std::process::ExitCode {
    let args: Cli = cli::parse();
    exit::main_with(|| {
        let opts = bridge::Options {
            dry_run: args.dry_run,
            ..Default::default()
        };
        let describe = Some(bridge::describe_keys as cli::Describe);
        cli::daemon(
            &args.daemon,
            "iotitan-bridge",
            describe,
            |cfg, shutdown| async move { bridge::run_with(&cfg, shutdown, opts).await },
        )
    })
}
