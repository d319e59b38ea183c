// Posture, in workerd against simulated instances with ServiceNow's
// hardening settings as three profiles: weak (a neglected instance), hardened
// (every recommended value) and default (records absent, platform defaults).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, startSim } from "../support/harness.mjs";
import { client, waitFor } from "../support/pulls.mjs";

let worker, c, weak, hardened, plain;
before(async () => {
  [weak, hardened, plain] = await Promise.all([
    startSim(["--days", "1", "--events-per-day", "40", "--seed", "81", "--posture", "weak"]),
    startSim(["--days", "1", "--events-per-day", "40", "--seed", "82", "--posture", "hardened"]),
    startSim(["--days", "1", "--events-per-day", "40", "--seed", "83"]),
  ]);
  worker = await startWorker();
  c = client(worker);
});
after(async () => {
  if (process.env.SNC_DEBUG) console.log(worker?.logs().split("\n").filter((l) => /posture:|pull [0-9a-f]|check -> /.test(l)).slice(-60).join("\n"));
  await worker?.stop();
  await Promise.all([weak, hardened, plain].map((s) => s?.stop()));
});

// What the weak profile gets wrong, stated here from its settings (see
// crates/sim/src/posture.rs), not from the connector's table.
const WEAK_FAILS = [
  "com.glide.high_security",
  "glide.ui.rotate_sessions",
  "glide.authenticate.basic_auth.restriction.active",
  "glide.basicauth.required.soap",
  "glide.soap.require_ws_security",
  "glide.script.secure.ajaxgliderecord",
  "glide.ui.session_timeout",
  "glide.basicauth.required.csv",
  "sysevent_script_action.snc_user_lockout_check",
  "glide.user.max_unlock_attempts",
  "glide.user.unlock_timeout_in_mins",
  "glide.sys.permissive.impersonate",
  "glide.sys.log_impersonation",
  "glide.sm.default_mode",
  "glide.authenticate.multifactor",
  "com.snc.ipauthenticator",
  "glide.audit.track_impersonation",
  "glide.integrations.active.session.life_span",
  "glide.ui.user_cookie.max_life_span_in_days",
  "com.glide.security.protected_table.enabled",
  "glide.oauth.inbound.ropc.grant_type.disabled",
];

async function posture(id) {
  const r = await c.api("GET", `/api/v1/connections/${id}/posture`);
  assert.equal(r.status, 200, r.text);
  return r.json;
}

const ids = (checks, status) => checks.filter((k) => k.status === status).map((k) => k.id);

test("posture at connect: the weak instance fails exactly its weak settings, the hardened one passes all", async () => {
  const before = (await (await fetch(`${weak.instance_url}/__sim/stats`)).json()).batch_requests;
  const w = await c.connect(weak, "weak");
  const after = (await (await fetch(`${weak.instance_url}/__sim/stats`)).json()).batch_requests;
  assert.ok(after - before >= 1);
  const pw = await posture(w.id);
  assert.deepEqual(new Set(ids(pw.checks, "fail")), new Set(WEAK_FAILS));
  assert.deepEqual(ids(pw.checks, "unknown"), []);
  assert.ok(pw.checks.length >= 30, `${pw.checks.length} checks`);
  // Failing first, most severe first.
  const order = { critical: 0, high: 1, medium: 2, low: 3 };
  const failing = pw.checks.slice(0, WEAK_FAILS.length);
  assert.ok(failing.every((k) => k.status === "fail"));
  for (let i = 1; i < failing.length; i++) assert.ok(order[failing[i - 1].severity] <= order[failing[i].severity]);
  for (const k of pw.checks) assert.ok(k.title && k.advice && k.expected, JSON.stringify(k));
  assert.ok(pw.score > 0 && pw.score < 60, `weak scores ${pw.score}`);
  assert.equal((await c.connection(w.id)).posture_score, pw.score);
  assert.equal(pw.history.length, 1);

  // The hardened instance switches the password grant off: it connects with
  // client credentials.
  const refused = await c.api("POST", "/api/v1/connections", { name: "hardened-pw", instance_url: hardened.instance_url, method: "oauth", username: hardened.username, password: hardened.password, client_id: hardened.client_id, client_secret: hardened.client_secret });
  assert.equal(refused.json.code, "credentials_rejected");
  const h = await c.connect(hardened, "hardened", "client_credentials");
  const ph = await posture(h.id);
  assert.deepEqual(ids(ph.checks, "fail"), []);
  assert.equal(ph.score, 100);
  assert.deepEqual(h.warnings.filter((x) => x.code !== "token_lifespan_short"), []);
});

