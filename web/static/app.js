// The trader's page: one WebSocket from `chillly web` (a snapshot, then changes), no polling.
// Panels are the gateway's and the tools' own --json answers; this file only draws them.
"use strict";

const CSRF = document.querySelector('meta[name="csrf"]').content;
const READ_ONLY = document.querySelector('meta[name="read-only"]').content === "1" || !CSRF;
const SIDES = {0: "buy", 1: "sell"};
const POS_SIDES = {0: "flat", 1: "long", 2: "short"};
const TYPES = {1: "limit", 2: "market", 3: "stop_limit", 4: "stop", 5: "trailing", 6: "join_bid",
               7: "join_ask"};
const MAX_FILLS = 200;   // as the server keeps (web/board.py)
const TF_MS = {"1m": 60e3, "5m": 300e3, "15m": 900e3, "30m": 1800e3, "1h": 3600e3,
               "4h": 14400e3, "1d": 86400e3};

const S = {meta: {}, panels: {}, fills: [], refusals: [], quotes: {}, contracts: [],
           missing: {}, linked: false, riskAt: 0, frames: 0,
           chart: {contract: null, tf: "1m", series: null, api: null, lines: [], markers: null,
                   last: null, loading: 0}};
window.chillly = S;   // for the tests and the bench: what the page holds and draws

const $ = (sel) => document.querySelector(sel);
const dec = new TextDecoder();

// ------------------------------------------------------------------ formatting

function money(x) {
  return x === null || x === undefined ? "-" :
    Number(x).toLocaleString("en-US", {minimumFractionDigits: 2, maximumFractionDigits: 2});
}
function num(x) { return x === null || x === undefined ? "-" : String(x); }
function span(s) {
  s = Math.max(0, Math.floor(s));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  return h ? `${h}h${String(m).padStart(2, "0")}m` : `${m}m${String(sec).padStart(2, "0")}s`;
}
function hms(ms) {
  return ms ? new Date(ms).toISOString().slice(11, 19) : "-";
}
function sign(td, x) {
  td.classList.toggle("pos", x > 0);
  td.classList.toggle("neg", x < 0);
}
function symbolOf(contract) {
  const c = S.contracts.find((x) => x.contract === contract);
  if (c && c.symbol) return c.symbol;
  const parts = String(contract).split(".");   // CON.F.US.EP.Z26 -> EP.Z26 until the info comes
  return parts.length > 2 ? parts.slice(-2).join(".") : contract;
}
function cell(tr, text, cls, raw) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  if (raw !== undefined) td.dataset.v = raw;   // the exact value behind a shortened text
  tr.appendChild(td);
  return td;
}
function button(tr, label, onclick) {
  const td = document.createElement("td");
  if (!READ_ONLY) {
    const b = document.createElement("button");
    b.className = "small danger";
    b.textContent = label;
    b.addEventListener("click", onclick);
    td.appendChild(b);
  }
  tr.appendChild(td);
}
function fillTable(id, rows, draw) {
  const tbody = $(`#${id} tbody`);
  tbody.replaceChildren();
  for (const r of rows) {
    const tr = document.createElement("tr");
    draw(tr, r);
    tbody.appendChild(tr);
  }
  if (!rows.length) {
    const tr = document.createElement("tr");
    const td = cell(tr, "none", "muted");
    td.colSpan = $(`#${id} thead tr`).children.length;
    tbody.appendChild(tr);
  }
}

// ------------------------------------------------------------------ the push channel

function connect() {
  const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") +
                           location.host + "/ws");
  ws.binaryType = "arraybuffer";
  ws.onopen = () => { S.linked = true; drawLink(); };
  ws.onmessage = (ev) => {
    const msgs = JSON.parse(typeof ev.data === "string" ? ev.data : dec.decode(ev.data));
    S.frames += 1;
    const dirty = new Set();
    for (const m of msgs) {
      if (m.k === "resync") { ws.close(); return; }   // a stalled page: start again from a snapshot
      apply(m, dirty);
    }
    draw(dirty);
  };
  ws.onclose = () => {
    S.linked = false;
    drawLink();
    setTimeout(connect, 1000);
  };
}

