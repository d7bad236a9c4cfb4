//! Writing records to a syslog daemon: unix datagram (stream as fallback), UDP, TCP with
//! RFC 6587 octet-counting framing, or RELP ([`super::relp`]); RFC 3164 or RFC 5424 headers.
//!
//! Why not the `syslog` crate's loggers: they write no framing on TCP, never reconnect after
//! the daemon restarts (rust-syslog #21), block the caller, and its RFC 3164 formatter stamps
//! UTC (receivers read 3164 times as local time) after re-parsing a time format for every
//! message. We keep its `Facility` and `Severity` types and priority encoding, format headers
//! ourselves with a per-second cache, and drive non-blocking sockets from the caller's event
//! loop, so a stalled or restarting daemon never blocks MQTT.
//!
//! What a daemon restart costs depends on the transport, because "handed to the socket" is
//! not "read by the daemon", and only the unix datagram socket lets us tell the difference:
//!
//! - `unix:` (datagram, the default): nothing is lost. Datagrams the daemon had not read when
//!   it exited are sent again once it is back (see [`Unread`]); at most
//!   `net.unix.max_dgram_qlen` + 1 records can be written twice.
//! - `tcp:` (and a unix stream socket): a restart while the connection is idle loses nothing,
//!   as the daemon's close is seen ([`Sink::ready`] watches for it) and the next record goes
//!   to a new connection. A restart under traffic can lose the records the daemon had
//!   received into its socket buffer but not read when it exited (the kernel discards them,
//!   and TCP acknowledges receipt by the kernel, not by the daemon), and those written in the
//!   moment between its close and our noticing it. Either way the connection ends in a reset
//!   rather than a clean close, and the warning says records may be lost; after a clean
//!   close none were. Nothing is written twice. For a lossless restart use `relp:`.
//! - `relp:` (rsyslog's imrelp): nothing is lost. The daemon answers each record once it has
//!   it, and a record counts as written only then ([`Sink::take_settled`]); what was not
//!   answered when the connection ended is sent again on the next one, so a restart can
//!   write a few records twice (at most [`RELP_WINDOW`]) but loses none.
//! - `udp:`: fire and forget. Records sent while the daemon is down or its buffer is full are
//!   lost without notice.
//!
//! Queued records (the daemon unreachable) are kept by the caller on every transport.

mod connect;
mod dgram;
mod relp;

pub use relp::RELP_WINDOW;

use super::sys::{EMSGSIZE, max_dgram_qlen, outq, send_mmsg};
use crate::backoff::Backoff;
use crate::config::SyslogTarget;
use connect::{Connecting, connect, peer_closed};
use dgram::{Dgram, Unread};
use relp::{RELP_OUT_HIGH, RelpConn};
use std::io::{self, Write};
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpStream, UnixStream};

/// An open connection to the daemon.
///
/// The datagram sockets are non-blocking std sockets, not registered with the runtime's
/// epoll: a registered datagram socket wakes the event loop every time the daemon reads one
/// of our datagrams (the kernel then frees its buffer and signals write space), which under
/// load was one wake-up per record. They are registered only while a write waits for room
/// ([`Dgram`]).
enum Conn {
    UnixDgram(Dgram<UnixDatagram>),
    UnixStream(UnixStream),
    Udp(Dgram<UdpSocket>),
    Tcp(TcpStream),
    Relp(RelpConn),
}

/// What became of records handed to a transport that confirms them (RELP), since the last
/// [`Sink::take_settled`].
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Settled {
    /// The oldest records sent and unsettled that the daemon answered, in send order.
    pub answered: usize,
    /// How many of those it refused (a status other than 200): they are not in syslog, and
    /// sending them again would meet the same answer.
    pub refused: usize,
    /// The status line of the last refusal.
    pub last_refusal: Option<String>,
    /// The connection ended: every record sent and not answered must be sent again.
    pub lost: bool,
}

/// What happened to a write attempt.
#[derive(Debug)]
pub enum Written {
    /// The whole message was handed to the socket.
    Done,
    /// The socket is full (or still reconnecting): call [`Sink::ready`], then try again.
    Later,
    /// The message can never be sent (too big for the transport): drop it.
    Rejected(io::Error),
}

