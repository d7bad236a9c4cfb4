//! `[energy]`: how the energy statistics read the curve through a series' readings; and
//! `[[calendar]]`: named hours of the week (`within=office`, `outside=office`).

use crate::calendar::{Calendar, Hours};
use crate::config::Dur;
use serde::{Deserialize, Deserializer, Serialize};

/// Energy settings (`increase`, `integral`, `twmean`, `coverage`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnergyConfig {
    /// How far before a range its curve is looked for: the last reading before the range sets
    /// a meter's baseline and opens the first interval, so that ranges side by side add up.
    /// At most a day.
    #[serde(deserialize_with = "lookback")]
    pub lookback: Dur,
    /// Readings further apart than this are a gap, not a straight line: the time between
    /// them is not integrated. From a second to a day.
    #[serde(deserialize_with = "max_gap")]
    pub max_gap: Dur,
}

impl Default for EnergyConfig {
    fn default() -> Self {
        EnergyConfig {
            lookback: Dur::secs(3600),
            max_gap: Dur::secs(15 * 60),
        }
    }
}

const DAY: Dur = Dur::secs(86_400);

fn within<'de, D: Deserializer<'de>>(d: D, key: &str, min: Dur) -> Result<Dur, D::Error> {
    let v = Dur::deserialize(d)?;
    if v > DAY || v < min {
        return Err(serde::de::Error::custom(format!(
            "{key} {v} must be from {min} to {DAY}"
        )));
    }
    Ok(v)
}

fn lookback<'de, D: Deserializer<'de>>(d: D) -> Result<Dur, D::Error> {
    within(d, "lookback", Dur::secs(0))
}

fn max_gap<'de, D: Deserializer<'de>>(d: D) -> Result<Dur, D::Error> {
    within(d, "max_gap", Dur::secs(1))
}

/// One `[[calendar]]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarConfig {
    /// Its name, for `within=` and `outside=`: letters, digits, `-` and `_`.
    #[serde(deserialize_with = "name")]
    pub name: String,
    /// Its hours in local time, `"Mon-Fri 07:00-20:00"`, any number of them.
    #[serde(deserialize_with = "hours")]
    pub hours: Vec<String>,
}

impl CalendarConfig {
    /// The calendar (its entries were checked at load).
    pub fn calendar(&self) -> Calendar {
        Calendar::new(
            self.name.clone(),
            self.hours
                .iter()
                .filter_map(|h| h.parse::<Hours>().ok())
                .collect(),
        )
    }
}

fn name<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    if s.is_empty()
        || !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(serde::de::Error::custom(format!(
            "calendar name {s:?}: use letters, digits, - and _"
        )));
    }
    Ok(s)
}

fn hours<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let list = Vec::<String>::deserialize(d)?;
    for h in &list {
        h.parse::<Hours>().map_err(serde::de::Error::custom)?;
    }
    Ok(list)
}

/// The calendars, with names unique.
pub(super) fn calendars<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<CalendarConfig>, D::Error> {
    let list = Vec::<CalendarConfig>::deserialize(d)?;
    for (i, c) in list.iter().enumerate() {
        if list[..i].iter().any(|o| o.name == c.name) {
            return Err(serde::de::Error::custom(format!(
                "two calendars are named {:?}",
                c.name
            )));
        }
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn calendars_and_energy_settings_are_checked_at_load() {
        let c = Config::parse(
            "[energy]\nmax_gap = \"5m\"\n\n[[calendar]]\nname = \"office\"\nhours = [\"Mon-Fri 07:00-20:00\", \"Sat 09:00-13:00\"]\n",
            "t",
        )
        .unwrap();
        assert_eq!(c.energy.max_gap.get().as_secs(), 300);
        assert_eq!(c.energy.lookback.get().as_secs(), 3600);
        assert_eq!(c.calendar[0].calendar().name, "office");
        for bad in [
            "[[calendar]]\nname = \"office\"\nhours = [\"Mon-Fri 20:00-07:00\"]\n",
            "[[calendar]]\nname = \"office\"\nhours = [\"Mo 07:00-20:00\"]\n",
            "[[calendar]]\nname = \"of fice\"\nhours = []\n",
            "[[calendar]]\nname = \"a\"\nhours = []\n[[calendar]]\nname = \"a\"\nhours = []\n",
            "[energy]\nmax_gap = \"0s\"\n",
            "[energy]\nlookback = \"2d\"\n",
        ] {
            let e = Config::parse(bad, "t").unwrap_err().to_string();
            assert!(e.contains("t:"), "{bad}: {e}");
        }
    }
}
