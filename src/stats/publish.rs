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

/// Longest a publish run may take once connected, plus [`PER_MESSAGE`] for each message: a
/// window of a million series publishes four million, about a minute on a desktop, so the
/// bound grows with them (a broker that stops acknowledging is caught sooner, by
/// [`crate::mqtt::requests::ACK_TIMEOUT`]).
const DEADLINE: Duration = Duration::from_secs(60);

/// What each message adds to [`DEADLINE`]: a broker taking a thousand a second.
const PER_MESSAGE: Duration = Duration::from_millis(1);

/// How long the broker may take to close the connection after our DISCONNECT.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// `len` items of an iterator that does not know its length, counted beforehand: the
/// outputs of a run are made as they are published, and publishing needs their number.
pub struct Counted<I> {
    iter: I,
    left: usize,
}

impl<I: Iterator> Counted<I> {
    /// The first `len` items of `iter`.
    pub fn new(iter: I, len: usize) -> Self {
        Counted { iter, left: len }
    }
}

impl<I: Iterator> Iterator for Counted<I> {
    type Item = I::Item;
    fn next(&mut self) -> Option<I::Item> {
        if self.left == 0 {
            return None;
        }
        let item = self.iter.next()?;
        self.left -= 1;
        Some(item)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl<I: Iterator> ExactSizeIterator for Counted<I> {}

/// Publish `messages` (topic, payload) retained at QoS 1 and wait for every acknowledgement.
///
/// Through a confirmed pump: a connection lost midway answers at once with what was
/// acknowledged, instead of waiting out the deadline. The messages are taken as they are
/// sent ([`Requests::publish_all`](crate::mqtt::Requests::publish_all)).
pub async fn publish(
    cfg: &MqttConfig,
    messages: impl ExactSizeIterator<Item = (String, Vec<u8>)>,
    mut shutdown: Shutdown,
) -> anyhow::Result<()> {
    if messages.len() == 0 {
        return Ok(());
    }
    let (client, driver) = mqtt::connect(cfg, "stats")?;
    let total = messages.len();
    let deadline = DEADLINE + PER_MESSAGE * u32::try_from(total).unwrap_or(u32::MAX);
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
        r = tokio::time::timeout(deadline, requests.publish_all(messages, true)) => r,
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

#[cfg(test)]
mod tests {
    use super::Counted;

    #[test]
    fn counted_says_its_length_and_ends_there() {
        let made = std::cell::Cell::new(0);
        let it = (0..).inspect(|_| made.set(made.get() + 1));
        let mut c = Counted::new(it, 3);
        assert_eq!(c.len(), 3);
        assert_eq!(c.next(), Some(0));
        assert_eq!(c.len(), 2);
        assert_eq!(c.by_ref().collect::<Vec<_>>(), [1, 2]);
        assert_eq!(c.next(), None);
        // Nothing made past the count: the items are made as they are taken.
        assert_eq!(made.get(), 3);
        // An iterator shorter than counted ends where it ends.
        assert_eq!(Counted::new(0..2, 5).count(), 2);
    }
}
