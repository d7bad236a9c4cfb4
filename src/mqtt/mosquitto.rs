//! What a local mosquitto does with the backlog of a stopped logger: its queue limits as its
//! configuration sets them, read the way mosquitto reads it, and a warning that names the
//! line to change when they would drop readings.
//!
//! The logger's session is persistent, so while it is stopped the broker queues every reading
//! for it. mosquitto keeps at most `max_queued_messages` of them (1000 unless set) and
//! `max_queued_bytes` of payload (no limit unless set), and drops the rest silently: on a
//! stock Debian broker a stopped logger lost all but 1000 readings. The package installs
//! `/etc/mosquitto/conf.d/iotitan.conf` (config/mosquitto-iotitan.conf) to lift that;
//! `check-config` and the logger's start say so when a broker's configuration still drops.
//!
//! mosquitto reads its main file top to bottom; the last value of an option wins;
//! `include_dir DIR` (main file only) reads the files of DIR that end in `.conf`, in
//! case-sensitive byte order, at that point; `#` starts a comment only as a line's first
//! character. The parsing is pure ([`Limits::read`] takes the files through closures) and
//! unit-tested; [`check_local`] is the thin edge that reads the real files.

use std::path::{Path, PathBuf};

/// Debian's main mosquitto configuration file.
pub const MAIN: &str = "/etc/mosquitto/mosquitto.conf";

/// The file the package installs with the limits below.
pub const DROP_IN: &str = "/etc/mosquitto/conf.d/iotitan.conf";

/// mosquitto's default `max_queued_messages`.
const DEFAULT_MESSAGES: u64 = 1000;

/// Fewer queued messages than this for a stopped logger is worth a warning: the package's
/// drop-in allows 500 000 (see config/mosquitto-iotitan.conf for what that holds).
pub const ENOUGH_MESSAGES: u64 = 100_000;

/// Fewer payload bytes than this (10 MB) is worth a warning too.
pub const ENOUGH_BYTES: u64 = 10_000_000;

/// One queue limit, and where it was set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    /// The limit; 0 means none.
    pub value: u64,
    /// The file and line (1-based) that set it; `None`: mosquitto's default.
    pub set_at: Option<(PathBuf, usize)>,
}

impl Limit {
    fn default_of(value: u64) -> Self {
        Limit {
            value,
            set_at: None,
        }
    }

    /// Whether it drops a backlog smaller than `enough`.
    fn short_of(&self, enough: u64) -> bool {
        self.value != 0 && self.value < enough
    }

    /// Where it comes from, for a message.
    fn origin(&self, option: &str) -> String {
        match &self.set_at {
            Some((file, line)) => format!("{option} {} at {}:{line}", self.value, file.display()),
            None => format!("mosquitto's default, {option} {}", self.value),
        }
    }
}

/// The queue limits a broker applies to every persistent session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// `max_queued_messages`.
    pub messages: Limit,
    /// `max_queued_bytes` (payload bytes).
    pub bytes: Limit,
    /// Lines that could not be read as mosquitto reads them (`file:line: why`): a value that
    /// is not a number, a file or directory that cannot be read.
    pub problems: Vec<String>,
}

impl Limits {
    /// The limits of the configuration whose main file is `main`: `read` gives a file's
    /// text, `list` the entries of an `include_dir`.
    pub fn read(
        main: &Path,
        read: &mut dyn FnMut(&Path) -> std::io::Result<String>,
        list: &mut dyn FnMut(&Path) -> std::io::Result<Vec<PathBuf>>,
    ) -> std::io::Result<Limits> {
        let mut limits = Limits {
            messages: Limit::default_of(DEFAULT_MESSAGES),
            bytes: Limit::default_of(0),
            problems: Vec::new(),
        };
        let text = read(main)?;
        for (n, line) in text.lines().enumerate() {
            if let Some(dir) = option(line, "include_dir") {
                let dir = Path::new(dir);
                let mut files = match list(dir) {
                    Ok(f) => f,
                    Err(e) => {
                        limits.problems.push(format!(
                            "{}:{}: {}: {e}",
                            main.display(),
                            n + 1,
                            dir.display()
                        ));
                        continue;
                    }
                };
                files.retain(|f| f.extension().is_some_and(|e| e == "conf"));
                files.sort();
                for f in files {
                    match read(&f) {
                        Ok(t) => limits.take(&f, &t),
                        Err(e) => limits.problems.push(format!("{}: {e}", f.display())),
                    }
                }
            } else {
                limits.take_line(main, n + 1, line);
            }
        }
        Ok(limits)
    }

