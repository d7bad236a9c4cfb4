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

    /// Where the namespace's files are (volatile storage).
    pub fn directory(&self) -> PathBuf {
        journal_directory(&self.namespace)
    }

    /// Archive the active file and start a new one (`journalctl --rotate`); returns once done.
    pub fn rotate(&self) {
        let st = Command::new("journalctl")
            .args(["--namespace", &self.namespace, "--rotate"])
            .stdin(Stdio::null())
            .status()
            .expect("run journalctl --rotate");
        assert!(st.success(), "journalctl --rotate: {st}");
    }

    /// Send `messages` with `identifier` through the namespace's syslog socket, one datagram
    /// each (logger(1) reading them from a file: one process for all).
    pub fn send_lines(&self, identifier: &str, messages: &[String]) {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("lines");
        std::fs::write(&file, messages.join("\n") + "\n").expect("write lines");
        let st = Command::new("logger")
            .arg("--socket")
            .arg(self.socket())
            .args(["-t", identifier, "-f"])
            .arg(&file)
            .status()
            .expect("run logger");
        assert!(st.success(), "logger: {st}");
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

/// The directory of a namespace's volatile journal.
pub fn journal_directory(namespace: &str) -> PathBuf {
    let id = std::fs::read_to_string("/etc/machine-id").expect("read /etc/machine-id");
    PathBuf::from(format!("/run/log/journal/{}.{namespace}", id.trim()))
}

/// A namespace without a journald: a copy of another's files, to damage at will. Both the
/// direct reader and `journalctl --namespace` read it as they read a live one.
pub struct JournalCopy {
    pub namespace: String,
}

impl JournalCopy {
    /// Copy `from`'s files into a new namespace named `from`'s name with `suffix`.
    pub fn of(from: &Journald, suffix: &str) -> JournalCopy {
        let namespace = format!("{}{suffix}", from.namespace);
        let dir = journal_directory(&namespace);
        std::fs::create_dir_all(&dir).expect("create the copy's directory");
        for f in std::fs::read_dir(from.directory()).expect("list the journal") {
            let f = f.expect("list the journal").path();
            std::fs::copy(&f, dir.join(f.file_name().expect("a file name"))).expect("copy");
        }
        JournalCopy { namespace }
    }

    /// The copied files, oldest first (archived ones by name, the active one last).
    pub fn files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(journal_directory(&self.namespace))
            .expect("list the copy")
            .map(|f| f.expect("list the copy").path())
            .collect();
        files.sort_by_key(|p| (p.ends_with("system.journal"), p.clone()));
        files
    }
}

impl Drop for JournalCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(journal_directory(&self.namespace));
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
