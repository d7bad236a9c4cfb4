//! ThingSpeak's bulk-update API: the request we send and what its answers mean.
//!
//! `POST {url}/channels/{id}/bulk_update.json` with
//! `{"write_api_key": K, "updates": [{"created_at": …, "field1": …}, …]}`. A 2xx answer whose
//! body is `{"success":true}` means the updates are stored (ThingSpeak answers 202). Whether
//! any other answer is worth retrying is decided by [`classify`], a pure function, so the
//! rules are tested without a network:
//! - `0` as the body (the classic "not stored"), 429 (too fast), 5xx, timeouts and connection
//!   errors are temporary: the updates stay and are retried;
//! - 400, 401, 402, 413, 422 will not change by sending the same batch again: it is dropped
//!   and logged once.

use super::batch::Entry;
use super::key::{MASK, WriteKey};
use crate::config::ChannelConfig;
use serde::Serialize;
use std::time::Duration;

/// Most answer bytes read: enough for any error message, little enough for a hostile server.
const MAX_ANSWER: usize = 64 * 1024;

/// What an answer means for the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Stored.
    Delivered,
    /// Refused for good; `detail` is safe to log.
    Refused {
        /// HTTP status.
        status: u16,
        /// What the server said, cut and scrubbed.
        detail: String,
    },
    /// Try again later; `reason` is safe to log.
    Retry {
        /// What happened.
        reason: String,
    },
}

/// The meaning of an HTTP answer with `status` and `body`.
pub fn classify(status: u16, body: &[u8]) -> Answer {
    let detail = || describe(body);
    match status {
        200..=299 if is_success(body) => Answer::Delivered,
        200..=299 => Answer::Retry {
            reason: format!("HTTP {status} without success: {}", detail()),
        },
        400 | 401 | 402 | 413 | 422 => Answer::Refused {
            status,
            detail: detail(),
        },
        429 => Answer::Retry {
            reason: "HTTP 429: writing faster than the channel allows".into(),
        },
        _ => Answer::Retry {
            reason: format!("HTTP {status}: {}", detail()),
        },
    }
}

/// `{"success": true}` (other members are allowed).
fn is_success(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .is_ok_and(|v| v.get("success") == Some(&serde_json::Value::Bool(true)))
}

/// A short, printable rendering of an answer body for logs.
fn describe(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "empty answer".into();
    }
    let mut out: String = text
        .chars()
        .take(200)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().count() > 200 {
        out.push('…');
    }
    format!("{out:?}")
}

#[derive(Serialize)]
struct Body<'a> {
    write_api_key: &'a str,
    updates: &'a [Entry],
}

/// The request body for `updates`.
pub fn body(key: &WriteKey, updates: &[Entry]) -> Vec<u8> {
    serde_json::to_vec(&Body {
        write_api_key: key.expose(),
        updates,
    })
    .unwrap_or_default()
}

/// The request body with the key masked, pretty-printed: what `--dry-run` shows.
pub fn masked_body(updates: &[Entry]) -> String {
    serde_json::to_string_pretty(&Body {
        write_api_key: MASK,
        updates,
    })
    .unwrap_or_default()
}

/// The bulk-update URL of channel `id` under `base`.
pub fn endpoint(base: &str, id: u64) -> String {
    format!(
        "{}/channels/{id}/bulk_update.json",
        base.trim_end_matches('/')
    )
}

/// `User-Agent` of every request.
pub fn user_agent() -> String {
    format!("iotitan/{}", env!("CARGO_PKG_VERSION"))
}

/// A client for one channel.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    endpoint: String,
    key: WriteKey,
}

impl Client {
    /// A client for `ch` with `key`; every request is bounded by `ch.timeout`.
    pub fn new(ch: &ChannelConfig, key: WriteKey) -> anyhow::Result<Self> {
        let timeout = ch.timeout.get();
        let http = reqwest::Client::builder()
            .user_agent(user_agent())
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .build()?;
        Ok(Client {
            http,
            endpoint: endpoint(&ch.url, ch.id),
            key,
        })
    }

