//! The HTTP side: the router, its handlers and the accept loop.
//!
//! Layers, outermost first: tracing (method, path, status, latency; never headers, so never a
//! token), compression, the JSON error shape for answers the layers make themselves, and the
//! body limit (`http.max_body`, 413). Handlers authorize before reading a body, so an unknown
//! client cannot make the daemon read a megabyte, and read the body within
//! `http.request_timeout` (408 and the connection closed for a client that stalls); hyper's
//! header timeout does the same for a client that stalls in its headers.
//!
//! Publishing is not under a timeout of the request: an answer cut short could not say what
//! was published, which is the one thing an ingest answer must say.

use super::auth::{self, Tokens};
use super::broker::{Broker, Partial};
use super::command;
use super::error::{self, ApiError};
use super::health::{Health as Pipeline, Program};
use super::live;
use super::metrics::Format;
use super::openapi::{self, CommandErrors, IngestErrors, Ingested, TokenErrors};
use super::reading::{self, Batch, Rules};
use super::schema::{
    Acked, BrokerState, CommandAnswer, CommandBody, Device, Field, Health, NoFriends,
    OwnTracksMessage, Published, Readings, Settings, TelegrafBatch,
};
use super::telegraf as telegraf_batch;
use super::{gpslogger as gpslogger_pairs, owntracks as owntracks_body};
use crate::config::{DeviceConfig, Scope};
use crate::privacy::PrivateAreas;
use crate::shutdown::Shutdown;
use crate::status::{Metric, Status};
use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::RawQuery;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Everything the handlers share.
pub struct App {
    /// Access tokens.
    pub tokens: Arc<Tokens>,
    /// The broker connection.
    pub broker: Broker,
    /// `[[http.private_area]]`.
    pub areas: PrivateAreas,
    /// `http.ingest_prefix`.
    pub prefix: String,
    /// `stats.disorder`: how old a device timestamp may be before its readings count as late.
    pub disorder: Duration,
    /// `[[http.device]]`.
    pub devices: Vec<DeviceConfig>,
    /// `http.command_timeout`.
    pub command_timeout: Duration,
    /// `http.max_body`.
    pub max_body: u64,
    /// `http.request_timeout`.
    pub request_timeout: Duration,
    /// `alerts.events_topic`: where the dashboard finds alert transitions.
    pub alerts_topic: String,
    /// The names of the `[[calendar]]`s, for the dashboard's energy view.
    pub calendars: Vec<String>,
    /// `http.map_tiles` (checked) and `http.map_attribution`: what the location view draws
    /// its track on, if anything.
    pub map_tiles: Option<String>,
    /// See [`map_tiles`](Self::map_tiles).
    pub map_attribution: Option<String>,
    /// Live readings for `/api/v1/live` (see [`super::live`]).
    pub live: live::Hub,
    /// The daemon's shutdown, which ends the live streams.
    pub stop: Shutdown,
    /// The API document, as JSON: written once the router is built (see [`router`]).
    pub document: std::sync::OnceLock<Bytes>,
    /// Every program's status as last heard.
    pub health: Pipeline,
    /// Where this daemon reports its own, if it does.
    pub status: Option<Status>,
    /// `http.metrics_public`.
    pub metrics_public: bool,
    /// `status.topic_prefix`, while reports are on.
    pub status_prefix: Option<String>,
    /// Answers given, by status code.
    pub answers: Arc<std::sync::Mutex<std::collections::BTreeMap<u16, u64>>>,
}

impl App {
    /// This daemon's numbers now.
    fn metrics(&self) -> Vec<Metric> {
        let answers = self
            .answers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut metrics: Vec<Metric> = answers
            .into_iter()
            .map(|(code, n)| {
                Metric::counter("requests", "HTTP requests answered, by status", n)
                    .label("status", code.to_string())
            })
            .collect();
        metrics.extend([
            Metric::gauge(
                "broker_connected",
                "1 while the daemon is connected to the broker",
                f64::from(u8::from(self.broker.is_connected())),
            ),
            Metric::gauge(
                "live_clients",
                "Browsers following the live stream",
                self.live.clients() as f64,
            ),
        ]);
        metrics
    }

