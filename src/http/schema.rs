//! The shapes of the daemon's JSON bodies, for the API document.
//!
//! The answers are the types the handlers serialize, so the document describes what is sent.
//! The request bodies are described here and parsed by hand ([`super::reading`],
//! [`super::telegraf`], [`super::owntracks`], [`super::command`]), which give each refusal its
//! own code and message; Schemathesis (tests/openapi.rs) sends what these schemas allow and
//! what they do not, and checks the answers.
//!
//! The request types are never built: only their schemas are used.
#![allow(dead_code)]

use serde::Serialize;
use utoipa::ToSchema;

/// What became of a batch of readings: every message was acknowledged by the broker.
#[derive(Debug, Serialize, ToSchema)]
pub struct Published {
    /// Messages published (acknowledged by the broker).
    pub published: usize,
    /// Of them, readings whose device timestamp is older than `stats.disorder`.
    pub late: usize,
    /// Location numbers withheld because they lie in a private area (two per location).
    pub private: usize,
}

/// OwnTracks' answer: the friends' locations to show, always none.
pub struct NoFriends;

impl utoipa::PartialSchema for NoFriends {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ArrayBuilder::new()
            .items(utoipa::openapi::schema::ObjectBuilder::new())
            .max_items(Some(0))
            .into()
    }
}

impl ToSchema for NoFriends {}

/// A command's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct CommandAnswer {
    /// Where the command was published.
    pub topic: String,
    /// What was published.
    pub payload: String,
    /// The device's answer; `null` when none was awaited.
    pub acked_by: Option<Acked>,
}

/// The answer that acknowledged a command.
#[derive(Debug, Serialize, ToSchema)]
pub struct Acked {
    /// Where it came.
    pub topic: String,
    /// What it said (invalid UTF-8 replaced).
    pub payload: String,
    /// Milliseconds from just before the command was published.
    pub after_ms: u64,
}

/// `/healthz`: the daemon is up, and whether the broker is connected.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`: an answer means the daemon is up.
    #[schema(pattern = "^ok$")]
    pub status: &'static str,
    /// The MQTT connection.
    pub broker: BrokerState,
}

/// Whether the daemon is connected to its broker.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BrokerState {
    /// Connected.
    Connected,
    /// Not (yet, or any more) connected: ingest answers 503.
    Disconnected,
}

/// What the dashboard needs beyond the data.
#[derive(Debug, Serialize, ToSchema)]
pub struct Settings<'a> {
    /// The `[[http.device]]`s, for on/off buttons.
    pub devices: Vec<Device<'a>>,
    /// `alerts.events_topic`: where alert transitions are published.
    pub alerts_topic: &'a str,
    /// The `[[calendar]]` names.
    pub calendars: &'a [String],
    /// `http.map_tiles`: the tile URL the location view draws under a track (`{z}`, `{x}`,
    /// `{y}`); `null`: none, nothing is fetched from outside.
    pub map_tiles: Option<&'a str>,
    /// `http.map_attribution`: the text shown with the tiles.
    pub map_attribution: Option<&'a str>,
    /// `status.topic_prefix` while the programs report their health; `null`: they do not.
    pub status_prefix: Option<&'a str>,
}

/// One `[[http.device]]`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Device<'a> {
    /// The name commands use.
    pub name: &'a str,
    /// Where its commands are published.
    pub command_topic: &'a str,
    /// Where it answers with its state.
    pub state_topic: &'a str,
}

/// `POST /api/v1/readings` in JSON: one reading, a device's reading, or an array of both.
#[derive(ToSchema)]
#[serde(untagged)]
pub enum Readings {
    /// One reading.
    One(TopicReading),
    /// A phone app's body.
    Device(DeviceReading),
    /// Several, published together or not at all.
    Many(Vec<AnyReading>),
}

/// An element of an array of readings.
#[derive(ToSchema)]
#[serde(untagged)]
pub enum AnyReading {
    /// Topic form.
    One(TopicReading),
    /// Device form.
    Device(DeviceReading),
}

/// The topic form: one value for one topic.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TopicReading {
    /// A plain topic one can publish to (no `+`, `#`, empty level or leading `$`).
    #[schema(min_length = 1, max_length = 65535)]
    topic: String,
    /// The value: a finite number, a boolean or a string.
    value: Scalar,
}

/// A reading's value.
#[derive(ToSchema)]
#[serde(untagged)]
pub enum Scalar {
    /// A finite number, published in its shortest form.
    Number(f64),
    /// `true` or `false`.
    Bool(bool),
    /// Published as it is.
    Text(String),
}

/// The device form: each leaf of `properties` becomes a message on
/// `<ingest_prefix>/<device_id>/<path>`.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceReading {
    /// One topic level (a string or a number).
    device_id: DeviceId,
    /// Unix seconds (above 10^11: milliseconds) or RFC 3339: checked against
    /// `stats.disorder` (late readings are counted), not used as the record's time.
    #[schema(required = false)]
    device_timestamp: Option<Timestamp>,
    /// Nested objects whose leaves are numbers, booleans, strings or `null` (skipped); no
    /// arrays. A `latitude`/`longitude` pair inside a private area is withheld.
    #[schema(value_type = Object)]
    properties: (),
}

