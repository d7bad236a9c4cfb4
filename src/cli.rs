//! Command-line pieces every binary shares: `--config`, `check-config`, and sysexits-style
//! exit codes for usage errors (clap's own is 2; we promise 64).

use crate::config::Config;
use crate::exit;
use anyhow::Context;
use std::path::PathBuf;

/// `--config FILE`, flattened into every binary's arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct ConfigArg {
    /// Config file [default: /etc/iotitan/iotitan.toml, or built-in defaults if it is absent]
    #[arg(
        long,
        short = 'c',
        env = "IOTITAN_CONFIG",
        value_name = "FILE",
        global = true
    )]
    pub config: Option<PathBuf>,
}

impl ConfigArg {
    /// Load and validate the config (errors exit 78 through [`exit::code_for`]).
    pub fn load(&self) -> Result<Config, crate::config::ConfigError> {
        Config::load_or_default(self.config.as_deref())
    }
}

/// What every daemon's command line holds besides its own options: `--config` and
/// `check-config`.
#[derive(Debug, Clone, clap::Args)]
pub struct DaemonArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    #[command(subcommand)]
    pub command: Option<DaemonCommand>,
}

/// The subcommand every daemon has.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum DaemonCommand {
    /// Validate the config, say where each secret comes from, print the effective config.
    CheckConfig,
}

/// Says where each of a daemon's secrets comes from, for `check-config` (never the value).
pub type Describe = fn(&Config) -> anyhow::Result<Vec<String>>;

/// The one way a daemon starts: log as `name`; then `check-config` (with `describe` for a
/// daemon with secrets), or load the config and run `body` under [`run_daemon`].
pub fn daemon<F, Fut>(
    args: &DaemonArgs,
    name: &str,
    describe: Option<Describe>,
    body: F,
) -> anyhow::Result<()>
where
    F: FnOnce(Config, crate::shutdown::Shutdown) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    crate::logging::init(name);
    match (&args.command, describe) {
        (Some(DaemonCommand::CheckConfig), Some(d)) => check_config_with(&args.config, d),
        (Some(DaemonCommand::CheckConfig), None) => check_config(&args.config),
        (None, _) => run_daemon(args.config.load()?, None, body),
    }
}

/// Parse arguments; `--help`/`--version` exit 0, usage errors exit 64.
pub fn parse<T: clap::Parser>() -> T {
    match T::try_parse() {
        Ok(t) => t,
        Err(e) => {
            let code = if e.use_stderr() { exit::USAGE } else { 0 };
            let _ = e.print();
            std::process::exit(i32::from(code));
        }
    }
}

/// `check-config`: print the effective config (secrets live in files, never inline).
pub fn check_config(arg: &ConfigArg) -> anyhow::Result<()> {
    let cfg = arg.load()?;
    let origin = arg
        .config
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| crate::config::DEFAULT_PATH.into());
    println!("# effective config ({origin}): valid");
    // `auto` is decided where the programs run, by the sockets that answer: say what it is.
    if cfg.syslog.target == crate::config::SyslogTarget::Auto
        || crate::syslog::system::names_auto(&cfg.syslog.sources)
    {
        let system = crate::syslog::system::System::detect();
        println!(
            "# auto on this system: syslog.target {}, syslog.sources {}",
            system.target(),
            system.source()
        );
    }
    print!("{}", cfg.to_toml());
    Ok(())
}

/// `check-config` for a program with secrets: first where each one comes from (`describe`,
/// which fails as the daemon would on a missing or unreadable secret; never the value), then
/// the effective config.
pub fn check_config_with(
    arg: &ConfigArg,
    describe: impl FnOnce(&Config) -> anyhow::Result<Vec<String>>,
) -> anyhow::Result<()> {
    for line in describe(&arg.load()?)? {
        println!("# {line}");
    }
    check_config(arg)
}

/// Run a one-shot program's body (stats, sim, the demo) with SIGTERM/SIGINT wired to its
/// [`crate::shutdown::Shutdown`], as [`run_daemon`] does for the daemons. The runtime has a
/// thread per core: the statistics read history on every core, and the demo runs all the
/// programs at once.
pub fn run_job<F, Fut, T>(body: F) -> anyhow::Result<T>
where
    F: FnOnce(crate::shutdown::Shutdown) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    rt.block_on(async move {
        let (trigger, shutdown) = crate::shutdown::channel();
        crate::shutdown::on_signals(trigger).context("cannot install signal handlers")?;
        body(shutdown).await
    })
}

/// Run a daemon body on a single-threaded runtime with SIGTERM/SIGINT wired to its
/// [`crate::shutdown::Shutdown`]. A single thread is plenty for our I/O-bound daemons and
/// keeps their CPU and memory small on a Raspberry Pi. With `linger`, the runtime runs its
/// hook before each park (see [`crate::linger`]).
pub fn run_daemon<F, Fut, T>(
    cfg: Config,
    linger: Option<crate::linger::Linger>,
    body: F,
) -> anyhow::Result<T>
where
    F: FnOnce(Config, crate::shutdown::Shutdown) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let mut builder = tokio::runtime::Builder::new_current_thread();
    if let Some(l) = linger {
        builder.on_thread_park(move || l.before_park());
    }
    let rt = builder.enable_all().build()?;
    rt.block_on(async move {
        let (trigger, shutdown) = crate::shutdown::channel();
        crate::shutdown::on_signals(trigger)?;
        let out = body(cfg, shutdown).await;
        crate::notify::stopping();
        out
    })
}
