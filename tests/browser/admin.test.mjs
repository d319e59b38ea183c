// The hosted page's behaviour under change and failure, in Debian's Chromium
// against the worker (workerd) and the simulator: the list updates in place
// (an open form keeps what is typed), every action shows its real outcome,
// the wizard's progress survives a failed request, and the connector being
// down is told apart from ServiceNow's problems.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, startSim } from "../support/harness.mjs";
import { client, waitFor } from "../support/pulls.mjs";
import { launch } from "../support/browser.mjs";
import { startElastic } from "../support/receivers.mjs";

let worker, sim, simWizard, browser, c, conn;

before(async () => {
  [sim, simWizard] = await Promise.all([
    startSim(["--days", "1", "--events-per-day", "200", "--seed", "51"]),
    startSim(["--days", "2", "--events-per-day", "2000", "--seed", "52"]),
  ]);
  worker = await startWorker({ vars: { PULL_PAGE_SIZE: "500", PULL_MAX_CALLS: "2" } });
  c = client(worker);
  conn = await c.connect(sim, "Listed");
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await worker?.stop();
  await Promise.all([sim?.stop(), simWizard?.stop()]);
});

/** Signs in at the view `hash` names (a sign-in keeps the address). */
async function openAdmin(hash = "#/connections") {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(worker.url + "/" + hash);
  await page.getByLabel("Admin token or API key").fill(worker.adminToken);
  await page.getByRole("button", { name: "Continue" }).click();
  if (hash === "#/connections") await page.locator("li.connection", { hasText: "Listed" }).waitFor();
  return { page, errors };
}

test("an open reconnect form and a delete confirmation survive the list's refreshes", async () => {
  const { page, errors } = await openAdmin();
  await page.getByRole("button", { name: "Reconnect Listed" }).click();
  const pw = page.locator("li.connection", { hasText: "Listed" }).getByLabel("Password");
  await pw.fill("half-typed");
  // The list refreshes every 3 s: two refreshes pass.
  await page.waitForTimeout(7000);
  assert.equal(await pw.inputValue(), "half-typed", "what was typed is still there");
  assert.equal(await pw.evaluate((e) => e === document.activeElement), true, "and keeps the focus");
  await page.getByRole("button", { name: "Delete Listed" }).click();
  await page.waitForTimeout(3500);
  assert.equal(await page.getByRole("alertdialog").count(), 1, "the confirmation is still open");
  await page.getByRole("button", { name: "Keep it" }).click();
  assert.deepEqual(errors, []);
  await page.close();
});

test("a sink's dead letters: counted in its row, listed with the receiver's reason, sent again once the receiver is mended", async () => {
  // An Elastic whose mapping refuses the fifth document it sees, until mended.
  const { es, url, close } = await startElastic({ poisonAt: 5 });
  try {
    const made = await c.api("POST", "/api/v1/sinks", { name: "SIEM", kind: "elastic", url, api_key: "k", index: "logs-servicenow-default", format: "ecs", streams: ["events"], connection_ids: null });
    assert.equal(made.status, 201, made.text);
    const sink = made.json;
    // New events after the sink's creation reach it with the next pull.
    await sim.control("insert", { table: "sysevent", count: 20 });
    assert.equal((await c.api("POST", `/api/v1/connections/${conn.id}/pull`)).status, 202);
    await waitFor("the dead letter", async () => (await c.api("GET", `/api/v1/sinks/${sink.id}`)).json.dead_letters === 1, 60_000);
    const { page, errors } = await openAdmin("#/sinks");
    const row = page.locator("tr", { hasText: "SIEM" });
    await row.waitFor();
    await page.getByRole("button", { name: "Show the dead letters of SIEM" }).click();
    const title = page.getByRole("heading", { name: "Dead letters of SIEM" });
    await title.waitFor();
    assert.equal(await title.evaluate((e) => e === document.activeElement), true, "the focus moves to the list");
    const section = page.getByRole("region", { name: "Dead letters of SIEM" });
    const letter = section.locator("tbody tr");
    assert.equal(await letter.count(), 1);
    const text = await letter.innerText();
    assert.ok(text.includes(es.poison.split(":").pop()), `${text} names ${es.poison}`);
    assert.match(text, /400/);
    assert.match(text, /failed to parse field/);
    es.mended = true;
    await page.getByRole("button", { name: "Send the dead letters of SIEM again" }).click();
    await page.getByRole("status").filter({ hasText: "The dead letters of SIEM are sent again" }).waitFor();
    await waitFor("the mended receiver took it", async () => (await c.api("GET", `/api/v1/sinks/${sink.id}/dead_letters`)).json.dead_letters.length === 0, 60_000);
    assert.deepEqual(errors, []);
    await page.close();
    assert.equal((await c.api("DELETE", `/api/v1/sinks/${sink.id}`)).status, 204);
  } finally {
    await close();
  }
});

