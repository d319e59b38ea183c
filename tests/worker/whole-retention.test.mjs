// The hot window: each connection's object indexes only its last
// EVENT_HOT_DAYS of events (here 1); older events stay in their archived
// pages, and the events API, the export and the paging read them from there,
// exactly once, in order, with the filters applied. In workerd against the
// simulator, compared with ground truth.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, startSim } from "../support/harness.mjs";
import { client } from "../support/pulls.mjs";

let worker, c, sim, conn;
before(async () => {
  sim = await startSim(["--days", "4", "--events-per-day", "1500", "--seed", "71"]);
  worker = await startWorker({ vars: { EVENT_HOT_DAYS: "1", PULL_PAGE_SIZE: "500" } });
  c = client(worker);
  conn = await c.connect(sim, "hot-window");
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

test("events older than the hot window leave the index but not the API: exactly once, in order", async () => {
  assert.match(worker.logs(), /hot window: \d+ index rows older than 1 days left the index/);
  // The export (oldest first) holds every record, old ones included.
  const lines = await c.assertExactlyOnce(sim, conn);
  const dayAgo = Date.now() - 86_400_000;
  const cold = lines.filter((e) => Date.parse(e.occurred_at) < dayAgo - 3_600_000);
  assert.ok(cold.length > 1000, `${cold.length} events before the hot window`);
  assert.match(worker.logs(), /archived page\(s\) read for the range before the hot window/);
  // The count is of every stored event, not of the index.
  assert.equal((await c.connection(conn.id)).event_count, lines.length);
  // Newest first, page by page with the cursor, across the boundary.
  const seen = [];
  let cursor = null;
  for (let i = 0; i < 400; i++) {
    const q = new URLSearchParams({ limit: "397" });
    if (cursor) q.set("cursor", cursor);
    const res = await c.api("GET", `/api/v1/connections/${conn.id}/events?${q}`);
    assert.equal(res.status, 200, res.text);
    seen.push(...res.json.events);
    cursor = res.json.next_cursor;
    if (!cursor) break;
  }
  assert.equal(seen.length, lines.length, "every event once");
  assert.equal(new Set(seen.map((e) => e.id)).size, seen.length, "no duplicates");
  for (let i = 1; i < seen.length; i++) assert.ok(cmp(seen[i - 1], seen[i]) > 0, `newest first at ${i}`);
});

test("filters apply on both sides of the hot window", async () => {
  const lines = (await c.stored(conn.id)).lines;
  const from = new Date(Date.now() - 3 * 86_400_000).toISOString().replace(/\.\d+Z$/, "Z");
  const to = new Date(Date.now() - 12 * 3_600_000).toISOString().replace(/\.\d+Z$/, "Z");
  for (const kind of ["login_failed", "record_updated"]) {
    const want = lines
      .filter((e) => e.kind === kind && e.occurred_at >= from && e.occurred_at < to)
      .sort(cmp)
      .reverse()
      .map((e) => e.id);
    assert.ok(want.length > 0, `${kind}: the range holds some`);
    const got = [];
    let cursor = null;
    do {
      const q = new URLSearchParams({ kind, from, to, limit: "50" });
      if (cursor) q.set("cursor", cursor);
      const res = await c.api("GET", `/api/v1/connections/${conn.id}/events?${q}`);
      assert.equal(res.status, 200, res.text);
      got.push(...res.json.events.map((e) => e.id));
      cursor = res.json.next_cursor;
    } while (cursor);
    assert.deepEqual(got, want, kind);
  }
});
