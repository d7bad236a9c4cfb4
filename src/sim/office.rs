//! An office on smart plugs: workplaces, meeting rooms and printers on two floors, what the
//! energy statistics are for (`increase` of the meters, `integral` of the power, by room and
//! floor, within and outside office hours).
//!
//! Topics follow the place: `office/floor<F>/<room>/<plug>/…`. Half the plugs are Tasmota
//! (`…/tele/SENSOR`, `{"ENERGY":{"Total":kWh,"Power":W,…}}`, the counter kept across reboots),
//! half Shelly Gen2 (`…/status/switch:0`, `{"apower":W,"aenergy":{"total":Wh,…}}`, the counter
//! back to zero at a reboot). Every plug publishes its power every `power_interval` and its
//! counter with it every `meter_interval`, in simulated time.
//!
//! Loads follow office hours in the local zone (Monday to Friday, 08:00 to 18:00): a workplace
//! draws 60–120 W while someone works at it and 2 W on standby, a meeting room 150–250 W while
//! booked, a printer 15 W all day and night (the waste the statistics are meant to show) and
//! 400 W while printing. Plugs reboot now and then (a Shelly's counter starts again) and drop
//! offline for a while (nothing published; the meter keeps counting).
//!
//! At `--speed 1s` a meter's growth equals the integral of the power it published; sped up,
//! the records are logged at wall-clock time while the meters count simulated time.

use super::{Generator, Message, Next, Speed};
use chrono::{DateTime, Datelike, Local, Timelike, Utc, Weekday};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Duration;

/// The `[[payload.json]]` rules that read the office's documents: Tasmota's `tele/SENSOR`
/// (`ENERGY.Total` kWh, `ENERGY.Power` W) and Shelly Gen2's `status/switch:0`
/// (`aenergy.total` Wh, `apower` W), under `office/<floor>/<room>/<plug>/`.
pub const PAYLOAD_RULES: &str = r#"[[payload.json]]
topics = "office/+/+/+/tele/SENSOR"
fields = ["ENERGY.Total", "ENERGY.Power"]

[[payload.json]]
topics = "office/+/+/+/status/switch:0"
fields = ["aenergy.total", "apower"]
"#;

/// The office's shape and pace.
#[derive(Debug, Clone)]
pub struct OfficeOptions {
    /// Floors (`floor1`, `floor2`, …).
    pub floors: usize,
    /// Workplaces per floor, two rooms of them (`room1`, `room2`).
    pub workplaces: usize,
    /// Simulated time between two power readings of a plug.
    pub power_interval: Duration,
    /// Simulated time between two counter readings (rounded to whole power intervals).
    pub meter_interval: Duration,
    /// How fast simulated time runs.
    pub speed: Speed,
    /// Simulated time at the start.
    pub start: DateTime<Utc>,
    /// Seed of every random choice.
    pub seed: u64,
    /// Mean simulated time between two reboots of a plug.
    pub reboot_every: Duration,
    /// Mean simulated time between two dropouts of a plug, and how long one lasts.
    pub offline_every: Duration,
    /// See `offline_every`.
    pub offline_for: Duration,
}

impl Default for OfficeOptions {
    fn default() -> Self {
        OfficeOptions {
            floors: 2,
            workplaces: 4,
            power_interval: Duration::from_secs(10),
            meter_interval: Duration::from_secs(60),
            speed: Speed::REAL_TIME,
            start: Utc::now(),
            seed: 1,
            reboot_every: Duration::from_secs(3 * 86_400),
            offline_every: Duration::from_secs(86_400),
            offline_for: Duration::from_secs(10 * 60),
        }
    }
}

/// What a plug powers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Load {
    /// A desk: a computer and a screen.
    Workplace,
    /// A meeting room's screen and projector.
    Meeting,
    /// A printer: idles at 15 W day and night.
    Printer,
}

/// The firmware, which decides the topic and the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    /// `tele/SENSOR`, counter in kWh, kept across reboots.
    Tasmota,
    /// `status/switch:0`, counter in Wh, reset by a reboot.
    Shelly,
}

