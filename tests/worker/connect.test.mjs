// Connect, in workerd against the simulator over HTTP: every problem code a
// connect can meet, both methods, the CRUD routes, and a scan proving no
// secret is stored, answered or logged in plaintext.
import { test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { startWorker, startSim, freePort } from "../support/harness.mjs";

let worker, sim, simOld, simBasic;
const seen = []; // every response body, for the secret scan

before(async () => {
  [sim, simOld, simBasic] = await Promise.all([
    startSim(["--days", "1", "--events-per-day", "40"]),
    startSim(["--days", "1", "--events-per-day", "40", "--release", "australia", "--seed", "3"]),
    startSim(["--days", "1", "--events-per-day", "40", "--access-lifespan", "3600", "--seed", "4"]),
  ]);
  // Pulls paused: these tests count the connect's own round trips.
  worker = await startWorker({ vars: { SUPPORTED_RELEASES: "Eureka..Zurich", ALLOWED_ORIGINS: "http://portal.test", PULLS_PAUSED: "true" } });
});
after(async () => {
  await worker?.stop();
  await Promise.all([sim, simOld, simBasic].map((s) => s?.stop()));
});

// Each test starts from no connections, whatever the one before left.
beforeEach(async () => { if (worker) await deleteAll(); });

async function api(method, path, body, { token = worker.adminToken, headers = {} } = {}) {
  const h = { ...headers };
  if (token) h.authorization = `Bearer ${token}`;
  if (body !== undefined) h["content-type"] = "application/json";
  const r = await fetch(worker.url + path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  seen.push(text);
  let json = null;
  try { json = JSON.parse(text); } catch {}
  return { status: r.status, headers: r.headers, json, text };
}

function oauthBody(s, extra = {}) {
  return { name: `conn-${Math.random().toString(36).slice(2, 8)}`, instance_url: s.instance_url, method: "oauth",
    username: s.username, password: s.password, client_id: s.client_id, client_secret: s.client_secret, ...extra };
}

async function stats(s) {
  return (await fetch(`${s.instance_url}/__sim/stats`)).json();
}

async function deleteAll() {
  const { json } = await api("GET", "/api/v1/connections");
  for (const c of json.connections) await api("DELETE", `/api/v1/connections/${c.id}`);
}

async function expectProblem(res, status, code) {
  assert.equal(res.status, status, res.text);
  assert.equal(res.headers.get("content-type"), "application/problem+json");
  assert.equal(res.json.code, code, res.text);
  assert.equal(res.json.status, status);
  assert.ok(res.json.title && res.json.detail && res.json.type, res.text);
}

async function expectNothingStored() {
  const { json } = await api("GET", "/api/v1/connections");
  assert.deepEqual(json.connections, []);
}

test("every route but health needs the admin token", async () => {
  await expectProblem(await api("GET", "/api/v1/connections", undefined, { token: null }), 401, "unauthorized");
  await expectProblem(await api("GET", "/api/v1/connections", undefined, { token: "wrong" }), 401, "unauthorized");
  await expectProblem(await api("POST", "/api/v1/validate", {}, { token: null }), 401, "unauthorized");
  assert.equal((await api("GET", "/api/v1/health", undefined, { token: null })).status, 200);
  const spec = await api("GET", "/api/v1/openapi.json");
  assert.equal(spec.json.openapi, "3.1.0");
});

test("validate answers the normalized request or every field's problem", async () => {
  const ok = await api("POST", "/api/v1/validate", { name: " Prod ", instance_url: "https://acme.service-now.com/navpage.do", method: "basic", username: "svc", password: "x" });
  assert.equal(ok.status, 200);
  assert.deepEqual(ok.json, { valid: true, normalized: { name: "Prod", instance_url: "https://acme.service-now.com", method: "basic", username: "svc" } });
  const bad = await api("POST", "/api/v1/validate", { method: "oauth" });
  await expectProblem(bad, 422, "validation_failed");
  assert.deepEqual(bad.json.errors.map((e) => e.field), ["name", "instance_url", "username", "password", "client_id", "client_secret"]);
  await expectProblem(await api("POST", "/api/v1/validate", "not an object"), 422, "validation_failed");
});

test("OAuth connect: two round trips, connected, short-lifespan warning, password not kept", async () => {
  const before = await stats(sim);
  const body = oauthBody(sim);
  const res = await api("POST", "/api/v1/connections", body);
  assert.equal(res.status, 201, res.text);
  const c = res.json;
  assert.match(c.id, /^[0-9a-f]{32}$/);
  assert.equal(c.status, "connected");
  assert.equal(c.status_detail, null);
  assert.equal(c.method, "oauth");
  assert.equal(c.instance_url, sim.instance_url);
  assert.equal(c.release, "Xanadu");
  assert.match(c.build, /^glide-xanadu-/);
  assert.deepEqual(c.warnings.map((w) => w.code), ["token_lifespan_short"]);
  assert.equal(c.backfill.done, false);
  assert.equal(Date.parse(c.backfill.to) - Date.parse(c.backfill.from), 7 * 86400 * 1000);
  // The backfill starts right after, so count by kind: pulls use neither the
  // token endpoint nor the Batch API, and never read sys_properties.
  const after = await stats(sim);
  assert.equal(after.token_requests - before.token_requests, 1);
  assert.equal(after.batch_requests - before.batch_requests, 1, "role, release and table checks share one Batch API call");
  assert.equal(after.reads_by_table.sys_properties - (before.reads_by_table.sys_properties ?? 0), 1);
  // The pull times are read from the connection's object, whose alarm may
  // have fired since: the rest is as the connect answered.
  const got = await api("GET", `/api/v1/connections/${c.id}`);
  const unclocked = ({ next_pull_at, last_pull_at, ...rest }) => rest;
  assert.deepEqual(unclocked(got.json), unclocked(c));
  assert.ok(Date.parse(got.json.next_pull_at) >= Date.parse(c.next_pull_at), `${got.json.next_pull_at} ${c.next_pull_at}`);
  const listed = await api("GET", "/api/v1/connections");
  assert.deepEqual(listed.json.connections.map(unclocked), [unclocked(c)]);
  await expectProblem(await api("POST", "/api/v1/connections", { ...oauthBody(sim), name: c.name.toUpperCase() }), 409, "conflict");
  await expectProblem(await api("POST", "/api/v1/connections", { ...oauthBody(sim) }), 409, "conflict");
  await deleteAll();
});

test("basic connect: one round trip, no warning with a 3,600 s lifespan elsewhere", async () => {
  const before = await stats(simBasic);
  const res = await api("POST", "/api/v1/connections", { name: "legacy", instance_url: simBasic.instance_url, method: "basic", username: simBasic.username, password: simBasic.password });
  assert.equal(res.status, 201, res.text);
  assert.equal(res.json.method, "basic");
  assert.deepEqual(res.json.warnings, []);
  const after = await stats(simBasic);
  assert.equal(after.token_requests - before.token_requests, 0);
  assert.equal(after.batch_requests - before.batch_requests, 1, "one round trip: the Batch API call");
  await deleteAll();
});

test("OAuth on an instance with a 3,600 s lifespan has no warning", async () => {
  const res = await api("POST", "/api/v1/connections", oauthBody(simBasic));
  assert.equal(res.status, 201, res.text);
  assert.deepEqual(res.json.warnings, []);
  await deleteAll();
});

test("wrong password and wrong client secret are credentials_rejected with every cause of the method named", async () => {
  for (const body of [oauthBody(sim, { password: "nope" }), oauthBody(sim, { client_secret: "nope" }), oauthBody(sim, { client_id: "0000" })]) {
    const res = await api("POST", "/api/v1/connections", body);
    await expectProblem(res, 422, "credentials_rejected");
    assert.match(res.json.detail, /password/);
    assert.match(res.json.detail, /client secret/);
    assert.match(res.json.detail, /locked out/);
    assert.match(res.json.detail, /password grant switched off/);
  }
  // A legacy connect is not sent looking for OAuth clients.
  const basic = await api("POST", "/api/v1/connections", { name: "b", instance_url: sim.instance_url, method: "basic", username: sim.username, password: "nope" });
  await expectProblem(basic, 422, "credentials_rejected");
  assert.match(basic.json.detail, /password/);
  assert.match(basic.json.detail, /locked out/);
  assert.doesNotMatch(basic.json.detail, /client secret|OAuth/);
  await expectNothingStored();
});

function ccBody(s, extra = {}) {
  return { name: `cc-${Math.random().toString(36).slice(2, 8)}`, instance_url: s.instance_url, method: "client_credentials",
    client_id: s.client_id, client_secret: s.client_secret, ...extra };
}

test("client credentials: no user, no password, no refresh token kept; a wrong secret is explained", async () => {
  const before = await stats(simBasic);
  const res = await api("POST", "/api/v1/connections", ccBody(simBasic));
  assert.equal(res.status, 201, res.text);
  assert.equal(res.json.method, "client_credentials");
  assert.equal(res.json.status, "connected");
  assert.deepEqual(res.json.warnings, []);
  const after = await stats(simBasic);
  assert.equal(after.token_requests - before.token_requests, 1);
  assert.equal(after.batch_requests - before.batch_requests, 1);
  // The application's user is the connection's account: a second connection
  // of the same application is the same account.
  await expectProblem(await api("POST", "/api/v1/connections", ccBody(simBasic)), 409, "conflict");
  const bad = await api("POST", "/api/v1/connections", ccBody(simBasic, { client_secret: "nope" }));
  await expectProblem(bad, 422, "credentials_rejected");
  assert.match(bad.json.detail, /application user/);
  assert.doesNotMatch(bad.json.detail, /password/);
  const v = await api("POST", "/api/v1/validate", { name: "x", instance_url: simBasic.instance_url, method: "client_credentials" });
  assert.deepEqual(v.json.errors.map((e) => e.field), ["client_id", "client_secret"]);
  const reBad = await api("POST", `/api/v1/connections/${res.json.id}/reconnect`, { client_secret: "nope" });
  await expectProblem(reBad, 422, "credentials_rejected");
  const re = await api("POST", `/api/v1/connections/${res.json.id}/reconnect`, { client_secret: simBasic.client_secret });
  assert.equal(re.status, 200, re.text);
  assert.equal(re.json.method, "client_credentials");
  const settings = await api("GET", "/api/v1/settings");
  assert.deepEqual(settings.json.methods.map((m) => [m.id, m.fields]), [
    ["oauth", ["username", "password", "client_id", "client_secret"]],
    ["client_credentials", ["client_id", "client_secret"]],
    ["basic", ["username", "password"]],
  ]);
  await deleteAll();
});

test("the password grant switched off: OAuth is refused with that cause named, client credentials connect", async () => {
  await simBasic.control("conditions", { password_grant_disabled: true });
  try {
    const oauth = await api("POST", "/api/v1/connections", oauthBody(simBasic));
    await expectProblem(oauth, 422, "credentials_rejected");
    assert.match(oauth.json.detail, /connect with client credentials/);
    const cc = await api("POST", "/api/v1/connections", ccBody(simBasic));
    assert.equal(cc.status, 201, cc.text);
    assert.deepEqual(cc.json.warnings, []);
  } finally {
    await simBasic.control("conditions", { password_grant_disabled: false });
  }
  await deleteAll();
});

test("the basic-auth restriction: a warning while it records the account, a refusal once it enforces", async () => {
  await simBasic.control("conditions", { basic_auth_restricted: true });
  const legacy = { name: "restricted", instance_url: simBasic.instance_url, method: "basic", username: simBasic.username, password: simBasic.password };
  try {
    const res = await api("POST", "/api/v1/connections", legacy);
    assert.equal(res.status, 201, res.text);
    assert.deepEqual(res.json.warnings.map((w) => w.code), ["basic_auth_restricted"]);
    assert.match(res.json.warnings[0].message, /Web service access only/);
    // Client credentials act as a web-service-only application user: no warning.
    const cc = await api("POST", "/api/v1/connections", ccBody(simBasic));
    assert.deepEqual(cc.json.warnings, []);
    await deleteAll();
    await simBasic.control("conditions", { basic_auth_denying: true });
    const refused = await api("POST", "/api/v1/connections", legacy);
    await expectProblem(refused, 422, "credentials_rejected");
    assert.match(refused.json.detail, /Web service access only/);
  } finally {
    await simBasic.control("conditions", { basic_auth_restricted: false, basic_auth_denying: false });
  }
  await deleteAll();
});

test("instance conditions map to their codes and store nothing", async () => {
  const cases = [
    [{ not_admin: true }, 422, "not_admin"],
    [{ rest_api_off: true }, 422, "table_access_denied"],
    [{ hibernating: true }, 503, "instance_hibernating"],
    [{ rate_limit_fraction: 1.0, retry_after_secs: 42 }, 429, "rate_limited"],
    [{ user_locked_out: true }, 422, "credentials_rejected"],
  ];
  for (const [conditions, status, code] of cases) {
    await sim.control("conditions", conditions);
    try {
      const res = await api("POST", "/api/v1/connections", oauthBody(sim));
      await expectProblem(res, status, code);
      if (code === "rate_limited") {
        assert.equal(res.json.retry_after, 42);
        assert.equal(res.headers.get("retry-after"), "42");
      }
    } finally {
      await sim.control("conditions", { not_admin: false, rest_api_off: false, hibernating: false, rate_limit_fraction: 0, user_locked_out: false });
    }
  }
  await expectNothingStored();
});

test("a release outside SUPPORTED_RELEASES is release_unsupported", async () => {
  const res = await api("POST", "/api/v1/connections", oauthBody(simOld));
  await expectProblem(res, 422, "release_unsupported");
  assert.match(res.json.detail, /Australia/);
  await expectNothingStored();
});

test("without a Batch API the connect still works, within four round trips", async () => {
  await sim.control("conditions", { batch_api_off: true });
  try {
    const before = await stats(sim);
    const res = await api("POST", "/api/v1/connections", oauthBody(sim));
    assert.equal(res.status, 201, res.text);
    assert.ok(res.json.warnings.some((w) => w.code === "table_access_unchecked"));
    const after = await stats(sim);
    assert.equal(after.token_requests - before.token_requests, 1);
    assert.equal(after.batch_requests - before.batch_requests, 1, "tried, refused");
    assert.equal(after.reads_by_table.sys_properties - (before.reads_by_table.sys_properties ?? 0), 1, "release read on its own");
  } finally {
    await sim.control("conditions", { batch_api_off: false });
  }
  await deleteAll();
});

test("an unreachable instance and a forbidden URL", async () => {
  const closed = await freePort();
  await expectProblem(await api("POST", "/api/v1/connections", oauthBody(sim, { instance_url: `http://127.0.0.1:${closed}` })), 502, "instance_unreachable");
  const before = await stats(sim);
  for (const url of ["https://169.254.169.254/latest/meta-data", "http://2130706433:" + new URL(sim.instance_url).port, "https://evil.example.com", "file:///etc/passwd"]) {
    const res = await api("POST", "/api/v1/connections", oauthBody(sim, { instance_url: url }));
    await expectProblem(res, 422, "instance_url_forbidden");
    assert.equal(res.json.errors[0].field, "instance_url");
  }
  assert.equal((await stats(sim)).requests, before.requests, "nothing was fetched");
  await expectNothingStored();
});

test("patch renames, disables and enables; delete removes; unknown ids are not_found", async () => {
  const c = (await api("POST", "/api/v1/connections", oauthBody(sim))).json;
  const off = await api("PATCH", `/api/v1/connections/${c.id}`, { enabled: false, name: "Renamed" });
  assert.equal(off.status, 200, off.text);
  assert.equal(off.json.status, "disabled");
  assert.equal(off.json.enabled, false);
  assert.equal(off.json.name, "Renamed");
  const on = await api("PATCH", `/api/v1/connections/${c.id}`, { enabled: true });
  assert.equal(on.json.status, "connected");
  await expectProblem(await api("PATCH", `/api/v1/connections/${c.id}`, { name: "  " }), 422, "validation_failed");
  await expectProblem(await api("PATCH", `/api/v1/connections/${c.id}`, { colour: "red" }), 422, "validation_failed");
  await expectProblem(await api("GET", "/api/v1/connections/0123456789abcdef0123456789abcdef"), 404, "not_found");
  await expectProblem(await api("GET", "/api/v1/connections/../../etc"), 404, "not_found");
  assert.equal((await api("DELETE", `/api/v1/connections/${c.id}`)).status, 204);
  await expectProblem(await api("GET", `/api/v1/connections/${c.id}`), 404, "not_found");
  // Delete is idempotent: asked again once purged, still 204.
  assert.equal((await api("DELETE", `/api/v1/connections/${c.id}`)).status, 204);
  await expectProblem(await api("DELETE", "/api/v1/connections/0123456789abcdef0123456789abcdef"), 404, "not_found");
});

test("reconnect renews credentials and keeps the connection; bad credentials change nothing", async () => {
  const c = (await api("POST", "/api/v1/connections", oauthBody(sim))).json;
  const bad = await api("POST", `/api/v1/connections/${c.id}/reconnect`, { password: "nope", client_secret: sim.client_secret });
  await expectProblem(bad, 422, "credentials_rejected");
  const good = await api("POST", `/api/v1/connections/${c.id}/reconnect`, { username: sim.username, password: sim.password, client_secret: sim.client_secret });
  assert.equal(good.status, 200, good.text);
  assert.equal(good.json.id, c.id);
  assert.equal(good.json.status, "connected");
  assert.equal(good.json.created_at, c.created_at);
  await deleteAll();
});

test("CORS answers allowed origins only", async () => {
  const pre = await fetch(worker.url + "/api/v1/connections", { method: "OPTIONS", headers: { origin: "http://portal.test", "access-control-request-method": "POST" } });
  assert.equal(pre.status, 204);
  assert.equal(pre.headers.get("access-control-allow-origin"), "http://portal.test");
  const other = await api("GET", "/api/v1/connections", undefined, { headers: { origin: "http://evil.test" } });
  assert.equal(other.headers.get("access-control-allow-origin"), null);
  const allowed = await api("GET", "/api/v1/connections", undefined, { headers: { origin: "http://portal.test" } });
  assert.equal(allowed.headers.get("access-control-allow-origin"), "http://portal.test");
});

function filesUnder(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...filesUnder(p));
    else out.push(p);
  }
  return out;
}

