//! `POST /api/v1/commands`: publish a command and wait for the device to say it obeyed.
//!
//! Two forms (docs/HTTP.md): `{"topic", "payload"[, "await": {"topic", "payload"?, "timeout"?}]}`,
//! or `{"device": "plug7", "payload": "OFF"[, "timeout"]}` with the topics of
//! `[[http.device]]` (Tasmota: `cmnd/…/POWER` → `stat/…/POWER`). The acknowledgement topic is
//! subscribed *before* the command goes out, so a device that answers at once is not missed.
//! Without `await` the answer comes once the broker has the command (`acked_by` is null).
//!
//! Which answer counts: with an explicit `await.payload`, only that payload; for a device,
//! the payload sent (case-insensitive, as Tasmota answers `ON` to `on`) unless the command
//! is `TOGGLE`, where any state will do; otherwise any message on the topic.

use crate::config::{DeviceConfig, Dur, MAX_COMMAND_TIMEOUT};
use crate::topic::check_publish_topic;
use serde::Deserialize;
use std::time::Duration;

/// A parsed, checked command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// Where it is published.
    pub topic: String,
    /// What is published.
    pub payload: String,
    /// What to wait for, if anything.
    pub wait: Option<Await>,
}

/// The acknowledgement to wait for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Await {
    /// Topic (or filter) the device answers on.
    pub topic: String,
    /// The answer that counts; any when `None`.
    pub payload: Option<Expect>,
    /// How long to wait.
    pub timeout: Duration,
}

/// An expected answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// Exactly this.
    Exact(String),
    /// This, in any case.
    AnyCase(String),
}

