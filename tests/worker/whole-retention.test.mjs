// The event index over the whole retention: a row per archive member of
// 256 events, not per event. The events API, the export and the paging read
// the members that can match, exactly once, in order, with the filters
// applied; an object whose index kept a row per event (before) is upgraded
// in place and keeps every event readable and counted once. In workerd
// against the simulator, compared with ground truth; the object's own
// SQLite file is read to check the index's shape.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { startWorker, startSim, objectFiles } from "../support/harness.mjs";
import { client, waitFor } from "../support/pulls.mjs";

const VARS = { PULL_PAGE_SIZE: "500", EVENTS_MEMBERS_PER_READ: "8" };
let worker, c, sim, conn;
before(async () => {
  sim = await startSim(["--days", "4", "--events-per-day", "1500", "--seed", "71"]);
  worker = await startWorker({ vars: VARS, keepPersist: true });
  c = client(worker);
  conn = await c.connect(sim, "whole-retention");
  conn = await c.waitCaughtUp(conn.id, { timeoutMs: 180_000 });
});
after(async () => {
  await worker?.stop();
  await sim?.stop();
});

const key = (e) => [Date.parse(e.occurred_at) / 1000, e.source_table, e.id.split(":")[1]];
const cmp = (a, b) => {
  const [x, y] = [key(a), key(b)];
  for (let i = 0; i < 3; i++) if (x[i] !== y[i]) return x[i] < y[i] ? -1 : 1;
  return 0;
};

/** The connection's object's SQLite file (its page keys name the connection). */
function objectFile(persist, id) {
  const files = objectFiles(persist).filter((p) => p.endsWith(".sqlite"));
  const own = files.filter((p) => [p, `${p}-wal`].some((f) => existsSync(f) && readFileSync(f, "latin1").includes(`${id}/`)));
  assert.equal(own.length, 1, `one object file for ${id}: ${own}`);
  return own[0];
}

/** Runs Python's sqlite3 on a file: `script` gets `db` and prints JSON. */
function sqlite(file, script) {
  const code = `import sqlite3, json, sys\ndb = sqlite3.connect(sys.argv[1])\n${script}\ndb.commit()\n`;
  return JSON.parse(execFileSync("python3", ["-c", code, file], { encoding: "utf8" }) || "null");
}

async function listAll(params, limit) {
  const seen = [];
  let cursor = null;
  for (let i = 0; i < 2000; i++) {
    const q = new URLSearchParams({ ...params, limit: String(limit) });
    if (cursor) q.set("cursor", cursor);
    const res = await c.api("GET", `/api/v1/connections/${conn.id}/events?${q}`);
    assert.equal(res.status, 200, res.text);
    seen.push(...res.json.events);
    cursor = res.json.next_cursor;
    if (!cursor) return seen;
  }
  throw new Error("the cursors did not end");
}

test("every event of the retention is read through member rows: exactly once, in order, a row per member", async () => {
  const lines = await c.assertExactlyOnce(sim, conn);
  assert.ok(lines.length > 4000, `${lines.length} events`);
  assert.equal((await c.connection(conn.id)).event_count, lines.length, "the count is of every stored event");
  // Newest first, page by page with the cursor, a few members a read.
  const seen = await listAll({}, 397);
  assert.equal(seen.length, lines.length, "every event once");
  assert.equal(new Set(seen.map((e) => e.id)).size, seen.length, "no duplicates");
  for (let i = 1; i < seen.length; i++) assert.ok(cmp(seen[i - 1], seen[i]) > 0, `newest first at ${i}`);
  // The index's shape, read from the object's own file.
  const shape = sqlite(objectFile(worker.persist, conn.id), `
tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
m = db.execute("SELECT count(*), coalesce(sum(events), 0) FROM members").fetchone()
print(json.dumps({"tables": tables, "members": m[0], "counted": m[1]}))`);
  assert.ok(!shape.tables.includes("events"), `no row per event: ${shape.tables}`);
  assert.equal(shape.counted, lines.length, "the members count every event");
  assert.ok(shape.members * 100 <= lines.length, `${shape.members} member rows for ${lines.length} events`);
});

