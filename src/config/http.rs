//! `[http]`: the `iotitan-http` daemon — where it listens, its access tokens, named devices for
//! commands and the private areas no location may be published from.
//!
//! Like the bridge's write keys, token values are deliberately *not* keys of this section: each
//! comes at start-up from `token_file`, the environment variable `IOTITAN_HTTP_TOKEN_<NAME>` or
//! the systemd credential `http-<name>.token` (see `http::auth`), so the config can be
//! world-readable and `check-config` has nothing to show but where each one comes from.

use super::Dur;
use crate::topic::Filters;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

/// HTTP daemon settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, try_from = "RawHttp")]
pub struct HttpConfig {
    /// Address and port to listen on; loopback by default (a LAN address is an explicit choice).
    pub listen: std::net::SocketAddr,
    /// Certificate chain (PEM) for HTTPS; with `tls_key`. Without both: plain HTTP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) for HTTPS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// Device-form readings land under `<ingest_prefix>/<device_id>/...`.
    pub ingest_prefix: String,
    /// Largest request body accepted; bigger ones get 413.
    pub max_body: ByteSize,
    /// How long a client may take to send a request (headers and body); a stalled one is
    /// answered 408 and its connection closed.
    pub request_timeout: Dur,
    /// Default wait for a device's acknowledgement of a command.
    pub command_timeout: Dur,
    /// Access tokens.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub token: Vec<TokenConfig>,
    /// Named devices for `POST /api/v1/commands` with `"device"`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub device: Vec<DeviceConfig>,
    /// Areas no location is published from.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub private_area: Vec<AreaConfig>,
    /// Most series one answer of the read API may hold: past it, `/aggregate`, `/history`,
    /// `/histogram` and `/top` answer 400 `too_many_series` (memory follows the answer).
    pub max_series: usize,
    /// Map tiles the dashboard draws a track on (`https://tile.example/{z}/{x}/{y}.png`);
    /// none by default, so the page fetches nothing from elsewhere unless told to. When set,
    /// the page's Content-Security-Policy lets images come from that origin, and only then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub map_tiles: Option<String>,
    /// The tiles' attribution, shown under the map (most tile servers require one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub map_attribution: Option<String>,
    /// `/metrics` without a token (a Prometheus on the same host, a private network); off:
    /// it takes a `read` token, as a bearer token in the scrape config.
    pub metrics_public: bool,
}

/// The origin (`https://host[:port]`) of a map tile URL template, checked: `http` or `https`,
/// a plain host, and `{z}`, `{x}` and `{y}` in its path. The origin goes into a
/// Content-Security-Policy and the template into image addresses, so nothing that could end a
/// policy's source list or an attribute is let through.
pub fn tiles_origin(url: &str) -> Result<&str, String> {
    let bad = |why: &str| {
        Err(format!(
            "http.map_tiles {url:?}: {why}; expected a URL like \
             \"https://tile.openstreetmap.org/{{z}}/{{x}}/{{y}}.png\""
        ))
    };
    let Some(rest) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    else {
        return bad("not http:// or https://");
    };
    let host_end = rest.find('/').unwrap_or(rest.len());
    let host = &rest[..host_end];
    let host_ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']');
    if host.is_empty() || !host.chars().all(host_ok) {
        return bad("not a plain host name or address");
    }
    let path = &rest[host_end..];
    let path_ok = |c: char| c.is_ascii_alphanumeric() || "/._-~{}%=&?@!$+*".contains(c);
    if !path.chars().all(path_ok) {
        return bad("a character that is not plain in a URL's path");
    }
    let mut fields = path
        .replace("{z}", "")
        .replace("{x}", "")
        .replace("{y}", "");
    for f in ["{z}", "{x}", "{y}"] {
        if !path.contains(f) {
            return bad(&format!("no {f}"));
        }
    }
    fields.retain(|c| c == '{' || c == '}');
    if !fields.is_empty() {
        return bad("placeholders other than {z}, {x} and {y}");
    }
    Ok(&url[..url.len() - path.len()])
}

/// `[http] max_series` by default: Loki's `max_query_series` is 500.
pub const DEFAULT_MAX_SERIES: usize = 1000;

/// The highest `max_series`: a million series is a read of gigabytes.
pub const MAX_MAX_SERIES: usize = 1_000_000;

impl Default for HttpConfig {
    fn default() -> Self {
        RawHttp::default()
            .try_into()
            .expect("the default [http] is valid")
    }
}

