// The connect wizard, the hosted page and the embedded element, in Debian's
// Chromium against the worker (workerd) and the simulator. Screenshots go to
// test-results/.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startPortal } from "../../demo/portal.mjs";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { startWorker, startSim, freePort, ROOT } from "../support/harness.mjs";
import { launch, ARTIFACTS } from "../support/browser.mjs";

const AXE = readFileSync(join(ROOT, "node_modules/axe-core/axe.min.js"), "utf8");
let worker, sim, simLegacy, browser, portal, portalUrl;

before(async () => {
  const portalPort = await freePort();
  portalUrl = `http://127.0.0.1:${portalPort}`;
  [sim, simLegacy] = await Promise.all([
    startSim(["--days", "8", "--events-per-day", "3000", "--seed", "41"]),
    startSim(["--days", "2", "--events-per-day", "200", "--seed", "42", "--access-lifespan", "3600"]),
  ]);
  worker = await startWorker({ vars: { ALLOWED_ORIGINS: portalUrl, PULL_PAGE_SIZE: "1000", PULL_MAX_CALLS: "3" } });
  // The demo portal itself: a connect key kept server-side, tickets at /ticket.
  portal = await startPortal({ connector: worker.url, adminToken: worker.adminToken, port: portalPort });
  // bypassCSP only so axe-core can be injected; the CSP itself is checked by a test below.
  browser = await launch({ bypassCSP: true });
});
after(async () => {
  await browser?.close();
  await worker?.stop();
  await Promise.all([sim?.stop(), simLegacy?.stop()]);
  await portal?.close();
});

async function openAdmin() {
  const page = await browser.newPage();
  const dialogs = [];
  page.on("dialog", (d) => { dialogs.push(d.message()); d.dismiss(); });
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  // The wizard's own address: a sign-in keeps it.
  await page.goto(worker.url + "/#/connect");
  await page.getByLabel("Admin token").fill(worker.adminToken);
  await page.getByRole("button", { name: "Continue" }).click();
  await page.getByRole("heading", { name: "Name the connection" }).waitFor();
  return { page, dialogs, errors };
}

/** Moves to another view through the page's navigation. */
async function view(page, label) {
  await page.getByRole("navigation", { name: "Views" }).getByRole("link", { name: label, exact: true }).click();
  await page.getByRole("heading", { name: label, level: 2 }).waitFor();
}

