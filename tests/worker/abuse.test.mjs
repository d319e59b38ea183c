// Trustworthy under abuse and faults, in workerd against the simulator:
// a failing sink never makes a connection pull its instance sooner, a burst
// of wrong credentials with huge paths writes a bounded audit log, and a
// `read` caller never sees a receiver URL's path.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { rmSync } from "node:fs";
import { startWorker, startSim, ROOT } from "../support/harness.mjs";
import { client, waitFor } from "../support/pulls.mjs";
import { startElastic } from "../support/receivers.mjs";

const WRANGLER = join(ROOT, "node_modules", ".bin", "wrangler");
const ENV = { ...process.env, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false", NO_COLOR: "1" };
const stops = [];
after(async () => {
  for (const stop of stops.reverse()) await stop().catch(() => {});
});

/** One SQL query against the worker's local D1, as JSON rows. */
function d1(persist, sql) {
  const out = execFileSync(WRANGLER, ["d1", "execute", "DB", "--local", "--persist-to", persist, "--json", "--command", sql], { cwd: ROOT, env: ENV, stdio: "pipe" }).toString();
  return JSON.parse(out)[0].results;
}

const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

async function simStats(sim) {
  return (await fetch(`${sim.instance_url}/__sim/stats`)).json();
}

test("a sink answering 503 + Retry-After: 1 never makes the connection pull sooner; then every event arrives", async () => {
  // A webhook that fails until told otherwise, asking for a retry in a second.
  const hook = { failing: true, calls: 0, got: new Set() };
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      hook.calls++;
      if (hook.failing) {
        res.writeHead(503, { "retry-after": "1" });
        return res.end("busy");
      }
      const msg = JSON.parse(body);
      if (msg.type === "events") for (const d of msg.data) hook.got.add(d.id);
      res.writeHead(204);
      res.end();
    });
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  stops.push(() => new Promise((ok) => { server.closeAllConnections?.(); server.close(ok); }));
  const [worker, sim] = await Promise.all([
    startWorker({ vars: { PULL_INTERVAL_SECS: "30" } }),
    startSim(["--days", "2", "--events-per-day", "200", "--seed", "28"]),
  ]);
  stops.push(() => worker.stop(), () => sim.stop());
  const c = client(worker);
  const sink = await c.api("POST", "/api/v1/sinks", {
    name: "busy hook", kind: "webhook", url: `http://127.0.0.1:${server.address().port}/hook`,
    streams: ["events"], connection_ids: null, format: "contract",
  });
  assert.equal(sink.status, 201, sink.text);
  const conn = await c.connect(sim, "busy-sink");
  await c.waitCaughtUp(conn.id);
  // Pulls run, idle ones included (they fold into one history row an hour).
  const pulls = async () => (await c.api("GET", `/api/v1/connections/${conn.id}/runs`)).json.pulls;

  // Settled, with the sink failing: the instance sees the pull's interval only.
  const failStart = await simStats(sim);
  const hookStart = hook.calls;
  const runsBefore = await pulls();
  await sleep(35_000);
  const failCalls = (await simStats(sim)).requests - failStart.requests;
  const failRuns = (await pulls()) - runsBefore;
  const retries = hook.calls - hookStart;
  assert.ok(retries >= 15, `the sink was retried about once a second (${retries} calls in 35 s)`);

  // The receiver mends: every stored event arrives.
  hook.failing = false;
  const stored = (await c.stored(conn.id)).lines.map((e) => e.id);
  assert.ok(stored.length > 100, `a backfill to deliver (${stored.length})`);
  await waitFor("every event at the mended sink", async () => stored.every((id) => hook.got.has(id)), 90_000);

  // The same window with a healthy sink.
  const okStart = await simStats(sim);
  const okRunsBefore = await pulls();
  await sleep(35_000);
  const okCalls = (await simStats(sim)).requests - okStart.requests;
  const okRuns = (await pulls()) - okRunsBefore;
  const perPull = Math.max(1, Math.ceil(okCalls / Math.max(1, okRuns)));
  console.log(`ServiceNow calls in 35 s: ${failCalls} with the sink failing (${failRuns} pulls, ${retries} sink calls), ${okCalls} with it healthy (${okRuns} pulls)`);
  assert.ok(failRuns <= 2, `at most two pulls in 35 s at a 30 s interval (${failRuns})`);
  assert.ok(failCalls <= okCalls + perPull, `calls with a failing sink (${failCalls}) within one pull (${perPull}) of a healthy one (${okCalls})`);
});

