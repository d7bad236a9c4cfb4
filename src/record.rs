//! The record format: one MQTT message as one syslog line, `<topic> <payload>`.
//!
//! The line looks exactly like `mosquitto_sub -v` output for ordinary topics and printable
//! payloads, so `grep` and older tools keep working. Escaping makes it reversible and
//! unforgeable: a record is always one line, and decoding gives back the exact bytes.
//!
//! Escapes (a backslash followed by):
//! - `\\` backslash, `n` newline, `r` carriage return, `t` tab;
//! - `xNN` any other byte: control bytes (0x00–0x1F, 0x7F), bytes of invalid UTF-8, and in the
//!   topic also space; a trailing space of the payload is escaped too, because some syslog
//!   daemons strip trailing whitespace;
//! - `[cut N]` at the very end of the payload: the payload was cut to fit the syslog message
//!   size, `N` is its original length in bytes. No other escape starts with `[`, so a payload
//!   cannot fake this marker.
//!
//! A record without a separator space is a topic with an empty payload.

use std::borrow::Cow;

/// The truncation marker's prefix.
const CUT_PREFIX: &[u8] = b"\\[cut ";

/// Room kept for the truncation marker: `\[cut ` + 20 digits + `]`.
const CUT_RESERVE: usize = CUT_PREFIX.len() + 20 + 1;

/// Escape table: 0 = copy as is, 1 = escape in payload and topic, 2 = escape in topic only.
static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = 1;
        i += 1;
    }
    t[0x7f] = 1;
    t[b'\\' as usize] = 1;
    t[b' ' as usize] = 2;
    t
};

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn push_escape(out: &mut Vec<u8>, b: u8) {
    match b {
        b'\\' => out.extend_from_slice(b"\\\\"),
        b'\n' => out.extend_from_slice(b"\\n"),
        b'\r' => out.extend_from_slice(b"\\r"),
        b'\t' => out.extend_from_slice(b"\\t"),
        _ => out.extend_from_slice(&[b'\\', b'x', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]),
    }
}

/// Length of the escape `push_escape` writes for `b`.
fn escape_len(b: u8) -> usize {
    match b {
        b'\\' | b'\n' | b'\r' | b'\t' => 2,
        _ => 4,
    }
}

/// Append `bytes` (known valid UTF-8) escaped, writing at most `budget` bytes; returns how many
/// input bytes were consumed (less than `bytes.len()` only when the budget ran out, and then
/// always at the start of a run of plain bytes or of an escape).
fn escape_valid(bytes: &[u8], max_class: u8, out: &mut Vec<u8>, budget: &mut usize) -> usize {
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let c = CLASS[b as usize];
        if c == 0 || c > max_class {
            continue;
        }
        if !copy_run(&bytes[start..i], out, budget) {
            return start;
        }
        if escape_len(b) > *budget {
            return i;
        }
        *budget -= escape_len(b);
        push_escape(out, b);
        start = i + 1;
    }
    if !copy_run(&bytes[start..], out, budget) {
        return start;
    }
    bytes.len()
}

/// Copy a run of plain bytes if it fits the budget entirely; on `false` nothing was copied.
fn copy_run(run: &[u8], out: &mut Vec<u8>, budget: &mut usize) -> bool {
    if run.len() <= *budget {
        out.extend_from_slice(run);
        *budget -= run.len();
        true
    } else {
        false
    }
}

/// Append `bytes` escaped (`topic` selects the topic's stricter rules), writing at most
/// `budget` bytes. Returns the number of input bytes encoded.
fn escape(bytes: &[u8], topic: bool, out: &mut Vec<u8>, mut budget: usize) -> usize {
    let max_class = if topic { 2 } else { 1 };
    let mut done = 0;
    while done < bytes.len() {
        let rest = &bytes[done..];
        let (valid, bad) = match std::str::from_utf8(rest) {
            Ok(_) => (rest.len(), 0),
            Err(e) => (
                e.valid_up_to(),
                e.error_len().unwrap_or(rest.len() - e.valid_up_to()),
            ),
        };
        let n = escape_valid(&rest[..valid], max_class, out, &mut budget);
        done += n;
        if n < valid {
            // Out of budget inside a valid run: take what still fits, on a char boundary.
            let run = &rest[n..valid];
            let plain = run
                .iter()
                .take_while(|&&b| CLASS[b as usize] == 0 || CLASS[b as usize] > max_class)
                .count()
                .min(budget);
            let mut cut = plain;
            while cut > 0 && cut < run.len() && (run[cut] & 0xC0) == 0x80 {
                cut -= 1;
            }
            out.extend_from_slice(&run[..cut]);
            return done + cut;
        }
        for &b in &rest[valid..valid + bad] {
            if budget < 4 {
                return done;
            }
            budget -= 4;
            push_escape(out, b);
            done += 1;
        }
    }
    done
}

