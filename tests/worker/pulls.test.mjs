// Pulls, in workerd against the simulator, each compared with the
// simulator's ground truth: 0 lost, 0 duplicated.
import { test, before, after, afterEach } from "node:test";
import assert from "node:assert/strict";
import { startWorker, startSim } from "../support/harness.mjs";
import { client, waitFor } from "../support/pulls.mjs";

let worker, c;
before(async () => {
  worker = await startWorker({ vars: { PULL_BUDGET_MS: "20000", PULL_MAX_CALLS: "40" } });
  c = client(worker);
});
after(async () => { await worker?.stop(); });
// Each test ends with no connection (see deleteAll).
afterEach(() => c.deleteAll());

test("the 7-day backfill arrives exactly once, with progress and kinds", async () => {
  const sim = await startSim(["--days", "9", "--events-per-day", "1500", "--seed", "11"]);
  try {
    const conn = await c.connect(sim, "backfill");
    const done = await c.waitCaughtUp(conn.id);
    const lines = await c.assertExactlyOnce(sim, done);
    assert.ok(lines.length > 7 * 1500 * 0.9, `${lines.length} events`);
    assert.equal(done.event_count, lines.length);
    assert.ok(done.backfill.total >= lines.length, JSON.stringify(done.backfill));
    assert.ok(done.last_pull_at);
    assert.ok(lines.every((e) => e.occurred_at >= done.backfill.from), "nothing older than the window");
    const kinds = new Set(lines.map((e) => e.kind));
    for (const k of ["login", "login_failed", "logout", "impersonation", "elevation", "record_updated", "record_deleted", "transaction", "user_created", "role_granted"]) assert.ok(kinds.has(k), `kind ${k}`);
    const login = lines.find((e) => e.kind === "login" && e.raw.name === "login");
    assert.equal(login.source_table, "sysevent");
    // People sign in from home: an ISP's public address.
    assert.match(login.source_ip, /^(73|80|86|153|189|41)\.\d+\.\d+\.\d+$/);
    assert.equal(login.raw.name, "login");
    assert.equal(login.connection_id, conn.id);
    const runs = (await c.api("GET", `/api/v1/connections/${conn.id}/runs`)).json.runs;
    assert.ok(runs.length >= 1 && runs.every((r) => ["done", "more"].includes(r.outcome)), JSON.stringify(runs));
  } finally {
    await sim.stop();
  }
});

test("a backfill's progress has every table's total from its first reading", async () => {
  // Large enough that the progress is read several times on the way.
  const sim = await startSim(["--days", "8", "--events-per-day", "25000", "--seed", "13"]);
  try {
    const conn = await c.connect(sim, "progress");
    const seen = [];
    const done = await waitFor("backfill done", async () => {
      const k = await c.connection(conn.id);
      if (!k.backfill.done && k.event_count > 0) seen.push(k.backfill.total);
      await new Promise((r) => setTimeout(r, 100));
      return k.backfill.done ? k : null;
    });
    assert.ok(seen.length >= 2, `progress read ${seen.length} times during the backfill`);
    // A table's total is counted when its backfill starts; records written
    // since may add a few: nothing like a table's whole count.
    for (const total of seen) assert.ok(total >= done.backfill.total * 0.99, `${total} of ${done.backfill.total} (${seen})`);
  } finally {
    await sim.stop();
  }
});

test("incremental pulls after new inserts, late commits and a 12,000-record burst in one second (more than a page)", async () => {
  const sim = await startSim(["--days", "2", "--events-per-day", "300", "--seed", "12"]);
  try {
    const conn = await c.connect(sim, "incremental");
    await c.waitCaughtUp(conn.id);
    const nowS = (await (await fetch(`${sim.instance_url}/__sim/stats`)).json()).now;
    await sim.control("insert", { table: "sysevent", count: 12_000, created_on: nowS });
    await sim.control("insert", { table: "sys_audit", count: 40, spread_secs: 5 });
    // Late commits: inserted now, stamped two minutes ago.
    await sim.control("insert", { table: "syslog_transaction", count: 30, created_on: nowS - 120 });
    const before = (await c.connection(conn.id)).event_count;
    assert.equal((await c.api("POST", `/api/v1/connections/${conn.id}/pull`)).status, 202);
    await waitFor("new events", async () => (await c.connection(conn.id)).event_count >= before + 12_070);
    await c.assertExactlyOnce(sim, await c.connection(conn.id));
    // The cron finds nothing new to add: still exactly once.
    assert.equal(await worker.cron(), 200);
    await new Promise((r) => setTimeout(r, 1500));
    await c.assertExactlyOnce(sim, await c.connection(conn.id));
  } finally {
    await sim.stop();
  }
});

