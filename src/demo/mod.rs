//! `iotitan-demo`: the whole pipeline on one machine, in one process, with one command.
//!
//! The demo brings its own MQTT broker (rumqttd, see [`broker`]) and its own syslog receiver
//! (see [`receiver`]) unless told to use real ones, writes a config for them
//! (`./demo/iotitan.toml`), then runs the pipeline's programs in-process through their
//! library `run` functions, feeds them with the simulator (a real replayed series with a spike
//! that trips an alert, a small ESPEasy fleet and two smart plugs), and shows what comes out
//! in a live [`view`]. iotitan-http serves the dashboard on loopback with a token made for
//! the run; the demo prints the page's address with the token in its fragment. Everything it
//! writes stays under `./demo/`.
//!
//! Stopping (Ctrl+C or `--duration`) goes from the source to the sinks: the simulator first
//! (its devices say goodbye), then the programs (they drain and flush), then the syslog
//! receiver (it writes what is still queued), so nothing published is lost on the way out.

pub(crate) mod broker;
pub(crate) mod config;
mod pipeline;
pub mod receiver;
pub(crate) mod view;

use crate::config::Config;
use crate::mqtt;
use crate::shutdown::{self, Shutdown};
use crate::sim::{
    self, BrokerAddr, FaultOptions, Faulty, Fleet, FleetOptions, Mix, ScheduledSpike,
};
use anyhow::Context;
use rumqttc::{QoS, SubscribeFilter};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use view::View;

/// January 2024 in Adelaide, hourly (Open-Meteo, CC BY 4.0): the real series the demo replays.
const ADELAIDE: &str = include_str!("adelaide-2024-01.csv");

/// The spike that trips the demo's alert: four hours of replayed data at 85 °C, soon after
/// the start.
const SPIKE_FROM: Duration = Duration::from_secs(6);
const SPIKE_UNTIL: Duration = Duration::from_secs(10);
const SPIKE_VALUE: f64 = 85.0;

/// How long stopping programs may take to drain before the demo stops waiting for them.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the dashboard is served when the port is free (iotitan-http's default); any free
/// loopback port otherwise, so that two demos or a running iotitan-http do not collide.
const DASHBOARD_PORT: u16 = 8750;

/// The file, in the demo directory, holding the dashboard's token.
const TOKEN_FILE: &str = "http-demo.token";

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Where everything is written (`./demo`).
    pub dir: PathBuf,
    /// An existing broker instead of the embedded one.
    pub broker: Option<BrokerAddr>,
    /// Send records to the system's syslog (as `syslog.target = "auto"`) instead of the demo
    /// receiver, and read them back where it keeps them.
    pub system_syslog: bool,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Seed of the simulator.
    pub seed: u64,
    /// A ThingSpeak channel to really write to; its key comes from
    /// `IOTITAN_THINGSPEAK_KEY_<ID>`. Without it the bridge runs dry.
    pub thingspeak: Option<u64>,
}

/// What a demo run produced, printed at the end.
#[derive(Debug, Clone)]
pub struct Summary {
    /// How long it ran.
    pub elapsed: Duration,
    /// The demo directory.
    pub dir: PathBuf,
    /// The records file, when the demo receiver was used.
    pub syslog_file: Option<PathBuf>,
    /// Records the demo receiver wrote.
    pub records: u64,
    /// Messages the simulator published.
    pub published: u64,
    /// Updates the bridge sent (written to the requests file, in a dry run).
    pub bridge_sent: u64,
    /// Whether the bridge ran dry.
    pub bridge_dry_run: bool,
    /// What the view saw.
    pub view: View,
    /// Programs that ran in-process.
    pub parts: Vec<&'static str>,
    /// Programs that failed, with their error.
    pub failures: Vec<String>,
}

