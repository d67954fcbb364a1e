// The berth console: reads the native API with the page's cookie, redraws
// every two seconds, and follows one run's or agent's output over
// server-sent events. It builds the page with DOM calls and textContent
// only, so nothing a container prints can become markup.
"use strict";

const REFRESH_MS = 2000;
// The log pane keeps at most this many characters, dropping the oldest.
const LOG_LIMIT = 200000;
// The chart shows the latest runs, at most this many.
const CHART_RUNS = 60;

const $ = (id) => document.getElementById(id);
let timer = null;
let follow = null;

class Unauthorized extends Error {}

async function api(path) {
  const answer = await fetch(path, { headers: { Accept: "application/json" }, credentials: "same-origin" });
  if (answer.status === 401) throw new Unauthorized(path);
  if (!answer.ok && answer.status !== 503) throw new Error(`${path}: ${answer.status}`);
  return answer.json();
}

function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "" : String(text);
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}

function badge(row, text) {
  const td = cell(row, "");
  const span = document.createElement("span");
  span.className = `badge ${text}`;
  span.textContent = text;
  td.appendChild(span);
}

// Replaces a table's rows; `fill(tr, item)` writes one row. A row whose
// `data-id` is the followed one stays marked.
function rows(table, items, fill, id, onPick) {
  const body = $(table).tBodies[0];
  const fresh = document.createDocumentFragment();
  for (const item of items) {
    const tr = document.createElement("tr");
    if (id) {
      tr.dataset.id = id(item);
      if (follow && follow.id === tr.dataset.id) tr.classList.add("picked");
    }
    if (onPick) {
      tr.classList.add("pickable");
      tr.addEventListener("click", () => onPick(item));
    }
    fill(tr, item);
    fresh.appendChild(tr);
  }
  if (items.length === 0) {
    const tr = document.createElement("tr");
    const td = cell(tr, "none", "muted");
    td.colSpan = $(table).tHead.rows[0].cells.length;
    fresh.appendChild(tr);
  }
  body.replaceChildren(fresh);
}

function clock(iso) {
  if (!iso) return "";
  const t = new Date(iso);
  return Number.isNaN(t.getTime()) ? iso : t.toLocaleTimeString();
}

function ms(n) {
  if (n === null || n === undefined) return "";
  return n >= 10000 ? `${(n / 1000).toFixed(n % 1000 ? 1 : 0)} s` : `${n} ms`;
}

function quantile(sorted, q) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
}

// Bars on a log scale of milliseconds (a pooled run and a cold one differ
// by a hundred times), with a grid line at each power of ten.
function drawChart(runs) {
  const svg = $("chart");
  const ns = "http://www.w3.org/2000/svg";
  const latest = runs.filter((r) => r.status !== "running" && r.status !== "pending").slice(0, CHART_RUNS).reverse();
  const max = Math.max(1, ...latest.map((r) => r.wall_ms));
  const decades = Math.max(1, Math.ceil(Math.log10(max)));
  const y = (v) => 150 * (Math.log10(Math.max(1, v)) / decades);
  const wide = Math.max(400, svg.clientWidth || 800);
  svg.setAttribute("viewBox", `0 0 ${wide} 160`);
  const shapes = [];
  for (let d = 0; d <= decades; d++) {
    const line = document.createElementNS(ns, "line");
    const at = String(155 - y(10 ** d));
    line.setAttribute("x1", "40");
    line.setAttribute("x2", String(wide));
    line.setAttribute("y1", at);
    line.setAttribute("y2", at);
    line.setAttribute("class", "grid");
    const label = document.createElementNS(ns, "text");
    label.setAttribute("x", "2");
    label.setAttribute("y", String(Math.max(9, 155 - y(10 ** d) + 3)));
    label.setAttribute("class", "axis");
    label.textContent = d < 3 ? `${10 ** d} ms` : `${10 ** (d - 3)} s`;
    shapes.push(line, label);
  }
  const width = (wide - 40) / CHART_RUNS;
  let bars = 0;
  latest.forEach((r, i) => {
    const h = Math.max(2, y(r.wall_ms));
    const rect = document.createElementNS(ns, "rect");
    rect.setAttribute("x", String(40 + i * width + 1));
    rect.setAttribute("y", String(155 - h));
    rect.setAttribute("width", String(width - 2));
    rect.setAttribute("height", String(h));
    const kind = r.status === "succeeded" || r.status === "failed" ? r.status : "other";
    rect.setAttribute("class", `bar ${kind}`);
    const title = document.createElementNS(ns, "title");
    title.textContent = `${r.id}: ${r.status}, ${ms(r.wall_ms)} (${r.path})`;
    rect.appendChild(title);
    shapes.push(rect);
    bars += 1;
  });
  svg.replaceChildren(...shapes);
  svg.dataset.bars = String(bars);
  const sorted = latest.map((r) => r.wall_ms).sort((a, b) => a - b);
  $("latency-summary").textContent = sorted.length
    ? `p50 ${ms(quantile(sorted, 0.5))} · p99 ${ms(quantile(sorted, 0.99))} · max ${ms(max)} over ${sorted.length} runs`
    : "no finished runs yet";
}

