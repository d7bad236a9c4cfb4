//! A fleet of ESPEasy-style devices: DHT22 and BME280 climate sensors on daily curves with
//! noise, PIR motion sensors, and the ESPEasy last will on `<device>/status/LWT`.
//!
//! Topics follow the IoTitan convention `iotitan/home/<room>/<sensor>/<attribute>`, payloads
//! are plain numbers with the sensor's resolution, as ESPEasy publishes them. The fleet shares
//! one MQTT connection, so the broker cannot publish each device's will: the fleet publishes
//! `Connection Lost` itself when a device drops out or the simulation stops.
//!
//! Smart plugs (`--plugs`) are Tasmota-style switches at `iotitan/home/<room>/plug<N>`: they
//! take `ON`, `OFF`, `TOGGLE` (or `1`, `0`, any case) on `…/cmnd/POWER` and answer with the
//! new state on `…/stat/POWER`, as Tasmota does; a muted plug (`--mute-plugs`, the last ones)
//! takes commands and never answers, like one that lost its power.

use super::{Generator, Message, Next, Speed, gaussian};
use chrono::{DateTime, Timelike, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::f64::consts::TAU;
use std::time::Duration;

/// Payload of the last will while a device is online.
pub const LWT_CONNECTED: &str = "Connected";
/// Payload of the last will once a device is gone.
pub const LWT_LOST: &str = "Connection Lost";

const ROOMS: [&str; 8] = [
    "living", "kitchen", "bed1", "bed2", "bath", "office", "hall", "garage",
];

/// What a fleet looks like and how it behaves.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    /// Number of devices; they fill the rooms with a DHT22 first, then a BME280, then a PIR.
    pub devices: usize,
    /// Number of rooms.
    pub rooms: usize,
    /// Wall-clock time between two readings of a device.
    pub interval: Duration,
    /// How fast simulated time runs (the daily curves follow it).
    pub speed: Speed,
    /// Simulated time at the start.
    pub start: DateTime<Utc>,
    /// Seed of every random choice.
    pub seed: u64,
    /// Probability per device and reading that the device drops out (to trip stale alerts).
    pub dropout: f64,
    /// Wall-clock length of a dropout.
    pub dropout_len: Duration,
    /// Smart plugs that answer their commands.
    pub plugs: usize,
    /// Of the plugs, how many (the last ones) never answer.
    pub mute_plugs: usize,
}

impl Default for FleetOptions {
    fn default() -> Self {
        FleetOptions {
            devices: 6,
            rooms: 3,
            interval: Duration::from_secs(5),
            speed: Speed::REAL_TIME,
            start: Utc::now(),
            seed: 1,
            dropout: 0.0,
            dropout_len: Duration::from_secs(60),
            plugs: 0,
            mute_plugs: 0,
        }
    }
}

/// The sensor hardware a device carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Temperature (0.1 °C) and humidity (0.1 %).
    Dht22,
    /// Temperature (0.01 °C), humidity (0.1 %) and pressure (0.01 hPa).
    Bme280,
    /// Motion: `1` when triggered, `0` once the hold time is over.
    Pir,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Dht22 => "dht22",
            Kind::Bme280 => "bme280",
            Kind::Pir => "pir",
        }
    }
}

/// A device's climate: base level, daily swing and slow drift.
#[derive(Debug, Clone)]
struct Climate {
    base_temp: f64,
    swing: f64,
    peak_hour: f64,
    base_humidity: f64,
    pressure_phase: f64,
    drift: f64,
}

#[derive(Debug, Clone)]
struct Device {
    kind: Kind,
    /// `iotitan/home/<room>/<sensor>`.
    prefix: String,
    climate: Climate,
    /// PIR: the state last published.
    motion: Option<bool>,
    /// PIR: motion reported until this simulated time.
    motion_until: DateTime<Utc>,
    /// Offline until this wall-clock time (since the start).
    offline_until: Option<Duration>,
}

/// A Tasmota-style smart plug.
#[derive(Debug, Clone)]
struct Plug {
    /// `iotitan/home/<room>/plug<N>`.
    prefix: String,
    on: bool,
    mute: bool,
}

impl Plug {
    fn command_topic(&self) -> String {
        format!("{}/cmnd/POWER", self.prefix)
    }

