// The hosted admin page. Sign-in: behind Cloudflare Access the page is
// already signed in (the edge vouches for every request); otherwise it asks
// once for the admin token or an API key, kept in sessionStorage, never in a
// URL. What it shows follows the caller's scopes (GET /me).
import { loadCore, mountWizard, api, el } from "./wizard.js";
import { showHealth, pageSections } from "./pkg/snc_web.js";

const base = location.origin;
const tokenForm = document.getElementById("token-form");
const main = document.getElementById("app");
const token = () => sessionStorage.getItem("snc-admin-token") ?? "";
// The last GET /me of this tab (who, which scopes; nothing secret): on a
// reload the page is drawn from it at once and /me confirms it meanwhile.
// The worker checks every call whatever the page shows.
const remembered = () => {
  try { return token() ? JSON.parse(sessionStorage.getItem("snc-me") ?? "null") : null; } catch { return null; }
};
const signOut = () => { sessionStorage.removeItem("snc-admin-token"); sessionStorage.removeItem("snc-me"); };
// The token form is plain HTML and needs no wasm: the admin can type while
// the module loads. It goes away when the tab already has a token.
if (token()) tokenForm.hidden = true;
// Resolves to whether Cloudflare Access signs admins in here (GET /health).
const accessHere = loadCore().then(() => showHealth(location.origin, document.getElementById("version")));

function refuse(problem) {
  main.replaceChildren(tokenForm);
  tokenForm.hidden = false;
  const err = document.getElementById("token-error");
  // Only a refused credential signs the tab out; a busy or unreachable
  // connector leaves it signed in for the next try.
  if (problem.code === "unauthorized") signOut();
  err.textContent = problem.code === "unauthorized"
    ? "That is not a valid admin token or API key (a revoked or expired key is refused too)."
    : `The sign-in could not be confirmed: ${problem.title}. ${problem.detail} Reload the page to try again.`;
  err.hidden = false;
  document.getElementById("token").setAttribute("aria-invalid", "true");
  document.getElementById("token").focus();
}

async function start({ quiet = false } = {}) {
  await loadCore();
  // With no credential of its own, the page asks /me only where Access can
  // vouch for it: anywhere else that is a 401 in every visitor's console.
  if (quiet && !(await accessHere)) { tokenForm.hidden = false; return; }
  const before = remembered();
  // Drawn at once from the last /me, the wizard included; the views, which
  // call the API at once and keep polling, wait for /me to confirm.
  const views = before ? show(before) : null;
  const me = await api(base, token, "GET", "/me");
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

/**
 * Draws what the caller `me` (a GET /me answer) may see and mounts the
 * wizard; answers a function that mounts the other views.
 */
function show(me) {
  tokenForm.hidden = true;
  const scopes = me.scopes;
  // Which sections this caller's scopes allow: core's decision.
  const shown = pageSections(scopes);
  const as = { admin_token: "Signed in with the admin token", access: `Signed in as ${me.name} (Cloudflare Access` }[me.kind] ?? `Signed in as ${me.name ?? me.id} (${me.kind}`;
  const who = el("p", { class: "signed-in" }, el("span", { text: `${as}${me.kind === "admin_token" ? " (" : "; "}${scopes.join(", ")}). ` }));
  if (me.kind !== "access") {
    const out = el("button", { type: "button", class: "secondary", text: "Sign out" });
    out.addEventListener("click", () => { signOut(); location.reload(); });
    who.append(out);
  }
  const sections = [who];
  const later = [];
  let adminView = null;
  let wizardUp = Promise.resolve();
  const wizardFirst = shown.wizard;
  if (wizardFirst) {
    const wizardSection = el("section", { "aria-labelledby": "connect-title", class: "card" }, el("h2", { id: "connect-title", class: "section-title", text: "Connect ServiceNow" }));
    sections.push(wizardSection);
    // The wizard reads /settings itself.
    later.push(() => { wizardUp = mountWizard(wizardSection, { apiBase: base, token, onConnected: () => adminView?.refresh() }); });
  }
  const section = (id) => {
    const s = el("section", { "aria-labelledby": id, class: "card" });
    sections.push(s);
    return s;
  };
  if (shown.connections) {
    // The views are loaded only for those who may use them, and after the
    // wizard is up: the connect page stays small and quick.
    const adminSection = section("connections-title");
    const keys = shown.keys ? section("keys-title") : null;
    const sinks = shown.sinks ? section("sinks-title") : null;
    const audit = shown.audit ? section("audit-title") : null;
    later.push(async () => {
      await wizardUp.catch(() => {});
      // The views are the browser module's second build (crates/web/src/admin).
      const views = await import("./pkg/snc_admin.js");
      await views.default({ module_or_path: new URL("./pkg/snc_admin_bg.wasm", import.meta.url) });
      adminView = views.mountAdmin(adminSection, { apiBase: base, token });
      if (keys) views.mountKeys(keys, { apiBase: base, token });
      if (sinks) views.mountSinks(sinks, { apiBase: base, token, canChange: shown.sinksChange });
      if (audit) views.mountAudit(audit, { apiBase: base, token });
    });
  }
  main.replaceChildren(...sections);
  const [first, ...rest] = later;
  if (wizardFirst) first();
  return () => { for (const mount of wizardFirst ? rest : later) mount(); };
}

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
