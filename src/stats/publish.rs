//! Publishing a run's outputs: retained, QoS 1, and the connection is closed only once the
//! broker has acknowledged every message.
//!
//! Stats is a batch job, so "the broker is down" is an answer, not something to wait out:
//! after a few failed connection attempts the run ends with exit code 69 and the state file
//! is left alone, so the next run computes the same windows again.

use crate::config::MqttConfig;
use crate::exit::{ExitError, UNAVAILABLE};
use crate::mqtt::{self, Partial};
use crate::shutdown::Shutdown;
use std::time::Duration;

/// Connection attempts before the broker counts as unreachable.
const ATTEMPTS: u32 = 3;

/// Longest a publish run may take once connected.
const DEADLINE: Duration = Duration::from_secs(60);

/// How long the broker may take to close the connection after our DISCONNECT.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Publish `messages` (topic, payload) retained at QoS 1 and wait for every acknowledgement.
///
/// Through a confirmed pump: a connection lost midway answers at once with what was
/// acknowledged, instead of waiting out the deadline.
pub async fn publish(
    cfg: &MqttConfig,
    messages: Vec<(String, Vec<u8>)>,
    mut shutdown: Shutdown,
) -> anyhow::Result<()> {
    if messages.is_empty() {
        return Ok(());
    }
    let (client, driver) = mqtt::connect(cfg, "stats")?;
    let total = messages.len();
    let unreachable = |why: &str| {
        ExitError::new(
            UNAVAILABLE,
            format!("broker {}:{} unreachable: {why}", cfg.host, cfg.port),
        )
    };
    let (pumped, requests) =
        mqtt::Pump::new(client.clone(), driver).spawn_confirmed::<rumqttc::Publish>();
    let mut link = pumped.link;
    let connected = tokio::select! {
        l = link.wait_for(|l| l.connected || l.failures >= ATTEMPTS) => match l {
            Ok(l) => l.connected.then_some(()).ok_or_else(|| l.error.clone().unwrap_or_default()),
            Err(_) => Err("the MQTT event loop stopped".to_owned()),
        },
        _ = shutdown.recv() => {
            pumped.task.abort();
            anyhow::bail!("interrupted before every statistic was acknowledged");
        }
    };
    if let Err(why) = connected {
        pumped.task.abort();
        return Err(unreachable(&why).into());
    }
    let published = tokio::select! {
        r = tokio::time::timeout(DEADLINE, requests.publish_all(messages.into_iter(), true)) => r,
        _ = shutdown.recv() => {
            pumped.task.abort();
            anyhow::bail!("interrupted before every statistic was acknowledged");
        }
    };
    match published {
        Ok(Ok(_)) => {}
        Ok(Err(Partial { acked, .. })) => {
            pumped.task.abort();
            let why = match &link.borrow().error {
                Some(e) => format!(" (connection failed: {e})"),
                None => String::new(),
            };
            return Err(unreachable(&format!(
                "only {acked} of {total} messages acknowledged{why}"
            ))
            .into());
        }
        Err(_) => {
            pumped.task.abort();
            return Err(unreachable("no acknowledgement for every message in time").into());
        }
    }
    // The pump never waits for this task, so awaiting the request channel is safe. The pump
    // ends once the broker closed the connection after our DISCONNECT.
    client.disconnect().await?;
    if tokio::time::timeout(CLOSE_TIMEOUT, pumped.task)
        .await
        .is_err()
    {
        tracing::debug!("the broker did not close the connection after our DISCONNECT");
    }
    tracing::info!("published {total} messages, every one acknowledged");
    Ok(())
}
