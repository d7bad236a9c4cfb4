//! The read endpoints over HTTP: `GET /topics`, `/history`, `/aggregate`, `/top`,
//! `/histogram`, `/track`. [`routes`] has its state applied, so the daemon nests it (under `/api/v1`)
//! behind its own authentication layer.
//!
//! Parameters are checked before anything is read: an unknown or repeated parameter, a bad
//! time, filter or number is a `400` with `{"error","message"}` naming it, never a silently
//! different answer. Reads run on a blocking thread.

use super::Consumer;
use super::aggregate::{self, Aggregate, Answer as AggregateAnswer, Curves, Every};
use super::histogram::{self, Answer as HistogramAnswer, Histogram};
use super::read::Context;
use super::rows::{History, Rows};
use super::top::{Entry, Order, Top};
use super::topics::{Seen, Topics};
use super::track::{Names, Track, TrackAnswer};
use crate::payload::{Extractor, FieldPath, JsonRule};
use crate::statistic::Statistic;
use crate::syslog::clock::Zone;
use crate::topic::{Filters, TopicFilter};
use axum::Json;
use axum::extract::{OriginalUri, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Datelike, Utc};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Rows `/history` returns unless `limit` says otherwise.
pub const DEFAULT_LIMIT: usize = 10_000;
/// Most rows one `/history` answer may hold.
pub const MAX_LIMIT: usize = 1_000_000;
/// Most devices one `/top` answer may hold.
pub const MAX_N: usize = 10_000;
/// Points `/track` returns unless `limit` says otherwise.
pub const DEFAULT_TRACK: usize = 10_000;
/// Most points one `/track` answer may hold: a report every 30 s for a month.
pub const MAX_TRACK: usize = 100_000;

/// The read routes, state applied, each with its description in the API document: a route
/// is registered together with its `#[utoipa::path]`, so none is served undocumented.
pub fn routes(ctx: Context) -> OpenApiRouter {
    api().with_state(ctx)
}

/// The read routes before their state, for the API document alone.
pub fn api() -> OpenApiRouter<Context> {
    OpenApiRouter::new()
        .routes(routes!(topics))
        .routes(routes!(history))
        .routes(routes!(aggregate))
        .routes(routes!(top))
        .routes(routes!(histogram))
        .routes(routes!(track))
}

/// The parameters each endpoint takes: what [`Params::parse`] lets through, and what the API
/// document lists (a unit test holds the two equal).
const TOPICS_PARAMS: &[&str] = &["topics", "since", "until", "limit", "after", "q"];
const HISTORY_PARAMS: &[&str] = &["topics", "since", "until", "limit", "format"];
const AGGREGATE_PARAMS: &[&str] = &[
    "topics",
    "since",
    "until",
    "every",
    "stats",
    "max_points",
    "by",
    "within",
    "outside",
];
const TOP_PARAMS: &[&str] = &[
    "feature", "stat", "n", "order", "topics", "since", "until", "within", "outside",
];
const HISTOGRAM_PARAMS: &[&str] = &["topics", "since", "until", "bins"];
const TRACK_PARAMS: &[&str] = &["device", "since", "until", "limit"];

/// An error answer: `{"error": code, "message": one sentence}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn bad(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "bad_parameter",
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": self.code, "message": self.message});
        (self.status, Json(body)).into_response()
    }
}

/// The parameters several reads take, as the API document lists them (parsed by [`Params`]).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Only their descriptions are used.
struct Times {
    /// RFC 3339, `now`, or relative to now (`-7d`, `-90m`)
    #[param(example = "-1d", pattern = r"^\s*(now|[+-].*|[0-9]{4}-.*)\s*$")]
    since: Option<String>,
    /// As `since`; default `now`
    #[param(example = "now", pattern = r"^\s*(now|[+-].*|[0-9]{4}-.*)\s*$")]
    until: Option<String>,
}

/// Required topic filters.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct SomeTopics {
    /// MQTT filters, repeated, required (`+` written `%2B`, `#` `%23`)
    #[param(explode, example = json!(["#"]))]
    topics: Vec<String>,
}

/// Optional topic filters.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct AnyTopics {
    /// MQTT filters, repeated, default `#` (`+` written `%2B`, `#` `%23`)
    #[param(explode, example = json!(["#"]))]
    topics: Option<Vec<String>>,
}

