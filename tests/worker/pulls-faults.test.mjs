// Pulls under faults, each compared with the simulator's ground truth. Small
// pages and few calls per run make every backfill span many runs, so the
// faults land in the middle of one.
import { test, before, after, afterEach } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { startWorker, startSim } from "../support/harness.mjs";
import { client, truth, waitFor } from "../support/pulls.mjs";

const VARS = { PULL_BUDGET_MS: "15000", PULL_MAX_CALLS: "6", PULL_PAGE_SIZE: "400", SLICE_RETRY_SECS: "1" };
let worker, c;
before(async () => {
  worker = await startWorker({ vars: VARS });
  c = client(worker);
});
after(async () => { await worker?.stop(); });
// Each test ends with no connection (see deleteAll).
afterEach(() => c.deleteAll());

const simArgs = (seed) => ["--days", "8", "--events-per-day", "600", "--seed", String(seed)];

test("30 % of calls rate-limited: Retry-After honoured, nothing lost", async () => {
  const sim = await startSim([...simArgs(21), "--rate-limit-fraction", "0.3"]);
  try {
    const conn = await c.connect(sim, "rate-limited").catch(async () => {
      // The connect itself may meet a 429; the admin tries again.
      await sim.control("conditions", { rate_limit_fraction: 0 });
      const made = await c.connect(sim, "rate-limited");
      await sim.control("conditions", { rate_limit_fraction: 0.3 });
      return made;
    });
    await c.assertExactlyOnce(sim, await c.waitCaughtUp(conn.id));
  } finally {
    await sim.stop();
  }
});

test("10 % 5xx: backs off and retries, nothing lost", async () => {
  const sim = await startSim(simArgs(22));
  try {
    const conn = await c.connect(sim, "flaky");
    await sim.control("conditions", { error_fraction: 0.1 });
    await c.assertExactlyOnce(sim, await c.waitCaughtUp(conn.id));
    const runs = (await c.api("GET", `/api/v1/connections/${conn.id}/runs`)).json.runs;
    assert.ok(runs.length > 1);
  } finally {
    await sim.stop();
  }
});

test("pages cancelled at the 60 s limit are retried smaller", async () => {
  const sim = await startSim([...simArgs(23), "--cancel-above-limit", "150"]);
  try {
    const conn = await c.connect(sim, "cancelled");
    await c.assertExactlyOnce(sim, await c.waitCaughtUp(conn.id));
  } finally {
    await sim.stop();
  }
});

// OAuth refreshes with its refresh token; client credentials have none and
// ask the grant again.
for (const [method, seed] of [["oauth", 24], ["client_credentials", 27]]) test(`the access token expires in the middle of the backfill (${method}): renewed, nothing lost`, async () => {
  const sim = await startSim([...simArgs(seed), "--slow-ms", "40"]);
  try {
    const conn = await c.connect(sim, `expiring-${method}`, method);
    await waitFor("backfill under way", async () => (await c.connection(conn.id)).event_count > 0);
    // Every access token issued so far dies; refresh tokens stay good. New
    // records then make sure a pull needs a fresh token even if the
    // backfill finished before the revocation landed.
    await sim.control("revoke", { kind: "access" });
    const before = (await (await fetch(`${sim.instance_url}/__sim/stats`)).json()).token_requests;
    await sim.control("insert", { table: "sysevent", count: 50 });
    assert.equal((await c.api("POST", `/api/v1/connections/${conn.id}/pull`)).status, 202);
    const expected = (await truth(sim, "sysevent", conn.backfill.from)).length;
    await waitFor("the new records", async () => {
      const { by } = await c.stored(conn.id);
      return by.sysevent.length >= expected;
    });
    await c.assertExactlyOnce(sim, await c.waitCaughtUp(conn.id));
    const after = (await (await fetch(`${sim.instance_url}/__sim/stats`)).json()).token_requests;
    assert.ok(after > before, "a token grant was used");
    assert.equal((await c.connection(conn.id)).status, "connected");
  } finally {
    await sim.stop();
  }
});