/// A reconnecting, non-blocking connection to a syslog daemon.
///
/// Messages are written with [`Sink::try_write_many`], which says how many the socket took;
/// a failure drops the connection and schedules a reconnect with capped backoff, and the
/// caller keeps the messages not taken to write them again. Stream transports may take a
/// message in parts; the sink remembers how far it got.
pub struct Sink {
    /// As configured: `auto` stays `auto`, decided again at each connection attempt.
    configured: SyslogTarget,
    /// Where the current or last connection attempt went: `configured` with `auto` decided.
    target: SyslogTarget,
    conn: Option<Conn>,
    backoff: Backoff,
    retry_at: Option<tokio::time::Instant>,
    /// Bytes of the current message already written on a stream transport.
    partial: usize,
    /// Scratch buffer for framing on stream transports.
    framed: Vec<u8>,
    last_error: Option<String>,
    /// Unix datagram only: what the daemon may not have read yet (see [`Unread`]).
    unread: Unread,
    /// Messages to send again because the daemon went away before reading them.
    replay: Vec<Vec<u8>>,
    /// The connection attempt in progress, if any.
    connecting: Option<Connecting>,
    /// RELP only: answers not taken yet by [`Sink::take_settled`].
    settled: Settled,
}

impl Sink {
    /// A sink for `target`; it connects on first use. `auto` is decided at each connection
    /// attempt: rsyslog installed, removed or stopped is followed without a restart.
    pub fn new(target: SyslogTarget) -> Self {
        Sink {
            target: super::system::resolve_target(&target),
            configured: target,
            conn: None,
            backoff: Backoff::new(Duration::from_secs(5)),
            retry_at: None,
            partial: 0,
            framed: Vec::new(),
            last_error: None,
            unread: Unread::new(max_dgram_qlen()),
            replay: Vec::new(),
            connecting: None,
            settled: Settled::default(),
        }
    }

    /// Where records go: the configured target, with `auto` as decided for the current or
    /// last connection attempt.
    pub fn target(&self) -> &SyslogTarget {
        &self.target
    }

    /// Whether 3164 headers should carry the host name (network targets).
    pub fn is_network(&self) -> bool {
        !matches!(self.target, SyslogTarget::Unix(_))
    }

    /// The last connection error, for status messages.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// On a unix datagram connection, what the daemon has not read yet, in the kernel's
    /// accounting (`SIOCOUTQ`: each datagram counts its buffer, about 1 KiB for a short
    /// record). `None` on other transports.
    pub fn unread_bytes(&self) -> Option<usize> {
        match &self.conn {
            Some(Conn::UnixDgram(s)) => outq(s.socket()),
            _ => None,
        }
    }

    /// How many datagrams the daemon's unix socket queues before writes must wait
    /// (`net.unix.max_dgram_qlen` + 1); `None` on other transports, whose buffers are
    /// measured in hundreds of kilobytes.
    pub fn socket_queue(&self) -> Option<usize> {
        matches!(self.target, SyslogTarget::Unix(_)).then_some(self.unread.cap)
    }

    /// Close the connection. A RELP session is ended with `close` and its answer awaited for
    /// at most `budget`, so that the daemon does not log a broken session; the answers still
    /// to come for records are not waited for (their messages stay unacknowledged).
    pub async fn close(&mut self, budget: Duration) {
        if let Some(Conn::Relp(c)) = &mut self.conn {
            c.session.close(&mut c.out);
            let _ = tokio::time::timeout(budget, async {
                while !c.out.is_empty() {
                    if c.stream.writable().await.is_err() || c.flush_out().is_err() {
                        return;
                    }
                }
                let mut buf = [0u8; 4096];
                // Until the daemon closes its side (after answering `close`).
                while let Ok(n) = c.stream.read(&mut buf).await {
                    if n == 0 {
                        return;
                    }
                }
            })
            .await;
        }
        self.conn = None;
    }