/// The dashboard's listener on loopback and a fresh token for it, written to
/// `dir/`[`TOKEN_FILE`] (owner-only) for iotitan-http to load like any token file. The token
/// is random per run: the page is reachable by every local user, its data should not be.
fn dashboard(dir: &Path) -> anyhow::Result<(std::net::TcpListener, String)> {
    use rand::Rng;
    use std::net::{Ipv4Addr, TcpListener};
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, DASHBOARD_PORT))
        .or_else(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .context("cannot listen on loopback for the dashboard")?;
    listener
        .set_nonblocking(true)
        .context("dashboard listener")?;
    let bytes: [u8; 24] = rand::rng().random();
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let path = dir.join(TOKEN_FILE);
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    // A file left by an earlier run keeps its mode: make sure it is owner-only.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .and_then(|()| file.write_all(token.as_bytes()))
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok((listener, token))
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let dir = self.dir.display();
        writeln!(
            f,
            "iotitan demo stopped after {:.0} s.",
            self.elapsed.as_secs_f64()
        )?;
        writeln!(
            f,
            "  simulator published {} messages; the pipeline saw {} (stats outputs {}, alert events {})",
            self.published, self.view.messages, self.view.stats_outputs, self.view.alert_events
        )?;
        writeln!(f, "  bridge sent {} updates", self.bridge_sent)?;
        writeln!(
            f,
            "  programs run: {}",
            if self.parts.is_empty() {
                "none".into()
            } else {
                self.parts.join(", ")
            }
        )?;
        for failure in &self.failures {
            writeln!(f, "  FAILED: {failure}")?;
        }
        writeln!(f, "Files:")?;
        writeln!(
            f,
            "  {dir}/iotitan.toml   the config every program can use (--config)"
        )?;
        writeln!(f, "  {dir}/iotitan.log    the programs' own logs")?;
        writeln!(
            f,
            "  {dir}/{TOKEN_FILE} the dashboard's token (read, and the plugs' commands)"
        )?;
        if self.bridge_dry_run {
            writeln!(
                f,
                "  {dir}/{}  what the bridge would have sent to ThingSpeak",
                pipeline::BRIDGE_REQUESTS
            )?;
        }
        writeln!(
            f,
            "  {dir}/state/         stats' window state, the bridge's spool"
        )?;
        match &self.syslog_file {
            Some(p) => {
                writeln!(
                    f,
                    "  {}          {} records, one line per MQTT message",
                    p.display(),
                    self.records
                )?;
                writeln!(f, "Look further:")?;
                writeln!(
                    f,
                    "  grep ' {} ' {} | tail",
                    config::REPLAY_TOPIC,
                    p.display()
                )?;
                writeln!(f, "  grep -c 'iotitan/home/' {}", p.display())?;
            }
            None => {
                writeln!(f, "Look further (records went to the system log):")?;
                writeln!(f, "  journalctl -t iotitan-logger --since -10m")?;
                writeln!(f, "  grep iotitan-logger /var/log/syslog | tail")?;
            }
        }
        writeln!(
            f,
            "  cargo run --bin iotitan-stats -- --config {dir}/iotitan.toml --since -10m --dry-run"
        )
    }
}

/// Send the programs' own logs to `path`, so they do not scroll over the live view.
/// `RUST_LOG` overrides the default `info`; the embedded broker is kept quiet.
pub fn log_to_file(path: &Path) -> anyhow::Result<()> {
    use tracing_subscriber::{EnvFilter, layer::SubscriberExt, util::SubscriberInitExt};
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,rumqttd=off"));
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(Mutex::new(file))
                .with_ansi(false),
        )
        .try_init();
    Ok(())
}

/// Where records go and where stats reads them back.
struct Storage {
    target: String,
    sources: Vec<String>,
    receiver: Option<receiver::Receiver>,
    file: Option<PathBuf>,
}

fn storage(opts: &DemoOptions) -> anyhow::Result<Storage> {
    if opts.system_syslog {
        // Where `syslog.target = "auto"` writes, and where it is read back.
        let system = crate::syslog::system::System::detect();
        let socket = system.socket();
        if !crate::syslog::system::answers(&socket) {
            return Err(crate::exit::ExitError::new(
                crate::exit::UNAVAILABLE,
                format!(
                    "--system-syslog: {} does not answer; run without it to use the demo's own receiver",
                    socket.display()
                ),
            )
            .into());
        }
        return Ok(Storage {
            target: system.target().to_string(),
            sources: vec![system.source().to_string()],
            receiver: None,
            file: None,
        });
    }
    let socket = opts.dir.join("log.sock");
    let file = opts.dir.join("syslog");
    Ok(Storage {
        target: format!("unix:{}", socket.display()),
        sources: vec![file.display().to_string()],
        receiver: Some(receiver::Receiver::bind(&socket, &file)?),
        file: Some(file),
    })
}

