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
use super::live;
use super::reading::{self, Batch, Rules};
use super::telegraf as telegraf_batch;
use super::{gpslogger as gpslogger_pairs, owntracks as owntracks_body};
use crate::config::{DeviceConfig, Scope};
use crate::privacy::PrivateAreas;
use crate::shutdown::Shutdown;
use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::RawQuery;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

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
}

impl App {
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

/// The daemon's router. `read` is the router of the read endpoints (`/topics`, `/history`, …)
/// when there is one: it is nested under `/api/v1` behind the `read` scope check.
pub fn router(app: Arc<App>, read: Option<Router>) -> Router {
    let mut api = Router::new()
        .route("/readings", post(readings))
        .route("/telegraf", post(telegraf))
        .route("/owntracks", post(owntracks))
        .route("/gpslogger", get(gpslogger).post(gpslogger))
        .route("/commands", post(commands))
        .route("/dashboard", get(dashboard))
        .with_state(app.clone())
        .merge(
            Router::new()
                .route("/live", get(live::handler))
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
    let max_body = app.max_body;
    let tiles = app
        .map_tiles
        .as_deref()
        .and_then(|url| crate::config::tiles_origin(url).ok());
    Router::new()
        .route("/healthz", get(healthz))
        .with_state(app.clone())
        .merge(super::ui::routes(tiles))
        .nest("/api/v1", api)
        .fallback(|| async { ApiError::not_found("not_found", "no such path") })
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            usize::try_from(max_body).unwrap_or(usize::MAX),
        ))
        .layer(axum::middleware::from_fn(move |req, next| {
            error::json_errors(req, next, max_body)
        }))
        .layer(tower_http::compression::CompressionLayer::new())
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
async fn healthz(State(app): State<Arc<App>>) -> Json<Value> {
    let broker = if app.broker.is_connected() {
        "connected"
    } else {
        "disconnected"
    };
    Json(json!({"status": "ok", "broker": broker}))
}

/// `GET /api/v1/dashboard` (read): what the dashboard needs beyond the data — the
/// `[[http.device]]` list for its on/off buttons, the topic of alert transitions, the
/// calendars and the map tiles of the location view (`null`: none).
async fn dashboard(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    app.tokens.authorize(&headers, Scope::Read)?;
    let devices: Vec<Value> = app
        .devices
        .iter()
        .map(|d| {
            json!({
                "name": d.name,
                "command_topic": d.command_topic,
                "state_topic": d.state_topic,
            })
        })
        .collect();
    Ok(Json(json!({
        "devices": devices,
        "alerts_topic": app.alerts_topic,
        "calendars": app.calendars,
        "map_tiles": app.map_tiles,
        "map_attribution": app.map_attribution,
    })))
}

/// `POST /api/v1/readings`.
async fn readings(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let (token, bytes) = ingest(&app, &headers, body, false).await?;
    let batch = if is_text(&headers) {
        reading::parse_text(&bytes)
    } else {
        reading::parse_json(&bytes, &app.rules())
    }
    .map_err(|e| ApiError::bad_request(e.code(), e.to_string()))?;
    publish_batch(&app, token, batch).await
}

/// `POST /api/v1/telegraf`: a batch of Telegraf's `outputs.http` (JSON, whatever its
/// Content-Type says: Telegraf says `text/plain`), gzip-encoded or not.
async fn telegraf(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let (token, bytes) = ingest(&app, &headers, body, false).await?;
    let batch = telegraf_batch::parse(&bytes, &app.rules())
        .map_err(|e| ApiError::bad_request(e.code(), e.to_string()))?;
    publish_batch(&app, token, batch).await
}

/// `POST /api/v1/owntracks`: OwnTracks' HTTP mode. The token is also taken as the Basic auth
/// password; the user and device come from `X-Limit-U`/`X-Limit-D`, else `?u=&d=`, as the
/// Recorder takes them. The answer is what the app expects: `[]` (no friends' locations).
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
    let batch = owntracks_body::parse(&bytes, &user, &device, &app.rules())
        .map_err(|e| ApiError::bad_request(e.code(), e.to_string()))?;
    // What OwnTracks expects once its point is taken: no friends' locations.
    publish_batch(&app, token, batch)
        .await
        .map(|_| Json(json!([])))
}

/// `GET|POST /api/v1/gpslogger`: GPSLogger's custom URL, its values in the query string or
/// the body (sent without a Content-Type). The token is also taken as the Basic auth
/// password.
async fn gpslogger(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let (token, bytes) = ingest(&app, &headers, body, true).await?;
    let batch = gpslogger_pairs::pairs(query.as_deref(), &bytes)
        .and_then(|pairs| gpslogger_pairs::parse(&pairs, &app.rules()))
        .map_err(|e| ApiError::bad_request(e.code(), e.to_string()))?;
    publish_batch(&app, token, batch).await
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
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(json!({
        "published": published,
        "late": batch.late,
        "private": batch.private,
    })))
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
async fn commands(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
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
        return Ok(Json(json!({
            "topic": cmd.topic, "payload": cmd.payload, "acked_by": null,
        })));
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
                    return Ok(Json(json!({
                        "topic": cmd.topic,
                        "payload": cmd.payload,
                        "acked_by": {
                            "topic": p.topic,
                            "payload": String::from_utf8_lossy(&p.payload),
                            "after_ms": after_ms,
                        },
                    })));
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
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("text/plain"))
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
