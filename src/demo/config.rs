//! The demo's config file, written to `./demo/iotitan.toml` so that every program can be
//! pointed at the demo afterwards (`iotitan-stats --config demo/iotitan.toml …`).

use crate::sim::BrokerAddr;
use std::path::Path;

/// The topic the real series is replayed on.
pub const REPLAY_TOPIC: &str = "iotitan/adelaide/outdoor/openmeteo/temperature";

/// Alerts fire above this temperature; the replayed January never reaches it, the demo's
/// spike does.
pub const HIGH: f64 = 45.0;

/// The channel id written when the bridge runs dry (ids must be positive; nothing is sent).
pub const DRY_RUN_CHANNEL: u64 = 1;

/// The demo config as TOML.
///
/// `syslog_target` and `sources` say where records go and are read back; `thingspeak`
/// names a channel to really write to (its key comes from the environment), else the bridge
/// runs dry.
pub fn render(
    dir: &Path,
    broker: &BrokerAddr,
    syslog_target: &str,
    sources: &[String],
    thingspeak: Option<u64>,
) -> String {
    let q = |s: &str| toml::Value::String(s.to_owned()).to_string();
    let sources: Vec<_> = sources.iter().map(|s| q(s)).collect();
    format!(
        r##"# iotitan demo config (written by iotitan-demo; every program takes it with --config)
state_dir = {state}

[mqtt]
host = {host}
port = {port}
client_id = "iotitan-demo"
keep_alive = "5s"
reconnect_max = "1s"

[logger]
subscribe = ["#"]
exclude = ["$SYS/#"]

[syslog]
target = {target}
sources = [{sources}]

[stats]
schedule = "* * * * *"
topics = ["iotitan/home/+/+/+", "iotitan/adelaide/+/+/+"]
statistics = ["mean", "min", "max", "count"]

[alerts]
events_topic = "iotitan/alerts/events"

[[alerts.rule]]
name = "too hot"
topics = "iotitan/+/+/+/temperature"
high = {HIGH:.1}
hysteresis = 2.0

[[bridge.channel]]
id = {channel}
fields = {{ "{REPLAY_TOPIC}" = 1, "{REPLAY_TOPIC}_mean" = 2, "iotitan/home/living/dht22/temperature_mean" = 3 }}
status_topic = "iotitan/alerts/events"
min_interval = {min_interval}
max_interval = {max_interval}
"##,
        state = q(&dir.join("state").display().to_string()),
        host = q(&broker.host),
        port = broker.port,
        target = q(syslog_target),
        sources = sources.join(", "),
        channel = thingspeak.unwrap_or(DRY_RUN_CHANNEL),
        // A real channel gets ThingSpeak's free-account limit; a dry run shows batches sooner.
        min_interval = q(if thingspeak.is_some() { "15s" } else { "2s" }),
        max_interval = q(if thingspeak.is_some() { "1m" } else { "5s" }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, SyslogTarget};

    #[test]
    fn renders_a_valid_config() {
        let b = BrokerAddr {
            host: "127.0.0.1".into(),
            port: 41883,
        };
        let dir = Path::new("/tmp/x \"y\"/demo");
        let text = render(
            dir,
            &b,
            "unix:/tmp/x \"y\"/demo/log.sock",
            &["/tmp/s".into()],
            None,
        );
        let cfg = Config::parse(&text, "demo").unwrap();
        assert_eq!(cfg.mqtt.port, 41883);
        assert_eq!(
            cfg.syslog.target,
            SyslogTarget::Unix("/tmp/x \"y\"/demo/log.sock".into())
        );
        assert_eq!(cfg.state_dir, dir.join("state"));
        assert_eq!(cfg.alerts.rule[0].high, Some(HIGH));
        assert!(cfg.alerts.rule[0].topics.matches(REPLAY_TOPIC));
        assert!(cfg.stats.topics.matches(REPLAY_TOPIC));
        assert_eq!(cfg.bridge.channel[0].id, DRY_RUN_CHANNEL);
    }
}