/// The unvalidated form of [`HttpConfig`]: serde reads this, then `try_from` checks the rules
/// that span several keys.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawHttp {
    listen: std::net::SocketAddr,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    ingest_prefix: String,
    max_body: ByteSize,
    request_timeout: Dur,
    command_timeout: Dur,
    token: Vec<TokenConfig>,
    device: Vec<DeviceConfig>,
    private_area: Vec<AreaConfig>,
    max_series: usize,
    map_tiles: Option<String>,
    map_attribution: Option<String>,
    metrics_public: bool,
}

impl Default for RawHttp {
    fn default() -> Self {
        RawHttp {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 8750)),
            tls_cert: None,
            tls_key: None,
            ingest_prefix: "iotitan/http".into(),
            max_body: ByteSize(1 << 20),
            request_timeout: Dur::secs(10),
            command_timeout: Dur::secs(5),
            token: Vec::new(),
            device: Vec::new(),
            private_area: Vec::new(),
            max_series: DEFAULT_MAX_SERIES,
            map_tiles: None,
            map_attribution: None,
            metrics_public: false,
        }
    }
}

/// The longest `command_timeout` (also the longest a request may ask for): an HTTP client
/// waiting longer than this has given up anyway.
pub const MAX_COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

impl TryFrom<RawHttp> for HttpConfig {
    type Error = String;

    fn try_from(raw: RawHttp) -> Result<Self, String> {
        if raw.tls_cert.is_some() != raw.tls_key.is_some() {
            return Err("http: set both tls_cert and tls_key for HTTPS, or neither".into());
        }
        crate::topic::check_publish_topic(&raw.ingest_prefix)
            .map_err(|e| format!("http.ingest_prefix: {e}"))?;
        if !(1..=MAX_MAX_SERIES).contains(&raw.max_series) {
            return Err(format!(
                "http.max_series must be 1 to {MAX_MAX_SERIES}, not {}",
                raw.max_series
            ));
        }
        if let Some(url) = &raw.map_tiles {
            tiles_origin(url)?;
        }
        if raw.max_body.0 == 0 {
            return Err("http.max_body must be above zero".into());
        }
        if raw.request_timeout.get().is_zero() {
            return Err("http.request_timeout must be above zero".into());
        }
        let ct = raw.command_timeout.get();
        if ct.is_zero() || ct > MAX_COMMAND_TIMEOUT {
            return Err(format!(
                "http.command_timeout must be above zero and at most {}",
                Dur(MAX_COMMAND_TIMEOUT)
            ));
        }
        let mut names = BTreeSet::new();
        let mut envs = BTreeSet::new();
        for t in &raw.token {
            if !names.insert(t.name.as_str()) {
                return Err(format!(
                    "http token {:?} is configured twice; token names must be unique",
                    t.name
                ));
            }
            // Names that differ only where the environment variable cannot tell them apart
            // would share one variable.
            if !envs.insert(token_env_name(&t.name)) {
                return Err(format!(
                    "http token {:?}: another token has the same environment variable {}",
                    t.name,
                    token_env_name(&t.name)
                ));
            }
        }
        let mut names = BTreeSet::new();
        for d in &raw.device {
            if !names.insert(d.name.as_str()) {
                return Err(format!("http device {:?} is configured twice", d.name));
            }
        }
        Ok(HttpConfig {
            listen: raw.listen,
            tls_cert: raw.tls_cert,
            tls_key: raw.tls_key,
            ingest_prefix: raw.ingest_prefix,
            max_body: raw.max_body,
            request_timeout: raw.request_timeout,
            command_timeout: raw.command_timeout,
            token: raw.token,
            device: raw.device,
            private_area: raw.private_area,
            max_series: raw.max_series,
            map_tiles: raw.map_tiles,
            map_attribution: raw.map_attribution,
            metrics_public: raw.metrics_public,
        })
    }
}

/// The environment variable holding token `name`'s value: `IOTITAN_HTTP_TOKEN_<NAME>`, the
/// name upper-cased with `-` turned into `_`.
pub fn token_env_name(name: &str) -> String {
    let upper: String = name
        .chars()
        .map(|c| match c {
            '-' => '_',
            c => c.to_ascii_uppercase(),
        })
        .collect();
    format!("IOTITAN_HTTP_TOKEN_{upper}")
}

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// `POST /api/v1/readings`.
    Ingest,
    /// The read endpoints and the dashboard.
    Read,
    /// `POST /api/v1/commands`.
    Command,
}

impl Scope {
    /// The name used in the config and in error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Read => "read",
            Scope::Command => "command",
        }
    }
}

