//! The `iotitan-alerts` daemon: MQTT in, [`Machine`] in the middle, alert topics, events and
//! device commands out.
//!
//! Same shape as every iotitan daemon: connect → READY → a loop that `select!`s over broker
//! updates, the machine's next timer, the watchdog and shutdown → drain. The event loop is
//! polled by the pump ([`mqtt::Pump`]), which waits for this loop when it falls behind
//! (backpressure), so everything we publish goes through `try_publish` with a small outbox in
//! front: the loop never blocks on a full request channel.
//!
//! Restart safety: after each (clean-session) connect the pump subscribes twice, in order:
//! 1. the retained alert outputs of the watched series, QoS 0;
//! 2. the inputs, QoS 1.
//!
//! The broker handles the two SUBSCRIBEs in order, so every retained output of (1) arrives
//! before the SUBACK of (2), which the pump reports in order with the messages
//! ([`Update::Subscribed`]). Readings that arrive before that SUBACK are held back, so the
//! machine knows which alerts are on before it judges any value: a restart neither announces
//! an active alert again nor forgets it.
//!
//! Retained sensor values count as readings only in the first session after start (they are
//! the current values then); after a reconnect they are replays of what we already saw, and
//! taking them as news would make a dead sensor look alive.

use super::machine::checks;
use super::{Kind, Machine, Observed, Transition, event::Event, parse_state, split_output};
use crate::config::Config;
use crate::exit::{self, ExitError};
use crate::mqtt::{self, Update, subscribe::Outcome};
use crate::notify;
use crate::payload::{Extractor, Reading};
use crate::shutdown::Shutdown;
use crate::status::{Metric, Status};
use crate::time::sleep_until;
use anyhow::Context;
use rumqttc::{AsyncClient, Publish, QoS, SubscribeFilter};
use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Readings held back while the retained alert states are read; beyond it they are dropped
/// (counted): live values come again, a wrong `on` would not go away.
const HELD_BACK_MAX: usize = 100_000;
/// How long shutdown waits for queued messages to reach the broker.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(3);
/// How often shutdown retries queued messages while the request channel is full.
const DRAIN_RETRY: Duration = Duration::from_millis(10);
/// How often a queued message is retried while the request channel is full.
const RETRY: Duration = Duration::from_millis(100);
/// Updates buffered between the pump and the main loop.
const INBOX: usize = 1024;
/// How often the status line (systemd `STATUS=`) is refreshed.
const STATUS_EVERY: Duration = Duration::from_secs(60);

/// Run the alerts daemon until `shutdown`.
pub async fn run(cfg: &Config, mut shutdown: Shutdown) -> anyhow::Result<()> {
    if cfg.alerts.rule.is_empty() {
        return Err(ExitError::new(
            exit::CONFIG,
            "no [[alerts.rule]] in the config: nothing to watch",
        )
        .into());
    }
    let status = Status::of(cfg, "alerts");
    let (client, driver) =
        mqtt::connect_reporting(&cfg.mqtt, "alerts", status.as_ref()).context("mqtt settings")?;
    let mut d = Daemon::new(cfg, client.clone());
    let availability = status.as_ref().map(Status::availability);
    d.status = status;
    let filters = |topics: &[String], qos| {
        topics
            .iter()
            .map(|t| SubscribeFilter::new(t.clone(), qos))
            .collect::<Vec<_>>()
    };
    let mqtt::Pumped {
        mut inbox,
        task: mut poller,
        ..
    } = mqtt::Pump::new(client, driver)
        .subscribe(filters(&d.outputs, QoS::AtMostOnce))
        .subscribe(filters(&d.inputs, QoS::AtLeastOnce))
        .online(availability)
        .inbox(INBOX)
        .spawn::<Update>();
    tracing::info!(
        rules = cfg.alerts.rule.len(),
        broker = %format!("{}:{}", cfg.mqtt.host, cfg.mqtt.port),
        "iotitan-alerts starting"
    );

    let mut watchdog = notify::Watchdog::new();
    let mut status = tokio::time::interval(cfg.status.interval.get().min(STATUS_EVERY));
    loop {
        let deadline = d.machine.next_deadline();
        tokio::select! {
            _ = shutdown.recv() => break,
            update = inbox.recv() => match update {
                Some(u) => d.on_update(u),
                None => anyhow::bail!("the MQTT event loop stopped"),
            },
            _ = sleep_until(deadline), if deadline.is_some() => d.tick(),
            _ = tokio::time::sleep(RETRY), if !d.outbox.is_empty() => {}
            _ = watchdog.tick() => {}
            _ = status.tick() => d.status(),
        }
        d.flush();
    }

    notify::stopping();
    d.drain(&mut inbox, &mut poller).await;
    poller.abort();
    tracing::info!(
        messages = d.counts.messages,
        readings = d.counts.readings,
        junk = d.counts.junk,
        transitions = d.counts.transitions,
        active = d.machine.active(),
        "iotitan-alerts stopped"
    );
    Ok(())
}

