//! `auto`, the default of `syslog.target` and `syslog.sources`: the system's own syslog,
//! found by the sockets that answer.
//!
//! Three setups are common on the machines this is for, and each wants another pair:
//! - **systemd and rsyslog** (Debian 12, Raspberry Pi OS before bookworm): `/dev/log` is
//!   journald's, and journald forwards each record to rsyslog's socket (systemd's
//!   `syslog.socket`, `/run/systemd/journal/syslog`) without waiting. A full socket is
//!   skipped and only counted ("Forwarding to syslog missed N messages"), so a burst — a
//!   logger replaying its backlog — can miss `/var/log/syslog` while the journal holds it
//!   all. Writing to rsyslog's socket directly, journald left out, lets a full socket push
//!   back on the logger instead: `/var/log/syslog` misses nothing, and stats reads it.
//! - **systemd alone** (Debian 13, Raspberry Pi OS since bookworm): journald has `/dev/log`,
//!   and there is no `/var/log/syslog`: records are read back from the journal.
//! - **a syslog daemon on `/dev/log`** (containers, systems without systemd): records go to
//!   `/dev/log` and are read from `/var/log/syslog`.
//!
//! The logger decides at each connection attempt, stats at each run and the read API at each
//! request, so a syslog daemon installed, removed or stopped is followed without a restart.
//!
//! A socket counts when a connection to it is accepted, not when its file exists: systemd
//! leaves a stopped socket unit's file behind (`RemoveOnStop=no`), and syslog-ng reads the
//! journal itself and leaves `syslog.socket` stopped.

use super::sys::EPROTOTYPE;
use crate::config::{AUTO, SyslogTarget};
use crate::syslog::source::Source;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

/// rsyslog's socket where systemd runs it (systemd's `syslog.socket`).
const RSYSLOG_BEHIND_JOURNALD: &str = "run/systemd/journal/syslog";
/// journald's `/dev/log` (systemd's `systemd-journald-dev-log.socket`).
const JOURNALD_DEV_LOG: &str = "run/systemd/journal/dev-log";
/// The classic local syslog socket.
const DEV_LOG: &str = "dev/log";
/// Where Debian's rsyslog writes every facility but auth.
const SYSLOG_FILE: &str = "var/log/syslog";

/// The system's syslog, as far as its sockets tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum System {
    /// systemd with rsyslog: write to rsyslog's own socket, read `/var/log/syslog`.
    RsyslogBehindJournald,
    /// systemd without a syslog daemon: write to `/dev/log`, read the journal.
    Journald,
    /// Anything else: write to `/dev/log`, read `/var/log/syslog`.
    Syslogd,
}

impl System {
    /// This machine's.
    pub fn detect() -> System {
        System::detect_in(Path::new("/"))
    }

    /// The system whose root directory is `root` (tests build one in a temporary directory).
    fn detect_in(root: &Path) -> System {
        if answers(&root.join(RSYSLOG_BEHIND_JOURNALD)) {
            System::RsyslogBehindJournald
        } else if answers(&root.join(JOURNALD_DEV_LOG)) {
            System::Journald
        } else {
            System::Syslogd
        }
    }

    /// The socket the logger writes to on this system.
    pub fn socket(self) -> PathBuf {
        absolute(match self {
            System::RsyslogBehindJournald => RSYSLOG_BEHIND_JOURNALD,
            System::Journald | System::Syslogd => DEV_LOG,
        })
    }

    /// [`System::socket`] as a target.
    pub fn target(self) -> SyslogTarget {
        SyslogTarget::Unix(self.socket())
    }

    /// Where readers find what the logger wrote on this system.
    pub fn source(self) -> Source {
        match self {
            System::Journald => Source::Journal(None),
            System::RsyslogBehindJournald | System::Syslogd => Source::File(absolute(SYSLOG_FILE)),
        }
    }
}

/// `relative` (one of the paths above) on this machine.
fn absolute(relative: &str) -> PathBuf {
    Path::new("/").join(relative)
}

/// Whether `sources` (`syslog.sources` as configured) name `auto`.
pub fn names_auto(sources: &[String]) -> bool {
    sources.iter().any(|s| s == AUTO)
}

