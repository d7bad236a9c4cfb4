//! `[alerts]` and `[[alerts.rule]]`: what `iotitan-alerts` watches.
//!
//! Rules are checked while they are deserialized (`#[serde(try_from = ...)]`), so a rule that
//! can never fire, or thresholds in the wrong order, are reported with the `file:line:col` of
//! the rule, like any other config error, and the runtime never sees an invalid rule.

use super::Dur;
use crate::topic::Filters;
use serde::{Deserialize, Serialize};

/// Alerts settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(try_from = "RawAlerts")]
pub struct AlertsConfig {
    /// One JSON event per transition is published here.
    pub events_topic: String,
    /// At most one transition per rule and topic per this interval (flapping guard); the last
    /// state is published once the interval has passed.
    pub min_interval: Dur,
    /// Most series tracked at once: a flood of new topics matching a wildcard rule is refused
    /// (and counted) beyond it instead of growing memory without bound.
    pub max_series: usize,
    /// The rules.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rule: Vec<RuleConfig>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            events_topic: "iotitan/alerts/events".into(),
            min_interval: Dur::secs(0),
            max_series: 10_000,
            rule: Vec::new(),
        }
    }
}

/// `[alerts]` as written, before the checks that need all of it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawAlerts {
    events_topic: String,
    min_interval: Dur,
    max_series: usize,
    rule: Vec<RuleConfig>,
}

impl Default for RawAlerts {
    fn default() -> Self {
        let d = AlertsConfig::default();
        RawAlerts {
            events_topic: d.events_topic,
            min_interval: d.min_interval,
            max_series: d.max_series,
            rule: d.rule,
        }
    }
}

impl TryFrom<RawAlerts> for AlertsConfig {
    type Error = String;

    fn try_from(raw: RawAlerts) -> Result<Self, String> {
        check_topic_name("alerts.events_topic", &raw.events_topic)?;
        if raw.max_series == 0 {
            return Err("alerts.max_series must be at least 1".into());
        }
        for (i, rule) in raw.rule.iter().enumerate() {
            if raw.rule[..i].iter().any(|r| r.name == rule.name) {
                return Err(format!(
                    "two alert rules are named {:?}: names must be unique, they identify the rule in events and logs",
                    rule.name
                ));
            }
        }
        Ok(AlertsConfig {
            events_topic: raw.events_topic,
            min_interval: raw.min_interval,
            max_series: raw.max_series,
            rule: raw.rule,
        })
    }
}

/// One `[[alerts.rule]]`, validated: it has at least one of `low`, `high`, `stale_after`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(try_from = "RawRule")]
pub struct RuleConfig {
    /// A name for logs and events; defaults to the topics, comma-separated.
    pub name: String,
    /// Series the rule watches: matched against the topic, or `<topic>/<field>` for JSON
    /// payloads (see `[[payload.json]]`).
    pub topics: Filters,
    /// Alert (`_alert_lo`) when below.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub low: Option<f64>,
    /// Alert (`_alert_hi`) when above.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub high: Option<f64>,
    /// An alert clears only once the value is back inside by this margin.
    pub hysteresis: f64,
    /// The value must stay out of range this long before the alert goes on.
    pub hold: Dur,
    /// No reading for this long turns the stale alert on; the next reading clears it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stale_after: Option<Dur>,
    /// A command published to a device on each transition of a range alert.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<ActionConfig>,
}

/// `[[alerts.rule]]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(default)]
    name: Option<String>,
    topics: Filters,
    #[serde(default)]
    low: Option<f64>,
    #[serde(default)]
    high: Option<f64>,
    #[serde(default)]
    hysteresis: f64,
    #[serde(default)]
    hold: Dur,
    #[serde(default)]
    stale_after: Option<Dur>,
    #[serde(default)]
    action: Option<ActionConfig>,
}

impl TryFrom<RawRule> for RuleConfig {
    type Error = String;