/// One plug.
#[derive(Debug, Clone)]
pub struct Plug {
    /// `office/floor1/room1/desk1`.
    pub prefix: String,
    /// What it powers.
    pub load: Load,
    /// Its firmware.
    pub firmware: Firmware,
    /// Energy since the counter last started, Wh.
    counter: f64,
    /// Power now, W.
    power: f64,
    /// Whether someone works at it (a workplace) or a meeting is on (a room) right now.
    busy: bool,
    /// Simulated time it comes back online at.
    offline_until: Option<DateTime<Utc>>,
}

impl Plug {
    /// The topic it publishes on.
    pub fn topic(&self) -> String {
        match self.firmware {
            Firmware::Tasmota => format!("{}/tele/SENSOR", self.prefix),
            Firmware::Shelly => format!("{}/status/switch:0", self.prefix),
        }
    }

    /// Its document, with the counter when `meter`.
    fn document(&self, now: DateTime<Utc>, meter: bool) -> String {
        let w = (self.power * 10.0).round() / 10.0;
        let amps = (w / 230.0 * 1000.0).round() / 1000.0;
        match self.firmware {
            Firmware::Tasmota => {
                let time = now.format("%Y-%m-%dT%H:%M:%S");
                let total = if meter {
                    format!("\"Total\":{:.5},", self.counter / 1000.0)
                } else {
                    String::new()
                };
                format!(
                    "{{\"Time\":\"{time}\",\"ENERGY\":{{{total}\"Power\":{w},\"Voltage\":230,\"Current\":{amps}}}}}"
                )
            }
            Firmware::Shelly => {
                let total = if meter {
                    format!(
                        ",\"aenergy\":{{\"total\":{:.3},\"minute_ts\":{}}}",
                        self.counter,
                        now.timestamp()
                    )
                } else {
                    String::new()
                };
                format!(
                    "{{\"id\":0,\"source\":\"timer\",\"output\":true,\"apower\":{w},\"voltage\":230.0,\"current\":{amps}{total}}}"
                )
            }
        }
    }
}

/// Whether `t` is in office hours (Monday to Friday, 08:00 to 18:00 local time).
pub fn office_hours(t: DateTime<Utc>) -> bool {
    let local = t.with_timezone(&Local);
    !matches!(local.weekday(), Weekday::Sat | Weekday::Sun) && (8..18).contains(&local.hour())
}

/// The office: its plugs and the simulated clock.
#[derive(Debug)]
pub struct Office {
    opts: OfficeOptions,
    plugs: Vec<Plug>,
    rng: StdRng,
    /// Power rounds done.
    rounds: u64,
}

impl Office {
    /// An office of `opts`.
    pub fn new(opts: OfficeOptions) -> Self {
        let mut plugs = Vec::new();
        for f in 1..=opts.floors {
            let mut add = |room: &str, name: String, load: Load| {
                let firmware = if plugs.len() % 2 == 0 {
                    Firmware::Tasmota
                } else {
                    Firmware::Shelly
                };
                plugs.push(Plug {
                    prefix: format!("office/floor{f}/{room}/{name}"),
                    load,
                    firmware,
                    counter: 0.0,
                    power: 0.0,
                    busy: false,
                    offline_until: None,
                });
            };
            for w in 1..=opts.workplaces {
                let room = if w * 2 <= opts.workplaces {
                    "room1"
                } else {
                    "room2"
                };
                add(room, format!("desk{w}"), Load::Workplace);
            }
            add("meeting", "screen".into(), Load::Meeting);
            add("corridor", "printer".into(), Load::Printer);
        }
        let rng = StdRng::seed_from_u64(opts.seed);
        Office {
            opts,
            plugs,
            rng,
            rounds: 0,
        }
    }

    /// The plugs.
    pub fn plugs(&self) -> &[Plug] {
        &self.plugs
    }

