// The bandit-engine dashboard: reads the JSON endpoints every 2 s and draws
// them; promotes and rolls back through the admin endpoints. The bearer
// token, if any, is kept in sessionStorage and sent as Authorization.
"use strict";

const REFRESH_MS = 2000;
const TOKEN_KEY = "bandit-dashboard-token";
const $ = (sel) => document.querySelector(sel);

let selected = decodeURIComponent(location.hash.slice(1)) || null;
let chart = null;
let busy = false;

function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (token()) headers["Authorization"] = "Bearer " + token();
  const response = await fetch(path, Object.assign({}, options, { headers }));
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (!response.ok) {
    const why = body && body.error ? body.error : response.statusText;
    throw new Error(response.status + ": " + why);
  }
  return body;
}

function fmt(v, digits = 4) {
  return v === null || v === undefined ? "–" : Number(v).toFixed(digits);
}

function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}

function estimateCell(row, e, cls) {
  const td = cell(row, e && e.value !== null ? fmt(e.value) : "–", "num " + cls);
  if (e && e.low !== null) {
    const iv = document.createElement("small");
    iv.className = "interval";
    iv.textContent = "[" + fmt(e.low) + ", " + fmt(e.high) + "]";
    td.append(" ", iv);
  }
  return td;
}

function status(text, isError) {
  const el = $("#status");
  el.textContent = text;
  el.classList.toggle("error", !!isError);
}

function renderList(experiments) {
  const body = $("#experiments tbody");
  body.replaceChildren();
  $("#no-experiments").hidden = experiments.length > 0;
  if (!selected || !experiments.some((e) => e.experiment_id === selected)) {
    selected = experiments.length ? experiments[0].experiment_id : null;
  }
  for (const e of experiments) {
    const tr = document.createElement("tr");
    tr.dataset.experiment = e.experiment_id;
    if (e.experiment_id === selected) tr.className = "selected";
    cell(tr, e.experiment_id);
    cell(tr, e.policy);
    cell(tr, e.champion + (e.challengers.length ? " +" + e.challengers.length : ""));
    cell(tr, e.active_arms + "/" + e.total_arms, "num");
    cell(tr, String(e.counters.decisions), "num");
    cell(tr, String(e.counters.rewards_applied + e.counters.rewards_defaulted), "num");
    tr.addEventListener("click", () => {
      selected = e.experiment_id;
      location.hash = encodeURIComponent(selected);
      refresh();
    });
    body.appendChild(tr);
  }
}

function renderCounters(exp) {
  const dl = $("#counters");
  dl.replaceChildren();
  const items = [["model version", exp.model_version], ["champion", exp.champion],
    ["shadow rate", exp.shadow_rate], ...Object.entries(exp.counters)];
  for (const [k, v] of items) {
    const div = document.createElement("div");
    const dt = document.createElement("dt");
    const dd = document.createElement("dd");
    dt.textContent = k.replace(/_/g, " ");
    dd.textContent = String(v);
    dd.id = "counter-" + k.replace(/ /g, "-");
    div.append(dt, dd);
    dl.appendChild(div);
  }
}

function renderArms(exp) {
  const body = $("#arms tbody");
  body.replaceChildren();
  const bounds = exp.arms.filter((a) => a.low !== null).flatMap((a) => [a.low, a.high]);
  const lo = Math.min(exp.reward_min, ...bounds);
  const hi = Math.max(exp.reward_max, ...bounds);
  const pos = (v) => (100 * (v - lo) / ((hi - lo) || 1)).toFixed(2) + "%";
  for (const a of exp.arms) {
    const tr = document.createElement("tr");
    tr.dataset.arm = a.arm_id;
    if (!a.active) tr.className = "retired";
    cell(tr, a.arm_id + (a.active ? "" : " (retired)"));
    cell(tr, fmt(a.mean), "num mean");
    cell(tr, "[" + fmt(a.low) + ", " + fmt(a.high) + "]", "num interval");
    const barCell = cell(tr, "");
    if (a.low !== null) {
      const bar = document.createElement("div");
      bar.className = "bar";
      const range = document.createElement("div");
      range.className = "range";
      range.style.left = pos(a.low);
      range.style.width = "calc(" + pos(a.high) + " - " + pos(a.low) + ")";
      const mean = document.createElement("div");
      mean.className = "mean";
      mean.style.left = pos(a.mean);
      bar.append(range, mean);
      barCell.appendChild(bar);
    }
    cell(tr, String(a.pulls), "num pulls");
    cell(tr, fmt(a.reward_sum, 2), "num reward-sum");
    body.appendChild(tr);
  }
  $("#arms-note").textContent = exp.arms_shown < exp.arms_listed
    ? "(" + exp.arms_shown + " of " + exp.arms_listed + ")" : "";
}