/// The topics to subscribe to: (retained alert outputs of the watched series, inputs).
///
/// A rule filter ending in a literal level (`a/+/temperature`) gets one output filter per
/// alert kind it checks (`a/+/temperature_alert_hi`); one ending in `+` or `#` already matches
/// its outputs. Topics carrying JSON (`[[payload.json]]`) are inputs too, since their series
/// (`<topic>/<field>`) are what rules name.
pub fn subscriptions(cfg: &Config) -> (Vec<String>, Vec<String>) {
    let mut outputs = BTreeSet::new();
    let mut inputs = BTreeSet::new();
    for rule in &cfg.alerts.rule {
        for f in rule.topics.iter() {
            let f = f.as_str();
            inputs.insert(f.to_owned());
            if f.ends_with('+') || f.ends_with('#') {
                outputs.insert(f.to_owned());
            } else {
                for kind in Kind::ALL.into_iter().filter(|k| checks(rule, *k)) {
                    outputs.insert(kind.topic(f));
                }
            }
        }
    }
    for json in &cfg.payload.json {
        inputs.extend(json.topics.iter().map(|f| f.as_str().to_owned()));
    }
    (outputs.into_iter().collect(), inputs.into_iter().collect())
}

/// A message waiting for room in the client's request channel.
struct Queued {
    topic: String,
    retain: bool,
    payload: Vec<u8>,
}

/// What the daemon counted; shown in the status line and at exit.
#[derive(Debug, Default)]
struct Counts {
    messages: u64,
    readings: u64,
    junk: u64,
    refused: u64,
    held_back_dropped: u64,
    transitions: u64,
}

struct Daemon {
    /// Where the daemon reports its health, if it does.
    status: Option<Status>,
    /// `[[alerts.rule]]`s configured.
    rules: usize,
    machine: Machine,
    client: AsyncClient,
    extractor: Extractor,
    events_topic: String,
    /// Our own command topics: never read back as sensors.
    action_topics: BTreeSet<String>,
    outputs: Vec<String>,
    inputs: Vec<String>,
    /// Whether the retained alert states of this session are still coming in.
    restoring: bool,
    /// Fresh sessions so far: retained readings are news only in the first one.
    sessions: u32,
    held_back: Vec<Publish>,
    ready: bool,
    outbox: VecDeque<Queued>,
    counts: Counts,
    readings: Vec<Reading>,
    transitions: Vec<Transition>,
}

impl Daemon {
    fn new(cfg: &Config, client: AsyncClient) -> Self {
        let (outputs, inputs) = subscriptions(cfg);
        Daemon {
            status: None,
            rules: cfg.alerts.rule.len(),
            machine: Machine::new(&cfg.alerts, Instant::now()),
            client,
            extractor: cfg.payload.extractor(),
            events_topic: cfg.alerts.events_topic.clone(),
            action_topics: cfg
                .alerts
                .rule
                .iter()
                .filter_map(|r| r.action.as_ref().map(|a| a.topic.clone()))
                .collect(),
            outputs,
            inputs,
            restoring: false,
            sessions: 0,
            held_back: Vec::new(),
            ready: false,
            outbox: VecDeque::new(),
            counts: Counts::default(),
            readings: Vec::new(),
            transitions: Vec::new(),
        }
    }

    fn on_update(&mut self, update: Update) {
        match update {
            Update::Connected { fresh } => {
                if fresh {
                    self.sessions += 1;
                    self.restoring = true;
                    tracing::debug!(outputs = ?self.outputs, inputs = ?self.inputs, "subscribing");
                }
            }
            Update::Message(p) => self.on_publish(p),
            Update::Subscribed(outcome) => self.on_subscribed(outcome),
        }
    }

    /// The SUBACK of the inputs came: the retained alert states are all in.
    fn on_subscribed(&mut self, outcome: Outcome) {
        if !self.restoring {
            return;
        }
        self.restoring = false;
        for p in std::mem::take(&mut self.held_back) {
            self.read(&p);
        }
        // A refusal was logged by the pump; what was granted is watched all the same, but
        // the start is not complete.
        if outcome == Outcome::Refused {
            return;
        }
        tracing::info!(
            series = self.machine.series_count(),
            active = self.machine.active(),
            "subscribed; alert states read back from the broker"
        );
        if !self.ready {
            self.ready = true;
            notify::ready();
        }
    }

