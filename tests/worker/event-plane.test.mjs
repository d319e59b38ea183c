// The event plane: each connection's Durable Object is the only writer of
// its pulls, R2 holds the archived pages, D1 only the control plane. In
// workerd (wrangler dev, local D1, Durable Objects and R2) against the
// simulator, each compared with ground truth.
import { test, before, after, afterEach } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { startWorker, startSim, stateText, objectFiles } from "../support/harness.mjs";
import { client, truth, waitFor, SOURCES } from "../support/pulls.mjs";

const VARS = { PULL_BUDGET_MS: "15000", PULL_MAX_CALLS: "6", PULL_PAGE_SIZE: "400" };
let worker, c;
before(async () => {
  worker = await startWorker({ vars: VARS });
  c = client(worker);
});
after(async () => { await worker?.stop(); });
// Each test ends with no connection (see deleteAll).
afterEach(() => c.deleteAll());

const simStats = async (sim) => (await (await fetch(`${sim.instance_url}/__sim/stats`)).json());

test("delete in the middle of a backfill leaves no byte of the connection in D1, the object or R2", async () => {
  const sim = await startSim(["--days", "8", "--events-per-day", "2000", "--seed", "61", "--slow-ms", "60"]);
  try {
    const conn = await c.connect(sim, "to-delete");
    await waitFor("backfill under way", async () => (await c.connection(conn.id)).event_count > 600);
    const { lines } = await c.stored(conn.id);
    assert.ok(lines.length > 600);
    const ids = lines.map((e) => e.id.split(":")[1]);
    const before = stateText(worker.persist);
    // The scan reads the real stores: the archive (gzip) holds whole events.
    assert.ok(ids.some((id) => before.includes(`"sys_id":"${id}"`)), "the archive's records are in the scanned state");
    // The object's own SQLite files: those whose page rows name its archive.
    const own = objectFiles(worker.persist).filter((p) => readFileSync(p, "latin1").includes(`${conn.id}/`));
    const files = [...new Set(own.map((p) => p.replace(/-wal$/, "")))].flatMap((p) => [p, `${p}-wal`]);
    const hasTables = (p) => existsSync(p) && readFileSync(p, "latin1").includes("CREATE TABLE");
    assert.ok(files.some(hasTables), `the object's files are found, with their schema: ${files}`);
    assert.equal((await c.api("DELETE", `/api/v1/connections/${conn.id}`)).status, 204);
    assert.equal((await c.api("GET", `/api/v1/connections/${conn.id}`)).status, 404);
    assert.equal((await c.api("GET", `/api/v1/connections/${conn.id}/events`)).status, 404);
    const every = [];
    for (const table of SOURCES) every.push(...await truth(sim, table, conn.backfill.from));
    const scan = (when) => {
      const state = stateText(worker.persist);
      const left = every.filter((id) => state.includes(id));
      assert.deepEqual(left.slice(0, 5), [], `${left.length} of the connection's records still stored ${when}`);
    };
    scan("right after the delete");
    // Nothing of it writes again: not a slice in flight, not the watchdog.
    const calls = (await simStats(sim)).requests;
    await new Promise((r) => setTimeout(r, 2_000));
    assert.equal(await worker.cron(), 200);
    await new Promise((r) => setTimeout(r, 2_000));
    scan("after the cron");
    // Not even empty tables: no late step opened the deleted object again.
    assert.deepEqual(files.filter(hasTables), [], "the deleted object has tables again");
    assert.ok((await simStats(sim)).requests - calls <= 1, "no pull after the delete (one in flight at most)");
  } finally {
    await sim.stop();
  }
});

