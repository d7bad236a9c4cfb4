//! RELP, rsyslog's Reliable Event Logging Protocol (<https://www.rsyslog.com/doc/relp.html>),
//! client side and pure: the frame encoder, an incremental parser of the daemon's answers,
//! and the session's window of frames not answered yet. No I/O: the sink
//! ([`super::sink`]) moves the bytes.
//!
//! Why RELP: over plain TCP the kernel acknowledges what the daemon never read, so a restart
//! under traffic loses the records in its socket buffer. A RELP daemon answers each frame
//! (`TXNR rsp LEN 200 OK`) once it took the record, so a record counts as written only then,
//! and whatever was not answered when a connection ends is sent again on the next one
//! (duplicates possible, loss not).
//!
//! Why by hand: there is no maintained Rust RELP client crate, and librelp through FFI would
//! bring a C library with blocking I/O of its own into an event loop that must never block,
//! for a protocol of three commands and one line-shaped frame.
//!
//! A frame is `TXNR SP COMMAND SP DATALEN [SP DATA] LF`: TXNR 0..=999 999 999 (0 only for the
//! daemon's `serverclose`), COMMAND 1 to 32 letters, DATALEN the length of DATA in bytes
//! (DATA and its space absent when 0).

use std::collections::VecDeque;
use std::fmt;
use std::io::Write;

/// The largest transaction number; the one after it is 1 again.
pub const MAX_TXNR: u32 = 999_999_999;
/// The longest answer accepted from the daemon: answers are a status line and, for `open`, a
/// few offers. Anything longer is not a RELP daemon talking.
pub const MAX_ANSWER: usize = 64 * 1024;
const MAX_COMMAND: usize = 32;
/// What we offer when opening a session: protocol version 0, and the one command we send.
const OFFERS: &str = concat!(
    "relp_version=0\nrelp_software=iotitan,",
    env!("CARGO_PKG_VERSION"),
    "\ncommands=syslog"
);

/// Append the frame `TXNR COMMAND DATALEN [DATA]` to `out`.
pub fn encode(out: &mut Vec<u8>, txnr: u32, command: &str, data: &[u8]) {
    let _ = write!(out, "{txnr} {command} {}", data.len());
    if !data.is_empty() {
        out.push(b' ');
        out.extend_from_slice(data);
    }
    out.push(b'\n');
}

/// A frame received from the daemon, borrowed from the input buffer (an answer per record:
/// no allocation on that path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame<'a> {
    pub txnr: u32,
    pub command: &'a str,
    pub data: &'a [u8],
}

