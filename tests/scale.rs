//! Beyond one machine: several loggers sharing one stream through an MQTT shared
//! subscription into one central rsyslogd over TCP (mosquitto), the same split by topic on a
//! real two-node RabbitMQ cluster, and alerts partitioned by configuration. docs/SCALING.md
//! explains the setups these tests prove.

mod common;
use common::*;
use iotitan::record;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The shared subscription every logger of the group takes.
const SHARE: &str = "$share/iotitan/load/#";

/// Messages in the stream.
const N: usize = 10_000;

/// A logger instance of the group: its own directory and config, and a client id of its own
/// (`<mqtt.client_id>-logger`) that stays the same across restarts, so that a restarted
/// instance finds its persistent session, with what the broker kept for it, again.
fn member_config(dir: &Path, m: &Mosquitto, r: &Rsyslogd, name: &str) -> PathBuf {
    let dir = dir.join(name);
    std::fs::create_dir_all(&dir).expect("member dir");
    write_config(
        &dir,
        &format!(
            "{}\n[logger]\nsubscribe = [\"{SHARE}\"]\nqos = 1\nclean_session = false\n\
             [syslog]\ntarget = \"tcp:127.0.0.1:{}\"\n",
            m.mqtt_toml(&format!("site-{name}")),
            r.tcp_port
        ),
    )
}

/// Start a member and wait until the broker holds its subscription: a SUBACK on a fresh
/// session, or a session found present (which carries the subscription).
fn start_member(cfg: &Path) -> Logger {
    let l = Logger::start(cfg);
    assert!(
        wait_until(TIMEOUT, || {
            let log = l.log();
            log.contains("subscribed: ") || log.contains("session present: true")
        }),
        "the logger did not subscribe:\n{}",
        l.log()
    );
    l
}

/// The numbers of the `load/` records in rsyslog's output, by the pid that wrote them.
fn numbers_by_pid(r: &Rsyslogd) -> HashMap<u32, Vec<usize>> {
    let mut by = HashMap::<u32, Vec<usize>>::new();
    for line in r.lines() {
        let Some(start) = line.find(" iotitan-logger[") else {
            continue;
        };
        let rest = &line[start + " iotitan-logger[".len()..];
        let Some((pid, msg)) = rest.split_once("]: ") else {
            continue;
        };
        let pid: u32 = pid.parse().expect("a pid in the tag");
        let rec = record::decode(msg.as_bytes()).expect("every record decodes");
        if !rec.topic.starts_with(b"load/") {
            continue;
        }
        let n = std::str::from_utf8(&rec.payload)
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("a numbered payload: {line}"));
        by.entry(pid).or_default().push(n);
    }
    by
}

/// How many records each number has, over every writer.
fn tally(by_pid: &HashMap<u32, Vec<usize>>) -> HashMap<usize, usize> {
    let mut t = HashMap::new();
    for n in by_pid.values().flatten() {
        *t.entry(*n).or_insert(0) += 1;
    }
    t
}

/// Check that every number written more than once was written exactly twice, once by the
/// killed process and once by its successor, and that there are at most `inflight` of them
/// (what the broker lets be unacknowledged to one client). Returns how many there were.
fn only_redeliveries(
    by_pid: &HashMap<u32, Vec<usize>>,
    killed_pid: u32,
    successor_pid: u32,
    inflight: usize,
) -> usize {
    let t = tally(by_pid);
    let dups: Vec<usize> = t.iter().filter(|(_, c)| **c > 1).map(|(n, _)| *n).collect();
    let of = |pid: u32, n: usize| {
        by_pid
            .get(&pid)
            .map_or(0, |v| v.iter().filter(|x| **x == n).count())
    };
    for &n in &dups {
        assert_eq!(t[&n], 2, "{n} written {} times", t[&n]);
        assert_eq!(
            (of(killed_pid, n), of(successor_pid, n)),
            (1, 1),
            "duplicate {n} is not a redelivery to the restarted member"
        );
    }
    assert!(
        dups.len() <= inflight,
        "{} duplicates, more than can be in flight",
        dups.len()
    );
    dups.len()
}

