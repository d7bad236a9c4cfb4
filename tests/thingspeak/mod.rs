//! A ThingSpeak stand-in: a small HTTP/1.1 server on 127.0.0.1 that follows the documented
//! behaviour of `POST /channels/<id>/bulk_update.json`:
//! - the write key is checked (401 otherwise; the answer even echoes the wrong key, as a
//!   careless server might, so tests see that the bridge never logs it);
//! - writes closer than the channel's interval are refused with 429;
//! - more than 960 updates are refused with 413, malformed ones with 400, a `created_at`
//!   already stored with 400 (ThingSpeak timestamps are unique per channel);
//! - an accepted write answers 202 `{"success":true}` and its entries are recorded in order.
//!
//! Tests can make it fail with a status, answer `0`, hang (no answer until the mode changes)
//! or drop the connection. Every request is logged with its arrival time.
#![allow(dead_code)]

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How the stand-in answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// As ThingSpeak does.
    Normal,
    /// Answer this status with a short body.
    Fail(u16),
    /// Answer 200 with the body `0`.
    Zero,
    /// Read the request and never answer (until the mode changes).
    Hang,
    /// Close the connection without answering.
    Drop,
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Request {
    /// Arrival (after the body was read).
    pub at: Instant,
    /// Request line target.
    pub path: String,
    /// Header values (lower-case names).
    pub user_agent: Option<String>,
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// The body as received.
    pub body: String,
    /// The status answered (0: none).
    pub status: u16,
    /// Refused with 429 by the interval check (not by an injected failure).
    pub too_fast: bool,
}

struct State {
    mode: Mode,
    requests: Vec<Request>,
    entries: Vec<serde_json::Value>,
    stamps: HashSet<String>,
    last_write: Option<Instant>,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    stop: AtomicBool,
    channel: u64,
    key: String,
    min_interval: Duration,
}

/// A running stand-in.
pub struct ThingSpeak {
    /// Base URL for `url =` in the config.
    pub url: String,
    shared: Arc<Shared>,
    port: u16,
}

impl ThingSpeak {
    /// Serve channel `channel` with write key `key`, allowing one write per `min_interval`.
    pub fn start(channel: u64, key: &str, min_interval: Duration) -> ThingSpeak {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the stand-in");
        let port = listener.local_addr().expect("addr").port();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                mode: Mode::Normal,
                requests: Vec::new(),
                entries: Vec::new(),
                stamps: HashSet::new(),
                last_write: None,
            }),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
            channel,
            key: key.to_owned(),
            min_interval,
        });
        let s = shared.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let s = s.clone();
                std::thread::spawn(move || serve(&s, conn));
            }
        });
        ThingSpeak {
            url: format!("http://127.0.0.1:{port}"),
            shared,
            port,
        }
    }

    /// Answer from now on as `mode`.
    pub fn set_mode(&self, mode: Mode) {
        self.shared.state.lock().unwrap().mode = mode;
        self.shared.changed.notify_all();
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.state.lock().unwrap().requests.clone()
    }

    /// Every stored entry, in the order stored.
    pub fn entries(&self) -> Vec<serde_json::Value> {
        self.shared.state.lock().unwrap().entries.clone()
    }

    /// Wait until at least `n` requests arrived; panics after `timeout`.
    pub fn wait_requests(&self, n: usize, timeout: Duration) -> Vec<Request> {
        self.wait(timeout, |s| s.requests.len() >= n, |s| s.requests.clone())
            .unwrap_or_else(|| {
                panic!(
                    "fewer than {n} requests within {timeout:?}: {:#?}",
                    self.requests()
                )
            })
    }

    /// Whether at least `n` requests arrive within `timeout` (for checking that none do).
    pub fn try_wait_requests(&self, n: usize, timeout: Duration) -> bool {
        self.wait(timeout, |s| s.requests.len() >= n, |_| ())
            .is_some()
    }

    /// Wait until at least `n` entries are stored; panics after `timeout`.
    pub fn wait_entries(&self, n: usize, timeout: Duration) -> Vec<serde_json::Value> {
        self.wait(timeout, |s| s.entries.len() >= n, |s| s.entries.clone())
            .unwrap_or_else(|| {
                panic!(
                    "fewer than {n} entries within {timeout:?}: {:#?}\nrequests: {:#?}",
                    self.entries(),
                    self.requests()
                )
            })
    }

    fn wait<T>(
        &self,
        timeout: Duration,
        done: impl Fn(&State) -> bool,
        get: impl Fn(&State) -> T,
    ) -> Option<T> {
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.state.lock().unwrap();
        loop {
            if done(&st) {
                return Some(get(&st));
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            st = self.shared.changed.wait_timeout(st, left).unwrap().0;
        }
    }
}

