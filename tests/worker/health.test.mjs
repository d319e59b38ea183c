import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { startWorker, ROOT } from "../support/harness.mjs";

const cargoVersion = readFileSync(join(ROOT, "Cargo.toml"), "utf8").match(/^version = "([^"]+)"/m)[1];
let worker;
before(async () => { worker = await startWorker(); });
after(async () => { await worker?.stop(); });

test("health answers ok with the workspace version, without a token", async () => {
  const r = await fetch(`${worker.url}/api/v1/health`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get("content-type"), /application\/json/);
  // No Cloudflare Access here: the page asks for a credential first.
  assert.deepEqual(await r.json(), { status: "ok", version: cargoVersion, access: false });
});

test("an unknown API route is a not_found problem (after the token check)", async () => {
  const anonymous = await fetch(`${worker.url}/api/v1/nothing-here`);
  assert.equal(anonymous.status, 401, "route names are not revealed without the token");
  const r = await fetch(`${worker.url}/api/v1/nothing-here`, { headers: { authorization: `Bearer ${worker.adminToken}` } });
  assert.equal(r.status, 404);
  assert.equal(r.headers.get("content-type"), "application/problem+json");
  const p = await r.json();
  assert.equal(p.code, "not_found");
  assert.equal(p.status, 404);
});

test("the page and the wasm module are served as static assets", async () => {
  const page = await fetch(`${worker.url}/`);
  assert.equal(page.status, 200);
  assert.match(await page.text(), /<output id="version"/);
  const wasm = await fetch(`${worker.url}/pkg/snc_web_bg.wasm`);
  assert.equal(wasm.status, 200);
  const bytes = new Uint8Array(await wasm.arrayBuffer());
  assert.deepEqual([...bytes.slice(0, 4)], [0x00, 0x61, 0x73, 0x6d]);
});
