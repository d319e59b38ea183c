// The connect page's figures: gzip bytes of everything it loads, and the time
// until its form accepts input in headless Chromium (median of 7 loads).
// `make page-figures` prints both; bench.mjs reuses them.
import { readFileSync, existsSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { startWorker, ROOT } from "../tests/support/harness.mjs";
import { launch } from "../tests/support/browser.mjs";

// Everything the hosted page loads before the wizard accepts input (a
// portal's embed loads less: embed.js instead of index.html, app.css and
// app.js). The admin views come after, only for callers who may read.
export const PAGE_FILES = ["www/index.html", "www/app.css", "www/app.js", "www/wizard.js", "www/pkg/snc_web.js", "www/pkg/snc_web_bg.wasm"];
// Everything the page loads up to its overview after a sign-in: the page's
// module draws the overview; the wizard's script and the admin views' module
// come only with their views.
export const OVERVIEW_FILES = PAGE_FILES.filter((p) => p !== "www/wizard.js");
export const VIEW_FILES = ["www/pkg/snc_admin.js", "www/pkg/snc_admin_bg.wasm"];

export function pageBytes(list = PAGE_FILES) {
  const files = list.map((p) => [p, join(ROOT, p)]).filter(([, f]) => existsSync(f));
  const each = files.map(([p, f]) => [p, gzipSync(readFileSync(f), { level: 9 }).length]);
  return { total: each.reduce((a, [, n]) => a + n, 0), each };
}

/**
 * Two times, each the median of 7 loads, from navigation start:
 * - the sign-in form (plain HTML) accepting input: `domInteractive`;
 * - the connect wizard's first field accepting input when a signed-in tab is
 *   loaded again (signed in through the form, then reloaded): the
 *   `snc-wizard-ready` mark, set once the wasm is loaded and the first step
 *   is drawn. The page draws from the tab's last GET /me and confirms it
 *   meanwhile; /settings is applied when it comes.
 */
export async function timeToInput() {
  const worker = await startWorker({ vars: { PULLS_PAUSED: "true" } });
  const browser = await launch();
  try {
    const signIn = [];
    const wizard = [];
    for (let i = 0; i < 7; i++) {
      const page = await browser.newPage();
      await page.goto(worker.url + "/#/connect");
      await page.locator("#token").waitFor({ state: "visible" });
      signIn.push(await page.evaluate(() => performance.getEntriesByType("navigation")[0].domInteractive));
      await page.locator("#token").fill(worker.adminToken);
      await page.locator("#token").press("Enter");
      await page.locator("#snc-name").waitFor({ state: "visible" });
      // Reloaded once the signed-in page has settled (its views loaded).
      await page.waitForLoadState("networkidle");
      await page.reload();
      await page.locator("#snc-name").waitFor({ state: "visible" });
      wizard.push(await page.evaluate(() => performance.getEntriesByName("snc-wizard-ready")[0].startTime));
      await page.close();
    }
    const median = (a) => [...a].sort((x, y) => x - y)[3];
    return { median_ms: median(signIn), wizard_median_ms: median(wizard), all_ms: signIn.map(Math.round), wizard_all_ms: wizard.map(Math.round) };
  } finally {
    await browser.close();
    await worker.stop();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const bytes = pageBytes();
  for (const [p, n] of bytes.each) console.log(`${p.padEnd(28)} ${String(n).padStart(7)} B gzip`);
  console.log(`connect page total             ${String(bytes.total).padStart(7)} B gzip (target <= 65536)`);
  const views = pageBytes(VIEW_FILES);
  for (const [p, n] of views.each) console.log(`${p.padEnd(28)} ${String(n).padStart(7)} B gzip`);
  console.log(`admin views, loaded with the first view that needs them ${String(views.total).padStart(7)} B gzip`);
  console.log(`page after sign-in gzip: ${pageBytes(OVERVIEW_FILES).total} B (up to its overview; target <= 65536)`);
  const t = await timeToInput();
  console.log(`time until the sign-in form accepts input: ${t.median_ms.toFixed(0)} ms median of 7 (target <= 150): ${t.all_ms.join(", ")}`);
  console.log(`time until the connect wizard accepts input (a signed-in tab reloaded): ${t.wizard_median_ms.toFixed(0)} ms median of 7 (target <= 150): ${t.wizard_all_ms.join(", ")}`);
}