/// One `[[http.token]]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// In logs and counters; the value never is. Letters, digits, `_` and `-`.
    #[serde(deserialize_with = "token_name")]
    pub name: String,
    /// Any of `ingest`, `read`, `command`.
    #[serde(deserialize_with = "scopes")]
    pub scopes: Vec<Scope>,
    /// The only topics this token may write or command (MQTT filters); all when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topics: Option<Filters>,
    /// File holding the token. Without it the value comes from `IOTITAN_HTTP_TOKEN_<NAME>` or
    /// `$CREDENTIALS_DIRECTORY/http-<name>.token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// Most requests per period (`"10/s"`, `"600/min"`); past it 429 with `Retry-After`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<Rate>,
}

fn token_name<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    if s.is_empty()
        || s.len() > 64
        || !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(serde::de::Error::custom(format!(
            "token name {s:?} must be 1 to 64 letters, digits, '_' or '-' \
             (it names an environment variable and a credential file)"
        )));
    }
    Ok(s)
}

fn scopes<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Scope>, D::Error> {
    let mut v = Vec::<Scope>::deserialize(d)?;
    if v.is_empty() {
        return Err(serde::de::Error::custom(
            "scopes is empty: give any of \"ingest\", \"read\", \"command\"",
        ));
    }
    v.sort();
    v.dedup();
    Ok(v)
}

/// A request rate: `count` requests per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests allowed per period (also the burst).
    pub count: u32,
    /// The period.
    pub per: Duration,
}

impl Rate {
    /// Parse `"10/s"`, `"600/min"`, `"100/h"`, `"5/10s"`.
    pub fn parse(s: &str) -> Result<Rate, String> {
        let bad = || {
            format!("invalid rate {s:?}: write requests per period, like \"10/s\" or \"600/min\"")
        };
        let (n, per) = s.trim().split_once('/').ok_or_else(bad)?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        let per = per.trim();
        let per = match per {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            "d" | "day" => Duration::from_secs(86400),
            other => Dur::parse(other).map_err(|_| bad())?.get(),
        };
        if count == 0 || per.is_zero() {
            return Err(format!(
                "rate {s:?} must allow at least one request per period"
            ));
        }
        Ok(Rate { count, per })
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.per.as_secs() {
            1 if self.per.subsec_nanos() == 0 => write!(f, "{}/s", self.count),
            60 if self.per.subsec_nanos() == 0 => write!(f, "{}/min", self.count),
            3600 if self.per.subsec_nanos() == 0 => write!(f, "{}/h", self.count),
            _ => write!(f, "{}/{}", self.count, Dur(self.per)),
        }
    }
}

impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Rate::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// A size in bytes: `"1MiB"`, `"512KiB"`, `"64kB"`, `"1000"` (bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// Parse a size with an optional unit (B, kB/KB = 1000, KiB = 1024, MB, MiB, GB, GiB).
    pub fn parse(s: &str) -> Result<ByteSize, String> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (n, unit) = t.split_at(split);
        let bad = || format!("invalid size {s:?}; write it like \"1MiB\", \"512KiB\" or \"64kB\"");
        let n: u64 = n.parse().map_err(|_| bad())?;
        let mult: u64 = match unit.trim() {
            "" | "B" => 1,
            "kB" | "KB" => 1000,
            "KiB" => 1 << 10,
            "MB" => 1_000_000,
            "MiB" => 1 << 20,
            "GB" => 1_000_000_000,
            "GiB" => 1 << 30,
            _ => return Err(bad()),
        };
        n.checked_mul(mult).map(ByteSize).ok_or_else(bad)
    }
}

impl std::fmt::Display for ByteSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0;
        for (unit, size) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
            if n >= size && n.is_multiple_of(size) {
                return write!(f, "{}{unit}", n / size);
            }
        }
        write!(f, "{n}B")
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Number(u64),
        }
        match Raw::deserialize(d)
            .map_err(|_| serde::de::Error::custom("expected a size like \"1MiB\""))?
        {
            Raw::Text(s) => ByteSize::parse(&s).map_err(serde::de::Error::custom),
            Raw::Number(n) => Ok(ByteSize(n)),
        }
    }
}

/// One `[[http.device]]`: a name for a command topic and the topic its state comes back on
/// (Tasmota: `cmnd/<x>/POWER` and `stat/<x>/POWER`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceConfig {
    /// The name requests use.
    pub name: String,
    /// Where commands are published.
    #[serde(deserialize_with = "plain_topic")]
    pub command_topic: String,
    /// Where the device answers with its new state.
    #[serde(deserialize_with = "plain_topic")]
    pub state_topic: String,
}