/// `loggers` members share [`N`] QoS 1 messages; the first is SIGKILLed once about half are
/// in syslog and started again (as systemd's `Restart=on-failure` does) once the others have
/// written more. Then:
///
/// - nothing is lost: every number is in the central syslog;
/// - the only duplicates are MQTT's own QoS 1 redeliveries: messages the killed process had
///   written to syslog but not yet acknowledged when it died. The broker delivers those
///   again to the same session (mosquitto does not hand a member's in-flight messages to
///   another member), so each duplicate is one record from the killed process and one from
///   its successor, and there are at most as many as the broker lets be in flight
///   unacknowledged to one client (`max_inflight_messages`, 100 in the test broker; the
///   logger acknowledges right after writing, so usually far fewer).
///
/// While the member is dead, mosquitto keeps dealing it its share of the stream and queues
/// that for its persistent session (`max_queued_messages 0`, unlimited, in the test broker:
/// mosquitto's default of 1 000 would drop the rest); the restarted member writes them.
fn shared_stream_survives_a_sigkill(loggers: usize) {
    let m = Mosquitto::start();
    let r = Rsyslogd::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let configs: Vec<PathBuf> = (0..loggers)
        .map(|i| member_config(dir.path(), &m, &r, &format!("l{i}")))
        .collect();
    let mut members: Vec<Logger> = configs.iter().map(|c| start_member(c)).collect();
    let messages: Vec<(String, Vec<u8>)> = (0..N)
        .map(|i| (format!("load/{}", i % 50), i.to_string().into_bytes()))
        .collect();
    let publisher = Publisher::start(m.port, "scale-pub", messages, 2000, 1);
    let count = |r: &Rsyslogd| tally(&numbers_by_pid(r)).len();
    assert!(
        wait_until(TIMEOUT, || count(&r) >= N / 2),
        "half the stream never arrived"
    );
    let killed_pid = members[0].child.id();
    members[0].signal("-KILL");
    wait_exit(&mut members[0].child, TIMEOUT).expect("killed");
    // The survivors go on while the broker queues the dead member's share.
    let at_kill = count(&r);
    assert!(
        wait_until(TIMEOUT, || count(&r) >= at_kill + N / 10),
        "the survivors stopped writing"
    );
    members[0] = start_member(&configs[0]);
    assert!(
        members[0].log().contains("session present: true"),
        "the restarted member found its session:\n{}",
        members[0].log()
    );
    let successor_pid = members[0].child.id();
    let complete = wait_until(Duration::from_secs(90), || count(&r) >= N);
    let by_pid = numbers_by_pid(&r);
    let t = tally(&by_pid);
    let missing: Vec<usize> = (0..N).filter(|i| !t.contains_key(i)).collect();
    assert!(
        complete && missing.is_empty(),
        "{} of {N} lost (published {}); first: {:?}\nrestarted member:\n{}",
        missing.len(),
        publisher.sent(),
        &missing[..missing.len().min(20)],
        members[0].log()
    );
    // Redeliveries come in right after the reconnect, before the queue: all are in by now.
    let dups = only_redeliveries(&by_pid, killed_pid, successor_pid, MOSQUITTO_INFLIGHT);
    eprintln!(
        "{loggers} loggers, {N} messages: {} records by pid {:?}, {} duplicates (redeliveries)",
        t.values().sum::<usize>(),
        by_pid
            .iter()
            .map(|(p, v)| (*p, v.len()))
            .collect::<Vec<_>>(),
        dups
    );
    // Every member still stops cleanly, having written all it received.
    for l in &mut members {
        let (status, _) = l.terminate();
        let log = l.log();
        assert!(status.success(), "exit status {status:?}\n{log}");
        let c = stopped_counters(&log);
        assert_eq!(c["received"], c["written"], "{c:?}");
    }
}

#[test]
fn two_loggers_share_a_stream_and_a_sigkill_loses_nothing() {
    shared_stream_survives_a_sigkill(2);
}

#[test]
fn three_loggers_share_a_stream_and_a_sigkill_loses_nothing() {
    shared_stream_survives_a_sigkill(3);
}

