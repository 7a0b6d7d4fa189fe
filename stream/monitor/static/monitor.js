// The rdstream monitor page: polls the node (pictures at <= 10 fps, numbers once a second),
// draws the last minutes with uPlot and posts commands with the token from the address (#token=...).
"use strict";

const TOKEN = new URLSearchParams(location.hash.slice(1)).get("token") || "";
const HEADERS = TOKEN ? { "X-Rdstream-Token": TOKEN } : {};
const PREVIEW_INTERVAL_MS = 100;   // at most 10 pictures a second (the server makes no more anyway)
const STATS_INTERVAL_MS = 1000;    // the node samples once a second
const KEEP = 300;                  // samples on the charts: five minutes
const BUSY_WINDOW = 5;             // samples the stage time is averaged over

const $ = (id) => document.getElementById(id);
const state = { samples: [], charts: {}, previews: 0, lastSeen: null, formFilled: false, edited: new Set(),
                stoppedBy: null, everConnected: false };
window.rdMonitor = state;  // for the browser test and for curious users

// A rig's page: the stream picked at the top; every read and command names it ("" = the only stream).
function picked() { return $("stream").value || ""; }
function withStream(path, query) {
  const params = new URLSearchParams(query || "");
  if (picked()) params.set("stream", picked());
  const text = params.toString();
  return path + (text ? "?" + text : "");
}

function showStreams(names) {
  if (!names || $("stream").options.length) return;
  for (const name of names) $("stream").add(new Option(name, name));
  $("stream-picker").hidden = false;
  $("stream").onchange = () => {  // another stream: its own history and controls from the next poll
    state.samples = []; state.formFilled = false; state.edited.clear(); state.pickedAgain = true; state.lastAckSeen = 0;
  };
}

function series(label, stroke) { return { label, stroke, width: 1.5 }; }

const CHARTS = {
  fps: { title: "frames per second", series: [series("in", "#1f77b4"), series("out", "#d62728"), series("model (keyframes)", "#e377c2")] },
  latency: { title: "latency (ms)", series: [series("p50", "#2ca02c"), series("p95", "#ff7f0e"), series("depth age p50", "#bcbd22")] },
  drops: { title: "dropped frames per second", series: [series("realtime policy", "#9467bd"), series("sinks", "#8c564b")] },
  queues: { title: "queue depths (items)", series: null },
  // A stage's time is counted when its call ends, so a 2 s model call would read 200 % in one second:
  // averaged over BUSY_WINDOW samples and capped at 100 % (one stage works on one item at a time).
  busy: { title: "stage busy time (% of the last 5 s, at most 100)", series: null },
  range: { title: "newest frame: display range", series: [series("near", "#17becf"), series("far", "#7f7f7f")] },
};
const STAGE_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"];

function makeChart(name, seriesList) {
  const el = $("chart-" + name);
  const opts = {
    title: CHARTS[name].title, width: Math.max(360, el.clientWidth - 8), height: 180,
    scales: { x: { time: false } }, axes: [{ label: "s" }, { size: 60 }],
    legend: { live: false },  // names and colours only: no "--" placeholders while no point is hovered
    series: [{ label: "s" }, ...seriesList],
  };
  return new uPlot(opts, [[], ...seriesList.map(() => [])], el);
}

function stageSeries(names) {
  return names.map((n, i) => series(n, STAGE_COLOURS[i % STAGE_COLOURS.length]));
}

function ensureCharts(sample) {
  if (state.charts.fps) return;
  const queueNames = Object.keys(sample.queues || {});
  const stageNames = Object.keys(sample.busy || {});
  for (const name of Object.keys(CHARTS)) {
    const list = name === "queues" ? stageSeries(queueNames) : name === "busy" ? stageSeries(stageNames) : CHARTS[name].series;
    state.charts[name] = makeChart(name, list);
  }
  state.queueNames = queueNames;
  state.stageNames = stageNames;
}

