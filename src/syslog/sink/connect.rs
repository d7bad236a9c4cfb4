//! Opening a connection to the daemon for each transport of `syslog.target`, and noticing
//! that a stream connection was closed by the daemon.

use super::dgram::Dgram;
use super::{Conn, relp};
use crate::config::SyslogTarget;
use crate::syslog::sys::EPROTOTYPE;
use crate::syslog::system::System;
use std::io;
use std::net::UdpSocket;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::Duration;
use tokio::net::{TcpStream, UnixStream};

/// A connection attempt, kept across calls of [`Sink::ready`].
pub(super) type Connecting =
    std::pin::Pin<Box<dyn std::future::Future<Output = io::Result<Conn>> + Send>>;

/// Open a connection to `target`.
pub(super) async fn connect(target: SyslogTarget) -> io::Result<Conn> {
    Ok(match &target {
        SyslogTarget::Unix(path) => connect_unix(path.clone())?,
        // The sink decides `auto` before connecting (to name it in its log); decided here
        // otherwise, it is always a local socket.
        SyslogTarget::Auto => connect_unix(System::detect().socket())?,
        SyslogTarget::Udp(addr) => {
            let peer = tokio::net::lookup_host(addr.as_str())
                .await?
                .next()
                .ok_or_else(|| io::Error::other(format!("{addr} resolves to nothing")))?;
            let local = if peer.is_ipv4() {
                "0.0.0.0:0"
            } else {
                "[::]:0"
            };
            let s = UdpSocket::bind(local)?;
            s.connect(peer)?;
            s.set_nonblocking(true)?;
            Conn::Udp(Dgram::new(s))
        }
        SyslogTarget::Tcp(addr) => {
            let s = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr.as_str()))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
            s.set_nodelay(true)?;
            Conn::Tcp(s)
        }
        SyslogTarget::Relp(addr) => {
            let open = tokio::time::timeout(Duration::from_secs(5), relp::open(addr)).await;
            Conn::Relp(
                open.map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "RELP open timed out"))??,
            )
        }
    })
}

/// After a stream socket turned readable: the error that ended the connection, if it ended.
/// A syslog daemon never sends anything, so readable means closed (EOF or an error); anything
/// it does send is read and ignored.
pub(super) fn peer_closed(
    mut read: impl FnMut(&mut [u8]) -> io::Result<usize>,
) -> Option<io::Error> {
    let mut buf = [0u8; 512];
    match read(&mut buf) {
        Ok(0) => Some(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the daemon closed the connection",
        )),
        Ok(_) => None,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
        Err(e) => Some(e),
    }
}

fn connect_unix(path: PathBuf) -> io::Result<Conn> {
    let dgram = UnixDatagram::unbound()?;
    match dgram.connect(&path) {
        Ok(()) => {
            dgram.set_nonblocking(true)?;
            Ok(Conn::UnixDgram(Dgram::new(dgram)))
        }
        // EPROTOTYPE: the socket is a stream socket (some syslog daemons).
        Err(e) if e.raw_os_error() == Some(EPROTOTYPE) => {
            let s = std::os::unix::net::UnixStream::connect(&path)?;
            s.set_nonblocking(true)?;
            Ok(Conn::UnixStream(UnixStream::from_std(s)?))
        }
        Err(e) => Err(e),
    }
}