/// mosquitto restores a persistent session's plain subscriptions after a restart, but not its
/// shared ones: each member subscribes to its shared filters again when it finds its session
/// present, or the group would receive nothing more. The retained message under the filter,
/// which the broker sends again for that subscription, is not written a second time.
#[test]
fn after_a_broker_restart_the_group_still_receives_and_no_retained_message_is_written_twice() {
    // Every packet in its log: the test waits for the members' acknowledgements below.
    let mut m = Mosquitto::start_with("log_type all");
    let r = Rsyslogd::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let members: Vec<Logger> = ["a", "b"]
        .iter()
        .map(|name| start_member(&member_config(dir.path(), &m, &r, name)))
        .collect();
    const RETAINED: usize = 999_999;
    m.publish(&[
        "-t",
        "load/retained",
        "-m",
        &RETAINED.to_string(),
        "-q",
        "1",
        "-r",
    ]);
    publish_part(&m, dir.path(), 0..PART);
    let count = |r: &Rsyslogd| tally(&numbers_by_pid(r)).len();
    assert!(
        wait_until(TIMEOUT, || count(&r) > PART),
        "the first part never arrived"
    );

    // The broker has every acknowledgement before it restarts: a member acknowledges a message
    // once it handed the record to syslog, which may be after the record is in the file, and
    // what the broker saves unacknowledged it delivers again (a duplicate that is no fault).
    let acked = wait_until(TIMEOUT, || {
        let log = m.log();
        log.matches("Sending PUBLISH to site-").count()
            == log.matches("Received PUBACK from site-").count()
    });
    assert!(acked, "the members never acknowledged everything");
    m.restart();
    let subscriptions = |l: &Logger| l.log().matches("subscribed: $share/iotitan/load/#").count();
    for l in &members {
        assert!(
            wait_until(TIMEOUT, || subscriptions(l) == 2),
            "no second subscription after the restart:\n{}",
            l.log()
        );
        assert!(l.log().contains("session present: true"), "{}", l.log());
    }
    publish_part(&m, dir.path(), PART..2 * PART);
    let complete = wait_until(TIMEOUT, || count(&r) > 2 * PART);
    let t = tally(&numbers_by_pid(&r));
    let missing = (0..2 * PART).filter(|i| !t.contains_key(i)).count();
    assert!(
        complete && missing == 0,
        "{missing} of {} lost after the broker restart",
        2 * PART
    );
    assert_eq!(t.get(&RETAINED), Some(&1), "the retained message, once");
    let dups = t.values().filter(|c| **c > 1).count();
    assert_eq!(dups, 0, "no duplicates without a kill");
    for mut l in members {
        let (status, _) = l.terminate();
        assert!(status.success(), "{status:?}\n{}", l.log());
    }
}

/// Messages in each part of the stream of the `leave` tests.
const PART: usize = 2_000;

/// Publish the numbers of `range` at QoS 1 on `load/n` (one message each); returns once the
/// broker acknowledged them all, that is once it dealt each to a member's session.
fn publish_part(m: &Mosquitto, dir: &Path, range: std::ops::Range<usize>) {
    let file = dir.join(format!("part-{}.txt", range.start));
    let text: String = range.map(|i| format!("{i}\n")).collect();
    std::fs::write(&file, text).expect("write the part");
    m.publish_lines(&["-q", "1", "-t", "load/n"], &file);
}

/// What one run of `iotitan-logger leave` did.
struct Leave {
    status: std::process::ExitStatus,
    pid: u32,
    log: String,
}

/// Run `iotitan-logger --config cfg leave ARGS` to its end (bounded).
fn leave(cfg: &Path, args: &[&str]) -> Leave {
    let mut run = Program::new("iotitan-logger")
        .config_file(cfg)
        .arg("leave")
        .args(args)
        .start();
    let pid = run.pid();
    let status = wait_exit(&mut run.child, Duration::from_secs(90));
    let log = run.log();
    let status = status.unwrap_or_else(|| panic!("leave did not end:\n{log}"));
    Leave { status, pid, log }
}

/// Every number of `0..n` is in syslog (bounded wait); fails with the missing ones.
fn all_written(r: &Rsyslogd, n: usize, what: &str) -> HashMap<u32, Vec<usize>> {
    let complete = wait_until(Duration::from_secs(60), || {
        tally(&numbers_by_pid(r)).len() >= n
    });
    let by_pid = numbers_by_pid(r);
    let t = tally(&by_pid);
    let missing: Vec<usize> = (0..n).filter(|i| !t.contains_key(i)).collect();
    assert!(
        complete && missing.is_empty(),
        "{what}: {} of {n} lost; first: {:?}",
        missing.len(),
        &missing[..missing.len().min(20)]
    );
    by_pid
}