    /// Whether the daemon confirms records (RELP): a record handed over is written only once
    /// [`Sink::take_settled`] says it was answered, and must be kept until then.
    pub fn confirms(&self) -> bool {
        matches!(self.target, SyslogTarget::Relp(_))
    }

    /// On a confirming transport, what became of the records handed over since the last
    /// call: how many of the oldest were answered, and whether the rest must be sent again.
    pub fn take_settled(&mut self) -> Settled {
        std::mem::take(&mut self.settled)
    }

    /// Whether a connection is open.
    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// The connection attempt in progress, started if there is none. It lives in the sink,
    /// so a caller that drops [`Sink::ready`] (a `select!` taking another branch) resumes the
    /// same attempt next time instead of starting a new one: under a steady flow of messages
    /// a fresh attempt per message would never complete.
    fn connecting(&mut self) -> &mut Connecting {
        if self.connecting.is_none() {
            let target = super::system::resolve_target(&self.configured);
            if target != self.target {
                tracing::info!("syslog target auto: now {target}");
                self.target = target;
            }
        }
        let target = self.target.clone();
        self.connecting
            .get_or_insert_with(|| Box::pin(connect(target)))
    }

    /// Wait until a write may make progress (when `want_write`): the socket is writable, or
    /// the reconnect delay has passed and a new connection was made (on failure another delay
    /// is scheduled and this returns, so the caller's loop stays responsive). On stream
    /// transports it also returns once the daemon closed the connection, which then counts
    /// as a failure: a restarted daemon is noticed before the next record is written into a
    /// dead connection. Without `want_write` and without a connection it never returns.
    pub async fn ready(&mut self, want_write: bool) {
        // A RELP session that ended inside a write (`relp_write`) left records to send again;
        // the caller learns it from `take_settled`, now rather than at its next message (the
        // last records of a burst, or `leave`'s marker, waited without a connection).
        if self.settled.lost {
            return;
        }
        if self.conn.is_none() {
            if !want_write {
                return std::future::pending().await;
            }
            if let Some(at) = self.retry_at {
                tokio::time::sleep_until(at).await;
            }
            let result = self.connecting().await;
            self.connecting = None;
            match result {
                Ok(c) => {
                    if self.last_error.take().is_some() {
                        tracing::info!("reconnected to syslog at {}", self.target);
                    }
                    self.conn = Some(c);
                    self.retry_at = None;
                    self.partial = 0;
                }
                Err(e) => self.fail(e),
            }
            return;
        }
        let closed = match &mut self.conn {
            Some(Conn::Tcp(s)) => {
                tokio::select! {
                    r = s.writable(), if want_write => r.err(),
                    r = s.readable() => r.err().or_else(|| peer_closed(|b| s.try_read(b))),
                }
            }
            Some(Conn::UnixStream(s)) => {
                tokio::select! {
                    r = s.writable(), if want_write => r.err(),
                    r = s.readable() => r.err().or_else(|| peer_closed(|b| s.try_read(b))),
                }
            }
            Some(Conn::Relp(c)) => {
                // Answers are always read: they free the window and settle records. Frames go
                // as soon as the window has any room: waiting for more room to send bigger
                // batches stalled the stream for the peer's delayed ACK (rsyslogd's small
                // answers wait for our ACK under Nagle, our ACK rides on our next frames):
                // 23 000 msg/s instead of 90 000 (BENCHMARKS.md).
                let write = !c.out.is_empty() || (want_write && c.session.has_room());
                tokio::select! {
                    r = c.stream.writable(), if write => r.err().or_else(|| c.flush_out().err()),
                    r = c.stream.readable() => {
                        r.err().or_else(|| c.read_answers(&mut self.settled).err())
                    }
                }
            }
            Some(Conn::UnixDgram(s)) if want_write => s.writable().await.err(),
            Some(Conn::Udp(s)) if want_write => s.writable().await.err(),
            Some(Conn::UnixDgram(s)) => {
                s.unregister();
                return std::future::pending().await;
            }
            Some(Conn::Udp(s)) => {
                s.unregister();
                return std::future::pending().await;
            }
            None => return std::future::pending().await,
        };
        if let Some(e) = closed {
            self.fail(e);
        }
    }