/// The demo's input: the replayed series with its spike, a small fleet with a little junk, and
/// an office floor's smart plugs.
fn simulation(seed: u64) -> anyhow::Result<Mix> {
    let series = sim::Series::parse(ADELAIDE, None).context("the embedded series")?;
    let replay = sim::Replay::new(
        &series,
        config::REPLAY_TOPIC,
        sim::Speed::new(3600.0).unwrap_or(sim::Speed::REAL_TIME),
    );
    let spike = FaultOptions {
        scheduled: vec![ScheduledSpike {
            topic: config::REPLAY_TOPIC.into(),
            from: SPIKE_FROM,
            until: SPIKE_UNTIL,
            value: SPIKE_VALUE,
        }],
        seed,
        ..FaultOptions::default()
    };
    // Seven devices in three rooms: a DHT22 and a BME280 in each, and a PIR in the kitchen;
    // two plugs (config::PLUGS), the second one muted.
    let fleet = Fleet::new(FleetOptions {
        devices: 7,
        rooms: 3,
        interval: Duration::from_secs(2),
        speed: sim::Speed::new(600.0).unwrap_or(sim::Speed::REAL_TIME),
        seed,
        plugs: config::PLUGS.len(),
        mute_plugs: 1,
        ..FleetOptions::default()
    });
    let junk = FaultOptions {
        junk: 0.01,
        seed,
        ..FaultOptions::default()
    };
    // An office floor on smart plugs, in real time so that its meters agree with the power
    // logged (the energy statistics of the read API).
    let office = sim::Office::new(sim::OfficeOptions {
        floors: 1,
        workplaces: 2,
        seed,
        ..sim::OfficeOptions::default()
    });
    Ok(Mix::new()
        .with(Faulty::new(replay, spike))
        .with(Faulty::new(fleet, junk))
        .with(office))
}

/// Follow everything on the broker into the view.
///
/// Through [`mqtt::Pump`], the one pump: subscribing from the task that polls would wait on
/// the request channel only that task drains.
async fn watch(cfg: Arc<Config>, view: Arc<Mutex<View>>, mut stop: Shutdown) -> anyhow::Result<()> {
    let (client, driver) = mqtt::connect(&cfg.mqtt, "demo")?;
    let all = vec![SubscribeFilter::new("#".into(), QoS::AtMostOnce)];
    let mqtt::Pumped {
        mut inbox, task, ..
    } = mqtt::Pump::new(client.clone(), driver)
        .subscribe(all)
        .inbox(WATCH_INBOX)
        .spawn::<rumqttc::Publish>();
    loop {
        let p = tokio::select! {
            p = inbox.recv() => p,
            _ = stop.recv() => break,
        };
        let Some(p) = p else { break };
        if let Ok(mut v) = view.lock() {
            v.observe(&p.topic, &p.payload);
        }
    }
    inbox.close();
    let _ = client.try_disconnect();
    // The poller ends once the broker closed the connection after our DISCONNECT.
    let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
    Ok(())
}

/// Messages the view's poller may hold while the view catches up.
const WATCH_INBOX: usize = 1024;

