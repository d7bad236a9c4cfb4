//! The daemon's broker connection: publish at QoS 1 and learn when the broker acknowledged
//! each message; subscribe and learn when the broker confirmed; hand incoming messages to
//! whoever waits for them (command acknowledgements).
//!
//! A confirmed [`mqtt::Pump`] does the work (see [`mqtt::requests`]): when the connection
//! fails, every waiter learns it at once, and whatever was queued but not acknowledged is
//! dropped rather than sent after the reconnect.

use crate::mqtt::{self, Driver, Requests};
use rumqttc::AsyncClient;
use tokio::sync::watch;

pub use crate::mqtt::{ACK_TIMEOUT, Listening, Partial, Unavailable};

/// A handle on the connection; cheap to clone.
#[derive(Clone)]
pub struct Broker {
    requests: Requests,
}

impl Broker {
    /// Start the pump over `driver`; `client` must belong to it. `online`: the availability
    /// topic that gets a retained `online` on every connection.
    pub fn start(
        client: AsyncClient,
        driver: Driver,
        online: Option<String>,
    ) -> (Broker, tokio::task::JoinHandle<()>) {
        let (pumped, requests) = mqtt::Pump::new(client, driver)
            .online(online)
            .spawn_confirmed::<rumqttc::Publish>();
        (Broker { requests }, pumped.task)
    }

    /// Publish one retained message at QoS 1 without waiting (a status report): `false` if
    /// it could not be queued now.
    pub fn fire(&self, topic: &str, payload: Vec<u8>) -> bool {
        self.requests.fire(topic, payload, true)
    }

    /// Whether the broker is connected now.
    pub fn is_connected(&self) -> bool {
        self.requests.is_connected()
    }

    /// Changes of the connection state.
    pub fn watch(&self) -> watch::Receiver<bool> {
        self.requests.watch()
    }

    /// Publish every `(topic, payload)` at QoS 1 and wait for the broker's acknowledgements.
    /// `Err` says how many were acknowledged when the connection failed (or is down).
    pub async fn publish_all<'a>(
        &self,
        messages: impl ExactSizeIterator<Item = (&'a str, &'a str)>,
    ) -> Result<usize, Partial> {
        self.requests.publish_all(messages, false).await
    }

    /// Listen for messages on `filter` until the returned [`Listening`] is dropped: subscribes
    /// (QoS 1) and waits for the broker's SUBACK, so nothing published after this returns is
    /// missed. Retained messages are not passed on: they are old news.
    pub async fn listen(&self, filter: &str) -> Result<Listening, Unavailable> {
        self.requests.listen(filter).await
    }
}
