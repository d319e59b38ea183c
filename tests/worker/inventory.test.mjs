// The inventory, in workerd against the simulator: every account with its
// roles and groups, complete against the instance's own tables, then kept
// current after a deactivation, a role grant and a role revocation.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, startSim } from "../support/harness.mjs";
import { client, waitFor } from "../support/pulls.mjs";
import { instanceAccounts, accountsView as view, connectorAccounts } from "../support/truth.mjs";

const truth = () => instanceAccounts(sim);
const accounts = (id, query) => connectorAccounts(c, id, query);

let worker, c, sim;
before(async () => {
  sim = await startSim(["--days", "1", "--events-per-day", "40", "--seed", "91", "--people", "300"]);
  worker = await startWorker();
  c = client(worker);
});
after(async () => {
  await worker?.stop();
  await sim?.stop();
});

let conn;

test("at connect every account arrives with its roles, groups and privilege, as the instance holds them", async () => {
  conn = await c.connect(sim, "inventory");
  const want = await truth();
  assert.ok(want.size > 300, `${want.size} users on the instance`);
  await waitFor("the inventory", async () => (await accounts(conn.id)).length === want.size, 60_000);
  const got = await accounts(conn.id);
  assert.equal(new Set(got.map((a) => a.user_name)).size, got.length, "no account twice across pages");
  assert.deepEqual(view(got), want);
  assert.ok(got.some((a) => !a.active) && got.some((a) => a.locked_out) && got.some((a) => a.privileged));
  assert.ok(got.every((a) => "last_login_at" in a && "name" in a));
  // Filters.
  const admins = await accounts(conn.id, "role=admin");
  assert.deepEqual(admins.map((a) => a.user_name).sort(), [...want].filter(([, a]) => a.roles.includes("admin")).map(([n]) => n).sort());
  const inactive = await accounts(conn.id, "active=false");
  assert.deepEqual(inactive.map((a) => a.user_name).sort(), [...want].filter(([, a]) => !a.active).map(([n]) => n).sort());
  const bad = await c.api("GET", `/api/v1/connections/${conn.id}/accounts?active=maybe`);
  assert.equal(bad.status, 422);
  assert.equal(bad.json.errors[0].field, "active");
});

test("a deactivation, a role grant and a role revocation show after the next pull", async () => {
  const before = view(await accounts(conn.id));
  const [quiet, promoted] = [...before].filter(([n, a]) => a.active && !a.privileged && n.includes(".")).map(([n]) => n);
  const [demoted, role] = [...before].filter(([n, a]) => n.includes(".") && a.roles.includes("security_admin")).map(([n]) => [n, "security_admin"])[0];
  for (const change of [{ user_name: quiet, active: false }, { user_name: promoted, grant: "admin" }, { user_name: demoted, revoke: role }]) {
    const r = await fetch(`${sim.instance_url}/__sim/users`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(change) });
    assert.equal(r.status, 200, await r.text());
  }
  assert.equal((await c.api("POST", `/api/v1/connections/${conn.id}/pull`)).status, 202);
  await waitFor("the changes", async () => {
    const now = view(await accounts(conn.id));
    return !now.get(quiet).active && now.get(promoted).privileged && !now.get(demoted).roles.includes(role);
  }, 60_000);
  assert.deepEqual(view(await accounts(conn.id)), await truth());
});

test("accounts of an unknown or deleted connection are not_found", async () => {
  assert.equal((await c.api("DELETE", `/api/v1/connections/${conn.id}`)).status, 204);
  const r = await c.api("GET", `/api/v1/connections/${conn.id}/accounts`);
  assert.equal(r.status, 404);
  assert.equal(r.json.code, "not_found");
});
