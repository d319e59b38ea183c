// Ground truth from the simulator, for the tests that compare the
// connector's view with the instance's: planted attacks and how alerts
// score against them, and the accounts the instance's own tables hold.
import assert from "node:assert/strict";

// infrequent_country first: planted most recently, where the instance has the longest history of its own to judge by.
export const RULES = ["infrequent_country", "failed_login_burst", "password_spray", "login_after_failures", "admin_role_granted", "admin_impersonated", "security_elevation", "mass_delete", "bulk_export", "login_by_inactive_user", "posture_drift", "new_country", "mass_download", "risky_ip", "impossible_travel"];
/** Rules judged by what the inventory read before the attack (a dormant account's last sign-in): planted after the connect, not in the backfill. */
export const LIVE_RULES = ["dormant_account_used"];

export async function plant(sim, name, variant, at) {
  const r = await fetch(`${sim.instance_url}/__sim/scenario`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ name, variant, at }) });
  const body = await r.json();
  assert.equal(r.status, 200, JSON.stringify(body));
  return body;
}

/** Plants every rule's two attacks and two near misses, 40 minutes apart, from `start` back. */
export async function plantSuite(sim, start) {
  const truth = [];
  let at = start;
  for (const rule of RULES) {
    for (const variant of ["positive", "below", "positive", "outside"]) {
      const p = await plant(sim, rule, variant, at);
      truth.push(...p.expect);
      at -= 2400;
    }
  }
  return truth;
}

/** Each expected alert matched to exactly one alert; what is left over is false. */
export function score(truth, alerts) {
  const matches = (e, a) => a.rule === e.rule && (e.actor == null || a.actor === e.actor || a.title.includes(e.actor)) && (e.source_ip == null || a.source_ip === e.source_ip);
  const found = truth.map((e) => alerts.filter((a) => matches(e, a)));
  const used = new Set(found.flat().map((a) => a.id));
  return {
    missed: truth.filter((_, i) => found[i].length === 0),
    duplicated: truth.filter((_, i) => found[i].length > 1),
    false: alerts.filter((a) => !used.has(a.id)).map((a) => [a.rule, a.actor, a.source_ip, a.title]),
  };
}

/** A whole table as the instance holds it, read with the service account. */
async function table(sim, name, fields) {
  const auth = "Basic " + Buffer.from(`${sim.username}:${sim.password}`).toString("base64");
  const r = await fetch(`${sim.instance_url}/api/now/v2/table/${name}?sysparm_limit=10000&sysparm_exclude_reference_link=true&sysparm_fields=${fields}`, { headers: { authorization: auth } });
  return (await r.json()).result;
}

/** The accounts the instance has, from its tables, by user name. */
export async function instanceAccounts(sim) {
  const [users, roles, groups, grants, members] = await Promise.all([
    table(sim, "sys_user", "sys_id,user_name,active,locked_out"),
    table(sim, "sys_user_role", "sys_id,name,elevated_privilege"),
    table(sim, "sys_user_group", "sys_id,name"),
    table(sim, "sys_user_has_role", "user,role,state"),
    table(sim, "sys_user_grmember", "user,group"),
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

/** The connector's accounts in the shape of `instanceAccounts`. */
export function accountsView(list) {
  return new Map(list.map((a) => [a.user_name, { active: a.active, locked_out: a.locked_out, roles: [...a.roles].sort(), groups: [...a.groups].sort(), privileged: a.privileged }]));
}

/** Every account the connector holds for a connection, page by page. */
export async function connectorAccounts(c, id, query = "") {
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

/** Every alert of a connection, page by page. */
export async function alertsOf(c, id, query = "") {
  const all = [];
  let cursor = null;
  do {
    const r = await c.api("GET", `/api/v1/alerts?connection_id=${id}&limit=200${query}${cursor ? `&cursor=${cursor}` : ""}`);
    assert.equal(r.status, 200, r.text);
    all.push(...r.json.alerts);
    cursor = r.json.next_cursor;
  } while (cursor);
  return all;
}
