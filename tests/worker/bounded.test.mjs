// Bounded reads, in workerd against the simulator: a page answer larger
// than the worker's cap is not read whole; the page is asked again smaller
// and every record is still stored exactly once. Local workerd does not
// enforce a deployed isolate's 128 MB, so the test lowers the cap itself
// (ANSWER_CAP_BYTES) rather than sending 128 MB.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, startSim } from "../support/harness.mjs";
import { client } from "../support/pulls.mjs";

const stops = [];
after(async () => {
  for (const stop of stops.reverse()) await stop().catch(() => {});
});

test("a page answer over the cap is refused unread, the page shrinks, and every record is stored once", async () => {
  const CAP = 256 * 1024;
  const [worker, sim] = await Promise.all([
    startWorker({ vars: { ANSWER_CAP_BYTES: String(CAP) } }),
    startSim(["--days", "2", "--events-per-day", "3000", "--seed", "512"]),
  ]);
  stops.push(() => worker.stop(), () => sim.stop());
  // What a whole first page of the busiest table weighs: over the cap.
  const probe = await fetch(`${sim.instance_url}/api/now/v2/table/syslog_transaction?sysparm_limit=10000`, {
    headers: { authorization: `Basic ${Buffer.from(`${sim.username}:${sim.password}`).toString("base64")}`, accept: "application/json" },
  });
  const whole = (await probe.arrayBuffer()).byteLength;
  assert.ok(whole > CAP, `a default page (${whole} bytes) is over the ${CAP}-byte cap`);
  const c = client(worker);
  const conn = await c.connect(sim, "bounded");
  await c.waitCaughtUp(conn.id, { timeoutMs: 180_000 });
  await c.assertExactlyOnce(sim, conn);
  // The runs say the pages were asked again smaller, not that they failed.
  const runs = (await c.api("GET", `/api/v1/connections/${conn.id}/runs`)).json.runs;
  assert.ok(runs.every((r) => r.outcome !== "failed"), JSON.stringify(runs.slice(0, 3)));
  assert.ok(worker.logs().includes("larger than"), "the refusal is logged");
});
