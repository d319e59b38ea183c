// The hosted page's access, in Debian's Chromium against the worker
// (workerd): signing in with an API key (the page shows what its scopes
// allow), the Keys view (create with scopes, the key shown once, revoke), the
// Audit view, and signing in through Cloudflare Access without a token.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { join } from "node:path";
import { startWorker, ROOT } from "../support/harness.mjs";
import { startAccessTeam } from "../support/access.mjs";
import { launch, ARTIFACTS } from "../support/browser.mjs";

const AXE = readFileSync(join(ROOT, "node_modules/axe-core/axe.min.js"), "utf8");
let worker, team, browser;

before(async () => {
  team = await startAccessTeam();
  worker = await startWorker({ vars: { PULLS_PAUSED: "true", ...team.vars } });
  browser = await launch({ bypassCSP: true });
});
after(async () => {
  await browser?.close();
  await worker?.stop();
  await team?.close();
});

async function axe(page, what) {
  await page.addScriptTag({ content: AXE });
  const result = await page.evaluate(async () => (await window.axe.run(document, { resultTypes: ["violations"] })).violations.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`));
  assert.deepEqual(result, [], `axe-core violations on ${what}`);
}

async function signIn(page, credential, hash = "") {
  await page.goto(worker.url + "/" + hash);
  await page.getByLabel("Admin token or API key").fill(credential);
  await page.getByRole("button", { name: "Continue" }).click();
}

const asApi = (credential, path) => fetch(`${worker.url}/api/v1${path}`, { headers: { authorization: `Bearer ${credential}` } });

test("Keys view: create with scopes, the key shown once, signed in with it, revoked from the page", async () => {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await signIn(page, worker.adminToken, "#/keys");
  await page.getByRole("heading", { name: "API keys" }).waitFor();
  await page.getByText("Signed in with the admin token (admin)").waitFor();
  await axe(page, "the Keys view");

  // A bad request shows the API's field errors.
  await page.locator("form.key-form").getByLabel("Name").fill("reader");
  await page.getByLabel("read: every GET but the keys").uncheck();
  await page.getByRole("button", { name: "Create key" }).click();
  await page.getByRole("alert").filter({ hasText: "scopes:" }).waitFor();

  await page.getByLabel("read: every GET but the keys").check();
  await page.getByLabel("Expires").selectOption("30");
  await page.getByRole("button", { name: "Create key" }).click();
  const shown = page.getByRole("textbox", { name: "The key" });
  await shown.waitFor();
  const key = await shown.inputValue();
  assert.match(key, /^snck_[A-Za-z0-9_-]{43}$/);
  await page.getByText("Copy it now: it is not shown again.").waitFor();
  await page.getByRole("button", { name: "Copy key" }).click();
  const row = page.locator("tr", { hasText: "reader" });
  await row.waitFor();
  assert.match(await row.innerText(), /read/);
  await page.getByRole("button", { name: "I have stored it" }).click();
  assert.ok(!(await page.content()).includes(key), "gone from the page once stored");
  await page.reload();
  await page.getByRole("heading", { name: "API keys" }).waitFor();
  await page.locator("tr", { hasText: "reader" }).waitFor();
  assert.ok(!(await page.content()).includes(key), "never listed");
  assert.equal((await asApi(key, "/connections")).status, 200);

  // Signed in with the read key: connections and the audit log, no wizard, no keys.
  const reader = await browser.newPage();
  await signIn(reader, key);
  await reader.getByText("Signed in as reader (key; read)").waitFor();
  await reader.getByRole("heading", { name: "Overview" }).waitFor();
  const offered = await reader.getByRole("navigation", { name: "Views" }).getByRole("link").allTextContents();
  assert.deepEqual(offered, ["Overview", "Connections", "Alerts", "Forwarding", "Audit log"]);
  // The keys' address shows a reader the overview instead.
  await reader.goto(worker.url + "/#/keys");
  await reader.waitForURL(/#\/$/);
  await reader.getByRole("heading", { name: "Overview" }).waitFor();
  assert.equal(await reader.getByRole("heading", { name: "API keys" }).count(), 0);
  const reloaded = await browser.newPage();
  await signIn(reloaded, key, "#/connections");
  await reloaded.getByRole("heading", { name: "Connections" }).waitFor();

  // Revoked from the page: refused at once.
  await page.getByRole("button", { name: "Revoke reader" }).click();
  await page.getByRole("button", { name: "Revoke for good" }).click();
  await page.getByText("reader revoked.").waitFor();
  assert.equal((await asApi(key, "/connections")).status, 401);
  // The reader's tab, still open: its next call signs it out, whichever
  // view makes it (here the alerts view's, in the same document).
  const viewRefused = [];
  reader.on("response", (r) => { if (r.status() === 401) viewRefused.push(new URL(r.url()).pathname); });
  await reader.goto(worker.url + "/#/alerts");
  await reader.getByText("not a valid admin token or API key").waitFor();
  assert.deepEqual(viewRefused, ["/api/v1/alerts"], "signed out by the view's call, not a reload's /me");
  assert.equal(await reader.getByRole("navigation", { name: "Views" }).count(), 0, "the views are gone");
  await reader.close();
  // A tab reloaded with the revoked key: one refused call (its /me), not
  // one a view; the page asks for a credential again.
  const refused = [];
  reloaded.on("response", (r) => { if (r.status() === 401) refused.push(new URL(r.url()).pathname); });
  await reloaded.reload();
  await reloaded.getByText("not a valid admin token or API key").waitFor();
  await reloaded.waitForTimeout(1000);
  assert.deepEqual(refused, ["/api/v1/me"]);
  await reloaded.close();
  const again = await browser.newPage();
  await signIn(again, key);
  await again.getByText("not a valid admin token or API key").waitFor();
  await again.close();

  // The audit view shows what happened, newest first.
  await page.getByRole("navigation", { name: "Views" }).getByRole("link", { name: "Audit log" }).click();
  await page.getByRole("heading", { name: "Audit log" }).waitFor();
  await page.getByRole("button", { name: "Refresh the audit log" }).click();
  const audit = page.locator("table.audit tbody tr");
  await audit.first().waitFor();
  const rows = await audit.allInnerTexts();
  assert.match(rows[0], /credential\.refused/, "the revoked key's refusal is the newest");
  assert.ok(rows.some((r) => /key\.revoke/.test(r) && /admin token/.test(r)), rows.join("\n"));
  assert.ok(rows.some((r) => /key\.create/.test(r) && /succeeded/.test(r)));
  assert.ok(!rows.join("\n").includes(key));
  await page.screenshot({ path: join(ARTIFACTS, "keys-and-audit.png"), fullPage: true });
  assert.deepEqual(errors, []);
  await page.close();
});

test("behind Cloudflare Access the page signs in without asking for a token", async () => {
  const page = await browser.newPage();
  // What the Access edge adds to every request it lets through.
  await page.setExtraHTTPHeaders({ "cf-access-jwt-assertion": team.jwt({ claims: { email: "sec-lead@example.com" } }) });
  await page.goto(worker.url + "/");
  await page.getByText("Signed in as sec-lead@example.com (Cloudflare Access; admin)").waitFor();
  await page.getByRole("heading", { name: "Overview" }).waitFor();
  await page.getByRole("link", { name: "API keys" }).waitFor();
  assert.equal(await page.getByLabel("Admin token or API key").isVisible(), false);
  assert.equal(await page.getByRole("button", { name: "Sign out" }).count(), 0);
  await page.close();

  // A tampered assertion is not enough: the form stays.
  const other = await browser.newPage();
  await other.setExtraHTTPHeaders({ "cf-access-jwt-assertion": team.jwt({ claims: { aud: ["another-app"] } }) });
  await other.goto(worker.url + "/");
  await other.getByLabel("Admin token or API key").waitFor({ state: "visible" });
  await other.close();
});

test("Sinks view: add a webhook (its secret shown once), test it, see a refusal, disable and delete it", async () => {
  let answer = 204;
  const hits = [];
  const receiver = createServer((req, res) => { hits.push(req.headers["webhook-signature"]); res.writeHead(answer); res.end(answer === 204 ? "" : "token expired"); });
  await new Promise((ok) => receiver.listen(0, "127.0.0.1", ok));
  const page = await browser.newPage();
  try {
    await signIn(page, worker.adminToken, "#/sinks");
    await page.getByRole("heading", { name: "Forwarding" }).waitFor();
    const form = page.locator("form.sink-form");
    await form.getByLabel("Name").fill("SOC hook");
    await form.getByLabel("URL").fill("http://10.0.0.9/in");
    await form.getByRole("button", { name: "Add sink" }).click();
    await form.getByRole("alert").filter({ hasText: "url:" }).waitFor();
    await form.getByLabel("URL").fill(`http://127.0.0.1:${receiver.address().port}/in`);
    await form.getByRole("button", { name: "Add sink" }).click();
    const secret = page.getByRole("textbox", { name: "Signing secret" });
    await secret.waitFor();
    assert.match(await secret.inputValue(), /^whsec_/);
    await axe(page, "the page with the Sinks view");
    await page.getByRole("button", { name: "I have stored it" }).click();
    const row = page.locator("tr", { hasText: "SOC hook" });
    await row.waitFor();
    await page.getByRole("button", { name: "Test SOC hook" }).click();
    await page.getByText("SOC hook: the receiver accepted the test delivery.").waitFor();
    assert.equal(hits.length, 1);
    assert.match(hits[0], /^v1,/);
    answer = 401;
    await page.getByRole("button", { name: "Test SOC hook" }).click();
    await page.getByText("SOC hook: the receiver answered: token expired.").waitFor();
    await page.getByRole("button", { name: "Disable SOC hook" }).click();
    await row.locator("td", { hasText: "disabled" }).waitFor();
    await page.getByRole("button", { name: "Delete SOC hook" }).click();
    await page.getByText("SOC hook deleted.").waitFor();
    await page.locator("tr", { hasText: "SOC hook" }).waitFor({ state: "detached" });
    await page.screenshot({ path: join(ARTIFACTS, "sinks.png"), fullPage: true });
  } finally {
    await page.close();
    receiver.close();
  }
});