test("filters read only what can match, over the whole range", async () => {
  const lines = (await c.stored(conn.id)).lines;
  const from = new Date(Date.now() - 3 * 86_400_000).toISOString().replace(/\.\d+Z$/, "Z");
  const to = new Date(Date.now() - 12 * 3_600_000).toISOString().replace(/\.\d+Z$/, "Z");
  const actor = lines.find((e) => e.kind === "login_failed" && e.actor)?.actor;
  assert.ok(actor, "an actor to filter by");
  for (const params of [{ kind: "login_failed" }, { kind: "record_updated" }, { actor }]) {
    const want = lines
      .filter((e) => (!params.kind || e.kind === params.kind) && (!params.actor || e.actor === params.actor))
      .filter((e) => e.occurred_at >= from && e.occurred_at < to)
      .sort(cmp)
      .reverse()
      .map((e) => e.id);
    assert.ok(want.length > 0, `${JSON.stringify(params)}: the range holds some`);
    const got = (await listAll({ ...params, from, to }, 50)).map((e) => e.id);
    assert.deepEqual(got, want, JSON.stringify(params));
  }
});

test("an object indexed a row per event is upgraded in place: every event readable, counted and stored once", async () => {
  const before = (await c.stored(conn.id)).lines.length;
  await worker.stop();
  // The object as the per-event index left it: the overlap's events as
  // rows, the older ones out of the index (its hot window), no members.
  sqlite(objectFile(worker.persist, conn.id), `
db.execute("CREATE TABLE events (occurred_at INTEGER NOT NULL, source_table TEXT NOT NULL, sys_id TEXT NOT NULL, kind TEXT NOT NULL, actor TEXT, page INTEGER NOT NULL, line INTEGER NOT NULL, PRIMARY KEY (occurred_at, source_table, sys_id)) WITHOUT ROWID")
db.execute("CREATE TABLE page_cold (page INTEGER PRIMARY KEY, events INTEGER NOT NULL)")
n = 0
for page, table, last_at, keys in db.execute("SELECT page, source_table, last_at, keys FROM recent_keys").fetchall():
    for k in json.loads(keys):
        db.execute("INSERT INTO events VALUES (?, ?, ?, 'other', NULL, ?, 0)", (last_at, table, k, page))
        n += 1
db.execute("INSERT INTO page_cold SELECT id, events FROM pages")
db.execute("DROP TABLE members")
db.execute("DROP TABLE recent_keys")
db.execute("DELETE FROM meta WHERE k IN ('index', 'event_count')")
db.execute("INSERT INTO meta (k, v) VALUES ('hot_from', '1')")
print(json.dumps(n))`);
  worker = await startWorker({ vars: VARS, persist: worker.persist, adminToken: worker.adminToken, encryptionKey: worker.encryptionKey });
  c = client(worker);
  // A pull now reads the overlap again: what the old rows held is not stored twice.
  const pulledBefore = (await c.connection(conn.id)).last_pull_at;
  assert.equal((await c.api("POST", `/api/v1/connections/${conn.id}/pull`)).status, 202);
  await waitFor("a pull after the upgrade", async () => {
    const now = await c.connection(conn.id);
    return now.last_pull_at !== pulledBefore && now.backfill.done ? now : null;
  });
  const lines = await c.assertExactlyOnce(sim, conn);
  assert.ok(lines.length >= before, `${lines.length} events after, ${before} before`);
  assert.equal((await c.connection(conn.id)).event_count, lines.length, "the count is the members' again");
  const seen = await listAll({ kind: "login_failed" }, 100);
  assert.deepEqual(seen.map((e) => e.id), lines.filter((e) => e.kind === "login_failed").sort(cmp).reverse().map((e) => e.id));
  // The old rows went with the pull (a bounded step a pull), then their table.
  const tables = sqlite(objectFile(worker.persist, conn.id), `print(json.dumps([r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]))`);
  assert.ok(!tables.includes("events") && !tables.includes("page_cold"), `${tables}`);
});
