//! Every program's health as the daemon last heard it: the retained status topics
//! ([`crate::status`]) of the whole pipeline, kept for `/metrics` and the dashboard's health
//! panel.
//!
//! The topics are MQTT, so anyone who may publish can publish there: what is kept is bounded
//! (programs, metrics per report, bytes per payload) and names are checked where they are
//! rendered ([`super::metrics`]).

use crate::mqtt::{self, Update};
use crate::shutdown::Shutdown;
use crate::status::{self, Report};
use rumqttc::{QoS, SubscribeFilter};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Most program instances kept: a scaled-out pipeline has a handful.
pub const MAX_PROGRAMS: usize = 256;
/// Most metrics kept of one report.
pub const MAX_METRICS: usize = 512;
/// Largest report read.
pub const MAX_REPORT_BYTES: usize = 256 * 1024;

/// One program instance, as last heard.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = ProgramStatus)]
pub struct Program {
    /// `logger`, `stats`, `alerts`, `bridge`, `http`.
    pub program: String,
    /// Its `mqtt.client_id`.
    pub instance: String,
    /// `online` or `offline` (its will); `null` for a program without availability (stats).
    pub availability: Option<String>,
    /// Its last report, if one came.
    pub report: Option<Report>,
}

/// The programs heard of, by (program, instance); cheap to clone.
#[derive(Clone, Default)]
pub struct Health {
    programs: Arc<Mutex<BTreeMap<(String, String), Program>>>,
}

impl Health {
    /// Take a message of the status topics under `prefix` (an empty payload clears).
    pub fn update(&self, prefix: &str, topic: &str, payload: &[u8]) {
        let Some((program, instance, availability)) = status::parse_topic(prefix, topic) else {
            return;
        };
        let mut programs = self.programs.lock().unwrap_or_else(|p| p.into_inner());
        let key = (program.to_owned(), instance.to_owned());
        if !programs.contains_key(&key) && programs.len() >= MAX_PROGRAMS {
            tracing::debug!("{topic}: more than {MAX_PROGRAMS} programs report; ignored");
            return;
        }
        let entry = programs.entry(key.clone()).or_insert_with(|| Program {
            program: program.to_owned(),
            instance: instance.to_owned(),
            ..Program::default()
        });
        if availability {
            entry.availability = match payload {
                b"" => None,
                p => Some(String::from_utf8_lossy(&p[..p.len().min(64)]).into_owned()),
            };
        } else if payload.is_empty() {
            entry.report = None;
        } else if payload.len() > MAX_REPORT_BYTES {
            tracing::debug!("{topic}: a report of {} bytes ignored", payload.len());
        } else {
            match serde_json::from_slice::<Report>(payload) {
                Ok(mut r) => {
                    r.metrics.truncate(MAX_METRICS);
                    entry.report = Some(r);
                }
                Err(e) => tracing::debug!("{topic}: not a status report ({e})"),
            }
        }
        if entry.availability.is_none() && entry.report.is_none() {
            programs.remove(&key);
        }
    }

    /// Every program heard of, by program and instance.
    pub fn programs(&self) -> Vec<Program> {
        let programs = self.programs.lock().unwrap_or_else(|p| p.into_inner());
        programs.values().cloned().collect()
    }
}

/// Keep `health` up to date from the status topics under `prefix`, on a connection of its
/// own (`<client_id>-http-status`, a clean session): the retained reports come on every
/// subscription, which the daemon's own connection passes to nobody.
pub async fn watch(
    cfg: &crate::config::Config,
    health: Health,
    mut shutdown: Shutdown,
) -> anyhow::Result<()> {
    let prefix = cfg.status.topic_prefix.clone();
    let (client, driver) = mqtt::connect(&cfg.mqtt, "http-status")?;
    let filter = SubscribeFilter::new(format!("{prefix}/#"), QoS::AtMostOnce);
    let mqtt::Pumped {
        mut inbox, task, ..
    } = mqtt::Pump::new(client.clone(), driver)
        .subscribe(vec![filter])
        .inbox(64)
        .spawn::<Update>();
    loop {
        tokio::select! {
            _ = shutdown.recv() => break,
            update = inbox.recv() => match update {
                Some(Update::Message(p)) => health.update(&prefix, &p.topic, &p.payload),
                Some(_) => {}
                None => break,
            },
        }
    }
    inbox.close();
    let _ = client.try_disconnect();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), task).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::Metric;

    #[test]
    fn reports_and_availability_are_kept_and_cleared() {
        let h = Health::default();
        let p = "iotitan/status";
        let report = serde_json::to_vec(&Report {
            program: "logger".into(),
            instance: "a".into(),
            version: "0".into(),
            started: "2026-12-08T00:00:00Z".into(),
            at: "2026-12-08T00:00:30Z".into(),
            summary: "ok".into(),
            metrics: vec![Metric::counter("written", "Records", 3)],
        })
        .unwrap();
        h.update(p, "iotitan/status/logger/a", &report);
        h.update(p, "iotitan/status/logger/a/availability", b"online");
        h.update(p, "iotitan/status/bridge/b/availability", b"offline");
        h.update(p, "iotitan/status/logger/a/other", b"x");
        h.update(p, "iotitan/status/stats/c", b"{not json");
        let all = h.programs();
        assert_eq!(all.len(), 2, "{all:?}");
        assert_eq!(all[0].program, "bridge");
        assert_eq!(all[0].availability.as_deref(), Some("offline"));
        assert_eq!(all[1].availability.as_deref(), Some("online"));
        assert_eq!(all[1].report.as_ref().unwrap().metrics[0].value, 3.0);
        // Cleared retained messages forget the program.
        h.update(p, "iotitan/status/bridge/b/availability", b"");
        assert_eq!(h.programs().len(), 1);
    }

    #[test]
    fn a_flood_of_programs_is_bounded() {
        let h = Health::default();
        for i in 0..MAX_PROGRAMS + 10 {
            h.update("s", &format!("s/p/{i}/availability"), b"online");
        }
        assert_eq!(h.programs().len(), MAX_PROGRAMS);
    }
}