/// Append the record for (`topic`, `payload`) to `out`.
///
/// The escaped payload takes at most `max_payload` bytes; a longer one is cut on an escape
/// boundary and marked with `\[cut N]`. Topics are never cut: MQTT caps them at 64 KiB.
pub fn encode(topic: &[u8], payload: &[u8], max_payload: usize, out: &mut Vec<u8>) {
    escape(topic, true, out, usize::MAX);
    out.push(b' ');
    let start = out.len();
    let n = escape(payload, false, out, max_payload);
    if n == payload.len() {
        if out.last() == Some(&b' ') && out.len() > start {
            out.pop();
            out.extend_from_slice(b"\\x20");
            if out.len() - start > max_payload {
                out.truncate(start);
                cut(payload, max_payload, out);
            }
        }
        return;
    }
    out.truncate(start);
    cut(payload, max_payload, out);
}

/// Encode a payload that does not fit: its prefix within `max_payload` minus the marker.
fn cut(payload: &[u8], max_payload: usize, out: &mut Vec<u8>) {
    let budget = max_payload.saturating_sub(CUT_RESERVE);
    escape(payload, false, out, budget);
    out.extend_from_slice(CUT_PREFIX);
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b']');
}

/// A decoded record. Fields borrow from the line when it held no escapes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    /// The exact topic bytes.
    pub topic: Cow<'a, [u8]>,
    /// The exact payload bytes (a prefix if `cut_from` is set).
    pub payload: Cow<'a, [u8]>,
    /// When the payload was cut by the logger: its original length in bytes.
    pub cut_from: Option<u64>,
}

impl Record<'_> {
    /// The topic as text; topics that are not UTF-8 are not valid MQTT and give `None`.
    pub fn topic_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.topic).ok()
    }
}

/// Why a line is not a valid record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A backslash not followed by a known escape.
    #[error("invalid escape at byte {0}")]
    BadEscape(usize),
    /// The line is empty.
    #[error("empty record")]
    Empty,
}

/// Decode a record line (the syslog MSG part, without a trailing newline).
pub fn decode(line: &[u8]) -> Result<Record<'_>, DecodeError> {
    if line.is_empty() {
        return Err(DecodeError::Empty);
    }
    // Most records hold no backslash at all: then nothing is escaped and no cut marker
    // (which starts with one) can be there. One scan of the line instead of one per field.
    if memchr::memchr(b'\\', line).is_none() {
        let (topic, payload) = match memchr::memchr(b' ', line) {
            Some(i) => (&line[..i], &line[i + 1..]),
            None => (line, &line[line.len()..]),
        };
        return Ok(Record {
            topic: Cow::Borrowed(topic),
            payload: Cow::Borrowed(payload),
            cut_from: None,
        });
    }
    let (t, p, p_off) = match memchr::memchr(b' ', line) {
        Some(i) => (&line[..i], &line[i + 1..], i + 1),
        None => (line, &line[line.len()..], line.len()),
    };
    let topic = unescape(t, 0)?;
    let (p, cut_from) = split_cut(p);
    let payload = unescape(p, p_off)?;
    Ok(Record {
        topic,
        payload,
        cut_from,
    })
}