/// A calendar's hours, or the time outside them.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct Hours {
    /// Only the hours of this `[[calendar]]`
    within: Option<String>,
    /// Only the time outside this `[[calendar]]`'s hours
    outside: Option<String>,
}

/// The error answers every read can give, as the API document lists them.
struct ReadErrors;

impl utoipa::IntoResponses for ReadErrors {
    fn responses() -> std::collections::BTreeMap<
        String,
        utoipa::openapi::RefOr<utoipa::openapi::response::Response>,
    > {
        let mut list = vec![
            (
                "400",
                "`bad_parameter`, or `too_many_series` past `http.max_series`",
            ),
            ("500", "`read_failed`: a source could not be read"),
        ];
        list.extend(crate::http::openapi::TOKEN);
        crate::http::openapi::errors(&list)
    }
}

/// The query string, decoded.
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(query: Option<String>, allowed: &[&str]) -> Result<Params, ApiError> {
        let pairs: Vec<(String, String)> =
            form_urlencoded::parse(query.unwrap_or_default().as_bytes())
                .into_owned()
                .collect();
        if let Some((k, _)) = pairs.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
            return Err(ApiError::bad(format!(
                "unknown parameter {k:?}; this endpoint takes {}",
                allowed.join(", ")
            )));
        }
        Ok(Params(pairs))
    }

    fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The one value of `key`; repeating it is an error.
    fn one<'a>(&'a self, key: &'a str) -> Result<Option<&'a str>, ApiError> {
        let mut it = self.all(key);
        let first = it.next();
        if it.next().is_some() {
            return Err(ApiError::bad(format!(
                "parameter {key:?} is given more than once"
            )));
        }
        Ok(first)
    }

    /// A whole number in `lo..=hi`, `default` when absent.
    fn number(&self, key: &str, default: usize, lo: usize, hi: usize) -> Result<usize, ApiError> {
        let Some(v) = self.one(key)? else {
            return Ok(default);
        };
        match v.trim().parse::<usize>() {
            Ok(n) if (lo..=hi).contains(&n) => Ok(n),
            _ => Err(ApiError::bad(format!(
                "{key}={v:?} is not a whole number from {lo} to {hi}"
            ))),
        }
    }

    /// The topic filters (`topics=a/+/t&topics=b/#`); `#` when optional and absent.
    fn filters(&self, required: bool) -> Result<Filters, ApiError> {
        let list = self
            .all("topics")
            .map(|f| {
                TopicFilter::new(f)
                    .map_err(|e| ApiError::bad(format!("topics={f:?} is not an MQTT filter: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if list.is_empty() {
            if required {
                return Err(ApiError::bad(
                    "topics is required: one or more MQTT filters, like topics=home/+/temperature",
                ));
            }
            return Ok(Filters::of(&["#"]));
        }
        Ok(Filters(list))
    }

    /// `[since, until)`: RFC 3339 or relative to `now` (`-7d`); `until` defaults to now.
    fn range(&self, default_since: &str, now: DateTime<Utc>) -> Result<Range, ApiError> {
        let time = |key: &str, default: &str| -> Result<DateTime<Utc>, ApiError> {
            let v = self.one(key)?.unwrap_or(default);
            crate::time::parse_time(v, now).map_err(|e| ApiError::bad(format!("{key}: {e}")))
        };
        let since = time("since", default_since)?;
        let until = time("until", "now")?;
        // Relative times reach far beyond what RFC 3339 can write; buckets near chrono's
        // limits would overflow, and no reading is there.
        for (key, t) in [("since", since), ("until", until)] {
            if !(0..=9999).contains(&t.year()) {
                return Err(ApiError::bad(format!(
                    "{key}: {t} is outside the years 0000 to 9999"
                )));
            }
        }
        if until <= since {
            return Err(ApiError::bad(format!(
                "until ({until}) is not after since ({since})"
            )));
        }
        Ok((since, until))
    }
}

/// A time range `[since, until)`.
type Range = (DateTime<Utc>, DateTime<Utc>);

/// Run a read, in one scan with the reads waiting beside it.
async fn read<C: Consumer + Send + 'static>(
    ctx: Context,
    topics: Filters,
    range: Range,
    make: impl Fn() -> C + Send + 'static,
) -> Result<C, ApiError> {
    let extractor = ctx.extractor().clone();
    read_by(ctx, extractor, topics, range, make).await
}

/// [`read`], the payloads read by `extractor`.
async fn read_by<C: Consumer + Send + 'static>(
    ctx: Context,
    extractor: Extractor,
    topics: Filters,
    (since, until): Range,
    make: impl Fn() -> C + Send + 'static,
) -> Result<C, ApiError> {
    let max = ctx.max_series();
    let done = ctx
        .read_shared_by(extractor, topics, since, until, make)
        .await;
    let internal = |message: String| ApiError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        code: "read_failed",
        message,
    };
    match done {
        Ok(r) if r.too_many => Err(ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "too_many_series",
            message: format!(
                "more than {max} series match (the read stopped at {} of them): narrow \
                 topics= (or group them with by=, on /aggregate), or raise http.max_series \
                 ({max})",
                r.consumer.series()
            ),
        }),
        Ok(r) => {
            if r.rejected > 0 {
                tracing::debug!("{} records were neither numbers nor states", r.rejected);
            }
            Ok(r.consumer)
        }
        Err(e) => {
            tracing::warn!("read failed: {e}");
            Err(internal(format!("the history could not be read: {e}")))
        }
    }
}