/// Members A and B share `load/#`; the first part is written, B is stopped (SIGTERM, as
/// `systemctl stop` does), and the broker deals B's session its share of the second part.
/// Returns A (running) and B's config.
fn b_stopped_with_a_queued_share(m: &Mosquitto, r: &Rsyslogd, dir: &Path) -> (Logger, PathBuf) {
    let cfg_a = member_config(dir, m, r, "a");
    let cfg_b = member_config(dir, m, r, "b");
    let a = start_member(&cfg_a);
    let mut b = start_member(&cfg_b);
    publish_part(m, dir, 0..PART);
    all_written(r, PART, "first part");
    let (status, _) = b.terminate();
    assert!(status.success(), "B stops: {status:?}\n{}", b.log());
    publish_part(m, dir, PART..2 * PART);
    (a, cfg_b)
}

/// After a leave that failed (its process `failed_pid`): B started again finds its session,
/// every number of the three parts is in syslog, B takes a share of the third (it is still
/// in the group), the failed leave wrote nothing, and no marker reached syslog.
fn b_is_still_a_member(m: &Mosquitto, r: &Rsyslogd, dir: &Path, cfg_b: &Path, failed_pid: u32) {
    let b = start_member(cfg_b);
    assert!(
        b.log().contains("session present: true"),
        "B found its session:\n{}",
        b.log()
    );
    publish_part(m, dir, 2 * PART..3 * PART);
    let by_pid = all_written(r, 3 * PART, "three parts");
    assert!(
        by_pid
            .get(&b.child.id())
            .is_some_and(|v| v.iter().any(|n| *n >= 2 * PART)),
        "B is still a member of the group: it took a share of the last part"
    );
    assert!(
        !by_pid.contains_key(&failed_pid),
        "the failed leave wrote nothing"
    );
    assert!(
        !r.lines().iter().any(|l| l.contains("iotitan/leave")),
        "a marker reached syslog"
    );
}

/// B's config with `from` replaced by `to`, written in a directory `name` of its own.
fn config_changed(dir: &Path, cfg_b: &Path, name: &str, from: &str, to: &str) -> PathBuf {
    let own = dir.join(name);
    std::fs::create_dir_all(&own).expect("dir");
    let text = std::fs::read_to_string(cfg_b).expect("B's config");
    write_config(&own, &text.replace(from, to))
}

/// Scaling down without loss. Members A and B share `load/#`; B is stopped (SIGTERM, as
/// `systemctl stop` does) and the broker goes on dealing it its share of the second part of
/// the stream, queued for its session. `iotitan-logger leave` with B's config writes that
/// share to syslog, unsubscribes, waits for its marker and ends the session: exit 0, and the
/// third part goes to A alone. Every number of the three parts is in syslog, the leave wrote
/// only numbers of the second part, and the marker never reached syslog. A second leave finds
/// no session (it was ended) and has nothing to write.
#[test]
fn a_member_leaves_the_group_and_its_queued_share_is_written() {
    let m = Mosquitto::start();
    let r = Rsyslogd::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, cfg_b) = b_stopped_with_a_queued_share(&m, &r, dir.path());

    let left = leave(&cfg_b, &[]);
    assert!(
        left.status.success(),
        "leave exits 0: {:?}\n{}",
        left.status,
        left.log
    );
    publish_part(&m, dir.path(), 2 * PART..3 * PART);
    let by_pid = all_written(&r, 3 * PART, "three parts");

    let by_leave = by_pid.get(&left.pid).cloned().unwrap_or_default();
    assert!(
        !by_leave.is_empty() && by_leave.iter().all(|n| (PART..2 * PART).contains(n)),
        "leave wrote B's queued share of the second part, and only that: {} records\n{}",
        by_leave.len(),
        left.log
    );
    assert!(
        left.log
            .contains(&format!("left: {} records written", by_leave.len())),
        "the summary counts what leave wrote ({}):\n{}",
        by_leave.len(),
        left.log
    );
    let third: Vec<usize> = by_pid
        .iter()
        .filter(|(pid, _)| **pid != a.child.id())
        .flat_map(|(_, v)| v.iter().copied())
        .filter(|n| *n >= 2 * PART)
        .collect();
    assert!(
        third.is_empty(),
        "the third part went to A alone; others wrote {} of it",
        third.len()
    );
    let lines = r.lines();
    assert!(
        !lines.iter().any(|l| l.contains("iotitan/leave")),
        "the marker reached syslog"
    );
    let t = tally(&by_pid);
    eprintln!(
        "leave: {} records of B's queued share written, {} records in all, {} duplicates",
        by_leave.len(),
        t.values().sum::<usize>(),
        t.values().filter(|c| **c > 1).count()
    );

    let again = leave(&cfg_b, &[]);
    assert!(again.status.success(), "{:?}\n{}", again.status, again.log);
    assert!(
        again.log.contains("session present: false") && again.log.contains("left: 0 records"),
        "the session was ended by the first leave:\n{}",
        again.log
    );
}

