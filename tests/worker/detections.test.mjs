// Detections, in workerd against the simulator: attacks planted in the
// backfilled days are alerts right after the connect's backfill, each once
// however often its events are read; new ones arrive with the next pull;
// the admin acknowledges and closes them; they leave with their connection.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, startSim } from "../support/harness.mjs";
import { client, waitFor } from "../support/pulls.mjs";

let worker, c, sim, conn;
const planted = {};
before(async () => {
  sim = await startSim(["--days", "3", "--events-per-day", "300", "--seed", "101"]);
  worker = await startWorker();
  c = client(worker);
});
after(async () => {
  await worker?.stop();
  await sim?.stop();
});

async function plant(name, agoSecs) {
  const at = Math.floor(Date.now() / 1000) - agoSecs;
  const r = await fetch(`${sim.instance_url}/__sim/scenario`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ name, at }) });
  const body = await r.json();
  assert.equal(r.status, 200, JSON.stringify(body));
  planted[name] = body;
  return body;
}

async function alerts(query = "") {
  const r = await c.api("GET", `/api/v1/alerts?connection_id=${conn.id}&limit=1000${query}`);
  assert.equal(r.status, 200, r.text);
  return r.json.alerts;
}

test("attacks in the backfilled days are alerts once the backfill is in, with evidence and ATT&CK ids", async () => {
  // Two days ago, in the window the connect backfills.
  for (const [i, name] of ["failed_login_burst", "password_spray", "inactive_login", "admin_impersonation", "elevation", "mass_delete", "bulk_export"].entries()) {
    await plant(name, 2 * 86400 - i * 3600);
  }
  conn = await c.connect(sim, "detections");
  await c.waitCaughtUp(conn.id);
  const all = await alerts();
  const find = (rule, pred) => all.filter((a) => a.rule === rule && pred(a));
  const burst = planted.failed_login_burst;
  const expect = [
    ["failed_login_burst", (a) => a.actor === burst.actor],
    ["login_after_failures", (a) => a.actor === burst.actor],
    ["password_spray", (a) => a.source_ip === planted.password_spray.ip],
    ["login_by_inactive_user", (a) => a.actor === planted.inactive_login.actor],
    ["admin_impersonated", (a) => a.actor === planted.admin_impersonation.actor && a.title.includes(planted.admin_impersonation.target)],
    ["security_elevation", (a) => a.actor === planted.elevation.actor],
    ["mass_delete", (a) => a.actor === planted.mass_delete.actor],
    ["bulk_export", (a) => a.actor === planted.bulk_export.actor],
  ];
  for (const [rule, pred] of expect) {
    const hits = find(rule, pred);
    assert.equal(hits.length, 1, `${rule}: ${JSON.stringify(all.filter((a) => a.rule === rule).map((a) => [a.actor, a.source_ip, a.title]))}`);
    const a = hits[0];
    assert.equal(a.status, "open");
    assert.ok(a.event_ids.length > 0 && a.attack.length > 0 && a.summary && a.title, JSON.stringify(a));
    assert.ok(["critical", "high", "medium", "low"].includes(a.severity));
    assert.match(a.id, /^al_[0-9a-f]{16}$/);
  }
  assert.equal(find("failed_login_burst", (a) => a.actor === burst.actor)[0].count, 12);
  assert.equal(find("password_spray", () => true).find((a) => a.source_ip === planted.password_spray.ip).count, 12);
  assert.ok(find("mass_delete", (a) => a.actor === planted.mass_delete.actor)[0].count >= 100);
  // The evidence is the planted events: they read back through the events API.
  const evidence = find("failed_login_burst", (a) => a.actor === burst.actor)[0].event_ids;
  const events = (await c.api("GET", `/api/v1/connections/${conn.id}/events?kind=login_failed&actor=${encodeURIComponent(burst.actor)}&limit=1000`)).json.events.map((e) => e.id);
  for (const id of evidence) assert.ok(events.includes(id), `${id} is an event of the connection`);
  const connection = await c.connection(conn.id);
  assert.equal(connection.open_alerts, all.length);
});

test("reading the same events again raises nothing new", async () => {
  const before = await alerts();
  // The next pulls re-read the overlap before each cursor.
  for (let i = 0; i < 2; i++) {
    const runs = (await c.api("GET", `/api/v1/connections/${conn.id}/runs`)).json.runs.length;
    assert.equal((await c.api("POST", `/api/v1/connections/${conn.id}/pull`)).status, 202);
    await waitFor("the pull", async () => (await c.api("GET", `/api/v1/connections/${conn.id}/runs`)).json.runs.length > runs);
  }
  const after = await alerts();
  assert.deepEqual(after.map((a) => [a.id, a.count]).sort(), before.map((a) => [a.id, a.count]).sort());
});

