//! `iotitan-http`: readings in over HTTP, commands out, with access tokens (see
//! `iotitan::http`).

use clap::Parser;
use iotitan::{cli, exit, history, http};

/// Take readings over HTTP and publish them to MQTT; publish commands and wait for devices to
/// acknowledge them; serve the history and the dashboard. Every request needs an access token.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    daemon: cli::DaemonArgs,
}

fn main() -> std::process::ExitCode {
    let args: Cli = cli::parse();
    exit::main_with(|| {
        let describe = Some(http::describe_tokens as cli::Describe);
        cli::daemon(
            &args.daemon,
            "iotitan-http",
            describe,
            |cfg, shutdown| async move {
                // The read endpoints (topics, history, aggregate, top, histogram) read syslog
                // with the read engine; `http::run` nests them under /api/v1 behind `read`.
                let read = history::read::Context::from_config(&cfg)
                    .map_err(|e| exit::ExitError::new(exit::CONFIG, e))?;
                http::run(&cfg, shutdown, Some(history::api::routes(read))).await
            },
        )
    })
}