function showRuns(runs) {
  $("runs-count").textContent = `(${runs.length} latest)`;
  rows("runs", runs, (tr, r) => {
    cell(tr, r.id.slice(0, 12), "id").title = r.id;
    badge(tr, r.status);
    cell(tr, r.exit_code);
    cell(tr, r.path);
    cell(tr, r.runtime || "");
    cell(tr, r.tool_name || r.image);
    cell(tr, ms(r.wall_ms), "num");
    cell(tr, clock(r.created_at));
  }, (r) => r.id, (r) => followLogs("run", r.id));
  drawChart(runs);
}

function showAgents(agents) {
  rows("agents", agents, (tr, a) => {
    cell(tr, a.id, "id");
    badge(tr, a.status);
    cell(tr, a.image);
    cell(tr, a.node || "");
  }, (a) => a.id, (a) => followLogs("agent", a.id));
}

function showSandboxes(sandboxes) {
  rows("sandboxes", sandboxes, (tr, s) => {
    cell(tr, s.sandbox_id, "id");
    cell(tr, s.template);
    badge(tr, s.state);
    cell(tr, s.path);
    cell(tr, s.node || "");
  }, (s) => s.sandbox_id);
}

function showSessions(sessions, relics) {
  rows("sessions", sessions, (tr, id) => {
    cell(tr, id, "id");
    cell(tr, relics.filter((r) => r.session_id === id).length, "num");
  }, (id) => id);
  rows("relics", relics, (tr, r) => {
    cell(tr, r.relic_name, "id").title = r.relic_id;
    cell(tr, r.session_id);
    badge(tr, r.status);
    cell(tr, r.healthy ? "yes" : "no");
  }, (r) => r.relic_id);
}

function showPools(pools) {
  rows("pools", pools, (tr, p) => {
    cell(tr, p.name, "id").title = p.image;
    cell(tr, p.idle, "num");
    cell(tr, `${p.min}/${p.max}`, "num");
    cell(tr, p.hits, "num");
    cell(tr, p.misses, "num");
    const asked = p.hits + p.misses;
    cell(tr, asked ? `${Math.round((100 * p.hits) / asked)}%` : "–", "num");
  }, (p) => p.name);
}

function showHealth(health, ready) {
  const engine = ready.engine || (ready.status === "ok" ? "up" : "down");
  $("engine").textContent = `engine ${engine}`;
  $("engine").className = `badge ${engine === "up" ? "succeeded" : "failed"}`;
  $("backend").textContent = `backend ${health.backend}${ready.reason ? ` · ${ready.reason}` : ""}`;
  rows("nodes", ready.nodes || [], (tr, n) => {
    cell(tr, n.name, "id");
    badge(tr, n.state);
    cell(tr, n.availability);
  }, (n) => n.name);
  rows("runtimes", health.runtimes || [], (tr, r) => {
    cell(tr, r.runtime, "id");
    badge(tr, r.probe);
    cell(tr, r.detail);
  }, (r) => r.runtime);
}