    fn try_from(raw: RawRule) -> Result<Self, String> {
        let name = match raw.name {
            Some(n) if n.trim().is_empty() => {
                return Err("an alert rule name must not be empty".into());
            }
            Some(n) => n,
            None => raw
                .topics
                .iter()
                .map(|f| f.as_str())
                .collect::<Vec<_>>()
                .join(","),
        };
        let what = format!("alert rule {name:?}");
        if raw.low.is_none() && raw.high.is_none() && raw.stale_after.is_none() {
            return Err(format!(
                "{what} has nothing to check: give it low, high or stale_after"
            ));
        }
        for (key, v) in [("low", raw.low), ("high", raw.high)] {
            if v.is_some_and(|v| !v.is_finite()) {
                return Err(format!("{what}: {key} must be a finite number"));
            }
        }
        if !raw.hysteresis.is_finite() || raw.hysteresis < 0.0 {
            return Err(format!(
                "{what}: hysteresis must be a number ≥ 0, got {}",
                raw.hysteresis
            ));
        }
        if let (Some(low), Some(high)) = (raw.low, raw.high) {
            if low >= high {
                return Err(format!("{what}: low ({low}) must be below high ({high})"));
            }
            // Otherwise clearing one alert would need a value that sets the other.
            if raw.hysteresis >= high - low {
                return Err(format!(
                    "{what}: hysteresis ({}) must be smaller than high - low ({})",
                    raw.hysteresis,
                    high - low
                ));
            }
        }
        if raw.stale_after.is_some_and(|d| d.get().is_zero()) {
            return Err(format!("{what}: stale_after must be longer than 0s"));
        }
        if raw.low.is_none()
            && raw.high.is_none()
            && (raw.hysteresis > 0.0 || !raw.hold.get().is_zero())
        {
            return Err(format!(
                "{what}: hysteresis and hold apply to low and high, and the rule has neither"
            ));
        }
        if let Some(a) = &raw.action {
            check_topic_name(&format!("{what}: action.topic"), &a.topic)?;
            if a.on.is_none() && a.off.is_none() {
                return Err(format!(
                    "{what}: the action sends nothing: give it on, off or both"
                ));
            }
        }
        Ok(RuleConfig {
            name,
            topics: raw.topics,
            low: raw.low,
            high: raw.high,
            hysteresis: raw.hysteresis,
            hold: raw.hold,
            stale_after: raw.stale_after,
            action: raw.action,
        })
    }
}

/// `action = { topic, on, off }`: a command to a device, published (QoS 1, not retained:
/// a command is an event, not a state a device should find again after a reboot) when a
/// range alert (`high`/`low`) of the rule goes on or off. Stale alerts do not act: a silent
/// sensor says nothing about the room.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ActionConfig {
    /// The device's command topic.
    pub topic: String,
    /// Payload sent when the alert goes on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on: Option<String>,
    /// Payload sent when the alert goes off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub off: Option<String>,
}