#[utoipa::path(
    get,
    path = "/topics",
    tag = "read",
    summary = "What was seen, a page at a time",
    security(("bearer" = [])),
    params(
        AnyTopics,
        Times,
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 10000, description = "series on a page, default 1000"),
        ("after" = Option<String>, Query, description = "the last series of the previous page"),
        ("q" = Option<String>, Query, description = "only series whose name holds this text, any ASCII case"),
    ),
    responses(
        (status = 200, description = "Series sorted by name; `Link` names the next page", body = [Seen], headers(("Link" = String, description = "RFC 8288 link to the next page, when one follows"))),
        ReadErrors,
    ),
)]
async fn topics(
    State(ctx): State<Context>,
    OriginalUri(uri): OriginalUri,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let p = topics_params(q, Utc::now())?;
    let (limit, after, q) = (p.limit, p.after.clone(), p.q.clone());
    let units = ctx.clone();
    let mut page = read(ctx, p.topics.clone(), p.range, move || {
        Topics::new(limit, after.clone()).holding(q.clone())
    })
    .await?
    .finish();
    for s in &mut page.topics {
        s.unit = units.units().of(&s.topic).unit;
    }
    let mut response = Json(page.topics).into_response();
    if let Some(last) = page.next {
        // RFC 8288, as GitHub's API pages: the same request, after this page's last topic.
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (k, v) in p.params.0.iter().filter(|(k, _)| k != "after") {
            query.append_pair(k, v);
        }
        query.append_pair("after", &last);
        let link = format!("<{}?{}>; rel=\"next\"", uri.path(), query.finish());
        if let Ok(value) = header::HeaderValue::from_str(&link) {
            response.headers_mut().insert(header::LINK, value);
        }
    }
    Ok(response)
}

/// `/topics`' parameters: the filters and the range.
/// Topics on a page of `/topics` by default, and at most.
const DEFAULT_TOPICS: usize = 1000;
const MAX_TOPICS: usize = 10_000;

/// `/topics`' parameters.
struct TopicsParams {
    topics: Filters,
    range: Range,
    limit: usize,
    after: Option<String>,
    /// `q`: only series whose name holds this text (any ASCII case).
    q: Option<String>,
    /// All of them, for the next page's link.
    params: Params,
}

fn topics_params(q: Option<String>, now: DateTime<Utc>) -> Result<TopicsParams, ApiError> {
    let p = Params::parse(q, TOPICS_PARAMS)?;
    Ok(TopicsParams {
        topics: p.filters(false)?,
        range: p.range("-1d", now)?,
        limit: p.number("limit", DEFAULT_TOPICS, 1, MAX_TOPICS)?,
        after: p.one("after")?.map(str::to_owned),
        q: p.one("q")?.map(str::to_owned),
        params: p,
    })
}

