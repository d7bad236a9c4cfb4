//! The publishing edge: drives a [`Generator`] against the broker and reports what the broker
//! took.
//!
//! The pump ([`mqtt::Pump`]) polls the MQTT event loop and counts completions (a PUBACK at
//! QoS 1, the write to the socket at QoS 0); the caller's task paces the generator and
//! publishes. Commands reach the generator through a lossy inbox, so the pump never waits for
//! this task and this task may wait for room in the request channel. On stop the
//! devices' last wills are sent, and the run waits (bounded) until the broker has everything.
//! Devices that take commands ([`Generator::subscriptions`]) are subscribed on every fresh
//! session, and their commands are handed to the generator as they come.

use super::load::Achieved;
use super::{Generator, Message, Next};
use crate::config::MqttConfig;
use crate::exit::{ExitError, UNAVAILABLE};
use crate::mqtt::{self, Sent};
use crate::shutdown::Shutdown;
use crate::time::sleep_until;
use anyhow::Context;
use rumqttc::{AsyncClient, Publish, QoS, SubscribeFilter};
use std::time::{Duration, Instant};

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

/// Commands waiting for the generator; beyond this they are dropped, as a busy device misses
/// one too.
const COMMANDS: usize = 256;

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
    let filters = generator
        .subscriptions()
        .into_iter()
        .map(|t| SubscribeFilter::new(t, QoS::AtLeastOnce))
        .collect();
    let mqtt::Pumped {
        inbox: mut commands,
        task: poller,
        mut link,
        mut subscribed,
        sent: mut progress,
        ..
    } = mqtt::Pump::new(client.clone(), driver)
        .subscribe(filters)
        .lossy_inbox(COMMANDS)
        .spawn::<Publish>();
    // What the broker took: acknowledged at QoS 1, written at QoS 0.
    let completed = move |s: &Sent| {
        if qos == QoS::AtMostOnce {
            s.written
        } else {
            s.acked
        }
    };

    // Connected, and the devices that take commands listening: a device announces its state
    // when it comes up (Tasmota does), and a command sent on seeing that announcement must
    // find the subscription in place. The announcement could otherwise reach the broker
    // before the SUBSCRIBE, and the command be lost.
    let ready = async {
        link.wait_for(|l| l.connected).await.is_ok() && subscribed.wait_for(|&s| s).await.is_ok()
    };
    let ready = tokio::select! {
        r = tokio::time::timeout(CONNECT_TIMEOUT, ready) => r.unwrap_or(false),
        _ = shutdown.recv() => false,
    };
    if !ready {
        poller.abort();
        if shutdown.is_shutdown() {
            return Ok(Report {
                published: 0,
                completed: 0,
                elapsed: Duration::ZERO,
            });
        }
        let l = link.borrow().clone();
        let why = if l.connected {
            format!(
                "the broker did not grant the devices' command subscriptions within {}",
                humantime::format_duration(CONNECT_TIMEOUT)
            )
        } else {
            format!(
                "cannot reach the MQTT broker at {}:{}: {}",
                cfg.host,
                cfg.port,
                l.error.unwrap_or_default()
            )
        };
        return Err(ExitError::new(UNAVAILABLE, why).into());
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
        progress.wait_for(|s| completed(s) >= published),
    )
    .await
    .is_ok();
    let elapsed = start.elapsed();
    let completed = completed(&progress.borrow());
    if !drained {
        tracing::warn!(
            "the broker took {completed} of {published} messages within {DRAIN_TIMEOUT:?}"
        );
    }
    let _ = client.disconnect().await;
    // The pump ends once the broker closed the connection after our DISCONNECT.
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