    /// Every program's status, this daemon's own as it is now.
    fn programs(&self) -> Vec<Program> {
        let mut programs = self.health.programs();
        if let Some(s) = &self.status {
            let report = s.make("serving", self.metrics());
            programs.retain(|p| !(p.program == "http" && p.instance == report.instance));
            programs.push(Program {
                program: "http".into(),
                instance: report.instance.clone(),
                availability: Some(crate::status::ONLINE.into()),
                report: Some(report),
            });
            programs.sort_by(|a, b| (&a.program, &a.instance).cmp(&(&b.program, &b.instance)));
        }
        programs
    }

    /// Publish this daemon's status report (retained).
    pub fn publish_status(&self) {
        if let Some(s) = &self.status
            && !self
                .broker
                .fire(s.topic(), s.report("serving", self.metrics()))
        {
            tracing::debug!("status not published: the broker is not connected");
        }
    }

    /// What parsing a body needs from the config, with the clock read now.
    fn rules(&self) -> Rules<'_> {
        Rules {
            prefix: &self.prefix,
            areas: &self.areas,
            now: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64(),
            disorder: self.disorder,
        }
    }
}

/// The daemon's router and the API document that describes it. `read` is the router of the
/// read endpoints (`/topics`, `/history`, …) when there is one: it is nested under `/api/v1`
/// behind the `read` scope check.
pub fn router(app: Arc<App>, read: Option<OpenApiRouter>) -> Router {
    let mut api = OpenApiRouter::new()
        .routes(routes!(readings))
        .routes(routes!(telegraf))
        .routes(routes!(owntracks))
        .routes(routes!(gpslogger_get, gpslogger_post))
        .routes(routes!(commands))
        .routes(routes!(dashboard))
        .routes(routes!(status))
        .routes(routes!(openapi_json))
        .with_state(app.clone())
        .merge(
            OpenApiRouter::new()
                .routes(routes!(live::handler))
                .with_state(live::Live {
                    tokens: app.tokens.clone(),
                    hub: app.live.clone(),
                    stop: app.stop.clone(),
                }),
        );
    // The read endpoints (docs/HTTP.md: topics, history, aggregate, top, histogram) go here, each
    // request let through only with a token that has the `read` scope.
    if let Some(read) = read {
        let tokens = app.tokens.clone();
        api = api.merge(read.layer(axum::middleware::from_fn(move |req, next| {
            auth::require(tokens.clone(), Scope::Read, req, next)
        })));
    }
    let (routes, document) = OpenApiRouter::with_openapi(openapi::Base::openapi())
        .routes(routes!(healthz))
        .routes(routes!(metrics))
        .with_state(app.clone())
        .nest("/api/v1", api)
        .split_for_parts();
    match document.to_json() {
        Ok(json) => {
            let _ = app.document.set(Bytes::from(json));
        }
        Err(e) => tracing::error!("the API document could not be written: {e}"),
    }
    let max_body = app.max_body;
    let tiles = app
        .map_tiles
        .as_deref()
        .and_then(|url| crate::config::tiles_origin(url).ok());
    let answers = app.answers.clone();
    routes
        .merge(super::ui::routes(tiles))
        .fallback(|| async { ApiError::not_found("not_found", "no such path") })
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            usize::try_from(max_body).unwrap_or(usize::MAX),
        ))
        .layer(axum::middleware::from_fn(move |req, next| {
            error::json_errors(req, next, max_body)
        }))
        .layer(tower_http::compression::CompressionLayer::new())
        .layer(axum::middleware::from_fn(move |req, next| {
            count(answers.clone(), req, next)
        }))
        .layer(
            // The path without its query: `/api/v1/live` may carry a token in its query.
            tower_http::trace::TraceLayer::new_for_http().make_span_with(
                |req: &axum::http::Request<Body>| {
                    tracing::debug_span!("request", method = %req.method(), path = %req.uri().path())
                },
            ),
        )
}

/// `GET /healthz`: up, and whether the broker is connected. No token, no data.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "daemon",
    summary = "Liveness, and whether the broker is connected",
    responses((status = 200, body = Health)),
)]
async fn healthz(State(app): State<Arc<App>>) -> Json<Health> {
    let broker = if app.broker.is_connected() {
        BrokerState::Connected
    } else {
        BrokerState::Disconnected
    };
    Json(Health {
        status: "ok",
        broker,
    })
}

/// Count each answer by its status, for `/metrics`.
async fn count(
    answers: Arc<std::sync::Mutex<std::collections::BTreeMap<u16, u64>>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let res = next.run(req).await;
    let mut answers = answers.lock().unwrap_or_else(|p| p.into_inner());
    *answers.entry(res.status().as_u16()).or_default() += 1;
    res
}