// One sample -> one point per chart; drops and stage time are per-second differences of counters.
function rows() {
  const s = state.samples;
  const data = { fps: [[], [], [], []], latency: [[], [], [], []], drops: [[], [], []], range: [[], [], []],
                 queues: [[], ...state.queueNames.map(() => [])], busy: [[], ...state.stageNames.map(() => [])] };
  for (let i = 0; i < s.length; i++) {
    const cur = s[i], prev = i > 0 ? s[i - 1] : null;
    const t = cur.elapsed_s, dt = prev ? Math.max(cur.elapsed_s - prev.elapsed_s, 1e-3) : 1;
    for (const k of Object.keys(data)) data[k][0].push(t);
    data.fps[1].push(cur.input_fps); data.fps[2].push(cur.output_fps);
    data.fps[3].push(cur.fill ? cur.fill.model_fps : null);  // --fill or a keyframe cap: the model's own rate
    data.latency[1].push(cur.latency_p50_ms); data.latency[2].push(cur.latency_p95_ms);
    data.latency[3].push(cur.fill ? cur.fill.depth_age_p50_ms : null);
    data.drops[1].push(prev ? (cur.dropped - prev.dropped) / dt : null);
    data.drops[2].push(prev ? (cur.sink_dropped - prev.sink_dropped) / dt : null);
    data.range[1].push(cur.frame ? cur.frame.near : null); data.range[2].push(cur.frame ? cur.frame.far : null);
    state.queueNames.forEach((n, j) => data.queues[j + 1].push(cur.queues[n]));
    const back = i >= BUSY_WINDOW ? s[i - BUSY_WINDOW] : null;
    const span = back ? Math.max(cur.elapsed_s - back.elapsed_s, 1e-3) : 1;
    state.stageNames.forEach((n, j) =>
      data.busy[j + 1].push(back ? Math.min(100, 100 * (cur.busy[n] - back.busy[n]) / span) : null));
  }
  return data;
}

function addSamples(list) {
  for (const sample of list) {
    const last = state.samples[state.samples.length - 1];
    if (last && sample.elapsed_s <= last.elapsed_s) continue;
    state.samples.push(sample);
  }
  if (state.samples.length > KEEP) state.samples.splice(0, state.samples.length - KEEP);
  if (!state.samples.length) return;
  ensureCharts(state.samples[0]);
  const data = rows();
  for (const name of Object.keys(state.charts)) state.charts[name].setData(data[name]);
}

function fill(list, items, text) {
  list.replaceChildren(...items.map((item) => {
    const li = document.createElement("li");
    li.textContent = text(item);
    return li;
  }));
}

function showLive(live) {
  $("settings").textContent = live.settings || "";
  fill($("warnings"), live.warnings.slice().reverse(), (w) => w);
  const ackText = (a) => `${a.command} ${a.args.join(" ")}: ${a.frame === null ? "now" : "from frame " + a.frame}`;
  fill($("ack-list"), live.acks.slice().reverse(), ackText);
  const newest = live.acks[live.acks.length - 1];
  if (newest) state.lastAckSeen = newest.n;
  if (newest && state.waitingForAck && newest.n > state.waitingForAck.after) {
    $("control-reply").textContent = "applied: " + ackText(newest);
    state.waitingForAck = null;
  }
  const st = live.stats;
  if (st) {
    const p50 = st.latency_p50_ms === null ? "-" : Math.round(st.latency_p50_ms);
    $("headline").textContent = `in ${st.input_fps.toFixed(1)} fps · out ${st.output_fps.toFixed(1)} fps · ` +
      `latency p50 ${p50} ms · ${st.frames_out} frames out`;
  }
  const now = live.state;
  state.now = now;
  if (now) {  // what is in force; the form keeps what the user is choosing
    $("norm-state").textContent = `now: ${now.normalize}` + (now.near === null ? "" :
      ` (near ${formatNumber(now.near)}, far ${formatNumber(now.far)})`) +
      `, colour map ${now.cmap || "each output's own"}` + (now.paused ? ", paused" : "");
    $("pause").setAttribute("aria-pressed", String(now.paused));
    fillForm(now);
    state.stoppedBy = now.stopped_by || state.stoppedBy;
  }
  showRunState(now);
}

// Three significant digits: the form shows the range in force, not float noise.
function formatNumber(value) { return Number(value.toPrecision(3)); }

// The form starts from the state in force (a page opened later shows what the node does now); a
// field the user has touched keeps the user's value.
function fillForm(now) {
  const set = (id, value) => { if (!state.edited.has(id) && value !== null && value !== undefined) $(id).value = value; };
  if (!state.formFilled) {
    set("norm-mode", now.normalize);
    set("cmap", now.cmap || "");
    if (now.window_frames) set("window", now.window_frames);
    state.formFilled = true;
  }
  if (now.near !== null) { set("near", formatNumber(now.near)); set("far", formatNumber(now.far)); }
}