test("500 concurrent wrong credentials with 16 KB paths write a bounded audit log, and others are answered throughout", async () => {
  const worker = await startWorker({ vars: { PULLS_PAUSED: "true" }, keepPersist: true });
  stops.push(() => worker.stop().then(() => rmSync(worker.persist, { recursive: true, force: true })));
  const longPath = `/api/v1/connections/${"x".repeat(16_384)}`;
  let others = 0;
  let stopOthers = false;
  // Health keeps answering while the burst runs.
  const other = (async () => {
    while (!stopOthers) {
      const r = await fetch(`${worker.url}/api/v1/health`).catch(() => null);
      if (r?.status === 200) others++;
      await sleep(50);
    }
  })();
  const burst = await Promise.all(Array.from({ length: 500 }, (_, i) =>
    fetch(worker.url + longPath, { headers: { authorization: `Bearer wrong-guess-${i}` } })
      .then(async (r) => { await r.arrayBuffer(); return r.status; })
      .catch(() => 0)));
  stopOthers = true;
  await other;
  const counts = burst.reduce((m, s) => ((m[s] = (m[s] ?? 0) + 1), m), {});
  assert.ok(Object.keys(counts).every((s) => s === "401" || s === "429"), JSON.stringify(counts));
  assert.ok(others > 0, "health answered during the burst");
  // Each guess is counted before it is checked: no more than the limit's
  // ten and the 40 in flight are checked (401), however many arrive at once
  // (before, 55 of 500 were).
  assert.ok((counts[401] ?? 0) <= 50, `guesses checked: ${counts[401]}`);
  // The worker's own lines hold no path whole (wrangler's local request
  // log, "[wrangler:…]", is the dev server's, not the worker's).
  const ours = worker.logs().split("\n").filter((l) => !l.startsWith("[wrangler:"));
  assert.ok(ours.some((l) => l.includes("xxxxxxxxxx")), "the refusals are logged");
  assert.ok(!ours.some((l) => l.includes("x".repeat(1_000))), "a 16 KB path reached the worker's log");
  // D1 is read with the worker stopped (its local file is then free).
  await worker.stop();
  const [row] = d1(worker.persist, "SELECT count(*) AS n, coalesce(sum(length(target)), 0) AS bytes, coalesce(max(length(target)), 0) AS longest FROM audit_log WHERE action = 'credential.refused'");
  console.log(`audit rows after the burst: ${row.n} (${row.bytes} bytes of targets, longest ${row.longest}); answers ${JSON.stringify(counts)}`);
  assert.ok(row.n >= 1 && row.n <= 12, `the limit's 10 refusals and one 429, whatever the race (${row.n})`);
  assert.ok(row.longest <= 260, `targets are cut (${row.longest})`);
  // Every refusal is counted (for the cron's summary), the audit rows the
  // address got are the deployment's too.
  const rows = d1(worker.persist, "SELECT ip, failures, audited, reserved FROM auth_failures");
  const addr = rows.find((r) => r.ip !== "*");
  const all = rows.find((r) => r.ip === "*");
  assert.equal(addr.failures, counts[401], JSON.stringify(rows));
  assert.equal(all.audited, addr.audited, JSON.stringify(rows));
  assert.equal(addr.reserved, 0, "no attempt left in flight");
});

test("an admin token shorter than 32 characters is refused with what to do", async () => {
  const worker = await startWorker({ adminToken: "short-admin-token", vars: { PULLS_PAUSED: "true" } });
  stops.push(() => worker.stop());
  const r = await fetch(`${worker.url}/api/v1/settings`, { headers: { authorization: "Bearer short-admin-token" } });
  const body = await r.json();
  assert.equal(r.status, 401);
  assert.match(body.message ?? body.detail ?? JSON.stringify(body), /32 characters/);
});

