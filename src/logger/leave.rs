//! `iotitan-logger leave`: take a logger's slot out of a shared-subscription group without
//! losing what the broker queued for it.
//!
//! A logger with a persistent session is a slot of the group for good: mosquitto goes on
//! dealing it its share while its process is stopped, and a clean-session connect alone
//! discards that share (docs/SCALING.md). Leaving without loss, with the daemon of that
//! client id stopped:
//!
//! 1. resume the session (`clean_session = false`, the same client id): the broker sends
//!    what it kept for the slot, and the logger's own write path ([`super::Logger`]) writes
//!    it to syslog, acknowledging each message only once its record is written;
//! 2. subscribe to the slot's private marker topic ([`marker_topic`]) and wait for the SUBACK:
//!    a refusal stops here, with the session untouched;
//! 3. unsubscribe every `logger.subscribe` filter and wait for the UNSUBACKs: from then on
//!    the broker deals this slot nothing new;
//! 4. publish a marker with a random nonce to the marker topic (QoS 1). mosquitto queues a
//!    session's messages in order, so everything dealt to the slot before the UNSUBACK
//!    comes before the marker: the marker's arrival, once every record before it is written,
//!    proves the drain, where a quiet-time guess would only hope for it;
//! 5. disconnect, then connect once with `clean_session = true`: the broker drops the session.
//!
//! The marker topic starts with `$`, which MQTT wildcards never match at the first level
//! (MQTT 3.1.1 §4.7.2): the other members, subscribed to `#` or `$share/…/#`, never see it,
//! so it never reaches syslog through them; this logger skips it (the daemon too, in case a
//! marker of a failed attempt is still queued for its session).
//!
//! Any failure (no broker, a refused marker subscription, the timeout, a signal) keeps the
//! session: what was unsubscribed is subscribed again while the connection is there, nothing
//! queued is dropped, and running `leave` again starts over.

use super::{Counters, INBOX, Logger};
use crate::config::Config;
use crate::exit::{self, ExitError};
use crate::mqtt::{self, Requests};
use crate::shutdown::Shutdown;
use rumqttc::{Publish, SubscribeFilter};
use std::cell::Cell;
use std::fmt::Write as _;
use std::time::Duration;
use tokio::time::Instant;

/// The marker topics' prefix: a `$` topic, out of every wildcard's reach.
pub const MARKER_PREFIX: &str = "$iotitan/leave/";

/// How long ending the session (the clean connect) may take at least, even when the
/// drain used up the timeout.
const END_BUDGET: Duration = Duration::from_secs(10);
/// How long putting the subscriptions back after a failure may take.
const RESTORE_BUDGET: Duration = Duration::from_secs(10);
/// How long the broker may take to close the connection after our DISCONNECT.
const DISCONNECT_WAIT: Duration = Duration::from_secs(5);

/// The private marker topic of MQTT client `client_id`: [`MARKER_PREFIX`] and the client id
/// as one topic level, with `%`, `/`, the wildcards `+` and `#`, and control characters
/// percent-encoded, so that it is a valid topic name and filter whatever the id, matches no
/// other topic, and two client ids never share one.
pub fn marker_topic(client_id: &str) -> String {
    let mut t = String::with_capacity(MARKER_PREFIX.len() + client_id.len());
    t.push_str(MARKER_PREFIX);
    for c in client_id.chars() {
        if matches!(c, '%' | '/' | '+' | '#') || c.is_control() {
            let mut buf = [0; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(t, "%{b:02X}");
            }
        } else {
            t.push(c);
        }
    }
    t
}

/// What the logger knows about its marker topic: messages on it are never written, and
/// during a leave the one carrying the awaited nonce ends the drain.
#[derive(Debug, Clone)]
pub(super) struct Marker {
    topic: String,
    nonce: Option<Vec<u8>>,
    seen: bool,
}

