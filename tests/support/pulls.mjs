// Helpers for pull tests: connect, wait, read back, compare with ground truth.
import assert from "node:assert/strict";

export const SOURCES = ["sysevent", "sys_audit", "sys_audit_delete", "syslog_transaction", "sys_user", "sys_user_has_role"];

export function client(worker) {
  async function api(method, path, body, timeoutMs = 120_000) {
    const headers = { authorization: `Bearer ${worker.adminToken}` };
    if (body !== undefined) headers["content-type"] = "application/json";
    const r = await fetch(worker.url + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(timeoutMs) });
    const text = await r.text();
    let json = null;
    try { json = JSON.parse(text); } catch {}
    return { status: r.status, json, text };
  }

  async function connect(sim, name, method = "oauth") {
    const body = { name, instance_url: sim.instance_url, method };
    if (method !== "client_credentials") Object.assign(body, { username: sim.username, password: sim.password });
    if (method !== "basic") Object.assign(body, { client_id: sim.client_id, client_secret: sim.client_secret });
    const res = await api("POST", "/api/v1/connections", body);
    assert.equal(res.status, 201, res.text);
    return res.json;
  }

  async function connection(id) {
    return (await api("GET", `/api/v1/connections/${id}`)).json;
  }

  /** Every stored event, and their sys_ids per source table, from the NDJSON export. */
  async function stored(id) {
    let r;
    for (let i = 0; i < 5; i++) {
      r = await fetch(`${worker.url}/api/v1/connections/${id}/events.ndjson`, { headers: { authorization: `Bearer ${worker.adminToken}` } });
      if (r.status === 200) break;
      await new Promise((ok) => setTimeout(ok, 500));
    }
    assert.equal(r.status, 200);
    const lines = (await r.text()).split("\n").filter(Boolean).map((l) => JSON.parse(l));
    const by = Object.fromEntries(SOURCES.map((s) => [s, []]));
    for (const e of lines) by[e.source_table].push(e.id.split(":")[1]);
    return { by, lines };
  }

  async function assertExactlyOnce(sim, c) {
    const { by, lines } = await stored(c.id);
    for (const table of SOURCES) {
      const want = await truth(sim, table, c.backfill.from);
      const got = by[table];
      assert.equal(new Set(got).size, got.length, `${table}: duplicates`);
      const have = new Set(got);
      const wanted = new Set(want);
      const missing = want.filter((x) => !have.has(x)).length;
      const extra = got.filter((x) => !wanted.has(x)).length;
      assert.deepEqual({ table, missing, extra }, { table, missing: 0, extra: 0 });
    }
    return lines;
  }

  /**
   * Waits for the backfill to finish; fails fast if the connection errs.
   * `crons`: workers whose cron to trigger every few seconds, as Cloudflare
   * does every 5 minutes (it re-finds work a failed run left behind).
   */
  async function waitCaughtUp(id, { allowError = false, timeoutMs = 120_000, crons = [] } = {}) {
    let lastCron = Date.now();
    return waitFor("backfill done", async () => {
      if (crons.length && Date.now() - lastCron > 3_000) {
        lastCron = Date.now();
        await Promise.all(crons.map((w) => w.cron().catch(() => {})));
      }
      // Passing failures of the local runtime are asked again: a locked
      // local database (non-200), or wrangler dev's proxy resetting or
      // holding a status request while a large backfill keeps the single
      // workerd thread busy. A worker that stays down still fails the wait.
      const res = await api("GET", `/api/v1/connections/${id}`, undefined, 15_000).catch(() => null);
      if (res?.status !== 200) return null;
      const c = res.json;
      if (c.status === "error" && !allowError) throw new Error(`connection in error: ${JSON.stringify(c.status_detail)}`);
      return c.backfill.done ? c : null;
    }, timeoutMs);
  }

  /** Pulls the connection has run (idle ones fold into one history row an hour). */
  async function pullCount(id) {
    return (await api("GET", `/api/v1/connections/${id}/runs`)).json.pulls;
  }

  /**
   * Asks for a pull and waits until a pull that started after the ask has
   * ended (one running at the ask does not count).
   */
  async function pullOnce(id, timeoutMs = 120_000) {
    const res = await api("POST", `/api/v1/connections/${id}/pull`);
    assert.equal(res.status, 202, res.text);
    const read = await api("GET", `/api/v1/connections/${id}/runs`);
    assert.equal(read.status, 200, read.text);
    const { asked } = read.json;
    assert.ok(Number.isInteger(asked), read.text);
    await waitFor("the pull", async () => {
      const now = await api("GET", `/api/v1/connections/${id}/runs`);
      const done = now.json?.asked_done;
      return now.status === 200 && Number.isInteger(done) && ((done - asked) >>> 0) < 0x80000000;
    }, timeoutMs);
  }

  /** Every event through the events API, following `next_cursor`. */
  async function listed(id, limit) {
    const seen = [];
    let cursor = null;
    for (;;) {
      const q = new URLSearchParams({ limit: String(limit), ...(cursor ? { cursor } : {}) });
      const page = await api("GET", `/api/v1/connections/${id}/events?${q}`);
      assert.equal(page.status, 200, page.text);
      seen.push(...page.json.events);
      cursor = page.json.next_cursor;
      if (!cursor) return seen;
    }
  }

  /**
   * Deletes every connection. A test's simulator listens on a port the
   * system picks, and a freed port can come back for the next test: a
   * connection left behind would be the same instance and user (409).
   */
  async function deleteAll() {
    const list = (await api("GET", "/api/v1/connections")).json?.connections ?? [];
    for (const k of list) await api("DELETE", `/api/v1/connections/${k.id}`);
  }

  return { api, connect, connection, stored, listed, assertExactlyOnce, waitCaughtUp, deleteAll, pullCount, pullOnce };
}

export async function truth(sim, table, fromIso) {
  const from = Math.floor(Date.parse(fromIso) / 1000);
  return (await (await fetch(`${sim.instance_url}/__sim/truth?table=${table}&from=${from}`)).json()).sys_ids;
}

export async function waitFor(what, check, timeoutMs = 120_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}
