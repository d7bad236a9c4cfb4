//! Privacy at every gate: no location inside a private area (`[[private_area]]`, also
//! written `[[http.private_area]]`) is ever recorded or published, whichever way it came.
//!
//! - [`PrivateAreas`]: the polygons, and whether a point lies in one. `geo`'s `Intersects`
//!   rather than `Contains`: a point on the boundary is inside for privacy (`Contains` leaves
//!   the boundary out, and a house's fence line is exactly where it matters).
//! - [`Locations`]: which MQTT payloads carry a location (`[[location]]`; OwnTracks' form
//!   built in), and the payload with a private one withheld — what the logger writes instead
//!   of what came (OwnTracks in MQTT mode publishes its JSON to `owntracks/<user>/<device>`).
//!
//! Pure: no I/O.

use crate::config::{AreaConfig, Config, LocationConfig};
use crate::topic::Matcher;
use geo::{Coord, Intersects, LineString, Point, Polygon};
use serde_json::Value;
use std::borrow::Cow;

/// The configured areas.
#[derive(Debug, Clone, Default)]
pub struct PrivateAreas {
    areas: Vec<(String, Polygon<f64>)>,
}

impl PrivateAreas {
    /// The areas of the config (already validated: three or more corners, in range).
    pub fn new(cfg: &[AreaConfig]) -> Self {
        PrivateAreas {
            areas: cfg
                .iter()
                .map(|a| {
                    let ring: Vec<Coord<f64>> = a
                        .polygon
                        .iter()
                        .map(|[x, y]| Coord { x: *x, y: *y })
                        .collect();
                    // `Polygon::new` closes an open ring.
                    (a.name.clone(), Polygon::new(LineString::new(ring), vec![]))
                })
                .collect(),
        }
    }

    /// The name of the first area holding (`longitude`, `latitude`), boundary included.
    pub fn find(&self, longitude: f64, latitude: f64) -> Option<&str> {
        let p = Point::new(longitude, latitude);
        self.areas
            .iter()
            .find(|(_, poly)| poly.intersects(&p))
            .map(|(name, _)| name.as_str())
    }

    /// One area named "home", a square of about 2 × 2 km over Adelaide's centre
    /// (138.59–138.61 °E, 34.91–34.93 °S): the tests' and the HTTP fuzz target's example.
    #[doc(hidden)]
    pub fn example_home() -> Self {
        PrivateAreas::new(&[AreaConfig {
            name: "home".into(),
            polygon: vec![
                [138.59, -34.93],
                [138.61, -34.93],
                [138.61, -34.91],
                [138.59, -34.91],
            ],
        }])
    }

    /// Whether no area is configured.
    pub fn is_empty(&self) -> bool {
        self.areas.is_empty()
    }
}

/// The key a record gains when its location was withheld, naming the fields taken out.
pub const WITHHELD: &str = "_withheld";

/// The names a flat form gives a latitude: GPSLogger's parameters, Telegraf's fields, and the
/// last level of a topic of its own (`…/lat`), as the read API's track pairs them.
pub const LATITUDE: [&str; 2] = ["lat", "latitude"];
/// The names of a longitude; see [`LATITUDE`].
pub const LONGITUDE: [&str; 3] = ["lon", "lng", "longitude"];

/// One `[[location]]`: payloads on these topics are JSON with a latitude and a longitude at
/// these paths.
#[derive(Debug, Clone)]
struct Rule {
    topics: Matcher,
    latitude: Vec<String>,
    longitude: Vec<String>,
}

/// Which payloads carry a location, and the private areas they must stay out of.
#[derive(Debug, Clone, Default)]
pub struct Locations {
    areas: PrivateAreas,
    rules: Vec<Rule>,
}

impl Locations {
    /// The `rules` (OwnTracks' form first, built in) against `areas`.
    pub fn new(areas: PrivateAreas, rules: &[LocationConfig]) -> Self {
        let rules = std::iter::once(LocationConfig::owntracks())
            .chain(rules.iter().cloned())
            .map(|r| Rule {
                topics: Matcher::new(&r.topics),
                latitude: r.latitude.split('.').map(str::to_owned).collect(),
                longitude: r.longitude.split('.').map(str::to_owned).collect(),
            })
            .collect();
        Locations { areas, rules }
    }

    /// Those of a configuration: every private area (`[[private_area]]` and
    /// `[[http.private_area]]`) and `[[location]]`, as every program applies them.
    pub fn of(cfg: &Config) -> Self {
        Locations::new(PrivateAreas::new(&cfg.private_areas()), &cfg.location)
    }

    /// The private areas.
    pub fn areas(&self) -> &PrivateAreas {
        &self.areas
    }

    /// Where the payloads of `topic` hold their latitude and longitude (dotted field paths),
    /// when a rule names the topic: the first that does, as [`withhold`](Self::withhold)
    /// takes it.
    pub fn fields(&self, topic: &str) -> Option<(String, String)> {
        let rule = self.rules.iter().find(|r| r.topics.matches(topic))?;
        Some((rule.latitude.join("."), rule.longitude.join(".")))
    }