async function axe(page, what) {
  await page.addScriptTag({ content: AXE });
  const result = await page.evaluate(async () => (await window.axe.run(document, { resultTypes: ["violations"] })).violations.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`));
  assert.deepEqual(result, [], `axe-core violations on ${what}`);
}

async function shot(page, name) {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

async function deleteAll() {
  const h = { authorization: `Bearer ${worker.adminToken}` };
  const { connections } = await (await fetch(`${worker.url}/api/v1/connections`, { headers: h })).json();
  for (const c of connections) await fetch(`${worker.url}/api/v1/connections/${c.id}`, { method: "DELETE", headers: h });
}

test("pages are served with a Content-Security-Policy", async () => {
  const r = await fetch(worker.url + "/");
  const csp = r.headers.get("content-security-policy");
  assert.match(csp, /default-src 'self'/);
  assert.match(csp, /script-src 'self' 'wasm-unsafe-eval'/);
  assert.match(csp, /frame-ancestors 'none'/);
  assert.equal(r.headers.get("x-content-type-options"), "nosniff");
  // Only the worker serves HTML (wrangler.toml runs it first for "/"): every
  // other way to name the page redirects there instead of skipping the CSP.
  for (const p of ["/index.html", "/index", "//"]) {
    const other = await fetch(worker.url + p, { redirect: "manual" });
    assert.equal(other.status, 307, p);
    assert.equal(other.headers.get("location"), "/", p);
  }
  // Scripts and wasm come straight from the asset store, with www/_headers:
  // public files any portal may load; the API keeps its ALLOWED_ORIGINS.
  for (const p of ["/embed.js", "/wizard.js", "/pkg/snc_web.js", "/pkg/snc_web_bg.wasm"]) {
    const f = await fetch(worker.url + p, { headers: { origin: "https://portal.example" } });
    assert.equal(f.status, 200, p);
    assert.equal(f.headers.get("access-control-allow-origin"), "*", p);
    assert.equal(f.headers.get("x-content-type-options"), "nosniff", p);
  }
  const api = await fetch(worker.url + "/api/v1/health", { headers: { origin: "https://portal.example" } });
  assert.equal(api.headers.get("access-control-allow-origin"), null, "the API is not opened by the static files' headers");
});

test("OAuth wizard: every step, live errors, connect, status with the backfill progressing", async () => {
  const { page, errors } = await openAdmin();
  await axe(page, "the first step");
  await shot(page, "wizard-1-name");
  // Live validation from the core in wasm: the same message the API gives.
  await page.getByRole("button", { name: "Next" }).click();
  const name = page.getByLabel("Connection name");
  assert.equal(await name.getAttribute("aria-invalid"), "true");
  assert.match(await page.locator("#snc-name-error").textContent(), /Give the connection a name/);
  await name.fill("Production");
  assert.equal(await name.getAttribute("aria-invalid"), null, "fixed as the admin types");
  await page.getByRole("button", { name: "Next" }).click();
  await page.getByRole("heading", { name: "How to connect" }).waitFor();
  assert.ok(await page.getByLabel("Connect using OAuth token (recommended)").isChecked());
  await axe(page, "the method step");
  await shot(page, "wizard-2-method");
  await page.getByRole("button", { name: "Next" }).click();
  await page.getByLabel("User ID").fill(sim.username);
  await page.getByLabel("Password").fill(sim.password);
  const url = page.getByLabel("Instance URL");
  await url.fill("https://169.254.169.254/latest");
  await url.blur();
  const apiAnswer = await (await fetch(`${worker.url}/api/v1/validate`, { method: "POST", headers: { authorization: `Bearer ${worker.adminToken}`, "content-type": "application/json" }, body: JSON.stringify({ instance_url: "https://169.254.169.254/latest" }) })).json();
  const serverMessage = apiAnswer.errors.find((e) => e.field === "instance_url").message;
  assert.equal(await page.locator("#snc-instance_url-error").textContent(), serverMessage, "browser and worker say the same");
  assert.equal(await url.getAttribute("aria-describedby"), "snc-instance_url-error snc-instance_url-hint");
  await shot(page, "wizard-3-basic-error");
  await url.fill(sim.instance_url);
  await page.getByRole("button", { name: "Next" }).click();
  await page.getByRole("heading", { name: "OAuth details" }).waitFor();
  await page.getByLabel("Client ID").fill(sim.client_id);
  await page.getByLabel("Client secret").fill(sim.client_secret);
  await axe(page, "the OAuth step");
  await page.getByRole("button", { name: "Next" }).click();
  await page.getByRole("heading", { name: "Connect", exact: true }).waitFor();
  await shot(page, "wizard-4-connect");
  await page.getByRole("button", { name: "Connect", exact: true }).click();
  await page.getByRole("heading", { name: "Status" }).waitFor();
  assert.equal(await page.locator(".snc-status [data-status]").textContent(), "Connected");
  assert.match(await page.locator(".snc-status").textContent(), /3,600 s/, "the short-lifespan warning is shown");
  const bar = page.locator(".snc-status progress");
  const first = Number(await bar.getAttribute("value"));
  await page.waitForFunction((v) => Number(document.querySelector(".snc-status progress")?.getAttribute("value")) > v, first, { timeout: 30_000 });
  await shot(page, "wizard-5-status");
  await axe(page, "the status step and the connections list");
  // The hosted list shows it too, and the activity view draws a chart.
  await view(page, "Connections");
  await page.getByRole("button", { name: "Activity Production" }).click();
  await page.locator(".chart svg rect").first().waitFor();
  await shot(page, "admin-activity");
  assert.deepEqual(errors, []);
  await page.close();
  await deleteAll();
});

test("a server error is shown at the step it concerns", async () => {
  const { page } = await openAdmin();
  await page.getByLabel("Connection name").fill("Wrong password");
  await page.getByRole("button", { name: "Next" }).click();
  await page.getByLabel("Connect using user name and password only (legacy)").check();
  await page.getByRole("button", { name: "Next" }).click();
  await page.getByLabel("User ID").fill(simLegacy.username);
  await page.getByLabel("Password").fill("not-the-password");
  await page.getByLabel("Instance URL").fill(simLegacy.instance_url);
  await page.getByRole("button", { name: "Next" }).click();
  await page.getByRole("button", { name: "Connect", exact: true }).click();
  await page.getByRole("heading", { name: "Basic details" }).waitFor();
  const alert = page.getByRole("alert");
  await alert.waitFor();
  assert.match(await alert.textContent(), /credentials_rejected/);
  assert.match(await alert.textContent(), /password/);
  await shot(page, "wizard-server-error");
  await page.close();
});

test("legacy wizard, completed with the keyboard alone", async () => {
  const { page, errors } = await openAdmin();
  const k = page.keyboard;
  await page.getByLabel("Connection name").focus();
  await k.type("Legacy account");
  await k.press("Enter");
  await page.getByRole("heading", { name: "How to connect" }).waitFor();
  await k.press("Tab"); // into the radio group
  await k.press("ArrowDown"); // client credentials
  await k.press("ArrowDown"); // legacy
  await k.press("Enter");
  await page.getByRole("heading", { name: "Basic details" }).waitFor();
  await k.press("Tab");
  await k.type(simLegacy.username);
  await k.press("Tab"); await k.type(simLegacy.password);
  await k.press("Tab"); await k.type(simLegacy.instance_url);
  await k.press("Enter");
  await page.getByRole("heading", { name: "Connect", exact: true }).waitFor();
  await k.press("Tab"); // Back
  await k.press("Tab"); // Connect
  assert.equal(await page.evaluate(() => document.activeElement.textContent), "Connect");
  await k.press("Enter");
  await page.getByRole("heading", { name: "Status" }).waitFor();
  assert.equal(await page.locator(".snc-status [data-status]").textContent(), "Connected");
  // Enter in a field draws the next step over it (its focusout fires
  // during the redraw): nothing may throw.
  assert.deepEqual(errors, []);
  await page.close();
  await deleteAll();
});

test("client-credentials wizard: no user ID or password asked, connects as the application's user", async () => {
  const { page, errors } = await openAdmin();
  await page.getByLabel("Connection name").fill("Hardened instance");
  await page.getByRole("button", { name: "Next" }).click();
  await page.getByLabel("Connect using OAuth client credentials").check();
  await axe(page, "the method step with three methods");
  await page.getByRole("button", { name: "Next" }).click();
  await page.getByRole("heading", { name: "Instance" }).waitFor();
  assert.equal(await page.getByLabel("User ID").count(), 0);
  assert.equal(await page.getByLabel("Password").count(), 0);
  await page.getByLabel("Instance URL").fill(simLegacy.instance_url);
  await page.getByRole("button", { name: "Next" }).click();
  await page.getByRole("heading", { name: "OAuth details" }).waitFor();
  await page.getByLabel("Client ID").fill(simLegacy.client_id);
  await page.getByLabel("Client secret").fill("not-the-secret");
  await page.getByRole("button", { name: "Next" }).click();
  await page.getByRole("button", { name: "Connect", exact: true }).click();
  // A refused secret sends the admin back to where the secret is typed.
  await page.getByRole("heading", { name: "OAuth details" }).waitFor();
  assert.match(await page.getByRole("alert").textContent(), /application user/);
  await page.getByLabel("Client secret").fill(simLegacy.client_secret);
  await page.getByRole("button", { name: "Next" }).click();
  await page.getByRole("button", { name: "Connect", exact: true }).click();
  await page.getByRole("heading", { name: "Status" }).waitFor();
  assert.equal(await page.locator(".snc-status [data-status]").textContent(), "Connected");
  await axe(page, "the status step");
  await shot(page, "wizard-client-credentials");
  // The posture read with the connect: its score in the list, the checks
  // failing first with what to do.
  await view(page, "Connections");
  await page.locator(".connection .meta", { hasText: /posture \d+\/100/ }).first().waitFor();
  await page.getByRole("button", { name: "Posture Hardened instance" }).click();
  await page.getByRole("heading", { name: "Posture of Hardened instance" }).waitFor();
  await page.locator(".posture-score", { hasText: /^Score/ }).waitFor();
  assert.match(await page.locator(".posture-score").textContent(), /^Score \d+\/100 · \d+ of \d+ checks failing/);
  const statuses = await page.locator("table.posture tbody tr td:first-child").allTextContents();
  assert.ok(statuses.length >= 30 && statuses[0] === "fail", statuses.join(","));
  assert.deepEqual(statuses.slice(statuses.indexOf("pass")).filter((s) => s === "fail"), [], "failing checks come first");
  assert.ok((await page.locator("table.posture tbody tr").first().locator("td").last().textContent()).length > 20, "a failing check says what to do");
  await axe(page, "the posture view");
  await shot(page, "admin-posture");
  await page.getByRole("button", { name: "Accounts Hardened instance" }).click();
  await page.getByRole("heading", { name: "Accounts of Hardened instance" }).waitFor();
  const caption = page.locator("table.accounts caption");
  for (let i = 0; i < 30 && /^0 accounts/.test(await caption.textContent()); i++) {
    await page.waitForTimeout(1000);
    await page.getByRole("button", { name: "Show" }).click();
  }
  assert.match(await caption.textContent(), /^[1-9]\d* accounts.*privileged/);
  await axe(page, "the accounts view");
  assert.deepEqual(errors, []);
  await page.close();
  await deleteAll();
});

test("alerts: listed across connections, evidence on demand, acknowledged in place, marked on the chart", async () => {
  const at = Math.floor(Date.now() / 1000) - 3600;
  const planted = await (await fetch(`${simLegacy.instance_url}/__sim/scenario`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ name: "password_spray", at }) })).json();
  const h = { authorization: `Bearer ${worker.adminToken}`, "content-type": "application/json" };
  const made = await (await fetch(`${worker.url}/api/v1/connections`, { method: "POST", headers: h, body: JSON.stringify({ name: "Watched", instance_url: simLegacy.instance_url, method: "basic", username: simLegacy.username, password: simLegacy.password }) })).json();
  const spray = async () => (await (await fetch(`${worker.url}/api/v1/alerts?connection_id=${made.id}&rule=password_spray`, { headers: h })).json()).alerts.find((a) => a.source_ip === planted.ip);
  // The whole spray: its alert grows to 12 once every page holding it is in.
  for (let i = 0; i < 60 && (await spray())?.count !== 12; i++) await new Promise((r) => setTimeout(r, 1000));
  const alert = await spray();
  assert.equal(alert?.count, 12, `the spray was detected whole: ${JSON.stringify(alert)}`);
  assert.equal(alert.event_ids.length, 12);
  const { page, errors } = await openAdmin();
  try {
    await view(page, "Connections");
    assert.match(await page.locator("li.connection", { hasText: "Watched" }).locator(".meta").textContent(), /[1-9]\d* open alerts?/);
    await view(page, "Alerts");
    const row = page.locator(`tr[data-alert="${alert.id}"]`);
    await row.waitFor();
    assert.match(await row.textContent(), /password_spray/);
    await page.getByRole("button", { name: `Evidence: ${alert.title}` }).click();
    await page.getByRole("heading", { name: `Evidence: ${alert.title}` }).waitFor();
    await page.locator(".evidence tbody tr").nth(11).waitFor();
    assert.equal(await page.locator(".evidence tbody tr").count(), 12);
    assert.equal(new URL(page.url()).hash, `#/alerts/${alert.id}`, "the address names the alert shown");
    await axe(page, "the alerts view with evidence");
    await shot(page, "admin-alerts");
    await page.getByRole("button", { name: `Acknowledge: ${alert.title}` }).click();
    await page.locator(`tr[data-alert="${alert.id}"]`).waitFor({ state: "detached" });
    assert.match(await page.getByRole("status").filter({ hasText: "acknowledged" }).first().textContent(), /acknowledged/);
    await page.locator("#al-status").selectOption("acknowledged");
    await page.getByRole("button", { name: "Show alerts" }).click();
    await page.locator(`tr[data-alert="${alert.id}"]`).waitFor();
    // Closed from the acknowledged list: it leaves it and shows among the closed.
    await page.getByRole("button", { name: `Close: ${alert.title}` }).click();
    await page.locator(`tr[data-alert="${alert.id}"]`).waitFor({ state: "detached" });
    await page.locator("#al-status").selectOption("closed");
    await page.getByRole("button", { name: "Show alerts" }).click();
    assert.match(await page.locator(`tr[data-alert="${alert.id}"]`).textContent(), /closed/);
    await axe(page, "the closed alerts");
    // The activity chart marks the day of the alert.
    await view(page, "Connections");
    await page.getByRole("button", { name: "Activity Watched" }).click();
    await page.locator(".chart svg .alert-mark").first().waitFor();
    assert.match(await page.locator(".chart svg").getAttribute("aria-label"), /alerts\)/);
    assert.deepEqual(errors, []);
  } finally {
    await page.close();
    await deleteAll();
  }
});

