//! systemd notifications of the `Type=notify` daemons other than the logger (whose test is in
//! `tests/logger.rs`): `READY=1`, then `WATCHDOG=1` at half of `WATCHDOG_USEC`, then
//! `STOPPING=1` on SIGTERM and exit 0 — read from a real `NOTIFY_SOCKET`, the way systemd
//! starts them (`WATCHDOG_PID` set to the daemon's pid).

mod common;
use common::*;
use std::path::Path;
use std::time::Duration;

/// Start `program --config config` the way systemd would under `notify` (a watchdog of
/// `watchdog_usec`, 0 for none), logging at info level.
fn start(
    program: &str,
    notify: &NotifySocket,
    watchdog_usec: u64,
    config: &Path,
    env: &[(&str, &str)],
) -> Running {
    Program::with_command(program, systemd_command(program, notify, watchdog_usec))
        .config_file(config)
        .envs(env)
        .start()
}

/// Run `program --config config` under a notify socket and check the sequence. The broker
/// `m` is down at first: start-up is complete (READY) only once it is up and the daemon
/// subscribed, so that a message published after `systemctl start` returns reaches it.
fn notifies_systemd(m: &mut Mosquitto, program: &str, config: &Path, env: &[(&str, &str)]) {
    m.stop();
    let notify = NotifySocket::new();
    let mut daemon = start(program, &notify, 200_000, config, env);
    // Reconnects every second at most (reconnect_max): half a second shows READY is not early.
    let early = wait_until(Duration::from_millis(500), || {
        notify
            .recv(Duration::from_millis(50))
            .is_some_and(|d| d.lines().any(|l| l == "READY=1"))
    });
    assert!(!early, "READY=1 without a broker\n{}", daemon.log());
    m.restart();
    notify.expect_ready_then_pings();
    daemon.signal("-TERM");
    notify.wait_for("STOPPING=1", Duration::from_secs(5));
    let status = wait_exit(&mut daemon.child, Duration::from_secs(5));
    let status = status.unwrap_or_else(|| panic!("no exit after SIGTERM\n{}", daemon.log()));
    assert!(status.success(), "{status:?}\n{}", daemon.log());
    assert_eq!(notify.count("READY=1"), 1, "{:#?}", notify.seen.borrow());
}

/// An alerts config with one range rule on `iotitan/+/temperature`.
fn alerts_config(dir: &Path, mqtt_toml: &str) -> std::path::PathBuf {
    write_config(
        dir,
        &format!("{mqtt_toml}\n[[alerts.rule]]\ntopics = \"iotitan/+/temperature\"\nhigh = 30\n"),
    )
}

#[test]
fn alerts_tells_systemd_ready_watchdog_and_stopping() {
    let mut m = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = alerts_config(dir.path(), &m.mqtt_toml("notify-alerts"));
    notifies_systemd(&mut m, env!("CARGO_BIN_EXE_iotitan-alerts"), &cfg, &[]);
}

/// The environment of [`bridge_config`]'s channel: its write key.
const BRIDGE_ENV: &[(&str, &str)] = &[("IOTITAN_THINGSPEAK_KEY_4242", "NOTIFYTESTKEY0000")];

/// A bridge config with one channel on a closed port: nothing is published in these tests,
/// so ThingSpeak is never asked.
fn bridge_config(dir: &Path, mqtt_toml: &str) -> std::path::PathBuf {
    write_config(
        dir,
        &format!(
            "state_dir = \"{}\"\n{mqtt_toml}\n[[bridge.channel]]\nid = 4242\nurl = \"http://127.0.0.1:{}\"\n\
             fields = {{ \"t/a\" = 1 }}\n",
            dir.join("state").display(),
            free_port()
        ),
    )
}

#[test]
fn bridge_tells_systemd_ready_watchdog_and_stopping() {
    let mut m = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = bridge_config(dir.path(), &m.mqtt_toml("notify-bridge"));
    notifies_systemd(
        &mut m,
        env!("CARGO_BIN_EXE_iotitan-bridge"),
        &cfg,
        BRIDGE_ENV,
    );
}

#[test]
fn http_tells_systemd_ready_watchdog_and_stopping() {
    let mut m = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        &format!(
            "{}\n[http]\nlisten = \"127.0.0.1:{}\"\n[[http.token]]\nname = \"t\"\nscopes = [\"read\"]\n",
            m.mqtt_toml("notify-http"),
            free_port()
        ),
    );
    notifies_systemd(
        &mut m,
        env!("CARGO_BIN_EXE_iotitan-http"),
        &cfg,
        &[("IOTITAN_HTTP_TOKEN_T", "NOTIFYTESTTOKEN0000")],
    );
}

/// Run `program --config config` under a notify socket against `m`, which refuses the
/// daemon's subscriptions: the refusal is logged and READY never comes, so `systemctl start`
/// fails instead of reporting a daemon that receives nothing. SIGTERM still stops it cleanly.
fn refused_subscription_is_never_ready(
    m: &Mosquitto,
    program: &str,
    config: &Path,
    env: &[(&str, &str)],
) {
    let notify = NotifySocket::new();
    let mut daemon = start(program, &notify, 0, config, env);
    assert!(
        wait_until(Duration::from_secs(10), || daemon
            .log()
            .contains("the broker refused a subscription")),
        "no refusal in the log\n{}\n{}",
        daemon.log(),
        m.log()
    );
    // READY would have been sent when the last SUBACK was handled, before the log line.
    while let Some(d) = notify.recv(Duration::from_millis(200)) {
        assert!(
            !d.lines().any(|l| l == "READY=1"),
            "READY=1\n{}",
            daemon.log()
        );
    }
    daemon.signal("-TERM");
    let status = wait_exit(&mut daemon.child, Duration::from_secs(5));
    let status = status.unwrap_or_else(|| panic!("no exit after SIGTERM\n{}", daemon.log()));
    assert!(status.success(), "{status:?}\n{}", daemon.log());
    assert!(!daemon.log().contains("subscribed"), "{}", daemon.log());
}

#[test]
fn alerts_is_not_ready_when_the_broker_refuses_its_inputs() {
    let m = Mosquitto::start_refusing("iotitan/#");
    let dir = tempfile::tempdir().unwrap();
    let cfg = alerts_config(dir.path(), &m.mqtt_toml("refused-alerts"));
    refused_subscription_is_never_ready(&m, env!("CARGO_BIN_EXE_iotitan-alerts"), &cfg, &[]);
}

#[test]
fn bridge_is_not_ready_when_the_broker_refuses_its_topics() {
    let m = Mosquitto::start_refusing("t/#");
    let dir = tempfile::tempdir().unwrap();
    let cfg = bridge_config(dir.path(), &m.mqtt_toml("refused-bridge"));
    refused_subscription_is_never_ready(&m, env!("CARGO_BIN_EXE_iotitan-bridge"), &cfg, BRIDGE_ENV);
}