    fn state(&self) -> Message {
        Message::new(
            format!("{}/stat/POWER", self.prefix),
            if self.on { "ON" } else { "OFF" },
        )
    }
}

/// The fleet generator.
pub struct Fleet {
    opts: FleetOptions,
    devices: Vec<Device>,
    plugs: Vec<Plug>,
    rng: StdRng,
    /// Index of the next reading round.
    next_round: u64,
}

impl Fleet {
    /// A fleet laid out from `opts`.
    pub fn new(opts: FleetOptions) -> Self {
        let mut rng = StdRng::seed_from_u64(opts.seed);
        let rooms = opts.rooms.max(1);
        let mut devices: Vec<Device> = Vec::with_capacity(opts.devices);
        for i in 0..opts.devices {
            let room = room_name(i % rooms);
            let kind = [Kind::Dht22, Kind::Bme280, Kind::Pir][(i / rooms) % 3];
            let same = devices
                .iter()
                .filter(|d| {
                    d.kind == kind && d.prefix.starts_with(&format!("iotitan/home/{room}/"))
                })
                .count();
            let sensor = match same {
                0 => kind.name().to_owned(),
                n => format!("{}_{}", kind.name(), n + 1),
            };
            let climate = Climate {
                base_temp: rng.random_range(18.5..23.0),
                swing: rng.random_range(1.0..3.0),
                peak_hour: rng.random_range(14.0..17.0),
                base_humidity: rng.random_range(40.0..60.0),
                pressure_phase: rng.random_range(0.0..TAU),
                drift: 0.0,
            };
            devices.push(Device {
                kind,
                prefix: format!("iotitan/home/{room}/{sensor}"),
                climate,
                motion: None,
                motion_until: DateTime::<Utc>::MIN_UTC,
                offline_until: None,
            });
        }
        let plugs = (0..opts.plugs)
            .map(|i| Plug {
                prefix: format!("iotitan/home/{}/plug{}", room_name(i % rooms), i + 1),
                on: false,
                mute: i >= opts.plugs.saturating_sub(opts.mute_plugs),
            })
            .collect();
        Fleet {
            opts,
            devices,
            plugs,
            rng,
            next_round: 0,
        }
    }

    /// Every topic a reading can be published on, for views and configs.
    pub fn topics(&self) -> Vec<String> {
        self.devices
            .iter()
            .flat_map(|d| {
                attributes(d.kind)
                    .iter()
                    .map(move |a| format!("{}/{a}", d.prefix))
            })
            .collect()
    }

    fn round(&mut self, elapsed: Duration, out: &mut Vec<Message>) {
        let now = self.opts.start
            + chrono::Duration::from_std(self.opts.speed.simulated(elapsed)).unwrap_or_default();
        let step = self.opts.speed.simulated(self.opts.interval);
        for d in &mut self.devices {
            if let Some(until) = d.offline_until {
                if elapsed < until {
                    continue;
                }
                d.offline_until = None;
                out.push(Message::retained(lwt(&d.prefix), LWT_CONNECTED));
            }
            if self.opts.dropout > 0.0 && self.rng.random_bool(self.opts.dropout.min(1.0)) {
                d.offline_until = Some(elapsed + self.opts.dropout_len);
                out.push(Message::retained(lwt(&d.prefix), LWT_LOST));
                continue;
            }
            read(d, now, step, &mut self.rng, out);
        }
    }
}

impl Generator for Fleet {
    fn poll(&mut self, elapsed: Duration, out: &mut Vec<Message>) -> Next {
        let interval = self.opts.interval.max(Duration::from_millis(1));
        if self.next_round == 0 {
            for d in &self.devices {
                out.push(Message::retained(lwt(&d.prefix), LWT_CONNECTED));
            }
            // Tasmota tells its state when it comes up.
            out.extend(self.plugs.iter().filter(|p| !p.mute).map(Plug::state));
        }
        let due = interval * u32::try_from(self.next_round).unwrap_or(u32::MAX);
        if elapsed >= due {
            // A device that fell behind does not catch up: it reads once, now.
            self.round(elapsed, out);
            let rounds = elapsed.as_nanos() / interval.as_nanos();
            self.next_round = u64::try_from(rounds).unwrap_or(u64::MAX - 1) + 1;
        }
        Next::At(interval * u32::try_from(self.next_round).unwrap_or(u32::MAX))
    }