#[utoipa::path(
    get,
    path = "/history",
    tag = "read",
    summary = "Raw readings, oldest first",
    security(("bearer" = [])),
    params(
        SomeTopics,
        Times,
        ("limit" = Option<usize>, Query, minimum = 0, maximum = 1000000, description = "rows, default 10000"),
        ("format" = Option<String>, Query, pattern = "^(json|csv)$", description = "`json` or `csv`; without it, CSV when `Accept` names `text/csv`"),
    ),
    responses(
        (status = 200, description = "The oldest `limit` rows of the range", content((History = "application/json"), (String = "text/csv"))),
        ReadErrors,
    ),
)]
async fn history(
    State(ctx): State<Context>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let h = history_params(q, Utc::now())?;
    let csv = h.csv.unwrap_or_else(|| {
        headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/csv"))
    });
    let limit = h.limit;
    let rows = read(ctx, h.topics, h.range, move || Rows::new(limit))
        .await?
        .finish();
    if csv {
        Ok((
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            rows.csv(),
        )
            .into_response())
    } else {
        Ok(Json(rows).into_response())
    }
}

/// `/history`'s parameters.
struct HistoryParams {
    /// `format`: CSV or JSON; `None` lets the `Accept` header decide.
    csv: Option<bool>,
    limit: usize,
    topics: Filters,
    range: Range,
}

fn history_params(q: Option<String>, now: DateTime<Utc>) -> Result<HistoryParams, ApiError> {
    let p = Params::parse(q, HISTORY_PARAMS)?;
    let csv = match p.one("format")? {
        Some("csv") => Some(true),
        Some("json") => Some(false),
        Some(f) => return Err(ApiError::bad(format!("format={f:?}: expected json or csv"))),
        None => None,
    };
    let limit = p.number("limit", DEFAULT_LIMIT, 0, MAX_LIMIT)?;
    let (topics, range) = (p.filters(true)?, p.range("-1d", now)?);
    Ok(HistoryParams {
        csv,
        limit,
        topics,
        range,
    })
}

#[utoipa::path(
    get,
    path = "/aggregate",
    tag = "read",
    summary = "Statistics per series and bucket",
    security(("bearer" = [])),
    params(
        SomeTopics,
        Times,
        ("every" = Option<String>, Query, example = "1h", description = "bucket width (`1m`, `1h`, `1d`, `7d`…), default `1h`"),
        ("stats" = Option<Vec<String>>, Query, explode = true, example = json!(["min,mean,max,count"]), description = "comma lists of statistics (`min,mean,max,count` by default; `p95`, `increase`, `integral`…)"),
        ("max_points" = Option<usize>, Query, minimum = 2, maximum = 100000, description = "widen `every` until the range needs at most this many buckets"),
        ("by" = Option<usize>, Query, minimum = 1, maximum = 64, description = "sum series per place: the first N levels and the measure"),
        Hours,
    ),
    responses(
        (status = 200, body = AggregateAnswer),
        ReadErrors,
    ),
)]
async fn aggregate(
    State(ctx): State<Context>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let zone = crate::time::local();
    let p = aggregate_params(q, Utc::now(), &zone)?;
    let energy = p.stats.iter().any(|s| s.is_energy());
    let (spans, read_range) = counted(&ctx, &zone, p.range, energy, &p.calendar)?;
    let (every, stats, by, max_gap) = (p.every, p.stats, p.by, ctx.energy().max_gap.get());
    let make = move || {
        let mut agg = Aggregate::new(every, zone, &stats);
        if let Some(n) = by {
            agg = agg.by(n);
        }
        if let Some(spans) = &spans {
            agg = agg.with_curves(Curves::new(spans.clone(), max_gap));
        }
        agg
    };
    let c = read(ctx, p.topics, read_range, make).await?;
    Ok(Json(c.finish()).into_response())
}

/// The spans an answer counts (µs), if not all it reads, and the range to read.
type Counted = (Option<Vec<(i64, i64)>>, Range);

/// The time an answer counts, and the range to read for it. With energy statistics or a
/// calendar: the spans of the range counted (a calendar's hours in it, or the rest of it), and
/// for energy the range widened by `[energy] lookback` before it (a meter's baseline, the
/// first interval) and `max_gap` after it (the reading that closes the last interval).
/// Otherwise `None` and the range.
fn counted<Z: Zone>(
    ctx: &Context,
    zone: &Z,
    range: Range,
    energy: bool,
    calendar: &Option<(String, bool)>,
) -> Result<Counted, ApiError> {
    if !energy && calendar.is_none() {
        return Ok((None, range));
    }
    let (a, b) = (range.0.timestamp_micros(), range.1.timestamp_micros());
    let spans = match calendar {
        None => vec![(a, b)],
        Some((name, within)) => {
            let c = ctx.calendar(name).ok_or_else(|| {
                ApiError::bad(format!(
                    "{}={name}: no calendar of that name (config [[calendar]])",
                    if *within { "within" } else { "outside" }
                ))
            })?;
            if *within {
                c.spans(zone, a, b)
            } else {
                c.outside(zone, a, b)
            }
        }
    };
    if !energy {
        return Ok((Some(spans), range));
    }
    let settings = ctx.energy();
    let widen =
        |d: std::time::Duration| chrono::Duration::from_std(d).unwrap_or(chrono::Duration::zero());
    let read = (
        range
            .0
            .checked_sub_signed(widen(settings.lookback.get()))
            .unwrap_or(range.0),
        range
            .1
            .checked_add_signed(widen(settings.max_gap.get()))
            .unwrap_or(range.1),
    );
    Ok((Some(spans), read))
}

