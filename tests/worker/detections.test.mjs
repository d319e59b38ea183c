// Detections, in workerd against the simulator. Every rule's attack is
// planted twice, with a near miss below its threshold and one outside its
// window, in 7 days of benign noise at 50,000 events a day, before the
// connect: after the backfill every attack is exactly one alert and nothing
// else is (the simulator answers the ground truth of each planting). Then:
// re-reading raises nothing new, a live attack alerts within one pull (and
// the rules that judge by the inventory's earlier reading are planted), a
// worker killed mid-backfill gives the same alerts, the admin acknowledges
// and closes, the OCSF export carries the class's required fields, and the
// alerts leave with their connection.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, startSim } from "../support/harness.mjs";
import { client, waitFor } from "../support/pulls.mjs";
import { RULES, LIVE_RULES, plant, plantSuite, score, alertsOf as alertsIn } from "../support/truth.mjs";

const alertsOf = (id, query = "") => alertsIn(c, id, query);

let worker, c, sim, conn;
const expected = [];
before(async () => {
  sim = await startSim(["--days", "7", "--events-per-day", "50000", "--seed", "101"]);
  worker = await startWorker();
  c = client(worker);
});
after(async () => {
  if (process.env.SNC_DEBUG) console.log(worker?.logs().split("\n").filter((l) => /pull [0-9a-f]|failed|panic|alerts|error|Error/.test(l)).slice(-40).join("\n"));
  await worker?.stop();
  await sim?.stop();
});

test("every planted attack is one alert after the backfill; no near miss and no noise raises any", async () => {
  const now = Math.floor(Date.now() / 1000);
  expected.push(...await plantSuite(sim, now - 3 * 3600));
  assert.equal(expected.length, RULES.length * 2);
  const started = Date.now();
  conn = await c.connect(sim, "detections");
  await c.waitCaughtUp(conn.id, { timeoutMs: Number(process.env.SNC_WAIT_MS ?? 600_000) });
  const alerts = await alertsOf(conn.id);
  const s = score(expected, alerts);
  console.log(`detections: ${expected.length - s.missed.length}/${expected.length} planted attacks found, ${s.false.length} false alerts, ${s.duplicated.length} duplicated, ${(await c.connection(conn.id)).event_count} events in ${Math.round((Date.now() - started) / 1000)} s`);
  if (process.env.SNC_DEBUG) console.log(JSON.stringify({ false: s.false.slice(0, 30), duplicated: s.duplicated }, null, 0));
  assert.deepEqual(s, { missed: [], duplicated: [], false: [] });
  for (const a of alerts) {
    assert.match(a.id, /^al_[0-9a-f]{16}$/);
    assert.equal(a.status, "open");
    assert.ok(a.event_ids.length > 0 && a.attack.length > 0 && a.summary && a.title, JSON.stringify(a));
  }
  // Each attack counted whole, however its events fell across pages (the
  // planted sizes: see the simulator's scenarios).
  const whole = { failed_login_burst: 12, password_spray: 12, login_after_failures: 6, mass_delete: 120, bulk_export: 25 };
  for (const a of alerts.filter((x) => x.rule in whole)) {
    assert.equal(a.count, whole[a.rule], `${a.rule} ${a.actor ?? a.source_ip}: ${a.count} of ${whole[a.rule]}`);
  }
  const burst = alerts.find((a) => a.rule === "failed_login_burst");
  // The evidence reads back through the events API.
  const events = (await c.api("GET", `/api/v1/connections/${conn.id}/events?kind=login_failed&actor=${encodeURIComponent(burst.actor)}&limit=1000`)).json.events.map((e) => e.id);
  for (const id of burst.event_ids) assert.ok(events.includes(id), `${id} is an event of the connection`);
  assert.equal((await c.connection(conn.id)).open_alerts, alerts.length);
});

test("reading the same events again raises nothing new", async () => {
  const before = await alertsOf(conn.id);
  for (let i = 0; i < 2; i++) await c.pullOnce(conn.id);
  const after = await alertsOf(conn.id);
  assert.deepEqual(after.map((a) => [a.id, a.count]).sort(), before.map((a) => [a.id, a.count]).sort());
});

test("a live attack after the backfill alerts within one pull", async () => {
  const live = [];
  for (const rule of ["failed_login_burst", "admin_role_granted", "posture_drift"]) {
    live.push(...(await plant(sim, rule, "positive", Math.floor(Date.now() / 1000) - 300)).expect);
  }
  // Rules that judge by what the inventory read before: their attacks and
  // near misses (a dormant account's sign-in; one away 7 to 29 days; a
  // dormant account's failed sign-in) now that the connection has read it.
  for (const rule of LIVE_RULES) {
    for (const variant of ["positive", "below", "positive", "outside"]) {
      live.push(...(await plant(sim, rule, variant, Math.floor(Date.now() / 1000) - 240)).expect);
    }
  }
  assert.equal(live.length, 3 + 2 * LIVE_RULES.length);
  await c.pullOnce(conn.id);
  const alerts = await alertsOf(conn.id);
  const s = score([...expected, ...live], alerts);
  assert.deepEqual(s, { missed: [], duplicated: [], false: [] });
  const dormant = alerts.filter((a) => a.rule === "dormant_account_used");
  assert.equal(dormant.length, 2);
  for (const a of dormant) assert.match(a.summary, /previous sign-in was (3[5-9]|[4-7][0-9]) days earlier/, a.summary);
  const drift = (await alertsOf(conn.id, "&rule=posture_drift")).find((a) => a.summary.includes("480") && a.last_seen > new Date(Date.now() - 3600_000).toISOString());
  assert.equal(drift.severity, "high", "the session timeout check's own severity");
});

