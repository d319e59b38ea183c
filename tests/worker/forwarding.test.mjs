// Forwarding, in workerd against the simulator, to receivers started here:
// a Standard Webhooks receiver (signatures checked with the standardwebhooks
// package), Splunk HEC, Elastic _bulk and Sentinel's Logs Ingestion API, each
// checking its wire format. They fail at first (5xx, 429 + Retry-After, a
// hang past the timeout; HEC is down for the whole backfill), and every
// stored event and alert must still reach every matching sink, with the
// repeats each receiver saw counted.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { Webhook } from "standardwebhooks";
import { startWorker, startSim, stateText } from "../support/harness.mjs";
import { client } from "../support/pulls.mjs";

let worker, sim, c;
const seen = []; // every API answer, for the secret scan
const HEC_TOKEN = "hec-7c1d-secret-token";
const ES_KEY = "es-api-key-0b55";
const SENTINEL = { tenant_id: "tenant-1", client_id: "client-1", client_secret: "sentinel-secret-99", dcr_immutable_id: "dcr-abc", stream_name: "Custom-ServiceNow_CL" };

/** A receiver: `plan` answers the next requests (then 200s); `got` keeps ids. */
async function receiver(name, handle) {
  const r = { name, got: new Map(), statuses: new Map(), calls: 0, plan: [], errors: [], url: null };
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", async () => {
      r.calls++;
      const step = r.plan.shift();
      if (step === "hang") return; // past the worker's timeout; never answered
      if (typeof step === "number") {
        res.writeHead(step, step === 429 ? { "retry-after": "1" } : {});
        return res.end(`planned ${step}`);
      }
      try {
        await handle(req, body, res, r);
      } catch (e) {
        // The answer never echoes what was sent (it may hold a credential).
        r.errors.push(String(e?.message ?? e));
        res.writeHead(400);
        res.end("malformed delivery");
      }
    });
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  r.url = `http://127.0.0.1:${server.address().port}`;
  r.close = () => { server.closeAllConnections?.(); return new Promise((ok) => server.close(ok)); };
  r.note = (id) => r.got.set(id, (r.got.get(id) ?? 0) + 1);
  r.repeats = () => [...r.got.values()].reduce((a, n) => a + n - 1, 0);
  return r;
}

let hook, hec, es, sentinel, gone;
let hookSecret = null;

before(async () => {
  hook = await receiver("webhook", async (req, body, res, r) => {
    new Webhook(hookSecret).verify(body, req.headers);
    const msg = JSON.parse(body);
    assert.ok(["events", "alerts"].includes(msg.type));
    for (const d of msg.data) {
      r.note(`${msg.type}:${d.id}`);
      if (msg.type === "alerts") r.statuses.set(d.id, d.status);
    }
    res.writeHead(204);
    res.end();
  });
  hec = await receiver("splunk_hec", async (req, body, res, r) => {
    assert.equal(req.headers.authorization, `Splunk ${HEC_TOKEN}`);
    for (const line of body.split("\n").filter(Boolean)) {
      const env = JSON.parse(line);
      for (const k of ["time", "host", "source", "sourcetype", "event"]) assert.ok(k in env, `HEC envelope without ${k}`);
      assert.equal(typeof env.time, "number");
      assert.equal(env.event.class_uid !== undefined, true, "OCSF records");
      r.note(env.fields.event_id);
    }
    res.writeHead(200, { "content-type": "application/json" });
    res.end('{"text":"Success","code":0}');
  });
  es = await receiver("elastic", async (req, body, res, r) => {
    assert.equal(req.url, "/_bulk");
    if (req.headers.authorization !== `ApiKey ${ES_KEY}`) {
      res.writeHead(401, { "content-type": "application/json" });
      return res.end('{"error":{"type":"security_exception","reason":"unable to authenticate with provided credentials"},"status":401}');
    }
    const lines = body.split("\n").filter(Boolean);
    const items = [];
    for (let i = 0; i < lines.length; i += 2) {
      const action = JSON.parse(lines[i]);
      const doc = JSON.parse(lines[i + 1]);
      assert.ok(action.create, "create, so a repeat is refused");
      assert.equal(action.create._index, "logs-servicenow-default");
      // `_id` names the connection too: two connections to identical
      // instances hold the same event ids.
      assert.ok(doc["@timestamp"] && action.create._id === `${doc.servicenow?.connection_id}:${doc.event?.id}`, "ECS with the connection and event id as _id");
      const dup = r.got.has(doc.event.id);
      r.note(doc.event.id);
      items.push({ create: { _id: action.create._id, status: dup ? 409 : 201 } });
    }
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ errors: items.some((x) => x.create.status !== 201), items }));
  });
  sentinel = await receiver("sentinel", async (req, body, res, r) => {
    if (req.url === "/token") {
      const form = new URLSearchParams(body);
      assert.equal(form.get("grant_type"), "client_credentials");
      assert.equal(form.get("client_secret"), SENTINEL.client_secret);
      assert.equal(form.get("scope"), "https://monitor.azure.com//.default");
      res.writeHead(200, { "content-type": "application/json" });
      return res.end(JSON.stringify({ access_token: "azure-token-1", expires_in: 3600, token_type: "Bearer" }));
    }
    assert.equal(req.url, `/dataCollectionRules/${SENTINEL.dcr_immutable_id}/streams/${SENTINEL.stream_name}?api-version=2023-01-01`);
    assert.equal(req.headers.authorization, "Bearer azure-token-1");
    assert.ok(body.length <= 1_000_000, "at most 1 MB per call");
    for (const row of JSON.parse(body)) {
      assert.ok(row.TimeGenerated);
      r.note(`${row.Stream}:${row.EventId}`);
    }
    res.writeHead(204);
    res.end();
  });
  gone = await receiver("gone", async (req, body, res) => { res.writeHead(410); res.end(); });
  [worker, sim] = await Promise.all([
    startWorker({ vars: { PULL_PAGE_SIZE: "400", SINK_TIMEOUT_MS: "1500", SINK_BACKOFF_MAX_SECS: "2" } }),
    startSim(["--days", "8", "--events-per-day", "600", "--seed", "77"]),
  ]);
  c = client(worker);
});
after(async () => {
  await worker?.stop();
  await sim?.stop();
  for (const r of [hook, hec, es, sentinel, gone]) await r?.close();
});