    /// Messages that were handed to a daemon which then went away before reading them (a
    /// restart of rsyslogd or journald). The caller sends them again, ahead of anything new:
    /// delivery is at least once, so a restart can duplicate a few records but loses none.
    pub fn take_replay(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.replay)
    }

    fn fail(&mut self, e: io::Error) {
        if matches!(self.conn, Some(Conn::UnixDgram(_))) {
            self.replay.extend(self.unread.drain());
        }
        if let Some(Conn::Relp(c)) = &self.conn {
            self.settled.lost = true;
            let n = c.session.unanswered();
            if n > 0 {
                tracing::warn!(
                    "RELP connection to syslog at {} ended ({e}) with {n} records unanswered; \
                     they are sent again once reconnected",
                    self.target
                );
            }
        }
        let msg = e.to_string();
        let stream = matches!(self.conn, Some(Conn::Tcp(_) | Conn::UnixStream(_)));
        if stream
            && matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
            )
        {
            // A daemon that closes with unread data resets the connection (a clean close
            // means it read everything); writing after its close also ends in a reset.
            tracing::warn!(
                "syslog at {} reset the connection ({msg}): records written just before may \
                 be lost (the daemon exited without reading them); holding records",
                self.target
            );
        } else if self.last_error.as_deref() != Some(msg.as_str()) {
            tracing::warn!(
                "syslog at {} unavailable: {msg}; holding records",
                self.target
            );
        }
        self.last_error = Some(msg);
        self.conn = None;
        self.partial = 0;
        self.retry_at = Some(tokio::time::Instant::now() + self.backoff.delay());
    }

    /// Try to write messages from the front of `msgs` without blocking. Returns how many
    /// were handed to the socket and, when that is not all of them, what happened to the
    /// next one: [`Written::Later`] (the socket is full or the connection gone; write it
    /// again after [`Sink::ready`]) or [`Written::Rejected`] (it can never be sent: drop it
    /// and go on with the one after).
    ///
    /// Datagram transports hand a run of messages to the kernel in one `sendmmsg` call: one
    /// system call per datagram was the largest cost per record left after the datagram
    /// itself (see BENCHMARKS.md).
    pub fn try_write_many(&mut self, msgs: &[&[u8]]) -> (usize, Written) {
        if let Some(Conn::Relp(_)) = self.conn {
            return self.relp_write(msgs);
        }
        let mut n = 0;
        while n < msgs.len() {
            let k = match self.send_run(&msgs[n..]) {
                Some(Ok(k)) => k,
                Some(Err(e)) => return (n, self.write_error(e)),
                // Not a run: one message at a time.
                None => match self.try_write(msgs[n]) {
                    Written::Done => 1,
                    outcome => return (n, outcome),
                },
            };
            if k == 0 {
                return (n, Written::Later);
            }
            n += k;
        }
        if n > 0 {
            self.backoff.reset();
        }
        (n, Written::Done)
    }

    /// RELP: frame messages from the front of `msgs` while the window and the buffer have
    /// room, and write what the socket takes. The count includes frames still buffered: they
    /// are part of the session and settle (or are lost and sent again) with it.
    fn relp_write(&mut self, msgs: &[&[u8]]) -> (usize, Written) {
        let Some(Conn::Relp(c)) = &mut self.conn else {
            return (0, Written::Later);
        };
        let mut n = 0;
        while n < msgs.len() && c.session.has_room() && c.out.len() < RELP_OUT_HIGH {
            c.session.syslog(msgs[n], &mut c.out);
            n += 1;
        }
        if let Err(e) = c.flush_out() {
            self.fail(e);
            return (n, Written::Later);
        }
        if n > 0 {
            self.backoff.reset();
        }
        let outcome = if n == msgs.len() {
            Written::Done
        } else {
            Written::Later
        };
        (n, outcome)
    }

    /// On a datagram connection, send the longest run of small messages at the front of
    /// `msgs` (at most [`RUN`]) with one `sendmmsg`: `Some(Ok(k))` for the first `k` sent.
    /// `None` when there is no such run (a stream transport, or a big message first).
    ///
    /// Big messages go alone through [`Sink::try_write`]: when one datagram of a run fails
    /// after others were sent, `sendmmsg` returns the count and leaves the error pending on
    /// the socket, where it would fail the next, innocent, datagram. EAGAIN is the exception
    /// (the kernel drops it), and the other errors close the connection anyway; only
    /// EMSGSIZE would be misreported, and a message below [`RUN_MAX_BYTES`] cannot cause it.
    fn send_run(&mut self, msgs: &[&[u8]]) -> Option<io::Result<usize>> {
        let run = msgs
            .iter()
            .take(RUN)
            .take_while(|m| m.len() < RUN_MAX_BYTES)
            .count();
        if run < 2 {
            return None;
        }
        let msgs = &msgs[..run];
        let res = match self.conn.as_ref()? {
            Conn::UnixDgram(s) => s.send(|s| send_mmsg(s.as_raw_fd(), msgs)),
            Conn::Udp(s) => s.send(|s| send_mmsg(s.as_raw_fd(), msgs)),
            Conn::Tcp(_) | Conn::UnixStream(_) | Conn::Relp(_) => return None,
        };
        if let (Ok(k), Some(Conn::UnixDgram(s))) = (&res, &self.conn) {
            for m in &msgs[..*k] {
                self.unread.sent(m, || outq(s.socket()));
            }
        }
        Some(res)
    }

    /// What a failed write means: [`Written::Later`] (WouldBlock, or a broken connection,
    /// which is dropped and rebuilt) or [`Written::Rejected`] (too big); never `Done`.
    fn write_error(&mut self, e: io::Error) -> Written {
        if e.kind() == io::ErrorKind::WouldBlock {
            Written::Later
        } else if e.raw_os_error() == Some(EMSGSIZE) {
            Written::Rejected(e)
        } else {
            self.fail(e);
            Written::Later
        }
    }

    /// Try to write one message without blocking: the path of streams and big datagrams.
    fn try_write(&mut self, msg: &[u8]) -> Written {
        let Some(conn) = &self.conn else {
            return Written::Later;
        };
        let res = match conn {
            Conn::UnixDgram(s) => s.send(|s| s.send(msg)).map(|_| {
                self.unread.sent(msg, || outq(s.socket()));
                true
            }),
            Conn::Udp(s) => s.send(|s| s.send(msg)).map(|_| true),
            Conn::UnixStream(s) => {
                // glibc's syslog() ends each message with NUL on stream sockets.
                frame_once(&mut self.framed, self.partial, |f| {
                    f.extend_from_slice(msg);
                    f.push(0)
                });
                write_part(&mut self.partial, &self.framed, |b| s.try_write(b))
            }
            Conn::Tcp(s) => {
                // RFC 6587 octet counting: "LEN SP MSG".
                frame_once(&mut self.framed, self.partial, |f| {
                    let _ = write!(f, "{} ", msg.len());
                    f.extend_from_slice(msg)
                });
                write_part(&mut self.partial, &self.framed, |b| s.try_write(b))
            }
            // Written by `relp_write`.
            Conn::Relp(_) => return Written::Later,
        };
        match res {
            Ok(true) => {
                self.backoff.reset();
                Written::Done
            }
            Ok(false) => Written::Later,
            Err(e) => self.write_error(e),
        }
    }
}