function apply(m, dirty) {
  const d = m.d;
  switch (m.k) {
    case "meta": S.meta = d; dirty.add("meta"); break;
    case "panel":
      S.panels[d.name] = d.data;
      if (d.name === "risk") S.riskAt = Date.now();
      dirty.add(d.name);
      break;
    case "fills": S.fills = d; dirty.add("fills"); break;
    case "fill":
      S.fills.unshift(d);
      if (S.fills.length > MAX_FILLS) S.fills.length = MAX_FILLS;
      addFill(d);
      dirty.add("markers");
      break;
    case "refusals": S.refusals = d; dirty.add("refusals"); break;
    case "missing": S.missing = d; dirty.add("missing"); break;
    case "contracts": S.contracts = d; dirty.add("contracts"); break;
    case "quote": S.quotes[d.contract] = d; onQuote(d); break;
    case "bar": onBar(d); break;
  }
}

function draw(dirty) {
  if (dirty.has("meta")) drawMeta();
  if (dirty.has("risk")) drawRisk();
  if (dirty.has("positions")) drawPositions();
  if (dirty.has("orders")) { drawOrders(); drawOrderLines(); }
  if (dirty.has("strategies") || dirty.has("risk") || dirty.has("health")) drawStrategies();
  if (dirty.has("fills")) { drawFills(); drawMarkers(); }
  else if (dirty.has("markers")) drawMarkers();
  if (dirty.has("refusals")) drawRefusals();
  if (dirty.has("health")) drawHealth();
  if (dirty.has("reports")) drawReports();
  if (dirty.has("missing")) drawMissing();
  if (dirty.has("contracts")) {   // symbols came: redraw what names contracts
    drawTabs();
    drawFills();
    if (S.panels.positions) drawPositions();
    if (S.panels.orders) drawOrders();
  }
}

// ------------------------------------------------------------------ panels

function drawLink() {
  const el = $("#link");
  el.textContent = S.linked ? "live" : "disconnected";
  el.className = "badge " + (S.linked ? "good" : "bad");
  drawMissing();
}

function drawMeta() {
  const m = S.meta;
  $("#venue").textContent = `${m.venue || ""}${m.account ? " · account " + m.account : ""}`;
  $("#actions-bar").hidden = READ_ONLY || m.read_only;
  $("#read-only-note").hidden = !(READ_ONLY || m.read_only);
}

function drawMissing() {
  const el = $("#missing");
  const lines = Object.entries(S.missing).map(([, v]) => v);
  if (!S.linked) lines.unshift("no connection to chillly web: reconnecting…");
  el.replaceChildren(...lines.map((t) => { const d = document.createElement("div");
                                           d.textContent = t; return d; }));
  el.hidden = !lines.length;
}

function field(name, text) {
  const el = document.querySelector(`#risk [data-field="${name}"]`);
  el.textContent = text;
  return el;
}

function drawRisk() {
  const r = S.panels.risk;
  if (!r) return;
  $("#risk-program").textContent = `${r.program} ${r.size} · account ${r.account} · ` +
                                   `trading date ${r.trading_date}`;
  field("balance", money(r.balance));
  field("equity", money(r.equity));
  field("floor", money(r.floor));
  sign(field("distance_to_floor", money(r.distance_to_floor)), r.distance_to_floor);
  sign(field("day_pnl", money(r.day_pnl)), r.day_pnl);
  field("lots", `${r.lots_used} / ${r.lots_allowed}`);
  field("state", r.state + (r.manual_halt ? " (manual)" : ""));
  const badge = $("#state");
  badge.textContent = r.state;
  badge.className = "badge " + (r.state === "ACTIVE" ? "good" : r.state === "HALTED" ? "bad" : "warn");
  $("#risk-reason").textContent = r.reason ? `why: ${r.reason}${r.rule ? " [" + r.rule + "]" : ""}` : "";
  const room = r.high_water - r.floor;
  const share = room > 0 ? Math.max(0, Math.min(1, r.distance_to_floor / room)) : 0;
  const bar = $("#floor-fill");
  bar.style.width = `${(share * 100).toFixed(1)}%`;
  bar.style.background = share < 0.25 ? "var(--bad)" : share < 0.5 ? "var(--warn)" : "var(--good)";
  const blind = $("#risk-blind");
  blind.hidden = !(r.blind && r.blind.length);
  blind.textContent = blind.hidden ? "" : `BLIND: no price for ${r.blind.join(", ")}: equity unknown, entries refused`;
  tick();
}