    fn finish(&mut self, out: &mut Vec<Message>) {
        for d in &self.devices {
            if d.offline_until.is_none() {
                out.push(Message::retained(lwt(&d.prefix), LWT_LOST));
            }
        }
    }

    fn subscriptions(&self) -> Vec<String> {
        self.plugs.iter().map(Plug::command_topic).collect()
    }

    fn on_message(&mut self, topic: &str, payload: &[u8], out: &mut Vec<Message>) {
        let Some(plug) = self.plugs.iter_mut().find(|p| p.command_topic() == topic) else {
            return;
        };
        let word = String::from_utf8_lossy(payload).trim().to_ascii_uppercase();
        plug.on = match word.as_str() {
            "ON" | "1" => true,
            "OFF" | "0" => false,
            "TOGGLE" | "2" => !plug.on,
            // Tasmota answers a bare `POWER` with the state; anything else is ignored.
            "" => plug.on,
            _ => return,
        };
        if !plug.mute {
            out.push(plug.state());
        }
    }
}

fn room_name(i: usize) -> String {
    match ROOMS.get(i) {
        Some(r) => (*r).to_owned(),
        None => format!("room{}", i + 1),
    }
}

fn lwt(prefix: &str) -> String {
    format!("{prefix}/status/LWT")
}

fn attributes(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Dht22 => &["temperature", "humidity"],
        Kind::Bme280 => &["temperature", "humidity", "pressure"],
        Kind::Pir => &["motion"],
    }
}

/// Hours since midnight, with fractions.
fn hour_of_day(t: DateTime<Utc>) -> f64 {
    f64::from(t.num_seconds_from_midnight()) / 3600.0
}

/// The indoor temperature without noise: warmest in the afternoon, coolest before dawn.
fn daily_temperature(c: &Climate, t: DateTime<Utc>) -> f64 {
    c.base_temp + c.swing * (TAU * (hour_of_day(t) - c.peak_hour + 6.0) / 24.0).sin()
}

/// Sea-level pressure: a slow multi-day wave plus the small twice-daily atmospheric tide.
fn pressure(c: &Climate, t: DateTime<Utc>) -> f64 {
    let days = t.timestamp() as f64 / 86_400.0;
    1013.25
        + 6.0 * (TAU * days / 4.0 + c.pressure_phase).sin()
        + 0.6 * (TAU * hour_of_day(t) / 12.0).sin()
}

/// PIR triggers per hour: busy in the day, rare at night.
fn motion_rate(t: DateTime<Utc>) -> f64 {
    if (7.0..23.0).contains(&hour_of_day(t)) {
        6.0
    } else {
        0.5
    }
}

/// How long a PIR reports motion after a trigger.
const PIR_HOLD: chrono::Duration = chrono::Duration::seconds(90);