fn plain_topic<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    crate::topic::check_publish_topic(&s).map_err(serde::de::Error::custom)?;
    Ok(s)
}

/// One `[[private_area]]` (or `[[http.private_area]]`): a polygon of `[longitude, latitude]`
/// points (WGS84), closed or not.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AreaConfig {
    /// For logs.
    pub name: String,
    /// At least three corners.
    #[serde(deserialize_with = "polygon")]
    pub polygon: Vec<[f64; 2]>,
}

/// One `[[location]]`: MQTT payloads on `topics` are JSON objects with a latitude and a
/// longitude at these field paths (`a.b` reaches into objects). OwnTracks' form
/// ([`LocationConfig::owntracks`]) is always known.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LocationConfig {
    /// Topic filters.
    pub topics: crate::topic::Filters,
    /// The latitude's field path.
    pub latitude: String,
    /// The longitude's field path.
    pub longitude: String,
}

impl LocationConfig {
    /// OwnTracks' MQTT mode: `owntracks/<user>/<device>`, `lat` and `lon`.
    pub fn owntracks() -> Self {
        LocationConfig {
            topics: crate::topic::Filters::of(&["owntracks/#"]),
            latitude: "lat".into(),
            longitude: "lon".into(),
        }
    }
}

fn polygon<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<[f64; 2]>, D::Error> {
    let v = Vec::<[f64; 2]>::deserialize(d)?;
    for [lon, lat] in &v {
        let lon_ok = lon.is_finite() && (-180.0..=180.0).contains(lon);
        let lat_ok = lat.is_finite() && (-90.0..=90.0).contains(lat);
        if !(lon_ok && lat_ok) {
            return Err(serde::de::Error::custom(format!(
                "polygon point [{lon}, {lat}] is not [longitude, latitude] in degrees \
                 (longitude -180..180, latitude -90..90)"
            )));
        }
    }
    let distinct: BTreeSet<(u64, u64)> =
        v.iter().map(|[a, b]| (a.to_bits(), b.to_bits())).collect();
    if distinct.len() < 3 {
        return Err(serde::de::Error::custom(
            "a private area's polygon needs at least three distinct corners",
        ));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tile_url_gives_its_origin_or_is_refused() {
        assert_eq!(
            tiles_origin("https://tile.openstreetmap.org/{z}/{x}/{y}.png"),
            Ok("https://tile.openstreetmap.org")
        );
        assert_eq!(
            tiles_origin("http://127.0.0.1:8080/tiles/{z}/{x}/{y}.png?key=a"),
            Ok("http://127.0.0.1:8080")
        );
        for bad in [
            "tile.openstreetmap.org/{z}/{x}/{y}.png",
            "ftp://a/{z}/{x}/{y}",
            "https://a/{z}/{x}.png",
            "https://a/{s}/{z}/{x}/{y}.png",
            "https://a b/{z}/{x}/{y}",
            "https://a;script-src */{z}/{x}/{y}",
            "https:///{z}/{x}/{y}",
            "https://a/{z}/{x}/{y}\"onerror=",
            "https://a/{z}/{x}/{y}' *",
        ] {
            assert!(tiles_origin(bad).is_err(), "{bad}");
        }
        // In a config: refused when it is loaded, naming the key.
        let bad = "[http]\nmap_tiles = \"https://a/{z}/{x}.png\"\n";
        let e = crate::config::Config::parse(bad, "test")
            .unwrap_err()
            .to_string();
        assert!(e.contains("http.map_tiles") && e.contains("no {y}"), "{e}");
        let good = "[http]\nmap_tiles = \"https://a/{z}/{x}/{y}.png\"\n";
        assert!(crate::config::Config::parse(good, "test").is_ok());
    }
    use crate::config::{Config, ConfigError};

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, "t.toml").map_err(|e| match e {
            ConfigError::Invalid { line, message, .. } => format!("{line}: {message}"),
            other => other.to_string(),
        })
    }

    const TOKEN: &str = "[[http.token]]\nname = \"phone\"\nscopes = [\"ingest\"]\n";

    #[test]
    fn defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.http.listen.to_string(), "127.0.0.1:8750");
        assert_eq!(c.http.ingest_prefix, "iotitan/http");
        assert_eq!(c.http.max_body, ByteSize(1 << 20));
        assert_eq!(c.http.command_timeout, Dur::secs(5));
        assert!(c.http.token.is_empty());
    }

    #[test]
    fn sizes_and_rates() {
        assert_eq!(ByteSize::parse("1MiB"), Ok(ByteSize(1 << 20)));
        assert_eq!(ByteSize::parse("64kB"), Ok(ByteSize(64_000)));
        assert_eq!(ByteSize::parse("100"), Ok(ByteSize(100)));
        assert!(ByteSize::parse("1 parsec").is_err());
        assert!(ByteSize::parse("99999999999GiB").is_err());
        assert_eq!(ByteSize(1 << 20).to_string(), "1MiB");
        assert_eq!(ByteSize(1500).to_string(), "1500B");
        let r = Rate::parse("10/s").unwrap();
        assert_eq!((r.count, r.per), (10, Duration::from_secs(1)));
        assert_eq!(Rate::parse("600/min").unwrap().per, Duration::from_secs(60));
        assert_eq!(Rate::parse("5/10s").unwrap().per, Duration::from_secs(10));
        for bad in ["10", "0/s", "x/s", "10/fortnight", "10/0s"] {
            assert!(Rate::parse(bad).is_err(), "{bad}");
        }
        for s in ["10/s", "600/min", "3/h"] {
            assert_eq!(Rate::parse(s).unwrap().to_string(), s);
        }
    }

    #[test]
    fn tokens() {
        let c = parse(&format!(
            "{TOKEN}topics = \"iotitan/http/phone1/#\"\nrate = \"10/s\"\n"
        ))
        .unwrap();
        let t = &c.http.token[0];
        assert_eq!(t.scopes, vec![Scope::Ingest]);
        assert!(
            t.topics
                .as_ref()
                .unwrap()
                .matches("iotitan/http/phone1/battery/level")
        );
        let e = parse(&format!("{TOKEN}{TOKEN}")).unwrap_err();
        assert!(e.contains("twice"), "{e}");
        let e = parse("[[http.token]]\nname = \"a b\"\nscopes = [\"read\"]\n").unwrap_err();
        assert!(e.starts_with("2: ") && e.contains("letters"), "{e}");
        let e = parse("[[http.token]]\nname = \"a\"\nscopes = [\"write\"]\n").unwrap_err();
        assert!(e.starts_with("3: "), "{e}");
        let e = parse("[[http.token]]\nname = \"a\"\nscopes = []\n").unwrap_err();
        assert!(e.contains("scopes is empty"), "{e}");
        let e = parse(&format!("{TOKEN}token = \"inline\"\n")).unwrap_err();
        assert!(e.starts_with("4: ") && e.contains("token"), "{e}");
        let e = parse(
            "[[http.token]]\nname = \"a-b\"\nscopes = [\"read\"]\n\
             [[http.token]]\nname = \"a_b\"\nscopes = [\"read\"]\n",
        )
        .unwrap_err();
        assert!(e.contains("IOTITAN_HTTP_TOKEN_A_B"), "{e}");
        assert_eq!(token_env_name("phone-1"), "IOTITAN_HTTP_TOKEN_PHONE_1");
    }

    #[test]
    fn cross_key_rules() {
        let cases = [
            ("[http]\ntls_cert = \"/c\"\n", "tls_key"),
            ("[http]\ningest_prefix = \"a/+\"\n", "ingest_prefix"),
            ("[http]\ningest_prefix = \"\"\n", "ingest_prefix"),
            ("[http]\nmax_body = 0\n", "max_body"),
            ("[http]\ncommand_timeout = \"10m\"\n", "command_timeout"),
            ("[http]\nlisten = \"localhost\"\n", "address"),
            (
                "[[http.device]]\nname = \"p\"\ncommand_topic = \"a/#\"\nstate_topic = \"b\"\n",
                "wildcard",
            ),
            (
                "[[http.private_area]]\nname = \"h\"\npolygon = [[1.0, 2.0], [1.0, 2.0], [3.0, 4.0]]\n",
                "three distinct",
            ),
            (
                "[[http.private_area]]\nname = \"h\"\npolygon = [[-34.9, 138.6], [1.0, 2.0], [3.0, 4.0]]\n",
                "longitude",
            ),
        ];
        for (text, needle) in cases {
            let e = parse(text).unwrap_err();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn printed_config_parses_back() {
        let c = parse(&format!(
            "{TOKEN}rate = \"600/min\"\n[[http.private_area]]\nname = \"home\"\n\
             polygon = [[138.59, -34.93], [138.61, -34.93], [138.61, -34.91]]\n"
        ))
        .unwrap();
        let again = parse(&c.to_toml()).unwrap();
        assert_eq!(c.to_toml(), again.to_toml());
    }
}