function tick() {
  const r = S.panels.risk;
  if (r && r.next_deadline) {
    const nd = r.next_deadline;
    const left = nd.in_s - (Date.now() - S.riskAt) / 1000 * (S.meta.clock_speed || 1);
    field("deadline", `${nd.name} at ${nd.ct} CT, in ${span(left)}`);
  }
  const m = S.meta;
  if (m.clock_speed) {
    const real = Date.now();
    const t = m.clock_anchor_ms ? m.clock_anchor_ms + (real - m.clock_anchor_ms) * m.clock_speed : real;
    $("#clock").textContent = "market " + new Date(t).toLocaleTimeString("en-US",
      {timeZone: "America/Chicago", hour12: false}) + " CT" +
      (m.clock_speed !== 1 ? ` (×${m.clock_speed})` : "");
  }
}

function drawPositions() {
  const rows = (S.panels.positions && S.panels.positions.positions) || [];
  fillTable("positions", rows, (tr, p) => {
    tr.dataset.owner = p.owner;
    tr.dataset.contract = p.contract;
    cell(tr, p.owner);
    cell(tr, symbolOf(p.contract), "", p.contract).title = p.contract;
    cell(tr, POS_SIDES[p.side] || p.side);
    cell(tr, num(p.size), "num");
    cell(tr, p.avg_price ? String(p.avg_price) : "-", "num");
    sign(cell(tr, money(p.realized_pnl), "num"), p.realized_pnl);
    sign(cell(tr, money(p.open_pnl), "num"), p.open_pnl);
    if (p.size > 0) {
      button(tr, `Flatten ${symbolOf(p.contract)}`, () => action("flatten", {contract: p.contract},
        `Flatten ${p.contract}: cancel its orders and close the position at market?`));
    } else cell(tr, "");
  });
}

function drawOrders() {
  const rows = (S.panels.orders && S.panels.orders.orders) || [];
  fillTable("orders", rows, (tr, o) => {
    tr.dataset.order = o.order_id;
    cell(tr, String(o.order_id));
    cell(tr, o.owner);
    cell(tr, symbolOf(o.contract), "", o.contract).title = o.contract;
    cell(tr, SIDES[o.side] || o.side);
    cell(tr, num(o.size), "num");
    cell(tr, TYPES[o.order_type] || o.order_type);
    cell(tr, o.state);
    cell(tr, num(o.limit_price || o.stop_price || null), "num");
    cell(tr, o.parent_id ? String(o.parent_id) : "");
    button(tr, "Cancel", () => action("cancel", {order_id: o.order_id},
      `Cancel order ${o.order_id} (${o.owner} ${SIDES[o.side]} ${o.size} ${symbolOf(o.contract)})?`));
  });
}

function drawStrategies() {
  const p = S.panels.strategies;
  if (!p) return;
  $("#strategies-error").textContent = p.error || "";
  const risk = (S.panels.risk && S.panels.risk.strategies) || {};
  fillTable("strategies", p.rows || [], (tr, s) => {
    tr.dataset.name = s.name;
    const g = risk[s.name] || {};
    cell(tr, s.name);
    cell(tr, s.supervisor);
    cell(tr, s.state);
    cell(tr, s.live ? "yes" : "no");
    cell(tr, s.lag_ms === null || s.lag_ms === undefined ? "-" : `${s.lag_ms} ms`, "num");
    cell(tr, num(s.position), "num");
    sign(cell(tr, s.day_pnl === null || s.day_pnl === undefined ? "-" : money(s.day_pnl), "num"), s.day_pnl);
    cell(tr, g.lots_used === undefined ? "-" : String(g.lots_used), "num");
    cell(tr, g.halted ? `HALTED: ${g.halted}` : limitsText((p.limits || {})[s.name], g));
    cell(tr, num(s.hook_errors), "num");
    cell(tr, s.why || "");
    cell(tr, problemOf(s.program));
  });
}

