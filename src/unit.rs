//! What a series measures: its unit, and Home Assistant's device and state classes, inferred
//! from its name or configured (`[[homeassistant.unit]]`).
//!
//! One module, so that Home Assistant discovery and the dashboard say the same thing about a
//! series. Pure: a topic in, a [`Unit`] out. The inference reads the attribute (the last level,
//! `…/dht22/temperature`) and, for JSON fields, the level above it (Tasmota's `ENERGY/Total` is
//! kWh, Shelly's `aenergy/total` Wh). A statistic of a series (`…/temperature_mean`, see
//! [`crate::statistic`]) measures what the series does, except where the statistic changes the
//! quantity: a count has no unit, the integral of power is energy, a standard deviation is a
//! difference (so no device class: Home Assistant would convert 1 °C of spread to 33.8 °F).
//!
//! Device classes and their units are Home Assistant's documented lists
//! (<https://www.home-assistant.io/integrations/sensor/#device-class>); a configured unit is
//! checked against them at load, so Home Assistant never refuses an entity we announce.

use crate::statistic::{self, Statistic};
use crate::topic::Filters;
use serde::{Deserialize, Serialize};

/// What a series measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Unit {
    /// The unit of its values (`°C`), if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<&'static str>,
    /// Home Assistant's sensor device class (`temperature`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_class: Option<&'static str>,
    /// Home Assistant's state class: `measurement`, `total` or `total_increasing`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_class: Option<&'static str>,
}

/// `measurement`: a value now (a temperature).
pub const MEASUREMENT: &str = "measurement";
/// `total`: an amount that may go up and down (a net meter).
pub const TOTAL: &str = "total";
/// `total_increasing`: a meter that only grows, except when it is reset (a plug's kWh).
pub const TOTAL_INCREASING: &str = "total_increasing";
/// Every state class Home Assistant knows.
pub const STATE_CLASSES: [&str; 3] = [MEASUREMENT, TOTAL, TOTAL_INCREASING];

/// Home Assistant's sensor device classes and the units each allows (the first is the one we
/// infer). `None` among them: the class allows no unit. Classes measured only as totals
/// (energy, gas, water) are marked in [`totals_only`].
pub const DEVICE_CLASSES: &[(&str, &[&str])] = &[
    ("apparent_power", &["VA", "kVA"]),
    ("aqi", &[]),
    ("atmospheric_pressure", PRESSURE),
    ("battery", &["%"]),
    ("carbon_dioxide", &["ppm"]),
    ("carbon_monoxide", &["ppm"]),
    ("current", &["A", "mA"]),
    ("distance", &["m", "km", "cm", "mm", "mi", "yd", "in", "ft"]),
    ("duration", &["s", "ms", "min", "h", "d"]),
    (
        "energy",
        &[
            "kWh", "Wh", "mWh", "MWh", "GWh", "TWh", "J", "kJ", "MJ", "GJ", "cal", "kcal", "Mcal",
            "Gcal",
        ],
    ),
    ("frequency", &["Hz", "kHz", "MHz", "GHz"]),
    ("gas", &["m³", "ft³", "CCF", "L"]),
    ("humidity", &["%"]),
    ("illuminance", &["lx"]),
    ("irradiance", &["W/m²", "BTU/(h⋅ft²)"]),
    ("moisture", &["%"]),
    ("nitrogen_dioxide", &["µg/m³"]),
    ("ozone", &["µg/m³"]),
    ("pm1", &["µg/m³"]),
    ("pm10", &["µg/m³"]),
    ("pm25", &["µg/m³"]),
    ("power", &["W", "kW", "mW", "MW", "GW", "TW", "BTU/h"]),
    ("power_factor", &["%"]),
    ("precipitation", &["mm", "cm", "in"]),
    ("pressure", PRESSURE),
    ("reactive_power", &["var", "kvar"]),
    ("signal_strength", &["dBm", "dB"]),
    ("sound_pressure", &["dB", "dBA"]),
    (
        "speed",
        &["m/s", "km/h", "mph", "kn", "ft/s", "mm/s", "in/s"],
    ),
    ("temperature", &["°C", "°F", "K"]),
    ("voltage", &["V", "mV", "µV", "kV", "MV"]),
    ("volatile_organic_compounds", &["µg/m³", "mg/m³"]),
    ("volatile_organic_compounds_parts", &["ppm", "ppb"]),
    ("volume", &["L", "mL", "gal", "fl. oz.", "m³", "ft³", "CCF"]),
    ("water", &["L", "gal", "m³", "ft³", "CCF"]),
    ("weight", &["kg", "g", "mg", "µg", "oz", "lb", "st"]),
    (
        "wind_speed",
        &["m/s", "km/h", "mph", "kn", "ft/s", "Beaufort"],
    ),
];

