// Access, in workerd with local D1: API keys and their scopes, connect
// tickets (origin binding, one connect, its own connection only), Cloudflare
// Access tokens verified against a JWKS served here and signed with a test
// key, the audit log, 401/403/405, and the slow-down for guessing.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, startSim, stateText } from "../support/harness.mjs";
import { startAccessTeam } from "../support/access.mjs";

let worker, sim, team;
const seen = []; // every answer, for the secret scan
const secrets = []; // every key and ticket minted here

before(async () => {
  team = await startAccessTeam();
  [worker, sim] = await Promise.all([
    startWorker({
      vars: {
        PULLS_PAUSED: "true",
        ALLOWED_ORIGINS: "https://portal.example",
        ...team.vars,
        // Many refusals on purpose here; the limit has its own test below.
        FAILED_CREDENTIALS_LIMIT: "1000",
      },
    }),
    startSim(["--days", "1", "--events-per-day", "20"]),
  ]);
});
after(async () => {
  await worker?.stop();
  await sim?.stop();
  await team?.close();
});

async function api(method, path, body, { token = worker.adminToken, headers = {}, url = worker.url } = {}) {
  const h = { ...headers };
  if (token) h.authorization = `Bearer ${token}`;
  if (body !== undefined) h["content-type"] = "application/json";
  const r = await fetch(url + "/api/v1" + path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  seen.push(text);
  let json = null;
  try { json = JSON.parse(text); } catch {}
  return { status: r.status, headers: r.headers, json, text };
}

function expect(r, status, code) {
  assert.equal(r.status, status, r.text);
  if (code) assert.equal(r.json.code, code, r.text);
}

async function createKey(name, scopes, extra = {}) {
  const r = await api("POST", "/keys", { name, scopes, ...extra });
  expect(r, 201);
  secrets.push(r.json.key);
  return r.json;
}

function connectBody(name) {
  return { name, instance_url: sim.instance_url, method: "oauth", username: sim.username, password: sim.password, client_id: sim.client_id, client_secret: sim.client_secret };
}

test("API keys: shown once, scoped, listed without the key, revoked at once, expired at their time", async () => {
  const read = await createKey("siem reader", ["read"]);
  assert.match(read.key, /^snck_[A-Za-z0-9_-]{43}$/);
  assert.deepEqual(read.scopes, ["read"]);
  assert.equal(read.last_used_at, null);
  const connect = await createKey("portal backend", ["connect"]);

  const list = await api("GET", "/keys");
  expect(list, 200);
  assert.equal(list.json.keys.length, 2);
  assert.ok(!list.text.includes("snck_"), "a listing never holds a key");
  assert.ok(list.json.keys.every((k) => !("key" in k)));

  // read: every GET but /keys; nothing that changes.
  expect(await api("GET", "/connections", undefined, { token: read.key }), 200);
  expect(await api("GET", "/audit", undefined, { token: read.key }), 200);
  expect(await api("GET", "/keys", undefined, { token: read.key }), 403, "forbidden");
  expect(await api("POST", "/connections", connectBody("x"), { token: read.key }), 403, "forbidden");
  expect(await api("POST", "/keys", { name: "escalate", scopes: ["admin"] }, { token: read.key }), 403, "forbidden");
  const me = await api("GET", "/me", undefined, { token: read.key });
  assert.deepEqual({ kind: me.json.kind, id: me.json.id, name: me.json.name, scopes: me.json.scopes }, { kind: "key", id: read.id, name: "siem reader", scopes: ["read"] });

  // connect: the wizard's calls and minting tickets only.
  expect(await api("GET", "/settings", undefined, { token: connect.key }), 200);
  expect(await api("POST", "/validate", connectBody("v"), { token: connect.key }), 200);
  expect(await api("GET", "/connections", undefined, { token: connect.key }), 403, "forbidden");
  expect(await api("DELETE", `/keys/${read.id}`, undefined, { token: connect.key }), 403, "forbidden");

  const used = (await api("GET", "/keys")).json.keys.find((k) => k.id === read.id);
  assert.ok(used.last_used_at, "last_used_at is kept");

  expect(await api("DELETE", `/keys/${read.id}`), 204);
  expect(await api("GET", "/connections", undefined, { token: read.key }), 401, "unauthorized");
  expect(await api("DELETE", `/keys/${read.id}`), 404, "not_found");

  const soon = new Date(Date.now() + 2000).toISOString().replace(/\.\d+Z$/, "Z");
  const brief = await createKey("brief", ["read"], { expires_at: soon });
  expect(await api("GET", "/connections", undefined, { token: brief.key }), 200);
  await new Promise((r) => setTimeout(r, 2600));
  expect(await api("GET", "/connections", undefined, { token: brief.key }), 401, "unauthorized");

  const bad = await api("POST", "/keys", { name: "", scopes: ["root"], expires_at: "2001-01-01T00:00:00Z" });
  expect(bad, 422, "validation_failed");
  assert.deepEqual(bad.json.errors.map((e) => e.field).sort(), ["expires_at", "name", "scopes"]);
});

test("connect tickets: origin-bound, the wizard's calls, one connect, then only their own connection", async () => {
  const portal = await createKey("portal", ["connect"]);
  const reader = await createKey("reader", ["read"]);
  expect(await api("POST", "/tickets", {}, { token: reader.key }), 403, "forbidden");
  expect(await api("POST", "/tickets", { ttl_seconds: 901 }, { token: portal.key }), 422, "validation_failed");
  expect(await api("POST", "/tickets", { origin: "https://portal.example/page" }, { token: portal.key }), 422, "validation_failed");

  const minted = await api("POST", "/tickets", { origin: "https://portal.example", ttl_seconds: 600 }, { token: portal.key });
  expect(minted, 201);
  const ticket = minted.json.ticket;
  secrets.push(ticket);
  assert.match(ticket, /^snct_[A-Za-z0-9_-]{43}$/);
  const left = Date.parse(minted.json.expires_at) - Date.now();
  assert.ok(left > 590_000 && left <= 601_000, `expires in ${left} ms`);

  const fromPortal = { token: ticket, headers: { origin: "https://portal.example" } };
  expect(await api("GET", "/settings", undefined, fromPortal), 200);
  expect(await api("GET", "/settings", undefined, { token: ticket }), 403, "forbidden");
  expect(await api("GET", "/settings", undefined, { token: ticket, headers: { origin: "https://evil.example" } }), 403, "forbidden");
  expect(await api("POST", "/validate", connectBody("t"), fromPortal), 200);
  expect(await api("POST", "/tickets", {}, fromPortal), 403, "forbidden");
  expect(await api("GET", "/connections", undefined, fromPortal), 403, "forbidden");

  // A refused connect does not use the ticket up: the admin corrects and retries.
  const wrong = await api("POST", "/connections", { ...connectBody("via ticket"), password: "not-the-password" }, fromPortal);
  expect(wrong, 422, "credentials_rejected");
  const made = await api("POST", "/connections", connectBody("via ticket"), fromPortal);
  expect(made, 201);
  const id = made.json.id;
  expect(await api("POST", "/connections", connectBody("second"), fromPortal), 403, "forbidden");
  expect(await api("GET", `/connections/${id}`, undefined, fromPortal), 200);
  expect(await api("GET", `/connections/${id}/events`, undefined, fromPortal), 403, "forbidden");
  expect(await api("DELETE", `/connections/${id}`, undefined, fromPortal), 403, "forbidden");
  const other = await api("POST", "/connections", { ...connectBody("admin's"), name: "admin's" });
  // The simulator has one user: the admin's second connect conflicts, which is fine here.
  assert.ok([201, 409].includes(other.status));
  expect(await api("GET", "/connections/0123456789abcdef0123456789abcdef", undefined, fromPortal), 403, "forbidden");
  const me = await api("GET", "/me", undefined, fromPortal);
  assert.equal(me.json.kind, "ticket");
  assert.equal(me.json.connection_id, id);

  // CORS for the portal's origin, as before.
  const pre = await fetch(`${worker.url}/api/v1/settings`, { method: "OPTIONS", headers: { origin: "https://portal.example" } });
  assert.equal(pre.headers.get("access-control-allow-origin"), "https://portal.example");

  // An unbound ticket works from anywhere; a short one ends.
  const loose = await api("POST", "/tickets", { ttl_seconds: 30 }, { token: portal.key });
  secrets.push(loose.json.ticket);
  assert.equal(loose.json.origin, null);
  expect(await api("GET", "/settings", undefined, { token: loose.json.ticket }), 200);
  expect(await api("DELETE", `/connections/${id}`), 204);

  // A refused connect keeps its attempt: one ticket cannot relay password
  // guesses (or probe names) without end. Five tries, then the ticket is spent.
  const probing = await api("POST", "/tickets", {}, { token: portal.key });
  expect(probing, 201);
  secrets.push(probing.json.ticket);
  const asProbe = { token: probing.json.ticket };
  for (let i = 0; i < 5; i++) {
    expect(await api("POST", "/connections", { ...connectBody("probe"), password: `guess-${i}` }, asProbe), 422, "credentials_rejected");
  }
  const spent = await api("POST", "/connections", connectBody("probe"), asProbe);
  expect(spent, 403, "forbidden");
  assert.match(spent.text, /5 connect attempts/);
});

async function asAccess(token, method = "GET", path = "/me", body) {
  return api(method, path, body, { token: null, headers: { "cf-access-jwt-assertion": token } });
}

test("Cloudflare Access: a valid assertion is an admin caller; every bad one is refused", async () => {
  const jwt = (o) => team.jwt(o);
  const b64url = team.b64url;
  const stranger = team.newKey("stranger");
  const ok = await asAccess(jwt());
  expect(ok, 200);
  assert.deepEqual({ kind: ok.json.kind, name: ok.json.name, scopes: ok.json.scopes }, { kind: "access", name: "ana@example.com", scopes: ["admin"] });
  const made = await asAccess(jwt(), "POST", "/keys", { name: "made via access", scopes: ["read"] });
  expect(made, 201);
  secrets.push(made.json.key);
  // Access rides on a cookie the browser sends by itself: a change asked by
  // another site's page is refused; the connector's own page may.
  const forged = await api("POST", "/keys", { name: "forged", scopes: ["admin"] }, { token: null, headers: { "cf-access-jwt-assertion": jwt(), origin: "https://evil.example", "sec-fetch-site": "cross-site" } });
  expect(forged, 403, "forbidden");
  const own = await api("POST", "/keys", { name: "from the page", scopes: ["read"] }, { token: null, headers: { "cf-access-jwt-assertion": jwt(), origin: worker.url, "sec-fetch-site": "same-origin" } });
  expect(own, 201);
  secrets.push(own.json.key);

  const now = Math.floor(Date.now() / 1000);
  const good = jwt();
  const [h, p, s] = good.split(".");
  const tamperedPayload = `${h}.${b64url({ ...JSON.parse(Buffer.from(p, "base64url")), email: "mallory@example.com" })}.${s}`;
  const sigBytes = Buffer.from(s, "base64url");
  sigBytes[10] ^= 1;
  const cases = {
    expired: jwt({ claims: { exp: now - 3600, iat: now - 7200, nbf: now - 7200 } }),
    "not yet valid": jwt({ claims: { nbf: now + 3600 } }),
    "wrong audience": jwt({ claims: { aud: ["someone-else"] } }),
    "wrong issuer": jwt({ claims: { iss: "https://evil.cloudflareaccess.com" } }),
    "unknown kid": jwt({ header: { kid: "k9" }, key: stranger }),
    "alg none": jwt({ header: { alg: "none" } }),
    "alg HS256": jwt({ header: { alg: "HS256" } }),
    "signed by a stranger under k1": jwt({ key: stranger }),
    "tampered payload": tamperedPayload,
    "tampered signature": `${h}.${p}.${sigBytes.toString("base64url")}`,
    "not a token": "garbage",
  };
  for (const [what, token] of Object.entries(cases)) {
    const r = await asAccess(token);
    assert.equal(r.status, 401, `${what}: ${r.text}`);
    assert.equal(r.json.code, "unauthorized");
  }
  // No assertion and no bearer: 401 without counting as a failure.
  expect(await api("GET", "/me", undefined, { token: null }), 401, "unauthorized");

  // A key the team adds later is fetched on its first use (the certs are
  // refetched for an unknown kid, at most every 10 s).
  await new Promise((r) => setTimeout(r, 10_500));
  team.newKey("k2", { publish: true });
  expect(await asAccess(jwt({ header: { kid: "k2" } })), 200);
});

test("405 names the methods a route has; unknown routes are 404 after the credential check", async () => {
  const r = await api("PUT", "/connections");
  expect(r, 405, "method_not_allowed");
  assert.equal(r.headers.get("allow"), "GET, POST, OPTIONS");
  const k = await api("GET", "/keys/0123456789abcdef0123456789abcdef");
  expect(k, 405, "method_not_allowed");
  assert.equal(k.headers.get("allow"), "DELETE, OPTIONS");
  expect(await api("GET", "/nope"), 404, "not_found");
  expect(await api("GET", "/nope", undefined, { token: "wrong" }), 401, "unauthorized");
});

test("the audit log records every change and refusal, with who and from where, and never a secret", async () => {
  const all = [];
  let cursor = null;
  do {
    const r = await api("GET", `/audit?limit=7${cursor ? `&cursor=${cursor}` : ""}`);
    expect(r, 200);
    all.push(...r.json.entries);
    cursor = r.json.next_cursor;
  } while (cursor);
  assert.equal(new Set(all.map((e) => e.id)).size, all.length, "pages do not repeat");
  const sorted = [...all].sort((a, b) => b.at.localeCompare(a.at));
  assert.deepEqual(all.map((e) => e.at), sorted.map((e) => e.at), "newest first");
  const has = (pred, what) => assert.ok(all.some(pred), `no entry for ${what}: ${JSON.stringify(all.slice(0, 40), null, 1)}`);
  has((e) => e.action === "key.create" && e.actor.kind === "admin_token" && e.outcome === "succeeded" && /^[0-9a-f]{32}$/.test(e.target), "key create");
  has((e) => e.action === "key.revoke" && e.outcome === "succeeded", "key revoke");
  has((e) => e.action === "ticket.mint" && e.actor.kind === "key" && e.actor.name === "portal", "ticket mint");
  has((e) => e.action === "connection.create" && e.actor.kind === "ticket" && e.outcome === "credentials_rejected", "refused connect");
  has((e) => e.action === "connection.create" && e.actor.kind === "ticket" && e.outcome === "succeeded" && /^[0-9a-f]{32}$/.test(e.target), "ticket connect");
  has((e) => e.action === "connection.delete" && e.outcome === "succeeded", "delete");
  has((e) => e.action === "credential.refused" && e.actor.kind === "key" && e.outcome === "unauthorized" && e.target === "/api/v1/connections", "revoked key");
  has((e) => e.action === "credential.refused" && e.actor.kind === "access", "bad access token");
  has((e) => e.action === "access.forbidden" && e.outcome === "forbidden", "forbidden");
  has((e) => e.action === "key.create" && e.actor.kind === "access" && e.actor.name === "ana@example.com", "access change");
  assert.ok(all.every((e) => e.ip), "every entry has the client address");

  const from = new Date(Date.now() + 60_000).toISOString();
  expect(await api("GET", `/audit?from=${from}`), 200);
  assert.equal((await api("GET", `/audit?from=${from}`)).json.entries.length, 0);
  expect(await api("GET", "/audit?limit=0"), 422, "validation_failed");
  expect(await api("GET", "/audit?cursor=zzz"), 422, "validation_failed");

  // Keys and tickets are stored only as hashes: no answer after their
  // creation, no audit entry, no log line and no byte of local state holds one.
  const state = stateText(worker.persist);
  const logs = worker.logs();
  const answersAfter = seen.filter((t) => !/"key":"snck_|"ticket":"snct_/.test(t)).join("\n");
  for (const s of [...secrets, sim.password, sim.client_secret, worker.adminToken]) {
    assert.ok(!JSON.stringify(all).includes(s), "a secret in the audit log");
    assert.ok(!logs.includes(s), "a secret in the log");
    assert.ok(!answersAfter.includes(s), "a secret in an answer");
    if (s.startsWith("snc")) assert.ok(!state.includes(s), "a key or ticket stored in plaintext");
  }
});

test("wrong credentials are slowed per address: 429 with Retry-After, even for a right one, and audited once", async () => {
  const w = await startWorker({ vars: { PULLS_PAUSED: "true" } });
  try {
    for (let i = 0; i < 10; i++) expect(await api("GET", "/settings", undefined, { token: `guess-${i}`, url: w.url }), 401, "unauthorized");
    for (const token of ["guess-11", w.adminToken, "snck_" + "A".repeat(43)]) {
      const r = await api("GET", "/settings", undefined, { token, url: w.url });
      expect(r, 429, "rate_limited");
      const wait = Number(r.headers.get("retry-after"));
      assert.ok(wait > 0 && wait <= 300, `Retry-After ${wait}`);
    }
    // No credential at all is not a guess (a page before sign-in).
    expect(await api("GET", "/settings", undefined, { token: null, url: w.url }), 401, "unauthorized");
    // The log is read from the D1 file: this address may not ask for a while.
    const state = stateText(w.persist);
    assert.ok(state.includes("rate_limited"), "the 429 is in the audit log");
    assert.equal(state.split("credential.refused").length - 1 >= 11, true, "ten refusals and the first 429");
  } finally {
    await w.stop();
  }
});

test("the health report says Cloudflare Access signs admins in here, so the page may ask /me without a credential", async () => {
  const r = await api("GET", "/health", undefined, { token: null });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.access, true);
});