test("a failing action shows its error, not success", async () => {
  const { page } = await openAdmin();
  const problem = (status, code, title) => ({ status, contentType: "application/problem+json", body: JSON.stringify({ type: "x", title, status, detail: "Try again.", code }) });
  await page.route("**/api/v1/connections/*/pull", (route) => route.fulfill(problem(500, "internal", "Something went wrong on our side")));
  await page.getByRole("button", { name: "Pull now Listed" }).click();
  await page.getByRole("status").filter({ hasText: "Pull now Listed failed: Something went wrong on our side." }).waitFor();
  await page.route(`**/api/v1/connections/${conn.id}`, (route) => (route.request().method() === "PATCH" ? route.fulfill(problem(404, "not_found", "Not found")) : route.fallback()));
  await page.getByRole("button", { name: "Disable Listed" }).click();
  await page.getByRole("status").filter({ hasText: "Disable Listed failed: Not found." }).waitFor();
  assert.equal((await c.connection(conn.id)).enabled, true, "nothing changed");
  await page.close();
});

test("the wizard's progress survives failed requests and says it is retrying; the connector being down is its own problem", async () => {
  const { page, errors } = await openAdmin("#/connect");
  const fill = async (name) => {
    await page.getByLabel("Connection name").fill(name);
    await page.getByRole("button", { name: "Next" }).click();
    await page.getByRole("button", { name: "Next" }).click();
    await page.getByLabel("User ID").fill(simWizard.username);
    await page.getByLabel("Password", { exact: true }).fill(simWizard.password);
    await page.getByLabel("Instance URL").fill(simWizard.instance_url);
    await page.getByRole("button", { name: "Next" }).click();
    await page.getByLabel("Client ID").fill(simWizard.client_id);
    await page.getByLabel("Client secret").fill(simWizard.client_secret);
    await page.getByRole("button", { name: "Next" }).click();
  };
  // The connector itself unreachable at connect: not a ServiceNow problem,
  // and the admin stays where they were.
  await page.route("**/api/v1/connections", (route) => (route.request().method() === "POST" ? route.abort("connectionrefused") : route.fallback()));
  await fill("Progress");
  await page.getByRole("button", { name: "Connect", exact: true }).click();
  await page.getByText("The connector could not be reached").waitFor();
  await page.getByText("Code: connector_unreachable").waitFor();
  assert.equal(await page.getByRole("heading", { name: "Connect", exact: true }).count(), 1, "still on the Connect step");
  assert.equal(await page.getByText("instance_unreachable").count(), 0);
  await page.unroute("**/api/v1/connections");
  // Connected; the first progress reads fail, then the connector answers.
  let failed = 0;
  await page.route("**/api/v1/connections/*", (route) => {
    if (route.request().method() === "GET" && failed < 2) {
      failed++;
      return route.abort("connectionrefused");
    }
    return route.fallback();
  });
  await page.getByRole("button", { name: "Connect", exact: true }).click();
  await page.getByText("The connector could not be reached. Trying again in 2 s.").waitFor();
  await page.getByText(/The last \d+ days are in\.|The last 7 days are in\./).waitFor({ timeout: 120_000 });
  assert.equal(failed, 2);
  assert.deepEqual(errors, []);
  await page.close();
});

test("a first visit and a sign-in log no console error: no /me is asked without a credential where Access does not sign in", async () => {
  const page = await browser.newPage();
  const errors = [];
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  page.on("pageerror", (e) => errors.push(e.message));
  const asked = [];
  page.on("request", (r) => { if (new URL(r.url()).pathname === "/api/v1/me") asked.push(r.headers().authorization ?? null); });
  await page.goto(worker.url + "/");
  await page.locator("#version[data-state=ok]").waitFor();
  await page.getByLabel("Admin token or API key").waitFor();
  await page.waitForTimeout(1000);
  assert.deepEqual(asked, [], "no /me before a credential");
  await page.getByLabel("Admin token or API key").fill(worker.adminToken);
  await page.getByRole("button", { name: "Continue" }).click();
  // The overview first: its list of connections, and the page's title.
  await page.locator("table a", { hasText: "Listed" }).waitFor();
  assert.equal(await page.title(), "Overview · ServiceNow connector");
  assert.equal(asked.length, 1, "one /me, with the credential");
  assert.ok(asked[0]?.startsWith("Bearer "));
  assert.deepEqual(errors, []);
  await page.close();
});