/// `within=NAME` or `outside=NAME`: the calendar and whether its hours count (or the rest).
fn calendar_param(p: &Params, range: Range) -> Result<Option<(String, bool)>, ApiError> {
    let calendar = match (p.one("within")?, p.one("outside")?) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad(
                "within and outside: ask for one (the other is the rest of the range)",
            ));
        }
        (Some(c), None) => Some((c.to_owned(), true)),
        (None, Some(c)) => Some((c.to_owned(), false)),
        (None, None) => None,
    };
    if calendar.is_some() && (range.1 - range.0).num_days() > MAX_CALENDAR_DAYS {
        return Err(ApiError::bad(format!(
            "within/outside cover at most {MAX_CALENDAR_DAYS} days"
        )));
    }
    Ok(calendar)
}

/// The longest range `within=` or `outside=` may cover: its hours are listed day by day.
const MAX_CALENDAR_DAYS: i64 = 3660;

/// `/aggregate`'s parameters.
struct AggregateParams {
    topics: Filters,
    range: Range,
    /// The bucket width for the range in the zone.
    every: Every,
    stats: Vec<Statistic>,
    /// `by=N`: sums per prefix of N topic levels.
    by: Option<usize>,
    /// `within=NAME` (true) or `outside=NAME` (false).
    calendar: Option<(String, bool)>,
}

/// `/aggregate`'s parameters: the filters, the range, the bucket width for that range in
/// `zone`, the statistics, the grouping and the calendar.
fn aggregate_params<Z: Zone + Clone>(
    q: Option<String>,
    now: DateTime<Utc>,
    zone: &Z,
) -> Result<AggregateParams, ApiError> {
    let p = Params::parse(q, AGGREGATE_PARAMS)?;
    let (topics, range) = (p.filters(true)?, p.range("-7d", now)?);
    let every = Every::parse(p.one("every")?.unwrap_or("1h"))
        .map_err(|e| ApiError::bad(format!("every: {e}")))?;
    let max_points = match p.one("max_points")? {
        Some(_) => Some(p.number("max_points", 0, 2, aggregate::MAX_BUCKETS)?),
        None => None,
    };
    let every =
        aggregate::width(every, max_points, range.0, range.1, zone).map_err(ApiError::bad)?;
    let mut stats = Vec::new();
    for list in p.all("stats") {
        for s in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let st: Statistic = s
                .parse()
                .map_err(|e| ApiError::bad(format!("stats: {e}")))?;
            if !stats.contains(&st) {
                stats.push(st);
            }
        }
    }
    if stats.is_empty() {
        stats = vec![
            Statistic::Min,
            Statistic::Mean,
            Statistic::Max,
            Statistic::Count,
        ];
    }
    let by = match p.one("by")? {
        Some(_) => Some(p.number("by", 0, 1, 64)?),
        None => None,
    };
    let calendar = calendar_param(&p, range)?;
    Ok(AggregateParams {
        topics,
        range,
        every,
        stats,
        by,
        calendar,
    })
}

#[utoipa::path(
    get,
    path = "/top",
    tag = "read",
    summary = "The best devices by one feature",
    security(("bearer" = [])),
    params(
        ("feature" = String, Query, example = "power", pattern = "^[^/+#]+$", description = "the last topic level compared (`power`)"),
        ("stat" = Option<String>, Query, example = "max", description = "a statistic of `/aggregate`, default `max`"),
        ("n" = Option<usize>, Query, minimum = 1, maximum = 10000, description = "devices, default 10"),
        ("order" = Option<String>, Query, pattern = "^(desc|asc)$", description = "`desc` (default) or `asc`"),
        AnyTopics,
        Times,
        Hours,
    ),
    responses(
        (status = 200, body = [Entry]),
        ReadErrors,
    ),
)]
async fn top(State(ctx): State<Context>, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let (topics, range, mut top, calendar) = top_params(q, Utc::now())?;
    let zone = crate::time::local();
    let (spans, read_range) = counted(&ctx, &zone, range, top.stat().is_energy(), &calendar)?;
    if let Some(spans) = spans {
        top = top.with_spans(spans, ctx.energy().max_gap.get());
    }
    let c = read(ctx, topics, read_range, move || top.clone()).await?;
    Ok(Json(c.finish()).into_response())
}

