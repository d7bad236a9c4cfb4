//! The dashboard: one HTML page, its script, its style sheet and the vendored uPlot, all
//! compiled into the binary so the page works with the network unplugged.
//!
//! The page is an askama template, checked when the crate compiles and HTML-escaped by
//! default; what it renders (the version, the statistics top devices can rank by) is known at
//! start-up, so it is rendered once. Everything else the page shows is data, fetched with the
//! token by the script and put into the page as text (`textContent`), never as markup.
//!
//! The page and its assets hold no data, so they are served without a token: a browser cannot
//! put an `Authorization` header on a navigation, and the token lives in the URL fragment or
//! sessionStorage (never in a URL the server sees). Every piece of data the page shows comes
//! from `/api/v1/...` with the read token as a Bearer header. The Content-Security-Policy allows
//! only 'self': no inline script, no CDN, no external font.

use askama::Template;
use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::get;
use std::sync::LazyLock;

/// `Content-Security-Policy` of every UI answer without map tiles.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/// The policy: [`CSP`], images also from `tiles` (the origin of `http.map_tiles`, checked by
/// [`crate::config::tiles_origin`]) when there are map tiles. Nothing else comes from
/// elsewhere: the tiles are images, and the page's requests stay on 'self'.
pub fn csp(tiles: Option<&str>) -> String {
    match tiles {
        None => CSP.to_owned(),
        Some(origin) => CSP.replacen(
            "img-src 'self' data:",
            &format!("img-src 'self' data: {origin}"),
            1,
        ),
    }
}

/// One embedded file: its content type and bytes.
struct Asset {
    content_type: &'static str,
    body: &'static [u8],
}

/// The statistics the top-devices form offers: each one `/api/v1/top` takes (a unit test
/// parses them as the API does).
pub const TOP_STATISTICS: &[&str] = &[
    "max", "min", "mean", "median", "p95", "last", "first", "count", "stddev", "increase",
    "integral",
];

/// The page.
#[derive(Template)]
#[template(
    ext = "html",
    source = r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>iotitan dashboard</title>
<meta name="generator" content="iotitan {{ version }}">
<link rel="icon" href="/ui/icon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/ui/vendor/uPlot.min.css">
<link rel="stylesheet" href="/ui/app.css">
<script src="/ui/vendor/uPlot.iife.min.js" defer></script>
<script src="/ui/app.js" defer></script>
</head>
<body>
<header>
  <h1>iotitan</h1>
  <span class="muted" id="version">{{ version }}</span>
  <span id="live-state" class="muted">live: off</span>
  <button id="logout" type="button" hidden>Forget token</button>
</header>
<p id="message" role="alert" hidden></p>
<form id="login" hidden>
  <label>Read token <input id="token" type="password" autocomplete="off" required></label>
  <button type="submit">Show data</button>
