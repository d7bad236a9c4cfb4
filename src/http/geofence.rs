//! Private areas (`[[http.private_area]]`): no location inside one is ever published.
//!
//! `geo`'s `Intersects` rather than `Contains`: a point on the boundary is inside for privacy
//! (`Contains` leaves the boundary out, and a house's fence line is exactly where it matters).

use crate::config::AreaConfig;
use geo::{Coord, Intersects, LineString, Point, Polygon};

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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