async function api(method, path, body) {
  const r = await c.api(method, `/api/v1${path}`, body);
  seen.push(r.text);
  return r;
}

async function waitFor(what, fn, ms = 180_000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((ok) => setTimeout(ok, 500));
  }
}

async function eventIds(id) {
  const ids = [];
  let cursor = null;
  do {
    const r = await api("GET", `/connections/${id}/events?limit=1000${cursor ? `&cursor=${cursor}` : ""}`);
    assert.equal(r.status, 200, r.text);
    ids.push(...r.json.events.map((e) => e.id));
    cursor = r.json.next_cursor;
  } while (cursor);
  return ids;
}

async function alertIds(id) {
  const r = await api("GET", `/alerts?connection_id=${id}&limit=1000`);
  return r.json.alerts.map((a) => a.id);
}

test("sink URLs and settings are checked; credentials are never answered", async () => {
  // (This worker allows loopback receivers, as tests need: plain
  // 127.0.0.1 and localhost are the only exception.)
  for (const url of ["http://hooks.example.com/x", "https://10.1.2.3/x", "https://169.254.169.254/latest", "https://[fd00::1]/x", "https://printer.local/x", "https://metadata.google.internal/x", "https://user:pw@hooks.example.com/x", "http://10.0.0.5:8088/x"]) {
    const r = await api("POST", "/sinks", { name: "bad", kind: "webhook", url });
    assert.equal(r.status, 422, url);
    assert.equal(r.json.code, "sink_url_forbidden", url);
  }
  const r = await api("POST", "/sinks", { name: "x", kind: "elastic", url: "https://es.example.com", format: "yaml" });
  assert.equal(r.status, 422);
  assert.deepEqual(r.json.errors.map((e) => e.field).sort(), ["api_key", "format", "index"]);
});

let sinks = {};
let conn;

