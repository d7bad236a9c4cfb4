//! The .deb on a booted systemd: what no offline check sees (a socket a hardened unit can't
//! reach, a state directory it can't write, a group it lacks) shows up only when systemd, not
//! a test harness, starts the units.
//!
//! The test boots this machine's own root filesystem as a container: an overlay over `/` in a
//! mount namespace of its own (gone with the container, whatever happens), booted by
//! `systemd-nspawn --boot` on a private network. Debian's mosquitto, rsyslog and journald start
//! in there as on a real host. It installs the package that `.ci/package` built
//! (target/debian/iotitan_*.deb), enables every unit with a config that has a rule and a
//! channel (the ThingSpeak stand-in listens on the container's loopback), and checks each
//! daemon's work, clean stops, a restart that loses nothing, both ways stats is scheduled
//! (timer, and cron where systemd does not run), and that purge leaves nothing behind.
//!
//! Needs root and `systemd-nspawn` (package systemd-container); `.ci/run` installs it.

mod common;
mod thingspeak;

use common::{TIMEOUT, require, wait_until};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

const CHANNEL: u64 = 752701;
const KEY: &str = "BOOTEDKEY0000001";
const TOPIC: &str = "iotitan/home/room/dht22/temperature";
const TOKEN: &str = "booted-site-token-0123456789abcdef";

/// The newest .deb that `.ci/package` (cargo deb) built from this tree.
fn package() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/debian");
    let mut debs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("iotitan_") && n.ends_with(".deb"))
                })
                .collect()
        })
        .unwrap_or_default();
    debs.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    debs.pop().unwrap_or_else(|| {
        panic!(
            "no iotitan_*.deb in {}: build it first with .ci/package (`cargo deb`); .ci/run does",
            dir.display()
        )
    })
}

/// A booted container over an overlay of `/`. Dropping it kills the container's init, which
/// ends every process in it and, with them, the mount namespace that holds the overlay.
struct Container {
    nspawn: Child,
    leader: i32,
    dir: tempfile::TempDir,
}

impl Container {
    fn boot() -> Container {
        require("systemd-nspawn", "systemd-container");
        let uid = Command::new("id").arg("-u").output().expect("id -u");
        assert_eq!(
            String::from_utf8_lossy(&uid.stdout).trim(),
            "0",
            "booting a container needs root (.ci/run runs as root)"
        );
        // Not under /tmp: the container's tmp.mount would hide nothing of ours, but keeping the
        // overlay's layers off the lower tree's /tmp keeps them out of what the container sees.
        let dir = tempfile::Builder::new()
            .prefix("iotitan-booted-")
            .tempdir_in("/var/tmp")
            .expect("tempdir");
        for d in ["upper", "work", "root"] {
            std::fs::create_dir(dir.path().join(d)).expect("overlay dirs");
        }
        let d = dir.path().display();
        let script = format!(
            "mount -t overlay overlay -o lowerdir=/,upperdir={d}/upper,workdir={d}/work {d}/root \
             && exec systemd-nspawn --quiet --console=passive --directory={d}/root \
             --private-network --register=no --keep-unit --boot"
        );
        let log = std::fs::File::create(dir.path().join("console.log")).expect("console log");
        let nspawn = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start systemd-nspawn");
        let mut c = Container {
            nspawn,
            leader: 0,
            dir,
        };
        // The container's init is a child of nspawn, named systemd.
        let nspawn_pid = c.nspawn.id();
        assert!(
            wait_until(TIMEOUT, || {
                c.leader = children(nspawn_pid)
                    .into_iter()
                    .find(|p| comm(*p).as_deref() == Some("systemd"))
                    .unwrap_or(0);
                c.leader != 0
            }),
            "the container did not start:\n{}",
            c.console()
        );
        // Until systemd's own socket is up, systemctl cannot even ask (no bus yet).
        let mut state = String::new();
        wait_until(Duration::from_secs(90), || {
            let o = c.sh("systemctl is-system-running --wait");
            state = String::from_utf8_lossy(&o.stdout).trim().to_owned();
            state == "running" || state == "degraded"
        });
        assert!(
            state == "running" || state == "degraded",
            "the container did not finish booting ({state}):\n{}",
            c.sh_text("systemctl --failed --no-pager; journalctl -b --no-pager | tail -50")
        );
        c
    }