/// A leave that cannot prove the drain keeps the session. With a broker that refuses the
/// marker subscription, leave exits 69 before unsubscribing anything (what it received of
/// B's queue meanwhile it wrote); with no broker at B's address, `--timeout` bounds it (exit
/// 69 too). Then B started again finds its session, still a member of the group: every number of the
/// parts published before and after is in syslog, and B takes its share of the last part.
#[test]
fn a_failed_leave_keeps_the_session_and_its_queue() {
    let m = Mosquitto::start_refusing("$iotitan/leave/#");
    let r = Rsyslogd::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let (_a, cfg_b) = b_stopped_with_a_queued_share(&m, &r, dir.path());

    let refused = leave(&cfg_b, &[]);
    assert_eq!(refused.status.code(), Some(69), "{}", refused.log);
    assert!(
        refused
            .log
            .contains("refused the subscription to the marker topic $iotitan/leave/site-b-logger")
            && refused.log.contains("the session is kept as it was"),
        "{}",
        refused.log
    );

    // B's config pointing at a port where no broker answers: held by a listener that never
    // accepts, so that no daemon of a test running beside this one can take it meanwhile.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("a port to hold");
    let silent_port = silent.local_addr().expect("its address").port();
    let cfg_nowhere = config_changed(
        dir.path(),
        &cfg_b,
        "nowhere",
        &format!("port = {}", m.port),
        &format!("port = {silent_port}"),
    );
    let no_broker = leave(&cfg_nowhere, &["--timeout", "2s"]);
    assert_eq!(no_broker.status.code(), Some(69), "{}", no_broker.log);
    assert!(
        no_broker.log.contains("cannot connect to the MQTT broker"),
        "{}",
        no_broker.log
    );

    b_is_still_a_member(&m, &r, dir.path(), &cfg_b, no_broker.pid);
}

/// A leave whose drain is not proven by `--timeout` keeps the session as it was. With B's
/// syslog down, the marker comes but the records before it cannot be written: exit 75, the
/// filters it unsubscribed are subscribed again, and what was not written stays with the
/// session. B started again writes it, takes its share of what follows, and skips the
/// marker the broker delivers again (it was never acknowledged).
#[test]
fn a_leave_past_its_timeout_subscribes_again_and_keeps_the_queue() {
    let m = Mosquitto::start();
    let r = Rsyslogd::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let (_a, cfg_b) = b_stopped_with_a_queued_share(&m, &r, dir.path());

    // B's config pointing at a syslog socket that does not exist. (Not a free TCP port: a
    // daemon of a test running beside this one took one once, and took the records.)
    let cfg_no_syslog = config_changed(
        dir.path(),
        &cfg_b,
        "no-syslog",
        &format!("tcp:127.0.0.1:{}", r.tcp_port),
        &format!("unix:{}", dir.path().join("absent.sock").display()),
    );
    let slow = leave(&cfg_no_syslog, &["--timeout", "3s"]);
    assert_eq!(slow.status.code(), Some(75), "{}", slow.log);
    assert!(
        slow.log.contains("the queue was not drained within 3s")
            && slow.log.contains("the session is kept as it was"),
        "{}",
        slow.log
    );

    b_is_still_a_member(&m, &r, dir.path(), &cfg_b, slow.pid);
}

