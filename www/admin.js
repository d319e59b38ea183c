// Connections with status, backfill progress and actions; a connection's
// activity with filters and a chart. Text only, never HTML from data.
import { api, el } from "./wizard.js";

const KINDS = ["login", "login_failed", "logout", "impersonation", "elevation", "record_created", "record_updated", "record_deleted", "role_granted", "role_revoked", "user_created", "user_deleted", "transaction", "other"];
const SVG = "http://www.w3.org/2000/svg";

export function mountAdmin(root, { apiBase, token }) {
  const heading = el("h2", { id: "connections-title", class: "section-title", text: "Connections" });
  const status = el("p", { role: "status", "aria-live": "polite", class: "snc-live" });
  const list = el("ul", { class: "connections", "aria-label": "Connections" });
  const empty = el("p", { text: "No connections yet.", hidden: true });
  const activity = el("div", { class: "activity" });
  const alertsHeading = el("h2", { id: "alerts-title", class: "section-title", text: "Alerts" });
  const alertsBox = el("section", { class: "alerts", "aria-labelledby": "alerts-title" });
  root.append(heading, status, list, empty, activity, alertsHeading, alertsBox);
  const call = (method, path, body) => api(apiBase, token, method, path, body);

  // One entry per connection, updated in place by each refresh: an open
  // reconnect form or delete confirmation, and the focus, stay as they are.
  const rows = new Map();
  const methodLabel = (m) => ({ oauth: "OAuth", client_credentials: "client credentials", basic: "legacy" })[m] ?? m;

  function makeRow(c) {
    const item = el("li", { class: "connection", "data-id": c.id });
    const parts = {
      name: el("h3"),
      badge: el("span", { class: "snc-badge" }),
      meta: el("p", { class: "meta" }),
      notes: el("div"),
      bfLabel: el("label", { for: `bf-${c.id}`, class: "small" }),
      bf: el("progress", { id: `bf-${c.id}` }),
    };
    const r = { item, parts, c };
    const actions = el("div", { class: "actions" });
    const button = (label, handler, cls) => {
      const b = el("button", { type: "button", class: cls ?? "secondary", text: label });
      b.addEventListener("click", handler);
      actions.append(b);
      return b;
    };
    // Handlers read r.c: the connection as the last refresh saw it.
    parts.buttons = [
      [button("Activity", () => showActivity(r.c)), "Activity"],
      [button("Posture", () => showPosture(r.c)), "Posture"],
      [button("Accounts", () => showAccounts(r.c)), "Accounts"],
      [button("Pull now", () => act(r, "POST", `/connections/${r.c.id}/pull`, undefined, `Pull queued for ${r.c.name}.`, "Pull now")), "Pull now"],
      [parts.toggle = button("Disable", () => act(r, "PATCH", `/connections/${r.c.id}`, { enabled: !r.c.enabled }, `${r.c.name} ${r.c.enabled ? "disabled" : "enabled"}.`, r.c.enabled ? "Disable" : "Enable")), null],
      [button("Reconnect", () => reconnectForm(item, r.c)), "Reconnect"],
      [button("Delete", () => confirmDelete(item, r.c), "danger"), "Delete"],
    ];
    item.append(el("div", { class: "row" }, parts.name, parts.badge), parts.meta, parts.notes, parts.bfLabel, parts.bf, actions);
    return r;
  }

  function update(r, c) {
    r.c = c;
    const p = r.parts;
    p.name.textContent = c.name;
    p.badge.className = `snc-badge ${c.status}`;
    p.badge.dataset.status = c.status;
    p.badge.textContent = c.status;
    p.meta.textContent = `${c.instance_url} · ${methodLabel(c.method)} · ${c.release ?? "?"} · last pull ${c.last_pull_at ?? "not yet"} · ${c.event_count} events · posture ${c.posture_score == null ? "not checked yet" : `${c.posture_score}/100`} · ${c.open_alerts} open alert${c.open_alerts === 1 ? "" : "s"}`;
    const notes = [];
    if (c.status_detail) notes.push(el("p", { class: "snc-error", text: `${c.status_detail.code}: ${c.status_detail.message}` }));
    for (const w of c.warnings) notes.push(el("p", { class: "snc-warning", text: w.message }));
    const key = JSON.stringify([c.status_detail, c.warnings]);
    if (p.notesKey !== key) { p.notes.replaceChildren(...notes); p.notesKey = key; }
    const total = Math.max(c.backfill.total, c.backfill.events, 1);
    p.bfLabel.textContent = c.backfill.done ? "Backfill complete" : "Backfill";
    p.bf.max = total;
    p.bf.value = Math.min(c.backfill.events, total);
    p.toggle.textContent = c.enabled ? "Disable" : "Enable";
    for (const [b, label] of p.buttons) b.setAttribute("aria-label", `${label ?? b.textContent} ${c.name}`);
  }

  /** An action, and what really came of it. */
  async function act(r, method, path, body, done, what) {
    const res = await call(method, path, body);
    status.textContent = res.ok ? done : `${what} ${r.c.name} failed: ${res.problem.title}. ${res.problem.detail}`;
    status.dataset.state = res.ok ? "ok" : "error";
    await refresh();
  }

  function confirmDelete(item, c) {
    const box = el("div", { role: "alertdialog", "aria-labelledby": `del-${c.id}`, class: "confirm" });
    const yes = el("button", { type: "button", class: "danger", text: "Delete for good" });
    const no = el("button", { type: "button", class: "secondary", text: "Keep it" });
    box.append(el("p", { id: `del-${c.id}`, text: `Delete ${c.name}? Its secrets, cursors and ${c.event_count} events are removed.` }), yes, no);
    yes.addEventListener("click", async () => {
      const res = await call("DELETE", `/connections/${c.id}`);
      if (res.ok) box.remove();
      status.textContent = res.ok ? `${c.name} deleted.` : `Delete ${c.name} failed: ${res.problem.title}. ${res.problem.detail}`;
      status.dataset.state = res.ok ? "ok" : "error";
      refresh();
    });
    no.addEventListener("click", () => box.remove());
    item.append(box);
    no.focus();
  }

  function reconnectForm(item, c) {
    const form = el("form", { class: "reconnect", "aria-label": `Reconnect ${c.name}` });
    // Each method renews its own secrets: the password, the client secret, or both.
    let pw = null;
    if (c.method !== "client_credentials") {
      pw = el("input", { id: `rc-pw-${c.id}`, type: "password", autocomplete: "current-password", required: true });
      form.append(el("label", { for: pw.id, text: "Password" }), pw);
    }
    let secret = null;
    if (c.method !== "basic") {
      secret = el("input", { id: `rc-sec-${c.id}`, type: "password", autocomplete: "off", required: true });
      form.append(el("label", { for: secret.id, text: "Client secret" }), secret);
    }
    const err = el("p", { class: "snc-error", role: "alert", hidden: true });
    form.append(el("button", { type: "submit", text: "Reconnect" }), err);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const body = {};
      if (pw) body.password = pw.value;
      if (secret) body.client_secret = secret.value;
      const res = await call("POST", `/connections/${c.id}/reconnect`, body);
      if (res.ok) { status.textContent = `${c.name} reconnected.`; refresh(); }
      else { err.textContent = `${res.problem.title}: ${res.problem.detail}`; err.hidden = false; }
    });
    item.append(form);
    (pw ?? secret).focus();
  }

  async function showActivity(c) {
    const kind = el("select", { id: "f-kind" }, el("option", { value: "", text: "All kinds" }), ...KINDS.map((k) => el("option", { value: k, text: k })));
    const actor = el("input", { id: "f-actor", type: "text" });
    const from = el("input", { id: "f-from", type: "datetime-local" });
    const to = el("input", { id: "f-to", type: "datetime-local" });
    const form = el("form", { class: "filters", "aria-label": "Filter activity" },
      el("label", { for: "f-kind", text: "Kind" }), kind, el("label", { for: "f-actor", text: "Actor" }), actor,
      el("label", { for: "f-from", text: "From" }), from, el("label", { for: "f-to", text: "To" }), to,
      el("button", { type: "submit", text: "Show" }));
    const chart = el("div", { class: "chart" });
    const table = el("table", { class: "events" });
    activity.replaceChildren(el("h3", { text: `Activity of ${c.name}` }), form, chart, table);
    async function load() {
      const q = new URLSearchParams({ limit: "1000" });
      if (kind.value) q.set("kind", kind.value);
      if (actor.value.trim()) q.set("actor", actor.value.trim());
      if (from.value) q.set("from", new Date(from.value).toISOString());
      if (to.value) q.set("to", new Date(to.value).toISOString());
      const [res, raised] = await Promise.all([
        call("GET", `/connections/${c.id}/events?${q}`),
        call("GET", `/alerts?connection_id=${c.id}&limit=1000`),
      ]);
      if (!res.ok) { table.replaceChildren(el("caption", { text: res.problem.detail })); return; }
      drawChart(chart, res.json.events, raised.ok ? raised.json.alerts : []);
      table.replaceChildren(el("caption", { text: `${res.json.events.length} most recent events` }),
        el("thead", {}, el("tr", {}, ...["When", "Kind", "Actor", "Source IP", "Target"].map((h) => el("th", { scope: "col", text: h })))),
        el("tbody", {}, ...res.json.events.slice(0, 200).map((e) => el("tr", {},
          el("td", { text: e.occurred_at }), el("td", { text: e.kind }), el("td", { text: e.actor ?? "" }), el("td", { text: e.source_ip ?? "" }),
          el("td", { text: e.target ? [e.target.table, e.target.record, e.target.field].filter(Boolean).join(" / ") : "" })))));
    }
    form.addEventListener("submit", (ev) => { ev.preventDefault(); load(); });
    await load();
    activity.querySelector("h3").setAttribute("tabindex", "-1");
    activity.querySelector("h3").focus();
  }

  /** Focuses a detail view's heading, so a screen reader hears where it is. */
  function focusHeading() {
    const h = activity.querySelector("h3");
    h.setAttribute("tabindex", "-1");
    h.focus();
  }

  /** The latest posture check: failing checks first, with what to do. */
  async function showPosture(c) {
    const summary = el("p", { class: "posture-score" });
    const check = el("button", { type: "button", class: "secondary", text: "Check now" });
    const note = el("p", { role: "status", "aria-live": "polite", class: "snc-live" });
    const table = el("table", { class: "events posture" });
    const history = el("p", { class: "small" });
    activity.replaceChildren(el("h3", { text: `Posture of ${c.name}` }), summary, check, note, table, history);
    async function load() {
      const res = await call("GET", `/connections/${c.id}/posture`);
      if (!res.ok) { summary.textContent = res.problem.detail; table.replaceChildren(); return; }
      const p = res.json;
      const failing = p.checks.filter((k) => k.status === "fail").length;
      summary.textContent = `Score ${p.score}/100 · ${failing} of ${p.checks.length} checks failing · checked ${p.checked_at}`;
      table.replaceChildren(el("caption", { text: "Hardening checks, failing first" }),
        el("thead", {}, el("tr", {}, ...["Status", "Severity", "Check", "Expected", "In force", "What to do"].map((h) => el("th", { scope: "col", text: h })))),
        el("tbody", {}, ...p.checks.map((k) => el("tr", { class: `check-${k.status}` },
          el("td", { text: k.status }), el("td", { text: k.severity }),
          el("td", {}, el("strong", { text: k.title }), el("br"), el("code", { text: k.id })),
          el("td", { text: k.expected }),
          el("td", { text: k.status === "unknown" ? `unknown: ${k.why ?? ""}` : `${k.actual}${k.defaulted ? " (default)" : ""}` }),
          el("td", { text: k.status === "pass" ? "" : k.advice })))));
      history.textContent = `Score history: ${p.history.map((h) => `${h.checked_at.slice(0, 16).replace("T", " ")} ${h.score}`).join(" · ")}`;
    }
    check.addEventListener("click", async () => {
      const res = await call("POST", `/connections/${c.id}/posture/check`);
      note.textContent = res.ok ? "Checking with the next pull, which starts now. This view updates when it is done." : `${res.problem.title}: ${res.problem.detail}`;
      if (res.ok) setTimeout(load, 3000);
    });
    await load();
    focusHeading();
  }

  /** The instance's accounts with their roles and groups. */
  async function showAccounts(c) {
    const role = el("input", { id: "a-role", type: "text" });
    const active = el("select", { id: "a-active" }, el("option", { value: "", text: "All" }), el("option", { value: "true", text: "Active" }), el("option", { value: "false", text: "Inactive" }));
    const form = el("form", { class: "filters", "aria-label": "Filter accounts" },
      el("label", { for: "a-role", text: "Role" }), role, el("label", { for: "a-active", text: "State" }), active,
      el("button", { type: "submit", text: "Show" }));
    const table = el("table", { class: "events accounts" });
    activity.replaceChildren(el("h3", { text: `Accounts of ${c.name}` }), form, table);
    async function load() {
      const q = new URLSearchParams({ limit: "500" });
      if (role.value.trim()) q.set("role", role.value.trim());
      if (active.value) q.set("active", active.value);
      const res = await call("GET", `/connections/${c.id}/accounts?${q}`);
      if (!res.ok) { table.replaceChildren(el("caption", { text: res.problem.detail })); return; }
      const rows = res.json.accounts;
      table.replaceChildren(el("caption", { text: `${rows.length} accounts${res.json.next_cursor ? " (first 500)" : ""}, ${rows.filter((a) => a.privileged).length} privileged` }),
        el("thead", {}, el("tr", {}, ...["User", "Name", "State", "Privileged", "Roles", "Groups", "Last sign-in"].map((h) => el("th", { scope: "col", text: h })))),
        el("tbody", {}, ...rows.map((a) => el("tr", {},
          el("td", { text: a.user_name }), el("td", { text: a.name }),
          el("td", { text: [a.active ? "active" : "inactive", a.locked_out ? "locked out" : ""].filter(Boolean).join(", ") }),
          el("td", { text: a.privileged ? "yes" : "" }), el("td", { text: a.roles.join(", ") }), el("td", { text: a.groups.join(", ") }),
          el("td", { text: a.last_login_at ?? "" })))));
    }
    form.addEventListener("submit", (ev) => { ev.preventDefault(); load(); });
    await load();
    focusHeading();
  }

  /** Every connection's alerts: filter by status, see the evidence, acknowledge or close. */
  function mountAlerts() {
    const state = el("select", { id: "al-status" }, ...["open", "acknowledged", "closed", ""].map((s) => el("option", { value: s, text: s || "any status" })));
    const form = el("form", { class: "filters", "aria-label": "Filter alerts" },
      el("label", { for: "al-status", text: "Status" }), state, el("button", { type: "submit", text: "Show alerts" }));
    const note = el("p", { role: "status", "aria-live": "polite", class: "snc-live" });
    const table = el("table", { class: "events alerts-table" });
    const evidence = el("div", { class: "evidence" });
    alertsBox.replaceChildren(form, note, table, evidence);
    async function load() {
      const q = new URLSearchParams({ limit: "200" });
      if (state.value) q.set("status", state.value);
      const res = await call("GET", `/alerts?${q}`);
      if (!res.ok) { table.replaceChildren(el("caption", { text: res.problem.detail })); return; }
      const rows = res.json.alerts;
      table.replaceChildren(el("caption", { text: `${rows.length} ${state.value || ""} alert${rows.length === 1 ? "" : "s"}`.replace("  ", " ") }),
        el("thead", {}, el("tr", {}, ...["Severity", "Rule", "Alert", "Actor", "Source IP", "First seen", "Last seen", "Count", "Status", "Actions"].map((h) => el("th", { scope: "col", text: h })))),
        el("tbody", {}, ...rows.map((a) => {
          const actions = el("td", { class: "actions" });
          const act = (label, handler) => {
            const b = el("button", { type: "button", class: "secondary", text: label, "aria-label": `${label}: ${a.title}` });
            b.addEventListener("click", handler);
            actions.append(b);
          };
          act("Evidence", () => showEvidence(a));
          if (a.status !== "acknowledged") act("Acknowledge", () => setStatus(a, "acknowledged"));
          if (a.status !== "closed") act("Close", () => setStatus(a, "closed"));
          if (a.status !== "open") act("Reopen", () => setStatus(a, "open"));
          return el("tr", { class: `severity-${a.severity}`, "data-alert": a.id },
            el("td", { text: a.severity }), el("td", { text: a.rule }),
            el("td", {}, el("strong", { text: a.title }), el("br"), el("span", { class: "small", text: a.summary })),
            el("td", { text: a.actor ?? "" }), el("td", { text: a.source_ip ?? "" }),
            el("td", { text: a.first_seen }), el("td", { text: a.last_seen }), el("td", { text: String(a.count) }),
            el("td", { text: a.status }), actions);
        })));
    }
    async function setStatus(a, to) {
      const res = await call("PATCH", `/alerts/${a.id}`, { status: to });
      note.textContent = res.ok ? `${a.title}: ${to}.` : `${res.problem.title}: ${res.problem.detail}`;
      if (res.ok) { await load(); refresh(); }
    }
    async function showEvidence(a) {
      const q = new URLSearchParams({ limit: "1000", from: a.first_seen, to: new Date(Date.parse(a.last_seen) + 1000).toISOString() });
      const res = await call("GET", `/connections/${a.connection_id}/events?${q}`);
      const ids = new Set(a.event_ids);
      const events = res.ok ? res.json.events.filter((e) => ids.has(e.id)) : [];
      evidence.replaceChildren(el("h3", { id: "evidence-title", tabindex: "-1", text: `Evidence: ${a.title}` }),
        el("p", { text: res.ok ? `${events.length} of ${a.event_ids.length} evidence events · ATT&CK ${a.attack.join(", ")}` : res.problem.detail }),
        el("table", { class: "events" },
          el("thead", {}, el("tr", {}, ...["When", "Kind", "Actor", "Source IP", "Event"].map((h) => el("th", { scope: "col", text: h })))),
          el("tbody", {}, ...events.map((e) => el("tr", {}, el("td", { text: e.occurred_at }), el("td", { text: e.kind }), el("td", { text: e.actor ?? "" }), el("td", { text: e.source_ip ?? "" }), el("td", { text: e.id }))))));
      evidence.querySelector("h3").focus();
    }
    form.addEventListener("submit", (ev) => { ev.preventDefault(); load(); });
    load();
    return { load };
  }

  /** Events per day as bars, days with alerts marked; built with DOM calls, so names stay text. */
  function drawChart(box, events, raised = []) {
    const days = new Map();
    for (const e of events) days.set(e.occurred_at.slice(0, 10), (days.get(e.occurred_at.slice(0, 10)) ?? 0) + 1);
    const alertDays = new Map();
    for (const a of raised) alertDays.set(a.first_seen.slice(0, 10), (alertDays.get(a.first_seen.slice(0, 10)) ?? 0) + 1);
    const entries = [...days.entries()].sort();
    const max = Math.max(1, ...entries.map(([, n]) => n));
    const w = 40, h = 120;
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", `0 0 ${Math.max(1, entries.length) * w} ${h + 20}`);
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", `Events per day: ${entries.map(([d, n]) => `${d} ${n}${alertDays.get(d) ? ` (${alertDays.get(d)} alerts)` : ""}`).join(", ") || "none"}`);
    entries.forEach(([day, n], i) => {
      const bar = document.createElementNS(SVG, "rect");
      const bh = (n / max) * h;
      bar.setAttribute("x", String(i * w + 4)); bar.setAttribute("y", String(h - bh));
      bar.setAttribute("width", String(w - 8)); bar.setAttribute("height", String(bh));
      bar.setAttribute("class", "bar");
      const label = document.createElementNS(SVG, "text");
      label.setAttribute("x", String(i * w + w / 2)); label.setAttribute("y", String(h + 14));
      label.setAttribute("text-anchor", "middle"); label.setAttribute("font-size", "9");
      label.textContent = day.slice(5);
      svg.append(bar, label);
      if (alertDays.get(day)) {
        const mark = document.createElementNS(SVG, "circle");
        mark.setAttribute("cx", String(i * w + w / 2)); mark.setAttribute("cy", String(Math.max(6, h - bh - 8)));
        mark.setAttribute("r", "5"); mark.setAttribute("class", "alert-mark");
        svg.append(mark);
      }
    });
    box.replaceChildren(svg);
  }

  async function refresh() {
    const res = await call("GET", "/connections");
    if (!res.ok) {
      status.textContent = res.problem.code === "connector_unreachable" ? "The connector could not be reached; the list will update when it answers again." : `The list could not be updated: ${res.problem.detail}`;
      status.dataset.state = "error";
      return;
    }
    const seen = new Set();
    let before = list.firstChild;
    for (const c of res.json.connections) {
      seen.add(c.id);
      let r = rows.get(c.id);
      if (!r) {
        r = makeRow(c);
        rows.set(c.id, r);
      }
      update(r, c);
      if (r.item !== before) list.insertBefore(r.item, before);
      before = r.item.nextSibling;
    }
    for (const [id, r] of rows) {
      if (!seen.has(id)) {
        r.item.remove();
        rows.delete(id);
      }
    }
    empty.hidden = res.json.connections.length > 0;
  }
  refresh();
  const alertsView = mountAlerts();
  const timer = setInterval(refresh, 3000);
  return { refresh, alerts: alertsView, stop: () => clearInterval(timer) };
}