    fn console(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("console.log")).unwrap_or_default()
    }

    /// Run `script` with `sh -c` in all the container's namespaces, bounded in time.
    fn sh(&self, script: &str) -> Output {
        self.sh_in(script, &[])
    }

    fn sh_in(&self, script: &str, stdin: &[u8]) -> Output {
        let mut child = Command::new("nsenter")
            .args([
                "-t",
                &self.leader.to_string(),
                "-a",
                "timeout",
                "120",
                "sh",
                "-c",
            ])
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nsenter");
        if let Some(mut input) = child.stdin.take() {
            use std::io::Write;
            input.write_all(stdin).expect("write to the command");
        }
        child.wait_with_output().expect("nsenter output")
    }

    /// stdout and stderr of `script`, whatever its exit.
    fn sh_text(&self, script: &str) -> String {
        let o = self.sh(script);
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    }

    /// stdout of `script`, which must succeed.
    fn ok(&self, script: &str) -> String {
        let o = self.sh(script);
        assert!(
            o.status.success(),
            "in the container: {script}\nexit {:?}\n{}{}",
            o.status.code(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Write `text` to `path` in the container (mode 0644 unless `mode` says otherwise).
    fn write(&self, path: &str, text: &str, mode: &str) {
        let o = self.sh_in(
            &format!("cat > {path} && chmod {mode} {path}"),
            text.as_bytes(),
        );
        assert!(o.status.success(), "write {path}: {o:?}");
    }

    /// Poll `script` until it succeeds, within the test timeout; returns its last output.
    fn until(&self, what: &str, script: &str) -> String {
        self.until_within(TIMEOUT, what, script)
    }

    /// [`Container::until`] within `limit`.
    fn until_within(&self, limit: Duration, what: &str, script: &str) -> String {
        let mut last = String::new();
        let held = wait_until(limit, || {
            let o = self.sh(script);
            last = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            o.status.success()
        });
        assert!(
            held,
            "{what}: `{script}` never succeeded; last said:\n{last}"
        );
        last
    }

    /// Run `f` on a thread in the container's network namespace: sockets it binds listen on
    /// the container's loopback, where the units can reach them.
    fn in_network<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let ns = std::fs::File::open(format!("/proc/{}/ns/net", self.leader)).expect("netns");
        std::thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: setns on this thread only (CLONE_NEWNET is per thread); `ns` is an
                // open namespace file that outlives the call.
                let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
                f()
            })
            .join()
            .expect("the thread in the container's network")
        })
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if self.leader != 0 {
            // SIGKILL to a PID namespace's init ends every process in it.
            // SAFETY: plain kill(2) on a pid we found as nspawn's child.
            unsafe { libc::kill(self.leader, libc::SIGKILL) };
        }
        if common::wait_exit(&mut self.nspawn, Duration::from_secs(10)).is_none() {
            let _ = self.nspawn.kill();
            let _ = self.nspawn.wait();
        }
    }
}

fn children(pid: u32) -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(|t| t.ok())
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|c| {
            c.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<i32>>()
        })
        .flat_map(|p| {
            // nspawn's first child forks init and may stay in between.
            let mut v = vec![p];
            v.extend(children(p as u32));
            v
        })
        .collect()
}

fn comm(pid: i32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim().to_owned())
}

fn config(bridge_url: &str) -> String {
    format!(
        r##"state_dir = "/var/lib/iotitan"

[mqtt]
host = "localhost"

[logger]
subscribe = ["#"]

[stats]
schedule = "* * * * *"
topics = ["iotitan/#"]
settle = "1s"

[[alerts.rule]]
topics = "iotitan/+/+/+/temperature"
high = 30.0

[[bridge.channel]]
id = {CHANNEL}
fields = {{ "{TOPIC}" = 1 }}
url = "{bridge_url}"
min_interval = "1s"

[http]
listen = "127.0.0.1:8750"

[[http.token]]
name = "site"
scopes = ["ingest", "read"]
"##
    )
}