/// A topic we publish to must be a plain topic name: no wildcards, not empty, no NUL.
fn check_topic_name(what: &str, topic: &str) -> Result<(), String> {
    if topic.is_empty() || topic.contains(['+', '#', '\0']) {
        return Err(format!(
            "{what} must be a topic name without wildcards, got {topic:?}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigError};

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, "t.toml")
    }

    fn err(text: &str) -> (usize, String) {
        match parse(text) {
            Err(ConfigError::Invalid { line, message, .. }) => (line, message),
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn a_full_rule() {
        let c = parse(
            r#"
[alerts]
min_interval = "1m"
[[alerts.rule]]
name = "hot"
topics = ["iotitan/+/+/+/temperature"]
low = 5.0
high = 30
hysteresis = 0.5
hold = "30s"
stale_after = "10m"
action = { topic = "iotitan/home/fan/cmd", on = "1", off = "0" }
"#,
        )
        .unwrap();
        let r = &c.alerts.rule[0];
        assert_eq!(r.name, "hot");
        assert_eq!((r.low, r.high, r.hysteresis), (Some(5.0), Some(30.0), 0.5));
        assert_eq!(r.hold, Dur::secs(30));
        assert_eq!(r.stale_after, Some(Dur::secs(600)));
        assert_eq!(r.action.as_ref().unwrap().on.as_deref(), Some("1"));
        assert_eq!(c.alerts.min_interval, Dur::secs(60));
        // check-config prints it back in a form that parses to the same rule.
        let again = parse(&c.to_toml()).unwrap();
        assert_eq!(again.alerts.rule, c.alerts.rule);
    }

    use super::Dur;

    #[test]
    fn the_name_defaults_to_the_topics() {
        let c =
            parse("[[alerts.rule]]\ntopics = [\"a/b\", \"c/#\"]\nstale_after = \"1m\"\n").unwrap();
        assert_eq!(c.alerts.rule[0].name, "a/b,c/#");
    }

    #[test]
    fn invalid_rules_are_located() {
        let cases = [
            ("topics = \"a\"\n", "nothing to check"),
            ("topics = \"a\"\nlow = 3\nhigh = 3\n", "must be below high"),
            ("topics = \"a\"\nlow = 10\nhigh = 3\n", "must be below high"),
            ("topics = \"a\"\nhigh = 3\nhysteresis = -1\n", "hysteresis"),
            ("topics = \"a\"\nhigh = nan\n", "finite"),
            (
                "topics = \"a\"\nlow = 0\nhigh = 2\nhysteresis = 2\n",
                "smaller than high - low",
            ),
            ("topics = \"a\"\nstale_after = \"0s\"\n", "longer than 0s"),
            (
                "topics = \"a\"\nstale_after = \"1m\"\nhold = \"1s\"\n",
                "neither",
            ),
            (
                "topics = \"a\"\nhigh = 1\naction = { topic = \"a/+\", on = \"1\" }\n",
                "wildcards",
            ),
            (
                "topics = \"a\"\nhigh = 1\naction = { topic = \"d\" }\n",
                "sends nothing",
            ),
            ("topics = \"a\"\nhigh = 1\nname = \" \"\n", "empty"),
            ("topics = \"a\"\nhigh = 1\nhigh_ = 2\n", "high_"),
            ("topics = \"a/#/b\"\nhigh = 1\n", "#"),
        ];
        for (body, want) in cases {
            let text = format!("state_dir = \"/x\"\n\n[[alerts.rule]]\n{body}");
            let (line, msg) = err(&text);
            assert!(msg.contains(want), "{body:?}: {msg}");
            assert!(line >= 3, "{body:?}: line {line}");
        }
    }

    #[test]
    fn invalid_alerts_sections_are_located() {
        let (line, msg) = err("\n[alerts]\nevents_topic = \"a/#\"\n");
        assert!(msg.contains("wildcards"), "{msg}");
        assert!(line >= 2);
        let (_, msg) = err(
            "[[alerts.rule]]\nname = \"x\"\ntopics = \"a\"\nhigh = 1\n[[alerts.rule]]\nname = \"x\"\ntopics = \"b\"\nlow = 1\n",
        );
        assert!(msg.contains("unique"), "{msg}");
        let (line, msg) = err("[alerts]\nmin_intervall = \"1s\"\n");
        assert_eq!(line, 2);
        assert!(msg.contains("min_intervall"), "{msg}");
    }

    #[test]
    fn the_commented_example_rules_are_valid() {
        let text = include_str!("../../config/iotitan.toml");
        let start = text.find("# [[alerts.rule]]").expect("an example rule");
        let rules: String = text[start..]
            .lines()
            .take_while(|l| l.starts_with('#'))
            .map(|l| l.strip_prefix('#').unwrap_or(l).trim_start())
            .filter(|l| !l.starts_with('…'))
            .map(|l| format!("{l}\n"))
            .collect();
        let c = parse(&rules).unwrap_or_else(|e| panic!("{e}\n{rules}"));
        assert_eq!(c.alerts.rule.len(), 2);
        assert_eq!(c.alerts.rule[0].hysteresis, 0.5);
    }

    #[test]
    fn defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.alerts.events_topic, "iotitan/alerts/events");
        assert_eq!(c.alerts.min_interval, Dur::secs(0));
        assert!(c.alerts.rule.is_empty());
    }
}
