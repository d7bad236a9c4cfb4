//! `GET /track`: where one device has been — its latitudes and longitudes paired into points,
//! oldest first, none inside a private area.
//!
//! A location reaches the records in one of two shapes, and a device may use both:
//!
//! - **two series** `<device>/lat` (or `latitude`) and `<device>/lon` (`lng`, `longitude`):
//!   the ingest forms (OwnTracks and GPSLogger over HTTP, the device form's `location`,
//!   Telegraf) publish one message per field, in one batch;
//! - **one document** on `<device>` holding both (OwnTracks over MQTT, a `[[location]]`):
//!   read into the same two series, both at the record's time.
//!
//! Either way the read hands over *halves* — a latitude or a longitude at a time — and
//! [`pair`] makes points of them: a latitude and a longitude are one point when each is the
//! other's nearest half of the other kind in time (a tie goes to the earlier) and they were
//! logged at most [`TOLERANCE`] apart. One batch's two messages are logged within
//! milliseconds, a document's two fields at the same instant, and a phone reports at most
//! every few seconds: the rule pairs each report with itself, and a half whose partner was
//! lost (withheld, cut, out of the range) pairs with nothing rather than with a neighbour's.
//!
//! Privacy: a point inside a private area is never made. Documents lose a private location
//! before they are read ([`crate::privacy::Locations::withhold`]); two series can only be
//! judged once paired, and that is done here — records written before an area was configured,
//! or published over MQTT by a client that sends the fields apart, are covered too. The two
//! halves of a private point are used up by it: neither pairs with anything else.
//!
//! Memory is bounded by `limit`: the answer holds the newest `limit` points, and the halves
//! kept while reading are pruned to what those need ([`Track::reading`]).

use super::{Consumer, Value};
use crate::privacy::{LATITUDE, LONGITUDE, PrivateAreas};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde::ser::SerializeTuple;
use std::sync::Arc;

/// The longest time between a latitude and a longitude of one point: well above what one
/// batch or one document takes to be logged, below how often a phone reports.
pub const TOLERANCE: chrono::Duration = chrono::Duration::seconds(2);

/// Which coordinate a half holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Axis {
    /// Degrees north.
    Latitude,
    /// Degrees east.
    Longitude,
}

/// One coordinate as read: when it was logged (µs), in which order it was read (ties), which
/// coordinate and its value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Half {
    /// When it was logged, in µs since the epoch.
    pub micros: i64,
    /// Its place in reading order: among halves logged at the same µs, the first read first.
    pub seq: u64,
    /// Latitude or longitude.
    pub axis: Axis,
    /// Degrees.
    pub value: f64,
}

/// One point of a track.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// When its first half was logged, in µs since the epoch.
    pub micros: i64,
    /// Degrees north.
    pub lat: f64,
    /// Degrees east.
    pub lon: f64,
}

impl Serialize for Point {
    /// `[rfc3339, latitude, longitude]`: compact for long tracks, in the order people write
    /// a position.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let time = DateTime::from_timestamp_micros(self.micros)
            .unwrap_or_default()
            .to_rfc3339_opts(SecondsFormat::AutoSi, true);
        let mut t = s.serialize_tuple(3)?;
        t.serialize_element(&time)?;
        t.serialize_element(&self.lat)?;
        t.serialize_element(&self.lon)?;
        t.end()
    }
}

/// The points of `halves`, oldest first: see the module comment for the rule. Sorts `halves`
/// by time (then reading order). Points outside the coordinates' ranges (a latitude beyond
/// ±90°, a longitude beyond ±180°) and points inside `areas` are left out; their halves pair
/// with nothing else.
pub fn pair(halves: &mut [Half], tolerance: i64, areas: &PrivateAreas) -> Vec<Point> {
    halves.sort_by_key(|h| (h.micros, h.seq));
    let n = halves.len();
    // The nearest half of the other kind before and after each one: the last such half
    // before it and the first after it, the halves being in time order.
    let mut before = vec![None; n];
    let mut last: [Option<usize>; 2] = [None, None];
    for (i, h) in halves.iter().enumerate() {
        before[i] = last[other(h.axis)];
        last[kind(h.axis)] = Some(i);
    }
    let mut after = vec![None; n];
    let mut next: [Option<usize>; 2] = [None, None];
    for (i, h) in halves.iter().enumerate().rev() {
        after[i] = next[other(h.axis)];
        next[kind(h.axis)] = Some(i);
    }
    let gap = |i: usize, j: usize| halves[i].micros.abs_diff(halves[j].micros);
    let nearest: Vec<Option<usize>> = (0..n)
        .map(|i| {
            let best = match (before[i], after[i]) {
                (Some(b), Some(a)) => Some(if gap(i, b) <= gap(i, a) { b } else { a }),
                (b, a) => b.or(a),
            };
            best.filter(|&j| gap(i, j) <= tolerance.unsigned_abs())
        })
        .collect();
    let mut points = Vec::new();
    for (i, h) in halves.iter().enumerate() {
        let Some(j) = nearest[i] else { continue };
        // Each pair once, from its earlier half; and only when the choice is mutual.
        if j <= i || nearest[j] != Some(i) {
            continue;
        }
        let (lat, lon) = match h.axis {
            Axis::Latitude => (h.value, halves[j].value),
            Axis::Longitude => (halves[j].value, h.value),
        };
        let valid = (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon);
        if valid && areas.find(lon, lat).is_none() {
            points.push(Point {
                micros: h.micros,
                lat,
                lon,
            });
        }
    }
    points
}