/// Bytes that are not a RELP frame: the connection cannot be trusted any more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The transaction number is missing, not a number, or too long.
    Txnr,
    /// The command is missing, not letters, or too long.
    Command,
    /// The data length is missing or not a number.
    Length,
    /// The data length is larger than any answer can be.
    TooLong(u64),
    /// The frame does not end where its length says.
    Trailer,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Txnr => f.write_str("bad transaction number"),
            FrameError::Command => f.write_str("bad command"),
            FrameError::Length => f.write_str("bad data length"),
            FrameError::TooLong(n) => write!(f, "data length {n} exceeds {MAX_ANSWER}"),
            FrameError::Trailer => f.write_str("frame does not end in a newline"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Read a decimal number at `buf[*at..]` (1 to `max_digits` digits) ended by one of the
/// bytes `ends`: the number and its end byte, or `Ok(None)` when `buf` ends first.
fn number(
    buf: &[u8],
    at: &mut usize,
    max_digits: usize,
    ends: &[u8],
    err: FrameError,
) -> Result<Option<(u64, u8)>, FrameError> {
    let start = *at;
    let mut n: u64 = 0;
    loop {
        let Some(&b) = buf.get(*at) else {
            return Ok(None);
        };
        *at += 1;
        if b.is_ascii_digit() {
            if *at - start > max_digits {
                return Err(err);
            }
            n = n * 10 + u64::from(b - b'0');
        } else if ends.contains(&b) && *at - 1 > start {
            return Ok(Some((n, b)));
        } else {
            return Err(err);
        }
    }
}

/// Parse one frame from the front of `buf`: the frame and how many bytes it took, or
/// `Ok(None)` when `buf` holds only the beginning of a frame (read more and call again).
/// Partial input is never an error and garbage always is, as soon as it is seen.
pub fn parse(buf: &[u8]) -> Result<Option<(Frame<'_>, usize)>, FrameError> {
    let mut at = 0;
    let Some((txnr, _)) = number(buf, &mut at, 9, b" ", FrameError::Txnr)? else {
        return Ok(None);
    };
    let start = at;
    let command = loop {
        let Some(&b) = buf.get(at) else {
            return Ok(None);
        };
        at += 1;
        if b.is_ascii_alphabetic() && at - start <= MAX_COMMAND {
            continue;
        }
        if b == b' ' && at - 1 > start {
            // Letters only: valid UTF-8.
            break std::str::from_utf8(&buf[start..at - 1]).unwrap_or_default();
        }
        return Err(FrameError::Command);
    };
    // Ten digits: the largest that can be parsed is still rejected below, not wrapped.
    let Some((len, end)) = number(buf, &mut at, 10, b" \n", FrameError::Length)? else {
        return Ok(None);
    };
    if len > MAX_ANSWER as u64 {
        return Err(FrameError::TooLong(len));
    }
    let len = len as usize;
    match (len, end) {
        (0, b'\n') => {
            return Ok(Some((
                Frame {
                    txnr: txnr as u32,
                    command,
                    data: &[],
                },
                at,
            )));
        }
        (0, _) | (_, b'\n') => return Err(FrameError::Trailer),
        _ => {}
    }
    let Some(&trailer) = buf.get(at + len) else {
        return Ok(None);
    };
    if trailer != b'\n' {
        return Err(FrameError::Trailer);
    }
    let data = &buf[at..at + len];
    Ok(Some((
        Frame {
            txnr: txnr as u32,
            command,
            data,
        },
        at + len + 1,
    )))
}

/// The status line of an answer's data: `200 OK` → `(200, "OK")`; `None` if it has none.
pub fn status(data: &[u8]) -> Option<(u16, &[u8])> {
    let line = data.split(|&b| b == b'\n').next()?;
    let code = line.get(..3)?;
    if !code.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let code = code.iter().fold(0u16, |n, &d| n * 10 + u16::from(d - b'0'));
    Some((code, line.get(3..).unwrap_or_default().trim_ascii()))
}

/// What the daemon said about one `syslog` frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `200`: the daemon has the record.
    Taken,
    /// Any other status: the daemon will not take the record (sending it again would get
    /// the same answer). Its status line.
    Refused(String),
}

/// What a frame from the daemon meant to the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The answer to `open`: syslog frames may go.
    Opened,
    /// The answer to a syslog frame, now in the window.
    Answered,
    /// The daemon ends the session (it is shutting down): what it did not answer is not
    /// taken.
    ServerClose,
}

/// The daemon broke the protocol or refused the session: the connection must go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionError {
    /// `open` was answered with something else than 200.
    OpenRefused(String),
    /// An answer for a transaction that is not waiting for one.
    UnknownTxnr(u32),
    /// A command a client never receives, or an answer without a status.
    Unexpected(String),
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionError::OpenRefused(s) => write!(f, "the daemon refused the RELP session: {s}"),
            SessionError::UnknownTxnr(t) => write!(f, "answer to unknown RELP transaction {t}"),
            SessionError::Unexpected(s) => write!(f, "unexpected RELP frame: {s}"),
        }
    }
}

impl std::error::Error for SessionError {}