impl Marker {
    /// The marker of `client_id`, awaiting nothing (the daemon).
    pub(super) fn new(client_id: String) -> Marker {
        Marker {
            topic: marker_topic(&client_id),
            nonce: None,
            seen: false,
        }
    }

    /// The marker of `client_id`, awaiting `nonce`.
    fn awaiting(client_id: String, nonce: Vec<u8>) -> Marker {
        Marker {
            nonce: Some(nonce),
            ..Marker::new(client_id)
        }
    }

    /// Whether a message on `topic` is a marker (not to be written); notes the awaited one.
    /// A marker with another nonce is left over from an earlier attempt.
    pub(super) fn check(&mut self, topic: &str, payload: &[u8]) -> bool {
        if topic != self.topic {
            return false;
        }
        if self.nonce.as_deref() == Some(payload) {
            self.seen = true;
        } else {
            tracing::debug!("a marker of an earlier leave skipped");
        }
        true
    }

    /// Whether the awaited marker came.
    pub(super) fn seen(&self) -> bool {
        self.seen
    }
}

/// How far a leave got: what a failure has to put back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Connecting,
    /// The marker subscription was asked for.
    MarkerSubscribing,
    /// An UNSUBSCRIBE of the group's filters was handed to the client.
    Unsubscribing,
    /// The marker was published.
    MarkerPublished,
}

/// Why a leave stopped before the drain was proven.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Failure {
    TimedOut,
    Interrupted,
    Lost,
    Refused,
}

/// What a leave did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Left {
    /// `logger.clean_session = true`: the broker keeps no session, nothing to leave.
    NoSession,
    /// The slot's queue was written and its session ended.
    Ended(Counters),
}

/// Leave the group: see the module documentation. `timeout` bounds the connect and the
/// drain; past it the session is kept and the error says so (exit 75, as for a signal; 69
/// without a broker, with a refused marker subscription or a lost connection).
pub async fn run(cfg: &Config, mut shutdown: Shutdown, timeout: Duration) -> anyhow::Result<Left> {
    if cfg.logger.clean_session {
        tracing::info!(
            "logger.clean_session = true: the broker keeps no session for this logger, so \
             nothing is queued for it and there is nothing to leave"
        );
        return Ok(Left::NoSession);
    }
    let deadline = Instant::now() + timeout;
    let opts = super::session_options(cfg)?;
    let client_id = opts.client_id();
    let topic = marker_topic(&client_id);
    let nonce = format!("{:032x}", rand::random::<u128>()).into_bytes();
    let keep_alive = opts.keep_alive();
    let (client, driver) = mqtt::client(opts.clone(), &cfg.mqtt);
    let (polled, requests) = mqtt::Pump::new(client.clone(), driver)
        .inbox(INBOX)
        .spawn_confirmed::<mqtt::Update>();
    let marker = Marker::awaiting(client_id.clone(), nonce.clone());
    let mut logger = Logger::new(cfg, client, keep_alive, None, marker);
    let filters: Vec<&str> = cfg.logger.subscribe.iter().map(|f| f.as_str()).collect();
    if !filters
        .iter()
        .any(|f| mqtt::subscribe::shared_inner(f).is_some())
    {
        tracing::info!(
            "logger.subscribe has no $share/ filter: this logger is in no group; its \
             subscriptions are ended and its queue written all the same"
        );
    }
    tracing::info!(
        "leaving: {}:{} as {client_id}, unsubscribing {}, writing what is queued to {}",
        cfg.mqtt.host,
        cfg.mqtt.port,
        filters.join(", "),
        logger.sink.target()
    );
    let step = Cell::new(Step::Connecting);
    let (trigger, stop) = crate::shutdown::channel();
    let failure = {
        let steps = async {
            match steps(&requests, &step, &filters, &topic, &nonce).await {
                Ok(()) => std::future::pending().await,
                Err(f) => f,
            }
        };
        let watch = async {
            tokio::select! {
                biased;
                _ = shutdown.recv() => Failure::Interrupted,
                f = steps => f,
                f = lost(requests.watch()) => f,
                _ = tokio::time::sleep_until(deadline) => Failure::TimedOut,
            }
        };
        let written = logger.run(polled.inbox, stop);
        tokio::pin!(written);
        tokio::select! {
            () = &mut written => None,
            f = watch => {
                trigger.trigger();
                written.await;
                Some(f)
            }
        }
    };
    let drained = logger.drained();
    let counters = logger.counters;
    match failure {
        Some(f) if !drained || f == Failure::Interrupted => {
            let connected = requests.is_connected();
            let restored = restore(&requests, step.get(), cfg, &filters, &topic).await;
            logger.disconnect(polled.task).await;
            let link = polled.link.borrow().clone();
            Err(ExitError::new(
                code(&f, step.get()),
                explain(
                    &f,
                    step.get(),
                    connected,
                    restored,
                    timeout,
                    counters.written,
                    logger.outbox.len(),
                    link.error.as_deref(),
                    &client_id,
                ),
            )
            .into())
        }
        _ if !drained => {
            // The pump ended without the marker: the connection is gone.
            logger.disconnect(polled.task).await;
            Err(ExitError::new(
                exit::UNAVAILABLE,
                "the connection to the MQTT broker ended before the marker came back: the \
                 session is kept; run `iotitan-logger leave` again",
            )
            .into())
        }
        _ => {
            logger.disconnect(polled.task).await;
            let budget = deadline
                .saturating_duration_since(Instant::now())
                .max(END_BUDGET);
            end_session(cfg, opts, budget).await.map_err(|e| {
                ExitError::new(
                    exit::UNAVAILABLE,
                    format!(
                        "every message queued for {client_id} was written ({} records), but \
                         the session could not be ended ({e}): it holds nothing but the \
                         marker subscription now; run `iotitan-logger leave` again",
                        counters.written
                    ),
                )
            })?;
            tracing::info!(
                "left: {} records written, {} excluded, {} dropped (too big), {} refused; \
                 the session of {client_id} is ended",
                counters.written,
                counters.excluded,
                counters.dropped_too_big,
                counters.refused
            );
            Ok(Left::Ended(counters))
        }
    }
}

