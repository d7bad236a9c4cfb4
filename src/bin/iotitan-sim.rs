//! `iotitan-sim`: a simulated sensor fleet, real-series replay and load generator.

use clap::{Args, Parser, Subcommand};
use iotitan::sim::{
    self, BrokerAddr, FaultOptions, Faulty, FleetOptions, Generator, Limited, OfficeOptions, Speed,
};
use iotitan::{cli, exit, logging};
use std::path::PathBuf;
use std::time::Duration;

/// Publish simulated ESPEasy sensors, a replayed CSV series or a measured load to the broker.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    config: cli::ConfigArg,
    /// Broker to publish to, overriding `[mqtt]` host and port.
    #[arg(long, global = true, value_name = "HOST:PORT")]
    broker: Option<BrokerAddr>,
    /// QoS of every publish.
    #[arg(long, global = true, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=1))]
    qos: u8,
    /// Seed of every random choice: the same seed gives the same messages.
    #[arg(long, global = true, default_value_t = 1)]
    seed: u64,
    /// Stop after this long (e.g. "10m").
    #[arg(long, global = true, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// Stop after this many messages (load mode: how many to send, default 10000).
    #[arg(long, global = true)]
    count: Option<u64>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// DHT22 / BME280 / PIR devices on daily curves, with ESPEasy last wills.
    Fleet {
        /// Number of devices.
        #[arg(long, default_value_t = 6)]
        devices: usize,
        /// Number of rooms they are spread over.
        #[arg(long, default_value_t = 3)]
        rooms: usize,
        /// Time between two readings of a device.
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        interval: Duration,
        /// Simulated time per second ("1s" is real time, "1h" runs a day in 24 s).
        #[arg(long, default_value = "1s")]
        speed: Speed,
        /// Probability per device and reading of a dropout (trips stale alerts).
        #[arg(long, default_value_t = 0.0)]
        dropouts: f64,
        /// Length of a dropout.
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        dropout_len: Duration,
        /// Tasmota-style smart plugs: `…/plugN/cmnd/POWER` ON/OFF/TOGGLE, answered on
        /// `…/plugN/stat/POWER`.
        #[arg(long, default_value_t = 0)]
        plugs: usize,
        /// Of the plugs, how many (the last ones) take commands but never answer.
        #[arg(long, default_value_t = 0)]
        mute_plugs: usize,
        #[command(flatten)]
        faults: FaultArgs,
    },
    /// Replay a CSV series (`time,value`, e.g. an open-meteo export) onto a topic.
    Replay {
        /// The CSV file.
        #[arg(long)]
        csv: PathBuf,
        /// Value column [default: the first after `time`].
        #[arg(long)]
        column: Option<String>,
        /// Topic to publish on.
        #[arg(long, default_value = "iotitan/outdoor/garden/openmeteo/temperature")]
        topic: String,
        /// Data time replayed per second ("1h": an hour of data every second).
        #[arg(long, default_value = "1h")]
        speed: Speed,
        /// Rows to skip first.
        #[arg(long, default_value_t = 0)]
        skip: usize,
        /// Rows to replay at most.
        #[arg(long)]
        limit: Option<usize>,
        #[command(flatten)]
        faults: FaultArgs,
    },
    /// An office on Tasmota and Shelly smart plugs: power every 10 s, energy meters every
    /// minute, office-hours loads, printers idling at night, reboots and dropouts.
    Office {
        /// Floors.
        #[arg(long, default_value_t = 2)]
        floors: usize,
        /// Workplaces per floor (in two rooms), besides a meeting room and a printer.
        #[arg(long, default_value_t = 4)]
        workplaces: usize,
        /// Simulated time per second ("1s" is real time: the meters then agree with the
        /// power's integral over the logged times).
        #[arg(long, default_value = "1s")]
        speed: Speed,
    },
    /// Numbered messages at a steady rate; prints the achieved rate.
    Load {
        /// Messages per second (0: as fast as the broker takes them).
        #[arg(long, default_value_t = 1000.0)]
        rate: f64,
        /// Spread over this many topics.
        #[arg(long, default_value_t = 10)]
        topics: u64,
        /// Topic prefix.
        #[arg(long, default_value = "iotitan/load")]
        prefix: String,
    },
    /// Validate the config and print the effective values.
    CheckConfig,
}