test("every stored event and alert reaches every matching sink, through failures, a hang and a sink down for the whole backfill", async () => {
  // The receivers fail first: 5xx, 429 + Retry-After, a hang past the timeout.
  hook.plan.push(503, 503, 429, "hang", 500);
  es.plan.push(502, 429);
  sentinel.plan.push(503);
  hec.plan.push(...Array(10_000).fill(503)); // down until told otherwise
  const made = await api("POST", "/sinks", { name: "SOC webhook", kind: "webhook", url: `${hook.url}/in`, streams: ["events", "alerts"], format: "contract" });
  assert.equal(made.status, 201, made.text);
  assert.match(made.json.secret, /^whsec_/);
  hookSecret = made.json.secret;
  sinks.hook = made.json;
  sinks.hec = (await api("POST", "/sinks", { name: "Splunk", kind: "splunk_hec", url: `${hec.url}/services/collector/event`, streams: ["events"], format: "ocsf", token: HEC_TOKEN })).json;
  sinks.es = (await api("POST", "/sinks", { name: "Elastic", kind: "elastic", url: es.url, streams: ["events"], format: "ecs", api_key: ES_KEY, index: "logs-servicenow-default" })).json;
  sinks.sentinel = (await api("POST", "/sinks", { name: "Sentinel", kind: "sentinel", url: sentinel.url, streams: ["events", "alerts"], ...SENTINEL, token_url: `${sentinel.url}/token` })).json;
  for (const s of Object.values(sinks)) assert.ok(s.id && s.state === "active", JSON.stringify(s));
  const listed = await api("GET", "/sinks");
  for (const secret of [HEC_TOKEN, ES_KEY, SENTINEL.client_secret, hookSecret]) assert.ok(!listed.text.includes(secret));

  // An attack for the alert stream.
  await fetch(`${sim.instance_url}/__sim/scenario`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ name: "failed_login_burst", variant: "positive", at: Math.floor(Date.now() / 1000) - 7200 }) });
  conn = await c.connect(sim, "forwarded");
  await c.waitCaughtUp(conn.id, { timeoutMs: 300_000 });
  const events = await eventIds(conn.id);
  const alerts = await alertIds(conn.id);
  assert.ok(events.length > 3000, `${events.length} events`);
  assert.ok(alerts.length >= 1, "the attack raised an alert");
  // HEC comes back once the backfill is over, and once it has refused at
  // least one delivery (a backfill done in one slice ends before the
  // sink's first step).
  await waitFor("Splunk refused a delivery", () => hec.calls > 0, 60_000);
  hec.plan.length = 0;

  const missing = (r, ids, prefix = "") => ids.filter((id) => !r.got.has(prefix + id)).length;
  const left = () => ({
    webhook: missing(hook, events, "events:") + missing(hook, alerts, "alerts:"),
    hec: missing(hec, events),
    elastic: missing(es, events),
    sentinel: missing(sentinel, events, "events:") + missing(sentinel, alerts, "alerts:"),
  });
  try {
    await waitFor("every receiver has everything", () => Object.values(left()).every((n) => n === 0));
  } catch (e) {
    const state = (await api("GET", "/sinks")).json.sinks.map((s) => ({ name: s.name, state: s.state, delivered: s.delivered, pending: s.pending, last_error: s.last_error }));
    console.log(JSON.stringify({ left: left(), state }, null, 1));
    console.log(worker.logs().split("\n").filter((l) => /forward|panic|error/i.test(l)).slice(-40).join("\n"));
    throw e;
  }
  for (const r of [hook, hec, es, sentinel]) assert.deepEqual(r.errors, [], `${r.name} saw a malformed delivery`);
  console.log(`forwarding: ${events.length} events, ${alerts.length} alerts; repeats seen: ${[hook, hec, es, sentinel].map((r) => `${r.name} ${r.repeats()}`).join(", ")}; calls: ${[hook, hec, es, sentinel].map((r) => `${r.name} ${r.calls}`).join(", ")}`);

  const after = await waitFor("pending 0", async () => {
    const s = (await api("GET", `/sinks/${sinks.hec.id}`)).json;
    return s.pending === 0 && s.delivered >= events.length ? s : null;
  });
  assert.equal(after.state, "active");
  assert.ok(after.last_success_at);
  assert.ok(after.last_error, "the failures were recorded");
});

test("a webhook answering 410 disables its sink; a refused credential marks the sink failing with the answer", async () => {
  const g = (await api("POST", "/sinks", { name: "Gone", kind: "webhook", url: `${gone.url}/x`, streams: ["events"], connection_ids: [conn.id] })).json;
  const bad = (await api("POST", "/sinks", { name: "Wrong key", kind: "elastic", url: es.url, api_key: "wrong", index: "logs-servicenow-default", streams: ["events"], connection_ids: [conn.id] })).json;
  // New sinks start at "now": a pull stores something new for them to send.
  await fetch(`${sim.instance_url}/__sim/scenario`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ name: "failed_login_burst", variant: "below", at: Math.floor(Date.now() / 1000) - 60 }) });
  await api("POST", `/connections/${conn.id}/pull`);
  const disabled = await waitFor("410 disables", async () => {
    const s = (await api("GET", `/sinks/${g.id}`)).json;
    return s.state === "disabled" ? s : null;
  }, 60_000);
  assert.equal(disabled.last_error.status, 410);
  const failing = await waitFor("401 marks failing", async () => {
    const s = (await api("GET", `/sinks/${bad.id}`)).json;
    return s.state === "failing" ? s : null;
  }, 60_000);
  assert.equal(failing.last_error.status, 401, JSON.stringify(failing.last_error));
  assert.match(failing.last_error.message, /unable to authenticate/, "the receiver's answer is kept");
  assert.ok(failing.pending > 0, "the backlog is kept");
  const calls = gone.calls;
  await new Promise((ok) => setTimeout(ok, 3000));
  assert.equal(gone.calls, calls, "a disabled sink is not called again");
  assert.equal((await api("DELETE", `/sinks/${g.id}`)).status, 204);
  assert.equal((await api("DELETE", `/sinks/${bad.id}`)).status, 204);
  assert.equal((await api("GET", `/sinks/${bad.id}`)).status, 404);
});