/// The cron line's command: what cron hands to `sh -c` (after the five fields and the user).
fn cron_command(c: &Container) -> String {
    let cron = c.ok("cat /etc/cron.d/iotitan");
    let line = cron
        .lines()
        .find(|l| !l.starts_with('#') && l.contains("iotitan-stats"))
        .unwrap_or_else(|| panic!("no iotitan-stats line in /etc/cron.d/iotitan:\n{cron}"));
    line.split_whitespace()
        .skip(6)
        .collect::<Vec<_>>()
        .join(" ")
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Stop the logger, publish `n` QoS 1 readings on `iotitan/load/outage-<name>/0` (values 0 to
/// n - 1) with the simulator the package installs, start the logger again, and wait until
/// query (as user iotitan, from `auto`'s sources) reads every one of them back.
fn outage(c: &Container, name: &str, n: u32) {
    let prefix = format!("iotitan/load/outage-{name}");
    c.ok("systemctl stop iotitan-logger");
    c.ok(&format!(
        "iotitan-sim --config /etc/iotitan/iotitan.toml load --broker 127.0.0.1:1883 \
         --rate 0 --count {n} --topics 1 --prefix {prefix}"
    ));
    c.ok("systemctl start iotitan-logger");
    // The broker hands the backlog over at once; each look reads all of it back.
    c.until_within(
        Duration::from_secs(120),
        &format!("{n} distinct readings of an outage ({name}) read back by query"),
        &format!(
            "n=$(runuser -u iotitan -- iotitan-stats --config /etc/iotitan/iotitan.toml query \
                 --topics '{prefix}/#' --since -1h 2> /tmp/query.err | grep -F ',{prefix}/0,' \
                 | cut -d, -f3 | sort -u | wc -l); \
             echo \"query $n\"; test $n = {n}"
        ),
    );
    // The user `iotitan` reads the journal's files itself, not through journalctl.
    let log = c.ok("cat /tmp/query.err");
    assert!(
        log.contains("values exported") && !log.contains("WARN"),
        "query ({name}) said: {log}"
    );
}

#[test]
fn the_package_works_on_a_booted_systemd() {
    let deb = package();
    let c = Container::boot();
    let daemons = "iotitan-logger iotitan-alerts iotitan-bridge iotitan-http";

    // Install. The timer is enabled and started by the package, as Debian's are.
    let bytes = std::fs::read(&deb).expect("read the .deb");
    let o = c.sh_in("cat > /root/iotitan.deb", &bytes);
    assert!(o.status.success(), "copy the .deb: {o:?}");
    c.ok("DEBIAN_FRONTEND=noninteractive dpkg -i /root/iotitan.deb");
    assert_eq!(
        c.ok("systemctl is-enabled iotitan-stats.timer").trim(),
        "enabled"
    );
    assert_eq!(
        c.ok("systemctl is-active iotitan-stats.timer").trim(),
        "active"
    );

    // A config with a rule and a channel; the write key as a credential file.
    let standin =
        c.in_network(|| thingspeak::ThingSpeak::start(CHANNEL, KEY, Duration::from_millis(500)));
    c.write("/etc/iotitan/iotitan.toml", &config(&standin.url), "0644");
    c.write(
        &format!("/etc/iotitan/credentials/thingspeak-{CHANNEL}.key"),
        KEY,
        "0600",
    );
    c.write("/etc/iotitan/credentials/http-site.token", TOKEN, "0600");
    c.ok("runuser -u iotitan -- iotitan-stats --config /etc/iotitan/iotitan.toml check-config");
    // Debian's stock mosquitto.conf, and what the package installed beside it: the broker
    // keeps a stopped logger's backlog (mosquitto's default keeps 1000 and drops the rest),
    // and the logger's check-config says so, or names the line to change when it does not.
    let check = "iotitan-logger --config /etc/iotitan/iotitan.toml check-config";
    let said = c.ok(check);
    assert!(!said.contains("# warning"), "{said}");
    c.ok("mv /etc/mosquitto/conf.d/iotitan.conf /root/mosquitto-iotitan.conf");
    let said = c.ok(check);
    assert!(
        said.contains("# warning: the MQTT broker keeps at most 1000 messages")
            && said
                .contains("add `max_queued_messages 500000` to /etc/mosquitto/conf.d/iotitan.conf"),
        "{said}"
    );
    c.ok("mv /root/mosquitto-iotitan.conf /etc/mosquitto/conf.d/iotitan.conf");

    // Type=notify: `enable --now` returns once each daemon said READY.
    c.ok(&format!("systemctl enable --now {daemons}"));
    for d in daemons.split(' ') {
        assert_eq!(
            c.ok(&format!("systemctl is-active {d}")).trim(),
            "active",
            "{d}: {}",
            c.sh_text(&format!("journalctl -u {d} --no-pager | tail -20"))
        );
    }
    // syslog.target and sources are `auto`: with rsyslog under systemd, rsyslog's own
    // socket, and /var/log/syslog read back.
    c.until(
        "the logger names rsyslog's socket as its target",
        "journalctl -u iotitan-logger -o cat --no-pager | grep -q ' to unix:/run/systemd/journal/syslog$'",
    );
    // On its first start the logger has no session at the broker yet: wait until it records.
    c.until(
        "the logger's first record",
        "mosquitto_pub -q 1 -t iotitan/probe -m up && \
         grep -F 'iotitan-logger[' /var/log/syslog | grep -q 'iotitan/probe up$'",
    );

    // A reading above the rule's high: recorded, alerted, bridged.
    let published = chrono::Utc::now();
    c.ok(&format!("mosquitto_pub -q 1 -t {TOPIC} -m 35.5"));
    let record = format!("{TOPIC} 35.5");
    c.until(
        "the record in /var/log/syslog",
        &format!(
            "grep -F 'iotitan-logger[' /var/log/syslog | grep -qF {}",
            shell_quote(&record)
        ),
    );
    let alert = c.ok(&format!("mosquitto_sub -C 1 -W 20 -t {TOPIC}_alert_hi"));
    assert_eq!(alert.trim(), "on");
    // The bridge says READY before its subscription is in place (so a first reading can pass
    // it by): the same reading again until one reaches the stand-in. Same value, same mean.
    let bridged = wait_until(TIMEOUT, || {
        if standin.try_wait_requests(1, Duration::from_secs(1)) {
            return true;
        }
        c.ok(&format!("mosquitto_pub -q 1 -t {TOPIC} -m 35.5"));
        false
    });
    let entries = standin.entries();
    assert!(
        bridged && !entries.is_empty(),
        "{:?}\n{}",
        standin.requests(),
        c.sh_text("journalctl -u iotitan-bridge --no-pager | tail -30; grep -a iotitan-bridge /var/log/mosquitto/mosquitto.log | grep -v PING | head -20")
    );
    assert_eq!(entries[0]["field1"], 35.5, "{entries:?}");

    // A reading over HTTP: published, then recorded like any other.
    let answer = c.ok(&format!(
        "curl -sS --fail-with-body -H 'Authorization: Bearer {TOKEN}' \
         -H 'Content-Type: application/json' \
         -d '{{\"topic\": \"iotitan/http/site/voltage\", \"value\": 229.5}}' \
         http://127.0.0.1:8750/api/v1/readings"
    ));
    assert!(answer.contains("\"published\":1"), "{answer}");
    c.until(
        "the HTTP reading in /var/log/syslog",
        "grep -qF 'iotitan/http/site/voltage 229.5' /var/log/syslog",
    );
    // And read back by the unit, as user iotitan, from /var/log/syslog (group adm).
    let history = c.ok(&format!(
        "curl -sS --fail-with-body -H 'Authorization: Bearer {TOKEN}' \
         'http://127.0.0.1:8750/api/v1/history?topics=iotitan%2Fhttp%2Fsite%2F%23&since=-1h'"
    ));
    assert!(
        history.contains("\"iotitan/http/site/voltage\",229.5"),
        "{history}"
    );

    // A restart of the logger in the middle of a stream loses nothing.
    let lines: String = (0..3000).map(|i| format!("{i}\n")).collect();
    c.write("/root/load.txt", &lines, "0644");
    c.ok(
        "head -n 1000 /root/load.txt | mosquitto_pub -q 1 -t iotitan/load/restart -l && \
         (tail -n +1001 /root/load.txt | mosquitto_pub -q 1 -t iotitan/load/restart -l &) && \
         systemctl restart iotitan-logger && wait",
    );
    // The logger writes to rsyslog's own socket: a full socket pushes back on it, and the
    // broker holds the rest, so /var/log/syslog holds every record. (Through journald's
    // /dev/log it would not: journald forwards to rsyslog without waiting, and a burst like
    // this one missed hundreds of records.)
    c.until(
        "3000 distinct records in /var/log/syslog after a restart",
        "n=$(grep -o 'iotitan/load/restart [0-9]*$' /var/log/syslog | sort -u | wc -l); \
         echo \"/var/log/syslog $n\"; test $n = 3000",
    );
    let burst: String = (0..5000).map(|i| format!("{i}\n")).collect();
    c.write("/root/burst.txt", &burst, "0644");
    c.ok("mosquitto_pub -q 1 -t iotitan/load/burst -l < /root/burst.txt");
    c.until(
        "a burst of 5000 distinct records in /var/log/syslog",
        "s=$(grep -o 'iotitan/load/burst [0-9]*$' /var/log/syslog | sort -u | wc -l); \
         echo \"/var/log/syslog $s\"; test $s = 5000",
    );

    // A stopped logger (an upgrade, a crash, a reboot) misses nothing on the stock broker with
    // the package's settings: 20 000 readings published meanwhile are all recorded once it
    // is back, and queryable.
    outage(&c, "rsyslog", 20_000);

    // Stats by its unit, as the timer starts it: the window [minute, next minute) that holds
    // the reading, once that minute and the settle time are over.
    let minute_over = (published.timestamp() / 60 + 1) * 60 + 2;
    // Waiting for the clock itself: there is no event to await.
    while chrono::Utc::now().timestamp() < minute_over {
        std::thread::sleep(Duration::from_millis(200));
    }
    c.ok("systemctl start iotitan-stats");
    assert_eq!(
        c.ok("systemctl show -p Result --value iotitan-stats")
            .trim(),
        "success"
    );
    let mean = c.ok(&format!("mosquitto_sub -C 1 -W 10 -t {TOPIC}_mean"));
    assert_eq!(mean.trim(), "35.5");

    // Cron: the line steps aside where systemd runs, and runs stats where it does not.
    c.write("/run/cron-line.sh", &cron_command(&c), "0644");
    // What stats writes to stderr (cron hands it to logger(1)) starts with a time stamp and a
    // level; what the unit writes goes to the journal natively, without. (`_COMM=logger`
    // would be the obvious filter, but journald cannot tell the command of a sender that has
    // already exited.)
    let by_logger = "journalctl -t iotitan-stats -o cat --no-pager \
                     | grep -cE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[^ ]*Z +(INFO|WARN|ERROR)'; true";
    let before = c.ok(by_logger);
    let trace = c.ok("runuser -u iotitan -- sh -x /run/cron-line.sh 2>&1");
    // `sh -x` traces the test, and the pipeline's commands only when they run. The two
    // commands of the pipeline trace themselves at the same time, and dash writes a trace
    // word by word, so their words interleave ("+ /usr/bin/iotitan-stats+ /usr/bin/logger
    // --config …", seen in CI): look for the one word that only stats' trace holds.
    let ran = "/usr/bin/iotitan-stats";
    assert!(!trace.contains(ran), "{trace}");
    assert_eq!(
        c.ok(by_logger),
        before,
        "the cron line ran stats beside the timer"
    );
    // Without systemd: /run/systemd hidden in a mount namespace, journald's sockets kept.
    c.write(
        "/run/no-systemd.sh",
        "set -e\n\
         mkdir -p /run/iotitan-journal\n\
         mount --bind /run/systemd/journal /run/iotitan-journal\n\
         mount -t tmpfs none /run/systemd\n\
         mkdir /run/systemd/journal\n\
         mount --bind /run/iotitan-journal /run/systemd/journal\n\
         runuser -u iotitan -- sh -x /run/cron-line.sh 2>&1\n",
        "0644",
    );
    let trace = c.ok("unshare -m sh /run/no-systemd.sh");
    assert!(trace.contains(ran), "{trace}");
    c.until(
        &format!("stats' own lines through logger(1), after:\n{trace}"),
        &format!(
            "test \"$({by_logger})\" -gt {} || \
             {{ journalctl -t iotitan-stats -o short-unix --no-pager | tail -5; false; }}",
            before.trim()
        ),
    );

    // journald alone (rsyslog stopped, as if removed): `auto` is /dev/log, and the journal is
    // read back. syslog.socket's file stays behind when it stops; nobody answers there. The
    // running logger finds its socket dead at the next write and, deciding `auto` again as
    // it reconnects, writes those records and the rest to /dev/log.
    c.ok("systemctl stop rsyslog.service syslog.socket");
    let lines: String = (0..1000).map(|i| format!("{i}\n")).collect();
    c.write("/root/journal.txt", &lines, "0644");
    c.ok("mosquitto_pub -q 1 -t iotitan/load/journal -l < /root/journal.txt");
    c.until(
        "the running logger moves to /dev/log",
        "journalctl -u iotitan-logger -o cat --no-pager \
         | grep -q 'syslog target auto: now unix:/dev/log$'",
    );
    c.until(
        "1000 distinct records in the journal, read back by query as user iotitan",
        "n=$(runuser -u iotitan -- iotitan-stats --config /etc/iotitan/iotitan.toml query \
             --topics iotitan/load/journal --since -1h | grep ',iotitan/load/journal,' \
             | cut -d, -f3 | sort -u | wc -l); \
         echo \"query $n\"; test $n = 1000",
    );
    // The read API too, from its sandboxed unit, started while rsyslog ran: `auto` is
    // decided at each read.
    c.until(
        "the journal's records through the read API",
        &format!(
            "curl -sS --fail-with-body -H 'Authorization: Bearer {TOKEN}' \
             'http://127.0.0.1:8750/api/v1/history?topics=iotitan%2Fload%2Fjournal&since=-1h' \
             | grep -F '\"iotitan/load/journal\",999'"
        ),
    );

    // journald alone: 100 000 readings held by the broker for a stopped logger come back as
    // one burst, far past journald's default rate limit (10 000 in 30 s per unit, times a
    // factor of the free space), which the logger's unit lifts.
    outage(&c, "journal", 100_000);

    // Stops are clean.
    c.ok(&format!("systemctl stop {daemons}"));
    for d in daemons.split(' ') {
        let show = c.ok(&format!(
            "systemctl show -p Result -p ExecMainCode -p ExecMainStatus {d}"
        ));
        assert!(
            show.contains("Result=success") && show.contains("ExecMainStatus=0"),
            "{d}: {show}"
        );
    }

    // Purge leaves nothing behind.
    let files = c.ok("dpkg -L iotitan");
    c.ok("DEBIAN_FRONTEND=noninteractive dpkg --purge iotitan");
    let left: Vec<&str> = files
        .lines()
        .filter(|f| f.starts_with('/') && !Path::new(f).is_dir())
        .filter(|f| {
            c.sh(&format!("test -e {f} && ! test -d {f}"))
                .status
                .success()
        })
        .collect();
    assert!(left.is_empty(), "purge left {left:?}");
    let leftovers = c.sh_text(
        "ls -d /etc/iotitan /var/lib/iotitan 2>/dev/null; find /etc/systemd -name 'iotitan*'; \
         pgrep -u iotitan -a",
    );
    assert!(leftovers.trim().is_empty(), "purge left:\n{leftovers}");
}