/// `/top`'s parameters: the filters, the range, the ranking asked for and the calendar.
type TopParams = (Filters, Range, Top, Option<(String, bool)>);

fn top_params(q: Option<String>, now: DateTime<Utc>) -> Result<TopParams, ApiError> {
    let p = Params::parse(q, TOP_PARAMS)?;
    let feature = match p.one("feature")? {
        Some(f) if !f.is_empty() && !f.contains(['/', '+', '#']) => f.to_owned(),
        Some(f) => {
            return Err(ApiError::bad(format!(
                "feature={f:?} must be one topic level, like temperature"
            )));
        }
        None => {
            return Err(ApiError::bad(
                "feature is required, like feature=temperature",
            ));
        }
    };
    let stat: Statistic = p
        .one("stat")?
        .unwrap_or("max")
        .parse()
        .map_err(|e| ApiError::bad(format!("stat: {e}")))?;
    let order = match p.one("order")? {
        None | Some("desc") => Order::Desc,
        Some("asc") => Order::Asc,
        Some(o) => return Err(ApiError::bad(format!("order={o:?}: expected desc or asc"))),
    };
    let n = p.number("n", 10, 1, MAX_N)?;
    let (topics, range) = (p.filters(false)?, p.range("-1h", now)?);
    let calendar = calendar_param(&p, range)?;
    Ok((topics, range, Top::new(&feature, stat, n, order), calendar))
}

#[utoipa::path(
    get,
    path = "/histogram",
    tag = "read",
    summary = "Distribution of values, counts of states",
    security(("bearer" = [])),
    params(
        SomeTopics,
        Times,
        ("bins" = Option<usize>, Query, minimum = 1, maximum = 1000, description = "equal-width bins, default 20"),
    ),
    responses(
        (status = 200, body = HistogramAnswer),
        ReadErrors,
    ),
)]
async fn histogram(
    State(ctx): State<Context>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let (topics, range, bins) = histogram_params(q, Utc::now())?;
    let c = read(ctx, topics, range, move || Histogram::new(bins)).await?;
    Ok(Json(c.finish()).into_response())
}

/// `/histogram`'s parameters: the filters, the range and the number of bins.
fn histogram_params(
    q: Option<String>,
    now: DateTime<Utc>,
) -> Result<(Filters, Range, usize), ApiError> {
    let p = Params::parse(q, HISTOGRAM_PARAMS)?;
    let bins = p.number("bins", 20, 1, histogram::MAX_BINS)?;
    Ok((p.filters(true)?, p.range("-1d", now)?, bins))
}

#[utoipa::path(
    get,
    path = "/track",
    tag = "read",
    summary = "A device's locations, paired into points",
    description = "Its latitudes and longitudes, from `<device>/lat|latitude` and \
                   `<device>/lon|lng|longitude` series or a location document on `<device>`, \
                   paired into points; never one inside a private area.",
    security(("bearer" = [])),
    params(
        ("device" = String, Query, example = "owntracks/jane/phone",
            description = "the device's topic, without wildcards"),
        Times,
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 100000,
            description = "points, the newest; default 10000"),
    ),
    responses(
        (status = 200, description = "The newest `limit` points, oldest first", body = TrackAnswer),
        ReadErrors,
    ),
)]
async fn track(State(ctx): State<Context>, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let (device, range, limit) = track_params(q, Utc::now())?;
    // A document on the device's own topic holds both coordinates where a location rule
    // (OwnTracks', built in, or a `[[location]]`) names it: read those two fields, whatever
    // `[[payload.json]]` says; the private ones are withheld before they are read.
    let fields = ctx.locations().fields(&device);
    let names = Names::new(
        &device,
        fields.as_ref().map(|(a, b)| (a.as_str(), b.as_str())),
    );
    let extractor = match &fields {
        Some((lat, lon)) => {
            let path = |p: &str| {
                FieldPath::new(p).map_err(|e| ApiError::bad(format!("a location rule: {e}")))
            };
            Extractor::new(vec![JsonRule {
                topics: Filters::of(&[device.as_str()]),
                fields: vec![path(lat)?, path(lon)?],
            }])
        }
        None => Extractor::default(),
    };
    let document = fields.is_some().then_some(device.as_str());
    let topics = document
        .into_iter()
        .chain(names.all())
        .map(TopicFilter::new)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::bad(format!("device={device:?}: {e}")))?;
    let areas = ctx.locations().areas().clone();
    let c = read_by(ctx, extractor, Filters(topics), range, move || {
        Track::new(names.clone(), areas.clone(), limit)
    })
    .await?;
    Ok(Json(c.finish()).into_response())
}

