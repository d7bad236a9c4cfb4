//! A real systemd-journald in a journal namespace of its own, read back with `journalctl`.

use super::{TIMEOUT, require, wait_until};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A systemd-journald in a journal namespace of its own (no rate limit, volatile storage).
pub struct Journald {
    pub namespace: String,
    child: Option<Child>,
}

impl Journald {
    /// Start journald for a fresh namespace named after `prefix`.
    pub fn start(prefix: &str) -> Journald {
        let bin = require("systemd-journald", "systemd");
        require("journalctl", "systemd");
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let namespace = format!(
            "{prefix}{}x{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        );
        std::fs::create_dir_all("/etc/systemd").expect("create /etc/systemd");
        std::fs::write(
            format!("/etc/systemd/journald@{namespace}.conf"),
            "[Journal]\nStorage=volatile\nRateLimitIntervalSec=0\nRateLimitBurst=0\nRuntimeMaxUse=256M\n",
        )
        .expect("write journald namespace config");
        let child = Command::new(bin)
            .arg(&namespace)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start systemd-journald");
        let j = Journald {
            namespace,
            child: Some(child),
        };
        let sock = j.socket();
        assert!(
            wait_until(TIMEOUT, || sock.exists()),
            "journald did not create {}",
            sock.display()
        );
        j
    }

    /// The syslog socket of the namespace.
    pub fn socket(&self) -> PathBuf {
        PathBuf::from(format!("/run/systemd/journal.{}/dev-log", self.namespace))
    }

    /// `journal:NS`, as a stats source.
    pub fn source(&self) -> String {
        format!("journal:{}", self.namespace)
    }

    /// MESSAGE fields of records with `identifier`, via `journalctl -o json`.
    pub fn messages(&self, identifier: &str) -> Vec<serde_json::Value> {
        let out = Command::new("journalctl")
            .args([
                "--namespace",
                &self.namespace,
                "-o",
                "json",
                "--no-pager",
                "-t",
            ])
            .arg(identifier)
            .output()
            .expect("run journalctl");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Wait until at least `n` records with `identifier` are there; returns them.
    pub fn wait_messages(
        &self,
        identifier: &str,
        n: usize,
        timeout: Duration,
    ) -> Vec<serde_json::Value> {
        let mut got = Vec::new();
        let ok = wait_until(timeout, || {
            got = self.messages(identifier);
            got.len() >= n
        });
        assert!(ok, "expected {n} journal records, got {}", got.len());
        got
    }
}

impl Drop for Journald {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let ns = &self.namespace;
        let _ = std::fs::remove_dir_all(format!("/run/systemd/journal.{ns}"));
        let _ = std::fs::remove_file(format!("/etc/systemd/journald@{ns}.conf"));
        if let Ok(id) = std::fs::read_to_string("/etc/machine-id") {
            let id = id.trim();
            let _ = std::fs::remove_dir_all(format!("/run/log/journal/{id}.{ns}"));
            let _ = std::fs::remove_dir_all(format!("/var/log/journal/{id}.{ns}"));
        }
    }
}
