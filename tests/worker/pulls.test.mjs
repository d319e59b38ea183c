// Pulls, in workerd against the simulator, each compared with the
// simulator's ground truth: 0 lost, 0 duplicated.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, startSim } from "../support/harness.mjs";

const SOURCES = ["sysevent", "sys_audit", "sys_audit_delete", "syslog_transaction", "sys_user", "sys_user_has_role"];
let worker;

before(async () => {
  worker = await startWorker({ vars: { LEASE_SECS: "5", PULL_BUDGET_MS: "20000", PULL_MAX_CALLS: "40" } });
});
after(async () => { await worker?.stop(); });

async function api(method, path, body) {
  const headers = { authorization: `Bearer ${worker.adminToken}` };
  if (body !== undefined) headers["content-type"] = "application/json";
  const r = await fetch(worker.url + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch {}
  return { status: r.status, json, text };
}

async function connect(sim, name, method = "oauth") {
  const body = { name, instance_url: sim.instance_url, method, username: sim.username, password: sim.password };
  if (method === "oauth") Object.assign(body, { client_id: sim.client_id, client_secret: sim.client_secret });
  const res = await api("POST", "/api/v1/connections", body);
  assert.equal(res.status, 201, res.text);
  return res.json;
}

async function waitFor(what, check, timeoutMs = 90_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function connection(id) {
  return (await api("GET", `/api/v1/connections/${id}`)).json;
}

/** Every stored event id, per source table, from the NDJSON export. */
async function stored(id) {
  const r = await fetch(`${worker.url}/api/v1/connections/${id}/events.ndjson`, { headers: { authorization: `Bearer ${worker.adminToken}` } });
  assert.equal(r.status, 200);
  const lines = (await r.text()).split("\n").filter(Boolean).map((l) => JSON.parse(l));
  const by = Object.fromEntries(SOURCES.map((s) => [s, []]));
  for (const e of lines) by[e.source_table].push(e.id.split(":")[1]);
  return { by, lines };
}

async function truth(sim, table, fromIso) {
  const from = Math.floor(Date.parse(fromIso) / 1000);
  return (await (await fetch(`${sim.instance_url}/__sim/truth?table=${table}&from=${from}`)).json()).sys_ids;
}

async function assertExactlyOnce(sim, c) {
  const { by, lines } = await stored(c.id);
  for (const table of SOURCES) {
    const want = await truth(sim, table, c.backfill.from);
    const got = by[table];
    assert.equal(new Set(got).size, got.length, `${table}: duplicates`);
    const missing = want.filter((x) => !got.includes(x));
    const extra = got.filter((x) => !want.includes(x));
    assert.deepEqual({ table, missing: missing.length, extra: extra.length }, { table, missing: 0, extra: 0 });
  }
  return lines;
}

async function waitCaughtUp(id, minEvents = 0) {
  return waitFor("backfill done", async () => {
    const c = await connection(id);
    return c.backfill.done && c.event_count >= minEvents && c.status !== "error" ? c : (c.status === "error" ? Promise.reject(new Error(JSON.stringify(c.status_detail))) : null);
  });
}

test("the 7-day backfill arrives exactly once, with progress", async () => {
  const sim = await startSim(["--days", "9", "--events-per-day", "1500", "--seed", "11"]);
  try {
    const c = await connect(sim, "backfill");
    const done = await waitCaughtUp(c.id);
    const lines = await assertExactlyOnce(sim, done);
    assert.ok(lines.length > 7 * 1500 * 0.9, `${lines.length} events`);
    assert.equal(done.event_count, lines.length);
    assert.ok(done.backfill.total >= lines.length, JSON.stringify(done.backfill));
    assert.ok(done.last_pull_at);
    // Nothing older than the window came in.
    assert.ok(lines.every((e) => e.occurred_at >= done.backfill.from));
    const kinds = new Set(lines.map((e) => e.kind));
    for (const k of ["login", "login_failed", "logout", "impersonation", "elevation", "record_updated", "record_deleted", "transaction", "user_created"]) assert.ok(kinds.has(k), `kind ${k}`);
    const runs = (await api("GET", `/api/v1/connections/${c.id}/runs`)).json.runs;
    assert.ok(runs.length >= 1 && runs.every((r) => ["done", "more"].includes(r.outcome)), JSON.stringify(runs));
  } finally {
    await sim.stop();
  }
});

test("incremental pulls after new inserts, late commits and a 25,000-record burst", async () => {
  const sim = await startSim(["--days", "2", "--events-per-day", "300", "--seed", "12"]);
  try {
    const c = await connect(sim, "incremental");
    await waitCaughtUp(c.id);
    const nowS = (await (await fetch(`${sim.instance_url}/__sim/stats`)).json()).now;
    await sim.control("insert", { table: "sysevent", count: 25_000, created_on: nowS });
    await sim.control("insert", { table: "sys_audit", count: 40, spread_secs: 5 });
    // Late commits: inserted now, stamped two minutes ago.
    await sim.control("insert", { table: "syslog_transaction", count: 30, created_on: nowS - 120 });
    const before = (await connection(c.id)).event_count;
    assert.equal((await api("POST", `/api/v1/connections/${c.id}/pull`)).status, 202);
    await waitFor("new events", async () => (await connection(c.id)).event_count >= before + 25_070);
    await assertExactlyOnce(sim, await connection(c.id));
  } finally {
    await sim.stop();
  }
});
