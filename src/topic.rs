//! MQTT topic filters (`+`, `#`) as used by every `topics` key of the config.
//!
//! Matching follows MQTT 3.1.1 §4.7: `+` matches one level, `#` the rest (including the parent
//! level itself), and filters starting with a wildcard never match topics starting with `$`
//! (so `#` does not pull in `$SYS/…`).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A validated MQTT topic filter.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TopicFilter(String);

/// Why a string is not a valid topic filter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// The filter is empty.
    #[error("a topic filter must not be empty")]
    Empty,
    /// `#` somewhere other than as the whole last level.
    #[error("'#' must be the whole last level of a topic filter: {0:?}")]
    MisplacedHash(String),
    /// `+` sharing a level with other characters.
    #[error("'+' must be a whole level of a topic filter: {0:?}")]
    MisplacedPlus(String),
    /// A NUL character, which MQTT forbids.
    #[error("a topic filter must not contain NUL: {0:?}")]
    Nul(String),
    /// A character a broker refuses ([`refused_by_brokers`]).
    #[error("a topic filter must not hold a control character or a Unicode noncharacter: {0:?}")]
    Control(String),
}

/// Whether a broker refuses `c` in a topic or filter. MQTT 3.1.1 §1.5.3 says a topic
/// "SHOULD NOT" hold control characters (U+0001–U+001F, U+007F–U+009F) or Unicode
/// noncharacters, and that a receiver may close the connection of a client that sends them:
/// mosquitto does (its `mosquitto_validate_utf8`). A reading sent to such a topic over HTTP
/// made the daemon's whole connection drop, failing every request under way with it.
pub fn refused_by_brokers(c: char) -> bool {
    let cp = u32::from(c);
    c.is_control() || (0xFDD0..=0xFDEF).contains(&cp) || cp & 0xFFFE == 0xFFFE
}

impl TopicFilter {
    /// Validate `s` as a filter.
    pub fn new(s: &str) -> Result<Self, FilterError> {
        if s.is_empty() {
            return Err(FilterError::Empty);
        }
        if s.contains('\0') {
            return Err(FilterError::Nul(s.to_owned()));
        }
        if s.contains(refused_by_brokers) {
            return Err(FilterError::Control(s.to_owned()));
        }
        let levels: Vec<&str> = s.split('/').collect();
        for (i, level) in levels.iter().enumerate() {
            if level.contains('#') && (*level != "#" || i + 1 != levels.len()) {
                return Err(FilterError::MisplacedHash(s.to_owned()));
            }
            if level.contains('+') && *level != "+" {
                return Err(FilterError::MisplacedPlus(s.to_owned()));
            }
        }
        Ok(TopicFilter(s.to_owned()))
    }

    /// The filter text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the filter holds a wildcard.
    pub fn has_wildcards(&self) -> bool {
        self.0.contains(['+', '#'])
    }

    /// Whether `topic` matches this filter.
    pub fn matches(&self, topic: &str) -> bool {
        matches(&self.0, topic)
    }
}

/// Whether `topic` matches `filter` (the filter is assumed valid).
pub fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    // Everything else: no need to walk the levels (a read of `#` asks this on every line of a
    // million distinct topics).
    if filter == "#" {
        return true;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(fl), Some(tl)) if fl == tl => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Why a string is not a topic we publish to on someone else's behalf.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// The topic is empty.
    #[error("a topic must not be empty")]
    Empty,
    /// `+` or `#`: those are for subscribing, never for publishing.
    #[error("topic {0:?} holds a wildcard (+ or #); a reading goes to one plain topic")]
    Wildcard(String),
    /// `a//b`, `/a` or `a/`: MQTT allows it, but it is always a mistake in a sensor topic, and
    /// `+` filters then match surprising things.
    #[error("topic {0:?} has an empty level")]
    EmptyLevel(String),
    /// `$SYS/…` and the like belong to the broker.
    #[error("topic {0:?} starts with '$', which is reserved for the broker")]
    Dollar(String),
    /// Longer than MQTT's limit.
    #[error("topic is {0} bytes long; MQTT allows at most 65535")]
    TooLong(usize),
    /// A NUL character, which MQTT forbids.
    #[error("topic {0:?} contains NUL")]
    Nul(String),
    /// A character a broker refuses ([`refused_by_brokers`]).
    #[error("topic {0:?} holds a control character or a Unicode noncharacter")]
    Control(String),
}

/// `level` appended to a topic as one level: `/`, `+`, `#` and what brokers refuse (control
/// characters, Unicode noncharacters) written as `_`, an empty one as `_`. How a name from
/// outside (a device id, a Telegraf tag, a client id) becomes a topic level.
pub fn push_level(topic: &mut String, level: &str) {
    if level.is_empty() {
        topic.push('_');
        return;
    }
    topic.extend(level.chars().map(|c| match c {
        '/' | '+' | '#' => '_',
        c if refused_by_brokers(c) => '_',
        c => c,
    }));
}

/// The longest topic MQTT can carry (a two-byte length).
pub const MAX_TOPIC_BYTES: usize = 65_535;

