// Shared by the browser tests: launch Debian's chromium through
// playwright-core with a fresh profile, and collect console errors.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const CHROMIUM = process.env.LANEWAY_CHROMIUM || "/usr/bin/chromium";

// The machine's network is closed: every switch that makes chromium call
// home is off.
const ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

export async function launch() {
  const profile = mkdtempSync(join(tmpdir(), "laneway-chromium-"));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, args: ARGS, viewport: { width: 1400, height: 900 },
  });
  const errors = [];
  let allowed = null; // a RegExp of console errors a step expects
  const watch = (page) => {
    page.on("console", (m) => {
      if (m.type() !== "error") return;
      if (allowed && allowed.test(m.text())) return;
      errors.push("console: " + m.text());
    });
    page.on("pageerror", (e) => errors.push("page error: " + e.message));
  };
  ctx.on("page", watch);
  for (const p of ctx.pages()) watch(p);
  return {
    ctx,
    errors,
    allow(re) { allowed = re; },
    async close() {
      await ctx.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

export function fail(msg) {
  throw new Error(msg);
}

export function log(...a) {
  console.log("[browser]", ...a);
}

// poll calls fn until it returns a truthy value or the deadline passes.
export async function poll(what, fn, timeoutMs = 60000, everyMs = 200) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) fail("timed out waiting for " + what);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

// run wraps a test body: exit 1 with the error, or with console errors.
export async function run(body) {
  let b;
  try {
    b = await launch();
    await body(b);
    if (b.errors.length) fail("console errors:\n" + b.errors.join("\n"));
    log("ok");
  } catch (e) {
    console.error("[browser] FAIL:", e && e.stack ? e.stack : e);
    process.exitCode = 1;
  } finally {
    if (b) await b.close();
  }
}