test("a read key sees a receiver URL's scheme and host, never its path or query", async () => {
  const worker = await startWorker({ vars: { PULLS_PAUSED: "true" } });
  stops.push(() => worker.stop());
  const c = client(worker);
  const url = "http://127.0.0.1:9/services/T000/B000/SECRETPATHTOKEN?token=SECRETQUERY";
  const sink = await c.api("POST", "/api/v1/sinks", { name: "slack-ish", kind: "webhook", url, streams: ["alerts"], connection_ids: null, format: "contract" });
  assert.equal(sink.status, 201, sink.text);
  const key = await c.api("POST", "/api/v1/keys", { name: "reader", scopes: ["read"] });
  assert.equal(key.status, 201, key.text);
  const asReader = async (path) => {
    const r = await fetch(worker.url + path, { headers: { authorization: `Bearer ${key.json.key}` } });
    return { status: r.status, text: await r.text() };
  };
  for (const path of ["/api/v1/sinks", `/api/v1/sinks/${sink.json.id}`]) {
    const r = await asReader(path);
    assert.equal(r.status, 200, r.text);
    assert.ok(!r.text.includes("SECRET"), `${path}: ${r.text}`);
    assert.ok(r.text.includes("http://127.0.0.1:9/…"), r.text);
  }
  // An admin still sees the URL it gave.
  assert.ok((await c.api("GET", `/api/v1/sinks/${sink.json.id}`)).text.includes("SECRETPATHTOKEN"));
});