/// A device's name: one topic level.
#[derive(ToSchema)]
#[serde(untagged)]
pub enum DeviceId {
    /// Not empty, no `/`, `+` or `#`.
    Name(String),
    /// A number, written as JSON writes it.
    Number(f64),
}

/// A device's timestamp.
#[derive(ToSchema)]
#[serde(untagged)]
pub enum Timestamp {
    /// Unix seconds, or milliseconds above 10^11.
    Unix(f64),
    /// RFC 3339.
    #[schema(format = DateTime)]
    Text(String),
}

/// Telegraf's `outputs.http` batch (`data_format = "json"`).
#[derive(ToSchema)]
pub struct TelegrafBatch {
    /// The metrics: each field becomes one message on
    /// `<ingest_prefix>/<host>/<name>[/<tag value>…]/<field>`.
    metrics: Vec<TelegrafMetric>,
}

/// One Telegraf metric.
#[derive(ToSchema)]
pub struct TelegrafMetric {
    /// The measurement (`cpu`).
    name: String,
    /// Tag values; `host` is the device level, the others follow in key order.
    #[schema(required = false)]
    tags: Option<std::collections::BTreeMap<String, String>>,
    /// Field values: numbers, booleans, strings or `null` (skipped); no arrays or objects.
    fields: std::collections::BTreeMap<String, Field>,
    /// Seconds, milliseconds, microseconds or nanoseconds since the Unix epoch.
    #[schema(required = false)]
    timestamp: Option<f64>,
}

/// A Telegraf field's value: a reading, or `null` (skipped).
pub struct Field;

impl utoipa::PartialSchema for Field {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        OneOfBuilder::new()
            .item(utoipa::openapi::Ref::from_schema_name(Scalar::name()))
            .item(ObjectBuilder::new().schema_type(Type::Null))
            .into()
    }
}

impl ToSchema for Field {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        schemas.push((
            Scalar::name().into(),
            <Scalar as utoipa::PartialSchema>::schema(),
        ));
    }
}

/// An OwnTracks message (HTTP mode). A `_type` of `location` becomes one message per field on
/// `<ingest_prefix>/owntracks/<user>/<device>/<field>`; other types are answered `[]` and not
/// recorded.
#[derive(ToSchema)]
pub struct OwnTracksMessage {
    /// `location`, `transition`, `waypoint`, `card`, …: only a location is recorded.
    #[schema(rename = "_type", required = false)]
    kind: String,
    /// Latitude (WGS84).
    #[schema(required = false)]
    lat: f64,
    /// Longitude (WGS84).
    #[schema(required = false)]
    lon: f64,
    /// When the location was fixed, Unix seconds.
    #[schema(required = false)]
    tst: f64,
}

/// One event of the live stream.
#[derive(ToSchema)]
pub struct LiveEvent {
    /// `reading`, or `lagged` when this client fell behind and lost events.
    event: LiveEventKind,
    /// `reading`: `{"topic", "value", "at"}` as JSON (`value` a number when the payload is
    /// one finite number, else its text cut to 256 bytes; `at` when the daemon received it);
    /// `lagged`: the number of events lost.
    data: String,
}

/// The kinds of live events.
#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LiveEventKind {
    /// A message the broker delivered.
    Reading,
    /// Events this client lost.
    Lagged,
}

/// A command: to a topic (optionally awaiting an answer), or to a `[[http.device]]`.
#[derive(ToSchema)]
#[serde(untagged)]
pub enum CommandBody {
    /// To a topic.
    Topic(TopicCommand),
    /// To a configured device, awaited on its state topic.
    Device(DeviceCommand),
}

/// A command to a topic.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TopicCommand {
    /// A plain topic within the token's `topics`.
    #[schema(min_length = 1)]
    topic: String,
    /// Published as it is (a number or boolean as JSON writes it).
    payload: Scalar,
    /// Wait for a device's answer before answering.
    #[schema(required = false)]
    r#await: Option<AwaitAnswer>,
}

/// The answer a topic command waits for.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AwaitAnswer {
    /// A topic or filter.
    #[schema(min_length = 1)]
    topic: String,
    /// The payload that counts, exactly; any without it.
    #[schema(required = false)]
    payload: Option<Scalar>,
    /// How long to wait (`1500ms`, `3s`), above zero, at most `2m`; default
    /// `http.command_timeout`.
    #[schema(required = false)]
    timeout: Option<String>,
}

/// A command to a configured device.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceCommand {
    /// A `[[http.device]]` name.
    device: String,
    /// Published on its command topic; its state must come back the same, in any case
    /// (any state for `TOGGLE`).
    payload: Scalar,
    /// How long to wait, as `await.timeout`.
    #[schema(required = false)]
    timeout: Option<String>,
}
