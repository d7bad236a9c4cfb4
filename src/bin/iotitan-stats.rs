//! `iotitan-stats`: statistics of the latest cron window (or `--since/--until`), read back
//! from syslog and published to MQTT; `query` exports the raw history.

use clap::{Parser, Subcommand};
use iotitan::{cli, exit, history, logging, stats};

/// Statistics of syslog windows, published to MQTT (run by cron at each `stats.schedule` fire).
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    config: cli::ConfigArg,
    #[command(flatten)]
    run: stats::Options,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate the config and print the effective values.
    CheckConfig,
    /// Export the history of topics as CSV or JSON.
    Query(history::query::QueryOptions),
}

fn main() -> std::process::ExitCode {
    exit::main_with(|| {
        let args: Cli = cli::parse();
        logging::init("iotitan-stats");
        match args.command {
            Some(Command::CheckConfig) => cli::check_config(&args.config),
            Some(Command::Query(q)) => history::query::run(&args.config.load()?, &q),
            None => {
                let cfg = args.config.load()?;
                cli::run_job(|shutdown| async move { stats::run(&cfg, shutdown, &args.run).await })
            }
        }
    })
}