    /// `payload` of `topic` as it may be recorded: as it came, or, where it is a JSON object
    /// whose location lies in a private area, the same object without the latitude and the
    /// longitude and with [`WITHHELD`] naming them. Without private areas, always as it came,
    /// at the cost of one check.
    pub fn withhold<'a>(&self, topic: &str, payload: &'a [u8]) -> Cow<'a, [u8]> {
        if self.areas.is_empty() {
            return Cow::Borrowed(payload);
        }
        let Some(rule) = self.rules.iter().find(|r| r.topics.matches(topic)) else {
            return Cow::Borrowed(payload);
        };
        let Ok(Value::Object(mut doc)) = serde_json::from_slice::<Value>(payload) else {
            return Cow::Borrowed(payload);
        };
        let number = |path: &[String]| {
            let mut v = doc.get(path.first()?)?;
            for key in &path[1..] {
                v = v.get(key)?;
            }
            v.as_f64()
        };
        let (Some(lat), Some(lon)) = (number(&rule.latitude), number(&rule.longitude)) else {
            return Cow::Borrowed(payload);
        };
        if self.areas.find(lon, lat).is_none() {
            return Cow::Borrowed(payload);
        }
        for path in [&rule.latitude, &rule.longitude] {
            remove(&mut doc, path);
        }
        doc.insert(
            WITHHELD.into(),
            Value::Array(
                [&rule.latitude, &rule.longitude]
                    .iter()
                    .map(|p| Value::String(p.join(".")))
                    .collect(),
            ),
        );
        Cow::Owned(Value::Object(doc).to_string().into_bytes())
    }
}

/// Take the field at `path` out of `doc`.
fn remove(doc: &mut serde_json::Map<String, Value>, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut obj = doc;
    for key in parents {
        match obj.get_mut(key) {
            Some(Value::Object(inner)) => obj = inner,
            _ => return,
        }
    }
    obj.remove(last);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn locations(rules: &[LocationConfig]) -> Locations {
        Locations::new(PrivateAreas::example_home(), rules)
    }

    #[test]
    fn an_owntracks_location_at_home_is_withheld_the_rest_kept() {
        let l = locations(&[]);
        let home = br#"{"_type":"location","lat":-34.92,"lon":138.6,"batt":87,"tid":"jn"}"#;
        let got = l.withhold("owntracks/jane/phone", home);
        let v: Value = serde_json::from_slice(&got).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"_type":"location","batt":87,"tid":"jn","_withheld":["lat","lon"]})
        );
        // Elsewhere, or on another topic, or not JSON: as it came, not even copied.
        let away = br#"{"_type":"location","lat":-34.95,"lon":138.53}"#;
        assert!(matches!(
            l.withhold("owntracks/jane/phone", away),
            Cow::Borrowed(_)
        ));
        assert!(matches!(l.withhold("other/phone", home), Cow::Borrowed(_)));
        assert!(matches!(
            l.withhold("owntracks/a/b", b"lat -34.92"),
            Cow::Borrowed(_)
        ));
        // No private area: nothing is looked at.
        let none = Locations::new(PrivateAreas::default(), &[]);
        assert!(matches!(
            none.withhold("owntracks/jane/phone", home),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn the_rule_of_a_topic_names_its_fields() {
        let rule = LocationConfig {
            topics: crate::topic::Filters::of(&["iotitan/+/gps"]),
            latitude: "position.latitude".into(),
            longitude: "position.longitude".into(),
        };
        let l = locations(&[rule]);
        assert_eq!(
            l.fields("owntracks/jane/phone"),
            Some(("lat".into(), "lon".into()))
        );
        assert_eq!(
            l.fields("iotitan/car/gps"),
            Some(("position.latitude".into(), "position.longitude".into()))
        );
        assert_eq!(l.fields("iotitan/car/gps/lat"), None);
    }

    #[test]
    fn configured_paths_reach_into_objects() {
        let rule = LocationConfig {
            topics: crate::topic::Filters::of(&["iotitan/+/gps"]),
            latitude: "position.latitude".into(),
            longitude: "position.longitude".into(),
        };
        let l = locations(&[rule]);
        let home = br#"{"position":{"latitude":-34.92,"longitude":138.6,"alt":40},"speed":0}"#;
        let v: Value = serde_json::from_slice(&l.withhold("iotitan/car/gps", home)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"position":{"alt":40},"speed":0,"_withheld":["position.latitude","position.longitude"]})
        );
    }

    #[test]
    fn inside_boundary_corner_and_outside() {
        let a = PrivateAreas::example_home();
        assert_eq!(a.find(138.60, -34.92), Some("home"));
        assert_eq!(a.find(138.61, -34.92), Some("home"), "edge");
        assert_eq!(a.find(138.59, -34.93), Some("home"), "corner");
        assert_eq!(a.find(138.6101, -34.92), None, "just outside");
        assert_eq!(a.find(-34.92, 138.60), None, "swapped axes are elsewhere");
        assert!(PrivateAreas::default().find(138.60, -34.92).is_none());
    }

    proptest! {
        /// Every point of the rectangle, edges included, is private; every point outside is not.
        #[test]
        fn rectangle(x in 138.5f64..138.7, y in -35.0f64..-34.8) {
            let inside = (138.59..=138.61).contains(&x) && (-34.93..=-34.91).contains(&y);
            prop_assert_eq!(PrivateAreas::example_home().find(x, y).is_some(), inside);
        }
    }
}