    /// One power round at simulated time `now`, `step` after the last: every plug's energy
    /// over the step at its power, its new power, and what it publishes.
    fn round(&mut self, now: DateTime<Utc>, step: Duration, out: &mut Vec<Message>) {
        let per_meter = (self.opts.meter_interval.as_secs_f64()
            / self.opts.power_interval.as_secs_f64().max(1e-3))
        .round()
        .max(1.0) as u64;
        let meter = self.rounds.is_multiple_of(per_meter);
        let hours = office_hours(now);
        let p = |every: Duration| (step.as_secs_f64() / every.as_secs_f64().max(1.0)).min(1.0);
        let (reboot, offline) = (p(self.opts.reboot_every), p(self.opts.offline_every));
        for plug in &mut self.plugs {
            // The energy of the step, at the power it drew (the trapezoid of the readings
            // published at both ends, as the read API integrates them).
            let before = plug.power;
            plug.power = power(plug, hours, &mut self.rng);
            plug.counter += (before + plug.power) / 2.0 * step.as_secs_f64() / 3600.0;
            if let Some(until) = plug.offline_until {
                if now < until {
                    continue;
                }
                plug.offline_until = None;
            }
            if self.rng.random_bool(reboot) && plug.firmware == Firmware::Shelly {
                plug.counter = 0.0;
            }
            if self.rng.random_bool(offline) {
                plug.offline_until = Some(
                    now + chrono::Duration::from_std(self.opts.offline_for).unwrap_or_default(),
                );
                continue;
            }
            out.push(Message::new(plug.topic(), plug.document(now, meter)));
        }
        self.rounds += 1;
    }
}

/// A plug's power now: its load's curve, with some noise.
fn power(plug: &mut Plug, hours: bool, rng: &mut StdRng) -> f64 {
    match plug.load {
        // Someone arrives or leaves now and then; nobody works out of hours.
        Load::Workplace => attended(plug, hours, rng, 0.01, 0.8, 60.0..120.0, 2.0),
        Load::Meeting => attended(plug, hours, rng, 0.005, 0.5, 150.0..250.0, 1.0),
        Load::Printer => {
            if hours && rng.random_bool(0.02) {
                400.0
            } else {
                15.0
            }
        }
    }
}

/// The power of a load people switch on and off (a desk, a meeting room): at each reading,
/// with probability `change`, it is taken up again (with probability `taken`, in office hours
/// only); out of hours it is left. In use it draws from `range`, else `standby`.
fn attended(
    plug: &mut Plug,
    hours: bool,
    rng: &mut StdRng,
    change: f64,
    taken: f64,
    range: std::ops::Range<f64>,
    standby: f64,
) -> f64 {
    if rng.random_bool(change) {
        plug.busy = hours && rng.random_bool(taken);
    }
    if !hours {
        plug.busy = false;
    }
    if plug.busy {
        rng.random_range(range)
    } else {
        standby
    }
}