    fn on_publish(&mut self, p: Publish) {
        self.counts.messages += 1;
        let topic = p.topic.as_str();
        if topic == self.events_topic || self.action_topics.contains(topic) {
            return; // our own messages
        }
        if let Some((series, kind)) = split_output(topic) {
            // Only retained states are the broker's memory; a live one is our own echo (or
            // someone else's business).
            if p.retain
                && let Some(on) = parse_state(&p.payload)
                && self.machine.restore(series, kind, on, Instant::now())
                && on
            {
                tracing::info!(series, kind = kind.as_str(), "active alert read back");
            }
            return;
        }
        // After a reconnect the broker replays retained sensor values we have already seen;
        // taking them as new readings would make a dead sensor look alive again.
        if p.retain && self.sessions > 1 {
            return;
        }
        if self.restoring {
            if self.held_back.len() < HELD_BACK_MAX {
                self.held_back.push(p);
            } else {
                self.counts.held_back_dropped += 1;
            }
            return;
        }
        self.read(&p);
    }

    /// Turn one message into readings and feed them to the machine.
    fn read(&mut self, p: &Publish) {
        self.readings.clear();
        if let Err(why) = self
            .extractor
            .readings(&p.topic, &p.payload, &mut self.readings)
        {
            self.counts.junk += 1;
            tracing::debug!(topic = %p.topic, "payload ignored: {why}");
            return;
        }
        let now = Instant::now();
        for r in &self.readings {
            match self
                .machine
                .observe(&r.series, r.value, now, &mut self.transitions)
            {
                Observed::Watched => self.counts.readings += 1,
                Observed::Unwatched => {}
                Observed::Refused => {
                    self.counts.refused += 1;
                    if self.counts.refused == 1 {
                        tracing::warn!(
                            series = %r.series,
                            "alerts.max_series reached: new series are ignored"
                        );
                    }
                }
            }
        }
        self.emit();
    }

    fn tick(&mut self) {
        self.machine.tick(Instant::now(), &mut self.transitions);
        self.emit();
    }

    /// Publish the transitions the machine produced: the retained state, the event, the
    /// device command, and a warning in the log.
    fn emit(&mut self) {
        let now = chrono::Utc::now();
        for t in std::mem::take(&mut self.transitions) {
            self.counts.transitions += 1;
            let rule = &self.machine.rules()[t.rule];
            let event = Event::new(&t, &rule.name, now);
            tracing::warn!(
                topic = %t.series,
                rule = %rule.name,
                kind = t.kind.as_str(),
                state = event.state,
                value = t.value,
                threshold = t.threshold,
                "alert {} {} for {}: {}",
                t.kind,
                event.state,
                t.series,
                describe(&t),
            );
            let json = event.to_json();
            // A silent sensor says nothing about the room: only range alerts act on devices.
            let command = rule
                .action
                .as_ref()
                .filter(|_| t.kind != Kind::Stale)
                .and_then(|a| {
                    let payload = if t.on { &a.on } else { &a.off };
                    payload.as_ref().map(|p| (a.topic.clone(), p.clone()))
                });
            self.queue(
                t.kind.topic(&t.series),
                true,
                super::state_payload(t.on).into(),
            );
            self.queue(self.events_topic.clone(), false, json.into_bytes());
            if let Some((topic, payload)) = command {
                self.queue(topic, false, payload.into_bytes());
            }
        }
    }

    fn queue(&mut self, topic: String, retain: bool, payload: Vec<u8>) {
        self.outbox.push_back(Queued {
            topic,
            retain,
            payload,
        });
    }

    /// Hand queued messages to the client until its request channel is full.
    fn flush(&mut self) {
        while let Some(m) = self.outbox.front() {
            let sent = self.client.try_publish(
                m.topic.clone(),
                QoS::AtLeastOnce,
                m.retain,
                m.payload.clone(),
            );
            if sent.is_err() {
                return; // full: retried after RETRY
            }
            self.outbox.pop_front();
        }
    }

    fn status(&self) {
        let c = &self.counts;
        let text = format!(
            "{} series, {} alerts on; {} readings, {} junk payloads, {} transitions",
            self.machine.series_count(),
            self.machine.active(),
            c.readings,
            c.junk,
            c.transitions
        );
        notify::status(&text);
        self.publish_status(&text);
        tracing::debug!(
            refused = c.refused,
            held_back_dropped = c.held_back_dropped,
            "{text}"
        );
    }