/// Separate a trailing `\[cut N]` marker, if the payload ends with a well-formed one that is
/// not itself preceded by an escaping backslash.
fn split_cut(p: &[u8]) -> (&[u8], Option<u64>) {
    if p.last() != Some(&b']') {
        return (p, None);
    }
    let Some(pos) = memchr::memmem::rfind(p, CUT_PREFIX) else {
        return (p, None);
    };
    // The marker's backslash must start an escape: count the backslashes before it.
    let backslashes = p[..pos].iter().rev().take_while(|&&b| b == b'\\').count();
    if backslashes % 2 == 1 {
        return (p, None);
    }
    let digits = &p[pos + CUT_PREFIX.len()..p.len() - 1];
    match std::str::from_utf8(digits)
        .ok()
        .and_then(|d| d.parse().ok())
    {
        Some(n) if digits.iter().all(u8::is_ascii_digit) => (&p[..pos], Some(n)),
        _ => (p, None),
    }
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

/// Undo the escaping of one field; `base` is the field's offset in the line, for errors.
pub fn unescape(s: &[u8], base: usize) -> Result<Cow<'_, [u8]>, DecodeError> {
    let Some(first) = memchr::memchr(b'\\', s) else {
        return Ok(Cow::Borrowed(s));
    };
    let mut out = Vec::with_capacity(s.len());
    out.extend_from_slice(&s[..first]);
    let mut i = first;
    while i < s.len() {
        let b = s[i];
        if b != b'\\' {
            let next = memchr::memchr(b'\\', &s[i..]).map_or(s.len(), |n| i + n);
            out.extend_from_slice(&s[i..next]);
            i = next;
            continue;
        }
        let err = DecodeError::BadEscape(base + i);
        match s.get(i + 1) {
            Some(b'\\') => out.push(b'\\'),
            Some(b'n') => out.push(b'\n'),
            Some(b'r') => out.push(b'\r'),
            Some(b't') => out.push(b'\t'),
            Some(b'x') => {
                let hi = s.get(i + 2).and_then(|&h| hex_val(h)).ok_or(err.clone())?;
                let lo = s.get(i + 3).and_then(|&l| hex_val(l)).ok_or(err)?;
                out.push(hi << 4 | lo);
                i += 4;
                continue;
            }
            _ => return Err(err),
        }
        i += 2;
    }
    Ok(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn enc(topic: &[u8], payload: &[u8], max: usize) -> Vec<u8> {
        let mut out = Vec::new();
        encode(topic, payload, max, &mut out);
        out
    }

    #[test]
    fn ordinary_messages_look_like_mosquitto_sub() {
        assert_eq!(
            enc(b"iotitan/home/up_bed1/dht11/temperature", b"23.1", 8000),
            b"iotitan/home/up_bed1/dht11/temperature 23.1"
        );
        assert_eq!(enc(b"a/b", b"hello world", 8000), b"a/b hello world");
        assert_eq!(enc(b"a/b", b"{\"t\": 1}", 8000), b"a/b {\"t\": 1}");
        assert_eq!(
            enc("küche/t".as_bytes(), "°C".as_bytes(), 8000),
            "küche/t °C".as_bytes()
        );
    }

    #[test]
    fn hostile_bytes_are_escaped() {
        assert_eq!(enc(b"a b", b"x", 100), b"a\\x20b x");
        assert_eq!(
            enc(b"a", b"1\n2\r3\t4\\5\x006", 100),
            b"a 1\\n2\\r3\\t4\\\\5\\x006"
        );
        assert_eq!(enc(b"a", b"\xff\xfe", 100), b"a \\xFF\\xFE");
        assert_eq!(enc(b"a", b"x ", 100), b"a x\\x20");
        assert_eq!(enc(b"a", b"", 100), b"a ");
        assert_eq!(enc(b"a", b"\x7f", 100), b"a \\x7F");
    }

    #[test]
    fn a_payload_cannot_forge_a_cut_marker_or_a_second_record() {
        let forged = b"1\\[cut 99]";
        let line = enc(b"t", forged, 100);
        let r = decode(&line).unwrap();
        assert_eq!(r.payload.as_ref(), forged);
        assert_eq!(r.cut_from, None);
        let line = enc(
            b"t",
            b"1\nNov 22 05:00:14 host iotitan-logger[1]: evil 1",
            100,
        );
        assert!(!line.contains(&b'\n'));
    }

    #[test]
    fn long_payloads_are_cut_and_marked() {
        let payload = vec![b'7'; 10_000];
        let line = enc(b"t", &payload, 100);
        assert!(line.len() - 2 <= 100, "{}", line.len());
        let r = decode(&line).unwrap();
        assert_eq!(r.cut_from, Some(10_000));
        assert!(payload.starts_with(&r.payload));
        assert!(!r.payload.is_empty());
        // Escapes are never split.
        let payload = vec![b'\n'; 1000];
        let line = enc(b"t", &payload, 101);
        let r = decode(&line).unwrap();
        assert_eq!(r.cut_from, Some(1000));
        assert!(r.payload.iter().all(|&b| b == b'\n'));
        // Multi-byte characters are never split.
        let payload = "é".repeat(1000);
        let line = enc(b"t", payload.as_bytes(), 101);
        let r = decode(&line).unwrap();
        assert!(std::str::from_utf8(&r.payload).is_ok());
        assert_eq!(r.cut_from, Some(2000));
    }

    #[test]
    fn exact_fit_is_not_cut() {
        let payload = vec![b'a'; 100];
        let line = enc(b"t", &payload, 100);
        assert_eq!(decode(&line).unwrap().cut_from, None);
        let line = enc(b"t", &[b'a'; 101], 100);
        assert_eq!(decode(&line).unwrap().cut_from, Some(101));
        // A trailing space that pushes the escaped payload over the limit.
        let mut p = vec![b'a'; 99];
        p.push(b' ');
        let line = enc(b"t", &p, 100);
        assert!(line.len() - 2 <= 100);
        assert_eq!(decode(&line).unwrap().cut_from, Some(100));
    }

    #[test]
    fn decode_rejects_bad_escapes() {
        assert_eq!(decode(b"t a\\q"), Err(DecodeError::BadEscape(3)));
        assert_eq!(decode(b"t a\\x4"), Err(DecodeError::BadEscape(3)));
        assert_eq!(decode(b"t a\\"), Err(DecodeError::BadEscape(3)));
        assert_eq!(decode(b""), Err(DecodeError::Empty));
        let r = decode(b"just/a/topic").unwrap();
        assert_eq!(r.payload.as_ref(), b"");
    }

    #[test]
    fn decoding_plain_lines_borrows() {
        let r = decode(b"a/b 23.5").unwrap();
        assert!(matches!(r.topic, Cow::Borrowed(_)));
        assert!(matches!(r.payload, Cow::Borrowed(_)));
    }

    proptest! {
        #[test]
        fn round_trip(topic in proptest::collection::vec(any::<u8>(), 1..64),
                      payload in proptest::collection::vec(any::<u8>(), 0..512)) {
            let line = enc(&topic, &payload, 8000);
            let r = decode(&line).unwrap();
            prop_assert_eq!(r.topic.as_ref(), &topic[..]);
            prop_assert_eq!(r.payload.as_ref(), &payload[..]);
            prop_assert_eq!(r.cut_from, None);
        }

        #[test]
        fn one_line_always(topic in proptest::collection::vec(any::<u8>(), 1..32),
                           payload in proptest::collection::vec(any::<u8>(), 0..256),
                           max in 0usize..300) {
            let line = enc(&topic, &payload, max);
            prop_assert!(!line.iter().any(|&b| b == b'\n' || b == b'\r' || b == 0));
            prop_assert!(std::str::from_utf8(&line).is_ok());
            prop_assert!(line.last() != Some(&b' ') || payload.is_empty());
            let r = decode(&line).unwrap();
            prop_assert_eq!(r.topic.as_ref(), &topic[..]);
            prop_assert!(payload.starts_with(&r.payload));
            let payload_len = line.len() - line.iter().position(|&b| b == b' ').unwrap() - 1;
            if r.cut_from.is_some() {
                prop_assert!(payload_len <= max.max(CUT_RESERVE));
                prop_assert_eq!(r.cut_from, Some(payload.len() as u64));
            } else {
                prop_assert_eq!(r.payload.as_ref(), &payload[..]);
                prop_assert!(payload_len <= max);
            }
        }

        #[test]
        fn printable_text_is_unchanged(topic in "[a-zA-Z0-9/_é-]{1,40}", payload in "[ -\\[\\]-~é°]{0,80}") {
            prop_assume!(!payload.ends_with(' '));
            let line = enc(topic.as_bytes(), payload.as_bytes(), 8000);
            prop_assert_eq!(line, format!("{topic} {payload}").into_bytes());
        }
    }
}
