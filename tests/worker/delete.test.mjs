// Delete is durable and idempotent, in workerd against the simulator: the
// connection leaves every route at once, a purge too large for one request
// goes on through the object's alarm (202 until it ends, then 204), nothing
// of it is left in D1, the object or R2, and no sink hears of it again.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { startWorker, startSim, stateText } from "../support/harness.mjs";
import { client, waitFor, SOURCES, truth } from "../support/pulls.mjs";

const stops = [];
after(async () => {
  for (const stop of stops.reverse()) await stop().catch(() => {});
});

/** A webhook receiver that takes every call and notes the event ids. */
async function startHook() {
  const hook = { calls: 0, got: new Set() };
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      hook.calls++;
      for (const d of JSON.parse(body).data ?? []) hook.got.add(d.id);
      res.writeHead(204);
      res.end();
    });
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  stops.push(() => new Promise((ok) => { server.closeAllConnections?.(); server.close(ok); }));
  hook.url = `http://127.0.0.1:${server.address().port}/in`;
  return hook;
}

/** A connection backfilled, with every stored event at the hook. */
async function connectedAndDelivered(c, sim, hook, name) {
  const sink = await c.api("POST", "/api/v1/sinks", {
    name: "hook", kind: "webhook", url: hook.url,
    streams: ["events"], connection_ids: null, format: "contract",
  });
  assert.equal(sink.status, 201, sink.text);
  const conn = await c.connect(sim, name);
  await c.waitCaughtUp(conn.id);
  const stored = (await c.stored(conn.id)).lines.map((e) => e.id);
  await waitFor("the sink has every event", async () => stored.every((id) => hook.got.has(id)), 60_000);
  return conn;
}

/** DELETE asked again until 204 (202 while the purge runs). */
async function deleteUntilPurged(c, conn, timeoutMs) {
  await waitFor("the purge ends", async () => {
    const status = (await c.api("DELETE", `/api/v1/connections/${conn.id}`)).status;
    assert.ok(status === 202 || status === 204, `DELETE answered ${status}`);
    return status === 204;
  }, timeoutMs);
}

/** After the cron: no sink call since the delete, no record left anywhere. */
async function assertNothingLeft(worker, sim, conn, hook, callsAtDelete) {
  assert.equal(await worker.cron(), 200);
  await new Promise((r) => setTimeout(r, 1_500));
  assert.ok(hook.calls - callsAtDelete <= 1, `no sink call after the delete (one in flight at most): ${hook.calls - callsAtDelete}`);
  const every = [];
  for (const table of SOURCES) every.push(...await truth(sim, table, conn.backfill.from));
  const state = stateText(worker.persist);
  const left = every.filter((id) => state.includes(id));
  assert.deepEqual(left.slice(0, 5), [], `${left.length} of the connection's records still stored`);
}

test("a delete too large for one request answers 202, goes on by itself, then 204; nothing remains and no sink call follows", async () => {
  const hook = await startHook();
  // Small pages and a purge of three archive objects a step: many steps.
  const [worker, sim] = await Promise.all([
    startWorker({ vars: { PULL_PAGE_SIZE: "100", PURGE_OBJECTS_PER_STEP: "3" } }),
    startSim(["--days", "2", "--events-per-day", "400", "--seed", "404"]),
  ]);
  stops.push(() => worker.stop(), () => sim.stop());
  const c = client(worker);
  const conn = await connectedAndDelivered(c, sim, hook, "to-delete");

  const first = await c.api("DELETE", `/api/v1/connections/${conn.id}`);
  assert.equal(first.status, 202, `a purge of many objects three at a time is not done at once: ${first.status} ${first.text}`);
  assert.equal(first.json.purge, "running");
  const callsAtDelete = hook.calls;
  // Gone from every route at once.
  assert.equal((await c.api("GET", `/api/v1/connections/${conn.id}`)).status, 404);
  assert.equal((await c.api("GET", `/api/v1/connections/${conn.id}/events`)).status, 404);
  assert.ok(!(await c.api("GET", "/api/v1/connections")).text.includes(conn.id));
  // Asked again until it ends: 202 while the purge runs, then 204.
  await deleteUntilPurged(c, conn, 60_000);
  assert.equal((await c.api("DELETE", `/api/v1/connections/${conn.id}`)).status, 204, "idempotent once purged");
  await assertNothingLeft(worker, sim, conn, hook, callsAtDelete);
});

test("the archive failing in the middle of the purge: a second DELETE still ends with nothing of the connection anywhere, and no sink call after the first", async () => {
  const hook = await startHook();
  // Two purge steps fail after deleting their first five objects each.
  const [worker, sim] = await Promise.all([
    startWorker({ vars: { PULL_PAGE_SIZE: "100", PURGE_OBJECTS_PER_STEP: "5", TEST_PURGE_FAULTS: "2" } }),
    startSim(["--days", "2", "--events-per-day", "300", "--seed", "405"]),
  ]);
  stops.push(() => worker.stop(), () => sim.stop());
  const c = client(worker);
  const conn = await connectedAndDelivered(c, sim, hook, "purge-faults");

  const first = await c.api("DELETE", `/api/v1/connections/${conn.id}`);
  assert.equal(first.status, 202, `${first.status} ${first.text}`);
  const callsAtDelete = hook.calls;
  assert.equal((await c.api("GET", `/api/v1/connections/${conn.id}`)).status, 404, "gone at once");
  await waitFor("both injected failures", async () => (worker.logs().match(/TEST_PURGE_FAULTS: the archive failed/g) ?? []).length >= 2, 30_000);
  // Asked again: the purge goes on from where it failed, to the end.
  await deleteUntilPurged(c, conn, 90_000);
  await assertNothingLeft(worker, sim, conn, hook, callsAtDelete);
});