/// `/track`'s parameters: the device (a topic), the range and the most points.
fn track_params(q: Option<String>, now: DateTime<Utc>) -> Result<(String, Range, usize), ApiError> {
    let p = Params::parse(q, TRACK_PARAMS)?;
    let device = match p.one("device")? {
        Some(d) => crate::topic::check_publish_topic(d)
            .map(|()| d.to_owned())
            .map_err(|e| {
                ApiError::bad(format!(
                    "device={d:?} must be a topic without wildcards, like owntracks/jane/phone: {e}"
                ))
            })?,
        None => {
            return Err(ApiError::bad(
                "device is required: the topic of one device, like device=owntracks/jane/phone",
            ));
        }
    };
    let limit = p.number("limit", DEFAULT_TRACK, 1, MAX_TRACK)?;
    Ok((device, p.range("-1d", now)?, limit))
}

/// Check `query` as every endpoint would, at `now` in `zone`, without reading: what the
/// fuzz target drives. The answers' messages, for the endpoints that refuse it.
#[doc(hidden)]
pub fn check_params<Z: Zone + Clone>(query: &str, now: DateTime<Utc>, zone: &Z) -> Vec<String> {
    let q = || Some(query.to_owned());
    [
        topics_params(q(), now).err(),
        history_params(q(), now).err(),
        aggregate_params(q(), now, zone).err(),
        top_params(q(), now).err(),
        histogram_params(q(), now).err(),
        track_params(q(), now).err(),
    ]
    .into_iter()
    .flatten()
    .map(|e| e.message)
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-22T07:00:00Z")
            .unwrap()
            .to_utc()
    }

    /// The API document lists exactly the parameters each endpoint takes.
    #[test]
    fn the_document_lists_the_parameters_the_endpoints_take() {
        let doc = api().into_openapi();
        for (path, taken) in [
            ("/topics", TOPICS_PARAMS),
            ("/history", HISTORY_PARAMS),
            ("/aggregate", AGGREGATE_PARAMS),
            ("/top", TOP_PARAMS),
            ("/histogram", HISTOGRAM_PARAMS),
            ("/track", TRACK_PARAMS),
        ] {
            let item = &doc.paths.paths[path];
            let listed: Vec<&str> = item
                .get
                .as_ref()
                .and_then(|op| op.parameters.as_ref())
                .into_iter()
                .flatten()
                .map(|p| p.name.as_str())
                .collect();
            assert_eq!(listed, taken, "{path}");
        }
    }

    /// Found by fuzzing the read API: these panicked (a bucket's end overflowed chrono's dates)
    /// instead of being refused.
    #[test]
    fn far_times_and_wide_buckets_are_refused() {
        let refusals = |q: &str| check_params(q, now(), &Utc);
        let all = refusals("topics=a&every=100000000000d");
        assert!(all.iter().any(|m| m.starts_with("every:")), "{all:?}");
        for q in [
            "topics=a&since=-90000000d&max_points=2",
            "topics=a&since=%2B0d&until=%2B90000000d&every=1d&max_points=2",
        ] {
            let all = refusals(q);
            assert!(
                all.iter()
                    .any(|m| m.contains("outside the years 0000 to 9999")),
                "{q}: {all:?}"
            );
        }
        // The widest range RFC 3339 can write still works.
        let all =
            refusals("topics=a&since=0000-01-01T00:00:00Z&until=9999-12-31T23:59:59Z&max_points=2");
        assert!(!all.iter().any(|m| m.starts_with("every")), "{all:?}");
    }
}
