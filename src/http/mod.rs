//! `iotitan-http`: readings in over HTTP, commands out, for clients that cannot speak MQTT
//! (a phone app, a script, a browser), with access tokens. The contract is docs/HTTP.md.
//!
//! The parts, from pure to I/O:
//! - [`reading`]: the three reading forms → checked MQTT messages (private areas withheld);
//! - [`telegraf`]: Telegraf's JSON batches, [`owntracks`]: OwnTracks' locations,
//!   [`gpslogger`]: GPSLogger's custom URL → the same messages;
//! - [`command`]: command bodies → topic, payload and the acknowledgement to wait for;
//! - [`rate`]: a token's request rate (the private areas are [`crate::privacy`]'s);
//! - [`auth`]: tokens, loaded like the bridge's write keys, compared in constant time;
//! - [`error`]: the one JSON error shape;
//! - [`broker`]: QoS 1 publishing that knows when the broker acknowledged, subscriptions;
//! - [`live`]: the live stream of readings to the dashboard (server-sent events);
//! - [`ui`]: the dashboard's page and its vendored assets, built into the binary;
//! - [`server`]: the router, the handlers and the accept loop; [`tls`]: HTTPS;
//! - [`openapi`]: the API document, made from the handlers; [`schema`]: its bodies' shapes;
//! - [`health`]: every program's status as last heard; [`metrics`]: it as Prometheus metrics.
//!
//! The read endpoints (history, aggregates, top-N, histograms) are [`crate::history`]'s: the
//! binary hands them to [`run`] already built.
//!
//! [`run`] is the daemon: tokens and TLS first (a config problem exits 78 at once), then the
//! listener, then the broker; `READY=1` once both are up. Requests are served from the start
//! (ingest answers 503 until the broker is there), and on SIGTERM the listener closes, the
//! requests under way finish, and the MQTT connection is closed last.

pub mod auth;
pub mod broker;
pub mod command;
pub mod error;
pub mod gpslogger;
pub mod health;
pub mod live;
pub mod metrics;
pub mod openapi;
pub mod owntracks;
pub mod rate;
pub mod reading;
pub mod schema;
pub mod server;
pub mod telegraf;
pub mod tls;
pub mod ui;

use crate::config::Config;
use crate::exit::{self, ExitError};
use crate::mqtt;
use crate::notify;
use crate::shutdown::Shutdown;
use anyhow::Context;
use std::sync::Arc;
use std::time::Duration;

/// How long requests under way may take to finish after SIGTERM.
const GRACE: Duration = Duration::from_secs(10);

/// Run the daemon until `shutdown`. `read` is the router of the read endpoints, nested under
/// `/api/v1` behind the `read` scope (see [`server::router`]).
pub async fn run(
    cfg: &Config,
    shutdown: Shutdown,
    read: Option<utoipa_axum::router::OpenApiRouter>,
) -> anyhow::Result<()> {
    run_on(cfg, None, shutdown, read).await
}