test("a connect key makes at most CONNECTIONS_PER_KEY connections, through tickets too, and the refused connect never calls the instance", async () => {
  const sim = await startSim(["--days", "1", "--events-per-day", "20", "--seed", "131"]);
  const worker = await startWorker({ vars: { PULLS_PAUSED: "true", CONNECTIONS_PER_KEY: "1" } });
  stops.push(() => worker.stop(), () => sim.stop());
  const c = client(worker);
  const key = (await c.api("POST", "/api/v1/keys", { name: "portal", scopes: ["connect"] })).json.key;
  const as = async (token, body, headers = {}) => {
    const r = await fetch(`${worker.url}/api/v1/connections`, { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json", ...headers }, body: JSON.stringify(body) });
    return { status: r.status, json: await r.json() };
  };
  const body = (name) => ({ name, instance_url: sim.instance_url, method: "oauth", username: sim.username, password: sim.password, client_id: sim.client_id, client_secret: sim.client_secret });
  const first = await as(key, body("first"));
  assert.equal(first.status, 201, JSON.stringify(first.json));
  const calls = (await simStats(sim)).requests;
  const second = await as(key, body("second"));
  assert.equal(second.status, 403);
  assert.equal(second.json.code, "quota_exceeded");
  assert.match(second.json.detail, /CONNECTIONS_PER_KEY/);
  // A ticket the key mints counts against the same quota.
  const minted = await fetch(`${worker.url}/api/v1/tickets`, { method: "POST", headers: { authorization: `Bearer ${key}`, "content-type": "application/json" }, body: "{}" });
  assert.equal(minted.status, 201);
  const viaTicket = await as((await minted.json()).ticket, body("third"));
  assert.equal(viaTicket.json.code, "quota_exceeded");
  assert.equal((await simStats(sim)).requests, calls, "no call to the instance for a refused connect");
  // An admin's connections are not counted (this one conflicts, it is not refused by quota).
  assert.equal((await c.api("POST", "/api/v1/connections", body("admin's"))).json.code, "conflict");
  // Deleting one gives the key its connect back.
  assert.ok([202, 204].includes((await c.api("DELETE", `/api/v1/connections/${first.json.id}`)).status));
  assert.equal((await as(key, body("again"))).status, 201);
});

test("a key making more than 600 calls a minute is answered 429 with Retry-After, while the admin is answered throughout", async () => {
  const worker = await startWorker({ vars: { PULLS_PAUSED: "true" } });
  stops.push(() => worker.stop());
  const c = client(worker);
  const key = (await c.api("POST", "/api/v1/keys", { name: "busy script", scopes: ["read"] })).json.key;
  const call = (token) => fetch(`${worker.url}/api/v1/me`, { headers: { authorization: `Bearer ${token}` } });
  // 1,300 calls in bursts of 50: the limiter counts fixed minutes, so they
  // span two at most, and at least 100 are over.
  const statuses = [];
  let refusal;
  let adminAnswered = 0;
  for (let i = 0; i < 26; i++) {
    const burst = await Promise.all(Array.from({ length: 50 }, () => call(key)));
    for (const r of burst) {
      statuses.push(r.status);
      if (r.status === 429 && !refusal) refusal = { retry: r.headers.get("retry-after"), body: await r.json() };
      else await r.arrayBuffer();
    }
    if ((await call(worker.adminToken)).status === 200) adminAnswered++;
  }
  const ok = statuses.filter((s) => s === 200).length;
  const limited = statuses.filter((s) => s === 429).length;
  assert.equal(ok + limited, statuses.length, `only 200 and 429: ${[...new Set(statuses)]}`);
  assert.ok(ok >= 600 && ok <= 1200, `${ok} answered`);
  assert.ok(limited >= 100, `${limited} refused`);
  assert.equal(refusal.body.code, "rate_limited");
  assert.match(refusal.body.detail, /600 API calls this minute/);
  assert.equal(refusal.retry, "60");
  assert.equal(adminAnswered, 26, "the admin token is not counted");
});

test("one document Elastic refuses is a dead letter and the rest flow; a webhook's 413 halves the call; a mended receiver takes the dead letter on replay", async () => {
  // Elastic refuses one document (its mapping rejects a field) until mended.
  const elastic = await startElastic({ poisonAt: 1234 });
  const es = elastic.es;
  stops.push(() => elastic.close());
  // A webhook whose gateway refuses bodies over 100 KB.
  const hook = { got: new Set(), tooLarge: 0, largest: 0 };
  const hookServer = createServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      if (body.length > 100_000) {
        hook.tooLarge++;
        res.writeHead(413);
        return res.end("payload too large");
      }
      hook.largest = Math.max(hook.largest, body.length);
      for (const d of JSON.parse(body).data) hook.got.add(d.id);
      res.writeHead(204);
      res.end();
    });
  });
  await new Promise((ok) => hookServer.listen(0, "127.0.0.1", ok));
  stops.push(() => new Promise((ok) => { hookServer.closeAllConnections?.(); hookServer.close(ok); }));
  const [worker, sim] = await Promise.all([
    startWorker({ vars: { SINK_BACKOFF_MAX_SECS: "2" } }),
    startSim(["--days", "2", "--events-per-day", "2600", "--seed", "5000"]),
  ]);
  stops.push(() => worker.stop(), () => sim.stop());
  const c = client(worker);
  const mk = async (body) => {
    const r = await c.api("POST", "/api/v1/sinks", { connection_ids: null, streams: ["events"], ...body });
    assert.equal(r.status, 201, r.text);
    return r.json;
  };
  const esSink = await mk({ name: "es", kind: "elastic", url: elastic.url, api_key: "k", index: "logs-servicenow-default", format: "ecs" });
  const hookSink = await mk({ name: "gateway", kind: "webhook", url: `http://127.0.0.1:${hookServer.address().port}/in`, format: "contract" });
  const conn = await c.connect(sim, "poison");
  await c.waitCaughtUp(conn.id, { timeoutMs: 180_000 });
  const ids = (await c.stored(conn.id)).lines.map((e) => e.id);
  assert.ok(ids.length >= 5000, `${ids.length} events`);
  const esId = (id) => `${conn.id}:${id}`;
  try {
    await waitFor("all but the poison at Elastic, all at the webhook", async () =>
      es.poison && ids.filter((id) => !es.got.has(esId(id))).length === 1 && ids.every((id) => hook.got.has(id)), 120_000);
  } catch (e) {
    const sinks = (await c.api("GET", "/api/v1/sinks")).json.sinks.map((s) => ({ name: s.name, state: s.state, delivered: s.delivered, pending: s.pending, dead: s.dead_letters, last_error: s.last_error }));
    console.log(JSON.stringify({ es: es.got.size, poison: es.poison, hook: hook.got.size, tooLarge: hook.tooLarge, ids: ids.length, sinks }, null, 1));
    console.log(worker.logs().split("\n").filter((l) => /forward/.test(l)).slice(-30).join("\n"));
    throw e;
  }
  assert.ok(hook.tooLarge >= 1 && hook.largest <= 100_000, `413s ${hook.tooLarge}, largest ${hook.largest}`);
  const dead = await c.api("GET", `/api/v1/sinks/${esSink.id}/dead_letters`);
  assert.equal(dead.status, 200, dead.text);
  assert.equal(dead.json.dead_letters.length, 1, dead.text);
  const [letter] = dead.json.dead_letters;
  assert.equal(esId(letter.item_id), es.poison);
  assert.equal(letter.status, 400);
  assert.match(letter.reason, /mapper_parsing_exception/);
  const sinkNow = (await c.api("GET", `/api/v1/sinks/${esSink.id}`)).json;
  assert.equal(sinkNow.state, "active", JSON.stringify(sinkNow));
  assert.equal(sinkNow.dead_letters, 1);
  assert.equal((await c.api("GET", `/api/v1/sinks/${hookSink.id}/dead_letters`)).json.dead_letters.length, 0, "a 413 is never an item's fault while halving helps");

  // The admin mends the mapping and asks again: the dead letter arrives.
  es.mended = true;
  const replay = await c.api("POST", `/api/v1/sinks/${esSink.id}/dead_letters/replay`, {});
  assert.equal(replay.status, 202, replay.text);
  await waitFor("the dead letter delivered", async () => es.got.has(es.poison), 60_000);
  await waitFor("the list empty", async () => (await c.api("GET", `/api/v1/sinks/${esSink.id}/dead_letters`)).json.dead_letters.length === 0, 30_000);
});

