// Browser test of the dashboard, one step per run (the Go test in
// cli/internal/e2e prepares the state each step needs, then runs it):
//   node dashboard.mjs lanes|dlq|pages
// Environment: BASE (http://host:port), TOKEN (the write token), SHOTS
// (a directory for screenshots), and per step the values to expect.
import { run, poll, fail, log } from "./lib.mjs";
import { join } from "node:path";

const BASE = process.env.BASE || fail("BASE is not set");
const TOKEN = process.env.TOKEN || "";
const SHOTS = process.env.SHOTS || fail("SHOTS is not set");
const step = process.argv[2];

async function shot(page, name) {
  await page.screenshot({ path: join(SHOTS, name), fullPage: true });
  log("screenshot", name);
}

// refreshed waits until the page's live part has been replaced again.
async function refreshed(page) {
  const n = Number(await page.evaluate(() => document.body.dataset.refreshes || "0"));
  await page.waitForFunction((n) => Number(document.body.dataset.refreshes || "0") > n, n, { timeout: 30000 });
}

const steps = {
  // A backfill drains while the page watches: the lane's unhandled count
  // falls to 0 across refreshes, the drain row shows a rate, and the chart
  // takes new samples whose last backfill value falls too.
  async lanes(b) {
    const stream = process.env.STREAM || "customer:backfill";
    const category = process.env.CATEGORY || "customer";
    const page = await b.ctx.newPage();
    await page.goto(BASE + "/ui/lanes");
    const cell = `table.lanes tr[data-stream="${stream}"] td.unhandled`;
    const chart = `.chart[data-category="${category}"]`;
    const readings = [];
    const charts = [];
    let sawRate = false, shotTaken = false;
    const read = async () => {
      const v = Number((await page.textContent(cell)).trim());
      readings.push(v);
      const c = await page.$eval(chart, (el) => ({ points: Number(el.dataset.points || "0"), last: el.dataset.lastBackfill }));
      charts.push(c);
      const rate = await page.$$eval(`table.drains tr[data-stream="${stream}"] td.rate`, (els) => els.map((e) => parseFloat(e.textContent)));
      if (rate.length && rate[0] > 0) sawRate = true;
      return v;
    };
    await page.waitForSelector(chart + " canvas", { timeout: 30000 });
    // The page shows the sampler's last snapshot, which may predate the
    // backlog by one interval: wait for a positive reading first.
    let first = await read();
    for (let i = 0; !(first > 0) && i < 10; i++) {
      await refreshed(page);
      first = await read();
    }
    if (!(first > 0)) fail(`${stream} showed no backlog in ${readings.length} readings (${readings.join(", ")}); the test expects one`);
    for (let i = 0; i < 200; i++) {
      await refreshed(page);
      const v = await read();
      log(`${stream} unhandled ${v}, chart points ${charts.at(-1).points} last ${charts.at(-1).last}`);
      if (!shotTaken && v > 0 && v < Math.max(...readings) && sawRate) {
        await shot(page, "dashboard-lanes.png");
        shotTaken = true;
      }
      if (v === 0 && Number(charts.at(-1).last) === 0) break;
    }
    if (readings.at(-1) !== 0) fail("the backlog never reached 0: " + readings.join(", "));
    const peak = Math.max(...readings);
    const between = readings.filter((v) => v > 0 && v < peak);
    if (between.length === 0) fail("never saw the backlog part-way down: " + readings.join(", "));
    if (!sawRate) fail("the drain table never showed a positive rate");
    const lasts = charts.map((c) => Number(c.last));
    if (!(Math.max(...lasts) > 0 && lasts.at(-1) === 0)) fail("the chart's backfill series did not fall to 0: " + lasts.join(", "));
    if (!(charts.at(-1).points > charts[0].points)) fail("the chart took no new samples");
    if (!shotTaken) await shot(page, "dashboard-lanes.png");
    const engines = await page.textContent("table.engines");
    if (!engines.includes("matches the file")) fail("engine fingerprint not shown as matching: " + engines);
    log("readings", readings.join(" "));
  },

  // A dead letter is found with the filters, inspected (full reason and
  // payload), refused without the token, then replayed with it.
  async dlq(b) {
    const handler = process.env.HANDLER || fail("HANDLER is not set");
    const reason = process.env.REASON || fail("REASON is not set");
    const payload = process.env.PAYLOAD || fail("PAYLOAD is not set");
    const page = await b.ctx.newPage();

    await page.goto(BASE + "/ui/dlq?reason=" + encodeURIComponent("no such reason anywhere"));
    const none = await page.textContent("#live");
    if (!/0 shown of 0 matching/.test(none)) fail("a filter matching nothing still lists entries: " + none);

    await page.goto(BASE + "/ui/dlq?handler=" + encodeURIComponent(handler) + "&type=registered");
    const rows = await page.$$("table.entries tbody tr");
    if (rows.length !== 1) fail(`want 1 entry of ${handler}, the page lists ${rows.length}`);
    const rowText = await rows[0].textContent();
    if (!rowText.includes(reason)) fail("the entry row does not show the reason: " + rowText);
    await shot(page, "dashboard-dlq.png");

    await Promise.all([page.waitForURL(/\/ui\/dlq\/entry/), page.click("table.entries a.entry")]);
    const full = await page.textContent("#reason");
    if (!full.includes(reason)) fail("the entry page's reason lacks " + reason + ": " + full);
    const body = await page.textContent("#payload");
    if (!body.includes(payload)) fail("the payload lacks " + payload + ": " + body);
    if (body.includes("_dlq_metadata")) fail("the payload still holds _dlq_metadata");

    await shot(page, "dashboard-dlq-entry.png");

    // Without the token: the page asks, the server refuses, nothing moves.
    await page.fill("#token", "");
    b.allow(/status of 401/);
    page.once("dialog", (d) => d.accept());
    await page.click("#replay");
    await page.waitForSelector("#flash.error", { timeout: 15000 });
    const refused = await page.textContent("#flash");
    if (!refused.includes("Refused (401)")) fail("no refusal shown: " + refused);
    b.allow(null);
    const id = new URL(page.url()).searchParams.get("id");
    const still = await (await fetch(BASE + "/ui/api/dlq/list")).json();
    if (!still.entries.some((e) => e.dlq_id === id)) fail("the refused replay removed the entry");

    // The confirmation: dismissing it sends nothing.
    await page.fill("#token", TOKEN);
    let posts = 0;
    const count = (r) => { if (r.method() === "POST") posts++; };
    page.on("request", count);
    page.once("dialog", (d) => d.dismiss());
    await page.click("#replay");
    await page.evaluate(() => new Promise((r) => setTimeout(r, 0))); // the click handler has returned
    page.off("request", count);
    if (posts !== 0) fail("a dismissed confirmation still sent the write");

    let question = "";
    page.once("dialog", (d) => { question = d.message(); d.accept(); });
    await page.click("#replay");
    await page.waitForSelector("#flash.ok", { timeout: 15000 });
    const done = await page.textContent("#flash");
    if (!done.includes("replayed " + id)) fail("no replay confirmation: " + done);
    if (!question.includes(id)) fail("the confirmation did not name the entry: " + question);
    log(done);
  },

  // The outbox and doctor pages render their data; an abandoned row is
  // retried through the page.
  async pages(b) {
    const page = await b.ctx.newPage();
    const retryID = process.env.RETRY_ID || "";
    await page.goto(BASE + "/ui/outbox");
    await page.waitForSelector("table.counts");
    if (retryID) {
      const row = `table.abandoned tr[data-id="${retryID}"]`;
      await page.waitForSelector(row);
      const text = await page.textContent(row);
      if (!text.includes(process.env.LAST_ERROR || "")) fail("the abandoned row lacks its last error: " + text);
      await shot(page, "dashboard-outbox.png");
      await page.fill("#token", TOKEN);
      page.once("dialog", (d) => d.accept());
      await page.click(row + " button");
      await page.waitForSelector("#flash.ok", { timeout: 15000 });
      const done = await page.textContent("#flash");
      if (!done.includes("reset 1 outbox row")) fail("no retry confirmation: " + done);
      await poll("the row to leave the abandoned list", async () => (await page.$(row)) === null, 30000);
    } else {
      await shot(page, "dashboard-outbox.png");
    }
    await page.goto(BASE + "/ui/doctor");
    await page.waitForSelector("table.checks tr[data-check=engine]");
    const engine = await page.textContent("table.checks tr[data-check=engine]");
    if (!engine.includes("PASS")) fail("doctor's engine check did not pass: " + engine);
    await refreshed(page); // live: the checks run again
    await shot(page, "dashboard-doctor.png");
  },
};

if (!steps[step]) fail("unknown step " + step + ": use " + Object.keys(steps).join(", "));
await run(steps[step]);
