// Live updates for the monitor pages: server-sent events carry summaries; this script
// recolours the graph, the bars, the counts and the status badges in place.
"use strict";

const ORDER = ["succeeded", "failed", "cancelled", "skipped", "running", "submitted", "ready"];
const STATUSES = ["waiting", "ready", "submitted", "running", "succeeded", "failed", "cancelled", "skipped"];
const TERMINAL = ["succeeded", "failed", "cancelled", "skipped"];

function fmt(n) { return n.toLocaleString("en-US"); }

function total(counts) { return Object.values(counts).reduce((a, b) => a + b, 0); }

function donePct(counts) {
  const t = total(counts);
  return t ? 100 * TERMINAL.reduce((a, s) => a + (counts[s] || 0), 0) / t : 0;
}

function paintBar(el, counts, palette) {
  if (!el) return;
  const t = total(counts);
  el.replaceChildren(...ORDER.filter((s) => counts[s]).map((s) => {
    const span = document.createElement("span");
    span.style.width = (100 * counts[s] / t).toFixed(3) + "%";
    span.style.background = palette[s][0];
    span.title = s + " " + fmt(counts[s]);
    return span;
  }));
}

function paintCounts(el, counts) {
  if (!el) return;
  el.replaceChildren(...STATUSES.filter((s) => counts[s]).map((s) => {
    const span = document.createElement("span");
    span.className = "count st-" + s;
    span.title = s;
    span.textContent = s + " " + fmt(counts[s]);
    return span;
  }));
}

function paintBadge(el, status) {
  if (!el) return;
  el.className = "badge st-" + status;
  el.textContent = status;
}

function paintNode(g, node, palette) {
  const [solid, tint] = palette[node.status] || palette.waiting;
  g.dataset.status = node.status;
  const box = g.querySelector("rect.box");
  if (box) { box.setAttribute("fill", tint); box.setAttribute("stroke", solid); }
  const stripe = g.querySelector("rect.stripe");
  if (stripe) stripe.setAttribute("fill", solid);
  const t = total(node.counts);
  const text = g.querySelector("text.counts");
  if (text) text.textContent = t ? `${node.status} · ${fmt(node.counts.succeeded || 0)}/${fmt(t)}` : node.status;
  const bar = g.querySelector("g.bar");
  if (bar) {
    const back = bar.querySelector("rect");
    const width = parseFloat(back.getAttribute("width"));
    bar.replaceChildren(back);
    let x = 0;
    for (const s of ORDER) {
      if (!node.counts[s]) continue;
      const w = width * node.counts[s] / t;
      const r = document.createElementNS("http://www.w3.org/2000/svg", "rect");
      r.setAttribute("x", x.toFixed(1)); r.setAttribute("width", w.toFixed(1));
      r.setAttribute("height", "4"); r.setAttribute("fill", palette[s][0]);
      bar.appendChild(r);
      x += w;
    }
  }
}

function liveWorkflow(root) {
  const palette = JSON.parse(root.dataset.palette);
  const source = new EventSource(root.dataset.live);
  source.addEventListener("summary", (e) => {
    const s = JSON.parse(e.data);
    root.dataset.state = s.status;
    paintBadge(root.querySelector(".head [data-status-badge]"), s.status);
    const msg = root.querySelector("[data-message]");
    if (msg) msg.textContent = s.message;
    const totals = root.querySelector(".totals");
    if (totals) {
      paintBar(totals.querySelector("[data-bar]"), s.totals, palette);
      paintCounts(totals.querySelector("[data-counts]"), s.totals);
      totals.querySelector("[data-pct]").textContent = s.done_pct.toFixed(1) + "%";
    }
    for (const form of root.querySelectorAll("form[data-action]")) {
      form.hidden = !s.actions.includes(form.dataset.action);
    }
    for (const w of s.works) {
      const row = root.querySelector(`tr[data-work-id="${w.id}"]`);
      if (!row) continue;
      paintBadge(row.querySelector("[data-status-badge]"), w.status);
      paintBar(row.querySelector("[data-bar]"), w.counts, palette);
      paintCounts(row.querySelector("[data-counts]"), w.counts);
      row.querySelector("[data-pct]").textContent = donePct(w.counts).toFixed(0) + "%";
    }
    for (const g of root.querySelectorAll("g.node[data-work]")) {
      const node = s.nodes[g.dataset.work];
      if (node) paintNode(g, node, palette);
    }
  });
  source.addEventListener("end", () => { root.dataset.live_ended = "1"; source.close(); });
}

function liveList(table) {
  const palette = JSON.parse(document.getElementById("palette")?.textContent || "null");
  const source = new EventSource("/ui/live/workflows?ids=" + table.dataset.liveList);
  source.addEventListener("rows", (e) => {
    for (const r of JSON.parse(e.data)) {
      const row = table.querySelector(`tr[data-workflow="${r.id}"]`);
      if (!row) continue;
      paintBadge(row.querySelector("[data-status-badge]"), r.status);
      if (palette) paintBar(row.querySelector("[data-bar]"), r.counts, palette);
      paintCounts(row.querySelector("[data-counts]"), r.counts);
      row.querySelector("[data-pct]").textContent = r.done_pct.toFixed(0) + "%";
    }
  });
}

// a study page: when the workflow's feed says something changed, fetch the charts again
// (at most every 2 s), and once more when the workflow ends
function liveStudy(root) {
  const source = new EventSource(root.dataset.live);
  let last = 0, pending = null;
  const refresh = () => {
    pending = null;
    last = Date.now();
    fetch(root.dataset.fragment, { credentials: "same-origin" })
      .then((r) => (r.ok ? r.text() : null))
      .then((html) => { if (html !== null) { root.innerHTML = html; root.dataset.refreshed = String(last); } });
  };
  source.addEventListener("summary", () => {
    if (pending) return;
    pending = setTimeout(refresh, Math.max(0, 2000 - (Date.now() - last)));
  });
  source.addEventListener("end", () => { source.close(); setTimeout(refresh, 300); });
}

document.addEventListener("submit", (e) => {
  const form = e.target;
  if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
    e.preventDefault();
  }
});

document.addEventListener("DOMContentLoaded", () => {
  const wf = document.getElementById("workflow");
  if (wf && wf.dataset.live) liveWorkflow(wf);
  const list = document.querySelector("table[data-live-list]");
  if (list && list.dataset.liveList) liveList(list);
  const study = document.getElementById("study");
  if (study && study.dataset.live) liveStudy(study);
});