test("a reconnect made while a pull is running keeps its new status", async () => {
  const sim = await startSim(["--days", "8", "--events-per-day", "2000", "--seed", "62", "--batch-api-off"]);
  try {
    const conn = await c.connect(sim, "reconnected");
    await waitFor("backfill under way", async () => (await c.connection(conn.id)).event_count > 0);
    // The running slice's next call hangs for 6 s; the calls after it are
    // quick again, so the reconnect below completes while that call waits.
    await sim.control("conditions", { slow_ms: 6_000 });
    await new Promise((r) => setTimeout(r, 1_500));
    await sim.control("conditions", { slow_ms: 0 });
    // The slice's tokens die: when its call returns, its next one is refused
    // and its refresh rejected. Without the generation fence it would then
    // turn the freshly reconnected connection to credentials_rejected.
    await sim.control("revoke", {});
    const re = await c.api("POST", `/api/v1/connections/${conn.id}/reconnect`, { password: sim.password, client_secret: sim.client_secret });
    assert.equal(re.status, 200, re.text);
    assert.equal(re.json.status, "connected");
    const until = Date.now() + 9_000;
    while (Date.now() < until) {
      const x = await c.connection(conn.id);
      assert.equal(x.status, "connected", `status after the reconnect: ${JSON.stringify(x.status_detail)}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    const runs = (await c.api("GET", `/api/v1/connections/${conn.id}/runs`)).json.runs;
    assert.ok(runs.some((r) => r.outcome === "superseded"), `the old slice stood down: ${runs.map((r) => r.outcome)}`);
    await c.assertExactlyOnce(sim, await c.waitCaughtUp(conn.id));
  } finally {
    await sim.stop();
  }
});

test("a Retry-After of 120 s moves the next pull to +120 s and no earlier", async () => {
  const sim = await startSim(["--days", "1", "--events-per-day", "200", "--seed", "63"]);
  try {
    const conn = await c.connect(sim, "told-to-wait");
    await c.waitCaughtUp(conn.id);
    await sim.control("conditions", { rate_limit_fraction: 1, retry_after_secs: 120 });
    const asked = Date.now();
    const before = (await simStats(sim)).requests;
    assert.equal((await c.api("POST", `/api/v1/connections/${conn.id}/pull`)).status, 202);
    const deferred = await waitFor("the deferral", async () => {
      const runs = (await c.api("GET", `/api/v1/connections/${conn.id}/runs`)).json.runs;
      return runs[0]?.outcome === "deferred" ? runs[0] : null;
    }, 20_000);
    assert.match(deferred.detail, /120 s/);
    const next = Date.parse((await c.connection(conn.id)).next_pull_at);
    assert.ok(next >= asked + 118_000 && next <= Date.now() + 122_000, `next pull at +${(next - asked) / 1000} s`);
    const afterDeferral = (await simStats(sim)).requests;
    assert.ok(afterDeferral > before, "the pull met the 429");
    // Neither the cron's watchdog nor the object asks again before then.
    for (let i = 0; i < 3; i++) {
      assert.equal(await worker.cron(), 200);
      await new Promise((r) => setTimeout(r, 2_000));
    }
    assert.equal((await simStats(sim)).requests, afterDeferral, "no call before the Retry-After ends");
  } finally {
    await sim.stop();
  }
});

test("pull requests racing on one connection: one writer, runs never overlap, exactly once", async () => {
  const sim = await startSim(["--days", "8", "--events-per-day", "1000", "--seed", "64", "--slow-ms", "40"]);
  try {
    const conn = await c.connect(sim, "raced");
    for (let i = 0; i < 5; i++) {
      await Promise.all(Array.from({ length: 8 }, () => c.api("POST", `/api/v1/connections/${conn.id}/pull`)));
      await new Promise((r) => setTimeout(r, 300));
    }
    await c.assertExactlyOnce(sim, await c.waitCaughtUp(conn.id));
    const runs = (await c.api("GET", `/api/v1/connections/${conn.id}/runs`)).json.runs.slice().reverse();
    for (let i = 1; i < runs.length; i++) {
      assert.ok(runs[i].started_at >= runs[i - 1].finished_at, `run ${i} started before run ${i - 1} finished: ${JSON.stringify(runs.slice(i - 1, i + 1))}`);
    }
  } finally {
    await sim.stop();
  }
});

test("a hung instance costs one bounded wait per call: the pull defers, the connect says unreachable", async () => {
  const quick = await startWorker({ vars: { ...VARS, CALL_TIMEOUT_MS: "1500" } });
  const sim = await startSim(["--days", "1", "--events-per-day", "200", "--seed", "65"]);
  try {
    const q = client(quick);
    const conn = await q.connect(sim, "hung");
    await q.waitCaughtUp(conn.id);
    await sim.control("conditions", { slow_ms: 120_000 });
    await sim.control("insert", { table: "sysevent", count: 5 });
    const asked = Date.now();
    assert.equal((await q.api("POST", `/api/v1/connections/${conn.id}/pull`)).status, 202);
    const run = await waitFor("the deferred run", async () => {
      const runs = (await q.api("GET", `/api/v1/connections/${conn.id}/runs`)).json.runs;
      return runs[0]?.outcome === "deferred" ? runs[0] : null;
    }, 45_000);
    assert.ok(Date.now() - asked < 40_000, `the slice ended after ${(Date.now() - asked) / 1000} s`);
    assert.match(run.detail, /failing|trying again/);
    assert.equal((await q.connection(conn.id)).status, "connected");
    const silent = await startSim(["--days", "1", "--events-per-day", "10", "--seed", "67", "--slow-ms", "120000"]);
    try {
      const t0 = Date.now();
      const body = { name: "hung-connect", instance_url: silent.instance_url, method: "basic", username: silent.username, password: silent.password };
      const res = await q.api("POST", "/api/v1/connections", body);
      assert.equal(res.json.code, "instance_unreachable", res.text);
      assert.ok(Date.now() - t0 < 10_000, `the connect answered after ${(Date.now() - t0) / 1000} s`);
    } finally {
      await silent.stop();
    }
  } finally {
    await quick.stop();
    await sim.stop();
  }
});

test("a connect that meets a 429 asking for a second waits it out and connects", async () => {
  const sim = await startSim(["--days", "1", "--events-per-day", "100", "--seed", "66"]);
  try {
    await sim.control("conditions", { rate_limit_fraction: 1, retry_after_secs: 1 });
    const lift = new Promise((r) => setTimeout(r, 1_500)).then(() => sim.control("conditions", { rate_limit_fraction: 0 }));
    const res = await c.api("POST", "/api/v1/connections", { name: "patient", instance_url: sim.instance_url, method: "oauth", username: sim.username, password: sim.password, client_id: sim.client_id, client_secret: sim.client_secret });
    await lift;
    assert.equal(res.status, 201, res.text);
  } finally {
    await sim.stop();
  }
  // A long wait is not waited out: the admin is told how long.
  const busy = await startSim(["--days", "1", "--events-per-day", "10", "--seed", "68", "--rate-limit-fraction", "1"]);
  try {
    await busy.control("conditions", { retry_after_secs: 120 });
    const refused = await c.api("POST", "/api/v1/connections", { name: "impatient", instance_url: busy.instance_url, method: "basic", username: busy.username, password: busy.password });
    assert.equal(refused.json.code, "rate_limited", refused.text);
    assert.match(refused.json.detail, /120 s/);
  } finally {
    await busy.stop();
  }
});

test("an access token refused for every table costs one refresh, not one per table", async () => {
  const sim = await startSim(["--days", "1", "--events-per-day", "200", "--seed", "69"]);
  try {
    const conn = await c.connect(sim, "one-refresh");
    await c.waitCaughtUp(conn.id);
    await sim.control("revoke", { kind: "access" });
    for (const table of ["sysevent", "sys_audit", "syslog_transaction"]) await sim.control("insert", { table, count: 5, spread_secs: 2 });
    const before = await simStats(sim);
    const count = (await c.connection(conn.id)).event_count;
    assert.equal((await c.api("POST", `/api/v1/connections/${conn.id}/pull`)).status, 202);
    await waitFor("the new events", async () => (await c.connection(conn.id)).event_count >= count + 15, 30_000);
    const after = await simStats(sim);
    assert.equal(after.token_requests - before.token_requests, 1, "one refresh grant");
    await c.assertExactlyOnce(sim, await c.connection(conn.id));
  } finally {
    await sim.stop();
  }
});

test("a table the instance refuses (400) is skipped for the run, once, while the others go on", async () => {
  const sim = await startSim(["--days", "1", "--events-per-day", "200", "--seed", "70"]);
  try {
    const conn = await c.connect(sim, "refused-table");
    await c.waitCaughtUp(conn.id);
    await sim.control("conditions", { invalid_tables: ["sys_audit_delete"] });
    await sim.control("insert", { table: "sysevent", count: 7, spread_secs: 2 });
    await sim.control("insert", { table: "sys_audit_delete", count: 4, spread_secs: 2 });
    const reads = async () => (await simStats(sim)).reads_by_table.sys_audit_delete ?? 0;
    const before = await reads();
    const count = (await c.connection(conn.id)).event_count;
    const runsBefore = (await c.api("GET", `/api/v1/connections/${conn.id}/runs`)).json.runs.length;
    assert.equal((await c.api("POST", `/api/v1/connections/${conn.id}/pull`)).status, 202);
    const run = await waitFor("the run", async () => {
      const runs = (await c.api("GET", `/api/v1/connections/${conn.id}/runs`)).json.runs;
      return runs.length > runsBefore ? runs[0] : null;
    }, 30_000);
    assert.match(run.detail ?? "", /table_query_rejected.*sys_audit_delete/);
    assert.equal(await reads() - before, 1, "asked once in the run, not retried");
    const x = await c.connection(conn.id);
    assert.equal(x.status, "connected");
    assert.equal(x.event_count, count + 7, "the other tables went on");
    // Once the table is back, the next pull brings its records, exactly once.
    await sim.control("conditions", { invalid_tables: [] });
    assert.equal((await c.api("POST", `/api/v1/connections/${conn.id}/pull`)).status, 202);
    await waitFor("the refused table's records", async () => (await c.connection(conn.id)).event_count >= count + 11, 30_000);
    await c.assertExactlyOnce(sim, await c.connection(conn.id));
  } finally {
    await sim.stop();
  }
});
