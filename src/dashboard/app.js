// The twoplace dashboard: reads the Admin service's answers as JSON (the
// protobuf JSON mapping: 64-bit numbers arrive as strings, zeros are left
// out) and draws them. No framework, no build step.
"use strict";

const TOKEN_KEY = "twoplace-admin-token";

// A token handed over in the fragment (never sent to a server) is kept
// for this tab only and taken out of the address bar.
(function takeToken() {
  const m = location.hash.match(/token=([^&]+)/);
  if (m) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
})();

async function api(path, params) {
  const q = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== "" && v != null));
  const headers = {};
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = "Bearer " + token;
  const res = await fetch(`/api/v1/${path}?${q}`, { headers });
  const body = await res.json();
  if (!res.ok) throw Object.assign(new Error(body.message || res.statusText), { status: res.status });
  return body;
}

const num = (v) => Number(v ?? 0);
const pct = (v) => (v == null ? "–" : (100 * v).toFixed(1) + "%");
function span(seconds) {
  if (seconds == null) return "–";
  if (seconds < 3600) return Math.round(seconds / 60) + " min";
  if (seconds < 86400) return (seconds / 3600).toFixed(1) + " h";
  return (seconds / 86400).toFixed(1) + " d";
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

let me = null;
const state = { region: new URLSearchParams(location.search).get("region") || "", windowDays: "90" };

function notice(text) {
  const n = document.getElementById("notice");
  n.hidden = !text;
  n.textContent = text || "";
}

function crumbs(region) {
  const nav = document.getElementById("crumbs");
  nav.replaceChildren();
  const own = me.region;
  for (let len = own.length; len <= region.length; len += 2) {
    const code = region.slice(0, len);
    const link = el("a", { href: "?region=" + code, "data-region": code }, code);
    link.addEventListener("click", (ev) => { ev.preventDefault(); go(code); });
    nav.append(el("span", {}, link));
  }
}

function kpiList(side, k) {
  const items = [
    ["open", num(k.open), ""],
    ["overdue", num(k.overdue), num(k.overdue) > 0 ? "bad" : ""],
    ["escalated", num(k.escalated), num(k.escalated) > 0 ? "bad" : ""],
    ["on time", pct(k.onTimeRate), ""],
    ["receipts on time", pct(k.receiptRate), ""],
    ["feedback given", pct(k.feedbackRate), ""],
    ["median reply", span(k.medianReplySeconds), ""],
    ["90% replied within", span(k.p90ReplySeconds), ""],
    ["orphans", num(k.orphans), num(k.orphans) > 0 ? "warn" : ""],
    ["open discrepancies", num(k.openDiscrepancies), num(k.openDiscrepancies) > 0 ? "warn" : ""],
  ];
  const dl = document.querySelector(`.side[data-side=${side}] .kpis`);
  dl.replaceChildren(...items.map(([label, value, cls]) =>
    el("div", { class: cls, "data-kpi": `${side}.${label.replace(/ /g, "_")}` }, el("dd", {}, value), el("dt", {}, label))));
}

function drawBacklog(b) {
  const total = b.total || {};
  document.getElementById("summary-title").textContent = `${total.name || ""} ${total.region || ""}`.trim();
  kpiList("debtor", total.asDebtor || {});
  kpiList("creditor", total.asCreditor || {});
  document.getElementById("window-note").textContent =
    `Rates and reply times over what fell due from ${b.windowStart?.slice(0, 10)} to ${b.windowEnd?.slice(0, 10)}.`;
  const rows = (b.children || []).map((c) => {
    const d = c.asDebtor || {}, cr = c.asCreditor || {};
    const name = `${c.name || ""} ${c.region}`.trim();
    let label = name;
    if (c.region.length < 6 && c.region !== total.region) {
      label = el("a", { href: "?region=" + c.region }, name);
      label.addEventListener("click", (ev) => { ev.preventDefault(); go(c.region); });
    }
    const cell = (v, bad) => el("td", { class: "n" + (bad ? " bad" : "") }, v);
    return el("tr", { "data-region": c.region },
      el("th", { scope: "row" }, label),
      cell(num(d.open)), cell(num(d.overdue), num(d.overdue) > 0), cell(num(d.escalated), num(d.escalated) > 0),
      cell(pct(d.onTimeRate)), cell(pct(d.receiptRate)), cell(pct(d.feedbackRate)),
      cell(num(cr.open)), cell(num(cr.overdue), num(cr.overdue) > 0), cell(num(cr.openDiscrepancies)));
  });
  document.querySelector("#children tbody").replaceChildren(...rows);
}

function drawTrend(t) {
  const points = (t.points || []).map((p) => ({
    day: (p.end || "").slice(5, 10),
    overdue: num(p.asDebtor?.overdue),
    escalated: num(p.asDebtor?.escalated),
  }));
  const fig = document.getElementById("trend");
  const W = 640, H = 180, L = 36, B = 22;
  const max = Math.max(1, ...points.map((p) => p.overdue));
  const x = (i) => L + (i * (W - L - 8)) / Math.max(1, points.length - 1);
  const y = (v) => H - B - (v * (H - B - 10)) / max;
  const line = (key) => points.map((p, i) => `${x(i).toFixed(1)},${y(p[key]).toFixed(1)}`).join(" ");
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "Overdue obligations at the end of each day");
  const add = (tag, attrs, text) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text != null) e.textContent = text;
    svg.append(e);
  };
  add("line", { class: "axis", x1: L, y1: H - B, x2: W, y2: H - B });
  add("text", { x: 2, y: y(max) + 4 }, max);
  add("text", { x: 2, y: H - B }, 0);
  // A date under every week's point, counted back from the last.
  points.forEach((p, i) => { if ((points.length - 1 - i) % 7 === 0) add("text", { x: x(i) - 14, y: H - 6 }, p.day); });
  add("polyline", { class: "escalated", points: line("escalated") });
  add("polyline", { class: "overdue", points: line("overdue"), "data-last": points.at(-1)?.overdue ?? 0 });
  const caption = el("figcaption", {}, "Solid: overdue; dashed: escalated, at the end of each day (Shanghai time).");
  fig.replaceChildren(svg, caption);
}