    /// The URL requests go to (it holds no secret).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Send `updates` in one request and say what the answer means. Never fails: transport
    /// errors are [`Answer::Retry`]. Texts in the answer are scrubbed of the key.
    pub async fn send(&self, updates: &[Entry]) -> Answer {
        let answer = match self.exchange(updates).await {
            Ok((status, body)) => classify(status, &body),
            Err(e) => Answer::Retry {
                reason: transport_error(&e),
            },
        };
        match answer {
            Answer::Delivered => Answer::Delivered,
            Answer::Refused { status, detail } => Answer::Refused {
                status,
                detail: self.key.scrub(&detail),
            },
            Answer::Retry { reason } => Answer::Retry {
                reason: self.key.scrub(&reason),
            },
        }
    }

    async fn exchange(&self, updates: &[Entry]) -> reqwest::Result<(u16, Vec<u8>)> {
        let mut resp = self
            .http
            .post(&self.endpoint)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body(&self.key, updates))
            .send()
            .await?;
        let status = resp.status().as_u16();
        let mut buf = Vec::new();
        while let Some(chunk) = resp.chunk().await? {
            let room = MAX_ANSWER - buf.len();
            buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if buf.len() >= MAX_ANSWER {
                break;
            }
        }
        Ok((status, buf))
    }
}

/// A transport error in one line, with its causes (reqwest's own text is vague).
fn transport_error(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "no answer in time"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let mut text = format!("{what}: {e}");
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;

    #[test]
    fn success_needs_2xx_and_success_true() {
        assert_eq!(classify(202, br#"{"success":true}"#), Answer::Delivered);
        assert_eq!(
            classify(200, br#"{ "success" : true, "x": 1 }"#),
            Answer::Delivered
        );
        for (status, body) in [
            (202, &b"0"[..]),
            (200, br#"{"success":false}"#),
            (202, b""),
            (202, b"<html>"),
            (429, b""),
            (500, b"oops"),
            (502, br#"{"success":true}"#),
            (503, b""),
            (404, b"not found"),
            (301, b""),
        ] {
            assert!(
                matches!(classify(status, body), Answer::Retry { .. }),
                "{status} {body:?}"
            );
        }
    }

    #[test]
    fn client_errors_that_cannot_improve_are_permanent() {
        for status in [400, 401, 402, 413, 422] {
            match classify(
                status,
                b"{\"status\":\"401\",\"error\":{\"error_code\":\"error_auth_required\"}}",
            ) {
                Answer::Refused { status: s, detail } => {
                    assert_eq!(s, status);
                    assert!(detail.contains("error_auth_required"), "{detail}");
                }
                other => panic!("{status}: {other:?}"),
            }
        }
    }

    #[test]
    fn answer_texts_are_short_and_printable() {
        let long = "x\n".repeat(500);
        let Answer::Retry { reason } = classify(500, long.as_bytes()) else {
            panic!()
        };
        assert!(reason.len() < 260 && !reason.contains('\n'), "{reason}");
        let Answer::Retry { reason } = classify(500, b"\xff\xfe") else {
            panic!()
        };
        assert!(reason.contains('\u{fffd}'), "{reason}");
    }

    #[test]
    fn the_request_body_is_exact() {
        let key = WriteKey::new("XYZ").unwrap();
        let u = Entry {
            created_at: DateTime::from_timestamp(1_795_000_000, 0).unwrap(),
            fields: [
                Some(1.5),
                None,
                Some(3.0),
                None,
                None,
                None,
                None,
                Some(-8.25),
            ],
            status: None,
        };
        let got = String::from_utf8(body(&key, &[u.clone(), u.clone()])).unwrap();
        let one =
            r#"{"created_at":"2026-11-18T11:06:40Z","field1":1.5,"field3":3.0,"field8":-8.25}"#;
        assert_eq!(
            got,
            format!(r#"{{"write_api_key":"XYZ","updates":[{one},{one}]}}"#)
        );
        let masked = masked_body(&[u]);
        assert!(
            masked.contains("\"write_api_key\": \"********\""),
            "{masked}"
        );
        assert!(!masked.contains("XYZ"));
    }

    #[test]
    fn endpoint_and_user_agent() {
        assert_eq!(
            endpoint("https://api.thingspeak.com/", 752701),
            "https://api.thingspeak.com/channels/752701/bulk_update.json"
        );
        assert_eq!(
            user_agent(),
            format!("iotitan/{}", env!("CARGO_PKG_VERSION"))
        );
    }
}