test("acknowledge and close, filters, paging, and the OCSF export with the class's required fields", async () => {
  const all = await alertsOf(conn.id);
  const [first, second] = all;
  const ack = await c.api("PATCH", `/api/v1/alerts/${first.id}`, { status: "acknowledged" });
  assert.equal(ack.status, 200, ack.text);
  assert.equal(ack.json.status, "acknowledged");
  assert.equal((await c.api("PATCH", `/api/v1/alerts/${second.id}`, { status: "closed" })).json.status, "closed");
  assert.equal((await c.connection(conn.id)).open_alerts, all.length - 2);
  assert.deepEqual((await alertsOf(conn.id, "&status=acknowledged")).map((a) => a.id), [first.id]);
  assert.equal((await c.api("PATCH", `/api/v1/alerts/${first.id}`, { status: "done" })).status, 422);
  assert.equal((await c.api("PATCH", `/api/v1/alerts/al_${"0".repeat(16)}`, { status: "closed" })).status, 404);
  assert.equal((await c.api("GET", "/api/v1/alerts?status=bogus")).status, 422);
  assert.equal((await c.api("GET", "/api/v1/alerts?rule=bogus")).status, 422);
  // Small pages walk every alert once.
  const seen = [];
  let cursor = null;
  do {
    const r = await c.api("GET", `/api/v1/alerts?connection_id=${conn.id}&limit=3${cursor ? `&cursor=${cursor}` : ""}`);
    seen.push(...r.json.alerts.map((a) => a.id));
    cursor = r.json.next_cursor;
  } while (cursor);
  assert.deepEqual([...seen].sort(), all.map((a) => a.id).sort());
  const nd = await fetch(`${worker.url}/api/v1/alerts.ndjson?connection_id=${conn.id}&format=ocsf`, { headers: { authorization: `Bearer ${worker.adminToken}` } });
  assert.equal(nd.status, 200);
  const lines = (await nd.text()).trim().split("\n").map((l) => JSON.parse(l));
  assert.equal(lines.length, all.length);
  // OCSF 1.1 Detection Finding (2004): its required attributes.
  for (const l of lines) {
    for (const k of ["activity_id", "category_uid", "class_uid", "finding_info", "metadata", "severity_id", "time", "type_uid", "status_id"]) assert.ok(l[k] !== undefined && l[k] !== null, `${k} missing`);
    assert.equal(l.class_uid, 2004);
    assert.equal(l.category_uid, 2);
    assert.equal(l.type_uid, 200401);
    assert.ok(l.finding_info.uid && l.finding_info.title);
    assert.ok(l.metadata.product.name && l.metadata.version);
    assert.ok(Number.isInteger(l.time) && l.time > 1e12);
  }
  assert.equal(lines.find((l) => l.finding_info.uid === first.id).status, "acknowledged");
});

test("deleting the connection takes its alerts", async () => {
  assert.equal((await c.api("DELETE", `/api/v1/connections/${conn.id}`)).status, 204);
  assert.deepEqual(await alertsOf(conn.id), []);
});

test("a worker killed in the middle of a backfill comes back with the same alerts, none twice", async () => {
  const small = await startSim(["--days", "3", "--events-per-day", "8000", "--seed", "102"]);
  const vars = { PULL_BUDGET_MS: "15000", PULL_MAX_CALLS: "4", PULL_PAGE_SIZE: "1000" };
  const first = await startWorker({ vars, keepPersist: true });
  let second;
  try {
    const truth = await plantSuite(small, Math.floor(Date.now() / 1000) - 3600);
    const w1 = client(first);
    const made = await w1.connect(small, "killed");
    await waitFor("backfill under way", async () => (await w1.connection(made.id)).event_count > 3000);
    await first.kill();
    second = await startWorker({ vars, persist: first.persist, adminToken: first.adminToken, encryptionKey: first.encryptionKey });
    const w2 = client(second);
    await w2.waitCaughtUp(made.id, { timeoutMs: 300_000 });
    const r = await w2.api("GET", `/api/v1/alerts?connection_id=${made.id}&limit=1000`);
    assert.deepEqual(score(truth, r.json.alerts), { missed: [], duplicated: [], false: [] });
  } finally {
    await second?.stop();
    await small.stop();
  }
});
