// Retention: the scheduled run drops events older than EVENT_RETENTION_DAYS
// and the connection's count follows.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, startSim } from "../support/harness.mjs";
import { client, waitFor } from "../support/pulls.mjs";

let worker, sim, c;
before(async () => {
  [worker, sim] = await Promise.all([
    startWorker({ vars: { EVENT_RETENTION_DAYS: "3", LEASE_SECS: "3" } }),
    startSim(["--days", "7", "--events-per-day", "300", "--seed", "31"]),
  ]);
  c = client(worker);
});
after(async () => {
  await worker?.stop();
  await sim?.stop();
});

test("the cron drops events past the retention and recounts", async () => {
  const conn = await c.connect(sim, "retention");
  const done = await c.waitCaughtUp(conn.id);
  const { lines } = await c.stored(conn.id);
  const cutoff = new Date(Date.now() - 3 * 86400 * 1000).toISOString();
  const old = lines.filter((e) => e.occurred_at < cutoff).length;
  assert.ok(old > 100, `${old} events older than the retention`);
  assert.equal(done.event_count, lines.length);
  await c.api("PATCH", `/api/v1/connections/${conn.id}`, { enabled: false }); // keep pulls out of the count
  assert.equal(await worker.cron(), 200);
  const after = await waitFor("retention applied", async () => {
    const x = await c.connection(conn.id);
    return x.event_count < lines.length ? x : null;
  }, 20_000);
  const kept = (await c.stored(conn.id)).lines;
  assert.equal(kept.length, after.event_count, "the count follows the rows");
  // The worker's clock and ours differ by the test's own seconds: allow a minute.
  const slack = new Date(Date.parse(cutoff) - 60_000).toISOString();
  const nearCutoff = lines.filter((e) => e.occurred_at >= slack && e.occurred_at < new Date(Date.parse(cutoff) + 60_000).toISOString()).length;
  assert.ok(kept.every((e) => e.occurred_at >= slack), "nothing past the retention kept");
  assert.ok(Math.abs(kept.length - (lines.length - old)) <= nearCutoff, `${kept.length} kept of ${lines.length}, ${old} old`);
});