function limitsText(l, g) {
  // each limit of strategies.toml beside what the gate counts against it
  if (!l) return "-";
  const parts = [];
  if (l.max_lots) parts.push(`lots ${g.lots_used ?? 0}/${l.max_lots}`);
  if (l.max_daily_loss) {
    const lost = Math.max(0, -(g.day_pnl ?? 0));
    parts.push(`loss ${money(lost)}/${money(l.max_daily_loss)} (${Math.round(100 * lost / l.max_daily_loss)}%)`);
  }
  if (l.max_orders_per_minute) parts.push(`${l.max_orders_per_minute} orders/min`);
  if (l.contracts) parts.push(`only ${l.contracts.join(", ")}`);
  return parts.length ? parts.join(" · ") : "none set";
}

function problemOf(program) {
  const h = S.panels.health;
  const row = h && h.programs.find((p) => p.name === program);
  if (!row) return "";
  const alarms = Object.entries(row.alarms || {}).map(([c, t]) => `[${c}] ${t}`);
  return [...row.problems.filter((x) => !x.startsWith("alarm:")), ...alarms].join(" | ");
}

function fillRow(tr, f) {
  tr.dataset.trade = f.trade_id;
  tr.dataset.order = f.order_id;
  cell(tr, hms(f.vt || f.ts));
  cell(tr, f.owner);
  cell(tr, symbolOf(f.contract), "", f.contract).title = f.contract;
  cell(tr, SIDES[f.side] || f.side);
  cell(tr, num(f.size), "num");
  cell(tr, num(f.price), "num");
  sign(cell(tr, f.pnl === null || f.pnl === undefined ? "" : money(f.pnl), "num"), f.pnl);
}

function drawFills() {
  fillTable("fills", S.fills, fillRow);
}

function addFill(f) {   // one new fill: one row on top, not the whole table again
  const tbody = $("#fills tbody");
  const first = tbody.firstElementChild;
  if (first && !first.dataset.trade) first.remove();   // the "none" row
  const tr = document.createElement("tr");
  fillRow(tr, f);
  tbody.prepend(tr);
  while (tbody.children.length > MAX_FILLS) tbody.lastElementChild.remove();
}

function drawRefusals() {
  fillTable("refusals", S.refusals, (tr, r) => {
    if (r.refusal_id) tr.dataset.refusal = r.refusal_id;   // a refusal of the gate, not an action
    cell(tr, hms(r.ts));
    cell(tr, r.event);
    cell(tr, r.rule || "");
    cell(tr, r.owner || "");
    cell(tr, r.reason);
  });
}

function drawHealth() {
  const h = S.panels.health;
  const bad = h.programs.filter((p) => !p.healthy).map((p) => p.name);
  const v = $("#health-verdict");
  v.textContent = !h.broker ? "no broker" : bad.length ? `UNHEALTHY: ${bad.join(", ")}` : "all healthy";
  v.className = "badge " + (h.healthy ? "good" : "bad");
  $("#health-conf").textContent = h.conf;
  fillTable("health", h.programs, (tr, p) => {
    tr.dataset.program = p.name;
    if (!p.healthy) tr.className = "unhealthy";
    cell(tr, p.name);
    cell(tr, p.state);
    cell(tr, num(p.pid), "num");
    cell(tr, p.age_s === null ? "-" : `${p.age_s.toFixed(1)}s`, "num");
    const alarms = Object.entries(p.alarms || {}).map(([c, t]) => `[${c}] ${t}`);
    cell(tr, [...p.problems.filter((x) => !x.startsWith("alarm:")), ...alarms].join(" | "));
  });
}