/// `GET /metrics`: every program's status as Prometheus metrics. A `read` token unless
/// `http.metrics_public`.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "daemon",
    summary = "Every program's status as Prometheus metrics",
    description = "Prometheus' text format 0.0.4, or OpenMetrics 1.0 when `Accept` names \
                   `application/openmetrics-text`. Needs a `read` token unless \
                   `http.metrics_public = true`.",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The metrics", content(
            (String = "text/plain"),
            (String = "application/openmetrics-text"),
        )),
        TokenErrors,
    ),
)]
async fn metrics(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    if !app.metrics_public {
        app.tokens.authorize(&headers, Scope::Read)?;
    }
    let format = Format::accepted(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let body = super::metrics::render(&app.programs(), format);
    Ok(([(header::CONTENT_TYPE, format.content_type())], body).into_response())
}

/// `GET /api/v1/status` (read): every program's status as last heard, for the dashboard's
/// health panel.
#[utoipa::path(
    get,
    path = "/status",
    tag = "daemon",
    summary = "Every program's status: availability and last report",
    security(("bearer" = [])),
    responses((status = 200, body = [Program]), TokenErrors),
)]
async fn status(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
) -> Result<Json<Vec<Program>>, ApiError> {
    app.tokens.authorize(&headers, Scope::Read)?;
    Ok(Json(app.programs()))
}

/// `GET /api/v1/openapi.json`: this API's OpenAPI document. No token: it holds no data.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "daemon",
    summary = "This document (OpenAPI 3.1)",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json", body = Object)),
)]
async fn openapi_json(State(app): State<Arc<App>>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let document = app.document.get().cloned().unwrap_or_default();
    ([(header::CONTENT_TYPE, "application/json")], document).into_response()
}

/// `GET /api/v1/dashboard` (read): what the dashboard needs beyond the data — the
/// `[[http.device]]` list for its on/off buttons, the topic of alert transitions, the
/// calendars and the map tiles of the location view (`null`: none).
#[utoipa::path(
    get,
    path = "/dashboard",
    tag = "daemon",
    summary = "The dashboard's settings: devices, the alerts topic, calendars, map tiles",
    security(("bearer" = [])),
    responses((status = 200, body = Settings), TokenErrors),
)]
async fn dashboard(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    app.tokens.authorize(&headers, Scope::Read)?;
    let devices = app
        .devices
        .iter()
        .map(|d| Device {
            name: &d.name,
            command_topic: &d.command_topic,
            state_topic: &d.state_topic,
        })
        .collect();
    Ok(Json(Settings {
        devices,
        alerts_topic: &app.alerts_topic,
        calendars: &app.calendars,
        map_tiles: app.map_tiles.as_deref(),
        map_attribution: app.map_attribution.as_deref(),
        status_prefix: app.status_prefix.as_deref(),
    })
    .into_response())
}