/// The same on a real broker cluster: two RabbitMQ nodes with the MQTT plugin, the publisher
/// on node 1, two loggers on node 2. RabbitMQ's MQTT plugin has no shared subscriptions, so
/// the loggers split the stream by topic (`load/a/#`, `load/b/#`), as alerts are split. A
/// non-clean session is a durable queue named after the client id: while a logger is dead its
/// topics pile up there, and what it had not acknowledged goes back to it; all of it is
/// delivered to the restarted logger (same client id). Duplicates, as with mosquitto, are
/// only redeliveries of what the killed process had written but not acknowledged, at most
/// `mqtt.prefetch` of them.
#[test]
fn two_loggers_split_by_topic_on_a_rabbitmq_cluster_and_a_sigkill_loses_nothing() {
    let cluster = RabbitCluster::start();
    let r = Rsyslogd::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let configs: Vec<PathBuf> = ["a", "b"]
        .iter()
        .map(|part| {
            let d = dir.path().join(part);
            std::fs::create_dir_all(&d).expect("member dir");
            write_config(
                &d,
                &format!(
                    "{}\n[logger]\nsubscribe = [\"load/{part}/#\"]\n\
                     [syslog]\ntarget = \"tcp:127.0.0.1:{}\"\n",
                    cluster.mqtt_toml(1, &format!("site-{part}")),
                    r.tcp_port
                ),
            )
        })
        .collect();
    let mut members: Vec<Logger> = configs.iter().map(|c| start_member(c)).collect();
    let messages: Vec<(String, Vec<u8>)> = (0..N)
        .map(|i| {
            let part = if i % 2 == 0 { "a" } else { "b" };
            (
                format!("load/{part}/{}", i % 10),
                i.to_string().into_bytes(),
            )
        })
        .collect();
    let publisher = Publisher::start(cluster.mqtt_ports[0], "scale-pub", messages, 2000, 1);
    let count = |r: &Rsyslogd| tally(&numbers_by_pid(r)).len();
    assert!(
        wait_until(TIMEOUT, || count(&r) >= N / 2),
        "half the stream never arrived"
    );
    let killed_pid = members[0].child.id();
    members[0].signal("-KILL");
    wait_exit(&mut members[0].child, TIMEOUT).expect("killed");
    let at_kill = count(&r);
    assert!(
        wait_until(TIMEOUT, || count(&r) >= at_kill + N / 10),
        "the other logger stopped writing"
    );
    members[0] = start_member(&configs[0]);
    let successor_pid = members[0].child.id();
    let complete = wait_until(Duration::from_secs(90), || count(&r) >= N);
    let by_pid = numbers_by_pid(&r);
    let t = tally(&by_pid);
    let missing: Vec<usize> = (0..N).filter(|i| !t.contains_key(i)).collect();
    assert!(
        complete && missing.is_empty(),
        "{} of {N} lost (published {}); first: {:?}\nrestarted logger:\n{}",
        missing.len(),
        publisher.sent(),
        &missing[..missing.len().min(20)],
        members[0].log()
    );
    let dups = only_redeliveries(&by_pid, killed_pid, successor_pid, RABBIT_PREFETCH);
    eprintln!(
        "RabbitMQ cluster, 2 loggers by topic, {N} messages: {dups} duplicates (redeliveries)"
    );
    for l in &mut members {
        let (status, _) = l.terminate();
        assert!(status.success(), "exit status {status:?}\n{}", l.log());
    }
}

/// Rules of partition `a`: everything under `site/a/`, with a device command.
const RULES_A: &str = r#"
[[alerts.rule]]
name = "a-temperature"
topics = "site/a/+/temperature"
low = 10
high = 30
hysteresis = 1
action = { topic = "site/a/fan/cmd", on = "1", off = "0" }

[[alerts.rule]]
name = "a-marker"
topics = "site/a/marker"
high = 0
"#;

/// Rules of partition `b`: everything under `site/b/`.
const RULES_B: &str = r#"
[[alerts.rule]]
name = "b-temperature"
topics = "site/b/+/temperature"
high = 25
hysteresis = 2

[[alerts.rule]]
name = "b-humidity"
topics = "site/b/+/humidity"
low = 30
high = 70

[[alerts.rule]]
name = "b-marker"
topics = "site/b/marker"
high = 0
"#;