</form>
<main id="data" hidden>
  <section id="health-panel">
    <h2>Health <small class="muted">the pipeline's programs, as they last reported</small></h2>
    <p id="health-alert" class="offline" role="alert" hidden></p>
    <table id="health"><thead><tr><th>Program</th><th>Instance</th><th>State</th><th>Summary</th><th>Reported</th></tr></thead><tbody></tbody></table>
    <p id="health-none" class="muted" hidden>No program reports its health ([status] is off, or none has connected yet).</p>
  </section>
  <section>
    <h2>Overview <small class="muted">series seen in the last day</small></h2>
    <div class="controls">
      <label>Search <input id="find" type="search" size="24" placeholder="part of a topic" title="the series whose topic holds this text (searched on the server)"></label>
      <button id="more" type="button" hidden title="the next page of series, in topic order">More series</button>
      <span id="shown" class="muted"></span>
    </div>
    <div class="scroll">
      <table id="overview">
        <thead><tr><th title="on the chart">Chart</th><th>Series</th><th>Last value</th><th>Age</th><th>Last 24 h</th><th>Alerts</th></tr></thead>
        <tbody></tbody>
      </table>
    </div>
  </section>
  <section>
    <h2>Series <small class="muted">tick more series in the overview to compare them</small></h2>
    <div class="controls">
      <select id="series" title="the series of the chart, the hourly view and the histogram"></select>
      <span id="ranges">
        <button type="button" data-range="1h">1 h</button>
        <button type="button" data-range="24h" class="on">24 h</button>
        <button type="button" data-range="7d">7 d</button>
        <button type="button" data-range="30d">30 d</button>
      </span>
      <a id="csv" href="#" download="series.csv">Download CSV</a>
    </div>
    <div id="chart"></div>
  </section>
  <section>
    <h2>Hourly, last 7 days <small class="muted">min / mean / max</small></h2>
    <div id="hourly-chart"></div>
    <div class="scroll">
      <table id="hourly">
        <thead><tr><th>Hour</th><th>Min</th><th>Mean</th><th>Max</th><th>Count</th></tr></thead>
        <tbody></tbody>
      </table>
    </div>
  </section>
  <section>
    <h2>Histogram <small class="muted">of the chosen series over the chosen range, and its device's LWT states</small></h2>
    <table id="histogram"><thead><tr><th>From</th><th>To</th><th>Count</th><th></th></tr></thead><tbody></tbody></table>
    <p id="states" class="muted"></p>
  </section>
  <section>
    <h2>Top devices</h2>
    <form id="top-form" class="controls">
      <label>Feature <input id="top-feature" value="temperature" size="14" required></label>
      <label>Statistic <select id="top-stat">
        {%- for s in statistics %}<option>{{ s }}</option>{% endfor -%}
      </select></label>
      <label>Interval <select id="top-since">
        <option value="-1m">past minute</option><option value="-1h" selected>past hour</option>
        <option value="-1d">past day</option><option value="-3650d">all time</option>
      </select></label>
      <label>N <input id="top-n" type="number" min="1" max="100" value="10"></label>
      <button type="submit">Show</button>
    </form>
    <table id="top"><thead><tr><th>Device</th><th>Value</th><th>Topic</th></tr></thead><tbody></tbody></table>
  </section>
  <section>
    <h2>Energy <small class="muted">per place and day: meters' growth or power's integral, the part outside the calendar's hours in its own colour</small></h2>
    <form id="energy-form" class="controls">
      <label>Topics <input id="energy-topics" placeholder="office/#" size="16" required></label>
      <label>Place levels <input id="energy-by" type="number" min="1" max="64" value="3"></label>
      <label>Measure <select id="energy-stat">
        <option value="integral">integral (Wh of W)</option><option value="increase">increase (meters)</option>
      </select></label>
      <label>Calendar <select id="energy-calendar"><option value="">none</option></select></label>
      <label>Days <input id="energy-days" type="number" min="1" max="366" value="7"></label>
      <button type="submit">Show</button>
    </form>
    <table id="energy"><thead><tr><th>Place</th><th>Day</th><th>Within</th><th>Outside</th><th><span class="bar within"></span> within <span class="bar outside"></span> outside</th></tr></thead><tbody></tbody></table>
    <h3>Most outside the calendar's hours</h3>
    <table id="wasters"><thead><tr><th>Device</th><th>Value</th><th>Topic</th></tr></thead><tbody></tbody></table>
  </section>
  <section>
    <h2>Locations <small class="muted">a device's track; no point inside a private area is ever answered</small></h2>
    <form id="track-form" class="controls">
      <label>Device <input id="track-device" list="track-devices" size="36" placeholder="owntracks/jane/phone" required title="the topic of one device: its lat/lon series, or its OwnTracks or [[location]] documents"></label>
      <datalist id="track-devices"></datalist>
      <label>Range <select id="track-range">
        <option value="24h">24 h</option><option value="7d">7 d</option><option value="30d">30 d</option>
      </select></label>
      <button type="submit">Show</button>
    </form>
    <div id="track"></div>
    <p id="track-note" class="muted"></p>
  </section>
  <section>
    <h2>Alerts <small class="muted">last transitions, newest first</small></h2>
    <table id="alerts"><thead><tr><th>When</th><th>Event</th></tr></thead><tbody></tbody></table>
  </section>
  <section>
    <h2>Devices</h2>
    <table id="devices"><thead><tr><th>Device</th><th>State</th><th></th><th>Answer</th></tr></thead><tbody></tbody></table>
  </section>
</main>
</body>
</html>"##
)]
struct Index<'a> {
    version: &'a str,
    statistics: &'a [&'a str],
}

