//! Loopback ports for the daemons a test starts, never handed to two tests at once (the
//! test binaries run side by side).

use std::net::{TcpListener, UdpSocket};
use std::time::Duration;

/// A free TCP port on 127.0.0.1 (also free for UDP in practice: probed both), handed to no
/// other test in the last hour.
///
/// The kernel picks a port free *now*; once released, it may hand the same one to a test in
/// another process (the test binaries run side by side), whose daemon then fails to bind or,
/// worse, answers where a test expected nobody. Each port handed out is claimed with a file
/// created exclusively in a directory all test processes share; a claim older than an hour
/// is taken to be left over from an earlier run.
pub fn free_port() -> u16 {
    let claims = std::env::temp_dir().join("iotitan-test-ports");
    let registry = std::fs::create_dir_all(&claims).is_ok();
    for _ in 0..10_000 {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
        let port = l.local_addr().expect("local addr").port();
        if UdpSocket::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        if !registry {
            return port;
        }
        let claim = claims.join(port.to_string());
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&claim)
        {
            Ok(_) => return port,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let stale = std::fs::metadata(&claim)
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > Duration::from_secs(3600)));
                if stale {
                    // Whoever creates it next owns it: `create_new` lets only one win.
                    let _ = std::fs::remove_file(&claim);
                }
            }
            // A registry this user cannot write (another user's): the kernel's word alone.
            Err(_) => return port,
        }
    }
    panic!(
        "no unclaimed free port in 10 000 tries ({})",
        claims.display()
    );
}
