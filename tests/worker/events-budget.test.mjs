// Bounded queries, in workerd against the simulator: an events read opens at
// most EVENTS_PAGES_PER_READ archived pages and answers a cursor to go on
// with, even when its page is short or empty; following the cursors still
// lists every event once, newest first, and the NDJSON export follows them.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, startSim } from "../support/harness.mjs";
import { client } from "../support/pulls.mjs";

const stops = [];
after(async () => {
  for (const stop of stops.reverse()) await stop().catch(() => {});
});

test("a filter matching nothing over the archive answers within its budget with a cursor; following cursors lists every event once", async () => {
  const [worker, sim] = await Promise.all([
    startWorker({ vars: { EVENT_HOT_DAYS: "1", EVENTS_PAGES_PER_READ: "1", PULL_PAGE_SIZE: "200" } }),
    startSim(["--days", "8", "--events-per-day", "300", "--seed", "90"]),
  ]);
  stops.push(() => worker.stop(), () => sim.stop());
  const c = client(worker);
  const conn = await c.connect(sim, "budget");
  await c.waitCaughtUp(conn.id);
  const all = (await c.stored(conn.id)).lines.map((e) => e.id);
  assert.ok(all.length > 1500, `${all.length} events`);

  // Nothing matches: each answer is empty, reads one archived page, and
  // says where to go on; the cursors end.
  let cursor = null;
  let answers = 0;
  do {
    const r = await c.api("GET", `/api/v1/connections/${conn.id}/events?actor=nobody-at-all&limit=100${cursor ? `&cursor=${cursor}` : ""}`);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json.events, []);
    cursor = r.json.next_cursor;
    answers++;
    assert.ok(answers < 500, "the cursors end");
  } while (cursor);
  assert.ok(answers > 3, `the archive was read a page an answer (${answers} answers)`);

  // Every event once, in order, following cursors a page of 1,000 at a time.
  const listed = [];
  let last = Infinity;
  cursor = null;
  do {
    const r = await c.api("GET", `/api/v1/connections/${conn.id}/events?limit=1000${cursor ? `&cursor=${cursor}` : ""}`);
    assert.equal(r.status, 200, r.text);
    for (const e of r.json.events) {
      const t = Date.parse(e.occurred_at);
      assert.ok(t <= last, "newest first");
      last = t;
      listed.push(e.id);
    }
    cursor = r.json.next_cursor;
  } while (cursor);
  assert.equal(new Set(listed).size, listed.length, "no event twice");
  assert.deepEqual([...listed].sort(), [...all].sort(), "every event listed");
});