test("a connection's own pull interval is set through PATCH, 30 to 3,600 s, and a bad value changes nothing", async () => {
  const [worker, sim] = await Promise.all([
    startWorker({ vars: { PULLS_PAUSED: "true" } }),
    startSim(["--days", "1", "--events-per-day", "10"]),
  ]);
  stops.push(() => worker.stop(), () => sim.stop());
  const c = client(worker);
  const conn = await c.connect(sim, "interval");
  assert.equal(conn.pull_interval_secs ?? null, null, "follows the deployment at first");
  for (const bad of [10, 3601, "60", 1.5, -30]) {
    const r = await c.api("PATCH", `/api/v1/connections/${conn.id}`, { pull_interval_secs: bad, name: "renamed" });
    assert.equal(r.status, 422, `${bad}: ${r.text}`);
    assert.equal(r.json.errors?.[0]?.field, "pull_interval_secs", r.text);
  }
  assert.equal((await c.connection(conn.id)).name, "interval", "a refused PATCH changes nothing");
  // A good interval with a bad name: refused as a whole, the interval unset.
  assert.equal((await c.api("PATCH", `/api/v1/connections/${conn.id}`, { pull_interval_secs: 60, name: " " })).status, 422);
  assert.equal((await c.connection(conn.id)).pull_interval_secs ?? null, null, "a refused name leaves the interval as it was");
  const set = await c.api("PATCH", `/api/v1/connections/${conn.id}`, { pull_interval_secs: 60 });
  assert.equal(set.status, 200, set.text);
  assert.equal(set.json.pull_interval_secs, 60);
  assert.equal((await c.connection(conn.id)).pull_interval_secs, 60);
  const reset = await c.api("PATCH", `/api/v1/connections/${conn.id}`, { pull_interval_secs: null });
  assert.equal(reset.json.pull_interval_secs, null);
  const audit = await c.api("GET", "/api/v1/audit");
  assert.ok(audit.json.entries.some((e) => e.action === "connection.schedule"), "the change is audited");
});

test("a request body over 64 KB, or of unknown length, is refused unread, before the credential check", async () => {
  const worker = await startWorker({ vars: { PULLS_PAUSED: "true" } });
  stops.push(() => worker.stop());
  const big = JSON.stringify({ name: "x".repeat(100_000) });
  for (const authorization of [`Bearer ${worker.adminToken}`, "Bearer wrong-token"]) {
    const r = await fetch(`${worker.url}/api/v1/connections`, { method: "POST", headers: { authorization, "content-type": "application/json" }, body: big });
    const body = await r.json();
    assert.equal(r.status, 413);
    assert.equal(body.code, "payload_too_large");
  }
  // A chunked body announces no length: refused rather than read.
  const stream = new ReadableStream({ start(c) { c.enqueue(new TextEncoder().encode("{}")); c.close(); } });
  const chunked = await fetch(`${worker.url}/api/v1/validate`, { method: "POST", headers: { authorization: `Bearer ${worker.adminToken}`, "content-type": "application/json" }, body: stream, duplex: "half" });
  assert.equal(chunked.status, 413);
  // A small body, and no body at all, pass.
  const ok = await fetch(`${worker.url}/api/v1/validate`, { method: "POST", headers: { authorization: `Bearer ${worker.adminToken}`, "content-type": "application/json" }, body: "{}" });
  assert.notEqual(ok.status, 413);
  const none = await fetch(`${worker.url}/api/v1/connections/0123456789abcdef0123456789abcdef/pull`, { method: "POST", headers: { authorization: `Bearer ${worker.adminToken}` } });
  assert.notEqual(none.status, 413);
  // No refused credential was counted or audited for the refused bodies.
  assert.equal((await fetch(`${worker.url}/api/v1/settings`, { headers: { authorization: `Bearer ${worker.adminToken}` } })).status, 200);
});
