//! `iotitan-http`: readings in over HTTP, commands out, with access tokens (see
//! `iotitan::http`).

use clap::{Parser, Subcommand};
use iotitan::{cli, exit, history, http, logging};

/// Take readings over HTTP and publish them to MQTT; publish commands and wait for devices to
/// acknowledge them. Every request needs an access token.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    config: cli::ConfigArg,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate the config, say where each token comes from, print the effective config.
    CheckConfig,
}

fn main() -> std::process::ExitCode {
    exit::main_with(|| {
        let args: Cli = cli::parse();
        logging::init("iotitan-http");
        if let Some(Command::CheckConfig) = args.command {
            return cli::check_config_with(&args.config, http::describe_tokens);
        }
        let cfg = args.config.load()?;
        // The read endpoints (topics, history, aggregate, top, histogram) read syslog with the
        // stats engine; `http::run` nests them under /api/v1 behind the `read` scope.
        let read = history::read::Context::from_config(&cfg)
            .map_err(|e| exit::ExitError::new(exit::CONFIG, e))?;
        cli::run_daemon(cfg, None, |cfg, shutdown| async move {
            http::run(&cfg, shutdown, Some(history::api::routes(read))).await
        })
    })
}