test("a new admin grant and a posture drift are alerts after the next pull", async () => {
  const accounts = (await c.api("GET", `/api/v1/connections/${conn.id}/accounts?limit=1000`)).json.accounts;
  const plain = accounts.find((a) => a.active && !a.privileged && a.user_name.includes("."));
  const r = await fetch(`${sim.instance_url}/__sim/users`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ user_name: plain.user_name, grant: "admin" }) });
  assert.equal(r.status, 200);
  await plant("posture_drift", 0);
  assert.equal((await c.api("POST", `/api/v1/connections/${conn.id}/pull`)).status, 202);
  await waitFor("the grant and the drift", async () => {
    const all = await alerts();
    return all.some((a) => a.rule === "admin_role_granted" && a.title === `admin granted to ${plain.user_name}`) && all.some((a) => a.rule === "posture_drift");
  }, 60_000).catch(async (e) => {
    const all = await alerts();
    const ev = (await c.api("GET", `/api/v1/connections/${conn.id}/events?limit=20`)).json.events.map((x) => [x.kind, x.source_table, x.actor, x.target, x.new_value]);
    console.log(JSON.stringify({ rules: all.filter((a) => ["admin_role_granted", "posture_drift"].includes(a.rule)).map((a) => a.title), plain: plain.user_name, ev }, null, 1));
    if (process.env.SNC_DEBUG) console.log(worker.logs().split("\n").filter((l) => /alert|detect|pull [0-9a-f]/.test(l)).slice(-20).join("\n"));
    throw e;
  });
  const drift = (await alerts("&rule=posture_drift"))[0];
  assert.match(drift.title, /glide\.ui\.session_timeout/);
  assert.match(drift.summary, /480/);
  assert.equal(drift.severity, "high", "the session timeout check's own severity");
});

test("acknowledge and close, filters, paging and the OCSF export", async () => {
  const all = await alerts();
  const [first, second] = all;
  const ack = await c.api("PATCH", `/api/v1/alerts/${first.id}`, { status: "acknowledged" });
  assert.equal(ack.status, 200, ack.text);
  assert.equal(ack.json.status, "acknowledged");
  assert.equal((await c.api("PATCH", `/api/v1/alerts/${second.id}`, { status: "closed" })).json.status, "closed");
  assert.equal((await c.connection(conn.id)).open_alerts, all.length - 2);
  assert.deepEqual((await alerts("&status=acknowledged")).map((a) => a.id), [first.id]);
  const bad = await c.api("PATCH", `/api/v1/alerts/${first.id}`, { status: "done" });
  assert.equal(bad.status, 422);
  assert.equal((await c.api("PATCH", `/api/v1/alerts/al_${"0".repeat(16)}`, { status: "closed" })).status, 404);
  assert.equal((await c.api("GET", "/api/v1/alerts?status=bogus")).status, 422);
  assert.equal((await c.api("GET", "/api/v1/alerts?rule=bogus")).status, 422);
  // Paging walks every alert once.
  const seen = [];
  let cursor = null;
  do {
    const r = await c.api("GET", `/api/v1/alerts?connection_id=${conn.id}&limit=3${cursor ? `&cursor=${cursor}` : ""}`);
    seen.push(...r.json.alerts.map((a) => a.id));
    cursor = r.json.next_cursor;
  } while (cursor);
  assert.deepEqual([...seen].sort(), all.map((a) => a.id).sort());
  assert.equal(new Set(seen).size, seen.length);
  const nd = await fetch(`${worker.url}/api/v1/alerts.ndjson?connection_id=${conn.id}&format=ocsf`, { headers: { authorization: `Bearer ${worker.adminToken}` } });
  assert.equal(nd.status, 200);
  const lines = (await nd.text()).trim().split("\n").map((l) => JSON.parse(l));
  assert.equal(lines.length, all.length);
  assert.ok(lines.every((l) => l.class_uid === 2004 && l.finding_info.uid.startsWith("al_") && l.finding_info.attacks.length > 0));
  assert.equal(lines.find((l) => l.finding_info.uid === first.id).status, "acknowledged");
});

test("deleting the connection takes its alerts", async () => {
  assert.equal((await c.api("DELETE", `/api/v1/connections/${conn.id}`)).status, 204);
  const r = await c.api("GET", `/api/v1/alerts?connection_id=${conn.id}`);
  assert.deepEqual(r.json.alerts, []);
});