/// Most datagrams handed to one `sendmmsg` call.
pub(super) const RUN: usize = 64;
/// Messages this big or bigger are sent alone (see [`Sink::send_run`]).
const RUN_MAX_BYTES: usize = 16 * 1024;

/// Build the framed bytes for `msg` unless a partial write of it is in progress.
fn frame_once(buf: &mut Vec<u8>, partial: usize, build: impl FnOnce(&mut Vec<u8>)) {
    if partial == 0 {
        buf.clear();
        build(buf);
    }
}

/// Write the rest of `framed` from `*partial`; `Ok(true)` once all of it is written.
pub(super) fn write_part(
    partial: &mut usize,
    framed: &[u8],
    mut write: impl FnMut(&[u8]) -> io::Result<usize>,
) -> io::Result<bool> {
    while *partial < framed.len() {
        match write(&framed[*partial..]) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "connection closed",
                ));
            }
            Ok(n) => *partial += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    *partial = 0;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connected sink on a fresh unix datagram socket, and that socket.
    fn unix_pair(dir: &std::path::Path) -> (Sink, UnixDatagram) {
        let path = dir.join("log.sock");
        let rx = UnixDatagram::bind(&path).unwrap();
        let mut sink = Sink::new(SyslogTarget::Unix(path));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(sink.ready(true));
        assert!(sink.is_connected());
        (sink, rx)
    }

    fn read_all(rx: &UnixDatagram, got: &mut Vec<Vec<u8>>) {
        rx.set_nonblocking(true).unwrap();
        let mut buf = vec![0u8; 512 * 1024];
        while let Ok(n) = rx.recv(&mut buf) {
            got.push(buf[..n].to_vec());
        }
    }

    #[test]
    fn runs_of_datagrams_arrive_whole_and_in_order_across_a_full_socket() {
        let dir = tempfile::tempdir().unwrap();
        let (mut sink, rx) = unix_pair(dir.path());
        // Small records around one bigger than a run may hold, many more than the
        // receiving socket queues (net.unix.max_dgram_qlen + 1), so writes stop and resume.
        let msgs: Vec<Vec<u8>> = (0..2000)
            .map(|i| {
                if i == 700 {
                    vec![b'x'; RUN_MAX_BYTES + 1]
                } else {
                    format!("<134>a/b {i}").into_bytes()
                }
            })
            .collect();
        let mut sent = 0;
        let mut got = Vec::new();
        let mut stops = 0;
        while sent < msgs.len() {
            let rest: Vec<&[u8]> = msgs[sent..].iter().map(|m| m.as_slice()).collect();
            let (n, outcome) = sink.try_write_many(&rest);
            sent += n;
            match outcome {
                Written::Done => assert_eq!(sent, msgs.len()),
                Written::Later => stops += 1,
                Written::Rejected(e) => panic!("message {sent} rejected: {e}"),
            }
            read_all(&rx, &mut got);
        }
        assert!(stops > 0, "the receiving socket never filled up");
        assert_eq!(got, msgs);
    }

    #[test]
    fn a_datagram_too_big_is_rejected_alone_and_the_rest_still_goes() {
        let dir = tempfile::tempdir().unwrap();
        let (mut sink, rx) = unix_pair(dir.path());
        // Bigger than any default socket send buffer (EMSGSIZE), between small ones.
        let big = vec![b'x'; 4 * 1024 * 1024];
        let msgs: Vec<&[u8]> = vec![b"one", b"two", &big, b"three", b"four"];
        let (n, outcome) = sink.try_write_many(&msgs);
        assert_eq!(n, 2);
        assert!(matches!(outcome, Written::Rejected(_)), "{outcome:?}");
        let (n, outcome) = sink.try_write_many(&msgs[3..]);
        assert_eq!(n, 2);
        assert!(matches!(outcome, Written::Done), "{outcome:?}");
        let mut got = Vec::new();
        read_all(&rx, &mut got);
        assert_eq!(
            got,
            vec![
                b"one".to_vec(),
                b"two".into(),
                b"three".into(),
                b"four".into()
            ]
        );
    }

    /// A RELP daemon on loopback that answers `open`, then the three records it gets out of
    /// order (one refused), then garbage: the answers settle in send order, the refusal is
    /// counted, and the garbage ends the connection with the last record to be sent again.
    #[test]
    fn relp_answers_settle_in_order_and_garbage_ends_the_connection() {
        use std::io::Read;
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let server = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = Vec::new();
            let mut records = Vec::new();
            let mut chunk = [0u8; 4096];
            while records.len() < 3 {
                let n = s.read(&mut chunk).unwrap();
                assert!(n > 0, "client closed early");
                buf.extend_from_slice(&chunk[..n]);
                while let Some((f, used)) = crate::syslog::relp::parse(&buf).unwrap() {
                    let (command, txnr, data) = (f.command.to_owned(), f.txnr, f.data.to_vec());
                    buf.drain(..used);
                    if command == "open" {
                        assert_eq!(txnr, 1);
                        s.write_all(b"1 rsp 6 200 OK\n").unwrap();
                    } else {
                        assert_eq!(command, "syslog");
                        records.push((txnr, data));
                    }
                }
            }
            s.write_all(b"3 rsp 6 200 OK\n2 rsp 11 500 no room\nHTTP/1.1 400\n")
                .unwrap();
            records
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut sink = Sink::new(SyslogTarget::Relp(addr));
        assert!(sink.confirms());
        rt.block_on(sink.ready(true));
        assert!(sink.is_connected(), "{:?}", sink.last_error());
        let (n, outcome) = sink.try_write_many(&[b"a", b"b", b"c"]);
        assert_eq!(n, 3);
        assert!(matches!(outcome, Written::Done), "{outcome:?}");
        let mut total = Settled::default();
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(10), async {
                while !total.lost {
                    sink.ready(false).await;
                    let s = sink.take_settled();
                    total.answered += s.answered;
                    total.refused += s.refused;
                    total.last_refusal = s.last_refusal.or(total.last_refusal.take());
                    total.lost = s.lost;
                }
            })
            .await
            .expect("the garbage ends the connection");
        });
        assert_eq!(
            total,
            Settled {
                answered: 2,
                refused: 1,
                last_refusal: Some("500 no room".into()),
                lost: true,
            }
        );
        assert!(!sink.is_connected());
        assert!(
            sink.last_error()
                .is_some_and(|e| e.contains("not a RELP answer")),
            "{:?}",
            sink.last_error()
        );
        let records = server.join().unwrap();
        assert_eq!(
            records,
            vec![(2, b"a".to_vec()), (3, b"b".to_vec()), (4, b"c".to_vec())]
        );
    }

    /// A RELP session that ends inside a write (the daemon reset it) is reported by the next
    /// `ready`, even when nothing more is to be written: the records it lost are owed again.
    /// (They once waited, without a connection, for the next message to arrive.)
    #[test]
    fn a_relp_session_lost_inside_a_write_is_reported_by_the_next_ready() {
        use std::io::Read;
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let server = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            while crate::syslog::relp::parse(&buf).unwrap().is_none() {
                let n = s.read(&mut chunk).unwrap();
                assert!(n > 0, "client closed before open");
                buf.extend_from_slice(&chunk[..n]);
            }
            s.write_all(b"1 rsp 6 200 OK\n").unwrap();
            // A record comes; closed with it unread, the connection is reset.
            let mut peek = [0u8; 1];
            s.peek(&mut peek).unwrap();
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut sink = Sink::new(SyslogTarget::Relp(addr));
        rt.block_on(sink.ready(true));
        assert!(sink.is_connected(), "{:?}", sink.last_error());
        assert_eq!(sink.try_write_many(&[b"a"]).0, 1);
        server.join().unwrap();
        // The reset is seen by a write, not by `ready` (not called meanwhile).
        let lost_in_write = (0..200).any(|_| {
            let _ = sink.try_write_many(&[b"b"]);
            let gone = !sink.is_connected();
            if !gone {
                std::thread::sleep(Duration::from_millis(10));
            }
            gone
        });
        assert!(lost_in_write, "no write failed after the reset");
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(5), sink.ready(false))
                .await
                .expect("ready reports the lost session at once");
        });
        assert!(sink.take_settled().lost);
    }

    #[test]
    fn partial_writes_resume() {
        let framed = b"5 hello".to_vec();
        let mut partial = 0;
        let mut sent = Vec::new();
        let mut calls = 0;
        let r = write_part(&mut partial, &framed, |b| {
            calls += 1;
            if calls == 2 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = b.len().min(3);
            sent.extend_from_slice(&b[..n]);
            Ok(n)
        });
        assert!(!r.unwrap());
        assert_eq!(partial, 3);
        let r = write_part(&mut partial, &framed, |b| {
            sent.extend_from_slice(b);
            Ok(b.len())
        });
        assert!(r.unwrap());
        assert_eq!(sent, framed);
        assert_eq!(partial, 0);
    }
}
