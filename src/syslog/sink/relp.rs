//! A RELP session with rsyslog's imrelp, as the sink drives it: opened with `open` and its
//! answer, frames buffered ahead of the socket, answers parsed as they are read. The
//! protocol itself (frames, the session's window) is [`crate::syslog::relp`]'s.

use super::{Settled, write_part};
use crate::syslog::relp;
use std::io;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Most RELP records sent and not answered yet. The daemon answers within microseconds on a
/// LAN, so a few hundred keep it busy; each is also a record held in the outbox and possibly
/// written twice after a restart.
pub const RELP_WINDOW: usize = 1024;
/// Bytes of RELP frames buffered ahead of the socket: beyond this, records wait in the outbox.
pub(super) const RELP_OUT_HIGH: usize = 256 * 1024;
/// Bytes of the daemon's answers read and not parsed yet, past which they are parsed before
/// reading on.
const RELP_IN_HIGH: usize = 2 * relp::MAX_ANSWER;

/// An open RELP session: the stream, the session's window, and the bytes in both directions
/// that the socket has not taken or that do not make a whole frame yet.
pub(super) struct RelpConn {
    pub(super) stream: TcpStream,
    pub(super) session: relp::Session,
    pub(super) out: Vec<u8>,
    input: Vec<u8>,
}

impl RelpConn {
    /// Write buffered frames until done or the socket is full.
    pub(super) fn flush_out(&mut self) -> io::Result<()> {
        let mut at = 0;
        let res = write_part(&mut at, &self.out, |b| self.stream.try_write(b));
        if matches!(res, Ok(true)) {
            self.out.clear();
        } else {
            self.out.drain(..at);
        }
        res.map(|_| ())
    }

    /// Read what the daemon sent and take in its whole frames; the answers settled go to
    /// `settled`. An error ends the connection: the daemon closed it (EOF or `serverclose`),
    /// or sent something that is not RELP.
    pub(super) fn read_answers(&mut self, settled: &mut Settled) -> io::Result<()> {
        let mut buf = [0u8; 16 * 1024];
        let mut closed = None;
        loop {
            match self.stream.try_read(&mut buf) {
                Ok(0) => {
                    closed = Some(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the daemon closed the connection",
                    ));
                    break;
                }
                Ok(n) => {
                    self.input.extend_from_slice(&buf[..n]);
                    // Parsed as it comes, so that a daemon that never stops sending cannot
                    // grow the buffer past one unfinished frame (at most `MAX_ANSWER`).
                    if self.input.len() > RELP_IN_HIGH {
                        self.take_frames(settled)?;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    closed = Some(e);
                    break;
                }
            }
        }
        // Answers that came before the close still count; garbage says more than the close.
        self.take_frames(settled)?;
        closed.map_or(Ok(()), Err)
    }

    fn take_frames(&mut self, settled: &mut Settled) -> io::Result<()> {
        let mut used = 0;
        let res = loop {
            match relp::parse(&self.input[used..]) {
                Ok(Some((f, n))) => {
                    used += n;
                    match self.session.on_frame(&f) {
                        Ok(relp::Event::ServerClose) => {
                            break Err(io::Error::new(
                                io::ErrorKind::ConnectionAborted,
                                "the daemon ended the RELP session (serverclose)",
                            ));
                        }
                        Ok(_) => {}
                        Err(e) => break Err(io::Error::new(io::ErrorKind::InvalidData, e)),
                    }
                }
                Ok(None) => break Ok(()),
                Err(e) => {
                    break Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("not a RELP answer ({e})"),
                    ));
                }
            }
        };
        self.input.drain(..used);
        for a in self.session.take_answered() {
            settled.answered += 1;
            if let relp::Answer::Refused(status) = a {
                settled.refused += 1;
                settled.last_refusal = Some(status);
            }
        }
        res
    }
}

/// Connect and open a RELP session: `open`, then wait for its answer.
pub(super) async fn open(addr: &str) -> io::Result<RelpConn> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let mut session = relp::Session::new(RELP_WINDOW);
    let mut out = Vec::new();
    session.open(&mut out);
    stream.write_all(&out).await?;
    let mut input = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the daemon closed the connection before answering RELP open",
            ));
        }
        input.extend_from_slice(&buf[..n]);
        let parsed = relp::parse(&input).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("not a RELP daemon ({e})"),
            )
        })?;
        if let Some((f, used)) = parsed {
            let event = session.on_frame(&f);
            input.drain(..used);
            match event {
                Ok(relp::Event::Opened) => {}
                Ok(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "the daemon ended the RELP session while opening it",
                    ));
                }
                Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
            }
            return Ok(RelpConn {
                stream,
                session,
                out: Vec::new(),
                input,
            });
        }
    }
}