/// Steps 2 to 4 (see the module documentation), noting progress in `step`.
async fn steps(
    requests: &Requests,
    step: &Cell<Step>,
    filters: &[&str],
    topic: &str,
    nonce: &[u8],
) -> Result<(), Failure> {
    let mut connected = requests.watch();
    connected
        .wait_for(|c| *c)
        .await
        .map_err(|_| Failure::Lost)?;
    step.set(Step::MarkerSubscribing);
    let marker = vec![SubscribeFilter::new(
        topic.to_owned(),
        rumqttc::QoS::AtLeastOnce,
    )];
    match requests.subscribe(marker).await {
        Ok(true) => {}
        Ok(false) => return Err(Failure::Refused),
        Err(_) => return Err(Failure::Lost),
    }
    step.set(Step::Unsubscribing);
    for f in filters {
        requests.unsubscribe(f).await.map_err(|_| Failure::Lost)?;
    }
    tracing::info!(
        "unsubscribed: the broker deals this client nothing new; waiting for the marker on \
         {topic}"
    );
    requests
        .publish_all(std::iter::once((topic, nonce)), false)
        .await
        .map_err(|_| Failure::Lost)?;
    step.set(Step::MarkerPublished);
    Ok(())
}

/// Resolves when the connection, once made, is lost.
async fn lost(mut connected: tokio::sync::watch::Receiver<bool>) -> Failure {
    let made = connected.wait_for(|c| *c).await.is_ok();
    if made {
        let _ = connected.wait_for(|c| !*c).await;
    }
    Failure::Lost
}

