// Bounded queries, in workerd against the simulator: an events read opens at
// most EVENTS_MEMBERS_PER_READ archive members and answers a cursor to go on
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

test("a sparse filter answers within its budget of members with cursors; following cursors lists every event once", async () => {
  const [worker, sim] = await Promise.all([
    startWorker({ vars: { EVENTS_MEMBERS_PER_READ: "1", PULL_PAGE_SIZE: "200" } }),
    startSim(["--days", "8", "--events-per-day", "300", "--seed", "90"]),
  ]);
  stops.push(() => worker.stop(), () => sim.stop());
  const c = client(worker);
  const conn = await c.connect(sim, "budget");
  await c.waitCaughtUp(conn.id);
  const lines = (await c.stored(conn.id)).lines;
  const all = lines.map((e) => e.id);
  assert.ok(all.length > 1500, `${all.length} events`);

  // Nothing matches: members that list their actors are never opened for
  // it; those with too many to list are, one an answer; every answer is
  // empty and the cursors end.
  let answers = 0;
  let cursor = null;
  do {
    const r = await c.api("GET", `/api/v1/connections/${conn.id}/events?actor=nobody-at-all&limit=100${cursor ? `&cursor=${cursor}` : ""}`);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json.events, []);
    cursor = r.json.next_cursor;
    answers++;
    assert.ok(answers < 500, "the cursors end");
  } while (cursor);

  // An actor whose few events lie in many members: each answer opens one
  // member and says where to go on, even when it holds none of them; the
  // answers together list them all, once, newest first.
  const counts = new Map();
  for (const e of lines) if (e.actor) counts.set(e.actor, (counts.get(e.actor) ?? 0) + 1);
  const [actor, n] = [...counts].filter(([, k]) => k >= 5).sort((a, b) => a[1] - b[1])[0] ?? [];
  assert.ok(actor, "an actor with a few events");
  const want = lines.filter((e) => e.actor === actor).sort((a, b) => Date.parse(b.occurred_at) - Date.parse(a.occurred_at));
  cursor = null;
  answers = 0;
  const got = [];
  do {
    const r = await c.api("GET", `/api/v1/connections/${conn.id}/events?actor=${encodeURIComponent(actor)}&limit=${n + 1}${cursor ? `&cursor=${cursor}` : ""}`);
    assert.equal(r.status, 200, r.text);
    got.push(...r.json.events.map((e) => e.id));
    cursor = r.json.next_cursor;
    answers++;
    assert.ok(answers < 500, "the cursors end");
  } while (cursor);
  assert.ok(answers >= 2, `one member an answer: ${answers} answers for ${want.length} events`);
  assert.deepEqual([...got].sort(), want.map((e) => e.id).sort(), "every event of the actor once");
  assert.equal(new Set(got).size, got.length, "none twice");

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