/// Check a topic we publish for others (HTTP readings, commands, config topics): stricter than
/// MQTT, which allows empty levels and lets clients publish to `$` topics.
pub fn check_publish_topic(topic: &str) -> Result<(), TopicError> {
    if topic.is_empty() {
        return Err(TopicError::Empty);
    }
    if topic.len() > MAX_TOPIC_BYTES {
        return Err(TopicError::TooLong(topic.len()));
    }
    let shown = || {
        // Errors go back to clients and into logs: a huge topic is shown cut.
        let mut end = topic.len().min(200);
        while !topic.is_char_boundary(end) {
            end -= 1;
        }
        topic[..end].to_owned()
    };
    if topic.contains(['+', '#']) {
        return Err(TopicError::Wildcard(shown()));
    }
    if topic.contains('\0') {
        return Err(TopicError::Nul(shown()));
    }
    if topic.contains(refused_by_brokers) {
        return Err(TopicError::Control(shown()));
    }
    if topic.starts_with('$') {
        return Err(TopicError::Dollar(shown()));
    }
    if topic.split('/').any(str::is_empty) {
        return Err(TopicError::EmptyLevel(shown()));
    }
    Ok(())
}

impl fmt::Display for TopicFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for TopicFilter {
    type Err = FilterError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TopicFilter::new(s)
    }
}

impl Serialize for TopicFilter {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for TopicFilter {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        TopicFilter::new(&s).map_err(serde::de::Error::custom)
    }
}

/// One filter or a list of them: every `topics` key of the config takes either form.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filters(pub Vec<TopicFilter>);

impl Filters {
    /// Filters from strings; panics on an invalid one, so only for literals in code and tests.
    pub fn of(list: &[&str]) -> Self {
        Filters(
            list.iter()
                .map(|s| TopicFilter::new(s).expect("valid literal filter"))
                .collect(),
        )
    }

    /// Whether any filter matches `topic`.
    pub fn matches(&self, topic: &str) -> bool {
        self.0.iter().any(|f| f.matches(topic))
    }

    /// Whether there are no filters.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Iterate the filters.
    pub fn iter(&self) -> std::slice::Iter<'_, TopicFilter> {
        self.0.iter()
    }
}

/// Filters made to match many topics fast: the literal ones (no wildcard, such as the
/// dashboard's list of a page of series) in a hash set, the others tried one by one. A read
/// of a million distinct topics decides each one (the per-topic cache holds 65 536), so a
/// list of a hundred literal filters would cost a hundred comparisons a line.
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    exact: ahash::AHashSet<Box<[u8]>>,
    wild: Vec<TopicFilter>,
}

impl Matcher {
    /// A matcher of `filters`.
    pub fn new(filters: &Filters) -> Self {
        let mut m = Matcher::default();
        for f in filters.iter() {
            if f.as_str().contains(['+', '#']) {
                m.wild.push(f.clone());
            } else {
                m.exact.insert(f.as_str().as_bytes().into());
            }
        }
        m
    }

    /// Whether any filter matches `topic`.
    pub fn matches(&self, topic: &str) -> bool {
        self.exact.contains(topic.as_bytes()) || self.wild.iter().any(|f| f.matches(topic))
    }

    /// Whether the topic these bytes spell can match no filter, known without a UTF-8 pass:
    /// only the literal filters' set is looked at, so it answers only when there is no
    /// wildcard filter (then `false` means "ask [`matches`](Self::matches)").
    pub fn surely_not(&self, topic: &[u8]) -> bool {
        self.wild.is_empty() && !self.exact.contains(topic)
    }
}

impl Serialize for Filters {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Filters {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        let list = match OneOrMany::deserialize(d).map_err(|_| {
            serde::de::Error::custom("expected a topic filter or a list of topic filters")
        })? {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        };
        if list.is_empty() {
            return Err(serde::de::Error::custom(
                "the list of topic filters is empty",
            ));
        }
        list.iter()
            .map(|s| TopicFilter::new(s).map_err(serde::de::Error::custom))
            .collect::<Result<Vec<_>, _>>()
            .map(Filters)
    }
}