/// The page, rendered once.
static INDEX_HTML: LazyLock<String> = LazyLock::new(|| {
    Index {
        version: env!("CARGO_PKG_VERSION"),
        statistics: TOP_STATISTICS,
    }
    .render()
    // Rendering only writes strings into a String: it cannot fail on this template.
    .unwrap_or_else(|e| format!("<!doctype html><title>iotitan</title><p>{e}</p>"))
});
const APP_JS: Asset = Asset {
    content_type: "text/javascript; charset=utf-8",
    body: include_bytes!("ui/app.js"),
};
const APP_CSS: Asset = Asset {
    content_type: "text/css; charset=utf-8",
    body: include_bytes!("ui/app.css"),
};
/// The page's icon (also at `/favicon.ico`, where browsers and tools look without asking).
const ICON: Asset = Asset {
    content_type: "image/svg+xml",
    body: include_bytes!("ui/icon.svg"),
};
const UPLOT_JS: Asset = Asset {
    content_type: "text/javascript; charset=utf-8",
    body: include_bytes!("ui/vendor/uPlot.iife.min.js"),
};
const UPLOT_CSS: Asset = Asset {
    content_type: "text/css; charset=utf-8",
    body: include_bytes!("ui/vendor/uPlot.min.css"),
};

/// An answer of the UI with its security headers.
fn with_headers(
    content_type: &'static str,
    body: &'static [u8],
    csp: &HeaderValue,
) -> axum::response::Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CONTENT_SECURITY_POLICY, csp.clone()),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

/// `/` and `/ui/...`, their policy letting images come from `tiles` too (the origin of the
/// map tiles, if any).
pub fn routes(tiles: Option<&str>) -> Router {
    // A checked origin is printable ASCII without quotes: it is a header value. Were it not,
    // the page would go without tiles rather than without a policy.
    let csp = HeaderValue::from_str(&csp(tiles)).unwrap_or(HeaderValue::from_static(CSP));
    let page = |content_type: &'static str, body: &'static [u8]| {
        let csp = csp.clone();
        get(move || {
            let answer = with_headers(content_type, body, &csp);
            async move { answer }
        })
    };
    let asset = |a: &'static Asset| page(a.content_type, a.body);
    Router::new()
        .route("/", page("text/html; charset=utf-8", INDEX_HTML.as_bytes()))
        .route("/ui/app.js", asset(&APP_JS))
        .route("/ui/app.css", asset(&APP_CSS))
        .route("/ui/icon.svg", asset(&ICON))
        .route("/favicon.ico", asset(&ICON))
        .route("/ui/vendor/uPlot.iife.min.js", asset(&UPLOT_JS))
        .route("/ui/vendor/uPlot.min.css", asset(&UPLOT_CSS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_has_no_inline_script_and_loads_only_local_files() {
        let html = INDEX_HTML.as_str();
        for tag in html.split("<script").skip(1) {
            let open = &tag[..tag.find('>').unwrap()];
            assert!(
                open.contains("src=\"/ui/"),
                "inline or remote script: {open}"
            );
        }
        assert!(!html.contains("http://") && !html.contains("https://"));
        assert!(html.contains("id=\"overview\""));
        assert!(html.contains(&format!("id=\"version\">{}<", env!("CARGO_PKG_VERSION"))));
        assert!(html.contains("<option>p95</option>"), "{html}");
    }

    #[test]
    fn map_tiles_add_their_origin_to_images_only() {
        assert_eq!(csp(None), CSP);
        let with = csp(Some("https://tile.openstreetmap.org"));
        assert!(with.contains("img-src 'self' data: https://tile.openstreetmap.org;"));
        assert_eq!(with.matches("tile.openstreetmap.org").count(), 1, "{with}");
        assert!(with.contains("connect-src 'self';"), "{with}");
    }

    #[test]
    fn the_page_offers_only_statistics_the_api_takes() {
        for s in TOP_STATISTICS {
            assert!(s.parse::<crate::statistic::Statistic>().is_ok(), "{s}");
        }
    }

    #[test]
    fn what_the_template_renders_is_escaped() {
        let html = Index {
            version: "<script>x</script>",
            statistics: &["a&b"],
        }
        .render()
        .unwrap();
        assert!(
            html.contains("&#60;script&#62;x&#60;/script&#62;") || html.contains("&lt;script&gt;"),
            "{html}"
        );
        assert!(!html.contains("<script>x"));
        assert!(
            html.contains("a&#38;b") || html.contains("a&amp;b"),
            "{html}"
        );
    }
}
