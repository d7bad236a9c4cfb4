//! MQTT clients the tests read and write with, whatever the broker: a `mosquitto_sub`
//! subscriber and a rumqttc publisher with a persistent session.

use std::process::Child;
use std::time::{Duration, Instant};

/// A running `mosquitto_sub -v`.
pub struct Subscriber {
    pub(super) child: Child,
    pub(super) rx: std::sync::mpsc::Receiver<String>,
}

impl Subscriber {
    /// The next line, or `None` after `timeout`.
    pub fn next_line(&self, timeout: Duration) -> Option<String> {
        self.rx.recv_timeout(timeout).ok()
    }

    /// Lines until one satisfies `pred` (returned) or the timeout passes (panics with what
    /// was seen).
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.rx.recv_timeout(left) {
                Ok(l) if pred(&l) => return l,
                Ok(l) => seen.push(l),
                Err(_) => break,
            }
        }
        panic!("no matching line within {timeout:?}; saw {seen:#?}");
    }

    /// Every line that arrives within `quiet` of the previous one.
    pub fn drain(&self, quiet: Duration) -> Vec<String> {
        let mut v = Vec::new();
        while let Ok(l) = self.rx.recv_timeout(quiet) {
            v.push(l);
        }
        v
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A QoS 1 publisher with a persistent session (rumqttc), running on its own thread: it
/// survives broker restarts by retransmitting what was not acknowledged.
pub struct Publisher {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    sent: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Publisher {
    /// Publish `messages` (topic, payload) at about `rate` per second with `qos`, in order.
    pub fn start(
        port: u16,
        id: &str,
        messages: Vec<(String, Vec<u8>)>,
        rate: u32,
        qos: u8,
    ) -> Publisher {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (stop2, sent2, id) = (stop.clone(), sent.clone(), id.to_owned());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let mut o = rumqttc::MqttOptions::new(id, "127.0.0.1", port);
                o.set_clean_session(false);
                o.set_keep_alive(Duration::from_secs(5));
                o.set_max_packet_size(1 << 24, 1 << 24);
                let (client, mut el) = rumqttc::AsyncClient::new(o, 1000);
                let stop3 = stop2.clone();
                let poller = tokio::spawn(async move {
                    while !stop3.load(Ordering::SeqCst) {
                        if el.poll().await.is_err() {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                });
                let qos = match qos {
                    0 => rumqttc::QoS::AtMostOnce,
                    1 => rumqttc::QoS::AtLeastOnce,
                    _ => rumqttc::QoS::ExactlyOnce,
                };
                let batch = (rate / 100).max(1) as usize;
                let mut tick = tokio::time::interval(Duration::from_millis(10));
                for chunk in messages.chunks(batch) {
                    tick.tick().await;
                    for (t, p) in chunk {
                        if client
                            .publish(t.clone(), qos, false, p.clone())
                            .await
                            .is_err()
                        {
                            return;
                        }
                        sent2.fetch_add(1, Ordering::SeqCst);
                    }
                }
                // Keep polling (retransmissions after a restart) until told to stop.
                let _ = poller.await;
            });
        });
        Publisher {
            stop,
            sent,
            thread: Some(thread),
        }
    }

    /// How many messages were handed to the client so far.
    pub fn sent(&self) -> usize {
        self.sent.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        // The poll loop may sit in a read; the thread ends with the process otherwise.
        if let Some(t) = self.thread.take() {
            let deadline = Instant::now() + Duration::from_secs(2);
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}