    /// Publish the status report (retained): what `/metrics` and the health panel show.
    fn publish_status(&self, summary: &str) {
        let Some(s) = &self.status else { return };
        let c = &self.counts;
        let metrics = vec![
            Metric::counter("messages", "Messages received", c.messages),
            Metric::counter("readings", "Readings checked against the rules", c.readings),
            Metric::counter("junk", "Payloads that were not readings", c.junk),
            Metric::counter("transitions", "Alerts raised or cleared", c.transitions),
            Metric::counter("refused", "Alert messages the broker refused", c.refused),
            Metric::gauge("rules", "Configured [[alerts.rule]]s", self.rules as f64),
            Metric::gauge(
                "series",
                "Series watched",
                self.machine.series_count() as f64,
            ),
            Metric::gauge("active", "Alerts on now", self.machine.active() as f64),
            Metric::gauge(
                "queued",
                "Alert messages waiting to be sent",
                self.outbox.len() as f64,
            ),
        ];
        s.publish(&self.client, summary, metrics);
    }

    /// Send what is queued and disconnect cleanly, for at most [`DRAIN_TIMEOUT`]: done once
    /// the pump ended, which it does when the broker closed the connection after our
    /// DISCONNECT, so everything before it reached the broker.
    async fn drain(
        &mut self,
        inbox: &mut mpsc::Receiver<Update>,
        pump: &mut tokio::task::JoinHandle<()>,
    ) {
        // The pump must not wait for this task while this task waits for it.
        inbox.close();
        let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
        let mut disconnect_sent = false;
        loop {
            self.flush();
            if self.outbox.is_empty() && !disconnect_sent {
                // A DISCONNECT does not fire the will: say `offline` first.
                if let Some(s) = &self.status {
                    crate::status::offline(&self.client, &s.availability());
                }
                disconnect_sent = self.client.try_disconnect().is_ok();
            }
            tokio::select! {
                _ = &mut *pump => return,
                // The request channel was full: try again soon.
                _ = tokio::time::sleep(DRAIN_RETRY), if !disconnect_sent => {}
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        if !self.outbox.is_empty() || !disconnect_sent {
            tracing::error!(
                unsent = self.outbox.len(),
                "the broker is unreachable: alert messages queued at shutdown were not sent"
            );
        }
    }
}

/// A short human sentence for the log: why the transition happened.
fn describe(t: &Transition) -> String {
    let value = t.value.map_or("none".to_owned(), |v| v.to_string());
    match (t.kind, t.on) {
        (Kind::Hi, true) => format!("value {value} above {}", t.threshold),
        (Kind::Lo, true) => format!("value {value} below {}", t.threshold),
        (Kind::Hi, false) => format!("value {value} back at or below {}", t.threshold),
        (Kind::Lo, false) => format!("value {value} back at or above {}", t.threshold),
        (Kind::Stale, true) => format!("no reading for {}s", t.threshold),
        (Kind::Stale, false) => format!("reading {value} after silence"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_read_back_outputs_then_inputs() {
        let cfg = Config::parse(
            r#"
[[payload.json]]
topics = "zigbee2mqtt/+"
fields = ["temperature"]
[[alerts.rule]]
topics = ["iotitan/+/+/+/temperature", "zigbee2mqtt/+/temperature"]
high = 30
stale_after = "10m"
[[alerts.rule]]
topics = "iotitan/#"
low = 0
"#,
            "t",
        )
        .unwrap();
        let (outputs, inputs) = subscriptions(&cfg);
        assert_eq!(
            outputs,
            [
                "iotitan/#",
                "iotitan/+/+/+/temperature_alert_hi",
                "iotitan/+/+/+/temperature_alert_stale",
                "zigbee2mqtt/+/temperature_alert_hi",
                "zigbee2mqtt/+/temperature_alert_stale",
            ]
        );
        assert_eq!(
            inputs,
            [
                "iotitan/#",
                "iotitan/+/+/+/temperature",
                "zigbee2mqtt/+",
                "zigbee2mqtt/+/temperature"
            ]
        );
        // Every output filter is valid.
        for f in outputs {
            crate::topic::TopicFilter::new(&f).unwrap();
        }
    }

    #[test]
    fn log_sentences() {
        let t = Transition::example("s", Kind::Hi, Some(31.5), 30.0);
        assert_eq!(describe(&t), "value 31.5 above 30");
        let stale = Transition::example("s", Kind::Stale, None, 600.0);
        assert_eq!(describe(&stale), "no reading for 600s");
    }
}
