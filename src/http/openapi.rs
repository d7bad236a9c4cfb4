//! The API's OpenAPI 3.1 document, made from the code that serves it.
//!
//! Each handler carries its `#[utoipa::path]` (parameters, bodies, answers), and the router
//! registers a route and its description in one call (utoipa-axum's `routes!`), so no path
//! can be served undocumented or documented but unserved. What is written here is what the
//! paths share: the document's title and security schemes, the one error object and the
//! error answers each kind of endpoint can give. The daemon serves the document at
//! `/api/v1/openapi.json`; docs/openapi.json is a copy tests/http.rs holds equal to it, and
//! tests/openapi.rs has Schemathesis check the real server's answers against it.

use std::collections::BTreeMap;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Object, Ref, RefOr, Type};

/// The document's base: what is not a path.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "iotitan HTTP API",
        description = "Readings in, commands out, history, aggregates and the dashboard's data \
                       of iotitan-http. The reference with every rule: docs/HTTP.md.",
        license(name = "MIT OR Apache-2.0"),
    ),
    components(schemas(ErrorAnswer, super::schema::Published)),
    modifiers(&Schemes),
    tags(
        (name = "ingest", description = "Readings in: our forms, OwnTracks, GPSLogger, Telegraf"),
        (name = "command", description = "Commands to devices, with their acknowledgement"),
        (name = "read", description = "History, aggregates, top devices, histograms"),
        (name = "daemon", description = "Liveness, the dashboard's settings, this document"),
    ),
)]
pub struct Base;

/// The security schemes: a token as `Bearer` (every `/api/v1` path), as the Basic auth
/// password (OwnTracks, GPSLogger), or as the `access_token` parameter (the live stream, for
/// a browser's `EventSource`).
struct Schemes;

impl utoipa::Modify for Schemes {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An access token (`[[http.token]]`)"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some("Any user name, an access token as the password"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "access_token",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::new("access_token"))),
        );
    }
}

/// Every error answer: `{"error": code, "message": one sentence}`; a reading batch's `503`
/// also says what became of it.
#[derive(utoipa::ToSchema)]
#[schema(as = Error)]
#[allow(dead_code)] // Only its schema is used: errors are written by `error::ApiError`.
pub struct ErrorAnswer {
    /// A stable word to branch on (`bad_topic`, `unauthorized`, …).
    error: String,
    /// One sentence for people; never a token.
    message: String,
    /// A reading batch's `503`: readings the broker acknowledged.
    #[schema(required = false, minimum = 0)]
    published: u64,
    /// A reading batch's `503`: readings sent but not acknowledged.
    #[schema(required = false, minimum = 0)]
    unconfirmed: u64,
    /// A reading batch's `503`: readings older than `stats.disorder`.
    #[schema(required = false, minimum = 0)]
    late: u64,
    /// A reading batch's `503`: location numbers withheld in a private area.
    #[schema(required = false, minimum = 0)]
    private: u64,
}

/// Error answers, by status and what they mean, as the document lists them; `401`, `429` and
/// `503` say the headers they carry.
pub fn errors(list: &[(&str, &str)]) -> BTreeMap<String, RefOr<Response>> {
    list.iter()
        .map(|&(status, description)| {
            let content = ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Error")))
                .build();
            let mut response = ResponseBuilder::new()
                .description(description)
                .content("application/json", content);
            let header = |description: &str, schema: Type| {
                HeaderBuilder::new()
                    .schema(Object::with_type(schema))
                    .description(Some(description))
                    .build()
            };
            match status {
                "401" => {
                    response = response.header(
                        "WWW-Authenticate",
                        header("`Bearer realm=\"iotitan\"`", Type::String),
                    );
                }
                "429" | "503" => {
                    response = response.header(
                        "Retry-After",
                        header("Seconds to wait before trying again", Type::Integer),
                    );
                }
                _ => {}
            }
            (status.to_owned(), response.build().into())
        })
        .collect()
}

/// The error answers every request with a token can give before its handler's own.
pub const TOKEN: [(&str, &str); 3] = [
    ("401", "`unauthorized`: no token, or not a known one"),
    (
        "403",
        "`forbidden`: the token lacks the scope, or the topic is outside its `topics`",
    ),
    ("429", "`rate_limited`: the token is over its `rate`"),
];

/// The error answers of a request with a body: the layers' and the reading of it.
const BODY: [(&str, &str); 2] = [
    (
        "408",
        "`request_timeout`: the body did not arrive within `http.request_timeout`",
    ),
    (
        "413",
        "`body_too_large`: the body is over `http.max_body` (a gzip body: once inflated)",
    ),
];

/// The error answers of an ingest path.
pub struct IngestErrors;

impl utoipa::IntoResponses for IngestErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let mut list = vec![
            (
                "400",
                "`bad_json`, `bad_topic`, `non_finite`, `bad_reading` or `bad_body`: nothing of \
                 the request was published",
            ),
            (
                "415",
                "`unsupported_encoding`: a `Content-Encoding` other than gzip",
            ),
            (
                "503",
                "`broker_unavailable`: says how many readings were acknowledged (`published`) \
                 and how many may or may not have arrived (`unconfirmed`); none is sent later",
            ),
        ];
        list.extend(TOKEN);
        list.extend(BODY);
        errors(&list)
    }
}

/// The answers of an ingest path that answers what it published: `200` with
/// [`super::schema::Published`], or an error of [`IngestErrors`].
pub struct Ingested;

impl utoipa::IntoResponses for Ingested {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let mut all = IngestErrors::responses();
        let content = ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("Published")))
            .build();
        let ok = ResponseBuilder::new()
            .description("Every message was acknowledged by the broker")
            .content("application/json", content)
            .build();
        all.insert("200".into(), ok.into());
        all
    }
}

/// The error answers of `/api/v1/commands`.
pub struct CommandErrors;

impl utoipa::IntoResponses for CommandErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let mut list = vec![
            (
                "400",
                "`bad_json`, `bad_command`, `bad_topic` or `bad_body`: nothing was published",
            ),
            ("404", "`unknown_device`: no such `[[http.device]]`"),
            (
                "503",
                "`broker_unavailable`: the message says whether the command was published",
            ),
            (
                "504",
                "`no_acknowledgement`: the command was published, no matching answer came in time",
            ),
        ];
        list.extend(TOKEN);
        list.extend(BODY);
        errors(&list)
    }
}

/// The error answers of a path that only checks its token.
pub struct TokenErrors;

impl utoipa::IntoResponses for TokenErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        errors(&TOKEN)
    }
}