/// After a failure, while connected: subscribe again to what was unsubscribed and drop the
/// marker subscription, so that the daemon finds its session as it left it. Returns whether
/// the session is as before.
async fn restore(
    requests: &Requests,
    step: Step,
    cfg: &Config,
    filters: &[&str],
    topic: &str,
) -> bool {
    if step < Step::MarkerSubscribing {
        return true;
    }
    let put_back = async {
        if step >= Step::Unsubscribing {
            let qos = mqtt::qos(cfg.logger.qos);
            let group = filters
                .iter()
                .map(|f| SubscribeFilter::new((*f).to_owned(), qos))
                .collect();
            if requests.subscribe(group).await != Ok(true) {
                return false;
            }
        }
        requests.unsubscribe(topic).await.is_ok()
    };
    matches!(
        tokio::time::timeout(RESTORE_BUDGET, put_back).await,
        Ok(true)
    )
}

/// Step 5: connect once with a clean session, which makes the broker drop the persistent
/// one, and disconnect.
async fn end_session(
    cfg: &Config,
    mut opts: rumqttc::MqttOptions,
    budget: Duration,
) -> Result<(), String> {
    opts.set_clean_session(true);
    let (client, driver) = mqtt::client(opts, &cfg.mqtt);
    let pumped = mqtt::Pump::new(client.clone(), driver).spawn::<Publish>();
    let mut connected = pumped.connected.clone();
    let link = pumped.link.clone();
    // The guard `wait_for` returns must go at once: while it lives, the pump cannot
    // change the state (it would wait for it for good).
    let made = tokio::time::timeout(budget, connected.wait_for(|c| *c))
        .await
        .is_ok_and(|r| r.is_ok());
    if !made {
        pumped.task.abort();
        let e = link.borrow().error.clone();
        return Err(e.unwrap_or_else(|| "no connection".into()));
    }
    let _ = client.try_disconnect();
    let abort = pumped.task.abort_handle();
    if tokio::time::timeout(DISCONNECT_WAIT, pumped.task)
        .await
        .is_err()
    {
        abort.abort();
    }
    Ok(())
}

/// The exit code of a failed leave: 69 when the broker is unreachable or refuses, 75 when
/// it was only slow (or a signal came).
fn code(f: &Failure, step: Step) -> u8 {
    match (f, step) {
        (Failure::TimedOut, Step::Connecting) => exit::UNAVAILABLE,
        (Failure::TimedOut | Failure::Interrupted, _) => exit::TEMPFAIL,
        (Failure::Lost | Failure::Refused, _) => exit::UNAVAILABLE,
    }
}