/// The same readings every run: random walks (a fixed linear congruential generator) that
/// cross every threshold many times, in one order, then a marker per partition.
fn readings() -> Vec<(String, Vec<u8>)> {
    let mut series: Vec<(String, f64, f64, f64)> = Vec::new();
    for i in 0..8 {
        series.push((format!("site/a/r{i}/temperature"), 20.0, 0.0, 40.0));
        series.push((format!("site/b/r{i}/temperature"), 20.0, 0.0, 40.0));
    }
    for i in 0..4 {
        series.push((format!("site/b/r{i}/humidity"), 50.0, 10.0, 90.0));
    }
    let mut x: u64 = 0x1234_5678;
    let mut out = Vec::new();
    for _ in 0..100 {
        for (topic, value, lo, hi) in &mut series {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let step = ((x >> 33) % 121) as f64 / 10.0 - 6.0;
            *value = (*value + step).clamp(*lo, *hi);
            out.push((topic.clone(), format!("{value:.1}").into_bytes()));
        }
    }
    out.push(("site/a/marker".into(), b"1".to_vec()));
    out.push(("site/b/marker".into(), b"1".to_vec()));
    out
}

/// What one partition's alerts amount to: its outputs (`_alert_` topics and commands) and
/// its events without their timestamps, each in the order published.
#[derive(Debug, Default, PartialEq)]
struct Outcome {
    outputs: Vec<String>,
    events: Vec<serde_json::Value>,
}

/// Run one `iotitan-alerts` per rule set in `instances` (each with a client id of its own)
/// on a fresh broker, publish [`readings`], and return what came out, per partition (`a`,
/// `b`: by topic prefix and rule name).
fn alerts_outcome(instances: &[&str]) -> [Outcome; 2] {
    let m = Mosquitto::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let running: Vec<Alerts> = instances
        .iter()
        .enumerate()
        .map(|(i, rules)| {
            let d = dir.path().join(format!("i{i}"));
            std::fs::create_dir_all(&d).expect("instance dir");
            let cfg = write_config(
                &d,
                &format!(
                    "{}\n[alerts]\nevents_topic = \"ev/alerts\"\n{rules}",
                    m.mqtt_toml(&format!("part{i}"))
                ),
            );
            Alerts::start(&cfg)
        })
        .collect();
    let sub = subscriber(&m, &["site/#", "ev/#"]);
    let _publisher = Publisher::start(m.port, "readings", readings(), 2000, 1);
    let mut out = [Outcome::default(), Outcome::default()];
    let mut markers = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    // A marker's output and its event, for each partition.
    while markers < 4 {
        let left = deadline
            .checked_duration_since(std::time::Instant::now())
            .unwrap_or_else(|| panic!("the markers never went on; got {out:#?}"));
        let Some(line) = sub.next_line(left) else {
            continue;
        };
        let (topic, payload) = line.split_once(' ').unwrap_or((&line, ""));
        if topic == "ev/alerts" {
            let mut ev: serde_json::Value = serde_json::from_str(payload).expect("JSON events");
            let rule = ev["rule"].as_str().expect("a rule name").to_owned();
            if rule.ends_with("-marker") {
                markers += 1;
            }
            let obj = ev.as_object_mut().expect("an object");
            obj.remove("at");
            obj.remove("since");
            out[usize::from(rule.starts_with("b-"))].events.push(ev);
        } else if topic.contains("_alert_") || topic.ends_with("/cmd") {
            if topic.ends_with("marker_alert_hi") && payload == "on" {
                markers += 1;
            }
            out[usize::from(topic.starts_with("site/b/"))]
                .outputs
                .push(line.clone());
        }
    }
    for a in running {
        a.stop();
    }
    out
}

/// Alerts keep state per series (hysteresis, hold, staleness), so a series must always
/// reach the same instance: instances split the rules by configuration, never by a shared
/// subscription. Two instances with disjoint rule sets publish, partition by partition,
/// exactly what one instance with every rule publishes: the same outputs, commands and
/// events in the same order.
#[test]
fn alerts_partitioned_by_configuration_raise_exactly_the_alerts_of_one_instance() {
    let all = format!("{RULES_A}\n{RULES_B}");
    let one = alerts_outcome(&[&all]);
    let two = alerts_outcome(&[RULES_A, RULES_B]);
    for (part, o) in ["a", "b"].iter().zip(&one) {
        // Enough happened for the comparison to mean something.
        assert!(
            o.outputs.len() > 20 && o.events.len() > 20,
            "partition {part}: {o:#?}"
        );
    }
    assert_eq!(one, two);
}
