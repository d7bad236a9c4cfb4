//! Config files of the tests: writing one, and the snippets several tests share (the
//! `[syslog]` section of an rsyslogd, the `[http]` section with its tokens, plugs and private
//! area). A broker's `[mqtt]` section comes from the broker: [`super::Mosquitto::mqtt_toml`].

use super::{Program, Rsyslogd};
use std::path::{Path, PathBuf};

/// A config file in `dir` with `text`; returns its path.
pub fn write_config(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("iotitan.toml");
    std::fs::write(&p, text).expect("write config");
    p
}

impl Rsyslogd {
    /// A `[syslog]` section sending records to this rsyslogd's unix socket.
    pub fn syslog_toml(&self) -> String {
        format!("[syslog]\ntarget = \"unix:{}\"\n", self.socket.display())
    }
}

/// An `[[http.token]]` of a test config, and the value the daemon is given for it (in
/// `IOTITAN_HTTP_TOKEN_<NAME>`, by [`Program::http_tokens`]).
pub struct HttpToken {
    pub name: &'static str,
    pub value: &'static str,
    pub scopes: &'static [&'static str],
    /// `topics`: the filters it may publish on (all, if `None`).
    pub topics: Option<&'static [&'static str]>,
    /// `rate`, such as `"2/min"`.
    pub rate: Option<&'static str>,
}

impl HttpToken {
    /// A token `name` with `scopes`, allowed every topic at any rate.
    pub const fn new(
        name: &'static str,
        value: &'static str,
        scopes: &'static [&'static str],
    ) -> HttpToken {
        HttpToken {
            name,
            value,
            scopes,
            topics: None,
            rate: None,
        }
    }

    /// Allowed only the topic filters `topics`.
    pub const fn topics(mut self, topics: &'static [&'static str]) -> HttpToken {
        self.topics = Some(topics);
        self
    }

    /// Allowed `rate` requests (`"2/min"`).
    pub const fn rate(mut self, rate: &'static str) -> HttpToken {
        self.rate = Some(rate);
        self
    }

    /// The environment variable the daemon reads this token's value from.
    pub fn var(&self) -> String {
        format!("IOTITAN_HTTP_TOKEN_{}", self.name.to_uppercase())
    }
}

/// The `[http]` section of the tests: listening on 127.0.0.1:`port`, `extra` keys (say
/// `request_timeout = "1s"`), the `tokens`, two plugs (plug1 and plug2, as `iotitan-sim fleet
/// --plugs 2` simulates them) and the private area `home` of HTTP.md.
pub fn http_toml(port: u16, extra: &str, tokens: &[HttpToken]) -> String {
    let mut text = format!("\n[http]\nlisten = \"127.0.0.1:{port}\"\n{extra}\n");
    for t in tokens {
        text.push_str(&format!(
            "\n[[http.token]]\nname = \"{}\"\nscopes = {:?}\n",
            t.name, t.scopes
        ));
        if let Some(topics) = t.topics {
            text.push_str(&format!("topics = {topics:?}\n"));
        }
        if let Some(rate) = t.rate {
            text.push_str(&format!("rate = \"{rate}\"\n"));
        }
    }
    text.push_str(
        r#"
[[http.device]]
name = "plug1"
command_topic = "iotitan/home/living/plug1/cmnd/POWER"
state_topic = "iotitan/home/living/plug1/stat/POWER"

[[http.device]]
name = "plug2"
command_topic = "iotitan/home/living/plug2/cmnd/POWER"
state_topic = "iotitan/home/living/plug2/stat/POWER"

[[http.private_area]]
name = "home"
polygon = [[138.59, -34.93], [138.61, -34.93], [138.61, -34.91], [138.59, -34.91]]
"#,
    );
    text
}

impl Program {
    /// The values of `tokens` in the environment, where `iotitan-http` reads them.
    pub fn http_tokens(mut self, tokens: &[HttpToken]) -> Program {
        for t in tokens {
            self = self.env(t.var(), t.value);
        }
        self
    }
}