/// The group of `series` under `by=N`, written into `out`: its first N levels and its last
/// one, the measure (`office/floor1/room3/plug7/power` → `office/floor1/room3/power`), so
/// that a device's several measures (Tasmota's `SENSOR` gives `…/ENERGY/Total` and
/// `…/ENERGY/Power`) are summed apart; the whole name when it has at most N + 1 levels.
pub fn group_of<'a>(series: &'a str, by: usize, out: &'a mut String) -> &'a str {
    let Some((cut, _)) = series.match_indices('/').nth(by.saturating_sub(1)) else {
        return series;
    };
    let last = series.rfind('/').unwrap_or(cut);
    if by == 0 || last == cut {
        return series;
    }
    out.clear();
    out.push_str(&series[..cut]);
    out.push_str(&series[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        for ok in [
            "#", "+", "a/b", "a/+/c", "a/#", "+/+", "/", "a//b", "$SYS/#",
        ] {
            assert!(TopicFilter::new(ok).is_ok(), "{ok}");
        }
        assert_eq!(TopicFilter::new(""), Err(FilterError::Empty));
        for bad in ["a#", "a/#/b", "#/a", "a+", "a/b+/c", "++"] {
            assert!(TopicFilter::new(bad).is_err(), "{bad}");
        }
        assert!(matches!(TopicFilter::new("a\0"), Err(FilterError::Nul(_))));
        // What mosquitto closes the connection for: C0 and C1 controls, DEL, noncharacters.
        for bad in [
            "a\u{8}b",
            "a/\u{1f}",
            "\u{7f}",
            "a\u{96}",
            "\u{fdd0}",
            "x\u{fffe}",
            "\u{10ffff}",
        ] {
            assert!(
                matches!(TopicFilter::new(bad), Err(FilterError::Control(_))),
                "{bad:?}"
            );
            assert!(
                matches!(check_publish_topic(bad), Err(TopicError::Control(_))),
                "{bad:?}"
            );
        }
        for ok in [
            "a\u{a0}b",
            "é/ü",
            "\u{fdcf}",
            "\u{fdf0}",
            "\u{fffd}",
            "\u{1f600}",
        ] {
            assert!(
                TopicFilter::new(ok).is_ok() && check_publish_topic(ok).is_ok(),
                "{ok:?}"
            );
        }
    }

    #[test]
    fn matching() {
        let cases = [
            ("#", "a", true),
            ("#", "a/b/c", true),
            ("#", "$SYS/broker", false),
            ("+/b", "$SYS/b", false),
            ("$SYS/#", "$SYS/broker/load", true),
            ("a/#", "a", true),
            ("a/#", "a/b/c", true),
            ("a/#", "ab", false),
            ("a/+", "a/b", true),
            ("a/+", "a/b/c", false),
            ("a/+", "a/", true),
            ("a/+/c", "a/x/c", true),
            ("a/+/c", "a/x/d", false),
            ("+", "a", true),
            ("+", "a/b", false),
            ("+", "/a", false),
            ("+/+", "/a", true),
            ("a/b", "a/b", true),
            ("a/b", "a/b/c", false),
            ("a/b/c", "a/b", false),
            (
                "iotitan/+/+/+/temperature",
                "iotitan/home/up_bed1/dht11/temperature",
                true,
            ),
        ];
        for (f, t, want) in cases {
            assert_eq!(matches(f, t), want, "{f} vs {t}");
        }
    }

    #[test]
    fn publish_topics() {
        assert_eq!(check_publish_topic("a/b/c"), Ok(()));
        assert_eq!(check_publish_topic(""), Err(TopicError::Empty));
        for (bad, want) in [
            ("a/+/c", "wildcard"),
            ("a/#", "wildcard"),
            ("a//b", "empty level"),
            ("/a", "empty level"),
            ("a/", "empty level"),
            ("$SYS/x", "'$'"),
            ("a\0b", "NUL"),
        ] {
            let e = check_publish_topic(bad).unwrap_err().to_string();
            assert!(e.contains(want), "{bad}: {e}");
        }
        let long = "a".repeat(MAX_TOPIC_BYTES + 1);
        assert_eq!(
            check_publish_topic(&long),
            Err(TopicError::TooLong(MAX_TOPIC_BYTES + 1))
        );
        assert!(check_publish_topic(&long[1..]).is_ok());
    }

    #[test]
    fn filters_accept_one_or_many() {
        #[derive(Deserialize)]
        struct T {
            topics: Filters,
        }
        let one: T = toml::from_str(r#"topics = "a/#""#).unwrap();
        assert_eq!(one.topics, Filters::of(&["a/#"]));
        let many: T = toml::from_str(r#"topics = ["a/#", "b/+"]"#).unwrap();
        assert_eq!(many.topics, Filters::of(&["a/#", "b/+"]));
        assert!(toml::from_str::<T>(r#"topics = ["a#"]"#).is_err());
        assert!(toml::from_str::<T>(r#"topics = []"#).is_err());
        assert!(toml::from_str::<T>(r#"topics = 3"#).is_err());
    }

    #[test]
    fn a_matcher_matches_what_its_filters_do() {
        let filters = Filters::of(&["a/b", "a/+/c", "x/#", "a/b/c"]);
        let m = Matcher::new(&filters);
        for t in ["a/b", "a/x/c", "x", "x/y/z", "a/b/c", "a", "a/b/d", "b/a"] {
            assert_eq!(m.matches(t), filters.matches(t), "{t}");
        }
    }

    #[test]
    fn groups_are_a_prefix_and_the_measure() {
        let mut b = String::new();
        assert_eq!(group_of("o/f1/r3/plug7/power", 3, &mut b), "o/f1/r3/power");
        let mut b = String::new();
        assert_eq!(
            group_of("o/f1/r3/p/tele/SENSOR/ENERGY/Total", 3, &mut b),
            "o/f1/r3/Total"
        );
        for (series, by) in [("o/f1/r3/power", 3), ("o/f1", 3), ("o/f1/r3", 3), ("o", 1)] {
            let mut b = String::new();
            assert_eq!(group_of(series, by, &mut b), series, "{series} by {by}");
        }
    }
}
