// The hosted page's shell: sign-in (docs/architecture.md, "web") and hash
// routes, whose decisions are core's (pageRoute, pageNav). Every byte here
// counts against the page's 64 KB.
import init, { showHealth, pageRoute, pageNav, mountOverview, apiCall } from "./pkg/snc_web.js";

const base = location.origin;
const tokenForm = document.getElementById("token-form");
const main = document.getElementById("app");
const token = () => sessionStorage.getItem("snc-admin-token") ?? "";
const ready = init({ module_or_path: new URL("./pkg/snc_web_bg.wasm", import.meta.url) });
// This tab's last GET /me (nothing secret), drawn from at once on a reload.
const remembered = () => {
  try { return token() ? JSON.parse(sessionStorage.getItem("snc-me") ?? "null") : null; } catch { return null; }
};
const signOut = () => { sessionStorage.removeItem("snc-admin-token"); sessionStorage.removeItem("snc-me"); };
// Off until this script runs: a form sent before would put the token in a URL.
tokenForm.querySelector("button").disabled = false;
if (token()) tokenForm.hidden = true;
// Whether Cloudflare Access signs admins in here.
const accessHere = ready.then(() => showHealth(base, document.getElementById("version")));

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") node.textContent = v;
    else if (v !== false && v != null) node.setAttribute(k, v);
  }
  node.append(...children);
  return node;
}

// The views of the last show(): gone with a refusal.
let shown = new AbortController();

function refuse(problem) {
  shown.abort();
  main.replaceChildren(tokenForm);
  tokenForm.hidden = false;
  const err = document.getElementById("token-error");
  // Only a refused credential signs the tab out, not a busy connector.
  if (problem.code === "unauthorized") signOut();
  err.textContent = problem.code === "unauthorized"
    ? "That is not a valid admin token or API key (a revoked or expired key is refused too)."
    : `The sign-in could not be confirmed: ${problem.title}. ${problem.detail} Reload the page to try again.`;
  err.hidden = false;
  document.getElementById("token").setAttribute("aria-invalid", "true");
  document.getElementById("token").focus();
}

async function start({ quiet = false } = {}) {
  await ready;
  // Without a credential, /me only where Access vouches: else a console 401.
  if (quiet && !(await accessHere)) { tokenForm.hidden = false; return; }
  const before = remembered();
  // The views wait for /me: a revoked key makes one refused call, not one a view.
  const views = before ? show(before) : null;
  const me = await apiCall(base, token, "GET", "/me");
  if (!me.ok) {
    if (quiet) { tokenForm.hidden = false; return; }
    return refuse(me.problem);
  }
  const same = (a, b) => ["kind", "id", "name", "scopes"].every((k) => JSON.stringify(a[k]) === JSON.stringify(b[k]));
  if (before && same(before, me.json)) return views();
  sessionStorage.setItem("snc-me", JSON.stringify(me.json));
  // The first sign-in of this tab, or the caller changed (a key's scopes).
  if (before) return location.reload();
  show(me.json)();
}

/** Draws who `me` (a GET /me answer) is and the navigation; answers a function showing the views. */
function show(me) {
  shown.abort();
  shown = new AbortController();
  const { signal } = shown;
  tokenForm.hidden = true;
  const scopes = me.scopes;
  const opts = { apiBase: base, token, scopes };
  const as = { admin_token: "Signed in with the admin token", access: `Signed in as ${me.name} (Cloudflare Access` }[me.kind] ?? `Signed in as ${me.name ?? me.id} (${me.kind}`;
  const who = el("p", { class: "signed-in" }, el("span", { text: `${as}${me.kind === "admin_token" ? " (" : "; "}${scopes.join(", ")}). ` }));
  if (me.kind !== "access") {
    const out = el("button", { type: "button", class: "secondary", text: "Sign out" });
    out.addEventListener("click", () => { signOut(); location.reload(); });
    who.append(out);
  }
  const links = new Map(pageNav(scopes).map(([view, label, hash]) => [view, el("a", { href: hash, text: label })]));
  const nav = el("nav", { "aria-label": "Views" }, el("ul", {}, ...[...links.values()].map((a) => el("li", {}, a))));
  const holder = el("div");
  main.replaceChildren(who, nav, holder);
  // Mounted when first shown, then kept hidden: what was typed in it stays.
  const views = new Map();
  let admin = null;
  const adminModule = () => admin ??= import("./pkg/snc_admin.js").then(async (m) => {
    await m.default({ module_or_path: new URL("./pkg/snc_admin_bg.wasm", import.meta.url) });
    return m;
  });
  const viewOf = (name) => async (s) => (await adminModule())[name](s, opts);
  const mount = {
    overview: async (s) => mountOverview(s, opts),
    connect: async (s) => {
      s.append(el("h2", { id: "connect-title", class: "section-title", tabindex: "-1", text: "Connect ServiceNow" }));
      const { mountWizard } = await import("./wizard.js");
      await mountWizard(s, opts);
    },
    connections: viewOf("mountAdmin"),
    alerts: viewOf("mountAlerts"),
    keys: viewOf("mountKeys"),
    sinks: viewOf("mountSinks"),
    audit: viewOf("mountAudit"),
  };
  let first = true;
  // A navigation overtaken by a later one while its view loaded stops there.
  let latest = 0;
  const route = async () => {
    const seq = ++latest;
    const r = pageRoute(location.hash, scopes);
    if (!r) { holder.replaceChildren(el("p", { text: "This credential may see no view of this page." })); return; }
    if (location.hash !== r.hash) history.replaceState(null, "", r.hash);
    for (const [view, a] of links) {
      if (view === r.view) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    }
    document.title = `${links.get(r.view)?.textContent} · ServiceNow connector`;
    let v = views.get(r.view);
    const fresh = !v;
    if (fresh) {
      const section = el("section", { class: "card view", "aria-labelledby": `${r.view}-title` });
      holder.append(section);
      const handle = mount[r.view](section).catch((e) => { section.append(el("p", { class: "snc-error", role: "alert", text: `This view could not be loaded: ${e.message ?? e}. Reload the page to try again.` })); });
      v = { section, handle };
      views.set(r.view, v);
    }
    for (const other of views.values()) other.section.hidden = other !== v;
    const wasFirst = first;
    first = false;
    const handle = await v.handle;
    if (seq !== latest) return;
    // Shown again: read again.
    if (!fresh) (typeof handle === "function" ? handle : handle?.refresh)?.();
    if (r.id) handle?.open?.(r.id);
    // The focus follows a move between views (not the first one).
    else if (!wasFirst) v.section.querySelector("h2")?.focus();
  };
  return () => {
    addEventListener("hashchange", route, { signal });
    route();
  };
}

// Any view's call refused for the sign-in (a key revoked meanwhile).
addEventListener("snc-unauthorized", () => { if (tokenForm.hidden) refuse({ code: "unauthorized" }); });
tokenForm.addEventListener("submit", (ev) => {
  ev.preventDefault();
  const input = document.getElementById("token");
  signOut();
  sessionStorage.setItem("snc-admin-token", input.value.trim());
  // Kept in this tab's storage only: not in the page.
  input.value = "";
  start();
});
// With a token in this tab, use it; without one, Cloudflare Access may
// already vouch for the page, and the form stays for everyone else.
start({ quiet: !token() });