fn kind(axis: Axis) -> usize {
    match axis {
        Axis::Latitude => 0,
        Axis::Longitude => 1,
    }
}

fn other(axis: Axis) -> usize {
    1 - kind(axis)
}

/// The series of one device that hold its coordinates.
#[derive(Debug, Clone)]
pub struct Names {
    latitude: Vec<String>,
    longitude: Vec<String>,
}

impl Names {
    /// The series of `device`: `<device>/lat`, `…/latitude`, `…/lon`, `…/lng`,
    /// `…/longitude`, and the series a document's fields at `fields` (dotted paths) are read
    /// into (`<device>/<path with / for .>`).
    pub fn new(device: &str, fields: Option<(&str, &str)>) -> Self {
        let of = |names: &[&str], field: Option<&str>| -> Vec<String> {
            let mut list: Vec<String> = names.iter().map(|n| format!("{device}/{n}")).collect();
            if let Some(f) = field {
                let s = format!("{device}/{}", f.replace('.', "/"));
                if !list.contains(&s) {
                    list.push(s);
                }
            }
            list
        };
        Names {
            latitude: of(&LATITUDE, fields.map(|f| f.0)),
            longitude: of(&LONGITUDE, fields.map(|f| f.1)),
        }
    }

    /// Every series, latitudes first.
    pub fn all(&self) -> impl Iterator<Item = &str> {
        self.latitude
            .iter()
            .chain(&self.longitude)
            .map(String::as_str)
    }

    fn axis(&self, series: &str) -> Option<Axis> {
        if self.latitude.iter().any(|n| n == series) {
            Some(Axis::Latitude)
        } else if self.longitude.iter().any(|n| n == series) {
            Some(Axis::Longitude)
        } else {
            None
        }
    }
}

/// `[time, latitude, longitude]`, as [`Point`]'s `Serialize` writes it.
impl utoipa::PartialSchema for Point {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
        use utoipa::openapi::{KnownFormat, SchemaFormat};
        let degrees = |limit: f64| {
            ObjectBuilder::new()
                .schema_type(Type::Number)
                .minimum(Some(-limit))
                .maximum(Some(limit))
        };
        ArrayBuilder::new()
            .prefix_items([
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))),
                degrees(90.0),
                degrees(180.0),
            ])
            .min_items(Some(3))
            .max_items(Some(3))
            .into()
    }
}

impl utoipa::ToSchema for Point {}

/// The answer of `/track`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TrackAnswer {
    /// The newest `limit` points of the range, oldest first.
    pub points: Vec<Point>,
    /// Whether older points of the range were left out.
    pub truncated: bool,
}

/// Gathers a device's halves for [`pair`], in bounded memory: at most `limit` points are
/// answered, and the halves held while reading are pruned to what the newest `limit` points
/// need once they are four times that many.
#[derive(Debug, Clone)]
pub struct Track {
    names: Arc<Names>,
    areas: Arc<PrivateAreas>,
    limit: usize,
    /// Halves held before they are pruned: two per point, and room for halves that pair with
    /// nothing.
    room: usize,
    halves: Vec<Half>,
    read: u64,
    /// Halves logged before this (µs) are not kept: the newest `limit` points are all later,
    /// by more than a half's partner can be away.
    floor: Option<i64>,
    truncated: bool,
}