impl Generator for Office {
    fn poll(&mut self, elapsed: Duration, out: &mut Vec<Message>) -> Next {
        let interval = self.opts.speed.wall(self.opts.power_interval);
        let interval = interval.max(Duration::from_millis(1));
        let due = interval.saturating_mul(u32::try_from(self.rounds).unwrap_or(u32::MAX));
        if elapsed >= due {
            let simulated = self.opts.power_interval * u32::try_from(self.rounds).unwrap_or(0);
            let now = self.opts.start + chrono::Duration::from_std(simulated).unwrap_or_default();
            let step = if self.rounds == 0 {
                Duration::ZERO
            } else {
                self.opts.power_interval
            };
            self.round(now, step, out);
        }
        Next::At(interval.saturating_mul(u32::try_from(self.rounds).unwrap_or(u32::MAX)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::{Extractor, FieldPath, JsonRule};
    use crate::topic::Filters;

    fn office(seed: u64, reboot_every: u64) -> Office {
        Office::new(OfficeOptions {
            start: DateTime::parse_from_rfc3339("2026-11-23T00:00:00Z")
                .unwrap()
                .to_utc(),
            seed,
            reboot_every: Duration::from_secs(reboot_every),
            offline_every: Duration::from_secs(1 << 40),
            ..OfficeOptions::default()
        })
    }

    /// A simulated day: every message with its simulated time.
    fn day(o: &mut Office) -> Vec<(DateTime<Utc>, Message)> {
        let mut all = Vec::new();
        let interval = o.opts.power_interval;
        for i in 0..(86_400 / interval.as_secs()) {
            let mut out = Vec::new();
            o.poll(interval * i as u32, &mut out);
            let t = o.opts.start + chrono::Duration::seconds((i * interval.as_secs()) as i64);
            all.extend(out.into_iter().map(|m| (t, m)));
        }
        all
    }

    fn extractor() -> Extractor {
        Extractor::new(vec![
            JsonRule {
                topics: Filters::of(&["office/+/+/+/tele/SENSOR"]),
                fields: vec![
                    FieldPath::new("ENERGY.Total").unwrap(),
                    FieldPath::new("ENERGY.Power").unwrap(),
                ],
            },
            JsonRule {
                topics: Filters::of(&["office/+/+/+/status/switch:0"]),
                fields: vec![
                    FieldPath::new("aenergy.total").unwrap(),
                    FieldPath::new("apower").unwrap(),
                ],
            },
        ])
    }

    #[test]
    fn plugs_on_two_floors_in_both_firmwares() {
        let o = office(1, 1 << 40);
        assert_eq!(o.plugs().len(), 12);
        let topics: Vec<String> = o.plugs().iter().map(Plug::topic).collect();
        assert!(topics.contains(&"office/floor1/room1/desk1/tele/SENSOR".to_owned()));
        assert!(topics.contains(&"office/floor2/corridor/printer/status/switch:0".to_owned()));
    }

    #[test]
    fn meters_count_what_the_power_says_and_shelly_reboots_reset_them() {
        let mut o = office(3, 86_400 / 2);
        let x = extractor();
        let mut series: std::collections::BTreeMap<String, Vec<(i64, f64)>> = Default::default();
        for (t, m) in day(&mut o) {
            let mut got = Vec::new();
            x.readings(&m.topic, &m.payload, &mut got).unwrap();
            assert!(
                !got.is_empty(),
                "{}: {:?}",
                m.topic,
                String::from_utf8_lossy(&m.payload)
            );
            for r in got {
                series
                    .entry(r.series)
                    .or_default()
                    .push((t.timestamp(), r.value));
            }
        }
        let mut resets = 0;
        for (name, readings) in &series {
            if !(name.ends_with("Total") || name.ends_with("total")) {
                continue;
            }
            // Counters every minute; Tasmota's never go back, a Shelly's may (a reboot).
            assert!(readings.len() > 1000, "{name}: {}", readings.len());
            let back = readings.windows(2).filter(|w| w[1].1 < w[0].1).count();
            if name.ends_with("Total") {
                assert_eq!(back, 0, "{name}");
            }
            resets += back;
        }
        assert!(
            resets > 0,
            "no Shelly rebooted in a day at one reboot per half day"
        );
        // Out of hours a printer idles at 15 W.
        let printer = &series["office/floor1/corridor/printer/status/switch:0/apower"];
        let night: Vec<f64> = printer
            .iter()
            .filter(|(t, _)| !office_hours(DateTime::from_timestamp(*t, 0).unwrap()))
            .map(|(_, w)| *w)
            .collect();
        assert!(night.len() > 1000 && night.iter().all(|w| *w == 15.0));
    }

    #[test]
    fn a_tasmota_meter_grows_by_the_integral_of_its_power() {
        let mut o = office(5, 1 << 40);
        let x = extractor();
        let (mut total, mut power) = (Vec::new(), Vec::new());
        for (t, m) in day(&mut o) {
            if !m.topic.starts_with("office/floor1/room1/desk1/") {
                continue;
            }
            let mut got = Vec::new();
            x.readings(&m.topic, &m.payload, &mut got).unwrap();
            for r in got {
                let v = (t.timestamp(), r.value);
                if r.series.ends_with("Total") {
                    total.push(v);
                } else {
                    power.push(v);
                }
            }
        }
        let (first, last) = (total[0], total[total.len() - 1]);
        let wh: f64 = power
            .windows(2)
            .filter(|w| w[0].0 >= first.0 && w[1].0 <= last.0)
            .map(|w| (w[0].1 + w[1].1) / 2.0 * (w[1].0 - w[0].0) as f64 / 3600.0)
            .sum();
        // The published values are rounded (0.1 W, 0.01 Wh): close, not equal.
        let kwh = last.1 - first.1;
        assert!(
            (kwh * 1000.0 - wh).abs() < 0.02 * wh + 1.0,
            "meter {kwh} kWh, power {wh} Wh"
        );
        assert!(wh > 100.0, "a working day at a desk: {wh} Wh");
    }
}
