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

/// The name of the dashboard's token (`[[http.token]]`).
pub const HTTP_TOKEN: &str = "demo";

/// The simulated smart plugs the dashboard's on/off buttons switch: the first answers its
/// commands, the second never does (the page shows the timeout).
pub const PLUGS: [&str; 2] = ["iotitan/home/living/plug1", "iotitan/home/kitchen/plug2"];

/// Where iotitan-http listens and where its one token is.
#[derive(Debug, Clone)]
pub struct Http {
    /// The address bound for the dashboard.
    pub listen: std::net::SocketAddr,
    /// The file holding the demo token.
    pub token_file: std::path::PathBuf,
}

/// The demo config as TOML.
///
/// `syslog_target` and `sources` say where records go and are read back; `thingspeak`
/// names a channel to really write to (its key comes from the environment), else the bridge
/// runs dry. The dashboard's token may read and switch the demo's plugs, nothing else.
pub fn render(
    dir: &Path,
    broker: &BrokerAddr,
    syslog_target: &str,
    sources: &[String],
    thingspeak: Option<u64>,
    http: &Http,
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
# The sensors' attributes by name: a filter ending in + would take the alerts' on/off states
# (`…/temperature_alert_hi`) for readings too.
topics = ["iotitan/home/+/+/temperature", "iotitan/home/+/+/humidity", "iotitan/home/+/+/pressure", "iotitan/home/+/+/motion", "iotitan/adelaide/+/+/temperature"]
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

[http]
listen = "{listen}"
command_timeout = "3s"

[[http.token]]
name = "{HTTP_TOKEN}"
scopes = ["read", "command"]
topics = ["iotitan/home/+/+/cmnd/POWER"]
token_file = {token_file}

[[http.device]]
name = "plug1"
command_topic = "{plug1}/cmnd/POWER"
state_topic = "{plug1}/stat/POWER"

[[http.device]]
name = "plug2"
command_topic = "{plug2}/cmnd/POWER"
state_topic = "{plug2}/stat/POWER"

# The office's smart plugs (iotitan-sim office): their documents, and office hours, for
# /api/v1/aggregate?topics=office/%23&every=1h&by=3&stats=increase,integral&outside=office
{office_rules}
[[calendar]]
name = "office"
hours = ["Mon-Fri 08:00-18:00"]
"##,
        office_rules = crate::sim::office::PAYLOAD_RULES,
        state = q(&dir.join("state").display().to_string()),
        host = q(&broker.host),
        port = broker.port,
        target = q(syslog_target),
        sources = sources.join(", "),
        channel = thingspeak.unwrap_or(DRY_RUN_CHANNEL),
        // A real channel gets ThingSpeak's free-account limit; a dry run shows batches sooner.
        min_interval = q(if thingspeak.is_some() { "15s" } else { "2s" }),
        max_interval = q(if thingspeak.is_some() { "1m" } else { "5s" }),
        listen = http.listen,
        token_file = q(&http.token_file.display().to_string()),
        plug1 = PLUGS[0],
        plug2 = PLUGS[1],
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
            &Http {
                listen: "127.0.0.1:8750".parse().unwrap(),
                token_file: dir.join("http-demo.token"),
            },
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
        assert!(
            !cfg.stats
                .topics
                .matches(&format!("{REPLAY_TOPIC}_alert_hi"))
        );
        assert_eq!(cfg.bridge.channel[0].id, DRY_RUN_CHANNEL);
        assert_eq!(cfg.http.listen.port(), 8750);
        assert_eq!(
            cfg.http.token[0].token_file.as_deref(),
            Some(dir.join("http-demo.token").as_path())
        );
        assert_eq!(cfg.http.device.len(), 2);
    }
}
