//! The publishing edge: drives a [`Generator`] against the broker and reports what the broker
//! took.
//!
//! One task polls the MQTT event loop and counts completions (a PUBACK at QoS 1, the write to
//! the socket at QoS 0); the caller's task paces the generator and publishes. On stop the
//! devices' last wills are sent, and the run waits (bounded) until the broker has everything.
//! Devices that take commands ([`Generator::subscriptions`]) are subscribed on every fresh
//! session, and their commands are handed to the generator as they come.

use super::load::Achieved;
use super::{Generator, Message, Next};
use crate::config::MqttConfig;
use crate::exit::{ExitError, UNAVAILABLE};
use crate::mqtt::{self, DriverEvent};
use crate::shutdown::Shutdown;
use anyhow::Context;
use rumqttc::{AsyncClient, Event, Outgoing, Packet, QoS, SubscribeFilter};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// How long to wait for the broker at start before giving up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait at the end for the broker to take what was published.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// What a run did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Report {
    /// Messages handed to the MQTT client.
    pub published: u64,
    /// Messages the broker took (acknowledged at QoS 1, written at QoS 0).
    pub completed: u64,
    /// From the first publish to the last completion.
    pub elapsed: Duration,
}

impl Report {
    /// The achieved rate.
    pub fn achieved(&self) -> Achieved {
        Achieved {
            messages: self.completed,
            elapsed: self.elapsed,
        }
    }
}

#[derive(Debug, Default, Clone)]
struct Progress {
    connected: bool,
    completed: u64,
    last_error: Option<String>,
}

/// Publish everything `generator` produces until it is done or `shutdown` fires.
///
/// Fails with exit code 69 when the broker cannot be reached within 10 s.
pub async fn run(
    cfg: &MqttConfig,
    generator: &mut dyn Generator,
    qos: QoS,
    mut shutdown: Shutdown,
) -> anyhow::Result<Report> {
    let (client, driver) = mqtt::connect(cfg, "sim")?;
    let (tx, mut progress) = watch::channel(Progress::default());
    let (cmd_tx, mut commands) = mpsc::channel(256);
    let filters = generator
        .subscriptions()
        .into_iter()
        .map(|t| SubscribeFilter::new(t, QoS::AtLeastOnce))
        .collect();
    let poller = tokio::spawn(poll(driver, client.clone(), qos, tx, filters, cmd_tx));

    let connected = tokio::select! {
        r = tokio::time::timeout(CONNECT_TIMEOUT, progress.wait_for(|p| p.connected)) => r.is_ok(),
        _ = shutdown.recv() => false,
    };
    if !connected {
        poller.abort();
        if shutdown.is_shutdown() {
            return Ok(Report {
                published: 0,
                completed: 0,
                elapsed: Duration::ZERO,
            });
        }
        let why = progress.borrow().last_error.clone().unwrap_or_default();
        return Err(ExitError::new(
            UNAVAILABLE,
            format!(
                "cannot reach the MQTT broker at {}:{}: {why}",
                cfg.host, cfg.port
            ),
        )
        .into());
    }

    let start = Instant::now();
    let mut out: Vec<Message> = Vec::new();
    let mut published = 0u64;
    loop {
        let next = generator.poll(start.elapsed(), &mut out);
        published += send(&client, qos, &mut out).await?;
        let Next::At(at) = next else { break };
        // A time past what an Instant holds (a rate of one message a century) is never.
        let due = sleep_until(start.checked_add(at));
        tokio::pin!(due);
        loop {
            tokio::select! {
                _ = &mut due => break,
                Some(p) = commands.recv() => {
                    generator.on_message(&p.topic, &p.payload, &mut out);
                    published += send(&client, qos, &mut out).await?;
                }
                _ = shutdown.recv() => break,
            }
        }
        if shutdown.is_shutdown() {
            break;
        }
    }
    generator.finish(&mut out);
    published += send(&client, qos, &mut out).await?;

    let drained = tokio::time::timeout(
        DRAIN_TIMEOUT,
        progress.wait_for(|p| p.completed >= published),
    )
    .await
    .is_ok();
    let elapsed = start.elapsed();
    let completed = progress.borrow().completed;
    if !drained {
        tracing::warn!(
            "the broker took {completed} of {published} messages within {DRAIN_TIMEOUT:?}"
        );
    }
    let _ = client.disconnect().await;
    if tokio::time::timeout(Duration::from_secs(2), poller)
        .await
        .is_err()
    {
        tracing::debug!("event loop did not finish after disconnect");
    }
    Ok(Report {
        published,
        completed,
        elapsed,
    })
}

async fn send(client: &AsyncClient, qos: QoS, out: &mut Vec<Message>) -> anyhow::Result<u64> {
    let n = out.len() as u64;
    for m in out.drain(..) {
        client
            .publish(m.topic, qos, m.retain, m.payload)
            .await
            .context("the MQTT event loop stopped")?;
    }
    Ok(n)
}

/// Poll the event loop, counting completions, until our DISCONNECT went out; subscribe to
/// `filters` on every fresh session and pass what arrives on to `commands`.
async fn poll(
    mut driver: mqtt::Driver,
    client: AsyncClient,
    qos: QoS,
    tx: watch::Sender<Progress>,
    filters: Vec<SubscribeFilter>,
    commands: mpsc::Sender<rumqttc::Publish>,
) {
    loop {
        match driver.next().await {
            DriverEvent::Connected { fresh } => {
                if fresh && !filters.is_empty() {
                    // Through the request channel only this task drains: never await it here.
                    if let Err(e) = client.try_subscribe_many(filters.clone()) {
                        tracing::warn!("cannot subscribe to the plugs' commands: {e}");
                    }
                }
                tx.send_modify(|p| {
                    if p.last_error.take().is_some() {
                        tracing::info!("connected to the broker again");
                    }
                    p.connected = true;
                })
            }
            DriverEvent::Event(Event::Incoming(Packet::Publish(p))) => {
                // A full queue drops the command: a device that is busy misses one too.
                let _ = commands.try_send(p);
            }
            DriverEvent::Event(Event::Outgoing(Outgoing::Publish(_))) if qos == QoS::AtMostOnce => {
                tx.send_modify(|p| p.completed += 1)
            }
            DriverEvent::Event(Event::Incoming(Packet::PubAck(_))) if qos != QoS::AtMostOnce => {
                tx.send_modify(|p| p.completed += 1)
            }
            DriverEvent::Event(Event::Outgoing(Outgoing::Disconnect)) | DriverEvent::Closed => {
                return;
            }
            DriverEvent::Event(_) => {}
            DriverEvent::Disconnected(e) => tx.send_modify(|p| {
                if p.last_error.is_none() && p.connected {
                    tracing::warn!("lost the broker: {e}; reconnecting");
                }
                p.last_error = Some(e);
            }),
        }
    }
}

/// Sleep until `at`, or forever when there is no such instant.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