/// One reading of device `d` at simulated time `now`; `step` is the simulated time between
/// two readings.
fn read(
    d: &mut Device,
    now: DateTime<Utc>,
    step: Duration,
    rng: &mut StdRng,
    out: &mut Vec<Message>,
) {
    let c = &mut d.climate;
    c.drift = (0.98 * c.drift + 0.05 * gaussian(rng)).clamp(-1.0, 1.0);
    let clean = daily_temperature(c, now) + c.drift;
    let temp = clean + 0.08 * gaussian(rng);
    let humidity =
        (c.base_humidity - 2.0 * (clean - c.base_temp) + 0.4 * gaussian(rng)).clamp(0.0, 100.0);
    let topic = |a: &str| format!("{}/{a}", d.prefix);
    match d.kind {
        Kind::Dht22 => {
            out.push(Message::new(topic("temperature"), format!("{temp:.1}")));
            out.push(Message::new(topic("humidity"), format!("{humidity:.1}")));
        }
        Kind::Bme280 => {
            let p = pressure(c, now) + 0.05 * gaussian(rng);
            out.push(Message::new(topic("temperature"), format!("{temp:.2}")));
            out.push(Message::new(topic("humidity"), format!("{humidity:.1}")));
            out.push(Message::new(topic("pressure"), format!("{p:.2}")));
        }
        Kind::Pir => {
            let hours = step.as_secs_f64() / 3600.0;
            let chance = (1.0 - (-motion_rate(now) * hours).exp()).clamp(0.0, 1.0);
            if now >= d.motion_until && rng.random_bool(chance) {
                d.motion_until = now + PIR_HOLD;
            }
            // ESPEasy switches publish on change only (and their state once at start).
            let state = now < d.motion_until;
            if d.motion != Some(state) {
                d.motion = Some(state);
                out.push(Message::new(topic("motion"), if state { "1" } else { "0" }));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn opts() -> FleetOptions {
        FleetOptions {
            devices: 9,
            rooms: 3,
            interval: Duration::from_secs(1),
            start: Utc.with_ymd_and_hms(2026, 11, 22, 0, 0, 0).unwrap(),
            ..FleetOptions::default()
        }
    }

    #[test]
    fn plugs_answer_their_commands_and_muted_ones_do_not() {
        let mut f = Fleet::new(FleetOptions {
            devices: 0,
            rooms: 1,
            plugs: 2,
            mute_plugs: 1,
            ..opts()
        });
        assert_eq!(
            f.subscriptions(),
            [
                "iotitan/home/living/plug1/cmnd/POWER",
                "iotitan/home/living/plug2/cmnd/POWER"
            ]
        );
        let mut out = Vec::new();
        f.poll(Duration::ZERO, &mut out);
        assert_eq!(
            out,
            [Message::new("iotitan/home/living/plug1/stat/POWER", "OFF")]
        );
        let answer = |f: &mut Fleet, topic: &str, payload: &str| {
            let mut out = Vec::new();
            f.on_message(topic, payload.as_bytes(), &mut out);
            out.iter()
                .map(|m| String::from_utf8_lossy(&m.payload).into_owned())
                .collect::<Vec<_>>()
        };
        let p1 = "iotitan/home/living/plug1/cmnd/POWER";
        assert_eq!(answer(&mut f, p1, "on"), ["ON"]);
        assert_eq!(answer(&mut f, p1, "TOGGLE"), ["OFF"]);
        assert_eq!(answer(&mut f, p1, "1"), ["ON"]);
        assert_eq!(answer(&mut f, p1, ""), ["ON"]);
        assert!(answer(&mut f, p1, "blink").is_empty());
        assert!(answer(&mut f, "iotitan/home/living/plug2/cmnd/POWER", "ON").is_empty());
        assert!(answer(&mut f, "elsewhere", "ON").is_empty());
    }

    fn run(mut f: Fleet, rounds: u64) -> Vec<Message> {
        let mut out = Vec::new();
        for s in 0..rounds {
            f.poll(Duration::from_secs(s), &mut out);
        }
        f.finish(&mut out);
        out
    }

    fn values(msgs: &[Message], topic: &str) -> Vec<f64> {
        msgs.iter()
            .filter(|m| m.topic == topic)
            .map(|m| std::str::from_utf8(&m.payload).unwrap().parse().unwrap())
            .collect()
    }

    #[test]
    fn layout_fills_rooms_kind_by_kind() {
        let f = Fleet::new(FleetOptions {
            devices: 7,
            ..opts()
        });
        let prefixes: Vec<_> = f.devices.iter().map(|d| d.prefix.as_str()).collect();
        assert_eq!(
            prefixes,
            [
                "iotitan/home/living/dht22",
                "iotitan/home/kitchen/dht22",
                "iotitan/home/bed1/dht22",
                "iotitan/home/living/bme280",
                "iotitan/home/kitchen/bme280",
                "iotitan/home/bed1/bme280",
                "iotitan/home/living/pir",
            ]
        );
        let many = Fleet::new(FleetOptions {
            devices: 4,
            rooms: 1,
            ..opts()
        });
        let names: Vec<_> = many.devices.iter().map(|d| d.prefix.as_str()).collect();
        assert_eq!(names[3], "iotitan/home/living/dht22_2");
        assert_eq!(room_name(8), "room9");
    }

    #[test]
    fn same_seed_same_messages_other_seed_others() {
        let a = run(Fleet::new(opts()), 50);
        let b = run(Fleet::new(opts()), 50);
        assert_eq!(a, b);
        let c = run(Fleet::new(FleetOptions { seed: 2, ..opts() }), 50);
        assert_ne!(a, c);
    }

    #[test]
    fn last_wills_open_and_close_the_run() {
        let msgs = run(Fleet::new(opts()), 3);
        let lwt = "iotitan/home/living/dht22/status/LWT";
        let wills: Vec<_> = msgs.iter().filter(|m| m.topic == lwt).collect();
        assert_eq!(wills.len(), 2);
        assert!(wills.iter().all(|m| m.retain));
        assert_eq!(wills[0].payload, LWT_CONNECTED.as_bytes());
        assert_eq!(wills[1].payload, LWT_LOST.as_bytes());
        assert_eq!(msgs.first().unwrap().payload, LWT_CONNECTED.as_bytes());
    }

    #[test]
    fn readings_follow_a_daily_curve_within_sensor_ranges() {
        // One reading per simulated 10 minutes over two days.
        let f = Fleet::new(FleetOptions {
            speed: Speed::new(600.0).unwrap(),
            ..opts()
        });
        let msgs = run(f, 288);
        let t = values(&msgs, "iotitan/home/living/dht22/temperature");
        assert_eq!(t.len(), 288);
        assert!(t.iter().all(|v| (10.0..35.0).contains(v)), "{t:?}");
        // Afternoon (rounds 84..96 = 14:00..16:00) is warmer than before dawn (24..36).
        let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
        assert!(mean(&t[84..96]) > mean(&t[24..36]) + 1.0, "{t:?}");
        // Noise: consecutive readings are not all equal.
        assert!(t.windows(2).any(|w| w[0] != w[1]));
        let h = values(&msgs, "iotitan/home/kitchen/bme280/humidity");
        assert!(h.iter().all(|v| (0.0..=100.0).contains(v)));
        let p = values(&msgs, "iotitan/home/kitchen/bme280/pressure");
        assert!(p.iter().all(|v| (1000.0..1025.0).contains(v)), "{p:?}");
        // Resolution as the sensors publish it.
        let raw = msgs
            .iter()
            .find(|m| m.topic == "iotitan/home/living/dht22/temperature")
            .unwrap();
        let text = std::str::from_utf8(&raw.payload).unwrap();
        assert_eq!(text.split('.').nth(1).map(str::len), Some(1), "{text}");
    }

    #[test]
    fn motion_alternates_between_one_and_zero() {
        let f = Fleet::new(FleetOptions {
            speed: Speed::new(60.0).unwrap(),
            start: Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap(),
            ..opts()
        });
        let msgs = run(f, 2000);
        let m = values(&msgs, "iotitan/home/living/pir/motion");
        assert!(m.contains(&1.0), "{m:?}");
        assert!(m.windows(2).all(|w| w[0] != w[1]), "{m:?}");
    }

    #[test]
    fn dropouts_go_silent_between_lost_and_connected() {
        let f = Fleet::new(FleetOptions {
            devices: 1,
            dropout: 0.2,
            dropout_len: Duration::from_secs(5),
            ..opts()
        });
        let msgs = run(f, 200);
        let mut online = false;
        let mut lost = 0;
        for m in &msgs {
            match (m.topic.ends_with("/LWT"), m.payload.as_slice()) {
                (true, b"Connected") => online = true,
                (true, b"Connection Lost") => {
                    lost += usize::from(online);
                    online = false;
                }
                _ => assert!(online, "reading while offline: {m:?}"),
            }
        }
        assert!(lost > 3, "{lost}");
    }

    #[test]
    fn late_polls_skip_missed_rounds() {
        let mut f = Fleet::new(FleetOptions {
            devices: 1,
            ..opts()
        });
        let mut out = Vec::new();
        f.poll(Duration::ZERO, &mut out);
        let n = out.len();
        out.clear();
        let next = f.poll(Duration::from_millis(10_500), &mut out);
        assert_eq!(out.len(), n - 1, "one round, no will: {out:?}");
        assert_eq!(next, Next::At(Duration::from_secs(11)));
    }
}
