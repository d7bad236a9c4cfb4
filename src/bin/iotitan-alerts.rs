//! `iotitan-alerts`: range, hysteresis, hold and stale-sensor alerts, with commands to devices.
//!
//! Everything lives in [`iotitan::alerts`]; this only parses arguments, loads the config and
//! runs the daemon until SIGTERM or SIGINT.

use clap::Parser;
use iotitan::{alerts, cli, exit};

/// Watch MQTT series and publish <series>_alert_hi|_alert_lo|_alert_stale on transitions.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    daemon: cli::DaemonArgs,
}

fn main() -> std::process::ExitCode {
    let args: Cli = cli::parse();
    exit::main_with(|| {
        cli::daemon(
            &args.daemon,
            "iotitan-alerts",
            None,
            |cfg, shutdown| async move { alerts::run(&cfg, shutdown).await },
        )
    })
}
