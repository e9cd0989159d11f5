// Laneway dashboard: refreshes the page's live part, draws the backlog
// charts (uPlot), and sends the guarded writes. No framework, no build.
"use strict";
(function () {
  const body = document.body;
  const every = Number(body.dataset.refreshMs || 2000);
  const live = document.getElementById("live");
  const refreshEl = document.getElementById("refresh");
  const flashEl = document.getElementById("flash");
  const tokenEl = document.getElementById("token");
  const TOKEN_KEY = "laneway-ui-token";

  // The write token lives in this tab's session storage only: never in a
  // cookie, so no request carries it unless this script adds the header.
  if (tokenEl) {
    tokenEl.value = sessionStorage.getItem(TOKEN_KEY) || "";
    tokenEl.addEventListener("input", () => sessionStorage.setItem(TOKEN_KEY, tokenEl.value));
  }

  function flash(kind, text) {
    flashEl.className = kind;
    flashEl.textContent = text;
  }

  let timer = null;
  let refreshes = 0;
  async function refresh() {
    clearTimeout(timer);
    try {
      const u = new URL(location.href);
      u.searchParams.set("fragment", "1");
      const r = await fetch(u, { headers: { Accept: "text/html" }, cache: "no-store" });
      const html = await r.text();
      live.innerHTML = html;
      refreshes++;
      body.dataset.refreshes = String(refreshes);
      refreshEl.textContent = "live · " + new Date().toLocaleTimeString();
      refreshEl.className = "refresh" + (r.ok ? "" : " stale");
    } catch (e) {
      refreshEl.textContent = "offline · retrying";
      refreshEl.className = "refresh stale";
    }
    if (body.dataset.page === "lanes") await drawCharts();
    timer = setTimeout(refresh, every);
  }

  // Charts: one per category, the unhandled backlog of its two lanes.
  const charts = new Map();
  async function drawCharts() {
    let h;
    try {
      const r = await fetch("/ui/api/lanes/history", { cache: "no-store" });
      if (!r.ok) return;
      h = await r.json();
    } catch (e) {
      return;
    }
    for (const el of document.querySelectorAll(".chart")) {
      const p = el.dataset.primary, b = el.dataset.backfill;
      const data = [h.times, h.unhandled[p] || h.times.map(() => null), h.unhandled[b] || h.times.map(() => null)];
      let u = charts.get(el);
      if (!u) {
        u = new uPlot({
          title: el.dataset.category,
          width: Math.max(260, el.clientWidth - 8),
          height: 170,
          scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(10, max * 1.1)] } },
          series: [
            {},
            { label: "primary", stroke: "#2563eb", width: 2 },
            { label: "backfill", stroke: "#d97706", width: 2, fill: "rgba(217,119,6,0.08)" },
          ],
          axes: [{}, { size: 60 }],
        }, data, el);
        charts.set(el, u);
      } else {
        u.setData(data);
      }
      const last = (col) => { for (let i = col.length - 1; i >= 0; i--) if (col[i] !== null) return col[i]; return null; };
      el.dataset.points = String(h.times.length);
      el.dataset.lastPrimary = String(last(data[1]));
      el.dataset.lastBackfill = String(last(data[2]));
    }
  }

  // Writes: confirm in the page, then POST JSON with the token header.
  document.addEventListener("click", async (ev) => {
    const btn = ev.target.closest("button[data-write]");
    if (!btn) return;
    ev.preventDefault();
    const payload = JSON.parse(btn.dataset.body || "{}");
    if (btn.dataset.toSelect) payload.to = document.getElementById(btn.dataset.toSelect).value;
    let question = btn.dataset.confirm || "Go ahead?";
    if (payload.to) question += " (to: " + payload.to + ")";
    if (!window.confirm(question)) return;
    btn.disabled = true;
    try {
      const r = await fetch(btn.dataset.write, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-Laneway-Token": tokenEl ? tokenEl.value : "" },
        body: JSON.stringify(payload),
        cache: "no-store",
      });
      const res = await r.json().catch(() => ({}));
      if (!r.ok) {
        flash("error", "Refused (" + r.status + "): " + (res.error || r.statusText));
        btn.disabled = false;
        return;
      }
      flash("ok", "Done: " + describe(btn.dataset.write, res));
      if (btn.dataset.after) {
        const link = document.createElement("a");
        link.href = btn.dataset.after;
        link.textContent = " back to the list";
        flashEl.appendChild(link);
      }
      if (live && body.dataset.live) refresh();
    } catch (e) {
      flash("error", "Request failed: " + e);
      btn.disabled = false;
    }
  });

  function describe(url, r) {
    if (url.endsWith("/dlq/replay")) return "replayed " + r.dlq_id + " from " + r.dlq_stream + " to " + r.target + " (new id " + r.new_id + ")";
    if (url.endsWith("/dlq/replay-all")) return "replayed " + r.replayed + " entries of " + r.dlq_stream + (r.skipped && r.skipped.length ? ", " + r.skipped.length + " kept" : "");
    if (url.endsWith("/dlq/purge")) return "purged " + r.purged + " entries of " + r.dlq_stream;
    if (url.endsWith("/outbox/retry")) return "reset " + r.reset + " outbox row(s) to pending";
    return JSON.stringify(r);
  }

  if (body.dataset.page === "lanes") drawCharts();
  if (live && body.dataset.live) timer = setTimeout(refresh, every);
})();
