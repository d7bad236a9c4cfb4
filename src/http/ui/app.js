// The iotitan dashboard. Every piece of data comes from /api/v1 with the read token as a Bearer
// header; the token comes from the URL fragment (#token=..., never sent to the server) or a
// form, and is kept in sessionStorage only.
"use strict";

const KEY = "iotitan.token";
const ALERT_KINDS = ["hi", "lo", "stale"];
const RANGES = { "1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400 };
const $ = (id) => document.getElementById(id);

let token = null;
let series = new Map(); // topic -> {last, at}
let alerts = new Map(); // topic -> {hi, lo, stale}
// The chosen series (hourly view, histogram, first on the chart) and every series on the chart.
let current = { topic: null, topics: [], range: "24h" };
// topic -> [[t, mean, count]] in buckets of `every` seconds, over span [t0, t1]
let sparks = { points: {}, span: [0, 1], every: 3600 };
let sparksReloading = false;
const SPARK_POINTS = 48; // at most, in the finer buckets of a young span
let plot = null;
// What the chart shows, kept so that live readings can join it: its topics, their buckets
// (as /aggregate gave them), the bucket width and the range [t0, t1].
let chart = null;
let chartRedraw = false;
let hourlyPlot = null;
let live = null;
let csvUrl = null;

class AuthError extends Error {}

/// The token from the fragment (then removed from the address bar) or sessionStorage.
function takeToken() {
  const m = /(?:^|[#&])token=([^&]*)/.exec(location.hash);
  const r = /(?:^|[#&])range=([^&]*)/.exec(location.hash);
  if (r && r[1] in RANGES) { current.range = r[1]; current.chosen = true; }
  // #series=a/b/t,c/d/t: the chart's series, the first one chosen.
  const sr = /(?:^|[#&])series=([^&]*)/.exec(location.hash);
  if (sr) {
    current.topics = decodeURIComponent(sr[1]).split(",").filter((t) => t);
    current.topic = current.topics[0] || null;
  }
  if (m) {
    sessionStorage.setItem(KEY, decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem(KEY);
}

async function api(path, accept) {
  return (await apiPage(path, accept)).body;
}

/// An answer and, when the server pages it (`Link: <…>; rel="next"`), the path of the next
/// page under /api/v1.
async function apiPage(path, accept) {
  const r = await fetch("/api/v1" + path, {
    headers: { Authorization: "Bearer " + token, Accept: accept || "application/json" },
    cache: "no-store",
  });
  if (r.status === 401 || r.status === 403) {
    throw new AuthError(r.status === 401
      ? "The token was refused: it is unknown. Enter a read token."
      : "This token may not read data: it needs the read scope.");
  }
  if (!r.ok) {
    let msg = r.status + " " + r.statusText;
    try { msg = (await r.json()).message || msg; } catch (_) { /* not JSON */ }
    throw new Error(msg);
  }
  const link = /<\/api\/v1([^>]*)>;\s*rel="next"/.exec(r.headers.get("Link") || "");
  return { body: await (accept === "text/csv" ? r.blob() : r.json()), next: link ? link[1] : null };
}

function say(text) {
  const m = $("message");
  m.textContent = text || "";
  m.hidden = !text;
}

function showLogin(text) {
  sessionStorage.removeItem(KEY);
  token = null;
  if (live) { live.close(); live = null; }
  series = new Map();
  alerts = new Map();
  $("overview").tBodies[0].replaceChildren();
  for (const id of ["hourly", "histogram", "top", "alerts", "devices"]) {
    $(id).tBodies[0].replaceChildren();
  }
  $("states").textContent = "";
  $("series").replaceChildren();
  if (plot) { plot.destroy(); plot = null; }
  chart = null;
  if (hourlyPlot) { hourlyPlot.destroy(); hourlyPlot = null; }
  $("data").hidden = true;
  $("logout").hidden = true;
  $("login").hidden = false;
  say(text);
}

function fail(e) {
  if (e instanceof AuthError) showLogin(e.message);
  else say("Could not load data: " + e.message);
}

/// `a/b/temperature_alert_hi` -> ["a/b/temperature", "hi"], else null.
function alertOf(topic) {
  const m = /^(.*)_alert_(hi|lo|stale)$/.exec(topic);
  return m ? [m[1], m[2]] : null;
}

function isOn(v) {
  return v === true || v === 1 || /^(on|1|true)$/i.test(String(v));
}

function fmt(v) {
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : String(+v.toPrecision(6));
  return String(v);
}

function age(at) {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(at)) / 1000));
  if (s < 120) return s + " s";
  if (s < 7200) return Math.round(s / 60) + " min";
  if (s < 172800) return Math.round(s / 3600) + " h";
  return Math.round(s / 86400) + " d";
}

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function alertCell(topic) {
  const td = document.createElement("td");
  const a = alerts.get(topic) || {};
  for (const k of ALERT_KINDS) {
    if (!(k in a)) continue;
    const s = document.createElement("span");
    s.className = "alert " + (a[k] ? "on" : "off");
    s.dataset.alert = k;
    s.textContent = k + (a[k] ? " on" : " off");
    td.append(s);
  }
  return td;
}

const SVG = "http://www.w3.org/2000/svg";

/// The sparkline of the last 24 h (the span there is, when shorter): bucket means as a line.
function sparkCell(topic) {
  const td = document.createElement("td");
  td.className = "spark";
  const pts = sparks.points[topic];
  if (!pts || !pts.length) return td;
  const [W, H] = [120, 24];
  const [t0, t1] = sparks.span;
  const vs = pts.map((p) => p[1]);
  const lo = Math.min(...vs), hi = Math.max(...vs);
  const x = (t) => 1 + (W - 2) * Math.min(1, Math.max(0, (t - t0) / Math.max(1, t1 - t0)));
  const y = (v) => (hi > lo ? H - 2 - (H - 4) * (v - lo) / (hi - lo) : H / 2);
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("width", W);
  svg.setAttribute("height", H);
  svg.setAttribute("viewBox", "0 0 " + W + " " + H);
  svg.dataset.points = String(pts.length);
  const title = document.createElementNS(SVG, "title");
  title.textContent = "since " + new Date(t0 * 1000).toLocaleString() + ": " + fmt(lo) + " to " + fmt(hi);
  svg.append(title);
  if (pts.length === 1) {
    const c = document.createElementNS(SVG, "circle");
    c.setAttribute("cx", x(pts[0][0]).toFixed(1));
    c.setAttribute("cy", y(vs[0]).toFixed(1));
    c.setAttribute("r", "1.5");
    svg.append(c);
  } else {
    const line = document.createElementNS(SVG, "polyline");
    line.setAttribute("points", pts.map((p) => x(p[0]).toFixed(1) + "," + y(p[1]).toFixed(1)).join(" "));
    svg.append(line);
  }
  td.append(svg);
  return td;
}

function rowOf(topic) {
  const s = series.get(topic);
  const tr = document.createElement("tr");
  tr.dataset.topic = topic;
  const pick = document.createElement("td");
  // Numbers, and states the read API counts as 1/0 (a plug's ON/OFF, which live sends as text).
  if (typeof s.last === "number" || /^(on|off|true|false)$/i.test(String(s.last))) {
    const box = document.createElement("input");
    box.type = "checkbox";
    box.className = "pick";
    box.title = "on the chart";
    box.checked = current.topics.includes(topic);
    box.addEventListener("click", (ev) => {
      ev.stopPropagation();
      toggle(topic, box.checked);
    });
    pick.append(box);
  }
  const a = alerts.get(topic) || {};
  if (ALERT_KINDS.some((k) => a[k])) tr.classList.add("alerting");
  const name = cell(topic);
  const stats = statisticsOf(topic);
  if (stats.length) {
    const small = document.createElement("div");
    small.className = "derived muted";
    small.dataset.statistics = stats.map((x) => x[0]).join(",");
    small.textContent = stats.map(([k, v]) => k + " " + fmt(v)).join(" · ");
    name.append(small);
  }
  const value = cell(fmt(s.last), "num value");
  if (s.unit) {
    const u = document.createElement("span");
    u.className = "unit";
    u.textContent = " " + s.unit;
    value.append(u);
  }
  tr.append(pick, name, value, cell(age(s.at), "age"), sparkCell(topic), alertCell(topic));
  tr.addEventListener("click", () => select(topic));
  return tr;
}

/// One row per series, its statistics in its row, under a heading per place.
function renderOverview() {
  const body = $("overview").tBodies[0];
  const rows = [];
  let place = null;
  for (const topic of [...series.keys()].sort()) {
    if (grouped(topic)) continue;
    const p = placeOf(topic);
    if (p !== place) {
      place = p;
      const tr = document.createElement("tr");
      tr.className = "place";
      tr.dataset.place = p;
      const th = document.createElement("th");
      th.colSpan = 6;
      th.textContent = p || "(top level)";
      tr.append(th);
      rows.push(tr);
    }
    rows.push(rowOf(topic));
  }
  body.replaceChildren(...rows);
  renderTrackDevices();
}

/// The statistics of `topic` in the overview (`mean 21.3 · max 23`), in the order stats
/// names them.
function statisticsOf(topic) {
  const out = [];
  for (const [t, s] of series) {
    const d = derivedOf(t);
    if (d && d[0] === topic && typeof s.last === "number") out.push([d[1], s.last]);
  }
  return out.sort((a, b) => (a[0] < b[0] ? -1 : 1));
}

/// One reading (from /topics or live): a series or an alert state. Returns the topic whose
/// row shows it: an alert's or a statistic's series, or its own.
function note(topic, value, at, first, unit) {
  const a = alertOf(topic);
  if (a) {
    const st = alerts.get(a[0]) || {};
    st[a[1]] = isOn(value);
    alerts.set(a[0], st);
    return a[0];
  }
  const known = series.get(topic);
  series.set(topic, {
    last: value, at, first: first || (known && known.first) || at,
    unit: unit || (known && known.unit) || null,
  });
  const d = derivedOf(topic);
  return d && series.has(d[0]) ? d[0] : topic;
}

/// The statistics iotitan-stats publishes as `<series>_<statistic>` (and a group's
/// `_devices`), as the server's `statistic::is_output` reads them.
const STATISTIC = /^(.+)_(count|mean|min|max|stddev|median|first|last|increase|integral|twmean|coverage|devices|p[1-9][0-9]?)$/;

/// `[series, statistic]` of a statistic's topic (`a/temperature_mean`), else null.
function derivedOf(topic) {
  const cut = topic.lastIndexOf("/");
  const m = STATISTIC.exec(topic.slice(cut + 1));
  return m ? [topic.slice(0, cut + 1) + m[1], m[2]] : null;
}

/// A statistic shown in its series' row rather than as a row of its own: its series is in
/// the overview too.
const grouped = (topic) => {
  const d = derivedOf(topic);
  return d !== null && series.has(d[0]);
};

/// Where a series' device stands: its topic without the last two levels (the device and
/// the measure), which the overview groups rows under.
function placeOf(topic) {
  const levels = topic.split("/");
  // A device's last will (ESPEasy's `<device>/status/LWT`) stands where the device does.
  const cut = /\/status\/LWT$/.test(topic) ? 3 : 2;
  return levels.length > cut ? levels.slice(0, -cut).join("/") : "";
}

/// When the earliest of `topics` began in the overview's range (its `first`), in seconds;
/// `none` when none of them says.
function firstOf(topics, none) {
  const firsts = topics.map((t) => secs((series.get(t) || {}).first)).filter(Number.isFinite);
  return firsts.length ? Math.min(...firsts) : none;
}

/// `/aggregate` of `topics` with `params`, in as many requests as URLs of a sane length
/// need (never `#`: over a large registry that would be refused as too many series), the
/// answers' series merged.
async function aggregateOf(topics, params) {
  const chunks = [[]];
  let length = 0;
  for (const t of topics) {
    const part = "topics=" + encodeURIComponent(t);
    if (length + part.length > 6000 && chunks[chunks.length - 1].length) {
      chunks.push([]);
      length = 0;
    }
    chunks[chunks.length - 1].push(part);
    length += part.length + 1;
  }
  const answers = await Promise.all(chunks.map((c) => api("/aggregate?" + c.join("&") + params)));
  return { series: Object.assign({}, ...answers.map((a) => a.series)), every: answers[0].every };
}

/// The sparklines: bucket means of every numeric series over the last 24 h, in one request
/// (or as many as short URLs need). Where all data is younger than a quarter of the span (a
/// fresh install, the demo: the overview's `first` says so), over the span there is, in
/// finer buckets.
async function loadSparks(topics) {
  if (!topics.length) return;
  const now = Date.now() / 1000;
  let since = now - 86400;
  const first = firstOf(topics, since);
  let v;
  if (now - first <= (now - since) / 4) {
    since = first;
    v = await aggregateOf(topics, "&since=" + encodeURIComponent(new Date(first * 1000).toISOString()) +
      "&every=1s&stats=mean&max_points=" + SPARK_POINTS);
  } else {
    v = await aggregateOf(topics, "&since=-24h&every=1h&stats=mean");
  }
  const points = {};
  for (const t of topics) {
    const b = (v.series || {})[t];
    if (b && b.length) points[t] = b.map((x) => [secs(x.start), x.mean, x.count]);
  }
  sparks = { points, span: [since, now], every: v.every || 3600 };
  for (const tr of $("overview").tBodies[0].rows) {
    const td = tr.querySelector("td.spark");
    if (td) td.replaceWith(sparkCell(tr.dataset.topic));
  }
}

/// A live number joins its sparkline as the aggregate would count it: into the last bucket
/// while it lasts, else into a new one `every` seconds on (buckets below a day divide the day,
/// so that is where the server's next one starts, but for a DST change: the next load mends
/// it). The span grows with it up to 24 h, then moves on, points older than its start
/// dropping out. When a line has grown to twice the points it was loaded with (fine buckets
/// of a young span), the sparklines are loaded again, in wider buckets.
function growSpark(topic, value, at) {
  const t = secs(at);
  if (typeof value !== "number" || !Number.isFinite(t)) return;
  const [t0, t1] = sparks.span;
  const width = Math.max(t1 - t0, Math.min(t - t0, 86400));
  const every = sparks.every;
  const pts = sparks.points[topic] || (sparks.points[topic] = []);
  const last = pts[pts.length - 1];
  if (last && t < last[0]) return; // older than the last bucket: the next load has it
  if (last && t < last[0] + every) {
    last[1] = (last[1] * last[2] + value) / (last[2] + 1);
    last[2] += 1;
  } else {
    const start = last ? last[0] + Math.floor((t - last[0]) / every) * every : t;
    pts.push([start, value, 1]);
  }
  if (t > t1) {
    sparks.span = [t - width, t];
    for (const p of Object.values(sparks.points)) {
      while (p.length && p[0][0] + every <= t - width) p.shift();
    }
  }
  if (pts.length > 2 * SPARK_POINTS && !sparksReloading) {
    sparksReloading = true;
    loadSparks(numericTopics()).catch(fail).finally(() => { sparksReloading = false; });
  }
}

const numericTopics = () =>
  [...series.keys()]
    .filter((t) => typeof series.get(t).last === "number" && !grouped(t))
    .sort();

/// Series on a page of the overview: a million topics are browsed a page at a time, and
/// searched on the server.
const PAGE = 200;
let nextPage = null;

async function loadOverview() {
  const q = $("find").value.trim();
  const page = await apiPage("/topics?since=-1d&limit=" + PAGE + (q ? "&q=" + encodeURIComponent(q) : ""));
  series = new Map();
  alerts = new Map();
  for (const s of page.body) note(s.topic, s.last, s.at, s.first, s.unit);
  nextPage = page.next;
  showPaging();
  const numeric = numericTopics();
  // A search narrows the overview, not the chart: its series stay chosen.
  if (!q) {
    if (!current.topic || !series.has(current.topic)) current.topic = numeric[0] || null;
    current.topics = current.topics.filter((t) => numeric.includes(t));
  }
  if (!current.topic) current.topic = numeric[0] || null;
  if (current.topic && !current.topics.includes(current.topic)) current.topics.unshift(current.topic);
  renderOverview();
  const sel = $("series");
  const options = current.topic && !numeric.includes(current.topic) ? [current.topic, ...numeric] : numeric;
  sel.replaceChildren(...options.map((t) => {
    const o = document.createElement("option");
    o.value = o.textContent = t;
    return o;
  }));
  if (current.topic) sel.value = current.topic;
}

/// Whether more series follow the ones shown, and how many are shown.
function showPaging() {
  $("more").hidden = !nextPage;
  $("shown").textContent = series.size + " series" + (nextPage ? " shown, more follow" : "");
}

/// The next page of series, added to the overview.
async function loadMore() {
  if (!nextPage) return;
  const page = await apiPage(nextPage);
  for (const s of page.body) note(s.topic, s.last, s.at, s.first, s.unit);
  nextPage = page.next;
  showPaging();
  renderOverview();
  await loadSparks(numericTopics());
}

/// Tick boxes of the overview follow the chart's series.
function syncPicks() {
  for (const b of $("overview").querySelectorAll("input.pick")) {
    b.checked = current.topics.includes(b.closest("tr").dataset.topic);
  }
}

/// A series ticked on or off the chart (at most COLOURS.length of them).
function toggle(topic, on) {
  current.topics = current.topics.filter((t) => t !== topic);
  if (on) current.topics.push(topic);
  current.topics = current.topics.slice(-COLOURS.length);
  if (!current.topics.length && current.topic) current.topics = [current.topic];
  syncPicks();
  loadChart().catch(fail);
}

/// Seconds since the epoch of an RFC 3339 time.
const secs = (t) => Date.parse(t) / 1000;

/// Line, band edge and band fill of each series on a chart.
const COLOURS = [
  ["#135", "#8ab", "rgba(100,150,200,0.2)"],
  ["#a33", "#e99", "rgba(220,100,100,0.15)"],
  ["#270", "#9c8", "rgba(100,180,100,0.15)"],
  ["#a60", "#eb8", "rgba(230,160,60,0.15)"],
  ["#628", "#b9d", "rgba(150,100,200,0.15)"],
  ["#077", "#8cc", "rgba(60,160,160,0.15)"],
];

/// uPlot data and series for min–max bands with the mean line, one per topic, on the union of
/// their bucket starts (one aggregate request: the same buckets for all). The ends of the
/// range `[t0, t1]` are x values too (without data), so the chart shows the whole range even
/// where there is no data yet, and still zooms (a scale range function would undo zooming).
function bandsOf(topics, per, labelled, t0, t1) {
  const starts = per.flatMap((b) => b.map((x) => secs(x.start)));
  const xs = [...new Set([t0, ...starts, t1])].sort((a, b) => a - b);
  const at = new Map(xs.map((x, i) => [x, i]));
  const data = [xs];
  const lines = [{}];
  const bands = [];
  per.forEach((buckets, k) => {
    const col = (stat) => {
      const a = new Array(xs.length).fill(null);
      for (const b of buckets) a[at.get(secs(b.start))] = b[stat];
      return a;
    };
    const [line, edge, fill] = COLOURS[k % COLOURS.length];
    const name = labelled ? topics[k].split("/").slice(-3).join("/") + " " : "";
    const base = data.length;
    data.push(col("min"), col("mean"), col("max"));
    lines.push(
      { label: name + "min", stroke: edge, width: 1 },
      { label: name + "mean", stroke: line, width: 2, points: { show: buckets.length < 60 } },
      { label: name + "max", stroke: edge, width: 1 },
    );
    bands.push({ series: [base + 2, base], fill });
  });
  return { data, lines, bands };
}

async function loadChart() {
  const topics = current.topics.length ? current.topics : (current.topic ? [current.topic] : []);
  const box = $("chart");
  box.dataset.topic = topics[0] || "";
  box.dataset.topics = JSON.stringify(topics);
  if (!topics.length) {
    if (plot) { plot.destroy(); plot = null; }
    chart = null;
    box.textContent = "No numeric series in the last day.";
    return;
  }
  const now = Date.now() / 1000;
  const width = Math.max(300, Math.min(box.clientWidth || 800, 2000));
  // Until a range is chosen, a chart whose data all lies in the last quarter of the range
  // (a fresh install, the demo's first minute) opens on the span there is, not as a sliver at
  // the right edge of a day; it grows with new readings up to the range.
  const first = firstOf(topics, NaN);
  const span = RANGES[current.range];
  const fitted = !current.chosen && now - first < span / 4;
  const t0 = fitted ? first - Math.max(1, (now - first) / 20) : now - span;
  const since = fitted ? encodeURIComponent(new Date(t0 * 1000).toISOString()) : "-" + current.range;
  const q = topics.map((t) => "topics=" + encodeURIComponent(t)).join("&") + "&since=" + since;
  const v = await api("/aggregate?" + q + "&every=1s&stats=min,mean,max,count&max_points=" + width);
  const per = topics.map((t) => (v.series && v.series[t]) || []);
  chart = { topics, per, every: v.every || 1, t0, t1: now, fitted };
  box.dataset.t0 = String(t0);
  box.dataset.t1 = String(now);
  const { data, lines, bands } = bandsOf(topics, per, topics.length > 1, chart.t0, chart.t1);
  box.dataset.maxPoints = String(width);
  box.dataset.range = current.range;
  describeChart();
  const title = topics.length > 1 ? topics.length + " series" : topics[0];
  const opts = {
    width,
    height: 300,
    title: title + (fitted ? " (since " + new Date(t0 * 1000).toLocaleTimeString() + ")" : " (" + current.range + ")"),
    scales: { x: { time: true } },
    series: lines,
    bands,
    cursor: { drag: { x: true, y: false } },
  };
  if (plot) plot.destroy();
  box.replaceChildren();
  plot = new uPlot(opts, data, box);
  const a = $("csv");
  a.dataset.query = q;
  a.download = (topics.length > 1 ? "series" : topics[0].replace(/[^A-Za-z0-9._-]+/g, "_")) +
    "-" + current.range + ".csv";
}

/// What the chart shows, for people who read the page's source and for the tests.
function describeChart() {
  const box = $("chart");
  const { topics, per } = chart;
  box.dataset.buckets = String(per[0].length);
  box.dataset.mean = JSON.stringify(per[0].map((b) => b.mean));
  box.dataset.means = JSON.stringify(Object.fromEntries(topics.map((t, k) => [t, per[k].map((b) => b.mean)])));
}

/// A live number of a series on the chart joins its buckets as /aggregate would count it (see
/// `growSpark` for where a new bucket starts), the range moves on with it, and the chart is
/// drawn again once per frame however fast readings come. A zoomed chart keeps its zoom.
function growChart(topic, value, at) {
  const t = secs(at);
  if (!chart || !plot || typeof value !== "number" || !Number.isFinite(t)) return;
  const k = chart.topics.indexOf(topic);
  if (k < 0) return;
  const buckets = chart.per[k];
  const last = buckets[buckets.length - 1];
  if (last && t < secs(last.start)) return; // older than the last bucket: a reload has it
  if (last && t < secs(last.start) + chart.every) {
    last.mean = (last.mean * last.count + value) / (last.count + 1);
    last.count += 1;
    last.min = Math.min(last.min, value);
    last.max = Math.max(last.max, value);
  } else {
    const s0 = last ? secs(last.start) : t;
    const start = last ? s0 + Math.floor((t - s0) / chart.every) * chart.every : t;
    buckets.push({ start: new Date(start * 1000).toISOString(), count: 1, min: value, mean: value, max: value });
  }
  if (t > chart.t1) {
    // A fitted chart grows up to its range; then, as any chart, it moves on.
    const span = chart.fitted ? Math.min(t - chart.t0, RANGES[current.range]) : chart.t1 - chart.t0;
    chart.t1 = t;
    chart.t0 = t - span;
    for (const b of chart.per) {
      while (b.length && secs(b[0].start) + chart.every <= chart.t0) b.shift();
    }
  }
  describeChart();
  if (chartRedraw) return;
  chartRedraw = true;
  requestAnimationFrame(() => {
    chartRedraw = false;
    if (!chart || !plot) return;
    const xs = plot.data[0];
    const zoomed = xs.length > 1 && (plot.scales.x.min > xs[0] || plot.scales.x.max < xs[xs.length - 1]);
    const { data } = bandsOf(chart.topics, chart.per, chart.topics.length > 1, chart.t0, chart.t1);
    plot.setData(data, !zoomed);
  });
}

async function loadHourly() {
  const topic = current.topic;
  const t = $("hourly");
  t.dataset.topic = topic || "";
  if (!topic) { t.tBodies[0].replaceChildren(); return; }
  const v = await api("/aggregate?topics=" + encodeURIComponent(topic) +
    "&since=-7d&every=1h&stats=min,mean,max,count");
  const buckets = (v.series && v.series[topic]) || [];
  const box = $("hourly-chart");
  box.dataset.topic = topic;
  box.dataset.buckets = String(buckets.length);
  const now = Date.now() / 1000;
  const { data, lines, bands } = bandsOf([topic], [buckets], false, now - 7 * 86400, now);
  if (hourlyPlot) hourlyPlot.destroy();
  box.replaceChildren();
  hourlyPlot = new uPlot({
    width: Math.max(300, Math.min(box.clientWidth || 800, 2000)),
    height: 200,
    title: topic + " (hourly, 7 d)",
    scales: { x: { time: true } },
    series: lines,
    bands,
    cursor: { drag: { x: true, y: false } },
  }, data, box);
  t.tBodies[0].replaceChildren(...buckets.slice().reverse().map((b) => {
    const tr = document.createElement("tr");
    tr.dataset.start = b.start;
    tr.append(cell(new Date(b.start).toLocaleString()), cell(fmt(b.min), "num"),
      cell(fmt(b.mean), "num"), cell(fmt(b.max), "num"), cell(String(b.count), "num"));
    return tr;
  }));
}

/// Histogram of the chosen series over the chosen range, with its device's LWT states: the
/// last will on `<device>/LWT`, or `<device>/status/LWT` as ESPEasy publishes it.
async function loadHistogram() {
  const topic = current.topic;
  const t = $("histogram");
  t.dataset.topic = topic || "";
  if (!topic) return;
  const device = topic.slice(0, topic.lastIndexOf("/"));
  const q = [topic, device + "/LWT", device + "/status/LWT"]
    .map((f) => "topics=" + encodeURIComponent(f)).join("&");
  const v = await api("/histogram?" + q + "&since=-" + current.range + "&bins=20");
  const bins = v.bins || [];
  const most = Math.max(1, ...bins.map((b) => b.count));
  t.tBodies[0].replaceChildren(...bins.map((b) => {
    const tr = document.createElement("tr");
    const bar = document.createElement("td");
    const span = document.createElement("span");
    span.className = "bar";
    span.style.width = Math.round(200 * b.count / most) + "px";
    bar.append(span);
    tr.append(cell(fmt(b.lo), "num"), cell(fmt(b.hi), "num"), cell(String(b.count), "num"), bar);
    return tr;
  }));
  const states = Object.entries(v.states || {}).map(([k, n]) => k + ": " + n).join(", ");
  $("states").textContent = states ? "States: " + states : "";
}

async function loadTop() {
  const q = "/top?feature=" + encodeURIComponent($("top-feature").value.trim()) +
    "&stat=" + encodeURIComponent($("top-stat").value) +
    "&since=" + encodeURIComponent($("top-since").value) +
    "&n=" + encodeURIComponent($("top-n").value);
  const v = await api(q);
  $("top").tBodies[0].replaceChildren(...v.map((d) => {
    const tr = document.createElement("tr");
    tr.dataset.topic = d.topic;
    tr.append(cell(d.device), cell(fmt(d.value), "num"), cell(d.topic));
    return tr;
  }));
}

/// A top that could not be answered, said in its table.
function topFailed(e) {
  if (e instanceof AuthError) throw e;
  const tr = document.createElement("tr");
  const td = cell(e.message, "muted");
  td.colSpan = 3;
  tr.append(td);
  $("top").tBodies[0].replaceChildren(tr);
}

/// The energy view: per place (`by` levels and the measure) and local day, the statistic
/// inside and outside the calendar's hours, as stacked bars; and the devices with the most
/// outside them.
async function loadEnergy() {
  const topics = $("energy-topics").value.trim();
  if (!topics) return;
  const stat = $("energy-stat").value;
  const cal = $("energy-calendar").value;
  const days = Math.max(1, Number($("energy-days").value) || 7);
  const q = "/aggregate?topics=" + encodeURIComponent(topics) + "&since=-" + days +
    "d&every=1d&by=" + encodeURIComponent($("energy-by").value) + "&stats=" + stat;
  const [inside, outside] = cal
    ? await Promise.all([api(q + "&within=" + encodeURIComponent(cal)),
      api(q + "&outside=" + encodeURIComponent(cal))])
    : [await api(q), { series: {} }];
  const rows = new Map();
  [inside, outside].forEach((v, i) => {
    for (const [place, buckets] of Object.entries(v.series || {})) {
      for (const b of buckets) {
        const k = place + "|" + b.start;
        const r = rows.get(k) || { place, start: b.start, within: 0, outside: 0 };
        r[i === 0 ? "within" : "outside"] += b[stat] || 0;
        rows.set(k, r);
      }
    }
  });
  const list = [...rows.values()]
    .sort((a, b) => a.place.localeCompare(b.place) || b.start.localeCompare(a.start));
  const most = Math.max(1e-9, ...list.map((r) => r.within + r.outside));
  const t = $("energy");
  t.dataset.rows = String(list.length);
  t.tBodies[0].replaceChildren(...list.map((r) => {
    const tr = document.createElement("tr");
    tr.dataset.place = r.place;
    tr.dataset.within = String(r.within);
    tr.dataset.outside = String(r.outside);
    const bar = document.createElement("td");
    for (const part of ["within", "outside"]) {
      const span = document.createElement("span");
      span.className = "bar " + part;
      span.style.width = Math.round(300 * r[part] / most) + "px";
      bar.append(span);
    }
    tr.append(cell(r.place), cell(new Date(r.start).toLocaleDateString()),
      cell(fmt(r.within), "num"), cell(cal ? fmt(r.outside) : "", "num"), bar);
    return tr;
  }));
  // The devices of the measure shown, by their part outside the calendar's hours.
  const measure = list.length ? list[0].place.slice(list[0].place.lastIndexOf("/") + 1) : "";
  const wasters = $("wasters");
  if (!cal || !measure) { wasters.tBodies[0].replaceChildren(); return; }
  const v = await api("/top?feature=" + encodeURIComponent(measure) + "&stat=" + stat +
    "&outside=" + encodeURIComponent(cal) + "&since=-" + days + "d&n=10&topics=" +
    encodeURIComponent(topics));
  wasters.tBodies[0].replaceChildren(...v.map((d) => {
    const tr = document.createElement("tr");
    tr.dataset.topic = d.topic;
    tr.append(cell(d.device), cell(fmt(d.value), "num"), cell(d.topic));
    return tr;
  }));
}

/// The devices with a location among the series the overview knows (a series ending in a
/// latitude): what the location view offers. Any other device can be typed.
function renderTrackDevices() {
  const found = new Set();
  for (const t of series.keys()) {
    const m = /^(.+)\/(lat|latitude)$/.exec(t);
    if (m) found.add(m[1]);
  }
  const list = [...found].sort();
  $("track-devices").replaceChildren(...list.map((d) => {
    const o = document.createElement("option");
    o.value = d;
    return o;
  }));
  if (!$("track-device").value && list.length) $("track-device").value = list[0];
}

const TRACK_W = 640, TRACK_H = 400, TRACK_PAD = 16, TILE = 256;

/// Web Mercator at zoom 0, in tile pixels: what map tiles are drawn in.
function mercator(lat, lon) {
  const s = Math.sin(Math.max(-85.05, Math.min(85.05, lat)) * Math.PI / 180);
  return [TILE * (lon + 180) / 360, TILE * (0.5 - Math.log((1 + s) / (1 - s)) / (4 * Math.PI))];
}

/// The location view: the device's track from /track over the range chosen, drawn as a line
/// through its points, fitted to the track's bounding box — an equirectangular projection
/// (longitudes shrunk by the cosine of the middle latitude), or Web Mercator over the map
/// tiles when http.map_tiles names some. Data goes in as attributes and text only.
async function loadTrack() {
  const device = $("track-device").value.trim();
  if (!device) return;
  const range = $("track-range").value;
  const v = await api("/track?device=" + encodeURIComponent(device) + "&since=-" + range);
  const box = $("track");
  const pts = v.points;
  box.dataset.device = device;
  box.dataset.range = range;
  box.dataset.points = String(pts.length);
  box.dataset.truncated = String(v.truncated);
  if (!pts.length) {
    box.replaceChildren();
    $("track-note").textContent = "No location of " + device + " in the last " + range + ".";
    return;
  }
  const lats = pts.map((p) => p[1]), lons = pts.map((p) => p[2]);
  const [s, n] = [Math.min(...lats), Math.max(...lats)];
  const [w, e] = [Math.min(...lons), Math.max(...lons)];
  const tiles = meta.map_tiles || null;
  // Into the box's pixels: (x, y) of the projection, scaled to fit and centred.
  let project, zoom = null, scale;
  if (tiles) {
    const [x0, y0] = mercator(n, w), [x1, y1] = mercator(s, e);
    const fit = Math.min((TRACK_W - 2 * TRACK_PAD) / Math.max(1e-9, x1 - x0),
      (TRACK_H - 2 * TRACK_PAD) / Math.max(1e-9, y1 - y0));
    zoom = Math.max(0, Math.min(18, Math.floor(Math.log2(fit))));
    scale = 2 ** zoom;
    const cx = (x0 + x1) / 2 * scale - TRACK_W / 2, cy = (y0 + y1) / 2 * scale - TRACK_H / 2;
    project = (lat, lon) => {
      const [x, y] = mercator(lat, lon);
      return [x * scale - cx, y * scale - cy];
    };
    project.origin = [cx, cy];
  } else {
    const k = Math.cos((s + n) / 2 * Math.PI / 180);
    // At least about 100 m of width and height: one point, or a device that stood still.
    const dx = Math.max((e - w) * k, 0.001), dy = Math.max(n - s, 0.001);
    scale = Math.min((TRACK_W - 2 * TRACK_PAD) / dx, (TRACK_H - 2 * TRACK_PAD) / dy);
    const cx = (w + e) / 2 * k, cy = (s + n) / 2;
    project = (lat, lon) => [TRACK_W / 2 + (lon * k - cx) * scale, TRACK_H / 2 - (lat - cy) * scale];
  }
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("width", TRACK_W);
  svg.setAttribute("height", TRACK_H);
  svg.setAttribute("viewBox", "0 0 " + TRACK_W + " " + TRACK_H);
  svg.dataset.projection = tiles ? "mercator" : "equirectangular";
  if (tiles) {
    // The tiles under the view, only from the one configured server (the page's policy
    // allows images from its origin and nowhere else).
    const [cx, cy] = project.origin;
    const count = 2 ** zoom;
    for (let ty = Math.floor(cy / TILE); ty * TILE < cy + TRACK_H; ty++) {
      if (ty < 0 || ty >= count) continue;
      for (let tx = Math.floor(cx / TILE); tx * TILE < cx + TRACK_W; tx++) {
        const img = document.createElementNS(SVG, "image");
        const wrapped = ((tx % count) + count) % count;
        img.setAttribute("href", tiles.replace("{z}", zoom).replace("{x}", wrapped).replace("{y}", ty));
        img.setAttribute("x", String(tx * TILE - cx));
        img.setAttribute("y", String(ty * TILE - cy));
        img.setAttribute("width", TILE);
        img.setAttribute("height", TILE);
        svg.append(img);
      }
    }
  }
  const xy = pts.map((p) => project(p[1], p[2]));
  const line = document.createElementNS(SVG, "polyline");
  line.setAttribute("points", xy.map(([x, y]) => x.toFixed(1) + "," + y.toFixed(1)).join(" "));
  svg.append(line);
  // Each point (the first and the last marked), with its time and place as its tooltip;
  // over many points only the first and the last, the line shows the rest.
  const marked = pts.length <= 1000 ? pts.map((_, i) => i) : [0, pts.length - 1];
  for (const i of marked) {
    const c = document.createElementNS(SVG, "circle");
    c.setAttribute("cx", xy[i][0].toFixed(1));
    c.setAttribute("cy", xy[i][1].toFixed(1));
    c.setAttribute("r", i === 0 || i === pts.length - 1 ? "4" : "2");
    if (i === 0) c.setAttribute("class", "first");
    else if (i === pts.length - 1) c.setAttribute("class", "last");
    const title = document.createElementNS(SVG, "title");
    title.textContent = new Date(pts[i][0]).toLocaleString() + ": " + pts[i][1] + ", " + pts[i][2];
    c.append(title);
    svg.append(c);
  }
  if (tiles && meta.map_attribution) {
    const text = document.createElementNS(SVG, "text");
    text.setAttribute("class", "attribution");
    text.setAttribute("x", String(TRACK_W - 4));
    text.setAttribute("y", String(TRACK_H - 4));
    text.setAttribute("text-anchor", "end");
    text.textContent = meta.map_attribution;
    svg.append(text);
  }
  box.replaceChildren(svg);
  // The scale: how far the view's width is on the ground.
  const mid = (s + n) / 2 * Math.PI / 180;
  const metresPerPixel = tiles
    ? 40075016.686 * Math.cos(mid) / (TILE * scale)
    : 111320 / scale;
  const across = metresPerPixel * TRACK_W;
  const distance = across >= 2000 ? (across / 1000).toFixed(1) + " km" : Math.round(across) + " m";
  $("track-note").textContent = pts.length + " points" +
    (v.truncated ? " (the newest; older ones left out)" : "") + ", from " +
    new Date(pts[0][0]).toLocaleString() + " (green) to " +
    new Date(pts[pts.length - 1][0]).toLocaleString() + " (dark); the view is about " +
    distance + " across.";
}

function renderCalendars() {
  const sel = $("energy-calendar");
  const names = meta.calendars || [];
  sel.replaceChildren(...[""].concat(names).map((n) => {
    const o = document.createElement("option");
    o.value = n;
    o.textContent = n || "none";
    return o;
  }));
  if (names.length) sel.value = names[0];
}

let meta = { devices: [], alerts_topic: null, calendars: [], map_tiles: null };

async function loadAlerts() {
  if (!meta.alerts_topic) return;
  const v = await api("/history?topics=" + encodeURIComponent(meta.alerts_topic) + "&since=-7d");
  const rows = (v.rows || []).slice(-50).reverse();
  $("alerts").tBodies[0].replaceChildren(...rows.map((r) => {
    const tr = document.createElement("tr");
    tr.append(cell(new Date(r[0]).toLocaleString()), cell(fmt(r[2])));
    return tr;
  }));
}

function addAlert(at, value) {
  const tr = document.createElement("tr");
  tr.append(cell(new Date(at).toLocaleString()), cell(fmt(value)));
  $("alerts").tBodies[0].prepend(tr);
}

async function command(name, payload, answerCell) {
  answerCell.textContent = "sending " + payload + "...";
  const r = await fetch("/api/v1/commands", {
    method: "POST",
    headers: { Authorization: "Bearer " + token, "Content-Type": "application/json" },
    body: JSON.stringify({ device: name, payload }),
  });
  let v = {};
  try { v = await r.json(); } catch (_) { /* not JSON */ }
  if (r.ok && v.acked_by) {
    answerCell.textContent = "acknowledged: " + v.acked_by.payload + " after " + v.acked_by.after_ms + " ms";
  } else if (r.ok) {
    answerCell.textContent = "published";
  } else {
    answerCell.textContent = (v.message || r.status + " " + r.statusText);
  }
}

function renderDevices() {
  $("devices").tBodies[0].replaceChildren(...meta.devices.map((d) => {
    const tr = document.createElement("tr");
    tr.dataset.device = d.name;
    const s = series.get(d.state_topic);
    const state = cell(s ? fmt(s.last) : "?", "state");
    state.dataset.topic = d.state_topic;
    const buttons = document.createElement("td");
    const answer = cell("");
    for (const p of ["ON", "OFF"]) {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = p;
      b.addEventListener("click", () => command(d.name, p, answer).catch((e) => {
        answer.textContent = e.message;
      }));
      buttons.append(b);
    }
    tr.append(cell(d.name), state, buttons, answer);
    return tr;
  }));
}

/// Every program's status as last heard, by "program/instance".
let health = new Map();

/// The health panel: every program's availability and last report (/api/v1/status), and a
/// warning at the top while one is offline.
async function loadHealth() {
  const programs = await api("/status");
  health = new Map(programs.map((p) => [p.program + "/" + p.instance, p]));
  renderHealth();
}

/// A message of the status topics, from the live stream: an availability is taken as it
/// comes (at once: a killed program's will), a report is fetched (the stream cuts long
/// payloads) a moment later, once the daemon's own subscription has it too.
function healthEvent(topic, value) {
  const levels = topic.slice(meta.status_prefix.length + 1).split("/");
  if (levels.length === 3 && levels[2] === "availability") {
    const key = levels[0] + "/" + levels[1];
    const p = health.get(key) || { program: levels[0], instance: levels[1], report: null };
    p.availability = value === "" ? null : String(value);
    health.set(key, p);
    renderHealth();
  } else {
    clearTimeout(healthEvent.later);
    healthEvent.later = setTimeout(() => loadHealth().catch(fail), 500);
  }
}

function renderHealth() {
  const programs = [...health.values()].sort((a, b) =>
    a.program === b.program ? (a.instance < b.instance ? -1 : 1) : (a.program < b.program ? -1 : 1));
  const body = $("health").tBodies[0];
  const offline = [];
  body.replaceChildren(...programs.map((p) => {
    const tr = document.createElement("tr");
    const state = p.availability || (p.report ? "reported" : "unknown");
    tr.dataset.program = p.program;
    tr.dataset.instance = p.instance;
    tr.dataset.state = state;
    if (state === "offline") {
      tr.className = "offline";
      offline.push(p.program + " (" + p.instance + ")");
    }
    const r = p.report;
    const when = cell(r ? age(r.at) : "");
    when.className = "age";
    if (r) when.dataset.at = r.at;
    tr.append(cell(p.program), cell(p.instance), cell(state), cell(r ? r.summary : ""), when);
    return tr;
  }));
  $("health-none").hidden = programs.length > 0;
  const alert = $("health-alert");
  alert.textContent = offline.length ? "Offline: " + offline.join(", ") : "";
  alert.hidden = offline.length === 0;
  $("health-panel").dataset.loaded = "1";
}

async function loadMeta() {
  meta = await api("/dashboard");
  renderDevices();
  renderCalendars();
  // The top devices are a panel of their own: over more devices than the server answers for
  // (http.max_series), it says so in its table, and the rest of the page still loads.
  await Promise.all([loadAlerts(), loadTop().catch(topFailed), loadHealth()]);
}

async function select(topic) {
  current.topic = topic;
  current.topics = [topic];
  syncPicks();
  $("series").value = topic;
  try {
    await Promise.all([loadChart(), loadHourly(), loadHistogram()]);
  } catch (e) { fail(e); }
}

/// Live readings over server-sent events. EventSource cannot send headers, so this one
/// endpoint takes the token as a query parameter.
function startLive() {
  if (typeof EventSource === "undefined") return;
  live = new EventSource("/api/v1/live?access_token=" + encodeURIComponent(token));
  live.onopen = () => {
    $("live-state").textContent = "live: on";
    // What changed while the stream was not open (a program that died meanwhile) is only in
    // the daemon's status: read it again.
    loadHealth().catch(fail);
  };
  live.onerror = () => { $("live-state").textContent = "live: reconnecting"; };
  live.addEventListener("reading", (ev) => {
    let r;
    try { r = JSON.parse(ev.data); } catch (_) { return; }
    if (r.topic === meta.alerts_topic) addAlert(r.at, r.value);
    // A program's availability or report changed: the panel shows it at once.
    if (meta.status_prefix && r.topic.startsWith(meta.status_prefix + "/")) {
      healthEvent(r.topic, r.value);
      return;
    }
    const topic = note(r.topic, r.value, r.at);
    if (topic === r.topic) {
      growSpark(topic, r.value, r.at);
      growChart(topic, r.value, r.at);
    }
    for (const c of document.querySelectorAll("#devices td.state")) {
      if (c.dataset.topic === r.topic) c.textContent = fmt(r.value);
    }
    const old = $("overview").querySelector('tr[data-topic="' + CSS.escape(topic) + '"]');
    if (!series.has(topic)) return;
    const tr = rowOf(topic);
    tr.classList.add("flash");
    if (old) old.replaceWith(tr); else renderOverview();
  });
}

async function start() {
  $("login").hidden = true;
  $("data").hidden = false;
  $("logout").hidden = false;
  say("");
  try {
    await loadOverview();
    const parts = [loadMeta(), loadSparks(numericTopics())];
    if (current.topic) parts.push(loadChart(), loadHourly(), loadHistogram());
    await Promise.all(parts);
    document.body.dataset.readyMs = String(Math.round(performance.now()));
    document.body.dataset.ready = "1";
    startLive();
  } catch (e) { fail(e); }
}

function init() {
  $("login").addEventListener("submit", (ev) => {
    ev.preventDefault();
    token = $("token").value.trim();
    if (!token) return;
    sessionStorage.setItem(KEY, token);
    $("token").value = "";
    start();
  });
  $("logout").addEventListener("click", () => showLogin(""));
  // The CSV of the range, fetched on demand with the token (a plain link could not carry the
  // header), then handed to the browser as a download.
  $("csv").addEventListener("click", async (ev) => {
    const a = ev.currentTarget;
    if (a.dataset.fetched === a.dataset.query) return; // the blob of this range: download it
    ev.preventDefault();
    try {
      const csv = await api("/history?" + a.dataset.query, "text/csv");
      if (csvUrl) URL.revokeObjectURL(csvUrl);
      csvUrl = URL.createObjectURL(csv);
      a.href = csvUrl;
      a.dataset.fetched = a.dataset.query;
      a.click();
    } catch (e) { fail(e); }
  });
  $("top-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    loadTop().catch(fail);
  });
  $("energy-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    loadEnergy().catch(fail);
  });
  $("track-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    loadTrack().catch(fail);
  });
  $("track-range").addEventListener("change", () => {
    if ($("track-device").value.trim()) loadTrack().catch(fail);
  });
  $("series").addEventListener("change", (ev) => select(ev.target.value));
  let searching = null;
  $("find").addEventListener("input", () => {
    clearTimeout(searching);
    searching = setTimeout(() => {
      loadOverview().then(() => loadSparks(numericTopics())).catch(fail);
    }, 300);
  });
  $("more").addEventListener("click", () => loadMore().catch(fail));
  for (const b of $("ranges").querySelectorAll("button")) {
    b.addEventListener("click", () => {
      current.range = b.dataset.range;
      current.chosen = true;
      for (const o of $("ranges").querySelectorAll("button")) o.classList.toggle("on", o === b);
      Promise.all([loadChart(), loadHistogram()]).catch(fail);
    });
  }
  setInterval(() => {
    for (const tr of $("overview").tBodies[0].rows) {
      const s = series.get(tr.dataset.topic);
      if (s) tr.querySelector(".age").textContent = age(s.at);
    }
    for (const c of $("health").querySelectorAll("td.age")) {
      if (c.dataset.at) c.textContent = age(c.dataset.at);
    }
  }, 5000);
  // The panel also refreshes on its own: a live stream that reconnects misses messages.
  setInterval(() => { if (!$("data").hidden) loadHealth().catch(() => {}); }, 30000);
  token = takeToken();
  for (const o of $("ranges").querySelectorAll("button")) {
    o.classList.toggle("on", o.dataset.range === current.range);
  }
  if (token) start(); else showLogin("");
}

init();
