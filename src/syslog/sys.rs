//! The system calls the syslog sink needs that the socket crates do not offer: every
//! `unsafe` block of the sink is here, each with its safety argument.

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use tokio::io::unix::{AsyncFd, AsyncFdRegisterError};

use super::sink::RUN;

/// Send each of `msgs` (at most [`RUN`]) as one datagram on the connected socket `fd` with
/// one system call; the number sent, which is less than asked when the socket filled up.
///
/// By hand, as the socket crates (socket2, tokio) have no `sendmmsg`, and nix's wants its
/// headers prepared in a type of its own; this is the one call we need.
pub(super) fn send_mmsg(fd: std::os::fd::RawFd, msgs: &[&[u8]]) -> io::Result<usize> {
    let n = msgs.len().min(RUN);
    // SAFETY: iovec and mmsghdr are plain C structs for which all zeroes is a valid value
    // (null pointers, zero lengths).
    let mut iov: [libc::iovec; RUN] = unsafe { std::mem::zeroed() };
    let mut hdr: [libc::mmsghdr; RUN] = unsafe { std::mem::zeroed() };
    for i in 0..n {
        iov[i] = libc::iovec {
            iov_base: msgs[i].as_ptr() as *mut libc::c_void,
            iov_len: msgs[i].len(),
        };
        hdr[i].msg_hdr.msg_iov = &mut iov[i];
        hdr[i].msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: `hdr[..n]` are valid headers, each pointing at one iovec in `iov`, which points
    // into a message of `msgs`; all of them outlive the call, and the kernel only reads
    // them (and writes `msg_len`). `n` ≤ RUN fits a c_uint.
    let rc = unsafe { libc::sendmmsg(fd, hdr.as_mut_ptr(), n as libc::c_uint, 0) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc as usize)
    }
}

/// `net.unix.max_dgram_qlen` + 1: the most datagrams a unix socket's receive queue holds.
pub(super) fn max_dgram_qlen() -> usize {
    std::fs::read_to_string("/proc/sys/net/unix/max_dgram_qlen")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .unwrap_or(512)
        + 1
}

/// Bytes sent on `s` and not yet read by the receiver (`SIOCOUTQ`, which is `TIOCOUTQ`).
pub(super) fn outq(s: &UnixDatagram) -> Option<usize> {
    let mut n: libc::c_int = 0;
    // SAFETY: SIOCOUTQ writes one c_int through the pointer, which points at `n`; the fd is
    // owned by `s` and open for the duration of the call.
    let rc = unsafe { libc::ioctl(s.as_raw_fd(), libc::TIOCOUTQ, &mut n) };
    (rc == 0).then(|| usize::try_from(n).unwrap_or(0))
}

/// Linux errno EMSGSIZE: the datagram is bigger than the socket can ever carry (a unix
/// datagram is capped by the send buffer, about 208 KiB by default; UDP by 64 KiB).
pub(super) const EMSGSIZE: i32 = libc::EMSGSIZE;
/// Linux errno EPROTOTYPE: connecting a datagram socket to a stream socket.
pub(super) const EPROTOTYPE: i32 = libc::EPROTOTYPE;

/// Register `s` with the runtime for write readiness; on failure `s` comes back with the
/// error.
pub(super) fn register_writable<S: AsRawFd>(s: S) -> Result<AsyncFd<S>, AsyncFdRegisterError<S>> {
    // SAFETY: the AsyncFd owns the socket, so its descriptor stays open and the same for the
    // registration's whole life.
    unsafe { AsyncFd::register_with_interest(s, tokio::io::Interest::WRITABLE) }
}