test("every view by its address: axe-clean, its heading and navigation named", async () => {
  const { page, errors } = await openAdmin();
  for (const [hash, label] of [["#/", "Overview"], ["#/connections", "Connections"], ["#/alerts", "Alerts"], ["#/sinks", "Forwarding"], ["#/keys", "API keys"], ["#/audit", "Audit log"], ["#/connect", "Connect ServiceNow"]]) {
    await page.goto("about:blank");
    await page.goto(worker.url + "/" + hash);
    await page.getByRole("heading", { name: label, level: 2 }).waitFor();
    await page.waitForLoadState("networkidle");
    await axe(page, `the view at ${hash}`);
    if (hash === "#/") await shot(page, "admin-overview");
  }
  assert.deepEqual(errors, []);
  await page.close();
});

test("a hostile connection name is shown as text and runs nothing", async () => {
  const { page, dialogs } = await openAdmin();
  const hostile = "<img src=x onerror=alert(1)>";
  await page.getByLabel("Connection name").fill(hostile);
  await page.getByRole("button", { name: "Next" }).click();
  await page.getByRole("button", { name: "Next" }).click();
  await page.getByLabel("User ID").fill(simLegacy.username);
  await page.getByLabel("Password").fill(simLegacy.password);
  await page.getByLabel("Instance URL").fill(simLegacy.instance_url);
  await page.getByRole("button", { name: "Next" }).click();
  await page.getByLabel("Client ID").fill(simLegacy.client_id);
  await page.getByLabel("Client secret").fill(simLegacy.client_secret);
  await page.getByRole("button", { name: "Next" }).click();
  await page.getByRole("button", { name: "Connect", exact: true }).click();
  await page.getByRole("heading", { name: "Status" }).waitFor();
  await view(page, "Overview");
  await page.locator("table a").filter({ hasText: hostile }).waitFor();
  await view(page, "Connections");
  await page.locator(".connections h3").filter({ hasText: hostile }).waitFor();
  await page.waitForTimeout(500);
  assert.equal(await page.locator("img").count(), 0, "no element made from the name");
  assert.deepEqual(dialogs, [], "no script ran");
  await shot(page, "admin-hostile-name");
  await page.close();
  await deleteAll();
});

