//! Durations in the config: strings with a unit (`"500ms"`, `"15s"`, `"10m"`, `"1h"`).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::time::Duration;

/// A duration written with a unit in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Dur(pub Duration);

impl Dur {
    /// From whole seconds.
    pub const fn secs(s: u64) -> Self {
        Dur(Duration::from_secs(s))
    }

    /// The std duration.
    pub fn get(self) -> Duration {
        self.0
    }

    /// Parse `"15s"`-style text. A bare number is refused: `"15"` could mean anything.
    pub fn parse(s: &str) -> Result<Self, String> {
        humantime::parse_duration(s.trim())
            .map(Dur)
            .map_err(|e| format!("invalid duration {s:?} ({e}); write it with a unit, like \"15s\", \"10m\" or \"500ms\""))
    }
}

impl std::fmt::Display for Dur {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl From<Dur> for Duration {
    fn from(d: Dur) -> Duration {
        d.0
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Dur::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(
            Dur::parse("500ms").unwrap().get(),
            Duration::from_millis(500)
        );
        assert_eq!(Dur::parse("15s").unwrap().get(), Duration::from_secs(15));
        assert_eq!(Dur::parse("10m").unwrap().get(), Duration::from_secs(600));
        assert_eq!(Dur::parse("1h").unwrap().get(), Duration::from_secs(3600));
        assert_eq!(
            Dur::parse("1h 30m").unwrap().get(),
            Duration::from_secs(5400)
        );
        assert!(Dur::parse("15").is_err());
        assert!(Dur::parse("soon").is_err());
        assert_eq!(
            Dur::parse(&Dur::secs(90).to_string()).unwrap(),
            Dur::secs(90)
        );
    }
}
