// Kedge status page: renders the node summary the daemon streams as
// server-sent events (/events). Everything is built with DOM calls and
// textContent, never from HTML strings: names and reasons come from the
// tree, which operators and peers write.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const LEVEL_NAMES = { 5: "normal", 4: "elevated", 3: "strict", 2: "restricted", 1: "lockdown" };
let current = null;

function $(id) { return document.getElementById(id); }

function el(tag, props, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (k === "class") e.className = v; else if (k === "text") e.textContent = v; else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k);
  return e;
}

function sv(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function fill(node, ...kids) { node.replaceChildren(...kids); }

// dur formats a duration in nanoseconds.
function dur(ns) {
  if (!ns) return "0";
  if (ns < 1e3) return ns + " ns";
  if (ns < 1e6) return (ns / 1e3).toFixed(ns < 1e4 ? 1 : 0) + " µs";
  if (ns < 1e9) return (ns / 1e6).toFixed(ns < 1e7 ? 2 : 1) + " ms";
  return (ns / 1e9).toFixed(2) + " s";
}

function ago(t) {
  if (!t) return "never";
  const s = Math.max(0, (Date.now() - Date.parse(t)) / 1000);
  if (s < 60) return Math.round(s) + " s ago";
  if (s < 3600) return Math.round(s / 60) + " min ago";
  return Math.round(s / 3600) + " h ago";
}

function clock(t) { return t ? new Date(t).toLocaleTimeString() : ""; }

function bytes(n) {
  if (n < 1024) return n + " B";
  const u = ["KiB", "MiB", "GiB", "TiB"];
  let i = -1;
  do { n /= 1024; i++; } while (n >= 1024 && i < u.length - 1);
  return n.toFixed(1) + " " + u[i];
}

function renderPosture(p) {
  document.body.dataset.level = p["effective-level"] || "";
  const eff = $("effective");
  eff.textContent = p["effective-level"] || "–";
  eff.className = "level-num lv" + p["effective-level"];
  $("effective-name").textContent = LEVEL_NAMES[p["effective-level"]] || "";
  $("intended").textContent = p.level || "–";
  $("source").textContent = p.source || "–";
  $("sequence").textContent = p.sequence;
  // The cluster's level, where a cluster engine sets one.
  const c = p.cluster;
  $("cluster-box").hidden = !c;
  if (c) {
    $("cluster").textContent = (c.level ? c.level + " " + LEVEL_NAMES[c.level] : "none") + (c.connected ? "" : " (API unreachable)");
  }
}

function renderSteps(t) {
  if (!t) {
    $("last-summary").textContent = "none yet";
    fill($("steps"));
    return;
  }
  $("last-summary").textContent = `${t["from-level"]} → ${t["to-level"]}, ${t.result}, ${dur(t["duration-ns"])}, ${clock(t.started)}`;
  const start = Date.parse(t.started);
  // The bars share one scale: the transition's duration, or the end of
  // the last step when that is later (a step waits in the background).
  let span = t["duration-ns"];
  for (const s of t.steps || []) {
    span = Math.max(span, (Date.parse(s.started) - start) * 1e6 + s["duration-ns"]);
  }
  span = Math.max(span, 1);
  fill($("steps"), ...(t.steps || []).map((s) => {
    const off = Math.max(0, (Date.parse(s.started) - start) * 1e6);
    const bar = el("div", { class: "bar" });
    bar.style.left = (100 * off / span).toFixed(2) + "%";
    bar.style.width = (100 * s["duration-ns"] / span).toFixed(2) + "%";
    const row = el("div", { class: "step " + s.result, role: "listitem", title: s.error || s.result },
      el("span", { text: `${s.index + 1}. ${s.name}` }), el("div", { class: "track" }, bar),
      el("span", { class: "took", text: dur(s["duration-ns"]) }));
    return row;
  }));
}

function renderHistory(p) {
  const h = p.history || [];
  fill($("history"), ...h.slice().reverse().map((t) => el("tr", {},
    el("td", { text: t.sequence }), el("td", { text: clock(t.started) }),
    el("td", { text: `${t["from-level"]} → ${t["to-level"]}` }), el("td", { class: "num", text: dur(t["duration-ns"]) }),
    el("td", { class: "st-" + t.result, text: t.result }))));
  // Level over time: a step line from the first transition to now.
  const svg = $("timeline");
  const W = 800, H = 150, top = 12, bottom = 18, left = 22;
  const y = (l) => top + (5 - l) * (H - top - bottom) / 4;
  const kids = [];
  for (let l = 1; l <= 5; l++) {
    kids.push(sv("line", { class: "grid", x1: left, x2: W, y1: y(l), y2: y(l) }));
    kids.push(sv("text", { class: "lvl", x: 4, y: y(l) + 4 }, String(l)));
  }
  if (h.length > 0) {
    const t0 = Date.parse(h[0].started), now = Date.now();
    const x = (t) => left + (W - left - 4) * (t - t0) / Math.max(1, now - t0);
    let d = `M ${left} ${y(h[0]["from-level"])}`;
    for (const t of h) {
      const tx = x(Date.parse(t.started));
      d += ` L ${tx} ${y(t["from-level"])} L ${tx} ${y(t["to-level"])}`;
    }
    d += ` L ${W - 4} ${y(h[h.length - 1]["to-level"])}`;
    kids.push(sv("path", { class: "path", d }));
  }
  fill(svg, ...kids);
}

function renderMesh(m, node) {
  const peers = m.peers || [];
  const up = peers.filter((p) => p.status === "up").length;
  $("mesh-summary").textContent = `${m.interface || ""} ${m.status || ""} · ${up}/${peers.length} up`;
  const svg = $("mesh");
  const C = 210, R = peers.length > 1 ? 150 : 120;
  const edges = [], nodes = [];
  peers.forEach((p, i) => {
    const a = -Math.PI / 2 + 2 * Math.PI * i / Math.max(1, peers.length);
    const px = C + R * Math.cos(a), py = C + R * Math.sin(a);
    edges.push(sv("line", { class: "edge st-" + p.status, x1: C, y1: C, x2: px, y2: py }));
    const g = sv("g", { class: "peer" + (p.critical ? " critical" : ""), "data-peer": p.name, "data-status": p.status });
    g.append(sv("circle", { class: "st-" + p.status, cx: px, cy: py, r: 16 }));
    g.append(sv("title", {}, `${p.name}: ${p.status}${p.error ? " (" + p.error + ")" : ""}`));
    g.append(sv("text", { x: px, y: py + 30 }, p.name));
    g.append(sv("text", { class: "sub", x: px, y: py + 43 }, `${p.status} · ${ago(p["last-handshake"])}`));
    nodes.push(g);
  });
  const self = sv("g", { class: "self" });
  self.append(sv("circle", { class: "lv" + (current ? current.posture["effective-level"] : ""), cx: C, cy: C, r: 24, fill: "currentColor" }));
  self.append(sv("text", { x: C, y: C + 40 }, node || "this node"));
  fill(svg, ...edges, ...nodes, self);
  fill($("peers"), ...peers.map((p) => el("tr", {},
    el("td", { text: p.name + (p.critical ? " ★" : "") }), el("td", { class: "st-" + p.status, text: p.status }),
    el("td", { text: ago(p["last-handshake"]) }), el("td", { class: "num", text: bytes(p["rx-bytes"]) }),
    el("td", { class: "num", text: bytes(p["tx-bytes"]) }))));
}

function renderRoutes(r) {
  $("routes-total").textContent = `${r.total} routes`;
  const statuses = ["installed", "pending", "withheld", "failed", "unreported"];
  fill($("routes-head"), el("tr", {}, el("th", { text: "class" }), ...statuses.map((s) => el("th", { class: "num", text: s })),
    el("th", { class: "num", text: "total" })));
  fill($("routes"), ...(r["by-class"] || []).map((c) => el("tr", { "data-class": c.class }, el("td", { text: c.class }),
    ...statuses.map((s) => el("td", { class: "num" + (c.status[s] ? " st-" + s : " zero"), text: c.status[s] || 0 })),
    el("td", { class: "num", text: c.total }))));
}

function renderBackends(bs) {
  fill($("backends"), ...(bs || []).map((b) => el("li", {},
    el("span", { class: b.active ? "on" : "off", text: (b.active ? "● " : "○ ") + b.name }), el("span", { class: "muted", text: " " + b.reason }))));
}

function renderSessions(ss) {
  const active = ss.filter((s) => s.status === "active").length;
  $("sessions-summary").textContent = `${active} active, ${ss.length} listed`;
  fill($("sessions"), ...ss.map((s) => el("tr", {},
    el("td", { text: s.id }), el("td", { text: s.peer + (s.local ? " (local)" : "") }), el("td", { text: s.type }),
    el("td", { text: s.tier || "" }), el("td", { class: "num", text: s["effective-posture"] }),
    el("td", { class: "st-" + s.status, text: s.status }), el("td", { text: clock(s.started) }),
    el("td", { class: "num", text: bytes(s["bytes-in"]) }), el("td", { class: "num", text: bytes(s["bytes-out"]) }))));
}

function render(n) {
  current = n;
  const sys = n.system || {};
  $("node").textContent = sys["node-name"] || "(unnamed node)";
  $("identity").textContent = [sys.cluster && "cluster " + sys.cluster, sys.role, sys.version].filter(Boolean).join(" · ");
  renderPosture(n.posture);
  renderSteps(n.posture["last-transition"]);
  renderHistory(n.posture);
  renderMesh(n.mesh, sys["node-name"]);
  renderRoutes(n.routes);
  renderBackends(n.backends);
  renderSessions(n.sessions || []);
  document.body.dataset.seq = n.seq;
}

function connect() {
  const es = new EventSource("/events");
  const conn = $("conn");
  es.addEventListener("open", () => { conn.textContent = "live"; conn.className = "conn on"; });
  es.addEventListener("error", () => { conn.textContent = "reconnecting…"; conn.className = "conn off"; });
  es.addEventListener("summary", (ev) => render(JSON.parse(ev.data)));
}

document.addEventListener("DOMContentLoaded", () => {
  connect();
  // Ages ("12 s ago") move on between events.
  setInterval(() => { if (current) { renderMesh(current.mesh, current.system["node-name"]); renderHistory(current.posture); } }, 1000);
});
