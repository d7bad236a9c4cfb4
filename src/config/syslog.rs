//! `[syslog]`: where the logger writes records and where stats reads them back.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// What `auto` stands for in `syslog.target` and `syslog.sources`: decided where the programs
/// run ([`crate::syslog::system`]), by the sockets that answer.
pub const AUTO: &str = "auto";

/// Syslog settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyslogConfig {
    /// Where records go.
    pub target: SyslogTarget,
    /// The wire format of records.
    pub format: SyslogFormat,
    /// The syslog identifier (tag); stats reads only records carrying it.
    pub identifier: String,
    /// Facility name (`local0` … `local7`, `user`, `daemon`, …).
    #[serde(deserialize_with = "facility")]
    pub facility: String,
    /// Host name written in network formats; defaults to the machine's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Where stats reads records: files (rotated siblings found), `journal`,
    /// `journal:NAMESPACE`, `-` for stdin, or `auto` (where the system's syslog keeps what
    /// `target = "auto"` wrote: see `syslog::system`).
    pub sources: Vec<String>,
}

fn facility<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    s.parse::<::syslog::Facility>()
        .map_err(|()| serde::de::Error::custom(format!("unknown syslog facility {s:?}")))?;
    Ok(s)
}

impl SyslogConfig {
    /// The facility as the syslog crate's type (validated at load).
    pub fn facility(&self) -> ::syslog::Facility {
        self.facility
            .parse()
            .unwrap_or(::syslog::Facility::LOG_LOCAL0)
    }
}

impl Default for SyslogConfig {
    fn default() -> Self {
        SyslogConfig {
            target: SyslogTarget::Auto,
            format: SyslogFormat::Rfc3164,
            identifier: "iotitan-logger".into(),
            facility: "local0".into(),
            hostname: None,
            sources: vec![AUTO.into()],
        }
    }
}

/// The syslog wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SyslogFormat {
    /// `<PRI>Mmm dd hh:mm:ss [host ]tag[pid]: msg` — what glibc's syslog() writes.
    Rfc3164,
    /// `<PRI>1 TIMESTAMP HOST APP PID MSGID - msg`.
    Rfc5424,
}

/// Where records are sent: `auto`, `unix:PATH`, `udp:HOST:PORT`, `tcp:HOST:PORT` or
/// `relp:HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyslogTarget {
    /// The system's own syslog, chosen by the sockets that answer at each connection attempt
    /// (`syslog::system`): rsyslog's socket where systemd runs rsyslog, else `/dev/log`.
    Auto,
    /// A local socket (datagram, or stream as fallback), like /dev/log.
    Unix(PathBuf),
    /// UDP to a remote or local syslog daemon.
    Udp(String),
    /// TCP with RFC 6587 octet-counting framing.
    Tcp(String),
    /// RELP (rsyslog's imrelp): the daemon acknowledges each record, so a restart loses none.
    Relp(String),
}

impl std::str::FromStr for SyslogTarget {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "invalid syslog target {s:?}: expected auto, unix:PATH, udp:HOST:PORT, \
                 tcp:HOST:PORT or relp:HOST:PORT"
            )
        };
        if s == AUTO {
            return Ok(SyslogTarget::Auto);
        }
        let (kind, rest) = s.split_once(':').ok_or_else(bad)?;
        match kind {
            "unix" if !rest.is_empty() => Ok(SyslogTarget::Unix(PathBuf::from(rest))),
            "udp" | "tcp" | "relp" => {
                let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
                if host.is_empty() || port.parse::<u16>().is_err() {
                    return Err(bad());
                }
                let rest = rest.to_owned();
                Ok(match kind {
                    "udp" => SyslogTarget::Udp(rest),
                    "tcp" => SyslogTarget::Tcp(rest),
                    _ => SyslogTarget::Relp(rest),
                })
            }
            _ => Err(bad()),
        }
    }
}

impl std::fmt::Display for SyslogTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SyslogTarget::Auto => f.write_str(AUTO),
            SyslogTarget::Unix(p) => write!(f, "unix:{}", p.display()),
            SyslogTarget::Udp(a) => write!(f, "udp:{a}"),
            SyslogTarget::Tcp(a) => write!(f, "tcp:{a}"),
            SyslogTarget::Relp(a) => write!(f, "relp:{a}"),
        }
    }
}

impl Serialize for SyslogTarget {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SyslogTarget {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!("auto".parse::<SyslogTarget>(), Ok(SyslogTarget::Auto));
        assert_eq!(SyslogTarget::Auto.to_string(), "auto");
        assert_eq!(SyslogConfig::default().target, SyslogTarget::Auto);
        assert_eq!(SyslogConfig::default().sources, ["auto"]);
        assert_eq!(
            "unix:/dev/log".parse::<SyslogTarget>(),
            Ok(SyslogTarget::Unix("/dev/log".into()))
        );
        assert_eq!(
            "udp:127.0.0.1:514".parse::<SyslogTarget>(),
            Ok(SyslogTarget::Udp("127.0.0.1:514".into()))
        );
        assert_eq!(
            "tcp:[::1]:601".parse::<SyslogTarget>(),
            Ok(SyslogTarget::Tcp("[::1]:601".into()))
        );
        assert_eq!(
            "relp:syslog.lan:2514".parse::<SyslogTarget>(),
            Ok(SyslogTarget::Relp("syslog.lan:2514".into()))
        );
        assert_eq!(
            SyslogTarget::Relp("h:2514".into()).to_string(),
            "relp:h:2514"
        );
        for bad in [
            "unix:",
            "udp:host",
            "tcp::5",
            "tcp:h:99999",
            "relp:h",
            "relp::2514",
            "file:/x",
            "dev/log",
            "Auto",
            "auto:",
        ] {
            assert!(bad.parse::<SyslogTarget>().is_err(), "{bad}");
        }
    }
}
