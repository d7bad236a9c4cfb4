//! What operators install: the systemd units pass `systemd-analyze verify` with the binaries
//! installed by `systemd/install.sh` into a scratch root, score at most 2.0 in
//! `systemd-analyze security`, and the timer, the crontab line and `stats.schedule` describe
//! the same schedule. (The .deb is built and inspected by `.ci/package`.)

mod common;
use chrono::{DateTime, TimeZone, Utc};
use common::*;
use iotitan::schedule::Schedule;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SERVICES: [&str; 5] = [
    "iotitan-logger.service",
    "iotitan-alerts.service",
    "iotitan-bridge.service",
    "iotitan-http.service",
    "iotitan-stats.service",
];
const TIMER: &str = "iotitan-stats.timer";

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The `Key=value` settings of a unit file (comments and sections dropped), in order.
fn settings(unit: &str) -> Vec<(String, String)> {
    read(&format!("systemd/{unit}"))
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

fn values<'a>(s: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    s.iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// A scratch root holding the system's own units (targets the ours refer to) and ours, installed
/// by `systemd/install.sh --destdir` with this build's binaries in `bindir`.
struct Root {
    dir: tempfile::TempDir,
}

impl Root {
    fn install(bindir: &str) -> Root {
        require("systemd-analyze", "systemd");
        let dir = tempfile::tempdir().unwrap();
        let system_units = ["/usr/lib/systemd/system", "/lib/systemd/system"]
            .into_iter()
            .find(|d| Path::new(d).join("multi-user.target").exists())
            .expect("the system's units (multi-user.target): apt-get install systemd");
        std::fs::create_dir_all(dir.path().join("usr/lib/systemd")).unwrap();
        let st = run(Command::new("cp")
            .args(["-r", system_units])
            .arg(dir.path().join("usr/lib/systemd/system")));
        assert!(st.status.success(), "{}", text(&st.stderr));

        // The binaries of this build, where `cargo install` would have put them.
        let from = dir.path().join("cargo-bin");
        std::fs::create_dir_all(&from).unwrap();
        for (name, path) in [
            ("iotitan-logger", env!("CARGO_BIN_EXE_iotitan-logger")),
            ("iotitan-stats", env!("CARGO_BIN_EXE_iotitan-stats")),
            ("iotitan-alerts", env!("CARGO_BIN_EXE_iotitan-alerts")),
            ("iotitan-bridge", env!("CARGO_BIN_EXE_iotitan-bridge")),
            ("iotitan-http", env!("CARGO_BIN_EXE_iotitan-http")),
            ("iotitan-sim", env!("CARGO_BIN_EXE_iotitan-sim")),
        ] {
            std::os::unix::fs::symlink(path, from.join(name)).unwrap();
        }
        let out = run(Command::new(repo("systemd/install.sh"))
            .arg("--destdir")
            .arg(dir.path())
            .arg("--from")
            .arg(&from)
            .args(["--bindir", bindir]));
        assert!(
            out.status.success(),
            "install.sh: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        Root { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel.trim_start_matches('/'))
    }

    fn unit(&self, unit: &str) -> PathBuf {
        self.path(&format!("etc/systemd/system/{unit}"))
    }

    /// `systemd-analyze verify` of one installed unit: (success, everything it printed).
    fn verify(&self, unit: &str) -> (bool, String) {
        let out = run(Command::new("systemd-analyze")
            .arg("verify")
            .arg(format!("--root={}", self.dir.path().display()))
            .arg(self.unit(unit))
            .env("SYSTEMD_LOG_COLOR", "0"));
        (
            out.status.success(),
            format!("{}{}", text(&out.stdout), text(&out.stderr)),
        )
    }
}

#[test]
fn every_unit_passes_systemd_analyze_verify_with_the_binaries_installed() {
    // /usr/bin is where the package puts them: the units exactly as shipped.
    let root = Root::install("/usr/bin");
    for unit in SERVICES.iter().chain([&TIMER]) {
        assert_eq!(
            std::fs::read_to_string(root.unit(unit)).unwrap(),
            read(&format!("systemd/{unit}")),
            "install.sh --bindir /usr/bin changed {unit}"
        );
        let (ok, said) = root.verify(unit);
        // verify exits 0 on unknown keys and bad values, only printing them: nothing may be said.
        assert!(ok && said.trim().is_empty(), "{unit}:\n{said}");
    }
    // The check is real: without its binary a unit fails, naming it.
    std::fs::remove_file(root.path("usr/bin/iotitan-alerts")).unwrap();
    let (ok, said) = root.verify("iotitan-alerts.service");
    assert!(!ok && said.contains("/usr/bin/iotitan-alerts"), "{said}");
}

#[test]
fn install_script_points_the_units_at_its_bindir_and_keeps_the_config() {
    let root = Root::install("/usr/local/bin");
    for unit in SERVICES {
        let installed = std::fs::read_to_string(root.unit(unit)).unwrap();
        let name = unit.trim_end_matches(".service");
        assert!(
            installed.contains(&format!("ExecStart=/usr/local/bin/{name} ")),
            "{installed}"
        );
        let (ok, said) = root.verify(unit);
        assert!(ok && said.trim().is_empty(), "{unit}:\n{said}");
    }
    let cron = std::fs::read_to_string(root.path("etc/cron.d/iotitan")).unwrap();
    assert!(cron.contains("/usr/local/bin/iotitan-stats"), "{cron}");
    assert_eq!(
        std::fs::read_to_string(root.path("etc/iotitan/iotitan.toml")).unwrap(),
        read("config/iotitan.toml")
    );
    assert!(root.path("etc/iotitan/credentials").is_dir());
    assert!(root.path("usr/lib/sysusers.d/iotitan.conf").is_file());

    // Installing again never overwrites the operator's config.
    std::fs::write(
        root.path("etc/iotitan/iotitan.toml"),
        "[mqtt]\nhost = \"pi\"\n",
    )
    .unwrap();
    let out = run(Command::new(repo("systemd/install.sh"))
        .arg("--destdir")
        .arg(root.dir.path()));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(root.path("etc/iotitan/iotitan.toml")).unwrap(),
        "[mqtt]\nhost = \"pi\"\n"
    );
    assert!(root.path("etc/iotitan/iotitan.toml.new").is_file());

    // Uninstall removes what it installed and keeps config and state.
    let out = run(Command::new(repo("systemd/install.sh"))
        .arg("--destdir")
        .arg(root.dir.path())
        .arg("--uninstall"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!root.unit("iotitan-logger.service").exists());
    assert!(!root.path("usr/local/bin/iotitan-logger").exists());
    assert!(!root.path("etc/cron.d/iotitan").exists());
    assert!(root.path("etc/iotitan/iotitan.toml").exists());

    // A bindir the units cannot see (ProtectHome=yes) is refused.
    let out = run(Command::new(repo("systemd/install.sh"))
        .arg("--destdir")
        .arg(root.dir.path())
        .args(["--bindir", "/root/.cargo/bin"]));
    assert_eq!(out.status.code(), Some(64), "{}", text(&out.stderr));
}

#[test]
fn every_service_scores_at_most_2_0_in_systemd_analyze_security() {
    require("systemd-analyze", "systemd");
    let root = Root::install("/usr/bin");
    for unit in SERVICES {
        let out = run(Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--no-pager"])
            .arg(format!("--root={}", root.dir.path().display()))
            .arg(root.unit(unit))
            .env("SYSTEMD_LOG_COLOR", "0"));
        let said = text(&out.stdout);
        let needle = format!("Overall exposure level for {unit}: ");
        let score: f64 = said
            .lines()
            .find_map(|l| l.split_once(&needle))
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no score for {unit}:\n{said}{}", text(&out.stderr)));
        assert!(score <= 2.0, "{unit} scores {score}:\n{said}");
    }
}

#[test]
fn units_carry_the_operating_contract() {
    for unit in SERVICES {
        let s = settings(unit);
        let one = |key: &str| values(&s, key).join(" ");
        assert_eq!(one("User"), "iotitan", "{unit}");
        assert_eq!(one("StateDirectory"), "iotitan", "{unit}");
        assert_eq!(one("ProtectSystem"), "strict", "{unit}");
        assert_eq!(one("ProtectHome"), "yes", "{unit}");
        assert_eq!(one("PrivateTmp"), "yes", "{unit}");
        assert_eq!(one("NoNewPrivileges"), "yes", "{unit}");
        assert_eq!(
            one("RestrictAddressFamilies"),
            "AF_UNIX AF_INET AF_INET6",
            "{unit}"
        );
        assert!(
            one("SystemCallFilter").starts_with("@system-service"),
            "{unit}"
        );
        assert!(
            one("ExecStart").ends_with("--config /etc/iotitan/iotitan.toml"),
            "{unit}"
        );
        if unit == "iotitan-stats.service" {
            assert_eq!(one("Type"), "oneshot");
            let groups = one("SupplementaryGroups");
            assert!(
                groups.split(' ').any(|g| g == "systemd-journal"),
                "{groups}"
            );
            assert!(groups.split(' ').any(|g| g == "adm"), "{groups}");
        } else {
            assert_eq!(one("Type"), "notify", "{unit}");
            assert!(!one("WatchdogSec").is_empty(), "{unit}");
            assert_eq!(one("Restart"), "on-failure", "{unit}");
            // A config error (sysexits 78) must not restart-loop.
            assert_eq!(one("RestartPreventExitStatus"), "78", "{unit}");
        }
    }
    for unit in ["iotitan-bridge.service", "iotitan-http.service"] {
        assert_eq!(
            values(&settings(unit), "LoadCredential"),
            [format!(
                "{}:/etc/iotitan/credentials",
                iotitan::secret::CREDENTIAL_PREFIX.trim_end_matches('_')
            )],
            "{unit}"
        );
    }
}

/// Fire times of a systemd calendar spec: `systemd-analyze calendar` from `base`, in UTC.
fn systemd_fires(spec: &str, base: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
    let out = run(Command::new("systemd-analyze")
        .args(["calendar", &format!("--iterations={n}")])
        .arg(format!(
            "--base-time={}",
            base.format("%Y-%m-%d %H:%M:%S UTC")
        ))
        .arg(spec)
        .env("TZ", "UTC")
        .env("SYSTEMD_LOG_COLOR", "0"));
    assert!(out.status.success(), "{spec}: {}", text(&out.stderr));
    let said = text(&out.stdout);
    let fires: Vec<_> = said
        .lines()
        .filter_map(|l| l.trim().split_once(": "))
        .filter(|(k, _)| *k == "Next elapse" || k.starts_with("Iter. #"))
        .map(|(_, v)| {
            // "Thu 2026-01-01 00:05:00 UTC"
            let v = v.trim();
            let v = v.split_once(' ').map_or(v, |(_, rest)| rest);
            let v = v.trim_end_matches(" UTC");
            let t = chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%d %H:%M:%S")
                .unwrap_or_else(|e| panic!("{v:?}: {e}"));
            Utc.from_utc_datetime(&t)
        })
        .collect();
    assert_eq!(fires.len(), n, "{said}");
    fires
}

fn cron_fires(s: &Schedule, base: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
    std::iter::successors(s.after(base, &Utc), |t| s.after(*t, &Utc))
        .take(n)
        .collect()
}

#[test]
fn timer_crontab_line_and_stats_schedule_describe_the_same_schedule() {
    require("systemd-analyze", "systemd");
    let cfg = iotitan::config::Config::parse(&read("config/iotitan.toml"), "config/iotitan.toml")
        .expect("the example config is valid");
    let schedule = Schedule::parse(&cfg.stats.schedule).expect("stats.schedule parses");

    // The cron file's one line runs stats as iotitan, and steps aside where systemd runs
    // (the timer does the job there).
    let cron = read("crontab/iotitan");
    let lines: Vec<&str> = cron
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains("iotitan-stats"))
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "one iotitan-stats line in crontab/iotitan:\n{cron}"
    );
    let fields: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(fields[5], "iotitan", "{}", lines[0]);
    let command = fields[6..].join(" ");
    assert!(
        command.starts_with("if [ ! -d /run/systemd/system ]; then /usr/bin/iotitan-stats "),
        "{command}"
    );
    let cron_expr = fields[..5].join(" ");
    assert_eq!(
        cron_expr,
        schedule.source(),
        "crontab line vs stats.schedule"
    );

    let timer = settings(TIMER);
    let calendar = values(&timer, "OnCalendar");
    assert_eq!(calendar.len(), 1, "{calendar:?}");

    // Same fire times over two days, through each one's own reader: our cron translation for
    // stats.schedule and the crontab line, systemd's for the timer.
    let base = Utc.with_ymd_and_hms(2026, 3, 7, 22, 58, 13).unwrap();
    let n = 2 * 24 * 12 + 7;
    let from_cron = cron_fires(&Schedule::parse(&cron_expr).unwrap(), base, n);
    same_fires(
        "stats.schedule",
        &from_cron,
        &cron_fires(&schedule, base, n),
    );
    same_fires(
        calendar[0],
        &from_cron,
        &systemd_fires(calendar[0], base, n),
    );
}

/// Equal fire times, or a failure that names the first one that differs.
fn same_fires(what: &str, cron: &[DateTime<Utc>], other: &[DateTime<Utc>]) {
    assert_eq!(cron.len(), other.len(), "{what}");
    if let Some(i) = (0..cron.len()).find(|&i| cron[i] != other[i]) {
        panic!(
            "{what}: fire #{i} is {} by the crontab line, {} by {what}",
            cron[i], other[i]
        );
    }
}