    fn take(&mut self, file: &Path, text: &str) {
        for (n, line) in text.lines().enumerate() {
            self.take_line(file, n + 1, line);
        }
    }

    fn take_line(&mut self, file: &Path, n: usize, line: &str) {
        for (name, limit) in [
            ("max_queued_messages", &mut self.messages),
            ("max_queued_bytes", &mut self.bytes),
        ] {
            if let Some(v) = option(line, name) {
                match v.parse() {
                    Ok(value) => {
                        *limit = Limit {
                            value,
                            set_at: Some((file.to_owned(), n)),
                        }
                    }
                    Err(_) => self.problems.push(format!(
                        "{}:{n}: {name} {v:?} is not a number (mosquitto refuses to start)",
                        file.display()
                    )),
                }
            }
        }
    }

    /// What would drop a stopped logger's backlog, one message per limit, each naming the
    /// line to change; empty when nothing would.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        let fix = |limit: &Limit, option: &str, value: &str| match &limit.set_at {
            Some((file, line)) => format!(
                "change line {line} of {} to `{option} {value}`",
                file.display()
            ),
            None => {
                format!("add `{option} {value}` to {DROP_IN} (the iotitan package installs it)")
            }
        };
        if self.messages.short_of(ENOUGH_MESSAGES) {
            out.push(format!(
                "the MQTT broker keeps at most {} messages for a stopped logger ({}): readings \
                 published past that while the logger is stopped are dropped; {}",
                self.messages.value,
                self.messages.origin("max_queued_messages"),
                fix(&self.messages, "max_queued_messages", "500000"),
            ));
        }
        if self.bytes.short_of(ENOUGH_BYTES) {
            out.push(format!(
                "the MQTT broker keeps at most {} payload bytes for a stopped logger ({}): \
                 readings published past that while the logger is stopped are dropped; {}",
                self.bytes.value,
                self.bytes.origin("max_queued_bytes"),
                fix(&self.bytes, "max_queued_bytes", "100000000"),
            ));
        }
        out.extend(
            self.problems
                .iter()
                .map(|p| format!("mosquitto's configuration: {p}")),
        );
        out
    }
}

/// The value of `name` on a line that sets it (`name value`, spaces around allowed), as
/// mosquitto reads its options: `#` starts a comment only as the first character.
fn option<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    if line.starts_with('#') {
        return None;
    }
    let rest = line.trim_start().strip_prefix(name)?;
    if !rest.starts_with([' ', '\t']) {
        return None;
    }
    Some(rest.trim())
}

/// Whether `host` is this machine, so that its mosquitto configuration is the broker's.
pub fn is_local(host: &str) -> bool {
    matches!(host, "localhost" | "::1" | "[::1]") || host.starts_with("127.")
}

