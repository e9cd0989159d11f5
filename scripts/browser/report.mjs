// Browser test of `laneway demo --report FILE.html`: the page opens from
// disk with no network, draws both runs on the latency chart and the
// backfill chart, and shows the summary table.
//   node report.mjs FILE.html
// Environment: SHOTS (a directory for the screenshot).
import { run, fail, log } from "./lib.mjs";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

const file = process.argv[2] || fail("usage: node report.mjs FILE.html");
const SHOTS = process.env.SHOTS || fail("SHOTS is not set");

await run(async (b) => {
  const page = await b.ctx.newPage();
  const fetched = [];
  page.on("request", (r) => { if (!r.url().startsWith("file:") && !r.url().startsWith("data:")) fetched.push(r.url()); });
  await page.goto(pathToFileURL(resolve(file)).href);
  await page.waitForSelector("body[data-rendered='1']", { timeout: 15000 });
  if (fetched.length) fail("the report fetched from the network: " + fetched.join(", "));
  for (const id of ["latency", "backfill"]) {
    if ((await page.$$(`#${id} canvas`)).length !== 1) fail(`no chart drawn in #${id}`);
  }
  const series = await page.evaluate(() => window.lanewayReport.runs.map((r) => ({
    lanes: r.lanes,
    latency: r.p99_ms.filter((v) => v !== null && v > 0).length,
    backfillEnd: r.backfill_pct[r.backfill_pct.length - 1],
  })));
  log("series", JSON.stringify(series));
  const lanes = series.map((s) => s.lanes).join(",");
  if (lanes !== "off,on") fail("want the lanes-off and lanes-on runs, got " + lanes);
  for (const s of series) {
    if (s.latency < 2) fail(`lanes ${s.lanes}: fewer than 2 latency points`);
    if (s.backfillEnd !== 100) fail(`lanes ${s.lanes}: the backfill ends at ${s.backfillEnd}%, not 100%`);
  }
  // uPlot's legend lists both series of the latency chart.
  const legend = await page.textContent("#latency .u-legend");
  if (!legend.includes("lanes off") || !legend.includes("lanes on")) fail("legend lacks a series: " + legend);
  const table = await page.textContent("#summary");
  if (!table.includes("primary latency p99 (ms)") || !table.includes("backfill drain (s)")) fail("summary table incomplete: " + table);
  await page.screenshot({ path: join(SHOTS, "demo-report.png"), fullPage: true });
  log("screenshot demo-report.png");
});
