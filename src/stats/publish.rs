//! Publishing a run's outputs: retained, QoS 1, and the connection is closed only once the
//! broker has acknowledged every message.
//!
//! Stats is a batch job, so "the broker is down" is an answer, not something to wait out:
//! after a few failed connection attempts the run ends with exit code 69 and the state file
//! is left alone, so the next run computes the same windows again.

use crate::config::MqttConfig;
use crate::exit::{ExitError, UNAVAILABLE};
use crate::mqtt::{self, DriverEvent};
use crate::shutdown::Shutdown;
use rumqttc::{Event, Outgoing, Packet, QoS};
use std::collections::HashSet;
use std::time::Duration;

/// Connection attempts before the broker counts as unreachable.
const ATTEMPTS: u32 = 3;

/// Longest a publish run may take once connected.
const DEADLINE: Duration = Duration::from_secs(60);

/// Publish `messages` (topic, payload) retained at QoS 1 and wait for every acknowledgement.
pub async fn publish(
    cfg: &MqttConfig,
    messages: Vec<(String, Vec<u8>)>,
    mut shutdown: Shutdown,
) -> anyhow::Result<()> {
    if messages.is_empty() {
        return Ok(());
    }
    let (client, mut driver) = mqtt::connect(cfg, "stats")?;
    let total = messages.len();
    let unreachable = |why: &str| {
        ExitError::new(
            UNAVAILABLE,
            format!("broker {}:{} unreachable: {why}", cfg.host, cfg.port),
        )
    };
    // Requests go through a bounded channel that only the event loop drains: publish from a
    // task of its own while this one polls.
    let sender = {
        let client = client.clone();
        tokio::spawn(async move {
            for (topic, payload) in messages {
                client
                    .publish(topic, QoS::AtLeastOnce, true, payload)
                    .await?;
            }
            Ok::<(), rumqttc::ClientError>(())
        })
    };
    let mut failures = 0;
    let mut connected = false;
    let mut sent = 0usize;
    let mut unacked: HashSet<u16> = HashSet::new();
    let mut disconnecting = false;
    let deadline = tokio::time::sleep(DEADLINE);
    tokio::pin!(deadline);
    loop {
        let update = tokio::select! {
            u = driver.next() => u,
            _ = &mut deadline => {
                sender.abort();
                return Err(unreachable("no acknowledgement for every message in time").into());
            }
            _ = shutdown.recv() => {
                sender.abort();
                anyhow::bail!("interrupted before every statistic was acknowledged");
            }
        };
        match update {
            DriverEvent::Connected { .. } => connected = true,
            DriverEvent::Disconnected(e) if disconnecting => {
                tracing::debug!("disconnected: {e}");
                break;
            }
            DriverEvent::Disconnected(e) => {
                failures += 1;
                tracing::warn!("broker connection failed: {e}");
                if !connected && failures >= ATTEMPTS {
                    sender.abort();
                    return Err(unreachable(&e).into());
                }
            }
            DriverEvent::Event(Event::Outgoing(Outgoing::Publish(pkid))) => {
                sent += 1;
                unacked.insert(pkid);
            }
            DriverEvent::Event(Event::Incoming(Packet::PubAck(ack))) => {
                unacked.remove(&ack.pkid);
            }
            DriverEvent::Event(Event::Outgoing(Outgoing::Disconnect)) | DriverEvent::Closed => {
                break;
            }
            DriverEvent::Event(_) => {}
        }
        if !disconnecting && sent >= total && unacked.is_empty() && sender.is_finished() {
            disconnecting = true;
            client.disconnect().await?;
        }
    }
    sender.await??;
    tracing::info!("published {total} messages, every one acknowledged");
    Ok(())
}