/// `POST /api/v1/readings`.
#[utoipa::path(
    post,
    path = "/readings",
    tag = "ingest",
    summary = "Publish readings: topic form, device form (JSON) or `topic value` lines",
    security(("bearer" = [])),
    request_body(
        description = "JSON (any Content-Type but `text/plain`), or lines of `topic value` as \
                       `mosquitto_sub -v` prints them (`text/plain`)",
        content((Readings = "application/json"), (String = "text/plain")),
    ),
    responses(Ingested),
)]
async fn readings(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Published>, ApiError> {
    let (token, bytes) = ingest(&app, &headers, body, false).await?;
    let batch = if is_text(&headers) {
        reading::parse_text(&bytes)
    } else {
        reading::parse_json(&bytes, &app.rules())
    }?;
    publish_batch(&app, token, batch).await
}

/// `POST /api/v1/telegraf`: a batch of Telegraf's `outputs.http` (JSON, whatever its
/// Content-Type says: Telegraf says `text/plain`), gzip-encoded or not.
#[utoipa::path(
    post,
    path = "/telegraf",
    tag = "ingest",
    summary = "Publish a Telegraf batch, all of it or none",
    description = "Telegraf's `outputs.http` with `data_format = \"json\"`, whatever its \
                   Content-Type (Telegraf sends `text/plain`), gzip-encoded or not.",
    security(("bearer" = [])),
    request_body(content = TelegrafBatch, content_type = "application/json"),
    responses(Ingested),
)]
async fn telegraf(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Published>, ApiError> {
    let (token, bytes) = ingest(&app, &headers, body, false).await?;
    let batch = telegraf_batch::parse(&bytes, &app.rules())?;
    publish_batch(&app, token, batch).await
}

/// `POST /api/v1/owntracks`: OwnTracks' HTTP mode. The token is also taken as the Basic auth
/// password; the user and device come from `X-Limit-U`/`X-Limit-D`, else `?u=&d=`, as the
/// Recorder takes them. The answer is what the app expects: `[]` (no friends' locations).
#[utoipa::path(
    post,
    path = "/owntracks",
    tag = "ingest",
    summary = "OwnTracks' HTTP mode: a location becomes one message per field",
    security(("bearer" = []), ("basic" = [])),
    params(
        ("u" = Option<String>, Query, description = "the user, when `X-Limit-U` is not sent"),
        ("d" = Option<String>, Query, description = "the device, when `X-Limit-D` is not sent"),
        ("X-Limit-U" = Option<String>, Header, description = "the user (OwnTracks sends it)"),
        ("X-Limit-D" = Option<String>, Header, description = "the device (OwnTracks sends it)"),
    ),
    request_body(content = Option<OwnTracksMessage>, content_type = "application/json",
        description = "A message as OwnTracks publishes it; an empty body is ignored"),
    responses(
        (status = 200, description = "Taken (a location: acknowledged by the broker); no friends' locations", body = NoFriends),
        IngestErrors,
    ),
)]
async fn owntracks(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let (token, bytes) = ingest(&app, &headers, body, true).await?;
    let params: Vec<(String, String)> =
        form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let name = |header: &str, param: &str, default: &str| {
        let given = headers
            .get(header)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.trim().is_empty())
            .or_else(|| {
                params
                    .iter()
                    .find(|(k, v)| k == param && !v.trim().is_empty())
                    .map(|(_, v)| v.as_str())
            })
            .unwrap_or(default);
        owntracks_body::level(given)
    };
    let user = name("x-limit-u", "u", owntracks_body::DEFAULT_USER);
    let device = name("x-limit-d", "d", owntracks_body::DEFAULT_DEVICE);
    let batch = owntracks_body::parse(&bytes, &user, &device, &app.rules())?;
    // What OwnTracks expects once its point is taken: no friends' locations.
    publish_batch(&app, token, batch)
        .await
        .map(|_| Json(json!([])))
}

/// The device GPSLogger's values are for, as the API document lists it.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Only its description is used: `gpslogger::parse` reads it.
struct GpsDevice {
    /// The device level (else `ser`, `aid`, `gpslogger`)
    device: Option<String>,
}

/// GPSLogger's values in a query string.
const GPSLOGGER_DESCRIPTION: &str = "The query string's `name=value` pairs and the body's \
    (form-encoded, sent without a Content-Type by the app, or a flat JSON object) become \
    messages on `<ingest_prefix>/gpslogger/<device>/<name>`, the value as sent.";

/// `GET /api/v1/gpslogger`: GPSLogger's custom URL (its default method), the values in the
/// query string. The token is also taken as the Basic auth password.
#[utoipa::path(
    get,
    path = "/gpslogger",
    tag = "ingest",
    summary = "GPSLogger's custom URL: each value becomes a message",
    description = GPSLOGGER_DESCRIPTION,
    security(("bearer" = []), ("basic" = [])),
    params(
        ("lat" = Option<String>, Query, description = "`%LAT`"),
        ("lon" = Option<String>, Query, description = "`%LON`"),
        ("time" = Option<String>, Query, description = "`%TIME`: checked against `stats.disorder`"),
        ("batt" = Option<String>, Query, description = "`%BATT`; any other name is taken the same way"),
        GpsDevice,
    ),
    responses(Ingested),
)]
async fn gpslogger_get(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Body,
) -> Result<Json<Published>, ApiError> {
    gpslogger(&app, &headers, query, body).await
}

/// `POST /api/v1/gpslogger`: the values in the body (and the query string).
#[utoipa::path(
    post,
    path = "/gpslogger",
    tag = "ingest",
    summary = "GPSLogger's custom URL, by POST",
    description = GPSLOGGER_DESCRIPTION,
    security(("bearer" = []), ("basic" = [])),
    params(
        GpsDevice,
    ),
    request_body(content(
        (Option<std::collections::BTreeMap<String, String>> = "application/x-www-form-urlencoded"),
        (Option<std::collections::BTreeMap<String, Field>> = "application/json"),
    )),
    responses(Ingested),
)]
async fn gpslogger_post(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Body,
) -> Result<Json<Published>, ApiError> {
    gpslogger(&app, &headers, query, body).await
}