/// One RELP session: `open`, then `syslog` frames with increasing transaction numbers, at most
/// `window` of them unanswered. Answers may come in any order; records are settled
/// ([`Session::take_answered`]) in the order they were sent, as the caller's acknowledgements
/// must be.
#[derive(Debug)]
pub struct Session {
    /// The transaction number of the next frame.
    next: u32,
    opened: bool,
    /// Syslog frames sent, oldest first, with their answer once it came.
    window: VecDeque<(u32, Option<Answer>)>,
    capacity: usize,
}

impl Session {
    /// A session that keeps at most `window` (at least 1) frames unanswered.
    pub fn new(window: usize) -> Self {
        Session {
            next: 1,
            opened: false,
            window: VecDeque::new(),
            capacity: window.max(1),
        }
    }

    fn take_txnr(&mut self) -> u32 {
        let t = self.next;
        self.next = if t >= MAX_TXNR { 1 } else { t + 1 };
        t
    }

    /// Append the `open` frame (the session's first) to `out`.
    pub fn open(&mut self, out: &mut Vec<u8>) {
        let t = self.take_txnr();
        encode(out, t, "open", OFFERS.as_bytes());
    }

    /// Append the `close` frame (the session's last) to `out`.
    pub fn close(&mut self, out: &mut Vec<u8>) {
        let t = self.take_txnr();
        encode(out, t, "close", b"");
    }

    /// Whether a syslog frame may be sent now: the session is open and the window not full.
    pub fn has_room(&self) -> bool {
        self.opened && self.window.len() < self.capacity
    }

    /// Frames sent and not settled yet.
    pub fn unanswered(&self) -> usize {
        self.window.len()
    }

    /// Append a `syslog` frame carrying `msg` to `out`; call only when [`Session::has_room`].
    pub fn syslog(&mut self, msg: &[u8], out: &mut Vec<u8>) {
        let t = self.take_txnr();
        encode(out, t, "syslog", msg);
        self.window.push_back((t, None));
    }

    /// Take in a frame from the daemon.
    pub fn on_frame(&mut self, f: &Frame<'_>) -> Result<Event, SessionError> {
        match f.command {
            "serverclose" => return Ok(Event::ServerClose),
            "rsp" => {}
            other => return Err(SessionError::Unexpected(format!("command {other:?}"))),
        }
        let (code, text) = status(f.data).ok_or_else(|| {
            SessionError::Unexpected(format!(
                "answer without status: {:?}",
                String::from_utf8_lossy(f.data)
            ))
        })?;
        let status_line = || format!("{code} {}", String::from_utf8_lossy(text));
        if !self.opened {
            // Only the answer to `open` (transaction 1) can come before it is open.
            if f.txnr != 1 {
                return Err(SessionError::UnknownTxnr(f.txnr));
            }
            if code != 200 {
                return Err(SessionError::OpenRefused(status_line()));
            }
            self.opened = true;
            return Ok(Event::Opened);
        }
        let slot = self
            .window
            .iter_mut()
            .find(|(t, a)| *t == f.txnr && a.is_none())
            .ok_or(SessionError::UnknownTxnr(f.txnr))?;
        slot.1 = Some(if code == 200 {
            Answer::Taken
        } else {
            Answer::Refused(status_line())
        });
        Ok(Event::Answered)
    }