/// The error of a failed leave: what happened, what became of the session, what to do.
#[allow(clippy::too_many_arguments)]
fn explain(
    f: &Failure,
    step: Step,
    connected: bool,
    restored: bool,
    timeout: Duration,
    written: u64,
    waiting: usize,
    link_error: Option<&str>,
    client_id: &str,
) -> String {
    let what = match (f, step) {
        (Failure::Refused, _) => format!(
            "the broker refused the subscription to the marker topic {} (an ACL?): allow \
             client {client_id} to subscribe and publish to it",
            marker_topic(client_id)
        ),
        (Failure::TimedOut | Failure::Lost, Step::Connecting) => format!(
            "cannot connect to the MQTT broker{}",
            link_error.map(|e| format!(" ({e})")).unwrap_or_default()
        ),
        (Failure::TimedOut, _) => format!(
            "the queue was not drained within {} ({written} records written, {waiting} still \
             waiting for syslog{}): raise --timeout",
            humantime::format_duration(timeout),
            if step < Step::MarkerPublished {
                ", the broker did not answer the unsubscription"
            } else {
                ""
            }
        ),
        (Failure::Interrupted, _) => format!("interrupted ({written} records written)"),
        (Failure::Lost, _) => format!(
            "the connection to the MQTT broker was lost{} ({written} records written; is a \
             logger with client id {client_id} still running? stop it first)",
            link_error.map(|e| format!(": {e}")).unwrap_or_default()
        ),
    };
    let session = if step < Step::MarkerSubscribing || (connected && restored) {
        "the session is kept as it was, with what is queued for it".to_owned()
    } else {
        format!(
            "the session is kept with what is queued for it, but {} lost its \
             subscriptions (the broker deals it nothing new): finish with \
             `iotitan-logger leave`",
            client_id
        )
    };
    format!("{what}; {session}. Nothing was lost: run `iotitan-logger leave` again")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The inverse of [`marker_topic`]'s encoding, to show it loses nothing.
    fn decode(level: &str) -> String {
        let mut bytes = Vec::new();
        let mut it = level.bytes();
        while let Some(b) = it.next() {
            if b == b'%' {
                let hex: Vec<u8> = it.by_ref().take(2).collect();
                let s = std::str::from_utf8(&hex).expect("hex digits");
                bytes.push(u8::from_str_radix(s, 16).expect("a byte"));
            } else {
                bytes.push(b);
            }
        }
        String::from_utf8(bytes).expect("UTF-8")
    }

    #[test]
    fn the_marker_topic_is_one_escaped_level_out_of_wildcard_reach() {
        assert_eq!(
            marker_topic("site-b-logger"),
            "$iotitan/leave/site-b-logger"
        );
        assert_eq!(marker_topic("a/b+#%"), "$iotitan/leave/a%2Fb%2B%23%25");
        let t = marker_topic("x");
        assert!(!crate::topic::matches("#", &t));
        assert!(!crate::topic::matches("+/leave/x", &t));
        assert!(crate::topic::matches(&t, &t));
    }

    #[test]
    fn only_the_awaited_nonce_ends_the_drain() {
        let mut m = Marker::awaiting("c".into(), b"n1".to_vec());
        assert!(!m.check("load/1", b"n1"));
        assert!(
            m.check("$iotitan/leave/c", b"old"),
            "an old marker is skipped"
        );
        assert!(!m.seen());
        assert!(m.check("$iotitan/leave/c", b"n1"));
        assert!(m.seen());
        let mut daemon = Marker::new("c".into());
        assert!(daemon.check("$iotitan/leave/c", b"n1"));
        assert!(!daemon.seen(), "the daemon awaits no marker");
    }

    #[test]
    fn every_failure_keeps_the_session_and_says_so() {
        for (f, step) in [
            (Failure::Refused, Step::MarkerSubscribing),
            (Failure::TimedOut, Step::Connecting),
            (Failure::TimedOut, Step::MarkerPublished),
            (Failure::Lost, Step::Unsubscribing),
            (Failure::Interrupted, Step::MarkerPublished),
        ] {
            let e = explain(
                &f,
                step,
                false,
                false,
                Duration::from_secs(60),
                3,
                0,
                Some("refused"),
                "c",
            );
            assert!(e.contains("the session is kept"), "{e}");
            assert!(e.contains("run `iotitan-logger leave` again"), "{e}");
        }
        assert_eq!(
            code(&Failure::TimedOut, Step::MarkerPublished),
            exit::TEMPFAIL
        );
        assert_eq!(
            code(&Failure::TimedOut, Step::Connecting),
            exit::UNAVAILABLE
        );
        assert_eq!(
            code(&Failure::Refused, Step::MarkerSubscribing),
            exit::UNAVAILABLE
        );
    }

    proptest! {
        #[test]
        fn marker_topics_are_valid_distinct_and_single_level(a in any::<String>(), b in any::<String>()) {
            let (ta, tb) = (marker_topic(&a), marker_topic(&b));
            let level = ta.strip_prefix(MARKER_PREFIX).expect("the prefix");
            prop_assert!(!level.contains(['/', '+', '#', '\0']));
            prop_assert_eq!(decode(level), a.clone());
            prop_assert_eq!(ta == tb, a == b);
            prop_assert!(crate::topic::matches(&ta, &ta));
        }
    }
}