test("the embedded element on a second origin connects with a portal's ticket and fires its event", async () => {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  const credentials = [];
  page.on("request", (r) => { const a = r.headers().authorization; if (a) credentials.push(a); });
  await page.goto(portalUrl + "/");
  const widget = page.locator("servicenow-connect");
  await widget.getByRole("heading", { name: "Name the connection" }).waitFor();
  await axe(page, "the demo portal");
  const accent = await widget.locator("button[type=submit]").evaluate((b) => getComputedStyle(b).backgroundColor);
  assert.equal(accent, "rgb(91, 42, 134)", "themed by the portal's --snc-accent");
  await axe(page, "the embedded wizard");
  // A ticket that has run out: the element fetches a new one from the
  // portal and carries on.
  await widget.evaluate((w) => { w.ticket = "snct_" + "x".repeat(43); });
  await widget.getByLabel("Connection name").fill("From the portal");
  await widget.getByRole("button", { name: "Next" }).click();
  await widget.getByRole("button", { name: "Next" }).click();
  await widget.getByLabel("User ID").fill(simLegacy.username);
  await widget.getByLabel("Password").fill(simLegacy.password);
  await widget.getByLabel("Instance URL").fill(simLegacy.instance_url);
  await widget.getByRole("button", { name: "Next" }).click();
  await widget.getByLabel("Client ID").fill(simLegacy.client_id);
  await widget.getByLabel("Client secret").fill(simLegacy.client_secret);
  await widget.getByRole("button", { name: "Next" }).click();
  await widget.getByRole("button", { name: "Connect", exact: true }).click();
  await page.getByText("connected: From the portal (connected)").waitFor();
  await shot(page, "embed-connected");
  assert.deepEqual(errors, []);
  assert.ok(credentials.length >= 3, `${credentials.length} calls`);
  assert.ok(credentials.every((a) => /^Bearer snct_[A-Za-z0-9_-]{43}$/.test(a)), "the page only ever sent connect tickets");
  assert.ok(credentials.includes("Bearer snct_" + "x".repeat(43)) && new Set(credentials).size >= 3, "the run-out ticket was replaced");
  const html = await page.content();
  assert.ok(!html.includes(worker.adminToken), "no admin token in the portal's page");
  // Only the portal's own visitors get tickets.
  const outsider = await fetch(`${portalUrl}/ticket`, { method: "POST" });
  assert.equal(outsider.status, 401);
  await page.close();
  await deleteAll();
});