test("a caught-up connection reads every table in one Batch API call, and falls back to one call per table without it", async () => {
  const sim = await startSim(["--days", "2", "--events-per-day", "300", "--seed", "13"]);
  const simStats = async () => (await (await fetch(`${sim.instance_url}/__sim/stats`)).json());
  const latestRun = async (id) => (await c.api("GET", `/api/v1/connections/${id}/runs`)).json.runs[0];
  try {
    const conn = await c.connect(sim, "batched");
    await c.waitCaughtUp(conn.id);
    const pullOnce = async (table, count) => {
      const before = (await c.connection(conn.id)).event_count;
      const runsBefore = (await c.api("GET", `/api/v1/connections/${conn.id}/runs`)).json.runs.length;
      await sim.control("insert", { table, count, spread_secs: 5 });
      assert.equal((await c.api("POST", `/api/v1/connections/${conn.id}/pull`)).status, 202);
      await waitFor("the pull", async () => (await c.api("GET", `/api/v1/connections/${conn.id}/runs`)).json.runs.length > runsBefore && (await c.connection(conn.id)).event_count >= before + count);
      await c.assertExactlyOnce(sim, await c.connection(conn.id));
      return latestRun(conn.id);
    };
    const batchesBefore = (await simStats()).batch_requests;
    const run = await pullOnce("sys_audit", 40);
    assert.equal(run.outcome, "done");
    assert.equal(run.calls, 1, JSON.stringify(run));
    // One Batch API call: the pull's tables and the inventory's.
    assert.equal((await simStats()).batch_requests, batchesBefore + 1);
    // The Batch API goes away (or refuses): the same run reads table by table.
    await sim.control("conditions", { batch_api_off: true });
    const fallback = await pullOnce("sysevent", 30);
    assert.equal(fallback.outcome, "done");
    assert.equal(fallback.calls, 1 + 6, JSON.stringify(fallback));
  } finally {
    await sim.stop();
  }
});

test("the events API filters, pages newest first and exports OCSF", async () => {
  const sim = await startSim(["--days", "2", "--events-per-day", "400", "--seed", "13"]);
  try {
    const conn = await c.connect(sim, "events-api");
    await c.waitCaughtUp(conn.id);
    const all = (await c.stored(conn.id)).lines;
    const seen = await c.listed(conn.id, 100);
    assert.equal(seen.length, all.length);
    assert.equal(new Set(seen.map((e) => e.id)).size, all.length);
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i - 1].occurred_at >= seen[i].occurred_at, "newest first");
    const fails = await c.api("GET", `/api/v1/connections/${conn.id}/events?kind=login_failed&limit=1000`);
    assert.ok(fails.json.events.length > 0 && fails.json.events.every((e) => e.kind === "login_failed"));
    const actor = fails.json.events[0].actor;
    const mine = await c.api("GET", `/api/v1/connections/${conn.id}/events?actor=${encodeURIComponent(actor)}&limit=1000`);
    assert.ok(mine.json.events.every((e) => e.actor === actor));
    const mid = all[Math.floor(all.length / 2)].occurred_at;
    const later = await c.api("GET", `/api/v1/connections/${conn.id}/events?from=${encodeURIComponent(mid)}&limit=1000`);
    assert.ok(later.json.events.every((e) => e.occurred_at >= mid));
    for (const bad of ["limit=0", "limit=1001", "kind=nope", "from=yesterday", "cursor=garbage", "format=xml"]) {
      const r = await c.api("GET", `/api/v1/connections/${conn.id}/${bad.startsWith("format") ? "events.ndjson" : "events"}?${bad}`);
      assert.equal(r.status, 422, bad);
      assert.equal(r.json.code, "validation_failed");
    }
    const ocsf = await fetch(`${worker.url}/api/v1/connections/${conn.id}/events.ndjson?format=ocsf`, { headers: { authorization: `Bearer ${worker.adminToken}` } });
    const classes = new Set((await ocsf.text()).split("\n").filter(Boolean).map((l) => JSON.parse(l).class_uid));
    assert.deepEqual([...classes].sort(), [3001, 3002, 3004, 6003]);
    assert.equal((await c.api("GET", "/api/v1/connections/0123456789abcdef0123456789abcdef/events")).status, 404);
  } finally {
    await sim.stop();
  }
});