function drawReports() {
  const p = S.panels.reports;
  $("#reports-dir").textContent = `chillly backtest --report ${p.dir}/NAME`;
  fillTable("reports", p.reports, (tr, r) => {
    const td = document.createElement("td");
    if (r.html) {
      const a = document.createElement("a");
      a.href = `/reports/${r.path ? r.path.split("/").map(encodeURIComponent).join("/") + "/" : ""}index.html`;
      a.target = "_blank";
      a.rel = "noopener";
      a.textContent = r.name;
      td.appendChild(a);
    } else td.textContent = r.name;
    tr.appendChild(td);
    cell(tr, new Date(r.written_ms).toISOString().slice(0, 16).replace("T", " "));
    cell(tr, r.strategy || "");
    cell(tr, `${(r.from || "").slice(0, 10)} … ${(r.to || "").slice(0, 10)}`);
    sign(cell(tr, money(r.net_pnl), "num"), r.net_pnl);
    cell(tr, num(r.trades), "num");
    cell(tr, r.win_rate === null || r.win_rate === undefined ? "-" : `${Math.round(100 * r.win_rate)}%`, "num");
    cell(tr, money(r.max_drawdown), "num");
    cell(tr, r.verdict);
  });
}

// ------------------------------------------------------------------ actions

function confirmDialog(text) {
  return new Promise((resolve) => {
    const dlg = $("#confirm");
    $("#confirm-text").textContent = text;
    dlg.addEventListener("close", () => resolve(dlg.returnValue === "ok"), {once: true});
    dlg.showModal();
  });
}

function toast(text) {
  const el = $("#toast");
  el.textContent = text;
  el.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { el.hidden = true; }, 8000);
}

async function action(name, body, question) {
  if (READ_ONLY || !(await confirmDialog(question))) return;
  try {
    const r = await fetch(`/api/action/${name}`, {
      method: "POST", body: JSON.stringify(body),
      headers: {"Content-Type": "application/json", "X-Chillly-CSRF": CSRF}});
    const out = await r.json();
    toast(`${name}: ${out.ok ? "" : "REFUSED: "}${out.message || out.error}`);
  } catch (e) {
    toast(`${name}: failed: ${e}`);
  }
}

function wireActions() {
  $("#btn-halt").addEventListener("click", () => action("halt", {reason: "halted from the page"},
    "Halt trading? The gate cancels every order and flattens every position, and stays HALTED until you resume."));
  $("#btn-resume").addEventListener("click", () => action("resume", {},
    "Resume trading? (refused unless the account is flat)"));
  $("#btn-flatten-all").addEventListener("click", () => action("flatten", {all: true},
    "Flatten everything: cancel every order and close every position at market?"));
}

// ------------------------------------------------------------------ the chart

function drawTabs() {
  const tabs = $("#chart-tabs");
  tabs.replaceChildren(...S.contracts.map((c) => {
    const b = document.createElement("button");
    b.className = "small" + (c.contract === S.chart.contract ? " active" : "");
    b.textContent = symbolOf(c.contract);
    b.title = c.contract;
    b.dataset.contract = c.contract;
    b.addEventListener("click", () => selectChart(c.contract, S.chart.tf));
    return b;
  }));
  if (!S.chart.contract && S.contracts.length) selectChart(S.contracts[0].contract, S.chart.tf);
  if (!S.contracts.length) $("#chart-note").textContent = "no subscribed contracts yet (is `subscriptions` running?)";
}

function makeChart() {
  if (!window.LightweightCharts) {
    $("#chart-note").textContent = "the charting library is not installed (run scripts/bootstrap)";
    return false;
  }
  if (S.chart.api) return true;
  const LC = window.LightweightCharts;
  S.chart.api = LC.createChart($("#chart"), {
    autoSize: true,
    layout: {background: {color: "#171b21"}, textColor: "#c9ced6"},
    grid: {vertLines: {color: "#222831"}, horzLines: {color: "#222831"}},
    timeScale: {timeVisible: true, secondsVisible: false},
  });
  S.chart.series = S.chart.api.addSeries(LC.CandlestickSeries, {});
  S.chart.markers = LC.createSeriesMarkers(S.chart.series, []);
  return true;
}

