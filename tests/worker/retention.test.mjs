// Retention: a connection's object trims its index to EVENT_RETENTION_DAYS
// and deletes the archive objects wholly past it; nothing older is listed,
// nothing within it is lost.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { startWorker, startSim } from "../support/harness.mjs";
import { client, truth, SOURCES } from "../support/pulls.mjs";

let worker, sim, c;
before(async () => {
  [worker, sim] = await Promise.all([
    startWorker({ vars: { EVENT_RETENTION_DAYS: "3", PULL_PAGE_SIZE: "500" } }),
    startSim(["--days", "7", "--events-per-day", "300", "--seed", "31"]),
  ]);
  c = client(worker);
});
after(async () => {
  await worker?.stop();
  await sim?.stop();
});

/** The events of every archive object in the local R2 state. */
function archivedObjects(dir) {
  const out = [];
  const walk = (d) => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) { walk(p); continue; }
      const bytes = readFileSync(p);
      if (bytes[0] !== 0x1f || bytes[1] !== 0x8b) continue;
      out.push(gunzipSync(bytes).toString("utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l)));
    }
  };
  walk(dir);
  return out;
}

test("nothing past the retention is listed or archived, nothing within it is lost", async () => {
  const conn = await c.connect(sim, "retention");
  const done = await c.waitCaughtUp(conn.id);
  const cutoff = Date.now() - 3 * 86400 * 1000;
  // The worker's clock and ours differ by the test's own seconds: allow a minute.
  const slack = 60_000;
  const { lines } = await c.stored(conn.id);
  assert.ok(lines.length > 500, `${lines.length} events kept`);
  assert.equal(done.event_count, lines.length, "the count follows the index");
  assert.ok(lines.every((e) => Date.parse(e.occurred_at) >= cutoff - slack), "nothing past the retention is listed");
  const have = new Set(lines.map((e) => e.id));
  for (const table of SOURCES) {
    const want = await truth(sim, table, new Date(cutoff + slack).toISOString());
    const missing = want.filter((id) => !have.has(`${table}:${id}`));
    assert.deepEqual(missing, [], `${table}: records within the retention missing`);
  }
  const objects = archivedObjects(worker.persist);
  assert.ok(objects.length > 0, "the scan reads the archive");
  const stale = objects.filter((events) => events.every((e) => Date.parse(e.occurred_at) < cutoff - slack));
  assert.equal(stale.length, 0, `${stale.length} archive objects wholly past the retention are still stored`);
});