impl Drop for ThingSpeak {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.set_mode(Mode::Drop);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// One connection: one request, one answer, close.
fn serve(s: &Shared, conn: TcpStream) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let mut reader = BufReader::new(conn.try_clone().expect("clone stream"));
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() || line.is_empty() {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let path = parts.next().unwrap_or("").to_owned();
    let (mut length, mut user_agent, mut content_type) = (0usize, None, None);
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = h.split_once(':') {
            let value = value.trim().to_owned();
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = value.parse().unwrap_or(0),
                "user-agent" => user_agent = Some(value),
                "content-type" => content_type = Some(value),
                _ => {}
            }
        }
    }
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let body = String::from_utf8_lossy(&body).into_owned();
    let mut st = s.state.lock().unwrap();
    let index = st.requests.len();
    st.requests.push(Request {
        at: Instant::now(),
        path: path.clone(),
        user_agent,
        content_type,
        body: body.clone(),
        status: 0,
        too_fast: false,
    });
    s.changed.notify_all();
    let (status, answer) = match st.mode.clone() {
        Mode::Hang => {
            // Hold the connection until the mode changes (or the test ends).
            let mode = Mode::Hang;
            let _st = s
                .changed
                .wait_while(st, |st| st.mode == mode && !s.stop.load(Ordering::SeqCst))
                .unwrap();
            return;
        }
        Mode::Drop => return,
        Mode::Fail(code) => (code, "{\"status\":\"error\"}".to_owned()),
        Mode::Zero => (200, "0".to_owned()),
        Mode::Normal => handle(s, &mut st, &method, &path, &body),
    };
    st.requests[index].status = status;
    st.requests[index].too_fast = answer.contains("error_too_many_requests");
    s.changed.notify_all();
    drop(st);
    let mut conn = reader.into_inner();
    let _ = write!(
        conn,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
        answer.len()
    );
    let _ = conn.flush();
}

/// ThingSpeak's documented handling of a bulk update.
fn handle(s: &Shared, st: &mut State, method: &str, path: &str, body: &str) -> (u16, String) {
    let error = |status: u16, code: &str| {
        (
            status,
            format!("{{\"status\":\"{status}\",\"error\":{{\"error_code\":\"{code}\"}}}}"),
        )
    };
    if method != "POST" || path != format!("/channels/{}/bulk_update.json", s.channel) {
        return error(404, "error_resource_not_found");
    }
    let Ok(doc) = serde_json::from_str::<serde_json::Value>(body) else {
        return error(400, "error_bad_request");
    };
    let key = doc["write_api_key"].as_str().unwrap_or("");
    if key != s.key {
        // A careless server echoing what it got: the bridge must never log it.
        return (
            401,
            format!(
                "{{\"status\":\"401\",\"error\":{{\"error_code\":\"error_auth_required\",\"details\":\"key {key} is not valid\"}}}}"
            ),
        );
    }
    if st.last_write.is_some_and(|t| t.elapsed() < s.min_interval) {
        return error(429, "error_too_many_requests");
    }
    let Some(updates) = doc["updates"].as_array() else {
        return error(400, "error_bad_request");
    };
    if updates.len() > 960 {
        return error(413, "error_request_too_large");
    }
    let mut stamps = HashSet::new();
    for u in updates {
        let Some(at) = u["created_at"].as_str() else {
            return error(400, "error_bad_request");
        };
        if st.stamps.contains(at) || !stamps.insert(at.to_owned()) {
            return error(400, "error_duplicate_timestamp");
        }
    }
    st.stamps.extend(stamps);
    st.entries.extend(updates.iter().cloned());
    st.last_write = Some(Instant::now());
    (202, "{\"success\":true}".to_owned())
}