// The badge says what the node does: LIVE, PAUSED, STOPPING (and who asked), or why there is no news.
function showRunState(now) {
  if (state.stoppedBy) return setBadge("stopping", "STOPPING: asked by " + state.stoppedBy);
  if (now && now.paused) return setBadge("paused", "PAUSED: holding the last picture");
  setBadge("ok", "LIVE");
}

function setBadge(kind, text) {
  const badge = $("connection");
  badge.textContent = text;
  badge.className = "badge " + kind;
}

function disconnected(reason) {
  if (state.stoppedBy) setBadge("ended", "ENDED: stopped by " + state.stoppedBy);
  else setBadge("bad", "no connection: " + reason);
}

async function pollStats(first) {
  try {
    if (state.pickedAgain) { first = true; state.pickedAgain = false; }
    const reply = await fetch(withStream("/live.json", first ? "history=1" : ""), { headers: HEADERS, cache: "no-store" });
    if (!reply.ok) throw new Error(reply.status === 401 ? "needs the token" : "HTTP " + reply.status);
    const live = await reply.json();
    showStreams(live.streams);
    addSamples(first ? live.history || [] : live.stats ? [live.stats] : []);
    showLive(live);
    first = false;
  } catch (err) {
    disconnected(err.message);
  }
  setTimeout(() => pollStats(first), STATS_INTERVAL_MS);
}

async function loadPicture() {
  const reply = await fetch(withStream("/preview.jpg"), { headers: HEADERS, cache: "no-store" });
  if (!reply.ok) return false;
  const img = $("preview-img");
  const old = img.src;
  img.src = URL.createObjectURL(await reply.blob());
  img.dataset.frame = reply.headers.get("x-rdstream-frame");
  $("preview-frame").textContent = "#" + img.dataset.frame;
  if (old.startsWith("blob:")) URL.revokeObjectURL(old);
  return true;
}

// No faster than the node delivers frames (asking again would only fetch the same picture).
function pictureInterval() {
  const last = state.samples[state.samples.length - 1];
  const fps = last && last.output_fps > 0 ? last.output_fps : 10;
  return Math.max(PREVIEW_INTERVAL_MS, 1000 / fps);
}

async function pollPictures() {
  const started = performance.now();
  try {
    if (!document.hidden && await loadPicture()) state.previews += 1;
  } catch (err) { /* the numbers' poll shows the connection state */ }
  setTimeout(pollPictures, Math.max(0, pictureInterval() - (performance.now() - started)));
}

async function send(command, args) {
  const reply = await fetch("/control", {
    method: "POST", headers: { ...HEADERS, "Content-Type": "application/json" },
    body: JSON.stringify(picked() ? { command, args, stream: picked() } : { command, args }),
  });
  const body = await reply.json().catch(() => ({}));
  const answer = $("control-reply");
  answer.textContent = reply.ok ? `sent ${command} ${args.join(" ")}; waiting for the next frame…`
                                : `refused: ${body.error || reply.status}`;
  answer.className = "reply" + (reply.ok ? "" : " refused");
  if (reply.ok) state.waitingForAck = { after: state.lastAckSeen || 0 };
  if (reply.ok && command === "stop") {  // the run may end before the next poll: say who stopped it now
    state.stoppedBy = state.stoppedBy || body.by;
    showRunState(state.now);
  }
}

function wireControls() {
  if (!TOKEN) $("token-note").hidden = false;
  for (const id of ["norm-mode", "near", "far", "window", "cmap"]) $(id).addEventListener("input", () => state.edited.add(id));
  $("pause").onclick = () => send("pause", [1]);
  $("resume").onclick = () => send("pause", [0]);
  $("stop").onclick = () => { if (confirm("Stop the run? Outputs are closed cleanly.")) send("stop", []); };
  $("apply-cmap").onclick = () => send("cmap", [$("cmap").value]);
  $("apply-norm").onclick = () => {
    const mode = $("norm-mode").value;
    if (mode === "fixed") send("normalize/fixed", [Number($("near").value), Number($("far").value)]);
    else if (mode === "window") send("normalize/window", [Number($("window").value)]);
    else send("normalize/running", []);
  };
}

wireControls();
pollStats(true);
pollPictures();