impl Track {
    /// At most `limit` points (at least one) of the series `names`, none inside `areas`.
    pub fn new(names: Names, areas: PrivateAreas, limit: usize) -> Self {
        let limit = limit.max(1);
        Track {
            names: Arc::new(names),
            areas: Arc::new(areas),
            limit,
            room: limit.saturating_mul(4).saturating_add(1024),
            halves: Vec::new(),
            read: 0,
            floor: None,
            truncated: false,
        }
    }

    /// The same with room for `room` halves (at least four per point): the tests' way to
    /// prune often.
    #[cfg(test)]
    fn with_room(mut self, room: usize) -> Self {
        self.room = room.max(self.limit * 4);
        self
    }

    /// Keep only the halves the newest `limit` points need.
    fn prune(&mut self) {
        let tolerance = TOLERANCE.num_microseconds().unwrap_or(i64::MAX);
        let points = pair(&mut self.halves, tolerance, &self.areas);
        if points.len() > self.limit {
            // The oldest point kept; what is more than two tolerances older cannot change
            // how the halves from it on pair (a half's partner is within one, and so is the
            // rival it is measured against).
            let oldest = points[points.len() - self.limit].micros;
            self.raise_floor(oldest.saturating_sub(tolerance.saturating_mul(2)));
        }
        let room = self.room / 2;
        if self.halves.len() > room {
            // Halves that pair with nothing (a flood of latitudes alone): the newest only.
            let first = self.halves[self.halves.len() - room].micros;
            self.raise_floor(first);
        }
    }

    /// Drop the halves logged before `floor`, and take no such half from now on.
    fn raise_floor(&mut self, floor: i64) {
        let floor = self.floor.map_or(floor, |f| f.max(floor));
        self.floor = Some(floor);
        let before = self.halves.len();
        self.halves.retain(|h| h.micros >= floor);
        self.truncated |= self.halves.len() < before;
    }

    /// The answer.
    pub fn finish(mut self) -> TrackAnswer {
        let tolerance = TOLERANCE.num_microseconds().unwrap_or(i64::MAX);
        let mut points = pair(&mut self.halves, tolerance, &self.areas);
        if points.len() > self.limit {
            points.drain(..points.len() - self.limit);
            self.truncated = true;
        }
        TrackAnswer {
            points,
            truncated: self.truncated,
        }
    }
}

impl Consumer for Track {
    fn reading(&mut self, time: DateTime<Utc>, series: &str, value: Value<'_>) {
        let (Some(axis), Value::Number(value)) = (self.names.axis(series), value) else {
            return;
        };
        let micros = time.timestamp_micros();
        if self.floor.is_some_and(|f| micros < f) {
            self.truncated = true;
            return;
        }
        self.read += 1;
        self.halves.push(Half {
            micros,
            seq: self.read,
            axis,
            value,
        });
        if self.halves.len() >= self.room {
            self.prune();
        }
    }

    fn fork(&self) -> Option<Self> {
        Some(Track {
            halves: Vec::new(),
            read: 0,
            floor: None,
            truncated: false,
            ..self.clone()
        })
    }