async function selectChart(contract, tf) {
  S.chart.contract = contract;
  S.chart.tf = tf;
  $("#tf").value = tf;
  for (const b of document.querySelectorAll("#chart-tabs button"))
    b.classList.toggle("active", b.dataset.contract === contract);
  if (!makeChart()) return;
  const ticket = ++S.chart.loading;
  $("#chart-note").textContent = "loading…";
  try {
    const r = await fetch(`/api/bars?contract=${encodeURIComponent(contract)}&tf=${tf}&last=500`);
    const out = await r.json();
    if (ticket !== S.chart.loading) return;
    if (!r.ok) throw new Error(out.error || r.status);
    const data = out.bars.map((b) => ({time: b[0] / 1000, open: b[1], high: b[2], low: b[3], close: b[4]}));
    S.chart.series.setData(data);
    S.chart.last = data.length ? data[data.length - 1] : null;
    $("#chart-note").textContent = `${out.bars.length} bars from the ${out.source === "series" ? "series cache" : "database"} · times UTC`;
  } catch (e) {
    if (ticket !== S.chart.loading) return;
    S.chart.series.setData([]);
    S.chart.last = null;
    $("#chart-note").textContent = `no bars: ${e.message || e}`;
  }
  drawMarkers();
  drawOrderLines();
}

function onBar(b) {
  const c = S.chart;
  if (!c.series || b.contract !== c.contract || b.tf !== c.tf || c.loading === 0) return;
  const bar = {time: b.t / 1000, open: b.o, high: b.h, low: b.l, close: b.c};
  if (c.last && bar.time < c.last.time) return;   // older than what is drawn: the next load has it
  c.series.update(bar);
  c.last = bar;
}

function onQuote(q) {
  // The forming candle moves with the quotes between the feed's 1m partials.
  const c = S.chart;
  const px = q.last;
  if (!c.series || !c.last || q.contract !== c.contract || px === null || px === undefined) return;
  const start = c.last.time * 1000;
  if (q.ts < start || q.ts >= start + (TF_MS[c.tf] || 60e3)) return;
  const bar = {...c.last, close: px, high: Math.max(c.last.high, px), low: Math.min(c.last.low, px)};
  c.series.update(bar);
  c.last = bar;
}

function drawMarkers() {
  const c = S.chart;
  if (!c.markers) return;
  const data = c.series.data();
  const at = (ms) => {   // the open time of the drawn bar holding ms
    let lo = 0, hi = data.length - 1, found = null;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (data[mid].time * 1000 <= ms) { found = data[mid].time; lo = mid + 1; } else hi = mid - 1;
    }
    return found;
  };
  const marks = [];
  for (const f of S.fills) {
    if (f.contract !== c.contract) continue;
    const time = at(f.vt || f.ts);
    if (time === null) continue;
    const buy = f.side === 0;
    marks.push({time, position: buy ? "belowBar" : "aboveBar", color: buy ? "#26a69a" : "#ef5350",
                shape: buy ? "arrowUp" : "arrowDown", text: `${buy ? "B" : "S"} ${f.size} @ ${f.price}`});
  }
  marks.sort((a, b) => a.time - b.time);
  c.markers.setMarkers(marks);
}

function drawOrderLines() {
  const c = S.chart;
  if (!c.series) return;
  for (const line of c.lines) c.series.removePriceLine(line);
  c.lines = [];
  const rows = (S.panels.orders && S.panels.orders.orders) || [];
  for (const o of rows) {
    const price = o.limit_price || o.stop_price;
    if (o.contract !== c.contract || !price) continue;
    c.lines.push(c.series.createPriceLine({
      price, color: o.parent_id ? "#f0b429" : "#4c8dff", lineWidth: 1, lineStyle: 2,
      axisLabelVisible: true,
      title: `${o.parent_id ? "leg " : ""}${o.owner} ${SIDES[o.side]} ${o.size} ${TYPES[o.order_type] || ""}`}));
  }
}

S.chartBars = () => (S.chart.series ? S.chart.series.data().map((b) => ({...b})) : []);

// ------------------------------------------------------------------ start

document.addEventListener("DOMContentLoaded", () => {
  wireActions();
  $("#tf").addEventListener("change", (e) => S.chart.contract && selectChart(S.chart.contract, e.target.value));
  if (READ_ONLY) { $("#actions-bar").hidden = true; $("#read-only-note").hidden = false; }
  drawLink();
  setInterval(tick, 1000);   // the countdown and the market clock (a display timer, not a poll)
  connect();
});