async function refresh() {
  try {
    const [runs, agents, sandboxes, sessions, relics, pools, health, ready] = await Promise.all([
      api("/v1/runs?limit=100"), api("/v1/agents"), api("/v1/sandboxes"), api("/v1/sessions"),
      api("/v1/relics"), api("/v1/pools"), api("/v1/health"), api("/v1/ready"),
    ]);
    showRuns(runs);
    showAgents(agents);
    showSandboxes(sandboxes);
    showSessions(sessions, relics);
    showPools(pools);
    showHealth(health, ready);
    $("status").textContent = `updated ${new Date().toLocaleTimeString()}`;
    document.body.dataset.loaded = "true";
  } catch (e) {
    if (e instanceof Unauthorized) return showLogin("");
    $("status").textContent = `could not refresh: ${e.message}`;
  }
}

function appendLog(text) {
  const pane = $("log");
  let all = pane.textContent + text;
  if (all.length > LOG_LIMIT) all = all.slice(all.length - LOG_LIMIT);
  pane.textContent = all;
  pane.scrollTop = pane.scrollHeight;
}

function setLogState(text, cls) {
  $("log-state").textContent = text;
  $("log-state").className = `badge ${cls}`;
}

// Follows one run's or agent's output until it ends. EventSource would
// reconnect on its own and replay the output, so every ending closes it.
function followLogs(kind, id) {
  if (follow) follow.source.close();
  const path = kind === "run" ? `/v1/runs/${encodeURIComponent(id)}/logs` : `/v1/agents/${encodeURIComponent(id)}/logs`;
  const source = new EventSource(`${path}?follow=true&format=sse`);
  follow = { kind, id, source };
  $("log").textContent = "";
  $("log-title").textContent = `${kind} ${id}`;
  setLogState("live", "running");
  for (const tr of document.querySelectorAll("tr.picked")) tr.classList.remove("picked");
  for (const tr of document.querySelectorAll(`tr[data-id="${CSS.escape(id)}"]`)) tr.classList.add("picked");
  source.addEventListener("log", (e) => {
    const event = JSON.parse(e.data);
    appendLog(event.data);
  });
  source.addEventListener("exit", (e) => {
    const event = JSON.parse(e.data);
    source.close();
    const code = event.exit_code === null || event.exit_code === undefined ? "" : ` (exit ${event.exit_code})`;
    setLogState(`ended: ${event.status}${code}`, event.status);
  });
  source.addEventListener("error", (e) => {
    source.close();
    if (e.data) {
      setLogState(`broke: ${JSON.parse(e.data).message}`, "failed");
    } else if ($("log-state").textContent === "live") {
      setLogState("connection lost", "failed");
    }
  });
}

function showBoard(tenant) {
  $("login").hidden = true;
  $("board").hidden = false;
  $("tenant").textContent = `tenant ${tenant}`;
  $("logout").hidden = false;
  refresh();
  if (!timer) timer = setInterval(refresh, REFRESH_MS);
}

function showLogin(message) {
  if (timer) clearInterval(timer);
  timer = null;
  if (follow) follow.source.close();
  follow = null;
  $("board").hidden = true;
  $("logout").hidden = true;
  $("tenant").textContent = "";
  $("login").hidden = false;
  $("login-error").textContent = message;
  $("token").focus();
}

async function login(event) {
  event.preventDefault();
  const answer = await fetch("/console/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    credentials: "same-origin",
    body: JSON.stringify({ token: $("token").value }),
  });
  $("token").value = "";
  if (!answer.ok) {
    const body = await answer.json().catch(() => ({}));
    return showLogin((body.error && body.error.message) || `login refused (${answer.status})`);
  }
  showBoard((await answer.json()).tenant);
}

async function logout() {
  await fetch("/console/logout", { method: "POST", credentials: "same-origin" });
  showLogin("logged out");
}

async function start() {
  $("login").addEventListener("submit", login);
  $("logout").addEventListener("click", logout);
  try {
    showBoard((await api("/console/whoami")).tenant);
  } catch (e) {
    showLogin(e instanceof Unauthorized ? "" : `the server did not answer: ${e.message}`);
  }
}

start();
