//! The harness itself: each daemon starts, answers and restarts.

mod common;
use common::*;

#[test]
fn mosquitto_round_trip_and_restart() {
    let mut m = Mosquitto::start();
    let sub = m.subscribe(&["t/#"], &[]);
    // The subscription may not be active yet: publish until the first line shows up.
    assert!(wait_until(TIMEOUT, || {
        m.publish(&["-t", "t/a", "-m", "1"]);
        sub.next_line(std::time::Duration::from_millis(200))
            .is_some()
    }));
    m.restart();
    m.publish(&["-t", "t/a", "-m", "2"]);
}

#[test]
fn rsyslogd_receives_on_unix_socket() {
    let r = Rsyslogd::start();
    let st = std::process::Command::new("logger")
        .arg("--socket")
        .arg(&r.socket)
        .args(["-t", "harness", "hello world"])
        .status()
        .unwrap();
    assert!(st.success());
    let lines = r.wait_lines("harness", 1, TIMEOUT);
    assert!(lines[0].ends_with("hello world"), "{lines:?}");
}

#[test]
fn journald_namespace_receives() {
    let j = Journald::start("harness");
    let st = std::process::Command::new("logger")
        .arg("--socket")
        .arg(j.socket())
        .args(["-t", "harness", "hi journal"])
        .status()
        .unwrap();
    assert!(st.success());
    let msgs = j.wait_messages("harness", 1, TIMEOUT);
    assert_eq!(msgs[0]["MESSAGE"], "hi journal");
}
