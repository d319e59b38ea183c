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

test("a record over the cap on its own is stored without its oversize field, every other record once, and the run history says so", async () => {
  // 10,000 transactions with 8 KB URLs (80 MB as one page) and one with a
  // 20 MB URL among them, against an 8 MB cap: pages shrink to what the
  // cap holds, the huge record is read alone, then field by field.
  const CAP = 8 * 1024 * 1024;
  const [worker, sim] = await Promise.all([
    startWorker({ vars: { ANSWER_CAP_BYTES: String(CAP) } }),
    startSim(["--days", "1", "--events-per-day", "40", "--seed", "513"]),
  ]);
  stops.push(() => worker.stop(), () => sim.stop());
  const url = { url: "/nav_to.do?uri=" };
  // Half an hour ago: past the overlap each run reads again for late commits.
  const { now } = await (await fetch(`${sim.instance_url}/__sim/stats`)).json();
  const created_on = now - 1800;
  const many = await sim.control("insert", { table: "syslog_transaction", count: 10_000, created_on, spread_secs: 60, fields: url, field_bytes: { url: 8 * 1024 } });
  assert.equal(many.inserted, 10_000, JSON.stringify(many).slice(0, 300));
  const one = await sim.control("insert", { table: "syslog_transaction", count: 1, created_on: created_on + 30, fields: url, field_bytes: { url: 20 * 1024 * 1024 } });
  const [huge] = one.sys_ids;
  assert.ok(huge, JSON.stringify(one));
  const refused = await sim.control("insert", { table: "syslog_transaction", count: 1, fields: { no_such_field: "x" } });
  assert.match(refused.error ?? "", /not a field/, "the simulator refuses a field the table lacks");

  const c = client(worker);
  const conn = await c.connect(sim, "huge-record");
  await c.waitCaughtUp(conn.id, { timeoutMs: 300_000 });
  const lines = await c.assertExactlyOnce(sim, conn);
  const cut = lines.filter((e) => e.truncated_fields);
  assert.deepEqual(cut.map((e) => [e.id, e.truncated_fields]), [[`syslog_transaction:${huge}`, ["url"]]]);
  assert.equal(cut[0].raw.url, undefined, "stored without the field");
  assert.equal(cut[0].raw.sys_id, huge);
  assert.ok(cut[0].raw.remote_ip || cut[0].raw.session, "its other fields are kept");
  assert.ok(lines.filter((e) => e.source_table === "syslog_transaction" && e.raw.url?.length === 8 * 1024).length === 10_000, "the long URLs are kept whole");
  const runs = (await c.api("GET", `/api/v1/connections/${conn.id}/runs`)).json.runs;
  assert.ok(runs.every((r) => r.outcome !== "failed"), JSON.stringify(runs.slice(0, 3)));
  // Bounded calls: pages sized by what the records weigh (half the cap),
  // about 14 halvings to the huge record, a few reads of its fields.
  const { reads_by_table } = await (await fetch(`${sim.instance_url}/__sim/stats`)).json();
  assert.ok(reads_by_table.syslog_transaction <= 60, `syslog_transaction read ${reads_by_table.syslog_transaction} times`);
  assert.ok(runs.some((r) => (r.detail ?? "").includes(`record_truncated: syslog_transaction:${huge}`)), JSON.stringify(runs.map((r) => r.detail)));
});
