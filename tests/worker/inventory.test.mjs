// The inventory, in workerd against the simulator: every account with its
// roles and groups, complete against the instance's own tables, then kept
// current after a deactivation, a role grant and a role revocation.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, startSim } from "../support/harness.mjs";
import { client, waitFor } from "../support/pulls.mjs";

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

/** A whole table as the instance holds it, read with the service account. */
async function table(name, fields) {
  const auth = "Basic " + Buffer.from(`${sim.username}:${sim.password}`).toString("base64");
  const r = await fetch(`${sim.instance_url}/api/now/v2/table/${name}?sysparm_limit=10000&sysparm_exclude_reference_link=true&sysparm_fields=${fields}`, { headers: { authorization: auth } });
  return (await r.json()).result;
}

/** The accounts the instance has, from its tables: the ground truth. */
async function truth() {
  const [users, roles, groups, grants, members] = await Promise.all([
    table("sys_user", "sys_id,user_name,active,locked_out"),
    table("sys_user_role", "sys_id,name,elevated_privilege"),
    table("sys_user_group", "sys_id,name"),
    table("sys_user_has_role", "user,role,state"),
    table("sys_user_grmember", "user,group"),
  ]);
  const roleName = new Map(roles.map((r) => [r.sys_id, r]));
  const groupName = new Map(groups.map((g) => [g.sys_id, g.name]));
  const out = new Map();
  for (const u of users) {
    const held = grants.filter((g) => g.user === u.sys_id && g.state === "active").map((g) => roleName.get(g.role));
    out.set(u.user_name, {
      active: u.active === "true",
      locked_out: u.locked_out === "true",
      roles: [...new Set(held.map((r) => r.name))].sort(),
      groups: [...new Set(members.filter((m) => m.user === u.sys_id).map((m) => groupName.get(m.group)))].sort(),
      privileged: held.some((r) => r.elevated_privilege === "true" || ["admin", "security_admin", "impersonator", "oauth_admin"].includes(r.name)),
    });
  }
  return out;
}

async function accounts(id, query = "") {
  const all = [];
  let cursor = null;
  do {
    const q = new URLSearchParams(query);
    q.set("limit", "70");
    if (cursor) q.set("cursor", cursor);
    const r = await c.api("GET", `/api/v1/connections/${id}/accounts?${q}`);
    assert.equal(r.status, 200, r.text);
    all.push(...r.json.accounts);
    cursor = r.json.next_cursor;
  } while (cursor);
  return all;
}

function view(list) {
  return new Map(list.map((a) => [a.user_name, { active: a.active, locked_out: a.locked_out, roles: [...a.roles].sort(), groups: [...a.groups].sort(), privileged: a.privileged }]));
}

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