const PRESSURE: &[&str] = &[
    "hPa", "kPa", "Pa", "bar", "cbar", "mbar", "mmHg", "inHg", "psi",
];

/// Device classes whose state class must be `total` or `total_increasing` (or none): Home
/// Assistant refuses `measurement` for them.
pub fn totals_only(device_class: &str) -> bool {
    matches!(device_class, "energy" | "gas" | "water" | "volume")
}

/// The units Home Assistant allows for `device_class`, or `None` if it knows no such class.
pub fn allowed_units(device_class: &str) -> Option<&'static [&'static str]> {
    DEVICE_CLASSES
        .iter()
        .find(|(c, _)| *c == device_class)
        .map(|(_, u)| *u)
}

/// Whether `unit`, `device_class` and `state_class` together are something Home Assistant
/// accepts: a known class with one of its units (or none, for a class without units), and a
/// state class it allows for that class.
pub fn check(
    unit: Option<&str>,
    device_class: Option<&str>,
    state_class: Option<&str>,
) -> Result<(), String> {
    if let Some(s) = state_class
        && !STATE_CLASSES.contains(&s)
    {
        return Err(format!(
            "state_class {s:?}: expected measurement, total or total_increasing"
        ));
    }
    let Some(class) = device_class else {
        return Ok(());
    };
    let Some(units) = allowed_units(class) else {
        return Err(format!(
            "device_class {class:?} is not one of Home Assistant's sensor device classes"
        ));
    };
    match unit {
        Some(u) if !units.contains(&u) => {
            return Err(format!(
                "unit {u:?} is not allowed for device_class {class:?} (allowed: {})",
                units.join(", ")
            ));
        }
        None if !units.is_empty() => {
            return Err(format!(
                "device_class {class:?} needs a unit (one of {})",
                units.join(", ")
            ));
        }
        _ => {}
    }
    if totals_only(class) && state_class == Some(MEASUREMENT) {
        return Err(format!(
            "device_class {class:?} takes state_class total or total_increasing, not measurement"
        ));
    }
    Ok(())
}

/// The unit we infer for an attribute, from the last level and the one above it (both
/// compared without case).
fn of_attribute(parent: &str, last: &str) -> Unit {
    let m = |unit, class| Unit {
        unit: Some(unit),
        device_class: Some(class),
        state_class: Some(MEASUREMENT),
    };
    let meter = |unit| Unit {
        unit: Some(unit),
        device_class: Some("energy"),
        state_class: Some(TOTAL_INCREASING),
    };
    let parent = parent.to_ascii_lowercase();
    let last = last.to_ascii_lowercase();
    match (parent.as_str(), last.as_str()) {
        // Tasmota's ENERGY.Total and Today are kWh meters (Today back to 0 at midnight, a
        // reset Home Assistant's total_increasing expects); Shelly's aenergy.total counts Wh
        // since boot.
        ("energy", "total" | "today") => meter("kWh"),
        ("aenergy", "total") => meter("Wh"),
        (_, "energy" | "kwh" | "total_energy") => meter("kWh"),
        (_, "temperature" | "temp" | "dsb_temperature") => m("°C", "temperature"),
        (_, "humidity" | "hum" | "rh") => m("%", "humidity"),
        (_, "pressure" | "press" | "baro") => m("hPa", "pressure"),
        (_, "power" | "apower" | "activepower" | "watt" | "watts") => m("W", "power"),
        (_, "apparentpower" | "apparent_power") => m("VA", "apparent_power"),
        (_, "reactivepower" | "reactive_power") => m("var", "reactive_power"),
        (_, "voltage" | "volt" | "volts") => m("V", "voltage"),
        (_, "current" | "amps") => m("A", "current"),
        (_, "battery" | "batt" | "bat") => m("%", "battery"),
        (_, "illuminance" | "lux" | "illuminance_lux") => m("lx", "illuminance"),
        (_, "co2" | "carbon_dioxide" | "eco2") => m("ppm", "carbon_dioxide"),
        (_, "pm25" | "pm2_5" | "pm2.5") => m("µg/m³", "pm25"),
        (_, "pm10") => m("µg/m³", "pm10"),
        (_, "pm1" | "pm1_0") => m("µg/m³", "pm1"),
        (_, "frequency" | "freq") => m("Hz", "frequency"),
        (_, "rssi" | "signal") => m("dBm", "signal_strength"),
        (_, "moisture" | "soil_moisture") => m("%", "moisture"),
        (_, "uptime" | "uptimesec") => Unit {
            unit: Some("s"),
            device_class: Some("duration"),
            state_class: Some(TOTAL_INCREASING),
        },
        // Something numeric we know nothing more of: a value now, without a unit.
        _ => Unit {
            unit: None,
            device_class: None,
            state_class: Some(MEASUREMENT),
        },
    }
}