test("absent settings take their platform defaults, and a failed read is unknown with why", async () => {
  const p = await c.connect(plain, "plain");
  const checks = Object.fromEntries((await posture(p.id)).checks.map((k) => [k.id, k]));
  // Absent and secure by default; absent and insecure by default.
  const cookie = checks["glide.ui.user_cookie.max_life_span_in_days"];
  assert.deepEqual([cookie.status, cookie.actual, cookie.defaulted], ["pass", "30", true]);
  assert.deepEqual([checks["glide.ui.session_timeout"].status, checks["glide.ui.session_timeout"].defaulted], ["pass", false], "the record a new instance ships");
  assert.deepEqual([checks["glide.basicauth.required.api"].status, checks["glide.basicauth.required.api"].actual, checks["glide.basicauth.required.api"].defaulted], ["fail", "false", true]);
  assert.deepEqual([checks["glide.security.csrf_previous.allow"].status, checks["glide.security.csrf_previous.allow"].defaulted], ["fail", true]);

  await plain.control("conditions", { invalid_tables: ["v_plugin"] });
  try {
    assert.equal((await c.api("POST", `/api/v1/connections/${p.id}/posture/check`)).status, 202);
    await waitFor("a check that could not read the plugins", async () => (await posture(p.id)).checks.some((k) => k.status === "unknown"), 60_000);
    const again = await posture(p.id);
    const unknown = again.checks.filter((k) => k.status === "unknown");
    assert.deepEqual(unknown.map((k) => k.id).sort(), ["com.glide.high_security", "com.snc.ipauthenticator"]);
    for (const k of unknown) {
      assert.equal(k.actual, null);
      assert.match(k.why, /v_plugin.*400/);
    }
  } finally {
    await plain.control("conditions", { invalid_tables: [] });
  }
});

test("an admin's change shows at the next check: the score moves, the history grows, warnings follow", async () => {
  const w = (await c.api("GET", "/api/v1/connections")).json.connections.find((x) => x.name === "weak") ?? await c.connect(weak, "weak");
  const before = await posture(w.id);
  assert.ok(!w.warnings.some((x) => x.code === "password_grant_disabled"));
  // The admin hardens two settings and removes one record.
  const r = await fetch(`${weak.instance_url}/__sim/properties`, { method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ "glide.ui.session_timeout": "15", "glide.oauth.inbound.ropc.grant_type.disabled": "true", "glide.basicauth.required.api": null }) });
  assert.equal(r.status, 200);
  // The history keeps one point a second (the latest check of that second):
  // this check must not land in the same second as the connect's.
  await new Promise((ok) => setTimeout(ok, 1_100));
  assert.equal((await c.api("POST", `/api/v1/connections/${w.id}/posture/check`)).status, 202);
  await waitFor("the next posture check", async () => (await posture(w.id)).checks.find((k) => k.id === "glide.ui.session_timeout").status === "pass", 60_000);
  const after = await posture(w.id);
  const status = Object.fromEntries(after.checks.map((k) => [k.id, k.status]));
  assert.equal(status["glide.ui.session_timeout"], "pass");
  assert.equal(status["glide.oauth.inbound.ropc.grant_type.disabled"], "pass");
  assert.equal(status["glide.basicauth.required.api"], "fail", "a deleted record falls back to false");
  assert.equal(after.history.length, before.history.length + 1);
  assert.equal(after.history.at(-1).score, after.score, "the history ends with this check");
  assert.ok(after.score > before.score, `${before.score} -> ${after.score}`);
  const conn = await c.connection(w.id);
  assert.equal(conn.posture_score, after.score);
  // The password grant is off now: an OAuth connection is told before its next connect fails.
  assert.ok(conn.warnings.some((x) => x.code === "password_grant_disabled"), JSON.stringify(conn.warnings));

  const nd = await fetch(`${worker.url}/api/v1/connections/${w.id}/posture.ndjson`, { headers: { authorization: `Bearer ${worker.adminToken}` } });
  assert.equal(nd.status, 200);
  assert.equal(nd.headers.get("content-type"), "application/x-ndjson");
  const lines = (await nd.text()).trim().split("\n").map((l) => JSON.parse(l));
  assert.equal(lines.length, after.checks.length);
  assert.ok(lines.every((l) => l.class_uid === 2003 && l.finding_info.uid.startsWith(w.id)));
  assert.deepEqual(new Set(lines.filter((l) => l.compliance.status === "Fail").map((l) => l.compliance.control)), new Set(ids(after.checks, "fail")));
});

test("posture of an unknown connection is not_found", async () => {
  const r = await c.api("GET", `/api/v1/connections/${"0".repeat(32)}/posture`);
  assert.equal(r.status, 404);
  assert.equal(r.json.code, "not_found");
});
