//! Live readings for the dashboard: server-sent events fed by one MQTT subscription on `#`.
//!
//! The daemon subscribes while at least one browser listens (renewed by [`super::broker`] after
//! a reconnect; dropped at the first message after the last browser left, so an idle daemon
//! does not receive the whole broker's traffic) and fans every message out over a tokio
//! broadcast channel: a slow browser loses the oldest events (it is told how many, as a
//! `lagged` event) instead of slowing the others.
//!
//! Auth: `EventSource` cannot send headers, so this one endpoint takes the read token as the
//! query parameter `access_token` (the OAuth 2.0 bearer-token form, RFC 6750 §2.3). The request
//! log records paths without their query, so the token is not logged; the page never puts it
//! anywhere else. A cookie would need its own login round trip and CSRF care for no gain on a
//! read-only stream.

use super::auth::Tokens;
use super::broker::Broker;
use super::error::ApiError;
use crate::config::Scope;
use crate::shutdown::Shutdown;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::{self, error::RecvError};

/// Events a browser may fall behind by before it loses the oldest.
pub const BUFFER: usize = 1024;

/// Longest payload passed on as it is; longer ones are cut (a dashboard cell, not an archive).
const MAX_PAYLOAD: usize = 256;

/// One message as the JSON of a `reading` event: `{"topic","value","at"}`, the value a number
/// when the payload is one finite number, else the payload as text (lossy UTF-8, cut).
pub fn reading(topic: &str, payload: &[u8], at: chrono::DateTime<chrono::Utc>) -> String {
    let text = String::from_utf8_lossy(payload);
    let trimmed = text.trim();
    let value = match trimmed.parse::<f64>() {
        Ok(v) if v.is_finite() => json!(v),
        _ => {
            let mut end = trimmed.len().min(MAX_PAYLOAD);
            while !trimmed.is_char_boundary(end) {
                end -= 1;
            }
            Value::String(trimmed[..end].to_owned())
        }
    };
    json!({
        "topic": topic,
        "value": value,
        "at": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    })
    .to_string()
}

/// The fan-out and its subscription state, shared by [`feed`] and the handler.
#[derive(Clone)]
pub struct Hub {
    /// Every message, as [`reading`] JSON.
    pub tx: broadcast::Sender<Arc<str>>,
    /// Woken when a browser arrives.
    pub wanted: Arc<tokio::sync::Notify>,
    /// Whether the subscription on `#` is active.
    pub subscribed: tokio::sync::watch::Sender<bool>,
}

impl Hub {
    /// A hub with no subscription yet.
    pub fn new() -> Hub {
        Hub {
            tx: broadcast::channel(BUFFER).0,
            wanted: Arc::new(tokio::sync::Notify::new()),
            subscribed: tokio::sync::watch::channel(false).0,
        }
    }

    /// Browsers following the stream now.
    pub fn clients(&self) -> usize {
        self.tx.receiver_count()
    }
}

impl Default for Hub {
    fn default() -> Self {
        Hub::new()
    }
}

