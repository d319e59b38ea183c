// Hardening: every route but health refuses a missing token, and every
// hostile instance URL is refused at validate and at connect with nothing
// fetched (the simulator, listening where the loopback forms point, sees no
// request).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { startWorker, startSim, ROOT } from "../support/harness.mjs";

let worker, sim;
before(async () => {
  // BACKFILL_DAYS out of range: the worker uses 7, and says so. The first
  // test sends hundreds of wrong credentials on purpose: the slow-down for
  // guessing (tested in access.test.mjs) is raised out of its way.
  [worker, sim] = await Promise.all([startWorker({ vars: { PULLS_PAUSED: "true", BACKFILL_DAYS: "500", FAILED_CREDENTIALS_LIMIT: "1000" } }), startSim(["--days", "1", "--events-per-day", "10"])]);
});
after(async () => {
  await worker?.stop();
  await sim?.stop();
});

test("every route of the OpenAPI description except health answers 401 without the token", async () => {
  const spec = JSON.parse(readFileSync(join(ROOT, "crates/worker/openapi.json"), "utf8"));
  let checked = 0;
  for (const [path, item] of Object.entries(spec.paths)) {
    for (const method of ["get", "post", "patch", "delete"]) {
      if (!item[method]) continue;
      const url = worker.url + path.replace("{id}", "0123456789abcdef0123456789abcdef");
      for (const auth of [undefined, "Bearer wrong", "Basic YWRtaW46YWRtaW4=", `Bearer ${worker.adminToken}x`]) {
        const headers = auth ? { authorization: auth } : {};
        const r = await fetch(url, { method: method.toUpperCase(), headers, body: method === "get" || method === "delete" ? undefined : "{}" });
        if (path === "/api/v1/health") {
          assert.equal(r.status, 200);
        } else {
          assert.equal(r.status, 401, `${method} ${path} with ${auth}`);
          assert.equal((await r.json()).code, "unauthorized");
        }
        checked++;
      }
    }
  }
  assert.ok(checked >= 40, `${checked} checks`);
});

test("at least 40 hostile instance URLs are refused at validate and at connect, nothing fetched", async () => {
  const port = new URL(sim.instance_url).port;
  // This worker allows loopback instances (the simulator lives there), so the
  // plain loopback forms are fine by design; every disguised form is not.
  const plainLoopback = ["https://127.0.0.1", "https://[::1]", "https://localhost"];
  const urls = JSON.parse(readFileSync(join(ROOT, "tests/fixtures/hostile-urls.json"), "utf8"))
    .map((u) => u.replace("{port}", port))
    .filter((u) => !plainLoopback.includes(u));
  assert.ok(urls.length >= 40);
  const before = (await (await fetch(`${sim.instance_url}/__sim/stats`)).json()).requests;
  const h = { authorization: `Bearer ${worker.adminToken}`, "content-type": "application/json" };
  for (const instance_url of urls) {
    const body = { name: "hostile", instance_url, method: "oauth", username: sim.username, password: sim.password, client_id: sim.client_id, client_secret: sim.client_secret };
    for (const path of ["/api/v1/validate", "/api/v1/connections"]) {
      const r = await fetch(worker.url + path, { method: "POST", headers: h, body: JSON.stringify(body) });
      const p = await r.json();
      assert.equal(r.status, 422, `${path} accepted ${JSON.stringify(instance_url)}: ${JSON.stringify(p)}`);
      assert.ok(["instance_url_forbidden", "validation_failed"].includes(p.code));
      assert.equal(p.errors[0].field, "instance_url");
    }
  }
  const after = (await (await fetch(`${sim.instance_url}/__sim/stats`)).json()).requests;
  assert.equal(after, before, "the simulator saw no request");
  const list = await (await fetch(`${worker.url}/api/v1/connections`, { headers: h })).json();
  assert.deepEqual(list.connections, []);
});

test("methods the router does not know are not served as GET, and settings report what is enforced", async () => {
  const auth = { authorization: `Bearer ${worker.adminToken}` };
  const allow = { "/api/v1/connections": "GET, POST, OPTIONS", "/api/v1/settings": "GET, OPTIONS" };
  for (const method of ["QUERY", "PROPFIND", "PUT"]) {
    for (const path of ["/api/v1/connections", "/api/v1/settings"]) {
      const r = await fetch(worker.url + path, { method, headers: auth });
      assert.equal(r.status, 405, `${method} ${path}`);
      assert.equal(r.headers.get("allow"), allow[path]);
      assert.equal((await r.json()).code, "method_not_allowed");
    }
  }
  const settings = await (await fetch(`${worker.url}/api/v1/settings`, { headers: auth })).json();
  assert.equal(settings.backfill_days, 7);
});
