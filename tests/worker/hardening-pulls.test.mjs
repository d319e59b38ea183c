// Hardening under load: three connections pulling at once under the pulls
// fault mix (429s, 5xx, cancelled pages, expiring tokens), each exactly
// matching its ground truth; then a secret scan over every response, the
// worker's log and the local D1 files after the whole run.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { startWorker, startSim } from "../support/harness.mjs";
import { client, waitFor } from "../support/pulls.mjs";

let worker, sims;
before(async () => {
  sims = await Promise.all([51, 52, 53].map((seed) =>
    startSim(["--days", "8", "--events-per-day", "400", "--seed", String(seed), "--rate-limit-fraction", "0.2", "--error-fraction", "0.1", "--cancel-above-limit", "300"])));
  worker = await startWorker({ vars: { PULL_BUDGET_MS: "15000", PULL_MAX_CALLS: "8", PULL_PAGE_SIZE: "600" } });
});
after(async () => {
  await worker?.stop();
  await Promise.all((sims ?? []).map((s) => s.stop()));
});

function filesUnder(dir) {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? filesUnder(p) : [p];
  });
}

test("three connections at once under faults, each exactly once; no secret anywhere afterwards", async () => {
  const c = client(worker);
  const seen = [];
  const api = async (...args) => {
    const r = await c.api(...args);
    seen.push(r.text);
    return r;
  };
  // The connect itself may meet an injected 429 or 5xx: the admin tries again.
  const conns = [];
  for (const [i, sim] of sims.entries()) {
    const body = { name: `load-${i}`, instance_url: sim.instance_url, method: "oauth", username: sim.username, password: sim.password, client_id: sim.client_id, client_secret: sim.client_secret };
    const made = await waitFor(`connect ${i}`, async () => {
      const r = await api("POST", "/api/v1/connections", body);
      return r.status === 201 ? r.json : null;
    }, 60_000);
    conns.push(made);
  }
  // Tokens expire mid-backfill on one of them.
  await waitFor("backfills under way", async () => (await c.connection(conns[0].id)).event_count > 0);
  await sims[0].control("revoke", { kind: "access" });
  const done = await Promise.all(conns.map((conn) => c.waitCaughtUp(conn.id, { crons: [worker], timeoutMs: 240_000 })));
  for (const [i, d] of done.entries()) await c.assertExactlyOnce(sims[i], d);
  for (const conn of conns) seen.push((await api("GET", `/api/v1/connections/${conn.id}/events?limit=1000`)).text);

  const secrets = [];
  for (const sim of sims) {
    secrets.push(sim.password, sim.client_secret, ...(await (await fetch(`${sim.instance_url}/__sim/tokens`)).json()).tokens);
  }
  const stored = filesUnder(worker.persist).filter((f) => !f.endsWith(".lock")).map((f) => readFileSync(f).toString("latin1")).join("\n");
  assert.ok(stored.includes("connection_secrets") && stored.includes("sysevent"), "the scan reads the real database");
  const logs = worker.logs();
  assert.ok(logs.includes("pull "), "the scan reads the real log");
  for (const s of secrets) {
    assert.ok(!stored.includes(s), "a secret is in D1 in plaintext");
    assert.ok(!logs.includes(s), "a secret is in the worker's log");
    assert.ok(!seen.some((b) => b.includes(s)), "a secret is in a response");
  }
});
