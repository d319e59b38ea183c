// Every release the product claims, in workerd against the simulator. An
// instance without the Batch API (releases before London, or the API turned
// off) gets the same posture, the same inventory and the same alerts as one
// with it, read table by table. And an instance that answers some calls 429
// and 5xx during the first backfill still has every backfilled page judged
// with the whole inventory: an impersonated admin and an inactive account's
// sign-in planted before the connect both alert.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, startSim } from "../support/harness.mjs";
import { client, waitFor } from "../support/pulls.mjs";
import { RULES, plant, plantSuite, score, alertsOf, instanceAccounts, accountsView, connectorAccounts } from "../support/truth.mjs";

const NO_FAULTS = { missed: [], duplicated: [], false: [] };
let worker, c, withBatch, without, faulty, failing;
before(async () => {
  // 400 people: every rule's four plantings each name a person of their own.
  const data = ["--days", "2", "--events-per-day", "2000", "--people", "400"];
  [withBatch, without, faulty, failing] = await Promise.all([
    startSim([...data, "--seed", "121", "--posture", "weak"]),
    startSim([...data, "--seed", "121", "--posture", "weak", "--batch-api-off"]),
    startSim([...data, "--seed", "122"]),
    startSim(["--days", "1", "--events-per-day", "300", "--people", "200", "--seed", "123"]),
  ]);
  worker = await startWorker();
  c = client(worker);
});
after(async () => {
  if (process.env.SNC_DEBUG) console.log(worker?.logs().split("\n").filter((l) => /pull [0-9a-f]|inventory|posture|failed|panic/.test(l)).slice(-60).join("\n"));
  await worker?.stop();
  await Promise.all([withBatch, without, faulty, failing].map((s) => s?.stop()));
});

const stats = async (sim) => (await fetch(`${sim.instance_url}/__sim/stats`)).json();
const statuses = (p) => Object.fromEntries(p.checks.map((k) => [k.id, [k.status, k.actual]]));

test("without the Batch API: the posture is scored, the inventory complete and every planted attack one alert, as with it", async () => {
  const start = Math.floor(Date.now() / 1000) - 3600;
  const [truthWith, truthWithout] = await Promise.all([plantSuite(withBatch, start), plantSuite(without, start)]);
  assert.equal(truthWithout.length, RULES.length * 2);
  const a = await c.connect(withBatch, "with-batch");
  const b = await c.connect(without, "without-batch");
  assert.ok(b.warnings.some((w) => w.code === "table_access_unchecked"), JSON.stringify(b.warnings));
  assert.ok(!a.warnings.some((w) => w.code === "table_access_unchecked"));
  await Promise.all([a, b].map((x) => c.waitCaughtUp(x.id, { timeoutMs: 300_000 })));

  const posture = async (id) => {
    const r = await c.api("GET", `/api/v1/connections/${id}/posture`);
    assert.equal(r.status, 200, r.text);
    return r.json;
  };
  const [pa, pb] = [await posture(a.id), await posture(b.id)];
  assert.deepEqual(statuses(pb), statuses(pa));
  assert.equal(pb.score, pa.score);
  assert.ok(pb.checks.filter((k) => k.status === "fail").length > 10, "the weak profile fails");
  assert.equal((await c.connection(b.id)).posture_score, pb.score);

  const want = await instanceAccounts(without);
  await waitFor("the inventory", async () => (await connectorAccounts(c, b.id)).length === want.size, 60_000);
  assert.deepEqual(accountsView(await connectorAccounts(c, b.id)), want);

  assert.deepEqual(score(truthWith, await alertsOf(c, a.id)), NO_FAULTS);
  assert.deepEqual(score(truthWithout, await alertsOf(c, b.id)), NO_FAULTS);
  // The connect's one try of the Batch API; nothing after it asks again.
  assert.equal((await stats(without)).batch_requests, 1);
});

test("pages backfilled while the instance answers some calls 429 and 5xx are judged with the whole inventory", async () => {
  const truth = await plantSuite(faulty, Math.floor(Date.now() / 1000) - 3600);
  const wanted = new Set(["admin_impersonated", "login_by_inactive_user"]);
  assert.ok(truth.filter((e) => wanted.has(e.rule)).length === 4);
  await faulty.control("conditions", { rate_limit_fraction: 0.05, error_fraction: 0.02 });
  // The connect's own check may meet a fault: it is simply asked again.
  let made;
  for (let i = 0; i < 20 && !made; i++) {
    const body = { name: "faulty", instance_url: faulty.instance_url, method: "oauth", username: faulty.username, password: faulty.password, client_id: faulty.client_id, client_secret: faulty.client_secret };
    const r = await c.api("POST", "/api/v1/connections", body);
    if (r.status === 201) made = r.json;
  }
  assert.ok(made, "a connect got through");
  await c.waitCaughtUp(made.id, { timeoutMs: 300_000 });
  const faults = await stats(faulty);
  assert.deepEqual(score(truth, await alertsOf(c, made.id)), NO_FAULTS);
  assert.ok(faults.faults_served > 0, `faults met: ${JSON.stringify(faults)}`);
});

test("while the instance fails one of the inventory's tables no page is read or judged; once it answers, the planted attack is one alert", async () => {
  const truth = (await plant(failing, "admin_impersonated", "positive", Math.floor(Date.now() / 1000) - 1800)).expect;
  assert.equal(truth.length, 1);
  // Group memberships: read by the inventory only, not by the pull.
  await failing.control("conditions", { erroring_tables: ["sys_user_grmember"] });
  const made = await c.connect(failing, "inventory-failing");
  const held = await waitFor("a slice held back", async () => {
    const runs = (await c.api("GET", `/api/v1/connections/${made.id}/runs`)).json.runs;
    return runs.find((r) => r.outcome === "deferred" && /inventory read/.test(r.detail ?? ""));
  }, 60_000);
  assert.match(held.detail, /trying again in \d+ s/);
  const before = await c.connection(made.id);
  assert.equal(before.event_count, 0, "no page stored while the inventory is behind");
  assert.equal(before.status, "connected");
  assert.deepEqual(await alertsOf(c, made.id), []);
  await failing.control("conditions", { erroring_tables: [] });
  assert.equal((await c.api("POST", `/api/v1/connections/${made.id}/pull`)).status, 202);
  await c.waitCaughtUp(made.id, { timeoutMs: 120_000 });
  assert.deepEqual(score(truth, await alertsOf(c, made.id)), NO_FAULTS);
});
