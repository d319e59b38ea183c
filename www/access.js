// The hosted page's access views: API keys (create with scopes and an
// expiry, the key shown once with a copy button, revoke) and the audit log
// (newest first, more on demand). Text only, never HTML from data.
import { api, el } from "./wizard.js";

const SCOPES = { admin: "admin: everything", read: "read: every GET but the keys", connect: "connect: the connect wizard and minting tickets" };

/** Keys: needs the admin scope. */
export function mountKeys(root, { apiBase, token }) {
  const call = (method, path, body) => api(apiBase, token, method, path, body);
  const note = el("p", { role: "status", "aria-live": "polite", class: "snc-live" });
  const name = el("input", { id: "key-name", type: "text", required: true, maxlength: "64", "aria-describedby": "key-name-hint" });
  const boxes = Object.entries(SCOPES).map(([s, label]) => {
    const box = el("input", { type: "checkbox", id: `key-scope-${s}`, value: s, checked: s === "read" });
    return { s, box, wrap: el("div", { class: "snc-option" }, box, el("label", { for: box.id, text: ` ${label}` })) };
  });
  const expiry = el("select", { id: "key-expiry" }, ...[["", "never"], ["30", "in 30 days"], ["90", "in 90 days"], ["365", "in a year"]].map(([v, t]) => el("option", { value: v, text: t })));
  const error = el("p", { class: "snc-error", role: "alert", hidden: true });
  const form = el("form", { class: "key-form", "aria-labelledby": "key-form-title" },
    el("h3", { id: "key-form-title", text: "Create an API key" }),
    el("label", { for: "key-name", text: "Name" }), name,
    el("p", { id: "key-name-hint", class: "snc-hint", text: "After the script or portal that will use it." }),
    el("fieldset", {}, el("legend", { text: "Scopes" }), ...boxes.map((b) => b.wrap)),
    el("label", { for: "key-expiry", text: "Expires" }), expiry,
    el("button", { type: "submit", text: "Create key" }), error);
  const shown = el("div", { class: "key-shown" });
  const table = el("table", { class: "events keys" });
  root.append(el("h2", { id: "keys-title", class: "section-title", text: "API keys" }), note, form, shown, table);

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.hidden = true;
    const body = { name: name.value.trim(), scopes: boxes.filter((b) => b.box.checked).map((b) => b.s) };
    if (expiry.value) body.expires_at = new Date(Date.now() + Number(expiry.value) * 86_400_000).toISOString().replace(/\.\d+Z$/, "Z");
    const res = await call("POST", "/keys", body);
    if (!res.ok) {
      error.textContent = res.problem.errors?.length ? res.problem.errors.map((e) => `${e.field}: ${e.message}`).join(" ") : `${res.problem.title}: ${res.problem.detail}`;
      error.hidden = false;
      return;
    }
    const value = el("input", { id: "key-value", type: "text", readonly: true, value: res.json.key });
    const copy = el("button", { type: "button", class: "secondary", text: "Copy key" });
    const copied = el("span", { role: "status", "aria-live": "polite" });
    copy.addEventListener("click", async () => {
      try { await navigator.clipboard.writeText(value.value); copied.textContent = " Copied."; }
      catch { value.select(); copied.textContent = " Select and copy it by hand."; }
    });
    const done = el("button", { type: "button", text: "I have stored it" });
    done.addEventListener("click", () => { shown.replaceChildren(); name.focus(); });
    shown.replaceChildren(el("div", { class: "snc-alert" },
      el("p", {}, el("strong", { text: `Key "${res.json.name}" created. ` }), el("span", { text: "Copy it now: it is not shown again." })),
      el("label", { for: "key-value", text: "The key" }), value, copy, copied, done));
    form.reset();
    boxes.forEach((b) => { b.box.checked = b.s === "read"; });
    value.focus();
    value.select();
    await load();
  });

  async function revoke(k, row) {
    const yes = el("button", { type: "button", class: "danger", text: "Revoke for good" });
    const no = el("button", { type: "button", class: "secondary", text: "Keep it" });
    const box = el("div", { role: "alertdialog", "aria-labelledby": `rv-${k.id}`, class: "confirm" },
      el("p", { id: `rv-${k.id}`, text: `Revoke ${k.name}? Whatever uses it is refused at once.` }), yes, no);
    yes.addEventListener("click", async () => {
      const res = await call("DELETE", `/keys/${k.id}`);
      note.textContent = res.ok ? `${k.name} revoked.` : `${res.problem.title}: ${res.problem.detail}`;
      if (res.ok) await load();
    });
    no.addEventListener("click", () => box.remove());
    row.lastChild.append(box);
    no.focus();
  }

  async function load() {
    const res = await call("GET", "/keys");
    if (!res.ok) { table.replaceChildren(el("caption", { text: res.problem.detail })); return; }
    const keys = res.json.keys;
    table.replaceChildren(el("caption", { text: `${keys.length} key${keys.length === 1 ? "" : "s"}` }),
      el("thead", {}, el("tr", {}, ...["Name", "Scopes", "Created", "Expires", "Last used", "Actions"].map((h) => el("th", { scope: "col", text: h })))),
      el("tbody", {}, ...keys.map((k) => {
        const actions = el("td", { class: "actions" });
        const row = el("tr", { "data-key": k.id }, el("td", { text: k.name }), el("td", { text: k.scopes.join(", ") }),
          el("td", { text: k.created_at }), el("td", { text: k.expires_at ?? "never" }), el("td", { text: k.last_used_at ?? "not yet" }), actions);
        const b = el("button", { type: "button", class: "secondary", text: "Revoke", "aria-label": `Revoke ${k.name}` });
        b.addEventListener("click", () => revoke(k, row));
        actions.append(b);
        return row;
      })));
  }
  load();
  return { load };
}