test("refresh token revoked: error credentials_rejected, pulls stop; reconnect resumes from the cursor", async () => {
  const sim = await startSim(simArgs(25));
  try {
    const conn = await c.connect(sim, "revoked");
    await waitFor("backfill under way", async () => (await c.connection(conn.id)).event_count > 0);
    await sim.control("revoke", {});
    // A pull now, in case the backfill finished before the revocation landed.
    await c.api("POST", `/api/v1/connections/${conn.id}/pull`);
    const failed = await waitFor("error status", async () => {
      const x = await c.connection(conn.id);
      return x.status === "error" ? x : null;
    });
    assert.equal(failed.status_detail.code, "credentials_rejected");
    assert.match(failed.status_detail.message, /Reconnect/);
    const kept = failed.event_count;
    assert.ok(kept > 0);
    // Stopped: the cron does not queue it, the count does not move.
    await worker.cron();
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal((await c.connection(conn.id)).event_count, kept);
    const re = await c.api("POST", `/api/v1/connections/${conn.id}/reconnect`, { password: sim.password, client_secret: sim.client_secret });
    assert.equal(re.status, 200, re.text);
    assert.equal(re.json.status, "connected");
    await c.assertExactlyOnce(sim, await c.waitCaughtUp(conn.id));
  } finally {
    await sim.stop();
  }
});

test("an instance that starts hibernating sets instance_hibernating and recovers", async () => {
  const sim = await startSim(simArgs(26));
  try {
    const conn = await c.connect(sim, "sleepy");
    await waitFor("backfill under way", async () => (await c.connection(conn.id)).event_count > 0);
    await sim.control("conditions", { hibernating: true });
    await c.api("POST", `/api/v1/connections/${conn.id}/pull`);
    const asleep = await waitFor("hibernating status", async () => {
      const x = await c.connection(conn.id);
      return x.status === "error" ? x : null;
    });
    assert.equal(asleep.status_detail.code, "instance_hibernating");
    await sim.control("conditions", { hibernating: false });
    assert.equal((await c.api("POST", `/api/v1/connections/${conn.id}/pull`)).status, 202);
    const awake = await c.waitCaughtUp(conn.id, { allowError: true });
    await waitFor("connected again", async () => (await c.connection(conn.id)).status === "connected");
    await c.assertExactlyOnce(sim, awake);
  } finally {
    await sim.stop();
  }
});

test("the archive refusing writes: failed runs, a pulls_failing warning, then recovery with nothing lost", async () => {
  const sim = await startSim(simArgs(28));
  // Local R2 keeps each object's body as a file here. An immutable
  // directory refuses new files even to root: every page's archive write
  // fails inside the worker, as a storage fault would.
  const blobs = join(worker.persist, "v3", "r2", "snc-archive", "blobs");
  mkdirSync(blobs, { recursive: true });
  const writable = () => execFileSync("chattr", ["-i", blobs]);
  try {
    execFileSync("chattr", ["+i", blobs]);
    const conn = await c.connect(sim, "archive-refusing");
    const warned = await waitFor("pulls_failing warning", async () => {
      const x = await c.connection(conn.id);
      return x.warnings.some((w) => w.code === "pulls_failing") ? x : null;
    }, 60_000);
    writable();
    // Pulls were not stopped: the connection stays connected and retries.
    assert.equal(warned.status, "connected");
    assert.match(warned.warnings.find((w) => w.code === "pulls_failing").message, /^The last \d+ pulls stopped inside the worker/);
    const runs = (await c.api("GET", `/api/v1/connections/${conn.id}/runs`)).json.runs;
    const failed = runs.filter((r) => r.outcome === "failed" && /^internal: the pull stopped inside the worker/.test(r.detail ?? ""));
    assert.ok(failed.length >= 3, `three failed runs in the history: ${JSON.stringify(runs.slice(0, 5))}`);
    const done = await c.waitCaughtUp(conn.id);
    const after = await waitFor("warning cleared", async () => {
      const x = await c.connection(conn.id);
      return x.warnings.some((w) => w.code === "pulls_failing") ? null : x;
    });
    assert.equal(after.status, "connected");
    await c.assertExactlyOnce(sim, done);
  } finally {
    writable();
    await sim.stop();
  }
});

test("the worker killed in the middle of a backfill and started again", async () => {
  const sim = await startSim(simArgs(27));
  const first = await startWorker({ vars: VARS, keepPersist: true });
  const w1 = client(first);
  let second;
  try {
    const conn = await w1.connect(sim, "killed");
    await waitFor("backfill under way", async () => (await w1.connection(conn.id)).event_count > 200);
    await first.kill();
    second = await startWorker({ vars: VARS, persist: first.persist, adminToken: first.adminToken, encryptionKey: first.encryptionKey });
    const w2 = client(second);
    // The object's alarm survives the process (it is stored with the
    // object): the backfill continues from the cursor by itself.
    await w2.assertExactlyOnce(sim, await w2.waitCaughtUp(conn.id));
  } finally {
    await second?.stop();
    await sim.stop();
  }
});
