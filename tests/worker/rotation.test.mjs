// Rotating ENCRYPTION_KEY under live connections: the old key moves to
// ENCRYPTION_KEYS_PREVIOUS, every connection keeps pulling, every sealed
// value ends up under the new key (when a pull reads it, and for the rest
// when the cron passes), and then the old key can go.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createCipheriv, randomBytes } from "node:crypto";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { startWorker, startSim, ROOT } from "../support/harness.mjs";
import { client, waitFor } from "../support/pulls.mjs";

const WRANGLER = join(ROOT, "node_modules", ".bin", "wrangler");
const ENV = { ...process.env, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false", NO_COLOR: "1" };
let sim, simLegacy, workers = [];
before(async () => {
  [sim, simLegacy] = await Promise.all([
    startSim(["--days", "2", "--events-per-day", "300", "--seed", "121"]),
    startSim(["--days", "2", "--events-per-day", "300", "--seed", "122"]),
  ]);
});
after(async () => {
  for (const w of workers) await w.stop().catch(() => {});
  await Promise.all([sim?.stop(), simLegacy?.stop()]);
});

/** The key id the connector names a key by (see core::seal): 8 characters of a GCM tag. */
function keyId(b64) {
  const c = createCipheriv("aes-256-gcm", Buffer.from(b64, "base64"), Buffer.alloc(12));
  c.setAAD(Buffer.from("snc key id"));
  c.final();
  return c.getAuthTag().toString("base64url").slice(0, 8);
}

function secrets(persist) {
  const out = execFileSync(WRANGLER, ["d1", "execute", "DB", "--local", "--persist-to", persist, "--json", "--command", "SELECT connection_id, kind, key_id, sealed FROM connection_secrets ORDER BY connection_id, kind"], { cwd: ROOT, env: ENV, stdio: "pipe" }).toString();
  return JSON.parse(out)[0].results;
}

async function pullsOn(c, conns) {
  for (const k of conns) {
    const instance = k.instance_url === simLegacy.instance_url ? simLegacy : sim;
    // The count before the records exist: a pull woken meanwhile (an
    // enable wakes one) can only add to it.
    const n = (await c.connection(k.id)).event_count;
    await instance.control("insert", { table: "sysevent", count: 20 });
    assert.equal((await c.api("POST", `/api/v1/connections/${k.id}/pull`)).status, 202);
    await waitFor(`${k.name} pulls the new records`, async () => (await c.connection(k.id)).event_count >= n + 20);
    const now = await c.connection(k.id);
    assert.equal(now.status, "connected", JSON.stringify(now.status_detail));
  }
}

test("a rotated key breaks no connection and every secret ends up under the new key", async () => {
  const keyA = randomBytes(32).toString("base64");
  const keyB = randomBytes(32).toString("base64");
  const first = await startWorker({ encryptionKey: keyA, keepPersist: true });
  workers.push(first);
  const c1 = client(first);
  const conns = [await c1.connect(sim, "rotate-oauth"), await c1.connect(sim, "rotate-cc", "client_credentials")];
  for (const k of conns) await c1.waitCaughtUp(k.id);
  // A disabled connection does not pull: only the cron moves its secrets.
  const legacy = await c1.connect(simLegacy, "rotate-basic", "basic");
  await c1.waitCaughtUp(legacy.id);
  assert.equal((await c1.api("PATCH", `/api/v1/connections/${legacy.id}`, { enabled: false })).status, 200);
  await first.stop();
  assert.ok(secrets(first.persist).every((s) => s.key_id === keyId(keyA)));

  // The new key, the old one kept as previous.
  const second = await startWorker({ persist: first.persist, adminToken: first.adminToken, encryptionKey: keyB, vars: { ENCRYPTION_KEYS_PREVIOUS: keyA }, keepPersist: true });
  workers.push(second);
  const c2 = client(second);
  await pullsOn(c2, conns);
  const afterPulls = secrets(first.persist);
  for (const s of afterPulls.filter((s) => s.connection_id !== legacy.id)) assert.equal(s.key_id, keyId(keyB), `${s.kind} of a pulling connection`);
  assert.ok(afterPulls.some((s) => s.connection_id === legacy.id && s.key_id === keyId(keyA)), "the disabled connection waits for the cron");
  assert.equal(await second.cron(), 200);
  await waitFor("the cron's pass", async () => secrets(first.persist).every((s) => s.key_id === keyId(keyB)), 30_000);
  for (const s of secrets(first.persist)) assert.ok(s.sealed.startsWith(`v1.${keyId(keyB)}.`));
  await second.stop();

  // The old key can go now.
  const third = await startWorker({ persist: first.persist, adminToken: first.adminToken, encryptionKey: keyB });
  workers.push(third);
  const c3 = client(third);
  assert.equal((await c3.api("PATCH", `/api/v1/connections/${legacy.id}`, { enabled: true })).status, 200);
  await pullsOn(c3, [...conns, legacy]);
  const logs = third.logs() + second.logs() + first.logs();
  for (const k of [keyA, keyB, sim.password, sim.client_secret]) assert.ok(!logs.includes(k), "a key or secret is in a log");
});