/// GPSLogger's values, from the query string and the body (sent without a Content-Type). The
/// token is also taken as the Basic auth password.
async fn gpslogger(
    app: &App,
    headers: &HeaderMap,
    query: Option<String>,
    body: Body,
) -> Result<Json<Published>, ApiError> {
    let (token, bytes) = ingest(app, headers, body, true).await?;
    let batch = gpslogger_pairs::pairs(
        query.as_deref(),
        &bytes,
        is_media(headers, "application/json"),
    )
    .and_then(|pairs| gpslogger_pairs::parse(&pairs, &app.rules()))?;
    publish_batch(app, token, batch).await
}

/// The token of an ingest request (also as the Basic auth password where `basic`), then its
/// body, inflated: the token is checked before the body is read.
async fn ingest<'a>(
    app: &'a App,
    headers: &HeaderMap,
    body: Body,
    basic: bool,
) -> Result<(&'a auth::Token, Bytes), ApiError> {
    let token = if basic {
        app.tokens.authorize_basic(headers, Scope::Ingest)?
    } else {
        app.tokens.authorize(headers, Scope::Ingest)?
    };
    let bytes = decoded(headers, read_body(body, app).await?, app.max_body)?;
    Ok((token, bytes))
}

/// Publish a checked batch for `token` and answer with what became of it: every message
/// acknowledged by the broker, or 503 saying how many were.
async fn publish_batch(
    app: &App,
    token: &auth::Token,
    batch: Batch,
) -> Result<Json<Published>, ApiError> {
    for m in &batch.messages {
        token.check_topic(&m.topic)?;
    }
    let published = app
        .broker
        .publish_all(
            batch
                .messages
                .iter()
                .map(|m| (m.topic.as_str(), m.payload.as_str())),
        )
        .await
        .map_err(
            |Partial {
                 acked,
                 unconfirmed,
                 total,
             }| {
                tracing::warn!(
                    token = %token.name,
                    acked,
                    unconfirmed,
                    total,
                    "readings not published: the broker is unreachable"
                );
                let unsent = total - acked - unconfirmed;
                ApiError::unavailable(format!(
                    "the MQTT broker is unreachable: {acked} of {total} readings were acknowledged \
                 (published); {unconfirmed} were sent but not acknowledged (the broker may or \
                 may not have them) and {unsent} were not sent; none will be sent later"
                ))
                .with("published", acked)
                .with("unconfirmed", unconfirmed)
                .with("late", batch.late)
                .with("private", batch.private)
            },
        )?;
    tracing::debug!(token = %token.name, published, "readings published");
    Ok(Json(Published {
        published,
        late: batch.late,
        private: batch.private,
    }))
}

/// The body as sent, or as it was before `Content-Encoding: gzip` (Telegraf's
/// `content_encoding = "gzip"`), at most `max` bytes either way: a small body that inflates
/// without end is refused like a large one.
fn decoded(headers: &HeaderMap, body: Bytes, max: u64) -> Result<Bytes, ApiError> {
    use std::io::Read;
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase());
    match encoding.as_deref() {
        None | Some("" | "identity") => Ok(body),
        Some("gzip" | "x-gzip") => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&body[..])
                .take(max.saturating_add(1))
                .read_to_end(&mut out)
                .map_err(|e| {
                    ApiError::bad_request(
                        "bad_body",
                        format!("the body is not valid gzip (Content-Encoding: gzip): {e}"),
                    )
                })?;
            if out.len() as u64 > max {
                return Err(ApiError::too_large(max));
            }
            Ok(out.into())
        }
        Some(other) => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_encoding",
            format!("Content-Encoding {other:?} is not supported: send the body as it is, or gzip"),
        )),
    }
}

