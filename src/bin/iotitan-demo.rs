//! `iotitan-demo`: the whole pipeline on one machine — broker, syslog, logger, stats, alerts,
//! bridge and simulated sensors — with a live view. Everything it writes goes to `./demo/`.

use anyhow::Context;
use clap::Parser;
use iotitan::demo::{self, DemoOptions};
use iotitan::sim::BrokerAddr;
use iotitan::{cli, exit};
use std::path::PathBuf;
use std::time::Duration;

/// Run the iotitan pipeline end to end on this machine, fed by simulated sensors.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// Use this broker instead of the embedded one.
    #[arg(long, value_name = "HOST:PORT")]
    broker: Option<BrokerAddr>,
    /// Write records to the system's syslog (rsyslog or journald, as syslog.target = "auto")
    /// instead of ./demo/syslog.
    #[arg(long)]
    system_syslog: bool,
    /// Stop after this long (e.g. "2m"); otherwise Ctrl+C stops.
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// Directory for the demo's files.
    #[arg(long, default_value = "demo")]
    dir: PathBuf,
    /// Seed of the simulated sensors.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Really write to this ThingSpeak channel (key in IOTITAN_THINGSPEAK_KEY_<ID>);
    /// without it the bridge runs dry.
    #[arg(long, value_name = "CHANNEL_ID")]
    thingspeak: Option<u64>,
}

fn main() -> std::process::ExitCode {
    exit::main_with(|| {
        let cli = cli::parse::<Cli>();
        let opts = DemoOptions {
            dir: cli.dir,
            broker: cli.broker,
            system_syslog: cli.system_syslog,
            duration: cli.duration,
            seed: cli.seed,
            thingspeak: cli.thingspeak,
        };
        std::fs::create_dir_all(&opts.dir)
            .with_context(|| format!("cannot create {}", opts.dir.display()))?;
        demo::log_to_file(&opts.dir.join("iotitan.log"))?;
        let summary = cli::run_job(|stop| async move { demo::run(&opts, stop).await })?;
        print!("\n{summary}");
        anyhow::ensure!(
            summary.failures.is_empty(),
            "some programs failed (see above)"
        );
        Ok(())
    })
}