/// Run the demo until `stop` fires or the duration is over.
pub async fn run(opts: &DemoOptions, mut stop: Shutdown) -> anyhow::Result<Summary> {
    let started = Instant::now();
    std::fs::create_dir_all(opts.dir.join("state"))
        .with_context(|| format!("cannot create {}", opts.dir.display()))?;
    let broker = match &opts.broker {
        Some(b) => b.clone(),
        None => broker::start()?,
    };
    let mut storage = storage(opts)?;
    let (listener, token) = dashboard(&opts.dir)?;
    let http = config::Http {
        listen: listener.local_addr().context("dashboard listener")?,
        token_file: opts.dir.join(TOKEN_FILE),
    };
    let url = format!("http://{}/#token={token}", http.listen);
    let text = config::render(
        &opts.dir,
        &broker,
        &storage.target,
        &storage.sources,
        opts.thingspeak,
        &http,
    );
    let config_path = opts.dir.join("iotitan.toml");
    std::fs::write(&config_path, &text)
        .with_context(|| format!("cannot write {}", config_path.display()))?;
    let cfg = Arc::new(Config::parse(&text, &config_path.display().to_string())?);
    let read = crate::history::read::Context::from_config(&cfg).map_err(anyhow::Error::msg)?;
    let listener = tokio::net::TcpListener::from_std(listener).context("dashboard listener")?;

    // Stopping order: simulator, then programs and view, then the receiver.
    let (sim_stop, sim_shutdown) = shutdown::channel();
    let (pipeline_stop, pipeline_shutdown) = shutdown::channel();
    let (receiver_stop, receiver_shutdown) = shutdown::channel();

    let records = Arc::new(AtomicU64::new(0));
    let receiver_task = storage.receiver.take().map(|r| {
        let counter = r.records.clone();
        let task = tokio::spawn(r.run(receiver_shutdown));
        (counter, task)
    });
    let view = Arc::new(Mutex::new(View::new(&cfg.alerts.events_topic)));
    let watcher = tokio::spawn(watch(cfg.clone(), view.clone(), pipeline_shutdown.clone()));
    let pipeline = pipeline::start(
        &cfg,
        &pipeline_stop,
        opts.thingspeak,
        &opts.dir,
        listener,
        read,
    );
    let part_names: Vec<&'static str> = pipeline.parts.iter().map(|p| p.0).collect();
    // The view runs until Ctrl+C, the duration, or the simulator failing (a broker that
    // cannot be reached): then there is nothing to watch, and the summary says why.
    let (halt, mut halted) = shutdown::channel();
    let on_stop = halt.clone();
    tokio::spawn(async move {
        stop.recv().await;
        on_stop.trigger();
    });
    let mut mix = simulation(opts.seed)?;
    let sim_cfg = cfg.clone();
    let simulator = tokio::spawn(async move {
        let out = sim::run(&sim_cfg.mqtt, &mut mix, QoS::AtLeastOnce, sim_shutdown).await;
        if out.is_err() {
            halt.trigger();
        }
        out
    });

    let record_count = || {
        receiver_task
            .as_ref()
            .map_or(0, |(c, _)| c.load(Ordering::Relaxed))
    };
    let programs = if part_names.is_empty() {
        "none".to_owned()
    } else {
        part_names.join(", ")
    };
    let extra = || {
        let mut lines = vec![format!("records {} · programs: {programs}", record_count())];
        lines.extend(pipeline.bridge_lines());
        lines
    };
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "Dashboard (open it in a browser while the demo runs):");
        let _ = writeln!(out, "  {url}");
        let _ = out.flush();
    }
    show(opts, &view, &mut halted, started, &url, &extra).await;

    sim_stop.trigger();
    let mut failures = Vec::new();
    let published = match tokio::time::timeout(STOP_TIMEOUT, simulator).await {
        Ok(Ok(Ok(report))) => report.published,
        Ok(Ok(Err(e))) => {
            failures.push(format!("simulator: {e:#}"));
            0
        }
        Ok(Err(e)) => {
            failures.push(format!("simulator: {e}"));
            0
        }
        Err(_) => {
            failures.push(format!("simulator: did not stop within {STOP_TIMEOUT:?}"));
            0
        }
    };
    // Give the programs a moment to receive the simulator's last messages before they stop.
    tokio::time::sleep(Duration::from_millis(500)).await;
    pipeline_stop.trigger();
    let bridge_sent = pipeline.bridge_sent();
    for (name, task) in pipeline.parts {
        match tokio::time::timeout(STOP_TIMEOUT, task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => failures.push(format!("{name}: {e:#}")),
            Ok(Err(e)) => failures.push(format!("{name}: {e}")),
            Err(_) => failures.push(format!("{name}: did not stop within {STOP_TIMEOUT:?}")),
        }
    }
    let _ = tokio::time::timeout(STOP_TIMEOUT, watcher).await;
    receiver_stop.trigger();
    if let Some((counter, task)) = receiver_task {
        match tokio::time::timeout(STOP_TIMEOUT, task).await {
            Ok(Ok(Err(e))) => failures.push(format!("syslog receiver: {e:#}")),
            Ok(Err(e)) => failures.push(format!("syslog receiver: {e}")),
            _ => {}
        }
        records.store(counter.load(Ordering::Relaxed), Ordering::Relaxed);
    }
    let view = view.lock().map(|v| v.clone()).unwrap_or_default();
    Ok(Summary {
        elapsed: started.elapsed(),
        dir: opts.dir.clone(),
        syslog_file: storage.file,
        records: records.load(Ordering::Relaxed),
        published,
        bridge_sent,
        bridge_dry_run: opts.thingspeak.is_none(),
        view,
        parts: part_names,
        failures,
    })
}

/// Draw the live view until stopped: in place on a terminal, a status line every 5 s
/// otherwise.
async fn show(
    opts: &DemoOptions,
    view: &Mutex<View>,
    stop: &mut Shutdown,
    started: Instant,
    url: &str,
    extra: &dyn Fn() -> Vec<String>,
) {
    let tty = std::io::stdout().is_terminal();
    let mut tick = tokio::time::interval(if tty {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(5)
    });
    let deadline = opts.duration.map(|d| started + d);
    let mut drawn = 0usize;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.recv() => break,
            _ = crate::time::sleep_until(deadline) => break,
        }
        let Ok(v) = view.lock() else { break };
        let elapsed = started.elapsed();
        let mut out = std::io::stdout().lock();
        if tty {
            let mut lines = extra();
            lines.push(format!("dashboard: {url}"));
            lines.push(format!(
                "files in {}/ · logs in {}/iotitan.log",
                opts.dir.display(),
                opts.dir.display()
            ));
            let frame = v.render(elapsed, 16, &lines);
            if drawn > 0 {
                let _ = write!(out, "\x1b[{drawn}A\x1b[J");
            }
            drawn = frame.lines().count();
            let _ = out.write_all(frame.as_bytes());
        } else {
            let _ = writeln!(out, "{}", v.status_line(elapsed, ""));
            for line in extra() {
                let _ = writeln!(out, "  {line}");
            }
        }
        let _ = out.flush();
    }
}