/// [`run`] on a listener bound by the caller instead of `http.listen`: the demo binds a free
/// port first, so that it can print the dashboard's address before the daemon runs.
pub async fn run_on(
    cfg: &Config,
    listener: Option<tokio::net::TcpListener>,
    mut shutdown: Shutdown,
    read: Option<utoipa_axum::router::OpenApiRouter>,
) -> anyhow::Result<()> {
    let http = &cfg.http;
    let (tokens, sources) = auth::Tokens::load(http)?;
    if tokens.is_empty() {
        return Err(ExitError::new(
            exit::CONFIG,
            "no [[http.token]] in the config: nobody could use the API",
        )
        .into());
    }
    for (name, source) in &sources {
        tracing::info!(token = %name, "token value from {source}");
    }
    let tls = tls::acceptor(http)?;
    let listener = match listener {
        Some(l) => l,
        None => tokio::net::TcpListener::bind(http.listen)
            .await
            .map_err(|e| {
                ExitError::new(
                    exit::UNAVAILABLE,
                    format!("cannot listen on {}: {e}", http.listen),
                )
            })?,
    };
    let local = listener.local_addr().context("listener address")?;
    let status = crate::status::Status::of(cfg, "http");
    let (client, driver) =
        mqtt::connect_reporting(&cfg.mqtt, "http", status.as_ref()).context("mqtt settings")?;
    let (broker, poller) = broker::Broker::start(
        client.clone(),
        driver,
        status.as_ref().map(crate::status::Status::availability),
    );
    let health = health::Health::default();
    if status.is_some() {
        let (cfg, health, shutdown) = (cfg.clone(), health.clone(), shutdown.clone());
        tokio::spawn(async move {
            if let Err(e) = health::watch(&cfg, health, shutdown).await {
                tracing::warn!("the pipeline's status cannot be watched: {e:#}");
            }
        });
    }
    let live_hub = live::Hub::new();
    let locations = crate::privacy::Locations::of(cfg);
    let areas = locations.areas().clone();
    tokio::spawn(live::feed(
        broker.clone(),
        live_hub.clone(),
        locations,
        shutdown.clone(),
    ));
    let app = Arc::new(server::App {
        tokens: Arc::new(tokens),
        broker: broker.clone(),
        areas,
        prefix: http.ingest_prefix.clone(),
        disorder: cfg.stats.disorder.get(),
        devices: http.device.clone(),
        command_timeout: http.command_timeout.get(),
        max_body: http.max_body.0,
        request_timeout: http.request_timeout.get(),
        alerts_topic: cfg.alerts.events_topic.clone(),
        calendars: cfg.calendar.iter().map(|c| c.name.clone()).collect(),
        map_tiles: http.map_tiles.clone(),
        map_attribution: http.map_attribution.clone(),
        live: live_hub,
        stop: shutdown.clone(),
        document: Default::default(),
        health,
        status: status.clone(),
        metrics_public: http.metrics_public,
        status_prefix: cfg.status.enabled.then(|| cfg.status.topic_prefix.clone()),
        answers: Default::default(),
    });
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(
        listen = %local,
        broker = %format!("{}:{}", cfg.mqtt.host, cfg.mqtt.port),
        tokens = sources.len(),
        "iotitan-http listening on {scheme}://{local}"
    );
    let server = tokio::spawn(server::serve(
        listener,
        server::router(app.clone(), read),
        http.request_timeout.get(),
        tls,
        shutdown.clone(),
        GRACE,
    ));

    let mut connected = broker.watch();
    let mut watchdog = notify::Watchdog::new();
    let mut report = tokio::time::interval(cfg.status.interval.get());
    let mut ready = false;
    loop {
        if !ready && *connected.borrow_and_update() {
            ready = true;
            notify::ready();
            notify::status(&format!("serving {scheme}://{local}"));
            tracing::info!("ready: listening and connected to the broker");
        }
        tokio::select! {
            _ = shutdown.recv() => break,
            r = connected.changed() => {
                if r.is_err() {
                    anyhow::bail!("the MQTT event loop stopped");
                }
            }
            _ = watchdog.tick() => {}
            _ = report.tick(), if app.status.is_some() => app.publish_status(),
        }
    }
    notify::stopping();
    let _ = server.await;
    // A DISCONNECT does not fire the will: say `offline` (and the last numbers) first.
    app.publish_status();
    if let Some(s) = &app.status {
        broker.fire(&s.availability(), crate::status::OFFLINE.into());
    }
    // The requests are done: close the MQTT connection last.
    let _ = client.try_disconnect();
    let _ = tokio::time::timeout(Duration::from_secs(2), poller).await;
    tracing::info!("iotitan-http stopped");
    Ok(())
}

/// For `check-config`: where each token's value comes from (never the value).
pub fn describe_tokens(cfg: &Config) -> anyhow::Result<Vec<String>> {
    Ok(auth::describe(&cfg.http)?)
}