    /// The answers of the oldest frames, in the order the frames were sent, as far as all
    /// of them are answered; they leave the window.
    pub fn take_answered(&mut self) -> impl Iterator<Item = Answer> + '_ {
        std::iter::from_fn(|| {
            if matches!(self.window.front(), Some((_, Some(_)))) {
                self.window.pop_front().and_then(|(_, a)| a)
            } else {
                None
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frame<'a>(txnr: u32, command: &'a str, data: &'a [u8]) -> Frame<'a> {
        Frame {
            txnr,
            command,
            data,
        }
    }

    #[test]
    fn encodes_the_spec_examples() {
        let mut out = Vec::new();
        encode(&mut out, 2, "syslog", b"<13>hello");
        encode(&mut out, 0, "serverclose", b"");
        assert_eq!(out, b"2 syslog 9 <13>hello\n0 serverclose 0\n");
    }

    #[test]
    fn parses_answers_and_the_open_offers() {
        let mut open = Vec::new();
        encode(
            &mut open,
            1,
            "rsp",
            b"200 OK\nrelp_version=0\nrelp_software=librelp\n",
        );
        let (f, used) = parse(&open).unwrap().unwrap();
        assert_eq!(used, open.len());
        assert_eq!(f.txnr, 1);
        assert_eq!(f.command, "rsp");
        assert_eq!(status(f.data), Some((200, &b"OK"[..])));
        let (f, used) = parse(b"0 serverclose 0\n9 rsp").unwrap().unwrap();
        assert_eq!((f, used), (frame(0, "serverclose", b""), 16));
        assert_eq!(
            status(b"500 error: message too long"),
            Some((500, &b"error: message too long"[..]))
        );
        assert_eq!(status(b"OK"), None);
    }

    #[test]
    fn every_prefix_of_a_frame_asks_for_more() {
        let bytes = b"123 rsp 6 200 OK\n";
        for i in 0..bytes.len() {
            assert_eq!(parse(&bytes[..i]), Ok(None), "{i} bytes");
        }
        assert!(parse(bytes).unwrap().is_some());
    }

    #[test]
    fn garbage_is_an_error_as_soon_as_seen() {
        for (bad, err) in [
            (&b"x"[..], FrameError::Txnr),
            (b" 1 rsp 0\n", FrameError::Txnr),
            (b"1234567890 rsp 0\n", FrameError::Txnr),
            (b"1 r5p 0\n", FrameError::Command),
            (b"1  0\n", FrameError::Command),
            (b"1 rsp x\n", FrameError::Length),
            (b"1 rsp \n", FrameError::Length),
            (b"1 rsp 3 abcd\n", FrameError::Trailer),
            (b"1 rsp 3\nabc\n", FrameError::Trailer),
            (b"1 rsp 0 \n", FrameError::Trailer),
            (b"HTTP/1.1 400 Bad Request\r\n", FrameError::Txnr),
        ] {
            assert_eq!(parse(bad), Err(err), "{:?}", String::from_utf8_lossy(bad));
        }
        let long = format!("1 {} 0\n", "a".repeat(MAX_COMMAND + 1));
        assert_eq!(parse(long.as_bytes()), Err(FrameError::Command));
    }

    #[test]
    fn huge_lengths_are_refused_before_any_data() {
        assert_eq!(
            parse(b"1 rsp 65537 "),
            Err(FrameError::TooLong(65_537)),
            "no waiting for 64 KiB that will never be accepted"
        );
        assert_eq!(
            parse(b"1 rsp 9999999999 "),
            Err(FrameError::TooLong(9_999_999_999))
        );
        assert_eq!(parse(b"1 rsp 99999999999"), Err(FrameError::Length));
    }

    fn opened(window: usize) -> Session {
        let mut s = Session::new(window);
        let mut out = Vec::new();
        s.open(&mut out);
        assert!(out.starts_with(b"1 open "), "{out:?}");
        assert!(!s.has_room(), "nothing goes before open is answered");
        assert_eq!(s.on_frame(&frame(1, "rsp", b"200 OK")), Ok(Event::Opened));
        s
    }

    #[test]
    fn a_refused_open_is_an_error() {
        let mut s = Session::new(4);
        s.open(&mut Vec::new());
        assert!(matches!(
            s.on_frame(&frame(1, "rsp", b"500 unsupported command")),
            Err(SessionError::OpenRefused(_))
        ));
    }

    #[test]
    fn answers_settle_in_send_order_and_the_window_is_bounded() {
        let mut s = opened(3);
        let mut out = Vec::new();
        for m in [&b"a"[..], b"b", b"c"] {
            assert!(s.has_room());
            s.syslog(m, &mut out);
        }
        assert!(!s.has_room());
        assert_eq!(out, b"2 syslog 1 a\n3 syslog 1 b\n4 syslog 1 c\n");
        // Out of order: 3 first settles nothing, 2 then settles both.
        assert_eq!(s.on_frame(&frame(3, "rsp", b"200 OK")), Ok(Event::Answered));
        assert_eq!(s.take_answered().count(), 0);
        assert_eq!(s.on_frame(&frame(2, "rsp", b"500 no")), Ok(Event::Answered));
        assert_eq!(
            s.take_answered().collect::<Vec<_>>(),
            vec![Answer::Refused("500 no".into()), Answer::Taken]
        );
        assert_eq!(s.unanswered(), 1);
        assert_eq!(
            s.on_frame(&frame(3, "rsp", b"200 OK")),
            Err(SessionError::UnknownTxnr(3)),
            "answered twice"
        );
        assert_eq!(
            s.on_frame(&frame(0, "serverclose", b"")),
            Ok(Event::ServerClose)
        );
        assert!(matches!(
            s.on_frame(&frame(4, "syslog", b"x")),
            Err(SessionError::Unexpected(_))
        ));
    }

    #[test]
    fn transaction_numbers_wrap_to_one() {
        let mut s = opened(2);
        s.next = MAX_TXNR;
        let mut out = Vec::new();
        s.syslog(b"x", &mut out);
        s.syslog(b"y", &mut out);
        assert_eq!(out, b"999999999 syslog 1 x\n1 syslog 1 y\n");
    }

    proptest! {
        /// Any frame survives encoding and parsing, whatever way the bytes are split.
        #[test]
        fn frames_round_trip_through_any_split(
            frames in proptest::collection::vec(
                (0..=MAX_TXNR, "[a-z]{1,32}", proptest::collection::vec(any::<u8>(), 0..300)),
                1..8,
            ),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
        ) {
            let mut wire = Vec::new();
            for (t, c, d) in &frames {
                encode(&mut wire, *t, c, d);
            }
            let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
            cuts.push(wire.len());
            cuts.sort_unstable();
            let mut buf = Vec::new();
            let mut got = Vec::new();
            let mut fed = 0;
            for cut in cuts {
                buf.extend_from_slice(&wire[fed..cut]);
                fed = cut;
                while let Some((f, used)) = parse(&buf).unwrap() {
                    got.push((f.txnr, f.command.to_owned(), f.data.to_vec()));
                    buf.drain(..used);
                }
            }
            prop_assert!(buf.is_empty());
            prop_assert_eq!(got, frames);
        }

        /// Arbitrary bytes never panic the parser, and what it accepts is consistent.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(Some((f, used))) = parse(&bytes) {
                prop_assert!(used <= bytes.len());
                prop_assert!(f.data.len() <= MAX_ANSWER);
                prop_assert_eq!(bytes[used - 1], b'\n');
            }
        }

        /// However answers are ordered, records settle exactly once each, in send order.
        #[test]
        fn answers_in_any_order_settle_in_send_order(
            n in 1usize..40,
            order in any::<prop::sample::Index>(),
        ) {
            let mut s = opened(64);
            let mut out = Vec::new();
            for i in 0..n {
                s.syslog(i.to_string().as_bytes(), &mut out);
            }
            let mut txnrs: Vec<u32> = (2..2 + n as u32).collect();
            // A rotation and a reversal: every answer order such a shuffle gives.
            let k = order.index(n);
            txnrs.rotate_left(k);
            if k % 2 == 1 {
                txnrs.reverse();
            }
            let mut settled = 0;
            for t in txnrs {
                prop_assert_eq!(s.on_frame(&frame(t, "rsp", b"200 OK")), Ok(Event::Answered));
                settled += s.take_answered().count();
            }
            prop_assert_eq!(settled, n);
            prop_assert_eq!(s.unanswered(), 0);
        }
    }
}
