import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { startWorker } from "../support/harness.mjs";
import { launch, ARTIFACTS } from "../support/browser.mjs";

let worker, browser;
before(async () => {
  worker = await startWorker();
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await worker?.stop();
});

test("the page shows the version the worker's health endpoint returned", async () => {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  const healthSeen = page.waitForResponse((r) => r.url().endsWith("/api/v1/health"));
  await page.goto(worker.url + "/");
  const health = await (await healthSeen).json();
  const shown = page.locator("#version");
  await shown.locator("xpath=self::*[@data-state='ok']").waitFor({ timeout: 10_000 });
  assert.equal(await shown.textContent(), `v${health.version}`);
  assert.deepEqual(errors, []);
  await page.screenshot({ path: join(ARTIFACTS, "health.png") });
});