    fn merge(&mut self, later: Self) {
        // `later` read the lines after these: its halves come after them in reading order.
        let offset = self.read;
        self.read += later.read;
        self.truncated |= later.truncated;
        if let Some(f) = later.floor {
            self.raise_floor(f);
        }
        let floor = self.floor;
        self.halves.extend(
            later
                .halves
                .into_iter()
                .filter(|h| floor.is_none_or(|f| h.micros >= f))
                .map(|h| Half {
                    seq: h.seq + offset,
                    ..h
                }),
        );
        if self.halves.len() >= self.room {
            self.prune();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const S: i64 = 1_000_000;

    fn lat(micros: i64, value: f64) -> Half {
        Half {
            micros,
            seq: 0,
            axis: Axis::Latitude,
            value,
        }
    }

    fn lon(micros: i64, value: f64) -> Half {
        Half {
            axis: Axis::Longitude,
            ..lat(micros, value)
        }
    }

    /// In reading order.
    fn numbered(mut halves: Vec<Half>) -> Vec<Half> {
        for (i, h) in halves.iter_mut().enumerate() {
            h.seq = i as u64;
        }
        halves
    }

    fn points(halves: Vec<Half>) -> Vec<(i64, f64, f64)> {
        let mut halves = numbered(halves);
        pair(&mut halves, 2 * S, &PrivateAreas::example_home())
            .iter()
            .map(|p| (p.micros, p.lat, p.lon))
            .collect()
    }

    #[test]
    fn a_batch_pairs_with_itself_and_a_lone_half_with_nothing() {
        // Reports a minute apart, each a few ms between its halves, in either order; one
        // report lost its longitude; one longitude alone.
        let got = points(vec![
            lat(0, -34.95),
            lon(3_000, 138.53),
            lon(60 * S, 138.54),
            lat(60 * S + 2_000, -34.96),
            lat(120 * S, -34.97),
            lon(180 * S, 138.56),
            lat(240 * S, -34.98),
            lon(240 * S, 138.57),
        ]);
        assert_eq!(
            got,
            vec![
                (0, -34.95, 138.53),
                (60 * S, -34.96, 138.54),
                (240 * S, -34.98, 138.57),
            ]
        );
    }

    #[test]
    fn the_nearest_partner_wins_and_the_tolerance_holds() {
        // A latitude between two longitudes: the nearer one is its partner; the other is
        // left alone rather than taken from its own report.
        assert_eq!(
            points(vec![lon(0, 138.50), lat(S, -34.95), lon(S + 100, 138.53)]),
            vec![(S, -34.95, 138.53)]
        );
        // An equal gap goes to the earlier.
        assert_eq!(
            points(vec![lon(0, 138.50), lat(S, -34.95), lon(2 * S, 138.53)]),
            vec![(0, -34.95, 138.50)]
        );
        // Two seconds apart still pair, a little more does not.
        assert_eq!(points(vec![lat(0, 1.0), lon(2 * S, 2.0)]).len(), 1);
        assert_eq!(points(vec![lat(0, 1.0), lon(2 * S + 1, 2.0)]).len(), 0);
        // Two latitudes for one longitude: only the nearer pairs.
        assert_eq!(
            points(vec![lat(0, 1.0), lat(S / 2, 3.0), lon(S, 2.0)]),
            vec![(S / 2, 3.0, 2.0)]
        );
    }

    #[test]
    fn private_and_impossible_points_are_left_out_and_use_up_their_halves() {
        // At home (the example area) a few ms apart, then away; a latitude beyond 90°.
        let got = points(vec![
            lat(0, -34.92),
            lon(1_000, 138.60),
            lon(1_500, 138.53),
            lat(60 * S, 91.0),
            lon(60 * S, 10.0),
            lat(120 * S, -34.95),
            lon(120 * S, 138.53),
        ]);
        // The longitude right after the private point does not pair with its latitude.
        assert_eq!(got, vec![(120 * S, -34.95, 138.53)]);
        // The boundary is private too.
        assert!(points(vec![lat(0, -34.91), lon(0, 138.61)]).is_empty());
    }

    #[test]
    fn names_of_a_device_and_of_its_documents() {
        let n = Names::new("owntracks/jane/phone", Some(("lat", "lon")));
        assert_eq!(
            n.all().collect::<Vec<_>>(),
            [
                "owntracks/jane/phone/lat",
                "owntracks/jane/phone/latitude",
                "owntracks/jane/phone/lon",
                "owntracks/jane/phone/lng",
                "owntracks/jane/phone/longitude",
            ]
        );
        let n = Names::new("car/gps", Some(("position.latitude", "position.longitude")));
        assert_eq!(n.axis("car/gps/position/latitude"), Some(Axis::Latitude));
        assert_eq!(n.axis("car/gps/position/longitude"), Some(Axis::Longitude));
        assert_eq!(n.axis("car/gps/speed"), None);
    }

    /// A consumer fed `halves` as a read would (split into `parts` forks, merged in order).
    fn fed(halves: &[Half], limit: usize, parts: usize) -> TrackAnswer {
        fed_in(halves, limit, parts, usize::MAX)
    }

    /// [`fed`], pruning once `room` halves are held.
    fn fed_in(halves: &[Half], limit: usize, parts: usize, room: usize) -> TrackAnswer {
        let names = Names::new("d", None);
        let mut track = Track::new(names, PrivateAreas::example_home(), limit);
        if room != usize::MAX {
            track = track.with_room(room);
        }
        let mut forks: Vec<Track> = (0..parts.max(1)).map(|_| track.fork().unwrap()).collect();
        let per = halves.len().div_ceil(parts.max(1)).max(1);
        for (k, chunk) in halves.chunks(per).enumerate() {
            for h in chunk {
                let series = match h.axis {
                    Axis::Latitude => "d/lat",
                    Axis::Longitude => "d/longitude",
                };
                let t = DateTime::from_timestamp_micros(h.micros).unwrap();
                forks[k].reading(t, series, Value::Number(h.value));
            }
        }
        let mut it = forks.into_iter();
        let mut first = it.next().unwrap();
        for f in it {
            first.merge(f);
        }
        first.finish()
    }

    #[test]
    fn a_long_track_keeps_its_newest_points_in_bounded_memory() {
        // 10 000 reports a minute apart, of which every tenth is at home.
        let halves: Vec<Half> = (0..10_000i64)
            .flat_map(|i| {
                let at_home = i % 10 == 0;
                let (y, x) = if at_home {
                    (-34.92, 138.60)
                } else {
                    (-34.0 - i as f64 * 1e-4, 138.0)
                };
                [lat(i * 60 * S, y), lon(i * 60 * S + 500, x)]
            })
            .collect();
        let all = fed(&halves, 100_000, 1);
        assert_eq!(all.points.len(), 9_000);
        assert!(!all.truncated);
        let newest = fed(&halves, 50, 1);
        assert!(newest.truncated);
        assert_eq!(newest.points[..], all.points[all.points.len() - 50..]);
        for parts in [2, 3, 7] {
            assert_eq!(fed(&halves, 50, parts), newest, "{parts} parts");
            assert_eq!(fed(&halves, 100_000, parts), all, "{parts} parts");
        }
    }

    proptest! {
        /// Whatever the halves and however the read is split: the answer is what pairing all
        /// of them gives (its newest `limit` points), never a private point, oldest first.
        #[test]
        fn fed_in_parts_it_answers_what_pairing_gives(
            raw in proptest::collection::vec(
                (0i64..600, any::<bool>(), prop_oneof![Just(0u8), Just(1u8), Just(2u8)]),
                0..200),
            limit in 1usize..40,
            parts in 1usize..4,
        ) {
            // Times in seconds with sub-second jitter; places at home, away, or impossible.
            let mut t = 0i64;
            let halves: Vec<Half> = raw.iter().enumerate().map(|(i, (dt, is_lat, place))| {
                t += dt * 10_000;
                let (y, x) = match place { 0 => (-34.92, 138.60), 1 => (-34.5, 138.1), _ => (95.0, 200.0) };
                let v = if *is_lat { y } else { x } + i as f64 * 1e-9;
                if *is_lat { lat(t, v) } else { lon(t, v) }
            }).collect();
            let got = fed(&halves, limit, parts);
            let mut all = numbered(halves.clone());
            let want = pair(&mut all, 2 * S, &PrivateAreas::example_home());
            let keep = want.len().min(limit);
            prop_assert_eq!(&got.points[..], &want[want.len() - keep..]);
            prop_assert_eq!(got.truncated, want.len() > limit);
            let areas = PrivateAreas::example_home();
            for p in &got.points {
                prop_assert!(areas.find(p.lon, p.lat).is_none());
                prop_assert!(p.lat.abs() <= 90.0 && p.lon.abs() <= 180.0);
            }
            prop_assert!(got.points.windows(2).all(|w| w[0].micros <= w[1].micros));
        }

        /// Pruned often (a few halves of room), the answer still holds at most `limit`
        /// points, oldest first, each a latitude and a longitude that were read, none private.
        #[test]
        fn pruned_it_stays_small_and_private(
            raw in proptest::collection::vec(
                (0i64..600, any::<bool>(), any::<bool>()), 0..300),
            limit in 1usize..10,
            parts in 1usize..4,
        ) {
            let mut t = 0i64;
            let halves: Vec<Half> = raw.iter().enumerate().map(|(i, (dt, is_lat, home))| {
                t += dt * 10_000;
                let (y, x) = if *home { (-34.92, 138.60) } else { (-34.5, 138.1) };
                let v = if *is_lat { y } else { x } + i as f64 * 1e-9;
                if *is_lat { lat(t, v) } else { lon(t, v) }
            }).collect();
            let got = fed_in(&halves, limit, parts, 0);
            prop_assert!(got.points.len() <= limit);
            let areas = PrivateAreas::example_home();
            for p in &got.points {
                prop_assert!(areas.find(p.lon, p.lat).is_none());
                prop_assert!(halves.iter().any(|h| h.axis == Axis::Latitude && h.value == p.lat));
                prop_assert!(halves.iter().any(|h| h.axis == Axis::Longitude && h.value == p.lon));
            }
            prop_assert!(got.points.windows(2).all(|w| w[0].micros <= w[1].micros));
        }
    }
}