test("test deliveries answer what the receiver said; a replay delivers a range again", async () => {
  const t = await api("POST", `/sinks/${sinks.hook.id}/test`);
  assert.equal(t.status, 200, t.text);
  assert.equal(t.json.delivered, true, t.text);
  // The attack's alert was raised hours before the newest events: the first
  // range starts after its last sighting, so it holds events and no alert.
  const alert = (await api("GET", `/alerts?connection_id=${conn.id}&rule=failed_login_burst&limit=10`)).json.alerts[0];
  assert.ok(alert, "the attack's alert");
  const iso = (ms) => new Date(ms).toISOString().replace(/\.\d+Z$/, "Z");
  const newest = (await api("GET", `/connections/${conn.id}/events?limit=50`)).json.events;
  const from = iso(Math.max(Date.parse(newest[newest.length - 1].occurred_at), Date.parse(alert.last_seen) + 1000));
  const to = iso(Date.parse(newest[0].occurred_at) + 1000);
  const list = newest.filter((e) => e.occurred_at >= from);
  assert.ok(list.length > 0, "events after the alert");
  const before = new Map(hook.got);
  const r = await api("POST", `/sinks/${sinks.hook.id}/replay`, { from, to });
  assert.equal(r.status, 202, r.text);
  await waitFor("the range again", () => list.every((e) => (hook.got.get(`events:${e.id}`) ?? 0) > (before.get(`events:${e.id}`) ?? 0)), 60_000);
  await new Promise((ok) => setTimeout(ok, 3000)); // the replay's alerts part ends
  assert.equal(hook.got.get(`alerts:${alert.id}`), before.get(`alerts:${alert.id}`), "an alert outside the range is not replayed");

  // A sink made and asked for a replay in the same second (as a script
  // does) replays: the ask is newer than the sink's start.
  const fresh = (await api("POST", "/sinks", { name: "Splunk, with history", kind: "splunk_hec", url: `${hec.url}/services/collector/event`, streams: ["events"], format: "ocsf", token: HEC_TOKEN, connection_ids: [conn.id] })).json;
  const hecBefore = new Map(hec.got);
  assert.equal((await api("POST", `/sinks/${fresh.id}/replay`, { from, to })).status, 202);
  await waitFor("the new sink's replay", () => list.every((e) => (hec.got.get(e.id) ?? 0) > (hecBefore.get(e.id) ?? 0)), 60_000);
  assert.equal((await api("DELETE", `/sinks/${fresh.id}`)).status, 204);

  // Then the alert's own range: its events, and the alert again after them.
  const evidence = alert.event_ids;
  assert.ok(evidence.length > 0);
  const again = new Map(hook.got);
  const r2 = await api("POST", `/sinks/${sinks.hook.id}/replay`, { from: alert.first_seen, to: iso(Date.parse(alert.last_seen) + 1000) });
  assert.equal(r2.status, 202, r2.text);
  await waitFor("the alert's range again, its alert included", () =>
    (hook.got.get(`alerts:${alert.id}`) ?? 0) > (again.get(`alerts:${alert.id}`) ?? 0)
    && evidence.every((id) => (hook.got.get(`events:${id}`) ?? 0) > (again.get(`events:${id}`) ?? 0)), 60_000);
});

