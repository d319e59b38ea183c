// A caught-up connection whose instance has nothing new: each pull is one
// ServiceNow call, writes no row in D1 and one row in its object (its
// schedule, which counts the pull into the hour's idle row), besides the
// object's alarm. Read from the SQLite files workerd keeps, not from the
// worker's own counters.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { startWorker, startSim, objectFiles, sqliteFiles } from "../support/harness.mjs";
import { client, waitFor } from "../support/pulls.mjs";

let worker, c, sim, logging;
before(async () => {
  worker = await startWorker({ vars: { PULL_INTERVAL_SECS: "30" } });
  c = client(worker);
  // Quiet instances: their newest records lie well before the overlap. The
  // second writes every API call to syslog_transaction, as real ones do.
  [sim, logging] = await Promise.all([
    startSim(["--days", "2", "--events-per-day", "40", "--seed", "5"]),
    startSim(["--days", "2", "--events-per-day", "40", "--seed", "6", "--log-api-calls"]),
  ]);
});
after(async () => {
  await Promise.all([sim?.stop(), logging?.stop()]);
  await worker?.stop();
});

/** Every row of every table of a SQLite file (workerd's own tables aside), as text. */
function rowsOf(file) {
  const code = `import sqlite3, json, sys
db = sqlite3.connect(sys.argv[1])
out = {}
for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '_cf_%' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'd1_%'"):
    out[name] = sorted(json.dumps(list(r), default=str) for r in db.execute(f'SELECT * FROM "{name}"'))
print(json.dumps(out))
`;
  return JSON.parse(execFileSync("python3", ["-c", code, file], { encoding: "utf8" }));
}

/** Per table, the rows only `after` holds and the rows only `before` held. */
function changed(before, after) {
  const out = {};
  for (const table of new Set([...Object.keys(before), ...Object.keys(after)])) {
    const had = new Set(before[table] ?? []);
    const has = new Set(after[table] ?? []);
    const added = [...has].filter((r) => !had.has(r));
    const removed = [...had].filter((r) => !has.has(r));
    if (added.length || removed.length) out[table] = { added, removed };
  }
  return out;
}

function d1File(persist) {
  const found = sqliteFiles(join(persist, "v3", "d1")).filter((p) => p.endsWith(".sqlite") && !p.endsWith("metadata.sqlite"));
  assert.equal(found.length, 1, `one local D1 database: ${found}`);
  return found[0];
}

/** The SQLite file of a connection's object (its meta names the connection). */
function objectFileOf(id) {
  const file = objectFiles(worker.persist).filter((p) => p.endsWith(".sqlite"))
    .find((p) => JSON.stringify(rowsOf(p).meta ?? []).includes(id));
  assert.ok(file, "the connection's object is found");
  return file;
}

const simStats = async (of = sim) => (await fetch(`${of.instance_url}/__sim/stats`)).json();
const pulls = async (id) => (await c.api("GET", `/api/v1/connections/${id}/runs`)).json;