#[derive(Debug, Args)]
struct FaultArgs {
    /// Probability per reading of a spike far out of range.
    #[arg(long, default_value_t = 0.0)]
    spikes: f64,
    /// Probability per reading of a junk or hostile payload.
    #[arg(long, default_value_t = 0.0)]
    junk: f64,
}

impl FaultArgs {
    fn options(&self, seed: u64) -> FaultOptions {
        FaultOptions {
            spike: self.spikes,
            junk: self.junk,
            scheduled: Vec::new(),
            seed,
        }
    }
}

fn main() -> std::process::ExitCode {
    exit::main_with(|| {
        let cli = cli::parse::<Cli>();
        if let Command::CheckConfig = cli.command {
            return cli::check_config(&cli.config);
        }
        let mut cfg = cli.config.load()?;
        if let Some(b) = &cli.broker {
            b.apply(&mut cfg.mqtt);
        }
        logging::init("iotitan-sim");
        let (generator, limit) = build(&cli)?;
        let mut generator = Limited::new(generator, limit, cli.duration);
        let qos = iotitan::mqtt::qos(cli.qos);
        let report =
            cli::run_job(
                |stop| async move { sim::run(&cfg.mqtt, &mut generator, qos, stop).await },
            )?;
        println!(
            "published {} messages at QoS {}; the broker took {}",
            report.published,
            cli.qos,
            report.achieved()
        );
        Ok(())
    })
}

/// The generator the command asks for, and its message limit.
fn build(cli: &Cli) -> anyhow::Result<(Box<dyn Generator>, Option<u64>)> {
    Ok(match &cli.command {
        Command::Fleet {
            devices,
            rooms,
            interval,
            speed,
            dropouts,
            dropout_len,
            plugs,
            mute_plugs,
            faults,
        } => {
            let fleet = sim::Fleet::new(FleetOptions {
                devices: *devices,
                rooms: *rooms,
                interval: *interval,
                speed: *speed,
                seed: cli.seed,
                dropout: *dropouts,
                dropout_len: *dropout_len,
                plugs: *plugs,
                mute_plugs: *mute_plugs,
                ..FleetOptions::default()
            });
            (
                Box::new(Faulty::new(fleet, faults.options(cli.seed))),
                cli.count,
            )
        }
        Command::Office {
            floors,
            workplaces,
            speed,
        } => {
            let office = sim::Office::new(OfficeOptions {
                floors: *floors,
                workplaces: *workplaces,
                speed: *speed,
                seed: cli.seed,
                ..OfficeOptions::default()
            });
            (Box::new(office), cli.count)
        }
        Command::Replay {
            csv,
            column,
            topic,
            speed,
            skip,
            limit,
            faults,
        } => {
            let text = std::fs::read_to_string(csv).map_err(|e| {
                exit::ExitError::new(exit::IOERR, format!("cannot read {}: {e}", csv.display()))
            })?;
            let series = sim::Series::parse(&text, column.as_deref())
                .map_err(|e| {
                    exit::ExitError::new(exit::DATAERR, format!("{}: {e}", csv.display()))
                })?
                .slice(*skip, *limit);
            let replay = sim::Replay::new(&series, topic.clone(), *speed);
            (
                Box::new(Faulty::new(replay, faults.options(cli.seed))),
                cli.count,
            )
        }
        Command::Load {
            rate,
            topics,
            prefix,
        } => {
            let count = cli.count.unwrap_or(10_000);
            (
                Box::new(sim::Load::new(prefix.clone(), *topics, Some(*rate), count)),
                Some(count),
            )
        }
        Command::CheckConfig => anyhow::bail!("check-config publishes nothing"),
    })
}