test("an admin's change of an alert's status reaches the sinks taking alerts", async () => {
  const alert = (await api("GET", `/alerts?connection_id=${conn.id}&rule=failed_login_burst&limit=10`)).json.alerts[0];
  const sent = hook.got.get(`alerts:${alert.id}`) ?? 0;
  assert.ok(sent >= 1, "the alert was sent before");
  assert.equal(hook.statuses.get(alert.id), "open");
  const r = await api("PATCH", `/alerts/${alert.id}`, { status: "acknowledged" });
  assert.equal(r.status, 200, r.text);
  // It goes with the connection's next step (the pull interval, 5 minutes):
  // a pull asked for brings that step now.
  assert.equal((await api("POST", `/connections/${conn.id}/pull`)).status, 202);
  await waitFor("the alert again, acknowledged", () => (hook.got.get(`alerts:${alert.id}`) ?? 0) > sent && hook.statuses.get(alert.id) === "acknowledged", 60_000);
  const sentinelSent = sentinel.got.get(`alerts:${alert.id}`) ?? 0;
  const closed = await api("PATCH", `/alerts/${alert.id}`, { status: "closed" });
  assert.equal(closed.status, 200, closed.text);
  assert.equal((await api("POST", `/connections/${conn.id}/pull`)).status, 202);
  await waitFor("the alert again, closed, at every sink taking alerts", () => hook.statuses.get(alert.id) === "closed" && (sentinel.got.get(`alerts:${alert.id}`) ?? 0) > sentinelSent, 60_000);
});

test("no sink credential in any answer, log line or byte of local state", async () => {
  const state = stateText(worker.persist);
  const logs = worker.logs();
  for (const s of [HEC_TOKEN, ES_KEY, SENTINEL.client_secret, hookSecret.slice(6)]) {
    const at = state.indexOf(s);
    assert.ok(at < 0, `a sink credential stored in plaintext: …${state.slice(Math.max(0, at - 200), at + 60).replace(/[^ -~]/g, ".")}…`);
    assert.ok(!logs.includes(s), "a sink credential in the log");
  }
  const answers = seen.filter((t) => !t.includes('"secret":"whsec_')).join("\n");
  for (const s of [HEC_TOKEN, ES_KEY, SENTINEL.client_secret, hookSecret]) assert.ok(!answers.includes(s), "a sink credential in an answer");
});

test("deleting the connection stops its forwarding", async () => {
  assert.equal((await api("DELETE", `/connections/${conn.id}`)).status, 204);
  const calls = hook.calls;
  await new Promise((ok) => setTimeout(ok, 3000));
  assert.equal(hook.calls, calls);
  const s = (await api("GET", `/sinks/${sinks.hook.id}`)).json;
  assert.equal(s.pending, 0);
});

test("a worker killed mid-delivery and started again delivers everything, repeats counted", async () => {
  let secret = null;
  const slow = await receiver("slow webhook", async (req, body, res, r) => {
    new Webhook(secret).verify(body, req.headers);
    const msg = JSON.parse(body);
    await new Promise((ok) => setTimeout(ok, 150));
    for (const d of msg.data) r.note(`${msg.type}:${d.id}`);
    res.writeHead(200);
    res.end();
  });
  const sim2 = await startSim(["--days", "3", "--events-per-day", "900", "--seed", "78"]);
  const vars = { PULL_PAGE_SIZE: "300", SINK_TIMEOUT_MS: "1500", SINK_BACKOFF_MAX_SECS: "2" };
  const first = await startWorker({ vars, keepPersist: true });
  let second = null;
  try {
    const c1 = client(first);
    const made = await c1.api("POST", "/api/v1/sinks", { name: "slow", kind: "webhook", url: `${slow.url}/in`, streams: ["events"] });
    assert.equal(made.status, 201, made.text);
    secret = made.json.secret;
    const conn2 = await c1.connect(sim2, "killed");
    await waitFor("some deliveries", () => slow.got.size >= 300, 120_000);
    await first.kill();
    const atKill = slow.got.size;
    second = await startWorker({ vars, persist: first.persist, adminToken: first.adminToken, encryptionKey: first.encryptionKey });
    const c2 = client(second);
    await c2.waitCaughtUp(conn2.id, { timeoutMs: 300_000, crons: [second] });
    const ids = [];
    let cursor = null;
    do {
      const r = await c2.api("GET", `/api/v1/connections/${conn2.id}/events?limit=1000${cursor ? `&cursor=${cursor}` : ""}`);
      ids.push(...r.json.events.map((e) => e.id));
      cursor = r.json.next_cursor;
    } while (cursor);
    await waitFor("all delivered after the restart", async () => {
      if (Date.now() % 3000 < 600) await second.cron().catch(() => {});
      return ids.every((id) => slow.got.has(`events:${id}`));
    }, 180_000);
    const extra = [...slow.got.keys()].filter((k) => !ids.includes(k.slice("events:".length)));
    assert.deepEqual(extra, [], "nothing but stored events");
    console.log(`forwarding after a kill: ${ids.length} events, ${atKill} delivered before the kill, ${slow.repeats()} repeats`);
    assert.deepEqual(slow.errors, []);
  } finally {
    await second?.stop();
    await first.stop().catch(() => {});
    await sim2.stop();
    await slow.close();
  }
});
