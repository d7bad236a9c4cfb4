//! Datagram sockets as the sink uses them: registered with the runtime only while a write
//! waits for room ([`Dgram`]), and the datagrams a unix socket's daemon may not have read
//! yet, kept to be sent again after it restarts ([`Unread`]).

use super::super::sys::register_writable;
use std::io;
use std::os::fd::AsRawFd;
use tokio::io::unix::AsyncFd;

/// A non-blocking datagram socket, registered with the runtime only while a write waits
/// for room (see [`Conn`]): exactly one of the two fields is set.
pub(super) struct Dgram<S: AsRawFd> {
    idle: Option<S>,
    waiting: Option<AsyncFd<S>>,
}

impl<S: AsRawFd> Dgram<S> {
    pub(super) fn new(socket: S) -> Self {
        Dgram {
            idle: Some(socket),
            waiting: None,
        }
    }

    pub(super) fn socket(&self) -> &S {
        match (&self.idle, &self.waiting) {
            (Some(s), _) => s,
            (None, Some(a)) => a.get_ref(),
            (None, None) => unreachable!("a Dgram always holds its socket"),
        }
    }

    /// Run the non-blocking send `f`. While registered, a WouldBlock clears the readiness
    /// the runtime saw, so that the next [`Dgram::writable`] really waits.
    pub(super) fn send<R>(&self, f: impl FnOnce(&S) -> io::Result<R>) -> io::Result<R> {
        match &self.waiting {
            Some(a) => a.try_io(tokio::io::Interest::WRITABLE, f),
            None => f(self.socket()),
        }
    }

    /// Wait until the socket has room, registering it for as long as writes wait.
    pub(super) async fn writable(&mut self) -> io::Result<()> {
        if let Some(s) = self.idle.take() {
            match register_writable(s) {
                Ok(a) => self.waiting = Some(a),
                Err(e) => {
                    let (s, e) = e.into_parts();
                    self.idle = Some(s);
                    return Err(e);
                }
            }
        }
        if let Some(a) = &self.waiting {
            a.writable().await?.retain_ready();
        }
        Ok(())
    }

    /// Stop listening for room: nothing waits to be written.
    pub(super) fn unregister(&mut self) {
        if let Some(a) = self.waiting.take() {
            self.idle = Some(a.into_inner());
        }
    }
}

/// Datagrams sent on a unix socket that the daemon may not have read yet.
///
/// A datagram sits in the daemon's receive queue until read; if the daemon exits first
/// (a restart), the kernel discards it and the sender is never told. Two kernel facts bound
/// the loss and let us undo it: the receive queue holds at most `net.unix.max_dgram_qlen` + 1
/// datagrams (senders block beyond that), so the last that many sends are the only ones that
/// can be unread; and an unread datagram is charged to the sender's socket, so `SIOCOUTQ` = 0
/// means every datagram sent so far was read — provided the daemon was still alive, which
/// a later successful send on the same connection proves (after the daemon closes, sends
/// fail). Keeping that window and trimming it on proof costs a copy per record, recycled.
pub(super) struct Unread {
    recent: std::collections::VecDeque<Vec<u8>>,
    pub(super) cap: usize,
    /// Entries at the front known read once the next send succeeds.
    read_mark: usize,
    since_check: u32,
    spare: Vec<Vec<u8>>,
}

impl Unread {
    /// How often (in sends) to ask the kernel how much is still unread.
    const CHECK_EVERY: u32 = 16;

    pub(super) fn new(cap: usize) -> Self {
        Unread {
            recent: std::collections::VecDeque::with_capacity(cap + 1),
            cap,
            read_mark: 0,
            since_check: 0,
            spare: Vec::new(),
        }
    }

    /// Record a successful send of `msg`; `outq` asks the kernel for unread bytes.
    pub(super) fn sent(&mut self, msg: &[u8], outq: impl FnOnce() -> Option<usize>) {
        // This send succeeded, so the daemon was alive at the last check: what it had read
        // then is read for sure.
        for _ in 0..self.read_mark {
            if let Some(b) = self.recent.pop_front() {
                self.spare.push(b);
            }
        }
        self.read_mark = 0;
        let mut b = self.spare.pop().unwrap_or_default();
        b.clear();
        b.extend_from_slice(msg);
        self.recent.push_back(b);
        if self.recent.len() > self.cap
            && let Some(old) = self.recent.pop_front()
        {
            self.spare.push(old);
        }
        self.since_check += 1;
        if self.since_check >= Self::CHECK_EVERY {
            self.since_check = 0;
            if outq() == Some(0) {
                self.read_mark = self.recent.len();
            }
        }
    }

    /// Everything possibly unread, oldest first; the window starts over (new connection).
    pub(super) fn drain(&mut self) -> Vec<Vec<u8>> {
        self.read_mark = 0;
        self.since_check = 0;
        self.recent.drain(..).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unread_window_is_bounded_and_trimmed_on_proof() {
        let mut u = Unread::new(4);
        for i in 0..10u8 {
            u.sent(&[i], || Some(1));
        }
        // Only the last `cap` sends can be unread.
        assert_eq!(u.drain(), vec![vec![6], vec![7], vec![8], vec![9]]);
        for i in 0..Unread::CHECK_EVERY as u8 {
            u.sent(&[i], || Some(0));
        }
        // outq was 0 at the last check, but nothing proves the daemon was alive then.
        assert_eq!(u.recent.len(), 4);
        u.sent(b"next", || Some(0));
        // The next successful send is the proof: only it remains.
        assert_eq!(u.drain(), vec![b"next".to_vec()]);
    }
}
