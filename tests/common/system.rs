//! The machine the tests run on: installed programs (a missing one fails loudly, naming its
//! package), root, signals, and a sysctl set for the length of a test.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

/// Path of a program, or a loud failure naming the package.
pub fn require(program: &str, package: &str) -> PathBuf {
    for dir in [
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
        "/lib/systemd",
        "/usr/lib/systemd",
    ] {
        let p = Path::new(dir).join(program);
        if p.exists() {
            return p;
        }
    }
    panic!("{program} is not installed: `apt-get install {package}` (.ci/run does this)");
}

pub(super) fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0"))
        .unwrap_or(false)
}

pub(super) fn kill(child: &mut Child, signal: &str) {
    let _ = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status();
}

/// `net.unix.max_dgram_qlen` set for as long as this lives, restored on drop. A unix datagram
/// socket keeps the queue length it was created with: create the syslog daemon's socket
/// while this is set. The tests run as root; anything else fails loudly.
pub struct DgramQlen {
    was: String,
}

impl DgramQlen {
    const PATH: &'static str = "/proc/sys/net/unix/max_dgram_qlen";

    /// Set the sysctl to `n`.
    pub fn set(n: u32) -> DgramQlen {
        let was = std::fs::read_to_string(Self::PATH).expect("read net.unix.max_dgram_qlen");
        std::fs::write(Self::PATH, n.to_string())
            .expect("set net.unix.max_dgram_qlen (the tests run as root)");
        DgramQlen {
            was: was.trim().to_owned(),
        }
    }
}

impl Drop for DgramQlen {
    fn drop(&mut self) {
        let _ = std::fs::write(Self::PATH, &self.was);
    }
}