test("every view loads by its own address with no console error, and a link names a connection or an alert", async () => {
  // An alert to link to: a password spray an hour ago, in the backfill of
  // a new connection.
  const at = Math.floor(Date.now() / 1000) - 3600;
  const planted = await (await fetch(`${simWizard.instance_url}/__sim/scenario`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ name: "password_spray", at }) })).json();
  // The wizard's test connected this instance's user already: that
  // connection goes first (one instance and user, one connection).
  for (const other of (await c.api("GET", "/api/v1/connections")).json.connections.filter((x) => x.name === "Progress")) {
    assert.ok([202, 204].includes((await c.api("DELETE", `/api/v1/connections/${other.id}`)).status));
  }
  const sprayed = await c.connect(simWizard, "Sprayed");
  let alert;
  await waitFor("the spray's alert", async () => {
    alert = (await c.api("GET", `/api/v1/alerts?connection_id=${sprayed.id}&rule=password_spray`)).json.alerts.find((a) => a.source_ip === planted.ip);
    return alert;
  }, 120_000);
  const one = await c.api("GET", `/api/v1/alerts/${alert.id}`);
  assert.equal(one.status, 200);
  assert.equal(one.json.id, alert.id);
  assert.equal((await c.api("GET", "/api/v1/alerts/al_0000000000000000")).status, 404);

  const page = await browser.newPage();
  const errors = [];
  page.on("console", (m) => { if (m.type() === "error") errors.push(`${page.url()}: ${m.text()}`); });
  page.on("pageerror", (e) => errors.push(`${page.url()}: ${e.message}`));
  page.on("response", (r) => { if (r.status() >= 400) errors.push(`${r.status()} ${r.url()}`); });
  await page.goto(worker.url + "/");
  await page.getByLabel("Admin token or API key").fill(worker.adminToken);
  await page.getByRole("button", { name: "Continue" }).click();
  await page.getByRole("heading", { name: "Overview", level: 2 }).waitFor();
  const views = [
    ["#/", "Overview"],
    ["#/connect", "Connect ServiceNow"],
    ["#/connections", "Connections"],
    ["#/alerts", "Alerts"],
    ["#/sinks", "Forwarding"],
    ["#/keys", "API keys"],
    ["#/audit", "Audit log"],
  ];
  for (const [hash, label] of views) {
    // A fresh load of the address in the same tab (it keeps its sign-in).
    await page.goto("about:blank");
    await page.goto(worker.url + "/" + hash);
    await page.getByRole("heading", { name: label, level: 2 }).waitFor();
    const current = page.getByRole("navigation", { name: "Views" }).locator("[aria-current=page]");
    assert.equal(await current.textContent(), label, hash);
    assert.equal(await page.locator("section.view:not([hidden])").count(), 1, `${hash}: one view shown`);
    await page.waitForLoadState("networkidle");
  }
  // Within one document: the navigation shows one view at a time and moves
  // the focus to its heading; the back button goes where the admin was.
  await page.goto("about:blank");
  await page.goto(worker.url + "/#/");
  await page.getByRole("heading", { name: "Overview", level: 2 }).waitFor();
  for (const label of ["Alerts", "Audit log", "Connections"]) {
    await page.getByRole("navigation", { name: "Views" }).getByRole("link", { name: label, exact: true }).click();
    await page.waitForFunction((l) => document.activeElement?.textContent === l, label);
    assert.equal(await page.locator("section.view:not([hidden])").count(), 1, `${label}: one view shown`);
    assert.equal(await page.locator("section.view:not([hidden]) h2").textContent(), label);
  }
  await page.goBack();
  await page.getByRole("heading", { name: "Audit log", level: 2 }).waitFor({ state: "visible" });
  assert.equal(new URL(page.url()).hash, "#/audit");
  // A connection's address: its activity drawn, the focus on it.
  await page.goto("about:blank");
  await page.goto(`${worker.url}/#/connections/${conn.id}`);
  await page.locator(".chart svg").first().waitFor();
  assert.equal(await page.evaluate(() => document.activeElement?.textContent), "Activity of Listed");
  // An alert's address: its evidence, read on its own.
  await page.goto("about:blank");
  await page.goto(`${worker.url}/#/alerts/${alert.id}`);
  await page.getByRole("heading", { name: `Evidence: ${alert.title}` }).waitFor();
  await page.locator(".evidence tbody tr").first().waitFor();
  // From the overview, the alert's link leads there too.
  await page.goto("about:blank");
  await page.goto(worker.url + "/#/");
  await page.getByRole("link", { name: alert.title }).first().click();
  await page.getByRole("heading", { name: `Evidence: ${alert.title}` }).waitFor();
  assert.equal(new URL(page.url()).hash, `#/alerts/${alert.id}`);
  // An address that names no view shows the overview, and says so in the bar.
  await page.goto("about:blank");
  await page.goto(worker.url + "/#/nowhere");
  await page.getByRole("heading", { name: "Overview", level: 2 }).waitFor();
  assert.equal(new URL(page.url()).hash, "#/");
  // At 1,366 px the alerts' table fits the page: no sideways scrolling.
  await page.setViewportSize({ width: 1366, height: 768 });
  await page.goto("about:blank");
  await page.goto(worker.url + "/#/alerts");
  await page.locator(`tr[data-alert="${alert.id}"]`).waitFor();
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= 1366), "no horizontal scroll at 1,366 px");
  const rowHeight = await page.locator(`tr[data-alert="${alert.id}"]`).evaluate((r) => r.getBoundingClientRect().height);
  assert.ok(rowHeight < 160, `an alert's row is ${rowHeight} px tall`);
  assert.deepEqual(errors, []);
  await page.close();
});
