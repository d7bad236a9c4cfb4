//! Cooperative shutdown on SIGTERM (systemd) and SIGINT (Ctrl+C).
//!
//! Modelled on mini-redis: one [`Shutdown`] handle per long task, each `select!`s between its
//! work and [`Shutdown::recv`]. Waiting for tasks to finish is done by the tasks themselves
//! (they drain and flush before returning), so the daemon exits only once everything
//! received has been written.

use tokio::sync::watch;

/// A handle that resolves once shutdown was requested.
#[derive(Clone, Debug)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

/// The sending side: trigger shutdown from code (tests, `--duration`, fatal errors).
#[derive(Clone, Debug)]
pub struct Trigger {
    tx: std::sync::Arc<watch::Sender<bool>>,
}

/// A new, untriggered shutdown pair.
pub fn channel() -> (Trigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (
        Trigger {
            tx: std::sync::Arc::new(tx),
        },
        Shutdown { rx },
    )
}

impl Trigger {
    /// Ask every [`Shutdown`] holder to stop.
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    /// A new receiving handle.
    pub fn subscribe(&self) -> Shutdown {
        Shutdown {
            rx: self.tx.subscribe(),
        }
    }
}

impl Shutdown {
    /// Whether shutdown has been requested already.
    pub fn is_shutdown(&self) -> bool {
        *self.rx.borrow()
    }

    /// Wait until shutdown is requested. Cancel-safe: use it in `select!`.
    pub async fn recv(&mut self) {
        // An error means every Trigger is gone: nobody can ask us to stop any more, which for
        // a daemon means its owner went away, so treat it as shutdown too.
        let _ = self.rx.wait_for(|stop| *stop).await;
    }
}

/// Install SIGTERM and SIGINT handlers that fire `trigger`; returns the listener task.
///
/// Must be called inside a tokio runtime.
pub fn on_signals(trigger: Trigger) -> std::io::Result<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
            _ = int.recv() => tracing::info!("SIGINT received, shutting down"),
        }
        trigger.trigger();
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn trigger_wakes_every_handle() {
        let (trigger, mut a) = channel();
        let mut b = trigger.subscribe();
        assert!(!a.is_shutdown());
        trigger.trigger();
        tokio::time::timeout(std::time::Duration::from_secs(1), async {
            a.recv().await;
            b.recv().await;
        })
        .await
        .expect("both handles wake");
        assert!(a.is_shutdown());
    }

    #[tokio::test]
    async fn dropped_trigger_counts_as_shutdown() {
        let (trigger, mut a) = channel();
        drop(trigger);
        tokio::time::timeout(std::time::Duration::from_secs(1), a.recv())
            .await
            .expect("wakes when the trigger is gone");
    }
}
