// The connect wizard, shared by the hosted page and <servicenow-connect>.
// Field checks run in the Rust core (wasm): the same codes and messages the
// worker answers. Everything from the API or ServiceNow is set as text.
import init, { validateField } from "./pkg/snc_web.js";

let ready = null;
/** Loads the wasm module once, relative to this script (works cross-origin). */
export function loadCore() {
  ready ??= init({ module_or_path: new URL("./pkg/snc_web_bg.wasm", import.meta.url) });
  return ready;
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false || v === null || v === undefined) continue;
    if (k === "text") node.textContent = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) node.append(c);
  return node;
}

/**
 * One API call. `credential` is a string, or a function returning one (or a
 * promise of one); such a function is asked again with `renew = true` once
 * when the answer says the credential ran out (an expired connect ticket).
 * `null` sends none: behind Cloudflare Access the edge vouches for the page.
 */
export async function api(base, credential, method, path, body) {
  const send = (value) => {
    const headers = {};
    if (value) headers.authorization = `Bearer ${value}`;
    if (body !== undefined) headers["content-type"] = "application/json";
    return fetch(`${base}/api/v1${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  };
  let r;
  try {
    const first = typeof credential === "function" ? await credential(false) : credential;
    r = await send(first);
    const ranOut = r.status === 401 || (r.status === 403 && method === "POST" && path === "/connections");
    if (typeof credential === "function" && ranOut) {
      // Only a credential that can be renewed (a portal's ticket) is tried
      // again, and only when it changed: a wrong token is not sent twice.
      const renewed = await credential(true);
      if (renewed && renewed !== first) r = await send(renewed);
    }
  } catch (e) {
    return { ok: false, status: 0, problem: { code: "connector_unreachable", title: "The connector could not be reached", detail: "Check your network and the connector's address, then try again." } };
  }
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch {}
  return r.ok ? { ok: true, status: r.status, json } : { ok: false, status: r.status, problem: json ?? { code: "internal", title: `HTTP ${r.status}`, detail: "Unexpected answer." } };
}

const STEPS = ["name", "method", "basic", "oauth", "connect", "status"];
const FIELDS = {
  name: { label: "Connection name", type: "text", hint: "A name you will recognise, such as \"ServiceNow production\"." },
  username: { label: "User ID", type: "text", hint: "The user_name of an account with the admin role (ServiceNow: User Administration > Users).", autocomplete: "username" },
  password: { label: "Password", type: "password", hint: "Used once to get tokens with OAuth, and never stored; kept encrypted for legacy connections.", autocomplete: "current-password" },
  instance_url: { label: "Instance URL", type: "text", hint: "Such as https://acme.service-now.com, or just acme.", inputmode: "url" },
  client_id: { label: "Client ID", type: "text", hint: "System OAuth > Application Registry > your \"OAuth API endpoint for external clients\": the generated Client ID." },
  client_secret: { label: "Client secret", type: "password", hint: "The Client Secret of the same record. Set its Access Token Lifespan to at least 3,600 s.", autocomplete: "off" },
};
const STEP_FIELDS = { name: ["name"], basic: ["username", "password", "instance_url"], oauth: ["client_id", "client_secret"] };
const METHOD_LABELS = { oauth: "OAuth (recommended)", client_credentials: "OAuth client credentials", basic: "User name and password (legacy)" };
/** The fields a step shows for a method: client credentials type no user or password. */
function titleOf(step, method) {
  return step === "basic" && method === "client_credentials" ? "Instance" : STEP_TITLES[step];
}
function fieldsOf(step, method) {
  const fields = STEP_FIELDS[step];
  if (step === "basic" && method === "client_credentials") return ["instance_url"];
  return fields;
}
const STEP_TITLES = { name: "Name the connection", method: "How to connect", basic: "Basic details", oauth: "OAuth details", connect: "Connect", status: "Status" };

/**
 * Mounts the wizard in `root`. `opts`: { apiBase, token (a credential for `api`), settings, onConnected(conn), onError(problem) }.
 */
export function mountWizard(root, opts) {
  const state = { step: "name", method: "oauth", values: {}, connection: null };
  const inputs = {};
  const errors = {};
  const form = el("form", { class: "snc-wizard", novalidate: true, "aria-labelledby": "snc-step-title" });
  const title = el("h2", { id: "snc-step-title", tabindex: "-1" });
  const progress = el("ol", { class: "snc-steps", "aria-label": "Steps" });
  const body = el("div", { class: "snc-body" });
  const live = el("p", { class: "snc-live", role: "status", "aria-live": "polite" });
  const alert = el("div", { class: "snc-alert", role: "alert", hidden: true });
  const nav = el("div", { class: "snc-nav" });
  const back = el("button", { type: "button", class: "secondary", text: "Back" });
  const next = el("button", { type: "submit", text: "Next" });
  nav.append(back, next);
  form.append(progress, title, alert, body, live, nav);
  root.append(form);

  const settings = () => opts.settings ?? { instance_hosts: "", allow_loopback_instances: false };
  const steps = () => STEPS.filter((s) => s !== "oauth" || state.method !== "basic");

  function field(name) {
    const f = FIELDS[name];
    const id = `snc-${name}`;
    const input = el("input", { id, name, type: f.type, autocomplete: f.autocomplete ?? "off", inputmode: f.inputmode, spellcheck: "false", "aria-describedby": `${id}-hint`, required: true });
    input.value = state.values[name] ?? "";
    const error = el("p", { id: `${id}-error`, class: "snc-error", hidden: true });
    input.addEventListener("input", () => {
      state.values[name] = input.value;
      if (input.getAttribute("aria-invalid") === "true") check(name);
    });
    input.addEventListener("blur", () => { if (input.value) check(name); });
    inputs[name] = input;
    errors[name] = error;
    return el("div", { class: "snc-field" }, el("label", { for: id, text: f.label }), input, el("p", { id: `${id}-hint`, class: "snc-hint", text: f.hint }), error);
  }

  function showError(name, message) {
    const input = inputs[name];
    const error = errors[name];
    if (!input) return false;
    if (message) {
      error.textContent = message;
      error.hidden = false;
      input.setAttribute("aria-invalid", "true");
      input.setAttribute("aria-describedby", `snc-${name}-error snc-${name}-hint`);
    } else {
      error.textContent = "";
      error.hidden = true;
      input.removeAttribute("aria-invalid");
      input.setAttribute("aria-describedby", `snc-${name}-hint`);
    }
    return true;
  }

  /** Checks one field with the core's rules; true when it is fine. */
  function check(name) {
    const s = settings();
    const problem = validateField(name, inputs[name].value, s.instance_hosts || undefined, !!s.allow_loopback_instances);
    showError(name, problem ? problem.message : null);
    return !problem;
  }

  function render() {
    const all = steps();
    const i = all.indexOf(state.step);
    progress.replaceChildren(...all.map((s, n) => el("li", { class: n === i ? "current" : n < i ? "done" : "", "aria-current": n === i ? "step" : false, text: titleOf(s, state.method) })));
    title.textContent = titleOf(state.step, state.method);
    alert.hidden = true;
    alert.replaceChildren();
    live.textContent = "";
    for (const k of Object.keys(inputs)) { delete inputs[k]; delete errors[k]; }
    back.hidden = i === 0 || state.step === "status";
    next.hidden = false;
    next.disabled = false;
    next.textContent = state.step === "connect" ? "Connect" : state.step === "status" ? "Connect another" : "Next";
    if (STEP_FIELDS[state.step]) {
      body.replaceChildren(...fieldsOf(state.step, state.method).map(field));
    } else if (state.step === "method") {
      const option = (value, label, hint) => {
        const id = `snc-method-${value}`;
        const radio = el("input", { type: "radio", name: "method", id, value, checked: state.method === value, "aria-describedby": `${id}-hint` });
        radio.addEventListener("change", () => { state.method = value; });
        return el("div", { class: "snc-option" }, radio, el("label", { for: id, text: label }), el("p", { id: `${id}-hint`, class: "snc-hint", text: hint }));
      };
      body.replaceChildren(el("fieldset", {},
        el("legend", { text: "Choose how the connector signs in to ServiceNow" }),
        option("oauth", "Connect using OAuth token (recommended)", "Fuji and later. Your password is used once to get tokens and is not kept."),
        option("client_credentials", "Connect using OAuth client credentials", "For instances that switch the password grant off. In ServiceNow: allow the client-credentials grant (system property glide.oauth.inbound.client.credential.grant_type.enabled = true), then in the OAuth application's record set the OAuth Application User to an integration account that holds the admin role and is web-service-only. Only the client ID and secret are needed here."),
        option("basic", "Connect using user name and password only (legacy)", "For older releases: a dedicated service account with the admin role; the password is kept, encrypted, because every call needs it. The REST API plugin must be on.")));
    } else if (state.step === "connect") {
      const v = state.values;
      const dl = el("dl", { class: "snc-summary" });
      const row = (k, val) => dl.append(el("dt", { text: k }), el("dd", { text: val }));
      row("Name", v.name ?? "");
      row("Method", METHOD_LABELS[state.method]);
      if (state.method !== "client_credentials") row("User ID", v.username ?? "");
      row("Instance", v.instance_url ?? "");
      if (state.method !== "basic") row("Client ID", v.client_id ?? "");
      body.replaceChildren(el("p", { text: "The connector signs in, checks the admin role, the release and access to the tables it reads, then starts collecting the last 7 days of events." }), dl);
    } else if (state.step === "status") {
      body.replaceChildren(statusView(state.connection));
    }
    title.focus();
  }

  function statusView(c) {
    const wrap = el("div", { class: "snc-status" });
    wrap.append(el("p", {}, el("strong", { text: "Status: " }), el("span", { class: `snc-badge ${c.status}`, "data-status": c.status, text: c.status === "connected" ? "Connected" : c.status })));
    wrap.append(el("p", { text: `${c.name} — ${c.instance_url} (${c.release ?? "release unknown"})` }));
    for (const w of c.warnings ?? []) wrap.append(el("p", { class: "snc-warning", text: w.message }));
    const total = Math.max(c.backfill.total, c.backfill.events, 1);
    const bar = el("progress", { max: String(total), value: String(c.backfill.events), "aria-label": "Backfill progress" });
    // The backfill's length is the deployment's (BACKFILL_DAYS), as /settings says.
    const days = opts.settings?.backfill_days ?? 7;
    wrap.append(el("p", { text: c.backfill.done ? `The last ${days} days are in.` : `Collecting the last ${days} days of events…` }), bar, el("p", { class: "snc-count", text: `${c.backfill.events} events` }));
    return wrap;
  }

  function showProblem(p) {
    // A problem about fields goes to the fields; anything else to the step.
    const fieldErrors = (p.errors ?? []).filter((e) => e.field);
    const target = { credentials_rejected: state.method === "client_credentials" ? "oauth" : "basic", not_admin: state.method === "client_credentials" ? "oauth" : "basic", instance_url_forbidden: "basic", instance_unreachable: "basic", instance_hibernating: "basic", not_servicenow: "basic" }[p.code];
    if (fieldErrors.length) {
      const first = fieldErrors[0].field;
      const where = Object.keys(STEP_FIELDS).map((s) => [s, fieldsOf(s, state.method)]).find(([, fs]) => fs.includes(first));
      if (where) { state.step = where[0]; render(); }
      for (const e of fieldErrors) showError(e.field, e.message);
      inputs[first]?.focus();
      return;
    }
    if (target && state.step !== target) { state.step = target; render(); }
    alert.replaceChildren(el("strong", { text: p.title ?? "Could not connect" }), el("p", { text: p.detail ?? "" }), el("p", { class: "snc-code", text: `Code: ${p.code}` }));
    alert.hidden = false;
    alert.focus?.();
  }

  /** Follows the backfill; a failed read is tried again with backoff, and says so. */
  async function poll(id) {
    let failures = 0;
    const watching = () => state.step === "status" && state.connection?.id === id;
    while (watching() && !state.connection.backfill.done) {
      await new Promise((r) => setTimeout(r, failures ? Math.min(30, 2 ** failures) * 1000 : 1000));
      if (!watching()) return;
      const res = await api(opts.apiBase, opts.token, "GET", `/connections/${id}`);
      if (!res.ok) {
        failures++;
        const wait = Math.min(30, 2 ** failures);
        live.textContent = res.problem.code === "connector_unreachable"
          ? `The connector could not be reached. Trying again in ${wait} s.`
          : `The progress could not be read (${res.problem.title}). Trying again in ${wait} s.`;
        continue;
      }
      if (failures) live.textContent = "The connector answers again.";
      failures = 0;
      state.connection = res.json;
      if (watching()) body.replaceChildren(statusView(res.json));
    }
  }

  async function connect() {
    next.disabled = true;
    live.textContent = "Connecting… signing in and checking the instance.";
    const v = state.values;
    const req = { name: v.name, instance_url: v.instance_url, method: state.method };
    if (state.method !== "client_credentials") Object.assign(req, { username: v.username, password: v.password });
    if (state.method !== "basic") Object.assign(req, { client_id: v.client_id, client_secret: v.client_secret });
    const res = await api(opts.apiBase, opts.token, "POST", "/connections", req);
    next.disabled = false;
    live.textContent = "";
    if (!res.ok) {
      opts.onError?.(res.problem);
      showProblem(res.problem);
      return;
    }
    // The password and secret are not needed any more: forget them.
    delete state.values.password;
    delete state.values.client_secret;
    state.connection = res.json;
    state.step = "status";
    render();
    opts.onConnected?.(res.json);
    poll(res.json.id);
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (state.step === "status") {
      state.values = {};
      state.step = "name";
      return render();
    }
    const names = fieldsOf(state.step, state.method) ?? [];
    const bad = names.filter((n) => !check(n));
    if (bad.length) return inputs[bad[0]].focus();
    if (state.step === "connect") return connect();
    const all = steps();
    state.step = all[all.indexOf(state.step) + 1];
    render();
  });
  back.addEventListener("click", () => {
    const all = steps();
    state.step = all[Math.max(0, all.indexOf(state.step) - 1)];
    render();
  });
  render();
  // For bench/page.mjs: when the wizard first accepts input.
  performance.mark("snc-wizard-ready");
  return { state };
}