/// `POST /api/v1/commands`.
#[utoipa::path(
    post,
    path = "/commands",
    tag = "command",
    summary = "Publish a command and wait for the device's answer",
    security(("bearer" = [])),
    request_body(content = CommandBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Published; acknowledged by the device when awaited", body = CommandAnswer),
        CommandErrors,
    ),
)]
async fn commands(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<CommandAnswer>, ApiError> {
    let token = app.tokens.authorize(&headers, Scope::Command)?;
    let bytes = read_body(body, &app).await?;
    let cmd = command::parse(&bytes, &app.devices, app.command_timeout).map_err(|r| {
        let status = if r.not_found {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::BAD_REQUEST
        };
        ApiError::new(status, r.code, r.message)
    })?;
    token.check_topic(&cmd.topic)?;
    let unavailable = |what: &str| {
        ApiError::unavailable(format!(
            "the MQTT broker is unreachable: the command {what}"
        ))
    };
    let one = || std::iter::once((cmd.topic.as_str(), cmd.payload.as_str()));
    let Some(wait) = &cmd.wait else {
        app.broker
            .publish_all(one())
            .await
            .map_err(|_| unavailable("was not published"))?;
        tracing::info!(token = %token.name, topic = %cmd.topic, "command published");
        return Ok(Json(CommandAnswer {
            topic: cmd.topic,
            payload: cmd.payload,
            acked_by: None,
        }));
    };
    // Subscribed (SUBACK in) before the command goes out: a fast device is not missed.
    let mut answers = app
        .broker
        .listen(&wait.topic)
        .await
        .map_err(|_| unavailable("was not published"))?;
    let mut connected = app.broker.watch();
    let start = Instant::now();
    app.broker
        .publish_all(one())
        .await
        .map_err(|_| unavailable("was not published"))?;
    let deadline = tokio::time::Instant::from_std(start + wait.timeout);
    loop {
        tokio::select! {
            m = answers.next() => match m {
                Some(p) if wait.accepts(&p.payload) => {
                    let after_ms = start.elapsed().as_millis() as u64;
                    tracing::info!(token = %token.name, topic = %cmd.topic, after_ms, "command acknowledged");
                    return Ok(Json(CommandAnswer {
                        topic: cmd.topic,
                        payload: cmd.payload,
                        acked_by: Some(Acked {
                            topic: p.topic,
                            payload: String::from_utf8_lossy(&p.payload).into_owned(),
                            after_ms,
                        }),
                    }));
                }
                Some(_) => {}
                None => return Err(unavailable("was published, but its answer cannot be awaited")),
            },
            _ = connected.wait_for(|c| !*c) => {
                return Err(unavailable("was published, but the connection was lost while waiting for its answer"));
            }
            _ = tokio::time::sleep_until(deadline) => {
                tracing::warn!(token = %token.name, topic = %cmd.topic, "command not acknowledged in time");
                return Err(ApiError::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    "no_acknowledgement",
                    format!(
                        "the command was published to {} but no matching answer came on {} within {}",
                        cmd.topic,
                        wait.topic,
                        crate::config::Dur(wait.timeout)
                    ),
                ));
            }
        }
    }
}

/// Whether the body is the `text/plain` form.
fn is_text(headers: &HeaderMap) -> bool {
    is_media(headers, "text/plain")
}

/// Whether the body's `Content-Type` is the media type `media` (any parameters, any case).
fn is_media(headers: &HeaderMap, media: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case(media))
        })
}

/// The whole body, within `request_timeout` and `max_body`.
async fn read_body(body: Body, app: &App) -> Result<Bytes, ApiError> {
    match tokio::time::timeout(app.request_timeout, axum::body::to_bytes(body, usize::MAX)).await {
        Err(_) => Err(ApiError::request_timeout()),
        Ok(Err(e)) if is_length_limit(&e) => Err(ApiError::too_large(app.max_body)),
        Ok(Err(_)) => Err(ApiError::bad_request(
            "bad_body",
            "the request body could not be read",
        )),
        Ok(Ok(b)) => Ok(b),
    }
}

/// Whether the body limit layer cut the body.
fn is_length_limit(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cur = err.source();
    }
    false
}

/// Serve `router` on `listener` until `shutdown`, then let the requests under way finish
/// (at most `grace`). Plain HTTP/1.1 or, with `tls`, HTTPS.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    header_timeout: Duration,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut shutdown: Shutdown,
    grace: Duration,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.recv() => break,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!("cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        match &tls {
            None => {
                let conn = http.serve_connection(TokioIo::new(stream), service);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(%peer, "connection ended: {e}");
                    }
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let http = http.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let stream =
                        match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, "TLS handshake failed: {e}");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "TLS handshake timed out");
                                return;
                            }
                        };
                    let conn = http.serve_connection(TokioIo::new(stream), service);
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(%peer, "connection ended: {e}");
                    }
                });
            }
        }
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still under way after {grace:?}: closing them");
    }
}