/// What statistic `stat` of a series measuring `base` measures.
fn of_statistic(base: Unit, stat: Statistic) -> Unit {
    let plain = |unit| Unit {
        unit,
        device_class: None,
        state_class: Some(MEASUREMENT),
    };
    match stat {
        Statistic::Count | Statistic::Coverage => plain(None),
        // A spread is a difference of values: the unit holds, a device class would have Home
        // Assistant convert it as a value (°C → °F adds 32).
        Statistic::Stddev => plain(base.unit),
        // The energy of a window. Home Assistant's `total` would read the step from one
        // window's amount to the next as consumption (a smaller window a negative one), and
        // `total_increasing` as a meter reset: neither is true, so no state class (no
        // long-term statistics; the meter itself feeds the Energy dashboard).
        Statistic::Integral if base.device_class == Some("power") && base.unit == Some("W") => {
            Unit {
                unit: Some("Wh"),
                device_class: Some("energy"),
                state_class: None,
            }
        }
        Statistic::Integral => plain(None),
        Statistic::Increase => Unit {
            state_class: None,
            ..base
        },
        // The rest (mean, min, max, median, pNN, first, last, twmean) are values of the
        // series: the same unit and class; a meter's are amounts, not a meter any more.
        _ if base.device_class.is_some_and(totals_only) => Unit {
            state_class: None,
            ..base
        },
        _ => Unit {
            state_class: base.state_class.map(|_| MEASUREMENT),
            ..base
        },
    }
}

/// The statistic a derived series' name ends in: `a/temperature_mean` → (`a/temperature`,
/// mean). Group counts (`…_devices`) have no base series.
pub fn split_statistic(series: &str) -> Option<(&str, Option<Statistic>)> {
    if !statistic::is_output(series) {
        return None;
    }
    let (base, suffix) = series.rsplit_once('_')?;
    Some((base, suffix.parse().ok()))
}

/// `[[homeassistant.unit]]`: what the series matched by `topics` measure, when the name says
/// nothing or the wrong thing (a plug's `power` in kW).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, try_from = "RawRule")]
pub struct UnitRule {
    /// The series (topic, or `<topic>/<field>`) it is about.
    pub topics: Filters,
    /// The unit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// Home Assistant's device class.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_class: Option<String>,
    /// Home Assistant's state class.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_class: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    topics: Filters,
    #[serde(default)]
    unit: Option<String>,
    #[serde(default)]
    device_class: Option<String>,
    #[serde(default)]
    state_class: Option<String>,
}

impl TryFrom<RawRule> for UnitRule {
    type Error = String;

    fn try_from(r: RawRule) -> Result<Self, String> {
        check(
            r.unit.as_deref(),
            r.device_class.as_deref(),
            r.state_class.as_deref(),
        )?;
        Ok(UnitRule {
            topics: r.topics,
            unit: r.unit,
            device_class: r.device_class,
            state_class: r.state_class,
        })
    }
}

/// Units of series: the configured rules first, inference from the name otherwise.
#[derive(Debug, Clone, Default)]
pub struct Units {
    /// Rules with their strings given a `'static` lifetime: they live as long as the
    /// program's config, and [`Unit`] stays `Copy` for the millions of series it describes.
    rules: Vec<(Filters, Unit)>,
}