/** The audit log: needs the read or admin scope. */
export function mountAudit(root, { apiBase, token }) {
  const call = (method, path) => api(apiBase, token, method, path);
  const table = el("table", { class: "events audit" });
  const body = el("tbody");
  const more = el("button", { type: "button", class: "secondary", text: "Older entries", hidden: true });
  const again = el("button", { type: "button", class: "secondary", text: "Refresh the audit log" });
  const note = el("p", { role: "status", "aria-live": "polite", class: "snc-live" });
  root.append(el("h2", { id: "audit-title", class: "section-title", text: "Audit log" }), again, note, table, more);
  let cursor = null;
  let count = 0;
  const who = (a) => (a.kind === "admin_token" ? "admin token" : `${a.name ?? a.id ?? "unknown"} (${a.kind})`);
  async function load(reset) {
    const q = new URLSearchParams({ limit: "50" });
    if (!reset && cursor) q.set("cursor", cursor);
    const res = await call("GET", `/audit?${q}`);
    if (!res.ok) { note.textContent = `${res.problem.title}: ${res.problem.detail}`; return; }
    if (reset) { body.replaceChildren(); count = 0; }
    for (const e of res.json.entries) {
      body.append(el("tr", { "data-outcome": e.outcome },
        el("td", { text: e.at }), el("td", { text: who(e.actor) }), el("td", { text: e.action }),
        el("td", { text: e.target ?? "" }), el("td", { text: e.outcome }), el("td", { text: e.ip ?? "" })));
    }
    count += res.json.entries.length;
    cursor = res.json.next_cursor;
    more.hidden = !cursor;
    note.textContent = `${count} entr${count === 1 ? "y" : "ies"} shown${cursor ? ", older ones on demand" : ""}.`;
  }
  table.append(el("caption", { text: "Changes and refused credentials, newest first" }),
    el("thead", {}, el("tr", {}, ...["When", "Who", "Action", "Target", "Outcome", "Address"].map((h) => el("th", { scope: "col", text: h })))), body);
  more.addEventListener("click", () => load(false));
  again.addEventListener("click", () => load(true));
  load(true);
  return { load };
}
