// Upgrade: a deployment made before the event plane kept cursors and events
// in D1. After `wrangler d1 migrations apply` and a deploy, each
// connection's object moves them into itself and the archive, deletes them
// from D1, and pulls on from the carried-over cursors: every event reads
// back through the API, exactly once.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { startWorker, startSim, ROOT } from "../support/harness.mjs";
import { client, waitFor, SOURCES } from "../support/pulls.mjs";

const WRANGLER = join(ROOT, "node_modules", ".bin", "wrangler");
const ENV = { ...process.env, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false", NO_COLOR: "1" };
let sim, first, second;
before(async () => {
  sim = await startSim(["--days", "8", "--events-per-day", "1500", "--seed", "71"]);
});
after(async () => {
  await second?.stop();
  await first?.stop();
  await sim?.stop();
});

function d1(persist, args) {
  return execFileSync(WRANGLER, ["d1", "execute", "DB", "--local", "--persist-to", persist, ...args], { cwd: ROOT, env: ENV, stdio: "pipe" }).toString();
}

const q = (v) => (v === null || v === undefined ? "NULL" : `'${String(v).replaceAll("'", "''")}'`);

test("cursors and events kept in D1 by an older deployment move into the new plane and read back exactly once", async () => {
  // An older deployment's connection: connected, its pulls not yet in the object.
  first = await startWorker({ vars: { PULLS_PAUSED: "true" }, keepPersist: true });
  const conn = await client(first).connect(sim, "upgraded");
  await first.stop();

  // Its rows as the old schema held them: the first 300 records of each
  // table, and each table's cursor at the last of them.
  const auth = "Basic " + Buffer.from(`${sim.username}:${sim.password}`).toString("base64");
  const from = conn.backfill.from.slice(0, 19).replace("T", " ");
  const sql = [];
  let legacy = 0;
  let cursors = 0;
  for (const table of SOURCES) {
    const url = `${sim.instance_url}/api/now/v2/table/${table}?sysparm_query=${encodeURIComponent(`sys_created_on>=${from}^ORDERBYsys_created_on^ORDERBYsys_id`)}&sysparm_limit=300&sysparm_exclude_reference_link=true`;
    const answer = await (await fetch(url, { headers: { authorization: auth } })).json();
    const records = answer.result ?? assert.fail(`${table}: ${JSON.stringify(answer)}`);
    if (!records.length) continue;
    for (const r of records) {
      const at = r.sys_created_on.replace(" ", "T") + "Z";
      sql.push(`INSERT INTO events (connection_id, source_table, sys_id, occurred_at, kind, actor, raw) VALUES (${q(conn.id)}, ${q(table)}, ${q(r.sys_id)}, ${q(at)}, 'record_updated', 'moved-from-d1', ${q(JSON.stringify(r))});`);
      legacy++;
    }
    const last = records[records.length - 1];
    cursors++;
    sql.push(`INSERT INTO cursors (connection_id, source_table, created_on, sys_id, backfill_total, caught_up, page_size) VALUES (${q(conn.id)}, ${q(table)}, ${q(last.sys_created_on)}, ${q(last.sys_id)}, 100000, 0, NULL);`);
  }
  const file = join(first.persist, "legacy.sql");
  writeFileSync(file, sql.join("\n"));
  d1(first.persist, ["--file", file]);

  second = await startWorker({ persist: first.persist, adminToken: first.adminToken, encryptionKey: first.encryptionKey });
  const c = client(second);
  assert.equal((await c.api("POST", `/api/v1/connections/${conn.id}/pull`)).status, 202);
  const done = await c.waitCaughtUp(conn.id);
  const lines = await c.assertExactlyOnce(sim, done);
  const moved = lines.filter((e) => e.actor === "moved-from-d1");
  assert.equal(moved.length, legacy, "every legacy event reads back from the new plane");
  assert.equal(done.event_count, lines.length);
  // The carried-over cursors' totals prove the pull resumed from them.
  assert.ok(cursors >= 4 && done.backfill.total >= 100000 * cursors, JSON.stringify(done.backfill));
  const left = JSON.parse(d1(first.persist, ["--json", "--command", `SELECT (SELECT count(*) FROM events WHERE connection_id = '${conn.id}') AS events, (SELECT count(*) FROM cursors WHERE connection_id = '${conn.id}') AS cursors`]));
  assert.deepEqual(left[0].results[0], { events: 0, cursors: 0 }, "nothing of it left in D1's old tables");
});

test("migration 0005 rebuilds connections for client_credentials and keeps every sealed secret", async () => {
  const { mkdtempSync, readdirSync, readFileSync, writeFileSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const persist = mkdtempSync(join(tmpdir(), "snc-migrate-"));
  const migrations = readdirSync(join(ROOT, "migrations")).filter((f) => f.endsWith(".sql")).sort();
  const before = migrations.filter((f) => f < "0005");
  // Each wrangler call costs seconds: the files of each side go as one.
  const asOne = (files, name) => {
    const path = join(persist, name);
    writeFileSync(path, files.map((f) => readFileSync(join(ROOT, "migrations", f), "utf8")).join("\n;\n"));
    return path;
  };
  d1(persist, ["--file", asOne(before, "before.sql")]);
  const rows = [
    "INSERT INTO connections (id, name, instance_url, username, method, client_id, status, created_at, backfill_from, backfill_to, generation) VALUES ('c1', 'one', 'https://a.service-now.com', 'svc', 'oauth', 'cid', 'connected', '2026-01-01T00:00:00Z', '2025-12-25T00:00:00Z', '2026-01-01T00:00:00Z', 3)",
    "INSERT INTO connection_secrets (connection_id, kind, key_id, sealed) VALUES ('c1', 'refresh_token', 'k1', 'sealed-r'), ('c1', 'client_secret', 'k1', 'sealed-c')",
  ];
  d1(persist, ["--command", rows.join("; ")]);
  d1(persist, ["--file", asOne(migrations.filter((f) => f >= "0005"), "after.sql")]);
  const read = (sql) => JSON.parse(d1(persist, ["--json", "--command", sql]))[0].results;
  assert.deepEqual(read("SELECT kind, sealed FROM connection_secrets ORDER BY kind"), [
    { kind: "client_secret", sealed: "sealed-c" }, { kind: "refresh_token", sealed: "sealed-r" },
  ]);
  assert.deepEqual(read("SELECT id, method, generation FROM connections"), [{ id: "c1", method: "oauth", generation: 3 }]);
  d1(persist, ["--command", "INSERT INTO connections (id, name, instance_url, username, method, client_id, status, created_at, backfill_from, backfill_to) VALUES ('c2', 'two', 'https://a.service-now.com', 'app', 'client_credentials', 'cid', 'connected', 'x', 'x', 'x')"]);
  assert.throws(() => d1(persist, ["--command", "INSERT INTO connections (id, name, instance_url, username, method, status, created_at, backfill_from, backfill_to) VALUES ('c3', 'three', 'https://a.service-now.com', 'u3', 'saml', 'connected', 'x', 'x', 'x')"]), /CHECK/);
  // The foreign key still holds: deleting a connection takes its secrets.
  d1(persist, ["--command", "DELETE FROM connections WHERE id = 'c1'"]);
  assert.deepEqual(read("SELECT count(*) AS n FROM connection_secrets"), [{ n: 0 }]);
});