impl Units {
    /// Units with `rules` (first match wins). Their strings are interned once (leaked: a
    /// handful of short strings, held for the life of the program).
    pub fn new(rules: &[UnitRule]) -> Units {
        let keep = |s: &Option<String>| -> Option<&'static str> {
            s.as_ref().map(|s| &*Box::leak(s.clone().into_boxed_str()))
        };
        Units {
            rules: rules
                .iter()
                .map(|r| {
                    (
                        r.topics.clone(),
                        Unit {
                            unit: keep(&r.unit),
                            device_class: keep(&r.device_class),
                            state_class: keep(&r.state_class),
                        },
                    )
                })
                .collect(),
        }
    }

    /// What `series` measures: a configured rule matching it; else, for a statistic, what its
    /// series measures changed by the statistic; else the inference from its name.
    pub fn of(&self, series: &str) -> Unit {
        if let Some((_, u)) = self.rules.iter().find(|(f, _)| f.matches(series)) {
            return *u;
        }
        if let Some((base, stat)) = split_statistic(series) {
            return match stat {
                Some(stat) => of_statistic(self.of(base), stat),
                None => of_statistic(Unit::default(), Statistic::Count),
            };
        }
        let mut levels = series.rsplit('/');
        let last = levels.next().unwrap_or(series);
        of_attribute(levels.next().unwrap_or(""), last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn of(series: &str) -> Unit {
        Units::default().of(series)
    }

    #[test]
    fn attributes_have_their_units() {
        let t = of("iotitan/home/kitchen/dht22/temperature");
        assert_eq!(
            (t.unit, t.device_class, t.state_class),
            (Some("°C"), Some("temperature"), Some(MEASUREMENT))
        );
        assert_eq!(of("a/b/humidity").unit, Some("%"));
        assert_eq!(of("a/b/pressure").unit, Some("hPa"));
        assert_eq!(of("tele/plug/SENSOR/ENERGY/Power").unit, Some("W"));
        assert_eq!(of("x/status/switch:0/apower").unit, Some("W"));
        assert_eq!(of("a/b/motion").unit, None);
        assert_eq!(of("a/b/motion").state_class, Some(MEASUREMENT));
    }

    #[test]
    fn meters_are_energy_totals_for_the_energy_dashboard() {
        let tasmota = of("office/f1/r1/desk1/tele/SENSOR/ENERGY/Total");
        assert_eq!(
            (tasmota.unit, tasmota.device_class, tasmota.state_class),
            (Some("kWh"), Some("energy"), Some(TOTAL_INCREASING))
        );
        let shelly = of("office/f1/r1/desk2/status/switch:0/aenergy/total");
        assert_eq!(
            (shelly.unit, shelly.device_class, shelly.state_class),
            (Some("Wh"), Some("energy"), Some(TOTAL_INCREASING))
        );
    }

    #[test]
    fn statistics_measure_what_their_series_does() {
        assert_eq!(of("a/b/temperature_mean"), of("a/b/temperature"));
        assert_eq!(of("a/b/temperature_p95"), of("a/b/temperature"));
        assert_eq!(of("a/b/temperature_count").unit, None);
        assert_eq!(of("a/b/temperature_stddev").unit, Some("°C"));
        assert_eq!(of("a/b/temperature_stddev").device_class, None);
        assert_eq!(of("g/temperature_devices").unit, None);
        let wh = of("office/floor1/room1/power_integral");
        assert_eq!(
            (wh.unit, wh.device_class, wh.state_class),
            (Some("Wh"), Some("energy"), None)
        );
        let inc = of("p/tele/SENSOR/ENERGY/Total_increase");
        assert_eq!(
            (inc.unit, inc.device_class, inc.state_class),
            (Some("kWh"), Some("energy"), None)
        );
        // A meter's mean is an amount, not a meter, and energy takes no `measurement`.
        assert_eq!(of("p/tele/SENSOR/ENERGY/Total_max").state_class, None);
    }

    #[test]
    fn configured_rules_win_and_carry_to_statistics() {
        let rule: UnitRule = toml::from_str(
            "topics = [\"office/+/+/plug7/power\"]\nunit = \"kW\"\ndevice_class = \"power\"\nstate_class = \"measurement\"",
        )
        .unwrap();
        let u = Units::new(&[rule]);
        assert_eq!(u.of("office/f/r/plug7/power").unit, Some("kW"));
        assert_eq!(u.of("office/f/r/plug7/power_mean").unit, Some("kW"));
        assert_eq!(u.of("office/f/r/plug8/power").unit, Some("W"));
    }

    #[test]
    fn rules_are_checked_against_home_assistant_lists() {
        let bad = |t: &str| toml::from_str::<UnitRule>(t).unwrap_err().to_string();
        assert!(
            bad("topics = \"a\"\nunit = \"C\"\ndevice_class = \"temperature\"")
                .contains("not allowed")
        );
        assert!(bad("topics = \"a\"\ndevice_class = \"temp\"").contains("not one of"));
        assert!(bad("topics = \"a\"\nstate_class = \"sum\"").contains("state_class"));
        assert!(
            bad("topics = \"a\"\nunit = \"kWh\"\ndevice_class = \"energy\"\nstate_class = \"measurement\"")
                .contains("total")
        );
    }

    proptest! {
        /// Whatever the name, what we infer is something Home Assistant accepts.
        #[test]
        fn inferred_units_are_valid(levels in proptest::collection::vec(
            prop_oneof![
                "[a-zA-Z0-9_:]{1,12}",
                Just("temperature".to_owned()), Just("ENERGY".to_owned()), Just("Total".to_owned()),
                Just("aenergy".to_owned()), Just("total".to_owned()), Just("power".to_owned()),
                Just("humidity".to_owned()), Just("uptime".to_owned()),
            ], 1..6),
            stat in prop_oneof![
                Just(""), Just("_mean"), Just("_count"), Just("_max"), Just("_stddev"),
                Just("_p95"), Just("_increase"), Just("_integral"), Just("_devices"),
                Just("_coverage"), Just("_twmean"),
            ])
        {
            let series = format!("{}{stat}", levels.join("/"));
            let u = of(&series);
            prop_assert!(check(u.unit, u.device_class, u.state_class).is_ok(), "{series}: {u:?}");
        }
    }
}