function renderReport(report) {
  $("#shadow").textContent = "shadow rate " + report.shadow_rate
    + ", window " + report.shadow_window + " decisions";
  const body = $("#estimates tbody");
  body.replaceChildren();
  for (const e of report.estimates) {
    const tr = document.createElement("tr");
    tr.dataset.policy = e.name;
    if (e.role === "champion") tr.className = "champion";
    cell(tr, e.name);
    cell(tr, e.role);
    cell(tr, String(e.n), "num n");
    cell(tr, fmt(e.ess, 1), "num ess");
    estimateCell(tr, e.ips, "ips");
    estimateCell(tr, e.snips, "snips");
    estimateCell(tr, e.dr, "dr");
    const act = cell(tr, "");
    if (e.role !== "champion") {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "promote";
      b.textContent = "Promote";
      b.addEventListener("click", () => admin("promote", { name: e.name }));
      act.appendChild(b);
    }
    body.appendChild(tr);
  }
  const changes = $("#changes tbody");
  changes.replaceChildren();
  for (const c of report.changes.slice().reverse()) {
    const tr = document.createElement("tr");
    cell(tr, String(c.seq), "num");
    cell(tr, new Date(c.at * 1000).toISOString().replace("T", " ").slice(0, 19));
    cell(tr, c.action);
    cell(tr, c.name);
    cell(tr, c.previous || "");
    cell(tr, c.actor, "actor");
    changes.appendChild(tr);
  }
}

function renderRates(rates) {
  $("#rate-note").textContent = "Mean reward per reward learned, and rewards per second, every "
    + rates.interval_seconds + " s over the last " + Math.round(rates.window_seconds / 60)
    + " minutes (kept by this server since it started).";
  const p = rates.points;
  const data = [p.map((x) => x.t), p.map((x) => x.mean_reward), p.map((x) => x.rewards_per_s)];
  const el = $("#rate-chart");
  const width = Math.max(300, el.clientWidth || 600);
  if (chart === null) {
    chart = new uPlot({
      width, height: 220,
      series: [{},
        { label: "mean reward", stroke: "#1d4f80", width: 2, spanGaps: true, scale: "r" },
        { label: "rewards/s", stroke: "#c8772a", width: 1, scale: "n" }],
      axes: [{}, { scale: "r", label: "mean reward" },
        { scale: "n", side: 1, label: "rewards/s", grid: { show: false } }],
    }, data, el);
  } else {
    chart.setData(data);
    if (Math.abs(chart.width - width) > 20) chart.setSize({ width, height: 220 });
  }
}

async function refresh() {
  if (busy) return;
  busy = true;
  try {
    const list = await api("/api/experiments");
    renderList(list.experiments);
    $("#detail").hidden = selected === null;
    if (selected !== null) {
      const id = encodeURIComponent(selected);
      const [exp, report, rates] = await Promise.all([
        api("/api/experiments/" + id), api("/api/report/" + id),
        api("/api/rates/" + id)]);
      $("#exp-id").textContent = exp.experiment_id;
      $("#exp-policy").textContent = exp.policy + ", champion " + exp.champion;
      renderCounters(exp);
      renderArms(exp);
      renderReport(report);
      renderRates(rates);
    }
    status("updated " + new Date().toLocaleTimeString());
  } catch (e) {
    status(e.message, true);
  } finally {
    busy = false;
  }
}

async function admin(action, body) {
  const out = $("#admin-result");
  try {
    const exp = await api("/api/" + action + "/" + encodeURIComponent(selected), {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    out.textContent = action + ": " + exp.champion + " serves";
    out.classList.remove("error");
  } catch (e) {
    out.textContent = action + " refused: " + e.message;
    out.classList.add("error");
  }
  refresh();
}

document.addEventListener("DOMContentLoaded", () => {
  $("#token").value = token();
  $("#token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("#token").value.trim());
    refresh();
  });
  $("#token-clear").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    $("#token").value = "";
    refresh();
  });
  $("#rollback").addEventListener("click", () => admin("rollback", {}));
  refresh();
  setInterval(refresh, REFRESH_MS);
});