test("a pull that finds nothing is one call, writes no D1 row and one object row", async () => {
  const conn = await c.connect(sim, "quiet");
  await c.waitCaughtUp(conn.id);
  const objectFile = objectFileOf(conn.id);
  const db = d1File(worker.persist);
  // Pulls go on every 30 s on their own; once one finds nothing (the
  // simulator's newest records lie hours back, past the overlap), the next
  // is measured from its end to the end of the one after.
  await waitFor("an idle pull", async () => (await pulls(conn.id)).runs[0]?.detail?.includes("found nothing new"), 120_000);
  // The watchdog's lease: an hour past the next pull, written once.
  const row = rowsOf(db).connections.map((r) => JSON.parse(r)).find((r) => r.includes(conn.id));
  const lease = row.map((v) => (typeof v === "string" ? Date.parse(v) : NaN)).filter((t) => t > Date.now() + 50 * 60_000);
  assert.equal(lease.length, 1, `one time about an hour ahead (alarm_at): ${JSON.stringify(row)}`);
  assert.ok(lease[0] < Date.now() + 62 * 60_000, JSON.stringify(row));
  const measured = [];
  for (let i = 0; i < 2; i++) {
    const at = (await pulls(conn.id)).pulls;
    await waitFor("the next pull", async () => (await pulls(conn.id)).pulls > at, 90_000);
    const start = { object: rowsOf(objectFile), d1: rowsOf(db), sim: await simStats() };
    await waitFor("the pull after", async () => (await pulls(conn.id)).pulls > at + 1, 90_000);
    const end = { object: rowsOf(objectFile), d1: rowsOf(db), sim: await simStats() };
    measured.push({
      object: changed(start.object, end.object),
      d1: changed(start.d1, end.d1),
      calls: end.sim.requests - start.sim.requests,
    });
  }
  for (const m of measured) {
    assert.deepEqual(m.d1, {}, `no D1 row written: ${JSON.stringify(m.d1)}`);
    assert.deepEqual(Object.keys(m.object), ["meta"], `only the schedule: ${JSON.stringify(m.object)}`);
    const { added, removed } = m.object.meta;
    assert.equal(added.length, 1, JSON.stringify(m.object.meta));
    assert.equal(removed.length, 1, JSON.stringify(m.object.meta));
    assert.match(added[0], /^\["schedule",/);
    assert.match(removed[0], /^\["schedule",/);
    assert.equal(m.calls, 1, "one ServiceNow call: the inventory's reads ride in the pull's");
  }
  // The history: the idle pulls as one row, and the API's pull times live.
  const { runs } = await pulls(conn.id);
  assert.ok(runs[0].pulls >= 2, JSON.stringify(runs[0]));
  assert.match(runs[0].detail, new RegExp(`^${runs[0].pulls} pulls found nothing new`));
  const shown = await c.connection(conn.id);
  assert.ok(Date.parse(shown.last_pull_at) >= Date.parse(runs[0].finished_at), `${shown.last_pull_at} ${runs[0].finished_at}`);
  assert.ok(Date.parse(shown.next_pull_at) > Date.parse(shown.last_pull_at), JSON.stringify(shown));
  const listed = (await c.api("GET", "/api/v1/connections")).json.connections.find((k) => k.id === conn.id);
  assert.ok(Date.parse(listed.last_pull_at) >= Date.parse(shown.last_pull_at), `${listed.last_pull_at} ${shown.last_pull_at}`);
});

test("where the instance logs every call, the connector's own are not news: its pulls stay idle, and a call it did not make under its account is stored", async () => {
  const conn = await c.connect(logging, "logged");
  await c.waitCaughtUp(conn.id);
  const objectFile = objectFileOf(conn.id);
  const db = d1File(worker.persist);
  // The connect's own calls (its checks, the backfill's pages) are stored
  // once; then the pulls find nothing but their own calls.
  await waitFor("an idle pull", async () => (await pulls(conn.id)).runs[0]?.detail?.includes("found nothing new"), 150_000);
  const ours = async () => (await c.api("GET", `/api/v1/connections/${conn.id}/events?kind=transaction&actor=${encodeURIComponent(logging.username)}&limit=1000`)).json.events;
  const before = (await ours()).length;
  const at = (await pulls(conn.id)).pulls;
  await waitFor("the next pull", async () => (await pulls(conn.id)).pulls > at, 90_000);
  const start = { object: rowsOf(objectFile), d1: rowsOf(db), sim: await simStats(logging) };
  await waitFor("the pull after", async () => (await pulls(conn.id)).pulls > at + 1, 90_000);
  const end = { object: rowsOf(objectFile), d1: rowsOf(db), sim: await simStats(logging) };
  assert.deepEqual(changed(start.d1, end.d1), {}, "no D1 row written");
  const rows = changed(start.object, end.object);
  // Only the schedule: syslog_transaction's cursor stays behind the young
  // records of the connector's own calls (it moves past them once every
  // 5 minutes, which core's tests drive on a fake clock).
  assert.deepEqual(Object.keys(rows), ["meta"], JSON.stringify(rows));
  assert.equal(rows.meta.added.length, 1, JSON.stringify(rows.meta));
  assert.match(rows.meta.added[0], /^\["schedule",/);
  assert.equal(end.sim.requests - start.sim.requests, 1, "one ServiceNow call");
  assert.equal((await ours()).length, before, "none of the connector's own calls stored");
  assert.match((await pulls(conn.id)).runs[0].detail, /found nothing new/);
  // A Batch API call under the connector's account that it did not make
  // (a stolen credential's), committed late at a moment before the
  // connection made any call of its own: stored with the next pull.
  const when = Math.floor(Date.parse(conn.created_at) / 1000) - 30;
  const made = await (await fetch(`${logging.instance_url}/__sim/insert`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ table: "syslog_transaction", count: 1, created_on: when, fields: { sys_created_by: logging.username, url: "/api/now/v1/batch" } }) })).json();
  assert.equal(made.inserted, 1);
  await waitFor("the stranger's call stored", async () => (await ours()).some((e) => e.id === `syslog_transaction:${made.sys_ids[0]}`), 90_000);
  assert.equal((await ours()).length, before + 1, "that one, and none of the connector's");
});
