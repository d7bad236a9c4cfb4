//! The dashboard: one HTML page, its script, its style sheet and the vendored uPlot, all
//! compiled into the binary so the page works with the network unplugged.
//!
//! The page and its assets hold no data, so they are served without a token: a browser cannot
//! put an `Authorization` header on a navigation, and the token lives in the URL fragment or
//! sessionStorage (never in a URL the server sees). Every piece of data the page shows comes
//! from `/api/v1/...` with the read token as a Bearer header. The Content-Security-Policy allows
//! only 'self': no inline script, no CDN, no external font.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

/// `Content-Security-Policy` of every UI answer.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/// One embedded file: its content type and bytes.
struct Asset {
    content_type: &'static str,
    body: &'static [u8],
}

const INDEX: Asset = Asset {
    content_type: "text/html; charset=utf-8",
    body: include_bytes!("ui/index.html"),
};
const APP_JS: Asset = Asset {
    content_type: "text/javascript; charset=utf-8",
    body: include_bytes!("ui/app.js"),
};
const APP_CSS: Asset = Asset {
    content_type: "text/css; charset=utf-8",
    body: include_bytes!("ui/app.css"),
};
const UPLOT_JS: Asset = Asset {
    content_type: "text/javascript; charset=utf-8",
    body: include_bytes!("ui/vendor/uPlot.iife.min.js"),
};
const UPLOT_CSS: Asset = Asset {
    content_type: "text/css; charset=utf-8",
    body: include_bytes!("ui/vendor/uPlot.min.css"),
};

fn serve(asset: &'static Asset) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, asset.content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        asset.body,
    )
}

/// `/` and `/ui/...`.
pub fn routes() -> Router {
    Router::new()
        .route("/", get(|| async { serve(&INDEX) }))
        .route("/ui/app.js", get(|| async { serve(&APP_JS) }))
        .route("/ui/app.css", get(|| async { serve(&APP_CSS) }))
        .route(
            "/ui/vendor/uPlot.iife.min.js",
            get(|| async { serve(&UPLOT_JS) }),
        )
        .route(
            "/ui/vendor/uPlot.min.css",
            get(|| async { serve(&UPLOT_CSS) }),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_has_no_inline_script_and_loads_only_local_files() {
        let html = std::str::from_utf8(INDEX.body).unwrap();
        for tag in html.split("<script").skip(1) {
            let open = &tag[..tag.find('>').unwrap()];
            assert!(
                open.contains("src=\"/ui/"),
                "inline or remote script: {open}"
            );
        }
        assert!(!html.contains("http://") && !html.contains("https://"));
        assert!(html.contains("id=\"overview\""));
    }
}