/// The warnings for the broker at `host`, when it is this machine's mosquitto and its
/// configuration is where Debian puts it; none otherwise (another host's broker cannot be
/// read from here: README says what to set there).
pub fn check_local(host: &str) -> Vec<String> {
    let main = Path::new(MAIN);
    if !is_local(host) || !main.exists() {
        return Vec::new();
    }
    let limits = Limits::read(main, &mut |p| std::fs::read_to_string(p), &mut |d| {
        std::fs::read_dir(d)?
            .map(|e| e.map(|e| e.path()))
            .collect::<std::io::Result<Vec<_>>>()
    });
    match limits {
        Ok(l) => l.warnings(),
        Err(e) => vec![format!("cannot read {MAIN}: {e}")],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    const DEBIAN: &str = "# Place your local configuration in /etc/mosquitto/conf.d/\n\
        #\npid_file /run/mosquitto/mosquitto.pid\n\npersistence true\n\
        persistence_location /var/lib/mosquitto/\n\nlog_dest file /var/log/mosquitto/mosquitto.log\n\n\
        include_dir /etc/mosquitto/conf.d\n";

    fn limits(files: &[(&str, &str)]) -> Limits {
        let files: BTreeMap<PathBuf, String> = files
            .iter()
            .map(|(p, t)| (PathBuf::from(p), t.to_string()))
            .collect();
        Limits::read(
            Path::new(MAIN),
            &mut |p| {
                files
                    .get(p)
                    .cloned()
                    .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
            },
            &mut |d| {
                Ok(files
                    .keys()
                    .filter(|p| p.parent() == Some(d))
                    .cloned()
                    .collect())
            },
        )
        .unwrap()
    }

    #[test]
    fn a_stock_debian_broker_drops_past_1000_and_says_where_to_fix_it() {
        let l = limits(&[(MAIN, DEBIAN)]);
        assert_eq!(l.messages, Limit::default_of(1000));
        let w = l.warnings();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("at most 1000 messages"), "{w:?}");
        assert!(w[0].contains("mosquitto's default"), "{w:?}");
        assert!(w[0].contains(DROP_IN), "{w:?}");
    }

    #[test]
    fn the_packages_drop_in_silences_it() {
        let ours = include_str!("../../config/mosquitto-iotitan.conf");
        let l = limits(&[(MAIN, DEBIAN), (DROP_IN, ours)]);
        assert_eq!(l.messages.value, 500_000);
        assert_eq!(l.bytes.value, 100_000_000);
        assert!(l.warnings().is_empty(), "{:?}", l.warnings());
    }

    #[test]
    fn the_last_value_wins_in_mosquittos_order_and_the_warning_names_its_line() {
        // conf.d files in byte order: "a.conf" then "z.conf"; "notes.txt" is not read.
        let l = limits(&[
            (MAIN, DEBIAN),
            ("/etc/mosquitto/conf.d/a.conf", "max_queued_messages 0\n"),
            (
                "/etc/mosquitto/conf.d/z.conf",
                "# tuned\nmax_queued_messages 5000\n",
            ),
            ("/etc/mosquitto/conf.d/notes.txt", "max_queued_messages 0\n"),
        ]);
        assert_eq!(l.messages.value, 5000);
        let w = l.warnings();
        assert!(
            w[0].contains("max_queued_messages 5000 at /etc/mosquitto/conf.d/z.conf:2"),
            "{w:?}"
        );
        assert!(
            w[0].contains("change line 2 of /etc/mosquitto/conf.d/z.conf"),
            "{w:?}"
        );
        // 0 is no limit at all.
        let l = limits(&[(MAIN, &format!("{DEBIAN}max_queued_messages 0\n"))]);
        assert!(l.warnings().is_empty(), "{:?}", l.warnings());
    }

    #[test]
    fn comments_lookalikes_and_garbage() {
        let l = limits(&[(
            MAIN,
            "#max_queued_messages 0\n max_queued_messages_x 0\nmax_queued_bytes 4096\n\
             max_queued_messages lots\n",
        )]);
        assert_eq!(l.messages, Limit::default_of(1000));
        assert_eq!(l.bytes.value, 4096);
        let w = l.warnings();
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(w[1].contains("4096 payload bytes"), "{w:?}");
        assert!(w[2].contains("\"lots\" is not a number"), "{w:?}");
    }

    #[test]
    fn only_this_machines_broker_is_checked() {
        assert!(is_local("localhost") && is_local("127.0.0.1") && is_local("::1"));
        assert!(!is_local("broker.lan") && !is_local("10.0.0.2"));
        assert!(check_local("broker.lan").is_empty());
    }
}
