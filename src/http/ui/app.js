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
let current = { topic: null, range: "24h" };
let plot = null;
let live = null;
let csvUrl = null;

class AuthError extends Error {}

/// The token from the fragment (then removed from the address bar) or sessionStorage.
function takeToken() {
  const m = /(?:^|[#&])token=([^&]*)/.exec(location.hash);
  const r = /(?:^|[#&])range=([^&]*)/.exec(location.hash);
  if (r && r[1] in RANGES) current.range = r[1];
  if (m) {
    sessionStorage.setItem(KEY, decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem(KEY);
}

async function api(path, accept) {
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
  return accept === "text/csv" ? r.blob() : r.json();
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

function rowOf(topic) {
  const s = series.get(topic);
  const tr = document.createElement("tr");
  tr.dataset.topic = topic;
  tr.append(cell(topic), cell(fmt(s.last), "num value"), cell(age(s.at), "age"), alertCell(topic));
  tr.addEventListener("click", () => select(topic));
  return tr;
}

function renderOverview() {
  const body = $("overview").tBodies[0];
  const topics = [...series.keys()].sort();
  body.replaceChildren(...topics.map(rowOf));
}

/// One reading (from /topics or live): a series or an alert state.
function note(topic, value, at) {
  const a = alertOf(topic);
  if (a) {
    const st = alerts.get(a[0]) || {};
    st[a[1]] = isOn(value);
    alerts.set(a[0], st);
    return a[0];
  }
  series.set(topic, { last: value, at });
  return topic;
}

async function loadOverview() {
  const seen = await api("/topics?since=-1d");
  series = new Map();
  alerts = new Map();
  for (const s of seen) note(s.topic, s.last, s.at);
  renderOverview();
  const sel = $("series");
  const numeric = [...series.keys()].filter((t) => typeof series.get(t).last === "number").sort();
  sel.replaceChildren(...numeric.map((t) => {
    const o = document.createElement("option");
    o.value = o.textContent = t;
    return o;
  }));
  if (!current.topic || !series.has(current.topic)) current.topic = numeric[0] || null;
  if (current.topic) sel.value = current.topic;
}

/// Seconds since the epoch of an RFC 3339 time.
const secs = (t) => Date.parse(t) / 1000;

async function loadChart() {
  const topic = current.topic;
  const box = $("chart");
  box.dataset.topic = topic || "";
  if (!topic) { box.textContent = "No numeric series in the last day."; return; }
  const now = Date.now() / 1000;
  const width = Math.max(300, Math.min(box.clientWidth || 800, 2000));
  const since = "-" + current.range;
  const q = "topics=" + encodeURIComponent(topic) + "&since=" + since;
  const v = await api("/aggregate?" + q + "&every=1s&stats=min,mean,max,count&max_points=" + width);
  const buckets = (v.series && v.series[topic]) || [];
  const data = [
    buckets.map((b) => secs(b.start)),
    buckets.map((b) => b.min),
    buckets.map((b) => b.mean),
    buckets.map((b) => b.max),
  ];
  box.dataset.buckets = String(buckets.length);
  box.dataset.maxPoints = String(width);
  box.dataset.range = current.range;
  box.dataset.mean = JSON.stringify(data[2]);
  const opts = {
    width,
    height: 300,
    title: topic + " (" + current.range + ")",
    // The whole range, even where it has no data yet.
    scales: { x: { time: true, range: () => [now - RANGES[current.range], now] } },
    series: [
      {},
      { label: "min", stroke: "#8ab", width: 1 },
      { label: "mean", stroke: "#135", width: 2, points: { show: buckets.length < 60 } },
      { label: "max", stroke: "#8ab", width: 1 },
    ],
    bands: [{ series: [3, 1], fill: "rgba(100,150,200,0.2)" }],
    cursor: { drag: { x: true, y: false } },
  };
  if (plot) plot.destroy();
  box.replaceChildren();
  plot = new uPlot(opts, data, box);
  const a = $("csv");
  a.dataset.query = q;
  a.download = topic.replace(/[^A-Za-z0-9._-]+/g, "_") + "-" + current.range + ".csv";
}

async function loadHourly() {
  const topic = current.topic;
  const t = $("hourly");
  t.dataset.topic = topic || "";
  if (!topic) { t.tBodies[0].replaceChildren(); return; }
  const v = await api("/aggregate?topics=" + encodeURIComponent(topic) +
    "&since=-7d&every=1h&stats=min,mean,max,count");
  const buckets = (v.series && v.series[topic]) || [];
  t.tBodies[0].replaceChildren(...buckets.slice().reverse().map((b) => {
    const tr = document.createElement("tr");
    tr.dataset.start = b.start;
    tr.append(cell(new Date(b.start).toLocaleString()), cell(fmt(b.min), "num"),
      cell(fmt(b.mean), "num"), cell(fmt(b.max), "num"), cell(String(b.count), "num"));
    return tr;
  }));
}

/// Histogram of the chosen series over the chosen range, with its device's LWT states.
async function loadHistogram() {
  const topic = current.topic;
  const t = $("histogram");
  t.dataset.topic = topic || "";
  if (!topic) return;
  const device = topic.slice(0, topic.lastIndexOf("/"));
  const v = await api("/histogram?topics=" + encodeURIComponent(topic) + "&topics=" +
    encodeURIComponent(device + "/LWT") + "&since=-" + current.range + "&bins=20");
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

let meta = { devices: [], alerts_topic: null };

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

async function loadMeta() {
  meta = await api("/dashboard");
  renderDevices();
  await Promise.all([loadAlerts(), loadTop()]);
}

async function select(topic) {
  current.topic = topic;
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
  live.onopen = () => { $("live-state").textContent = "live: on"; };
  live.onerror = () => { $("live-state").textContent = "live: reconnecting"; };
  live.addEventListener("reading", (ev) => {
    let r;
    try { r = JSON.parse(ev.data); } catch (_) { return; }
    if (r.topic === meta.alerts_topic) addAlert(r.at, r.value);
    const topic = note(r.topic, r.value, r.at);
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
    const parts = [loadMeta()];
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
  $("series").addEventListener("change", (ev) => select(ev.target.value));
  for (const b of $("ranges").querySelectorAll("button")) {
    b.addEventListener("click", () => {
      current.range = b.dataset.range;
      for (const o of $("ranges").querySelectorAll("button")) o.classList.toggle("on", o === b);
      Promise.all([loadChart(), loadHistogram()]).catch(fail);
    });
  }
  setInterval(() => {
    for (const tr of $("overview").tBodies[0].rows) {
      const s = series.get(tr.dataset.topic);
      if (s) tr.querySelector(".age").textContent = age(s.at);
    }
  }, 5000);
  token = takeToken();
  for (const o of $("ranges").querySelectorAll("button")) {
    o.classList.toggle("on", o.dataset.range === current.range);
  }
  if (token) start(); else showLogin("");
}

init();