/// Whether a syslog daemon takes connections on `path`: the proof the demo asks for before it
/// writes to the system's syslog. A datagram connect asks the kernel
/// only (nothing is sent); EPROTOTYPE means a stream socket, which the sink also speaks.
pub fn answers(path: &Path) -> bool {
    let Ok(probe) = UnixDatagram::unbound() else {
        return false;
    };
    match probe.connect(path) {
        Ok(()) => true,
        Err(e) => e.raw_os_error() == Some(EPROTOTYPE),
    }
}

/// `target` with `auto` replaced by this system's socket.
pub fn resolve_target(target: &SyslogTarget) -> SyslogTarget {
    match target {
        SyslogTarget::Auto => System::detect().target(),
        other => other.clone(),
    }
}

/// `syslog.sources` read: each `auto` becomes this system's source (detected once).
pub fn resolve_sources(configured: &[String]) -> Result<Vec<Source>, String> {
    let mut system = None;
    configured
        .iter()
        .map(|s| {
            if s == AUTO {
                Ok(system.get_or_insert_with(System::detect).source())
            } else {
                s.parse()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A root directory with a listening datagram socket at each of `sockets`, and a dead
    /// socket file (bound, then closed: what a stopped socket unit leaves) at each of `dead`.
    fn root(sockets: &[&str], dead: &[&str]) -> (tempfile::TempDir, Vec<UnixDatagram>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let bind = |rel: &str| {
            let p = dir.path().join(rel);
            std::fs::create_dir_all(p.parent().expect("a parent")).expect("dirs");
            UnixDatagram::bind(&p).expect("bind")
        };
        let live = sockets.iter().map(|s| bind(s)).collect();
        for d in dead {
            drop(bind(d));
        }
        (dir, live)
    }

    #[test]
    fn rsyslog_behind_journald_is_written_directly_and_its_file_read() {
        let (dir, _live) = root(&[RSYSLOG_BEHIND_JOURNALD, JOURNALD_DEV_LOG], &[]);
        let s = System::detect_in(dir.path());
        assert_eq!(s, System::RsyslogBehindJournald);
        assert_eq!(
            s.target(),
            SyslogTarget::Unix("/run/systemd/journal/syslog".into())
        );
        assert_eq!(s.source(), Source::File("/var/log/syslog".into()));
    }

    #[test]
    fn journald_alone_is_written_through_dev_log_and_read_from_the_journal() {
        // rsyslog removed or stopped: syslog.socket's file stays, nobody listens.
        let (dir, _live) = root(&[JOURNALD_DEV_LOG], &[RSYSLOG_BEHIND_JOURNALD]);
        let s = System::detect_in(dir.path());
        assert_eq!(s, System::Journald);
        assert_eq!(s.target(), SyslogTarget::Unix("/dev/log".into()));
        assert_eq!(s.source(), Source::Journal(None));
    }

    #[test]
    fn without_systemd_dev_log_and_var_log_syslog() {
        for (live, dead) in [
            (&[][..], &[][..]),
            (&[DEV_LOG][..], &[][..]),
            (&[][..], &[JOURNALD_DEV_LOG, RSYSLOG_BEHIND_JOURNALD][..]),
        ] {
            let (dir, _live) = root(live, dead);
            let s = System::detect_in(dir.path());
            assert_eq!(s, System::Syslogd, "{live:?} {dead:?}");
            assert_eq!(s.target(), SyslogTarget::Unix("/dev/log".into()));
            assert_eq!(s.source(), Source::File("/var/log/syslog".into()));
        }
    }

    #[test]
    fn a_stream_socket_answers_too() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join(JOURNALD_DEV_LOG);
        std::fs::create_dir_all(p.parent().expect("a parent")).expect("dirs");
        let _l = std::os::unix::net::UnixListener::bind(&p).expect("bind");
        assert_eq!(System::detect_in(dir.path()), System::Journald);
    }

    #[test]
    fn only_auto_is_resolved_among_the_sources() {
        let got = resolve_sources(&["/x/syslog".into(), "journal:ns".into(), "auto".into()])
            .expect("valid sources");
        assert_eq!(got[0], Source::File("/x/syslog".into()));
        assert_eq!(got[1], Source::Journal(Some("ns".into())));
        assert_eq!(got[2], System::detect().source());
        assert!(resolve_sources(&["".into()]).is_err());
        let tcp = SyslogTarget::Tcp("h:1".into());
        assert_eq!(resolve_target(&tcp), tcp);
        assert_eq!(
            resolve_target(&SyslogTarget::Auto),
            System::detect().target()
        );
    }
}