impl Await {
    /// Whether `payload` is the awaited answer.
    pub fn accepts(&self, payload: &[u8]) -> bool {
        match &self.payload {
            None => true,
            Some(Expect::Exact(p)) => payload == p.as_bytes(),
            Some(Expect::AnyCase(p)) => payload.eq_ignore_ascii_case(p.as_bytes()),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    topic: Option<String>,
    device: Option<String>,
    payload: Option<serde_json::Value>,
    #[serde(rename = "await")]
    wait: Option<AwaitBody>,
    timeout: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AwaitBody {
    topic: String,
    payload: Option<serde_json::Value>,
    timeout: Option<String>,
}

/// Why a command was refused: (code, message), answered 400 (or 404 for an unknown device).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// 404 rather than 400.
    pub not_found: bool,
    /// The error code.
    pub code: &'static str,
    /// One sentence.
    pub message: String,
}

fn refused(code: &'static str, message: impl Into<String>) -> Refused {
    Refused {
        not_found: false,
        code,
        message: message.into(),
    }
}

/// A payload as text: strings as they are, numbers and booleans as JSON writes them.
fn text(v: &serde_json::Value, what: &str) -> Result<String, Refused> {
    match v {
        serde_json::Value::String(s) => Ok(s.clone()),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        serde_json::Value::Bool(b) => Ok(b.to_string()),
        _ => Err(refused(
            "bad_command",
            format!("{what} must be a string, a number or a boolean"),
        )),
    }
}

fn timeout(t: Option<&str>, default: Duration) -> Result<Duration, Refused> {
    let Some(t) = t else { return Ok(default) };
    let d = Dur::parse(t)
        .map_err(|e| refused("bad_command", format!("timeout: {e}")))?
        .get();
    if d.is_zero() || d > MAX_COMMAND_TIMEOUT {
        return Err(refused(
            "bad_command",
            format!(
                "timeout must be above zero and at most {}",
                Dur(MAX_COMMAND_TIMEOUT)
            ),
        ));
    }
    Ok(d)
}

/// Parse and check a command body.
pub fn parse(
    body: &[u8],
    devices: &[DeviceConfig],
    default_timeout: Duration,
) -> Result<Command, Refused> {
    let b: Body = serde_json::from_slice(body)
        .map_err(|e| refused("bad_json", format!("the body is not a command: {e}")))?;
    let payload = match &b.payload {
        Some(v) => text(v, "payload")?,
        None => return Err(refused("bad_command", "a command needs a \"payload\"")),
    };
    let cmd = match (b.topic, b.device) {
        (Some(topic), None) => {
            if b.timeout.is_some() {
                return Err(refused(
                    "bad_command",
                    "with \"topic\", give the timeout inside \"await\"",
                ));
            }
            let wait = match b.wait {
                None => None,
                Some(a) => {
                    crate::topic::TopicFilter::new(&a.topic)
                        .map_err(|e| refused("bad_topic", format!("await.topic: {e}")))?;
                    Some(Await {
                        payload: a
                            .payload
                            .as_ref()
                            .map(|p| text(p, "await.payload"))
                            .transpose()?
                            .map(Expect::Exact),
                        timeout: timeout(a.timeout.as_deref(), default_timeout)?,
                        topic: a.topic,
                    })
                }
            };
            Command {
                topic,
                payload,
                wait,
            }
        }
        (None, Some(name)) => {
            if b.wait.is_some() {
                return Err(refused(
                    "bad_command",
                    "a device's acknowledgement topic comes from the config; drop \"await\"",
                ));
            }
            let d = devices
                .iter()
                .find(|d| d.name == name)
                .ok_or_else(|| Refused {
                    not_found: true,
                    code: "unknown_device",
                    message: format!(
                        "no device {:?} in the config ([[http.device]])",
                        name.chars().take(100).collect::<String>()
                    ),
                })?;
            let expect =
                (!payload.eq_ignore_ascii_case("toggle")).then(|| Expect::AnyCase(payload.clone()));
            Command {
                topic: d.command_topic.clone(),
                wait: Some(Await {
                    topic: d.state_topic.clone(),
                    payload: expect,
                    timeout: timeout(b.timeout.as_deref(), default_timeout)?,
                }),
                payload,
            }
        }
        _ => {
            return Err(refused(
                "bad_command",
                "a command names either a \"topic\" or a \"device\"",
            ));
        }
    };
    check_publish_topic(&cmd.topic).map_err(|e| refused("bad_topic", e.to_string()))?;
    Ok(cmd)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn devices() -> Vec<DeviceConfig> {
        vec![DeviceConfig {
            name: "plug7".into(),
            command_topic: "b/plug7/cmnd/POWER".into(),
            state_topic: "b/plug7/stat/POWER".into(),
        }]
    }

    fn p(body: &str) -> Result<Command, Refused> {
        parse(body.as_bytes(), &devices(), Duration::from_secs(5))
    }

    #[test]
    fn device_form() {
        let c = p(r#"{"device": "plug7", "payload": "off"}"#).unwrap();
        assert_eq!(c.topic, "b/plug7/cmnd/POWER");
        let w = c.wait.unwrap();
        assert_eq!(w.topic, "b/plug7/stat/POWER");
        assert_eq!(w.timeout, Duration::from_secs(5));
        assert!(w.accepts(b"OFF") && !w.accepts(b"ON"));
        let c = p(r#"{"device": "plug7", "payload": "TOGGLE", "timeout": "2s"}"#).unwrap();
        let w = c.wait.unwrap();
        assert!(w.accepts(b"ON") && w.accepts(b"OFF"));
        assert_eq!(w.timeout, Duration::from_secs(2));
        let e = p(r#"{"device": "plug8", "payload": "ON"}"#).unwrap_err();
        assert!(e.not_found && e.code == "unknown_device", "{e:?}");
    }

    #[test]
    fn topic_form() {
        let c = p(r#"{"topic": "a/cmd", "payload": 1}"#).unwrap();
        assert_eq!(
            (c.topic.as_str(), c.payload.as_str(), c.wait),
            ("a/cmd", "1", None)
        );
        let c = p(r#"{"topic": "a/cmd", "payload": "go", "await": {"topic": "a/+/ack", "payload": "done", "timeout": "1500ms"}}"#).unwrap();
        let w = c.wait.unwrap();
        assert!(w.accepts(b"done") && !w.accepts(b"DONE"));
        assert_eq!(w.timeout, Duration::from_millis(1500));
    }

    #[test]
    fn refusals() {
        for (body, code) in [
            ("{", "bad_json"),
            (r#"{"topic": "a", "payload": "x", "qos": 2}"#, "bad_json"),
            (r#"{"topic": "a/#", "payload": "x"}"#, "bad_topic"),
            (r#"{"topic": "$SYS/x", "payload": "x"}"#, "bad_topic"),
            (r#"{"topic": "a"}"#, "bad_command"),
            (r#"{"payload": "x"}"#, "bad_command"),
            (
                r#"{"topic": "a", "device": "plug7", "payload": "x"}"#,
                "bad_command",
            ),
            (r#"{"topic": "a", "payload": {"x": 1}}"#, "bad_command"),
            (
                r#"{"topic": "a", "payload": "x", "await": {"topic": "a/#/b"}}"#,
                "bad_topic",
            ),
            (
                r#"{"topic": "a", "payload": "x", "await": {"topic": "b", "timeout": "1h"}}"#,
                "bad_command",
            ),
            (
                r#"{"topic": "a", "payload": "x", "await": {"topic": "b", "timeout": "5"}}"#,
                "bad_command",
            ),
            (
                r#"{"device": "plug7", "payload": "x", "await": {"topic": "b"}}"#,
                "bad_command",
            ),
        ] {
            let e = p(body).unwrap_err();
            assert_eq!(e.code, code, "{body}: {e:?}");
        }
    }
}