test("no password, client secret, refresh or access token in D1, any response or any log line", async () => {
  const c1 = await api("POST", "/api/v1/connections", oauthBody(sim));
  const c2 = await api("POST", "/api/v1/connections", { name: "legacy-scan", instance_url: simBasic.instance_url, method: "basic", username: simBasic.username, password: simBasic.password });
  assert.equal(c1.status, 201);
  assert.equal(c2.status, 201);
  const tokens = (await (await fetch(`${sim.instance_url}/__sim/tokens`)).json()).tokens;
  assert.ok(tokens.length >= 2);
  const secrets = [sim.password, sim.client_secret, simBasic.password, ...tokens];
  const files = filesUnder(worker.persist).filter((f) => !f.endsWith(".lock"));
  assert.ok(files.some((f) => f.endsWith(".sqlite")), `D1 file found in ${files}`);
  const stored = files.map((f) => readFileSync(f).toString("latin1")).join("\n");
  assert.ok(stored.includes("connection_secrets"), "the scan reads the real database");
  assert.ok(stored.includes(c1.json.id));
  const logs = worker.logs();
  assert.ok(logs.includes("POST /api/v1/connections"), "the scan reads the real log");
  for (const secret of secrets) {
    assert.ok(!stored.includes(secret), "a secret is in D1 in plaintext");
    assert.ok(!seen.some((body) => body.includes(secret)), "a secret is in a response");
    assert.ok(!logs.includes(secret), "a secret is in the worker's log");
  }
  await deleteAll();
  const afterDelete = filesUnder(worker.persist).map((f) => readFileSync(f).toString("latin1")).join("\n");
  assert.equal((await api("GET", "/api/v1/connections")).json.connections.length, 0);
  assert.ok(afterDelete.length > 0);
});