function drawOverdue(o) {
  const names = o.maskedNames || [];
  const rows = (o.obligations || []).map((ob, i) => el("tr", {},
    el("td", {}, ob.debtorOffice), el("td", {}, ob.creditorOffice),
    el("td", {}, (ob.kind || "").replace(/^OBLIGATION_KIND_/, "").toLowerCase().replace(/_/g, " ")),
    el("td", { class: "n bad" }, num(ob.daysOverdue)),
    el("td", {}, `${names[i] || ""} ${ob.residentId || ""}`.trim())));
  if (rows.length === 0) rows.push(el("tr", {}, el("td", { colspan: 5 }, "Nothing overdue.")));
  document.querySelector("#overdue tbody").replaceChildren(...rows);
}

async function load() {
  const region = state.region || me.region;
  crumbs(region);
  document.body.dataset.loading = "true";
  try {
    const [b, t, o] = await Promise.all([
      api("backlog", { region, window_days: state.windowDays }),
      api("trend", { region, bucket: "day" }),
      api("overdue", { region, page_size: 10 }),
    ]);
    drawBacklog(b);
    drawTrend(t);
    drawOverdue(o);
    notice("");
  } catch (e) {
    notice(e.message);
  } finally {
    document.body.dataset.loading = "false";
  }
}

function go(region) {
  state.region = region;
  history.pushState({ region }, "", "?region=" + region);
  load();
}

window.addEventListener("popstate", () => {
  state.region = new URLSearchParams(location.search).get("region") || "";
  load();
});

document.addEventListener("DOMContentLoaded", async () => {
  document.getElementById("window").addEventListener("change", (ev) => {
    state.windowDays = ev.target.value;
    load();
  });
  try {
    me = await api("whoami", {});
  } catch (e) {
    notice(e.status === 401
      ? "Sign in: run `twoplace admin token --as admin:<region>` and open the address it prints, or use an administrator's client certificate."
      : e.status === 503
        ? e.message + " (this page tries again by itself)"
        : e.message);
    document.body.dataset.loading = "false";
    // Starting, or its database unreachable: both pass.
    if (e.status === 503) setTimeout(() => location.reload(), 5000);
    return;
  }
  load();
});