/// Subscribe to `#` while the broker is connected and a browser listens, and send every
/// message to the hub.
pub async fn feed(
    broker: Broker,
    hub: Hub,
    locations: crate::privacy::Locations,
    mut shutdown: Shutdown,
) {
    let tx = hub.tx.clone();
    let mut connected = broker.watch();
    loop {
        while tx.receiver_count() == 0 {
            tokio::select! {
                _ = shutdown.recv() => return,
                _ = hub.wanted.notified() => {}
            }
        }
        tokio::select! {
            _ = shutdown.recv() => return,
            r = connected.wait_for(|c| *c) => if r.is_err() { return },
        }
        let mut sub = match broker.listen("#").await {
            Ok(s) => s,
            Err(_) => {
                tracing::warn!("cannot subscribe to # for live readings; retrying");
                tokio::select! {
                    _ = shutdown.recv() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        tracing::info!("live readings: subscribed to #");
        hub.subscribed.send_replace(true);
        loop {
            tokio::select! {
                _ = shutdown.recv() => return,
                m = sub.next() => match m {
                    Some(p) => {
                        // A location in a private area is not shown either.
                        let payload = locations.withhold(&p.topic, &p.payload);
                        if tx.send(reading(&p.topic, &payload, chrono::Utc::now()).into()).is_err() {
                            tracing::info!("live readings: nobody listens, unsubscribing");
                            break;
                        }
                    }
                    None => break,
                },
            }
        }
        hub.subscribed.send_replace(false);
        drop(sub);
    }
}

/// What the SSE handler needs.
#[derive(Clone)]
pub struct Live {
    /// Access tokens.
    pub tokens: Arc<Tokens>,
    /// The fan-out of [`feed`].
    pub hub: Hub,
    /// The daemon's shutdown: it ends every stream, so that stopping does not wait out the
    /// grace period for browsers that would listen forever.
    pub stop: Shutdown,
}

/// `GET /api/v1/live?access_token=...` (or the Authorization header): `reading` events.
#[utoipa::path(
    get,
    path = "/live",
    tag = "read",
    summary = "Server-sent events of the messages the broker delivers from now on",
    description = "`event: reading` with `{\"topic\", \"value\", \"at\"}`; `event: lagged` with \
                   the number of events a slow client lost. The stream ends when the daemon \
                   stops.",
    security(("bearer" = []), ("access_token" = [])),
    responses(
        (status = 200, description = "The stream, one event per message", content_type = "text/event-stream", body = super::schema::LiveEvent),
        super::openapi::TokenErrors,
    ),
)]
pub async fn handler(
    State(live): State<Live>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, std::convert::Infallible>>>, ApiError> {
    let mut auth = headers.clone();
    if let Some(t) = q.get("access_token") {
        let v = HeaderValue::from_str(&format!("Bearer {t}")).map_err(|_| {
            ApiError::unauthorized("the access_token parameter is not a valid token")
        })?;
        auth.insert(header::AUTHORIZATION, v);
    }
    live.tokens.authorize(&auth, Scope::Read)?;
    let rx = live.hub.tx.subscribe();
    live.hub.wanted.notify_one();
    // Answer once the subscription is there, so that a reading published after the browser
    // saw the stream open is not missed. Without a broker, the stream opens anyway (and gets
    // its readings once the broker is back).
    let mut subscribed = live.hub.subscribed.subscribe();
    let _ = tokio::time::timeout(Duration::from_secs(5), subscribed.wait_for(|s| *s)).await;
    let events = stream::unfold((rx, live.stop), |(mut rx, mut stop)| async move {
        let next = tokio::select! {
            r = rx.recv() => r,
            _ = stop.recv() => return None,
        };
        let event = match next {
            Ok(data) => Event::default().event("reading").data(&*data),
            Err(RecvError::Lagged(n)) => Event::default().event("lagged").data(n.to_string()),
            Err(RecvError::Closed) => return None,
        };
        Some((Ok(event), (rx, stop)))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at() -> chrono::DateTime<chrono::Utc> {
        chrono::Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap()
    }

    #[test]
    fn numbers_states_and_broken_payloads() {
        let v: Value = serde_json::from_str(&reading("a/t", b" 21.5\n", at())).unwrap();
        assert_eq!(
            v,
            json!({"topic":"a/t","value":21.5,"at":"2026-01-02T03:04:05.000Z"})
        );
        let v: Value = serde_json::from_str(&reading("a/LWT", b"offline", at())).unwrap();
        assert_eq!(v["value"], "offline");
        let v: Value = serde_json::from_str(&reading("a/x", b"NaN", at())).unwrap();
        assert_eq!(v["value"], "NaN");
        let v: Value = serde_json::from_str(&reading("a/x", b"\xff\xfe", at())).unwrap();
        assert_eq!(v["value"], "\u{fffd}\u{fffd}");
        let long = "é".repeat(300);
        let v: Value = serde_json::from_str(&reading("a/x", long.as_bytes(), at())).unwrap();
        assert_eq!(v["value"].as_str().unwrap().len(), MAX_PAYLOAD);
    }
}
